// Tests the stored form of received mail (core/stored_form.h): CRLF -> LF and nothing else, and
// that message_encoder serves back exactly the CRLF form of what was received.
#include "core/stored_form.h"

#include <gtest/gtest.h>

#include <random>
#include <string>

#include "core/message_encoder.h"
#include "core/output_buffer.h"

namespace poplar::core {
namespace {

// What RETR sends for `stored`, without the final ".\r\n" and dot-stuffing undone.
std::string served(std::string_view stored) {
    message_encoder enc;
    output_buffer out;
    enc.feed(stored, out);
    enc.finish(out);
    std::string wire(out.view());
    EXPECT_TRUE(wire.ends_with(".\r\n"));
    wire.resize(wire.size() - 3);
    std::string unstuffed;
    std::size_t pos = 0;
    while (pos < wire.size()) {
        if (wire[pos] == '.') {
            ++pos;  // every line that starts with "." was stuffed
        }
        const auto end = wire.find("\r\n", pos);
        unstuffed.append(wire, pos, end + 2 - pos);
        pos = end + 2;
    }
    return unstuffed;
}

// The CRLF form RFC 1939 §3 makes of any received line ends: bare LF becomes CRLF, and a final
// line without a newline gets one.
std::string crlf_form(std::string_view raw) {
    std::string out;
    for (std::size_t i = 0; i < raw.size(); ++i) {
        if (raw[i] == '\n' && (i == 0 || raw[i - 1] != '\r')) {
            out += "\r\n";
        } else {
            out += raw[i];
        }
    }
    if (!out.empty() && !out.ends_with("\r\n")) {
        out += "\r\n";
    }
    return out;
}

TEST(StoredForm, CrlfBecomesLfAndNothingElseMoves) {
    EXPECT_EQ(stored_form("a\r\nb\r\n"), "a\nb\n");
    EXPECT_EQ(stored_form("a\nb\n"), "a\nb\n");
    EXPECT_EQ(stored_form("a\r\nb\nc"), "a\nb\nc");  // no final newline: kept so
    EXPECT_EQ(stored_form(std::string("x\0y\r\n", 5)), std::string("x\0y\n", 4));
    EXPECT_EQ(stored_form("bare\rcr\r\n"), "bare\rcr\n");
    EXPECT_EQ(stored_form(""), "");
    EXPECT_EQ(stored_form("\r\n\r\n"), "\n\n");
}

TEST(StoredForm, ALineEndingInCrKeepsItsCrlfSoTheCrIsNotLost) {
    EXPECT_EQ(stored_form("x\r\r\n"), "x\r\r\n");
    EXPECT_EQ(stored_form("\r\r\r\n"), "\r\r\r\n");
    std::string line;
    append_stored_line(line, "x\r");
    EXPECT_EQ(line, "x\r\r\n");
    line.clear();
    append_stored_line(line, "x");
    EXPECT_EQ(line, "x\n");
}

TEST(StoredForm, WhatIsServedIsWhatWasReceivedInCrlfForm) {
    for (std::string_view raw : {"Subject: a\r\n\r\nbody\r\n", "lf\nonly\n", "no final newline", "x\r\r\ny\r\n",
                                 ".dot\r\n..two\r\n", "\r", "a\rb\rc\n", "line\r\n\r\n\r\n"}) {
        EXPECT_EQ(served(stored_form(raw)), crlf_form(raw)) << testing::PrintToString(std::string(raw));
    }
    // Random messages over the bytes that matter.
    std::mt19937 rng(12);
    const char alphabet[] = {'a', '\r', '\n', '.', '\0', '\xff'};
    for (int i = 0; i < 20000; ++i) {
        std::string raw(rng() % 12, 'a');
        for (char& c : raw) {
            c = alphabet[rng() % sizeof alphabet];
        }
        const std::string stored = stored_form(raw);
        ASSERT_EQ(served(stored), crlf_form(raw)) << testing::PrintToString(raw);
        ASSERT_EQ(virtual_size(stored), crlf_form(raw).size()) << testing::PrintToString(raw);
    }
}

}  // namespace
}  // namespace poplar::core
