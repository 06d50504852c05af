# Hostile and broken input: every class of bad command, garbage on both ports, and clients that
# vanish mid-transfer. The server must answer exactly, never run part of a bad line, and survive.
import socket
import ssl
import time

import pytest

import corpus
from conftest import fetch_all, match_corpus


def logged_in(srv, user="demo"):
    c = srv.connect()
    c.greeting()
    c.login(user)
    return c


def test_overlong_line_is_discarded_whole(small_env):
    with small_env.server() as srv, srv.connect() as c:
        c.greeting()
        c.send(b"A" * 600 + b"QUIT\r\n")
        assert c.readline() == b"-ERR line too long\r\n"
        # The tail of the long line ("QUIT") must not have run: the session is still open.
        assert c.cmd("NOOP") == b"-ERR command not valid in this state\r\n"
        assert c.cmd("CAPA").startswith(b"+OK capability list follows")
        c.read_multiline_raw()


def test_overlong_line_reported_before_its_end(small_env):
    with small_env.server() as srv:
        c = logged_in(srv)
        with c:
            c.send(b"NOOP " + b"x" * 600)          # no line end yet
            assert c.readline() == b"-ERR line too long\r\n"
            c.send(b"y" * 100_000 + b" QUIT\r\n")  # still the same line: discarded, one reply only
            assert c.cmd("NOOP") == b"+OK\r\n"
            assert c.cmd("STAT").startswith(b"+OK 12 ")


def test_long_but_allowed_line(small_env):
    with small_env.server() as srv, srv.connect() as c:
        c.greeting()
        # 508 + CRLF = 510 octets: within the 512-octet limit, so it is parsed (and is unknown).
        assert c.cmd("X" * 508) == b"-ERR unknown command\r\n"
        # An argument of 255 octets is fine, 256 is too long.
        assert c.cmd("USER " + "u" * 255) == b"+OK\r\n"
        assert c.cmd("USER " + "u" * 256) == b"-ERR argument too long\r\n"
        assert c.cmd("PASS " + "p" * 300) == b"-ERR argument too long\r\n"


@pytest.mark.parametrize("arg,reply", [
    ("0", b"-ERR no such message\r\n"),
    ("13", b"-ERR no such message\r\n"),
    ("99999999999999999999", b"-ERR no such message\r\n"),
    ("4294967297", b"-ERR no such message\r\n"),   # 2^32 + 1: must not wrap to 1
    ("18446744073709551617", b"-ERR no such message\r\n"),  # 2^64 + 1
    ("-1", b"-ERR invalid message number\r\n"),
    ("1x", b"-ERR invalid message number\r\n"),
    ("+1", b"-ERR invalid message number\r\n"),
    ("0x1", b"-ERR invalid message number\r\n"),
    ("1.0", b"-ERR invalid message number\r\n"),
    ("\t1", b"-ERR invalid message number\r\n"),
])
def test_bad_message_numbers(small_env, arg, reply):
    with small_env.server() as srv:
        c = logged_in(srv)
        with c:
            for cmd in ("LIST", "RETR", "DELE", "UIDL"):
                assert c.cmd(f"{cmd} {arg}") == reply, cmd
            assert c.cmd(f"TOP {arg} 1") == reply
            assert c.cmd("STAT").startswith(b"+OK 12 "), "nothing was deleted"


def test_empty_and_spaced_message_numbers(small_env):
    with small_env.server() as srv:
        c = logged_in(srv)
        with c:
            # "RETR " ends in a space: no argument at all.
            assert c.cmd("RETR ") == b"-ERR missing argument\r\n"
            assert c.cmd("RETR") == b"-ERR missing argument\r\n"
            assert c.cmd("DELE") == b"-ERR missing argument\r\n"
            # "RETR  1": an empty first argument. Rejected either way; never runs as RETR 1.
            for cmd in ("RETR  1", "LIST  1", "DELE  1"):
                r = c.cmd(cmd)
                assert r in (b"-ERR invalid message number\r\n", b"-ERR too many arguments\r\n"), (cmd, r)
            assert c.cmd("STAT").startswith(b"+OK 12 ")


