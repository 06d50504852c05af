# The deterministic Maildir corpus the integration tests serve, and the wire form of each message.
#
# The wire form follows src/core/message_encoder.h: a bare LF becomes CRLF, a CR not followed by
# LF stays a byte, a final line without newline gets CRLF, an empty file has no lines. The virtual
# size (STAT/LIST) is the length of that form; dot-stuffing happens on the wire only.
import hashlib
import os
import random
from dataclasses import dataclass
from functools import cached_property

BIG_SIZE = 20 * 1024 * 1024  # the 20 MiB message, stored size


@dataclass(frozen=True)
class Message:
    name: str      # a label for test output ("dots", "big", ...)
    stored: bytes  # the bytes on disk

    @cached_property
    def wire(self) -> bytes:
        return wire_form(self.stored)

    @property
    def size(self) -> int:
        return len(self.wire)


def wire_form(stored: bytes) -> bytes:
    """The RFC 1939 §3 form of a stored message, before dot-stuffing and without ".\\r\\n"."""
    out = bytearray()
    i, n = 0, len(stored)
    while i < n:
        j = stored.find(b"\n", i)
        if j < 0:
            out += stored[i:] + b"\r\n"  # final line without newline (a trailing CR stays a byte)
            break
        line = stored[i:j]
        if line.endswith(b"\r"):
            line = line[:-1]
        out += line + b"\r\n"
        i = j + 1
    return bytes(out)


def dot_stuff(wire: bytes) -> bytes:
    """What RETR sends between the +OK line and the terminating ".\\r\\n"."""
    if not wire:
        return b""
    lines = wire.split(b"\r\n")
    assert lines[-1] == b""
    return b"".join((b"." + l if l.startswith(b".") else l) + b"\r\n" for l in lines[:-1])


def retr_reply_body(wire: bytes) -> bytes:
    return dot_stuff(wire) + b".\r\n"


def top_form(wire: bytes, body_lines: int) -> bytes:
    """The wire form TOP n L returns (before dot-stuffing): header, blank line, L body lines."""
    lines = wire.split(b"\r\n")[:-1] if wire else []
    out = []
    in_body = False
    sent = 0
    for line in lines:
        if in_body:
            if sent >= body_lines:
                break
            sent += 1
        out.append(line)
        if not in_body and line == b"":
            in_body = True
    return b"".join(l + b"\r\n" for l in out)


def lf_form(wire: bytes) -> bytes:
    """The wire form with CRLF turned into LF: what Unix delivery agents store."""
    return wire.replace(b"\r\n", b"\n")


def _big_message() -> bytes:
    rnd = random.Random(20240601)
    alphabet = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 .,;:-_+=/"
    header = (b"From: big@test.invalid\nTo: demo@test.invalid\nSubject: twenty MiB\n"
              b"Message-ID: <big@test.invalid>\n\n")
    parts = [header]
    total = len(header)
    lineno = 0
    # A pool of lines keeps generation fast while staying deterministic.
    pool = [bytes(rnd.choice(alphabet) for _ in range(rnd.randint(0, 98))) for _ in range(4096)]
    while total < BIG_SIZE:
        line = pool[rnd.randrange(len(pool))]
        if lineno % 997 == 0:
            line = b"." + line  # dot-leading lines throughout, so stuffing is exercised at scale
        if lineno % 5003 == 0:
            line = b"."
        line = b"%08d " % lineno + line + b"\n"
        lineno += 1
        parts.append(line)
        total += len(line)
    data = b"".join(parts)
    data = data[:BIG_SIZE - 1] + b"\n"
    return data


