// Tests for util/text.h: ASCII case folding, log escaping, base64 (RFC 4648).
#include "util/text.h"

#include <gtest/gtest.h>

#include <string>
#include <string_view>

namespace poplar::util {
namespace {

TEST(Iequals, AsciiOnly) {
    EXPECT_TRUE(iequals("STAT", "stat"));
    EXPECT_TRUE(iequals("", ""));
    EXPECT_TRUE(iequals("Plain", "pLAIN"));
    EXPECT_FALSE(iequals("STAT", "STA"));
    EXPECT_FALSE(iequals("STAT", "STAU"));
    EXPECT_FALSE(iequals("@", "`"));   // 0x40 vs 0x60: not letters, not folded
    EXPECT_FALSE(iequals("[", "{"));
    EXPECT_FALSE(iequals("\xC4", "\xE4"));  // Latin-1 Ä/ä stay distinct
}

TEST(ToUpperAscii, Basic) {
    EXPECT_EQ(to_upper_ascii("auth plain"), "AUTH PLAIN");
    EXPECT_EQ(to_upper_ascii("a\xE4z{"), "A\xE4Z{");
}

TEST(LogEscape, ControlQuotesBackslashAnd8Bit) {
    EXPECT_EQ(log_escape("alice"), "alice");
    EXPECT_EQ(log_escape("a\r\nb"), "a\\x0D\\x0Ab");
    EXPECT_EQ(log_escape("say \"hi\""), "say \\x22hi\\x22");
    EXPECT_EQ(log_escape("back\\slash"), "back\\x5Cslash");
    EXPECT_EQ(log_escape("\x7F\x80\xFF"), "\\x7F\\x80\\xFF");
    EXPECT_EQ(log_escape(std::string_view("\0\t", 2)), "\\x00\\x09");
    EXPECT_EQ(log_escape("caf\xC3\xA9"), "caf\\xC3\\xA9");
    EXPECT_EQ(log_escape(" ~"), " ~");
}

TEST(LogEscape, ForgedLogLineIsOneLine) {
    const std::string forged = log_escape("x\r\nauth failed: user=\"root\" rip=1.2.3.4");
    EXPECT_EQ(forged.find('\r'), std::string::npos);
    EXPECT_EQ(forged.find('\n'), std::string::npos);
    EXPECT_EQ(forged.find('"'), std::string::npos);
}

TEST(LogEscape, Truncation) {
    EXPECT_EQ(log_escape(std::string(10, 'a'), 10), std::string(10, 'a'));
    EXPECT_EQ(log_escape(std::string(11, 'a'), 10), std::string(10, 'a') + "...");
    EXPECT_EQ(log_escape(std::string(500, 'a')), std::string(128, 'a') + "...");
    EXPECT_EQ(log_escape("", 0), "");
}

// RFC 4648 §10 test vectors.
struct vector_case {
    std::string_view plain;
    std::string_view encoded;
};
constexpr vector_case rfc4648[] = {
    {"", ""},         {"f", "Zg=="},         {"fo", "Zm8="},         {"foo", "Zm9v"},
    {"foob", "Zm9vYg=="}, {"fooba", "Zm9vYmE="}, {"foobar", "Zm9vYmFy"},
};

TEST(Base64, Rfc4648Encode) {
    for (const vector_case& v : rfc4648) {
        EXPECT_EQ(base64_encode(v.plain), v.encoded) << v.plain;
    }
}

TEST(Base64, Rfc4648Decode) {
    for (const vector_case& v : rfc4648) {
        const auto d = base64_decode(v.encoded);
        ASSERT_TRUE(d) << v.encoded;
        EXPECT_EQ(*d, v.plain) << v.encoded;
    }
}

TEST(Base64, SaslValues) {
    EXPECT_EQ(base64_encode("Username:"), "VXNlcm5hbWU6");
    EXPECT_EQ(base64_encode("Password:"), "UGFzc3dvcmQ6");
    EXPECT_EQ(base64_encode(std::string("\0u\0p", 4)), "AHUAcA==");
    EXPECT_EQ(base64_decode("AHUAcA=="), std::string("\0u\0p", 4));
}

TEST(Base64, BinaryRoundTrip) {
    std::string all;
    for (int i = 0; i < 256; ++i) {
        all += static_cast<char>(i);
    }
    for (std::size_t n = 0; n <= all.size(); n += 1) {
        const std::string part = all.substr(0, n);
        const std::string enc = base64_encode(part);
        EXPECT_EQ(enc.size(), 4 * ((n + 2) / 3)) << n;
        const auto dec = base64_decode(enc);
        ASSERT_TRUE(dec) << n;
        EXPECT_EQ(*dec, part) << n;
    }
    EXPECT_EQ(base64_encode("\xFB\xFF"), "+/8=");
}

TEST(Base64, RejectsBadPadding) {
    for (std::string_view bad : {"Zg", "Zg=", "Zg===", "Z===", "====", "=Zg=", "Zg=a", "Z=g=", "Zm9v=", "Zm8",
                                 "Zm9vYg=", "Zm9vYg==Zm9v", "Zm8=Zm9v", "A", "AB", "ABC"}) {
        EXPECT_FALSE(base64_decode(bad)) << bad;
    }
}

TEST(Base64, RejectsNonCanonicalPadBits) {
    // RFC 4648 §3.5: the bits beyond the last full octet must be zero; text.h promises to reject
    // anything that is not canonical, so each octet string has exactly one accepted encoding.
    for (std::string_view bad : {"Zh==", "Zg=A", "Zm9=", "Zm+=", "AB==", "AAB="}) {
        EXPECT_FALSE(base64_decode(bad)) << bad;
    }
    EXPECT_EQ(base64_decode("AA=="), std::string(1, '\0'));
    EXPECT_EQ(base64_decode("AAA="), std::string(2, '\0'));
    EXPECT_EQ(base64_decode("Zm8="), "fo");
}

TEST(Base64, RejectsBadCharacters) {
    for (std::string_view bad : {"Zm9v YmFy", " Zm9v", "Zm9v\n", "Zm9v\r\n", "Zm9-", "Zm9_", "Zm\x80v", "Zm.v",
                                 "*", "Zm9\t"}) {
        EXPECT_FALSE(base64_decode(bad)) << bad;
    }
    EXPECT_FALSE(base64_decode(std::string_view("Zm\0v", 4)));
}

}  // namespace
}  // namespace poplar::util
