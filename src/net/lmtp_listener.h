// The LMTP listeners of `poplar serve` ([listen] lmtp: loopback TCP addresses and Unix sockets,
// docs/delivery.md) and their connections.
//
// Bound at start with the other sockets, before privileges are dropped, so a socket under
// /run/poplar can belong to the postfix user. The listeners are fixed for the server's lifetime
// (a change needs a restart); the delivery settings each new connection uses follow reloads.
#pragma once

#include <asio/generic/stream_protocol.hpp>
#include <asio/io_context.hpp>

#include <atomic>
#include <filesystem>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

#include "config/config.h"
#include "net/auth_link.h"
#include "net/lmtp_connection.h"

namespace poplar::net {

class lmtp_listener {
public:
    // The loop a new connection runs on, and that loop's auth channel.
    struct target {
        asio::io_context* io;
        auth_channel* auth;
    };
    using pick_fn = std::function<target()>;
    // The current generation's context (a reload makes a new one).
    using context_fn = std::function<std::shared_ptr<const lmtp_context>()>;

    // Binds every [listen] lmtp entry on `io` (loop 0); throws config::config_error naming the
    // key whose value cannot be bound.
    lmtp_listener(asio::io_context& io, const config::config& cfg);
    ~lmtp_listener();

    void start(pick_fn pick, context_fn context);
    // Stops accepting, removes the socket files and stops every connection (lmtp_connection::stop).
    void close();
    // Connections still running (shutdown waits for them).
    std::size_t live() const { return live_.load(); }
    bool empty() const { return acceptors_.empty(); }
    // The Unix socket files, for the sandbox (their directories must allow removal).
    const std::vector<std::filesystem::path>& socket_paths() const { return paths_; }

private:
    struct acceptor;
    asio::awaitable<void> accept_loop(acceptor& a);

    asio::io_context& io_;
    std::vector<std::unique_ptr<acceptor>> acceptors_;
    std::vector<std::filesystem::path> paths_;
    pick_fn pick_;
    context_fn context_;
    std::atomic<std::size_t> live_{0};
    std::atomic<bool> closed_{false};
    std::mutex mutex_;  // guards connections_ (connections end on any loop)
    std::unordered_map<lmtp_connection*, std::weak_ptr<lmtp_connection>> connections_;
};

}  // namespace poplar::net
