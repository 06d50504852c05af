# End to end with a real Postfix: a private instance (its own config_directory, queue, data
# directory and log, SMTP on 127.0.0.1 and a free port) configured with the shipped
# dist/postfix/main.cf appended verbatim and the documented commands, delivers over SMTP into
# Maildirs that poplar then serves to poplib.
#
# Root only: Postfix's master must start as root (it drops to mail_owner, and virtual(8) delivers
# as the virtual_uid_maps user). Nothing of the host's Postfix is used or touched.
import os
import pwd
import grp
import poplib
import re
import shlex
import shutil
import signal
import smtplib
import socket
import tempfile
import time

import pytest

from conftest import HOST, IO_TIMEOUT, run

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
SHIPPED_MAIN_CF = os.path.join(REPO, "dist", "postfix", "main.cf")
SHIPPED_VMAILBOX = os.path.join(REPO, "dist", "postfix", "vmailbox")

# The test's mail user: it must exist (the documented commands ask `id` for its uid and gid) and
# its uid must be at least virtual_minimum_uid (100). nobody:nogroup is on every Debian host; the
# real instructions use the poplar user.
MAIL_USER = "nobody"
DELIVERY_TIMEOUT = 30.0    # seconds for a message to appear in new/
START_TIMEOUT = 20.0       # seconds for Postfix's smtpd to accept connections
STOP_TIMEOUT = 20.0        # seconds for the master to exit after `postfix stop`

# Commands docs/operations.md gives, run here with this instance's user, folders and `-c`/`-C`.
DOCS = os.path.join(REPO, "docs", "operations.md")
DOC_MAILDIR_BASE = "install -d -o poplar -g poplar -m 0700 /var/lib/poplar/mail"
DOC_POSTMAP = "postmap /etc/postfix/vmailbox"
DOC_HAND_TEST = "printf 'Subject: test\\n\\nhello\\n' | sendmail alice@example.com"

PASSWORDS = {"alice@example.com": "alice-pop-secret", "bob@example.com": "bob-pop-secret"}


def free_port():
    # Postfix cannot listen on port 0, so ask the kernel for a free port and hand it over.
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def documented_commands(path):
    """The shell commands a shipped file tells the reader to run: its comment lines that start
    with a command name (here `postconf -e ...`)."""
    cmds = []
    for line in open(path):
        m = re.match(r"#\s+(postconf -e .*)$", line.rstrip("\n"))
        if m:
            cmds.append(m.group(1))
    return cmds


# The base of the private instance: everything a main.cf needs that the shipped snippet does not
# set, with every path inside the test's folder. The shipped file is appended after it, verbatim.
BASE_MAIN_CF = """\
# Private Postfix instance of tests/integration/test_postfix.py
compatibility_level = 3.6
queue_directory = {root}/queue
data_directory = {root}/data
meta_directory = /etc/postfix
mail_owner = postfix
setgid_group = postdrop
syslog_name = postfix-poplar-test
maillog_file = {root}/log/postfix.log
maillog_file_prefixes = {root}/log
myhostname = mx.test.invalid
mydomain = test.invalid
myorigin = $myhostname
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
mynetworks = 127.0.0.0/8
mydestination =
alias_maps =
alias_database =
relayhost =
default_transport = error:outbound mail is disabled in this test
relay_transport = error:outbound mail is disabled in this test
smtpd_banner = $myhostname ESMTP
biff = no
# A failing delivery agent is throttled for a minute by default; the test does not wait that long.
service_throttle_time = 2s
transport_retry_time = 2s

"""

