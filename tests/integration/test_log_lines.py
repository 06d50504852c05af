# Log lines as the real binary writes them: the exact level and text of the lines fail2ban and
# log monitoring read (tls/stls handshake failures, login, auth failed, session end, connection
# refused, cannot start), each also checked against its row in docs/operations.md "Logs".
import re
import socket
import time

import pytest

from conftest import poplar_bin, require_binary, run
from test_log_catalogue import doc_rows

# "2025-03-14T09:26:53.589+01:00 poplar[4242] info: message" (src/cli/runtime.cpp's pattern).
LINE_RE = re.compile(r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}[+-]\d\d:\d\d) poplar\[(\d+)\] (\w+): (.*)")

# A documented form as a regex: `a|b` is one of the alternatives, `...` any text, an UPPERCASE
# word (U, IP, N, S.SSS, PATH, ...) any value; everything else literal.
DOC_TOKEN_RE = re.compile(r"(\w+(?:\|\w+)+)|(\.\.\.)|((?<![A-Za-z])[A-Z](?:[A-Z.]*[A-Z])?)")


def doc_form_regex(text):
    out, i = [], 0
    for m in DOC_TOKEN_RE.finditer(text):
        out.append(re.escape(text[i:m.start()]))
        if m.group(1):
            out.append("(?:" + "|".join(re.escape(a) for a in m.group(1).split("|")) + ")")
        elif m.group(2):
            out.append(".*")
        else:
            out.append(".*?")
        i = m.end()
    out.append(re.escape(text[i:]))
    return re.compile("".join(out), re.S)


DOC_FORMS = [(row, doc_form_regex(row.text)) for row in doc_rows() if not row.problems]


def log_lines(text, pids=None):
    """[(level, message)] of every log line in text; asserts the prefix of each, and that it
    comes from one of `pids` (poplar serve's processes: network, auth supervisor, auth)."""
    out = []
    for line in text.splitlines():
        m = LINE_RE.fullmatch(line)
        assert m, f"not a poplar log line: {line!r}"
        if pids is not None:
            assert int(m.group(2)) in pids, line
        out.append((m.group(3), m.group(4)))
    return out


def assert_documented(level, message):
    """The docs have exactly one row for this line, at this level. The catch-all `WARNING` row
    (a warning `check` prints, logged as it is) matches any text: it counts only when nothing more
    specific does."""
    rows = [row for row, rx in DOC_FORMS if rx.fullmatch(message)]
    if len(rows) > 1:
        rows = [row for row in rows if row.text != "WARNING"]
    assert len(rows) == 1, f"{len(rows)} rows in docs/operations.md match {message!r}: {[r.text for r in rows]}"
    assert rows[0].level == level, (f"poplar logged {message!r} at {level}, "
                                    f"docs/operations.md:{rows[0].line} says {rows[0].level}")


def logged(srv, prefix, timeout=5.0):
    """The (level, message) lines starting with prefix, once there is at least one."""
    deadline = time.monotonic() + timeout
    while True:
        got = [(lv, msg) for lv, msg in log_lines(srv.log(), srv.family()) if msg.startswith(prefix)]
        if got or time.monotonic() > deadline:
            return got
        time.sleep(0.02)


def expect_line(srv, level, pattern, prefix):
    """Exactly one line starting with prefix; it is at level, fully matches pattern and matches
    its documented form. Returns the message."""
    got = logged(srv, prefix)
    assert len(got) == 1, f"expected one {prefix!r} line, got {got}:\n{srv.log()[-3000:]}"
    lv, msg = got[0]
    assert lv == level, f"{msg!r} logged at {lv}, expected {level}"
    assert re.fullmatch(pattern, msg), f"{msg!r} does not match {pattern!r}"
    assert_documented(lv, msg)
    return msg


def plain_session_end(srv, c):
    """Runs a complete session on c (login, QUIT) and waits for its session end line."""
    c.greeting()
    c.login()
    assert c.cmd("QUIT") == b"+OK signing off\r\n"
    srv.wait_log(r'session end: user="demo" .*reason=quit')


def test_doc_form_regex():
    assert doc_form_regex('login: user="U" rip=IP tls=yes|no').fullmatch('login: user="" rip=::1 tls=no')
    assert not doc_form_regex("tls=yes|no").fullmatch("tls=maybe")
    assert doc_form_regex("duration=S.SSSs reason=R").fullmatch("duration=0.012s reason=quit")
    assert not doc_form_regex("shutdown complete").fullmatch("shutdown completed")


@pytest.mark.parametrize("level", ["info", "debug"])
def test_implicit_tls_garbage(small_env, level):
    """A failed implicit-TLS handshake: debug, never info, and no session end either way."""
    with small_env.server({"log": {"level": level}}) as srv:
        with socket.create_connection(srv.ports["pop3s"][0], timeout=10) as s:
            s.sendall(b"GET / HTTP/1.0\r\n\r\n" + bytes(range(256)))
            s.settimeout(10)
            try:
                while s.recv(4096):
                    pass
            except ConnectionResetError:
                pass
        # A later session on the same server: once its session end is written, the scanner's
        # connection is long finished.
        with srv.connect() as c:
            plain_session_end(srv, c)
        time.sleep(0.2)
        if level == "debug":
            expect_line(srv, "debug", r'tls handshake failed: rip=127\.0\.0\.1 error="[^"]+"', "tls handshake failed")
        else:
            assert logged(srv, "tls handshake failed", timeout=0) == []
        ends = logged(srv, "session end:")
        assert [msg.split(" rip=")[0] for _, msg in ends] == ['session end: user="demo"'], ends


