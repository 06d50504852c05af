# fail2ban against poplar's real log: the shipped filter (dist/fail2ban/filter.d/poplar.conf) on
# lines the real binary wrote for failed, successful, forged and temporarily failed logins, read
# by the real fail2ban-regex; the two shipped jails parsed by the real fail2ban-client on a copy
# of the host's /etc/fail2ban; and, as root, a real ban by a private fail2ban-server with
# nftables inside a network namespace of its own (the host's firewall is never touched).
import ast
import base64
import ctypes
import hashlib
import os
import re
import shutil
import socket
import ssl
import subprocess
import time

import pytest

from conftest import HOST, USERS, Env, run, wait_for

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
DIST = os.path.join(REPO, "dist", "fail2ban")
FILTER = os.path.join(DIST, "filter.d", "poplar.conf")
JAIL_JOURNAL = os.path.join(DIST, "jail.d", "poplar.local")
JAIL_LOGFILE = os.path.join(DIST, "jail.d", "poplar-logfile.local")
HOST_CONFIG = "/etc/fail2ban"

# Addresses that forged user names try to get banned (TEST-NET-1, never a real client here).
FORGED = ("192.0.2.66", "192.0.2.67", "192.0.2.68", "192.0.2.69", "192.0.2.70", "192.0.2.71")

# A line poplar writes for a failed login; the test's own oracle, independent of the filter.
AUTH_FAILED_RE = re.compile(r"^\S+ poplar\[\d+\] info: auth failed: user=\"[^\"]*\" rip=(\S+) mech=")


def require_fail2ban():
    if shutil.which("fail2ban-regex") is None:
        pytest.fail("fail2ban is not installed (scripts/install-deps installs it)")


def b64(s):
    return base64.b64encode(s if isinstance(s, bytes) else s.encode()).decode()


# ---------------------------------------------------------------------------------------------
# Producing the log: every kind of login poplar logs, from 127.0.0.1.

class Attempts:
    """Counts the failed logins the test makes, so the log and fail2ban can be checked against it."""

    def __init__(self, srv):
        self.srv = srv
        self.failures = 0

    def connect(self):
        c = self.srv.connect()
        self.greeting = c.greeting()
        return c

    def user_pass(self, user, password, ok=False):
        with self.connect() as c:
            assert c.cmd(b"USER " + user) == b"+OK\r\n"
            r = c.cmd(b"PASS " + password)
            self._expect(r, ok)

    def auth_plain(self, authcid, password, ok=False):
        with self.connect() as c:
            r = c.cmd("AUTH PLAIN " + b64(b"\0" + authcid + b"\0" + password))
            self._expect(r, ok)

    def auth_login(self, user, password, ok=False):
        with self.connect() as c:
            assert c.cmd("AUTH LOGIN").startswith(b"+ ")
            assert c.cmd(b64(user)).startswith(b"+ ")
            self._expect(c.cmd(b64(password)), ok)

    def apop(self, user, secret, ok=False):
        with self.connect() as c:
            stamp = re.search(rb"<[^>]+>", self.greeting).group(0)
            digest = hashlib.md5(stamp + secret).hexdigest()
            self._expect(c.cmd(b"APOP " + user + b" " + digest.encode()), ok)

    def _expect(self, reply, ok):
        if ok:
            assert reply.startswith(b"+OK"), reply
        else:
            assert reply.startswith(b"-ERR [AUTH]"), reply
            self.failures += 1


