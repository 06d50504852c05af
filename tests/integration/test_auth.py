# Authentication: plaintext policy, USER/PASS, APOP, AUTH PLAIN/LOGIN, failures and their log lines.
import base64
import hashlib
import re
import time


from conftest import GREETING_APOP_RE, USERS

REFUSED = b"-ERR [AUTH] plaintext login refused on an unencrypted connection, use STLS\r\n"
INVALID = b"-ERR [AUTH] invalid user name or password\r\n"
APOP_NO_STAMP = b"-ERR APOP is not available on this connection: the greeting had no timestamp\r\n"
SYS_TEMP_AUTH = b"-ERR [SYS/TEMP] authentication temporarily unavailable\r\n"


def b64(s) -> str:
    if isinstance(s, str):
        s = s.encode()
    return base64.b64encode(s).decode()


def maildrop_ok(n_msgs):
    return re.compile(rb"\+OK maildrop has %d messages \(\d+ octets\)\r\n" % n_msgs)


def test_user_pass_loopback_default(small_env):
    with small_env.server() as srv, srv.connect() as c:
        c.greeting()
        assert c.cmd("USER alice") == b"+OK\r\n"
        assert maildrop_ok(3).fullmatch(c.cmd("PASS " + USERS["alice"][1]))
        assert c.cmd("QUIT") == b"+OK signing off\r\n"
    srv.wait_log(r'login: user="alice" rip=127\.0\.0\.1 mech=USER tls=no')
    srv.wait_log(r'session end: user="alice" rip=127\.0\.0\.1 .*reason=quit')


def test_plaintext_always(small_env):
    with small_env.server({"auth": {"plaintext": "always"}}) as srv, srv.connect() as c:
        c.greeting()
        c.login("bob")


def test_tls_only_refuses_plaintext_before_stls(small_env):
    with small_env.server({"auth": {"plaintext": "tls-only"}}) as srv:
        with srv.connect() as c:
            c.greeting()
            assert c.cmd("USER demo") == REFUSED
            assert c.cmd("PASS demo-secret") in (b"-ERR send USER first\r\n", REFUSED)
            assert c.cmd("AUTH PLAIN " + b64("\0demo\0demo-secret")) == REFUSED
            assert c.cmd("AUTH PLAIN") == REFUSED
            assert c.cmd("AUTH LOGIN") == REFUSED
            # AUTH with no argument lists no plaintext mechanism.
            assert c.cmd_multi("AUTH") == (b"+OK\r\n", b".\r\n")
            c.starttls(small_env.cert)
            assert c.cmd("USER demo") == b"+OK\r\n"
            assert maildrop_ok(12).fullmatch(c.cmd("PASS demo-secret"))
            assert c.cmd("QUIT") == b"+OK signing off\r\n"
        srv.wait_log(r'login: user="demo" rip=127\.0\.0\.1 mech=USER tls=yes')
        with srv.connect(tls=True, cafile=small_env.cert) as c:
            c.greeting()
            assert c.cmd("AUTH PLAIN " + b64("\0bob\0bob-secret")).startswith(b"+OK maildrop has 4 ")
        # APOP follows the same policy (conftest enables it): no timestamp where it would be
        # refused, the USER/PASS refusal if tried anyway, and no timestamp to digest after STLS.
        with srv.connect() as c:
            assert c.readline() == b"+OK poplar ready\r\n"
            assert c.cmd("APOP demo " + "0" * 32) == REFUSED
            c.starttls(small_env.cert)
            assert c.cmd("APOP demo " + "0" * 32) == APOP_NO_STAMP
        with srv.connect(tls=True, cafile=small_env.cert) as c:
            g = c.readline()
            assert maildrop_ok(12).fullmatch(c.cmd("APOP demo " + apop_digest(g, "demo-secret")))
        srv.wait_log(r'login: user="demo" rip=127\.0\.0\.1 mech=APOP tls=yes')


