# The metrics endpoint ([metrics] listen): curl gets the Prometheus text format; anything but
# GET /metrics gets 404, 405 or 400; silent and oversized clients are cut off; reload keeps it.
import re
import socket
import subprocess
import time

from conftest import run

METRICS_RE = re.compile(r"listening: metrics (127\.0\.0\.1):(\d+)\s*$", re.M)
SAMPLE_RE = re.compile(r'^(poplar_[a-z_]+)(\{[^}]*\})? (\S+)$')


def metrics_port(srv):
    m = METRICS_RE.search(srv.log())
    assert m, srv.log()
    return int(m.group(2))


def with_metrics(env, **overrides):
    return env.server({"metrics": {"listen": "127.0.0.1:0"}, **overrides})


def curl(port, path="/metrics", *extra):
    r = run(["curl", "-sS", "--max-time", "10", "-D", "-", *extra, f"http://127.0.0.1:{port}{path}"])
    assert r.returncode == 0, r.stderr
    head, _, body = r.stdout.decode().partition("\r\n\r\n")
    return head, body


def samples(body):
    out = {}
    for line in body.splitlines():
        if line.startswith("#"):
            continue
        m = SAMPLE_RE.match(line)
        assert m, line
        out[m.group(1) + (m.group(2) or "")] = m.group(3)
    return out


def raw_exchange(port, data: bytes, timeout=10.0) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(data)
        got = b""
        while True:
            chunk = s.recv(65536)
            if not chunk:
                return got
            got += chunk


def test_off_when_not_configured(small_env):
    with small_env.server() as srv:
        assert "listening: metrics" not in srv.log()


def test_curl_gets_the_text_format_with_the_counts(small_env):
    with with_metrics(small_env) as srv:
        port = metrics_port(srv)
        with srv.connect() as c:
            c.greeting()
            assert c.cmd("USER alice") == b"+OK\r\n"
            assert c.cmd("PASS wrong").startswith(b"-ERR [AUTH]")
            c.login("bob")
            size = int(c.cmd("LIST 1").split()[2])
            assert c.cmd("RETR 1").startswith(b"+OK")
            c.read_multiline_raw()
            assert c.cmd("DELE 2").startswith(b"+OK")
            head, body = curl(port)
            s = samples(body)
            assert s['poplar_sessions{phase="transaction"}'] == "1"
            assert s['poplar_logins_total{mechanism="USER"}'] == "1"
            assert c.cmd("QUIT") == b"+OK signing off\r\n"
        srv.wait_log(r'session end: user="bob"')
        head, body = curl(port)
    lines = head.split("\r\n")
    assert lines[0] == "HTTP/1.1 200 OK"
    assert "Content-Type: text/plain; version=0.0.4; charset=utf-8" in lines
    assert f"Content-Length: {len(body.encode())}" in lines
    assert "Connection: close" in lines
    s = samples(body)
    assert s['poplar_auth_failures_total{reason="invalid_credentials"}'] == "1"
    assert s['poplar_logins_total{mechanism="USER"}'] == "1"
    assert s["poplar_retr_messages_total"] == "1"
    assert s["poplar_retr_bytes_total"] == str(size)
    assert s["poplar_dele_messages_total"] == "1"
    assert s['poplar_sessions_ended_total{reason="quit"}'] == "1"
    assert s['poplar_sessions{phase="transaction"}'] == "0"
    assert s["poplar_connections_total"] == "1"
    assert s["poplar_auth_blocks_total"] == "0"
    assert s['poplar_command_duration_seconds_count{command="PASS"}'] == "2"
    assert s['poplar_command_duration_seconds_bucket{command="PASS",le="+Inf"}'] == "2"
    assert s['poplar_command_duration_seconds_count{command="RETR"}'] == "1"
    # Each family announced once, before its samples.
    assert body.count("# TYPE poplar_logins_total counter\n") == 1
    assert body.index("# TYPE poplar_logins_total counter") < body.index("poplar_logins_total{")


def test_failure_classes_and_storage_errors(small_env):
    import os
    import shutil
    with with_metrics(small_env, auth={"plaintext": "tls-only"}) as srv:
        port = metrics_port(srv)
        with srv.connect() as c:
            c.greeting()
            assert c.cmd("USER demo").startswith(b"-ERR [AUTH] plaintext")
            assert c.cmd("AUTH XFOO") == b"-ERR unsupported authentication mechanism\r\n"
            assert c.cmd("QUIT").startswith(b"+OK")
        srv.wait_log(r"session end: ")
        s = samples(curl(port)[1])
    assert s['poplar_auth_failures_total{reason="plaintext_refused"}'] == "1"
    assert s['poplar_auth_failures_total{reason="malformed"}'] == "1"
    assert s['poplar_auth_failures_total{reason="invalid_credentials"}'] == "0"


def test_other_paths_methods_and_bad_requests(small_env):
    with with_metrics(small_env) as srv:
        port = metrics_port(srv)
        head, body = curl(port, "/")
        assert head.split("\r\n")[0] == "HTTP/1.1 404 Not Found"
        assert body == "not found: the metrics are at /metrics\n"
        head, _ = curl(port, "/metrics", "-X", "POST")
        assert head.split("\r\n")[0] == "HTTP/1.1 405 Method Not Allowed"
        assert "Allow: GET" in head.split("\r\n")
        assert raw_exchange(port, b"garbage\r\n\r\n") == (
            b"HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: 23\r\n"
            b"Connection: close\r\n\r\nmalformed request line\n")
        assert raw_exchange(port, b"GET /metrics HTTP/9\r\n\r\n").startswith(b"HTTP/1.1 400 Bad Request\r\n")
        got = raw_exchange(port, b"GET /metrics HTTP/1.1\r\nX: " + b"a" * 9000)
        assert got.startswith(b"HTTP/1.1 431 Request Header Fields Too Large\r\n"), got[:100]
        srv.wait_log(r'metrics: bad request: rip=127\.0\.0\.1 status=400 reason="malformed request line"')
        # A client that says nothing is closed on after the request deadline, without a reply.
        t0 = time.monotonic()
        assert raw_exchange(port, b"GET /metr", timeout=20) == b""
        assert 4 <= time.monotonic() - t0 < 10
        assert curl(port)[0].startswith("HTTP/1.1 200 OK")


def test_reload_keeps_the_endpoint_and_a_change_needs_a_restart(small_env):
    with with_metrics(small_env) as srv:
        port = metrics_port(srv)
        small_env.write_config({"metrics": {"listen": "127.0.0.1:1"}})
        r = run([srv_bin(), "reload", "--config", small_env.config_path])
        assert r.returncode == 0, r.stderr
        srv.wait_log(r"warning: reload: metrics\.listen changed; the new value takes effect at the next restart")
        s = samples(curl(port)[1])
        assert s["poplar_reloads_total"] == "1"


def test_bad_listen_value_is_a_config_error(small_env):
    small_env.write_config({"metrics": {"listen": "localhost:9191"}})
    r = run([srv_bin(), "check", "--config", small_env.config_path])
    assert r.returncode != 0
    assert b"metrics.listen" in r.stdout + r.stderr


def srv_bin():
    from conftest import poplar_bin
    return poplar_bin()
