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
#include "util/text.h"

namespace poplar::net {

namespace {

using asio::use_awaitable;
using stream = asio::local::stream_protocol;

// A control client sends one short line at once; one that does not within this is not ours.
constexpr std::chrono::seconds request_deadline{5};
// Writing the reply (who on a large server) to a CLI that stopped reading.
constexpr std::chrono::seconds reply_deadline{30};

// Is a server answering on this socket file? Used before replacing it.
bool someone_listens(const std::filesystem::path& path) {
    const int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        return false;
    }
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::strncpy(addr.sun_path, path.c_str(), sizeof addr.sun_path - 1);
    const bool answered = ::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0;
    ::close(fd);
    return answered;
}

}  // namespace

std::string control_peer::describe() const { return fmt::format("uid={} pid={}", uid, pid); }

control_listener::control_listener(asio::io_context& io, const config::control_settings& settings,
                                   control_handler& handler)
    : io_(io), handler_(handler), path_(settings.socket), acceptor_(io) {
    struct stat st {};
    if (::lstat(path_.c_str(), &st) == 0) {
        if (!S_ISSOCK(st.st_mode)) {
            throw config::config_error(
                fmt::format("control.socket: {} exists and is not a socket; refusing to replace it", path_.string()));
        }
        if (someone_listens(path_)) {
            throw config::config_error(fmt::format(
                "control.socket: another server is already answering on {} (is poplar already running?)",
                path_.string()));
        }
        ::unlink(path_.c_str());  // left by a server that was killed
    }
    gid_t gid = static_cast<gid_t>(-1);
    if (!settings.group.empty()) {
        const group* g = ::getgrnam(settings.group.c_str());
        if (g == nullptr) {
            throw config::config_error(fmt::format("control.group: no group named \"{}\"", settings.group));
        }
        gid = g->gr_gid;
    }
    asio::error_code ec;
    acceptor_.open(stream(), ec);
    // Created with no permissions, then opened up to exactly control.mode: no moment at which
    // the umask's idea of the mode applies.
    const mode_t old_umask = ::umask(0777);
    if (!ec) {
        acceptor_.bind(stream::endpoint(path_.string()), ec);
    }
    ::umask(old_umask);
    if (!ec) {
        acceptor_.listen(asio::socket_base::max_listen_connections, ec);
    }
    if (ec) {
        throw config::config_error(
            fmt::format("control.socket: cannot listen on {}: {}", path_.string(), ec.message()));
    }
    if (gid != static_cast<gid_t>(-1) && ::chown(path_.c_str(), static_cast<uid_t>(-1), gid) != 0) {
        const int e = errno;
        ::unlink(path_.c_str());
        throw config::config_error(fmt::format("control.group: cannot give {} to group \"{}\": {}", path_.string(),
                                               settings.group, std::strerror(e)));
    }
    if (::chmod(path_.c_str(), static_cast<mode_t>(settings.mode)) != 0) {
        const int e = errno;
        ::unlink(path_.c_str());
        throw config::config_error(
            fmt::format("control.mode: cannot set the mode of {}: {}", path_.string(), std::strerror(e)));
    }
}

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
