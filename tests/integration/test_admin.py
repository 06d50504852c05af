# The admin side of a running server: `poplar status|who|kick|stats|reload`, SIGHUP, the
# control socket's permissions and life cycle, and systemd readiness notifications.
import hashlib
import os
import re
import signal
import socket
import ssl
import subprocess
import time

import pytest

from conftest import USERS, poplar_bin, recv_until_close, run, wait_for


def admin(env, *args, config=None, user=None):
    cmd = [poplar_bin(), *args, "--config", config or env.config_path]
    if user is not None:
        cmd = ["setpriv", f"--reuid={user}", "--regid=65534", "--clear-groups", *cmd]
    r = run(cmd, timeout=30)
    return r.returncode, r.stdout.decode(), r.stderr.decode()


def fingerprint(der: bytes) -> str:
    return hashlib.sha256(der).hexdigest()


def peer_cert_over_implicit_tls(srv, cafile):
    """Connects to pop3s and returns (ssl socket after the greeting, certificate fingerprint)."""
    ctx = ssl.create_default_context(cafile=cafile)
    raw = socket.create_connection(("127.0.0.1", srv.tls_port), timeout=10)
    s = ctx.wrap_socket(raw, server_hostname="localhost")
    greeting = s.recv(4096)
    assert greeting.startswith(b"+OK poplar ready"), greeting
    return s, fingerprint(s.getpeercert(binary_form=True))


def new_certificate(dir_, name):
    cert = os.path.join(dir_, f"{name}.pem")
    key = os.path.join(dir_, f"{name}.key")
    r = run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
             "-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1", "-days", "2",
             "-keyout", key, "-out", cert])
    assert r.returncode == 0, r.stderr
    os.chmod(key, 0o600)
    return cert, key


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# ---------------------------------------------------------------------------------------------
# status, who, stats, kick

def test_status_shows_version_config_listeners_and_sessions_by_state(small_env):
    with small_env.server() as srv:
        with srv.connect() as waiting, srv.connect() as inside:
            waiting.greeting()
            inside.greeting()
            inside.login("alice")
            rc, out, err = admin(small_env, "status")
            assert rc == 0, err
    lines = out.splitlines()
    assert re.fullmatch(r"poplar \d+\.\d+\.\d+ \(commit [0-9a-f]+|unknown, .+\)", lines[0]) or \
        re.fullmatch(r"poplar \d+\.\d+\.\d+ \(commit \S+, \S+\)", lines[0]), lines[0]
    assert lines[1] == f"pid: {srv.proc.pid}"
    assert re.fullmatch(r"started: \d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ \(up \d+m\d\ds\)", lines[2]), lines[2]
    assert re.fullmatch(rf"config: {re.escape(small_env.config_path)}, loaded \S+Z \(generation 1\)", lines[3]), lines[3]
    sock = os.path.join(small_env.root, "control.sock")
    assert lines[4] == (f"listeners: pop3 127.0.0.1:{srv.port}, pop3s 127.0.0.1:{srv.tls_port}, "
                        f"control {sock}"), lines[4]
    assert lines[5] == "sessions: 2 (handshake 0, authorization 1, transaction 1, update 0, closing 0)", lines[5]
    assert lines[6] == "threads: 2 event loops, 2 workers" or lines[6].startswith("threads: 2 event loops, ")


def test_version_matches_status_first_line(small_env):
    r = run([poplar_bin(), "version"])
    assert r.returncode == 0
    first = r.stdout.decode().splitlines()[0]
    with small_env.server():
        rc, out, _ = admin(small_env, "status")
    assert rc == 0 and out.splitlines()[0] == first
    for lib in ("compiler", "OpenSSL", "Asio", "fmt", "spdlog", "toml++", "CLI11", "libxcrypt", "libargon2"):
        assert re.search(rf"^  {re.escape(lib)}: \S", r.stdout.decode(), re.M), (lib, r.stdout)
    flag = run([poplar_bin(), "--version"])
    assert flag.returncode == 0 and flag.stdout == r.stdout