def test_bad_password_and_unknown_user(small_env):
    with small_env.server() as srv:
        with srv.connect() as c:
            c.greeting()
            assert c.cmd("USER demo") == b"+OK\r\n"
            assert c.cmd("PASS wrong") == INVALID
            assert c.cmd("USER nosuchuser") == b"+OK\r\n"
            assert c.cmd("PASS whatever") == INVALID
            # Still in AUTHORIZATION; the right password works.
            c.login("demo")
        srv.wait_log(r'auth failed: user="demo" rip=127\.0\.0\.1 mech=USER reason="[^"]*"')
        srv.wait_log(r'auth failed: user="nosuchuser" rip=127\.0\.0\.1 mech=USER reason="[^"]*"')
        # fail2ban's pattern
        assert len(re.findall(r"auth failed: .* rip=127\.0\.0\.1", srv.log())) == 2
        assert "wrong" not in srv.log() and "whatever" not in srv.log(), "passwords must not be logged"


def test_sha512_crypt_account(small_env):
    with small_env.server() as srv, srv.connect() as c:
        c.greeting()
        assert c.cmd("USER alice") == b"+OK\r\n"
        assert c.cmd("PASS alice pw with spaces ") == INVALID  # trailing space is part of it
        assert c.cmd("USER alice") == b"+OK\r\n"
        assert c.cmd("PASS alice pw with spaces").startswith(b"+OK maildrop has 3 ")


def test_max_failures_closes(small_env):
    with small_env.server() as srv, srv.connect() as c:
        c.greeting()
        for _ in range(2):
            assert c.cmd("USER demo") == b"+OK\r\n"
            assert c.cmd("PASS nope") == INVALID
        assert c.cmd("USER demo") == b"+OK\r\n"
        assert c.cmd("PASS nope") == INVALID
        c.assert_closed()


def test_max_failures_counts_every_mechanism(small_env):
    with small_env.server({"auth": {"max_failures": 2}}) as srv, srv.connect() as c:
        c.greeting()
        assert c.cmd("AUTH PLAIN " + b64("\0demo\0bad")) == INVALID
        assert c.cmd("APOP demo " + "0" * 32) == INVALID
        c.assert_closed()


def test_failure_delay(small_env):
    with small_env.server({"auth": {"failure_delay": "700ms"}}) as srv, srv.connect() as c:
        c.greeting()
        assert c.cmd("USER demo") == b"+OK\r\n"
        t = time.monotonic()
        assert c.cmd("PASS nope") == INVALID
        assert time.monotonic() - t >= 0.6
        assert c.cmd("USER nosuch") == b"+OK\r\n"
        t = time.monotonic()
        assert c.cmd("PASS nope") == INVALID
        assert time.monotonic() - t >= 0.6


def apop_digest(greeting: bytes, secret: str) -> str:
    stamp = GREETING_APOP_RE.match(greeting).group(1)
    return hashlib.md5(stamp + secret.encode()).hexdigest()