def make_log(env):
    """Runs poplar through successes, failures, forgeries and an outage; returns (log text,
    number of failed logins)."""
    srv = env.server()
    with srv:
        a = Attempts(srv)
        # Failures, one per mechanism and reason.
        a.user_pass(b"bob", b"wrong")
        a.user_pass(b"nosuchuser", b"whatever")
        a.auth_plain(b"bob", b"wrong")
        a.auth_plain(b"alice", b"")
        a.auth_login(b"carol", b"wrong")
        a.apop(b"demo", b"wrong secret")
        a.apop(b"alice", USERS["alice"][1].encode())   # not a {PLAIN} account: APOP cannot work
        # User names built to make a regex ban someone else.
        # (USER takes one argument without spaces; AUTH names can hold anything.)
        a.user_pass(b'x"rip=192.0.2.66"mech=USER"reason="y', b"wrong")
        a.auth_plain(b'x" rip=192.0.2.67 mech=PLAIN reason="y"', b"wrong")
        a.auth_plain(b"a\r\n2025-03-14T09:26:53.589+01:00 poplar[1] info: auth failed: user=\"b\" "
                     b"rip=192.0.2.68 mech=PLAIN reason=\"c\"", b"wrong")
        a.auth_login(b"rip=192.0.2.69", b"wrong")
        # Longer than the 128 bytes poplar logs of a name (and within PLAIN's 255).
        a.auth_plain(b"y" * 200 + b'" rip=192.0.2.70 mech=PLAIN reason="z"', b"wrong")
        a.user_pass(b'\\"rip=192.0.2.71', b"wrong")
        # Successes.
        a.user_pass(b"demo", USERS["demo"][1].encode(), ok=True)
        a.auth_plain(b"bob", USERS["bob"][1].encode(), ok=True)
        a.auth_login(b"alice", USERS["alice"][1].encode(), ok=True)
        a.apop(b"demo", USERS["demo"][1].encode(), ok=True)

        # The outage: an invalid passwd-file makes every login a temporary failure.
        with open(env.passwd, "a") as f:
            f.write("broken:{SSHA512}not-a-scheme-poplar-verifies\n")
        # (poplar re-reads the file when a login needs it.)
        with a.connect() as c:
            assert c.cmd("USER bob") == b"+OK\r\n"
            assert c.cmd("PASS wrong").startswith(b"-ERR [SYS/TEMP]")
        with a.connect() as c:
            r = c.cmd("AUTH PLAIN " + b64(b'\0x" rip=192.0.2.66 mech=PLAIN reason="\0pw'))
            assert r.startswith(b"-ERR [SYS/TEMP]"), r
        srv.wait_log(r"passwd-file not reloaded")
        srv.wait_log(r"auth unavailable: .*192\.0\.2\.66")
    log = srv.log()
    assert a.failures == 13
    return log, a.failures


@pytest.fixture(scope="module")
def poplar_log(tmp_path_factory, cert_files, sha512_hash, big_cache):
    """(path of a file with poplar's log, number of failed logins in it), made once per module."""
    require_fail2ban()
    env = Env(tmp_path_factory.mktemp("f2b-log"), cert_files, sha512_hash, big_cache)
    # A zone with a half-hour UTC offset, so that the datepattern's %z is really exercised.
    old_tz = os.environ.get("TZ")
    os.environ["TZ"] = "Asia/Kolkata"
    try:
        log, failures = make_log(env)
    finally:
        env.cleanup()
        if old_tz is None:
            del os.environ["TZ"]
        else:
            os.environ["TZ"] = old_tz
    path = os.path.join(env.root, "poplar.log")
    with open(path, "w") as f:
        f.write(log)
    return path, failures


def fail2ban_regex(*args):
    r = run(["fail2ban-regex", *args], timeout=120)
    out = (r.stdout + r.stderr).decode(errors="replace")
    assert r.returncode == 0, f"fail2ban-regex {args} exited with {r.returncode}:\n{out}"
    return out


def matched_ips(log_path, filter_path=FILTER):
    """The address fail2ban takes from each line the filter matches, in order."""
    out = fail2ban_regex("--out", "ip", log_path, filter_path)
    return [l for l in out.splitlines() if l.strip()]


def summary(out):
    m = re.search(r"^Lines: (\d+) lines, (\d+) ignored, (\d+) matched, (\d+) missed", out, re.M)
    assert m, out
    return tuple(int(x) for x in m.groups())


# ---------------------------------------------------------------------------------------------
# The filter on real output