def test_unknown_wrong_state_and_arity(small_env):
    with small_env.server() as srv, srv.connect() as c:
        c.greeting()
        assert c.cmd("HELO x") == b"-ERR unknown command\r\n"
        assert c.cmd("GET / HTTP/1.0") == b"-ERR unknown command\r\n"
        assert c.cmd("") == b"-ERR unknown command\r\n"
        assert c.cmd("RETR 1") == b"-ERR command not valid in this state\r\n"
        assert c.cmd("LIST") == b"-ERR command not valid in this state\r\n"
        assert c.cmd("USER") == b"-ERR missing argument\r\n"
        assert c.cmd("USER a b") == b"-ERR too many arguments\r\n"
        assert c.cmd("APOP demo") == b"-ERR missing argument\r\n"
        assert c.cmd("CAPA x") == b"-ERR too many arguments\r\n"
        c.login()
        assert c.cmd("USER demo") == b"-ERR command not valid in this state\r\n"
        assert c.cmd("STLS") == b"-ERR command not valid in this state\r\n"
        assert c.cmd("AUTH PLAIN") == b"-ERR command not valid in this state\r\n"
        assert c.cmd("STAT 1") == b"-ERR too many arguments\r\n"
        assert c.cmd("NOOP x") == b"-ERR too many arguments\r\n"
        assert c.cmd("LIST 1 2") == b"-ERR too many arguments\r\n"
        assert c.cmd("RSET now") == b"-ERR too many arguments\r\n"
        assert c.cmd("XTND XMIT") == b"-ERR unknown command\r\n"
        assert c.cmd("STAT").startswith(b"+OK 12 ")


def test_nul_and_8bit_garbage(small_env):
    with small_env.server() as srv, srv.connect() as c:
        c.greeting()
        assert c.cmd(b"\x00\x00\x00") == b"-ERR unknown command\r\n"
        assert c.cmd(b"US\x00ER demo") == b"-ERR unknown command\r\n"
        assert c.cmd(b"\xff\xfe\x80\x81 1") == b"-ERR unknown command\r\n"
        assert c.cmd(b"USER de\x00mo") == b"+OK\r\n"
        assert c.cmd(b"PASS demo-secret") == b"-ERR [AUTH] invalid user name or password\r\n"
        assert c.cmd(b"USER \xc3\xa9\xff") == b"+OK\r\n"
        assert c.cmd(b"PASS \x00\xff") == b"-ERR [AUTH] invalid user name or password\r\n"
        c.login()
        assert c.cmd(b"RETR \x001") == b"-ERR invalid message number\r\n"
        assert c.cmd(b"RETR 1\x00") == b"-ERR invalid message number\r\n"
        assert c.cmd(b"STAT").startswith(b"+OK 12 ")


def test_too_many_bad_commands_closes(small_env):
    with small_env.server() as srv:
        with srv.connect() as c:
            c.greeting()
            for _ in range(9):
                assert c.cmd("BOGUS") == b"-ERR unknown command\r\n"
            assert c.cmd("BOGUS") == b"-ERR too many bad commands, closing connection\r\n"
            c.assert_closed()
        # A valid command resets the count.
        with srv.connect() as c:
            c.greeting()
            for _ in range(3):
                for _ in range(9):
                    assert c.cmd("STAT") == b"-ERR command not valid in this state\r\n"
                assert c.cmd("CAPA").startswith(b"+OK")
                c.read_multiline_raw()
            assert c.cmd("NOOP") == b"-ERR command not valid in this state\r\n"
        # Mixed classes count together, including over-long lines; in TRANSACTION too.
        c = logged_in(srv)
        with c:
            for i in range(9):
                bad = [b"BOGUS", b"USER x", b"RETR", b"X" * 700][i % 4]
                assert c.cmd(bad).startswith(b"-ERR "), bad
            assert c.cmd("LIST 1 2") == b"-ERR too many bad commands, closing connection\r\n"
            c.assert_closed()
        assert len(small_env.files("demo")) == 12


