"""`poplar deliver`, the local delivery agent: sysexits(3) exit codes with one line on standard
error that starts with the RFC 3463 code Postfix's pipe(8) uses, trace headers, what is stored
and served back byte for byte, quota, size, bad input, root dropping to server.user, and kill -9
during deliveries (docs/delivery.md)."""

import os
import poplib
import pwd
import random
import re
import signal
import subprocess
import time

import pytest

from conftest import HOST, IO_TIMEOUT, USERS, require_binary

poplib._MAXLINE = 1 << 20

EX_OK, EX_USAGE, EX_NOUSER, EX_CANTCREAT, EX_TEMPFAIL, EX_NOPERM, EX_CONFIG = 0, 64, 67, 73, 75, 77, 78


def deliver(env, args, data=b"Subject: x\n\nbody\n", **kw):
    r = subprocess.run([require_binary(), "deliver", "--config", env.config_path, *args], input=data,
                       capture_output=True, timeout=60, **kw)
    return r.returncode, r.stderr.decode(errors="replace")


def served(srv, user):
    c = poplib.POP3(HOST, srv.port, timeout=IO_TIMEOUT)
    c.user(user)
    c.pass_(USERS[user][1])
    out = [b"".join(l + b"\r\n" for l in c.retr(n)[1]) for n in range(1, c.stat()[0] + 1)]
    c.quit()
    return out


def crlf_form(raw):
    out = re.sub(rb"(?<!\r)\n", b"\r\n", raw)
    if out and not out.endswith(b"\r\n"):
        out += b"\r\n"
    return out


def test_a_message_is_stored_with_trace_headers_and_served_back_exactly(env):
    env.write_config()
    messages = [
        b"Subject: lf\n\nplain\nlines\n",
        b"Subject: crlf\r\n\r\nlines\r\n",
        b"Subject: no final newline\n\nlast line",
        b"Subject: nul and 8bit\n\n\x00\xff\xfe\n" + b"q" * 3000 + b"\n",
        b"Subject: dots\n\n.\n..\n.x\n",
        b"",
    ]
    for m in messages:
        assert deliver(env, ["-u", "demo", "-f", "sender@example.net"], m) == (EX_OK, "")
    with env.server() as srv:
        got = sorted(served(srv, "demo"))
    trace = b"Return-Path: <sender@example.net>\r\nDelivered-To: demo\r\n"
    assert got == sorted(crlf_form(trace + m) for m in messages)
    # On disk: LF line ends; the message without a final newline stays without one.
    stored = [open(os.path.join(env.maildir("demo"), f), "rb").read() for f in env.files("demo")]
    assert b"Return-Path: <sender@example.net>\nDelivered-To: demo\nSubject: no final newline\n\nlast line" in stored
    for f in env.files("demo"):
        assert f.startswith("new/") and re.search(r",S=\d+,W=\d+$", f), f


def test_options_for_the_trace_headers(env):
    env.write_config()
    assert deliver(env, ["-u", "demo", "-a", "Demo+List@Example.ORG"], b"Subject: a\n\nx\n") == (EX_OK, "")
    assert deliver(env, ["-u", "bob", "--no-trace-headers"], b"Subject: b\n\nx\n") == (EX_OK, "")
    with env.server() as srv:
        assert served(srv, "demo") == [b"Return-Path: <>\r\nDelivered-To: Demo+List@Example.ORG\r\nSubject: a\r\n\r\nx\r\n"]
        assert served(srv, "bob") == [b"Subject: b\r\n\r\nx\r\n"]


def test_an_unknown_user_is_67_with_5_1_1(env):
    env.write_config()
    assert deliver(env, ["-u", "nobody@example.org"]) == (EX_NOUSER, "5.1.1 poplar deliver: nobody@example.org: no such user\n")
    assert not os.path.exists(os.path.join(env.root, "mail", "nobody@example.org"))


def test_the_recipient_delimiter_finds_the_user(env):
    env.write_config({"delivery": {"recipient_delimiter": "+"}})
    assert deliver(env, ["-u", "demo+lists"]) == (EX_OK, "")
    assert len(env.files("demo")) == 1


def test_over_quota_bounces_or_defers_as_configured(env):
    env.write_passwd({"demo": "{PLAIN}" + USERS["demo"][1] + "::::::quota_rule=*:messages=1",
                      "bob": "{PLAIN}" + USERS["bob"][1]})
    env.write_config()
    assert deliver(env, ["-u", "demo"]) == (EX_OK, "")
    assert deliver(env, ["-u", "demo"]) == (EX_NOPERM, "5.2.2 poplar deliver: demo: mailbox full\n")
    env.write_config({"delivery": {"quota_action": "defer"}})
    assert deliver(env, ["-u", "demo"]) == (EX_TEMPFAIL, "4.2.2 poplar deliver: demo: mailbox full\n")
    assert len(env.files("demo")) == 1
    assert deliver(env, ["-u", "bob"]) == (EX_OK, "")  # no quota