def test_who_lists_logged_in_sessions_only(small_env):
    with small_env.server() as srv:
        with srv.connect() as anon, srv.connect() as a, srv.connect(tls=True, cafile=small_env.cert) as b:
            anon.greeting()
            a.greeting()
            a.login("alice")
            b.greeting()
            b.login("bob")
            r = a.cmd("RETR 1")
            assert r.startswith(b"+OK")
            a.read_multiline_raw()
            rc, out, err = admin(small_env, "who")
    assert rc == 0, err
    lines = out.splitlines()
    assert lines[0].split() == ["USER", "RIP", "SINCE", "FOR", "TLS", "IN", "OUT"]
    rows = [l.split() for l in lines[1:-1]]
    assert [r[0] for r in rows] == ["alice", "bob"], out
    assert all(r[1] == "127.0.0.1" for r in rows)
    assert [r[4] for r in rows] == ["no", "yes"]
    alice_out = int(rows[0][6])
    assert alice_out > 200, out   # greeting, replies and a whole message (126 octets)
    assert int(rows[0][5]) == len(b"USER alice\r\n") + len(f"PASS {USERS['alice'][1]}\r\n".encode()) + len(b"RETR 1\r\n")
    assert lines[-1] == "2 sessions logged in"


def test_kick_ends_only_that_users_sessions_and_deletes_nothing(small_env):
    before = small_env.files("alice")
    with small_env.server() as srv:
        with srv.connect() as a1, srv.connect() as a2, srv.connect() as b:
            for c, u in ((a1, "alice"), (a2, "alice"), (b, "bob")):
                c.greeting()
                c.login(u)
            assert a1.cmd("DELE 1") == b"+OK message 1 deleted\r\n"
            rc, out, err = admin(small_env, "kick", "alice")
            assert rc == 0, err
            assert out == 'kicked 2 sessions of user "alice"; nothing was deleted\n'
            assert a1.read_until_close() == b"-ERR session ended by the administrator\r\n"
            assert a2.read_until_close() == b"-ERR session ended by the administrator\r\n"
            assert b.cmd("NOOP") == b"+OK\r\n"
            assert b.cmd("QUIT") == b"+OK signing off\r\n"
        srv.wait_log(r'session end: user="alice" .* reason=kicked')
    assert small_env.files("alice") == before


def test_kick_of_a_user_without_sessions_is_an_error(small_env):
    with small_env.server():
        rc, out, err = admin(small_env, "kick", "nobody")
    assert rc == 4
    assert out == ""
    assert err == 'poplar: kick: no session of user "nobody" is logged in\n'


def test_kick_needs_a_user():
    r = run([poplar_bin(), "kick"])
    assert r.returncode == 1
    assert b"user is required" in r.stderr


def test_stats_counts_what_happened(small_env):
    with small_env.server() as srv:
        with srv.connect() as c:
            c.greeting()
            assert c.cmd("USER alice") == b"+OK\r\n"
            assert c.cmd("PASS wrong").startswith(b"-ERR [AUTH]")
            c.login("alice")
            size = int(c.cmd("LIST 1").split()[2])
            assert c.cmd("RETR 1").startswith(b"+OK")
            c.read_multiline_raw()
            assert c.cmd("DELE 2").startswith(b"+OK")
            assert c.cmd("QUIT") == b"+OK signing off\r\n"
        srv.wait_log(r"session end: user=\"alice\"")
        rc, out, err = admin(small_env, "stats")
    assert rc == 0, err
    stats = dict(l.split(" ") for l in out.splitlines())
    assert all(re.fullmatch(r"[a-z_]+", k) and re.fullmatch(r"\d+", v) for k, v in stats.items()), out
    assert stats["connections_total"] == "1"
    assert stats["logins_total"] == "1"
    assert stats["auth_failures_total"] == "1"
    assert stats["retr_total"] == "1"
    assert stats["retr_bytes_total"] == str(size)
    assert stats["dele_total"] == "1"
    assert stats["sessions_ended_quit_total"] == "1"
    assert stats["sessions_active"] == "0"
    assert stats["reloads_total"] == "0"


# ---------------------------------------------------------------------------------------------
# Reload

