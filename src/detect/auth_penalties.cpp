#include "detect/auth_penalties.h"

#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <stdexcept>

namespace poplar::detect {

namespace {

constexpr unsigned char kind_ipv4 = 1;
constexpr unsigned char kind_ipv6 = 2;
constexpr unsigned char kind_account = 3;

std::uint64_t random_seed(std::array<unsigned char, 32>& secret) {
    std::uint64_t seed = 0;
    if (RAND_bytes(secret.data(), static_cast<int>(secret.size())) != 1 ||
        RAND_bytes(reinterpret_cast<unsigned char*>(&seed), sizeof seed) != 1) {
        throw std::runtime_error("no random bytes for the penalty tables (OpenSSL RAND_bytes failed)");
    }
    return seed;
}

// Failures counted: the decayed score rounded, so that two failures a second ago are two, and a
// single one is forgotten after between one and two half-lives.
long whole(float score) { return std::lround(score); }

}  // namespace

auth_penalties::auth_penalties(std::size_t max_keys) : table_(max_keys, random_seed(secret_)) {}

std::int64_t auth_penalties::ms(clock::time_point t) {
    return std::chrono::duration_cast<std::chrono::milliseconds>(t.time_since_epoch()).count();
}

penalty_key auth_penalties::address_key(const address& a) const {
    penalty_key k{};
    // usage_alerts::address: 16 octets, IPv4 in the first 4, IPv6 already cut to its /64;
    // octet 16 says which.
    k[0] = a[16] != 0 ? kind_ipv6 : kind_ipv4;
    std::memcpy(k.data() + 1, a.data(), a[16] != 0 ? 8 : 4);
    return k;
}

penalty_key auth_penalties::account_key(std::string_view user) const {
    unsigned char mac[EVP_MAX_MD_SIZE];
    unsigned int len = 0;
    HMAC(EVP_sha256(), secret_.data(), static_cast<int>(secret_.size()),
         reinterpret_cast<const unsigned char*>(user.data()), user.size(), mac, &len);
    penalty_key k{};
    k[0] = kind_account;
    std::memcpy(k.data() + 1, mac, k.size() - 1);  // 120 bits: no accidental collision either
    return k;
}

float auth_penalties::decayed(penalty_entry& e, std::int64_t now_ms, const penalty_settings& s) {
    if (e.score > 0 && now_ms > e.updated_ms) {
        const double halvings = static_cast<double>(now_ms - e.updated_ms) / static_cast<double>(s.half_life.count());
        e.score = static_cast<float>(e.score * std::exp2(-halvings));
        if (e.score < 0.01F) {
            e.score = 0;
        }
    }
    e.updated_ms = now_ms;
    return e.score;
}

std::chrono::milliseconds auth_penalties::delay_for(float score, const penalty_settings& s) {
    const long n = whole(score);
    if (n <= 0 || s.base.count() <= 0) {
        return std::chrono::milliseconds(0);
    }
    if (n > 30) {
        return s.max_delay;
    }
    return std::min(s.max_delay, s.base * (1L << (n - 1)));
}

auth_penalties::attempt auth_penalties::begin(const address& from, std::string_view user, bool familiar,
                                              clock::time_point now, const penalty_settings& s) {
    const std::int64_t t = ms(now);
    attempt a;
    std::lock_guard lock(mutex_);
    penalty_entry& addr = table_.get(address_key(from));
    a.address_score = decayed(addr, t, s);
    if (addr.blocked_until_ms > t) {
        a.refused = refusal::address_blocked;
        return a;
    }
    penalty_entry* acc = nullptr;
    if (!user.empty()) {
        const penalty_key k = account_key(user);
        // The owner's familiar network neither pays for nor adds to the account's score.
        // get() may move the entries (and evict the least recently used): `addr` is not used
        // after it, but found again below.
        acc = familiar ? table_.find(k) : &table_.get(k);
    }
    if (acc != nullptr) {
        a.account_score = decayed(*acc, t, s);
        if (!familiar && acc->blocked_until_ms > t) {
            a.refused = refusal::account_blocked;
            return a;
        }
    }
    a.delay = delay_for(a.address_score, s);
    if (!familiar) {
        a.delay = std::max(a.delay, delay_for(a.account_score, s));
    }

    // Counted now: an attempt abandoned during its delay or its verification still costs.
    penalty_entry* addr_again = table_.find(address_key(from));
    if (addr_again != nullptr) {
        addr_again->score += 1;
        if (s.block_after > 0 && whole(addr_again->score) >= static_cast<long>(s.block_after)) {
            addr_again->blocked_until_ms = t + s.block_duration.count();
            a.block_started = true;
        }
    }
    if (acc != nullptr && !familiar) {
        acc->score += 1;
        a.counted_account = true;
        if (s.block_after > 0 && whole(acc->score) >= static_cast<long>(s.block_after) && acc->blocked_until_ms <= t) {
            acc->blocked_until_ms = t + s.block_duration.count();
            a.block_started = true;
        }
    }
    return a;
}

void auth_penalties::undo(const address& from, std::string_view user, const attempt& a, bool clear_address,
                          clock::time_point now, const penalty_settings& s) {
    if (a.refused != refusal::none) {
        return;  // nothing was counted
    }
    const std::int64_t t = ms(now);
    std::lock_guard lock(mutex_);
    const penalty_key ak = address_key(from);
    penalty_entry* held = table_.find(ak);
    // A block stands until it ends, whatever succeeds meanwhile: otherwise an attacker with an
    // account of their own could lift it with a login started before it.
    if (clear_address && held != nullptr && (held->blocked_until_ms <= t || a.block_started)) {
        table_.erase(ak);
    } else if (penalty_entry* e = held) {
        e->score = std::max(0.0F, decayed(*e, t, s) - 1);
        if (a.block_started && whole(e->score) < static_cast<long>(s.block_after)) {
            e->blocked_until_ms = 0;
        }
    }
    if (a.counted_account && !user.empty()) {
        if (penalty_entry* e = table_.find(account_key(user))) {
            e->score = std::max(0.0F, decayed(*e, t, s) - 1);
            if (a.block_started && whole(e->score) < static_cast<long>(s.block_after)) {
                e->blocked_until_ms = 0;
            }
            if (e->score == 0 && e->blocked_until_ms <= t) {
                table_.erase(account_key(user));
            }
        }
    }
}

void auth_penalties::succeeded(const address& from, std::string_view user, const attempt& a, clock::time_point now,
                               const penalty_settings& s) {
    undo(from, user, a, true, now, s);
}

void auth_penalties::not_a_guess(const address& from, std::string_view user, const attempt& a,
                                 clock::time_point now, const penalty_settings& s) {
    undo(from, user, a, false, now, s);
}

std::chrono::milliseconds auth_penalties::address_blocked_for(const address& from, clock::time_point now) {
    const std::int64_t t = ms(now);
    std::lock_guard lock(mutex_);
    const penalty_entry* e = table_.find(address_key(from));
    if (e == nullptr || e->blocked_until_ms <= t) {
        return std::chrono::milliseconds(0);
    }
    return std::chrono::milliseconds(e->blocked_until_ms - t);
}

std::size_t auth_penalties::tracked() const {
    std::lock_guard lock(mutex_);
    return table_.size();
}

std::size_t auth_penalties::memory_bytes() const {
    std::lock_guard lock(mutex_);
    return table_.memory_bytes();
}

}  // namespace poplar::detect
