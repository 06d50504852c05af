"""Mail is sacred: SIGKILL at any point of a QUIT (or of a first login) loses no message that was
not deleted, leaves no torn file, and leaves a maildrop the next session reads with the same
UIDLs (docs/security.md, "Mail safety")."""

import os
import signal
import time

import pytest

from conftest import USERS

MESSAGES = 300


def make_maildrop(env, user="demo", count=MESSAGES):
    """Writes `count` distinct LF messages into user's new/; returns {file name: bytes}."""
    root = env.maildir(user)
    for sub in ("new", "cur", "tmp"):
        os.makedirs(os.path.join(root, sub), exist_ok=True)
    originals = {}
    for i in range(count):
        body = (f"From: sender{i}@example.org\nTo: {user}@example.org\nSubject: message {i}\n\n"
                + "".join(f"line {j} of message {i}\n" for j in range(20 + i % 17)))
        data = body.encode()
        name = f"{1700000000 + i}.M{i}P1.crashtest,S={len(data)}"
        with open(os.path.join(root, "new", name), "wb") as f:
            f.write(data)
        originals[name] = data
    return originals


def base_name(file_name):
    return file_name.split(":", 1)[0]


def surviving(env, user="demo"):
    """{base name: bytes} of every message file now in new/ or cur/."""
    root = env.maildir(user)
    out = {}
    for sub in ("new", "cur"):
        for n in os.listdir(os.path.join(root, sub)):
            with open(os.path.join(root, sub, n), "rb") as f:
                out[base_name(n)] = f.read()
    return out


def uidl_map(srv, user="demo"):
    """The UIDLs of the maildrop in msn order, through a real session."""
    with srv.connect() as c:
        c.greeting()
        c.login(user, USERS[user][1])
        first, raw = c.cmd_multi("UIDL")
        assert first == b"+OK unique-id listing follows\r\n"
        assert c.cmd("QUIT") == b"+OK signing off\r\n"
    lines = raw.split(b"\r\n")
    assert lines[-2:] == [b".", b""]
    return [l.split(b" ", 1)[1] for l in lines[:-2]]


def assert_intact(env, originals, user="demo"):
    now = surviving(env, user)
    for name, data in now.items():
        assert name in originals, f"unexpected file {name}"
        assert data == originals[name], f"{name} was changed or torn"


@pytest.mark.parametrize("delay_ms", [0, 1, 3, 8, 20, 60])
def test_sigkill_during_quit_loses_nothing(env, delay_ms):
    originals = make_maildrop(env)
    with env.server(check_clean_exit=False) as srv:
        before = uidl_map(srv)  # indexes the maildrop and records every UIDL
        assert len(before) == MESSAGES
        with srv.connect() as c:
            c.greeting()
            c.login("demo", USERS["demo"][1])
            # Delete every other message, then QUIT and kill the server while it removes them.
            batch = b"".join(b"DELE %d\r\n" % n for n in range(1, MESSAGES + 1, 2))
            c.send(batch)
            for n in range(1, MESSAGES + 1, 2):
                assert c.readline() == b"+OK message %d deleted\r\n" % n
            c.send(b"QUIT\r\n")
            time.sleep(delay_ms / 1000.0)
            srv.proc.send_signal(signal.SIGKILL)
            srv.proc.wait(timeout=10)

    # Every file left is exactly one of the originals; every message not deleted is still there.
    assert_intact(env, originals)
    now = surviving(env)
    kept_names = sorted(originals)[1::2]  # msn 2, 4, ...: base names sort in delivery order
    for name in kept_names:
        assert name in now, f"message {name} was never deleted but is gone"

    # The maildrop is not corrupt: a new server serves it, and surviving messages keep their UIDL.
    with env.server() as srv2:
        after = uidl_map(srv2)
        assert len(after) == len(now)
        assert set(after) <= set(before), "a surviving message got a new UIDL"
        assert len(set(after)) == len(after)
        with srv2.connect() as c:
            c.greeting()
            c.login("demo", USERS["demo"][1])
            stat = c.cmd("STAT")
            assert stat.startswith(b"+OK %d " % len(now))
            assert c.cmd("QUIT") == b"+OK signing off\r\n"


@pytest.mark.parametrize("delay_ms", [0, 2, 10])
def test_sigkill_during_first_login_keeps_maildrop_usable(env, delay_ms):
    originals = make_maildrop(env, count=2000)
    with env.server(check_clean_exit=False) as srv:
        with srv.connect() as c:
            c.greeting()
            c.send(b"USER demo\r\nPASS %s\r\n" % USERS["demo"][1].encode())
            time.sleep(delay_ms / 1000.0)
            srv.proc.send_signal(signal.SIGKILL)
            srv.proc.wait(timeout=10)
    assert surviving(env) == originals
    with env.server() as srv2:
        first = uidl_map(srv2)
        assert len(first) == len(originals)
        assert len(set(first)) == len(first)
        assert uidl_map(srv2) == first
