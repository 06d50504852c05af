# The benchmark's instrument (bench/loadgen, docs/performance.md): poplar-loadgen against the real
# server, and its bare-copy baseline. Its numbers are never asserted (speed is measured, not
# tested); what it must get right is what it checks and what it reports as an error.
import json
import os
import subprocess
import threading

from conftest import USERS


def loadgen() -> str:
    path = os.environ.get("POPLAR_LOADGEN")
    assert path and os.path.exists(path), "POPLAR_LOADGEN must name the built poplar-loadgen"
    return path


def run(args, expect_rc=0, timeout=60):
    """The JSON report; poplar-loadgen exits 2 when any session or measurement failed."""
    cp = subprocess.run([loadgen(), "--json", *args], capture_output=True, text=True, timeout=timeout)
    assert cp.returncode == expect_rc, cp.stderr
    return json.loads(cp.stdout)


def users_file(env, *names):
    path = os.path.join(env.root, "loadgen-users.txt")
    with open(path, "w") as f:
        for n in names:
            f.write(f"{n}:{USERS[n][1]}\n")
    return path


def test_full_sessions_check_every_message_and_measure_the_server(small_env):
    with small_env.server() as srv:
        r = run(["--port", str(srv.port), "--users", users_file(small_env, "bob", "carol"), "--mode", "full",
                 "-c", "2", "--sessions", "10", "--server-pid", str(srv.proc.pid)])
    assert (r["sessions"], r["errors"]) == (10, 0), r["error_samples"]
    assert r["messages"] == 5 * 4  # bob's 4 messages in each of his 5 sessions, carol has none
    server = r["server"]  # CPU is counted in clock ticks, too coarse to assert for ten sessions
    assert server["measured"] is True
    # The network process, the auth supervisor and the auth process (docs/security.md "Processes").
    assert server["before"]["processes"] == server["after"]["processes"] == 3
    assert server["rss_peak_bytes"] > 0


def test_bare_copy_reports_the_wire_form_and_its_sender_cpu(tmp_path):
    stored = b"".join(b"line %d of the message, long enough to matter\n" % i for i in range(200000))
    path = tmp_path / "message"
    path.write_bytes(stored)
    r = run(["--mode", "bare-copy", "--file", str(path), "--repeat", "5"])
    t = r["transfer"]
    assert t["octets"] == len(stored) + stored.count(b"\n")  # LF -> CRLF, as RETR sends it
    assert len(t["mb_per_s"]) == 5
    assert r["errors"] == 0
    assert t["sender_cpu_s"] > 0
    assert abs(t["sender_ns_per_octet"] - t["sender_cpu_s"] * 1e9 / (5 * t["octets"])) < 1e-3


def test_bare_copy_over_tls_sends_the_same_octets(env, tmp_path):
    stored = b"".join(b"line %d of the message\n" % i for i in range(100000))
    path = tmp_path / "message"
    path.write_bytes(stored)
    r = run(["--mode", "bare-copy", "--file", str(path), "--repeat", "3", "--tls", "implicit",
             "--cert", env.cert, "--key", env.key])
    assert r["errors"] == 0
    assert r["cipher"].startswith("TLSv1.")  # reported, so a run shows what it measured
    t = r["transfer"]
    assert t["octets"] == len(stored) + stored.count(b"\n")  # plaintext octets, as for plain copies
    assert len(t["mb_per_s"]) == 3


def test_bare_copy_refuses_what_it_cannot_do(env, tmp_path):
    path = tmp_path / "message"
    path.write_bytes(b"x\n")
    for args, says in ((["--tls", "stls"], "none or implicit"),
                       (["--tls", "implicit"], "needs --cert and --key"),
                       (["--tls", "implicit", "--cert", str(tmp_path / "none.pem"), "--key", env.key],
                        "use_certificate_chain_file")):
        cp = subprocess.run([loadgen(), "--mode", "bare-copy", "--file", str(path), *args],
                            capture_output=True, text=True, timeout=30)
        assert cp.returncode != 0, args
        assert says in cp.stderr, (args, cp.stderr)


def test_a_server_that_ends_during_the_run_is_an_error_not_a_negative_cpu(small_env):
    with small_env.server() as srv:
        stopper = threading.Timer(1.0, srv.stop)  # SIGTERM a second into a three-second run
        stopper.start()
        try:
            r = run(["--port", str(srv.port), "--users", users_file(small_env, "bob"), "--mode", "login",
                     "-c", "2", "--duration", "3", "--server-pid", str(srv.proc.pid)], expect_rc=2)
        finally:
            stopper.cancel()
            stopper.join()
    assert any("the server ended during the run" in e for e in r["error_samples"]), r["error_samples"]
    assert r["errors"] > 0
