// The one config loader: TOML (toml++) into config::config, strictly validated.
//
// Strict on purpose: an unknown key is an error, not a warning, because a mistyped security
// setting ("plaintxt = ...") silently ignored is worse than a server that refuses to start.
#include "config/config.h"

#include <fmt/format.h>
#include <arpa/inet.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <cstdio>
#include <cstring>
#include <set>
#include <toml++/toml.h>

namespace poplar::config {

namespace {

class reader {
public:
    reader(std::string source, std::filesystem::path base_dir)
        : source_(std::move(source)), base_(std::move(base_dir)) {}

    [[noreturn]] void fail(std::string_view key, std::string_view what) const {
        throw config_error(fmt::format("{}: {}: {}", source_, key, what));
    }

    // Rejects keys poplar does not know, so typos are caught.
    void only_keys(const toml::table& t, std::string_view prefix, std::initializer_list<std::string_view> known) {
        for (const auto& [k, v] : t) {
            const std::string_view key = k.str();
            bool ok = false;
            for (std::string_view kn : known) {
                ok = ok || kn == key;
            }
            if (!ok) {
                fail(prefix.empty() ? std::string(key) : fmt::format("{}.{}", prefix, key), "unknown key");
            }
        }
    }

    const toml::table* table(const toml::table& root, std::string_view name) {
        const toml::node* n = root.get(name);
        if (n == nullptr) {
            return nullptr;
        }
        if (!n->is_table()) {
            fail(name, "expected a table");
        }
        return n->as_table();
    }

    std::optional<std::string> string(const toml::table* t, std::string_view section, std::string_view key) {
        if (t == nullptr) {
            return std::nullopt;
        }
        const toml::node* n = t->get(key);
        if (n == nullptr) {
            return std::nullopt;
        }
        if (!n->is_string()) {
            fail(full(section, key), "expected a string");
        }
        return std::string(n->as_string()->get());
    }

    std::optional<bool> boolean(const toml::table* t, std::string_view section, std::string_view key) {
        if (t == nullptr || t->get(key) == nullptr) {
            return std::nullopt;
        }
        const toml::node* n = t->get(key);
        if (!n->is_boolean()) {
            fail(full(section, key), "expected true or false");
        }
        return n->as_boolean()->get();
    }

    std::optional<std::int64_t> integer(const toml::table* t, std::string_view section, std::string_view key,
                                        std::int64_t min, std::int64_t max) {
        if (t == nullptr || t->get(key) == nullptr) {
            return std::nullopt;
        }
        const toml::node* n = t->get(key);
        if (!n->is_integer()) {
            fail(full(section, key), "expected an integer");
        }
        const std::int64_t v = n->as_integer()->get();
        if (v < min || v > max) {
            fail(full(section, key), fmt::format("must be between {} and {}", min, max));
        }
        return v;
    }

    std::optional<std::chrono::milliseconds> duration(const toml::table* t, std::string_view section,
                                                      std::string_view key, std::chrono::milliseconds min,
                                                      std::chrono::milliseconds max) {
        auto s = string(t, section, key);
        if (!s) {
            return std::nullopt;
        }
        auto d = parse_duration(*s);
        if (!d) {
            fail(full(section, key), fmt::format("\"{}\" is not a duration like \"500ms\", \"30s\", \"10m\"", *s));
        }
        if (*d < min || *d > max) {
            fail(full(section, key), fmt::format("must be between {}ms and {}ms", min.count(), max.count()));
        }
        return d;
    }

    std::vector<endpoint> endpoints(const toml::table* t, std::string_view key) {
        std::vector<endpoint> out;
        if (t == nullptr || t->get(key) == nullptr) {
            return out;
        }
        const toml::array* arr = t->get(key)->as_array();
        if (arr == nullptr) {
            fail(full("listen", key), "expected an array of \"host:port\" strings");
        }
        for (const toml::node& n : *arr) {
            if (!n.is_string()) {
                fail(full("listen", key), "expected an array of \"host:port\" strings");
            }
            const std::string text(n.as_string()->get());
            auto ep = parse_endpoint(text);
            if (!ep) {
                fail(full("listen", key),
                     fmt::format("\"{}\" is not an address like \"127.0.0.1:110\" or \"[::1]:110\"", text));
            }
            out.push_back(*ep);
        }
        return out;
    }

    std::filesystem::path path(std::string_view value) const {
        std::filesystem::path p(value);
        return (p.is_absolute() ? p : base_ / p).lexically_normal();
    }

