// One POP3 client connection: a coroutine on its own strand that moves bytes between the socket
// (plain or TLS) and the pure core::session, and carries out the session's effects.
#pragma once

#include <asio/awaitable.hpp>
#include <asio/ip/tcp.hpp>
#include <asio/ssl/context.hpp>
#include <asio/steady_timer.hpp>

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "auth/authenticator.h"
#include "config/config.h"
#include "core/line_framer.h"
#include "core/output_buffer.h"
#include "core/session.h"
#include "net/tls_stream.h"
#include "net/worker_pool.h"
#include "storage/maildrop.h"

namespace poplar::net {

// Everything a connection shares with the server; outlives every connection.
struct connection_context {
    const core::session_policy& policy;
    const config::timeouts& timeouts;
    auth::authenticator& auth;
    storage::mail_store& store;
    storage::lock_mode locking;
    worker_pool& pool;
    asio::ssl::context* tls;  // nullptr when no [tls] is configured
    std::string hostname;     // for the APOP timestamp
};

class connection : public std::enable_shared_from_this<connection> {
public:
    connection(asio::ip::tcp::socket socket, const connection_context& ctx, bool implicit_tls);
    ~connection();
    connection(const connection&) = delete;
    connection& operator=(const connection&) = delete;

    // The whole session; returns when the connection is closed.
    asio::awaitable<void> run();

    // Server shutdown (call on any thread): the session is told -ERR [SYS/TEMP] and closed,
    // without entering the UPDATE state, so nothing is deleted.
    void stop();

private:
    enum class end_reason { quit, disconnect, timeout, shutdown, error, closed_by_server };

    asio::awaitable<bool> perform(core::step step);
    asio::awaitable<bool> send_message(const core::effect::send_message& msg);
    asio::awaitable<bool> start_tls();
    asio::awaitable<bool> flush();
    asio::awaitable<void> receive(asio::error_code& ec);
    std::size_t read_available(asio::error_code& ec);
    asio::awaitable<void> say_goodbye(const std::string& reply);
    asio::awaitable<void> close_transport();
    void arm_deadline(std::chrono::milliseconds from_now);
    void start_watchdog();
    void log_session_end() const;

    asio::ip::tcp::socket socket_;
    std::unique_ptr<tls_stream> tls_;  // after STLS or on the implicit-TLS port
    asio::steady_timer watchdog_;
    asio::steady_timer delay_;
    const connection_context& ctx_;
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

    std::unique_ptr<core::session> session_;
    core::line_framer framer_;
    core::output_buffer out_;  // replies not yet written (batched for PIPELINING, RFC 2449 §6.6)
    std::uint64_t bytes_in_ = 0;
    std::uint64_t bytes_out_ = 0;
};

}  // namespace poplar::net
