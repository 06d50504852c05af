// Server-side TLS with OpenSSL reading the socket directly and writing records to a buffer that
// goes out in one send per write.
#include "net/tls_stream.h"

#include <asio/redirect_error.hpp>
#include <asio/ssl/error.hpp>
#include <asio/steady_timer.hpp>
#include <asio/use_awaitable.hpp>
#include <asio/write.hpp>
#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/ssl.h>

#include <algorithm>
#include <cassert>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <memory>

#include "util/secret.h"

namespace poplar::net {

namespace {

using asio::use_awaitable;

// Output buffer an idle stream may keep: enough for an ordinary encrypted reply, so a
// command-by-command client does not allocate per reply; a RETR's hundreds of KiB are freed
// before the session waits for its next command (the idle-session memory target,
// docs/performance.md).
constexpr std::size_t idle_output_capacity = 512;

// Space reserved per record on top of its plaintext, so a 256 KiB write fills the buffer without
// reallocating: TLS 1.3 AES-GCM adds 22 bytes, TLS 1.2 GCM 29. Suites with more (CBC) still work;
// the buffer then grows.
constexpr std::size_t max_record_plaintext = 16384;  // RFC 8446 §5.1, RFC 5246 §6.2.1
constexpr std::size_t record_overhead_reserve = 64;

// After our close_notify, how much a client may still send before we stop reading it and close
// anyway (it then gets a reset, which it asked for).
constexpr std::size_t max_discarded_on_close = 64 * 1024;

// The output BIO: appends what OpenSSL writes to the stream's tls_output. It never refuses bytes
// (short of memory), so OpenSSL never answers SSL_ERROR_WANT_WRITE.
int output_write(BIO* bio, const char* bytes, std::size_t n, std::size_t* written) {
    auto* out = static_cast<detail::tls_output*>(BIO_get_data(bio));
    if (out == nullptr || !out->append(bytes, n)) {
        return 0;
    }
    *written = n;
    return 1;
}

long output_ctrl(BIO*, int cmd, long, void*) {
    // OpenSSL flushes after each handshake flight; the stream sends before it waits (see the
    // header), so there is nothing to do. Anything else (kTLS queries, pending counts) is "no".
    return cmd == BIO_CTRL_FLUSH ? 1 : 0;
}

int output_create(BIO* bio) {
    BIO_set_init(bio, 1);
    return 1;
}

BIO_METHOD* make_output_method() {
    BIO_METHOD* m = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK, "poplar tls output");
    if (m != nullptr) {
        BIO_meth_set_write_ex(m, output_write);
        BIO_meth_set_ctrl(m, output_ctrl);
        BIO_meth_set_create(m, output_create);
    }
    return m;
}

// One method table for the process, built on first use (thread-safe static initialisation) and
// never freed: every event-loop thread's streams share it.
const BIO_METHOD* output_method() {
    static BIO_METHOD* const method = make_output_method();
    return method;
}

// Before every OpenSSL call: SSL_get_error() is only reliable with an empty error queue, and the
// queue is shared by every session's coroutine on this thread. errno is cleared so that a stale
// value cannot pass for the reason of an SSL_ERROR_SYSCALL.
void begin_openssl_call() {
    ERR_clear_error();
    errno = 0;
}

asio::error_code openssl_failure() {
    const unsigned long e = ERR_get_error();
    ERR_clear_error();
    if (e == 0) {
        return asio::error::no_memory;  // the allocation functions that fail without queueing
    }
    return {static_cast<int>(e), asio::error::get_ssl_category()};
}

}  // namespace

namespace detail {

bool tls_output::reserve(std::size_t n) noexcept {
    if (n <= capacity) {
        return true;
    }
    // Called from inside OpenSSL (C frames), so no exceptions: malloc, and realloc only when
    // there are bytes to keep.
    char* p = static_cast<char*>(size == 0 ? std::malloc(n) : std::realloc(data, n));
    if (p == nullptr) {
        return false;
    }
    if (size == 0) {
        std::free(data);
    }
    data = p;
    capacity = n;
    return true;
}

bool tls_output::append(const char* bytes, std::size_t n) noexcept {
    if (size + n > capacity && !reserve(std::max(size + n, capacity * 2))) {
        return false;
    }
    std::memcpy(data + size, bytes, n);
    size += n;
    return true;
}

void tls_output::release() noexcept {
    std::free(data);
    data = nullptr;
    size = 0;
    capacity = 0;
}

}  // namespace detail