def test_reload_new_certificate_for_new_sessions_old_sessions_unaffected(small_env):
    with small_env.server() as srv:
        old_sock, old_fp = peer_cert_over_implicit_tls(srv, small_env.cert)
        old_sock.sendall(b"USER alice\r\n")
        assert old_sock.recv(100) == b"+OK\r\n"
        # certbot's renewal writes new files at the same paths, then the hook reloads.
        cert, key = new_certificate(small_env.root, "renewed")
        os.replace(cert, small_env.cert)
        os.replace(key, small_env.key)
        rc, out, err = admin(small_env, "reload")
        assert rc == 0, err
        assert out == f"reloaded {small_env.config_path} (configuration generation 2)\n"
        new_sock, new_fp = peer_cert_over_implicit_tls(srv, small_env.cert)
        assert new_fp != old_fp
        with open(small_env.cert, "rb") as f:
            expected = fingerprint(ssl.PEM_cert_to_DER_cert(f.read().decode()))
        assert new_fp == expected
        # The session from before the reload goes on, on its old certificate.
        old_sock.sendall(f"PASS {USERS['alice'][1]}\r\n".encode() + b"STAT\r\nQUIT\r\n")
        got = b""
        while not got.endswith(b"+OK signing off\r\n"):
            chunk = old_sock.recv(4096)
            assert chunk, got
            got += chunk
        assert got.startswith(b"+OK maildrop has 3 messages"), got
        assert fingerprint(old_sock.getpeercert(binary_form=True)) == old_fp
        old_sock.close()
        new_sock.close()
        srv.wait_log(r"reload: done, configuration generation 2; \d+ sessions in progress keep the previous one")


def test_sighup_reloads_policy_for_new_sessions_only(small_env):
    with small_env.server() as srv:
        with srv.connect() as before:
            before.greeting()
            small_env.write_config({"auth": {"plaintext": "tls-only"}})
            srv.proc.send_signal(signal.SIGHUP)
            srv.wait_log(r"reload: done, configuration generation 2")
            # Opened under generation 1: plaintext login on loopback still allowed.
            before.login("alice")
            with srv.connect() as after:
                after.greeting()
                assert after.cmd("USER alice") == \
                    b"-ERR [AUTH] plaintext login refused on an unencrypted connection, use STLS\r\n"
        srv.wait_log(r"received SIGHUP")
        rc, out, _ = admin(small_env, "stats")
        assert "reloads_total 1\n" in out


def test_invalid_reload_is_refused_with_checks_message_and_the_server_keeps_serving(small_env):
    with small_env.server() as srv:
        good = open(small_env.config_path).read()
        small_env.write_config(text=good + "\n[auth2]\nx = 1\n")
        check = run([poplar_bin(), "check", "--config", small_env.config_path])
        assert check.returncode == 1
        problems = [l.removeprefix("poplar: invalid configuration: ")
                    for l in check.stderr.decode().splitlines() if l.startswith("poplar: invalid configuration: ")]
        assert problems, check.stderr
        rc, out, err = admin(small_env, "reload")
        assert rc == 1
        assert out == ""
        assert err == "poplar: reload: " + "\n".join(problems) + "\n", (err, problems)
        for p in problems:
            srv.wait_log(re.escape(f"error: reload refused, the running configuration stays: {p}"))
        with srv.connect() as c:
            c.greeting()
            c.login("alice")
        rc, out, _ = admin(small_env, "status")
        assert "(generation 1)" in out
        rc, out, _ = admin(small_env, "stats")
        assert "reload_failures_total 1\n" in out and "reloads_total 0\n" in out


def test_reload_adds_and_removes_listeners(small_env):
    with small_env.server() as srv:
        old_port = srv.port
        extra = free_port()
        small_env.write_config({"listen": {"pop3": [f"127.0.0.1:{extra}"]}})
        rc, _, err = admin(small_env, "reload")
        assert rc == 0, err
        srv.wait_log(rf"listening: pop3 127\.0\.0\.1:{extra}$")
        srv.wait_log(rf"stopped listening: pop3 127\.0\.0\.1:{old_port}$")
        with socket.create_connection(("127.0.0.1", extra), timeout=5) as s:
            assert s.recv(100).startswith(b"+OK poplar ready")
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection(("127.0.0.1", old_port), timeout=5)
        # The implicit-TLS listener, configured the same, was kept as it was.
        _, _ = peer_cert_over_implicit_tls(srv, small_env.cert)


def test_reload_with_a_port_in_use_is_refused_and_changes_nothing(small_env):
    with small_env.server() as srv:
        busy = socket.socket()
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        try:
            small_env.write_config({"listen": {"pop3": ["127.0.0.1:0", f"127.0.0.1:{port}"]},
                                    "auth": {"plaintext": "tls-only"}})
            rc, _, err = admin(small_env, "reload")
            assert rc == 1
            assert err == f"poplar: reload: listen.pop3: cannot listen on 127.0.0.1:{port}: Address already in use\n"
        finally:
            busy.close()
        with srv.connect() as c:   # still generation 1: plaintext allowed on loopback
            c.greeting()
            c.login("alice")


