# The command line: `poplar check` on good and bad configs, `serve` refusing a bad config,
# `poplar pw` producing hashes the server accepts, and IPv6 / multiple listeners.
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time

import pytest

from conftest import default_config, merge_config, poplar_bin, render_config, require_binary, run


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
    r = run([poplar_bin(), "pw", "--scheme", scheme, "--password-stdin"], input=b"h4sh me, kindly\n", timeout=60)
    assert r.returncode == 0, r.stderr
    line = r.stdout.decode().strip()
    assert line.startswith("{" + scheme + "}"), line
    assert "\n" not in line and "h4sh me, kindly" not in line or scheme == "PLAIN"
    small_env.write_passwd({"demo": line})
    with small_env.server() as srv, srv.connect() as c:
        c.greeting()
        assert c.cmd("USER demo") == b"+OK\r\n"
        assert c.cmd("PASS h4sh me, kindly").startswith(b"+OK maildrop has 12 ")
    with small_env.server() as srv, srv.connect() as c:
        c.greeting()
        assert c.cmd("USER demo") == b"+OK\r\n"
        assert c.cmd("PASS h4sh me, kindlY") == b"-ERR [AUTH] invalid user name or password\r\n"


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


# ---- every problem in one run, warnings -----------------------------------------------------

def problem(text):
    return "poplar: invalid configuration: " + text


def warning(text):
    return "poplar: warning: " + text


def test_check_reports_every_problem_at_once(small_env):
    require_binary()
    with open(small_env.passwd, "w") as f:
        f.write("demo:{PLAIN}x\nbob:{SSHA}y\n# comment\njustaname\ndemo:{PLAIN}again\n")
    os.chmod(small_env.passwd, 0o600)
    text = (
        "[server]\n"                                                    # 1
        "threds = 4\n"                                                  # 2
        "[listen]\n"                                                    # 3
        'pop3 = ["127.0.0.1:219950", "127.0.0.1:0", "localhost:110"]\n' # 4
        "[storge]\n"                                                    # 5
        'locking = "exclusive"\n'                                       # 6
        "[storage]\n"                                                   # 7
        'maildir = "mail/%u"\n'                                         # 8
        "[auth]\n"                                                      # 9
        'passwd_file = "users.passwd"\n'                                # 10
        'plaintxt = "always"\n'                                         # 11
        'failure_delay = "soon"\n'                                      # 12
        "[log]\n"                                                       # 13
        'level = "warning"\n'                                           # 14
    )
    path = small_env.write_config(text=text)
    r = run([poplar_bin(), "check", "--config", path], timeout=30)
    err = r.stderr.decode(errors="replace")
    assert r.returncode == 1, err
    assert r.stdout == b""
    users = small_env.passwd
    expected = [
        problem(f'{path}:2: server.threds: unknown key (did you mean "threads"?)'),
        problem(f'{path}:4: listen.pop3: port 219950 in "127.0.0.1:219950" is out of range '
                "(1-65535, or 0 for a free port the system picks)"),
        problem(f'{path}:4: listen.pop3: "localhost" in "localhost:110" is not an IP address '
                "(host names are not resolved: a listener must not depend on DNS)"),
        problem(f'{path}:5: storge: unknown section (did you mean "storage"?)'),
        problem(f'{path}:11: auth.plaintxt: unknown key (did you mean "plaintext"?)'),
        problem(f'{path}:12: auth.failure_delay: "soon" is not a duration like "500ms", "30s", "10m"'),
        problem(f"auth.passwd_file: {users}:2: unsupported password scheme {{SSHA}} for 'bob'"),
        problem(f"auth.passwd_file: {users}:4: expected user:password[:uid:gid:gecos:home:shell:extra_fields]"),
        problem(f"auth.passwd_file: {users}:5: duplicate user 'demo' (first on line 1)"),
    ]
    got = [line for line in err.splitlines() if line.startswith("poplar: invalid configuration: ")]
    assert got == expected, err
    # log.level = "warning" is not among them: it is a synonym of "warn".
    assert "log.level" not in err


def test_check_reports_config_passwd_file_and_tls_problems_together(small_env, tmp_path):
    other_key = tmp_path / "other.key"
    assert run(["openssl", "genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256",
                "-out", str(other_key)]).returncode == 0
    with open(small_env.passwd, "a") as f:
        f.write("eve:{NOPE}x\n")
    r = check(small_env, {"tls": {"private_key": str(other_key)}, "server": {"threads": 999}})
    err = r.stderr.decode(errors="replace")
    assert r.returncode == 1, err
    lines = [line for line in err.splitlines() if line.startswith("poplar: invalid configuration: ")]
    assert len(lines) == 3, err
    assert re.search(r":\d+: server\.threads: must be between 0 and 256$", lines[0]), err
    assert lines[1].endswith(":5: unsupported password scheme {NOPE} for 'eve'"), err
    assert lines[2].startswith(problem("tls.private_key: does not match tls.certificate: ")), err


