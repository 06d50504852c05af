// Tests for the verification cache and its use by credential_checker: only successes are cached,
// a changed stored hash invalidates, entries expire, the cache stays bounded.
#include "auth/verification_cache.h"

#include <gtest/gtest.h>

#include <atomic>
#include <map>

#include "auth/credential_checker.h"

namespace poplar::auth {
namespace {

struct fake_clock {
    std::shared_ptr<verification_cache::clock::time_point> t =
        std::make_shared<verification_cache::clock::time_point>(verification_cache::clock::time_point{});
    verification_cache::clock::time_point operator()() const { return *t; }
    void advance(std::chrono::milliseconds d) const { *t += d; }
};

TEST(VerificationCache, RemembersOnlyTheExactUserHashAndPassword) {
    verification_cache c({std::chrono::hours(1), 10});
    EXPECT_FALSE(c.matches("alice", "{PLAIN}a", "pw"));
    c.remember("alice", "{PLAIN}a", "pw");
    EXPECT_TRUE(c.matches("alice", "{PLAIN}a", "pw"));
    EXPECT_FALSE(c.matches("alice", "{PLAIN}a", "pw2"));   // another password
    EXPECT_FALSE(c.matches("alice", "{PLAIN}a", "p"));     // a prefix
    EXPECT_FALSE(c.matches("alice", "{PLAIN}b", "pw"));    // the admin changed the stored hash
    EXPECT_FALSE(c.matches("bob", "{PLAIN}a", "pw"));      // another user
    EXPECT_FALSE(c.matches("alic", "{PLAIN}a", "epw"));    // fields cannot slide into each other
}

TEST(VerificationCache, EntriesExpire) {
    fake_clock clock;
    verification_cache c({std::chrono::seconds(60), 10}, clock);
    c.remember("alice", "h", "pw");
    clock.advance(std::chrono::seconds(59));
    EXPECT_TRUE(c.matches("alice", "h", "pw"));
    clock.advance(std::chrono::seconds(1));
    EXPECT_FALSE(c.matches("alice", "h", "pw"));
}

TEST(VerificationCache, ZeroTtlDisables) {
    verification_cache c({std::chrono::milliseconds(0), 10});
    c.remember("alice", "h", "pw");
    EXPECT_FALSE(c.matches("alice", "h", "pw"));
    EXPECT_EQ(c.size(), 0u);
}

TEST(VerificationCache, StaysBounded) {
    verification_cache c({std::chrono::hours(1), 3});
    for (int i = 0; i < 100; ++i) {
        c.remember("user" + std::to_string(i), "h", "pw");
        EXPECT_LE(c.size(), 3u);
    }
    EXPECT_TRUE(c.matches("user99", "h", "pw"));  // the newest entry is always kept
}

TEST(VerificationCache, FullOfLiveEntriesDropsTheOneExpiringFirst) {
    fake_clock clock;
    verification_cache c({std::chrono::hours(1), 3}, clock);
    for (const char* user : {"u0", "u1", "u2"}) {
        c.remember(user, "h", "pw");
        clock.advance(std::chrono::seconds(1));
    }
    c.remember("u3", "h", "pw");  // full: u0 is the oldest
    EXPECT_FALSE(c.matches("u0", "h", "pw"));
    EXPECT_TRUE(c.matches("u1", "h", "pw"));
    c.remember("u1", "h", "pw");  // u1 verified again: now the newest, its old record stale
    clock.advance(std::chrono::seconds(1));
    c.remember("u4", "h", "pw");  // full: u2 is now the oldest, not u1
    EXPECT_TRUE(c.matches("u1", "h", "pw"));
    EXPECT_FALSE(c.matches("u2", "h", "pw"));
    EXPECT_TRUE(c.matches("u3", "h", "pw"));
    EXPECT_TRUE(c.matches("u4", "h", "pw"));
    EXPECT_EQ(c.size(), 3u);
}

TEST(VerificationCache, ExpiredEntriesLeaveBeforeLiveOnes) {
    fake_clock clock;
    verification_cache c({std::chrono::seconds(60), 3}, clock);
    c.remember("a", "h", "pw");
    clock.advance(std::chrono::seconds(30));
    c.remember("b", "h", "pw");
    clock.advance(std::chrono::seconds(20));
    c.remember("c", "h", "pw");
    clock.advance(std::chrono::seconds(20));  // t = 70: a expired at 60, b and c live
    c.remember("d", "h", "pw");
    EXPECT_EQ(c.size(), 3u);
    EXPECT_TRUE(c.matches("b", "h", "pw"));
    EXPECT_TRUE(c.matches("c", "h", "pw"));
    EXPECT_TRUE(c.matches("d", "h", "pw"));
}

TEST(VerificationCache, BookkeepingStaysBoundedOverManyLogins) {
    // Users verified again and again over many TTLs: the expiry-order records of the last TTL
    // stay, the rest go (they would otherwise grow with every login forever).
    fake_clock clock;
    verification_cache c({std::chrono::seconds(60), 1000}, clock);
    for (int i = 0; i < 20000; ++i) {
        c.remember("user" + std::to_string(i % 50), "h", "pw");
        clock.advance(std::chrono::milliseconds(100));  // 600 remember() calls per TTL
    }
    EXPECT_EQ(c.size(), 50u);
    EXPECT_LE(c.order_records(), 601u);
    EXPECT_TRUE(c.matches("user49", "h", "pw"));
}

// A one-user passdb whose stored hash the test can change, like an admin editing the file.
class one_user_db final : public passdb {
public:
    result<std::optional<stored_credential>, temp_error> lookup(std::string_view user) override {
        if (user != "alice") {
            return std::optional<stored_credential>{};
        }
        return std::optional<stored_credential>(stored_credential{"alice", util::secret_string(stored), nullptr});
    }
    std::optional<std::optional<stored_credential>> try_lookup_cached(std::string_view user) override {
        if (!answers_without_blocking) {
            return std::nullopt;
        }
        auto found = lookup(user);
        return std::move(found.value());
    }
    std::string timing_dummy() const override { return "{PLAIN}never"; }
    std::string stored = "{PLAIN}secret";
    bool answers_without_blocking = true;
};

// A credential_checker with the verification cache over one_user_db, counting full verifications.
struct cached_checker {
    std::shared_ptr<one_user_db> db = std::make_shared<one_user_db>();
    std::shared_ptr<std::atomic<int>> calls = std::make_shared<std::atomic<int>>(0);
    credential_checker checker{db,
                               [c = calls](std::string_view stored, std::string_view pw) {
                                   ++*c;
                                   return check_password(stored, pw);
                               },
                               std::make_shared<verification_cache>(verification_cache_options{})};
};

TEST(CredentialCheckerWithCache, SuccessSkipsTheHashNextTimeButFailuresNeverDo) {
    cached_checker t;
    auto& [db, calls, checker] = t;

    EXPECT_EQ(checker.check("alice", "secret").result, verdict::success);
    EXPECT_EQ(calls->load(), 1);
    EXPECT_EQ(checker.check("alice", "secret").result, verdict::success);
    EXPECT_EQ(calls->load(), 1);  // served from the cache

    // Every wrong guess still pays a full verification: the cache is no guessing shortcut.
    for (int i = 0; i < 3; ++i) {
        EXPECT_EQ(checker.check("alice", "guess").result, verdict::failure);
    }
    EXPECT_EQ(calls->load(), 4);

    // The admin changes the password: the old one stops working at once.
    db->stored = "{PLAIN}new-secret";
    EXPECT_EQ(checker.check("alice", "secret").result, verdict::failure);
    EXPECT_EQ(calls->load(), 5);
    EXPECT_EQ(checker.check("alice", "new-secret").result, verdict::success);
    EXPECT_EQ(calls->load(), 6);
}

TEST(CredentialCheckerWithCache, CheckCachedAnswersOnlyCachedSuccesses) {
    cached_checker t;
    auto& [db, calls, checker] = t;

    EXPECT_FALSE(checker.check_cached("alice", "secret"));  // never verified: the pool's job
    ASSERT_EQ(checker.check("alice", "secret").result, verdict::success);
    const auto hit = checker.check_cached("alice", "secret");
    ASSERT_TRUE(hit);
    EXPECT_EQ(hit->result, verdict::success);
    EXPECT_EQ(hit->user, "alice");

    // Never a failure, so never an answer sooner than a hash: wrong passwords, unknown users and
    // empty fields all go to check().
    EXPECT_FALSE(checker.check_cached("alice", "guess"));
    EXPECT_FALSE(checker.check_cached("mallory", "secret"));
    EXPECT_FALSE(checker.check_cached("", "secret"));
    EXPECT_FALSE(checker.check_cached("alice", ""));
    EXPECT_EQ(calls->load(), 1);  // check_cached() never hashes

    // A passdb that would have to block (a file to re-read) sends it to the pool too.
    db->answers_without_blocking = false;
    EXPECT_FALSE(checker.check_cached("alice", "secret"));
    db->answers_without_blocking = true;

    // A changed password: the cached entry no longer matches the stored hash.
    db->stored = "{PLAIN}new-secret";
    EXPECT_FALSE(checker.check_cached("alice", "secret"));
    EXPECT_FALSE(checker.check_cached("alice", "new-secret"));
}

TEST(CredentialCheckerWithCache, CheckCachedIsOffWithoutACache) {
    auto db = std::make_shared<one_user_db>();
    credential_checker checker(db);
    ASSERT_EQ(checker.check("alice", "secret").result, verdict::success);
    EXPECT_FALSE(checker.check_cached("alice", "secret"));
}

}  // namespace
}  // namespace poplar::auth
