# The auth process (issue 11; docs/security.md "Processes"): poplar serve is three processes, the
# network process (the one started), the auth supervisor and the auth process, and only the last
# reads the passwd-file and verifies passwords. Read from /proc: who holds which descriptors and
# runs as which user. Killed mid-login, the auth process costs that login a [SYS/TEMP] and is
# started again; the next login works.
import os
import pwd
import re
import signal
import subprocess
import time

import pytest

import corpus
from conftest import USERS, wait_for

SYS_TEMP_AUTH = b"-ERR [SYS/TEMP] authentication temporarily unavailable\r\n"
# SHA512-CRYPT with 4,000,000 rounds: about a second to verify, so a login is still "mid-login"
# when the test kills the auth process. The password is "slow-secret".
SLOW_HASH = ("$6$rounds=4000000$abcdefgh$OP1aThG/xOtvU4quO.GfCnBMGDDRZfCig9X94uSG/DSScQtVArawHdXTqCzR72ZlYljMWyOfR8"
             "YB/oSLCjJqv0")

needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="switching users needs root")


def parent_of(pid):
    stat = open(f"/proc/{pid}/stat").read()
    return int(stat[stat.rindex(")") + 2:].split()[1])


def children(pid):
    out = []
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                if parent_of(int(d)) == pid:
                    out.append(int(d))
            except (OSError, ValueError, IndexError):
                pass
    return out


def comm(pid):
    return open(f"/proc/{pid}/comm").read().strip()


def layout(srv):
    """{"network": pid, "supervisor": pid, "auth": pid} of a running server."""
    def find():
        sup = [p for p in children(srv.proc.pid) if comm(p) == "poplar-authsup"]
        if len(sup) != 1:
            return None
        auth = [p for p in children(sup[0]) if comm(p) == "poplar-auth"]
        return {"network": srv.proc.pid, "supervisor": sup[0], "auth": auth[0]} if len(auth) == 1 else None
    return wait_for(find, what="the auth supervisor and auth process in /proc")


def fd_targets(pid):
    out = []
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            out.append(os.readlink(f"/proc/{pid}/fd/{fd}"))
        except OSError:
            pass
    return out


def inet_socket_inodes():
    """Inodes of every TCP and UDP socket on the machine (IPv4 and IPv6)."""
    inodes = set()
    for name in ("tcp", "tcp6", "udp", "udp6"):
        with open(f"/proc/net/{name}") as f:
            next(f)
            for line in f:
                inodes.add(line.split()[9])
    return inodes


def socket_inodes(pid):
    return {m.group(1) for t in fd_targets(pid) if (m := re.fullmatch(r"socket:\[(\d+)\]", t))}


def ids(pid):
    status = open(f"/proc/{pid}/status").read()
    uids = re.search(r"^Uid:\s+(.*)$", status, re.M).group(1).split()
    groups = re.search(r"^Groups:[ \t]*(.*)$", status, re.M).group(1).split()
    return uids, groups


def test_only_the_network_process_touches_the_network_and_only_the_auth_process_the_passwords(small_env):
    with small_env.server() as srv:
        with srv.connect() as c:  # one login first: the auth process has read and verified
            c.greeting()
            c.login("alice")
            procs = layout(srv)
            inet = inet_socket_inodes()
            net_fds = fd_targets(procs["network"])
            # The network process: the listeners and this session; never the passwd-file.
            assert socket_inodes(procs["network"]) & inet
            assert not [t for t in net_fds if t == small_env.passwd], net_fds
            for role in ("supervisor", "auth"):
                fds = fd_targets(procs[role])
                # No TCP or UDP socket (only its Unix sockets to the network process), and none
                # of the network's files: not the private key, not a maildrop.
                assert not socket_inodes(procs[role]) & inet, (role, fds)
                assert small_env.key not in fds and small_env.cert not in fds, (role, fds)
                assert not [t for t in fds if t.startswith(small_env.root + "/mail")], (role, fds)
                unix = socket_inodes(procs[role])
                assert len(unix) == len(socket_inodes(procs[role]))
            # One socket per event loop (conftest runs 2), shared by the supervisor and the
            # auth process, so a restarted auth process finds the same ones.
            assert socket_inodes(procs["supervisor"]) == socket_inodes(procs["auth"])
            assert len(socket_inodes(procs["auth"])) == 2
            c.cmd("QUIT")
        srv.wait_log(r"info: auth process: ready, generation 1, uid \d+, 2 channels")




