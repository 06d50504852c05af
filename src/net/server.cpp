// Listeners, accept loops, connection registry, the control commands, reload, signal handling
// and graceful shutdown.
#include "net/server.h"

#include <asio/co_spawn.hpp>
#include <asio/detached.hpp>
#include <asio/executor_work_guard.hpp>
#include <asio/post.hpp>
#include <asio/ip/tcp.hpp>
#include <asio/ip/v6_only.hpp>
#include <asio/redirect_error.hpp>
#include <asio/signal_set.hpp>
#include <asio/steady_timer.hpp>
#include <asio/use_awaitable.hpp>
#include <asio/write.hpp>
#include <fmt/chrono.h>
#include <fmt/format.h>
#include <spdlog/spdlog.h>
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <span>
#include <functional>
#include <map>
#include <thread>

#include "core/reply.h"
#include "net/service_notify.h"
#include "proxy/header.h"
#include "util/network.h"
#include "util/result.h"
#include "util/state_file.h"
#include "util/text.h"

namespace poplar::net {

using asio::ip::tcp;
using asio::use_awaitable;

// One event loop: an io_context run by exactly one thread (concurrency hint 1 lets Asio skip
// the locking a shared scheduler needs), and its share of the connections.
struct server::loop {
    // Declared first so that it is destroyed last: the sessions the io_context's destruction
    // ends still reach it (closed by then, see auth_channel::close()).
    std::unique_ptr<auth_channel> auth;  // this loop's socket to the auth process
    asio::io_context io{1};
    std::atomic<std::size_t> live{0};
    ~loop() {
        if (auth) {
            auth->close();  // its socket goes before the io_context it belongs to
        }
    }
};

struct server::listener {
    tcp::acceptor acceptor;
    bool implicit_tls;
    bool proxy;  // a PROXY protocol header comes first ([listen] pop3_proxy, pop3s_proxy)
    std::string configured;  // "pop3 127.0.0.1:0": as the config says, to compare across reloads
    std::string name;        // "pop3 127.0.0.1:1110": as bound, for logs
    bool closed = false;
};

// A generation and the connection context built from it: connections hold a shared_ptr to the
// context, which (by aliasing) keeps the whole generation alive until the last of them ends.
struct server::live_generation {
    std::shared_ptr<const generation> gen;
    connection_context ctx;
    connection_limits::settings limits;
    std::shared_ptr<const lmtp_context> lmtp;  // null without an LMTP listener or a delivery store
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

std::size_t descriptor_limit() {
    rlimit rl{};
    if (::getrlimit(RLIMIT_NOFILE, &rl) != 0 || rl.rlim_cur == RLIM_INFINITY) {
        return 1'000'000;
    }
    return static_cast<std::size_t>(rl.rlim_cur);
}

// server.max_connections, lowered so that every connection can hold what it may hold at once
// (its socket and an open message or directory; with exclusive locking also the session lock)
// with limits::reserved_descriptors to spare. Then the "too many connections" reply always has a
// descriptor to be sent on, instead of accept() failing with EMFILE.
std::size_t effective_total(const config::config& c, unsigned worker_threads) {
    const std::size_t per_connection = c.storage.locking == storage::lock_mode::exclusive ? 3 : 2;
    const std::size_t fds = descriptor_limit();
    const std::size_t reserve = limits::reserved_descriptors + 2 * worker_threads;
    const std::size_t room = fds > reserve ? (fds - reserve) / per_connection : 1;
    return std::max<std::size_t>(1, std::min<std::size_t>(c.server.max_connections, room));
}

std::string utc(std::chrono::system_clock::time_point t) {
    return fmt::format("{:%Y-%m-%dT%H:%M:%S}Z", std::chrono::floor<std::chrono::seconds>(t));
}

std::string span_text(std::chrono::system_clock::duration d) {
    const auto s = std::chrono::duration_cast<std::chrono::seconds>(d).count();
    if (s < 3600) {
        return fmt::format("{}m{:02}s", s / 60, s % 60);
    }
    if (s < 86400) {
        return fmt::format("{}h{:02}m", s / 3600, s / 60 % 60);
    }
    return fmt::format("{}d{:02}h", s / 86400, s / 3600 % 24);
}

std::string configured_name(const config::endpoint& ep, bool implicit_tls) {
    return fmt::format("{}{} {}", implicit_tls ? "pop3s" : "pop3", ep.proxy ? "_proxy" : "", ep.to_string());
}

// Settings a running server cannot change: they size or place what exists for its lifetime.
std::vector<std::string> restart_only_changes(const config::config& was, const config::config& now) {
    std::vector<std::string> out;
    if (was.server.threads != now.server.threads) {
        out.emplace_back("server.threads");
    }
    if (was.server.worker_threads != now.server.worker_threads) {
        out.emplace_back("server.worker_threads");
    }
    if (was.control.socket != now.control.socket || was.control.mode != now.control.mode ||
        was.control.group != now.control.group) {
        out.emplace_back("control");
    }
    if (was.auth.penalty_table_size != now.auth.penalty_table_size) {
        out.emplace_back("auth.penalty_table_size");
    }
    if (was.server.state_directory != now.server.state_directory) {
        out.emplace_back("server.state_directory");
    }
    if (was.metrics.listen.has_value() != now.metrics.listen.has_value() ||
        (was.metrics.listen && was.metrics.listen->to_string() != now.metrics.listen->to_string())) {
        out.emplace_back("metrics.listen");
    }
    if (was.lmtp.size() != now.lmtp.size() || was.lmtp_socket.sockets != now.lmtp_socket.sockets ||
        was.lmtp_socket.socket_mode != now.lmtp_socket.socket_mode ||
        was.lmtp_socket.socket_user != now.lmtp_socket.socket_user ||
        was.lmtp_socket.socket_group != now.lmtp_socket.socket_group) {
        out.emplace_back("listen.lmtp");
    } else {
        for (std::size_t i = 0; i < was.lmtp.size(); ++i) {
            if (was.lmtp[i].to_string() != now.lmtp[i].to_string()) {
                out.emplace_back("listen.lmtp");
                break;
            }
        }
    }
    return out;
}

}  // namespace

std::size_t event_loops(const config::config& cfg) { return or_cores(cfg.server.threads); }

server::server(std::shared_ptr<const generation> first, generation_loader loader, server_identity identity,
               std::vector<int> auth_channels)
    // Started in run(): serve confines itself (util/sandbox.h) in between, and Landlock binds
    // only the threads started after it.
    : pool_(or_cores(first->cfg.server.worker_threads), false),
      loader_(std::move(loader)),
      identity_(std::move(identity)),
      started_(std::chrono::system_clock::now()),
      loaded_at_(started_) {
    raise_fd_limit();
    for (std::size_t i = 0; i < event_loops(first->cfg); ++i) {
        loops_.push_back(std::make_unique<loop>());
    }
    if (auth_channels.size() != loops_.size()) {
        throw std::logic_error("one auth channel per event loop");
    }
    for (std::size_t i = 0; i < loops_.size(); ++i) {
        loops_[i]->auth = std::make_unique<auth_channel>(loops_[i]->io, auth_channels[i], auth_shared_);
    }
    current_ = make_live(std::move(first));
    for (const config::endpoint& ep : cfg().pop3) {
        listeners_.push_back(bind_listener(ep, false));
    }
    for (const config::endpoint& ep : cfg().pop3s) {
        listeners_.push_back(bind_listener(ep, true));
    }
    if (!cfg().lmtp.empty() || !cfg().lmtp_socket.sockets.empty()) {
        lmtp_ = std::make_unique<lmtp_listener>(loops_.front()->io, cfg());
    }
    if (!cfg().control.socket.empty()) {
        control_ = std::make_unique<control_listener>(loops_.front()->io, cfg().control,
                                                     static_cast<control_handler&>(*this));
    }
    if (cfg().metrics.listen) {
        metrics_ = std::make_unique<metrics_listener>(loops_.front()->io, *cfg().metrics.listen,
                                                     [this] { return metrics::format_exposition(metrics_snapshot()); });
    }
}

server::~server() {
    // Order matters. A worker job still running completes onto its connection's loop, so the
    // pool is drained while every loop exists; then loop 0 goes first, because its pending
    // accepts hold sockets that already belong to the other loops.
    pool_.join();
    for (auto& l : loops_) {
        l->auth->close();  // the auth process sees the end of its sockets and stops
    }
    control_.reset();
    metrics_.reset();
    lmtp_.reset();
    listeners_.clear();
    for (auto& l : loops_) {
        l.reset();
    }
}

const config::config& server::cfg() const { return current_->gen->cfg; }

std::shared_ptr<server::live_generation> server::make_live(std::shared_ptr<const generation> g) {
    const config::config& c = g->cfg;
    const std::size_t total = effective_total(c, or_cores(c.server.worker_threads));
    if (total < c.server.max_connections) {
        spdlog::warn("server.max_connections {} lowered to {}: the descriptor limit is {} ({} per connection, {} "
                     "kept for the server); raise LimitNOFILE",
                     c.server.max_connections, total, descriptor_limit(),
                     c.storage.locking == storage::lock_mode::exclusive ? 3 : 2,
                     limits::reserved_descriptors + 2 * or_cores(c.server.worker_threads));
    }
    auto live = std::make_shared<live_generation>(live_generation{
        g,
        connection_context{c.policy, c.timeout, relay_, *g->store, c.storage.locking, pool_, g->tls.get(),
                           c.server.hostname.empty() ? default_hostname() : c.server.hostname, counters_, limits_,
                           g->cfg.server, usage_, g->cfg.alerts, auth_shared_},
        connection_limits::settings{total, c.server.max_unauthenticated, c.server.max_connections_per_address,
                                    c.server.max_sessions_per_user},
        nullptr});
    if (g->delivery) {
        lmtp::session_policy policy;
        policy.hostname = live->ctx.hostname;
        policy.max_message_size = c.delivery.max_message_size;
        policy.max_recipients = c.lmtp_socket.max_recipients;
        policy.max_bad_commands = c.policy.max_bad_commands;
        // The aliasing shared_ptr keeps the generation (its config and store) alive as long as
        // an LMTP connection that started under it.
        live->lmtp = std::make_shared<const lmtp_context>(lmtp_context{
            g, g->cfg.delivery, *g->delivery, policy, limits::lmtp_timeout, pool_, lmtp_counters_});
    }
    return live;
}

std::shared_ptr<server::listener> server::bind_listener(const config::endpoint& ep, bool implicit_tls) {
    const char* key = ep.proxy ? (implicit_tls ? "pop3s_proxy" : "pop3_proxy") : (implicit_tls ? "pop3s" : "pop3");
    asio::error_code ec;
    const asio::ip::address addr = asio::ip::make_address(ep.host, ec);
    if (ec) {
        throw config::config_error(fmt::format("listen.{}: \"{}\" is not an IP address", key, ep.to_string()));
    }
    tcp::endpoint endpoint(addr, ep.port);
    tcp::acceptor acc(loops_.front()->io);
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
        throw config::config_error(fmt::format("listen.{}: cannot listen on {}: {}", key, ep.to_string(), ec.message()));
    }
    const tcp::endpoint bound = acc.local_endpoint();
    const std::string host = bound.address().to_string();
    std::string name = fmt::format("{} {}", key,
                                   bound.address().is_v6() ? fmt::format("[{}]:{}", host, bound.port())
                                                           : fmt::format("{}:{}", host, bound.port()));
    return std::make_shared<listener>(
        listener{std::move(acc), implicit_tls, ep.proxy, configured_name(ep, implicit_tls), std::move(name)});
}