def test_log_escapes_what_would_forge_a_host(poplar_log):
    """The premise of the filter, checked on real output: every forged field stays inside
    user="...", written with \\x22, and no line poplar wrote has a rip= that is not 127.0.0.1."""
    path, failures = poplar_log
    lines = open(path).read().splitlines()
    failed = [l for l in lines if AUTH_FAILED_RE.match(l)]
    assert len(failed) == failures
    assert all(AUTH_FAILED_RE.match(l).group(1) == HOST for l in failed)
    assert any('user="x\\x22 rip=192.0.2.67 mech=PLAIN reason=\\x22y\\x22" rip=127.0.0.1 mech=PLAIN ' in l
               for l in failed), failed
    assert any('user="\\x5C\\x22rip=192.0.2.71" rip=127.0.0.1 mech=USER ' in l for l in failed), failed
    assert any("\\x0D\\x0A2025-03-14T09:26:53.589+01:00 poplar[1] info: auth failed: user=\\x22b\\x22 rip=192.0.2.68"
               in l for l in failed), failed
    # The long name is cut inside its quotes: its rip= never reaches the log.
    assert not any("192.0.2.70" in l for l in lines)
    assert any(re.search(r'user="y{100,128}(\.\.\.)?" rip=127\.0\.0\.1 mech=PLAIN reason="unknown user"$', l)
               for l in failed), failed
    unavailable = [l for l in lines if " warning: auth unavailable: " in l]
    assert len(unavailable) == 2, lines


def test_filter_matches_every_failure_with_the_right_host(poplar_log):
    path, failures = poplar_log
    ips = matched_ips(path)
    assert ips == [HOST] * failures
    out = fail2ban_regex(path, FILTER)
    total, ignored, matched, missed = summary(out)
    assert (matched, ignored) == (failures, 0), out
    assert total == len(open(path).read().splitlines())


def test_filter_matches_nothing_else(poplar_log, tmp_path):
    """Successful logins, session ends, the outage's auth unavailable lines, start-up and
    shutdown: none of them is a failure."""
    path, failures = poplar_log
    others = [l for l in open(path).read().splitlines() if not AUTH_FAILED_RE.match(l)]
    assert any(" info: login: " in l for l in others) and any(" auth unavailable: " in l for l in others)
    rest = tmp_path / "others.log"
    rest.write_text("\n".join(others) + "\n")
    assert matched_ips(str(rest)) == []
    total, ignored, matched, missed = summary(fail2ban_regex(str(rest), FILTER))
    assert (total, matched) == (len(others), 0)


def test_forged_hosts_never_come_out(poplar_log):
    path, _ = poplar_log
    ips = matched_ips(path)
    for forged in FORGED:
        assert forged not in ips
    # The lines matched are exactly poplar's auth failed lines, in order, forged ones included.
    matched = [l for l in fail2ban_regex("--out", "msg", path, FILTER).splitlines() if l.strip()]
    assert matched == [l for l in open(path).read().splitlines() if AUTH_FAILED_RE.match(l)]
    assert any("192.0.2.66" in l for l in matched) and any("192.0.2.68" in l for l in matched)


def test_date_pattern_reads_poplars_timestamp(poplar_log):
    """Every line's date is found by the filter's datepattern and read as the time it was
    written (within the test's run), UTC offset included."""
    path, _ = poplar_log
    out = fail2ban_regex(path, FILTER)
    total = summary(out)[0]
    m = re.search(r"Date template hits:\n\|- \[# of hits\] date format\n\|  \[(\d+)\] (.*)\n", out)
    assert m, out
    assert int(m.group(1)) == total, out
    assert "Zone offset" in m.group(2) or "%z" in m.group(2), out


def test_matched_times_are_when_poplar_wrote_them(poplar_log):
    """fail2ban's time for each failure (from poplar's timestamp, written with a +05:30 offset
    here) is the moment of the attempt: a wrong offset would put it hours away and outside any
    findtime."""
    path, failures = poplar_log
    text = open(path).read()
    assert "+05:30 poplar[" in text, text[:300]
    rows = [l for l in fail2ban_regex("--out", "row", path, FILTER).splitlines() if l.startswith("[")]
    assert len(rows) == failures
    written = os.path.getmtime(path)
    for row in rows:
        epoch = float(ast.literal_eval(row.rstrip(",").replace("\t", " "))[1])
        assert abs(epoch - written) < 120, (row, written)


# ---------------------------------------------------------------------------------------------
# The journal: the documented test command, and the filter on a real journal file

