# STLS (RFC 2595): command injection (CVE-2021-38542), repeated STLS, STLS in the wrong state,
# and the certificate a verifying client sees.
import socket
import ssl

import pytest

from conftest import client_tls_context


def test_stls_command_injection_is_discarded(small_env):
    with small_env.server() as srv, srv.connect() as c:
        c.greeting()
        # STLS and CAPA in one packet: the CAPA was sent in plaintext and must never run.
        c.send(b"STLS\r\nCAPA\r\n")
        assert c.readline() == b"+OK begin TLS negotiation\r\n"
        assert c.buf == b"", f"server answered the injected CAPA in plaintext: {bytes(c.buf)!r}"
        c.sock = client_tls_context(small_env.cert).wrap_socket(c.sock, server_hostname="localhost")
        c.sock.settimeout(10)
        # The first reply over TLS must answer a command sent after the handshake.
        assert c.cmd("NOOP") == b"-ERR command not valid in this state\r\n"
        assert c.cmd("STAT") == b"-ERR command not valid in this state\r\n"


def test_stls_injection_of_login(small_env):
    with small_env.server() as srv, srv.connect() as c:
        c.greeting()
        c.send(b"STLS\r\nUSER demo\r\nPASS demo-secret\r\n")
        assert c.readline() == b"+OK begin TLS negotiation\r\n"
        c.sock = client_tls_context(small_env.cert).wrap_socket(c.sock, server_hostname="localhost")
        c.sock.settimeout(10)
        assert c.cmd("STAT") == b"-ERR command not valid in this state\r\n"
        assert c.cmd("PASS demo-secret") == b"-ERR send USER first\r\n"


def test_stls_twice(small_env):
    with small_env.server() as srv, srv.connect() as c:
        c.greeting()
        c.starttls(small_env.cert)
        assert c.cmd("STLS") == b"-ERR already using TLS\r\n"
        c.login()
        assert c.cmd("STAT").startswith(b"+OK 12 ")
        assert c.cmd("QUIT") == b"+OK signing off\r\n"
    srv.wait_log(r'login: user="demo" rip=127\.0\.0\.1 mech=USER tls=yes')


def test_stls_on_implicit_tls(small_env):
    with small_env.server() as srv, srv.connect(tls=True, cafile=small_env.cert) as c:
        c.greeting()
        assert c.cmd("STLS") == b"-ERR already using TLS\r\n"


def test_stls_in_transaction(small_env):
    with small_env.server() as srv, srv.connect() as c:
        c.greeting()
        c.login()
        assert c.cmd("STLS") == b"-ERR command not valid in this state\r\n"
        assert c.cmd("STAT").startswith(b"+OK 12 ")


def test_stls_with_argument(small_env):
    with small_env.server() as srv, srv.connect() as c:
        c.greeting()
        assert c.cmd("STLS now") == b"-ERR too many arguments\r\n"


def test_tls_min_version_enforced(small_env):
    with small_env.server({"tls": {"min_version": "1.3"}}) as srv:
        ctx = client_tls_context(small_env.cert)
        ctx.maximum_version = ssl.TLSVersion.TLSv1_2
        s = socket.create_connection(("127.0.0.1", srv.tls_port), timeout=10)
        with pytest.raises((ssl.SSLError, ConnectionResetError)):
            ctx.wrap_socket(s, server_hostname="localhost").recv(100)
        s.close()
        with srv.connect(tls=True, cafile=small_env.cert) as c:
            c.greeting()
            assert c.sock.version() == "TLSv1.3"


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_tls_1_1_refused_by_default(small_env):
    with small_env.server() as srv:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.load_verify_locations(small_env.cert)
        ctx.minimum_version = ssl.TLSVersion.TLSv1
        ctx.maximum_version = ssl.TLSVersion.TLSv1_1
        try:
            ctx.set_ciphers("ALL:@SECLEVEL=0")
        except ssl.SSLError:
            pass
        s = socket.create_connection(("127.0.0.1", srv.tls_port), timeout=10)
        with pytest.raises((ssl.SSLError, ConnectionResetError)):
            ctx.wrap_socket(s, server_hostname="localhost").recv(100)
        s.close()
        assert srv.alive()


def test_certificate_is_the_configured_one(small_env):
    with small_env.server() as srv, srv.connect(tls=True, cafile=small_env.cert) as c:
        der = c.sock.getpeercert(binary_form=True)
        pem = ssl.DER_cert_to_PEM_cert(der)
        with open(small_env.cert) as f:
            assert "".join(pem.split()) == "".join(f.read().split())
