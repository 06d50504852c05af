// The composition root shared by `poplar serve`, `poplar check` and reload.
#include "cli/runtime.h"

#include <fmt/format.h>
#include <grp.h>
#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/spdlog.h>
#include <sys/stat.h>
#include <unistd.h>

#include <stdexcept>

#include "authd/user_database.h"
#include "net/tls_context.h"
#include "storage/maildir/maildir_delivery.h"
#include "storage/maildir/maildir_store.h"

namespace poplar::cli {

namespace {

bool process_in_group(gid_t gid) {
    if (::getegid() == gid) {
        return true;
    }
    const int n = ::getgroups(0, nullptr);
    if (n <= 0) {
        return false;
    }
    std::vector<gid_t> groups(static_cast<std::size_t>(n));
    const int got = ::getgroups(n, groups.data());
    for (int i = 0; i < got; ++i) {
        if (groups[static_cast<std::size_t>(i)] == gid) {
            return true;
        }
    }
    return false;
}

std::string group_name(gid_t gid) {
    group g{};
    group* found = nullptr;
    std::vector<char> buf(4096);
    if (::getgrgid_r(gid, &g, buf.data(), buf.size(), &found) == 0 && found != nullptr) {
        return found->gr_name;
    }
    return std::to_string(gid);
}

// The private key must be readable by the service account only. Group-readable is the
// documented set-up (root:vmail 0640, docs/operations.md) as long as the group is one poplar
// runs in; a group poplar does not need gives the key to its other members for nothing.
void key_permission_warnings(const std::filesystem::path& key, std::vector<std::string>& out) {
    struct stat st {};
    if (::stat(key.c_str(), &st) != 0) {
        return;  // unreadable: already a problem
    }
    const unsigned mode = st.st_mode & 07777;
    if ((st.st_mode & (S_IROTH | S_IWOTH)) != 0) {
        out.push_back(fmt::format("tls.private_key: {} is readable or writable by every local user (mode {:04o}); "
                                  "chmod o= it",
                                  key.string(), mode));
    } else if ((st.st_mode & S_IRGRP) != 0 && ::geteuid() != 0 && !process_in_group(st.st_gid)) {
        out.push_back(fmt::format("tls.private_key: {} is readable by group \"{}\" (mode {:04o}), which poplar "
                                  "does not run in; chgrp it to the service group or chmod g= it",
                                  key.string(), group_name(st.st_gid), mode));
    }
}

std::vector<std::string> policy_warnings(const config::config& cfg) {
    std::vector<std::string> out;
    if (cfg.policy.plaintext == core::plaintext_policy::always) {
        out.emplace_back("auth.plaintext: \"always\" lets USER/PASS, PLAIN and LOGIN send passwords unencrypted "
                         "from any network; use \"loopback\" or \"tls-only\" unless every network is trusted");
    }
    if (cfg.server.state_directory.empty() && cfg.auth.familiar_days > 0) {
        out.emplace_back("server.state_directory: not set, so the addresses each account logged in from "
                         "(auth.familiar_days) are forgotten at every restart and owners are throttled like "
                         "strangers while their account is attacked; set it, e.g. \"/var/lib/poplar\"");
    }
    if (cfg.policy.apop) {
        out.emplace_back("auth.apop: APOP is enabled: it needs {PLAIN} secrets in the passwd-file and its MD5 "
                         "digest is open to offline guessing; set apop = false unless a client needs it");
        if (cfg.policy.apop_in_clear) {
            out.emplace_back("auth.apop_in_clear: APOP is accepted on unencrypted connections from any network, "
                             "where a recorded digest can be attacked offline");
        }
    }
    return out;
}

std::string root_warning(purpose p) {
    if (p == purpose::check) {
        return "running as root (effective uid 0): file access is checked as root; serve needs server.user "
               "(or server.allow_root) to start as root, and rereads files as that user at a reload "
               "(docs/operations.md)";
    }
    return "running as root (effective uid 0) with server.allow_root: every session runs as root; set "
           "server.user to switch to the mail user after binding the ports (docs/operations.md)";
}

}  // namespace

loaded load_and_assemble(const std::filesystem::path& config_file, purpose p, const std::string* text) {
    // Throws only if unreadable at all.
    config::loaded_config read =
        text == nullptr ? config::read_file(config_file)
                        : config::read_string(*text, std::filesystem::absolute(config_file).lexically_normal().parent_path(),
                                              config_file.string());
    std::vector<std::string> problems = std::move(read.problems);
    loaded out;
    out.cfg = std::move(read.cfg);
    const config::config& cfg = out.cfg;
    std::vector<std::string>& warnings = out.warnings;

    // Started as root with server.user, serve switches to it once the ports are bound: nothing to
    // warn about then (check is still told that it looks at the files as root).
    if (::geteuid() == 0 && (cfg.server.user.empty() || p == purpose::check)) {
        warnings.push_back(root_warning(p));
    }
    // Each later check runs only on what the loader found valid (empty otherwise), so a bad key
    // gives one problem, not a cascade.
    // The passwd-file is the auth process's to read (authd/): serve never opens it here. Its
    // auth process reports the same problems when it starts, and refuses a reload with them.
    if (p == purpose::check || p == purpose::preflight) {
        authd::built_database db = authd::build_user_database(cfg);
        problems.insert(problems.end(), db.problems.begin(), db.problems.end());
        warnings.insert(warnings.end(), db.warnings.begin(), db.warnings.end());
    }
    if (!cfg.storage.maildir.empty()) {
        try {
            out.rt.store = std::make_unique<storage::maildir::maildir_store>(cfg.storage.maildir);
            out.rt.delivery = std::make_unique<storage::maildir::maildir_delivery>(
                cfg.storage.maildir, storage::maildir::delivery_options{cfg.server.hostname, {}});
        } catch (const std::invalid_argument& e) {
            problems.push_back(fmt::format("storage.maildir: {}", e.what()));
        }
    }
    if (cfg.tls) {
        key_permission_warnings(cfg.tls->private_key, warnings);
        try {
            out.tls = net::make_server_tls_context(*cfg.tls);
        } catch (const config::config_error& e) {
            problems.insert(problems.end(), e.problems().begin(), e.problems().end());
        }
    }
    for (std::string& w : policy_warnings(cfg)) {
        warnings.push_back(std::move(w));
    }
    if (!problems.empty()) {
        throw config::config_error(std::move(problems), std::move(warnings));
    }
    return out;
}

void setup_logging(const std::string& level) {
    // stderr, one event per line: journald and fail2ban read it as is (docs/operations.md).
    auto logger = spdlog::stderr_logger_mt("poplar");
    logger->set_pattern("%Y-%m-%dT%H:%M:%S.%e%z poplar[%P] %l: %v");
    logger->set_level(spdlog::level::from_str(level));
    logger->flush_on(spdlog::level::trace);
    spdlog::set_default_logger(logger);
}

void start_logging(const loaded& l) {
    setup_logging(l.cfg.log_level);
    log_warnings(l.warnings);
}

void log_warnings(const std::vector<std::string>& warnings) {
    for (const std::string& w : warnings) {
        spdlog::warn("{}", w);
    }
}

}  // namespace poplar::cli