    control_settings control(const toml::table& root) {
        control_settings out;
        const toml::table* t = table(root, "control");
        if (t == nullptr) {
            return out;
        }
        only_keys(*t, "control", {"socket", "mode", "group"});
        if (auto s = string(t, "control", "socket")) {
            out.socket = s->empty() ? std::filesystem::path() : path(*s);
            // sun_path holds 108 bytes with its NUL (unix(7)); a longer path cannot be bound.
            if (out.socket.native().size() > 107) {
                fail("control.socket", fmt::format("\"{}\" is longer than the 107 bytes a Unix socket path may have",
                                                   out.socket.string()));
            }
        }
        if (auto m = string(t, "control", "mode")) {
            unsigned v = 0;
            auto [p, ec] = std::from_chars(m->data(), m->data() + m->size(), v, 8);
            if (m->empty() || ec != std::errc{} || p != m->data() + m->size() || v > 0777) {
                fail("control.mode", fmt::format("\"{}\" is not an octal file mode like \"0660\"", *m));
            }
            out.mode = v;
        }
        out.group = string(t, "control", "group").value_or("");
        return out;
    }

    void readable_file(const std::filesystem::path& p, std::string_view key) const {
        if (::access(p.c_str(), R_OK) != 0) {
            fail(key, fmt::format("cannot read \"{}\": {}", p.string(), std::strerror(errno)));
        }
    }

private:
    static std::string full(std::string_view section, std::string_view key) {
        return fmt::format("{}.{}", section, key);
    }

