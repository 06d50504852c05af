// What the auth process serves logins from, assembled from a configuration: the passwd-file,
// the verification cache and the authenticator over them, the mechanisms it offers and the
// penalty settings. Built at the auth process's start and at each reload; `poplar check` builds
// it too, so it refuses exactly what the auth process would.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "auth/authenticator.h"
#include "auth/passdb.h"
#include "auth_wire/protocol.h"
#include "config/config.h"
#include "detect/auth_penalties.h"

namespace poplar::authd {

struct user_database {
    std::shared_ptr<auth::passdb> users;
    std::shared_ptr<auth::authenticator> auth;
    std::vector<auth_wire::mechanism> mechanisms;  // what the hello and reload replies announce
    detect::penalty_settings penalty;
    unsigned familiar_days = 30;
    config::delivery_settings delivery;  // how LMTP recipients resolve (delivery/recipient_lookup.h)
};

struct built_database {
    std::shared_ptr<const user_database> db;  // null when problems is not empty
    std::vector<std::string> problems;         // "auth.passwd_file: users:7: ..."
    std::vector<std::string> warnings;
};

// Loads the passwd-file `cfg` names (nothing else is read). Never throws for a bad file: every
// problem is in the result.
built_database build_user_database(const config::config& cfg);

}  // namespace poplar::authd