def warnings_of(err):
    return [line for line in err.splitlines() if line.startswith("poplar: warning: ")]


def root_warning_lines(err):
    return [w for w in warnings_of(err) if "running as root" in w]


def test_check_warnings_do_not_fail_the_check(small_env):
    os.chmod(small_env.key, 0o644)
    os.chmod(small_env.passwd, 0o644)
    r = check(small_env, {"auth": {"plaintext": "always", "apop": True, "apop_in_clear": True}})
    err = r.stderr.decode(errors="replace")
    assert r.returncode == 0, err
    assert r.stdout.decode().endswith(": configuration is valid\n")
    w = [x for x in warnings_of(err) if "running as root" not in x]
    assert w == [
        warning(f"auth.passwd_file: {small_env.passwd}: readable or writable by every local user; chmod o= it"),
        warning(f"auth.passwd_file: {small_env.passwd}: 3 users have a {{PLAIN}}/{{CLEAR}} password, stored "
                "readably: 'demo' (line 1), 'bob' (line 3), 'carol' (line 4); replace them with a hash "
                "(poplar pw) unless APOP needs them"),
        warning(f"tls.private_key: {small_env.key} is readable or writable by every local user (mode 0644); "
                "chmod o= it"),
        warning('auth.plaintext: "always" lets USER/PASS, PLAIN and LOGIN send passwords unencrypted from any '
                'network; use "loopback" or "tls-only" unless every network is trusted'),
        warning("auth.apop: APOP is enabled: it needs {PLAIN} secrets in the passwd-file and its MD5 digest is "
                "open to offline guessing; set apop = false unless a client needs it"),
        warning("auth.apop_in_clear: APOP is accepted on unencrypted connections from any network, where a "
                "recorded digest can be attacked offline"),
    ], err


def test_check_of_a_tidy_config_warns_of_nothing_but_root(small_env, sha512_hash):
    small_env.write_passwd({"alice": "{SHA512-CRYPT}" + sha512_hash})
    r = check(small_env, {"auth": {"apop": None}})
    err = r.stderr.decode(errors="replace")
    assert r.returncode == 0, err
    assert warnings_of(err) == root_warning_lines(err), err
    assert len(root_warning_lines(err)) == (1 if os.geteuid() == 0 else 0), err


def test_serve_logs_the_warnings_at_start(small_env):
    os.chmod(small_env.key, 0o640 | 0o004)
    with small_env.server({"auth": {"plaintext": "always"}}) as srv:
        srv.wait_log(r"warning: tls\.private_key: .*key\.pem is readable or writable by every local user "
                     r"\(mode 0644\); chmod o= it")
        srv.wait_log(r'warning: auth\.plaintext: "always" lets USER/PASS')
        srv.wait_log(r"warning: auth\.apop: APOP is enabled")  # conftest sets apop = true
        srv.wait_log(r"warning: auth\.passwd_file: .*users\.passwd: 3 users have a \{PLAIN\}/\{CLEAR\} password")
        if os.geteuid() == 0:
            srv.wait_log(r"warning: running as root \(effective uid 0\) with server\.allow_root: every session runs "
                         r"as root")
        else:
            assert "running as root" not in srv.log()


# ---- running as root, and key permissions seen by the service user -------------------------

def as_root_cmd(cmd):
    """cmd with effective uid 0: as is when root, else in a user namespace mapping us to root."""
    if os.geteuid() == 0:
        return cmd
    if shutil.which("unshare") is None:
        pytest.skip("unshare not available")
    return ["unshare", "--user", "--map-root-user"] + cmd


def test_check_warns_when_run_as_root(small_env):
    path = small_env.write_config()
    r = run(as_root_cmd([poplar_bin(), "check", "--config", path]), timeout=30)
    err = r.stderr.decode(errors="replace")
    if r.returncode != 0 and "unshare" in err:
        pytest.skip("user namespaces not available: " + err)
    assert r.returncode == 0, err
    assert root_warning_lines(err) == [warning(
        "running as root (effective uid 0): file access is checked as root; serve needs server.user (or "
        "server.allow_root) to start as root, and rereads files as that user at a reload (docs/operations.md)")], err


