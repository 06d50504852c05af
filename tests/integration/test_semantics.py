# Maildrop semantics: deletion only at QUIT, UIDL stability, concurrent sessions in both locking
# modes, idle timeouts and shutdown.
import os
import re
import signal
import time

import pytest

import corpus
from conftest import fetch_all, match_corpus


def login(srv, user="demo"):
    c = srv.connect()
    c.greeting()
    c.login(user)
    return c


def uidl_map(c):
    first, raw = c.cmd_multi("UIDL")
    assert first == b"+OK unique-id listing follows\r\n"
    out = {}
    for l in raw.split(b"\r\n")[:-2]:
        n, u = l.split(b" ")
        out[int(n)] = u
    return out


def content_by_uid(srv, user="demo"):
    c = login(srv, user)
    with c:
        uids = uidl_map(c)
        by_msn = fetch_all(c)
        assert c.cmd("QUIT") == b"+OK signing off\r\n"
    return {uids[n]: by_msn[n] for n in uids}


def test_dele_rset_undeletes(small_env):
    with small_env.server() as srv:
        with login(srv) as c:
            assert c.cmd("DELE 1") == b"+OK message 1 deleted\r\n"
            assert c.cmd("DELE 5") == b"+OK message 5 deleted\r\n"
            assert c.cmd("STAT").startswith(b"+OK 10 ")
            assert c.cmd("RSET").startswith(b"+OK maildrop has 12 messages ")
            assert c.cmd("LIST 1").startswith(b"+OK 1 ")
            assert c.cmd("RETR 5").startswith(b"+OK ")
            c.read_multiline_raw()
            assert c.cmd("QUIT") == b"+OK signing off\r\n"
        srv.wait_log(r"session end: user=\"demo\" .*dele=0 .*reason=quit")
    assert len(small_env.files("demo")) == 12


def test_dele_quit_removes_files(small_env):
    msgs = corpus.small_messages()
    with small_env.server() as srv:
        with login(srv) as c:
            by_msn = match_corpus(fetch_all(c), msgs)
            assert c.cmd("DELE 2") == b"+OK message 2 deleted\r\n"
            assert c.cmd("DELE 7") == b"+OK message 7 deleted\r\n"
            assert c.cmd("QUIT") == b"+OK signing off\r\n"
            c.assert_closed()
        gone = {by_msn[2].name, by_msn[7].name}
        left = [m for m in msgs if m.name not in gone]
        assert len(small_env.files("demo")) == 10
        remaining = {small_env.maildirs["demo"][os.path.join(small_env.maildir("demo"), f)].name
                     for f in small_env.files("demo")}
        assert remaining == {m.name for m in left}
        with login(srv) as c:
            match_corpus(fetch_all(c), left)
        srv.wait_log(r'session end: user="demo" rip=127\.0\.0\.1 retr=12/\d+ top=0 dele=2 in=\d+ '
                     r'out=\d+ duration=\d+\.\d+s reason=quit')


def test_dele_then_disconnect_removes_nothing(small_env):
    with small_env.server() as srv:
        c = login(srv)
        assert c.cmd("DELE 1") == b"+OK message 1 deleted\r\n"
        assert c.cmd("DELE 2") == b"+OK message 2 deleted\r\n"
        c.close()
        srv.wait_log(r'session end: user="demo" .*dele=0 ')
        with login(srv) as c:
            assert c.cmd("STAT").startswith(b"+OK 12 ")
    assert len(small_env.files("demo")) == 12


def test_dele_then_sigterm_removes_nothing(small_env):
    srv = small_env.server().start()
    c = login(srv)
    assert c.cmd("DELE 1") == b"+OK message 1 deleted\r\n"
    t = time.monotonic()
    srv.proc.send_signal(signal.SIGTERM)
    assert c.readline() == b"-ERR [SYS/TEMP] server shutting down\r\n"
    c.assert_closed()
    c.close()
    # A session in AUTHORIZATION is told too; new connections are refused once stopping.
    rc = srv.stop()
    assert time.monotonic() - t < 2 + 3, "exit within the grace period"
    srv.assert_clean(rc)
    assert len(small_env.files("demo")) == 12


