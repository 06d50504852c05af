# curl's pop3:// and pop3s:// client against poplar.
#
# How curl presents a message: it undoes dot-stuffing and drops the terminating ".\r\n", so its
# output is the wire form exactly (CRLF line ends kept). One quirk: for an empty message
# ("+OK 0 octets\r\n.\r\n") curl prints "\r\n" (learned empirically with curl 7.88; it matches its
# end-of-body marker "\r\n.\r\n" across the +OK line's CRLF). A listing (URL "/") prints LIST's
# body lines without the final ".".

import pytest

import corpus
from conftest import msn_map, run

CURL_TIMEOUT = 120


def curl(*args, timeout=CURL_TIMEOUT):
    return run(["curl", "--silent", "--show-error", "--max-time", str(timeout - 10), *args], timeout=timeout)


def curl_expected(msg):
    return b"\r\n" if msg.wire == b"" else msg.wire


def url(scheme, port, path=""):
    return f"{scheme}://localhost:{port}/{path}"


@pytest.mark.timeout(300)
@pytest.mark.parametrize("mode", ["plain", "stls", "pop3s"])
def test_curl_downloads_whole_corpus(full_env, mode):
    msgs = corpus.corpus(with_big=True)
    with full_env.server() as srv:
        by_msn = msn_map(srv, "demo", msgs)
        if mode == "plain":
            base, extra = url("pop3", srv.port), []
        elif mode == "stls":
            base, extra = url("pop3", srv.port), ["--ssl-reqd", "--cacert", full_env.cert]
        else:
            base, extra = url("pop3s", srv.tls_port), ["--cacert", full_env.cert]
        auth = ["--user", "demo:demo-secret"]
        r = curl(*extra, *auth, base)
        assert r.returncode == 0, r.stderr
        assert r.stdout == b"".join(b"%d %d\r\n" % (n, m.size) for n, m in sorted(by_msn.items()))
        for n, m in sorted(by_msn.items()):
            r = curl(*extra, *auth, base + str(n))
            assert r.returncode == 0, (m.name, r.stderr)
            assert r.stdout == curl_expected(m), (m.name, len(r.stdout), r.stdout[:200])
        assert len(full_env.files("demo")) == len(msgs)
    if mode != "plain":
        srv.wait_log(r'login: user="demo" rip=127\.0\.0\.1 mech=\S+ tls=yes')


def test_curl_stls_rejects_unknown_ca(small_env):
    with small_env.server() as srv:
        r = curl("--ssl-reqd", "--user", "demo:demo-secret", url("pop3", srv.port, "1"))
        assert r.returncode == 60, r  # CURLE_PEER_FAILED_VERIFICATION
        r = curl("--user", "demo:demo-secret", url("pop3s", srv.tls_port, "1"))
        assert r.returncode == 60, r


def test_curl_wrong_password(small_env):
    with small_env.server() as srv:
        r = curl("--user", "demo:wrong", url("pop3", srv.port, "1"))
        assert r.returncode == 67, r  # CURLE_LOGIN_DENIED
    assert 'auth failed: user="demo" rip=127.0.0.1' in srv.log()


@pytest.mark.parametrize("login_options", ["AUTH=PLAIN", "AUTH=LOGIN", "AUTH=+APOP", "AUTH=*"])
def test_curl_auth_mechanisms(small_env, login_options):
    msgs = corpus.small_messages()
    with small_env.server() as srv:
        by_msn = msn_map(srv, "demo", msgs)
        r = curl("--user", "demo:demo-secret", "--login-options", login_options, url("pop3", srv.port, "2"))
        assert r.returncode == 0, r.stderr
        assert r.stdout == curl_expected(by_msn[2])
    mech = {"AUTH=PLAIN": "PLAIN", "AUTH=LOGIN": "LOGIN", "AUTH=+APOP": "APOP", "AUTH=*": r"\S+"}[login_options]
    srv.wait_log(rf'login: user="demo" rip=127\.0\.0\.1 mech={mech} tls=no')


def test_curl_custom_commands(small_env):
    msgs = corpus.small_messages()
    with small_env.server() as srv:
        by_msn = msn_map(srv, "demo", msgs)
        base = url("pop3", srv.port)
        auth = ["--user", "demo:demo-secret"]
        r = curl(*auth, "--request", "UIDL", base)
        assert r.returncode == 0, r.stderr
        lines = r.stdout.split(b"\r\n")
        assert lines[-1] == b"" and len(lines) == 13
        assert [int(l.split(b" ")[0]) for l in lines[:-1]] == list(range(1, 13))
        n = next(k for k, m in by_msn.items() if m.name == "top_lines")
        r = curl(*auth, "--request", f"TOP {n} 2", base)
        assert r.returncode == 0, r.stderr
        assert r.stdout == corpus.top_form(by_msn[n].wire, 2)
        # DELE through curl: curl sends QUIT, so the message is removed.
        r = curl(*auth, "--request", "DELE", "--head", base + str(n))
        assert r.returncode == 0, r.stderr
        assert len(small_env.files("demo")) == 11
        remaining = msn_map(srv, "demo")
        assert by_msn[n].wire not in remaining.values()
