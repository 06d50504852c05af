"""The LMTP listener (RFC 2033) of the real `poplar serve`, driven with Python's smtplib.LMTP and
a raw socket: exact replies, unknown users, quota at RCPT and at DATA, what is stored and served
back over POP3 byte for byte, a delivery beside an open POP3 session, Unix sockets and their
permissions, shutdown, the auth process being down, and kill -9 in the middle of deliveries
(docs/delivery.md)."""

import os
import poplib
import random
import re
import signal
import smtplib
import socket
import stat
import threading
import time

import pytest

from conftest import HOST, IO_TIMEOUT, USERS, PoplarServer, wait_for

SENDER = "sender@example.net"
# poplib refuses lines over 2,048 octets; the messages here have longer ones on purpose.
poplib._MAXLINE = 1 << 20


def lmtp_config(env, extra=None, sockets=True):
    listen = ["127.0.0.1:0"]
    if sockets:
        listen.append(os.path.join(env.root, "lmtp.sock"))
    cfg = {"listen": {"lmtp": listen}}
    for k, v in (extra or {}).items():
        cfg.setdefault(k, {}).update(v)
    return cfg


class Lmtp:
    """A raw LMTP client: exact bytes in, exact reply lines out."""

    def __init__(self, address):
        if isinstance(address, str):
            self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            self.sock.settimeout(IO_TIMEOUT)
            self.sock.connect(address)
        else:
            self.sock = socket.create_connection(address, timeout=IO_TIMEOUT)
        self.buf = b""

    def close(self):
        self.sock.close()

    def __enter__(self):
        return self

    def __exit__(self, *a):
        self.close()

    def send(self, data):
        self.sock.sendall(data)

    def line(self):
        while b"\r\n" not in self.buf:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise EOFError(f"closed; buffered {self.buf!r}")
            self.buf += chunk
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line + b"\r\n"

    def reply(self):
        """One whole (possibly multi-line) reply."""
        out = self.line()
        while out.splitlines()[-1][3:4] == b"-":
            out += self.line()
        return out

    def cmd(self, line):
        self.send(line + b"\r\n")
        return self.reply()


def served(srv, user, password):
    """{uidl: bytes} as POP3 RETR sends them (CRLF, dot-stuffing undone by poplib)."""
    c = poplib.POP3(HOST, srv.port, timeout=IO_TIMEOUT)
    c.user(user)
    c.pass_(password)
    out = {}
    for entry in c.uidl()[1]:
        n, uid = entry.split()
        out[uid.decode()] = b"".join(l + b"\r\n" for l in c.retr(int(n))[1])
    c.quit()
    return out


def trace(sender, recipient):
    return f"Return-Path: <{sender}>\r\nDelivered-To: {recipient}\r\n".encode()


def crlf_form(raw):
    """RFC 1939 §3's form of any received line ends."""
    out = re.sub(rb"(?<!\r)\n", b"\r\n", raw)
    if out and not out.endswith(b"\r\n"):
        out += b"\r\n"
    return out


def dot_stuff(data):
    return re.sub(rb"(?m)^\.", b"..", data)


