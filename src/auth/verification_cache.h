// Remembers successful password verifications for a while, so a client that polls every few
// minutes does not cost a full password hash (2+ ms of CPU for SHA512-CRYPT, 50+ ms for
// BLF-CRYPT or ARGON2ID) at every login. Dovecot's auth_cache serves the same purpose, and its
// performance guide recommends enabling it.
//
// Why this keeps the security properties of the slow hash:
//   * only successes are remembered: a wrong password always pays the full verification, so
//     online guessing is exactly as slow as without the cache;
//   * an entry binds the user, the stored hash and the password together (HMAC-SHA256 under a
//     random key made at start-up and never stored), so changing or removing the user's password
//     in the passwd-file invalidates it at once, and a memory dump reveals no reusable hash;
//   * entries expire after `ttl`, and the cache holds at most `max_entries` users; when it is full
//     of live entries, the one that would expire first makes room, in constant time (a site with
//     more active users than entries must not pay a scan of the cache per login).
#pragma once

#include <array>
#include <chrono>
#include <cstddef>
#include <deque>
#include <functional>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>

namespace poplar::auth {

struct verification_cache_options {
    std::chrono::milliseconds ttl{std::chrono::hours(1)};  // 0 disables the cache
    std::size_t max_entries = 100'000;
};

class verification_cache {
public:
    using clock = std::chrono::steady_clock;

    explicit verification_cache(verification_cache_options options,
                                std::function<clock::time_point()> now = clock::now);
    ~verification_cache();
    verification_cache(const verification_cache&) = delete;
    verification_cache& operator=(const verification_cache&) = delete;

    // True when `password` was verified for `user` against exactly `stored` within the TTL.
    // Thread-safe; constant-time in the password.
    bool matches(std::string_view user, std::string_view stored, std::string_view password) const;

    // Records a successful verification. Thread-safe.
    void remember(std::string_view user, std::string_view stored, std::string_view password);

    std::size_t size() const;
    // Records kept to drop entries in expiry order (tests check that they stay bounded).
    std::size_t order_records() const;

private:
    using digest = std::array<unsigned char, 32>;
    struct entry {
        digest mac;
        clock::time_point expires;
    };
    digest mac(std::string_view user, std::string_view stored, std::string_view password) const;
    void drop_oldest(bool only_expired, clock::time_point now);

    verification_cache_options options_;
    std::function<clock::time_point()> now_;
    std::array<unsigned char, 32> key_{};
    mutable std::mutex mutex_;
    std::unordered_map<std::string, entry> entries_;
    // Every remember() in order, so in expiry order (one TTL for all). A record whose user has
    // been remembered again since, or dropped, is stale: its expiry no longer matches the entry's.
    // Records leave from the front once expired, so there are at most as many as there were
    // remember() calls in the last TTL.
    struct record {
        std::string user;
        clock::time_point expires;
    };
    std::deque<record> order_;
};

}  // namespace poplar::auth