def test_max_bad_commands_configurable(small_env):
    with small_env.server({"pop3": {"max_bad_commands": 2}}) as srv, srv.connect() as c:
        c.greeting()
        assert c.cmd("BOGUS") == b"-ERR unknown command\r\n"
        assert c.cmd("BOGUS") == b"-ERR too many bad commands, closing connection\r\n"
        c.assert_closed()


def test_auth_bad_base64_and_cancel(small_env):
    with small_env.server() as srv, srv.connect() as c:
        c.greeting()
        assert c.cmd("AUTH PLAIN !!!notbase64") == b"-ERR invalid base64 data\r\n"
        assert c.cmd("AUTH PLAIN") == b"+ \r\n"
        assert c.cmd("@@@@") == b"-ERR invalid base64 data\r\n"
        assert c.cmd("AUTH PLAIN") == b"+ \r\n"
        assert c.cmd("*") == b"-ERR authentication cancelled\r\n"
        assert c.cmd("AUTH LOGIN").startswith(b"+ ")
        assert c.cmd("*") == b"-ERR authentication cancelled\r\n"
        # Back in AUTHORIZATION: a normal login still works.
        c.login()


def test_garbage_on_pop3s_port(small_env):
    with small_env.server() as srv:
        host, port = srv.ports["pop3s"][0]
        payloads = [b"USER demo\r\n", b"GET / HTTP/1.1\r\nHost: x\r\n\r\n",
                    bytes(range(256)) * 20, b"\x16\x03\x01\xff\xff" + b"\x00" * 100,
                    b"\x16\x03\x01\x00\x05\x01\x00\x00\x01\x00"]
        for payload in payloads:
            s = socket.create_connection((host, port), timeout=10)
            s.settimeout(10)
            try:
                s.sendall(payload)
                s.shutdown(socket.SHUT_WR)
                data = b""
                while True:
                    chunk = s.recv(65536)
                    if not chunk:
                        break
                    data += chunk
                assert not data.startswith(b"+OK"), data
            except (ConnectionResetError, BrokenPipeError):
                pass
            finally:
                s.close()
        # A client that connects and says nothing, then leaves.
        socket.create_connection((host, port), timeout=10).close()
        # TLS with a client that does not trust the certificate: handshake fails, server fine.
        s = socket.create_connection((host, port), timeout=10)
        with pytest.raises(ssl.SSLCertVerificationError):
            ssl.create_default_context().wrap_socket(s, server_hostname="localhost")
        s.close()
        assert srv.alive()
        with srv.connect(tls=True, cafile=small_env.cert) as c:
            c.greeting()
            c.login()
            assert c.cmd("STAT").startswith(b"+OK 12 ")
            assert c.cmd("QUIT") == b"+OK signing off\r\n"
        with srv.connect() as c:
            c.greeting()
            c.login()
            assert c.cmd("QUIT") == b"+OK signing off\r\n"


def test_tls_garbage_after_stls(small_env):
    with small_env.server() as srv:
        with srv.connect() as c:
            c.greeting()
            assert c.cmd("STLS") == b"+OK begin TLS negotiation\r\n"
            c.send(b"this is not a TLS ClientHello\r\nQUIT\r\n")
            c.read_until_close()
        assert srv.alive()
        with srv.connect() as c:
            c.greeting()
            c.starttls(small_env.cert)
            c.login()
            assert c.cmd("QUIT") == b"+OK signing off\r\n"


