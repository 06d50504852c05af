# Fixtures for the integration suite: a test directory (certificate, passwd file, Maildirs,
# config), the real poplar binary started on port 0, and a raw POP3 client with timeouts.
#
# The binary comes from $POPLAR_BIN. Every wait and socket operation is bounded, so no test hangs.
import os
import re
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import time

import pytest

import corpus

HOST = "127.0.0.1"
IO_TIMEOUT = 20.0          # seconds for any single socket operation
START_TIMEOUT = 10.0       # seconds for the listening: lines to appear
STOP_TIMEOUT = 15.0        # seconds for the process to exit after SIGTERM

# Accounts in every test's passwd file. demo has a PLAIN secret (APOP works); the others do not.
USERS = {
    "demo": ("{PLAIN}", "demo-secret"),
    "alice": ("{SHA512-CRYPT}", "alice pw with spaces"),
    "bob": ("{PLAIN}", "bob-secret"),
    "carol": ("{PLAIN}", "carol-secret"),
}

SANITIZER_MARKERS = ("AddressSanitizer", "runtime error", "LeakSanitizer", "UndefinedBehaviorSanitizer")


def poplar_bin() -> str:
    path = os.environ.get("POPLAR_BIN")
    if not path:
        guess = os.path.join(os.path.dirname(__file__), "..", "..", "build", "h-integ", "src", "cli", "poplar")
        path = os.path.abspath(guess)
    return path


def require_binary():
    path = poplar_bin()
    if not (os.path.isfile(path) and os.access(path, os.X_OK)):
        pytest.fail(f"poplar binary not found at {path!r}; set POPLAR_BIN")
    return path


def run(cmd, *, timeout=60, **kw):
    """subprocess.run with a timeout and captured output."""
    return subprocess.run(cmd, capture_output=True, timeout=timeout, **kw)


# ---------------------------------------------------------------------------------------------
# Session-wide artefacts: the certificate and the big message are made once.

@pytest.fixture(scope="session")
def session_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("poplar-session")


@pytest.fixture(scope="session")
def cert_files(session_dir):
    cert = session_dir / "cert.pem"
    key = session_dir / "key.pem"
    r = run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=localhost",
             "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1", "-days", "2",
             "-keyout", str(key), "-out", str(cert)])
    assert r.returncode == 0, r.stderr.decode(errors="replace")
    return str(cert), str(key)


@pytest.fixture(scope="session")
def sha512_hash():
    """{SHA512-CRYPT} hash of alice's password, made by openssl (independent of poplar)."""
    r = run(["openssl", "passwd", "-6", "-salt", "integsalt", USERS["alice"][1]])
    assert r.returncode == 0
    return r.stdout.decode().strip()


@pytest.fixture(scope="session")
def big_cache(session_dir):
    d = session_dir / "big-cache"
    d.mkdir(exist_ok=True)
    return str(d)


# ---------------------------------------------------------------------------------------------
# Config writing

def toml_value(v) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, str):
        return '"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(toml_value(x) for x in v) + "]"
    if isinstance(v, RawToml):
        return v.text
    raise TypeError(v)


class RawToml:
    """A value written verbatim (to test malformed input)."""

    def __init__(self, text):
        self.text = text


def default_config(with_tls=True):
    cfg = {
        # allow_root: CI runs the suite as root; test_privileges.py tests server.user.
        "server": {"hostname": "test.invalid", "threads": 2, "shutdown_grace": "2s", "state_directory": ".",
                   "allow_root": True},
        "listen": {"pop3": ["127.0.0.1:0"], "pop3s": ["127.0.0.1:0"]},
        "tls": {"certificate": "cert.pem", "private_key": "key.pem", "min_version": "1.2"},
        "storage": {"maildir": "mail/%u", "locking": "snapshot"},
        "auth": {"passwd_file": "users.passwd", "plaintext": "loopback", "apop": True,
                 "failure_delay": "0s", "max_failures": 3,
                 # Tests fail logins on purpose, often; test_penalties.py tests the blocks.
                 "block_after": 0},
        "pop3": {"expire": "NEVER", "login_delay": 0, "login_timeout": "60s",
                 "idle_timeout": "10m", "max_bad_commands": 10},
        "control": {"socket": "control.sock"},
        "log": {"level": "info"},
    }
    if not with_tls:
        del cfg["tls"]
        del cfg["listen"]["pop3s"]
    return cfg