def test_apop(small_env):
    with small_env.server({"auth": {"failure_delay": "400ms"}}) as srv:
        with srv.connect() as c:
            g = c.readline()
            assert maildrop_ok(12).fullmatch(c.cmd("APOP demo " + apop_digest(g, "demo-secret")))
            assert c.cmd("STAT").startswith(b"+OK 12 ")
            assert c.cmd("QUIT") == b"+OK signing off\r\n"
        srv.wait_log(r'login: user="demo" rip=127\.0\.0\.1 mech=APOP tls=no')
        with srv.connect() as c:
            g = c.readline()
            assert c.cmd("APOP demo " + apop_digest(g, "wrong")) == INVALID
            # Upper-case hex is the same digest (RFC 1939 §7 shows lower case; be lenient or not,
            # but never accept a digest for another timestamp).
            assert c.cmd("APOP demo " + apop_digest(b"+OK poplar ready <0123456789abcdef@test.invalid>\r\n",
                                                    "demo-secret")) == INVALID
        with srv.connect() as c:
            g = c.readline()
            # A wrong digest, an account without a {PLAIN} secret (alice has a SHA512-CRYPT hash)
            # and an unknown user get the same reply after the same delay: no account enumeration.
            for user, secret in (("demo", "wrong"), ("alice", USERS["alice"][1]), ("nosuchuser", "x")):
                t = time.monotonic()
                assert c.cmd(f"APOP {user} " + apop_digest(g, secret)) == INVALID, user
                assert time.monotonic() - t >= 0.35, user
            c.assert_closed()  # auth.max_failures = 3
        # The log keeps the reason.
        srv.wait_log(r'auth failed: user="demo" rip=127\.0\.0\.1 mech=APOP reason="APOP digest mismatch"')
        srv.wait_log(r'auth failed: user="alice" rip=127\.0\.0\.1 mech=APOP reason="APOP needs a PLAIN secret"')
        srv.wait_log(r'auth failed: user="nosuchuser" rip=127\.0\.0\.1 mech=APOP reason="unknown user"')


def test_apop_is_off_by_default(small_env):
    with small_env.server({"auth": {"apop": None}}) as srv, srv.connect() as c:
        assert c.readline() == b"+OK poplar ready\r\n"
        assert c.cmd("APOP demo " + "0" * 32) == b"-ERR APOP is not enabled\r\n"


def test_apop_in_clear_overrides_tls_only(small_env):
    with small_env.server({"auth": {"plaintext": "tls-only", "apop_in_clear": True}}) as srv, srv.connect() as c:
        g = c.readline()
        assert GREETING_APOP_RE.match(g), g
        assert c.cmd("USER demo") == REFUSED  # only APOP is let through in clear
        assert maildrop_ok(12).fullmatch(c.cmd("APOP demo " + apop_digest(g, "demo-secret")))


def test_auth_plain_initial_response(small_env):
    with small_env.server() as srv:
        with srv.connect() as c:
            c.greeting()
            assert maildrop_ok(12).fullmatch(c.cmd("AUTH PLAIN " + b64("\0demo\0demo-secret")))
        with srv.connect() as c:
            c.greeting()
            # authzid equal to authcid is allowed; mechanism name is case-insensitive
            assert maildrop_ok(4).fullmatch(c.cmd("auth plain " + b64("bob\0bob\0bob-secret")))
        with srv.connect() as c:
            c.greeting()
            assert c.cmd("AUTH PLAIN " + b64("\0demo\0wrong")) == INVALID
            # acting as another user (authzid != authcid) must not log in as demo
            assert not c.cmd("AUTH PLAIN " + b64("demo\0bob\0bob-secret")).startswith(b"+OK maildrop has 12")
        srv.wait_log(r'auth failed: user="demo" rip=127\.0\.0\.1 mech=PLAIN')


def test_auth_plain_continuation(small_env):
    with small_env.server() as srv, srv.connect() as c:
        c.greeting()
        assert c.cmd("AUTH PLAIN") == b"+ \r\n"
        assert maildrop_ok(12).fullmatch(c.cmd(b64("\0demo\0demo-secret")))


def test_auth_login(small_env):
    with small_env.server() as srv, srv.connect() as c:
        c.greeting()
        ch = c.cmd("AUTH LOGIN")
        assert re.fullmatch(rb"\+ [A-Za-z0-9+/]*=*\r\n", ch), ch
        ch = c.cmd(b64("alice"))
        assert re.fullmatch(rb"\+ [A-Za-z0-9+/]*=*\r\n", ch), ch
        assert maildrop_ok(3).fullmatch(c.cmd(b64(USERS["alice"][1])))
        assert c.cmd("QUIT") == b"+OK signing off\r\n"
    srv.wait_log(r'login: user="alice" rip=127\.0\.0\.1 mech=LOGIN tls=no')


