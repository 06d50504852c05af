// APOP (RFC 1939 §7) as a one-step mechanism: MD5 digest of the banner timestamp and the secret.
#include <openssl/evp.h>

#include <algorithm>
#include <array>
#include <cstddef>

#include "auth/password_hash.h"
#include "auth/sasl/mechanisms.h"
#include "util/secret.h"

namespace poplar::auth::sasl {

namespace {

constexpr std::size_t md5_hex_length = 32;
constexpr std::string_view needs_plain = "APOP needs a PLAIN secret";
// Stands in for the secret of users APOP cannot check. No digest matches it by chance that
// matters: success also needs a {PLAIN} account, checked after the comparison.
constexpr std::string_view dummy_secret = "poplar-apop-dummy-secret";

// Lowercase hex MD5 as RFC 1939 §7 prints it; empty if the digest is unavailable (FIPS-only
// OpenSSL configurations have no MD5).
std::string md5_hex(std::string_view data) {
    std::array<unsigned char, EVP_MAX_MD_SIZE> md{};
    unsigned int len = 0;
    if (EVP_Digest(data.data(), data.size(), md.data(), &len, EVP_md5(), nullptr) != 1) {
        return {};
    }
    static constexpr char digits[] = "0123456789abcdef";
    std::string out;
    out.reserve(2 * len);
    for (unsigned int i = 0; i < len; ++i) {
        out += digits[md[i] >> 4];
        out += digits[md[i] & 0x0F];
    }
    return out;
}

// MD5(timestamp + secret); the concatenation holds the secret and is wiped.
std::string apop_digest(std::string_view timestamp, std::string_view secret) {
    std::string input;
    input.reserve(timestamp.size() + secret.size());
    input.append(timestamp).append(secret);
    std::string digest = md5_hex(input);
    util::wipe(input);
    return digest;
}

bool is_hex_digest(std::string_view s) {
    if (s.size() != md5_hex_length) {
        return false;
    }
    for (const char c : s) {
        const bool hex = (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
        if (!hex) {
            return false;
        }
    }
    return true;
}

std::string to_lower_hex(std::string_view s) {
    std::string out(s);
    for (char& c : out) {
        if (c >= 'A' && c <= 'F') {
            c = static_cast<char>(c - 'A' + 'a');
        }
    }
    return out;
}

class apop_mechanism final : public sasl_mechanism {
public:
    apop_mechanism(std::shared_ptr<const credential_checker> checker, std::string timestamp)
        : checker_(std::move(checker)), timestamp_(std::move(timestamp)) {}

    step_result step(std::string_view response) override {
        if (done_) {
            return {true, {}, outcome{verdict::failure, {}, "APOP exchange already finished"}};
        }
        done_ = true;
        return {true, {}, evaluate(response)};
    }

    std::optional<std::string> attempted_user(std::string_view response) const override {
        return std::string(response.substr(0, std::min(response.find(' '), max_field)));
    }

private:
    outcome evaluate(std::string_view response) const {
        // RFC 1939 §7: "APOP name digest"; the name cannot contain a space, the digest is 16
        // octets in hex. The digest is matched case-insensitively (the RFC prints lowercase).
        const auto space = response.find(' ');
        const std::string_view user = response.substr(0, space);
        if (space == std::string_view::npos || user.empty() || user.size() > max_field) {
            return {verdict::failure, std::string(user.substr(0, max_field)),
                    "malformed APOP response: expected name SP digest"};
        }
        const std::string_view digest = response.substr(space + 1);
        if (!is_hex_digest(digest)) {
            return {verdict::failure, std::string(user), "malformed APOP response: digest is not 32 hex digits"};
        }
        if (timestamp_.empty()) {
            return {verdict::failure, std::string(user), "APOP without a banner timestamp"};
        }
        auto found = checker_->db().lookup(user);
        if (!found) {
            return {verdict::temporary_failure, std::string(user),
                    "user database unavailable: " + found.error().message};
        }
        const std::optional<std::string_view> secret =
            found->has_value() ? plain_secret((*found)->password.view()) : std::nullopt;
        // Unknown users, accounts without a {PLAIN} secret and wrong digests do the same work
        // (one MD5 and one comparison) and get the same verdict; only log_reason differs, so APOP
        // tells nobody which user names exist or which accounts keep a cleartext secret.
        const std::string expected = apop_digest(timestamp_, secret ? *secret : std::string_view(dummy_secret));
        if (expected.empty()) {
            return {verdict::temporary_failure, std::string(user), "MD5 unavailable in this OpenSSL configuration"};
        }
        const bool digest_matches = util::constant_time_equals(expected, to_lower_hex(digest));
        if (!found->has_value()) {
            return {verdict::failure, std::string(user), "unknown user"};
        }
        if (!secret) {
            return {verdict::failure, std::string(user), std::string(needs_plain)};
        }
        if (!digest_matches) {
            return {verdict::failure, std::string(user), "APOP digest mismatch"};
        }
        return {verdict::success, (*found)->user, {}, (*found)->controls, {}};
    }

    std::shared_ptr<const credential_checker> checker_;
    std::string timestamp_;
    bool done_ = false;
};

}  // namespace

std::unique_ptr<sasl_mechanism> make_apop(std::shared_ptr<const credential_checker> checker, std::string timestamp) {
    return std::make_unique<apop_mechanism>(std::move(checker), std::move(timestamp));
}

}  // namespace poplar::auth::sasl
