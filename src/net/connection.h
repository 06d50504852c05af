// One POP3 client connection: a coroutine on its event loop that moves bytes between the socket
// (plain or TLS) and the pure core::session, and carries out the session's effects.
#pragma once

#include <asio/awaitable.hpp>
#include <asio/ip/tcp.hpp>
#include <asio/ssl/context.hpp>
#include <asio/steady_timer.hpp>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>

#include "auth/authenticator.h"
#include "config/config.h"
#include "core/line_framer.h"
#include "core/output_buffer.h"
#include "core/session.h"
#include "detect/usage_alerts.h"
#include "net/auth_link.h"
#include "net/connection_limits.h"
#include "net/metrics.h"
#include "net/tls_stream.h"
#include "util/worker_pool.h"
#include "storage/maildrop.h"
#include "util/secret.h"

namespace poplar::net {

// Server-wide counters (`poplar stats`, the metrics endpoint), shared by every connection of every
// configuration generation. Relaxed atomics: each is an independent tally, read now and then by
// an admin or a scrape; counting costs one uncontended add, no lock and no allocation.
struct server_counters {
    std::atomic<std::uint64_t> connections{0};          // accepted and served
    std::atomic<std::uint64_t> connections_refused[metrics::refusal_names.size()] = {};  // by metrics::refusal
    std::atomic<std::uint64_t> logins[metrics::mechanisms.size()] = {};  // by metrics::mechanism_index
    std::atomic<std::uint64_t> auth_failures{0};     // wrong credentials ("auth failed")
    std::atomic<std::uint64_t> auth_unavailable{0};  // user database down ("auth unavailable")
    std::atomic<std::uint64_t> tls_handshake_failures{0};
    std::atomic<std::uint64_t> storage_errors[metrics::storage_error_names.size()] = {};
    // Login attempts made to wait by an authentication penalty, and attempts and connections
    // refused by a block (detect/auth_penalties.h).
    std::atomic<std::uint64_t> auth_penalties{0};
    std::atomic<std::uint64_t> auth_blocks{0};
    // Added when a session ends, so sessions still running are not counted yet.
    std::atomic<std::uint64_t> auth_plaintext_refused{0};
    std::atomic<std::uint64_t> auth_malformed{0};
    std::atomic<std::uint64_t> retr{0};
    std::atomic<std::uint64_t> retr_bytes{0};
    std::atomic<std::uint64_t> top{0};
    std::atomic<std::uint64_t> dele{0};
    std::atomic<std::uint64_t> bytes_in{0};
    std::atomic<std::uint64_t> bytes_out{0};
    std::atomic<std::uint64_t> ended[metrics::end_reason_names.size()] = {};  // by connection::end_reason
    std::atomic<std::uint64_t> reloads{0};
    std::atomic<std::uint64_t> reload_failures{0};
    std::atomic<std::uint64_t> alerts[4] = {};  // by detect::alert_kind
    // Command latency, one histogram per command name. Each on its own cache line, so the event
    // loops timing different commands do not contend; buckets are not cumulative here.
    struct alignas(64) latency {
        std::atomic<std::uint64_t> buckets[metrics::latency_buckets] = {};
        std::atomic<std::uint64_t> sum_ns{0};
    };
    latency command_latency[metrics::commands.size()];

    void count(std::atomic<std::uint64_t>& c, std::uint64_t n = 1) { c.fetch_add(n, std::memory_order_relaxed); }
};

// Everything a connection shares with the server under one configuration generation. A reload
// makes a new one; a connection keeps the one it started with until it ends.
struct connection_context {
    const core::session_policy& policy;
    const config::timeouts& timeouts;
    auth::authenticator& auth;
    storage::mail_store& store;
    storage::lock_mode locking;
    util::worker_pool& pool;
    asio::ssl::context* tls;  // nullptr when no [tls] is configured
    std::string hostname;     // for the APOP timestamp
    server_counters& counters;
    connection_limits& limits;
    const config::server_settings& server;  // the per-user limit, max_unauthenticated
    detect::usage_alerts& usage;              // shared by every generation, like limits
    const detect::alert_thresholds& alert_thresholds;
    auth_state& auth_shared;                  // what the auth process said: blocks, table size
};

// A client address as the detect/ tables take it.
detect::usage_alerts::address detect_address(const address_key& k);

// Where a session is, for `poplar status` and `poplar who`.
enum class phase : std::uint8_t { handshake, authorization, transaction, update, closing };
const char* phase_name(phase p);

// What `poplar who` shows of one connection; taken from any thread.
struct connection_info {
    std::string user;  // empty before login
    std::string rip;
    bool tls = false;
    phase where = phase::handshake;
    std::chrono::system_clock::time_point connected;
    std::chrono::system_clock::time_point logged_in;  // meaningful when user is set
    std::uint64_t bytes_in = 0;
    std::uint64_t bytes_out = 0;
};

class connection : public std::enable_shared_from_this<connection> {
public:
    // `client`: the address a PROXY protocol header named, which replaces the socket's peer for
    // every limit, penalty, policy and log line; nullopt: the peer is the client. `auth` is the
    // channel of the loop the connection runs on.
    connection(asio::ip::tcp::socket socket, std::shared_ptr<const connection_context> ctx, auth_channel& auth,
               bool implicit_tls, std::optional<asio::ip::address> client = std::nullopt);
    ~connection();
    connection(const connection&) = delete;
    connection& operator=(const connection&) = delete;

