// The Prometheus metrics endpoint of `poplar serve` ([metrics] listen): a TCP listener on loop 0
// that answers one HTTP/1.1 request per connection, GET /metrics, with the text exposition
// (src/net/metrics.h). Every wait on the client is bounded, and so is the number of scrapes in
// flight, so a client that connects and says nothing costs one socket for a few seconds.
#pragma once

#include <asio/awaitable.hpp>
#include <asio/io_context.hpp>
#include <asio/ip/tcp.hpp>

#include <functional>
#include <string>

#include "config/config.h"

namespace poplar::net {

class metrics_listener {
public:
    // render: the exposition text, called on the listener's loop for each GET /metrics.
    // Binds `at`; throws config::config_error naming metrics.listen.
    metrics_listener(asio::io_context& io, const config::endpoint& at, std::function<std::string()> render);
    ~metrics_listener();
    metrics_listener(const metrics_listener&) = delete;
    metrics_listener& operator=(const metrics_listener&) = delete;

    void start();
    void close();
    const std::string& name() const { return name_; }  // "127.0.0.1:9191", as bound

private:
    asio::awaitable<void> accept_loop();
    asio::awaitable<void> serve(asio::ip::tcp::socket socket);

    asio::io_context& io_;
    std::function<std::string()> render_;
    asio::ip::tcp::acceptor acceptor_;
    std::string name_;
    std::size_t in_flight_ = 0;
    bool closed_ = false;
};

}  // namespace poplar::net
