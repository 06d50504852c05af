// One POP3 client connection for the load generator: plain or TLS transport, a read buffer, and
// the commands as coroutines. Failures throw pop3_failure (or asio's system_error); the session
// runner counts them as errors and keeps the first few texts.
#pragma once

#include <asio/awaitable.hpp>
#include <asio/ip/tcp.hpp>
#include <asio/ssl/context.hpp>
#include <asio/steady_timer.hpp>

#include <chrono>
#include <cstdint>
#include <memory>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "options.h"

struct ssl_st;

namespace loadgen {

// Client TLS settings shared by every connection: no verification (the bench certificate is
// self-signed), no session cache (every connection pays a full handshake, like a fresh client),
// and a read-ahead buffer of `read_buffer` bytes (0: OpenSSL's default, for many idle sessions).
void configure_client_tls(asio::ssl::context& ctx, std::size_t read_buffer);

// "TLSv1.3 TLS_AES_256_GCM_SHA384": the negotiated version and suite; empty for no TLS (nullptr).
std::string describe_tls(const ssl_st* ssl);

class pop3_failure : public std::runtime_error {
public:
    using std::runtime_error::runtime_error;
};

struct retr_result {
    std::uint64_t wire_octets = 0;     // body octets received, dot-stuffed
    std::uint64_t message_octets = 0;  // after removing the stuffing: must equal LIST's size
};

class pop3_client {
public:
    pop3_client(const asio::any_io_executor& ex, asio::ssl::context* tls);
    ~pop3_client();
    pop3_client(const pop3_client&) = delete;
    pop3_client& operator=(const pop3_client&) = delete;

    // Closes the socket when `deadline` passes, so every pending operation fails: each session is
    // bounded in time without a timer per operation.
    void set_deadline(std::chrono::steady_clock::time_point deadline);

    // TCP connect, implicit TLS handshake if asked, greeting, STLS + handshake if asked.
    asio::awaitable<void> open(const asio::ip::tcp::endpoint& ep, tls_mode tls);
    // USER/PASS or AUTH PLAIN (RFC 5034, initial response). Returns the time from sending the
    // password (PASS / AUTH) to its +OK: the server's login latency.
    asio::awaitable<std::chrono::nanoseconds> login(const credential& who, auth_mode how);
    // STAT: message count and total size.
    asio::awaitable<std::pair<std::uint64_t, std::uint64_t>> stat();
    // LIST: sizes by msn (index 0 is msn 1).
    asio::awaitable<void> list(std::vector<std::uint64_t>& sizes);
    // UIDL: number of lines.
    asio::awaitable<std::uint64_t> uidl();
    asio::awaitable<retr_result> retr(std::uint64_t msn);
    // A single-line command that must answer +OK (DELE, RSET, NOOP).
    asio::awaitable<void> simple(std::string_view command);
    // QUIT, its +OK, then waits for the server to close (so the server, not the client, holds the
    // TIME_WAIT and long runs do not exhaust the client's ephemeral ports).
    asio::awaitable<void> quit();
    void close();

    // The TLS cipher suite in use, or "".
    std::string cipher() const;

private:
    asio::awaitable<void> write(std::string_view bytes);
    asio::awaitable<std::size_t> read_some(char* into, std::size_t n);
    asio::awaitable<void> wait_for_tls(int ssl_error, const char* what);
    asio::awaitable<void> fill();
    asio::awaitable<std::string_view> read_line();
    asio::awaitable<std::string_view> expect_ok(std::string_view command_for_errors);
    asio::awaitable<void> handshake();
    void reserve(std::size_t capacity);

    struct ssl_free {
        void operator()(ssl_st* s) const;
    };

    asio::ip::tcp::socket socket_;
    // OpenSSL drives the socket itself (non-blocking, read-ahead into a large buffer, so one
    // recv() brings many TLS records); Asio only says when the socket is ready. Asio's
    // ssl::stream reads one 17 KiB record per system call, which made the client cost half as
    // much CPU as the server it measures.
    std::unique_ptr<ssl_st, ssl_free> tls_;
    asio::ssl::context* tls_ctx_;
    asio::steady_timer watchdog_;
    std::unique_ptr<char[]> buf_;
    std::size_t cap_ = 0;
    std::size_t rpos_ = 0;  // first unread byte
    std::size_t wpos_ = 0;  // end of received bytes
    std::string cmd_;       // reused for command lines
    std::shared_ptr<char> alive_token_ = std::make_shared<char>(0);  // see set_deadline()
};

}  // namespace loadgen