bool server::refuse_if_blocked(tcp::socket& socket, const asio::ip::address& peer, const listener& l) {
    const detect::usage_alerts::address a = detect_address(address_key::of(peer));
    const std::chrono::milliseconds left = auth_shared_.blocked_for(a, std::chrono::steady_clock::now());
    if (left.count() == 0) {
        return false;
    }
    counters_.auth_blocks.fetch_add(1, std::memory_order_relaxed);
    counters_.count(counters_.connections_refused[static_cast<int>(metrics::refusal::blocked)]);
    spdlog::warn("connection refused: rip={} reason=\"address blocked after too many failed logins, {}s left\"",
                 peer.to_string(), (left.count() + 999) / 1000);
    asio::error_code ec;
    if (!l.implicit_tls) {
        // The greeting's place, as for the connection limits: [SYS/TEMP] (RFC 3206 §4), try later.
        static const std::string blocked =
            core::err(core::resp_code::sys_temp, "too many failed logins from your address, try again later");
        socket.non_blocking(true, ec);
        asio::write(socket, asio::buffer(blocked), ec);
    }
    socket.close(ec);
    return true;
}

void server::start_listener(const std::shared_ptr<listener>& l) {
    spdlog::info("listening: {}", l->name);
    asio::co_spawn(loops_.front()->io, accept_loop(l), asio::detached);
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

asio::awaitable<void> server::accept_loop(std::shared_ptr<listener> l) {
    asio::io_context& io0 = loops_.front()->io;
    while (!shutting_down_ && !l->closed) {
        asio::error_code ec;
        loop& target = least_loaded();
        // Accepted straight onto the target loop's io_context: the socket and the connection's
        // timers are that loop's from the start, and its coroutine never leaves it.
        tcp::socket socket = co_await l->acceptor.async_accept(target.io, asio::redirect_error(use_awaitable, ec));
        if (ec) {
            if (ec == asio::error::operation_aborted || shutting_down_ || l->closed) {
                co_return;
            }
            // EMFILE/ENFILE/ENOBUFS: back off instead of spinning on a full descriptor table.
            spdlog::error("accept failed on {}: {}", l->name, ec.message());
            asio::steady_timer t(io0, std::chrono::milliseconds(100));
            co_await t.async_wait(asio::redirect_error(use_awaitable, ec));
            continue;
        }
        socket.set_option(tcp::no_delay(true), ec);
        const asio::ip::address peer = socket.remote_endpoint(ec).address();
        if (l->proxy) {
            // Only a trusted proxy may say who the client is (server.trusted_proxies); its header
            // is read on the connection's own loop, so a slow one holds up no other accept.
            const auto mapped = util::mapped_address(peer.to_string());
            const auto& trusted = cfg().server.trusted_proxies;
            if (std::none_of(trusted.begin(), trusted.end(), [&](const util::network& n) { return n.contains(mapped); })) {
                counters_.count(counters_.connections_refused[static_cast<int>(metrics::refusal::proxy)]);
                spdlog::warn("proxy refused: rip={} reason=\"not in server.trusted_proxies\"", peer.to_string());
                socket.close(ec);
                continue;
            }
            asio::co_spawn(target.io, proxied(std::move(socket), peer, l, current_, &target), asio::detached);
            continue;
        }
        admit_and_start(std::move(socket), peer, std::nullopt, *l, current_, target);
    }
}

asio::awaitable<void> server::proxied(tcp::socket socket, asio::ip::address proxy_peer, std::shared_ptr<listener> l,
                                      std::shared_ptr<live_generation> gen, loop* target) {
    auto header = co_await read_proxy_header(socket);
    asio::error_code ec;
    if (!header) {
        counters_.count(counters_.connections_refused[static_cast<int>(metrics::refusal::proxy)]);
        spdlog::warn("proxy refused: rip={} reason=\"{}\"", proxy_peer.to_string(), util::log_escape(header.error()));
        socket.close(ec);
        co_return;
    }
    if (shutting_down_) {
        socket.close(ec);  // begin_shutdown() stopped the connections there were; none now
        co_return;
    }
    asio::ip::address client = proxy_peer;
    if (!header->local) {
        const proxy::address& src = header->source;
        if (src.v6) {
            asio::ip::address_v6::bytes_type b{};
            std::copy(src.bytes.begin(), src.bytes.end(), b.begin());
            client = asio::ip::make_address_v6(b);
        } else {
            client = asio::ip::make_address_v4(asio::ip::address_v4::bytes_type{src.bytes[0], src.bytes[1], src.bytes[2],
                                                                              src.bytes[3]});
        }
    }
    spdlog::info("proxied: rip={} proxy={} version={}{}", client.to_string(), proxy_peer.to_string(), header->version,
                 header->local ? " local" : "");
    admit_and_start(std::move(socket), client, proxy_peer, *l, gen, *target);
}

asio::awaitable<result<proxy::header, std::string>> server::read_proxy_header(tcp::socket& socket) {
    // Peeked, not read: whatever follows the header (a TLS ClientHello, pipelined commands)
    // stays in the kernel for the session. A header arrives whole in practice (HAProxy writes it
    // in one call); a partial one is looked at again every few milliseconds until the deadline.
    const auto deadline = std::chrono::steady_clock::now() + limits::proxy_header_timeout;
    asio::steady_timer timer(socket.get_executor());
    std::array<std::uint8_t, proxy::max_header> buf{};
    asio::error_code ec;
    for (;;) {
        timer.expires_at(deadline);
        timer.async_wait([&socket](asio::error_code e) {
            if (!e) {
                asio::error_code ignored;
                socket.cancel(ignored);
            }
        });
        co_await socket.async_wait(tcp::socket::wait_read, asio::redirect_error(use_awaitable, ec));
        timer.cancel();
        if (ec) {
            co_return unexpected(std::string(ec == asio::error::operation_aborted ? "no complete PROXY header within "
                                                                                  "the deadline"
                                                                                : ec.message()));
        }
        const ssize_t n = ::recv(socket.native_handle(), buf.data(), buf.size(), MSG_PEEK | MSG_DONTWAIT);
        if (n == 0) {
            co_return unexpected(std::string("connection closed before a complete PROXY header"));
        }
        if (n < 0) {
            if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) {
                continue;
            }
            co_return unexpected(std::string(std::strerror(errno)));
        }
        const proxy::parsed p = proxy::parse(std::span<const std::uint8_t>(buf.data(), static_cast<std::size_t>(n)));
        if (p.what == proxy::parsed::kind::invalid) {
            co_return unexpected(p.error);
        }
        if (p.what == proxy::parsed::kind::complete) {
            // Exactly the header's bytes, which the peek showed are there.
            if (::recv(socket.native_handle(), buf.data(), p.length, MSG_DONTWAIT) != static_cast<ssize_t>(p.length)) {
                co_return unexpected(std::string("could not consume the PROXY header"));
            }
            co_return p.value;
        }
        if (std::chrono::steady_clock::now() >= deadline) {
            co_return unexpected(std::string("no complete PROXY header within the deadline"));
        }
        timer.expires_after(std::chrono::milliseconds(5));
        co_await timer.async_wait(asio::redirect_error(use_awaitable, ec));
    }
}

