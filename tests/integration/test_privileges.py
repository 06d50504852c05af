# Starting as root (issue 11): without server.user (or server.allow_root) serve refuses; with it,
# the ports are bound as root and the process then runs as that user with no supplementary
# groups, read from /proc, and mail still flows. CI runs as root; elsewhere these are skipped.
import os
import pwd
import re
import subprocess

import pytest

import corpus
from conftest import poplar_bin

needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="starting as root needs root")


def proc_ids(pid):
    status = open(f"/proc/{pid}/status").read()
    uids = re.search(r"^Uid:\s+(.*)$", status, re.M).group(1).split()
    gids = re.search(r"^Gid:\s+(.*)$", status, re.M).group(1).split()
    groups = re.search(r"^Groups:[ \t]*(.*)$", status, re.M).group(1).split()
    return uids, gids, groups




@needs_root
def test_root_without_server_user_is_refused(small_env):
    cfg = small_env.write_config({"server": {"allow_root": None}})
    r = subprocess.run([poplar_bin(), "serve", "--config", cfg], capture_output=True, text=True, timeout=30)
    assert r.returncode == 1, r
    assert ("critical: cannot start: running as root: set server.user to the unprivileged user to switch to once "
            "the ports are bound (or server.allow_root = true to stay root)") in r.stdout + r.stderr


@needs_root
def test_an_unknown_server_user_is_refused_before_binding(small_env):
    cfg = small_env.write_config({"server": {"allow_root": None, "user": "no-such-user-here"}})
    r = subprocess.run([poplar_bin(), "serve", "--config", cfg], capture_output=True, text=True, timeout=30)
    assert r.returncode == 1, r
    out = r.stdout + r.stderr
    assert 'critical: cannot start: server.user: no such user "no-such-user-here"' in out
    assert "listening:" not in out


def test_group_without_user_is_a_config_error(small_env):
    cfg = small_env.write_config({"server": {"group": "nogroup"}})
    r = subprocess.run([poplar_bin(), "check", "--config", cfg], capture_output=True, text=True, timeout=30)
    assert r.returncode != 0
    assert "server.group: needs server.user: the group is the one the server switches to with it" in r.stderr


@needs_root
def test_server_user_runs_the_sessions_unprivileged(open_env):
    nobody = pwd.getpwnam("nobody")
    env = open_env
    env.fill("bob", corpus.small_messages()[:4])
    for d, _, files in os.walk(env.maildir("bob")):
        os.chown(d, nobody.pw_uid, nobody.pw_gid)
        for f in files:
            os.chown(os.path.join(d, f), nobody.pw_uid, nobody.pw_gid)
    os.chown(env.passwd, 0, nobody.pw_gid)
    os.chmod(env.passwd, 0o640)
    state = os.path.join(env.root, "state")
    os.mkdir(state)
    os.chown(state, nobody.pw_uid, nobody.pw_gid)
    srv = env.server({"server": {"allow_root": None, "user": "nobody", "state_directory": "state"}})
    srv.check_clean_exit = False  # the control socket, made as root, cannot be removed as nobody
    with srv:
        srv.wait_log(rf"info: privileges dropped: user=nobody uid={nobody.pw_uid} gid={nobody.pw_gid} "
                     r"supplementary_groups=none")
        uids, gids, groups = proc_ids(srv.proc.pid)
        assert uids == [str(nobody.pw_uid)] * 4
        assert gids == [str(nobody.pw_gid)] * 4
        assert groups == []
        with srv.connect() as c:
            c.greeting()
            c.login("bob")
            assert c.cmd("STAT").startswith(b"+OK 4 ")
            first, raw = c.cmd_multi("RETR 1")
            assert first.startswith(b"+OK") and raw.endswith(b".\r\n")
            c.cmd("QUIT")
        srv.wait_log(r'login: user="bob" rip=127\.0\.0\.1')
        assert "running as root" not in srv.log()