# smtp on 127.0.0.1 and the port chosen for the test; no chroot (the queue is in a temp folder),
# and only the services a virtual delivery needs (pickup too: `postqueue -f` asks it to flush).
MASTER_CF = """\
# service       type  private unpriv  chroot  wakeup  maxproc command
127.0.0.1:{port} inet n       -       n       -       -       smtpd
pickup          unix  n       -       n       60      1       pickup
cleanup         unix  n       -       n       -       0       cleanup
qmgr            unix  n       -       n       300     1       qmgr
rewrite         unix  -       -       n       -       -       trivial-rewrite
bounce          unix  -       -       n       -       0       bounce
defer           unix  -       -       n       -       0       bounce
trace           unix  -       -       n       -       0       bounce
verify          unix  -       -       n       -       1       verify
flush           unix  n       -       n       1000?   0       flush
proxymap        unix  -       -       n       -       -       proxymap
showq           unix  n       -       n       -       -       showq
error           unix  -       -       n       -       -       error
retry           unix  -       -       n       -       -       error
discard         unix  -       -       n       -       -       discard
virtual         unix  -       n       n       -       -       virtual
anvil           unix  -       -       n       -       1       anvil
scache          unix  -       -       n       -       1       scache
postlog         unix-dgram n  -       n       -       1       postlogd
"""


