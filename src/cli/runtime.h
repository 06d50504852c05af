// The composition root: turns a validated config into the running pieces (user database,
// authenticator, mail store). `serve` and `check` both call it, so `check` catches exactly the
// problems `serve` would refuse to start on.
#pragma once

#include <memory>

#include "auth/authenticator.h"
#include "auth/passdb.h"
#include "config/config.h"
#include "storage/maildrop.h"

namespace poplar::cli {

struct runtime {
    std::shared_ptr<auth::passdb> users;
    std::unique_ptr<auth::authenticator> auth;
    std::unique_ptr<storage::mail_store> store;
};

// Throws config::config_error naming the key whose value is the problem.
runtime assemble(const config::config& cfg);

// Applies log.level and poplar's log line format (docs/operations.md: "Logs").
void setup_logging(const std::string& level);

}  // namespace poplar::cli
