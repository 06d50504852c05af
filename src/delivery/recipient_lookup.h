// From a recipient address to the user whose maildrop gets the message, with that user's quota.
//
// One rule for `poplar deliver` and LMTP RCPT (which the auth process answers, since only it
// reads the user database, docs/security.md "Processes"): the address as given, then with its
// domain in lower case (RFC 5321 §2.4: domains are case-insensitive; local parts are not), then
// each of those without a "+detail" when delivery.recipient_delimiter is set.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "auth/passdb.h"
#include "config/config.h"
#include "storage/delivery.h"
#include "util/result.h"

namespace poplar::delivery {

struct recipient {
    std::string user;     // canonical, as the user database spells it
    storage::quota quota;  // the account's quota_rule, else the config's default
};

// The user names to try for `address`, in order, without repeats.
std::vector<std::string> candidate_users(std::string_view address, std::string_view delimiter);

// The quota for an account with these controls (null: none) under `settings`.
storage::quota quota_for(const auth::account_controls* controls, const config::delivery_settings& settings);

// nullopt: no such user. The error: the database could not answer (a temporary failure).
result<std::optional<recipient>, std::string> find_recipient(auth::passdb& db, std::string_view address,
                                                             const config::delivery_settings& settings);

// The same answer when every lookup it needs can be had without blocking (passdb's
// try_lookup_cached), so the auth process answers a RCPT on its event loop; nullopt otherwise.
std::optional<std::optional<recipient>> find_recipient_cached(auth::passdb& db, std::string_view address,
                                                              const config::delivery_settings& settings);

}  // namespace poplar::delivery