def merge_config(base, overrides):
    """overrides: {section: {key: value}}; value None deletes the key, section None deletes it."""
    cfg = {s: dict(kv) for s, kv in base.items()}
    for section, kv in (overrides or {}).items():
        if kv is None:
            cfg.pop(section, None)
            continue
        sec = cfg.setdefault(section, {})
        for k, v in kv.items():
            if v is None:
                sec.pop(k, None)
            else:
                sec[k] = v
    return cfg


def render_config(cfg) -> str:
    out = []
    for section, kv in cfg.items():
        out.append(f"[{section}]")
        for k, v in kv.items():
            out.append(f"{k} = {toml_value(v)}")
        out.append("")
    return "\n".join(out)


# ---------------------------------------------------------------------------------------------
# The test environment: one directory with everything a server needs.

class Env:
    def __init__(self, root, cert_files, sha512_hash, big_cache):
        self.root = str(root)
        self.cert = os.path.join(self.root, "cert.pem")
        self.key = os.path.join(self.root, "key.pem")
        shutil.copyfile(cert_files[0], self.cert)
        shutil.copyfile(cert_files[1], self.key)
        os.chmod(self.key, 0o600)
        self.big_cache = big_cache
        self.passwd = os.path.join(self.root, "users.passwd")
        self.write_passwd({
            "demo": "{PLAIN}" + USERS["demo"][1],
            "alice": "{SHA512-CRYPT}" + sha512_hash,
            "bob": "{PLAIN}" + USERS["bob"][1],
            "carol": "{PLAIN}" + USERS["carol"][1],
        })
        self.maildirs = {}
        self.config_path = os.path.join(self.root, "poplar.toml")
        self._servers = []

    def write_passwd(self, entries):
        with open(self.passwd, "w") as f:
            for user, secret in entries.items():
                f.write(f"{user}:{secret}\n")
        os.chmod(self.passwd, 0o600)

    def maildir(self, user):
        return os.path.join(self.root, "mail", user)

    def fill(self, user, msgs):
        """Creates user's Maildir with msgs; returns {path: Message}."""
        placed = corpus.write_maildir(self.maildir(user), msgs, self.big_cache)
        self.maildirs[user] = placed
        return placed

    def add_message(self, user, msg, index):
        d = self.maildir(user)
        path = os.path.join(d, "new", corpus.maildir_name(index, msg, "new", "S"))
        with open(path, "wb") as f:
            f.write(msg.stored)
        return path

    def files(self, user):
        """Every message file now in user's Maildir (new/ and cur/), as sorted relative paths."""
        d = self.maildir(user)
        out = []
        for sub in ("new", "cur"):
            p = os.path.join(d, sub)
            if os.path.isdir(p):
                out += [os.path.join(sub, n) for n in os.listdir(p)]
        return sorted(out)

    def write_config(self, overrides=None, with_tls=True, path=None, text=None):
        path = path or self.config_path
        if text is None:
            text = render_config(merge_config(default_config(with_tls), overrides))
        with open(path, "w") as f:
            f.write(text)
        return path

    def server(self, overrides=None, with_tls=True, **kw):
        cfg = self.write_config(overrides, with_tls)
        srv = PoplarServer(cfg, **kw)
        self._servers.append(srv)
        return srv

    def cleanup(self):
        for s in self._servers:
            s.kill_if_running()
            # Shown by pytest only when the test failed.
            print(f"---- poplar log {s.log_path} ----\n{s.log()[-8000:]}")


@pytest.fixture
def env(tmp_path, cert_files, sha512_hash, big_cache):
    e = Env(tmp_path, cert_files, sha512_hash, big_cache)
    yield e
    e.cleanup()


@pytest.fixture
def open_env(cert_files, sha512_hash, big_cache):
    """An Env in a folder other users can reach (pytest's tmp_path is root's, 0700): for the
    tests that run poplar's processes as unprivileged users."""
    root = tempfile.mkdtemp(prefix="poplar-open-")
    os.chmod(root, 0o755)
    e = Env(root, cert_files, sha512_hash, big_cache)
    yield e
    e.cleanup()
    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def small_env(env):
    """env with demo's Maildir holding the small corpus, and alice/bob holding a few messages."""
    env.fill("demo", corpus.small_messages())
    env.fill("alice", corpus.small_messages()[:3])
    env.fill("bob", corpus.small_messages()[:4])
    env.fill("carol", [])
    return env


@pytest.fixture
def full_env(env):
    """env with demo's Maildir holding the whole corpus including the 20 MiB message."""
    env.fill("demo", corpus.corpus(with_big=True))
    env.fill("alice", corpus.small_messages()[:3])
    env.fill("bob", corpus.small_messages()[:4])
    env.fill("carol", [])
    return env


