"""End to end with a real Postfix delivering to poplar (issue 12, docs/delivery.md): a private
Postfix instance (test_postfix.py's) receives messages over SMTP from smtplib and hands them to
poplar, first over LMTP (dist/postfix/lmtp.cf: virtual_transport = lmtp:unix:...) and then
through `poplar deliver` as a pipe(8) transport (dist/postfix/pipe.cf and master-pipe.cf), both
appended verbatim. A POP3 client then downloads exactly the bytes sent, apart from the trace
headers added on the way; a message over quota is bounced or deferred as configured, and one to
a user poplar does not know is bounced.

Root only (Postfix's master starts as root). poplar serve runs as root only to bind, then as
the mail user, like the documented setup; so does `poplar deliver` (pipe's user=)."""
import os
import pwd
import re
import shlex
import shutil
import time

import pytest

from conftest import HOST, PoplarServer, require_binary
from test_postfix import (BASE_MAIN_CF, DELIVERY_TIMEOUT, MAIL_USER, MASTER_CF, PASSWORDS, REPO, PostfixInstance,
                          added_headers, as_delivered, corpus, message, message_id, pop_fetch, pop_login, send)

LMTP_CF = os.path.join(REPO, "dist", "postfix", "lmtp.cf")
PIPE_CF = os.path.join(REPO, "dist", "postfix", "pipe.cf")
MASTER_PIPE_CF = os.path.join(REPO, "dist", "postfix", "master-pipe.cf")
VMAILBOX = os.path.join(REPO, "dist", "postfix", "vmailbox")

# In the map (Postfix accepts it over SMTP) but not in poplar's passwd-file: poplar must refuse.
GONE = "carol@example.com"
# One message of quota: the second message to bob does not fit.
QUOTA_USER = "bob@example.com"


class DeliveringPostfix(PostfixInstance):
    """The private Postfix with a shipped snippet appended instead of main.cf."""

    def configure_with(self, snippet, master_extra=""):
        with open(os.path.join(self.conf, "main.cf"), "w") as f:
            f.write(BASE_MAIN_CF.format(root=self.root))
            f.write(open(snippet).read())
        with open(os.path.join(self.conf, "master.cf"), "w") as f:
            f.write(MASTER_CF.format(port=self.port))
            f.write("lmtp            unix  -       -       n       -       -       lmtp\n")
            f.write(master_extra)
        vmailbox = os.path.join(self.conf, "vmailbox")
        shutil.copyfile(VMAILBOX, vmailbox)
        with open(vmailbox, "a") as f:
            f.write(f"{GONE}    example.com/carol/\n")
        self.postconf(f"virtual_mailbox_maps = hash:{vmailbox}")
        self.cmd(["postmap", vmailbox])
        return self


@pytest.fixture
def delivering_postfix(monkeypatch):
    if os.geteuid() != 0:
        pytest.skip("a private Postfix master must be started as root")
    monkeypatch.setenv("PATH", os.environ.get("PATH", "") + ":/usr/sbin:/sbin")
    if shutil.which("postfix") is None:
        pytest.fail("postfix is not installed (scripts/install-deps installs it)")
    p = DeliveringPostfix()
    try:
        yield p
    finally:
        p.cleanup()


def poplar_files(env, p, quota_action="bounce"):
    """poplar's side: its config, a passwd-file with bob on a one-message quota, all readable by
    the mail user (poplar serve's server.user and pipe's user=)."""
    mail = pwd.getpwnam(MAIL_USER)
    env.write_passwd({a: "{PLAIN}" + pw + ("::::::userdb_quota_rule=*:messages=1" if a == QUOTA_USER else "")
                      for a, pw in PASSWORDS.items()})
    os.chown(env.passwd, mail.pw_uid, mail.pw_gid)
    mail_root = os.path.join(env.root, "mail")
    os.makedirs(mail_root, exist_ok=True)
    os.chown(mail_root, mail.pw_uid, mail.pw_gid)
    socket_path = os.path.join(p.root, "lmtp.sock")
    cfg = env.write_config({
        "server": {"user": MAIL_USER, "allow_root": False, "state_directory": ""},
        "listen": {"lmtp": [socket_path]},
        "lmtp": {"socket_user": "postfix", "socket_mode": "0600"},
        "storage": {"maildir": mail_root + "/%u"},
        "control": {"socket": ""},
        "delivery": {"quota_action": quota_action},
    })
    os.chmod(cfg, 0o644)
    return socket_path


