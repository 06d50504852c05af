// A bounded, expiring memory of successful password verifications (see the header for why).
#include "auth/verification_cache.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#include <stdexcept>

namespace poplar::auth {

verification_cache::verification_cache(verification_cache_options options, std::function<clock::time_point()> now)
    : options_(options), now_(std::move(now)) {
    if (RAND_bytes(key_.data(), static_cast<int>(key_.size())) != 1) {
        throw std::runtime_error("no randomness for the verification cache key");
    }
}

verification_cache::~verification_cache() { OPENSSL_cleanse(key_.data(), key_.size()); }

verification_cache::digest verification_cache::mac(std::string_view user, std::string_view stored,
                                                   std::string_view password) const {
    // Length-prefixed fields, so ("ab", "c") and ("a", "bc") never collide.
    std::string msg;
    msg.reserve(24 + user.size() + stored.size() + password.size());
    for (std::string_view field : {user, stored, password}) {
        const std::uint64_t n = field.size();
        msg.append(reinterpret_cast<const char*>(&n), sizeof n);
        msg.append(field);
    }
    digest out{};
    std::size_t out_len = 0;
    EVP_Q_mac(nullptr, "HMAC", nullptr, "SHA256", nullptr, key_.data(), key_.size(),
              reinterpret_cast<const unsigned char*>(msg.data()), msg.size(), out.data(), out.size(), &out_len);
    OPENSSL_cleanse(msg.data(), msg.size());
    return out;
}

bool verification_cache::matches(std::string_view user, std::string_view stored, std::string_view password) const {
    if (options_.ttl.count() <= 0) {
        return false;
    }
    const digest d = mac(user, stored, password);
    std::lock_guard lock(mutex_);
    const auto it = entries_.find(std::string(user));
    if (it == entries_.end() || it->second.expires <= now_()) {
        return false;
    }
    return CRYPTO_memcmp(it->second.mac.data(), d.data(), d.size()) == 0;
}

void verification_cache::remember(std::string_view user, std::string_view stored, std::string_view password) {
    if (options_.ttl.count() <= 0 || options_.max_entries == 0) {
        return;
    }
    const digest d = mac(user, stored, password);
    const clock::time_point now = now_();
    std::lock_guard lock(mutex_);
    drop_oldest(true, now);
    std::string key(user);
    if (entries_.size() >= options_.max_entries && !entries_.contains(key)) {
        // Full of live entries: the one closest to expiring goes. Its user pays one full
        // verification at the next login.
        drop_oldest(false, now);
    }
    const clock::time_point expires = now + options_.ttl;
    entries_.insert_or_assign(key, entry{d, expires});
    order_.push_back(record{std::move(key), expires});
}

// Pops records from the front: stale ones always; live ones while expired (only_expired), or the
// first live one whatever its expiry (to make room). Amortised constant: each record is pushed
// and popped once.
void verification_cache::drop_oldest(bool only_expired, clock::time_point now) {
    while (!order_.empty()) {
        const record& r = order_.front();
        const auto it = entries_.find(r.user);
        const bool live = it != entries_.end() && it->second.expires == r.expires;
        if (live && only_expired && r.expires > now) {
            return;
        }
        if (live) {
            entries_.erase(it);
        }
        order_.pop_front();
        if (live && !only_expired) {
            return;
        }
    }
}

std::size_t verification_cache::size() const {
    std::lock_guard lock(mutex_);
    return entries_.size();
}

std::size_t verification_cache::order_records() const {
    std::lock_guard lock(mutex_);
    return order_.size();
}

}  // namespace poplar::auth
