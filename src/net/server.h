// The network layer on top: listeners (plain POP3 and implicit TLS, IPv4 and IPv6), the event
// loops, the worker pool, the control socket, signals, reload and graceful shutdown.
//
// One single-threaded io_context per event-loop thread (server.threads), not one io_context run
// by many threads: a connection lives its whole life on one loop, so no strand is needed and no
// loop ever wakes another through the scheduler's condition variable. perf showed those
// wake-ups (futex, finish_task_switch) as the largest single cost of a full POP3 session
// (docs/performance.md). The acceptors, the control socket and the signals run on loop 0, which
// hands each new connection to the loop with the fewest live connections.
//
// Reload (SIGHUP or `poplar reload`) builds a new generation: config, authenticator, store and
// TLS context. New connections get it; each connection keeps the generation it started with
// (a shared_ptr) until it ends, so sessions in progress are not disturbed.
#pragma once

#include <asio/io_context.hpp>
#include <asio/ssl/context.hpp>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <functional>
#include <memory>
#include <mutex>
#include <unordered_map>

#include "config/config.h"
#include "net/auth_link.h"
#include "net/connection.h"
#include "net/connection_limits.h"
#include "net/control_listener.h"
#include "net/lmtp_listener.h"
#include "net/metrics.h"
#include "net/metrics_listener.h"
#include "util/worker_pool.h"
#include "proxy/header.h"
#include "util/result.h"
#include "storage/delivery.h"
#include "storage/maildrop.h"

namespace poplar::net {

// One configuration as loaded and assembled: what the sessions that start under it use. The
// user database is not here: it lives in the auth process (authd/), which rereads it when the
// network process reloads.
struct generation {
    config::config cfg;
    std::shared_ptr<storage::mail_store> store;
    std::shared_ptr<storage::mail_delivery> delivery;  // for the LMTP listener
    std::shared_ptr<asio::ssl::context> tls;  // null without [tls]
};

// Assembles the config file's text (as the auth process read it for the reload, so the network
// process need not open the file) as `poplar check` does. Throws config::config_error with every
// problem found. Runs on the worker pool.
using generation_loader = std::function<std::shared_ptr<const generation>(const std::string& config_text)>;

struct server_identity {
    std::string version;              // "poplar 0.1.0 (commit ..., RelWithDebInfo)"
    std::filesystem::path config_file;  // what reload rereads
};

// How many event loops (and so auth channels) a configuration runs: server.threads, or one per
// core.
std::size_t event_loops(const config::config& cfg);

class server : private control_handler {
public:
    // Binds every listener and the control socket (throws config::config_error naming the key
    // whose value cannot be bound). `auth_channels`: the sockets to the auth process
    // (authd/supervisor.h), one per event loop, whose hello has been awaited (the server owns
    // them). Nothing runs until run().
    server(std::shared_ptr<const generation> first, generation_loader loader, server_identity identity,
           std::vector<int> auth_channels);
    ~server() override;
    server(const server&) = delete;
    server& operator=(const server&) = delete;

    // Waits for the first auth process's hello on every channel; the error says why it did not
    // come. Call before run().
    result<void, std::string> wait_for_auth();

    // Serves until SIGTERM or SIGINT, then stops accepting, tells every session
    // -ERR [SYS/TEMP] (nothing is deleted) and returns within server.shutdown_grace. False when
    // it stopped because the auth supervisor went away.
    bool run();

private:
    struct listener;
    struct loop;
    struct live_generation;

    asio::awaitable<void> accept_loop(std::shared_ptr<listener> l);
    // A connection on a PROXY protocol listener from a trusted proxy: its header read (peeked,
    // limits::proxy_header_timeout), then admitted as the client it names.
    asio::awaitable<void> proxied(asio::ip::tcp::socket socket, asio::ip::address proxy_peer,
                                  std::shared_ptr<listener> l, std::shared_ptr<live_generation> gen, loop* target);
    asio::awaitable<result<proxy::header, std::string>> read_proxy_header(asio::ip::tcp::socket& socket);
    // Blocks, connection limits, then the connection itself on `target`. `client` is the address
    // every limit, penalty and log line uses; `proxy_peer` the proxy's, when there is one.
    void admit_and_start(asio::ip::tcp::socket socket, const asio::ip::address& client,
                         std::optional<asio::ip::address> proxy_peer, const listener& l,
                         const std::shared_ptr<live_generation>& gen, loop& target);
    std::shared_ptr<listener> bind_listener(const config::endpoint& ep, bool implicit_tls);
    void start_listener(const std::shared_ptr<listener>& l);
    // At accept: an address an authentication block holds is told so and closed (true).
    bool refuse_if_blocked(asio::ip::tcp::socket& socket, const asio::ip::address& peer, const listener& l);
    loop& least_loaded();
    void begin_shutdown();
    void stop_loops();
    std::shared_ptr<live_generation> make_live(std::shared_ptr<const generation> g);
    const config::config& cfg() const;

    // Reload: on loop 0. requested_by is for the log ("SIGHUP", "uid=0 pid=42").
    asio::awaitable<control::reply> reload(std::string requested_by);
    asio::awaitable<control::reply> on_control(control::request request, control_peer peer) override;
    control::reply status() const;
    control::reply who() const;
    control::reply kick(const std::string& user);
    control::reply stats() const;
    std::array<std::uint64_t, metrics::phase_names.size()> sessions_by_phase() const;
    // What a scrape of the metrics endpoint shows (loop 0).
    metrics::snapshot metrics_snapshot() const;

    std::vector<std::unique_ptr<loop>> loops_;  // loops_[0] also runs acceptors, control, signals
    util::worker_pool pool_;
    server_counters counters_;
    connection_limits limits_;
    detect::usage_alerts usage_;
    auth_state auth_shared_;
    relay_authenticator relay_{auth_shared_};
    std::atomic<bool> auth_lost_{false};
    const generation_loader loader_;
    const server_identity identity_;
    const std::chrono::system_clock::time_point started_;

    // Loop 0 only.
    std::shared_ptr<live_generation> current_;
    std::vector<std::shared_ptr<listener>> listeners_;
    std::unique_ptr<control_listener> control_;
    std::unique_ptr<lmtp_listener> lmtp_;
    lmtp_counters lmtp_counters_;
    std::unique_ptr<metrics_listener> metrics_;
    bool reloading_ = false;
    unsigned generation_number_ = 1;
    std::chrono::system_clock::time_point loaded_at_;

    mutable std::mutex mutex_;  // guards live_ (connections end on any event-loop thread)
    std::unordered_map<connection*, std::weak_ptr<connection>> live_;
    std::atomic<std::size_t> count_{0};
    std::atomic<bool> shutting_down_{false};
};

}  // namespace poplar::net