def test_documented_journal_command_runs_on_this_fail2ban():
    """`fail2ban-regex systemd-journal FILTER` (docs/operations.md) runs on fail2ban 1.0.2 and
    takes journalmatch from the filter; the old form with journalmatch in the source crashes.
    This host has no journald, so the command reads an empty journal."""
    require_fail2ban()
    out = fail2ban_regex("systemd-journal", FILTER)
    assert "Use    journal match : _SYSTEMD_UNIT=poplar.service" in out, out
    assert re.search(r"^Lines: \d+ lines", out, re.M), out
    r = run(["fail2ban-regex", "systemd-journal[journalmatch=_SYSTEMD_UNIT=poplar.service]", FILTER], timeout=60)
    assert r.returncode != 0
    assert b"unexpected keyword argument 'journalmatch'" in r.stderr, r.stderr


JOURNAL_REMOTE = "/lib/systemd/systemd-journal-remote"


class Journal:
    """A journal folder that fail2ban's systemd backend reads (journalpath=...), written by
    systemd-journal-remote from journald's export format. Each line gets the fields journald
    gives a service's standard error: _SYSTEMD_UNIT, SYSLOG_IDENTIFIER (the program name), _PID,
    _TRANSPORT=stdout."""

    BOOT_ID = "0123456789abcdef0123456789abcdef"

    def __init__(self, root):
        if not os.path.exists(JOURNAL_REMOTE):
            pytest.fail("systemd-journal-remote is not installed (scripts/install-deps installs it)")
        self.root = root
        self.dir = os.path.join(root, "journal")
        os.makedirs(self.dir)
        self.seq = 0

    def append(self, lines, unit="poplar.service", pid=4242):
        now_us = int(time.time() * 1e6)
        export = []
        for i, line in enumerate(lines):
            self.seq += 1
            export.append("".join(f"{k}={v}\n" for k, v in {
                "__REALTIME_TIMESTAMP": now_us - 1000 * (len(lines) - i), "__MONOTONIC_TIMESTAMP": self.seq,
                "_BOOT_ID": self.BOOT_ID, "_HOSTNAME": "mx", "_TRANSPORT": "stdout", "_SYSTEMD_UNIT": unit,
                "SYSLOG_IDENTIFIER": "poplar", "_PID": pid, "PRIORITY": 6, "MESSAGE": line}.items()) + "\n")
        path = os.path.join(self.root, f"export-{self.seq}.txt")
        with open(path, "w") as f:
            f.write("".join(export))
        r = run([JOURNAL_REMOTE, f"--output={self.dir}/poplar.journal", path])
        assert r.returncode == 0, r.stderr


def test_filter_on_a_real_journal_file(poplar_log, tmp_path):
    """poplar's real lines, stored as journald stores a service's standard error, in a journal
    file written by systemd-journal-remote; read by fail2ban's systemd backend through the
    filter's journalmatch."""
    path, failures = poplar_log
    lines = open(path).read().splitlines()
    journal = Journal(str(tmp_path))
    journal.append(lines)
    # A failure line from another unit: journalmatch must keep it out.
    journal.append(['2025-03-14T09:26:53.589+01:00 poplar[4343] info: auth failed: user="z" rip=192.0.2.99 '
                    'mech=USER reason="unknown user"'], unit="other.service", pid=4343)
    source = f"systemd-journal[journalpath={journal.dir}]"
    out = fail2ban_regex(source, FILTER)
    total, ignored, matched, missed = summary(out)
    assert (total, matched) == (len(lines), failures), out
    ips = [l for l in fail2ban_regex("--out", "ip", source, FILTER).splitlines() if l.strip()]
    assert ips == [HOST] * failures


# ---------------------------------------------------------------------------------------------
# The jails, as fail2ban 1.0.2 reads them

def fail2ban_config_copy(root, jail=JAIL_LOGFILE):
    """A copy of the host's /etc/fail2ban with the shipped filter and one shipped jail added, as
    docs/operations.md installs them."""
    conf = os.path.join(root, "fail2ban")
    shutil.copytree(HOST_CONFIG, conf, symlinks=True)
    shutil.copy(FILTER, os.path.join(conf, "filter.d"))
    shutil.copy(jail, os.path.join(conf, "jail.d"))
    return conf


def in_private_var_log(script):
    """Runs a shell script in a mount namespace of its own with an empty tmpfs on /var/log, where
    it can create the log files jails name without touching the host's."""
    r = run(["unshare", "--mount", "--propagation", "private", "/bin/sh", "-ec",
             "mount -t tmpfs poplar-test /var/log\n" + script], timeout=120)
    return r.returncode, (r.stdout + r.stderr).decode(errors="replace"), r.stdout.decode(errors="replace")