void server::admit_and_start(tcp::socket socket, const asio::ip::address& client,
                             std::optional<asio::ip::address> proxy_peer, const listener& l,
                             const std::shared_ptr<live_generation>& gen, loop& target) {
    asio::error_code ec;
    if (refuse_if_blocked(socket, client, l)) {
        return;
    }
    const connection_limits::verdict admitted = limits_.admit(address_key::of(client), gen->limits);
    if (admitted != connection_limits::verdict::ok) {
        counters_.count(counters_.connections_refused[static_cast<int>(
            admitted == connection_limits::verdict::per_address       ? metrics::refusal::max_connections_per_address
            : admitted == connection_limits::verdict::unauthenticated ? metrics::refusal::max_unauthenticated
                                                                      : metrics::refusal::max_connections)]);
        spdlog::warn("connection refused: rip={} reason=\"{}\"", client.to_string(), verdict_reason(admitted));
        // On an implicit-TLS port nothing can be said before a handshake, and a flood is
        // exactly when poplar should not do handshakes: closed without a reply there.
        if (!l.implicit_tls) {
            static const std::string busy = core::err(core::resp_code::sys_temp, "too many connections, try later");
            static const std::string waiting =
                core::err(core::resp_code::sys_temp, "too many connections waiting to log in, try later");
            static const std::string from_you =
                core::err(core::resp_code::sys_temp, "too many connections from your address");
            const std::string& reply = admitted == connection_limits::verdict::per_address ? from_you
                                       : admitted == connection_limits::verdict::unauthenticated ? waiting
                                                                                                 : busy;
            socket.non_blocking(true, ec);
            asio::write(socket, asio::buffer(reply), ec);
        }
        socket.close(ec);
        return;
    }
    counters_.connections.fetch_add(1, std::memory_order_relaxed);
    // The context of the connection's generation; the connection keeps it alive (aliasing).
    std::shared_ptr<const connection_context> ctx(gen, &gen->ctx);
    std::optional<asio::ip::address> override_client;
    if (proxy_peer) {
        override_client = client;
    }
    auto conn = std::make_shared<connection>(std::move(socket), std::move(ctx), *target.auth, l.implicit_tls,
                                             override_client);
    {
        std::lock_guard lock(mutex_);
        live_.emplace(conn.get(), conn);
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
        {
            std::lock_guard lock(mutex_);
            live_.erase(raw);
        }
        target.live.fetch_sub(1, std::memory_order_relaxed);
        --count_;
    });
}