def test_a_message_over_the_size_limit_is_refused_whole(env):
    env.write_config({"delivery": {"max_message_size": "1k"}})
    rc, err = deliver(env, ["-u", "demo"], b"Subject: big\r\n\r\n" + b"x\r\n" * 600)
    assert (rc, err) == (EX_CANTCREAT, "5.3.4 poplar deliver: message too large (more than "
                                       "delivery.max_message_size, 1024 octets)\n")
    assert env.files("demo") == []


def test_bad_command_lines_and_configurations(env):
    env.write_config()
    rc, err = deliver(env, [])
    assert rc == EX_USAGE and "--user is required" in err
    rc, err = deliver(env, ["-u", "demo", "--bogus"])
    assert rc == EX_USAGE
    os.rename(env.config_path, env.config_path + ".gone")
    rc, err = deliver(env, ["-u", "demo"])
    assert rc == EX_CONFIG and err.startswith("4.3.5 poplar deliver: ") and "cannot" in err, err
    env.write_config({"delivery": {"quota_action": "sometimes"}})
    rc, err = deliver(env, ["-u", "demo"])
    assert rc == EX_CONFIG
    assert err.startswith('4.3.5 poplar deliver: invalid configuration: ') and 'delivery.quota_action: expected "bounce" or "defer"' in err
    assert err.count("\n") == 1
    env.write_config()
    os.chmod(env.root, 0o755)
    with open(env.passwd, "a") as f:
        f.write("broken line\n")
    rc, err = deliver(env, ["-u", "demo"])
    assert rc == EX_TEMPFAIL and err.startswith("4.3.0 poplar deliver: user database: "), err


def test_a_storage_failure_is_temporary_or_permanent_never_silent(env):
    env.write_config()
    assert deliver(env, ["-u", "demo"]) == (EX_OK, "")
    tmp = os.path.join(env.maildir("demo"), "tmp")
    os.rmdir(tmp)
    with open(tmp, "w") as f:
        f.write("not a directory")
    rc, err = deliver(env, ["-u", "demo"])
    assert rc == EX_CANTCREAT and err.startswith("5.3.0 poplar deliver: demo: cannot create "), err
    assert len(env.files("demo")) == 1


def test_as_root_it_becomes_server_user_and_the_mail_is_theirs(open_env):
    if os.geteuid() != 0:
        pytest.skip("needs root")
    env = open_env
    env.write_config({"server": {"user": "nobody", "allow_root": False}})
    os.makedirs(os.path.join(env.root, "mail"), exist_ok=True)
    nobody = pwd.getpwnam("nobody")
    os.chown(os.path.join(env.root, "mail"), nobody.pw_uid, nobody.pw_gid)
    assert deliver(env, ["-u", "demo"]) == (EX_OK, "")
    f = os.path.join(env.maildir("demo"), env.files("demo")[0])
    assert os.stat(f).st_uid == nobody.pw_uid
    # Without server.user (and without allow_root) it refuses to write root's mail.
    env.write_config({"server": {"allow_root": False}})
    rc, err = deliver(env, ["-u", "demo"])
    assert rc == EX_CONFIG and "started as root without server.user" in err


def test_kill_minus_nine_mid_delivery_leaves_the_whole_message_or_nothing(env):
    env.write_config()
    rng = random.Random(3)
    body = b"Subject: big\n\n" + b"".join(b"line %06d of a big message to kill mid-write\n" % i for i in range(200000))
    reported = 0
    for attempt in range(12):
        p = subprocess.Popen([require_binary(), "deliver", "--config", env.config_path, "-u", "demo"],
                             stdin=subprocess.PIPE, stderr=subprocess.PIPE)
        try:
            p.stdin.write(body)
            p.stdin.close()
        except BrokenPipeError:
            pass
        time.sleep(rng.uniform(0, 0.05))
        p.send_signal(signal.SIGKILL)
        rc = p.wait(timeout=30)
        if rc == 0:
            reported += 1
        for f in env.files("demo"):
            data = open(os.path.join(env.maildir("demo"), f), "rb").read()
            assert data == b"Return-Path: <>\nDelivered-To: demo\n" + body, f"{f}: {len(data)} octets, not whole"
    assert len(env.files("demo")) >= reported
