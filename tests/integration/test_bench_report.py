# bench/run-vs-dovecot --report: the results table is rebuilt from results.json alone (no root, no
# Dovecot, no measuring), with each advantage's median ratio and the range over the interleaved
# pairs of repetitions.
import json
import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
SCRIPT = os.path.join(HERE, "..", "..", "bench", "run-vs-dovecot")


def reps(sessions, cpu):
    return [{"sessions_per_s": s, "cpu_per_session_ms": c, "latency_p50_ms": 10.0, "latency_p99_ms": 20.0,
             "errors": 0, "loadgen_cpu_per_session_ms": 0.5, "wire_bytes_per_session": 1_000_000,
             "other_cpu_pct": 1.0} for s, c in zip(sessions, cpu)]


def test_report_shows_median_ratio_and_the_range_of_pairs(tmp_path):
    poplar = reps([800.0, 900.0, 1000.0], [1.0, 1.5, 2.0])
    dovecot = reps([200.0, 200.0, 200.0], [8.0, 8.0, 8.0])
    median = {name: {k: sorted(r[k] for r in runs)[1] for k in runs[0]}
              for name, runs in (("poplar", poplar), ("dovecot", dovecot))}
    meta = {"started": "2026-11-22 15:20", "machine": "test machine", "poplar_commit": "abc1234",
            "dovecot_version": "Dovecot 2.3.19.1 (9b53102964)", "auth_cache": "on", "reps": 3, "duration": 15,
            "data": "test mail", "large_repeat": 5, "send_floor_ns_per_octet": 0.4}
    scenarios = {"full16": {"kind": "sessions", "description": "full sessions, 16 clients, plain",
                            "reps": {"poplar": poplar, "dovecot": dovecot}, "median": median}}
    (tmp_path / "results.json").write_text(json.dumps({"meta": meta, "scenarios": scenarios}))

    r = subprocess.run([sys.executable, SCRIPT, "--report", str(tmp_path)], capture_output=True, text=True,
                       timeout=60)
    assert r.returncode == 0, r.stderr
    table = (tmp_path / "results.md").read_text()
    # Higher is better: 900/200 = 4.5 of the medians; the pairs give 4.0, 4.5 and 5.0.
    assert "| full16 | sessions/s | 900 | 200 | 4.50x (4.00-5.00) | poplar >= 5x | 0/0 |\n" in table
    # Lower is better: 8/1.5 = 5.33 of the medians; the pairs give 8.0, 5.33 and 4.0.
    assert "| full16 | server CPU ms/session | 1.50 | 8.00 | 5.33x (4.00-8.00) | poplar <= 1/8 | 0/0 |\n" in table
    # The floor: 0.4 ns per octet of 1,000,000 octets is 0.4 ms; Dovecot's 8 ms is 20x that.
    assert "| full16 | floor: send() alone of a session's RETR octets, CPU ms | 0.40 | | 20.0x at most | | |\n" in table
    assert r.stdout.strip() == table.strip()  # printed as well as written
    svg = (tmp_path / "plot.svg").read_text()
    assert svg.startswith("<svg") and "poplar vs Dovecot 2.3.19.1, 2026-11-22 15:20" in svg


def test_report_without_usable_results_fails_clearly(tmp_path):
    for content in (None, "{not json", '{"meta": {}}', '{"meta": {}, "scenarios": {}}', "[1]"):
        if content is not None:
            (tmp_path / "results.json").write_text(content)
        r = subprocess.run([sys.executable, SCRIPT, "--report", str(tmp_path)], capture_output=True, text=True,
                           timeout=60)
        assert r.returncode == 1, (content, r.stderr)
        assert r.stderr.startswith(f"run-vs-dovecot: cannot read {tmp_path}/results.json: "), (content, r.stderr)
        assert "Traceback" not in r.stderr
        assert not [p.name for p in tmp_path.iterdir() if p.name != "results.json"]
