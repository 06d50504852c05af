// Tests for util/secret.h: wiping, constant-time comparison, secret_string.
#include "util/secret.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstring>
#include <new>
#include <string>
#include <string_view>
#include <utility>

namespace poplar::util {
namespace {

TEST(Wipe, ClearsAndZeroes) {
    std::string s = "hunter2-but-long-enough-to-live-on-the-heap";
    const char* data = s.data();
    const std::size_t n = s.size();
    wipe(s);
    EXPECT_TRUE(s.empty());
    // The buffer is still owned by `s` (clear() keeps capacity), so it may be inspected.
    EXPECT_EQ(s.data(), data);
    EXPECT_TRUE(std::all_of(data, data + n, [](char c) { return c == '\0'; }));
}

TEST(Wipe, EmptyIsFine) {
    std::string s;
    wipe(s);
    EXPECT_TRUE(s.empty());
}

TEST(ConstantTimeEquals, Basic) {
    EXPECT_TRUE(constant_time_equals("", ""));
    EXPECT_TRUE(constant_time_equals("abc", "abc"));
    EXPECT_FALSE(constant_time_equals("abc", "abd"));
    EXPECT_FALSE(constant_time_equals("abc", "Abc"));
    EXPECT_FALSE(constant_time_equals("abc", "ab"));
    EXPECT_FALSE(constant_time_equals("", "a"));
    EXPECT_TRUE(constant_time_equals(std::string_view("a\0b", 3), std::string_view("a\0b", 3)));
    EXPECT_FALSE(constant_time_equals(std::string_view("a\0b", 3), std::string_view("a\0c", 3)));
}

// secret_string objects built in raw storage, so the bytes they occupy can be inspected after a
// move or after destruction (short strings live inside the object: the small-string buffer).
struct raw_slot {
    alignas(secret_string) unsigned char bytes[sizeof(secret_string)];
    secret_string* get() { return std::launder(reinterpret_cast<secret_string*>(bytes)); }
    bool contains(std::string_view needle) const {
        return std::search(std::begin(bytes), std::end(bytes), needle.begin(), needle.end(),
                           [](unsigned char a, char b) { return a == static_cast<unsigned char>(b); }) !=
               std::end(bytes);
    }
    // Any 3 consecutive bytes of the secret: a clear() that zeroes only the first byte still leaks.
    bool holds_part_of(std::string_view secret) const {
        for (std::size_t i = 0; i + 3 <= secret.size(); ++i) {
            if (contains(secret.substr(i, 3))) {
                return true;
            }
        }
        return false;
    }
};

constexpr std::string_view short_secret = "pw-1234-xyz";  // fits the small-string buffer

TEST(SecretString, ViewAndEmpty) {
    secret_string s(std::string("pw"));
    EXPECT_EQ(s.view(), "pw");
    EXPECT_FALSE(s.empty());
    EXPECT_TRUE(secret_string().empty());
}

TEST(SecretString, DestructorWipesInlineBytes) {
    raw_slot slot;
    new (slot.bytes) secret_string(std::string(short_secret));
    ASSERT_TRUE(slot.contains(short_secret));  // the test can see the bytes at all
    slot.get()->~secret_string();
    EXPECT_FALSE(slot.holds_part_of(short_secret));
}

TEST(SecretString, MoveConstructionLeavesNoCopyBehind) {
    raw_slot from;
    new (from.bytes) secret_string(std::string(short_secret));
    {
        secret_string to(std::move(*from.get()));
        EXPECT_EQ(to.view(), short_secret);
        EXPECT_TRUE(from.get()->empty());
        EXPECT_FALSE(from.holds_part_of(short_secret)) << "moved-from secret_string still holds the secret";
    }
    from.get()->~secret_string();
}

TEST(SecretString, MoveAssignmentLeavesNoCopyBehind) {
    raw_slot from;
    raw_slot to;
    new (from.bytes) secret_string(std::string(short_secret));
    new (to.bytes) secret_string(std::string("old-pw"));
    *to.get() = std::move(*from.get());
    EXPECT_EQ(to.get()->view(), short_secret);
    EXPECT_TRUE(from.get()->empty());
    EXPECT_FALSE(from.holds_part_of(short_secret)) << "moved-from secret_string still holds the secret";
    EXPECT_FALSE(to.holds_part_of("old-pw")) << "overwritten secret was not wiped";
    from.get()->~secret_string();
    to.get()->~secret_string();
}

TEST(SecretString, MoveOfLongSecret) {
    const std::string long_secret(100, 'k');
    secret_string a{std::string(long_secret)};
    secret_string b(std::move(a));
    EXPECT_EQ(b.view(), long_secret);
    EXPECT_TRUE(a.empty());  // NOLINT(bugprone-use-after-move): the moved-from state is specified
    secret_string c;
    c = std::move(b);
    EXPECT_EQ(c.view(), long_secret);
    EXPECT_TRUE(b.empty());  // NOLINT(bugprone-use-after-move)
    secret_string& alias = c;
    c = std::move(alias);  // self-move keeps the value
    EXPECT_EQ(c.view(), long_secret);
}

}  // namespace
}  // namespace poplar::util
