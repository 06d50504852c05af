// penalty_table against a reference model (std::map plus a recency list) under a random mix of
// gets, finds and erases, small enough to evict all the time; and the memory bound the issue
// sets: 1,000,000 keys in under 100 MiB.
#include "detect/penalty_table.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <list>
#include <map>
#include <random>

namespace poplar::detect {
namespace {

penalty_key key(std::uint32_t n) {
    penalty_key k{};
    k[0] = 1;
    k[1] = static_cast<unsigned char>(n);
    k[2] = static_cast<unsigned char>(n >> 8);
    k[3] = static_cast<unsigned char>(n >> 16);
    k[4] = static_cast<unsigned char>(n >> 24);
    return k;
}

TEST(penalty_table, matches_a_reference_lru_under_random_operations) {
    constexpr std::size_t cap = 50;
    penalty_table t(cap, 12345);
    std::map<penalty_key, float> model;
    std::list<penalty_key> recency;  // front: most recent
    auto touch = [&](const penalty_key& k) {
        recency.remove(k);
        recency.push_front(k);
    };
    std::mt19937 rng(7);
    for (int step = 0; step < 200'000; ++step) {
        const penalty_key k = key(rng() % 120);
        switch (rng() % 3) {
        case 0: {  // get and bump
            if (!model.contains(k) && model.size() == cap) {
                model.erase(recency.back());
                recency.pop_back();
            }
            penalty_entry& e = t.get(k);
            e.score += 1;
            model[k] += 1;
            touch(k);
            break;
        }
        case 1: {
            penalty_entry* e = t.find(k);
            ASSERT_EQ(e != nullptr, model.contains(k)) << step;
            if (e != nullptr) {
                ASSERT_EQ(e->score, model[k]) << step;
                touch(k);
            }
            break;
        }
        default:
            t.erase(k);
            if (model.erase(k) != 0) {
                recency.remove(k);
            }
        }
        ASSERT_EQ(t.size(), model.size()) << step;
    }
    for (const auto& [k, v] : model) {
        penalty_entry* e = t.find(k);
        ASSERT_NE(e, nullptr);
        EXPECT_EQ(e->score, v);
    }
}

TEST(penalty_table, evicts_the_least_recently_used) {
    penalty_table t(3, 1);
    t.get(key(1));
    t.get(key(2));
    t.get(key(3));
    t.find(key(1));  // 2 is now the least recent
    t.get(key(4));
    EXPECT_NE(t.find(key(1)), nullptr);
    EXPECT_EQ(t.find(key(2)), nullptr);
    EXPECT_NE(t.find(key(3)), nullptr);
    EXPECT_NE(t.find(key(4)), nullptr);
    EXPECT_EQ(t.size(), 3u);
}

TEST(penalty_table, a_million_keys_fit_in_100_mib) {
    penalty_table t(1'000'000, 99);
    for (std::uint32_t i = 0; i < 1'200'000; ++i) {
        t.get(key(i)).score = 1;
    }
    EXPECT_EQ(t.size(), 1'000'000u);
    EXPECT_LT(t.memory_bytes(), 100u * 1024 * 1024);
    EXPECT_EQ(t.find(key(0)), nullptr);        // evicted
    EXPECT_NE(t.find(key(1'199'999)), nullptr);  // recent
}

}  // namespace
}  // namespace poplar::detect