class PostfixInstance:
    """A private Postfix: `postfix -c CONF ...` for everything, started and stopped by the test."""

    def __init__(self):
        # Not pytest's tmp_path: its parents are 0700 root, and the postfix user and the mail
        # user must be able to reach the queue and the Maildirs.
        self.root = tempfile.mkdtemp(prefix="poplar-postfix-")
        os.chmod(self.root, 0o755)
        self.conf = os.path.join(self.root, "etc")
        self.mail_base = os.path.join(self.root, "mail")
        self.log_path = os.path.join(self.root, "log", "postfix.log")
        self.port = free_port()
        self.started = False
        self.master_pid = None
        # Postfix creates what is inside the queue directory (`postfix check` runs
        # `post-install create-missing`), not the directory itself.
        for d in (self.conf, os.path.join(self.root, "queue"), os.path.dirname(self.log_path)):
            os.makedirs(d, mode=0o755)
        self.uid = pwd.getpwnam(MAIL_USER).pw_uid
        self.gid = pwd.getpwnam(MAIL_USER).pw_gid
        self.group = grp.getgrgid(self.gid).gr_name

    # -- configuration, the documented way
    def configure(self):
        with open(os.path.join(self.conf, "main.cf"), "w") as f:
            f.write(BASE_MAIN_CF.format(root=self.root))
            with open(SHIPPED_MAIN_CF) as shipped:
                f.write(shipped.read())
        with open(os.path.join(self.conf, "master.cf"), "w") as f:
            f.write(MASTER_CF.format(port=self.port))
        # Before any override: no value of the shipped file carries a comment (Postfix would
        # take it as part of the value; see the test of that below).
        r = run(["postconf", "-c", self.conf, "-n"])
        assert r.returncode == 0, r.stderr
        with_hash = [l for l in r.stdout.decode().splitlines() if "#" in l]
        assert with_hash == [], f"values with a '#' after appending {SHIPPED_MAIN_CF}: {with_hash}"
        self.set_ids_as_documented()
        # The test's own paths instead of /var/lib/poplar/mail and /etc/postfix/vmailbox.
        vmailbox = os.path.join(self.conf, "vmailbox")
        shutil.copyfile(SHIPPED_VMAILBOX, vmailbox)
        self.postconf(f"virtual_mailbox_base = {self.mail_base}", f"virtual_mailbox_maps = hash:{vmailbox}")
        # The documented Maildir base and map commands, for this user and folder.
        self.shell(DOC_MAILDIR_BASE.replace("-o poplar -g poplar", f"-o {MAIL_USER} -g {self.group}")
                   .replace("/var/lib/poplar/mail", shlex.quote(self.mail_base)))
        self.shell(DOC_POSTMAP.replace("/etc/postfix/vmailbox", shlex.quote(vmailbox)))
        return self

    def set_ids_as_documented(self):
        """The uid/gid one-liner of the shipped main.cf, run as written but for this instance
        and this user."""
        cmds = documented_commands(SHIPPED_MAIN_CF)
        assert len(cmds) == 1, f"expected one postconf -e command in {SHIPPED_MAIN_CF}: {cmds}"
        self.shell(cmds[0].replace("postconf -e", f"postconf -c {shlex.quote(self.conf)} -e")
                   .replace("id -u poplar", f"id -u {MAIL_USER}").replace("id -g poplar", f"id -g {MAIL_USER}"))

    def shell(self, line):
        return self.cmd(["/bin/sh", "-c", line])

    def cmd(self, argv, check=True, timeout=60):
        r = run(argv, timeout=timeout)
        out = (r.stdout + r.stderr).decode(errors="replace")
        if check:
            assert r.returncode == 0, f"{argv} exited with {r.returncode}:\n{out}"
        return out

    def postconf(self, *settings):
        return self.cmd(["postconf", "-c", self.conf, "-e", *settings])

    def get(self, name):
        r = run(["postconf", "-c", self.conf, "-h", name])
        assert r.returncode == 0 and r.stderr == b"", r
        return r.stdout.decode().strip()

    def postfix(self, *args, check=True):
        return self.cmd(["postfix", "-c", self.conf, *args], check=check)

    # -- lifecycle
    def start(self):
        out = self.postfix("check")
        assert "warning" not in out and "fatal" not in out, f"postfix check complained:\n{out}"
        self.postfix("start")
        self.started = True
        pid_file = os.path.join(self.root, "queue", "pid", "master.pid")
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            try:
                self.master_pid = int(open(pid_file).read().split()[0])
                with socket.create_connection((HOST, self.port), timeout=2) as s:
                    s.settimeout(IO_TIMEOUT)
                    if s.recv(512).startswith(b"220 "):
                        return self
            except (OSError, ValueError, IndexError):
                pass
            if time.monotonic() > deadline:
                raise AssertionError(f"Postfix smtpd not ready on port {self.port} within {START_TIMEOUT}s:\n{self.log()}")
            time.sleep(0.1)

    def stop(self):
        if not self.started:
            return
        self.started = False
        self.postfix("stop", check=False)
        if self.master_pid is None:
            return
        deadline = time.monotonic() + STOP_TIMEOUT
        while pid_alive(self.master_pid):
            if time.monotonic() > deadline:
                # Only the master this test started, and only after stop failed.
                self.postfix("abort", check=False)
                try:
                    os.kill(self.master_pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                break
            time.sleep(0.1)
        assert not pid_alive(self.master_pid, grace=5.0), f"Postfix master {self.master_pid} still running"

    def cleanup(self):
        try:
            self.stop()
        finally:
            print(f"---- Postfix log {self.log_path} ----\n{self.log()[-8000:]}")
            shutil.rmtree(self.root, ignore_errors=True)

    # -- observation
    def log(self):
        try:
            return open(self.log_path, "rb").read().decode(errors="replace")
        except FileNotFoundError:
            return "(no Postfix log)"

    def queue(self):
        return self.cmd(["postqueue", "-c", self.conf, "-p"], check=False)

    def maildir(self, address):
        local, domain = address.split("@")
        return os.path.join(self.mail_base, domain, local)

    def new_files(self, address):
        d = os.path.join(self.maildir(address), "new")
        return sorted(os.listdir(d)) if os.path.isdir(d) else []

    def wait_delivered(self, address, count):
        deadline = time.monotonic() + DELIVERY_TIMEOUT
        while len(self.new_files(address)) < count:
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"{address}: {len(self.new_files(address))} of {count} messages in new/ after "
                    f"{DELIVERY_TIMEOUT}s\n---- postqueue -p ----\n{self.queue()}\n---- Postfix log ----\n{self.log()[-8000:]}")
            time.sleep(0.1)
        assert len(self.new_files(address)) == count, self.new_files(address)