tls_stream::tls_stream(asio::ip::tcp::socket& socket, asio::ssl::context& ctx) : socket_(socket) {
    // The synchronous reads and writes below must answer would_block, never wait.
    assert(socket_.non_blocking());
    begin_openssl_call();
    ssl_ = SSL_new(ctx.native_handle());
    const BIO_METHOD* method = output_method();
    // The read side is the socket itself: OpenSSL read()s records straight into its own buffer.
    BIO* in = ssl_ != nullptr ? BIO_new_socket(socket_.native_handle(), BIO_NOCLOSE) : nullptr;
    BIO* out = in != nullptr && method != nullptr ? BIO_new(method) : nullptr;
    if (out == nullptr) {
        fatal_error_ = openssl_failure();
        BIO_free(in);
        SSL_free(ssl_);
        ssl_ = nullptr;
        return;
    }
    BIO_set_data(out, &out_);
    SSL_set_bio(ssl_, in, out);  // ssl_ owns both BIOs now
    SSL_set_accept_state(ssl_);
    // One SSL_write_ex() encrypts all it is given, so one write sends the lot.
    SSL_clear_mode(ssl_, SSL_MODE_ENABLE_PARTIAL_WRITE);
    // Non-application records (post-handshake messages) are processed until application data or
    // EAGAIN, so SSL_ERROR_WANT_READ always means the socket was read dry: safe to wait on.
    SSL_set_mode(ssl_, SSL_MODE_AUTO_RETRY);
    // One read() per burst instead of two per record (header, then body). Safe for STARTTLS
    // (RFC 2595 §4): the stream is created after STLS, so it can only ever hold bytes that
    // arrived after it, and TLS never hands the socket back to plaintext.
    SSL_set_read_ahead(ssl_, 1);
    set_cleanse_plaintext(true);
}

// Until login, decrypted input holds PASS and AUTH lines: OpenSSL wipes it once handed over (as
// connection.cpp wipes its copy) rather than leaving it in freed memory. Not for the whole
// session: with SSL_MODE_RELEASE_BUFFERS OpenSSL then also wipes its whole ~17 KiB read buffer at
// every release, measured at 1.7% of a full TLS session's CPU.
void tls_stream::set_cleanse_plaintext(bool on) {
    if (ssl_ == nullptr) {
        return;
    }
    if (on) {
        SSL_set_options(ssl_, SSL_OP_CLEANSE_PLAINTEXT);
    } else {
        SSL_clear_options(ssl_, SSL_OP_CLEANSE_PLAINTEXT);
    }
}

tls_stream::~tls_stream() {
    SSL_free(ssl_);  // before out_ goes: the output BIO points at it
}

asio::error_code tls_stream::error_for(int ssl_result, int sys_errno) {
    const int e = SSL_get_error(ssl_, ssl_result);
    if (e == SSL_ERROR_WANT_READ) {
        return asio::error::would_block;
    }
    if (e == SSL_ERROR_ZERO_RETURN) {
        return asio::error::eof;  // the peer's close_notify; our own may still be sent
    }
    const unsigned long err = ERR_get_error();
    ERR_clear_error();
    if (err != 0 && ERR_GET_LIB(err) == ERR_LIB_SSL && ERR_GET_REASON(err) == SSL_R_UNEXPECTED_EOF_WHILE_READING) {
        fatal_error_ = asio::ssl::error::stream_truncated;  // TCP EOF without close_notify
    } else if (err != 0) {
        fatal_error_ = asio::error_code(static_cast<int>(err), asio::error::get_ssl_category());
    } else if (e == SSL_ERROR_SYSCALL && sys_errno != 0) {
        fatal_error_ = asio::error_code(sys_errno, asio::error::get_system_category());
    } else if (e == SSL_ERROR_SYSCALL) {
        fatal_error_ = asio::ssl::error::stream_truncated;  // the same EOF, as OpenSSL 1.1 says it
    } else {
        fatal_error_ = asio::ssl::error::unspecified_system_error;
    }
    return fatal_error_;
}

asio::awaitable<void> tls_stream::async_handshake(asio::error_code& ec) {
    for (;;) {
        ec = fatal_error_;
        if (ec) {
            co_return;
        }
        begin_openssl_call();
        const int r = SSL_do_handshake(ssl_);
        const int sys = errno;
        if (r == 1) {
            // What OpenSSL queued last (TLS 1.2's final flight, TLS 1.3's session tickets) goes
            // out with the first reply, or before the first wait for the client, whichever comes
            // first: one send() fewer per session.
            co_return;
        }
        ec = error_for(r, sys);
        if (ec != asio::error::would_block) {
            send_alert_without_waiting();
            co_return;
        }
        co_await async_wait_readable(ec);
        if (ec) {
            co_return;
        }
    }
}

// The alert OpenSSL queued for a failed handshake tells the client why ("protocol version",
// "handshake failure") instead of a bare EOF; it is sent if the socket takes it now, never waited
// for.
void tls_stream::send_alert_without_waiting() {
    if (out_.size > 0) {
        asio::error_code ignored;
        socket_.write_some(asio::buffer(out_.data, out_.size), ignored);
    }
    out_.release();
}

std::size_t tls_stream::read_available(std::span<char> into, asio::error_code& ec) {
    ec = fatal_error_;
    if (ec || into.empty()) {
        return 0;
    }
    std::size_t n = 0;
    begin_openssl_call();
    const int r = SSL_read_ex(ssl_, into.data(), into.size(), &n);
    const int sys = errno;
    if (r == 1) {
        return n;
    }
    ec = error_for(r, sys);
    return 0;
}