def test_auth_login_initial_response_and_failure(small_env):
    with small_env.server() as srv, srv.connect() as c:
        c.greeting()
        ch = c.cmd("AUTH LOGIN " + b64("demo"))
        assert re.fullmatch(rb"\+ [A-Za-z0-9+/]*=*\r\n", ch), ch
        assert c.cmd(b64("bad")) == INVALID
        c.login()


def test_auth_without_argument_lists_mechanisms(small_env):
    with small_env.server() as srv, srv.connect() as c:
        c.greeting()
        assert c.cmd_multi("AUTH") == (b"+OK\r\n", b"PLAIN\r\nLOGIN\r\n.\r\n")
        assert c.cmd("AUTH CRAM-MD5") == b"-ERR unsupported authentication mechanism\r\n"
        assert c.cmd("AUTH X") == b"-ERR unsupported authentication mechanism\r\n"


def test_auth_empty_initial_response(small_env):
    with small_env.server() as srv, srv.connect() as c:
        c.greeting()
        # "=" is an empty initial response (RFC 5034 §4): an empty PLAIN message cannot succeed.
        assert c.cmd("AUTH PLAIN =") == INVALID


def test_nul_in_user_name_is_not_an_injection(small_env):
    with small_env.server({"auth": {"max_failures": 10}}) as srv, srv.connect() as c:
        c.greeting()
        # USER/PASS is repacked as SASL PLAIN: NULs in USER or PASS must not shift the fields.
        for user, pw in ((b"x\x00demo", b"demo-secret"), (b"\x00demo", b"demo-secret"),
                         (b"demo", b"demo-secret\x00x"), (b"demo\x00", b"demo-secret"),
                         (b"demo\x00demo-secret", b"x")):
            assert c.cmd(b"USER " + user) == b"+OK\r\n"
            assert c.cmd(b"PASS " + pw) == INVALID, (user, pw)


def test_cached_login_sees_a_password_change(small_env):
    # A repeat login is answered from the verification cache, on the event loop, without the
    # worker pool; a password changed in the passwd-file must end that at once, for USER/PASS,
    # AUTH PLAIN and AUTH LOGIN alike.
    def login_twice(srv, password):
        for auth in ("user", "plain", "login", "user"):
            with srv.connect() as c:
                c.greeting()
                if auth == "user":
                    c.login("bob", password)
                elif auth == "plain":
                    assert maildrop_ok(4).fullmatch(c.cmd("AUTH PLAIN " + b64(f"\0bob\0{password}")))
                else:
                    assert c.cmd("AUTH LOGIN " + b64("bob")) == b"+ " + b64("Password:").encode() + b"\r\n"
                    assert maildrop_ok(4).fullmatch(c.cmd(b64(password)))
                assert c.cmd("QUIT") == b"+OK signing off\r\n"

    def refused(srv, password):
        with srv.connect() as c:
            c.greeting()
            assert c.cmd("USER bob") == b"+OK\r\n"
            assert c.cmd("PASS " + password) == INVALID
            assert c.cmd("AUTH PLAIN " + b64(f"\0bob\0{password}")) == INVALID
            assert c.cmd("AUTH LOGIN " + b64("bob")).startswith(b"+ ")
            assert c.cmd(b64(password)) == INVALID

    with small_env.server() as srv:
        login_twice(srv, USERS["bob"][1])  # verified once, then from the cache
        small_env.write_passwd({"demo": "{PLAIN}" + USERS["demo"][1], "bob": "{PLAIN}bob-changed"})
        refused(srv, USERS["bob"][1])
        login_twice(srv, "bob-changed")
        small_env.write_passwd({"demo": "{PLAIN}" + USERS["demo"][1]})  # bob removed
        refused(srv, "bob-changed")
    srv.wait_log(r'auth failed: user="bob" rip=127\.0\.0\.1 mech=USER reason="password mismatch"')
    srv.wait_log(r'auth failed: user="bob" rip=127\.0\.0\.1 mech=PLAIN reason="unknown user"')