def pid_alive(pid, grace=0.0):
    deadline = time.monotonic() + grace
    while True:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        # A zombie is gone for our purposes (its parent has not reaped it yet).
        try:
            if open(f"/proc/{pid}/stat").read().split(") ")[1].startswith("Z"):
                return False
        except (FileNotFoundError, IndexError):
            return False
        if time.monotonic() >= deadline:
            return True
        time.sleep(0.1)


@pytest.fixture
def postfix(monkeypatch):
    if os.geteuid() != 0:
        pytest.skip("a private Postfix master must be started as root")
    # Postfix's commands live in /usr/sbin, which a non-login PATH may lack.
    monkeypatch.setenv("PATH", os.environ.get("PATH", "") + ":/usr/sbin:/sbin")
    if shutil.which("postfix") is None:
        pytest.fail("postfix is not installed (scripts/install-deps installs it)")
    p = PostfixInstance()
    try:
        p.configure()
        yield p
    finally:
        p.cleanup()


# ---------------------------------------------------------------------------------------------
# Messages: (name, envelope recipients, bytes handed to smtplib). Each has a unique Message-ID
# and fully qualified addresses, so Postfix's cleanup adds nothing inside the original header.

def message(n, to, subject, body, *, eol=b"\r\n", extra_headers=()):
    headers = [
        b"From: Sender <sender@test.invalid>",
        b"To: " + to.encode(),
        b"Subject: " + subject.encode(),
        b"Date: Thu, 03 Dec 2026 08:00:%02d +0000" % n,
        b"Message-ID: <poplar-test-%d@test.invalid>" % n,
        *extra_headers,
    ]
    return eol.join(headers) + eol + eol + body


def corpus():
    long_body = b"".join(b"line %06d of a long message, padded to a typical width ..........\r\n" % i
                         for i in range(12000))
    long_body += b"x" * 998 + b"\r\n"     # the longest line RFC 5322 allows
    utf8 = "Grüße aus Köln, ça va? 日本語のテキスト\r\nzweite Zeile: äöü ß €\r\n".encode("utf-8")
    return [
        ("plain", ["alice@example.com"], message(1, "alice@example.com", "plain", b"Hello Alice.\r\nSecond line.\r\n")),
        ("dots", ["alice@example.com"],
         message(2, "alice@example.com", "dots", b".\r\n..two dots\r\n.leading dot\r\nmiddle\r\n.\r\nend\r\n")),
        ("8bit", ["alice@example.com"],
         message(3, "alice@example.com", "8bit", utf8,
                 extra_headers=(b"MIME-Version: 1.0", b"Content-Type: text/plain; charset=utf-8",
                                b"Content-Transfer-Encoding: 8bit"))),
        ("long", ["alice@example.com"], message(4, "alice@example.com", "long", long_body)),
        # Bare LF line ends, no final line end: smtplib adds the CRLF before the final dot.
        ("lf", ["bob@example.com"], message(5, "bob@example.com", "lf", b"unix line ends\n.dot after LF\nlast", eol=b"\n")),
        ("mixed", ["bob@example.com"],
         message(6, "bob@example.com", "mixed", b"crlf line\r\nlf line\n\nblank line above\r\n")),
        ("both", ["alice@example.com", "bob@example.com"],
         message(7, "alice@example.com, bob@example.com", "to both", b"One copy each.\r\n")),
    ]


def as_delivered(data):
    """What a POP3 client must get for `data` sent with smtplib: smtplib appends CRLF unless the
    data ends with it, Postfix stores LF lines, poplar serves every line end as CRLF."""
    if not data.endswith(b"\r\n"):
        data += b"\r\n"
    return re.sub(rb"\r?\n", b"\r\n", data)


def send(p, sender, recipients, data):
    with smtplib.SMTP(HOST, p.port, timeout=IO_TIMEOUT) as s:
        s.ehlo("client.test.invalid")
        opts = ["BODY=8BITMIME"] if any(b > 0x7F for b in data) else []
        refused = s.sendmail(sender, recipients, data, mail_options=opts)
        assert refused == {}, refused


