// The Prometheus metrics of `poplar serve`: what is counted (the names, label values and histogram
// buckets, fixed here), the text exposition format 0.0.4 that a scrape receives, and the tiny
// HTTP/1.1 request parser of the metrics endpoint. Pure: a snapshot in, bytes out; no I/O.
//
// The format is small enough to write by hand (docs/operations.md "Metrics and alerts"): one
// "# HELP" and one "# TYPE" line per family, then one "name{labels} value" line per series.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <string_view>
#include <variant>

namespace poplar::net::metrics {

// Login mechanisms as the session names them (session::mechanism_name); USER is USER/PASS.
inline constexpr std::array<std::string_view, 5> mechanisms{"USER", "APOP", "PLAIN", "LOGIN", "other"};
std::size_t mechanism_index(std::string_view name);

// Why a login attempt failed. Unknown user and wrong password are one class: the auth path
// answers both alike (popa3d's dummy hash) and the metric must not tell them apart either.
enum class auth_failure : std::uint8_t { invalid_credentials, plaintext_refused, malformed, unavailable };
inline constexpr std::array<std::string_view, 4> auth_failure_names{"invalid_credentials", "plaintext_refused",
                                                                    "malformed", "unavailable"};

// Why a connection was refused before its greeting: a connection limit ([server]), an
// authentication block (auth.block_after), or a PROXY protocol header missing, malformed or
// from a peer not in server.trusted_proxies.
enum class refusal : std::uint8_t { max_connections, max_unauthenticated, max_connections_per_address, blocked, proxy };
inline constexpr std::array<std::string_view, 5> refusal_names{"max_connections", "max_unauthenticated",
                                                               "max_connections_per_address", "blocked", "proxy"};

// The usage alerts (detect::alert_kind, in its order).
inline constexpr std::array<std::string_view, 4> alert_names{"retr_messages", "retr_bytes", "dele_messages",
                                                             "addresses"};

// Storage failures a client notices (docs/operations.md "Logs" has the matching lines).
enum class storage_error : std::uint8_t { maildrop_open, message_unavailable, read, remove };
inline constexpr std::array<std::string_view, 4> storage_error_names{"maildrop_open", "message_unavailable",
                                                                     "read", "remove"};

// Commands whose handling is timed; a line that is none of these (a typo, a SASL response is
// AUTH) is "other", so a client cannot create series.
inline constexpr std::array<std::string_view, 16> commands{"USER", "PASS", "APOP", "AUTH", "CAPA", "STLS",
                                                           "STAT", "LIST", "UIDL", "RETR", "TOP",  "DELE",
                                                           "NOOP", "RSET", "QUIT", "other"};
std::size_t command_index(std::string_view line);  // from the line's first word, case-insensitive
inline constexpr std::size_t auth_command_index = 3;

// Upper bounds of the command latency buckets, in seconds, as they appear in le="...". From
// 100 µs (a cached STAT) to 5 s (a failed login with auth.failure_delay, a slow disk); +Inf last.
inline constexpr std::array<std::string_view, 10> latency_bucket_bounds{"0.0001", "0.0005", "0.001", "0.005",
                                                                        "0.01",   "0.05",   "0.1",   "0.5",
                                                                        "1",      "5"};
inline constexpr std::array<std::uint64_t, 10> latency_bucket_bounds_ns{
    100'000, 500'000, 1'000'000, 5'000'000, 10'000'000, 50'000'000, 100'000'000, 500'000'000, 1'000'000'000,
    5'000'000'000};
inline constexpr std::size_t latency_buckets = latency_bucket_bounds.size() + 1;  // with +Inf
std::size_t latency_bucket(std::uint64_t nanoseconds);

// Session phases and end reasons, in the order of net::phase and connection::end_reason.
inline constexpr std::array<std::string_view, 5> phase_names{"handshake", "authorization", "transaction",
                                                             "update", "closing"};
inline constexpr std::array<std::string_view, 7> end_reason_names{
    "quit", "disconnect", "timeout", "shutdown", "error", "closed-by-server", "kicked"};

struct latency_histogram {
    std::array<std::uint64_t, latency_buckets> buckets{};  // per bucket, not cumulative
    std::uint64_t sum_ns = 0;
};

// Everything one scrape shows, read from the server's counters and connection registry.
struct snapshot {
    std::string version;             // poplar_build_info{version="..."}
    std::int64_t start_time_seconds = 0;  // Unix time
    std::uint64_t connections = 0;
    std::array<std::uint64_t, refusal_names.size()> connections_refused{};
    std::uint64_t tls_handshake_failures = 0;
    std::array<std::uint64_t, phase_names.size()> sessions{};  // live, by phase
    std::array<std::uint64_t, end_reason_names.size()> sessions_ended{};
    std::array<std::uint64_t, mechanisms.size()> logins{};
    std::array<std::uint64_t, auth_failure_names.size()> auth_failures{};
    std::uint64_t auth_penalties = 0;
    std::uint64_t auth_blocks = 0;
    std::uint64_t auth_penalty_keys = 0;  // addresses and accounts the penalty table tracks
    std::array<std::uint64_t, alert_names.size()> alerts{};
    std::uint64_t retr_messages = 0;
    std::uint64_t retr_bytes = 0;
    std::uint64_t top_messages = 0;
    std::uint64_t dele_messages = 0;
    std::uint64_t bytes_in = 0;
    std::uint64_t bytes_out = 0;
    std::array<std::uint64_t, storage_error_names.size()> storage_errors{};
    std::uint64_t reloads = 0;
    std::uint64_t reload_failures = 0;
    std::array<latency_histogram, commands.size()> command_latency{};
};

// The text exposition format 0.0.4, every family always present (a zero is a value).
std::string format_exposition(const snapshot& s);
inline constexpr std::string_view content_type = "text/plain; version=0.0.4; charset=utf-8";

// A label value with \, " and newline escaped as the format requires.
std::string escape_label_value(std::string_view v);

// --- The HTTP side: one request per connection, only GET /metrics.

// A request larger than this (request line and headers) is refused: a scraper sends a few
// hundred bytes, and the endpoint must not buffer what an attacker sends.
inline constexpr std::size_t max_request_bytes = 8192;

struct request {
    std::string method;
    std::string target;  // path, without the query string
};
struct need_more {};
struct bad {
    int status;           // 400 or 431
    std::string reason;   // for the log
};
// Parses what was received so far: a complete header block (ending in an empty line), or
// need_more, or bad (malformed, or over max_request_bytes without an end).
std::variant<request, need_more, bad> parse_request(std::string_view received);

// What a request gets: 200 with the exposition for GET /metrics, 404 for any other path, 405 for
// other methods, and the status of a bad request. Always "Connection: close".
std::string response(int status, std::string_view body, std::string_view type = "text/plain; charset=utf-8");

}  // namespace poplar::net::metrics