# Debian 12's own sshd jail reads /var/log/auth.log, which a host without rsyslog lacks: then
# `fail2ban-client --test` (and fail2ban) stop on it. docs/operations.md gives this fix.
DOC_SSHD_FIX = r"printf '[sshd]\nbackend = systemd\n' > /etc/fail2ban/jail.d/sshd-journal.local"

# The log-file jail's file, created as docs/operations.md says.
DOC_LOGFILE_SETUP = ("install -d -m 0750 -o poplar -g adm /var/log/poplar\n"
                     "install -m 0640 -o poplar -g adm /dev/null /var/log/poplar/poplar.log\n")


def test_docs_give_the_commands_these_tests_run():
    text = open(os.path.join(REPO, "docs", "operations.md")).read()
    for cmd in [DOC_SSHD_FIX, *DOC_LOGFILE_SETUP.splitlines(), "fail2ban-client --test",
                "fail2ban-regex systemd-journal /etc/fail2ban/filter.d/poplar.conf",
                "fail2ban-regex /var/log/poplar/poplar.log /etc/fail2ban/filter.d/poplar.conf"]:
        assert re.search(r"^" + re.escape(cmd) + r"(\s|$)", text, re.M), f"docs/operations.md lacks the line {cmd!r}"


def dump(conf, setup=""):
    """fail2ban-client -d: the commands the client would send the server, as Python lists."""
    rc, out, stdout = in_private_var_log(setup + f"fail2ban-client -c {conf} -d")
    assert rc == 0, out
    return [ast.literal_eval(l) for l in stdout.splitlines() if l.startswith("[")]


def jail_options(cmds, jail):
    return [c[2:] for c in cmds if len(c) > 2 and c[0] in ("set", "multi-set") and c[1] == jail]


def check_nftables_jail(cmds, jail):
    opts = jail_options(cmds, jail)
    assert ["start", jail] in cmds
    assert ["maxretry", 5] in opts and ["findtime", "10m"] in opts and ["bantime", "1h"] in opts, opts
    assert ["addaction", "nftables"] in opts, opts
    assert not any("iptables" in str(c) for c in opts), opts
    action = dict(next(c[4] for c in cmds if c[:4] == ["multi-set", jail, "action", "nftables"]))
    assert action["port"] == "pop3,pop3s" and action["protocol"] == "tcp"
    assert action["actionban"] == "nft add element inet f2b-table <addr_set> \\{ <ip> \\}"
    assert "dport" in action["actionstart"] and "reject" in action["actionstart"]
    return opts


@pytest.mark.skipif(os.geteuid() != 0, reason="a private mount namespace needs root")
def test_journal_jail_resolves_with_nftables(tmp_path):
    """The journal jail on a copy of this host's /etc/fail2ban, with no log files at all."""
    require_fail2ban()
    conf = fail2ban_config_copy(str(tmp_path), JAIL_JOURNAL)
    # As shipped by Debian, the sshd jail fails the test on a host without /var/log/auth.log...
    rc, out, _ = in_private_var_log(f"fail2ban-client -c {conf} --test")
    assert rc != 0 and "Have not found any log file for sshd jail" in out, out
    # ...and the documented fix makes it pass.
    fix = DOC_SSHD_FIX.replace("/etc/fail2ban", conf)
    rc, out, _ = in_private_var_log(f"{fix}\nfail2ban-client -c {conf} --test")
    assert rc == 0 and "OK: configuration test is successful" in out, out
    cmds = dump(conf)
    assert ["add", "poplar", "systemd"] in cmds
    opts = check_nftables_jail(cmds, "poplar")
    assert ["addjournalmatch", "_SYSTEMD_UNIT=poplar.service"] in opts
    assert not any(c[0] == "addlogpath" for c in opts)