def test_sigterm_tells_every_session(small_env):
    srv = small_env.server().start()
    idle = srv.connect()
    idle.greeting()
    busy = login(srv, "bob")
    srv.proc.send_signal(signal.SIGINT)
    for c in (idle, busy):
        assert c.readline() == b"-ERR [SYS/TEMP] server shutting down\r\n"
        c.assert_closed()
        c.close()
    srv.assert_clean(srv.stop())


def test_deleted_message_vanishes_from_listings(small_env):
    with small_env.server() as srv, login(srv) as c:
        before = uidl_map(c)
        assert c.cmd("DELE 3") == b"+OK message 3 deleted\r\n"
        after = uidl_map(c)
        assert 3 not in after and {k: v for k, v in before.items() if k != 3} == after
        for cmd in ("LIST 3", "RETR 3", "TOP 3 1", "UIDL 3"):
            assert c.cmd(cmd) == b"-ERR message 3 is deleted\r\n"
        # Message numbers do not shift (RFC 1939 §5)
        assert c.cmd("UIDL 4") == b"+OK 4 " + before[4] + b"\r\n"


def test_uidl_stable_across_sessions_and_restarts(small_env):
    with small_env.server() as srv:
        first = content_by_uid(srv)
        assert len(first) == 12 and len(set(first)) == 12
        for uid in first:
            assert re.fullmatch(rb"[\x21-\x7e]{1,70}", uid), uid
        assert content_by_uid(srv) == first
    with small_env.server() as srv:
        assert content_by_uid(srv) == first
        new = corpus.Message("new", b"From: new@test.invalid\nSubject: new\n\nbrand new\n")
        small_env.add_message("demo", new, 100)
        third = content_by_uid(srv)
        assert len(third) == 13
        new_uids = set(third) - set(first)
        assert len(new_uids) == 1
        assert third[new_uids.pop()] == new.wire
        assert {u: w for u, w in third.items() if u in first} == first
    # uids are per message, not per position: delete one and the others keep theirs
    with small_env.server() as srv:
        with login(srv) as c:
            assert c.cmd("DELE 1") == b"+OK message 1 deleted\r\n"
            assert c.cmd("QUIT") == b"+OK signing off\r\n"
        fourth = content_by_uid(srv)
        assert len(fourth) == 12
        assert all(third[u] == w for u, w in fourth.items())


def test_snapshot_two_sessions(small_env):
    with small_env.server({"storage": {"locking": "snapshot"}}) as srv:
        a = login(srv)
        b = login(srv)
        uids_a, uids_b = uidl_map(a), uidl_map(b)
        assert uids_a == uids_b
        size3 = a.cmd("LIST 3")
        assert a.cmd("DELE 3") == b"+OK message 3 deleted\r\n"
        assert a.cmd("QUIT") == b"+OK signing off\r\n"
        a.assert_closed()
        a.close()
        # b's snapshot still lists message 3, but its file is gone.
        assert b.cmd("LIST 3") == size3
        assert b.cmd("RETR 3") == b"-ERR [SYS/TEMP] message is no longer available\r\n"
        assert b.cmd("TOP 3 0") == b"-ERR [SYS/TEMP] message is no longer available\r\n"
        assert b.cmd("RETR 4").startswith(b"+OK ")
        b.read_multiline_raw()
        assert b.cmd("DELE 4") == b"+OK message 4 deleted\r\n"
        assert b.cmd("QUIT") == b"+OK signing off\r\n"
        b.assert_closed()
        b.close()
        with login(srv) as c:
            assert c.cmd("STAT").startswith(b"+OK 10 ")
            left = set(uidl_map(c).values())
            assert uids_a[3] not in left and uids_a[4] not in left


def test_snapshot_both_delete_same_message(small_env):
    with small_env.server() as srv:
        a, b = login(srv), login(srv)
        assert a.cmd("DELE 1") == b"+OK message 1 deleted\r\n"
        assert b.cmd("DELE 1") == b"+OK message 1 deleted\r\n"
        assert a.cmd("QUIT") == b"+OK signing off\r\n"
        # The message is already gone: that is what b wanted, so QUIT succeeds.
        assert b.cmd("QUIT") == b"+OK signing off\r\n"
        a.close(), b.close()
    assert len(small_env.files("demo")) == 11


