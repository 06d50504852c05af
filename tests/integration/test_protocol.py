# Exact reply bytes of docs/protocol.md over a raw socket: greeting, CAPA, every TRANSACTION reply,
# pipelining, and STAT/LIST sizes equal to what RETR sends.
import re

import corpus
from conftest import GREETING_APOP_RE, fetch_all, match_corpus, unstuff

CAPA_HEAD = [b"TOP", b"UIDL", b"RESP-CODES", b"AUTH-RESP-CODE", b"PIPELINING", b"EXPIRE NEVER",
             b"LOGIN-DELAY 0"]
CAPA_TAIL = [b"IMPLEMENTATION poplar"]


def capa_lines(c):
    first, raw = c.cmd_multi("CAPA")
    assert first == b"+OK capability list follows\r\n", first
    assert raw.endswith(b"\r\n.\r\n")
    return raw[:-5].split(b"\r\n")


def capa_expected(user=True, sasl=b"SASL PLAIN LOGIN", stls=True, transaction=False):
    mid = []
    if not transaction:
        if user:
            mid.append(b"USER")
        if sasl:
            mid.append(sasl)
        if stls:
            mid.append(b"STLS")
    return CAPA_HEAD + mid + CAPA_TAIL


# ---------------------------------------------------------------------------------------------
# Greeting

def test_greeting_has_unique_apop_timestamp(small_env):
    with small_env.server() as srv:
        stamps = set()
        for _ in range(5):
            with srv.connect() as c:
                g = c.readline()
                m = GREETING_APOP_RE.match(g)
                assert m, g
                stamps.add(m.group(1))
        assert len(stamps) == 5, stamps


def test_greeting_without_apop(small_env):
    with small_env.server({"auth": {"apop": False}}) as srv:
        with srv.connect() as c:
            assert c.readline() == b"+OK poplar ready\r\n"
            assert c.cmd("APOP demo 0123456789abcdef0123456789abcdef") == b"-ERR APOP is not enabled\r\n"


def test_greeting_on_implicit_tls(small_env):
    with small_env.server() as srv:
        with srv.connect(tls=True, cafile=small_env.cert) as c:
            assert GREETING_APOP_RE.match(c.readline())


# ---------------------------------------------------------------------------------------------
# CAPA

def test_capa_authorization_plain_with_tls_configured(small_env):
    with small_env.server() as srv, srv.connect() as c:
        c.greeting()
        assert capa_lines(c) == capa_expected()


def test_capa_after_stls_and_in_transaction(small_env):
    with small_env.server() as srv, srv.connect() as c:
        c.greeting()
        c.starttls(small_env.cert)
        assert capa_lines(c) == capa_expected(stls=False)
        c.login()
        assert capa_lines(c) == capa_expected(transaction=True)
        assert c.cmd("QUIT") == b"+OK signing off\r\n"


def test_capa_on_implicit_tls(small_env):
    with small_env.server() as srv, srv.connect(tls=True, cafile=small_env.cert) as c:
        c.greeting()
        assert capa_lines(c) == capa_expected(stls=False)


def test_capa_without_tls_configured(small_env):
    with small_env.server(with_tls=False) as srv, srv.connect() as c:
        c.greeting()
        assert capa_lines(c) == capa_expected(stls=False)
        assert c.cmd("STLS") == b"-ERR TLS is not available\r\n"
        c.login()
        assert capa_lines(c) == capa_expected(transaction=True)


def test_capa_transaction_without_tls(small_env):
    with small_env.server() as srv, srv.connect() as c:
        c.greeting()
        c.login()
        assert capa_lines(c) == capa_expected(transaction=True)


def test_capa_tls_only_policy_before_and_after_stls(small_env):
    with small_env.server({"auth": {"plaintext": "tls-only"}}) as srv, srv.connect() as c:
        c.greeting()
        # No plaintext mechanism is allowed before TLS, so neither USER nor a SASL line appears.
        assert capa_lines(c) == capa_expected(user=False, sasl=None)
        c.starttls(small_env.cert)
        assert capa_lines(c) == capa_expected(stls=False)


def test_capa_advertises_configured_expire_and_login_delay(small_env):
    with small_env.server({"pop3": {"expire": "31", "login_delay": 900}}) as srv, srv.connect() as c:
        c.greeting()
        lines = capa_lines(c)
        assert b"EXPIRE 31" in lines and b"LOGIN-DELAY 900" in lines, lines
        assert lines.index(b"EXPIRE 31") == 5 and lines.index(b"LOGIN-DELAY 900") == 6


# ---------------------------------------------------------------------------------------------
# AUTHORIZATION replies

