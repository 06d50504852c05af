# The log catalogue: every log call in src/ has a row in docs/operations.md "Logs" with the same
# level and message, and every row there is still logged. Pure Python: reads files, runs nothing.
#
# What counts as a log call
#   spdlog::trace/debug/info/warn/error/critical(FORMAT, ...), spdlog::log(spdlog::level::L, ...),
#   SPDLOG_INFO(...) and the other SPDLOG_ macros (also SPDLOG_LOGGER_INFO(logger, ...)),
#   x->info(...) / x.info(...) on a receiver named like a logger (a name ending in log, log_,
#   logger or logger_; default_logger(), spdlog::get(...)), and the project's own wrappers listed
#   in WRAPPERS below. Comments are
#   ignored. FORMAT must be string literals (adjacent literals are joined, also across lines);
#   a call whose format is not a literal fails test_log_calls_are_readable.
#
# What counts as a documented line
#   A row of a table in the "## Logs" section whose header has the columns `line` and `level`.
#   The line cell holds exactly one `code span`: the message as printed after "LEVEL: " (`\|`
#   is a table-escaped `|`). The level cell is the level as spdlog prints it (LEVEL_NAMES).
#
# The matching rule
#   A format is split at its fmt replacement fields ({}, {:.3f}, {0}, ...; {{ and }} are a
#   literal brace) into literal pieces. A row matches a call when the row's text is exactly
#   those pieces, in order, with each replacement field written as some non-empty text that
#   contains no "=" (the docs write U, IP, N, E, ... or an example value). So all literal text
#   must agree: the words, the punctuation and the field names (user=, rip=, ...), and the docs
#   cannot slip in or drop a field, since a stand-in never contains "=".
#   Calls with the same level and format (the same line logged from several places) are one
#   message. Each row goes to the message it matches with the most literal text (ties: the one
#   at the row's level). Then every message must have exactly one row, at its level, and every
#   row must have gone to a message.
import difflib
import pathlib
import re
from dataclasses import dataclass, field

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
SRC = ROOT / "src"
DOC = ROOT / "docs" / "operations.md"
DOC_SECTION = "## Logs"

# spdlog's level functions and the names its %l pattern flag prints (src/cli/runtime.cpp uses
# "%l"; spdlog's default SPDLOG_LEVEL_NAMES, which poplar does not override).
LEVEL_NAMES = {"trace": "trace", "debug": "debug", "info": "info", "warn": "warning", "err": "error",
               "error": "error", "critical": "critical"}
LEVEL_FUNCS = ("trace", "debug", "info", "warn", "error", "critical")

# The project's own logging helpers: function name -> level. A wrapper's format argument is read
# like spdlog's; list it here, or its spdlog call (whose format is then not a literal) fails.
WRAPPERS: dict = {}

# Log calls that poplar itself never executes, so they are not in the admin's docs. Each entry
# must still exist in src/ (test_not_written_entries_exist), so the list cannot go stale.
NOT_WRITTEN = {
    ("src/auth/password_hash.cpp", "password verification impossible: {} ({{{}}})"):
        "verify_password() is only called by the unit tests; serve and check go through "
        "credential_checker, which logs 'user U: stored password cannot be verified'",
}

# A stand-in for one replacement field in the docs: any non-empty text without "=".
STAND_IN = r"[^=]+"

# Field name before a replacement field -> the stand-in the docs use; for the suggested row.
SUGGESTED_STAND_INS = {"user": "U", "rip": "IP", "mech": "M", "reason": "R", "error": "E", "msn": "N",
                       "messages": "N", "tls": "yes|no"}


# ---------------------------------------------------------------------------------------------
# Reading C++

def blank_comments(text: str):
    """(code, mask): text with comments replaced by spaces, and the same with the contents of
    string and character literals blanked too (for finding calls). Newlines are kept, so offsets
    and line numbers agree with text."""
    code, mask = list(text), list(text)
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if text.startswith("//", i):
            j = text.find("\n", i)
            j = n if j < 0 else j
            for k in range(i, j):
                code[k] = mask[k] = " "
            i = j
        elif text.startswith("/*", i):
            j = text.find("*/", i + 2)
            j = n if j < 0 else j + 2
            for k in range(i, j):
                if text[k] != "\n":
                    code[k] = mask[k] = " "
            i = j
        elif c == '"' or (c == "'" and not (i > 0 and (text[i - 1].isalnum() or text[i - 1] == "_"))):
            raw = c == '"' and i > 0 and text[i - 1] == "R"
            j = skip_literal(text, i, raw)
            for k in range(i + 1, j - 1):
                if text[k] != "\n":
                    mask[k] = " "
            i = j
        else:
            i += 1
    return "".join(code), "".join(mask)