NOBODY = 65534


@pytest.fixture
def nobody_env(small_env):
    """small_env's files copied to a folder only uid 65534 can use; skips unless we are root."""
    if os.geteuid() != 0 or shutil.which("setpriv") is None:
        pytest.skip("needs root and setpriv to run poplar as another user")
    root = tempfile.mkdtemp(prefix="poplar-nobody-")
    for name in ("cert.pem", "key.pem", "users.passwd"):
        shutil.copyfile(os.path.join(small_env.root, name), os.path.join(root, name))
    os.makedirs(os.path.join(root, "mail"))
    for dirpath, dirs, files in os.walk(root):
        for n in [dirpath] + [os.path.join(dirpath, f) for f in files]:
            os.chown(n, NOBODY, NOBODY)
    os.chmod(root, 0o700)
    yield root
    shutil.rmtree(root, ignore_errors=True)


def check_as_nobody(root, small_env, overrides=None):
    cfg = merge_config(default_config(), {"control": {"socket": ""}, **(overrides or {})})
    path = os.path.join(root, "poplar.toml")
    with open(path, "w") as f:
        f.write(render_config(cfg))
    os.chown(path, NOBODY, NOBODY)
    return run(["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups",
                poplar_bin(), "check", "--config", path], timeout=30)


def test_key_readable_by_a_group_poplar_is_not_in(nobody_env, small_env):
    key = os.path.join(nobody_env, "key.pem")
    # The documented set-up: the key's group is the service group. No warning, and not root.
    os.chmod(key, 0o640)
    r = check_as_nobody(nobody_env, small_env)
    err = r.stderr.decode(errors="replace")
    assert r.returncode == 0, err
    assert [w for w in warnings_of(err) if "private_key" in w or "root" in w] == [], err
    # Readable by a group the service user is not in (here root's): the key is shared for nothing.
    os.chown(key, NOBODY, 0)
    r = check_as_nobody(nobody_env, small_env)
    err = r.stderr.decode(errors="replace")
    assert r.returncode == 0, err
    assert warning(f'tls.private_key: {key} is readable by group "root" (mode 0640), which poplar does not run '
                   "in; chgrp it to the service group or chmod g= it") in warnings_of(err), err


# ---- the demo configuration -------------------------------------------------------------------

def test_demo_config_still_checks_after_being_copied(tmp_path):
    require_binary()
    state = tmp_path / "state"
    proc = subprocess.Popen([poplar_bin(), "serve", "--state-dir", str(state)], stdin=subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)
    try:
        deadline = time.monotonic() + 30
        # poplar.toml is written last; the listeners (fixed demo ports) may or may not bind here.
        while not (state / "poplar.toml").exists():
            assert time.monotonic() < deadline, "the demo did not write poplar.toml"
            if proc.poll() is not None and not (state / "poplar.toml").exists():
                raise AssertionError(proc.stderr.read().decode(errors="replace"))
            time.sleep(0.05)
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)
        proc.stderr.close()
    text = (state / "poplar.toml").read_text()
    paths = re.findall(r'^(?:certificate|private_key|maildir|passwd_file|socket)\s*=\s*"([^"]*)"', text, re.M)
    assert len(paths) == 5, text
    for p in paths:
        assert p.startswith(str(state) + "/"), (p, text)
    copy_dir = tmp_path / "elsewhere"
    copy_dir.mkdir()
    shutil.copyfile(state / "poplar.toml", copy_dir / "poplar.toml")
    r = run([poplar_bin(), "check", "--config", str(copy_dir / "poplar.toml")], cwd=str(tmp_path), timeout=30)
    assert r.returncode == 0, r.stderr.decode(errors="replace")
    # And from inside the folder with "./", the form configuration.md once warned about.
    r = run([poplar_bin(), "check", "--config", "./poplar.toml"], cwd=str(copy_dir), timeout=30)
    assert r.returncode == 0, r.stderr.decode(errors="replace")


def test_check_with_dot_slash_config_and_relative_paths(small_env):
    small_env.write_config()
    r = run([poplar_bin(), "check", "--config", "./poplar.toml"], cwd=small_env.root, timeout=30)
    assert r.returncode == 0, r.stderr.decode(errors="replace")
    r = run([poplar_bin(), "check", "--config", "../" + os.path.basename(small_env.root) + "/./poplar.toml"],
            cwd=small_env.root, timeout=30)
    assert r.returncode == 0, r.stderr.decode(errors="replace")