@needs_root
def test_each_process_runs_as_its_own_user_and_the_passwd_file_is_the_auth_users_alone(open_env):
    nobody = pwd.getpwnam("nobody")
    daemon = pwd.getpwnam("daemon")
    env = open_env
    env.fill("bob", corpus.small_messages()[:3])
    for d, _, files in os.walk(env.maildir("bob")):
        os.chown(d, nobody.pw_uid, nobody.pw_gid)
        for f in files:
            os.chown(os.path.join(d, f), nobody.pw_uid, nobody.pw_gid)
    os.chown(env.passwd, daemon.pw_uid, daemon.pw_gid)
    os.chmod(env.passwd, 0o600)  # the auth user's alone
    state = os.path.join(env.root, "state")
    os.mkdir(state)
    os.chown(state, daemon.pw_uid, daemon.pw_gid)  # the familiar addresses are the auth process's
    os.chown(env.key, nobody.pw_uid, nobody.pw_gid)
    srv = env.server({"server": {"allow_root": None, "user": "nobody", "state_directory": "state"},
                      "auth": {"process_user": "daemon"}})
    srv.check_clean_exit = False  # the control socket, made as root, cannot be removed as nobody
    with srv:
        srv.wait_log(r"info: privileges dropped: user=nobody")
        procs = layout(srv)
        assert ids(procs["network"]) == ([str(nobody.pw_uid)] * 4, [])
        assert ids(procs["auth"]) == ([str(daemon.pw_uid)] * 4, [])
        assert ids(procs["supervisor"])[0] == ["0"] * 4  # to start auth processes as daemon
        # Not dumpable: /proc/PID/ of the auth process belongs to root, so the network process
        # (or anything else of the same user) can neither ptrace it nor read its memory.
        assert os.stat(f"/proc/{procs['auth']}/fd").st_uid == 0
        # What the network process's user may open: not the passwd-file, not /etc/shadow.
        for path in (env.passwd, "/etc/shadow"):
            r = subprocess.run(["setpriv", f"--reuid={nobody.pw_uid}", f"--regid={nobody.pw_gid}", "--clear-groups",
                                "cat", path], capture_output=True)
            assert r.returncode != 0 and b"Permission denied" in r.stderr, (path, r)
        with srv.connect() as c:
            c.greeting()
            c.login("bob")
            assert c.cmd("STAT").startswith(b"+OK 3 ")
            first, raw = c.cmd_multi("RETR 1")
            assert first.startswith(b"+OK") and raw.endswith(b".\r\n")
            c.cmd("QUIT")
        srv.wait_log(rf"info: auth process: ready, generation 1, uid {daemon.pw_uid}, 2 channels")


def test_the_auth_process_killed_mid_login_costs_that_login_a_sys_temp_and_comes_back(small_env):
    small_env.write_passwd({"demo": "{PLAIN}" + USERS["demo"][1], "slow": "{SHA512-CRYPT}" + SLOW_HASH})
    with small_env.server() as srv:
        with srv.connect() as c:
            c.greeting()
            first = layout(srv)["auth"]
            assert c.cmd("USER slow") == b"+OK\r\n"
            c.send(b"PASS slow-secret\r\n")
            time.sleep(0.3)  # the hash is being computed in the auth process now
            os.kill(first, signal.SIGKILL)
            killed = time.monotonic()
            assert c.readline() == SYS_TEMP_AUTH
            # At once, not when a timeout ran out or the hash would have finished.
            assert time.monotonic() - killed < 0.8
            srv.wait_log(rf"error: auth process \(pid {first}, generation 1\) killed by signal 9 \(Killed\); logins "
                         r"fail with \[SYS/TEMP\] until it is back")
            srv.wait_log(r"info: auth process generation 2 is up")
            assert layout(srv)["auth"] != first
            # The next login works, on the same connection and on a new one, the slow user's too.
            c.login("demo")
            assert c.cmd("QUIT").startswith(b"+OK")
        with srv.connect() as c:
            c.greeting()
            assert c.cmd("USER slow") == b"+OK\r\n"
            assert c.cmd("PASS slow-secret").startswith(b"+OK")
            c.cmd("QUIT")