def test_a_transaction_with_exact_replies_and_one_reply_per_recipient(env):
    with env.server(lmtp_config(env)) as srv:
        with Lmtp((HOST, srv.lmtp_port)) as c:
            assert c.reply() == b"220 test.invalid LMTP poplar ready\r\n"
            assert c.cmd(b"EHLO x") == b"500 5.5.1 This is LMTP (RFC 2033): use LHLO\r\n"
            assert c.cmd(b"MAIL FROM:<a@b>") == b"503 5.5.1 Send LHLO first\r\n"
            assert c.cmd(b"LHLO mx.test") == (b"250-test.invalid\r\n250-PIPELINING\r\n250-ENHANCEDSTATUSCODES\r\n"
                                              b"250-8BITMIME\r\n250 SIZE 52428800\r\n")
            assert c.cmd(b"RCPT TO:<demo>") == b"503 5.5.1 Send MAIL first\r\n"
            assert c.cmd(b"MAIL FROM:<sender@example.net> BODY=8BITMIME") == b"250 2.1.0 Ok\r\n"
            assert c.cmd(b"RCPT TO:<demo>") == b"250 2.1.5 <demo> Ok\r\n"
            assert c.cmd(b"RCPT TO:<nobody@example.org>") == b"550 5.1.1 <nobody@example.org> User doesn't exist\r\n"
            assert c.cmd(b"RCPT TO:<bob>") == b"250 2.1.5 <bob> Ok\r\n"
            assert c.cmd(b"DATA") == b"354 End data with <CR><LF>.<CR><LF>\r\n"
            c.send(b"Subject: two\r\n\r\n..leading dot\r\nend\r\n.\r\n")
            assert c.reply() == b"250 2.0.0 <demo> Saved\r\n"
            assert c.reply() == b"250 2.0.0 <bob> Saved\r\n"
            assert c.cmd(b"NOOP") == b"250 2.0.0 Ok\r\n"
            assert c.cmd(b"RSET") == b"250 2.0.0 Ok\r\n"
            assert c.cmd(b"QUIT") == b"221 2.0.0 test.invalid closing connection\r\n"
        expected = trace("sender@example.net", "demo") + b"Subject: two\r\n\r\n.leading dot\r\nend\r\n"
        assert list(served(srv, "demo", USERS["demo"][1]).values()) == [expected]
        bob = list(served(srv, "bob", USERS["bob"][1]).values())
        assert bob == [expected.replace(b"Delivered-To: demo", b"Delivered-To: bob")]
        srv.wait_log(r"lmtp delivered: user=\"demo\" to=<demo> from=<sender@example.net> size=\d+ id=\S+,S=\d+,W=\d+")
        srv.wait_log(r"lmtp refused: to=<nobody@example.org> status=5\.1\.1 reason=\"no such user\"")
        srv.wait_log(r"lmtp session end: peer=127\.0\.0\.1 transactions=1 delivered=2 refused=1 bytes=\d+ "
                     r"duration=\S+ reason=quit")


def test_pipelined_commands_are_answered_in_order(env):
    with env.server(lmtp_config(env)) as srv:
        with Lmtp((HOST, srv.lmtp_port)) as c:
            c.reply()
            c.send(b"LHLO x\r\nMAIL FROM:<>\r\nRCPT TO:<demo>\r\nRCPT TO:<carol>\r\nDATA\r\n")
            assert c.reply().endswith(b"250 SIZE 52428800\r\n")
            assert [c.reply() for _ in range(4)] == [b"250 2.1.0 Ok\r\n", b"250 2.1.5 <demo> Ok\r\n",
                                                     b"250 2.1.5 <carol> Ok\r\n",
                                                     b"354 End data with <CR><LF>.<CR><LF>\r\n"]
            c.send(b"Subject: bounce\r\n\r\nx\r\n.\r\nQUIT\r\n")
            assert [c.reply() for _ in range(3)] == [b"250 2.0.0 <demo> Saved\r\n", b"250 2.0.0 <carol> Saved\r\n",
                                                     b"221 2.0.0 test.invalid closing connection\r\n"]
        # A bounce (MAIL FROM:<>) gets an empty Return-Path.
        assert list(served(srv, "carol", USERS["carol"][1]).values())[0].startswith(b"Return-Path: <>\r\n")


