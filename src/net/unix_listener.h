// Binding a Unix stream socket a server listens on (the control socket, LMTP's sockets): stale
// socket recovery, and the file's owner, group and mode, which are its access control.
#pragma once

#include <asio/io_context.hpp>
#include <asio/local/stream_protocol.hpp>

#include <filesystem>
#include <string>

namespace poplar::net {

struct unix_socket_settings {
    std::filesystem::path path;
    unsigned mode = 0660;
    std::string user;   // owner of the file; empty: unchanged
    std::string group;  // group of the file; empty: unchanged
    // Config keys for error messages: "control.socket" / "control.mode" / "control.group", ...
    std::string path_key;
    std::string mode_key;
    std::string user_key;
    std::string group_key;
};

// Binds and listens. A socket file left by a server that was killed is replaced; one another
// server answers on, or a file that is not a socket, is refused. The file is created with no
// permissions and then opened up to exactly `mode`, so no moment exists at which the umask's
// idea of the mode applies. Throws config::config_error naming the key at fault.
asio::local::stream_protocol::acceptor bind_unix_listener(asio::io_context& io, const unix_socket_settings& s);

}  // namespace poplar::net
