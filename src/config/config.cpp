// The one config loader: TOML (toml++) into config::config, strictly validated.
//
// Strict on purpose: an unknown key is an error, not a warning, because a mistyped security
// setting ("plaintxt = ...") silently ignored is worse than a server that refuses to start.
// Every problem is collected, not just the first, so one `poplar check` run lists them all; only
// a TOML syntax error stops the reading, since nothing after it can be parsed.
#include "config/config.h"

#include <fmt/format.h>
#include <arpa/inet.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cstdio>
#include <cstdint>
#include <cstring>
#include <toml++/toml.h>

namespace poplar::config {

namespace {

// Every section and key poplar knows: the one list that unknown keys and the "did you mean"
// suggestions are checked against.
struct section_schema {
    std::string_view name;
    std::vector<std::string_view> keys;
};

const std::vector<section_schema>& schema() {
    static const std::vector<section_schema> s{
        {"server",
         {"hostname", "threads", "worker_threads", "shutdown_grace", "max_connections", "max_unauthenticated",
          "max_connections_per_address", "max_sessions_per_user", "state_directory",
          "trusted_proxies", "user", "group", "allow_root", "sandbox"}},
        {"listen", {"pop3", "pop3s", "pop3_proxy", "pop3s_proxy", "lmtp"}},
        {"lmtp", {"socket_mode", "socket_user", "socket_group", "max_recipients"}},
        {"delivery",
         {"max_message_size", "quota_storage", "quota_messages", "quota_action", "recipient_delimiter",
          "trace_headers"}},
        {"tls", {"certificate", "private_key", "min_version", "ciphers", "ciphersuites"}},
        {"storage", {"maildir", "locking"}},
        {"auth",
         {"passwd_file", "plaintext", "apop", "apop_in_clear", "failure_delay", "max_failures", "cache_ttl",
          "cache_size", "penalty_max_delay", "penalty_half_life", "block_after", "block_duration", "penalty_table_size",
          "familiar_days", "process_user", "process_group"}},
        {"pop3", {"expire", "login_delay", "login_timeout", "idle_timeout", "write_timeout", "max_bad_commands"}},
        {"control", {"socket", "mode", "group"}},
        {"alerts", {"window", "retr_messages", "retr_bytes", "dele_messages", "addresses"}},
        {"metrics", {"listen"}},
        {"log", {"level"}},
    };
    return s;
}

const section_schema* find_section(std::string_view name) {
    for (const section_schema& s : schema()) {
        if (s.name == name) {
            return &s;
        }
    }
    return nullptr;
}

char lower(char c) { return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c; }

// Optimal string alignment distance (Levenshtein plus adjacent transpositions, "threds" and
// "thraeds" are both one edit from "threads"), ignoring case.
std::size_t edit_distance(std::string_view a, std::string_view b) {
    std::vector<std::vector<std::size_t>> d(a.size() + 1, std::vector<std::size_t>(b.size() + 1));
    for (std::size_t i = 0; i <= a.size(); ++i) {
        d[i][0] = i;
    }
    for (std::size_t j = 0; j <= b.size(); ++j) {
        d[0][j] = j;
    }
    for (std::size_t i = 1; i <= a.size(); ++i) {
        for (std::size_t j = 1; j <= b.size(); ++j) {
            const std::size_t cost = lower(a[i - 1]) == lower(b[j - 1]) ? 0 : 1;
            d[i][j] = std::min({d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + cost});
            if (i > 1 && j > 1 && lower(a[i - 1]) == lower(b[j - 2]) && lower(a[i - 2]) == lower(b[j - 1])) {
                d[i][j] = std::min(d[i][j], d[i - 2][j - 2] + 1);
            }
        }
    }
    return d[a.size()][b.size()];
}

// The known name closest to `typed`, when it is close enough to be a typo: at most 2 edits, and
// fewer than half the letters of the suggestion (so "ap" does not become "apop").
std::optional<std::string_view> closest(std::string_view typed, const std::vector<std::string_view>& known) {
    std::optional<std::string_view> best;
    if (typed.size() > 64) {
        return best;  // no known name is that long; and the distance table grows with the square
    }
    std::size_t best_distance = 3;
    for (std::string_view k : known) {
        const std::size_t dist = edit_distance(typed, k);
        if (dist < best_distance && 2 * dist < k.size()) {
            best = k;
            best_distance = dist;
        }
    }
    return best;
}

class reader {
public:
    reader(std::string source, std::filesystem::path base_dir, bool check_tls_files = true)
        : source_(std::move(source)), base_(std::move(base_dir)), check_tls_files_(check_tls_files) {}
    bool check_tls_files() const { return check_tls_files_; }