def test_every_kind_of_message_is_stored_and_served_without_loss(env):
    """Bare LF, CRLF, mixed, 8-bit, NUL bytes, a 5,000-octet line, a line ending in CR, dots:
    POP3 serves exactly the CRLF form of what was sent (RFC 1939 §3), after the trace headers.
    (SMTP's DATA always ends with CRLF, so "no final newline" is `poplar deliver`'s case,
    test_deliver.py.)"""
    bodies = [
        b"Subject: crlf\r\n\r\nline\r\n",
        b"Subject: lf\n\nunix\nline ends\n",
        b"Subject: mixed\r\n\nlf\ncrlf\r\n\r\n",
        "Subject: 8bit\r\n\r\nGr\u00fc\u00dfe, \u65e5\u672c\u8a9e\r\n".encode(),
        b"Subject: nul\r\n\r\nbefore\x00after\r\n\x00\r\n",
        b"Subject: long\r\n\r\n" + b"y" * 5000 + b"\r\n",
        b"Subject: cr\r\n\r\nends in CR\r\r\nbare\rcr inside\r\n",
        b"Subject: dots\r\n\r\n.\r\n..\r\n.x\r\n",
    ]
    with env.server(lmtp_config(env)) as srv:
        with Lmtp((HOST, srv.lmtp_port)) as c:
            c.reply()
            c.cmd(b"LHLO x")
            for body in bodies:
                assert c.cmd(b"MAIL FROM:<s@x> BODY=8BITMIME") == b"250 2.1.0 Ok\r\n"
                assert c.cmd(b"RCPT TO:<demo>") == b"250 2.1.5 <demo> Ok\r\n"
                assert c.cmd(b"DATA").startswith(b"354 ")
                # On the wire every line ends in CRLF except the bare LFs the client sends as
                # they are (a sloppy client; the framer takes LF as a line end).
                wire = dot_stuff(body)
                if not wire.endswith(b"\n"):
                    wire += b"\r\n"
                c.send(wire + b".\r\n")
                assert c.reply() == b"250 2.0.0 <demo> Saved\r\n", body
        got = sorted(served(srv, "demo", USERS["demo"][1]).values())
        want = sorted(trace("s@x", "demo") + crlf_form(b) for b in bodies)
        assert got == want
        # On disk: LF line ends (Maildir's convention), the CR-ended line keeping its CRLF.
        stored = b"".join(open(os.path.join(env.maildir("demo"), f), "rb").read() for f in env.files("demo"))
        assert b"ends in CR\r\r\n" in stored and b"bare\rcr inside\n" in stored and b"\r\nline\r\n" not in stored


def test_quota_at_rcpt_with_size_and_at_data(env):
    env.write_passwd({"demo": "{PLAIN}" + USERS["demo"][1],
                      "bob": "{PLAIN}" + USERS["bob"][1] + "::::::userdb_quota_rule=*:storage=1k",
                      "carol": "{PLAIN}" + USERS["carol"][1]})
    cfg = lmtp_config(env, {"delivery": {"quota_messages": 2}})
    with env.server(cfg) as srv:
        with Lmtp((HOST, srv.lmtp_port)) as c:
            c.reply()
            c.cmd(b"LHLO x")
            # RFC 1870 §6: with SIZE= the quota is checked at RCPT.
            assert c.cmd(b"MAIL FROM:<s@x> SIZE=2000") == b"250 2.1.0 Ok\r\n"
            assert c.cmd(b"RCPT TO:<bob>") == b"552 5.2.2 <bob> Mailbox full\r\n"
            assert c.cmd(b"RCPT TO:<demo>") == b"250 2.1.5 <demo> Ok\r\n"
            assert c.cmd(b"RSET") == b"250 2.0.0 Ok\r\n"
            # Without SIZE=, at DATA: one reply per recipient, the one that fits is stored.
            c.cmd(b"MAIL FROM:<s@x>")
            c.cmd(b"RCPT TO:<bob>")
            c.cmd(b"RCPT TO:<carol>")
            c.cmd(b"DATA")
            c.send(b"Subject: big\r\n\r\n" + b"z" * 1500 + b"\r\n.\r\n")
            assert c.reply() == b"552 5.2.2 <bob> Mailbox full\r\n"
            assert c.reply() == b"250 2.0.0 <carol> Saved\r\n"
            # The config's default of 2 messages: carol's third is refused.
            for expect in (b"250 2.0.0 <carol> Saved\r\n", b"552 5.2.2 <carol> Mailbox full\r\n"):
                c.cmd(b"MAIL FROM:<s@x>")
                c.cmd(b"RCPT TO:<carol>")
                c.cmd(b"DATA")
                c.send(b"Subject: small\r\n\r\nx\r\n.\r\n")
                assert c.reply() == expect
        assert len(env.files("carol")) == 2
        assert env.files("bob") == []
        srv.wait_log(r"lmtp refused: user=\"bob\" to=<bob> status=5\.2\.2 reason=\"over quota: holds 0 messages")
    # quota_action = "defer": the same refusals are temporary (the MTA keeps the message).
    with env.server(lmtp_config(env, {"delivery": {"quota_messages": 2, "quota_action": "defer"}})) as srv:
        with Lmtp((HOST, srv.lmtp_port)) as c:
            c.reply()
            c.cmd(b"LHLO x")
            c.cmd(b"MAIL FROM:<s@x> SIZE=2000")
            assert c.cmd(b"RCPT TO:<bob>") == b"452 4.2.2 <bob> Mailbox full\r\n"
            assert c.cmd(b"RCPT TO:<carol>") == b"452 4.2.2 <carol> Mailbox full\r\n"


