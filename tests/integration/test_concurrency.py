# 1,000 concurrent sessions (asyncio): each logs in, STATs, RETRs message 1 and QUITs. All must
# succeed with exact replies; the time bound is generous and only guards against hangs.
import asyncio

import pytest

import corpus

SESSIONS = 1000
USERS_ = [("demo", "demo-secret"), ("bob", "bob-secret")]


async def one_session(port, i, expected, ready):
    user, pw = USERS_[i % 2]
    reader, writer = await asyncio.open_connection("127.0.0.1", port, limit=1 << 20)
    try:
        greeting = await reader.readline()
        assert greeting.startswith(b"+OK poplar ready <"), greeting
        await ready.wait()  # all connections open at once, then all log in together
        writer.write(f"USER {user}\r\nPASS {pw}\r\n".encode())
        await writer.drain()
        assert await reader.readline() == b"+OK\r\n"
        r = await reader.readline()
        assert r.startswith(b"+OK maildrop has "), r
        writer.write(b"STAT\r\n")
        await writer.drain()
        stat = await reader.readline()
        n_msgs, first_size, first_wire = expected[user]
        assert stat.startswith(b"+OK %d " % n_msgs), stat
        writer.write(b"RETR 1\r\n")
        await writer.drain()
        r = await reader.readline()
        assert r == b"+OK %d octets\r\n" % first_size, r
        body = await reader.readuntil(b"\r\n.\r\n") if first_size else await reader.readuntil(b".\r\n")
        assert body == corpus.retr_reply_body(first_wire), (user, body[:100])
        writer.write(b"QUIT\r\n")
        await writer.drain()
        assert await reader.readline() == b"+OK signing off\r\n"
        assert await reader.read() == b""
    finally:
        writer.close()
        try:
            await writer.wait_closed()
        except ConnectionError:
            pass
    return True


async def run_all(port, expected):
    ready = asyncio.Event()
    tasks = [asyncio.create_task(asyncio.wait_for(one_session(port, i, expected, ready), 240))
             for i in range(SESSIONS)]
    await asyncio.sleep(0)
    # Give the connects a moment, then release the logins; sessions still connecting join late.
    await asyncio.sleep(1.0)
    ready.set()
    results = await asyncio.gather(*tasks, return_exceptions=True)
    return results


def first_message(srv, user, pw):
    with srv.connect() as c:
        c.greeting()
        c.cmd(f"USER {user}")
        c.cmd(f"PASS {pw}")
        stat = c.cmd("STAT")
        n = int(stat.split()[1])
        r = c.cmd("RETR 1")
        size = int(r.split()[1])
        from conftest import unstuff
        wire = unstuff(c.read_multiline_raw())
        c.cmd("QUIT")
    return n, size, wire


@pytest.mark.timeout(300)
def test_thousand_concurrent_sessions(small_env):
    # 1,000 sessions of four users from one address: what the limits are there to stop, so they
    # are raised here (test_limits.py tests them).
    limits = {"max_connections_per_address": SESSIONS, "max_sessions_per_user": SESSIONS,
              "max_unauthenticated": SESSIONS}
    with small_env.server({"server": {"threads": 2, **limits}}) as srv:
        expected = {u: first_message(srv, u, pw) for u, pw in USERS_}
        for u, (n, size, wire) in expected.items():
            assert wire in {m.wire for m in corpus.small_messages()}
        results = asyncio.run(run_all(srv.port, expected))
        failures = [r for r in results if r is not True]
        assert not failures, f"{len(failures)} of {SESSIONS} sessions failed, first: {failures[0]!r}"
        assert srv.alive()
        logins = srv.log().count('login: user="')
        assert logins >= SESSIONS
    ends = srv.log().count("reason=quit")
    assert ends >= SESSIONS