def maildir_new(env, address):
    d = os.path.join(env.root, "mail", address, "new")
    return sorted(os.listdir(d)) if os.path.isdir(d) else []


def wait_for_files(env, address, count, p):
    deadline = time.monotonic() + DELIVERY_TIMEOUT
    while len(maildir_new(env, address)) < count:
        assert time.monotonic() < deadline, (f"{address}: {len(maildir_new(env, address))} of {count} messages\n"
                                             f"{p.queue()}\n{p.log()[-6000:]}")
        time.sleep(0.1)
    assert len(maildir_new(env, address)) == count


def wait_log(p, pattern, what):
    deadline = time.monotonic() + DELIVERY_TIMEOUT
    while not re.search(pattern, p.log()):
        assert time.monotonic() < deadline, f"no {what} ({pattern!r}) in the Postfix log:\n{p.log()[-6000:]}"
        time.sleep(0.1)


def check_downloads(env, srv, expected):
    """Every message each user was sent, byte for byte after the trace headers, and nothing more."""
    for a, want in expected.items():
        c = pop_login(srv, a)
        got = pop_fetch(c)
        c.quit()
        assert sorted(message_id(w) for _, w in got.values()) == sorted(want), a
        for _, (_, wire) in got.items():
            name, original = want[message_id(wire)]
            names, prefix = added_headers(wire, original, a)
            # poplar's Return-Path and Delivered-To first, then what Postfix's smtpd added.
            assert prefix.startswith(b"Return-Path: <sender@test.invalid>\r\nDelivered-To: " + a.encode() + b"\r\n"), prefix
            assert names.count("Return-Path") == 1 and names.count("Delivered-To") == 1, names
            assert set(names) <= {"Return-Path", "Delivered-To", "Received"}, names


def keep_the_one_stored(env, expected):
    """bob's quota let one of his messages in (whichever Postfix delivered first)."""
    names = maildir_new(env, QUOTA_USER)
    assert len(names) == 1, names
    data = open(os.path.join(env.root, "mail", QUOTA_USER, "new", names[0]), "rb").read()
    mid = re.search(rb"^Message-ID: (<[^>]+>)$", data, re.M | re.I).group(1).decode()
    assert mid in expected[QUOTA_USER], mid
    expected[QUOTA_USER] = {mid: expected[QUOTA_USER][mid]}


def run_delivery(env, p, quota_action):
    """Sends the corpus, a message over quota and one to GONE; returns what each user must get."""
    p.start()
    msgs = corpus()
    for _, rcpts, data in msgs:
        send(p, "sender@test.invalid", rcpts, data)
    expected = {a: {} for a in PASSWORDS}
    for name, rcpts, data in msgs:
        for a in rcpts:
            expected[a][message_id(as_delivered(data))] = (name, as_delivered(data))
    # bob's quota is one message; the corpus sends him three, so each after the first is refused.
    for a, want in expected.items():
        if a != QUOTA_USER:
            wait_for_files(env, a, len(want), p)
    wait_for_files(env, QUOTA_USER, 1, p)
    # To a user poplar does not know.
    send(p, "sender@test.invalid", [GONE], message(20, GONE, "gone", b"Nobody reads this.\r\n"))
    return expected