def test_a_message_over_the_size_limit_is_refused_for_every_recipient(env):
    with env.server(lmtp_config(env, {"delivery": {"max_message_size": "10k"}})) as srv:
        with Lmtp((HOST, srv.lmtp_port)) as c:
            c.reply()
            assert c.cmd(b"LHLO x").endswith(b"250 SIZE 10240\r\n")
            assert c.cmd(b"MAIL FROM:<s@x> SIZE=20000") == b"552 5.3.4 Message size exceeds fixed limit\r\n"
            c.cmd(b"MAIL FROM:<s@x>")
            c.cmd(b"RCPT TO:<demo>")
            c.cmd(b"RCPT TO:<bob>")
            c.cmd(b"DATA")
            c.send(b"Subject: big\r\n\r\n" + (b"w" * 100 + b"\r\n") * 200 + b".\r\n")
            assert c.reply() == b"552 5.3.4 <demo> Message size exceeds fixed limit\r\n"
            assert c.reply() == b"552 5.3.4 <bob> Message size exceeds fixed limit\r\n"
            assert c.cmd(b"NOOP") == b"250 2.0.0 Ok\r\n"  # and the session goes on
    assert env.files("demo") == [] and env.files("bob") == []


def test_bad_commands_get_specific_replies_and_ten_in_a_row_close(env):
    with env.server(lmtp_config(env)) as srv:
        with Lmtp((HOST, srv.lmtp_port)) as c:
            c.reply()
            c.cmd(b"LHLO x")
            assert c.cmd(b"MAIL FROM:a@b") == b"501 5.5.4 Syntax: MAIL FROM:<address>\r\n"
            assert c.cmd(b"MAIL FROM:<a@b> NOTIFY=NEVER") == b"555 5.5.4 Unsupported parameter NOTIFY\r\n"
            assert c.cmd(b"STARTTLS") == b"500 5.5.2 Command not recognised\r\n"
            assert c.cmd(b"X" * 600) == b"500 5.5.6 Line too long\r\n"
            for _ in range(5):
                assert c.cmd(b"BOGUS") == b"500 5.5.2 Command not recognised\r\n"
            c.send(b"BOGUS\r\n")
            assert c.reply() == b"500 5.5.2 Command not recognised\r\n"
            assert c.reply() == b"421 4.7.0 test.invalid Too many errors, closing connection\r\n"
            assert c.sock.recv(1) == b""
        srv.wait_log(r"lmtp session end: .* reason=quit")


