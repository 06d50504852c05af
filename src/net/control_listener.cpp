// The control socket: bind with stale-socket recovery, permissions, one request per connection.
#include "net/control_listener.h"

#include <asio/co_spawn.hpp>
#include <asio/detached.hpp>
#include <asio/redirect_error.hpp>
#include <asio/steady_timer.hpp>
#include <asio/use_awaitable.hpp>
#include <asio/write.hpp>
#include <fmt/format.h>
#include <grp.h>
#include <spdlog/spdlog.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <variant>

#include "net/one_request.h"
#include "net/unix_listener.h"
#include "util/text.h"

namespace poplar::net {

namespace {

using asio::use_awaitable;
using stream = asio::local::stream_protocol;

// A control client sends one short line at once; one that does not within this is not ours.
constexpr std::chrono::seconds request_deadline{5};
// Writing the reply (who on a large server) to a CLI that stopped reading.
constexpr std::chrono::seconds reply_deadline{30};

}  // namespace

std::string control_peer::describe() const { return fmt::format("uid={} pid={}", uid, pid); }

control_listener::control_listener(asio::io_context& io, const config::control_settings& settings,
                                   control_handler& handler)
    : io_(io),
      handler_(handler),
      path_(settings.socket),
      acceptor_(bind_unix_listener(io, unix_socket_settings{settings.socket, settings.mode, "", settings.group,
                                                            "control.socket", "control.mode", "", "control.group"})) {}

control_listener::~control_listener() { close(); }

void control_listener::start() {
    spdlog::info("listening: control {}", path_.string());
    asio::co_spawn(io_, accept_loop(), asio::detached);
}

void control_listener::close() {
    if (closed_) {
        return;
    }
    closed_ = true;
    asio::error_code ec;
    acceptor_.close(ec);
    ::unlink(path_.c_str());
}

asio::awaitable<void> control_listener::accept_loop() {
    while (!closed_) {
        asio::error_code ec;
        stream::socket s = co_await acceptor_.async_accept(asio::redirect_error(use_awaitable, ec));
        if (ec) {
            if (ec == asio::error::operation_aborted || closed_) {
                co_return;
            }
            spdlog::error("accept failed on control {}: {}", path_.string(), ec.message());
            asio::steady_timer t(io_, std::chrono::milliseconds(100));
            co_await t.async_wait(asio::redirect_error(use_awaitable, ec));
            continue;
        }
        asio::co_spawn(io_, serve(std::move(s)), asio::detached);
    }
}

asio::awaitable<void> control_listener::serve(stream::socket socket) {
    control_peer peer;
    ucred cred{};
    socklen_t len = sizeof cred;
    if (::getsockopt(socket.native_handle(), SOL_SOCKET, SO_PEERCRED, &cred, &len) == 0) {
        peer.uid = static_cast<long>(cred.uid);
        peer.pid = static_cast<long>(cred.pid);
    }
    socket_deadline<stream::socket> deadline(socket);
    deadline.arm(request_deadline);
    const auto parsed = co_await read_request<control::need_more>(
        socket, [](std::string_view received) { return control::parse_request(received); });
    if (std::holds_alternative<control::need_more>(parsed)) {
        deadline.cancel();
        co_return;  // gone, or silent past the deadline: nothing to answer
    }
    control::reply reply;
    if (const auto* b = std::get_if<control::bad>(&parsed)) {
        spdlog::warn("control: bad request from {}: {}", peer.describe(), b->reason);
        reply = {false, b->reason};
    } else {
        const control::request& r = std::get<control::request>(parsed);
        const std::string asked = r.argument.empty()
                                      ? std::string(control::name(r.what))
                                      : fmt::format("{} {}", control::name(r.what), util::log_escape(r.argument));
        spdlog::info("control: {} by {}", asked, peer.describe());
        deadline.cancel();
        reply = co_await handler_.on_control(r, peer);
    }
    co_await reply_and_close(socket, deadline, control::format_reply(reply), reply_deadline);
}

}  // namespace poplar::net