def test_authorization_replies(small_env):
    with small_env.server() as srv, srv.connect() as c:
        c.greeting()
        assert c.cmd("PASS x") == b"-ERR send USER first\r\n"
        assert c.cmd("STAT") == b"-ERR command not valid in this state\r\n"
        assert c.cmd("USER demo") == b"+OK\r\n"
        assert c.cmd("PASS demo-secret") == b"+OK maildrop has 12 messages (%d octets)\r\n" % sum(
            m.size for m in corpus.small_messages())
        assert c.cmd("USER demo") == b"-ERR command not valid in this state\r\n"
        assert c.cmd("QUIT") == b"+OK signing off\r\n"
        c.assert_closed()


def test_quit_in_authorization_closes(small_env):
    with small_env.server() as srv, srv.connect() as c:
        c.greeting()
        assert c.cmd("QUIT") == b"+OK signing off\r\n"
        c.assert_closed()


def test_empty_maildrop(small_env):
    with small_env.server() as srv, srv.connect() as c:
        c.greeting()
        assert c.login("carol") == b"+OK maildrop has 0 messages (0 octets)\r\n"
        assert c.cmd("STAT") == b"+OK 0 0\r\n"
        assert c.cmd_multi("LIST") == (b"+OK 0 messages (0 octets)\r\n", b".\r\n")
        assert c.cmd_multi("UIDL") == (b"+OK unique-id listing follows\r\n", b".\r\n")
        assert c.cmd("LIST 1") == b"-ERR no such message\r\n"
        assert c.cmd("RETR 1") == b"-ERR no such message\r\n"
        assert c.cmd("QUIT") == b"+OK signing off\r\n"


# ---------------------------------------------------------------------------------------------
# TRANSACTION replies

def test_transaction_replies_exact(small_env):
    msgs = corpus.small_messages()
    total = sum(m.size for m in msgs)
    with small_env.server() as srv, srv.connect() as c:
        c.greeting()
        c.login()
        assert c.cmd("STAT") == b"+OK %d %d\r\n" % (len(msgs), total)
        first, raw = c.cmd_multi("LIST")
        assert first == b"+OK %d messages (%d octets)\r\n" % (len(msgs), total)
        lines = raw.split(b"\r\n")
        assert lines[-2:] == [b".", b""]
        assert [int(l.split(b" ")[0]) for l in lines[:-2]] == list(range(1, len(msgs) + 1))
        sizes = {int(l.split()[0]): int(l.split()[1]) for l in lines[:-2]}
        for n, s in sizes.items():
            assert c.cmd(f"LIST {n}") == b"+OK %d %d\r\n" % (n, s)
        first, raw = c.cmd_multi("UIDL")
        assert first == b"+OK unique-id listing follows\r\n"
        uid_lines = raw.split(b"\r\n")[:-2]
        uids = {}
        for l in uid_lines:
            m = re.fullmatch(rb"(\d+) ([\x21-\x7e]{1,70})", l)
            assert m, l  # RFC 1939 §7: 1 to 70 characters in 0x21-0x7E
            uids[int(m.group(1))] = m.group(2)
        assert sorted(uids) == list(range(1, len(msgs) + 1))
        assert len(set(uids.values())) == len(msgs), "UIDLs must be unique"
        for n, u in uids.items():
            assert c.cmd(f"UIDL {n}") == b"+OK %d %s\r\n" % (n, u)
        by_msn = {}
        for n, s in sizes.items():
            assert c.cmd(f"RETR {n}") == b"+OK %d octets\r\n" % s
            raw = c.read_multiline_raw()
            by_msn[n] = unstuff(raw)
            assert raw == corpus.retr_reply_body(by_msn[n])
        got = match_corpus(by_msn, msgs)
        for n, m in got.items():
            assert sizes[n] == m.size, m.name
        assert c.cmd("NOOP") == b"+OK\r\n"
        assert c.cmd("DELE 1") == b"+OK message 1 deleted\r\n"
        assert c.cmd("DELE 1") == b"-ERR message 1 is deleted\r\n"
        assert c.cmd("STAT") == b"+OK %d %d\r\n" % (len(msgs) - 1, total - sizes[1])
        assert c.cmd("RSET") == b"+OK maildrop has %d messages (%d octets)\r\n" % (len(msgs), total)
        assert c.cmd("STAT") == b"+OK %d %d\r\n" % (len(msgs), total)
        assert c.cmd("QUIT") == b"+OK signing off\r\n"
        c.assert_closed()
    assert len(small_env.files("demo")) == len(msgs)


