// auth_penalties with a fake clock: the delay doubles per failure from the base to the cap and
// applies before verification whatever the result; a success clears the address; strangers
// raise and pay the account's score, a familiar address neither; blocks start at the threshold,
// refuse without counting, and end; scores decay by half each half-life.
#include "detect/auth_penalties.h"

#include <gtest/gtest.h>

#include "test_address.h"

namespace poplar::detect {
namespace {

using namespace std::chrono_literals;
using clk = auth_penalties::clock;

auto v4(unsigned char last) { return testing::ipv4(192, 0, 2, last); }

penalty_settings settings() {
    penalty_settings s;
    s.base = 2s;
    s.max_delay = 15s;
    s.half_life = 15min;
    s.block_after = 10;
    s.block_duration = 15min;
    return s;
}

const clk::time_point t0 = clk::time_point{} + 24h;

TEST(auth_penalties, delay_doubles_per_failure_up_to_the_cap) {
    auth_penalties p(1000);
    const auto s = settings();
    std::vector<long> delays;
    for (int i = 0; i < 6; ++i) {
        delays.push_back(static_cast<long>(p.begin(v4(1), "alice", false, t0, s).delay.count()));
    }
    EXPECT_EQ(delays, (std::vector<long>{0, 2000, 4000, 8000, 15000, 15000}));
}

TEST(auth_penalties, a_success_clears_the_address_but_not_what_strangers_did_to_the_account) {
    auth_penalties p(1000);
    const auto s = settings();
    for (int i = 0; i < 3; ++i) {
        p.begin(v4(1), "alice", false, t0, s);
    }
    auto a = p.begin(v4(1), "bob", false, t0, s);  // the attacker's own account
    EXPECT_EQ(a.delay, 8s);
    p.succeeded(v4(1), "bob", a, t0, s);
    // The address is clean again, but alice's account still has 3 failures from strangers.
    EXPECT_EQ(p.begin(v4(1), "carol", false, t0, s).delay, 0s);
    EXPECT_EQ(p.begin(v4(9), "alice", false, t0, s).delay, 8s);
}

TEST(auth_penalties, the_owner_on_a_familiar_address_is_not_slowed_by_strangers) {
    auth_penalties p(1000);
    const auto s = settings();
    for (unsigned char i = 1; i <= 5; ++i) {  // a distributed run: one guess from each address
        p.begin(v4(i), "alice", false, t0, s);
    }
    EXPECT_EQ(p.begin(v4(50), "alice", false, t0, s).delay, 15s);  // the sixth stranger waits
    auto owner = p.begin(v4(200), "alice", true, t0, s);
    EXPECT_EQ(owner.delay, 0s);
    EXPECT_FALSE(owner.counted_account);
}

TEST(auth_penalties, an_address_is_blocked_at_the_threshold_for_the_block_duration) {
    auth_penalties p(1000);
    const auto s = settings();
    int started = 0;
    for (int i = 0; i < 10; ++i) {
        auto a = p.begin(v4(1), "u" + std::to_string(i), false, t0, s);
        EXPECT_EQ(a.refused, auth_penalties::refusal::none) << i;
        started += a.block_started ? 1 : 0;
    }
    EXPECT_EQ(started, 1);
    EXPECT_EQ(p.begin(v4(1), "x", false, t0 + 1s, s).refused, auth_penalties::refusal::address_blocked);
    EXPECT_GT(p.address_blocked_for(v4(1), t0 + 1s), 14min);
    EXPECT_EQ(p.address_blocked_for(v4(2), t0 + 1s), 0s);
    EXPECT_EQ(p.address_blocked_for(v4(1), t0 + 15min + 1s), 0s);
    // After the block, half the score is left: the guesser is at the cap at once.
    EXPECT_EQ(p.begin(v4(1), "x", false, t0 + 15min + 1s, s).delay, 15s);
}

TEST(auth_penalties, a_success_does_not_lift_a_block_it_did_not_start) {
    auth_penalties p(1000);
    const auto s = settings();
    auto own = p.begin(v4(1), "mallory", false, t0, s);  // started before the block
    for (int i = 0; i < 9; ++i) {
        p.begin(v4(1), "alice", false, t0, s);
    }
    p.succeeded(v4(1), "mallory", own, t0 + 1s, s);
    EXPECT_GT(p.address_blocked_for(v4(1), t0 + 2s), 0s);
    // But the owner whose right password crossed the threshold is not blocked by it.
    auth_penalties q(1000);
    for (int i = 0; i < 9; ++i) {
        q.begin(v4(1), "alice", false, t0, s);
    }
    auto tenth = q.begin(v4(1), "alice", false, t0, s);
    ASSERT_TRUE(tenth.block_started);
    q.succeeded(v4(1), "alice", tenth, t0, s);
    EXPECT_EQ(q.address_blocked_for(v4(1), t0), 0s);
}

TEST(auth_penalties, an_account_blocked_for_strangers_still_lets_the_owner_in) {
    auth_penalties p(1000);
    const auto s = settings();
    for (unsigned char i = 1; i <= 10; ++i) {
        p.begin(v4(i), "alice", false, t0, s);
    }
    EXPECT_EQ(p.begin(v4(77), "alice", false, t0, s).refused, auth_penalties::refusal::account_blocked);
    EXPECT_EQ(p.begin(v4(77), "bob", false, t0, s).refused, auth_penalties::refusal::none);
    EXPECT_EQ(p.begin(v4(200), "alice", true, t0, s).refused, auth_penalties::refusal::none);
}

TEST(auth_penalties, scores_halve_each_half_life) {
    auth_penalties p(1000);
    const auto s = settings();
    for (int i = 0; i < 4; ++i) {
        p.begin(v4(1), "", false, t0, s);
    }
    EXPECT_EQ(p.begin(v4(1), "", false, t0 + 15min, s).delay, 4s);  // 4 failures decayed to 2: 2 s doubled
    EXPECT_EQ(p.begin(v4(2), "", false, t0, s).delay, 0s);
}

TEST(auth_penalties, an_unjudged_attempt_is_not_counted) {
    auth_penalties p(1000);
    const auto s = settings();
    auto a = p.begin(v4(1), "alice", false, t0, s);
    p.not_a_guess(v4(1), "alice", a, t0, s);
    EXPECT_EQ(p.begin(v4(1), "alice", false, t0, s).delay, 0s);
}

TEST(auth_penalties, no_base_delay_means_no_delay_but_blocks_still_apply) {
    auth_penalties p(1000);
    auto s = settings();
    s.base = 0s;
    for (int i = 0; i < 10; ++i) {
        EXPECT_EQ(p.begin(v4(1), "", false, t0, s).delay, 0s);
    }
    EXPECT_EQ(p.begin(v4(1), "", false, t0, s).refused, auth_penalties::refusal::address_blocked);
}

}  // namespace
}  // namespace poplar::detect