HEADER_LINE = re.compile(rb"(?:[A-Za-z0-9-]+:[^\r\n]*|[ \t][^\r\n]*)\r\n")


def added_headers(wire, original, address):
    """Checks that `wire` is a block of header lines followed by `original`, byte for byte, and
    returns the names of the headers Postfix put in front."""
    assert wire.endswith(original), (
        f"{address}: the original message is not the end of what poplar served "
        f"({len(wire)} bytes served, {len(original)} sent); head: {wire[:600]!r}")
    prefix = wire[:len(wire) - len(original)]
    names = []
    pos = 0
    while pos < len(prefix):
        m = HEADER_LINE.match(prefix, pos)
        assert m, f"{address}: not a header line in front of the original: {prefix[pos:pos + 200]!r}"
        if not m.group(0)[:1] in (b" ", b"\t"):
            names.append(m.group(0).split(b":", 1)[0].decode())
        pos = m.end()
    return names, prefix


def pop_login(srv, address):
    c = poplib.POP3(HOST, srv.port, timeout=IO_TIMEOUT)
    c.user(address)
    c.pass_(PASSWORDS[address])
    return c


def pop_fetch(c):
    """{uidl: wire bytes} of every message, each checked against its LIST size."""
    sizes = {int(n): int(s) for n, s in (l.split() for l in c.list()[1])}
    uidls = {int(n): u.decode() for n, u in (l.split() for l in c.uidl()[1])}
    assert sorted(sizes) == sorted(uidls)
    out = {}
    for n, size in sizes.items():
        _, lines, _ = c.retr(n)
        wire = b"".join(l + b"\r\n" for l in lines)
        assert len(wire) == size, f"msn {n}: LIST says {size}, RETR gave {len(wire)}"
        out[uidls[n]] = (n, wire)
    return out


def message_id(wire):
    m = re.search(rb"^Message-ID: (<[^>]+>)\r$", wire, re.M | re.I)
    assert m, wire[:500]
    return m.group(1).decode()


def start_poplar(env, p):
    env.write_passwd({a: "{PLAIN}" + pw for a, pw in PASSWORDS.items()})
    return env.server({"storage": {"maildir": p.mail_base + "/%d/%n"}})


def test_docs_give_the_commands_this_test_runs():
    text = open(DOCS).read()
    for cmd in [DOC_MAILDIR_BASE, DOC_POSTMAP, DOC_HAND_TEST, *documented_commands(SHIPPED_MAIN_CF),
                "postfix check", "postfix reload", "postqueue -p", "postqueue -f"]:
        assert re.search(r"^" + re.escape(cmd) + r"(\s|$)", text, re.M), f"docs/operations.md lacks the line {cmd!r}"