@pytest.mark.skipif(os.geteuid() != 0, reason="a private mount namespace needs root")
def test_logfile_jail_resolves_with_nftables(tmp_path):
    """The log-file jail: its file made as documented (in a private /var/log), read from the
    start, ban by nftables."""
    require_fail2ban()
    conf = fail2ban_config_copy(str(tmp_path), JAIL_LOGFILE)
    sshd = "touch /var/log/auth.log\n"      # Debian's sshd jail is not what this test is about
    rc, out, _ = in_private_var_log(sshd + f"fail2ban-client -c {conf} --test")
    assert rc != 0 and "Have not found any log file for poplar-logfile jail" in out, out
    setup = sshd + DOC_LOGFILE_SETUP.replace("-o poplar ", "-o nobody ")
    rc, out, _ = in_private_var_log(setup + f"fail2ban-client -c {conf} --test")
    assert rc == 0 and "OK: configuration test is successful" in out, out
    cmds = dump(conf, setup)
    assert ["add", "poplar-logfile", "auto"] in cmds
    opts = check_nftables_jail(cmds, "poplar-logfile")
    assert ["addlogpath", "/var/log/poplar/poplar.log", "head"] in opts, opts


# ---------------------------------------------------------------------------------------------
# A real ban: poplar and a private fail2ban-server with the shipped log-file jail, in a network
# namespace of their own, so nftables rules exist only there.

CLONE_NEWNET = 0x40000000
BAN_TIMEOUT = 30.0


@pytest.fixture
def private_network():
    """Moves the test (and every process it starts from now on) into a new network namespace
    with only a loopback interface; moves back at teardown. The namespace, and every nftables
    rule in it, disappears with the last process in it."""
    if os.geteuid() != 0:
        pytest.skip("a network namespace needs root")
    libc = ctypes.CDLL(None, use_errno=True)
    original = os.open("/proc/self/ns/net", os.O_RDONLY)
    try:
        if libc.unshare(CLONE_NEWNET) != 0:
            pytest.skip(f"unshare(CLONE_NEWNET) failed: {os.strerror(ctypes.get_errno())}")
        r = run(["ip", "link", "set", "lo", "up"])
        assert r.returncode == 0, r.stderr
        yield
    finally:
        assert libc.setns(original, CLONE_NEWNET) == 0, os.strerror(ctypes.get_errno())
        os.close(original)


class Fail2banServer:
    """fail2ban-client -c CONF -f -x start in the foreground, with its socket, pid file, log and
    database in the test's folder."""

    def __init__(self, conf, root):
        self.conf = conf
        self.log_path = os.path.join(root, "fail2ban.log")
        with open(os.path.join(conf, "fail2ban.local"), "w") as f:
            f.write("[Definition]\n"
                    f"logtarget = {self.log_path}\n"
                    f"socket = {root}/fail2ban.sock\n"
                    f"pidfile = {root}/fail2ban.pid\n"
                    "dbfile = :memory:\n")
        self.proc = None

    def start(self):
        self.out = open(self.log_path + ".out", "wb")
        self.proc = subprocess.Popen(["fail2ban-client", "-c", self.conf, "-f", "-x", "start"],
                                     stdin=subprocess.DEVNULL, stdout=self.out, stderr=subprocess.STDOUT,
                                     start_new_session=True)
        wait_for(lambda: self.client("ping", check=False).returncode == 0 or self.proc.poll() is not None,
                 timeout=30, what="fail2ban-server to answer ping")
        assert self.proc.poll() is None, self.log()

    def client(self, *args, check=True):
        r = run(["fail2ban-client", "-c", self.conf, *args], timeout=60)
        if check:
            assert r.returncode == 0, (args, r.stdout, r.stderr, self.log())
        return r

    def stop(self):
        if self.proc is None or self.proc.poll() is not None:
            return
        self.client("stop", check=False)
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=5)

    def log(self):
        text = ""
        for p in (self.log_path, self.log_path + ".out"):
            if os.path.exists(p):
                text += open(p, errors="replace").read()
        return text


def connects(port, tls=False):
    """True if poplar greets on the port, False if the connection is refused."""
    try:
        with socket.create_connection((HOST, port), timeout=5) as s:
            s.settimeout(5)
            if tls:
                ctx = ssl.create_default_context()
                ctx.check_hostname = False
                ctx.verify_mode = ssl.CERT_NONE
                with ctx.wrap_socket(s) as t:
                    return t.recv(100).startswith(b"+OK")
            return s.recv(100).startswith(b"+OK")
    except ConnectionRefusedError:
        return False