void server::begin_shutdown() {
    if (shutting_down_.exchange(true)) {
        return;
    }
    notify_service_manager("STOPPING=1");
    spdlog::info("shutdown: closing listeners, ending {} sessions", count_.load());
    for (auto& l : listeners_) {
        asio::error_code ec;
        l->closed = true;
        l->acceptor.close(ec);
    }
    if (control_) {
        control_->close();
    }
    if (metrics_) {
        metrics_->close();
    }
    if (lmtp_) {
        lmtp_->close();
    }
    std::lock_guard lock(mutex_);
    for (auto& [raw, weak] : live_) {
        if (auto c = weak.lock()) {
            c->stop();
        }
    }
}

asio::awaitable<control::reply> server::reload(std::string requested_by) {
    if (reloading_) {
        co_return control::reply{false, "a reload is already in progress"};
    }
    if (shutting_down_) {
        co_return control::reply{false, "the server is shutting down"};
    }
    reloading_ = true;
    notify_service_manager("RELOADING=1");
    spdlog::info("reload: rereading {} (requested by {})", identity_.config_file.string(), requested_by);
    // The auth process rereads the configuration file and the passwd-file first and keeps them
    // aside (authd/auth_process.cpp); a problem there refuses the whole reload, as at start. Its
    // copy of the file's text is what this process assembles.
    std::optional<auth_wire::reload_reply> staged = co_await loops_.front()->auth->reload(false);
    // The loader reads the TLS files and hashes nothing, but a slow disk must not stall the
    // sessions on loop 0: it runs on the pool.
    auto job = [this, staged]() -> result<std::shared_ptr<const generation>, config::config_error> {
        if (!staged) {
            return unexpected(config::config_error("auth process: no answer to the reload (see its log lines)"));
        }
        if (!staged->ok) {
            std::vector<std::string> problems;
            std::string_view rest = staged->message;
            while (!rest.empty()) {
                const std::size_t nl = rest.find('\n');
                problems.emplace_back(rest.substr(0, nl));
                rest = nl == std::string_view::npos ? std::string_view() : rest.substr(nl + 1);
            }
            return unexpected(config::config_error(std::move(problems)));
        }
        try {
            return loader_(staged->config_text);
        } catch (const config::config_error& e) {
            return unexpected(e);
        } catch (const std::exception& e) {
            return unexpected(config::config_error(fmt::format("cannot reload: {}", e.what())));
        }
    };
    auto loaded = co_await pool_.async_run(std::move(job));
    control::reply out;
    std::vector<std::shared_ptr<listener>> added;
    try {
        if (!loaded) {
            throw loaded.error();
        }
        const config::config& now = loaded.value()->cfg;
        // Listeners: bind what is new before anything changes, so a port that cannot be bound
        // refuses the whole reload and the running configuration stays as it was.
        std::map<std::string, std::shared_ptr<listener>> kept;
        for (const auto& l : listeners_) {
            kept.emplace(l->configured, l);
        }
        std::vector<std::shared_ptr<listener>> next;
        auto want = [&](const std::vector<config::endpoint>& eps, bool implicit_tls) {
            for (const config::endpoint& ep : eps) {
                auto it = kept.find(configured_name(ep, implicit_tls));
                if (it != kept.end()) {
                    next.push_back(it->second);
                    kept.erase(it);
                } else {
                    added.push_back(bind_listener(ep, implicit_tls));
                    next.push_back(added.back());
                }
            }
        };
        want(now.pop3, false);
        want(now.pop3s, true);
        // Both halves are checked: the auth process switches to what it staged.
        std::optional<auth_wire::reload_reply> committed = co_await loops_.front()->auth->reload(true);
        if (!committed || !committed->ok) {
            throw config::config_error(committed ? committed->message : "auth process: no answer to the reload commit");
        }
        auth_shared_.set_mechanisms(std::move(committed->mechanisms));
        for (const std::string& key : restart_only_changes(cfg(), now)) {
            spdlog::warn("reload: {} changed; the new value takes effect at the next restart", key);
        }
        for (auto& [configured, l] : kept) {
            spdlog::info("stopped listening: {}", l->name);
            asio::error_code ec;
            l->closed = true;
            l->acceptor.close(ec);
        }
        for (const auto& l : added) {
            start_listener(l);
        }
        listeners_ = std::move(next);
        spdlog::set_level(spdlog::level::from_str(now.log_level));
        std::size_t keeping = 0;
        {
            std::lock_guard lock(mutex_);
            keeping = live_.size();
        }
        current_ = make_live(std::move(loaded.value()));
        ++generation_number_;
        loaded_at_ = std::chrono::system_clock::now();
        counters_.reloads.fetch_add(1, std::memory_order_relaxed);
        spdlog::info("reload: done, configuration generation {}; {} sessions in progress keep the previous one",
                     generation_number_, keeping);
        out = {true, fmt::format("reloaded {} (configuration generation {})\n", identity_.config_file.string(),
                                 generation_number_)};
    } catch (const config::config_error& e) {
        for (const auto& l : added) {
            asio::error_code ec;
            l->acceptor.close(ec);
        }
        counters_.reload_failures.fetch_add(1, std::memory_order_relaxed);
        std::string body;
        for (const std::string& problem : e.problems()) {
            spdlog::error("reload refused, the running configuration stays: {}", problem);
            body += problem + "\n";
        }
        out = {false, body};
    }
    notify_service_manager("READY=1");
    reloading_ = false;
    co_return out;
}

