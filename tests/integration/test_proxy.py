# The PROXY protocol (HAProxy's v1 and v2) on pop3_proxy/pop3s_proxy listeners: through a real
# HAProxy (Debian's, started here on loopback with dist/haproxy/poplar.cfg, never the system
# service) the real client's address is what logs, limits and policies see, plain and implicit
# TLS; without HAProxy, raw headers: untrusted peers, malformed and truncated headers, no header,
# a header split into single bytes, and POP3 bytes right after the header.
import os
import re
import shutil
import socket
import subprocess
import time

import pytest

from conftest import RawClient, poplar_bin

DIST_CFG = os.path.join(os.path.dirname(__file__), "..", "..", "dist", "haproxy", "poplar.cfg")
V2_SIG = b"\r\n\r\n\x00\r\nQUIT\n"


def proxy_config(extra_server=None):
    server = {"trusted_proxies": ["127.0.0.1/32"], "max_connections_per_address": 2}
    server.update(extra_server or {})
    return {"server": server, "listen": {"pop3": ["127.0.0.1:0"], "pop3s": ["127.0.0.1:0"],
                                         "pop3_proxy": ["127.0.0.1:0"], "pop3s_proxy": ["127.0.0.1:0"]}}


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


class HAProxy:
    """dist/haproxy/poplar.cfg with its addresses moved to loopback ports of this test."""

    def __init__(self, tmp, srv, send_proxy):
        if shutil.which("haproxy") is None:
            pytest.fail("haproxy is not installed (scripts/install-deps installs it)")
        self.pop3, self.pop3s = free_port(), free_port()
        text = open(DIST_CFG).read()
        text = text.replace("bind :110", f"bind 127.0.0.1:{self.pop3}").replace("bind :995", f"bind 127.0.0.1:{self.pop3s}")
        text = text.replace("127.0.0.1:10110", f"127.0.0.1:{srv.ports['pop3_proxy'][0][1]}")
        text = text.replace("127.0.0.1:10995", f"127.0.0.1:{srv.ports['pop3s_proxy'][0][1]}")
        text = text.replace("send-proxy-v2", send_proxy)
        self.cfg = os.path.join(tmp, f"haproxy-{send_proxy}.cfg")
        with open(self.cfg, "w") as f:
            f.write(text)
        self.log = open(self.cfg + ".log", "wb")
        self.proc = subprocess.Popen(["haproxy", "-db", "-f", self.cfg], stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", self.pop3), timeout=1).close()
                break
            except OSError:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    raise AssertionError("haproxy did not start: " + open(self.cfg + ".log").read())
                time.sleep(0.05)

    def stop(self):
        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        self.log.close()


@pytest.mark.parametrize("send_proxy,version", [("send-proxy", 1), ("send-proxy-v2", 2)])
def test_through_haproxy_the_real_client_is_seen(small_env, send_proxy, version):
    with small_env.server(proxy_config()) as srv:
        hap = HAProxy(small_env.root, srv, send_proxy)
        try:
            # The check connection HAProxy may make counts for nothing; the clients:
            with RawClient("127.0.0.1", hap.pop3, source="127.0.0.2") as c:
                c.greeting()
                c.login("bob")
                assert c.cmd("STAT").startswith(b"+OK 4 ")
                c.cmd("QUIT")
            srv.wait_log(rf'proxied: rip=127\.0\.0\.2 proxy=127\.0\.0\.1 version={version}$')
            srv.wait_log(r'login: user="bob" rip=127\.0\.0\.2 mech=USER tls=no')
            # Implicit TLS passes through HAProxy untouched.
            with RawClient("127.0.0.1", hap.pop3s, implicit_tls=True, cafile=small_env.cert, source="127.0.0.3") as c:
                c.greeting()
                c.login("alice")
            srv.wait_log(r'login: user="alice" rip=127\.0\.0\.3 mech=USER tls=yes')
            # Limits count the real clients: two from 127.0.0.4 fill its quota of 2, while
            # 127.0.0.5, through the same proxy, is still let in.
            held = [RawClient("127.0.0.1", hap.pop3, source="127.0.0.4") for _ in range(2)]
            for h in held:
                h.greeting()
            third = RawClient("127.0.0.1", hap.pop3, source="127.0.0.4")
            assert third.read_until_close() == b"-ERR [SYS/TEMP] too many connections from your address\r\n"
            with RawClient("127.0.0.1", hap.pop3, source="127.0.0.5") as other:
                other.greeting()
                other.login("carol")
            for h in held:
                h.close()
            srv.wait_log(r'connection refused: rip=127\.0\.0\.4 reason="server\.max_connections_per_address reached"')
        finally:
            hap.stop()


def raw(srv, data, source=None, tls=False):
    s = socket.create_connection(("127.0.0.1", srv.ports["pop3s_proxy" if tls else "pop3_proxy"][0][1]),
                                 timeout=10, source_address=(source, 0) if source else None)
    if data:
        s.sendall(data)
    return s


def closed_silently(s):
    s.settimeout(10)
    try:
        assert s.recv(100) == b""
    except ConnectionResetError:
        pass
    s.close()


def test_raw_headers_v1_v2_split_and_pipelined(small_env):
    with small_env.server(proxy_config()) as srv:
        # v1 with pipelined POP3 right behind it: nothing after the header is lost.
        s = raw(srv, b"PROXY TCP4 192.0.2.7 127.0.0.1 40000 110\r\nCAPA\r\n")
        c = RawClient.__new__(RawClient)
        c.sock, c.buf, c.timeout = s, bytearray(), 10
        assert c.readline().startswith(b"+OK poplar ready")
        assert c.readline() == b"+OK capability list follows\r\n"
        c.close()
        srv.wait_log(r'proxied: rip=192\.0\.2\.7 proxy=127\.0\.0\.1 version=1$')
        # v2 IPv6, split into single bytes.
        body = bytes.fromhex("20010db8000000000000000000000009") + bytes(16) + b"\x9c\x40\x00\x6e"
        header = V2_SIG + b"\x21\x21" + len(body).to_bytes(2, "big") + body
        s = raw(srv, b"")
        for b in header:
            s.sendall(bytes([b]))
            time.sleep(0.002)
        s.settimeout(10)
        assert s.recv(100).startswith(b"+OK poplar ready")
        s.close()
        srv.wait_log(r'proxied: rip=2001:db8::9 proxy=127\.0\.0\.1 version=2$')
        # v2 LOCAL (a health check): the proxy's own address.
        s = raw(srv, V2_SIG + b"\x20\x00\x00\x00")
        s.settimeout(10)
        assert s.recv(100).startswith(b"+OK poplar ready")
        s.close()
        srv.wait_log(r'proxied: rip=127\.0\.0\.1 proxy=127\.0\.0\.1 version=2 local$')
        # The plaintext policy sees the real client: 192.0.2.7 is not loopback.
        s = raw(srv, b"PROXY TCP4 192.0.2.8 127.0.0.1 40000 110\r\nUSER demo\r\n")
        c = RawClient.__new__(RawClient)
        c.sock, c.buf, c.timeout = s, bytearray(), 10
        c.readline()
        assert c.readline() == b"-ERR [AUTH] plaintext login refused on an unencrypted connection, use STLS\r\n"
        c.close()


def test_untrusted_malformed_truncated_and_missing_headers_are_refused(small_env):
    with small_env.server(proxy_config()) as srv:
        closed_silently(raw(srv, b"PROXY TCP4 192.0.2.7 127.0.0.1 1 2\r\n", source="127.0.0.9"))
        srv.wait_log(r'warning: proxy refused: rip=127\.0\.0\.9 reason="not in server\.trusted_proxies"')
        closed_silently(raw(srv, b"PROXY TCP4 192.0.2.777 127.0.0.1 1 2\r\n"))
        srv.wait_log(r'proxy refused: rip=127\.0\.0\.1 reason="v1 address is not an IPv4 address"')
        closed_silently(raw(srv, V2_SIG + b"\x21\x11\x00\x04abcd"))
        srv.wait_log(r'proxy refused: rip=127\.0\.0\.1 reason="v2 length too short for IPv4 addresses"')
        closed_silently(raw(srv, b"USER demo\r\n"))
        srv.wait_log(r'proxy refused: rip=127\.0\.0\.1 reason="no PROXY header: neither the v1 PROXY line nor the v2 '
                     r'signature"')
        # On the implicit-TLS proxy listener a ClientHello without a header is refused too.
        closed_silently(raw(srv, b"\x16\x03\x01\x00\x05hello", tls=True))
        # Truncated, then silence: closed at the deadline (limits::proxy_header_timeout, 5 s).
        t = time.monotonic()
        closed_silently(raw(srv, b"PROXY TCP4 192.0.2.7"))
        assert 4.5 < time.monotonic() - t < 9
        srv.wait_log(r'proxy refused: rip=127\.0\.0\.1 reason="no complete PROXY header within the deadline"')
        closed_silently(raw(srv, b"PROXY TCP4 192.0.2.7"[:5]))  # hangs up itself: logged at once
        # The ordinary listeners are unaffected: no header expected there.
        with srv.connect() as c:
            c.greeting()
        # Each refusal is counted.
        stats = subprocess.run([poplar_bin(), "stats", "--config", small_env.config_path], capture_output=True,
                               text=True, timeout=30).stdout
        metrics_line = re.search(r"connections_refused_total (\d+)", stats)
        assert metrics_line and int(metrics_line.group(1)) >= 7


def test_check_refuses_a_proxy_listener_without_trusted_proxies(small_env):
    cfg = small_env.write_config({"listen": {"pop3_proxy": ["127.0.0.1:0"]}})
    r = subprocess.run([poplar_bin(), "check", "--config", cfg], capture_output=True, text=True, timeout=30)
    assert r.returncode != 0
    assert ("listen.pop3_proxy: needs server.trusted_proxies: the addresses of the proxies allowed to send PROXY "
            "headers") in r.stderr, r.stderr
    cfg = small_env.write_config({"server": {"trusted_proxies": ["127.0.0.1/33"]}})
    r = subprocess.run([poplar_bin(), "check", "--config", cfg], capture_output=True, text=True, timeout=30)
    assert r.returncode != 0
    assert 'server.trusted_proxies: "127.0.0.1/33": the prefix length must be 0-32' in r.stderr, r.stderr