def skip_literal(text: str, i: int, raw: bool = False) -> int:
    """Offset just past the string/char literal whose opening quote is at text[i]."""
    if raw:
        open_paren = text.index("(", i)
        delim = text[i + 1:open_paren]
        end = text.index(")" + delim + '"', open_paren)
        return end + len(delim) + 2
    quote = text[i]
    j = i + 1
    while j < len(text) and text[j] != quote:
        if text[j] == "\\":
            j += 1
        elif text[j] == "\n":
            raise ValueError("unterminated literal")
        j += 1
    return j + 1


SIMPLE_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", "0": "\0", "\\": "\\", '"': '"', "'": "'", "?": "?",
                  "a": "\a", "b": "\b", "f": "\f", "v": "\v"}


def unescape(body: str) -> str:
    out, i = [], 0
    while i < len(body):
        c = body[i]
        if c != "\\":
            out.append(c)
            i += 1
            continue
        nxt = body[i + 1]
        if nxt == "x":
            m = re.match(r"[0-9a-fA-F]+", body[i + 2:])
            out.append(chr(int(m.group(0), 16)))
            i += 2 + len(m.group(0))
        elif nxt in "01234567":
            m = re.match(r"[0-7]{1,3}", body[i + 1:])
            out.append(chr(int(m.group(0), 8)))
            i += 1 + len(m.group(0))
        else:
            out.append(SIMPLE_ESCAPES.get(nxt, nxt))
            i += 2
    return "".join(out)


LITERAL_RE = re.compile(r'(?:u8|u|U|L)?(R?)"')


def read_string_literals(text: str, i: int):
    """(joined value, offset after) for the adjacent string literals starting at text[i]
    (whitespace between them is fine), or None when text[i:] does not start with a literal."""
    parts = []
    while True:
        while i < len(text) and text[i].isspace():
            i += 1
        m = LITERAL_RE.match(text, i)
        if not m:
            break
        quote = m.end() - 1
        end = skip_literal(text, quote, raw=bool(m.group(1)))
        if m.group(1):
            body = text[quote + 1:end - 1]
            parts.append(body[body.index("(") + 1:body.rindex(")")])
        else:
            parts.append(unescape(text[quote + 1:end - 1]))
        i = end
    if not parts:
        return None
    return "".join(parts), i


def skip_argument(text: str, i: int) -> int:
    """Offset of the ',' or ')' ending the call argument that starts at text[i]; text is a mask
    from blank_comments, so a literal is just two quotes around blanks (raw strings too)."""
    depth = 0
    while i < len(text):
        c = text[i]
        if c in "([{":
            depth += 1
        elif c in ")]}":
            if depth == 0:
                return i
            depth -= 1
        elif c == "," and depth == 0:
            return i
        elif c == '"' or (c == "'" and not (text[i - 1].isalnum() or text[i - 1] == "_")):
            i = skip_literal(text, i)
            continue
        i += 1
    raise ValueError("unterminated call")


LEVEL_ALT = "|".join(LEVEL_FUNCS)
CALL_PATTERNS = [
    # (regex ending at the "(" of the call, how to find the level, arguments before the format)
    (re.compile(rf"\bspdlog::({LEVEL_ALT})\s*\("), "name", 0),
    (re.compile(rf"(?:\b\w*log(?:ger)?_?(?:\(\))?|\bspdlog::get\([^()]*\))\s*(?:->|\.)\s*({LEVEL_ALT})\s*\(",
                re.I), "name", 0),
    (re.compile(rf"\bSPDLOG_({LEVEL_ALT.upper()})\s*\("), "name", 0),
    (re.compile(rf"\bSPDLOG_LOGGER_({LEVEL_ALT.upper()})\s*\("), "name", 1),
    (re.compile(r"(?:\bspdlog::|(?:->|\.)\s*)log\s*\("), "argument", 0),
]


@dataclass
class LogCall:
    file: str        # relative to the repository, e.g. src/net/connection.cpp
    line: int
    level: str       # as printed: "warning", not "warn"
    fmt: str | None  # the format string's value, None if it is not a literal
    call: str        # the call up to its format argument, for messages

    @property
    def where(self):
        return f"{self.file}:{self.line}"


