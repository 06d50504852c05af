// Tests for core::message_encoder and virtual_size: the exact bytes RETR and TOP send.
#include "core/message_encoder.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <optional>
#include <random>
#include <string>
#include <string_view>
#include <vector>

#include "core/limits.h"

namespace poplar::core {
namespace {

using top = std::optional<std::uint64_t>;

// The encoder over `stored` cut at the given offsets (ascending); stops when feed() says so.
std::string encode_split(std::string_view stored, top lines, const std::vector<std::size_t>& cuts) {
    message_encoder enc(lines);
    output_buffer out;
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
    return std::string(out.view());
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

// RETR's fast path (line_splitter::encode_retr) restates the line rule that TOP, STAT and LIST
// take from line_splitter::feed. The tests below hold the two together, on messages cut into
// chunks every way: RETR must equal TOP with more body lines than any message has (which goes
// through feed() and never stops early), equal a plain whole-message reference encoder, and be
// virtual_size() octets once the stuffed dots and the terminator are taken off.

const top all_lines = top{std::uint64_t{1} << 40};

// The wire form computed from the whole message at once, as plainly as possible: the rule exactly
// as message_encoder.h states it.
std::string reference_encode(std::string_view stored) {
    std::string out;
    std::size_t start = 0;
    while (start < stored.size()) {
        const std::size_t lf = stored.find('\n', start);
        const bool has_lf = lf != std::string_view::npos;
        std::string_view line = stored.substr(start, has_lf ? lf - start : std::string_view::npos);
        if (has_lf && !line.empty() && line.back() == '\r') {
            line.remove_suffix(1);  // a CR before LF belongs to the line end
        }
        if (!line.empty() && line.front() == '.') {
            out += '.';
        }
        out.append(line);
        out += "\r\n";
        start = has_lf ? lf + 1 : stored.size();
    }
    return out + ".\r\n";
}

std::string visible(std::string_view bytes) {
    std::string v;
    for (char c : bytes) {
        v += c == '\r' ? std::string("\\r") : c == '\n' ? std::string("\\n") : std::string(1, c);
    }
    return v;
}

::testing::AssertionResult paths_agree(std::string_view stored, const std::vector<std::size_t>& cuts) {
    const std::string retr = encode_split(stored, std::nullopt, cuts);
    const std::string generic = encode_split(stored, all_lines, cuts);
    const std::string reference = reference_encode(stored);
    const std::uint64_t size = virtual_size(stored);
    if (retr == generic && retr == reference && unstuff(retr).size() == size && size_split(stored, cuts) == size) {
        return ::testing::AssertionSuccess();
    }
    auto failure = ::testing::AssertionFailure();
    failure << "stored \"" << visible(stored) << "\" cut at";
    for (std::size_t cut : cuts) {
        failure << ' ' << cut;
    }
    return failure << "\n  retr      \"" << visible(retr) << "\"\n  generic   \"" << visible(generic)
                   << "\"\n  reference \"" << visible(reference) << "\"\n  virtual size " << size
                   << ", counted over the chunks " << size_split(stored, cuts);
}

// Every chunking into one, two or three pieces (empty pieces included).
::testing::AssertionResult paths_agree_every_three_way_split(std::string_view stored) {
    if (auto r = paths_agree(stored, {}); !r) {
        return r;
    }
    for (std::size_t a = 0; a <= stored.size(); ++a) {
        if (auto r = paths_agree(stored, {a}); !r) {
            return r;
        }
        for (std::size_t b = a; b <= stored.size(); ++b) {
            if (auto r = paths_agree(stored, {a, b}); !r) {
                return r;
            }
        }
    }
    return ::testing::AssertionSuccess();
}

// `tries` random chunkings into three pieces (empty pieces included).
::testing::AssertionResult paths_agree_random_cuts(std::string_view stored, std::mt19937& rng, int tries) {
    for (int i = 0; i < tries; ++i) {
        std::vector<std::size_t> cuts{rng() % (stored.size() + 1), rng() % (stored.size() + 1)};
        std::sort(cuts.begin(), cuts.end());
        if (auto r = paths_agree(stored, cuts); !r) {
            return r;
        }
    }
    return ::testing::AssertionSuccess();
}

std::vector<std::size_t> cuts_every(std::size_t chunk, std::size_t total) {
    std::vector<std::size_t> cuts;
    for (std::size_t at = chunk; at < total; at += chunk) {
        cuts.push_back(at);
    }
    return cuts;
}

TEST(MessageEncoder, RetrAgreesWithGenericPathOnEveryShortMessage) {
    // Every message of up to 6 octets over the octets the rule cares about, every chunking.
    constexpr std::string_view alphabet = "a.\r\n";
    std::vector<std::string> messages{""};
    for (std::size_t len = 1; len <= 6; ++len) {
        std::vector<std::string> longer;
        for (const std::string& m : messages) {
            if (m.size() + 1 == len) {
                for (char c : alphabet) {
                    longer.push_back(m + c);
                }
            }
        }
        messages.insert(messages.end(), longer.begin(), longer.end());
    }
    ASSERT_EQ(messages.size(), 1u + 4 + 16 + 64 + 256 + 1024 + 4096);
    for (const std::string& m : messages) {
        ASSERT_TRUE(paths_agree_every_three_way_split(m));
    }
}

TEST(MessageEncoder, RetrAgreesWithGenericPathOnRandomMessages) {
    // Longer messages, so lines cross the fast path's 32-octet blocks and the chunk boundaries
    // fall inside them: random octets over the same alphabet, and random lines of 0-100 octets
    // with LF or CRLF ends, stray CRs and leading dots.
    std::mt19937 rng(1939);
    auto below = [&](std::size_t n) { return static_cast<std::size_t>(rng() % n); };
    for (int i = 0; i < 400; ++i) {
        std::string m;
        if (i % 2 == 0) {
            const std::size_t len = below(120);
            for (std::size_t j = 0; j < len; ++j) {
                m += "a.\r\naaaa"[below(8)];
            }
        } else {
            for (std::size_t lines = below(6); lines > 0; --lines) {
                std::string line(below(101), 'x');
                for (char& c : line) {
                    c = below(30) == 0 ? '\r' : c;
                }
                if (!line.empty() && below(4) == 0) {
                    line[0] = '.';
                }
                m += line + (below(3) == 0 ? "\r\n" : "\n");
            }
            if (below(3) == 0) {
                m += below(2) == 0 ? ".tail" : "tail\r";  // no final newline
            }
        }
        for (std::size_t cut = 0; cut <= m.size(); ++cut) {
            ASSERT_TRUE(paths_agree(m, {cut}));
        }
        ASSERT_TRUE(paths_agree_random_cuts(m, rng, 30));
    }
}

TEST(MessageEncoder, RetrAgreesWithGenericPathOnDenseMessages) {
    // Several of the fast path's 32-octet blocks long, over alphabets where nearly every octet is
    // one the rule acts on, so CRs, LFs and line-initial dots fall on every position of a block,
    // on block boundaries (a CR ending one, an LF or a "." starting the next) and on chunk
    // boundaries.
    std::mt19937 rng(2449);
    auto below = [&](std::size_t n) { return static_cast<std::size_t>(rng() % n); };
    constexpr std::string_view alphabets[] = {"a.\r\n", "..\n", "\r\n", "\n", "\r", ".", "x.\r\n\n\n"};
    for (int i = 0; i < 3000; ++i) {
        const std::string_view alphabet = alphabets[below(std::size(alphabets))];
        std::string m;
        for (std::size_t len = 64 + below(200); m.size() < len;) {
            m += alphabet[below(alphabet.size())];
        }
        ASSERT_TRUE(paths_agree(m, {}));
        ASSERT_TRUE(paths_agree_random_cuts(m, rng, 4));
    }
}

TEST(MessageEncoder, RetrAgreesWithGenericPathOnLargeMessages) {
    // Bigger than the room the fast path makes at a time (1 KiB), with lines longer than that,
    // fed in chunks of sizes around its block size and its room sizes.
    std::mt19937 rng(5322);
    auto below = [&](std::size_t n) { return static_cast<std::size_t>(rng() % n); };
    std::string mixed;
    while (mixed.size() < 70000) {
        const std::size_t len = below(10) == 0 ? below(3000) : below(121);
        std::string line(len, 'm');
        if (len > 0 && below(20) == 0) {
            line[0] = '.';
        }
        if (len > 1 && below(20) == 0) {
            line[below(len)] = '\r';
        }
        mixed += line + (below(4) == 0 ? "\r\n" : "\n");
    }
    const std::string messages[] = {
        mixed,
        std::string(70000, '\n'),                           // the worst case: twice the size
        std::string(3000, '.') + "\n" + std::string(40, '.'),  // one long stuffed line
        std::string(65536, 'x') + "\r",                      // one line, a CR across the last chunk
        [] {  // CRLF mail with a CR ending every other 32-octet block
            std::string crlf;
            while (crlf.size() < 70000) {
                crlf += std::string(crlf.size() % 64 == 0 ? 30 : 62, 'c') + "\r\n";
            }
            return crlf;
        }(),
    };
    for (const std::string& m : messages) {
        for (std::size_t chunk : {1ul, 31ul, 32ul, 33ul, 255ul, 256ul, 1023ul, 1024ul, 1025ul, 4096ul,
                                  limits::message_read_chunk, m.size()}) {
            if (chunk == 1 && m.size() > 10000) {
                continue;  // quadratic in the test's helpers, and the small messages cover it
            }
            ASSERT_TRUE(paths_agree(m, cuts_every(chunk, m.size()))) << "chunk " << chunk;
        }
    }
}

TEST(MessageEncoder, RetrAppendsAfterWhatOutHolds) {
    // The connection appends the encoded message to its pending output, after the +OK line.
    const std::string_view stored = ".a\nb\r\nc";
    message_encoder enc;
    output_buffer out;
    out += "+OK 9 octets\r\n";
    enc.feed(stored.substr(0, 4), out);
    enc.feed(stored.substr(4), out);
    enc.finish(out);
    EXPECT_EQ(out.view(), "+OK 9 octets\r\n..a\r\nb\r\nc\r\n.\r\n");
}

TEST(MessageEncoder, RetrKeepsOneBufferForTypicalMail) {
    // The connection clears its output buffer after each write and frees it only when the
    // session goes idle; a chunk (limits::message_read_chunk) of ordinary mail must fit in one
    // allocation of modest slack, and must not reallocate the buffer from one chunk to the next.
    for (std::string_view eol : {std::string_view("\n"), std::string_view("\r\n")}) {
        std::string chunk;
        while (chunk.size() + 70 + eol.size() <= limits::message_read_chunk) {
            chunk += std::string(70, 'w');
            chunk += eol;
        }
        message_encoder enc;
        output_buffer out;
        enc.feed(chunk, out);
        const char* buffer = out.data();
        EXPECT_LT(out.capacity(), limits::message_read_chunk + limits::message_read_chunk / 8);
        out.clear();
        enc.feed(chunk, out);
        EXPECT_EQ(out.data(), buffer) << "reallocated";
        EXPECT_EQ(out.size(), chunk.size() / (70 + eol.size()) * 72);
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
    output_buffer out;
    EXPECT_FALSE(enc.feed("H: 1\n\nbody\n", out));
    EXPECT_EQ(out.view(), "H: 1\r\n\r\n");
    EXPECT_FALSE(enc.feed("more\n", out));  // nothing more is wanted
    enc.finish(out);
    EXPECT_EQ(out.view(), "H: 1\r\n\r\n.\r\n");
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