def small_messages() -> list[Message]:
    """Every edge case except the big message, in delivery order."""
    eightbit_line = bytes(range(0x80, 0x100))
    binaryish = bytes(b for b in range(0x01, 0x20) if b not in (0x0A, 0x0D)) + b"\x7f"
    msgs = [
        Message("dots", b"From: dots@test.invalid\n.X-Dot-Header: leading dot in a header\n..\n"
                        b".\nSubject: dots\n\n.\n..\n.foo\n...\n. \n.\r\nend\n..end\n"),
        Message("lf", b"From: lf@test.invalid\nTo: demo@test.invalid\nSubject: bare LF\n\n"
                      b"line one\nline two\n\nline four after a blank line\nlast\n"),
        Message("crlf", b"From: crlf@test.invalid\r\nTo: demo@test.invalid\r\nSubject: CRLF\r\n\r\n"
                        b"line one\r\nline two\r\n\r\nafter blank\r\nlast\r\n"),
        Message("mixed", b"From: mixed@test.invalid\r\nSubject: mixed\n\r\nfirst CRLF\r\n"
                         b"then LF\nCRLF again\r\nLF at the end\n"),
        Message("lone_cr", b"From: cr@test.invalid\nSubject: lone CR\n\nbefore\rafter\n"
                           b"two CRs\r\r\nCR at start\n\rline\nend\n"),
        Message("trailing_cr", b"From: tcr@test.invalid\nSubject: trailing CR\n\nends in CR\r"),
        Message("no_final_newline", b"From: nfn@test.invalid\nSubject: no final newline\n\n"
                                    b"body line 1\nthe last line has no newline"),
        Message("eightbit", b"From: 8bit@test.invalid\nSubject: =?utf-8?q?8bit?=\n"
                            b"Content-Type: application/octet-stream\n\n"
                            + eightbit_line + b"\n" + binaryish + b"\n"
                            + "Grüße, ÄÖÜ, 日本語\n".encode() + b"\xff\xfe\x80\n"),
        Message("empty_body", b"From: empty@test.invalid\nSubject: empty body\n\n"),
        Message("empty_file", b""),
        Message("long_line", b"From: long@test.invalid\nSubject: long line\n\n"
                             + b"x" * 4000 + b"\n.\n" + b"y" * 999 + b"\n"),
        Message("top_lines", b"From: top@test.invalid\nSubject: top\nX-Extra: h\n\n"
                             b"body 1\n.body 2 dotted\nbody 3\nbody 4\nbody 5\n"),
    ]
    wires = [m.wire for m in msgs]
    assert len(set(wires)) == len(wires), "wire forms must be distinct to match by content"
    return msgs


_big_cache: Message | None = None


def big_message() -> Message:
    global _big_cache
    if _big_cache is None:
        _big_cache = Message("big", _big_message())
    return _big_cache


def corpus(with_big: bool = True) -> list[Message]:
    msgs = small_messages()
    if with_big:
        msgs.append(big_message())
    return msgs


_serial = 0


def maildir_name(index: int, msg: Message, subdir: str, hints: str) -> str:
    """A Postfix/Dovecot-style file name; `hints` is "", "S" or "SW" (size hints in the name)."""
    base = f"{1700000000 + index}.M{index}P{4242 + index}.test.invalid"
    if "S" in hints:
        base += f",S={len(msg.stored)}"
    if "W" in hints:
        base += f",W={msg.size}"
    if subdir == "cur":
        base += ":2,S"
    return base


def write_maildir(root: str, msgs: list[Message], cache_dir: str | None = None) -> dict[str, Message]:
    """Creates <root>/{new,cur,tmp} holding `msgs`; returns {path: message}.

    Messages alternate between new/ (Postfix names, some with size hints) and cur/ (seen, ":2,S").
    Files from `cache_dir` are hard-linked instead of copied when possible (the big message).
    """
    for sub in ("new", "cur", "tmp"):
        os.makedirs(os.path.join(root, sub), exist_ok=True)
    placed = {}
    for i, msg in enumerate(msgs):
        subdir = "cur" if i % 3 == 2 else "new"
        hints = ("", "S", "SW")[i % 3] if msg.name != "big" else "S"
        path = os.path.join(root, subdir, maildir_name(i, msg, subdir, hints))
        linked = False
        if cache_dir is not None and len(msg.stored) > 1024 * 1024:
            cached = os.path.join(cache_dir, hashlib.sha256(msg.stored).hexdigest())
            if not os.path.exists(cached):
                with open(cached + ".tmp", "wb") as f:
                    f.write(msg.stored)
                os.replace(cached + ".tmp", cached)
            try:
                os.link(cached, path)
                linked = True
            except OSError:
                pass
        if not linked:
            with open(path, "wb") as f:
                f.write(msg.stored)
        # Delivery order by mtime too, for servers that sort by it.
        os.utime(path, (1700000000 + i, 1700000000 + i))
        placed[path] = msg
    return placed
