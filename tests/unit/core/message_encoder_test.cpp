// Tests for core::message_encoder and virtual_size: the exact bytes RETR and TOP send.
#include "core/message_encoder.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace poplar::core {
namespace {

using top = std::optional<std::uint64_t>;

// The encoder over `stored` cut at the given offsets (ascending); stops when feed() says so.
std::string encode_split(std::string_view stored, top lines, const std::vector<std::size_t>& cuts) {
    message_encoder enc(lines);
    std::string out;
    std::size_t from = 0;
    bool more = true;
    for (std::size_t cut : cuts) {
        if (more) {
            more = enc.feed(stored.substr(from, cut - from), out);
        }
        from = cut;
    }
    if (more) {
        enc.feed(stored.substr(from), out);
    }
    enc.finish(out);
    return out;
}

std::string encode(std::string_view stored, top lines = std::nullopt) { return encode_split(stored, lines, {}); }

std::uint64_t size_split(std::string_view stored, const std::vector<std::size_t>& cuts) {
    virtual_size_counter c;
    std::size_t from = 0;
    for (std::size_t cut : cuts) {
        c.feed(stored.substr(from, cut - from));
        from = cut;
    }
    c.feed(stored.substr(from));
    return c.finish();
}

// The wire form minus the terminator and minus dot-stuffing: what virtual_size counts.
std::string unstuff(std::string_view wire) {
    EXPECT_GE(wire.size(), 3u);
    EXPECT_EQ(wire.substr(wire.size() - 3), ".\r\n");
    wire.remove_suffix(3);
    std::string out;
    bool line_start = true;
    for (std::size_t i = 0; i < wire.size(); ++i) {
        if (line_start && wire[i] == '.') {
            ++i;  // a stuffed line always starts with two dots
            EXPECT_LT(i, wire.size());
            EXPECT_EQ(wire[i], '.');
        }
        out += wire[i];
        line_start = wire[i] == '\n';
    }
    return out;
}

struct retr_case {
    const char* name;
    std::string_view stored;
    std::string_view wire;  // without the terminating ".\r\n"
};

const retr_case retr_cases[] = {
    {"empty", "", ""},
    {"lf", "Subject: a\n\nbody\n", "Subject: a\r\n\r\nbody\r\n"},
    {"crlf", "Subject: a\r\n\r\nbody\r\n", "Subject: a\r\n\r\nbody\r\n"},
    {"mixed", "A: 1\r\nB: 2\n\r\nx\ny\r\n", "A: 1\r\nB: 2\r\n\r\nx\r\ny\r\n"},
    {"no final newline", "A: 1\n\nlast", "A: 1\r\n\r\nlast\r\n"},
    {"lone cr mid-line", "a\rb\n", "a\rb\r\n"},
    {"lone cr at end", "a\r", "a\r\r\n"},
    {"only cr", "\r", "\r\r\n"},
    {"cr cr lf", "a\r\r\n", "a\r\r\n"},
    {"only lf", "\n", "\r\n"},
    {"blank lines", "\n\n\r\n", "\r\n\r\n\r\n"},
    {"dot line", ".\n", "..\r\n"},
    {"dotdot line", "..\n", "...\r\n"},
    {"dot word first line", ".foo\nbar\n", "..foo\r\nbar\r\n"},
    {"dot after crlf", "a\r\n.\r\n.b\r\n", "a\r\n..\r\n..b\r\n"},
    {"dot mid-line not stuffed", "a.b\n a\n", "a.b\r\n a\r\n"},
    {"dot final line without newline", "x\n.", "x\r\n..\r\n"},
    {"cr before dot is not a line start", "\r.x\n", "\r.x\r\n"},
    {"nul and 8-bit bytes kept", std::string_view("a\0\xff\n", 4), std::string_view("a\0\xff\r\n", 5)},
};

TEST(MessageEncoder, RetrExactBytes) {
    for (const retr_case& c : retr_cases) {
        const std::string expected = std::string(c.wire) + ".\r\n";
        EXPECT_EQ(encode(c.stored), expected) << c.name;
        EXPECT_EQ(virtual_size(c.stored), unstuff(expected).size()) << c.name;
    }
}

TEST(MessageEncoder, EmptyMessageIsJustTheTerminator) {
    EXPECT_EQ(encode(""), ".\r\n");
    EXPECT_EQ(virtual_size(""), 0u);
    EXPECT_EQ(encode("", 0), ".\r\n");
    EXPECT_EQ(encode("", 5), ".\r\n");
}

TEST(MessageEncoder, EveryTwoWaySplitEqualsUnsplit) {
    for (const retr_case& c : retr_cases) {
        const std::string whole = encode(c.stored);
        for (std::size_t cut = 0; cut <= c.stored.size(); ++cut) {
            EXPECT_EQ(encode_split(c.stored, std::nullopt, {cut}), whole) << c.name << " cut " << cut;
            EXPECT_EQ(size_split(c.stored, {cut}), virtual_size(c.stored)) << c.name << " cut " << cut;
        }
    }
}

TEST(MessageEncoder, EverySplitPatternEqualsUnsplit) {
    // All 2^(n-1) ways of cutting a tricky message into non-empty chunks, RETR and several TOPs.
    const std::string_view stored = ".\r\rB\r\n\r\n.\r\r\n..\r";
    const std::size_t n = stored.size();
    for (const top lines : {top{}, top{0}, top{1}, top{2}, top{7}}) {
        const std::string whole = encode(stored, lines);
        for (unsigned mask = 0; mask < (1u << (n - 1)); ++mask) {
            std::vector<std::size_t> cuts;
            for (std::size_t i = 0; i + 1 < n; ++i) {
                if (mask & (1u << i)) {
                    cuts.push_back(i + 1);
                }
            }
            ASSERT_EQ(encode_split(stored, lines, cuts), whole) << "mask " << mask;
            if (!lines) {
                ASSERT_EQ(size_split(stored, cuts), virtual_size(stored)) << "mask " << mask;
            }
        }
    }
}

TEST(MessageEncoder, CrAtChunkBoundary) {
    // CR ends a chunk and LF starts the next: one line end.
    EXPECT_EQ(encode_split("ab\r\ncd\r\n", std::nullopt, {3}), "ab\r\ncd\r\n.\r\n");
    // CR ends a chunk and something else follows: the CR is content.
    EXPECT_EQ(encode_split("ab\rcd\n", std::nullopt, {3}), "ab\rcd\r\n.\r\n");
    EXPECT_EQ(encode_split("ab\r\rcd\n", std::nullopt, {3}), "ab\r\rcd\r\n.\r\n");
    EXPECT_EQ(encode_split("ab\r\r\n", std::nullopt, {3}), "ab\r\r\n.\r\n");
    EXPECT_EQ(encode_split("ab\r\r\n", std::nullopt, {3, 4}), "ab\r\r\n.\r\n");
    // CR then a dot: the dot is not at a line start, no stuffing.
    EXPECT_EQ(encode_split("\r.\n", std::nullopt, {1}), "\r.\r\n.\r\n");
    // CR at the end of the last chunk.
    EXPECT_EQ(encode_split("ab\r", std::nullopt, {3}), "ab\r\r\n.\r\n");
    // Empty chunks in between change nothing.
    EXPECT_EQ(encode_split("ab\r\n", std::nullopt, {3, 3, 3}), "ab\r\n.\r\n");
    EXPECT_EQ(size_split("ab\r\ncd", {3, 3}), 8u);
    EXPECT_EQ(size_split("ab\rcd", {3}), 7u);
}

TEST(MessageEncoder, DotStuffingAfterChunkBoundary) {
    EXPECT_EQ(encode_split("a\n.b\n", std::nullopt, {2}), "a\r\n..b\r\n.\r\n");
    EXPECT_EQ(encode_split("a\r\n.\r\n", std::nullopt, {3}), "a\r\n..\r\n.\r\n");
    EXPECT_EQ(encode_split("a\r\n.\r\n", std::nullopt, {2}), "a\r\n..\r\n.\r\n");
    EXPECT_EQ(encode_split(".", std::nullopt, {0}), "..\r\n.\r\n");
    EXPECT_EQ(encode_split("x\n..", std::nullopt, {2, 3}), "x\r\n...\r\n.\r\n");
}

TEST(MessageEncoder, VirtualSizeEqualsOutputWithoutStuffing) {
    EXPECT_EQ(virtual_size("Subject: a\n\nbody\n"), 20u);
    EXPECT_EQ(virtual_size("Subject: a\r\n\r\nbody\r\n"), 20u);
    EXPECT_EQ(virtual_size("x"), 3u);
    EXPECT_EQ(virtual_size("\r"), 3u);
    EXPECT_EQ(virtual_size(".\n"), 3u);  // stuffing is not counted (RFC 1939 §5 note)
    for (const retr_case& c : retr_cases) {
        EXPECT_EQ(virtual_size(c.stored), c.wire.size() - std::count(c.wire.begin(), c.wire.end(), '.') +
                                              std::count(c.stored.begin(), c.stored.end(), '.'))
            << c.name;
    }
}

const std::string_view letter = "From: a\nSubject: b\n\nline 1\n.line 2\nline 3\n";

TEST(MessageEncoder, TopZeroSendsHeaderAndBlankLine) {
    EXPECT_EQ(encode(letter, 0), "From: a\r\nSubject: b\r\n\r\n.\r\n");
}

TEST(MessageEncoder, TopCountsBodyLines) {
    EXPECT_EQ(encode(letter, 1), "From: a\r\nSubject: b\r\n\r\nline 1\r\n.\r\n");
    EXPECT_EQ(encode(letter, 2), "From: a\r\nSubject: b\r\n\r\nline 1\r\n..line 2\r\n.\r\n");
}

TEST(MessageEncoder, TopLargerThanBodyIsWholeMessage) {
    EXPECT_EQ(encode(letter, 3), encode(letter));
    EXPECT_EQ(encode(letter, 1000), encode(letter));
    EXPECT_EQ(encode("H: 1\n\nno newline", 99), "H: 1\r\n\r\nno newline\r\n.\r\n");
}

TEST(MessageEncoder, TopStopsFeedingEarly) {
    message_encoder enc(0);
    std::string out;
    EXPECT_FALSE(enc.feed("H: 1\n\nbody\n", out));
    EXPECT_EQ(out, "H: 1\r\n\r\n");
    EXPECT_FALSE(enc.feed("more\n", out));  // nothing more is wanted
    enc.finish(out);
    EXPECT_EQ(out, "H: 1\r\n\r\n.\r\n");
}

TEST(MessageEncoder, TopOnMessageWithoutBlankLine) {
    EXPECT_EQ(encode("A: 1\nB: 2\n", 0), "A: 1\r\nB: 2\r\n.\r\n");
    EXPECT_EQ(encode("A: 1\nB: 2", 0), "A: 1\r\nB: 2\r\n.\r\n");
}

TEST(MessageEncoder, TopWithCrlfSeparator) {
    const std::string_view crlf = "A: 1\r\n\r\nb1\r\nb2\r\n";
    EXPECT_EQ(encode(crlf, 0), "A: 1\r\n\r\n.\r\n");
    EXPECT_EQ(encode(crlf, 1), "A: 1\r\n\r\nb1\r\n.\r\n");
    for (std::size_t cut = 0; cut <= crlf.size(); ++cut) {
        EXPECT_EQ(encode_split(crlf, 1, {cut}), "A: 1\r\n\r\nb1\r\n.\r\n") << cut;
    }
}

TEST(MessageEncoder, TopWithLfSeparator) {
    const std::string_view lf = "A: 1\n\nb1\nb2\n";
    EXPECT_EQ(encode(lf, 0), "A: 1\r\n\r\n.\r\n");
    EXPECT_EQ(encode(lf, 1), "A: 1\r\n\r\nb1\r\n.\r\n");
}

TEST(MessageEncoder, TopMessageStartingWithBlankLine) {
    EXPECT_EQ(encode("\nbody\n", 0), "\r\n.\r\n");
    EXPECT_EQ(encode("\r\nbody\n", 1), "\r\nbody\r\n.\r\n");
}

TEST(MessageEncoder, TopLineWithOnlyCrIsNotTheSeparator) {
    // "\r\r\n" is a line holding one CR: content, so the header goes on.
    EXPECT_EQ(encode("A: 1\n\r\r\nB: 2\n\nbody\n", 0), "A: 1\r\n\r\r\nB: 2\r\n\r\n.\r\n");
}

TEST(MessageEncoder, TopBlankBodyLinesCount) {
    EXPECT_EQ(encode("H: 1\n\n\n\nx\n", 2), "H: 1\r\n\r\n\r\n\r\n.\r\n");
}

TEST(MessageEncoder, TopIsPrefixOfRetr) {
    for (const retr_case& c : retr_cases) {
        const std::string retr = encode(c.stored);
        for (std::uint64_t n = 0; n < 4; ++n) {
            std::string t = encode(c.stored, n);
            t.resize(t.size() - 3);
            EXPECT_EQ(retr.compare(0, t.size(), t), 0) << c.name << " TOP " << n;
        }
    }
}

}  // namespace
}  // namespace poplar::core