def test_passwd_file_becomes_unreadable(small_env):
    import os
    import shutil
    with small_env.server() as srv, srv.connect() as c:
        c.greeting()
        saved = small_env.passwd + ".saved"
        os.rename(small_env.passwd, saved)
        os.mkdir(small_env.passwd)  # reading it now fails with EISDIR
        try:
            # docs/protocol.md: user database unreadable -> SYS/TEMP, for known and unknown users.
            assert c.cmd("USER nosuchuser") == b"+OK\r\n"
            assert c.cmd("PASS x") == SYS_TEMP_AUTH
            assert c.cmd("USER demo") == b"+OK\r\n"
            assert c.cmd("PASS demo-secret") == SYS_TEMP_AUTH
            shutil.rmtree(small_env.passwd)  # now missing altogether
            assert c.cmd("USER demo") == b"+OK\r\n"
            assert c.cmd("PASS demo-secret") == SYS_TEMP_AUTH
            # A temporary failure is not the client's fault: it does not use up max_failures.
            assert c.cmd("NOOP") == b"-ERR command not valid in this state\r\n"
        finally:
            if os.path.isdir(small_env.passwd):
                shutil.rmtree(small_env.passwd)
            os.rename(saved, small_env.passwd)
        # Fixed: logins work again on the same connection.
        c.login("demo")


def test_database_outage_is_not_logged_as_client_auth_failure(small_env):
    # fail2ban bans on "auth failed: .* rip=<HOST>". A passwd file that cannot be read is the
    # server's fault (-ERR [SYS/TEMP], not counted against max_failures); logging it as an
    # auth failure would ban every client that polls during the outage.
    import os
    import shutil
    with small_env.server() as srv, srv.connect() as c:
        c.greeting()
        saved = small_env.passwd + ".saved"
        os.rename(small_env.passwd, saved)
        os.mkdir(small_env.passwd)
        try:
            assert c.cmd("USER demo") == b"+OK\r\n"
            assert c.cmd("PASS demo-secret") == SYS_TEMP_AUTH
        finally:
            shutil.rmtree(small_env.passwd)
            os.rename(saved, small_env.passwd)
        c.login("demo")
        assert c.cmd("QUIT") == b"+OK signing off\r\n"
    banned = [l for l in srv.log().splitlines() if re.search(r"auth failed: .* rip=127\.0\.0\.1", l)]
    assert banned == [], "fail2ban would count this outage against the client:\n" + "\n".join(banned)


def test_log_lines_cannot_be_forged_by_user_names(small_env):
    with small_env.server({"auth": {"max_failures": 10}}) as srv:
        with srv.connect() as c:
            c.greeting()
            evil = ['x" rip=10.9.8.7 mech=PLAIN reason="y', "a\x1b[2Jb", "z\x00 rip=10.9.8.7", "\xff\xfe"]
            for name in evil:
                raw = name.encode("latin-1")
                assert c.cmd(b"AUTH PLAIN " + base64.b64encode(b"\0" + raw + b"\0pw")) == INVALID
        srv.wait_log(r"auth failed: .*")
        lines = [l for l in srv.log().splitlines() if "auth failed:" in l]
        assert len(lines) == len(evil)
        for l in lines:
            # fail2ban's failregex "auth failed: .* rip=<HOST>" must find the real peer only.
            hosts = re.findall(r"auth failed: .* rip=(\S+)", l)
            assert hosts == ["127.0.0.1"], l
            # the quoted field cannot be closed early: a '"' inside it is escaped
            assert re.fullmatch(r'.* auth failed: user="(?:[^"\\]|\\.)*" rip=127\.0\.0\.1 mech=PLAIN reason="[^"]*"', l), l
            assert not re.search(r"[\x00-\x08\x0b-\x1f\x7f]", l), f"raw control bytes in log: {l!r}"