    // Records a problem. `at` is the node the problem is about (its line is reported); for a
    // missing key, the table it is missing from.
    void fail(std::string_view key, std::string_view what, const toml::node* at = nullptr) {
        const std::uint32_t line = at != nullptr ? at->source().begin.line : 0;
        if (line > 0) {
            problems_.emplace_back(line, fmt::format("{}:{}: {}: {}", source_, line, key, what));
        } else {
            problems_.emplace_back(line, fmt::format("{}: {}: {}", source_, key, what));
        }
    }

    std::size_t problem_count() const { return problems_.size(); }

    // In file order, as an editor walks them; problems with no line (missing keys of absent
    // sections) last, in the order checked.
    std::vector<std::string> take_problems() {
        std::stable_sort(problems_.begin(), problems_.end(), [](const auto& a, const auto& b) {
            return (a.first == 0 ? UINT32_MAX : a.first) < (b.first == 0 ? UINT32_MAX : b.first);
        });
        std::vector<std::string> out;
        for (auto& [line, text] : problems_) {
            out.push_back(std::move(text));
        }
        problems_.clear();
        return out;
    }

    // Rejects top-level names that are not sections poplar knows, so typos are caught.
    void only_sections(const toml::table& root) {
        std::vector<std::string_view> names;
        for (const section_schema& s : schema()) {
            names.push_back(s.name);
        }
        for (const auto& [k, v] : root) {
            const std::string_view name = k.str();
            if (find_section(name) != nullptr) {
                continue;
            }
            if (v.is_table()) {
                fail(name, with_suggestion("unknown section", closest(name, names)), &v);
                continue;
            }
            // A key above every section header: say which section it belongs in, if any.
            std::optional<std::string> home;
            for (const section_schema& s : schema()) {
                if (auto near = closest(name, s.keys); near && !home) {
                    home = fmt::format("{}.{}", s.name, *near);
                }
            }
            fail(name,
                 home ? fmt::format("unknown key (keys belong in a section: did you mean \"{}\"?)", *home)
                      : std::string("unknown key"),
                 &v);
        }
    }

    // Rejects keys of a known section that poplar does not know.
    void only_keys(const toml::table& t, std::string_view section) {
        const section_schema* s = find_section(section);
        for (const auto& [k, v] : t) {
            const std::string_view key = k.str();
            if (std::find(s->keys.begin(), s->keys.end(), key) != s->keys.end()) {
                continue;
            }
            fail(full(section, key),
                 with_suggestion(v.is_table() ? "unknown section" : "unknown key", closest(key, s->keys)), &v);
        }
    }

    // The section `name`, its unknown keys reported; nullptr when absent or not a table.
    const toml::table* section(const toml::table& root, std::string_view name) {
        const toml::node* n = root.get(name);
        if (n == nullptr) {
            return nullptr;
        }
        if (!n->is_table()) {
            fail(name, fmt::format("expected a table (a [{}] section)", name), n);
            return nullptr;
        }
        only_keys(*n->as_table(), name);
        return n->as_table();
    }

    std::optional<std::string> string(const toml::table* t, std::string_view section, std::string_view key) {
        const toml::node* n = t == nullptr ? nullptr : t->get(key);
        if (n == nullptr) {
            return std::nullopt;
        }
        if (!n->is_string()) {
            fail(full(section, key), "expected a string", n);
            return std::nullopt;
        }
        return std::string(n->as_string()->get());
    }

    std::optional<bool> boolean(const toml::table* t, std::string_view section, std::string_view key) {
        const toml::node* n = t == nullptr ? nullptr : t->get(key);
        if (n == nullptr) {
            return std::nullopt;
        }
        if (!n->is_boolean()) {
            fail(full(section, key), "expected true or false", n);
            return std::nullopt;
        }
        return n->as_boolean()->get();
    }