asio::awaitable<control::reply> server::on_control(control::request request, control_peer peer) {
    switch (request.what) {
        case control::command::status:
            co_return status();
        case control::command::who:
            co_return who();
        case control::command::kick:
            co_return kick(request.argument);
        case control::command::stats:
            co_return stats();
        case control::command::reload:
            co_return co_await reload(peer.describe());
    }
    co_return control::reply{false, "unknown command"};
}

std::array<std::uint64_t, metrics::phase_names.size()> server::sessions_by_phase() const {
    std::array<std::uint64_t, metrics::phase_names.size()> by_phase{};
    std::lock_guard lock(mutex_);
    for (const auto& [raw, weak] : live_) {
        if (auto c = weak.lock()) {
            ++by_phase[static_cast<std::size_t>(c->current_phase())];
        }
    }
    return by_phase;
}

control::reply server::status() const {
    const auto now = std::chrono::system_clock::now();
    const auto by_phase = sessions_by_phase();
    std::uint64_t total = 0;
    for (std::uint64_t n : by_phase) {
        total += n;
    }
    std::string body = identity_.version + "\n";
    body += fmt::format("pid: {}\n", ::getpid());
    body += fmt::format("started: {} (up {})\n", utc(started_), span_text(now - started_));
    body += fmt::format("config: {}, loaded {} (generation {})\n", identity_.config_file.string(), utc(loaded_at_),
                        generation_number_);
    std::string names;
    for (const auto& l : listeners_) {
        names += (names.empty() ? "" : ", ") + l->name;
    }
    if (control_) {
        names += (names.empty() ? "control " : ", control ") + control_->path().string();
    }
    if (metrics_) {
        names += (names.empty() ? "metrics " : ", metrics ") + metrics_->name();
    }
    body += fmt::format("listeners: {}\n", names);
    body += fmt::format("sessions: {} (", total);
    for (std::size_t p = 0; p < by_phase.size(); ++p) {
        body += fmt::format("{}{} {}", p == 0 ? "" : ", ", phase_name(static_cast<phase>(p)), by_phase[p]);
    }
    body += fmt::format(")\nthreads: {} event loops, {} workers\n", loops_.size(),
                        or_cores(cfg().server.worker_threads));
    return {true, body};
}

