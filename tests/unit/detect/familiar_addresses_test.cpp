// familiar_addresses: remembered per account for the configured days, a few per account (the
// oldest replaced), the file's text round-trips and skips bad and expired lines, a login on a
// day already recorded changes nothing, and the store stays bounded.
#include "detect/familiar_addresses.h"

#include <gtest/gtest.h>

#include "test_address.h"

namespace poplar::detect {
namespace {

using namespace std::chrono_literals;
using clk = familiar_addresses::clock;

auto v4(unsigned char last) { return testing::ipv4(198, 51, 100, last); }

const clk::time_point day0 = clk::time_point{} + std::chrono::days(20'000) + 10h;

TEST(familiar_addresses, remembered_for_the_configured_days) {
    familiar_addresses f;
    EXPECT_TRUE(f.note_success("alice", v4(1), day0, 30));
    EXPECT_FALSE(f.note_success("alice", v4(1), day0 + 1h, 30));  // same day: nothing to save
    EXPECT_TRUE(f.is_familiar("alice", v4(1), day0 + std::chrono::days(29), 30));
    EXPECT_FALSE(f.is_familiar("alice", v4(1), day0 + std::chrono::days(30), 30));
    EXPECT_FALSE(f.is_familiar("alice", v4(2), day0, 30));
    EXPECT_FALSE(f.is_familiar("bob", v4(1), day0, 30));
    EXPECT_FALSE(f.is_familiar("alice", v4(1), day0, 0));  // 0 days: nobody is familiar
}

TEST(familiar_addresses, the_oldest_of_a_full_account_is_replaced) {
    familiar_addresses f;
    for (unsigned char i = 1; i <= familiar_addresses::per_account; ++i) {
        f.note_success("alice", v4(i), day0 + std::chrono::days(i), 30);
    }
    f.note_success("alice", v4(99), day0 + std::chrono::days(10), 30);
    const auto later = day0 + std::chrono::days(10);
    EXPECT_FALSE(f.is_familiar("alice", v4(1), later, 30));
    EXPECT_TRUE(f.is_familiar("alice", v4(2), later, 30));
    EXPECT_TRUE(f.is_familiar("alice", v4(99), later, 30));
}

TEST(familiar_addresses, text_round_trips_and_bad_lines_are_reported) {
    familiar_addresses f;
    f.note_success("alice", v4(7), day0, 30);
    familiar_addresses::address v6{};
    ASSERT_TRUE(parse_address_text("2001:db8:1:2::/64", v6));
    f.note_success("bob@example.org", v6, day0, 30);
    const std::string text = f.to_text(day0, 30);
    EXPECT_NE(text.find("alice\t198.51.100.7\t"), std::string::npos) << text;
    EXPECT_NE(text.find("bob@example.org\t2001:db8:1:2::/64\t"), std::string::npos) << text;

    familiar_addresses g;
    const auto problems =
        g.load_text(text + "broken line\nalice\t999.1.1.1\t2024-01-01\ncarol\t198.51.100.9\t1999-01-01\n", day0, 30);
    ASSERT_EQ(problems.size(), 2u);
    // The comment and two entries come first: the bad lines are the file's 4th and 5th.
    EXPECT_EQ(problems[0], "4: not \"user<TAB>address<TAB>YYYY-MM-DD\"");
    EXPECT_EQ(problems[1].substr(0, 3), "5: ");
    EXPECT_TRUE(g.is_familiar("alice", v4(7), day0, 30));
    EXPECT_TRUE(g.is_familiar("bob@example.org", v6, day0, 30));
    EXPECT_FALSE(g.is_familiar("carol", v4(9), day0, 30));  // expired line skipped
    EXPECT_EQ(g.accounts(), 2u);
}

TEST(familiar_addresses, bounded) {
    familiar_addresses f(100);
    for (int i = 0; i < 1000; ++i) {
        f.note_success("user" + std::to_string(i), v4(1), day0 + std::chrono::days(i / 100), 30);
    }
    EXPECT_LE(f.accounts(), 100u);
    EXPECT_TRUE(f.is_familiar("user999", v4(1), day0 + std::chrono::days(9), 30));
}

}  // namespace
}  // namespace poplar::detect
