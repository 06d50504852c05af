# The command line: `poplar check` on good and bad configs, `serve` refusing a bad config,
# `poplar pw` producing hashes the server accepts, and IPv6 / multiple listeners.
import re
import socket

import pytest

from conftest import poplar_bin, require_binary, run


def check(env, overrides=None, text=None, with_tls=True):
    require_binary()
    path = env.write_config(overrides, with_tls=with_tls, text=text)
    return run([poplar_bin(), "check", "--config", path], timeout=30)


def test_check_good_config(small_env):
    r = check(small_env)
    assert r.returncode == 0, r.stderr.decode(errors="replace")


def test_check_good_config_without_tls(small_env):
    r = check(small_env, with_tls=False)
    assert r.returncode == 0, r.stderr.decode(errors="replace")


BAD_CONFIGS = [
    # (overrides, word the message must name)
    ({"server": {"bogus_key": 1}}, "bogus_key"),
    ({"bogus_section": {"x": 1}}, "bogus_section"),
    ({"auth": {"plaintext": "sometimes"}}, "plaintext"),
    ({"auth": {"passwd_file": "no-such-file.passwd"}}, "passwd_file"),
    ({"listen": {"pop3": ["not-an-address"]}}, "pop3"),
    ({"listen": {"pop3": ["127.0.0.1:99999"]}}, "pop3"),
    ({"listen": {"pop3s": ["[::1:0"]}}, "pop3s"),
    ({"storage": {"locking": "maybe"}}, "locking"),
    ({"auth": {"failure_delay": "soon"}}, "failure_delay"),
    ({"pop3": {"login_timeout": "-1s"}}, "login_timeout"),
    ({"server": {"threads": "two"}}, "threads"),
    ({"tls": {"certificate": "missing.pem"}}, "certificate"),
    ({"tls": {"min_version": "1.0"}}, "min_version"),
    ({"auth": {"apop": "yes"}}, "apop"),
]


@pytest.mark.parametrize("overrides,key", BAD_CONFIGS, ids=[k for _, k in BAD_CONFIGS])
def test_check_bad_config_names_key(small_env, overrides, key):
    r = check(small_env, overrides)
    err = r.stderr.decode(errors="replace")
    assert r.returncode == 1, (r.returncode, err)
    assert key in err, err


def test_check_syntax_error(small_env):
    r = check(small_env, text="[server\nhostname = \n")
    assert r.returncode == 1
    assert r.stderr.strip(), "a message is expected"


def test_check_missing_file(small_env):
    require_binary()
    r = run([poplar_bin(), "check", "--config", small_env.root + "/nope.toml"], timeout=30)
    assert r.returncode != 0
    assert b"nope.toml" in r.stderr


def test_tls_listener_without_tls_section(small_env):
    r = check(small_env, {"tls": None})
    err = r.stderr.decode(errors="replace")
    assert r.returncode == 1, err
    assert "pop3s" in err or "tls" in err, err


@pytest.mark.parametrize("overrides,key", [
    ({"auth": {"plaintext": "sometimes"}}, "plaintext"),
    ({"server": {"bogus_key": 1}}, "bogus_key"),
])
def test_serve_refuses_invalid_config(small_env, overrides, key):
    require_binary()
    path = small_env.write_config(overrides)
    c = run([poplar_bin(), "check", "--config", path], timeout=30)
    s = run([poplar_bin(), "serve", "--config", path], timeout=30)
    assert s.returncode != 0
    assert key in s.stderr.decode(errors="replace")
    # the same message as check
    assert c.stderr.decode().strip().splitlines()[-1] in s.stderr.decode()


def test_serve_refuses_port_in_use(small_env):
    busy = socket.socket()
    busy.bind(("127.0.0.1", 0))
    busy.listen(1)
    port = busy.getsockname()[1]
    try:
        path = small_env.write_config({"listen": {"pop3": [f"127.0.0.1:{port}"]}})
        s = run([poplar_bin(), "serve", "--config", path], timeout=30)
        assert s.returncode != 0
        assert str(port) in s.stderr.decode(errors="replace")
    finally:
        busy.close()