control::reply server::who() const {
    std::vector<connection_info> rows;
    {
        std::lock_guard lock(mutex_);
        for (const auto& [raw, weak] : live_) {
            if (auto c = weak.lock()) {
                connection_info i = c->info();
                if (!i.user.empty() && (i.where == phase::transaction || i.where == phase::update)) {
                    rows.push_back(std::move(i));
                }
            }
        }
    }
    std::sort(rows.begin(), rows.end(), [](const connection_info& a, const connection_info& b) {
        return a.user != b.user ? a.user < b.user : a.logged_in < b.logged_in;
    });
    const auto now = std::chrono::system_clock::now();
    std::string body = fmt::format("{:<32} {:<39} {:<20} {:>9} {:<3} {:>12} {:>12}\n", "USER", "RIP", "SINCE", "FOR",
                                   "TLS", "IN", "OUT");
    for (const connection_info& i : rows) {
        body += fmt::format("{:<32} {:<39} {:<20} {:>9} {:<3} {:>12} {:>12}\n", util::log_escape(i.user), i.rip,
                            utc(i.logged_in), span_text(now - i.logged_in), i.tls ? "yes" : "no", i.bytes_in,
                            i.bytes_out);
    }
    body += fmt::format("{} sessions logged in\n", rows.size());
    return {true, body};
}