# ---------------------------------------------------------------------------------------------
# The server process

LISTEN_RE = re.compile(r"listening: (pop3s?(?:_proxy)?|lmtp) (\[[0-9a-fA-F:.]+\]|[0-9.]+):(\d+)\s*$")
LISTEN_UNIX_RE = re.compile(r"listening: lmtp (/\S+)\s*$")


class PoplarServer:
    """Runs `poplar serve --config FILE`; a context manager that stops it with SIGTERM on exit."""

    def __init__(self, config_path, expect_listeners=None, check_clean_exit=True):
        self.config_path = config_path
        self.log_path = config_path + f".{time.monotonic_ns()}.log"
        self.proc = None
        self.ports = {"pop3": [], "pop3s": [], "pop3_proxy": [], "pop3s_proxy": [], "lmtp": []}   # [(host, port)]
        self.lmtp_sockets = []  # LMTP Unix socket paths
        self.expect_listeners = expect_listeners
        self.check_clean_exit = check_clean_exit
        self.returncode = None

    # -- lifecycle
    def start(self):
        binary = require_binary()
        self._log_file = open(self.log_path, "wb")
        self.proc = subprocess.Popen([binary, "serve", "--config", self.config_path],
                                     stdin=subprocess.DEVNULL, stdout=self._log_file,
                                     stderr=subprocess.STDOUT, start_new_session=True)
        want = self.expect_listeners
        if want is None:
            want = self._expected_listener_count()
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            self._parse_ports()
            if sum(len(v) for v in self.ports.values()) + len(self.lmtp_sockets) >= want:
                return self
            if self.proc.poll() is not None:
                raise AssertionError(f"poplar exited with {self.proc.returncode} during start-up:\n{self.log()}")
            if time.monotonic() > deadline:
                self.kill_if_running()
                raise AssertionError(f"poplar did not report {want} listeners within {START_TIMEOUT}s:\n{self.log()}")
            time.sleep(0.02)

    def _expected_listener_count(self):
        text = open(self.config_path).read()
        n = 0
        for key in ("pop3", "pop3s", "pop3_proxy", "pop3s_proxy", "lmtp"):
            m = re.search(rf"^{key}\s*=\s*\[(.*?)\]", text, re.M)
            if m:
                n += len(re.findall(r'"[^"]*"', m.group(1)))
        return n

    def _parse_ports(self):
        ports = {"pop3": [], "pop3s": [], "pop3_proxy": [], "pop3s_proxy": [], "lmtp": []}
        sockets = []
        for line in self.log().splitlines():
            m = LISTEN_RE.search(line)
            if m:
                host = m.group(2).strip("[]")
                ports[m.group(1)].append((host, int(m.group(3))))
            u = LISTEN_UNIX_RE.search(line)
            if u:
                sockets.append(u.group(1))
        self.ports = ports
        self.lmtp_sockets = sockets

    def __enter__(self):
        return self.start()

    def __exit__(self, exc_type, exc, tb):
        rc = self.stop()
        if exc_type is None and self.check_clean_exit:
            self.assert_clean(rc)
        return False

    def stop(self, sig=signal.SIGTERM):
        """Sends `sig`, waits (bounded) and returns the exit code."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout=STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                self.kill_if_running()
                raise AssertionError(f"poplar did not exit within {STOP_TIMEOUT}s of {sig!r}:\n{self.log()}")
        self.returncode = self.proc.returncode
        self._log_file.close()
        return self.returncode

    def kill_if_running(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                pass

    def assert_clean(self, rc=None):
        rc = self.returncode if rc is None else rc
        log = self.log()
        for marker in SANITIZER_MARKERS:
            assert marker not in log, f"{marker} in poplar's log:\n{log[-5000:]}"
        assert rc == 0, f"poplar exited with {rc}, expected 0:\n{log[-5000:]}"

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def family(self):
        """The pids of poplar serve's processes: the network process (proc.pid), the auth
        supervisor and the auth process, as /proc shows them now; with every pid seen before, so
        the log lines of an auth process that died or was restarted still count as poplar's."""
        seen = getattr(self, "_family", set())
        if self.proc is not None:
            seen.add(self.proc.pid)
            parents = {}
            for d in os.listdir("/proc"):
                if d.isdigit():
                    try:
                        stat = open(f"/proc/{d}/stat").read()
                    except OSError:
                        continue
                    parents[int(d)] = int(stat[stat.rindex(")") + 2:].split()[1])
            grew = True
            while grew:
                grew = False
                for pid, ppid in parents.items():
                    if ppid in seen and pid not in seen:
                        seen.add(pid)
                        grew = True
        self._family = seen
        return seen

    # -- accessors
    def log(self) -> str:
        try:
            with open(self.log_path, "rb") as f:
                return f.read().decode("utf-8", errors="replace")
        except FileNotFoundError:
            return ""

    def wait_log(self, pattern, timeout=5.0):
        """Waits until a log line matches the regex; returns the match."""
        rx = re.compile(pattern)
        deadline = time.monotonic() + timeout
        while True:
            for line in self.log().splitlines():
                m = rx.search(line)
                if m:
                    return m
            if time.monotonic() > deadline:
                raise AssertionError(f"no log line matching {pattern!r} within {timeout}s:\n{self.log()[-5000:]}")
            time.sleep(0.02)

    @property
    def port(self):
        return self.ports["pop3"][0][1]

    @property
    def lmtp_port(self):
        return self.ports["lmtp"][0][1]

    @property
    def tls_port(self):
        return self.ports["pop3s"][0][1]

    def connect(self, tls=False, **kw):
        """A raw client on the first pop3 (or pop3s) listener, greeting not yet read."""
        host, port = self.ports["pop3s" if tls else "pop3"][0]
        return RawClient(host, port, implicit_tls=tls, cafile=kw.pop("cafile", None), **kw)