@pytest.mark.timeout(300)
def test_postfix_delivers_and_poplar_serves_byte_for_byte(postfix, env):
    p = postfix
    # The shipped snippet really is what Postfix runs with (nothing of the test base overrode it
    # but the documented settings).
    assert p.get("virtual_mailbox_domains") == "example.com"
    assert p.get("virtual_uid_maps") == f"static:{p.uid}"
    assert p.get("virtual_gid_maps") == f"static:{p.gid}"
    p.start()

    msgs = corpus()
    for _, rcpts, data in msgs:
        send(p, "sender@test.invalid", rcpts, data)
    expected = {a: {} for a in PASSWORDS}
    for name, rcpts, data in msgs:
        for a in rcpts:
            expected[a][message_id(as_delivered(data))] = (name, as_delivered(data))
    for a, want in expected.items():
        p.wait_delivered(a, len(want))
        # Delivered as the mail user, into a Maildir virtual(8) created.
        for sub in ("", "cur", "new", "tmp"):
            st = os.stat(os.path.join(p.maildir(a), sub))
            assert (st.st_uid, st.st_gid, st.st_mode & 0o7777) == (p.uid, p.gid, 0o700), (a, sub, oct(st.st_mode))
        for f in p.new_files(a):
            st = os.stat(os.path.join(p.maildir(a), "new", f))
            assert (st.st_uid, st.st_gid) == (p.uid, p.gid)

    with start_poplar(env, p) as srv:
        first_uidls = {}
        for a, want in expected.items():
            c = pop_login(srv, a)
            got = pop_fetch(c)
            c.quit()
            assert sorted(message_id(w) for _, w in got.values()) == sorted(want), a
            for uidl, (_, wire) in got.items():
                name, original = want[message_id(wire)]
                names, prefix = added_headers(wire, original, a)
                for h in ("Return-Path", "Delivered-To", "Received"):
                    assert h in names, f"{a} {name}: no {h} added by Postfix: {prefix!r}"
                assert set(names) <= {"Return-Path", "Delivered-To", "X-Original-To", "Received"}, names
                assert b"Delivered-To: " + a.encode() + b"\r\n" in prefix
                assert prefix.startswith(b"Return-Path: <sender@test.invalid>\r\n"), prefix
            first_uidls[a] = {uidl: message_id(w) for uidl, (_, w) in got.items()}

        # UIDLs are stable across sessions: the same UIDL names the same message.
        for a in expected:
            c = pop_login(srv, a)
            again = {uidl: message_id(w) for uidl, (_, w) in pop_fetch(c).items()}
            c.quit()
            assert again == first_uidls[a], a

        # DELE + QUIT removes the message from the Maildir; the others keep their UIDLs.
        a = "alice@example.com"
        c = pop_login(srv, a)
        got = pop_fetch(c)
        gone_uidl = next(u for u, (n, w) in got.items() if message_id(w) == "<poplar-test-1@test.invalid>")
        c.dele(got[gone_uidl][0])
        c.quit()
        assert len(p.new_files(a)) + len(os.listdir(os.path.join(p.maildir(a), "cur"))) == len(expected[a]) - 1

        # A delivery after that shows up at the next login, with a UIDL never seen before.
        later = message(8, a, "later", b"Delivered after the first logins.\r\n")
        send(p, "sender@test.invalid", [a], later)
        p.wait_delivered(a, len(expected[a]))
        c = pop_login(srv, a)
        got = pop_fetch(c)
        c.quit()
        now = {u: message_id(w) for u, (_, w) in got.items()}
        kept = {u: m for u, m in first_uidls[a].items() if u != gone_uidl}
        assert {u: m for u, m in now.items() if u in kept} == kept
        new = {u: m for u, m in now.items() if u not in kept}
        assert list(new.values()) == ["<poplar-test-8@test.invalid>"], now
        assert not set(new) & set(first_uidls[a])
        _, wire = got[next(iter(new))]
        added_headers(wire, as_delivered(later), a)

    # The hand test in docs/operations.md, through sendmail and pickup rather than SMTP.
    before = len(p.new_files(a))
    p.shell(DOC_HAND_TEST.replace("| sendmail ", f"| sendmail -C {shlex.quote(p.conf)} "))
    p.wait_delivered(a, before + 1)
    newest = max(p.new_files(a), key=lambda f: os.stat(os.path.join(p.maildir(a), "new", f)).st_mtime_ns)
    stored = open(os.path.join(p.maildir(a), "new", newest), "rb").read()
    assert b"\nSubject: test\n" in stored and stored.endswith(b"\n\nhello\n"), stored