def test_unix_socket_mode_and_owner(env):
    if os.geteuid() != 0:
        pytest.skip("giving the socket to another user needs root")
    cfg = lmtp_config(env, {"lmtp": {"socket_mode": "0620", "socket_user": "nobody", "socket_group": "nogroup"}})
    with env.server(cfg) as srv:
        path = srv.lmtp_sockets[0]
        st = os.stat(path)
        assert stat.S_ISSOCK(st.st_mode)
        assert stat.S_IMODE(st.st_mode) == 0o620
        import pwd, grp
        assert st.st_uid == pwd.getpwnam("nobody").pw_uid
        assert st.st_gid == grp.getgrnam("nogroup").gr_gid
        s = smtplib.LMTP(path)
        assert s.sendmail("a@b", ["demo"], b"Subject: over unix\r\n\r\nhi\r\n") == {}
        s.quit()
        srv.wait_log(r"lmtp session end: peer=unix transactions=1 delivered=1")
    assert not os.path.exists(path)  # removed at shutdown
    assert len(env.files("demo")) == 1


def test_an_unknown_socket_owner_is_refused_at_start(env):
    env.write_config(lmtp_config(env, {"lmtp": {"socket_user": "no-such-user-here"}}))
    srv = PoplarServer(env.config_path)
    with pytest.raises(AssertionError, match=r'listen.lmtp|lmtp.socket_user: no user named "no-such-user-here"'):
        srv.start()
    srv.kill_if_running()


def test_a_delivery_while_a_pop3_session_is_open(env):
    """The open session's snapshot is not disturbed; the next session sees the message."""
    with env.server(lmtp_config(env)) as srv:
        s = smtplib.LMTP(HOST, srv.lmtp_port)
        s.sendmail(SENDER, ["demo"], b"Subject: first\r\n\r\none\r\n")
        pop = poplib.POP3(HOST, srv.port, timeout=IO_TIMEOUT)
        pop.user("demo")
        pop.pass_(USERS["demo"][1])
        before = pop.uidl()[1]
        assert len(before) == 1
        s.sendmail(SENDER, ["demo"], b"Subject: second\r\n\r\ntwo\r\n")
        s.quit()
        assert pop.stat()[0] == 1
        assert pop.uidl()[1] == before
        assert b"Subject: first" in b"\r\n".join(pop.retr(1)[1])
        pop.dele(1)
        pop.quit()
        after = served(srv, "demo", USERS["demo"][1])
        assert len(after) == 1 and b"Subject: second" in list(after.values())[0]


def test_a_user_database_that_cannot_answer_is_a_temporary_failure(env):
    with env.server(lmtp_config(env)) as srv:
        with Lmtp((HOST, srv.lmtp_port)) as c:
            c.reply()
            c.cmd(b"LHLO x")
            c.cmd(b"MAIL FROM:<s@x>")
            assert c.cmd(b"RCPT TO:<demo>") == b"250 2.1.5 <demo> Ok\r\n"
            # A half-written passwd-file: the auth process fails closed, and so does RCPT.
            with open(env.passwd, "a") as f:
                f.write("no colon here\n")
            assert c.cmd(b"RCPT TO:<bob>") == b"451 4.3.0 <bob> Temporary lookup failure\r\n"
        srv.wait_log(r"lmtp failed: to=<bob> status=4\.3\.0 reason=\"recipient lookup: .*no colon|lmtp failed: to=<bob> "
                     r"status=4\.3\.0 reason=\"recipient lookup: .*users.passwd")


def test_the_auth_process_down_at_rcpt_never_hangs_the_delivery(env):
    from test_auth_process import layout
    with env.server(lmtp_config(env)) as srv:
        with Lmtp((HOST, srv.lmtp_port)) as c:
            c.reply()
            c.cmd(b"LHLO x")
            c.cmd(b"MAIL FROM:<s@x>")
            procs = layout(srv)
            # Stopped, then killed: its successor starts only once it is reaped (as in
            # test_auth_process.py); the RCPT meanwhile must not wait for it.
            os.kill(procs["auth"], signal.SIGSTOP)
            os.kill(procs["auth"], signal.SIGKILL)
            srv.wait_log(r"killed by signal 9")
            t = time.monotonic()
            reply = c.cmd(b"RCPT TO:<demo>")
            assert reply in (b"451 4.3.0 <demo> Temporary lookup failure\r\n", b"250 2.1.5 <demo> Ok\r\n"), reply
            assert time.monotonic() - t < 2
        srv.wait_log(r"info: auth process generation 2 is up")
        s = smtplib.LMTP(HOST, srv.lmtp_port)
        assert s.sendmail(SENDER, ["demo"], b"Subject: after\r\n\r\nx\r\n") == {}
        s.quit()