def test_retr_is_dot_stuffed_exactly(small_env):
    msgs = corpus.small_messages()
    with small_env.server() as srv:
        mapping = {m.name: n for n, m in
                   match_corpus(fetch_all_session(srv), msgs).items()}
        dots = next(m for m in msgs if m.name == "dots")
        with srv.connect() as c:
            c.greeting()
            c.login()
            n = mapping["dots"]
            assert c.cmd(f"RETR {n}") == b"+OK %d octets\r\n" % dots.size
            raw = c.read_multiline_raw()
            assert raw == (b"From: dots@test.invalid\r\n..X-Dot-Header: leading dot in a header\r\n"
                           b"...\r\n..\r\nSubject: dots\r\n\r\n..\r\n...\r\n..foo\r\n....\r\n.. \r\n"
                           b"..\r\nend\r\n...end\r\n.\r\n")
            empty = mapping["empty_file"]
            assert c.cmd(f"RETR {empty}") == b"+OK 0 octets\r\n"
            assert c.read_multiline_raw() == b".\r\n"
            assert c.cmd(f"LIST {empty}") == b"+OK %d 0\r\n" % empty
            for name in ("no_final_newline", "trailing_cr", "lone_cr", "eightbit", "empty_body"):
                m = next(x for x in msgs if x.name == name)
                assert c.cmd(f"RETR {mapping[name]}") == b"+OK %d octets\r\n" % m.size
                assert c.read_multiline_raw() == corpus.retr_reply_body(m.wire), name


def fetch_all_session(srv):
    with srv.connect() as c:
        c.greeting()
        c.login()
        out = fetch_all(c)
        assert c.cmd("QUIT") == b"+OK signing off\r\n"
    return out


def test_top_exact(small_env):
    msgs = corpus.small_messages()
    with small_env.server() as srv:
        mapping = {m.name: n for n, m in match_corpus(fetch_all_session(srv), msgs).items()}
        with srv.connect() as c:
            c.greeting()
            c.login()
            for name in ("top_lines", "dots", "lf", "crlf", "no_final_newline", "empty_body", "long_line"):
                m = next(x for x in msgs if x.name == name)
                for lines in (0, 1, 3, 100):
                    r = c.cmd(f"TOP {mapping[name]} {lines}")
                    assert r == b"+OK top of message follows\r\n", (name, r)
                    raw = c.read_multiline_raw()
                    assert raw == corpus.retr_reply_body(corpus.top_form(m.wire, lines)), (name, lines, raw)
            n = mapping["top_lines"]
            assert c.cmd(f"TOP {n} -1") == b"-ERR invalid line count\r\n"
            assert c.cmd(f"TOP {n} x") == b"-ERR invalid line count\r\n"
            assert c.cmd(f"TOP {n}") == b"-ERR missing argument\r\n"
            assert c.cmd(f"TOP {n} 1 2") == b"-ERR too many arguments\r\n"
            assert c.cmd("TOP 0 1") == b"-ERR no such message\r\n"
            assert c.cmd("TOP 99 1") == b"-ERR no such message\r\n"
            # TOP n 0 of top_lines, spelled out
            assert c.cmd(f"TOP {n} 0") == b"+OK top of message follows\r\n"
            assert c.read_multiline_raw() == (b"From: top@test.invalid\r\nSubject: top\r\nX-Extra: h\r\n"
                                              b"\r\n.\r\n")
            assert c.cmd(f"TOP {n} 2") == b"+OK top of message follows\r\n"
            assert c.read_multiline_raw() == (b"From: top@test.invalid\r\nSubject: top\r\nX-Extra: h\r\n"
                                              b"\r\nbody 1\r\n..body 2 dotted\r\n.\r\n")


def test_commands_are_case_insensitive(small_env):
    with small_env.server() as srv, srv.connect() as c:
        c.greeting()
        assert c.cmd("user demo") == b"+OK\r\n"
        assert c.cmd("PaSs demo-secret").startswith(b"+OK maildrop has ")
        assert c.cmd("stat").startswith(b"+OK 12 ")
        assert c.cmd("noop") == b"+OK\r\n"
        assert c.cmd("quit") == b"+OK signing off\r\n"


def test_trailing_space_is_not_an_argument(small_env):
    with small_env.server() as srv, srv.connect() as c:
        c.greeting()
        c.login()
        assert c.cmd("STAT ") .startswith(b"+OK 12 ")
        assert c.cmd("LIST 1 ") == c.cmd("LIST 1")