def test_a_login_while_the_auth_process_is_down_is_refused_at_once(small_env):
    with small_env.server() as srv, srv.connect() as c:
        c.greeting()
        procs = layout(srv)
        # Stopped, then killed: the supervisor starts the next one only after it is reaped, and
        # a stopped process is not; logins meanwhile must not wait for it.
        os.kill(procs["auth"], signal.SIGSTOP)
        os.kill(procs["auth"], signal.SIGKILL)
        srv.wait_log(r"killed by signal 9")
        assert c.cmd("USER demo") == b"+OK\r\n"
        t = time.monotonic()
        reply = c.cmd(f"PASS {USERS['demo'][1]}")
        # Either refused at once (down) or served by its successor, never a hang.
        assert reply in (SYS_TEMP_AUTH, b"+OK logged in\r\n") or reply.startswith(b"+OK"), reply
        assert time.monotonic() - t < 2
        srv.wait_log(r"info: auth process generation 2 is up")
        with srv.connect() as c2:
            c2.greeting()
            c2.login("bob")


def test_killing_serve_stops_its_auth_processes(small_env):
    srv = small_env.server()
    srv.check_clean_exit = False
    with srv:
        procs = layout(srv)
        os.kill(procs["network"], signal.SIGKILL)
        srv.proc.wait(timeout=10)
        wait_for(lambda: not os.path.exists(f"/proc/{procs['supervisor']}") and
                 not os.path.exists(f"/proc/{procs['auth']}"), timeout=10, what="the auth processes to exit")


def test_a_reload_the_auth_process_refuses_is_refused_whole(small_env):
    from test_admin import admin
    with small_env.server() as srv:
        good = open(small_env.passwd).read()
        with open(small_env.passwd, "a") as f:
            f.write("no colon here\n")
        rc, out, err = admin(small_env, "reload")
        assert rc != 0
        line = good.count("\n") + 1
        assert f"auth.passwd_file: {small_env.passwd}:{line}: expected user:password" in err, err
        srv.wait_log(r"error: reload refused, the running configuration stays: auth\.passwd_file: ")
        with open(small_env.passwd, "w") as f:
            f.write(good)
        rc, out, err = admin(small_env, "reload")
        assert rc == 0, err
        srv.wait_log(r"info: auth process: reloaded ")
        with srv.connect() as c:
            c.greeting()
            c.login("demo")


def test_process_group_without_process_user_is_a_config_error(small_env):
    from conftest import poplar_bin
    cfg = small_env.write_config({"auth": {"process_group": "nogroup"}})
    r = subprocess.run([poplar_bin(), "check", "--config", cfg], capture_output=True, text=True, timeout=30)
    assert r.returncode == 1
    assert ("auth.process_group: needs auth.process_user: the group is the one the auth process switches to "
            "with it") in r.stderr


@needs_root
def test_an_unknown_process_user_is_refused_before_anything_starts(small_env):
    from conftest import poplar_bin
    cfg = small_env.write_config({"auth": {"process_user": "no-such-auth-user"}})
    r = subprocess.run([poplar_bin(), "serve", "--config", cfg], capture_output=True, text=True, timeout=30)
    assert r.returncode == 1, r
    out = r.stdout + r.stderr
    assert 'critical: cannot start: auth.process_user: no such user "no-such-auth-user"' in out
    assert "listening:" not in out and "auth process: ready" not in out


def test_stopping_with_an_exchange_half_done_is_clean(small_env):
    # An AUTH LOGIN waiting for its password holds an exchange in the auth process; the session
    # ends with the server and its end is sent on a channel that is closed by then (ASan in CI
    # would see a use after free if the channel went first).
    with small_env.server() as srv:
        with srv.connect() as c:
            c.greeting()
            assert c.cmd("AUTH LOGIN") == b"+ VXNlcm5hbWU6\r\n"  # "Username:"
            assert c.cmd("ZGVtbw==") == b"+ UGFzc3dvcmQ6\r\n"  # "demo" -> "Password:"
            srv.stop()
            assert c.readline() == b"-ERR [SYS/TEMP] server shutting down\r\n"
    srv.assert_clean()
