// Secrets in memory: wiped when no longer needed, compared in constant time.
#pragma once

#include <span>
#include <string>
#include <string_view>

namespace poplar::util {

// Overwrites the bytes of `s` in a way the optimiser may not remove (OPENSSL_cleanse), then clears.
void wipe(std::string& s) noexcept;
void wipe(std::span<char> bytes) noexcept;

// Equality whose running time depends only on the lengths, not on where the inputs differ
// (CRYPTO_memcmp), so comparing a digest leaks nothing to a timing attacker.
bool constant_time_equals(std::string_view a, std::string_view b) noexcept;

// A std::string that wipes itself on destruction; for passwords and stored secrets.
class secret_string {
public:
    secret_string() = default;
    explicit secret_string(std::string s) { take(s); }
    secret_string(const secret_string&) = delete;
    secret_string& operator=(const secret_string&) = delete;
    secret_string(secret_string&& o) noexcept { take(o.s_); }
    secret_string& operator=(secret_string&& o) noexcept {
        if (this != &o) {
            wipe(s_);
            take(o.s_);
        }
        return *this;
    }
    ~secret_string() { wipe(s_); }

    std::string_view view() const noexcept { return s_; }
    bool empty() const noexcept { return s_.empty(); }

private:
    // Takes the bytes of `from` and leaves none of them behind. Moving a std::string that fits
    // its small-string buffer copies the bytes and zeroes only the first one in the source, so a
    // short password would survive in the moved-from object: short strings are copied (they fit
    // our buffer, so nothing allocates) and the source wiped; long ones hand over their heap
    // buffer, which leaves no copy.
    void take(std::string& from) noexcept {
        if (from.size() <= s_.capacity()) {
            s_.assign(from);
            wipe(from);
        } else {
            s_ = std::move(from);
            from.clear();
        }
    }

    std::string s_;
};

}  // namespace poplar::util