def test_reload_warns_about_settings_that_need_a_restart(small_env):
    with small_env.server() as srv:
        small_env.write_config({"server": {"threads": 1}})
        rc, _, err = admin(small_env, "reload")
        assert rc == 0, err
        srv.wait_log(r"warning: reload: server\.threads changed; the new value takes effect at the next restart")
        rc, out, _ = admin(small_env, "status")
        assert "threads: 2 event loops" in out


# ---------------------------------------------------------------------------------------------
# The control socket

def test_admin_commands_say_when_no_server_runs(small_env):
    small_env.write_config()
    for cmd in (["status"], ["who"], ["stats"], ["reload"], ["kick", "alice"]):
        rc, out, err = admin(small_env, *cmd)
        assert rc == 3, (cmd, rc, err)
        sock = os.path.join(small_env.root, "control.sock")
        assert err == (f"poplar: the server is not running (nothing answers on {sock}, "
                       f"the control.socket of {small_env.config_path})\n"), err


def test_admin_command_with_unreadable_config(tmp_path):
    r = run([poplar_bin(), "status", "--config", str(tmp_path / "missing.toml")])
    assert r.returncode == 1
    assert r.stderr.decode() == f"poplar: {tmp_path / 'missing.toml'}: cannot read: No such file or directory\n"


def test_control_socket_off(small_env):
    small_env.write_config({"control": {"socket": ""}})
    rc, _, err = admin(small_env, "reload")
    assert rc == 1
    assert err == (f'poplar: {small_env.config_path} turns the control socket off (control.socket = ""); '
                   "set it to use poplar reload, or send the server SIGHUP\n")


def test_control_socket_mode_and_permission_denied(small_env):
    if os.geteuid() != 0:
        pytest.skip("needs root to run the CLI as another user")
    sock = os.path.join(small_env.root, "control.sock")
    with small_env.server({"control": {"mode": "0600"}}):
        st = os.stat(sock)
        assert oct(st.st_mode & 0o777) == "0o600"
        # Another user may read the config (copied where it can), but not use the socket.
        os.chmod(small_env.root, 0o755)
        readable = "/tmp/poplar-admin-test-" + str(os.getpid()) + ".toml"
        with open(small_env.config_path) as f:
            text = f.read().replace('socket = "control.sock"', f'socket = "{sock}"')
        with open(readable, "w") as f:
            f.write(text)
        os.chmod(readable, 0o644)
        try:
            rc, _, err = admin(small_env, "status", config=readable, user="nobody")
        finally:
            os.unlink(readable)
        assert rc == 3, err
        assert err == (f"poplar: permission denied on {sock}: run as root or as a member of the socket's group "
                       f"(control.group in {readable})\n"), err


def test_stale_socket_is_replaced_and_a_live_one_is_not(small_env):
    srv = small_env.server()
    srv.start()
    srv.stop(signal.SIGKILL)
    sock = os.path.join(small_env.root, "control.sock")
    assert os.path.exists(sock)   # left behind by the killed server
    with small_env.server() as again:
        rc, _, _ = admin(small_env, "status")
        assert rc == 0
        second = small_env.server({"listen": {"pop3": ["127.0.0.1:0"]}}, expect_listeners=99)
        second.check_clean_exit = False
        r = run([poplar_bin(), "serve", "--config", small_env.config_path], timeout=20)
        assert r.returncode == 1
        assert (f"critical: cannot start: control.socket: another server is already answering on {sock} "
                "(is poplar already running?)").encode() in r.stderr
        assert again.alive()
    assert not os.path.exists(sock)   # removed at a clean stop


def test_bad_control_requests_get_errors(small_env):
    with small_env.server() as srv:
        sock = os.path.join(small_env.root, "control.sock")
        def err(text):
            return b"ERR %d\n%s" % (len(text), text)
        cases = {
            b"GET / HTTP/1.0\n": err(b"not a poplar control request"),
            b"POPLAR-CONTROL 2 status\n": err(b"control protocol version 2 is not supported (this server speaks 1)"),
            b"POPLAR-CONTROL 1 shutdown\n": err(b"unknown command"),
            b"POPLAR-CONTROL 1 kick\n": err(b"kick needs an argument"),
            b"POPLAR-CONTROL 1 status now\n": err(b"status takes no argument"),
            b"POPLAR-CONTROL 1 kick a\x01b\n": err(b"control characters in the argument"),
            b"x" * 2000: err(b"request too long"),
        }
        for request, reply in cases.items():
            with socket.socket(socket.AF_UNIX) as s:
                s.settimeout(10)
                s.connect(sock)
                s.sendall(request)
                got = recv_until_close(s)
            assert got == reply, (request, got)
        srv.wait_log(r"warning: control: bad request from uid=\d+ pid=\d+: not a poplar control request")
        assert srv.alive()


