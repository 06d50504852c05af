// The metrics endpoint: bind, accept, one bounded HTTP request per connection.
#include "net/metrics_listener.h"

#include <asio/co_spawn.hpp>
#include <asio/detached.hpp>
#include <asio/redirect_error.hpp>
#include <asio/steady_timer.hpp>
#include <asio/use_awaitable.hpp>
#include <asio/write.hpp>
#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <chrono>
#include <variant>

#include "net/metrics.h"
#include "util/text.h"

namespace poplar::net {

namespace {

using asio::use_awaitable;
using asio::ip::tcp;

// A scraper sends its request at once; one that has not within this is not a scraper.
constexpr std::chrono::seconds request_deadline{5};
// Writing the exposition (some tens of KiB) to a client that stopped reading.
constexpr std::chrono::seconds reply_deadline{10};
// After the reply: how long, and how much, unread input is drained before closing.
constexpr std::chrono::seconds drain_deadline{2};
constexpr std::size_t max_drain = 64 * 1024;
// Scrapes served at once. Prometheus scrapes one at a time per target; more than a handful at
// once is someone else, who is closed on without a reply.
constexpr std::size_t max_in_flight = 8;

}  // namespace

metrics_listener::metrics_listener(asio::io_context& io, const config::endpoint& at,
                                   std::function<std::string()> render)
    : io_(io), render_(std::move(render)), acceptor_(io) {
    asio::error_code ec;
    const asio::ip::address addr = asio::ip::make_address(at.host, ec);
    if (ec) {
        throw config::config_error(fmt::format("metrics.listen: \"{}\" is not an IP address", at.to_string()));
    }
    const tcp::endpoint endpoint(addr, at.port);
    acceptor_.open(endpoint.protocol(), ec);
    if (!ec) {
        acceptor_.set_option(tcp::acceptor::reuse_address(true), ec);
        acceptor_.bind(endpoint, ec);
    }
    if (!ec) {
        acceptor_.listen(asio::socket_base::max_listen_connections, ec);
    }
    if (ec) {
        throw config::config_error(
            fmt::format("metrics.listen: cannot listen on {}: {}", at.to_string(), ec.message()));
    }
    const tcp::endpoint bound = acceptor_.local_endpoint();
    name_ = config::endpoint{bound.address().to_string(), bound.port()}.to_string();
}

metrics_listener::~metrics_listener() { close(); }

void metrics_listener::start() {
    spdlog::info("listening: metrics {}", name_);
    asio::co_spawn(io_, accept_loop(), asio::detached);
}

void metrics_listener::close() {
    if (closed_) {
        return;
    }
    closed_ = true;
    asio::error_code ec;
    acceptor_.close(ec);
}

asio::awaitable<void> metrics_listener::accept_loop() {
    while (!closed_) {
        asio::error_code ec;
        tcp::socket s = co_await acceptor_.async_accept(asio::redirect_error(use_awaitable, ec));
        if (ec) {
            if (ec == asio::error::operation_aborted || closed_) {
                co_return;
            }
            spdlog::error("accept failed on metrics {}: {}", name_, ec.message());
            asio::steady_timer t(io_, std::chrono::milliseconds(100));
            co_await t.async_wait(asio::redirect_error(use_awaitable, ec));
            continue;
        }
        if (in_flight_ >= max_in_flight) {
            s.close(ec);
            continue;
        }
        ++in_flight_;
        asio::co_spawn(io_, serve(std::move(s)), [this](std::exception_ptr) { --in_flight_; });
    }
}

asio::awaitable<void> metrics_listener::serve(tcp::socket socket) {
    asio::error_code ec;
    const std::string peer = socket.remote_endpoint(ec).address().to_string();
    // Every wait on the client is bounded: the timer cancels the socket's operation when it fires.
    asio::steady_timer deadline(io_);
    auto arm = [&deadline, &socket](std::chrono::seconds d) {
        deadline.expires_after(d);
        deadline.async_wait([&socket](asio::error_code e) {
            if (!e) {
                asio::error_code ignored;
                socket.cancel(ignored);
            }
        });
    };
    arm(request_deadline);
    std::string received;
    std::variant<metrics::request, metrics::need_more, metrics::bad> parsed = metrics::need_more{};
    while (std::holds_alternative<metrics::need_more>(parsed)) {
        char buf[1024];
        const std::size_t n =
            co_await socket.async_read_some(asio::buffer(buf), asio::redirect_error(use_awaitable, ec));
        if (ec) {
            deadline.cancel();
            co_return;  // gone, or silent past the deadline: nothing to answer
        }
        received.append(buf, n);
        parsed = metrics::parse_request(received);
    }
    std::string wire;
    if (const auto* b = std::get_if<metrics::bad>(&parsed)) {
        spdlog::info("metrics: bad request: rip={} status={} reason=\"{}\"", peer, b->status, b->reason);
        wire = metrics::response(b->status, b->reason + "\n");
    } else {
        const metrics::request& r = std::get<metrics::request>(parsed);
        if (r.method != "GET") {
            wire = metrics::response(405, "only GET is supported\n");
        } else if (r.target != "/metrics") {
            wire = metrics::response(404, "not found: the metrics are at /metrics\n");
        } else {
            wire = metrics::response(200, render_(), metrics::content_type);
        }
    }
    arm(reply_deadline);
    co_await asio::async_write(socket, asio::buffer(wire), asio::redirect_error(use_awaitable, ec));
    // Closing with unread input would reset the connection and could discard the reply before
    // the client reads it: end our side, then drain briefly.
    socket.shutdown(tcp::socket::shutdown_send, ec);
    arm(drain_deadline);
    std::size_t drained = 0;
    while (!ec && drained < max_drain) {
        char buf[4096];
        drained += co_await socket.async_read_some(asio::buffer(buf), asio::redirect_error(use_awaitable, ec));
    }
    deadline.cancel();
}

}  // namespace poplar::net