# ---------------------------------------------------------------------------------------------
# A raw POP3 client: exact bytes in, exact bytes out, every operation bounded.

GREETING_APOP_RE = re.compile(rb"^\+OK poplar ready (<[0-9a-f]{16}@test\.invalid>)\r\n$")


def client_tls_context(cafile):
    ctx = ssl.create_default_context(cafile=cafile)
    ctx.check_hostname = True
    ctx.verify_mode = ssl.CERT_REQUIRED
    return ctx


class RawClient:
    def __init__(self, host, port, implicit_tls=False, cafile=None, timeout=IO_TIMEOUT, source=None):
        self.timeout = timeout
        # source: the client's own address (any 127.0.0.0/8 address works on loopback), for
        # tests that need several client addresses.
        self.sock = socket.create_connection((host, port), timeout=timeout,
                                             source_address=(source, 0) if source else None)
        self.sock.settimeout(timeout)
        self.buf = bytearray()
        self.host = host
        if implicit_tls:
            self.sock = client_tls_context(cafile).wrap_socket(self.sock, server_hostname="localhost")
            self.sock.settimeout(timeout)

    def __enter__(self):
        return self

    def __exit__(self, *a):
        self.close()

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def send(self, data: bytes):
        self.sock.sendall(data)

    def _fill(self):
        chunk = self.sock.recv(1 << 20)
        if not chunk:
            raise EOFError("connection closed by server")
        self.buf += chunk

    def readline(self) -> bytes:
        """One line including its CRLF (or whatever ends it: LF)."""
        while True:
            i = self.buf.find(b"\n")
            if i >= 0:
                line = bytes(self.buf[:i + 1])
                del self.buf[:i + 1]
                return line
            if len(self.buf) > 1 << 16:
                raise AssertionError(f"no line end in {len(self.buf)} bytes: {self.buf[:200]!r}")
            self._fill()

    def read_exact(self, n) -> bytes:
        while len(self.buf) < n:
            self._fill()
        out = bytes(self.buf[:n])
        del self.buf[:n]
        return out

    def read_multiline_raw(self) -> bytes:
        """Everything up to and including the terminating ".\\r\\n" (still dot-stuffed)."""
        start = 0
        while True:
            if self.buf.startswith(b".\r\n"):
                i = 0
            else:
                i = self.buf.find(b"\r\n.\r\n", max(0, start - 4))
                if i >= 0:
                    i += 2
            if i >= 0:
                out = bytes(self.buf[:i + 3])
                del self.buf[:i + 3]
                return out
            start = len(self.buf)
            self._fill()

    def greeting(self) -> bytes:
        line = self.readline()
        assert line.startswith(b"+OK poplar ready"), line
        return line

    def cmd(self, line) -> bytes:
        """Sends one command line and returns the one-line reply."""
        if isinstance(line, str):
            line = line.encode()
        self.send(line + b"\r\n")
        return self.readline()

    def cmd_multi(self, line):
        """Sends a command with a multi-line reply; returns (first line, raw body incl. '.')."""
        first = self.cmd(line)
        if not first.startswith(b"+OK"):
            return first, None
        return first, self.read_multiline_raw()

    def login(self, user="demo", password=None):
        password = USERS[user][1] if password is None else password
        assert self.cmd(f"USER {user}") == b"+OK\r\n"
        reply = self.cmd(f"PASS {password}")
        assert reply.startswith(b"+OK maildrop has "), reply
        return reply

    def starttls(self, cafile):
        r = self.cmd("STLS")
        assert r == b"+OK begin TLS negotiation\r\n", r
        assert self.buf == b"", f"plaintext bytes after the STLS reply: {self.buf!r}"
        self.sock = client_tls_context(cafile).wrap_socket(self.sock, server_hostname="localhost")
        self.sock.settimeout(self.timeout)

    def read_until_close(self, limit=1 << 26) -> bytes:
        """All bytes until the server closes (bounded by the socket timeout)."""
        out = bytearray(self.buf)
        self.buf = bytearray()
        while len(out) < limit:
            try:
                chunk = self.sock.recv(1 << 20)
            except (ConnectionResetError, ssl.SSLError):
                break
            if not chunk:
                break
            out += chunk
        return bytes(out)

    def assert_closed(self):
        """The server closed the connection with nothing more to say."""
        rest = self.read_until_close()
        assert rest == b"", f"expected close, got {rest[:300]!r}"