control::reply server::kick(const std::string& user) {
    std::size_t n = 0;
    {
        std::lock_guard lock(mutex_);
        for (const auto& [raw, weak] : live_) {
            if (auto c = weak.lock()) {
                if (c->info().user == user) {
                    c->kick();
                    ++n;
                }
            }
        }
    }
    spdlog::info("kick: user=\"{}\" sessions={}", util::log_escape(user), n);
    if (n == 0) {
        return {false, fmt::format("no session of user \"{}\" is logged in\n", util::log_escape(user))};
    }
    return {true, fmt::format("kicked {} session{} of user \"{}\"; nothing was deleted\n", n, n == 1 ? "" : "s",
                              util::log_escape(user))};
}

control::reply server::stats() const {
    const auto v = [](const std::atomic<std::uint64_t>& a) { return a.load(std::memory_order_relaxed); };
    const server_counters& c = counters_;
    std::string body;
    auto line = [&body](std::string_view name, std::uint64_t value) { body += fmt::format("{} {}\n", name, value); };
    line("uptime_seconds", static_cast<std::uint64_t>(std::chrono::duration_cast<std::chrono::seconds>(
                                                          std::chrono::system_clock::now() - started_)
                                                          .count()));
    line("sessions_active", count_.load());
    line("connections_total", v(c.connections));
    std::uint64_t refused = 0;
    for (const auto& by_reason : c.connections_refused) {
        refused += v(by_reason);
    }
    line("connections_refused_total", refused);
    line("tls_handshake_failures_total", v(c.tls_handshake_failures));
    std::uint64_t logins = 0;
    for (const auto& by_mechanism : c.logins) {
        logins += v(by_mechanism);
    }
    line("logins_total", logins);
    line("auth_failures_total", v(c.auth_failures));
    line("auth_unavailable_total", v(c.auth_unavailable));
    line("retr_total", v(c.retr));
    line("retr_bytes_total", v(c.retr_bytes));
    line("top_total", v(c.top));
    line("dele_total", v(c.dele));
    line("bytes_in_total", v(c.bytes_in));
    line("bytes_out_total", v(c.bytes_out));
    for (int r = 0; r < 7; ++r) {
        std::string name = fmt::format("sessions_ended_{}_total",
                                       connection::reason_name(static_cast<connection::end_reason>(r)));
        std::replace(name.begin(), name.end(), '-', '_');
        line(name, v(c.ended[r]));
    }
    for (int k = 0; k < 4; ++k) {
        line(fmt::format("alerts_{}_total", detect::name(static_cast<detect::alert_kind>(k))), v(c.alerts[k]));
    }
    line("auth_penalties_total", v(c.auth_penalties));
    line("auth_blocks_total", v(c.auth_blocks));
    line("auth_penalty_keys", auth_shared_.penalty_keys.load(std::memory_order_relaxed));
    line("reloads_total", v(c.reloads));
    line("reload_failures_total", v(c.reload_failures));
    return {true, body};
}

metrics::snapshot server::metrics_snapshot() const {
    const auto v = [](const std::atomic<std::uint64_t>& a) { return a.load(std::memory_order_relaxed); };
    const server_counters& c = counters_;
    metrics::snapshot s;
    s.version = identity_.version;
    s.start_time_seconds =
        std::chrono::duration_cast<std::chrono::seconds>(started_.time_since_epoch()).count();
    s.connections = v(c.connections);
    for (std::size_t r = 0; r < s.connections_refused.size(); ++r) {
        s.connections_refused[r] = v(c.connections_refused[r]);
    }
    s.tls_handshake_failures = v(c.tls_handshake_failures);
    s.sessions = sessions_by_phase();
    for (std::size_t r = 0; r < s.sessions_ended.size(); ++r) {
        s.sessions_ended[r] = v(c.ended[r]);
    }
    for (std::size_t m = 0; m < s.logins.size(); ++m) {
        s.logins[m] = v(c.logins[m]);
    }
    using metrics::auth_failure;
    s.auth_failures[static_cast<int>(auth_failure::invalid_credentials)] = v(c.auth_failures);
    s.auth_failures[static_cast<int>(auth_failure::plaintext_refused)] = v(c.auth_plaintext_refused);
    s.auth_failures[static_cast<int>(auth_failure::malformed)] = v(c.auth_malformed);
    s.auth_failures[static_cast<int>(auth_failure::unavailable)] = v(c.auth_unavailable);
    s.auth_penalties = v(c.auth_penalties);
    s.auth_blocks = v(c.auth_blocks);
    s.auth_penalty_keys = auth_shared_.penalty_keys.load(std::memory_order_relaxed);
    for (std::size_t k = 0; k < s.alerts.size(); ++k) {
        s.alerts[k] = v(c.alerts[k]);
    }
    s.retr_messages = v(c.retr);
    s.retr_bytes = v(c.retr_bytes);
    s.top_messages = v(c.top);
    s.dele_messages = v(c.dele);
    s.bytes_in = v(c.bytes_in);
    s.bytes_out = v(c.bytes_out);
    for (std::size_t k = 0; k < s.storage_errors.size(); ++k) {
        s.storage_errors[k] = v(c.storage_errors[k]);
    }
    s.reloads = v(c.reloads);
    s.reload_failures = v(c.reload_failures);
    for (std::size_t i = 0; i < s.command_latency.size(); ++i) {
        for (std::size_t b = 0; b < metrics::latency_buckets; ++b) {
            s.command_latency[i].buckets[b] = v(c.command_latency[i].buckets[b]);
        }
        s.command_latency[i].sum_ns = v(c.command_latency[i].sum_ns);
    }
    return s;
}

