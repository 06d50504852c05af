// Listeners, accept loops, connection registry, signal handling and graceful shutdown.
#include "net/server.h"

#include <asio/co_spawn.hpp>
#include <asio/detached.hpp>
#include <asio/ip/tcp.hpp>
#include <asio/ip/v6_only.hpp>
#include <asio/redirect_error.hpp>
#include <asio/signal_set.hpp>
#include <asio/steady_timer.hpp>
#include <asio/executor_work_guard.hpp>
#include <asio/use_awaitable.hpp>
#include <asio/write.hpp>
#include <fmt/format.h>
#include <spdlog/spdlog.h>
#include <sys/resource.h>
#include <unistd.h>

#include <functional>
#include <thread>

#include "core/reply.h"
#include "net/tls_context.h"

namespace poplar::net {

using asio::ip::tcp;
using asio::use_awaitable;

// One event loop: an io_context run by exactly one thread (concurrency hint 1 lets Asio skip
// the locking a shared scheduler needs), and its share of the connections.
struct server::loop {
    asio::io_context io{1};
    std::atomic<std::size_t> live{0};
};

struct server::listener {
    tcp::acceptor acceptor;
    bool implicit_tls;
    std::string name;  // "pop3 127.0.0.1:1110", for logs
};

namespace {

unsigned or_cores(unsigned n) {
    const unsigned cores = std::max(1u, std::thread::hardware_concurrency());
    return n == 0 ? cores : n;
}

std::string default_hostname() {
    char buf[256] = {};
    if (::gethostname(buf, sizeof buf - 1) != 0 || buf[0] == '\0') {
        return "localhost";
    }
    return buf;
}

// Every connection is a file descriptor: lift the soft limit to the hard one so that 10,000+
// concurrent sessions do not fail with EMFILE under a default `ulimit -n 1024`.
void raise_fd_limit() {
    rlimit rl{};
    if (::getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        ::setrlimit(RLIMIT_NOFILE, &rl);
    }
}

}  // namespace

server::server(const config::config& cfg, auth::authenticator& auth, storage::mail_store& store)
    : cfg_(cfg),
      pool_(or_cores(cfg.server.worker_threads)),
      tls_(cfg.tls ? make_server_tls_context(*cfg.tls) : nullptr),
      ctx_{cfg.policy,
           cfg.timeout,
           auth,
           store,
           cfg.storage.locking,
           pool_,
           tls_.get(),
           cfg.server.hostname.empty() ? default_hostname() : cfg.server.hostname} {
    raise_fd_limit();
    for (unsigned i = 0; i < or_cores(cfg.server.threads); ++i) {
        loops_.push_back(std::make_unique<loop>());
    }
    asio::io_context& io0 = loops_.front()->io;
    auto bind_all = [&](const std::vector<config::endpoint>& eps, bool implicit_tls, const char* key) {
        for (const config::endpoint& ep : eps) {
            asio::error_code ec;
            const asio::ip::address addr = asio::ip::make_address(ep.host, ec);
            if (ec) {
                throw config::config_error(
                    fmt::format("listen.{}: \"{}\" is not an IP address", key, ep.to_string()));
            }
            tcp::endpoint endpoint(addr, ep.port);
            tcp::acceptor acc(io0);
            acc.open(endpoint.protocol(), ec);
            if (!ec) {
                acc.set_option(tcp::acceptor::reuse_address(true), ec);
                if (addr.is_v6()) {
                    // "[::]:110" should not also grab IPv4: admins list 0.0.0.0 separately.
                    acc.set_option(asio::ip::v6_only(true), ec);
                }
                acc.bind(endpoint, ec);
            }
            if (!ec) {
                acc.listen(asio::socket_base::max_listen_connections, ec);
            }
            if (ec) {
                throw config::config_error(
                    fmt::format("listen.{}: cannot listen on {}: {}", key, ep.to_string(), ec.message()));
            }
            const tcp::endpoint bound = acc.local_endpoint();
            const std::string host = bound.address().to_string();
            std::string name = fmt::format("{} {}", key,
                                           bound.address().is_v6() ? fmt::format("[{}]:{}", host, bound.port())
                                                                   : fmt::format("{}:{}", host, bound.port()));
            listeners_.push_back(std::make_unique<listener>(listener{std::move(acc), implicit_tls, std::move(name)}));
        }
    };
    bind_all(cfg.pop3, false, "pop3");
    bind_all(cfg.pop3s, true, "pop3s");
}

server::~server() {
    // Order matters. A worker job still running completes onto its connection's loop, so the
    // pool is drained while every loop exists; then loop 0 goes first, because its pending
    // accepts hold sockets that already belong to the other loops.
    pool_.join();
    listeners_.clear();
    for (auto& l : loops_) {
        l.reset();
    }
}

void server::forget(connection* c) {
    std::lock_guard lock(mutex_);
    live_.erase(c);
}

// Least-loaded rather than round-robin: sessions differ in length by orders of magnitude (an
// idle mutt holds its session for ten minutes, a fetchmail poll lasts milliseconds).
server::loop& server::least_loaded() {
    loop* best = loops_.front().get();
    for (auto& l : loops_) {
        if (l->live.load(std::memory_order_relaxed) < best->live.load(std::memory_order_relaxed)) {
            best = l.get();
        }
    }
    return *best;
}

void server::stop_loops() {
    for (auto& l : loops_) {
        l->io.stop();
    }
}

asio::awaitable<void> server::accept_loop(listener& l) {
    asio::io_context& io0 = loops_.front()->io;
    while (!shutting_down_) {
        asio::error_code ec;
        loop& target = least_loaded();
        // Accepted straight onto the target loop's io_context: the socket and the connection's
        // timers are that loop's from the start, and its coroutine never leaves it.
        tcp::socket socket =
            co_await l.acceptor.async_accept(target.io, asio::redirect_error(use_awaitable, ec));
        if (ec) {
            if (ec == asio::error::operation_aborted || shutting_down_) {
                co_return;
            }
            // EMFILE/ENFILE/ENOBUFS: back off instead of spinning on a full descriptor table.
            spdlog::error("accept failed on {}: {}", l.name, ec.message());
            asio::steady_timer t(io0, std::chrono::milliseconds(100));
            co_await t.async_wait(asio::redirect_error(use_awaitable, ec));
            continue;
        }
        socket.set_option(tcp::no_delay(true), ec);
        if (count_.load() >= cfg_.server.max_connections) {
            spdlog::warn("connection refused: rip={} reason=\"server.max_connections reached\"",
                         socket.remote_endpoint(ec).address().to_string());
            if (!l.implicit_tls) {
                static const std::string busy = core::err(core::resp_code::sys_temp, "too many connections, try later");
                socket.non_blocking(true, ec);
                asio::write(socket, asio::buffer(busy), ec);
            }
            socket.close(ec);
            continue;
        }
        auto conn = std::make_shared<connection>(std::move(socket), ctx_, l.implicit_tls);
        {
            std::lock_guard lock(mutex_);
            live_.insert(conn.get());
        }
        ++count_;
        target.live.fetch_add(1, std::memory_order_relaxed);
        asio::co_spawn(target.io, [conn]() { return conn->run(); }, [this, &target, raw = conn.get()](std::exception_ptr e) {
            if (e) {
                // A bug, not a client's doing: log it and keep serving everyone else.
                try {
                    std::rethrow_exception(e);
                } catch (const std::exception& ex) {
                    spdlog::error("session aborted by an internal error: {}", ex.what());
                }
            }
            forget(raw);
            target.live.fetch_sub(1, std::memory_order_relaxed);
            --count_;
        });
    }
}

void server::begin_shutdown() {
    if (shutting_down_.exchange(true)) {
        return;
    }
    spdlog::info("shutdown: closing listeners, ending {} sessions", count_.load());
    for (auto& l : listeners_) {
        asio::error_code ec;
        l->acceptor.close(ec);
    }
    std::lock_guard lock(mutex_);
    for (connection* c : live_) {
        c->stop();
    }
}

void server::run() {
    asio::io_context& io0 = loops_.front()->io;
    for (auto& l : listeners_) {
        spdlog::info("listening: {}", l->name);
        asio::co_spawn(io0, accept_loop(*l), asio::detached);
    }
    // SIGHUP would kill the process by default; configuration reload is not implemented yet, so
    // it is logged and ignored rather than dropping every session without a goodbye.
    asio::signal_set hangup(io0, SIGHUP);
    std::function<void(asio::error_code, int)> on_hup = [&](asio::error_code ec, int) {
        if (ec) {
            return;
        }
        spdlog::warn("received SIGHUP: configuration reload is not supported yet; ignored");
        hangup.async_wait(on_hup);
    };
    hangup.async_wait(on_hup);
    asio::signal_set signals(io0, SIGINT, SIGTERM);
    signals.async_wait([this, &hangup, &io0](asio::error_code ec, int signo) {
        if (ec) {
            return;
        }
        spdlog::info("received signal {}", signo);
        asio::error_code ignored;
        hangup.cancel(ignored);
        begin_shutdown();
        // Wait for sessions to say goodbye, at most shutdown_grace, then stop the loop.
        asio::co_spawn(io0, [this, &io0]() -> asio::awaitable<void> {
            const auto until = std::chrono::steady_clock::now() + cfg_.server.shutdown_grace;
            asio::steady_timer t(io0);
            while (count_.load() > 0 && std::chrono::steady_clock::now() < until) {
                t.expires_after(std::chrono::milliseconds(20));
                co_await t.async_wait(use_awaitable);
            }
            if (count_.load() > 0) {
                spdlog::warn("shutdown: {} sessions did not end within the grace period", count_.load());
            }
            stop_loops();
        }, asio::detached);
    });

    // Loops other than 0 have no work until a connection arrives: the guard keeps run() from
    // returning at once.
    std::vector<std::thread> extra;
    std::vector<asio::executor_work_guard<asio::io_context::executor_type>> guards;
    for (std::size_t i = 1; i < loops_.size(); ++i) {
        guards.push_back(asio::make_work_guard(loops_[i]->io));
        extra.emplace_back([&io = loops_[i]->io] { io.run(); });
    }
    io0.run();
    guards.clear();
    stop_loops();
    for (std::thread& t : extra) {
        t.join();
    }
    spdlog::info("shutdown complete");
}

}  // namespace poplar::net
