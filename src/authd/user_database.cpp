// Assembling the auth process's user database from a configuration (user_database.h).
#include "authd/user_database.h"

#include "auth/passdb_authenticator.h"
#include "auth/passwd_file.h"
#include "auth/verification_cache.h"

namespace poplar::authd {

built_database build_user_database(const config::config& cfg) {
    built_database out;
    if (cfg.auth.passwd_file.empty()) {
        return out;  // the loader already said auth.passwd_file is required
    }
    auto users = auth::passwd_file::load(cfg.auth.passwd_file);
    if (!users) {
        for (const std::string& e : users.error()) {
            out.problems.push_back("auth.passwd_file: " + e);
        }
        return out;
    }
    for (const std::string& w : users->warnings()) {
        out.warnings.push_back("auth.passwd_file: " + w);
    }
    auto db = std::make_shared<user_database>();
    db->users = std::make_shared<auth::passwd_file>(std::move(users.value()));
    std::shared_ptr<auth::verification_cache> cache;
    if (cfg.auth.cache_ttl.count() > 0 && cfg.auth.cache_size > 0) {
        cache = std::make_shared<auth::verification_cache>(
            auth::verification_cache_options{cfg.auth.cache_ttl, cfg.auth.cache_size});
    }
    db->auth = std::make_shared<auth::passdb_authenticator>(db->users, auth::check_password, std::move(cache));
    for (const auth::mechanism_info& m : db->auth->mechanisms()) {
        auto exchange = db->auth->start(m.name);
        db->mechanisms.push_back({m.name, m.sends_plaintext, exchange ? exchange->initial_challenge() : std::string()});
    }
    db->penalty = detect::penalty_settings{cfg.policy.auth_failure_delay, cfg.auth.penalty_max_delay,
                                           cfg.auth.penalty_half_life, cfg.auth.block_after, cfg.auth.block_duration};
    db->familiar_days = cfg.auth.familiar_days;
    db->delivery = cfg.delivery;
    out.db = std::move(db);
    return out;
}

}  // namespace poplar::authd