def extract_calls(text: str, file: str = "<text>"):
    """Every log call in one C++ source text."""
    code, mask = blank_comments(text)
    patterns = list(CALL_PATTERNS)
    for name in WRAPPERS:
        patterns.append((re.compile(rf"\b{re.escape(name)}\s*\("), "wrapper:" + name, 0))
    found = {}
    for rx, how, skip in patterns:
        for m in rx.finditer(mask):
            if m.start() in found:
                continue
            i = m.end()
            for _ in range(skip):
                i = skip_argument(mask, i) + 1
            if how == "name":
                level = m.group(1).lower()
            elif how == "argument":
                # spdlog::log([source_loc,] level, format, ...): the level must be spelled out.
                level = "?"
                for _ in range(2):
                    end = skip_argument(mask, i)
                    lm = re.fullmatch(r"\s*(?:spdlog::)?level::(\w+)\s*", mask[i:end])
                    i = end + 1
                    if lm:
                        level = lm.group(1)
                        break
            else:
                level = WRAPPERS[how.split(":", 1)[1]]
            lit = read_string_literals(code, i)
            fmt = None
            if lit is not None:
                after = lit[1]
                while after < len(code) and code[after].isspace():
                    after += 1
                if after < len(code) and code[after] in ",)":
                    fmt = lit[0]
            line = code.count("\n", 0, m.start()) + 1
            end = skip_argument(mask, i)
            snippet = " ".join(code[m.start():end].split()) + (")" if code[end] == ")" else ", ...)")
            found[m.start()] = LogCall(file, line, LEVEL_NAMES.get(level, level), fmt, snippet)
    return [found[k] for k in sorted(found)]


def source_files():
    return sorted(p for p in SRC.rglob("*") if p.suffix in (".cpp", ".h") and p.is_file())


def all_calls():
    calls = []
    for p in source_files():
        calls += extract_calls(p.read_text(encoding="utf-8"), str(p.relative_to(ROOT)))
    return calls


# ---------------------------------------------------------------------------------------------
# Formats

def literal_pieces(fmt: str):
    """The literal text around the replacement fields: n fields give n + 1 pieces."""
    pieces, cur, i = [], [], 0
    while i < len(fmt):
        if fmt.startswith("{{", i) or fmt.startswith("}}", i):
            cur.append(fmt[i])
            i += 2
        elif fmt[i] == "{":
            end = fmt.index("}", i)
            pieces.append("".join(cur))
            cur = []
            i = end + 1
        else:
            cur.append(fmt[i])
            i += 1
    pieces.append("".join(cur))
    return pieces


def format_regex(fmt: str):
    return re.compile(STAND_IN.join(re.escape(p) for p in literal_pieces(fmt)), re.S)


def literal_length(fmt: str) -> int:
    return sum(len(p) for p in literal_pieces(fmt))


def suggested_doc_text(fmt: str) -> str:
    """How a row for this format would look in the docs' convention."""
    pieces = literal_pieces(fmt)
    out = [pieces[0]]
    for before, after in zip(pieces, pieces[1:]):
        m = re.search(r"(\w+)=\"?$", before)
        if m:
            stand_in = SUGGESTED_STAND_INS.get(m.group(1), "N")
        elif before.endswith("maildir ") or after.startswith(": ") and not before.strip():
            stand_in = "PATH"
        else:
            stand_in = "..."
        out += [stand_in, after]
    return "".join(out)


def doc_row_markdown(text: str, level: str, when: str = "WHEN (fill in)") -> str:
    return f"| `{text.replace('|', chr(92) + '|')}` | {level} | {when} |"


# ---------------------------------------------------------------------------------------------
# Reading the docs

@dataclass
class DocRow:
    line: int        # in docs/operations.md
    text: str        # the message, with `\|` unescaped
    level: str
    problems: list = field(default_factory=list)

    @property
    def where(self):
        return f"{DOC.relative_to(ROOT)}:{self.line}"


def split_cells(row: str):
    cells = re.split(r"(?<!\\)\|", row.strip())
    return [c.strip() for c in cells[1:-1]]


