// `poplar status|who|kick|stats|reload`: one request to a running server's control socket.
//
// Thin on purpose: find the socket from the config file, send one request, print the reply.
// Exit codes (docs/operations.md): 0 done; 1 the config file cannot be read, or a reload was
// refused because the new configuration is invalid; 3 no server answers (not running, no
// permission on the socket, or it broke off); 4 the server answered with an error (e.g. kick of
// a user with no session).
#include <fmt/format.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <variant>

#include "cli/commands.h"
#include "config/config.h"
#include "control/protocol.h"

namespace poplar::cli {

namespace {

// A reload reads the passwd-file and the certificate; status and who answer at once.
constexpr int reply_timeout_seconds = 60;

class fd_guard {
public:
    explicit fd_guard(int fd) : fd_(fd) {}
    ~fd_guard() {
        if (fd_ >= 0) {
            ::close(fd_);
        }
    }
    fd_guard(const fd_guard&) = delete;
    fd_guard& operator=(const fd_guard&) = delete;
    int get() const { return fd_; }

private:
    int fd_;
};

int not_reachable(const std::filesystem::path& socket, const std::filesystem::path& config_file, int err) {
    if (err == ENOENT || err == ECONNREFUSED) {
        std::fprintf(stderr, "poplar: the server is not running (nothing answers on %s, the control.socket of %s)\n",
                     socket.c_str(), config_file.c_str());
    } else if (err == EACCES || err == EPERM) {
        std::fprintf(stderr,
                     "poplar: permission denied on %s: run as root or as a member of the socket's group "
                     "(control.group in %s)\n",
                     socket.c_str(), config_file.c_str());
    } else {
        std::fprintf(stderr, "poplar: cannot reach the server on %s: %s\n", socket.c_str(), std::strerror(err));
    }
    return exit_unreachable;
}

}  // namespace

int admin(const std::string& command_name, const std::string& argument, const std::filesystem::path& config_file) {
    const std::optional<control::command> what = control::command_named(command_name);
    if (!what) {
        std::fprintf(stderr, "poplar: unknown admin command \"%s\"\n", command_name.c_str());
        return exit_config;
    }
    std::filesystem::path socket_path;
    try {
        socket_path = config::control_socket_of(config_file);
    } catch (const config::config_error& e) {
        std::fprintf(stderr, "poplar: %s\n", e.what());
        return exit_config;
    }
    if (socket_path.empty()) {
        std::fprintf(stderr,
                     "poplar: %s turns the control socket off (control.socket = \"\"); "
                     "set it to use poplar %s%s\n",
                     config_file.c_str(), command_name.c_str(),
                     *what == control::command::reload ? ", or send the server SIGHUP" : "");
        return exit_config;
    }
    const fd_guard fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
    if (fd.get() < 0) {
        return not_reachable(socket_path, config_file, errno);
    }
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    if (socket_path.native().size() >= sizeof addr.sun_path) {
        std::fprintf(stderr, "poplar: control.socket %s is too long for a Unix socket\n", socket_path.c_str());
        return exit_config;
    }
    std::strcpy(addr.sun_path, socket_path.c_str());
    if (::connect(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
        return not_reachable(socket_path, config_file, errno);
    }
    timeval tv{reply_timeout_seconds, 0};
    ::setsockopt(fd.get(), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    ::setsockopt(fd.get(), SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    const std::string request = control::format_request({*what, argument});
    if (::send(fd.get(), request.data(), request.size(), MSG_NOSIGNAL) != static_cast<ssize_t>(request.size())) {
        return not_reachable(socket_path, config_file, errno);
    }
    std::string buffered;
    for (;;) {
        auto parsed = control::parse_reply(buffered);
        if (const auto* r = std::get_if<control::reply>(&parsed)) {
            if (r->ok) {
                std::fputs(r->body.c_str(), stdout);
                return exit_ok;
            }
            std::fputs(fmt::format("poplar: {}: {}", command_name, r->body).c_str(), stderr);
            if (r->body.empty() || r->body.back() != '\n') {
                std::fputc('\n', stderr);
            }
            return *what == control::command::reload ? exit_config : exit_refused;
        }
        if (const auto* b = std::get_if<control::bad>(&parsed)) {
            std::fprintf(stderr, "poplar: the server's reply is not understood: %s\n", b->reason.c_str());
            return exit_unreachable;
        }
        char buf[65536];
        const ssize_t n = ::recv(fd.get(), buf, sizeof buf, 0);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n <= 0) {
            std::fprintf(stderr, "poplar: the server broke off its reply on %s%s%s\n", socket_path.c_str(),
                         n < 0 ? ": " : "", n < 0 ? std::strerror(errno) : "");
            return exit_unreachable;
        }
        buffered.append(buf, static_cast<std::size_t>(n));
    }
}

}  // namespace poplar::cli