@pytest.mark.parametrize("settled", [False, True], ids=["listed", "from-index"])
def test_exclusive_locking(small_env, settled):
    if settled:
        settle(small_env)  # then every login below but the first opens from the uid index
    with small_env.server({"storage": {"locking": "exclusive"}}) as srv:
        if settled:
            with login(srv) as first:
                assert first.cmd("QUIT") == b"+OK signing off\r\n"
        a = login(srv)
        with srv.connect() as b:
            b.greeting()
            assert b.cmd("USER demo") == b"+OK\r\n"
            assert b.cmd("PASS demo-secret") == b"-ERR [IN-USE] maildrop is locked by another session\r\n"
            # another user's maildrop is not affected
            b.login("bob")
        assert a.cmd("QUIT") == b"+OK signing off\r\n"
        # No pause: the lock is released before the QUIT reply is sent, so a client that
        # reconnects at once (a fetchmail poll loop) is not told [IN-USE].
        with login(srv) as c:
            assert c.cmd("STAT").startswith(b"+OK 12 ")
            assert c.cmd("QUIT") == b"+OK signing off\r\n"
        a.close()
        # A dropped connection releases the lock too.
        d = login(srv)
        d.close()
        srv.wait_log(r'session end: user="demo" .*reason=(?!quit)')
        with login(srv) as c:
            assert c.cmd("QUIT") == b"+OK signing off\r\n"


def test_login_timeout(small_env):
    with small_env.server({"pop3": {"login_timeout": "1s"}}) as srv, srv.connect() as c:
        c.greeting()
        t = time.monotonic()
        assert c.readline() == b"-ERR autologout: idle for too long\r\n"
        c.assert_closed()
        assert 0.8 <= time.monotonic() - t < 5


def test_login_timeout_is_idle_not_total(small_env):
    with small_env.server({"pop3": {"login_timeout": "1s"}}) as srv, srv.connect() as c:
        c.greeting()
        for _ in range(4):
            time.sleep(0.5)
            assert c.cmd("CAPA").startswith(b"+OK")
            c.read_multiline_raw()
        c.login()  # after login the (10 min) transaction timer applies
        time.sleep(1.5)
        assert c.cmd("NOOP") == b"+OK\r\n"


def test_transaction_idle_timeout_deletes_nothing(small_env):
    # RFC 1939 §3 wants at least 10 minutes; a test cannot wait that long, so use a short value
    # if the config accepts one.
    small_env.write_config({"pop3": {"idle_timeout": "2s"}})
    from conftest import run, poplar_bin
    r = run([poplar_bin(), "check", "--config", small_env.config_path], timeout=30)
    if r.returncode != 0:
        pytest.skip("config refuses idle_timeout below the RFC minimum: " + r.stderr.decode(errors="replace"))
    with small_env.server({"pop3": {"idle_timeout": "2s"}}) as srv:
        c = login(srv)
        assert c.cmd("DELE 1") == b"+OK message 1 deleted\r\n"
        assert c.readline() == b"-ERR autologout: idle for too long\r\n"
        c.assert_closed()
        c.close()
    assert len(small_env.files("demo")) == 12


def test_message_file_vanished_reports_sys_temp(small_env):
    with small_env.server() as srv, login(srv) as c:
        by_msn = fetch_all(c)
        # Remove one file behind the server's back (another process expunged it).
        target = None
        for path, m in small_env.maildirs["demo"].items():
            if m.wire == by_msn[2]:
                target = path
        os.unlink(target)
        assert c.cmd("RETR 2") == b"-ERR [SYS/TEMP] message is no longer available\r\n"
        assert c.cmd("NOOP") == b"+OK\r\n"
        assert c.cmd("DELE 2") == b"+OK message 2 deleted\r\n"
        assert c.cmd("QUIT") == b"+OK signing off\r\n"


def test_maildir_missing_for_valid_user(env):
    # dave exists in the passwd file but has no Maildir: an empty maildrop or a clear error.
    env.write_passwd({"demo": "{PLAIN}demo-secret", "dave": "{PLAIN}dave-secret"})
    env.fill("demo", corpus.small_messages()[:2])
    with env.server() as srv, srv.connect() as c:
        c.greeting()
        assert c.cmd("USER dave") == b"+OK\r\n"
        r = c.cmd("PASS dave-secret")
        assert r in (b"+OK maildrop has 0 messages (0 octets)\r\n",
                     b"-ERR [SYS/PERM] maildrop unavailable\r\n",
                     b"-ERR [SYS/TEMP] maildrop temporarily unavailable\r\n"), r