def parse_doc(text: str):
    """The rows of every line/level table in the Logs section."""
    lines = text.splitlines()
    try:
        start = lines.index(DOC_SECTION)
    except ValueError:
        raise AssertionError(f"{DOC}: no {DOC_SECTION!r} section")
    rows, columns = [], None
    for n in range(start + 1, len(lines)):
        line = lines[n]
        if line.startswith("## "):
            break
        if not line.startswith("|"):
            columns = None
            continue
        cells = split_cells(line)
        if columns is None:
            columns = [c.lower() for c in cells]
            continue
        if all(re.fullmatch(r":?-+:?", c) for c in cells):
            continue
        if "line" not in columns or "level" not in columns:
            continue
        row = DocRow(n + 1, "", cells[columns.index("level")] if len(cells) == len(columns) else "")
        if len(cells) != len(columns):
            row.problems.append(f"has {len(cells)} cells, the header {len(columns)}")
            rows.append(row)
            continue
        spans = re.findall(r"`([^`]+)`", cells[columns.index("line")])
        if len(spans) != 1:
            row.problems.append(f"the line cell must hold exactly one `code span`, it holds {len(spans)}")
        else:
            row.text = spans[0].replace("\\|", "|")
        if row.level not in LEVEL_NAMES.values():
            row.problems.append(f"level {row.level!r} is not one spdlog prints "
                                f"({', '.join(sorted(set(LEVEL_NAMES.values())))})")
        rows.append(row)
    return rows


def doc_rows():
    return parse_doc(DOC.read_text(encoding="utf-8"))


# ---------------------------------------------------------------------------------------------
# The comparison

@dataclass
class Message:
    level: str
    fmt: str
    calls: list
    rows: list = field(default_factory=list)

    @property
    def where(self):
        return ", ".join(c.where for c in self.calls)


def messages_of(calls):
    by_key = {}
    for c in calls:
        if c.fmt is None or (c.file, c.fmt) in NOT_WRITTEN:
            continue
        by_key.setdefault((c.level, c.fmt), Message(c.level, c.fmt, [])).calls.append(c)
    return list(by_key.values())


def attribute(messages, rows):
    """Gives each well-formed row to its message (see the matching rule); returns the rows that
    match no message."""
    unmatched = []
    regexes = [(m, format_regex(m.fmt), literal_length(m.fmt)) for m in messages]
    for row in rows:
        if row.problems:
            continue
        candidates = [(m, n) for m, rx, n in regexes if rx.fullmatch(row.text)]
        if not candidates:
            unmatched.append(row)
            continue
        best = max(n for _, n in candidates)
        top = [m for m, n in candidates if n == best]
        same_level = [m for m in top if m.level == row.level]
        (same_level or top)[0].rows.append(row)
    return unmatched


def closest_formats(text, messages, n=2):
    docs = {suggested_doc_text(m.fmt): m for m in messages}
    close = difflib.get_close_matches(text, list(docs), n=n, cutoff=0.5)
    return [f"{docs[c].where}: {docs[c].fmt!r}" for c in close]


class Catalogue:
    def __init__(self, calls, rows):
        self.calls = calls
        self.rows = rows
        self.messages = messages_of(calls)
        self.stale = attribute(self.messages, rows)

    def unreadable(self):
        out = []
        for c in self.calls:
            if c.fmt is None:
                out.append(f"{c.where}: the format of `{c.call}` is not a string literal, so the docs cannot "
                           f"describe it: pass the constant text as the format and the variable parts as "
                           f"arguments (or, for a logging helper, add it to WRAPPERS in this test)")
            elif c.level not in LEVEL_NAMES.values():
                out.append(f"{c.where}: cannot tell the level of `{c.call}`")
        for row in self.rows:
            out += [f"{row.where}: row {p}" for p in row.problems]
        return out

    def undocumented(self):
        out = []
        for m in self.messages:
            if not m.rows:
                out.append(f"{m.where}: {m.level} {m.fmt!r} has no row in {DOC.relative_to(ROOT)} "
                           f"\"Logs\"; add this row to the table for its area:\n"
                           f"    {doc_row_markdown(suggested_doc_text(m.fmt), m.level)}")
        return out

    def wrong_levels(self):
        out = []
        for m in self.messages:
            if len(m.rows) == 1 and m.rows[0].level != m.level:
                r = m.rows[0]
                out.append(f"{r.where}: `{r.text}` is documented at {r.level}, but {m.where} logs it at "
                           f"{m.level}; change the row to:\n    {doc_row_markdown(r.text, m.level, '...')}")
        return out

    def stale_rows(self):
        out = []
        for row in self.stale:
            hint = closest_formats(row.text, self.messages)
            out.append(f"{row.where}: row `{row.text}` ({row.level}) matches no log call in src/; remove it "
                       f"or fix its text" + (f" (closest: {'; '.join(hint)})" if hint else ""))
        for m in self.messages:
            if len(m.rows) > 1:
                out.append(f"{' and '.join(r.where for r in m.rows)}: rows "
                           f"{', '.join('`' + r.text + '`' for r in m.rows)} all describe {m.where} "
                           f"{m.fmt!r}; one line, one row (a row that described another line is stale)")
        return out


