# getmail6 against poplar: SimplePOP3Retriever and SimplePOP3SSLRetriever (ca_certs) into a
# Maildir destination, delete on and off, each downloading the whole corpus.
#
# How getmail transforms what poplar sends (learned empirically, getmail 6.18.11, with
# delivered_to = false and received = false): it parses each message with Python's email package
# and writes it back, so the Maildir file is "Return-Path: <unknown>\n" + the wire form with CRLF
# turned into LF, for every well-formed message. For malformed ones the email package rewrites
# more (the exact bytes are listed in GETMAIL_QUIRKS): a header line that is not "Name: value"
# ends the header and a blank line is inserted before it; a CR not followed by LF becomes a line
# end. getmail has no STLS support, so STLS is not tested here.
#
# getmail refuses to deliver as root; when the suite runs as root the Maildir destination gets
# "user = nobody" and lives in a directory nobody can write.
import os
import pwd
import shutil
import tempfile

import pytest

import corpus
from conftest import run

GETMAIL_TIMEOUT = 300
RETURN_PATH = b"Return-Path: <unknown>\n"

GETMAIL_QUIRKS = {
    "dots": RETURN_PATH + b"From: dots@test.invalid\n.X-Dot-Header: leading dot in a header\n\n..\n.\n"
                          b"Subject: dots\n\n.\n..\n.foo\n...\n. \n.\nend\n..end\n",
    "lone_cr": RETURN_PATH + b"From: cr@test.invalid\nSubject: lone CR\n\nbefore\nafter\ntwo CRs\n"
                             b"CR at start\n\nline\nend\n",
    "trailing_cr": RETURN_PATH + b"From: tcr@test.invalid\nSubject: trailing CR\n\nends in CR\n",
    "empty_file": RETURN_PATH + b"\n",
}


def getmail_form(msg):
    if msg.name in GETMAIL_QUIRKS:
        return GETMAIL_QUIRKS[msg.name]
    return RETURN_PATH + corpus.lf_form(msg.wire)


@pytest.fixture
def getmail_maildir(env):
    """(maildir path, extra destination lines); cleaned up afterwards."""
    if os.geteuid() == 0:
        nobody = pwd.getpwnam("nobody")
        base = tempfile.mkdtemp(prefix="poplar-getmail-")
        os.chmod(base, 0o755)
        md = os.path.join(base, "Maildir")
        for sub in ("new", "cur", "tmp"):
            os.makedirs(os.path.join(md, sub))
        for root, dirs, _ in os.walk(md):
            os.chown(root, nobody.pw_uid, nobody.pw_gid)
        yield md, "user = nobody\n"
        shutil.rmtree(base, ignore_errors=True)
    else:
        md = os.path.join(env.root, "getmail-maildir")
        for sub in ("new", "cur", "tmp"):
            os.makedirs(os.path.join(md, sub))
        yield md, ""


def write_rc(env, maildir, ssl, port, delete):
    md, extra = maildir
    if ssl:
        retriever = f"type = SimplePOP3SSLRetriever\nca_certs = {env.cert}\nssl_cert_hostname = localhost\n"
    else:
        retriever = "type = SimplePOP3Retriever\n"
    rc = os.path.join(env.root, "getmailrc")
    with open(rc, "w") as f:
        f.write(f"""[retriever]
{retriever}server = localhost
port = {port}
username = demo
password = demo-secret
timeout = 60

[destination]
type = Maildir
path = {md}/
{extra}
[options]
verbose = 0
read_all = true
delete = {"true" if delete else "false"}
delivered_to = false
received = false
message_log_syslog = false
""")
    os.chmod(rc, 0o600)
    gdir = os.path.join(env.root, "getmail-dir")
    os.makedirs(gdir, exist_ok=True)
    return rc, gdir


def run_getmail(rc, gdir):
    return run(["getmail", "--getmaildir", gdir, "--rcfile", rc], timeout=GETMAIL_TIMEOUT)


def contents(md):
    out = []
    for sub in ("new", "cur"):
        for name in os.listdir(os.path.join(md, sub)):
            with open(os.path.join(md, sub, name), "rb") as f:
                out.append(f.read())
    return sorted(out)


@pytest.mark.timeout(400)
@pytest.mark.parametrize("ssl,delete", [(False, False), (True, True), (True, False)])
def test_getmail_whole_corpus(full_env, getmail_maildir, ssl, delete):
    msgs = corpus.corpus(with_big=True)
    before = full_env.files("demo")
    with full_env.server() as srv:
        rc, gdir = write_rc(full_env, getmail_maildir, ssl, srv.tls_port if ssl else srv.port, delete)
        r = run_getmail(rc, gdir)
        assert r.returncode == 0, (r.stdout + r.stderr).decode(errors="replace")[-3000:]
        got = contents(getmail_maildir[0])
        want = sorted(getmail_form(m) for m in msgs)
        assert len(got) == len(want)
        for g, w in zip(got, want):
            assert g == w, f"getmail stored {g[:300]!r}\nexpected {w[:300]!r}"
    assert full_env.files("demo") == ([] if delete else before)
    srv.wait_log(rf'login: user="demo" rip=127\.0\.0\.1 mech=\S+ tls={"yes" if ssl else "no"}')


def test_getmail_ssl_rejects_unknown_ca(small_env, getmail_maildir, tmp_path):
    other = tmp_path / "other.pem"
    r = run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=localhost",
             "-keyout", str(tmp_path / "other.key"), "-out", str(other), "-days", "2"])
    assert r.returncode == 0
    with small_env.server() as srv:
        rc, gdir = write_rc(small_env, getmail_maildir, True, srv.tls_port, delete=True)
        with open(rc) as f:
            text = f.read().replace(small_env.cert, str(other))
        with open(rc, "w") as f:
            f.write(text)
        run_getmail(rc, gdir)
        assert contents(getmail_maildir[0]) == []
    assert len(small_env.files("demo")) == 12