def test_files_in_tmp_and_dotfiles_are_not_messages(small_env):
    d = small_env.maildir("bob")
    with open(os.path.join(d, "tmp", "1700009999.M1P1.test.invalid"), "wb") as f:
        f.write(b"Subject: half delivered\n\n")
    with open(os.path.join(d, "new", ".hidden"), "wb") as f:
        f.write(b"Subject: dotfile\n\n")
    with small_env.server() as srv, login(srv, "bob") as c:
        assert c.cmd("STAT").startswith(b"+OK 4 ")


def test_quit_reports_removal_failure(small_env):
    with small_env.server() as srv, login(srv, "bob") as c:
        by_msn = fetch_all(c)
        assert c.cmd("DELE 1") == b"+OK message 1 deleted\r\n"
        assert c.cmd("DELE 2") == b"+OK message 2 deleted\r\n"
        # Make message 1 impossible to unlink: swap its file for a non-empty directory.
        target = next(p for p, m in small_env.maildirs["bob"].items() if m.wire == by_msn[1])
        os.unlink(target)
        os.mkdir(target)
        with open(os.path.join(target, "keep"), "w") as f:
            f.write("x")
        assert c.cmd("QUIT") == b"-ERR [SYS/TEMP] some deleted messages were not removed\r\n"
        c.assert_closed()
    assert os.path.isdir(target)
    other = next(p for p, m in small_env.maildirs["bob"].items() if m.wire == by_msn[2])
    assert not os.path.exists(other), "the removable message is removed"


def test_maildir_not_a_directory_is_sys_perm(env):
    env.write_passwd({"demo": "{PLAIN}demo-secret", "erin": "{PLAIN}erin-secret"})
    env.fill("demo", corpus.small_messages()[:2])
    with open(env.maildir("erin"), "w") as f:
        f.write("a file where the Maildir should be")
    with env.server() as srv, srv.connect() as c:
        c.greeting()
        assert c.cmd("USER erin") == b"+OK\r\n"
        assert c.cmd("PASS erin-secret") == b"-ERR [SYS/PERM] maildrop unavailable\r\n"
        c.login("demo")


def test_new_message_during_session_is_not_visible_until_next(small_env):
    with small_env.server() as srv:
        with login(srv, "bob") as c:
            stat = c.cmd("STAT")
            uids = uidl_map(c)
            new = corpus.Message("new", b"From: n@test.invalid\n\nnew\n")
            small_env.add_message("bob", new, 300)
            assert c.cmd("STAT") == stat
            assert uidl_map(c) == uids
            assert c.cmd("LIST 5") == b"-ERR no such message\r\n"
            assert c.cmd("QUIT") == b"+OK signing off\r\n"
        with login(srv, "bob") as c:
            assert c.cmd("STAT").startswith(b"+OK 5 ")
            after = uidl_map(c)
            assert {k: v for k, v in after.items() if k <= 4} == uids or set(uids.values()) <= set(after.values())


def settle(env, user="demo"):
    """Backdates new/ and cur/ past the quiet period (storage/maildir/maildir_sync.h), so that a
    login records their mtimes and later logins can take the maildrop from its uid index alone
    (on the event loop, when the kernel has it cached)."""
    past = time.time() - 60
    for sub in ("new", "cur"):
        os.utime(os.path.join(env.maildir(user), sub), (past, past))


def test_settled_maildrop_is_served_from_its_index(small_env):
    settle(small_env)
    with small_env.server() as srv:
        first = content_by_uid(srv)  # lists the directories, records their mtimes
        assert len(first) == 12
        assert content_by_uid(srv) == first  # from the index
        assert content_by_uid(srv) == first
        new = corpus.Message("new", b"From: new@test.invalid\nSubject: new\n\nbrand new\n")
        small_env.add_message("demo", new, 100)  # new/ changes: the next login lists it again
        second = content_by_uid(srv)
        assert len(second) == 13
        assert {u: w for u, w in second.items() if u in first} == first
        settle(small_env)
        assert content_by_uid(srv) == second  # records the new mtimes
        assert content_by_uid(srv) == second  # from the index again


# A SHA512-CRYPT hash with 8,000,000 rounds: about 3 s of one core per attempt. It matches no
# password, so every try costs the full hash on a worker thread.
SLOW_HASH = ("{SHA512-CRYPT}$6$rounds=8000000$saltsalt$Zb7B4CTSajqMBm9iCV79ziKD7eB/LQXaZtiuNtHfLEkIj3Xnz"
             "C1JFOOs5rYsSgtHs879fVPsH0SSQxSAmvIxF0")


