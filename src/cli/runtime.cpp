// The composition root shared by `poplar serve` and `poplar check`.
#include "cli/runtime.h"

#include <fmt/format.h>
#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/spdlog.h>

#include <stdexcept>

#include "auth/passdb_authenticator.h"
#include "auth/passwd_file.h"
#include "storage/maildir/maildir_store.h"

namespace poplar::cli {

runtime assemble(const config::config& cfg) {
    runtime rt;
    auto users = auth::passwd_file::load(cfg.auth.passwd_file);
    if (!users) {
        throw config::config_error("auth.passwd_file: " + users.error());
    }
    rt.users = std::make_shared<auth::passwd_file>(std::move(users.value()));
    std::shared_ptr<auth::verification_cache> cache;
    if (cfg.auth.cache_ttl.count() > 0 && cfg.auth.cache_size > 0) {
        cache = std::make_shared<auth::verification_cache>(
            auth::verification_cache_options{cfg.auth.cache_ttl, cfg.auth.cache_size});
    }
    rt.auth = std::make_unique<auth::passdb_authenticator>(rt.users, auth::check_password, std::move(cache));
    try {
        rt.store = std::make_unique<storage::maildir::maildir_store>(cfg.storage.maildir);
    } catch (const std::invalid_argument& e) {
        throw config::config_error(fmt::format("storage.maildir: {}", e.what()));
    }
    return rt;
}

void setup_logging(const std::string& level) {
    // stderr, one event per line: journald and fail2ban read it as is (docs/operations.md).
    auto logger = spdlog::stderr_logger_mt("poplar");
    logger->set_pattern("%Y-%m-%dT%H:%M:%S.%e%z poplar[%P] %l: %v");
    logger->set_level(spdlog::level::from_str(level));
    logger->flush_on(spdlog::level::trace);
    spdlog::set_default_logger(logger);
}

}  // namespace poplar::cli