@pytest.mark.timeout(300)
def test_postfix_delivers_over_lmtp_and_poplar_serves_byte_for_byte(delivering_postfix, open_env):
    p = delivering_postfix.configure_with(LMTP_CF)
    env = open_env
    socket_path = poplar_files(env, p)
    # The shipped snippet, pointed at this test's socket.
    p.postconf(f"virtual_transport = lmtp:unix:{socket_path}")
    srv = PoplarServer(env.config_path)
    with srv:
        st = os.stat(socket_path)
        assert st.st_uid == pwd.getpwnam("postfix").pw_uid and (st.st_mode & 0o777) == 0o600
        expected = run_delivery(env, p, "bounce")
        wait_log(p, rf"to=<{re.escape(GONE)}>.*status=bounced \(host \S+ said: 550 5\.1\.1 <{re.escape(GONE)}> "
                    r"User doesn't exist \(in reply to RCPT TO command\)\)", "bounce of an unknown user")
        # Over quota at RCPT (Postfix sends SIZE=): bounced, as delivery.quota_action says.
        wait_log(p, rf"to=<{re.escape(QUOTA_USER)}>.*status=bounced \(host \S+ said: 552 5\.2\.2 "
                    rf"<{re.escape(QUOTA_USER)}> Mailbox full", "bounce over quota")
        keep_the_one_stored(env, expected)
        check_downloads(env, srv, expected)
        assert not os.path.exists(os.path.join(env.root, "mail", GONE))
        # Delivered as the mail user.
        f = os.path.join(env.root, "mail", "alice@example.com", "new", maildir_new(env, "alice@example.com")[0])
        assert os.stat(f).st_uid == pwd.getpwnam(MAIL_USER).pw_uid
        assert re.search(r"lmtp delivered: user=\"alice@example.com\" to=<alice@example.com> "
                         r"from=<sender@test.invalid>", srv.log())


@pytest.mark.timeout(300)
def test_over_quota_defers_when_configured(delivering_postfix, open_env):
    p = delivering_postfix.configure_with(LMTP_CF)
    env = open_env
    socket_path = poplar_files(env, p, quota_action="defer")
    p.postconf(f"virtual_transport = lmtp:unix:{socket_path}")
    with PoplarServer(env.config_path):
        p.start()
        a = QUOTA_USER
        for i in (1, 2):
            send(p, "sender@test.invalid", [a], message(30 + i, a, f"q{i}", b"Quota test.\r\n"))
        wait_log(p, rf"to=<{re.escape(a)}>.*status=deferred \(host \S+ said: 452 4\.2\.2 <{re.escape(a)}> "
                    r"Mailbox full", "deferral over quota")
        assert len(maildir_new(env, a)) == 1
        assert a in p.queue()  # kept, to be retried once bob has room


@pytest.mark.timeout(300)
def test_postfix_delivers_through_poplar_deliver_as_a_pipe_transport(delivering_postfix, open_env):
    p = delivering_postfix
    master = open(MASTER_PIPE_CF).read()
    # The shipped service line, for this machine's binary, config and mail user.
    master = (master.replace("user=poplar", f"user={MAIL_USER}").replace("/usr/bin/poplar", require_binary())
              .replace("/etc/poplar/poplar.toml", open_env.config_path))
    p.configure_with(PIPE_CF, master)
    env = open_env
    poplar_files(env, p)
    expected = run_delivery(env, p, "bounce")
    # pipe(8) takes the enhanced code from the start of the output as the DSN status and
    # shows the rest of the line.
    wait_log(p, rf"to=<{re.escape(GONE)}>.*dsn=5\.1\.1, status=bounced \(poplar deliver: {re.escape(GONE)}: "
                r"no such user", "bounce of an unknown user")
    wait_log(p, rf"to=<{re.escape(QUOTA_USER)}>.*dsn=5\.2\.2, status=bounced \(poplar deliver: "
                rf"{re.escape(QUOTA_USER)}: mailbox full", "bounce over quota")
    keep_the_one_stored(env, expected)
    f = os.path.join(env.root, "mail", "alice@example.com", "new", maildir_new(env, "alice@example.com")[0])
    assert os.stat(f).st_uid == pwd.getpwnam(MAIL_USER).pw_uid
    with PoplarServer(env.config_path) as srv:
        check_downloads(env, srv, expected)
