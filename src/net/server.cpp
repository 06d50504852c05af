// Listeners, accept loops, connection registry, signal handling and graceful shutdown.
#include "net/server.h"

#include <asio/co_spawn.hpp>
#include <asio/detached.hpp>
#include <asio/ip/tcp.hpp>
#include <asio/ip/v6_only.hpp>
#include <asio/redirect_error.hpp>
#include <asio/signal_set.hpp>
#include <asio/steady_timer.hpp>
#include <asio/strand.hpp>
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
      io_(static_cast<int>(or_cores(cfg.server.threads))),
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
    auto bind_all = [&](const std::vector<config::endpoint>& eps, bool implicit_tls, const char* key) {
        for (const config::endpoint& ep : eps) {
            asio::error_code ec;
            const asio::ip::address addr = asio::ip::make_address(ep.host, ec);
            if (ec) {
                throw config::config_error(
                    fmt::format("listen.{}: \"{}\" is not an IP address", key, ep.to_string()));
            }
            tcp::endpoint endpoint(addr, ep.port);
            tcp::acceptor acc(io_);
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

server::~server() = default;

void server::forget(connection* c) {
    std::lock_guard lock(mutex_);
    live_.erase(c);
}

asio::awaitable<void> server::accept_loop(listener& l) {
    while (!shutting_down_) {
        asio::error_code ec;
        tcp::socket socket =
            co_await l.acceptor.async_accept(asio::make_strand(io_), asio::redirect_error(use_awaitable, ec));
        if (ec) {
            if (ec == asio::error::operation_aborted || shutting_down_) {
                co_return;
            }
            // EMFILE/ENFILE/ENOBUFS: back off instead of spinning on a full descriptor table.
            spdlog::error("accept failed on {}: {}", l.name, ec.message());
            asio::steady_timer t(io_, std::chrono::milliseconds(100));
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
        const auto strand = socket.get_executor();
        auto conn = std::make_shared<connection>(std::move(socket), ctx_, l.implicit_tls);
        {
            std::lock_guard lock(mutex_);
            live_.insert(conn.get());
        }
        ++count_;
        asio::co_spawn(strand, [conn]() { return conn->run(); }, [this, raw = conn.get()](std::exception_ptr e) {
            if (e) {
                // A bug, not a client's doing: log it and keep serving everyone else.
                try {
                    std::rethrow_exception(e);
                } catch (const std::exception& ex) {
                    spdlog::error("session aborted by an internal error: {}", ex.what());
                }
            }
            forget(raw);
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
    for (auto& l : listeners_) {
        spdlog::info("listening: {}", l->name);
        asio::co_spawn(io_, accept_loop(*l), asio::detached);
    }
    // SIGHUP would kill the process by default; configuration reload is not implemented yet, so
    // it is logged and ignored rather than dropping every session without a goodbye.
    asio::signal_set hangup(io_, SIGHUP);
    std::function<void(asio::error_code, int)> on_hup = [&](asio::error_code ec, int) {
        if (ec) {
            return;
        }
        spdlog::warn("received SIGHUP: configuration reload is not supported yet; ignored");
        hangup.async_wait(on_hup);
    };
    hangup.async_wait(on_hup);
    asio::signal_set signals(io_, SIGINT, SIGTERM);
    signals.async_wait([this, &hangup](asio::error_code ec, int signo) {
        if (ec) {
            return;
        }
        spdlog::info("received signal {}", signo);
        asio::error_code ignored;
        hangup.cancel(ignored);
        begin_shutdown();
        // Wait for sessions to say goodbye, at most shutdown_grace, then stop the loop.
        asio::co_spawn(io_, [this]() -> asio::awaitable<void> {
            const auto until = std::chrono::steady_clock::now() + cfg_.server.shutdown_grace;
            asio::steady_timer t(io_);
            while (count_.load() > 0 && std::chrono::steady_clock::now() < until) {
                t.expires_after(std::chrono::milliseconds(20));
                co_await t.async_wait(use_awaitable);
            }
            if (count_.load() > 0) {
                spdlog::warn("shutdown: {} sessions did not end within the grace period", count_.load());
            }
            io_.stop();
        }, asio::detached);
    });

    const unsigned threads = or_cores(cfg_.server.threads);
    std::vector<std::thread> extra;
    for (unsigned i = 1; i < threads; ++i) {
        extra.emplace_back([this] { io_.run(); });
    }
    io_.run();
    for (std::thread& t : extra) {
        t.join();
    }
    spdlog::info("shutdown complete");
}

}  // namespace poplar::net
