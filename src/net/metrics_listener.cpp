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
#include "net/one_request.h"
#include "util/text.h"

namespace poplar::net {

namespace {

using asio::use_awaitable;
using asio::ip::tcp;

// A scraper sends its request at once; one that has not within this is not a scraper.
constexpr std::chrono::seconds request_deadline{5};
// Writing the exposition (some tens of KiB) to a client that stopped reading.
constexpr std::chrono::seconds reply_deadline{10};
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
    socket_deadline<tcp::socket> deadline(socket);
    deadline.arm(request_deadline);
    const auto parsed = co_await read_request<metrics::need_more>(
        socket, [](std::string_view received) { return metrics::parse_request(received); });
    if (std::holds_alternative<metrics::need_more>(parsed)) {
        deadline.cancel();
        co_return;  // gone, or silent past the deadline: nothing to answer
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
    co_await reply_and_close(socket, deadline, wire, reply_deadline);
}

}  // namespace poplar::net
