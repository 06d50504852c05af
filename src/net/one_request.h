// The small listeners' shared shape (the control socket, the metrics endpoint): one request per
// connection, one reply, then close; every wait on the client bounded.
#pragma once

#include <asio/awaitable.hpp>
#include <asio/buffer.hpp>
#include <asio/redirect_error.hpp>
#include <asio/steady_timer.hpp>
#include <asio/use_awaitable.hpp>
#include <asio/write.hpp>

#include <chrono>
#include <cstddef>
#include <string>
#include <string_view>
#include <variant>

namespace poplar::net {

// After the reply: how long, and how much, unread input is drained before closing.
inline constexpr std::chrono::seconds drain_deadline{2};
inline constexpr std::size_t max_drain = 64 * 1024;

// A timer that cancels the socket's pending operation when it fires; arm() again to move it.
template <class Socket>
class socket_deadline {
public:
    explicit socket_deadline(Socket& socket) : socket_(socket), timer_(socket.get_executor()) {}
    void arm(std::chrono::seconds d) {
        timer_.expires_after(d);
        timer_.async_wait([&s = socket_](asio::error_code ec) {
            if (!ec) {
                asio::error_code ignored;
                s.cancel(ignored);
            }
        });
    }
    void cancel() { timer_.cancel(); }

private:
    Socket& socket_;
    asio::steady_timer timer_;
};

// Reads until `parse` (a pure core's parse_request: the bytes so far in, a variant out) returns
// something other than NeedMore. On a read error or the deadline, returns
// NeedMore itself, meaning "nothing to answer".
template <class NeedMore, class Socket, class Parse>
asio::awaitable<std::invoke_result_t<Parse&, std::string_view>> read_request(Socket& socket, Parse parse) {
    std::string received;
    std::invoke_result_t<Parse&, std::string_view> parsed = NeedMore{};
    while (std::holds_alternative<NeedMore>(parsed)) {
        char buf[1024];
        asio::error_code ec;
        const std::size_t n =
            co_await socket.async_read_some(asio::buffer(buf), asio::redirect_error(asio::use_awaitable, ec));
        if (ec) {
            co_return parsed;
        }
        received.append(buf, n);
        parsed = parse(std::string_view(received));
    }
    co_return parsed;
}

// Writes the reply within `reply_deadline`, then ends our side and drains briefly: closing with
// unread input (an over-long request) would reset the connection and could discard the reply
// before the client reads it.
template <class Socket>
asio::awaitable<void> reply_and_close(Socket& socket, socket_deadline<Socket>& deadline, std::string_view wire,
                                      std::chrono::seconds reply_deadline) {
    deadline.arm(reply_deadline);
    asio::error_code ec;
    co_await asio::async_write(socket, asio::buffer(wire), asio::redirect_error(asio::use_awaitable, ec));
    socket.shutdown(Socket::shutdown_send, ec);
    deadline.arm(drain_deadline);
    std::size_t drained = 0;
    while (!ec && drained < max_drain) {
        char buf[4096];
        drained += co_await socket.async_read_some(asio::buffer(buf), asio::redirect_error(asio::use_awaitable, ec));
    }
    deadline.cancel();
}

}  // namespace poplar::net
