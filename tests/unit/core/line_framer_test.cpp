// Tests for core::line_framer: line ends, the length limit, over-long line discarding, buffering.
#include "core/line_framer.h"

#include <gtest/gtest.h>

#include <cstring>
#include <string>
#include <string_view>
#include <vector>

#include "core/limits.h"

#if defined(__has_feature)
#if __has_feature(address_sanitizer) && !defined(__SANITIZE_ADDRESS__)
#define __SANITIZE_ADDRESS__ 1  // clang spells it as a feature
#endif
#endif
#if defined(__SANITIZE_ADDRESS__)
// From <sanitizer/allocator_interface.h>, which GCC does not install; libasan exports it.
extern "C" std::size_t __sanitizer_get_current_allocated_bytes();
#else
#include <malloc.h>
#endif

namespace poplar::core {
namespace {

// Heap bytes in use by the whole process, to see shrink() give its buffer back.
std::size_t allocated_bytes() {
#if defined(__SANITIZE_ADDRESS__)
    return __sanitizer_get_current_allocated_bytes();
#else
    const struct mallinfo2 mi = mallinfo2();
    return mi.uordblks + mi.hblkhd;
#endif
}

constexpr std::string_view too_long_marker = "<too long>";

void put(line_framer& f, std::string_view bytes) {
    std::span<char> space = f.prepare(bytes.size());
    ASSERT_GE(space.size(), bytes.size());
    std::memcpy(space.data(), bytes.data(), bytes.size());
    f.commit(bytes.size());
}

// Every event available now; too_long as a marker string.
std::vector<std::string> drain(line_framer& f) {
    std::vector<std::string> out;
    while (auto ev = f.next()) {
        if (ev->what == line_framer::event::kind::too_long) {
            out.emplace_back(too_long_marker);
        } else {
            out.emplace_back(ev->text);
        }
    }
    return out;
}

std::vector<std::string> feed_all(line_framer& f, std::string_view bytes) {
    put(f, bytes);
    return drain(f);
}

using lines = std::vector<std::string>;

TEST(LineFramer, CrlfAndBareLfEndLines) {
    line_framer f(limits::max_command_line);
    EXPECT_EQ(feed_all(f, "USER a\r\nPASS b\nNOOP\r\n"), (lines{"USER a", "PASS b", "NOOP"}));
    EXPECT_FALSE(f.has_buffered());
}

TEST(LineFramer, EmptyLines) {
    line_framer f(16);
    EXPECT_EQ(feed_all(f, "\r\n\n\r\n"), (lines{"", "", ""}));
}

TEST(LineFramer, CrStrippedOnlyBeforeLf) {
    line_framer f(16);
    EXPECT_EQ(feed_all(f, "a\rb\r\n"), (lines{"a\rb"}));
    EXPECT_EQ(feed_all(f, "\rx\n"), (lines{"\rx"}));
    EXPECT_EQ(feed_all(f, "c\r\r\n"), (lines{"c\r"}));  // only the CR right before LF goes
    EXPECT_EQ(feed_all(f, "d\r"), (lines{}));           // a CR alone does not end a line
    EXPECT_EQ(feed_all(f, "e\n"), (lines{"d\re"}));
}

TEST(LineFramer, IncompleteLineWaits) {
    line_framer f(16);
    EXPECT_EQ(feed_all(f, "NOO"), (lines{}));
    EXPECT_TRUE(f.has_buffered());
    EXPECT_EQ(feed_all(f, "P\r"), (lines{}));
    EXPECT_EQ(feed_all(f, "\n"), (lines{"NOOP"}));
    EXPECT_FALSE(f.has_buffered());
}

TEST(LineFramer, ByteByByte) {
    line_framer f(limits::max_command_line);
    const std::string input = "USER alice\r\nPASS  secret word \r\n\nLIST 1\n";
    lines got;
    for (char c : input) {
        for (std::string& l : feed_all(f, std::string_view(&c, 1))) {
            got.push_back(std::move(l));
        }
    }
    EXPECT_EQ(got, (lines{"USER alice", "PASS  secret word ", "", "LIST 1"}));
}

TEST(LineFramer, PipelinedLinesInOrder) {
    line_framer f(limits::max_command_line);
    put(f, "STAT\r\nLIST\r\nUIDL 1\r\nRETR 2\r\nQUIT\r\nNOO");
    auto a = f.next();
    ASSERT_TRUE(a);
    EXPECT_EQ(a->text, "STAT");
    EXPECT_TRUE(f.has_buffered());
    EXPECT_EQ(drain(f), (lines{"LIST", "UIDL 1", "RETR 2", "QUIT"}));
    EXPECT_TRUE(f.has_buffered());  // "NOO" is waiting for its line end
}

TEST(LineFramer, LineExactlyAtLimitAccepted) {
    line_framer f(limits::max_command_line);
    const std::string at_limit(limits::max_command_line, 'A');
    EXPECT_EQ(feed_all(f, at_limit + "\r\n"), (lines{at_limit}));
    EXPECT_EQ(feed_all(f, at_limit + "\n"), (lines{at_limit}));
}

TEST(LineFramer, LineAtLimitAcceptedWhenCrlfArrivesLater) {
    line_framer f(limits::max_command_line);
    const std::string at_limit(limits::max_command_line, 'A');
    EXPECT_EQ(feed_all(f, at_limit), (lines{}));
    EXPECT_EQ(feed_all(f, "\r"), (lines{}));  // might still be the CR of CRLF
    EXPECT_EQ(feed_all(f, "\n"), (lines{at_limit}));
}

TEST(LineFramer, OneOctetOverRejected) {
    line_framer f(limits::max_command_line);
    const std::string over(limits::max_command_line + 1, 'A');
    EXPECT_EQ(feed_all(f, over + "\r\nNOOP\r\n"), (lines{std::string(too_long_marker), "NOOP"}));
    EXPECT_EQ(feed_all(f, over + "\nNOOP\n"), (lines{std::string(too_long_marker), "NOOP"}));
}

TEST(LineFramer, OneOctetOverRejectedWhenLfArrivesLater) {
    line_framer f(limits::max_command_line);
    const std::string over(limits::max_command_line + 1, 'A');
    EXPECT_EQ(feed_all(f, over), (lines{}));  // could still be limit + CR
    EXPECT_EQ(feed_all(f, "\n"), (lines{std::string(too_long_marker)}));
    EXPECT_EQ(feed_all(f, "NOOP\r\n"), (lines{"NOOP"}));
}

TEST(LineFramer, LimitPlusCrFollowedByContentIsTooLong) {
    line_framer f(4);
    EXPECT_EQ(feed_all(f, "ABCD\r"), (lines{}));
    EXPECT_EQ(feed_all(f, "E"), (lines{std::string(too_long_marker)}));  // content "ABCD\rE"
    EXPECT_EQ(feed_all(f, "\r\nOK\r\n"), (lines{"OK"}));
}

TEST(LineFramer, OverLongLineWithTailAndNextLine) {
    line_framer f(limits::max_command_line);
    const std::string input = std::string(600, 'A') + "QUIT\r\nNOOP\r\n";
    EXPECT_EQ(feed_all(f, input), (lines{std::string(too_long_marker), "NOOP"}));
}

TEST(LineFramer, OverLongLineReportedBeforeItsEndAndOnlyOnce) {
    line_framer f(limits::max_command_line);
    EXPECT_EQ(feed_all(f, "NOOP " + std::string(600, 'x')), (lines{std::string(too_long_marker)}));
    EXPECT_FALSE(f.has_buffered());  // the discarded bytes are not kept
    // 1 MB more of the same line in 1000 commits, then a tail that looks like a command.
    for (int i = 0; i < 1000; ++i) {
        EXPECT_EQ(feed_all(f, std::string(1000, 'y')), (lines{})) << i;
    }
    EXPECT_EQ(feed_all(f, " QUIT\r"), (lines{}));
    EXPECT_EQ(feed_all(f, "\nNOOP\r\nSTAT\r\n"), (lines{"NOOP", "STAT"}));
}

TEST(LineFramer, OverLongLineByteByByte) {
    line_framer f(8);
    lines got;
    const std::string input = std::string(40, 'z') + "RETR 1\r\nLIST\r\n";
    for (char c : input) {
        for (std::string& l : feed_all(f, std::string_view(&c, 1))) {
            got.push_back(std::move(l));
        }
    }
    EXPECT_EQ(got, (lines{std::string(too_long_marker), "LIST"}));
}

TEST(LineFramer, OneMegabyteInOneCommit) {
    line_framer f(limits::max_command_line);
    const std::string input = std::string(1 << 20, 'A') + "DELE 1\r\nNOOP\r\n";
    EXPECT_EQ(feed_all(f, input), (lines{std::string(too_long_marker), "NOOP"}));
}

TEST(LineFramer, SeveralOverLongLinesEachReported) {
    line_framer f(4);
    EXPECT_EQ(feed_all(f, "123456\r\nok\r\n1234567890\nabcd\n"),
              (lines{std::string(too_long_marker), "ok", std::string(too_long_marker), "abcd"}));
}

TEST(LineFramer, RaisedLimitForSasl) {
    line_framer f(limits::max_command_line);
    const std::string token(limits::max_command_line * 4, 'Q');
    f.set_max_line(limits::max_sasl_line);
    EXPECT_EQ(feed_all(f, token + "\r\n"), (lines{token}));
    f.set_max_line(limits::max_command_line);
    EXPECT_EQ(feed_all(f, token + "\r\n"), (lines{std::string(too_long_marker)}));
}

TEST(LineFramer, DiscardBufferedDropsPipelinedInput) {
    // STLS followed by an injected command in the same packet (CVE-2021-38542): after the
    // handshake nothing sent before it may run.
    line_framer f(limits::max_command_line);
    put(f, "STLS\r\nUSER evil\r\nPASS x");
    auto ev = f.next();
    ASSERT_TRUE(ev);
    EXPECT_EQ(ev->text, "STLS");
    EXPECT_TRUE(f.has_buffered());
    f.discard_buffered();
    EXPECT_FALSE(f.has_buffered());
    EXPECT_FALSE(f.next());
    EXPECT_EQ(feed_all(f, "CAPA\r\n"), (lines{"CAPA"}));
}

TEST(LineFramer, DiscardBufferedEndsDiscardingOfOverLongLine) {
    line_framer f(4);
    EXPECT_EQ(feed_all(f, "0123456789"), (lines{std::string(too_long_marker)}));
    f.discard_buffered();
    EXPECT_EQ(feed_all(f, "NOOP\r\n"), (lines{"NOOP"}));
}

TEST(LineFramer, ShrinkFreesMemoryOnlyWhenEmpty) {
    line_framer f(limits::max_command_line);
    put(f, "NOOP\r\nST");
    EXPECT_EQ(drain(f), (lines{"NOOP"}));
    f.shrink();  // "ST" is buffered: must survive
    EXPECT_EQ(feed_all(f, "AT\r\n"), (lines{"STAT"}));
    f.shrink();
    EXPECT_FALSE(f.has_buffered());
    // After shrinking, prepare() must allocate afresh and everything still works.
    EXPECT_EQ(feed_all(f, "QUIT\r\n"), (lines{"QUIT"}));
}

TEST(LineFramer, ShrinkReleasesTheBuffer) {
    line_framer f(1 << 20);
    put(f, std::string(1 << 20, 'x'));
    EXPECT_EQ(feed_all(f, "\n"), (lines{std::string(1 << 20, 'x')}));
    const std::size_t before = allocated_bytes();
    f.shrink();
    const std::size_t after = allocated_bytes();
    EXPECT_GE(before - after, std::size_t{1} << 20) << "before " << before << ", after " << after;
    EXPECT_EQ(f.prepare(4).size(), 4u);
}

TEST(LineFramer, PrepareAfterPartialConsumptionKeepsUnreadBytes) {
    line_framer f(64);
    put(f, "AAAA\r\nBBBB");
    EXPECT_EQ(drain(f), (lines{"AAAA"}));
    // A large prepare forces compaction of the buffer: "BBBB" must move intact.
    std::span<char> s = f.prepare(4096);
    std::memcpy(s.data(), "CC\r\n", 4);
    f.commit(4);
    EXPECT_EQ(drain(f), (lines{"BBBBCC"}));
}

TEST(LineFramer, CommitLessThanPrepared) {
    line_framer f(64);
    std::span<char> s = f.prepare(100);
    std::memcpy(s.data(), "NOOP\r\njunk", 10);
    f.commit(6);  // only "NOOP\r\n" was received
    EXPECT_EQ(drain(f), (lines{"NOOP"}));
    EXPECT_FALSE(f.has_buffered());
    EXPECT_EQ(feed_all(f, "STAT\r\n"), (lines{"STAT"}));
}

}  // namespace
}  // namespace poplar::core