def test_stls_handshake_failed(small_env):
    with small_env.server() as srv, srv.connect() as c:
        c.greeting()
        assert c.cmd("STLS") == b"+OK begin TLS negotiation\r\n"
        c.send(b"this is not a TLS ClientHello\r\n" * 4)
        c.read_until_close()
        expect_line(srv, "info", r'stls handshake failed: rip=127\.0\.0\.1 error="[^"]+"', "stls handshake failed")
        expect_line(srv, "info", r'session end: user="" rip=127\.0\.0\.1 retr=0/0 top=0 dele=0 in=\d+ out=\d+ '
                                 r'duration=\d+\.\d{3}s reason=error', "session end:")


def test_auth_failed_login_and_session_end(small_env):
    with small_env.server() as srv, srv.connect() as c:
        c.greeting()
        assert c.cmd("USER demo") == b"+OK\r\n"
        assert c.cmd("PASS wrong").startswith(b"-ERR [AUTH]")
        expect_line(srv, "info", r'auth failed: user="demo" rip=127\.0\.0\.1 mech=USER reason="password mismatch"',
                    "auth failed:")
        c.login()
        stat = c.cmd("STAT")
        count = int(stat.split()[1])
        expect_line(srv, "info", rf'login: user="demo" rip=127\.0\.0\.1 mech=USER tls=no messages={count}', "login:")
        r = c.cmd("RETR 1")
        size = int(r.split()[1])
        c.read_multiline_raw()
        assert c.cmd("QUIT") == b"+OK signing off\r\n"
        msg = expect_line(srv, "info", rf'session end: user="demo" rip=127\.0\.0\.1 retr=1/{size} top=0 dele=0 '
                                       r'in=(\d+) out=(\d+) duration=\d+\.\d{3}s reason=quit', "session end:")
        sent = len(b"USER demo\r\nPASS wrong\r\nUSER demo\r\nPASS demo-secret\r\nSTAT\r\nRETR 1\r\nQUIT\r\n")
        assert f" in={sent} " in msg, msg


def test_connection_refused_is_a_warning(small_env):
    with small_env.server({"server": {"max_connections": 1}}) as srv, srv.connect() as first:
        first.greeting()
        with srv.connect() as second:
            assert second.readline() == b"-ERR [SYS/TEMP] too many connections, try later\r\n"
        expect_line(srv, "warning", r'connection refused: rip=127\.0\.0\.1 reason="server\.max_connections reached"',
                    "connection refused:")
        assert first.cmd("QUIT") == b"+OK signing off\r\n"


# ---------------------------------------------------------------------------------------------
# A key that does not belong to the certificate (docs/configuration.md, `poplar check`)

MISMATCH = "tls.private_key: does not match tls.certificate: "


def other_key(tmp_path, algorithm):
    path = tmp_path / f"other-{algorithm}.key"
    opts = ["-pkeyopt", "rsa_keygen_bits:2048"] if algorithm == "RSA" else ["-pkeyopt", "ec_paramgen_curve:P-256"]
    r = run(["openssl", "genpkey", "-algorithm", algorithm, *opts, "-out", str(path)])
    assert r.returncode == 0, r.stderr
    path.chmod(0o600)
    return str(path)


# The certificate is RSA: another RSA key has other values, an EC key is another type. After the
# documented text comes OpenSSL's reason (its wording for the EC case varies between versions).
@pytest.mark.parametrize("algorithm,reason", [("RSA", r"key values mismatch"),
                                              ("EC", r"different key types|key type mismatch")])
def test_key_that_does_not_match_the_certificate(small_env, tmp_path, algorithm, reason):
    require_binary()
    path = small_env.write_config({"tls": {"private_key": other_key(tmp_path, algorithm)}})

    r = run([poplar_bin(), "check", "--config", path], timeout=30)
    err = r.stderr.decode(errors="replace")
    assert r.returncode == 1, err
    assert r.stdout == b""
    # Warnings (root, {PLAIN} secrets, APOP) come first; the one problem is the mismatch.
    lines = [l for l in err.splitlines() if not l.startswith("poplar: warning: ")]
    assert len(lines) == 1 and lines[0].startswith("poplar: invalid configuration: " + MISMATCH), err
    assert re.search(rf"(?:{reason})$", lines[0]), err

    # serve refuses with the very lines check prints, before any logging starts.
    r = run([poplar_bin(), "serve", "--config", path], timeout=30)
    assert r.returncode == 1
    assert r.stderr.decode(errors="replace").splitlines() == lines


def test_unreadable_key_is_still_cannot_load(small_env, tmp_path):
    bad = tmp_path / "garbage.key"
    bad.write_text("-----BEGIN PRIVATE KEY-----\nnot base64 at all\n-----END PRIVATE KEY-----\n")
    path = small_env.write_config({"tls": {"private_key": str(bad)}})
    r = run([poplar_bin(), "check", "--config", path], timeout=30)
    err = r.stderr.decode(errors="replace")
    assert r.returncode == 1
    problems = [l for l in err.splitlines() if not l.startswith("poplar: warning: ")]
    assert len(problems) == 1, err
    assert problems[0].startswith(f'poplar: invalid configuration: tls.private_key: cannot load "{bad}": '), err