    std::string source_;
    std::filesystem::path base_;
};

}  // namespace

std::string endpoint::to_string() const {
    return host.find(':') != std::string::npos ? fmt::format("[{}]:{}", host, port) : fmt::format("{}:{}", host, port);
}

std::optional<std::chrono::milliseconds> parse_duration(std::string_view text) {
    std::uint64_t n = 0;
    const char* end = text.data() + text.size();
    auto [p, ec] = std::from_chars(text.data(), end, n);
    if (ec != std::errc{} || p == text.data() || n > 1'000'000'000) {
        return std::nullopt;
    }
    const std::string_view unit(p, static_cast<std::size_t>(end - p));
    using std::chrono::milliseconds;
    if (unit == "ms") {
        return milliseconds(n);
    }
    if (unit == "s") {
        return milliseconds(n * 1000);
    }
    if (unit == "m") {
        return milliseconds(n * 60'000);
    }
    if (unit == "h") {
        return milliseconds(n * 3'600'000);
    }
    return std::nullopt;
}

std::optional<endpoint> parse_endpoint(std::string_view text) {
    endpoint ep;
    std::string_view port;
    if (!text.empty() && text.front() == '[') {
        const std::size_t close = text.find(']');
        if (close == std::string_view::npos || close + 1 >= text.size() || text[close + 1] != ':') {
            return std::nullopt;
        }
        ep.host = std::string(text.substr(1, close - 1));
        port = text.substr(close + 2);
        if (ep.host.find(':') == std::string::npos) {
            return std::nullopt;
        }
    } else {
        const std::size_t colon = text.rfind(':');
        if (colon == std::string_view::npos || text.find(':') != colon) {
            return std::nullopt;
        }
        ep.host = std::string(text.substr(0, colon));
        port = text.substr(colon + 1);
    }
    // An IP literal, not a name: a listener must not depend on DNS at start-up, and `check`
    // must reject exactly what `serve` cannot bind.
    unsigned char addr[16];
    if (ep.host.empty() || (::inet_pton(AF_INET, ep.host.c_str(), addr) != 1 &&
                            ::inet_pton(AF_INET6, ep.host.c_str(), addr) != 1)) {
        return std::nullopt;
    }
    unsigned value = 0;
    auto [p, ec] = std::from_chars(port.data(), port.data() + port.size(), value);
    if (ec != std::errc{} || p != port.data() + port.size() || port.empty() || value > 65535) {
        return std::nullopt;
    }
    ep.port = static_cast<std::uint16_t>(value);
    return ep;
}

namespace {

std::string read_config_text(const std::filesystem::path& path) {
    FILE* f = std::fopen(path.c_str(), "rb");
    if (f == nullptr) {
        throw config_error(fmt::format("{}: cannot read: {}", path.string(), std::strerror(errno)));
    }
    std::string text;
    char buf[8192];
    std::size_t n = 0;
    while ((n = std::fread(buf, 1, sizeof buf, f)) > 0) {
        text.append(buf, n);
    }
    std::fclose(f);
    return text;
}

toml::table parse_toml(std::string_view text, const std::string& source_name) {
    try {
        return toml::parse(text, source_name);
    } catch (const toml::parse_error& e) {
        const auto& where = e.source().begin;
        throw config_error(fmt::format("{}:{}:{}: {}", source_name, where.line, where.column, e.description()));
    }
}

}  // namespace

config load_string(std::string_view toml_text, const std::filesystem::path& base_dir, const std::string& source_name) {
    const toml::table root = parse_toml(toml_text, source_name);
    reader r(source_name, base_dir);
    r.only_keys(root, "", {"server", "listen", "tls", "storage", "auth", "pop3", "control", "log"});
    config c;

    const toml::table* server = r.table(root, "server");
    if (server != nullptr) {
        r.only_keys(*server, "server",
                    {"hostname", "threads", "worker_threads", "shutdown_grace", "max_connections"});
    }
    c.server.hostname = r.string(server, "server", "hostname").value_or("");
    c.server.threads = static_cast<unsigned>(r.integer(server, "server", "threads", 0, 256).value_or(0));
    c.server.worker_threads = static_cast<unsigned>(r.integer(server, "server", "worker_threads", 0, 256).value_or(0));
    c.server.shutdown_grace = r.duration(server, "server", "shutdown_grace", std::chrono::milliseconds(0),
                                         std::chrono::minutes(10))
                                  .value_or(c.server.shutdown_grace);
    c.server.max_connections =
        static_cast<unsigned>(r.integer(server, "server", "max_connections", 1, 1'000'000).value_or(20000));

    const toml::table* listen = r.table(root, "listen");
    if (listen != nullptr) {
        r.only_keys(*listen, "listen", {"pop3", "pop3s"});
    }
    c.pop3 = r.endpoints(listen, "pop3");
    c.pop3s = r.endpoints(listen, "pop3s");
    if (c.pop3.empty() && c.pop3s.empty()) {
        r.fail("listen", "no listener: set listen.pop3 and/or listen.pop3s");
    }

    if (const toml::table* tls = r.table(root, "tls")) {
        r.only_keys(*tls, "tls", {"certificate", "private_key", "min_version", "ciphers", "ciphersuites"});
        tls_settings t;
        auto cert = r.string(tls, "tls", "certificate");
        auto key = r.string(tls, "tls", "private_key");
        if (!cert) {
            r.fail("tls.certificate", "missing (required when [tls] is present)");
        }
        if (!key) {
            r.fail("tls.private_key", "missing (required when [tls] is present)");
        }
        t.certificate = r.path(*cert);
        t.private_key = r.path(*key);
        r.readable_file(t.certificate, "tls.certificate");
        r.readable_file(t.private_key, "tls.private_key");
        t.min_version = r.string(tls, "tls", "min_version").value_or("1.2");
        if (t.min_version != "1.2" && t.min_version != "1.3") {
            r.fail("tls.min_version", "expected \"1.2\" or \"1.3\"");
        }
        t.ciphers = r.string(tls, "tls", "ciphers").value_or("");
        t.ciphersuites = r.string(tls, "tls", "ciphersuites").value_or("");
        c.tls = std::move(t);
    }
    if (!c.pop3s.empty() && !c.tls) {
        r.fail("listen.pop3s", "implicit TLS listeners need a [tls] section with certificate and private_key");
    }

    const toml::table* storage = r.table(root, "storage");
    if (storage != nullptr) {
        r.only_keys(*storage, "storage", {"maildir", "locking"});
    }
    auto maildir = r.string(storage, "storage", "maildir");
    if (!maildir || maildir->empty()) {
        r.fail("storage.maildir", "missing: the path template of each user's Maildir, e.g. \"/srv/mail/%u\"");
    }
    if (maildir->find("%u") == std::string::npos && maildir->find("%n") == std::string::npos) {
        r.fail("storage.maildir", "must contain %u or %n, or every user would share one maildrop");
    }
    c.storage.maildir = r.path(*maildir).string();
    const std::string locking = r.string(storage, "storage", "locking").value_or("snapshot");
    if (locking == "snapshot") {
        c.storage.locking = storage::lock_mode::snapshot;
    } else if (locking == "exclusive") {
        c.storage.locking = storage::lock_mode::exclusive;
    } else {
        r.fail("storage.locking", "expected one of \"snapshot\", \"exclusive\"");
    }

    const toml::table* auth = r.table(root, "auth");
    if (auth != nullptr) {
        r.only_keys(*auth, "auth",
                    {"passwd_file", "plaintext", "apop", "failure_delay", "max_failures", "cache_ttl", "cache_size"});
    }
    auto passwd = r.string(auth, "auth", "passwd_file");
    if (!passwd) {
        r.fail("auth.passwd_file", "missing: the Dovecot-format passwd-file with the users");
    }
    c.auth.passwd_file = r.path(*passwd);
    r.readable_file(c.auth.passwd_file, "auth.passwd_file");
    const std::string plaintext = r.string(auth, "auth", "plaintext").value_or("loopback");
    if (plaintext == "loopback") {
        c.policy.plaintext = core::plaintext_policy::loopback;
    } else if (plaintext == "always") {
        c.policy.plaintext = core::plaintext_policy::always;
    } else if (plaintext == "tls-only") {
        c.policy.plaintext = core::plaintext_policy::tls_only;
    } else {
        r.fail("auth.plaintext", "expected one of \"loopback\", \"always\", \"tls-only\"");
    }
    c.policy.apop = r.boolean(auth, "auth", "apop").value_or(true);
    c.policy.auth_failure_delay = r.duration(auth, "auth", "failure_delay", std::chrono::milliseconds(0),
                                             std::chrono::seconds(60))
                                      .value_or(c.policy.auth_failure_delay);
    c.auth.cache_ttl = r.duration(auth, "auth", "cache_ttl", std::chrono::milliseconds(0), std::chrono::hours(24))
                           .value_or(c.auth.cache_ttl);
    c.auth.cache_size =
        static_cast<std::size_t>(r.integer(auth, "auth", "cache_size", 0, 10'000'000).value_or(100'000));
    c.policy.max_auth_failures = static_cast<unsigned>(
        r.integer(auth, "auth", "max_failures", 1, 100).value_or(c.policy.max_auth_failures));

    const toml::table* pop3 = r.table(root, "pop3");
    if (pop3 != nullptr) {
        r.only_keys(*pop3, "pop3",
                    {"expire", "login_delay", "login_timeout", "idle_timeout", "write_timeout", "max_bad_commands"});
    }
    c.policy.expire = r.string(pop3, "pop3", "expire").value_or("NEVER");
    if (c.policy.expire != "NEVER") {
        // RFC 2449 §6.7: "NEVER" or a number of days.
        const std::string& e = c.policy.expire;
        if (e.empty() || e.size() > 5 || e.find_first_not_of("0123456789") != std::string::npos) {
            r.fail("pop3.expire", "expected \"NEVER\" or a number of days such as \"30\" (RFC 2449 section 6.7)");
        }
    }
    c.policy.login_delay =
        static_cast<unsigned>(r.integer(pop3, "pop3", "login_delay", 0, 86400).value_or(0));
    c.timeout.login = r.duration(pop3, "pop3", "login_timeout", std::chrono::seconds(1), std::chrono::hours(1))
                          .value_or(c.timeout.login);
    c.timeout.idle = r.duration(pop3, "pop3", "idle_timeout", std::chrono::seconds(1), std::chrono::hours(24))
                         .value_or(c.timeout.idle);
    c.timeout.write = r.duration(pop3, "pop3", "write_timeout", std::chrono::seconds(1), std::chrono::hours(1))
                          .value_or(c.timeout.write);
    c.policy.max_bad_commands = static_cast<unsigned>(
        r.integer(pop3, "pop3", "max_bad_commands", 1, 1000).value_or(c.policy.max_bad_commands));

    c.control = r.control(root);

    const toml::table* log = r.table(root, "log");
    if (log != nullptr) {
        r.only_keys(*log, "log", {"level"});
    }
    c.log_level = r.string(log, "log", "level").value_or("info");
    static const std::set<std::string> levels{"trace", "debug", "info", "warn", "error", "critical", "off"};
    if (levels.count(c.log_level) == 0) {
        r.fail("log.level", "expected one of \"trace\", \"debug\", \"info\", \"warn\", \"error\", \"critical\", \"off\"");
    }
    return c;
}

std::filesystem::path control_socket_of(const std::filesystem::path& config_file) {
    std::error_code ec;
    const std::filesystem::path abs = std::filesystem::absolute(config_file, ec).lexically_normal();
    const toml::table root = parse_toml(read_config_text(config_file), config_file.string());
    reader r(config_file.string(), abs.parent_path());
    return r.control(root).socket;
}

config load_file(const std::filesystem::path& path) {
    std::error_code ec;
    // Normalised, so "./poplar.toml" gives "/dir/mail/%u", not "/dir/./mail/%u".
    const std::filesystem::path abs = std::filesystem::absolute(path, ec).lexically_normal();
    return load_string(read_config_text(path), abs.parent_path(), path.string());
}

}  // namespace poplar::config
