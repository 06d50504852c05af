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
    if (entries_.size() >= options_.max_entries && entries_.find(std::string(user)) == entries_.end()) {
        // Full: drop what has expired; if that frees nothing, drop an arbitrary entry. Its user
        // simply pays one full verification at the next login.
        std::erase_if(entries_, [&](const auto& kv) { return kv.second.expires <= now; });
        if (entries_.size() >= options_.max_entries) {
            entries_.erase(entries_.begin());
        }
    }
    entries_[std::string(user)] = entry{d, now + options_.ttl};
}

std::size_t verification_cache::size() const {
    std::lock_guard lock(mutex_);
    return entries_.size();
}

}  // namespace poplar::auth
