// poplar's configuration: every option an admin can set, with its default (docs/configuration.md).
//
// One loader fills this from TOML; `poplar check` and `poplar serve` share it, so a config that
// `check` accepts is exactly one `serve` runs.
#pragma once

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include "core/session.h"
#include "detect/usage_alerts.h"
#include "storage/maildrop.h"
#include "util/network.h"
#include "util/result.h"

namespace poplar::config {

// "host:port": IPv4 "127.0.0.1:110", IPv6 "[::1]:110", wildcard "0.0.0.0:110" / "[::]:110".
struct endpoint {
    std::string host;
    std::uint16_t port = 0;
    // The peer is a proxy that sends a PROXY protocol header first ([listen] pop3_proxy,
    // pop3s_proxy; only from server.trusted_proxies).
    bool proxy = false;
    std::string to_string() const;
};

// Mozilla's "intermediate" TLS 1.2 suites (ssl-config.mozilla.org, guidelines 5.7): forward
// secrecy and AEAD only. OpenSSL's own default adds static-RSA key exchange (no forward secrecy)
// and CBC suites (LUCKY13-prone), which testssl.sh flags and Dovecot's defaults leave out.
inline constexpr const char* default_tls12_ciphers =
    "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384:"
    "ECDHE-RSA-AES256-GCM-SHA384:ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305:"
    "DHE-RSA-AES128-GCM-SHA256:DHE-RSA-AES256-GCM-SHA384:DHE-RSA-CHACHA20-POLY1305";

struct tls_settings {
    std::filesystem::path certificate;  // PEM chain, leaf first
    std::filesystem::path private_key;  // PEM
    std::string min_version = "1.2";    // "1.2" or "1.3" (RFC 8996 retired 1.0/1.1)
    std::string ciphers{default_tls12_ciphers};  // TLS 1.2 cipher list, OpenSSL syntax; "" = OpenSSL's
    std::string ciphersuites;           // TLS 1.3 suites; empty = OpenSSL's
};

struct server_settings {
    std::string hostname;  // greeting / APOP timestamp; empty = gethostname()
    unsigned threads = 0;  // event-loop threads; 0 = one per CPU core
    unsigned worker_threads = 0;  // password hashing and disk I/O; 0 = one per CPU core
    std::chrono::milliseconds shutdown_grace = limits::default_shutdown_grace;
    unsigned max_connections = 20000;  // total; beyond it new connections are refused
    // Connections that have not logged in yet: what a flood of idle or slow connections fills.
    unsigned max_unauthenticated = 2000;
    // From one client address (IPv4 /32, IPv6 /64), in any state: NAT'd offices need dozens.
    unsigned max_connections_per_address = 50;
    // Logged-in sessions of one user (Dovecot's mail_max_userip_connections is 10 per address).
    unsigned max_sessions_per_user = 10;
    // Where the server keeps what must survive a restart (the familiar addresses of
    // auth.familiar_days); empty: kept in memory only.
    std::filesystem::path state_directory;
    // Started as root: the user (and group; empty: the user's) to switch to once the ports are
    // bound, with no supplementary groups. Empty: refuse to serve as root unless allow_root.
    std::string user;
    std::string group;
    bool allow_root = false;
    // Confine the network process with Landlock (docs/security.md "Processes"): it may open only
    // the mail root and the TLS files' directories. Off only to tell whether the sandbox is what
    // breaks something.
    bool sandbox = true;
    // The proxies allowed to send a PROXY protocol header (Dovecot: haproxy_trusted_networks).
    std::vector<util::network> trusted_proxies;
};

struct storage_settings {
    std::string maildir;  // path template: %u user, %n local part, %d domain
    storage::lock_mode locking = storage::lock_mode::snapshot;
};

struct auth_settings {
    std::filesystem::path passwd_file;
    std::chrono::milliseconds cache_ttl{std::chrono::hours(1)};  // 0: no verification cache
    std::size_t cache_size = 100'000;
    // Authentication penalties (detect/auth_penalties.h; docs/configuration.md [auth]). The delay
    // starts at failure_delay (core::session_policy) and doubles per failure up to this.
    std::chrono::milliseconds penalty_max_delay{15'000};
    std::chrono::milliseconds penalty_half_life{15 * 60'000};
    unsigned block_after = 20;  // 0: never block
    std::chrono::milliseconds block_duration{15 * 60'000};
    std::size_t penalty_table_size = 1'000'000;
    // An address an account logged in from within this many days is familiar: the account's
    // penalty does not apply to it. 0: no address is familiar.
    unsigned familiar_days = 30;
    // Started as root: the user (and group; empty: the user's) the auth process runs as, so
    // that the passwd-file can belong to it alone. Empty: server.user (docs/security.md).
    std::string process_user;
    std::string process_group;
};

// The admin control socket (`poplar status`, `who`, `kick`, `stats`, `reload`): a Unix socket
// whose file permissions are the access control, like Dovecot's doveadm socket.
struct control_settings {
    std::filesystem::path socket{"/run/poplar/control.sock"};  // empty: no control socket
    unsigned mode = 0660;                                       // permission bits of the socket file
    std::string group;                                          // group of the socket file; empty: unchanged
};

// The Prometheus metrics endpoint (docs/operations.md "Metrics and alerts"): plain HTTP without
// authentication, so it is off unless configured, and belongs on loopback or a management network.
struct metrics_settings {
    std::optional<endpoint> listen;  // absent: no metrics endpoint
};

// Local delivery: `poplar deliver` and the LMTP listener (docs/delivery.md).
enum class quota_action {
    bounce,  // over quota is a permanent failure (LMTP 552 5.2.2, EX_NOPERM): Dovecot's default
    defer,   // a temporary one (452 4.2.2, EX_TEMPFAIL): the message waits in the MTA's queue
};

struct delivery_settings {
    // Larger messages are refused (RFC 1870 SIZE, 552 5.3.4): the LMTP listener holds a message
    // in memory until it is stored. Postfix's own default message_size_limit is 10 MB.
    std::uint64_t max_message_size = 50ull * 1024 * 1024;
    // Default quota of every user (0: none); a passwd-file quota_rule overrides it per user.
    std::uint64_t quota_bytes = 0;
    std::uint64_t quota_messages = 0;
    quota_action over_quota = quota_action::bounce;
    // "alice+lists@example.org" is delivered to alice@example.org when no user has the full
    // address (Postfix's recipient_delimiter). Empty: addresses are matched whole.
    std::string recipient_delimiter;
    bool trace_headers = true;  // add Return-Path and Delivered-To (RFC 5321 §4.4)
};

// Where the LMTP listener's Unix sockets are, and who may connect: the file mode and owner are
// the access control (Postfix's lmtp client runs as the postfix user).
struct lmtp_settings {
    std::vector<std::filesystem::path> sockets;  // from [listen] lmtp entries that are paths
    unsigned socket_mode = 0660;
    std::string socket_user;   // owner of the socket files; empty: unchanged (the server's user)
    std::string socket_group;  // group of the socket files; empty: unchanged
    unsigned max_recipients = 100;  // RFC 5321 §4.5.3.1.8: at least 100
};

struct timeouts {
    std::chrono::milliseconds login = limits::default_idle_timeout_authorization;
    std::chrono::milliseconds idle = limits::default_idle_timeout_transaction;
    std::chrono::milliseconds write = limits::default_write_timeout;
};

struct config {
    std::vector<endpoint> pop3;   // plain POP3, STLS offered when tls is set
    std::vector<endpoint> pop3s;  // implicit TLS (RFC 8314)
    std::vector<endpoint> lmtp;   // LMTP over TCP (RFC 2033; the Unix sockets are in lmtp_socket)
    lmtp_settings lmtp_socket;
    delivery_settings delivery;
    std::optional<tls_settings> tls;
    server_settings server;
    storage_settings storage;
    auth_settings auth;
    core::session_policy policy;
    timeouts timeout;
    control_settings control;
    detect::alert_thresholds alerts;
    metrics_settings metrics;
    std::string log_level = "info";
};

// Every problem found in a configuration, one line each, as `poplar check` prints them:
//   "poplar.toml:12: auth.plaintext: expected one of "loopback", "always", "tls-only""
//   "auth.passwd_file: /etc/poplar/users:7: duplicate user 'bob' (first on line 3)"
// what() is all of them joined by '\n'. `warnings()` carries what was found worth telling the
// admin before the problems stopped the assembly (cli::load_and_assemble), for `check` to print.
class config_error : public std::runtime_error {
public:
    explicit config_error(const std::string& problem);
    explicit config_error(std::vector<std::string> problems, std::vector<std::string> warnings = {});

    const std::vector<std::string>& problems() const noexcept { return data_->problems; }
    const std::vector<std::string>& warnings() const noexcept { return data_->warnings; }

private:
    struct data {
        std::vector<std::string> problems;
        std::vector<std::string> warnings;
    };
    std::shared_ptr<const data> data_;  // shared: copying an exception must not throw
};

// One reading of a config file: the settings that could be read and every problem found. A
// setting with a problem keeps its default (file paths, the Maildir template and [tls] stay
// empty), so the checks that build on them (passwd-file, TLS context) run only on valid input.
struct loaded_config {
    config cfg;
    std::vector<std::string> problems;  // "FILE:LINE: key: problem", in the order checked
};

// The one loader. Relative paths are resolved against the config file's directory; files named
// by the config must be readable. Throws config_error only when nothing can be read: the file
// is unreadable, or TOML syntax (nothing after a syntax error can be parsed).
loaded_config read_file(const std::filesystem::path& path);
loaded_config read_string(std::string_view toml_text, const std::filesystem::path& base_dir,
                          const std::string& source_name, bool check_tls_files = true);
// read_file() as the auth process needs it: the TLS certificate and key are not checked, since
// that process never opens them and, running as auth.process_user, may not be able to.
loaded_config read_file_for_auth_process(const std::filesystem::path& path);

// read_file / read_string that throw config_error with every problem when there is any.
config load_file(const std::filesystem::path& path);
config load_string(std::string_view toml_text, const std::filesystem::path& base_dir,
                   const std::string& source_name);

// Where the control socket of the server run with this config file is, reading only the
// [control] section: `poplar status` and the other admin commands need no access to the
// passwd-file or the TLS key. Throws config_error.
std::filesystem::path control_socket_of(const std::filesystem::path& config_file);

// "500ms", "2s", "10m", "1h" -> duration; nullopt when malformed.
std::optional<std::chrono::milliseconds> parse_duration(std::string_view text);
// "50M", "1G", "512k", "4096" (bytes) -> octets; nullopt when malformed or out of range.
std::optional<std::uint64_t> parse_size(std::string_view text);
// "127.0.0.1:110" / "[::1]:995" -> endpoint. Port 0 is allowed: the system picks a free port
// (tests use it). The error says what is wrong: "port 219950 is out of range (...)", a host that
// is not an IP literal, or the general shape.
result<endpoint, std::string> parse_endpoint(std::string_view text);

}  // namespace poplar::config
