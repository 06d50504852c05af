// The network layer on top: listeners (plain POP3 and implicit TLS, IPv4 and IPv6), the event
// loop threads, the worker pool, signals and graceful shutdown.
#pragma once

#include <asio/io_context.hpp>
#include <asio/ssl/context.hpp>

#include <atomic>
#include <memory>
#include <mutex>
#include <unordered_set>

#include "auth/authenticator.h"
#include "config/config.h"
#include "net/connection.h"
#include "net/worker_pool.h"
#include "storage/maildrop.h"

namespace poplar::net {

class server {
public:
    // Binds every listener (throws config::config_error naming the listen.* key when one cannot
    // be bound) and builds the TLS context. Nothing runs until run().
    server(const config::config& cfg, auth::authenticator& auth, storage::mail_store& store);
    ~server();
    server(const server&) = delete;
    server& operator=(const server&) = delete;

    // Serves until SIGTERM or SIGINT, then stops accepting, tells every session
    // -ERR [SYS/TEMP] (nothing is deleted) and returns within server.shutdown_grace.
    void run();

private:
    struct listener;
    asio::awaitable<void> accept_loop(listener& l);
    void begin_shutdown();
    void forget(connection* c);

    const config::config& cfg_;
    asio::io_context io_;
    worker_pool pool_;
    std::unique_ptr<asio::ssl::context> tls_;
    connection_context ctx_;
    std::vector<std::unique_ptr<listener>> listeners_;

    std::mutex mutex_;  // guards live_ (connections end on any event-loop thread)
    std::unordered_set<connection*> live_;
    std::atomic<std::size_t> count_{0};
    std::atomic<bool> shutting_down_{false};
};

}  // namespace poplar::net
