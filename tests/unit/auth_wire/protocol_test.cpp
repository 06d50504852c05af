// The auth wire protocol's codec: every message survives a round trip byte for byte, and every
// kind of malformed frame is refused with a reason (src/auth_wire/protocol.h).
#include "auth_wire/protocol.h"

#include <gtest/gtest.h>

namespace poplar::auth_wire {
namespace {

std::span<const std::uint8_t> bytes(const std::string& s) {
    return {reinterpret_cast<const std::uint8_t*>(s.data()), s.size()};
}

address loopback() {
    address a{};
    a[10] = 0xff;
    a[11] = 0xff;
    a[12] = 127;
    a[15] = 1;
    return a;
}

std::vector<message> samples() {
    step first;
    first.exchange = 42;
    first.generation = 3;
    first.first = true;
    first.tls = true;
    first.mechanism = "PLAIN";
    first.log_mechanism = "USER";
    first.client = loopback();
    first.client_text = "127.0.0.1";
    first.response = std::string("\0demo\0pass\xff\0word", 16);  // any byte, NUL included
    step apop = first;
    apop.mechanism = "APOP";
    apop.apop_timestamp = "<1.2@example.org>";
    reply done;
    done.exchange = 42;
    done.result = verdict::failure;
    done.refused = refusal::account_blocked;
    done.user = "bob";
    done.log_reason = "password mismatch";
    done.client_message = "moved";
    done.penalty_keys = 1'000'000;
    done.address_blocked_ms = 900'000;
    reply delay;
    delay.kind = reply_kind::delay;
    delay.delay_ms = 15'000;
    reply challenge;
    challenge.kind = reply_kind::challenge;
    challenge.challenge = "Password:";
    return {
        hello{7, {{"PLAIN", true, ""}, {"LOGIN", true, "Username:"}}},
        first,
        apop,
        resume{42, 3},
        end{42, 3, end_reason::client_left},
        done,
        delay,
        challenge,
        reload{9, 3, false},
        reload{10, 3, true},
        reload_reply{9, false, "auth.passwd_file: users:2: empty user name\n", {}, {}},
        reload_reply{10, true, "", {{"PLAIN", true, ""}}, "[auth]\npasswd_file = \"users\"\n"},
        reset{3},
        lookup{11, 3, "alice+lists@example.org"},
        lookup_reply{11, lookup_result::found, "alice@example.org", 1u << 30, 1000, ""},
        lookup_reply{12, lookup_result::unknown, "", 0, 0, ""},
        lookup_reply{13, lookup_result::temporary_failure, "", 0, 0, "passwd-file unreadable"},
    };
}

TEST(AuthWire, ALookupReplyWithAnUnknownResultIsRefused) {
    std::string frame = encode(lookup_reply{12, lookup_result::unknown, "", 0, 0, ""});
    frame[header_size] = 3;  // the result byte
    auto back = decode(bytes(frame));
    ASSERT_FALSE(back);
    EXPECT_EQ(back.error(), "lookup result 3 is unknown");
}

TEST(AuthWire, EveryMessageRoundTripsExactly) {
    for (const message& m : samples()) {
        const std::string frame = encode(m);
        ASSERT_LE(frame.size(), max_frame);
        auto back = decode(bytes(frame));
        ASSERT_TRUE(back) << back.error();
        EXPECT_EQ(back.value(), m);
        EXPECT_EQ(encode(back.value()), frame);
    }
}

TEST(AuthWire, TheHeaderIsLengthVersionTypeId) {
    const std::string frame = encode(resume{0x0102030405060708ULL, 9});
    ASSERT_EQ(frame.size(), header_size + 4);
    EXPECT_EQ(frame.substr(0, 4), std::string("\0\0\0\x12", 4));
    EXPECT_EQ(frame[4], '\x01');  // protocol_version
    EXPECT_EQ(frame[5], '\x03');  // message_type::resume
    EXPECT_EQ(frame.substr(6, 8), std::string("\x01\x02\x03\x04\x05\x06\x07\x08", 8));
    EXPECT_EQ(frame.substr(14), std::string("\0\0\0\x09", 4));
}

TEST(AuthWire, ShortFramesAreRefused) {
    EXPECT_FALSE(decode({}));
    const std::string frame = encode(reset{1});
    for (std::size_t n = 0; n < frame.size(); ++n) {
        EXPECT_FALSE(decode(bytes(frame.substr(0, n)))) << n;
    }
}

TEST(AuthWire, ALengthThatDisagreesWithThePacketIsRefused) {
    std::string frame = encode(reset{1});
    frame += '\0';  // one byte more than the length says
    auto r = decode(bytes(frame));
    ASSERT_FALSE(r);
    EXPECT_NE(r.error().find("arrived"), std::string::npos) << r.error();
}

TEST(AuthWire, BytesAfterTheLastFieldAreRefused) {
    std::string frame = encode(reset{1});
    frame += "xx";
    frame[3] = static_cast<char>(frame.size());
    auto r = decode(bytes(frame));
    ASSERT_FALSE(r);
    EXPECT_NE(r.error().find("after its last field"), std::string::npos) << r.error();
}

TEST(AuthWire, AnotherVersionIsRefusedNotGuessedAt) {
    std::string frame = encode(reset{1});
    frame[4] = 2;
    auto r = decode(bytes(frame));
    ASSERT_FALSE(r);
    EXPECT_NE(r.error().find("version 2"), std::string::npos) << r.error();
}

TEST(AuthWire, UnknownTypesAndEnumValuesAreRefused) {
    std::string frame = encode(reset{1});
    frame[5] = 6;  // no message type 6
    EXPECT_FALSE(decode(bytes(frame)));
    frame[5] = 0x7f;
    EXPECT_FALSE(decode(bytes(frame)));
    std::string e = encode(end{1, 1, end_reason::finished});
    e.back() = 2;  // no end reason 2
    EXPECT_FALSE(decode(bytes(e)));
    reply r;
    std::string rf = encode(r);
    rf[header_size] = 3;  // no reply kind 3
    EXPECT_FALSE(decode(bytes(rf)));
    std::string st = encode(step{});
    st[header_size + 4] = 2;  // a flag must be 0 or 1
    EXPECT_FALSE(decode(bytes(st)));
}

TEST(AuthWire, AStringLongerThanTheFrameIsRefused) {
    step s;
    s.response = "secret";
    std::string frame = encode(s);
    // The response's length field is the last four bytes before its six bytes.
    frame[frame.size() - 7] = '\x7f';
    auto r = decode(bytes(frame));
    ASSERT_FALSE(r);
    EXPECT_NE(r.error().find("truncated"), std::string::npos) << r.error();
}

TEST(AuthWire, MessagesWithoutAnIdMustSayZero) {
    // Found by fuzz_auth_wire: an id on a hello or reset decoded, then encoded as 0.
    for (const message& m : {message(hello{1, {}}), message(reset{1})}) {
        std::string frame = encode(m);
        frame[13] = 1;
        EXPECT_FALSE(decode(bytes(frame)));
    }
}

TEST(AuthWire, TooManyMechanismsAreRefused) {
    hello h{1, std::vector<mechanism>(65, mechanism{"X", false, ""})};
    EXPECT_FALSE(decode(bytes(encode(h))));
    h.mechanisms.resize(64);
    EXPECT_TRUE(decode(bytes(encode(h))));
}

TEST(AuthWire, FramesLongerThanTheMaximumAreRefused) {
    step s;
    s.response.assign(max_frame, 'a');
    auto r = decode(bytes(encode(s)));
    ASSERT_FALSE(r);
    EXPECT_NE(r.error().find("longer than"), std::string::npos) << r.error();
}

}  // namespace
}  // namespace poplar::auth_wire
