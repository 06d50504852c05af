# A real Prometheus (Debian's prometheus, started here on loopback with its own config and data
# folder, never the system instance) scrapes poplar's metrics endpoint every second; the counts
# of generated traffic are read back through its HTTP API.
import base64
import json
import os
import shutil
import signal
import socket
import subprocess
import time
import urllib.parse
import urllib.request

import pytest

from conftest import run
from test_metrics import metrics_port, with_metrics

PROMETHEUS = shutil.which("prometheus")
QUERY_TIMEOUT = 30.0   # seconds for a value to show up in Prometheus
START_TIMEOUT = 30.0   # seconds for Prometheus to answer /-/ready

pytestmark = pytest.mark.skipif(PROMETHEUS is None, reason="prometheus is not installed (scripts/install-deps)")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Prometheus:
    def __init__(self, root, target_port):
        self.root = root
        self.port = free_port()
        os.makedirs(os.path.join(root, "data"))
        self.config = os.path.join(root, "prometheus.yml")
        with open(self.config, "w") as f:
            f.write(f"""global:
  scrape_interval: 1s
  evaluation_interval: 1s
scrape_configs:
  - job_name: poplar
    static_configs:
      - targets: ["127.0.0.1:{target_port}"]
""")
        self.log_path = os.path.join(root, "prometheus.log")
        self.proc = None

    def __enter__(self):
        self.log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(
            [PROMETHEUS, f"--config.file={self.config}", f"--storage.tsdb.path={self.root}/data",
             f"--web.listen-address=127.0.0.1:{self.port}"],
            stdin=subprocess.DEVNULL, stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/-/ready", timeout=2) as r:
                    if r.status == 200:
                        return self
            except OSError:
                pass
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise AssertionError(f"prometheus did not start:\n{open(self.log_path).read()[-4000:]}")
            time.sleep(0.2)

    def __exit__(self, *exc):
        self.stop()

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)
        self.log.close()

    def query(self, expr):
        """The instant vector of `expr` as {labels-as-tuple: value}."""
        url = f"http://127.0.0.1:{self.port}/api/v1/query?" + urllib.parse.urlencode({"query": expr})
        with urllib.request.urlopen(url, timeout=5) as r:
            answer = json.load(r)
        assert answer["status"] == "success", answer
        return {tuple(sorted(v["metric"].items())): v["value"][1] for v in answer["data"]["result"]}

    def wait_value(self, expr, want):
        """Polls until `expr` is one sample equal to `want` (a string), within QUERY_TIMEOUT."""
        deadline = time.monotonic() + QUERY_TIMEOUT
        got = None
        while time.monotonic() < deadline:
            got = self.query(expr)
            if list(got.values()) == [want]:
                return
            time.sleep(0.25)
        raise AssertionError(f"{expr}: wanted {want}, Prometheus has {got}")


def test_prometheus_scrapes_the_counts(small_env, tmp_path):
    with with_metrics(small_env) as srv, Prometheus(str(tmp_path / "prom"), metrics_port(srv)) as prom:
        prom.wait_value('up{job="poplar"}', "1")
        with srv.connect() as c:
            c.greeting()
            for _ in range(2):  # auth.max_failures is 3 in the test config
                assert c.cmd("USER alice") == b"+OK\r\n"
                assert c.cmd("PASS wrong").startswith(b"-ERR [AUTH]")
            c.login("bob")
            sizes = [int(c.cmd(f"LIST {i}").split()[2]) for i in (1, 2)]
            for i in (1, 2):
                assert c.cmd(f"RETR {i}").startswith(b"+OK")
                c.read_multiline_raw()
            assert c.cmd("DELE 1").startswith(b"+OK")
            prom.wait_value('poplar_sessions{job="poplar",phase="transaction"}', "1")
            assert c.cmd("QUIT") == b"+OK signing off\r\n"
        with srv.connect() as c:
            c.greeting()
            assert c.cmd("AUTH PLAIN " + base64.b64encode(b"\0demo\0demo-secret").decode()).startswith(b"+OK")
            assert c.cmd("QUIT") == b"+OK signing off\r\n"
        srv.wait_log(r'session end: user="demo"')
        prom.wait_value('poplar_auth_failures_total{job="poplar",reason="invalid_credentials"}', "2")
        prom.wait_value('poplar_logins_total{job="poplar",mechanism="USER"}', "1")
        prom.wait_value('poplar_logins_total{job="poplar",mechanism="PLAIN"}', "1")
        prom.wait_value('poplar_retr_messages_total{job="poplar"}', "2")
        prom.wait_value('poplar_retr_bytes_total{job="poplar"}', str(sum(sizes)))
        prom.wait_value('poplar_dele_messages_total{job="poplar"}', "1")
        prom.wait_value('poplar_sessions_ended_total{job="poplar",reason="quit"}', "2")
        prom.wait_value('poplar_sessions{job="poplar",phase="transaction"}', "0")
        prom.wait_value('poplar_command_duration_seconds_count{job="poplar",command="PASS"}', "3")
        prom.wait_value('poplar_auth_blocks_total{job="poplar"}', "0")
        prom.wait_value('up{job="poplar"}', "1")