    // The whole session; returns when the connection is closed.
    asio::awaitable<void> run();

    // Server shutdown (call on any thread): the session is told -ERR [SYS/TEMP] and closed,
    // without entering the UPDATE state, so nothing is deleted.
    void stop();
    // `poplar kick` (any thread): like stop(), with -ERR session ended by the administrator.
    void kick();

    // A consistent-enough picture for the admin (any thread).
    connection_info info() const;
    // Just the phase, without the copies info() makes (a scrape counts every session).
    phase current_phase() const { return phase_.load(std::memory_order_relaxed); }

    enum class end_reason { quit, disconnect, timeout, shutdown, error, closed_by_server, kicked };
    static const char* reason_name(end_reason r);

private:
    void end_from_outside(end_reason why);
    void set_phase(phase p) { phase_.store(p, std::memory_order_relaxed); }
    void count_in(std::size_t n) { bytes_in_.store(bytes_in_.load(std::memory_order_relaxed) + n, std::memory_order_relaxed); }
    void count_out(std::size_t n) { bytes_out_.store(bytes_out_.load(std::memory_order_relaxed) + n, std::memory_order_relaxed); }

    asio::awaitable<bool> perform(core::step step);
    // One SASL step relayed to the auth process, penalty delay included: the verdict or the
    // next challenge (or, with `refusal`, a block's [SYS/TEMP] text), or nullopt when the
    // client left during the delay or the server is stopping (the session ends).
    struct relayed {
        auth::sasl_mechanism::step_result step;
        std::string refusal;
    };
    asio::awaitable<std::optional<relayed>> relay_step(relay_mechanism& mech, util::secret_string response);
    asio::awaitable<bool> send_message(const core::effect::send_message& msg);
    asio::awaitable<bool> start_tls();
    asio::awaitable<bool> flush();
    asio::awaitable<void> receive(asio::error_code& ec);
    std::size_t read_available(asio::error_code& ec);
    asio::awaitable<void> say_goodbye(const std::string& reply);
    // The client shut its side down or reset (FIN or RST received, whatever is still unread:
    // POLLRDHUP sees it under TLS too). Does not wait.
    bool client_gone() const;
    asio::awaitable<void> close_transport();
    void arm_deadline(std::chrono::milliseconds from_now);
    std::chrono::milliseconds login_timeout_now() const;
    void start_watchdog();
    void log_session_end() const;
    void report(const std::optional<detect::alert>& a, const std::string& user);
    void time_command(std::size_t command, std::chrono::steady_clock::duration took);

    // First, so that it is set before ctx_ refers into it.
    const std::shared_ptr<const connection_context> ctx_holder_;
    asio::ip::tcp::socket socket_;
    std::unique_ptr<tls_stream> tls_;  // after STLS or on the implicit-TLS port
    asio::steady_timer watchdog_;
    asio::steady_timer delay_;
    const connection_context& ctx_;
    auth_channel& auth_;
    const bool implicit_tls_;
    std::string peer_;  // client address for log lines
    bool loopback_ = false;

    std::chrono::steady_clock::time_point deadline_;
    std::chrono::steady_clock::time_point started_;
    bool timed_out_ = false;
    bool watchdog_waiting_ = false;  // a wait on watchdog_ is pending
    bool stopping_ = false;
    bool closed_ = false;
    end_reason reason_ = end_reason::disconnect;
    end_reason stop_reason_ = end_reason::shutdown;  // what stopping_ means: shutdown or kicked

    std::unique_ptr<core::session> session_;
    core::line_framer framer_;
    core::output_buffer out_;  // replies not yet written (batched for PIPELINING, RFC 2449 §6.6)
    // Written only by this connection's loop; read by info() from the admin's.
    std::atomic<std::uint64_t> bytes_in_{0};
    std::atomic<std::uint64_t> bytes_out_{0};
    std::atomic<phase> phase_{phase::handshake};
    address_key address_;        // for connection_limits; counted there from accept to destruction
    bool counted_login_ = false;  // connection_limits::login() succeeded for logged_in_user_
    std::atomic<bool> tls_on_{false};
    const std::chrono::system_clock::time_point connected_at_;
    mutable std::mutex info_mutex_;  // guards the two below, set once at login
    std::string logged_in_user_;
    std::chrono::system_clock::time_point logged_in_at_;
};

}  // namespace poplar::net
