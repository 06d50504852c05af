// Server-side TLS on a connection's TCP socket: OpenSSL driven directly, in place of
// asio::ssl::stream, so that bulk output costs one send() per write rather than one per record.
#pragma once

#include <asio/awaitable.hpp>
#include <asio/error_code.hpp>
#include <asio/ip/tcp.hpp>
#include <asio/ssl/context.hpp>

#include <chrono>
#include <cstddef>
#include <span>
#include <string_view>

namespace poplar::net {

namespace detail {

// Where OpenSSL's records go before they are sent (a custom BIO, tls_stream.cpp). Not BIO_s_mem:
// it zero-fills every byte before copying it in (BUF_MEM_grow_clean) and zeroes its whole buffer
// on reset, two extra passes over every byte of a RETR.
struct tls_output {
    char* data = nullptr;
    std::size_t size = 0;
    std::size_t capacity = 0;

    tls_output() = default;
    tls_output(const tls_output&) = delete;
    tls_output& operator=(const tls_output&) = delete;
    ~tls_output() { release(); }

    bool reserve(std::size_t n) noexcept;  // false when out of memory
    bool append(const char* bytes, std::size_t n) noexcept;
    void release() noexcept;
};

}  // namespace detail

// Why not asio::ssl::stream: it runs OpenSSL against a ~17 KiB BIO pair, so every 16 KiB record
// of a RETR became its own asynchronous write and send() (one 100 MiB RETR ran at 15% of
// OpenSSL's AES-GCM speed), and each idle session kept that pair's buffers plus Asio's own.
//
// Here OpenSSL reads the socket itself (a socket BIO: no copy, no buffer of ours) and writes its
// records into an output buffer that this class sends to the socket in one write per call. Idle,
// a stream holds no read buffer (SSL_MODE_RELEASE_BUFFERS) and almost no output buffer.
//
// Rules the implementation keeps, because the socket is registered edge-triggered with Asio's
// reactor, an async_wait() is not speculative, and OpenSSL may already hold records it read
// ahead that no socket event will announce: wait for readability only after OpenSSL has read
// the socket dry (SSL_ERROR_WANT_READ from the socket BIO means read() said EAGAIN), and send
// whatever OpenSSL has queued (handshake flights, alerts, session tickets, close_notify) before
// waiting for the peer, which may be waiting for exactly those bytes.
//
// Errors: a peer's close_notify is asio::error::eof; TCP EOF without one is
// asio::ssl::error::stream_truncated; protocol errors carry OpenSSL's reason in
// asio::error::get_ssl_category() (message() like "wrong version number (SSL routines)");
// socket errors are system errors; socket.cancel() surfaces as operation_aborted.
//
// One stream per connection, used from the connection's own thread only: OpenSSL's error queue
// is per thread and shared by the coroutines interleaved on it, so every call clears it before
// and reads it immediately after, with no co_await in between.
class tls_stream {
public:
    // `socket` must be connected, in non-blocking mode (socket.non_blocking(true)), and outlive
    // the stream. Settings (versions, no renegotiation, RELEASE_BUFFERS) come from `ctx`.
    tls_stream(asio::ip::tcp::socket& socket, asio::ssl::context& ctx);
    ~tls_stream();
    tls_stream(const tls_stream&) = delete;
    tls_stream& operator=(const tls_stream&) = delete;

    // The server side of the handshake.
    asio::awaitable<void> async_handshake(asio::error_code& ec);

    // Decrypts what has already arrived into `into`, without waiting: > 0 bytes, or 0 with `ec`
    // set: would_block means call async_wait_readable() and try again. Lets the caller read into
    // a buffer on the thread's stack, so an idle session holds no receive buffer.
    std::size_t read_available(std::span<char> into, asio::error_code& ec);

    // Sends anything queued, then waits until the socket is readable. Only after
    // read_available() answered would_block (see the rules above).
    asio::awaitable<void> async_wait_readable(asio::error_code& ec);


    // Encrypts all of `bytes` and sends the records in one write; returns bytes.size(), or 0
    // with `ec` set (the stream is then unusable: part of a record may have been sent).
    asio::awaitable<std::size_t> async_write(std::string_view bytes, asio::error_code& ec);

    // Sends close_notify (so the client can tell a complete reply from a truncated one, RFC 8446
    // §6.1), then reads and discards until the peer's close_notify or EOF, so that closing the
    // socket with input unread does not reset the connection and lose the end of our last
    // reply. Waits at most `linger` (its own timer: the caller's deadline may already be spent,
    // as after an idle timeout) and reads at most 64 KiB; the caller's socket.cancel() also ends
    // it. `ec` reports only a failure to send close_notify. Does nothing after a fatal error
    // (SSL_shutdown(3) must not follow one).
    static constexpr std::chrono::milliseconds default_linger{2000};
    asio::awaitable<void> async_shutdown(asio::error_code& ec, std::chrono::milliseconds linger = default_linger);

    // Whether OpenSSL wipes decrypted input after handing it over (on from the start; the
    // connection turns it off once the client is logged in and sends no more secrets).
    void set_cleanse_plaintext(bool on);

    // Bytes of output buffer currently allocated (for tests of the idle-memory behaviour).
    std::size_t output_capacity() const { return out_.capacity; }

private:
    asio::error_code error_for(int ssl_result, int sys_errno);
    asio::awaitable<void> flush(asio::error_code& ec);
    void send_alert_without_waiting();
    std::size_t discard_available(std::size_t budget, asio::error_code& ec);

    asio::ip::tcp::socket& socket_;
    detail::tls_output out_;  // ssl_'s output BIO points here; ~tls_stream() frees ssl_ first
    SSL* ssl_ = nullptr;
    // Set by a fatal TLS or socket error (or a failed SSL_new): every later call returns it, and
    // no more TLS happens on this stream.
    asio::error_code fatal_error_;
};

}  // namespace poplar::net