@pytest.fixture(scope="module")
def catalogue():
    return Catalogue(all_calls(), doc_rows())


def fail_with(problems, what):
    if problems:
        pytest.fail(f"{len(problems)} {what}:\n" + "\n".join(problems), pytrace=False)


# ---------------------------------------------------------------------------------------------
# The catalogue of this tree

def test_log_calls_and_rows_are_readable(catalogue):
    fail_with(catalogue.unreadable(), "log calls or rows this test cannot read")


def test_every_log_call_is_documented(catalogue):
    assert len(catalogue.messages) >= 30, "suspiciously few log calls found: is the extractor broken?"
    fail_with(catalogue.undocumented(), "log lines missing from the docs")


def test_documented_levels_match_the_code(catalogue):
    fail_with(catalogue.wrong_levels(), "documented levels that differ from the code")


def test_no_stale_rows(catalogue):
    fail_with(catalogue.stale_rows(), "rows in the docs that no log call writes")


def test_suggested_rows_match_their_calls(catalogue):
    # The row a failure message proposes must make the test pass once added.
    for m in catalogue.messages:
        assert format_regex(m.fmt).fullmatch(suggested_doc_text(m.fmt)), (m.where, suggested_doc_text(m.fmt))


def test_level_names_are_spdlogs_defaults():
    # LEVEL_NAMES holds what spdlog's %l prints by default; that holds while poplar prints %l and
    # does not redefine SPDLOG_LEVEL_NAMES (test_log_lines.py sees the names in real output).
    runtime = (SRC / "cli" / "runtime.cpp").read_text(encoding="utf-8")
    assert re.search(r'set_pattern\("[^"]*%l: %v"\)', runtime), "the log pattern no longer prints '%l: '"
    build_files = [ROOT / "CMakeLists.txt", *SRC.rglob("CMakeLists.txt"), *(ROOT / "cmake").glob("*.cmake")]
    overrides = [str(p.relative_to(ROOT)) for p in [*source_files(), *build_files]
                 if p.is_file() and "SPDLOG_LEVEL_NAMES" in p.read_text(encoding="utf-8", errors="replace")]
    assert overrides == [], f"SPDLOG_LEVEL_NAMES redefined in {overrides}: update LEVEL_NAMES"


def test_not_written_entries_exist(catalogue):
    present = {(c.file, c.fmt) for c in catalogue.calls}
    missing = [f"{f}: {fmt!r} ({why})" for (f, fmt), why in NOT_WRITTEN.items() if (f, fmt) not in present]
    fail_with(missing, "NOT_WRITTEN entries that are no longer in src/ (remove them)")


# ---------------------------------------------------------------------------------------------
# The extractor and the rule, on made-up input

SAMPLE_CPP = r'''
void f() {
    // spdlog::info("in a comment: {}", x);
    /* spdlog::error("in a block comment"); */
    const char* s = "spdlog::warn(\"in a string\")";
    spdlog::info("session end: user=\"{}\" rip={} "
                 "duration={:.3f}s",
                 user, peer,
                 secs);
    spdlog::warn(
        "braces {{{}}} and \x41 tab\t" R"(raw "x")", a);
    logger->error("via a logger: {}", ec.message());
    spdlog::default_logger()->critical("via the default logger");
    SPDLOG_DEBUG("macro {}", 1);
    SPDLOG_LOGGER_TRACE(my_logger, "logger macro");
    spdlog::log(spdlog::level::warn, "explicit level {}", n);
    spdlog::info(message);
    spdlog::info(fmt::runtime("x {}"), y);
    int n = 1'000'000; spdlog::debug("after a digit separator");
    catalog.infos(1);
    auto e = login_result.error(); auto d = log_path.info();
}
'''


