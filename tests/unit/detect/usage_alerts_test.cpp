// usage_alerts with a fake clock: each threshold fires exactly once per window, windows restart
// the counts, users are independent, 0 turns a kind off, and the table stays bounded.
#include "detect/usage_alerts.h"

#include <gtest/gtest.h>

namespace poplar::detect {
namespace {

using namespace std::chrono_literals;
using clock_t_ = usage_alerts::clock;

usage_alerts::address addr(unsigned char n) {
    usage_alerts::address a{};
    a[0] = 192;
    a[3] = n;
    return a;
}

alert_thresholds small() {
    alert_thresholds t;
    t.window = 60s;
    t.retr_messages = 3;
    t.retr_bytes = 1000;
    t.dele_messages = 5;
    t.addresses = 2;
    return t;
}

TEST(usage_alerts, retr_messages_fires_once_per_window) {
    usage_alerts u;
    const auto t0 = clock_t_::time_point{} + 1h;
    EXPECT_FALSE(u.retrieved("alice", 10, t0, small()));
    EXPECT_FALSE(u.retrieved("alice", 10, t0, small()));
    auto a = u.retrieved("alice", 10, t0 + 1s, small());
    ASSERT_TRUE(a);
    EXPECT_EQ(a->kind, alert_kind::retr_messages);
    EXPECT_EQ(a->value, 3u);
    EXPECT_EQ(a->threshold, 3u);
    EXPECT_FALSE(u.retrieved("alice", 10, t0 + 2s, small()));  // reported already
    EXPECT_FALSE(u.retrieved("bob", 10, t0 + 2s, small()));    // bob has his own counts
    // A new window: counts start again, and so does the report.
    EXPECT_FALSE(u.retrieved("alice", 10, t0 + 61s, small()));
    EXPECT_FALSE(u.retrieved("alice", 10, t0 + 62s, small()));
    EXPECT_TRUE(u.retrieved("alice", 10, t0 + 63s, small()));
}

TEST(usage_alerts, retr_bytes_and_dele_and_addresses) {
    usage_alerts u;
    const auto t0 = clock_t_::time_point{} + 1h;
    auto a = u.retrieved("alice", 1500, t0, small());
    ASSERT_TRUE(a);
    EXPECT_EQ(a->kind, alert_kind::retr_bytes);
    EXPECT_EQ(a->value, 1500u);
    EXPECT_FALSE(u.deleted("alice", 4, t0, small()));
    a = u.deleted("alice", 1, t0, small());
    ASSERT_TRUE(a);
    EXPECT_EQ(a->kind, alert_kind::dele_messages);
    EXPECT_EQ(a->value, 5u);
    EXPECT_FALSE(u.login("alice", addr(1), t0, small()));
    EXPECT_FALSE(u.login("alice", addr(1), t0, small()));  // the same address again
    a = u.login("alice", addr(2), t0, small());
    ASSERT_TRUE(a);
    EXPECT_EQ(a->kind, alert_kind::addresses);
    EXPECT_EQ(a->value, 2u);
    EXPECT_FALSE(u.login("alice", addr(3), t0, small()));
}

TEST(usage_alerts, zero_turns_a_kind_off) {
    usage_alerts u;
    alert_thresholds t = small();
    t.retr_messages = 0;
    t.retr_bytes = 0;
    t.addresses = 0;
    const auto t0 = clock_t_::time_point{} + 1h;
    for (int i = 0; i < 100; ++i) {
        EXPECT_FALSE(u.retrieved("alice", 100000, t0, t));
        EXPECT_FALSE(u.login("alice", addr(static_cast<unsigned char>(i)), t0, t));
    }
}

TEST(usage_alerts, bounded_ended_windows_are_swept_when_full) {
    usage_alerts u(3);
    const auto t0 = clock_t_::time_point{} + 1h;
    (void)u.retrieved("a", 1, t0, small());
    (void)u.retrieved("b", 1, t0 + 30s, small());
    (void)u.retrieved("c", 1, t0 + 30s, small());
    // Full, and no window has ended: a fourth user goes untracked (no alert, no growth).
    EXPECT_FALSE(u.retrieved("d", 5000, t0 + 40s, small()));
    EXPECT_EQ(u.tracked(), 3u);
    // a's window has ended: it is swept to make room, and d is tracked (and alerts).
    EXPECT_TRUE(u.retrieved("d", 5000, t0 + 61s, small()));
    EXPECT_EQ(u.tracked(), 3u);
    // Someone already tracked is never refused.
    EXPECT_FALSE(u.retrieved("b", 1, t0 + 62s, small()));
}

}  // namespace
}  // namespace poplar::detect