@pytest.mark.timeout(240)
def test_comment_after_a_value_defers_mail_until_fixed_and_reloaded(postfix):
    """The old documented form `virtual_uid_maps = static:5000     # the uid of vmail`: Postfix
    takes the comment as part of the value, `postfix check` accepts it, and virtual(8) defers
    every message. Fixing it with the documented command plus `postfix reload` and
    `postqueue -f` (docs/operations.md, "When mail does not arrive") delivers the queued mail."""
    p = postfix
    main_cf = os.path.join(p.conf, "main.cf")
    text = open(main_cf).read()
    good = f"virtual_uid_maps = static:{p.uid}\n"
    assert text.count(good) == 1, text
    open(main_cf, "w").write(text.replace(good, f"virtual_uid_maps = static:{p.uid}     # the uid of the mail user\n"))
    assert p.get("virtual_uid_maps") == f"static:{p.uid} # the uid of the mail user"
    p.start()     # includes `postfix check`, which must not complain: it does not see the problem

    a = "alice@example.com"
    send(p, "sender@test.invalid", [a], message(1, a, "deferred", b"Held by a broken main.cf.\r\n"))
    deadline = time.monotonic() + DELIVERY_TIMEOUT
    while 'expecting "type:name" form instead of "#"' not in p.log():
        assert time.monotonic() < deadline, f"no virtual(8) configuration error in the log:\n{p.log()[-5000:]}"
        time.sleep(0.1)
    assert p.new_files(a) == []
    assert "alice@example.com" in p.queue(), p.queue()     # still queued, shown by postqueue -p

    p.set_ids_as_documented()
    assert p.get("virtual_uid_maps") == f"static:{p.uid}"
    p.postfix("reload")
    p.cmd(["postqueue", "-c", p.conf, "-f"])
    p.wait_delivered(a, 1)
    deadline = time.monotonic() + DELIVERY_TIMEOUT
    while "Mail queue is empty" not in p.queue():
        assert time.monotonic() < deadline, p.queue()
        time.sleep(0.1)


def wait_log(p, text, what):
    deadline = time.monotonic() + DELIVERY_TIMEOUT
    while text not in p.log():
        assert time.monotonic() < deadline, f"no {what} ({text!r}) in the Postfix log:\n{p.log()[-5000:]}"
        time.sleep(0.1)


@pytest.mark.timeout(240)
def test_typical_delivery_errors_read_as_documented(postfix):
    """The errors docs/operations.md ("When mail does not arrive") lists, as this Postfix writes
    them: an address missing from the map, a Maildir base the mail user cannot write, a uid
    below virtual_minimum_uid."""
    p = postfix
    p.start()
    with smtplib.SMTP(HOST, p.port, timeout=IO_TIMEOUT) as s:
        s.ehlo("client.test.invalid")
        s.mail("sender@test.invalid")
        code, reply = s.rcpt("nobody-here@example.com")
        assert code == 550 and b"User unknown in virtual mailbox table" in reply, (code, reply)

    os.chown(p.mail_base, 0, 0)       # base owned by root, mode 0700: the mail user cannot write
    a = "alice@example.com"
    send(p, "sender@test.invalid", [a], message(1, a, "perm", b"Cannot be written.\r\n"))
    wait_log(p, "status=deferred (maildir delivery failed: create maildir file ", "deferral")
    assert re.search(r"warning: maildir access problem for UID/GID=%d/%d: create maildir file "
                     r"\S+/example\.com/alice/tmp/\S+: Permission denied" % (p.uid, p.gid), p.log()), p.log()
    os.chown(p.mail_base, p.uid, p.gid)

    p.postconf("virtual_uid_maps = static:1")
    p.postfix("reload")
    send(p, "sender@test.invalid", [a], message(2, a, "uid", b"Wrong uid.\r\n"))
    wait_log(p, "warning: recipient alice@example.com: bad uid 1 in virtual_uid_maps", "uid error")
    wait_log(p, "status=deferred (mail system configuration error)", "deferral")
    assert p.new_files(a) == []

    # Both messages are still queued; fixed and flushed, they arrive.
    assert p.queue().count("alice@example.com") == 2, p.queue()
    p.postconf(f"virtual_uid_maps = static:{p.uid}")
    p.postfix("reload")
    p.cmd(["postqueue", "-c", p.conf, "-f"])
    p.wait_delivered(a, 2)