def recv_until_close(sock) -> bytes:
    """Every byte a plain socket receives until the peer closes (bounded by its timeout)."""
    got = b""
    while True:
        chunk = sock.recv(65536)
        if not chunk:
            return got
        got += chunk


def unstuff(raw: bytes) -> bytes:
    """Reverse dot-stuffing of a multi-line body (raw includes the terminating '.\\r\\n')."""
    assert raw.endswith(b".\r\n"), raw[-50:]
    body = raw[:-3]
    if not body:
        return b""
    assert body.endswith(b"\r\n"), body[-50:]
    lines = body.split(b"\r\n")[:-1]
    return b"".join((l[1:] if l.startswith(b".") else l) + b"\r\n" for l in lines)


def fetch_all(client):
    """RETRs every message of the logged-in session: {msn: wire bytes}, checked against LIST."""
    first, raw = client.cmd_multi("LIST")
    assert first.startswith(b"+OK ") and raw is not None, first
    sizes = {}
    for line in raw.split(b"\r\n")[:-2]:
        n, s = line.split(b" ")
        sizes[int(n)] = int(s)
    out = {}
    for n, s in sizes.items():
        r = client.cmd(f"RETR {n}")
        assert r == b"+OK %d octets\r\n" % s, (n, r)
        raw = client.read_multiline_raw()
        out[n] = unstuff(raw)
        assert len(out[n]) == s, f"message {n}: LIST says {s}, RETR sent {len(out[n])}"
    return out


def match_corpus(by_msn, msgs):
    """Asserts {msn: wire} is exactly the corpus (as a set); returns {msn: Message}."""
    expected = {m.wire: m for m in msgs}
    got = {}
    for n, wire in by_msn.items():
        assert wire in expected, f"message {n} ({len(wire)} bytes) matches no corpus message: {wire[:200]!r}"
        got[n] = expected[wire]
    assert sorted(m.name for m in got.values()) == sorted(m.name for m in msgs)
    return got


def msn_map(server, user="demo", msgs=None):
    """Logs in on a fresh connection and learns which msn holds which corpus message."""
    with server.connect() as c:
        c.greeting()
        c.login(user)
        by_msn = fetch_all(c)
        assert c.cmd("QUIT") == b"+OK signing off\r\n"
    return match_corpus(by_msn, msgs) if msgs is not None else by_msn


def wait_for(pred, timeout=5.0, interval=0.02, what="condition"):
    deadline = time.monotonic() + timeout
    while True:
        v = pred()
        if v:
            return v
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(interval)


# ---------------------------------------------------------------------------------------------
# A per-test watchdog (pytest-timeout is not installed): SIGALRM fails a test that runs too long.

DEFAULT_TEST_TIMEOUT = 120


class TestTimeout(Exception):
    pass


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_call(item):
    marker = item.get_closest_marker("timeout")
    seconds = int(marker.args[0]) if marker else DEFAULT_TEST_TIMEOUT

    def on_alarm(signum, frame):
        raise TestTimeout(f"test exceeded {seconds}s")

    old = signal.signal(signal.SIGALRM, on_alarm)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)
