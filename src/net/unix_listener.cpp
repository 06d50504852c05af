// Unix listening sockets with stale-socket recovery and permissions (unix_listener.h).
#include "net/unix_listener.h"

#include <fmt/format.h>
#include <grp.h>
#include <pwd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "config/config.h"

namespace poplar::net {

namespace {

using stream = asio::local::stream_protocol;

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

stream::acceptor bind_unix_listener(asio::io_context& io, const unix_socket_settings& s) {
    const std::filesystem::path& path = s.path;
    struct stat st {};
    if (::lstat(path.c_str(), &st) == 0) {
        if (!S_ISSOCK(st.st_mode)) {
            throw config::config_error(
                fmt::format("{}: {} exists and is not a socket; refusing to replace it", s.path_key, path.string()));
        }
        if (someone_listens(path)) {
            throw config::config_error(fmt::format(
                "{}: another server is already answering on {} (is poplar already running?)", s.path_key, path.string()));
        }
        ::unlink(path.c_str());  // left by a server that was killed
    }
    uid_t uid = static_cast<uid_t>(-1);
    gid_t gid = static_cast<gid_t>(-1);
    if (!s.user.empty()) {
        const passwd* p = ::getpwnam(s.user.c_str());
        if (p == nullptr) {
            throw config::config_error(fmt::format("{}: no user named \"{}\"", s.user_key, s.user));
        }
        uid = p->pw_uid;
    }
    if (!s.group.empty()) {
        const group* g = ::getgrnam(s.group.c_str());
        if (g == nullptr) {
            throw config::config_error(fmt::format("{}: no group named \"{}\"", s.group_key, s.group));
        }
        gid = g->gr_gid;
    }
    stream::acceptor acceptor(io);
    asio::error_code ec;
    acceptor.open(stream(), ec);
    const mode_t old_umask = ::umask(0777);
    if (!ec) {
        acceptor.bind(stream::endpoint(path.string()), ec);
    }
    ::umask(old_umask);
    if (!ec) {
        acceptor.listen(asio::socket_base::max_listen_connections, ec);
    }
    if (ec) {
        throw config::config_error(fmt::format("{}: cannot listen on {}: {}", s.path_key, path.string(), ec.message()));
    }
    if ((uid != static_cast<uid_t>(-1) || gid != static_cast<gid_t>(-1)) && ::chown(path.c_str(), uid, gid) != 0) {
        const int e = errno;
        ::unlink(path.c_str());
        throw config::config_error(fmt::format("{}: cannot give {} to {}{}{}: {}",
                                               s.user.empty() ? s.group_key : s.user_key, path.string(),
                                               s.user.empty() ? "" : "user \"" + s.user + "\"",
                                               !s.user.empty() && !s.group.empty() ? " and " : "",
                                               s.group.empty() ? "" : "group \"" + s.group + "\"", std::strerror(e)));
    }
    if (::chmod(path.c_str(), static_cast<mode_t>(s.mode)) != 0) {
        const int e = errno;
        ::unlink(path.c_str());
        throw config::config_error(
            fmt::format("{}: cannot set the mode of {}: {}", s.mode_key, path.string(), std::strerror(e)));
    }
    return acceptor;
}

}  // namespace poplar::net
