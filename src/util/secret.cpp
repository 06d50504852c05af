// Wiping and constant-time comparison of secrets, via OpenSSL's primitives made for exactly this.
#include "util/secret.h"

#include <openssl/crypto.h>

namespace poplar::util {

void wipe(std::string& s) noexcept {
    if (!s.empty()) {
        OPENSSL_cleanse(s.data(), s.size());
    }
    s.clear();
}

void wipe(std::span<char> bytes) noexcept {
    if (!bytes.empty()) {
        OPENSSL_cleanse(bytes.data(), bytes.size());
    }
}

bool constant_time_equals(std::string_view a, std::string_view b) noexcept {
    if (a.size() != b.size()) {
        return false;
    }
    return a.empty() || CRYPTO_memcmp(a.data(), b.data(), a.size()) == 0;
}

}  // namespace poplar::util