def test_cached_login_does_not_wait_for_a_busy_worker_pool(small_env):
    """With its password in the verification cache and its maildrop unchanged, a login needs no
    worker thread: a pool taken up by password hashes (a brute-force run) does not hold it up."""
    small_env.write_passwd({"demo": "{PLAIN}demo-secret", "slow": SLOW_HASH})
    settle(small_env)
    with small_env.server({"server": {"worker_threads": 1}}) as srv:
        for _ in range(2):  # caches the password; records the mtimes
            with login(srv) as c:
                assert c.cmd("QUIT") == b"+OK signing off\r\n"
        with srv.connect() as slow:
            slow.greeting()
            assert slow.cmd("USER slow") == b"+OK\r\n"
            slow.send(b"PASS wrong\r\n")  # the one worker thread hashes for seconds
            time.sleep(0.2)  # lets the server hand it to the worker
            with login(srv) as c:
                assert c.cmd("STAT").startswith(b"+OK 12 ")
                # Answered while the hash still runs: its result is logged when it ends.
                assert 'auth failed: user="slow"' not in srv.log()
                assert c.cmd("QUIT") == b"+OK signing off\r\n"
            assert slow.readline().startswith(b"-ERR [AUTH] ")
        srv.wait_log('auth failed: user="slow"')


def _rename_to_cur(path, flags):
    d, name = os.path.split(path)
    base = name.split(":", 1)[0]
    new_path = os.path.join(os.path.dirname(d), "cur", base + ":2," + flags)
    os.rename(path, new_path)
    return new_path


def test_uidl_survives_new_to_cur_and_flag_changes(small_env):
    # Another agent (an IMAP server, a MUA) moves new/ to cur/ and changes flags; the message is
    # the same, so POP3 clients must not download it again (RFC 1939 §7: UIDL is persistent).
    with small_env.server() as srv:
        before = content_by_uid(srv, "bob")
        for path in list(small_env.maildirs["bob"]):
            if "/new/" in path:
                _rename_to_cur(path, "S")
            else:
                _rename_to_cur(path, "RS")
        assert content_by_uid(srv, "bob") == before


def test_message_renamed_during_session_is_still_served_and_deleted(small_env):
    with small_env.server() as srv, login(srv, "bob") as c:
        by_msn = fetch_all(c)
        renamed = {}
        for path, m in list(small_env.maildirs["bob"].items()):
            renamed[m.wire] = _rename_to_cur(path, "FS" if "/cur/" in path else "S")
        # The files moved (flags changed by another agent) but none vanished.
        for n, wire in by_msn.items():
            assert c.cmd(f"RETR {n}") == b"+OK %d octets\r\n" % len(wire), n
            assert c.read_multiline_raw() == corpus.retr_reply_body(wire)
        assert c.cmd("DELE 1") == b"+OK message 1 deleted\r\n"
        assert c.cmd("QUIT") == b"+OK signing off\r\n"
    assert not os.path.exists(renamed[by_msn[1]]), "DELE + QUIT must remove the renamed file"
    assert len(small_env.files("bob")) == 3


@pytest.mark.timeout(120)
def test_sigterm_with_stalled_downloads_exits_within_grace(full_env):
    srv = full_env.server({"server": {"shutdown_grace": "2s"}}).start()
    stalled = []
    for _ in range(5):
        c = srv.connect()
        c.greeting()
        c.login()
        first, raw = c.cmd_multi("LIST")
        sizes = {int(l.split()[0]): int(l.split()[1]) for l in raw.split(b"\r\n")[:-2]}
        big_n = max(sizes, key=sizes.get)
        c.send(b"RETR %d\r\n" % big_n)  # and never read: the server's writes stall
        stalled.append(c)
    time.sleep(0.5)
    t = time.monotonic()
    srv.proc.send_signal(signal.SIGTERM)
    try:
        srv.proc.wait(timeout=10)
    except Exception:
        pass
    elapsed = time.monotonic() - t
    for c in stalled:
        c.close()
    rc = srv.stop()
    assert elapsed < 2 + 2, f"exit took {elapsed:.1f}s with a 2s grace period"
    srv.assert_clean(rc)
    assert len(full_env.files("demo")) == 13