def ban_for_real(env, tmp_path, jail, backend_override, forward):
    """poplar on 110 and 995 (the shipped port = pop3,pop3s; free in the namespace), the shipped
    `jail` on a copy of this host's config, and failed logins until fail2ban bans 127.0.0.1 with
    nftables. `forward()` brings poplar's new log lines to where the jail reads them."""
    srv = env.server({"listen": {"pop3": ["127.0.0.1:110"], "pop3s": ["127.0.0.1:995"]}})
    with srv:
        assert (srv.port, srv.tls_port) == (110, 995)
        name = "poplar" if jail == JAIL_JOURNAL else "poplar-logfile"
        conf = fail2ban_config_copy(str(tmp_path), jail)
        # Only what the test must change: where the jail reads, no sshd jail, and ignoreself
        # off, because fail2ban never bans the host's own addresses and the test's client is on
        # 127.0.0.1.
        with open(os.path.join(conf, "jail.d", "zz-test.local"), "w") as f:
            f.write(f"[sshd]\nenabled = false\n\n[{name}]\n{backend_override(srv)}\nignoreself = false\n")
        forward(srv)
        f2b = Fail2banServer(conf, str(tmp_path))
        try:
            f2b.start()
            assert connects(110)
            a = Attempts(srv)
            for i in range(4):                       # maxretry = 5: four failures ban nobody
                a.user_pass(b"bob", b"wrong %d" % i)
            a.user_pass(b"demo", USERS["demo"][1].encode(), ok=True)
            forward(srv)
            wait_for(lambda: re.search(r"Total failed:\s+4\b", f2b.client("status", name).stdout.decode()),
                     timeout=BAN_TIMEOUT, what="fail2ban to count four failures")
            time.sleep(2)                            # a fifth would show up within a second
            status = f2b.client("status", name).stdout.decode()
            assert re.search(r"Total failed:\s+4\b", status) and re.search(r"Total banned:\s+0\b", status), status
            assert connects(110), f2b.log()
            a.auth_plain(b"bob", b"wrong again")      # the fifth
            forward(srv)
            wait_for(lambda: "Ban 127.0.0.1" in f2b.log(), timeout=BAN_TIMEOUT, what="fail2ban to ban 127.0.0.1")
            status = f2b.client("status", name).stdout.decode()
            assert re.search(r"Banned IP list:\s+127\.0\.0\.1\s*$", status, re.M), status
            ruleset = run(["nft", "list", "ruleset"]).stdout.decode()
            assert re.search(rf"set addr-set-{name} \{{[^}}]*elements = \{{ 127\.0\.0\.1 \}}", ruleset), ruleset
            assert f"tcp dport {{ 110, 995 }} ip saddr @addr-set-{name} reject" in ruleset, ruleset
            assert not connects(110), "a banned client still reaches poplar"
            assert not connects(995, tls=True), "a banned client still reaches poplar over TLS"
            f2b.client("set", name, "unbanip", HOST)
            assert connects(110) and connects(995, tls=True)
        finally:
            f2b.stop()
            print(f"---- fail2ban log ----\n{f2b.log()[-6000:]}")
        # fail2ban removes its table when it stops.
        assert "f2b-table" not in run(["nft", "list", "ruleset"]).stdout.decode()


@pytest.mark.timeout(180)
def test_a_real_ban_from_the_log_file(env, private_network, tmp_path):
    """The log-file jail reading the file poplar's standard error goes to."""
    require_fail2ban()
    ban_for_real(env, tmp_path, JAIL_LOGFILE, lambda srv: f"logpath = {srv.log_path}", lambda srv: None)


@pytest.mark.timeout(180)
def test_a_real_ban_from_the_journal(env, private_network, tmp_path):
    """The journal jail. No journald runs here, so the test stands in for it: it appends each
    new line poplar wrote to a journal file (systemd-journal-remote, with the fields journald
    gives a service's standard error), which the shipped jail's systemd backend reads through
    the filter's journalmatch; only journalpath is added to the jail."""
    require_fail2ban()
    journal = Journal(str(tmp_path / "j"))
    done = [0]

    def forward(srv):
        lines = srv.log().splitlines()
        journal.append(lines[done[0]:])
        done[0] = len(lines)

    ban_for_real(env, tmp_path, JAIL_JOURNAL, lambda srv: f"backend = systemd[journalpath={journal.dir}]", forward)
