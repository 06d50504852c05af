// The one place a user name and password are checked against a passdb, with popa3d's timing rule.
//
// PLAIN, LOGIN and USER/PASS (repacked as PLAIN by the core) all end here, so an unknown user, a
// wrong password and an unverifiable account all cost one full hash verification.
#pragma once

#include <functional>
#include <memory>
#include <optional>
#include <string_view>

#include "auth/passdb.h"
#include "auth/password_hash.h"
#include "auth/sasl_mechanism.h"
#include "auth/verification_cache.h"

namespace poplar::auth {

// check_password() in production; tests inject a wrapper that counts or records its calls.
using password_verifier = std::function<verify_status(std::string_view stored, std::string_view password)>;

class credential_checker {
public:
    // `cache` (optional) skips the hash for a password verified recently (verification_cache.h).
    explicit credential_checker(std::shared_ptr<passdb> db, password_verifier verify = check_password,
                                std::shared_ptr<verification_cache> cache = nullptr);

    // success with the canonical user name; failure with the attempted name and a log reason
    // ("unknown user", "password mismatch", ...); temporary_failure when the passdb cannot answer.
    // Thread-safe. Blocks for one hash verification: call it on the worker pool.
    outcome check(std::string_view user, std::string_view password) const;

    // check()'s success, without blocking, when the verification cache holds this password for
    // this user's current stored hash and the passdb answers without blocking; nullopt in every
    // other case, failures included (they take check()'s full time on the worker pool, so a
    // wrong password is never answered sooner than by a hash). Saves a cached login its two
    // thread switches to the pool and back.
    std::optional<outcome> check_cached(std::string_view user, std::string_view password) const;

    passdb& db() const noexcept { return *db_; }

private:
    std::shared_ptr<passdb> db_;
    password_verifier verify_;
    std::shared_ptr<verification_cache> cache_;
};

}  // namespace poplar::auth