def test_shutdown_tells_an_idle_lmtp_client_421(env):
    srv = env.server(lmtp_config(env)).start()
    c = Lmtp((HOST, srv.lmtp_port))
    c.reply()
    c.cmd(b"LHLO x")
    srv.proc.send_signal(signal.SIGTERM)
    assert c.reply() == b"421 4.3.2 test.invalid Server shutting down\r\n"
    c.close()
    assert srv.proc.wait(timeout=10) == 0
    assert "lmtp session end: peer=127.0.0.1 transactions=0 delivered=0 refused=0 bytes=0" in srv.log()


def test_kill_minus_nine_during_deliveries_loses_nothing_reported_and_shows_nothing_half(env):
    """Clients deliver numbered messages as fast as they can; the server is SIGKILLed at random
    moments and restarted. Every message that got its 250 is there, whole; every file in the
    Maildir is a whole message that was sent (none half-visible); tmp/ is never listed."""
    rng = random.Random(1203)
    cfg = lmtp_config(env, sockets=False)
    sent = {}         # message id -> bytes
    confirmed = set()
    counter = [0]

    def message(i):
        return (f"Message-ID: <kill-{i}@test>\r\nSubject: kill test {i}\r\n\r\n".encode()
                + b"".join(b"line %d of message %d, padded a little to make it longer\r\n" % (j, i)
                           # Some of a few MiB, so that a kill often lands while one is written.
                           for j in range(rng.choice((rng.randrange(1, 400), rng.randrange(20000, 80000))))))

    for round_ in range(6):
        srv = env.server(cfg, check_clean_exit=False).start()
        stop = threading.Event()
        lock = threading.Lock()

        def client():
            try:
                s = smtplib.LMTP(HOST, srv.lmtp_port)
                s.ehlo("client")  # LHLO
                while not stop.is_set():
                    with lock:
                        counter[0] += 1
                        i = counter[0]
                        data = message(i)
                        sent[i] = data
                    s.mail(SENDER)
                    s.rcpt("demo")
                    code, _ = s.data(data)
                    if code == 250:
                        with lock:
                            confirmed.add(i)
            except (smtplib.SMTPException, OSError):
                pass  # the kill

        threads = [threading.Thread(target=client) for _ in range(3)]
        for t in threads:
            t.start()
        time.sleep(rng.uniform(0.05, 0.6))
        os.killpg(srv.proc.pid, signal.SIGKILL)
        srv.proc.wait(timeout=10)
        stop.set()
        for t in threads:
            t.join(timeout=30)
        # What is visible now is what the next session sees.
        stored = {}
        for f in env.files("demo"):
            data = open(os.path.join(env.maildir("demo"), f), "rb").read()
            m = re.search(rb"Message-ID: <kill-(\d+)@test>", data)
            assert m, f"{f}: not one of the messages sent: {data[:200]!r}"
            i = int(m.group(1))
            want = (trace(SENDER, "demo") + sent[i]).replace(b"\r\n", b"\n")
            assert data == want, f"{f}: message {i} is not whole ({len(data)} of {len(want)} octets)"
            assert i not in stored, f"message {i} stored twice"
            stored[i] = f
        missing = confirmed - set(stored)
        assert not missing, f"round {round_}: reported delivered but missing: {sorted(missing)[:10]}"
    assert len(confirmed) > 20, f"only {len(confirmed)} deliveries confirmed: the test did not test much"
    # And the server serves them all after the kills.
    with env.server(cfg) as srv:
        assert len(served(srv, "demo", USERS["demo"][1])) == len(env.files("demo"))
