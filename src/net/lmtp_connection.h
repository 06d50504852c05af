// One LMTP client connection (RFC 2033): a coroutine on its event loop that moves bytes between
// the socket (TCP or Unix) and the pure lmtp::session, and carries out its effects: recipient
// lookups through the auth process (the network process never reads the user database) and
// deliveries on the worker pool through the one delivery path (delivery/local_delivery.h).
//
// No TLS: LMTP is for the MTA on the same host (RFC 2033 §1 says it must not be used over wide
// area networks), so it listens on loopback or a Unix socket whose file mode is the access
// control (docs/delivery.md).
#pragma once

#include <asio/awaitable.hpp>
#include <asio/generic/stream_protocol.hpp>
#include <asio/steady_timer.hpp>

#include <atomic>
#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include "config/config.h"
#include "core/line_framer.h"
#include "delivery/recipient_lookup.h"
#include "lmtp/session.h"
#include "net/auth_link.h"
#include "storage/delivery.h"
#include "util/worker_pool.h"

namespace poplar::net {

// Server-wide LMTP counters (metrics, `poplar stats`).
struct lmtp_counters {
    std::atomic<std::uint64_t> connections{0};
    std::atomic<std::uint64_t> delivered{0};       // recipient deliveries that got 250
    std::atomic<std::uint64_t> delivered_bytes{0};
    std::atomic<std::uint64_t> refused{0};         // RCPTs and deliveries answered 4xx/5xx
    std::atomic<std::uint64_t> temporary_failures{0};  // 451: storage or lookup trouble
};

// What LMTP connections share under one configuration generation (a reload makes a new one;
// a connection keeps the one it started with).
struct lmtp_context {
    std::shared_ptr<const void> keep_alive;  // the generation the references below point into
    const config::delivery_settings& delivery;
    storage::mail_delivery& store;
    lmtp::session_policy policy;
    std::chrono::milliseconds idle_timeout;
    util::worker_pool& pool;
    lmtp_counters& counters;
};

class lmtp_connection : public std::enable_shared_from_this<lmtp_connection> {
public:
    using socket_type = asio::generic::stream_protocol::socket;

    // `peer`: for log lines ("127.0.0.1", "unix").
    lmtp_connection(socket_type socket, std::shared_ptr<const lmtp_context> ctx, auth_channel& auth, std::string peer);

    asio::awaitable<void> run();
    // Server shutdown (any thread): a connection waiting for a command is told 421 and closed;
    // one delivering finishes that delivery and sends its replies first, so the MTA is never
    // left not knowing whether a message it sent was stored.
    void stop();

private:
    asio::awaitable<bool> perform(lmtp::step step);
    asio::awaitable<lmtp::recipient_verdict> check_recipient(const lmtp::effect::check_recipient& c);
    asio::awaitable<std::vector<lmtp::delivery_verdict>> deliver(lmtp::effect::deliver d);
    asio::awaitable<bool> flush();
    void log_end(const char* reason) const;

    socket_type socket_;
    const std::shared_ptr<const lmtp_context> ctx_holder_;
    const lmtp_context& ctx_;
    auth_channel& auth_;
    const std::string peer_;
    asio::steady_timer deadline_;
    lmtp::session session_;
    core::line_framer framer_;
    std::string out_;
    // The recipients RCPT accepted in this transaction, parallel to the session's envelope.
    std::vector<delivery::recipient> recipients_;
    std::atomic<bool> stopping_{false};
    bool delivering_ = false;
    std::chrono::steady_clock::time_point started_;
};

}  // namespace poplar::net
