// The user database interface: user name in, stored "{SCHEME}data" credential out. passwd-file now,
// SQL or LDAP later; the SASL mechanisms only ever see this.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "auth/account_controls.h"
#include "util/result.h"
#include "util/secret.h"

namespace poplar::auth {

struct stored_credential {
    std::string user;             // canonical name as the database spells it; opens the maildrop
    util::secret_string password; // "{SCHEME}data" (no prefix means CRYPT), see password_hash.h
    // From the passwd-file's extra fields (account_controls.h); null when the account has none.
    std::shared_ptr<const account_controls> controls;
};

// The database could not answer (file unreadable or unparsable, server down). Not the user's
// fault: the client is told -ERR [SYS/TEMP] (RFC 3206 §4) and may retry.
struct temp_error {
    std::string message;  // for the admin's log; never sent to the client
};

class passdb {
public:
    virtual ~passdb() = default;

    // The credential for `user` (exact, case-sensitive match, like Dovecot's default), nullopt
    // when there is no such user. Thread-safe: called from every worker at once. May block.
    virtual result<std::optional<stored_credential>, temp_error> lookup(std::string_view user) = 0;
    // The same answer as lookup() when it can be had without blocking (no file to re-read, no
    // server to ask, no lock to wait for), so a login whose password the verification cache holds
    // can finish on the event loop; nullopt otherwise: call lookup() on the worker pool. Errors
    // are left to lookup(). The default never tries.
    virtual std::optional<std::optional<stored_credential>> try_lookup_cached(std::string_view user) {
        (void)user;
        return std::nullopt;
    }

    // A stored string, made from a random password, that costs what a typical account here costs
    // to verify (same scheme and parameters as the most common one). Unknown users are verified
    // against it and then refused, so they take as long as a wrong password (popa3d's rule).
    // Thread-safe.
    virtual std::string timing_dummy() const = 0;
};

}  // namespace poplar::auth
