# Python's poplib (stdlib) against poplar: every command over plain, STLS and implicit TLS, with
# certificate verification, and byte-exact comparison of every corpus message.
import poplib
import ssl

import pytest

import corpus
from conftest import IO_TIMEOUT, client_tls_context

# poplib refuses lines longer than _MAXLINE; the corpus has a 4000-octet line.
poplib._MAXLINE = 1 << 16


def open_client(srv, mode, cafile):
    host = "localhost"
    if mode == "plain":
        return poplib.POP3(host, srv.port, timeout=IO_TIMEOUT)
    if mode == "stls":
        p = poplib.POP3(host, srv.port, timeout=IO_TIMEOUT)
        assert p.stls(client_tls_context(cafile)) == b"+OK begin TLS negotiation"
        return p
    if mode == "pop3s":
        return poplib.POP3_SSL(host, srv.tls_port, timeout=IO_TIMEOUT, context=client_tls_context(cafile))
    raise ValueError(mode)


def lines_to_wire(lines):
    """poplib strips CRLF and undoes dot-stuffing; joining with CRLF gives the wire form back."""
    return b"".join(l + b"\r\n" for l in lines)


@pytest.mark.timeout(240)
@pytest.mark.parametrize("mode", ["plain", "stls", "pop3s"])
def test_every_command(full_env, mode):
    msgs = corpus.corpus(with_big=True)
    total = sum(m.size for m in msgs)
    with full_env.server() as srv:
        p = open_client(srv, mode, full_env.cert)
        try:
            assert p.getwelcome().startswith(b"+OK poplar ready <")
            caps = p.capa()
            assert "TOP" in caps and "UIDL" in caps and "PIPELINING" in caps
            assert ("STLS" in caps) == (mode == "plain")
            assert caps["SASL"] == ["PLAIN", "LOGIN"]
            assert p.user("demo") == b"+OK"
            assert p.pass_("demo-secret") == b"+OK maildrop has %d messages (%d octets)" % (len(msgs), total)
            assert p.stat() == (len(msgs), total)
            resp, listing, _ = p.list()
            assert resp == b"+OK %d messages (%d octets)" % (len(msgs), total)
            sizes = {int(l.split()[0]): int(l.split()[1]) for l in listing}
            assert sorted(sizes) == list(range(1, len(msgs) + 1))
            for n, s in sizes.items():
                assert p.list(n) == b"+OK %d %d" % (n, s)
            resp, uid_lines, _ = p.uidl()
            assert resp == b"+OK unique-id listing follows"
            uids = {int(l.split()[0]): l.split()[1] for l in uid_lines}
            assert len(set(uids.values())) == len(msgs)
            for n, u in uids.items():
                assert p.uidl(n) == b"+OK %d %s" % (n, u)
            expected = {m.wire: m for m in msgs}
            seen = {}
            for n, s in sizes.items():
                resp, lines, octets = p.retr(n)
                assert resp == b"+OK %d octets" % s
                wire = lines_to_wire(lines)
                assert wire in expected, (n, wire[:100])
                m = expected[wire]
                assert s == m.size == len(wire), m.name
                seen[n] = m
            assert sorted(m.name for m in seen.values()) == sorted(m.name for m in msgs)
            by_name = {m.name: n for n, m in seen.items()}
            n = by_name["top_lines"]
            top_msg = seen[n]
            for count in (0, 3):
                resp, lines, _ = p.top(n, count)
                assert resp == b"+OK top of message follows"
                assert lines_to_wire(lines) == corpus.top_form(top_msg.wire, count)
            resp, lines, _ = p.top(by_name["big"], 3)
            assert lines_to_wire(lines) == corpus.top_form(seen[by_name["big"]].wire, 3)
            assert p.noop() == b"+OK"
            assert p.dele(n) == b"+OK message %d deleted" % n
            assert p.stat() == (len(msgs) - 1, total - top_msg.size)
            with pytest.raises(poplib.error_proto) as e:
                p.retr(n)
            assert e.value.args[0] == b"-ERR message %d is deleted" % n
            assert p.rset() == b"+OK maildrop has %d messages (%d octets)" % (len(msgs), total)
            assert p.dele(n) == b"+OK message %d deleted" % n
            assert p.quit() == b"+OK signing off"
        finally:
            p.close()
        assert top_msg.name not in {full_env.maildirs["demo"][full_env.maildir("demo") + "/" + f].name
                                    for f in full_env.files("demo")}
        assert len(full_env.files("demo")) == len(msgs) - 1


@pytest.mark.parametrize("mode", ["plain", "stls", "pop3s"])
def test_apop(small_env, mode):
    with small_env.server() as srv:
        p = open_client(srv, mode, small_env.cert)
        try:
            assert p.apop("demo", "demo-secret").startswith(b"+OK maildrop has 12 messages")
            assert p.stat()[0] == 12
            assert p.quit() == b"+OK signing off"
        finally:
            p.close()


def test_apop_wrong_secret(small_env):
    with small_env.server() as srv:
        p = open_client(srv, "plain", small_env.cert)
        try:
            with pytest.raises(poplib.error_proto) as e:
                p.apop("demo", "not-the-secret")
            assert e.value.args[0] == b"-ERR [AUTH] invalid user name or password"
        finally:
            p.close()


def test_poplib_stls_verification_fails_with_wrong_ca(small_env):
    with small_env.server() as srv:
        p = poplib.POP3("localhost", srv.port, timeout=IO_TIMEOUT)
        try:
            with pytest.raises(ssl.SSLCertVerificationError):
                p.stls(ssl.create_default_context())
        finally:
            try:
                p.close()
            except OSError:
                pass  # the failed handshake already closed the socket
        # and the hostname must match
        p = poplib.POP3("127.0.0.1", srv.port, timeout=IO_TIMEOUT)
        try:
            ctx = client_tls_context(small_env.cert)
            p.stls(ctx)  # IP SAN 127.0.0.1 is in the certificate
            p.user("demo")
            p.pass_("demo-secret")
        finally:
            p.close()