@pytest.mark.parametrize("scheme", ["SHA512-CRYPT", "SHA256-CRYPT", "BLF-CRYPT", "ARGON2ID", "PLAIN"])
def test_pw_hash_logs_in(small_env, scheme):
    require_binary()
    r = run([poplar_bin(), "pw", "--scheme", scheme, "--password-stdin"], input=b"h4sh me\n", timeout=60)
    assert r.returncode == 0, r.stderr
    line = r.stdout.decode().strip()
    assert line.startswith("{" + scheme + "}"), line
    assert "\n" not in line and "h4sh me" not in line or scheme == "PLAIN"
    small_env.write_passwd({"demo": line})
    with small_env.server() as srv, srv.connect() as c:
        c.greeting()
        assert c.cmd("USER demo") == b"+OK\r\n"
        assert c.cmd("PASS h4sh me").startswith(b"+OK maildrop has 12 ")
    with small_env.server() as srv, srv.connect() as c:
        c.greeting()
        assert c.cmd("USER demo") == b"+OK\r\n"
        assert c.cmd("PASS h4sh mE") == b"-ERR [AUTH] invalid user name or password\r\n"


def test_ipv6_and_multiple_listeners(small_env):
    if not socket.has_ipv6:
        pytest.skip("no IPv6")
    try:
        s = socket.socket(socket.AF_INET6)
        s.bind(("::1", 0))
        s.close()
    except OSError:
        pytest.skip("::1 not available")
    with small_env.server({"listen": {"pop3": ["127.0.0.1:0", "[::1]:0"], "pop3s": ["[::1]:0"]}}) as srv:
        assert len(srv.ports["pop3"]) == 2 and len(srv.ports["pop3s"]) == 1
        assert any(h == "::1" for h, _ in srv.ports["pop3"])
        assert re.search(r"listening: pop3 \[::1\]:\d+", srv.log())
        for host, port in srv.ports["pop3"]:
            with socket.create_connection((host, port), timeout=10) as s:
                s.settimeout(10)
                assert s.recv(100).startswith(b"+OK poplar ready")
        from conftest import RawClient
        host, port = srv.ports["pop3s"][0]
        c = RawClient(host, port, implicit_tls=True, cafile=small_env.cert)
        with c:
            c.greeting()
            c.login()  # ::1 counts as loopback for the plaintext policy
        srv.wait_log(r'login: user="demo" rip=::1 mech=USER tls=yes')


MORE_BAD_CONFIGS = [
    ({"listen": {"pop3": ["localhost:0"]}}, "pop3"),          # host names are refused
    ({"tls": {"ciphers": "NO-SUCH-CIPHER"}}, "ciphers"),
    ({"pop3": {"expire": "forever"}}, "expire"),
    ({"pop3": {"expire": "123456"}}, "expire"),
    ({"pop3": {"max_bad_commands": 0}}, "max_bad_commands"),
    ({"server": {"max_connections": 0}}, "max_connections"),
    ({"storage": {"maildir": "mail/%x"}}, "maildir"),
]


@pytest.mark.parametrize("overrides,key", MORE_BAD_CONFIGS, ids=[k for _, k in MORE_BAD_CONFIGS])
def test_check_more_bad_configs(small_env, overrides, key):
    r = check(small_env, overrides)
    err = r.stderr.decode(errors="replace")
    assert r.returncode == 1, (r.returncode, err)
    assert key in err, err


def test_check_key_does_not_match_certificate(small_env, tmp_path):
    other_key = tmp_path / "other.key"
    r = run(["openssl", "genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048",
             "-out", str(other_key)])
    assert r.returncode == 0
    r = check(small_env, {"tls": {"private_key": str(other_key)}})
    err = r.stderr.decode(errors="replace")
    assert r.returncode == 1, err
    assert "private_key" in err, err


def test_sighup_does_not_stop_the_server(small_env):
    import signal
    with small_env.server() as srv:
        with srv.connect() as c:
            c.greeting()
            c.login()
            srv.proc.send_signal(signal.SIGHUP)
            import time
            time.sleep(0.3)
            assert srv.alive()
            assert c.cmd("STAT").startswith(b"+OK 12 ")
            assert c.cmd("QUIT") == b"+OK signing off\r\n"
