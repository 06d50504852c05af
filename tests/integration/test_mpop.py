# mpop against poplar: delivery to a Maildir over plain, STLS and implicit TLS (tls_trust_file),
# several auth methods, keep on/off, and only_new (which relies on stable UIDLs).
#
# How mpop transforms what poplar sends (learned empirically, mpop 1.4.18, with
# "received_header off"): the Maildir file is the wire form with every CRLF turned into LF,
# nothing else changed (lone CRs, 8-bit bytes and dot-leading lines all survive; an empty message
# becomes an empty file).
import os

import pytest

import corpus
from conftest import run

MPOP_TIMEOUT = 300


def write_rc(env, mode, port, keep=True, auth="user", only_new=False, name="mpop"):
    md = os.path.join(env.root, f"{name}-maildir")
    for sub in ("new", "cur", "tmp"):
        os.makedirs(os.path.join(md, sub), exist_ok=True)
    tls = {
        "plain": "tls off",
        "stls": f"tls on\ntls_starttls on\ntls_trust_file {env.cert}",
        "ssl": f"tls on\ntls_starttls off\ntls_trust_file {env.cert}",
    }[mode]
    rc = os.path.join(env.root, f"{name}rc")
    with open(rc, "w") as f:
        f.write(f"""account demo
host localhost
port {port}
user demo
auth {auth}
password demo-secret
{tls}
received_header off
delivery maildir {md}
uidls_file {os.path.join(env.root, name + "-uidls")}
keep {"on" if keep else "off"}
only_new {"on" if only_new else "off"}
timeout 60
""")
    os.chmod(rc, 0o600)  # mpop refuses a config with a password that others can read
    return rc, md


def run_mpop(env, rc):
    return run(["mpop", "-C", rc, "--quiet", "demo"], env={**os.environ, "HOME": env.root},
               timeout=MPOP_TIMEOUT)


def maildir_contents(md):
    out = []
    for sub in ("new", "cur"):
        d = os.path.join(md, sub)
        for name in os.listdir(d):
            with open(os.path.join(d, name), "rb") as f:
                out.append(f.read())
    return sorted(out)


def expected(msgs):
    return sorted(corpus.lf_form(m.wire) for m in msgs)


def assert_same(got, want):
    assert len(got) == len(want)
    for g, w in zip(got, want):
        assert g == w, f"mpop stored {g[:300]!r}\nexpected {w[:300]!r}"


@pytest.mark.timeout(400)
@pytest.mark.parametrize("mode,keep", [("plain", True), ("stls", False), ("ssl", True)])
def test_mpop_whole_corpus(full_env, mode, keep):
    msgs = corpus.corpus(with_big=True)
    before = full_env.files("demo")
    with full_env.server() as srv:
        port = srv.tls_port if mode == "ssl" else srv.port
        rc, md = write_rc(full_env, mode, port, keep=keep)
        r = run_mpop(full_env, rc)
        assert r.returncode == 0, r.stderr.decode(errors="replace")
        assert_same(maildir_contents(md), expected(msgs))
    assert full_env.files("demo") == (before if keep else [])
    srv.wait_log(rf'login: user="demo" rip=127\.0\.0\.1 mech=\S+ tls={"no" if mode == "plain" else "yes"}')


@pytest.mark.parametrize("auth", ["user", "plain", "login", "apop"])
def test_mpop_auth_methods(small_env, auth):
    msgs = corpus.small_messages()
    with small_env.server() as srv:
        rc, md = write_rc(small_env, "plain", srv.port, auth=auth)
        r = run_mpop(small_env, rc)
        assert r.returncode == 0, r.stderr.decode(errors="replace")
        assert_same(maildir_contents(md), expected(msgs))
    mech = {"user": "USER", "plain": "PLAIN", "login": "LOGIN", "apop": "APOP"}[auth]
    srv.wait_log(rf'login: user="demo" rip=127\.0\.0\.1 mech={mech} tls=no')


def test_mpop_only_new_uses_stable_uidls(small_env):
    msgs = corpus.small_messages()
    with small_env.server() as srv:
        rc, md = write_rc(small_env, "stls", srv.port, keep=True, only_new=True)
        r = run_mpop(small_env, rc)
        assert r.returncode == 0, r.stderr.decode(errors="replace")
        assert len(maildir_contents(md)) == len(msgs)
    # A restarted server gives the same UIDLs: nothing is fetched twice; a new message is.
    new = corpus.Message("new", b"From: new@test.invalid\nSubject: new\n\nonly this one\n")
    small_env.add_message("demo", new, 200)
    with small_env.server() as srv:
        rc, md = write_rc(small_env, "stls", srv.port, keep=True, only_new=True)  # new port
        r = run_mpop(small_env, rc)
        assert r.returncode == 0, r.stderr.decode(errors="replace")
        got = maildir_contents(md)
        assert_same(got, expected(msgs + [new]))


def test_mpop_wrong_password(small_env):
    with small_env.server() as srv:
        rc, md = write_rc(small_env, "plain", srv.port)
        with open(rc) as f:
            text = f.read().replace("password demo-secret", "password wrong")
        with open(rc, "w") as f:
            f.write(text)
        r = run_mpop(small_env, rc)
        assert r.returncode != 0
        assert b"invalid user name or password" in r.stderr, r.stderr
        assert maildir_contents(md) == []