@pytest.mark.timeout(180)
def test_disconnect_mid_retr_of_big_message(full_env):
    msgs = corpus.corpus(with_big=True)
    before = full_env.files("demo")
    with full_env.server() as srv:
        with srv.connect() as c:
            c.greeting()
            c.login()
            first, raw = c.cmd_multi("LIST")
            sizes = {int(l.split()[0]): int(l.split()[1]) for l in raw.split(b"\r\n")[:-2]}
            big_n = max(sizes, key=sizes.get)
            assert c.cmd("DELE 1") == b"+OK message 1 deleted\r\n"
            assert c.cmd(f"RETR {big_n}") == b"+OK %d octets\r\n" % sizes[big_n]
            c.read_exact(1 << 20)
            # Vanish: RST instead of FIN, with the server's send buffer full.
            c.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
        # Also a client that stops reading (zero window) and closes later.
        c = srv.connect()
        c.greeting()
        c.login()
        c.send(b"RETR %d\r\n" % big_n)
        time.sleep(0.5)
        c.close()
        assert srv.alive()
        # Nothing was deleted and the server still serves the whole corpus.
        with srv.connect() as c:
            c.greeting()
            c.login()
            match_corpus(fetch_all(c), msgs)
            assert c.cmd("QUIT") == b"+OK signing off\r\n"
    assert full_env.files("demo") == before


def test_line_length_boundary(small_env):
    with small_env.server() as srv, srv.connect() as c:
        c.greeting()
        # docs/protocol.md: a line longer than 512 octets is too long; limits.h: "a command line is
        # at most 255 octets including CRLF ... we accept twice that". So 510 + CRLF is the longest.
        assert c.cmd(b"X" * 510) == b"-ERR unknown command\r\n"
        assert c.cmd(b"X" * 511) == b"-ERR line too long\r\n"
        assert c.cmd("CAPA").startswith(b"+OK")
        c.read_multiline_raw()


def test_sasl_response_too_long(small_env):
    with small_env.server() as srv, srv.connect() as c:
        c.greeting()
        assert c.cmd("AUTH PLAIN") == b"+ \r\n"
        assert c.cmd(b"QUFB" * 5000) == b"-ERR line too long\r\n"   # 20000 octets > 16 KiB
        # The exchange is over; the next line is a command again.
        c.login()


def test_top_with_large_line_counts(small_env):
    msgs = corpus.small_messages()
    with small_env.server() as srv:
        c = logged_in(srv)
        with c:
            by_msn = match_corpus(fetch_all(c), msgs)
            n = next(k for k, m in by_msn.items() if m.name == "top_lines")
            for count in ("9999999999", "4294967296", "4294967295"):
                assert c.cmd(f"TOP {n} {count}") == b"+OK top of message follows\r\n"
                assert c.read_multiline_raw() == corpus.retr_reply_body(by_msn[n].wire)
            r = c.cmd(f"TOP {n} 99999999999999999999")
            if r == b"+OK top of message follows\r\n":
                assert c.read_multiline_raw() == corpus.retr_reply_body(by_msn[n].wire)
            else:
                assert r == b"-ERR invalid line count\r\n", r


def test_max_connections(small_env):
    with small_env.server({"server": {"max_connections": 3}}) as srv:
        held = []
        for _ in range(3):
            c = srv.connect()
            c.greeting()
            held.append(c)
        with srv.connect() as extra:
            assert extra.readline() == b"-ERR [SYS/TEMP] too many connections, try later\r\n"
            extra.assert_closed()
        host, port = srv.ports["pop3s"][0]
        s = socket.create_connection((host, port), timeout=10)
        s.settimeout(10)
        try:
            assert s.recv(100) == b"", "implicit TLS: closed without a reply"
        except ConnectionResetError:
            pass
        s.close()
        held.pop().close()
        time.sleep(0.3)
        with srv.connect() as c:
            c.greeting()
            c.login()
        for c in held:
            c.close()


def test_write_timeout_drops_a_client_that_stops_reading(full_env):
    with full_env.server({"pop3": {"write_timeout": "1s"}}) as srv:
        c = srv.connect()
        c.greeting()
        c.login()
        first, raw = c.cmd_multi("LIST")
        sizes = {int(l.split()[0]): int(l.split()[1]) for l in raw.split(b"\r\n")[:-2]}
        big_n = max(sizes, key=sizes.get)
        assert c.cmd("DELE 1") == b"+OK message 1 deleted\r\n"
        c.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        c.send(b"RETR %d\r\nQUIT\r\n" % big_n)
        srv.wait_log(r'session end: user="demo" .*reason=(?!quit)', timeout=15)
        c.close()
        assert srv.alive()
    assert len(full_env.files("demo")) == 13
