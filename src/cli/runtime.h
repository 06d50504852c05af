// The composition root: turns a config file into the running pieces (user database,
// authenticator, mail store, TLS context) and the warnings an admin should read. `serve`,
// `check` and reload all call load_and_assemble(), so `check` catches exactly the problems
// `serve` would refuse to start on, and prints the warnings `serve` logs.
#pragma once

#include <asio/ssl/context.hpp>

#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "config/config.h"
#include "storage/delivery.h"
#include "storage/maildrop.h"

namespace poplar::cli {

// What the network process runs on. The user database is not here: the auth process builds it
// (authd/user_database.h), and `check` builds it to check it.
struct runtime {
    std::unique_ptr<storage::mail_store> store;
    std::unique_ptr<storage::mail_delivery> delivery;  // the LMTP listener's way into the store
};

// Who is asking: the wording of the warnings differs ("serve would run as root"), and `check`
// and serve's preflight (cmd_serve.cpp) also load the passwd-file, which serve itself leaves to
// the auth process.
enum class purpose { serve, check, preflight };

struct loaded {
    config::config cfg;
    runtime rt;
    std::shared_ptr<asio::ssl::context> tls;  // null without [tls]
    // "key: what to do about it", without the "poplar: warning: " that `check` prints.
    std::vector<std::string> warnings;
};

// Reads the config file, then (for `check` only) loads the passwd-file, checks the Maildir template and builds
// the TLS context (net::make_server_tls_context, so a key that does not match the certificate
// is caught), collecting every problem on the way. Throws config::config_error carrying all of
// them (problems()) and the warnings found so far (warnings()); TOML syntax errors and an
// unreadable config file stop at once, since nothing after them can be checked.
// `text`: the file's contents as already read (a reload's, from the auth process); null: read it.
loaded load_and_assemble(const std::filesystem::path& config_file, purpose p = purpose::serve,
                         const std::string* text = nullptr);

// Applies log.level and poplar's log line format (docs/operations.md: "Logs").
void setup_logging(const std::string& level);

// setup_logging(cfg.log_level), then every warning as a log line: `serve` at start.
void start_logging(const loaded& l);
// Each warning as a warning log line (at start and after a reload).
void log_warnings(const std::vector<std::string>& warnings);

}  // namespace poplar::cli