def test_extractor_reads_every_form():
    got = [(c.line, c.level, c.fmt) for c in extract_calls(SAMPLE_CPP)]
    assert got == [
        (6, "info", 'session end: user="{}" rip={} duration={:.3f}s'),
        (10, "warning", 'braces {{{}}} and A tab\traw "x"'),
        (12, "error", "via a logger: {}"),
        (13, "critical", "via the default logger"),
        (14, "debug", "macro {}"),
        (15, "trace", "logger macro"),
        (16, "warning", "explicit level {}"),
        (17, "info", None),
        (18, "info", None),
        (19, "debug", "after a digit separator"),
    ]


def test_wrappers_are_read_like_spdlog():
    WRAPPERS["log_audit"] = "info"
    try:
        calls = extract_calls('void g() { log_audit("audit: {}", x); }')
    finally:
        del WRAPPERS["log_audit"]
    assert [(c.level, c.fmt) for c in calls] == [("info", "audit: {}")]


@pytest.mark.parametrize("fmt,text,matches", [
    ('login: user="{}" rip={} tls={} messages={}', 'login: user="U" rip=IP tls=yes|no messages=N', True),
    ("listening: {}", "listening: pop3|pop3s ADDRESS:PORT", True),
    ("{}{}: user {} has no password", "PATH:LINE: user 'U' has no password", True),
    ("retr={}/{} duration={:.3f}s", "retr=N/B duration=S.SSSs", True),
    ("impossible: {} ({{{}}})", "impossible: R ({SCHEME})", True),
    ('login: user="{}" rip={}', 'login: user="U" rip=IP mech=M', False),    # a field the code lacks
    ('login: user="{}" rip={} mech={}', 'login: user="U" rip=IP', False),   # a field the docs lack
    ('login: user="{}" rip={}', 'login: usr="U" rip=IP', False),            # a field renamed
    ("shutdown complete", "shutdown completed", False),
    ("received signal {}", "received signal ", False),                     # a field with no stand-in
])
def test_matching_rule(fmt, text, matches):
    assert bool(format_regex(fmt).fullmatch(text)) == matches


SAMPLE_DOC = """# x

## Logs

| line | level | when |
|---|---|---|
| `shutdown complete` | info | x |
| `tls handshake failed: rip=IP error="E"` | info | x |
| `gone: N` | warning | x |
| `maildir PATH: uids exhausted` | warning | x |
| `maildir PATH: E` | warning | x |
| `a` / `b` | info | x |
| `tls=yes\\|no` | warn | x |

## Next

| line | level | when |
|---|---|---|
| `not in the section` | info | x |
"""

SAMPLE_SRC = r'''
spdlog::info("shutdown complete");
spdlog::debug("tls handshake failed: rip={} error=\"{}\"", peer, e);
spdlog::warn("maildir {}: {}", path, detail);
spdlog::error("new line: {}", n);
'''


def test_catalogue_reports_each_kind_of_drift():
    cat = Catalogue(extract_calls(SAMPLE_SRC, "src/x.cpp"), parse_doc(SAMPLE_DOC))
    assert [r.text for r in cat.rows] == ["shutdown complete", 'tls handshake failed: rip=IP error="E"',
                                          "gone: N", "maildir PATH: uids exhausted", "maildir PATH: E",
                                          "", "tls=yes|no"]
    unreadable = cat.unreadable()
    assert len(unreadable) == 2
    assert "docs/operations.md:12: row the line cell must hold exactly one" in unreadable[0]
    assert "docs/operations.md:13: row level 'warn' is not one spdlog prints" in unreadable[1]

    undocumented = cat.undocumented()
    assert len(undocumented) == 1
    assert undocumented[0].startswith("src/x.cpp:5: error 'new line: {}' has no row")
    assert undocumented[0].endswith("\n    | `new line: ...` | error | WHEN (fill in) |")

    wrong = cat.wrong_levels()
    assert len(wrong) == 1
    assert wrong[0].startswith('docs/operations.md:8: `tls handshake failed: rip=IP error="E"` is documented '
                               'at info, but src/x.cpp:3 logs it at debug')

    stale = cat.stale_rows()
    assert len(stale) == 2
    assert stale[0].startswith("docs/operations.md:9: row `gone: N` (warning) matches no log call")
    # "uids exhausted" matches only the generic "maildir {}: {}" now: two rows for one line.
    assert stale[1].startswith("docs/operations.md:10 and docs/operations.md:11: rows")
