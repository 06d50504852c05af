// The admin control socket of `poplar serve`: a Unix stream socket that takes one request per
// connection in the control protocol (src/control/protocol.h) and hands it to the server.
//
// Access control is the socket file's mode and group (control.mode, control.group), as for
// Dovecot's doveadm socket; each request is logged with the peer's uid and pid (SO_PEERCRED) so
// that a reload or a kick can be traced to whoever asked for it.
#pragma once

#include <asio/awaitable.hpp>
#include <asio/io_context.hpp>
#include <asio/local/stream_protocol.hpp>

#include <filesystem>
#include <memory>
#include <string>

#include "config/config.h"
#include "control/protocol.h"

namespace poplar::net {

struct control_peer {
    long uid = -1;
    long pid = -1;
    std::string describe() const;  // "uid=0 pid=4242"
};

// What the server does with a request; runs on the listener's event loop.
class control_handler {
public:
    virtual ~control_handler() = default;
    virtual asio::awaitable<control::reply> on_control(control::request request, control_peer peer) = 0;
};

class control_listener {
public:
    // Binds settings.socket: a stale socket file left by a crash is replaced, but one that a live
    // server answers on is not (two servers must not share one). Sets the file's mode and group.
    // Throws config::config_error naming control.socket or control.group.
    control_listener(asio::io_context& io, const config::control_settings& settings, control_handler& handler);
    ~control_listener();  // closes and removes the socket file
    control_listener(const control_listener&) = delete;
    control_listener& operator=(const control_listener&) = delete;

    void start();
    void close();
    const std::filesystem::path& path() const { return path_; }

private:
    asio::awaitable<void> accept_loop();
    asio::awaitable<void> serve(asio::local::stream_protocol::socket socket);

    asio::io_context& io_;
    control_handler& handler_;
    std::filesystem::path path_;
    asio::local::stream_protocol::acceptor acceptor_;
    bool closed_ = false;
};

}  // namespace poplar::net
