// Password login against a passdb: lookup, verification, dummy verification for unknown users.
#include "auth/credential_checker.h"

#include <spdlog/spdlog.h>

#include <cassert>
#include <string>

#include "util/text.h"

namespace poplar::auth {

credential_checker::credential_checker(std::shared_ptr<passdb> db, password_verifier verify,
                                       std::shared_ptr<verification_cache> cache)
    : db_(std::move(db)), verify_(std::move(verify)), cache_(std::move(cache)) {
    assert(db_ != nullptr && verify_ != nullptr);
}

outcome credential_checker::check(std::string_view user, std::string_view password) const {
    outcome out;
    out.result = verdict::failure;
    out.user = std::string(user);
    if (user.empty()) {
        out.log_reason = "empty user name";
        return out;
    }
    // RFC 4616 §2 requires a non-empty passwd; refusing it here, before any lookup, also keeps a
    // "{PLAIN}" line with an empty secret from being a password-less account. Says nothing about
    // whether the user exists, so no dummy verification is needed.
    if (password.empty()) {
        out.log_reason = "empty password";
        return out;
    }
    auto found = db_->lookup(user);
    if (!found) {
        out.result = verdict::temporary_failure;
        out.log_reason = "user database unavailable: " + found.error().message;
        return out;
    }
    if (!found->has_value()) {
        // popa3d's rule: do the same work as for a known user with a wrong password, so response
        // time does not tell an attacker which user names exist. The result is ignored.
        static_cast<void>(verify_(db_->timing_dummy(), password));
        out.log_reason = "unknown user";
        return out;
    }
    const stored_credential& credential = **found;
    if (cache_ && cache_->matches(credential.user, credential.password.view(), password)) {
        out.result = verdict::success;  // verified against this very hash within the cache TTL
        out.user = credential.user;
        out.controls = credential.controls;
        return out;
    }
    const verify_status status = verify_(credential.password.view(), password);
    switch (status) {
    case verify_status::match:
        if (cache_) {
            cache_->remember(credential.user, credential.password.view(), password);
        }
        out.result = verdict::success;
        out.user = credential.user;
        out.controls = credential.controls;
        return out;
    case verify_status::mismatch:
        out.log_reason = std::string(describe(status));
        return out;
    case verify_status::unsupported_scheme:
    case verify_status::malformed_hash:
        break;
    }
    // The stored string failed fast without hashing anything; pay the usual cost so this account
    // does not stand out by timing either.
    static_cast<void>(verify_(db_->timing_dummy(), password));
    if (credential.password.empty()) {
        out.log_reason = "account has no password";
    } else {
        out.log_reason = "cannot verify stored password: " + std::string(describe(status));
        spdlog::warn("user {}: stored password cannot be verified ({}); fix the user database",
                     util::log_escape(credential.user), describe(status));
    }
    return out;
}

std::optional<outcome> credential_checker::check_cached(std::string_view user, std::string_view password) const {
    if (!cache_ || user.empty() || password.empty()) {
        return std::nullopt;
    }
    const auto found = db_->try_lookup_cached(user);
    if (!found || !found->has_value()) {
        return std::nullopt;
    }
    const stored_credential& credential = **found;
    if (!cache_->matches(credential.user, credential.password.view(), password)) {
        return std::nullopt;
    }
    return outcome{verdict::success, credential.user, {}, credential.controls, {}};
}

}  // namespace poplar::auth
