# fetchmail against poplar: plain, STLS and implicit TLS with certificate checking, keep and
# nokeep, each downloading the whole corpus (20 MiB message included) through an MDA that writes
# one file per message.
#
# How fetchmail transforms what poplar sends (learned empirically, fetchmail 6.4.37, with
# --invisible so it adds no Received: header, "no rewrite" so it leaves addresses alone, and
# "bad-header accept" so it keeps messages whose header has non-header lines):
#   * every CR byte is removed (the MDA gets LF line ends; a lone CR inside a line disappears);
#   * body lines are un-dot-stuffed, but header lines are NOT: a header line starting with "."
#     reaches the MDA with the extra "." the server added on the wire;
#   * an empty message is replaced by a "Headerless mail" notice from FETCHMAIL-DAEMON.
import os
import stat

import pytest

import corpus
from conftest import run

FETCHMAIL_TIMEOUT = 300


def fetchmail_form(wire: bytes) -> bytes:
    lines = wire.split(b"\r\n")[:-1] if wire else []
    out = []
    in_header = True
    for line in lines:
        if in_header and line == b"":
            in_header = False
        elif in_header and line.startswith(b"."):
            line = b"." + line  # fetchmail does not undo dot-stuffing in the header
        out.append(line.replace(b"\r", b"") + b"\n")
    return b"".join(out)


def write_rc(env, mode, port, keep):
    out = os.path.join(env.root, "fetchmail-out")
    os.makedirs(out, exist_ok=True)
    mda = os.path.join(env.root, "fetchmail-mda.sh")
    with open(mda, "w") as f:
        f.write(f'#!/bin/sh\nexec cat > "$(mktemp {out}/msg.XXXXXXXX)"\n')
    os.chmod(mda, 0o755)
    tls = {
        "plain": 'sslproto ""',
        "stls": f'sslcertck sslcertfile "{env.cert}" sslproto "tls1.2+"',
        "ssl": f'ssl sslcertck sslcertfile "{env.cert}" sslproto "tls1.2+"',
    }[mode]
    rc = os.path.join(env.root, "fetchmailrc")
    with open(rc, "w") as f:
        f.write(f"""set no bouncemail
set no spambounce
poll localhost port {port} proto pop3 auth password timeout 60 bad-header accept
  user "demo" there with password "demo-secret" is "root" here
  {"keep" if keep else "nokeep"}
  fetchall
  no rewrite
  {tls}
  mda "{mda}"
""")
    os.chmod(rc, stat.S_IRUSR | stat.S_IWUSR)  # fetchmail refuses a readable rc file
    return rc, out


def run_fetchmail(env, rc):
    home = os.path.join(env.root, "fetchmail-home")
    os.makedirs(home, exist_ok=True)
    return run(["fetchmail", "-f", rc, "-i", os.path.join(home, "ids"), "--nosyslog", "--invisible", "-v"],
               env={**os.environ, "HOME": home, "FETCHMAILHOME": home}, timeout=FETCHMAIL_TIMEOUT)


def delivered(out_dir):
    res = []
    for name in sorted(os.listdir(out_dir)):
        with open(os.path.join(out_dir, name), "rb") as f:
            res.append(f.read())
    return res


def check_delivery(got, msgs):
    expected = sorted(fetchmail_form(m.wire) for m in msgs if m.wire)
    notices = [g for g in got if b"Headerless mail" in g and b"FETCHMAIL-DAEMON" in g]
    real = sorted(g for g in got if g not in notices)
    assert len(notices) == sum(1 for m in msgs if not m.wire)
    assert len(real) == len(expected)
    for g, e in zip(real, expected):
        assert g == e, f"fetchmail delivered {g[:300]!r}\nexpected {e[:300]!r}"


@pytest.mark.timeout(400)
@pytest.mark.parametrize("mode,keep", [("plain", True), ("stls", False), ("ssl", True)])
def test_fetchmail_whole_corpus(full_env, mode, keep):
    msgs = corpus.corpus(with_big=True)
    before = full_env.files("demo")
    with full_env.server() as srv:
        port = srv.tls_port if mode == "ssl" else srv.port
        rc, out = write_rc(full_env, mode, port, keep)
        r = run_fetchmail(full_env, rc)
        log = r.stdout.decode(errors="replace") + r.stderr.decode(errors="replace")
        assert r.returncode == 0, log[-3000:]
        check_delivery(delivered(out), msgs)
        if mode == "stls":
            assert "STLS" in log
    if keep:
        assert full_env.files("demo") == before
    else:
        assert full_env.files("demo") == []
    tls = "no" if mode == "plain" else "yes"
    srv.wait_log(rf'login: user="demo" rip=127\.0\.0\.1 mech=\S+ tls={tls}')
    srv.wait_log(r'session end: user="demo" .*reason=quit')


def test_fetchmail_rejects_wrong_certificate(small_env, tmp_path):
    other_cert = tmp_path / "other.pem"
    r = run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=localhost",
             "-keyout", str(tmp_path / "other.key"), "-out", str(other_cert), "-days", "2"])
    assert r.returncode == 0
    with small_env.server() as srv:
        rc, out = write_rc(small_env, "ssl", srv.tls_port, keep=True)
        text = open(rc).read().replace(small_env.cert, str(other_cert))
        with open(rc, "w") as f:
            f.write(text)
        r = run_fetchmail(small_env, rc)
        assert r.returncode != 0
        assert os.listdir(out) == []
    assert len(small_env.files("demo")) == 12