@pytest.mark.timeout(30)
def test_silent_control_client_is_dropped(small_env):
    with small_env.server() as srv:
        with socket.socket(socket.AF_UNIX) as s:
            s.settimeout(15)
            s.connect(os.path.join(small_env.root, "control.sock"))
            t0 = time.monotonic()
            assert s.recv(100) == b""
            assert 4 < time.monotonic() - t0 < 10
        rc, _, _ = admin(small_env, "status")
        assert rc == 0


# ---------------------------------------------------------------------------------------------
# systemd Type=notify

def test_sd_notify_ready_reloading_stopping(small_env):
    notify_path = os.path.join(small_env.root, "notify.sock")
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    listener.bind(notify_path)
    listener.settimeout(10)
    small_env.write_config()
    log = open(os.path.join(small_env.root, "notify-serve.log"), "wb")
    proc = subprocess.Popen([poplar_bin(), "serve", "--config", small_env.config_path],
                            stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                            env={**os.environ, "NOTIFY_SOCKET": notify_path})
    try:
        ready = listener.recv(4096).decode()
        assert ready.split("\n")[0] == "READY=1", ready
        assert f"MAINPID={proc.pid}" in ready.split("\n")
        # Ready means serving: the control socket answers at once.
        rc, out, _ = admin(small_env, "status")
        assert rc == 0
        proc.send_signal(signal.SIGHUP)
        assert listener.recv(4096) == b"RELOADING=1"
        assert listener.recv(4096) == b"READY=1"
        proc.send_signal(signal.SIGTERM)
        assert listener.recv(4096) == b"STOPPING=1"
        assert proc.wait(timeout=15) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
        listener.close()
        log.close()


@pytest.mark.timeout(30)
def test_control_client_that_never_closes_is_closed_after_its_reply(small_env):
    with small_env.server():
        with socket.socket(socket.AF_UNIX) as s:
            s.settimeout(15)
            s.connect(os.path.join(small_env.root, "control.sock"))
            s.sendall(b"POPLAR-CONTROL 1 stats\n")
            t0 = time.monotonic()
            got = recv_until_close(s)
            assert got.startswith(b"OK ") and b"\nuptime_seconds " in got
            # The server ended its side at once (EOF right after the reply), not after a timeout.
            assert time.monotonic() - t0 < 1.5
            # ... and closes the connection within the drain deadline even though we never do.
            time.sleep(2.5)
            with pytest.raises((BrokenPipeError, ConnectionResetError)):
                for _ in range(3):
                    s.sendall(b"x" * 65536)
                    time.sleep(0.1)


def test_bad_control_settings_are_named(small_env):
    cases = [
        ({"mode": "0999"}, 'control.mode: "0999" is not an octal file mode like "0660"'),
        ({"mode": 660}, "control.mode: expected a string"),
        ({"socket": "/tmp/" + "s" * 120}, f'control.socket: "/tmp/{"s" * 120}" is longer than the 107 bytes'),
        ({"sockett": "x"}, "control.sockett: unknown key"),
    ]
    for control, message in cases:
        small_env.write_config({"control": control})
        r = run([poplar_bin(), "check", "--config", small_env.config_path])
        assert r.returncode == 1, control
        assert message in r.stderr.decode(), (control, r.stderr)


def test_control_group_that_does_not_exist_stops_the_start(small_env):
    small_env.write_config({"control": {"group": "no-such-group-poplar"}})
    r = run([poplar_bin(), "serve", "--config", small_env.config_path], timeout=20)
    assert r.returncode == 1
    assert b'critical: cannot start: control.group: no group named "no-such-group-poplar"' in r.stderr


def test_control_group_is_applied(small_env):
    if os.geteuid() != 0:
        pytest.skip("needs root to give the socket to another group")
    import grp
    with small_env.server({"control": {"group": "nogroup", "mode": "0660"}}):
        st = os.stat(os.path.join(small_env.root, "control.sock"))
        assert st.st_gid == grp.getgrnam("nogroup").gr_gid
        assert st.st_mode & 0o777 == 0o660