def test_deleted_message_errors(small_env):
    with small_env.server() as srv, srv.connect() as c:
        c.greeting()
        c.login()
        assert c.cmd("DELE 2") == b"+OK message 2 deleted\r\n"
        for cmd in ("LIST 2", "RETR 2", "TOP 2 0", "UIDL 2", "DELE 2"):
            assert c.cmd(cmd) == b"-ERR message 2 is deleted\r\n", cmd
        first, raw = c.cmd_multi("LIST")
        nums = [l.split(b" ")[0] for l in raw.split(b"\r\n")[:-2]]
        assert b"2" not in nums and len(nums) == 11
        first, raw = c.cmd_multi("UIDL")
        nums = [l.split(b" ")[0] for l in raw.split(b"\r\n")[:-2]]
        assert b"2" not in nums and len(nums) == 11
        assert c.cmd("STAT").startswith(b"+OK 11 ")
        assert first == b"+OK unique-id listing follows\r\n"


# ---------------------------------------------------------------------------------------------
# Pipelining (RFC 2449 §6.6)

def test_pipelining_fifty_commands_in_one_send(small_env):
    with small_env.server() as srv, srv.connect() as c:
        c.greeting()
        c.send(b"USER demo\r\nPASS demo-secret\r\n")
        assert c.readline().startswith(b"+OK")
        assert c.readline().startswith(b"+OK maildrop has 12 messages")
        cmds, expected = [], []
        for i in range(50):
            kind = i % 5
            if kind == 0:
                cmds.append(b"NOOP")
                expected.append(b"+OK\r\n")
            elif kind == 1:
                n = i % 12 + 1
                cmds.append(b"LIST %d" % n)
                expected.append(("list", n))
            elif kind == 2:
                cmds.append(b"STAT")
                expected.append(("stat",))
            elif kind == 3:
                n = i % 12 + 1
                cmds.append(b"RETR %d" % n)
                expected.append(("retr", n))
            else:
                cmds.append(b"BOGUS%d" % i if i % 10 == 4 else b"UIDL %d" % (i % 12 + 1))
                expected.append(b"-ERR unknown command\r\n" if i % 10 == 4 else ("uidl", i % 12 + 1))
        c.send(b"".join(x + b"\r\n" for x in cmds))
        for cmd, exp in zip(cmds, expected):
            line = c.readline()
            if isinstance(exp, bytes):
                assert line == exp, (cmd, line)
            elif exp[0] == "list":
                assert re.fullmatch(rb"\+OK %d \d+\r\n" % exp[1], line), (cmd, line)
            elif exp[0] == "stat":
                assert re.fullmatch(rb"\+OK 12 \d+\r\n", line), (cmd, line)
            elif exp[0] == "uidl":
                assert re.fullmatch(rb"\+OK %d [\x21-\x7e]+\r\n" % exp[1], line), (cmd, line)
            else:
                assert re.fullmatch(rb"\+OK \d+ octets\r\n", line), (cmd, line)
                c.read_multiline_raw()
        assert c.cmd("QUIT") == b"+OK signing off\r\n"
        c.assert_closed()


def test_pipelined_login_and_quit(small_env):
    with small_env.server() as srv, srv.connect() as c:
        c.greeting()
        c.send(b"CAPA\r\nUSER demo\r\nPASS demo-secret\r\nSTAT\r\nQUIT\r\n")
        data = c.read_until_close()
        assert data.startswith(b"+OK capability list follows\r\n")
        rest = data.split(b"IMPLEMENTATION poplar\r\n.\r\n", 1)[1]
        lines = rest.split(b"\r\n")
        assert lines[0] == b"+OK"
        assert lines[1].startswith(b"+OK maildrop has 12 messages")
        assert lines[2].startswith(b"+OK 12 ")
        assert lines[3:] == [b"+OK signing off", b""]


# ---------------------------------------------------------------------------------------------
# Sizes: STAT and LIST equal the bytes RETR sends before dot-stuffing, for the whole corpus.

def test_sizes_match_retr_whole_corpus(full_env):
    msgs = corpus.corpus(with_big=True)
    with full_env.server() as srv, srv.connect() as c:
        c.greeting()
        total = sum(m.size for m in msgs)
        assert c.login() == b"+OK maildrop has %d messages (%d octets)\r\n" % (len(msgs), total)
        assert c.cmd("STAT") == b"+OK %d %d\r\n" % (len(msgs), total)
        by_msn = fetch_all(c)   # asserts LIST n size == unstuffed RETR length for each
        got = match_corpus(by_msn, msgs)
        assert sum(len(v) for v in by_msn.values()) == total
        assert any(m.name == "big" for m in got.values())
        assert c.cmd("QUIT") == b"+OK signing off\r\n"
