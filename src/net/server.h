// The network layer on top: listeners (plain POP3 and implicit TLS, IPv4 and IPv6), the event
// loops, the worker pool, signals and graceful shutdown.
//
// One single-threaded io_context per event-loop thread (server.threads), not one io_context run
// by many threads: a connection lives its whole life on one loop, so no strand is needed and no
// loop ever wakes another through the scheduler's condition variable. perf showed those
// wake-ups (futex, finish_task_switch) as the largest single cost of a full POP3 session
// (docs/performance.md). The acceptors run on loop 0 and hand each new connection to the loop
// with the fewest live connections.
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
    struct loop;
    asio::awaitable<void> accept_loop(listener& l);
    loop& least_loaded();
    void begin_shutdown();
    void forget(connection* c);
    void stop_loops();

    const config::config& cfg_;
    std::vector<std::unique_ptr<loop>> loops_;  // loops_[0] also runs acceptors and signals
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