result<void, std::string> server::wait_for_auth() {
    for (auto& l : loops_) {
        if (auto ok = l->auth->wait_for_hello(limits::auth_start_timeout); !ok) {
            return ok;
        }
    }
    return {};
}

bool server::run() {
    asio::io_context& io0 = loops_.front()->io;
    pool_.start();
    for (auto& l : listeners_) {
        start_listener(l);
    }
    if (control_) {
        control_->start();
    }
    if (lmtp_) {
        lmtp_->start(
            [this] {
                loop& l = least_loaded();
                return lmtp_listener::target{&l.io, l.auth.get()};
            },
            // Loop 0 owns current_ (reload replaces it there), and accepts run on loop 0.
            [this] { return current_->lmtp; });
    }
    if (metrics_) {
        metrics_->start();
    }
    // SIGHUP: reload, as every Unix daemon and certbot's renewal hooks expect.
    asio::signal_set hangup(io0, SIGHUP);
    std::function<void(asio::error_code, int)> on_hup = [&](asio::error_code ec, int) {
        if (ec) {
            return;
        }
        spdlog::info("received SIGHUP");
        asio::co_spawn(io0, [this]() -> asio::awaitable<void> { co_await reload("SIGHUP"); }, asio::detached);
        hangup.async_wait(on_hup);
    };
    hangup.async_wait(on_hup);
    // Stops accepting, tells the sessions, waits for them at most shutdown_grace, then stops
    // the loops: at SIGTERM/SIGINT, and when the auth supervisor is gone.
    auto stop_serving = [this, &hangup, &io0] {
        asio::error_code ignored;
        hangup.cancel(ignored);
        begin_shutdown();
        asio::co_spawn(io0, [this, &io0]() -> asio::awaitable<void> {
            const auto until = std::chrono::steady_clock::now() + cfg().server.shutdown_grace;
            asio::steady_timer t(io0);
            auto running = [this] { return count_.load() + (lmtp_ ? lmtp_->live() : 0); };
            while (running() > 0 && std::chrono::steady_clock::now() < until) {
                t.expires_after(std::chrono::milliseconds(20));
                co_await t.async_wait(use_awaitable);
            }
            if (running() > 0) {
                spdlog::warn("shutdown: {} sessions did not end within the grace period", running());
            }
            stop_loops();
        }, asio::detached);
    };
    asio::signal_set signals(io0, SIGINT, SIGTERM);
    signals.async_wait([stop_serving](asio::error_code ec, int signo) {
        if (ec) {
            return;
        }
        spdlog::info("received signal {}", signo);
        stop_serving();
    });
    for (auto& l : loops_) {
        // Without its supervisor nothing can start an auth process again: stop, and let the
        // service manager start poplar afresh (Restart=on-failure).
        l->auth->start([this, &io0, &signals, stop_serving] {
            if (!auth_lost_.exchange(true)) {
                asio::post(io0, [&signals, stop_serving] {
                    asio::error_code ignored;
                    signals.cancel(ignored);
                    stop_serving();
                });
            }
        });
    }

    // Loops other than 0 have no work until a connection arrives: the guard keeps run() from
    // returning at once.
    std::vector<std::thread> extra;
    std::vector<asio::executor_work_guard<asio::io_context::executor_type>> guards;
    for (std::size_t i = 1; i < loops_.size(); ++i) {
        guards.push_back(asio::make_work_guard(loops_[i]->io));
        extra.emplace_back([&io = loops_[i]->io] { io.run(); });
    }
    notify_service_manager(fmt::format("READY=1\nSTATUS={}\nMAINPID={}", "serving", ::getpid()));
    io0.run();
    guards.clear();
    stop_loops();
    for (std::thread& t : extra) {
        t.join();
    }
    spdlog::info("shutdown complete");
    return !auth_lost_.load();
}

}  // namespace poplar::net
