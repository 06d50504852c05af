// LMTP listeners: TCP and Unix acceptors, connections spread over the event loops (lmtp_listener.h).
#include "net/lmtp_listener.h"

#include <asio/co_spawn.hpp>
#include <asio/detached.hpp>
#include <asio/ip/tcp.hpp>
#include <asio/ip/v6_only.hpp>
#include <asio/redirect_error.hpp>
#include <asio/steady_timer.hpp>
#include <asio/use_awaitable.hpp>
#include <fmt/format.h>
#include <spdlog/spdlog.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstring>

#include "net/unix_listener.h"

namespace poplar::net {

using asio::use_awaitable;
using generic_stream = asio::generic::stream_protocol;

struct lmtp_listener::acceptor {
    asio::basic_socket_acceptor<generic_stream> socket;
    std::string name;  // "lmtp 127.0.0.1:24", "lmtp /run/poplar/lmtp"
    bool unix_socket = false;
};

lmtp_listener::lmtp_listener(asio::io_context& io, const config::config& cfg) : io_(io) {
    for (const config::endpoint& ep : cfg.lmtp) {
        asio::error_code ec;
        const asio::ip::address addr = asio::ip::make_address(ep.host, ec);
        if (ec) {
            throw config::config_error(fmt::format("listen.lmtp: \"{}\" is not an IP address", ep.to_string()));
        }
        asio::ip::tcp::acceptor tcp(io);
        const asio::ip::tcp::endpoint endpoint(addr, ep.port);
        tcp.open(endpoint.protocol(), ec);
        if (!ec) {
            tcp.set_option(asio::ip::tcp::acceptor::reuse_address(true), ec);
            if (addr.is_v6()) {
                tcp.set_option(asio::ip::v6_only(true), ec);
            }
            tcp.bind(endpoint, ec);
        }
        if (!ec) {
            tcp.listen(asio::socket_base::max_listen_connections, ec);
        }
        if (ec) {
            throw config::config_error(fmt::format("listen.lmtp: cannot listen on {}: {}", ep.to_string(), ec.message()));
        }
        const asio::ip::tcp::endpoint bound = tcp.local_endpoint();
        const std::string host = bound.address().to_string();
        std::string name = bound.address().is_v6() ? fmt::format("lmtp [{}]:{}", host, bound.port())
                                                   : fmt::format("lmtp {}:{}", host, bound.port());
        const int family = addr.is_v6() ? AF_INET6 : AF_INET;
        asio::basic_socket_acceptor<generic_stream> generic(io, generic_stream(family, IPPROTO_TCP), tcp.release());
        acceptors_.push_back(std::make_unique<acceptor>(acceptor{std::move(generic), std::move(name), false}));
    }
    for (const std::filesystem::path& p : cfg.lmtp_socket.sockets) {
        auto local = bind_unix_listener(
            io, unix_socket_settings{p, cfg.lmtp_socket.socket_mode, cfg.lmtp_socket.socket_user,
                                     cfg.lmtp_socket.socket_group, "listen.lmtp", "lmtp.socket_mode",
                                     "lmtp.socket_user", "lmtp.socket_group"});
        asio::basic_socket_acceptor<generic_stream> generic(io, generic_stream(AF_UNIX, 0), local.release());
        acceptors_.push_back(std::make_unique<acceptor>(acceptor{std::move(generic), "lmtp " + p.string(), true}));
        paths_.push_back(p);
    }
}

lmtp_listener::~lmtp_listener() { close(); }

void lmtp_listener::start(pick_fn pick, context_fn context) {
    pick_ = std::move(pick);
    context_ = std::move(context);
    for (auto& a : acceptors_) {
        spdlog::info("listening: {}", a->name);
        asio::co_spawn(io_, accept_loop(*a), asio::detached);
    }
}

void lmtp_listener::close() {
    if (closed_.exchange(true)) {
        return;
    }
    for (auto& a : acceptors_) {
        asio::error_code ec;
        a->socket.close(ec);
    }
    for (const auto& p : paths_) {
        ::unlink(p.c_str());
    }
    std::lock_guard lock(mutex_);
    for (auto& [raw, weak] : connections_) {
        if (auto c = weak.lock()) {
            c->stop();
        }
    }
}

asio::awaitable<void> lmtp_listener::accept_loop(acceptor& a) {
    while (!closed_) {
        const target t = pick_();
        asio::error_code ec;
        generic_stream::socket socket = co_await a.socket.async_accept(*t.io, asio::redirect_error(use_awaitable, ec));
        if (ec) {
            if (ec == asio::error::operation_aborted || closed_) {
                co_return;
            }
            spdlog::error("accept failed on {}: {}", a.name, ec.message());
            asio::steady_timer wait(io_, std::chrono::milliseconds(100));  // EMFILE: back off, do not spin
            co_await wait.async_wait(asio::redirect_error(use_awaitable, ec));
            continue;
        }
        std::string peer = "unix";
        if (!a.unix_socket) {
            // Nagle off, as every reply is one write; the peer's address for the log.
            const int one = 1;
            ::setsockopt(socket.native_handle(), IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
            const generic_stream::endpoint remote = socket.remote_endpoint(ec);
            asio::ip::tcp::endpoint tcp;
            if (!ec && remote.size() <= tcp.capacity()) {
                std::memcpy(tcp.data(), remote.data(), remote.size());
                tcp.resize(remote.size());
                peer = tcp.address().to_string();
            }
        }
        auto c = std::make_shared<lmtp_connection>(std::move(socket), context_(), *t.auth, std::move(peer));
        {
            std::lock_guard lock(mutex_);
            connections_.emplace(c.get(), c);
        }
        ++live_;
        if (closed_) {
            c->stop();
        }
        asio::co_spawn(*t.io, [this, c]() -> asio::awaitable<void> { co_await c->run(); }, [this, c](std::exception_ptr e) {
            if (e) {
                try {
                    std::rethrow_exception(e);
                } catch (const std::exception& ex) {
                    spdlog::error("lmtp connection failed: {}", ex.what());
                }
            }
            {
                std::lock_guard lock(mutex_);
                connections_.erase(c.get());
            }
            --live_;
        });
    }
}

}  // namespace poplar::net