asio::awaitable<void> tls_stream::async_wait_readable(asio::error_code& ec) {
    ec = fatal_error_;
    if (ec) {
        co_return;
    }
    // The client may be waiting for these bytes before it sends anything: a handshake flight, a
    // KeyUpdate answer, close_notify. Waiting first would deadlock.
    if (out_.size > 0) {
        co_await flush(ec);
        if (ec) {
            co_return;
        }
    }
    if (out_.capacity > idle_output_capacity) {
        out_.release();
    }
    co_await socket_.async_wait(asio::ip::tcp::socket::wait_read, asio::redirect_error(use_awaitable, ec));
}

asio::awaitable<std::size_t> tls_stream::async_write(std::string_view bytes, asio::error_code& ec) {
    ec = fatal_error_;
    if (ec) {
        co_return 0;
    }
    if (!bytes.empty()) {
        // Failure here is not final: append() tries again and reports to OpenSSL.
        static_cast<void>(out_.reserve(out_.size + bytes.size() +
                                       (bytes.size() / max_record_plaintext + 1) * record_overhead_reserve));
        for (;;) {
            std::size_t n = 0;
            begin_openssl_call();
            const int r = SSL_write_ex(ssl_, bytes.data(), bytes.size(), &n);
            const int sys = errno;
            if (r == 1) {
                break;  // without SSL_MODE_ENABLE_PARTIAL_WRITE, n == bytes.size()
            }
            ec = error_for(r, sys);
            if (ec != asio::error::would_block) {
                co_return 0;
            }
            // Renegotiation is off and TLS 1.3 writes never read, so this should not happen;
            // if OpenSSL does need input first, wait for it rather than fail.
            co_await async_wait_readable(ec);
            if (ec) {
                co_return 0;
            }
        }
    }
    if (out_.size > 0) {
        co_await flush(ec);
        if (ec) {
            co_return 0;
        }
    }
    co_return bytes.size();
}

// Sends everything queued. One non-blocking send first: usually it takes all, and the coroutine
// goes on without a trip through the event loop; whatever the socket cannot take now goes through
// one async_write. Either way a 256 KiB chunk of a RETR (16 records) is one or a few send()s, not
// 16.
asio::awaitable<void> tls_stream::flush(asio::error_code& ec) {
    std::size_t sent = socket_.write_some(asio::buffer(out_.data, out_.size), ec);
    if (ec == asio::error::would_block || (!ec && sent < out_.size)) {
        const asio::const_buffer rest(out_.data + sent, out_.size - sent);
        ec = {};
        sent += co_await asio::async_write(socket_, rest, asio::redirect_error(use_awaitable, ec));
    }
    out_.size = 0;
    if (ec) {
        fatal_error_ = ec;  // part of a record may be out: nothing can follow it
    }
}

asio::awaitable<void> tls_stream::async_shutdown(asio::error_code& ec, std::chrono::milliseconds linger) {
    ec = {};
    if (fatal_error_) {
        co_return;  // SSL_shutdown(3): not after a fatal error; the peer is gone or lost sync
    }
    begin_openssl_call();
    const int r = SSL_shutdown(ssl_);
    const int sys = errno;
    if (r < 0) {
        ec = error_for(r, sys);
        co_return;
    }
    if (out_.size > 0) {
        co_await flush(ec);
        if (ec) {
            co_return;
        }
    }
    if (r == 1) {
        co_return;  // the peer's close_notify had already arrived
    }
    // Lingering close (see the header): drain until the peer's close_notify or EOF. TLS does not
    // require waiting for it (RFC 8446 §6.1, RFC 5246 §7.2.1); TCP makes it worth a short wait.
    // The timer's handler may run after this coroutine has finished (a wait that expired just as
    // the loop ended): `lingering` tells it the socket may be gone by then.
    auto lingering = std::make_shared<bool>(true);
    asio::steady_timer limit(socket_.get_executor());
    limit.expires_after(linger);
    limit.async_wait([lingering, &socket = socket_](asio::error_code e) {
        if (!e && *lingering) {
            asio::error_code ignored;
            socket.cancel(ignored);
        }
    });
    std::size_t budget = max_discarded_on_close;
    for (;;) {
        budget -= discard_available(budget, ec);
        if (ec != asio::error::would_block) {
            // eof: the peer's close_notify; stream_truncated or a socket error: the peer closed
            // first; no error and no budget: it keeps talking. Done either way.
            ec = {};
            break;
        }
        co_await async_wait_readable(ec);
        if (ec) {
            ec = {};  // the time limit or the caller's deadline: close_notify is out, that is enough
            break;
        }
    }
    *lingering = false;
}

// Reads and drops up to `budget` bytes of what has arrived; returns how many. A buffer on this
// thread's stack, wiped: it may hold pipelined commands with a password in them.
std::size_t tls_stream::discard_available(std::size_t budget, asio::error_code& ec) {
    char scratch[4096];
    std::size_t total = 0;
    ec = {};
    while (total < budget) {
        const std::size_t n = read_available(std::span<char>(scratch, std::min(sizeof scratch, budget - total)), ec);
        util::wipe(std::span<char>(scratch, n));
        if (n == 0) {
            break;
        }
        total += n;
    }
    return total;
}

}  // namespace poplar::net
