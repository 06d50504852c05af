# The README's quick start: `poplar serve` without --config makes the embedded demo, prints how to
# connect and administer it, and every command it prints works as printed.
import os
import re
import shlex
import signal
import socket
import subprocess
import time

import pytest

from conftest import poplar_bin, run

DEMO_PORTS = (1110, 1995, 2424)


def ports_free():
    for port in DEMO_PORTS:
        with socket.socket() as s:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                return False
    return True


@pytest.mark.timeout(90)
def test_demo_prints_commands_that_work(tmp_path):
    assert ports_free(), "the demo's ports 127.0.0.1:1110/1995/2424 are in use (is a demo running?)"
    state = tmp_path / "state"
    log_path = tmp_path / "demo.log"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen([poplar_bin(), "serve", "--state-dir", str(state)], stdin=subprocess.DEVNULL,
                                stdout=log, stderr=subprocess.STDOUT, cwd=tmp_path, start_new_session=True)
    try:
        deadline = time.monotonic() + 20
        text = ""
        while "listening: control" not in text or "Stop with Ctrl-C" not in text:
            assert proc.poll() is None, text
            assert time.monotonic() < deadline, text
            time.sleep(0.05)
            text = log_path.read_text()
        password = re.search(r"^  account: demo / (\S+)$", text, re.M).group(1)
        commands = re.findall(r"^  POP3S? [^:]+:\d+(?: \(STLS\))?:  (curl .*)$", text, re.M)
        assert len(commands) == 2, text
        pop3s = shlex.split(commands[0])
        lst = run(pop3s, timeout=30)
        assert lst.returncode == 0, lst.stderr
        listing = lst.stdout.decode().splitlines()
        assert [l.split()[0] for l in listing] == ["1", "2", "3"], listing
        stls = shlex.split(commands[1])
        retr = run(stls, timeout=30)
        assert retr.returncode == 0, retr.stderr
        assert re.search(rb"^Subject: ", retr.stdout, re.M), retr.stdout[:300]
        # The printed admin command, as printed.
        status_line = re.search(r"^    (\S+ status --config \S+)$", text, re.M).group(1)
        st = run(shlex.split(status_line), timeout=30)
        assert st.returncode == 0, st.stderr
        assert f"pid: {proc.pid}" in st.stdout.decode()
        assert password in (state / "demo-password").read_text()
        # The printed delivery commands, as printed (through a shell, as a user pastes them):
        # two more messages, the fourth and fifth.
        deliver_line = re.search(r"^    (printf .* deliver -u demo .*)$", text, re.M).group(1)
        lmtp_line = re.search(r"^    or over LMTP 127\.0\.0\.1:2424: (python3 -c .*)$", text, re.M).group(1)
        for line in (deliver_line, lmtp_line):
            r = subprocess.run(["/bin/sh", "-c", line], capture_output=True, timeout=30)
            assert r.returncode == 0, (line, r.stderr)
        after = run(pop3s, timeout=30)
        assert [l.split()[0] for l in after.stdout.decode().splitlines()] == ["1", "2", "3", "4", "5"], after.stdout
        assert "lmtp delivered: user=\"demo\" to=<demo> from=<me@example.org>" in log_path.read_text()
        # The config it offers to copy is complete on its own.
        cfg = re.search(r"The config to copy and edit: (\S+)$", text, re.M).group(1)
        assert cfg == str(state / "poplar.toml")
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=15) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=5)