    std::optional<std::int64_t> integer(const toml::table* t, std::string_view section, std::string_view key,
                                        std::int64_t min, std::int64_t max) {
        const toml::node* n = t == nullptr ? nullptr : t->get(key);
        if (n == nullptr) {
            return std::nullopt;
        }
        if (!n->is_integer()) {
            fail(full(section, key), "expected an integer", n);
            return std::nullopt;
        }
        const std::int64_t v = n->as_integer()->get();
        if (v < min || v > max) {
            fail(full(section, key), fmt::format("must be between {} and {}", min, max), n);
            return std::nullopt;
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
        const toml::node* n = t->get(key);
        auto d = parse_duration(*s);
        if (!d) {
            fail(full(section, key), fmt::format("\"{}\" is not a duration like \"500ms\", \"30s\", \"10m\"", *s), n);
            return std::nullopt;
        }
        if (*d < min || *d > max) {
            fail(full(section, key), fmt::format("must be between {}ms and {}ms", min.count(), max.count()), n);
            return std::nullopt;
        }
        return d;
    }

    // One of `allowed` (the first spelling of each entry is what is stored; the others are
    // synonyms), or nullopt after reporting the value.
    std::optional<std::string_view> choice(const toml::table* t, std::string_view section, std::string_view key,
                                           std::initializer_list<std::initializer_list<std::string_view>> allowed,
                                           std::string_view expected) {
        auto s = string(t, section, key);
        if (!s) {
            return std::nullopt;
        }
        for (const auto& spellings : allowed) {
            for (std::string_view a : spellings) {
                if (a == *s) {
                    return *spellings.begin();
                }
            }
        }
        fail(full(section, key), expected, t->get(key));
        return std::nullopt;
    }

    std::vector<endpoint> endpoints(const toml::table* t, std::string_view key) {
        std::vector<endpoint> out;
        const toml::node* n = t == nullptr ? nullptr : t->get(key);
        if (n == nullptr) {
            return out;
        }
        const toml::array* arr = n->as_array();
        if (arr == nullptr) {
            fail(full("listen", key), "expected an array of \"host:port\" strings", n);
            return out;
        }
        for (const toml::node& e : *arr) {
            if (!e.is_string()) {
                fail(full("listen", key), "expected an array of \"host:port\" strings", &e);
                continue;
            }
            auto ep = parse_endpoint(e.as_string()->get());
            if (!ep) {
                fail(full("listen", key), ep.error(), &e);
                continue;
            }
            out.push_back(*ep);
        }
        return out;
    }

    std::filesystem::path path(std::string_view value) const {
        std::filesystem::path p(value);
        return (p.is_absolute() ? p : base_ / p).lexically_normal();
    }

    // A path key naming a file that must be readable now; nullopt (and a problem) otherwise.
    std::optional<std::filesystem::path> readable_file(const toml::table* t, std::string_view section,
                                                       std::string_view key) {
        auto s = string(t, section, key);
        if (!s) {
            return std::nullopt;
        }
        const std::filesystem::path p = path(*s);
        if (::access(p.c_str(), R_OK) != 0) {
            fail(full(section, key), fmt::format("cannot read \"{}\": {}", p.string(), std::strerror(errno)),
                 t->get(key));
            return std::nullopt;
        }
        return p;
    }

    control_settings control(const toml::table& root) {
        control_settings out;
        const toml::table* t = section(root, "control");
        if (t == nullptr) {
            return out;
        }
        if (auto s = string(t, "control", "socket")) {
            const std::filesystem::path p = s->empty() ? std::filesystem::path() : path(*s);
            // sun_path holds 108 bytes with its NUL (unix(7)); a longer path cannot be bound.
            if (p.native().size() > 107) {
                fail("control.socket",
                     fmt::format("\"{}\" is longer than the 107 bytes a Unix socket path may have", p.string()),
                     t->get("socket"));
            } else {
                out.socket = p;
            }
        }
        out.mode = file_mode(t, "control", "mode").value_or(out.mode);
        out.group = string(t, "control", "group").value_or("");
        return out;
    }

    // An octal permission string like "0660".
    std::optional<unsigned> file_mode(const toml::table* t, std::string_view section, std::string_view key) {
        auto m = string(t, section, key);
        if (!m) {
            return std::nullopt;
        }
        unsigned v = 0;
        auto [p, ec] = std::from_chars(m->data(), m->data() + m->size(), v, 8);
        if (m->empty() || ec != std::errc{} || p != m->data() + m->size() || v > 0777) {
            fail(full(section, key), fmt::format("\"{}\" is not an octal file mode like \"0660\"", *m), t->get(key));
            return std::nullopt;
        }
        return v;
    }

    // A size: "50M" (k, M, G, T: powers of 1024) or a plain integer of octets.
    std::optional<std::uint64_t> size(const toml::table* t, std::string_view section, std::string_view key,
                                      std::uint64_t max) {
        const toml::node* n = t == nullptr ? nullptr : t->get(key);
        if (n == nullptr) {
            return std::nullopt;
        }
        std::optional<std::uint64_t> v;
        if (n->is_integer() && n->as_integer()->get() >= 0) {
            v = static_cast<std::uint64_t>(n->as_integer()->get());
        } else if (n->is_string()) {
            v = parse_size(n->as_string()->get());
        }
        if (!v) {
            fail(full(section, key), "expected a size like \"50M\", \"1G\" or a number of octets", n);
            return std::nullopt;
        }
        if (*v > max) {
            fail(full(section, key), fmt::format("must be at most {} octets", max), n);
            return std::nullopt;
        }
        return v;
    }

    // [listen] lmtp: "host:port" entries are TCP listeners, absolute (or config-relative) paths
    // Unix sockets.
    void lmtp_listeners(const toml::table* listen, config& c) {
        const toml::node* n = listen == nullptr ? nullptr : listen->get("lmtp");
        if (n == nullptr) {
            return;
        }
        const toml::array* arr = n->as_array();
        if (arr == nullptr) {
            fail("listen.lmtp", "expected an array of \"host:port\" strings or Unix socket paths", n);
            return;
        }
        for (const toml::node& e : *arr) {
            if (!e.is_string()) {
                fail("listen.lmtp", "expected an array of \"host:port\" strings or Unix socket paths", &e);
                continue;
            }
            const std::string& text = e.as_string()->get();
            if (text.find('/') != std::string::npos) {
                const std::filesystem::path p = path(text);
                if (p.native().size() > 107) {
                    fail("listen.lmtp", fmt::format("\"{}\" is longer than the 107 bytes a Unix socket path may have",
                                                    p.string()), &e);
                } else {
                    c.lmtp_socket.sockets.push_back(p);
                }
                continue;
            }
            auto ep = parse_endpoint(text);
            if (!ep) {
                fail("listen.lmtp", ep.error(), &e);
                continue;
            }
            c.lmtp.push_back(*ep);
        }
    }

private:
    static std::string full(std::string_view section, std::string_view key) {
        return fmt::format("{}.{}", section, key);
    }

    static std::string with_suggestion(std::string_view what, std::optional<std::string_view> near) {
        return near ? fmt::format("{} (did you mean \"{}\"?)", what, *near) : std::string(what);
    }

    std::string source_;
    std::filesystem::path base_;
    bool check_tls_files_ = true;
    std::vector<std::pair<std::uint32_t, std::string>> problems_;  // (line or 0, message)
};

std::string join_lines(const std::vector<std::string>& lines) {
    std::string out;
    for (const std::string& l : lines) {
        if (!out.empty()) {
            out += '\n';
        }
        out += l;
    }
    return out;
}

}  // namespace

config_error::config_error(const std::string& problem) : config_error(std::vector<std::string>{problem}) {}

config_error::config_error(std::vector<std::string> problems, std::vector<std::string> warnings)
    : std::runtime_error(join_lines(problems)),
      data_(std::make_shared<const data>(data{std::move(problems), std::move(warnings)})) {}

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

result<endpoint, std::string> parse_endpoint(std::string_view text) {
    const std::string shape =
        fmt::format("\"{}\" is not an address like \"127.0.0.1:110\" or \"[::1]:110\"", text);
    endpoint ep;
    std::string_view port;
    if (!text.empty() && text.front() == '[') {
        const std::size_t close = text.find(']');
        if (close == std::string_view::npos || close + 1 >= text.size() || text[close + 1] != ':') {
            return unexpected(shape);
        }
        ep.host = std::string(text.substr(1, close - 1));
        port = text.substr(close + 2);
        if (ep.host.find(':') == std::string::npos) {
            return unexpected(shape);
        }
    } else {
        const std::size_t colon = text.rfind(':');
        if (colon == std::string_view::npos || text.find(':') != colon) {
            return unexpected(shape);
        }
        ep.host = std::string(text.substr(0, colon));
        port = text.substr(colon + 1);
    }
    if (port.empty() || port.find_first_not_of("0123456789") != std::string_view::npos) {
        return unexpected(shape);
    }
    unsigned long value = 0;
    auto [p, ec] = std::from_chars(port.data(), port.data() + port.size(), value);
    if (ec != std::errc{} || value > 65535) {
        return unexpected(fmt::format("port {} in \"{}\" is out of range (1-65535, or 0 for a free port the "
                                      "system picks)",
                                      port, text));
    }
    // An IP literal, not a name: a listener must not depend on DNS at start-up, and `check`
    // must reject exactly what `serve` cannot bind.
    unsigned char addr[16];
    if (ep.host.empty() || (::inet_pton(AF_INET, ep.host.c_str(), addr) != 1 &&
                            ::inet_pton(AF_INET6, ep.host.c_str(), addr) != 1)) {
        if (ep.host.empty() || text.front() == '[') {
            return unexpected(shape);
        }
        return unexpected(fmt::format("\"{}\" in \"{}\" is not an IP address (host names are not resolved: a "
                                      "listener must not depend on DNS)",
                                      ep.host, text));
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

// The directory relative paths are resolved against. Normalised, so "./poplar.toml" gives
// "/dir/mail/%u", not "/dir/./mail/%u" (which the Maildir template check would refuse).
std::filesystem::path base_of(const std::filesystem::path& config_file) {
    std::error_code ec;
    return std::filesystem::absolute(config_file, ec).lexically_normal().parent_path();
}

}  // namespace

loaded_config read_string(std::string_view toml_text, const std::filesystem::path& base_dir,
                          const std::string& source_name, bool check_tls_files) {
    const toml::table root = parse_toml(toml_text, source_name);
    reader r(source_name, base_dir, check_tls_files);
    r.only_sections(root);
    loaded_config out;
    config& c = out.cfg;

    const toml::table* server = r.section(root, "server");
    c.server.hostname = r.string(server, "server", "hostname").value_or("");
    c.server.threads = static_cast<unsigned>(r.integer(server, "server", "threads", 0, 256).value_or(0));
    c.server.worker_threads = static_cast<unsigned>(r.integer(server, "server", "worker_threads", 0, 256).value_or(0));
    c.server.shutdown_grace = r.duration(server, "server", "shutdown_grace", std::chrono::milliseconds(0),
                                         std::chrono::minutes(10))
                                  .value_or(c.server.shutdown_grace);
    c.server.max_connections =
        static_cast<unsigned>(r.integer(server, "server", "max_connections", 1, 1'000'000).value_or(20000));
    c.server.max_unauthenticated = static_cast<unsigned>(
        r.integer(server, "server", "max_unauthenticated", 1, 1'000'000).value_or(c.server.max_unauthenticated));
    c.server.max_connections_per_address = static_cast<unsigned>(
        r.integer(server, "server", "max_connections_per_address", 1, 1'000'000)
            .value_or(c.server.max_connections_per_address));
    c.server.max_sessions_per_user = static_cast<unsigned>(
        r.integer(server, "server", "max_sessions_per_user", 1, 1'000'000).value_or(c.server.max_sessions_per_user));
    c.server.user = r.string(server, "server", "user").value_or("");
    c.server.group = r.string(server, "server", "group").value_or("");
    c.server.allow_root = r.boolean(server, "server", "allow_root").value_or(false);
    c.server.sandbox = r.boolean(server, "server", "sandbox").value_or(true);
    if (!c.server.group.empty() && c.server.user.empty()) {
        r.fail("server.group", "needs server.user: the group is the one the server switches to with it",
               server->get("group"));
    }
    if (const toml::node* n = server == nullptr ? nullptr : server->get("trusted_proxies")) {
        const toml::array* arr = n->as_array();
        if (arr == nullptr) {
            r.fail("server.trusted_proxies", "expected an array of networks such as \"127.0.0.1/32\"", n);
        } else {
            for (const toml::node& e : *arr) {
                auto net = e.is_string() ? util::parse_network(e.as_string()->get())
                                         : result<util::network, std::string>(unexpected(std::string(
                                               "expected an array of networks such as \"127.0.0.1/32\"")));
                if (!net) {
                    r.fail("server.trusted_proxies", net.error(), &e);
                    continue;
                }
                c.server.trusted_proxies.push_back(*net);
            }
        }
    }
    if (auto state = r.string(server, "server", "state_directory"); state && !state->empty()) {
        std::error_code ec;
        const std::filesystem::path dir = r.path(*state);
        if (!std::filesystem::is_directory(dir, ec)) {
            r.fail("server.state_directory", fmt::format("{} is not a directory", dir.string()),
                   server->get("state_directory"));
        } else {
            c.server.state_directory = dir;
        }
    }

    const toml::table* listen = r.section(root, "listen");
    const std::size_t before_listen = r.problem_count();
    c.pop3 = r.endpoints(listen, "pop3");
    c.pop3s = r.endpoints(listen, "pop3s");
    // Listeners behind a proxy that sends the PROXY protocol header (HAProxy's send-proxy or
    // send-proxy-v2): the same kinds, marked, so binding and reload treat them alike.
    for (auto [key, into] : {std::pair{"pop3_proxy", &c.pop3}, std::pair{"pop3s_proxy", &c.pop3s}}) {
        for (endpoint ep : r.endpoints(listen, key)) {
            ep.proxy = true;
            into->push_back(std::move(ep));
        }
        if (listen != nullptr && listen->get(key) != nullptr && c.server.trusted_proxies.empty() &&
            r.problem_count() == before_listen) {
            r.fail(std::string("listen.") + key,
                   "needs server.trusted_proxies: the addresses of the proxies allowed to send PROXY headers",
                   listen->get(key));
        }
    }
    r.lmtp_listeners(listen, c);
    if (c.pop3.empty() && c.pop3s.empty() && r.problem_count() == before_listen) {
        r.fail("listen", "no listener: set listen.pop3, listen.pop3s or their _proxy forms", listen);
    }

    const toml::table* tls = r.section(root, "tls");
    if (tls != nullptr) {
        const std::size_t before_tls = r.problem_count();
        tls_settings t;
        if (tls->get("certificate") == nullptr) {
            r.fail("tls.certificate", "missing (required when [tls] is present)", tls);
        }
        if (tls->get("private_key") == nullptr) {
            r.fail("tls.private_key", "missing (required when [tls] is present)", tls);
        }
        if (r.check_tls_files()) {
            t.certificate = r.readable_file(tls, "tls", "certificate").value_or("");
            t.private_key = r.readable_file(tls, "tls", "private_key").value_or("");
        } else {
            t.certificate = r.path(r.string(tls, "tls", "certificate").value_or(""));
            t.private_key = r.path(r.string(tls, "tls", "private_key").value_or(""));
        }
        t.min_version = r.choice(tls, "tls", "min_version", {{"1.2"}, {"1.3"}}, "expected \"1.2\" or \"1.3\"")
                            .value_or("1.2");
        t.ciphers = r.string(tls, "tls", "ciphers").value_or(default_tls12_ciphers);
        t.ciphersuites = r.string(tls, "tls", "ciphersuites").value_or("");
        if (r.problem_count() == before_tls) {
            c.tls = std::move(t);  // only a complete [tls] goes on to build a TLS context
        }
    }
    if (!c.pop3s.empty() && tls == nullptr) {
        r.fail("listen.pop3s", "implicit TLS listeners need a [tls] section with certificate and private_key",
               listen->get("pop3s"));
    }

    const toml::table* storage = r.section(root, "storage");
    const auto maildir = r.string(storage, "storage", "maildir");
    if (storage == nullptr || storage->get("maildir") == nullptr || (maildir && maildir->empty())) {
        r.fail("storage.maildir", "missing: the path template of each user's Maildir, e.g. \"/srv/mail/%u\"",
               storage);
    } else if (maildir && maildir->find("%u") == std::string::npos && maildir->find("%n") == std::string::npos) {
        r.fail("storage.maildir", "must contain %u or %n, or every user would share one maildrop",
               storage->get("maildir"));
    } else if (maildir) {
        c.storage.maildir = r.path(*maildir).string();
    }
    if (auto locking = r.choice(storage, "storage", "locking", {{"snapshot"}, {"exclusive"}},
                                "expected one of \"snapshot\", \"exclusive\"")) {
        c.storage.locking = *locking == "exclusive" ? storage::lock_mode::exclusive : storage::lock_mode::snapshot;
    }

    const toml::table* auth = r.section(root, "auth");
    if (auth == nullptr || auth->get("passwd_file") == nullptr) {
        r.fail("auth.passwd_file", "missing: the Dovecot-format passwd-file with the users", auth);
    }
    c.auth.passwd_file = r.readable_file(auth, "auth", "passwd_file").value_or("");
    if (auto plaintext = r.choice(auth, "auth", "plaintext", {{"loopback"}, {"always"}, {"tls-only"}},
                                  "expected one of \"loopback\", \"always\", \"tls-only\"")) {
        c.policy.plaintext = *plaintext == "always"     ? core::plaintext_policy::always
                             : *plaintext == "tls-only" ? core::plaintext_policy::tls_only
                                                        : core::plaintext_policy::loopback;
    }
    c.policy.apop = r.boolean(auth, "auth", "apop").value_or(c.policy.apop);
    c.policy.apop_in_clear = r.boolean(auth, "auth", "apop_in_clear").value_or(c.policy.apop_in_clear);
    c.policy.auth_failure_delay = r.duration(auth, "auth", "failure_delay", std::chrono::milliseconds(0),
                                             std::chrono::seconds(60))
                                      .value_or(c.policy.auth_failure_delay);
    c.auth.cache_ttl = r.duration(auth, "auth", "cache_ttl", std::chrono::milliseconds(0), std::chrono::hours(24))
                           .value_or(c.auth.cache_ttl);
    c.auth.cache_size =
        static_cast<std::size_t>(r.integer(auth, "auth", "cache_size", 0, 10'000'000).value_or(100'000));
    c.policy.max_auth_failures = static_cast<unsigned>(
        r.integer(auth, "auth", "max_failures", 1, 100).value_or(c.policy.max_auth_failures));
    c.auth.penalty_max_delay =
        r.duration(auth, "auth", "penalty_max_delay", std::chrono::milliseconds(0), std::chrono::minutes(5))
            .value_or(c.auth.penalty_max_delay);
    c.auth.penalty_half_life =
        r.duration(auth, "auth", "penalty_half_life", std::chrono::seconds(1), std::chrono::hours(24 * 7))
            .value_or(c.auth.penalty_half_life);
    c.auth.block_after =
        static_cast<unsigned>(r.integer(auth, "auth", "block_after", 0, 1'000'000).value_or(c.auth.block_after));
    c.auth.block_duration =
        r.duration(auth, "auth", "block_duration", std::chrono::seconds(1), std::chrono::hours(24 * 7))
            .value_or(c.auth.block_duration);
    c.auth.penalty_table_size = static_cast<std::size_t>(
        r.integer(auth, "auth", "penalty_table_size", 1000, 100'000'000).value_or(1'000'000));
    c.auth.familiar_days =
        static_cast<unsigned>(r.integer(auth, "auth", "familiar_days", 0, 3650).value_or(c.auth.familiar_days));
    c.auth.process_user = r.string(auth, "auth", "process_user").value_or("");
    c.auth.process_group = r.string(auth, "auth", "process_group").value_or("");
    if (!c.auth.process_group.empty() && c.auth.process_user.empty()) {
        r.fail("auth.process_group", "needs auth.process_user: the group is the one the auth process switches to with it",
               auth->get("process_group"));
    }

    const toml::table* pop3 = r.section(root, "pop3");
    if (auto expire = r.string(pop3, "pop3", "expire")) {
        // RFC 2449 §6.7: "NEVER" or a number of days.
        const std::string& e = *expire;
        if (e != "NEVER" && (e.empty() || e.size() > 5 || e.find_first_not_of("0123456789") != std::string::npos)) {
            r.fail("pop3.expire", "expected \"NEVER\" or a number of days such as \"30\" (RFC 2449 section 6.7)",
                   pop3->get("expire"));
        } else {
            c.policy.expire = e;
        }
    }
    c.policy.login_delay = static_cast<unsigned>(r.integer(pop3, "pop3", "login_delay", 0, 86400).value_or(0));
    c.timeout.login = r.duration(pop3, "pop3", "login_timeout", std::chrono::seconds(1), std::chrono::hours(1))
                          .value_or(c.timeout.login);
    c.timeout.idle = r.duration(pop3, "pop3", "idle_timeout", std::chrono::seconds(1), std::chrono::hours(24))
                         .value_or(c.timeout.idle);
    c.timeout.write = r.duration(pop3, "pop3", "write_timeout", std::chrono::seconds(1), std::chrono::hours(1))
                          .value_or(c.timeout.write);
    c.policy.max_bad_commands = static_cast<unsigned>(
        r.integer(pop3, "pop3", "max_bad_commands", 1, 1000).value_or(c.policy.max_bad_commands));

    c.control = r.control(root);

    const toml::table* lmtp = r.section(root, "lmtp");
    c.lmtp_socket.socket_mode = r.file_mode(lmtp, "lmtp", "socket_mode").value_or(c.lmtp_socket.socket_mode);
    c.lmtp_socket.socket_user = r.string(lmtp, "lmtp", "socket_user").value_or("");
    c.lmtp_socket.socket_group = r.string(lmtp, "lmtp", "socket_group").value_or("");
    c.lmtp_socket.max_recipients = static_cast<unsigned>(
        r.integer(lmtp, "lmtp", "max_recipients", 100, 100'000).value_or(c.lmtp_socket.max_recipients));
    const toml::table* delivery = r.section(root, "delivery");
    // 1 GiB: beyond it a message held in memory per connection is a risk, not a feature.
    c.delivery.max_message_size =
        r.size(delivery, "delivery", "max_message_size", 1024ull * 1024 * 1024).value_or(c.delivery.max_message_size);
    if (c.delivery.max_message_size == 0) {
        r.fail("delivery.max_message_size", "must be more than 0", delivery->get("max_message_size"));
        c.delivery.max_message_size = delivery_settings{}.max_message_size;
    }
    c.delivery.quota_bytes = r.size(delivery, "delivery", "quota_storage", UINT64_MAX).value_or(0);
    c.delivery.quota_messages = static_cast<std::uint64_t>(
        r.integer(delivery, "delivery", "quota_messages", 0, 1'000'000'000).value_or(0));
    if (auto a = r.choice(delivery, "delivery", "quota_action", {{"bounce"}, {"defer"}},
                          "expected \"bounce\" or \"defer\"")) {
        c.delivery.over_quota = *a == "defer" ? quota_action::defer : quota_action::bounce;
    }
    c.delivery.recipient_delimiter = r.string(delivery, "delivery", "recipient_delimiter").value_or("");
    if (c.delivery.recipient_delimiter.size() > 1 ||
        c.delivery.recipient_delimiter.find_first_of("@\" <>") != std::string::npos) {
        r.fail("delivery.recipient_delimiter", "expected one character such as \"+\" or \"-\", or \"\"",
               delivery->get("recipient_delimiter"));
        c.delivery.recipient_delimiter.clear();
    }
    c.delivery.trace_headers = r.boolean(delivery, "delivery", "trace_headers").value_or(true);

    const toml::table* alerts = r.section(root, "alerts");
    c.alerts.window = std::chrono::duration_cast<std::chrono::seconds>(
        r.duration(alerts, "alerts", "window", std::chrono::minutes(1), std::chrono::hours(24 * 7))
            .value_or(c.alerts.window));
    auto threshold = [&](std::string_view key, std::uint64_t fallback) {
        return static_cast<std::uint64_t>(
            r.integer(alerts, "alerts", key, 0, 1'000'000'000'000'000LL).value_or(static_cast<std::int64_t>(fallback)));
    };
    c.alerts.retr_messages = threshold("retr_messages", c.alerts.retr_messages);
    c.alerts.retr_bytes = threshold("retr_bytes", c.alerts.retr_bytes);
    c.alerts.dele_messages = threshold("dele_messages", c.alerts.dele_messages);
    c.alerts.addresses = threshold("addresses", c.alerts.addresses);
    const toml::table* metrics = r.section(root, "metrics");
    if (auto l = r.string(metrics, "metrics", "listen")) {
        auto ep = parse_endpoint(*l);
        if (ep) {
            c.metrics.listen = ep.value();
        } else {
            r.fail("metrics.listen", ep.error(), metrics->get("listen"));
        }
    }

    const toml::table* log = r.section(root, "log");
    // "warning" too: the log lines themselves say "warning:".
    c.log_level = std::string(
        r.choice(log, "log", "level",
                 {{"trace"}, {"debug"}, {"info"}, {"warn", "warning"}, {"error"}, {"critical"}, {"off"}},
                 "expected one of \"trace\", \"debug\", \"info\", \"warn\" (or \"warning\"), \"error\", "
                 "\"critical\", \"off\"")
            .value_or("info"));

    out.problems = r.take_problems();
    return out;
}

loaded_config read_file(const std::filesystem::path& path) {
    return read_string(read_config_text(path), base_of(path), path.string());
}

loaded_config read_file_for_auth_process(const std::filesystem::path& path) {
    return read_string(read_config_text(path), base_of(path), path.string(), false);
}

config load_string(std::string_view toml_text, const std::filesystem::path& base_dir, const std::string& source_name) {
    loaded_config l = read_string(toml_text, base_dir, source_name);
    if (!l.problems.empty()) {
        throw config_error(std::move(l.problems));
    }
    return std::move(l.cfg);
}

config load_file(const std::filesystem::path& path) {
    loaded_config l = read_file(path);
    if (!l.problems.empty()) {
        throw config_error(std::move(l.problems));
    }
    return std::move(l.cfg);
}

std::filesystem::path control_socket_of(const std::filesystem::path& config_file) {
    const toml::table root = parse_toml(read_config_text(config_file), config_file.string());
    reader r(config_file.string(), base_of(config_file));
    control_settings c = r.control(root);
    if (r.problem_count() > 0) {
        throw config_error(r.take_problems());
    }
    return c.socket;
}

std::optional<std::uint64_t> parse_size(std::string_view text) {
    std::uint64_t unit = 1;
    if (!text.empty()) {
        switch (text.back()) {
        case 'k': case 'K': unit = 1024; break;
        case 'M': unit = 1024ull * 1024; break;
        case 'G': unit = 1024ull * 1024 * 1024; break;
        case 'T': unit = 1024ull * 1024 * 1024 * 1024; break;
        default: break;
        }
        if (unit != 1) {
            text.remove_suffix(1);
        }
    }
    std::uint64_t n = 0;
    const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), n);
    if (text.empty() || ec != std::errc{} || end != text.data() + text.size() || n > UINT64_MAX / unit) {
        return std::nullopt;
    }
    return n * unit;
}

}  // namespace poplar::config
