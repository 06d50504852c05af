# Quoted files in the docs are the files: every fenced block right after a marker line
#
#     <!-- quote: PATH -->
#
# (PATH relative to the repository root, e.g. dist/systemd/poplar.service) must equal that file,
# byte for byte except the file's final newline. The marker is generic: any Markdown file at the
# top of the repository or under docs/ may quote any file, and a copy that drifts from its file,
# a marker without a block right below it, or a marker naming a missing file fails this test.
import pathlib
import re

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
MARKER = re.compile(r"^<!-- quote: (\S+) -->$")
FENCE = re.compile(r"^(```+|~~~+)[\w+-]*$")


def markdown_files():
    return sorted([*ROOT.glob("*.md"), *ROOT.glob("docs/**/*.md")])


def quotes(md: pathlib.Path):
    """(line number, quoted path, block text or None) for each marker in md."""
    lines = md.read_text(encoding="utf-8").split("\n")
    for i, line in enumerate(lines):
        m = MARKER.match(line)
        if not m:
            continue
        fence = FENCE.match(lines[i + 1]) if i + 1 < len(lines) else None
        if not fence:
            yield i + 1, m.group(1), None
            continue
        close = fence.group(1)
        try:
            end = next(j for j in range(i + 2, len(lines)) if lines[j] == close)
        except StopIteration:
            yield i + 1, m.group(1), None
            continue
        yield i + 1, m.group(1), "\n".join(lines[i + 2:end])


def all_quotes():
    return [pytest.param(md, n, path, block, id=f"{md.relative_to(ROOT)}:{n}:{path}")
            for md in markdown_files() for n, path, block in quotes(md)]


def test_the_docs_quote_something():
    # Guards the scan itself: operations.md quotes the shipped files.
    assert any(p.values[0].name == "operations.md" for p in all_quotes())


@pytest.mark.parametrize("md,line,path,block", all_quotes())
def test_quoted_block_equals_the_file(md, line, path, block):
    where = f"{md.relative_to(ROOT)}:{line}"
    assert block is not None, f"{where}: the marker for {path} is not followed by a fenced block"
    source = ROOT / path
    assert source.is_file(), f"{where}: quotes {path}, which does not exist"
    text = source.read_text(encoding="utf-8")
    expected = text[:-1] if text.endswith("\n") else text
    assert block == expected, f"{where}: the quoted copy differs from {path}; copy the file again"
