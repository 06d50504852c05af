# Per-account controls from the passwd-file's extra fields (field 8, Dovecot's syntax): nologin
# with and without reason=, allow_nets, require_tls. Each refusal comes after the right password,
# with the reply and the failure delay of a wrong one (only nologin's reason= is shown, as
# Dovecot shows it), and one `auth failed` line with the reason. Via USER/PASS and AUTH PLAIN.
import base64
import subprocess
import time

from conftest import USERS, poplar_bin

FAILED = b"-ERR [AUTH] invalid user name or password\r\n"
DELAY = 0.3


def b64(s):
    return base64.b64encode(s.encode()).decode()


def with_extra(env, **extra):
    """The test passwd-file with extra fields for some users: 7 more fields, then field 8."""
    entries = {"demo": "{PLAIN}" + USERS["demo"][1], "bob": "{PLAIN}" + USERS["bob"][1],
               "carol": "{PLAIN}" + USERS["carol"][1]}
    for user, fields in extra.items():
        entries[user] += ":" * 6 + fields
    env.write_passwd(entries)


def user_pass(c, user):
    assert c.cmd(f"USER {user}") == b"+OK\r\n"
    t = time.monotonic()
    reply = c.cmd(f"PASS {USERS[user][1]}")
    return reply, time.monotonic() - t


def auth_plain(c, user):
    t = time.monotonic()
    reply = c.cmd("AUTH PLAIN " + b64(f"\0{user}\0{USERS[user][1]}"))
    return reply, time.monotonic() - t


def test_nologin_refuses_the_right_password_after_the_failure_delay(small_env):
    with_extra(small_env, bob="nologin", carol="nologin reason=mailbox_moved,_see_https://example.com/moved")
    with small_env.server({"auth": {"failure_delay": f"{int(DELAY * 1000)}ms"}}) as srv:
        for login in (user_pass, auth_plain):
            with srv.connect() as c:
                c.greeting()
                reply, took = login(c, "bob")
                assert reply == FAILED
                assert took >= DELAY - 0.02, took
                reply, took = login(c, "carol")
                assert reply == b"-ERR [AUTH] mailbox moved, see https://example.com/moved\r\n"
                assert took >= DELAY - 0.02, took
        srv.wait_log(r'auth failed: user="bob" rip=127\.0\.0\.1 mech=USER reason="account disabled \(nologin\)"')
        srv.wait_log(r'auth failed: user="carol" rip=127\.0\.0\.1 mech=PLAIN reason="account disabled \(nologin\)"')
        assert 'login: user="bob"' not in srv.log()
        # Other accounts are not affected.
        with srv.connect() as c:
            c.greeting()
            c.login("demo")


def test_allow_nets_admits_only_the_listed_networks(small_env):
    with_extra(small_env, bob="allow_nets=127.0.0.1/32,::1", carol="userdb_mail=maildir:~/Maildir allow_nets=127.0.0.0/8")
    with small_env.server() as srv:
        for login in (user_pass, auth_plain):
            with srv.connect() as c:
                c.greeting()
                assert login(c, "bob")[0].startswith(b"+OK maildrop has 4 ")
            with srv.connect(source="127.0.0.2") as c:
                c.greeting()
                assert login(c, "bob")[0] == FAILED
                assert login(c, "carol")[0].startswith(b"+OK maildrop has ")  # colons in field 8 are fine
        srv.wait_log(r'auth failed: user="bob" rip=127\.0\.0\.2 mech=USER reason="client address not in allow_nets"')
        srv.wait_log(r'auth failed: user="bob" rip=127\.0\.0\.2 mech=PLAIN reason="client address not in allow_nets"')


def test_require_tls_refuses_plaintext_and_accepts_after_stls(small_env):
    with_extra(small_env, bob="require_tls")
    with small_env.server() as srv:
        for login in (user_pass, auth_plain):
            with srv.connect() as c:
                c.greeting()
                assert login(c, "bob")[0] == FAILED  # loopback allows plaintext, the account does not
                c.starttls(small_env.cert)
                assert login(c, "bob")[0].startswith(b"+OK maildrop has 4 ")
        srv.wait_log(r'auth failed: user="bob" rip=127\.0\.0\.1 mech=USER reason="TLS required for this account '
                     r'\(require_tls\)"')
        with srv.connect(tls=True, cafile=small_env.cert) as c:
            c.greeting()
            assert auth_plain(c, "bob")[0].startswith(b"+OK maildrop has 4 ")


def test_bad_extra_fields_fail_check_with_file_and_line(small_env):
    with_extra(small_env, bob="allow_nets=10.0.0.0/8,192.0.2.1/40")
    cfg = small_env.write_config()
    r = subprocess.run([poplar_bin(), "check", "--config", cfg], capture_output=True, text=True, timeout=30)
    assert r.returncode != 0
    assert (f"{small_env.passwd}:2: extra fields of 'bob': allow_nets: \"192.0.2.1/40\": the prefix length must "
            f"be 0-32") in r.stderr, r.stderr
