// POP3 client commands over a plain or TLS stream, with one read buffer and a deadline.
#include "pop3_client.h"

#include <asio/connect.hpp>
#include <asio/redirect_error.hpp>
#include <asio/use_awaitable.hpp>
#include <asio/write.hpp>
#include <fmt/format.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/ssl.h>

#include <algorithm>
#include <charconv>
#include <system_error>
#include <cstring>

#include "body_scanner.h"

namespace loadgen {

using asio::use_awaitable;

namespace {

// Replies and lines are small; only RETR bodies need a big buffer, so idle sessions (10,000 of
// them) stay cheap and transfers still move in large reads.
constexpr std::size_t line_buffer = 4 * 1024;
constexpr std::size_t body_buffer = 256 * 1024;
// A status or listing line longer than this is not POP3 (RFC 2449 §4 caps replies at 512).
constexpr std::size_t max_line = 64 * 1024;

std::string shorten(std::string_view s) {
    std::string out(s.substr(0, 160));
    for (char& c : out) {
        if (static_cast<unsigned char>(c) < 0x20) {
            c = ' ';
        }
    }
    return out;
}

std::uint64_t parse_number(std::string_view text, std::string_view what) {
    std::uint64_t v = 0;
    const auto [p, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
    if (ec != std::errc{} || p == text.data()) {
        throw pop3_failure(fmt::format("bad number in {}: \"{}\"", what, shorten(text)));
    }
    return v;
}

std::string base64(std::string_view in) {
    std::string out(4 * ((in.size() + 2) / 3) + 1, '\0');
    const int n = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                                  reinterpret_cast<const unsigned char*>(in.data()), static_cast<int>(in.size()));
    out.resize(static_cast<std::size_t>(n));
    return out;
}

}  // namespace

pop3_client::pop3_client(const asio::any_io_executor& ex, asio::ssl::context* tls)
    : socket_(ex), tls_ctx_(tls), watchdog_(ex) {
    reserve(line_buffer);
}

pop3_client::~pop3_client() {
    watchdog_.cancel();
}

void pop3_client::set_deadline(std::chrono::steady_clock::time_point deadline) {
    watchdog_.expires_at(deadline);
    // The handler may run after this client is gone (the wait completed just before the
    // destructor's cancel), so it only touches the socket when the wait really expired and
    // the client still exists: the timer's own expiry is checked through a weak token.
    watchdog_.async_wait([this, alive = std::weak_ptr<char>(alive_token_)](asio::error_code ec) {
        if (ec || alive.expired()) {
            return;
        }
        asio::error_code ignored;
        socket_.close(ignored);
    });
}

void pop3_client::reserve(std::size_t capacity) {
    if (capacity <= cap_) {
        return;
    }
    auto bigger = std::make_unique_for_overwrite<char[]>(capacity);
    std::memcpy(bigger.get(), buf_.get() + rpos_, wpos_ - rpos_);
    wpos_ -= rpos_;
    rpos_ = 0;
    buf_ = std::move(bigger);
    cap_ = capacity;
}

void pop3_client::ssl_free::operator()(ssl_st* s) const {
    SSL_free(s);
}

void configure_client_tls(asio::ssl::context& ctx, std::size_t read_buffer) {
    SSL_CTX* c = ctx.native_handle();
    SSL_CTX_set_verify(c, SSL_VERIFY_NONE, nullptr);
    SSL_CTX_set_session_cache_mode(c, SSL_SESS_CACHE_OFF);
    SSL_CTX_set_min_proto_version(c, TLS1_2_VERSION);
    if (read_buffer > 0) {
        SSL_CTX_set_read_ahead(c, 1);
        SSL_CTX_set_default_read_buffer_len(c, read_buffer);
    }
}

namespace {

[[noreturn]] void throw_tls(const char* what, int ssl_error) {
    const unsigned long e = ERR_get_error();
    char text[256] = "";
    if (e != 0) {
        ERR_error_string_n(e, text, sizeof text);
    }
    ERR_clear_error();
    if (ssl_error == SSL_ERROR_ZERO_RETURN || (ssl_error == SSL_ERROR_SYSCALL && e == 0)) {
        throw std::system_error(asio::error::eof, what);
    }
    throw pop3_failure(fmt::format("TLS {}: error {} {}", what, ssl_error, text));
}

}  // namespace

// Waits for the socket state OpenSSL asked for (a TLS read may need a write and vice versa), or
// throws for a real error.
asio::awaitable<void> pop3_client::wait_for_tls(int err, const char* what) {
    if (err == SSL_ERROR_WANT_READ) {
        co_await socket_.async_wait(asio::socket_base::wait_read, use_awaitable);
    } else if (err == SSL_ERROR_WANT_WRITE) {
        co_await socket_.async_wait(asio::socket_base::wait_write, use_awaitable);
    } else {
        throw_tls(what, err);
    }
}

asio::awaitable<void> pop3_client::write(std::string_view bytes) {
    if (tls_) {
        while (true) {
            const int r = SSL_write(tls_.get(), bytes.data(), static_cast<int>(bytes.size()));
            if (r > 0) {
                co_return;  // without SSL_MODE_ENABLE_PARTIAL_WRITE: all of it
            }
            co_await wait_for_tls(SSL_get_error(tls_.get(), r), "write");
        }
    }
    co_await asio::async_write(socket_, asio::buffer(bytes.data(), bytes.size()), use_awaitable);
}

asio::awaitable<std::size_t> pop3_client::read_some(char* into, std::size_t n) {
    if (tls_) {
        while (true) {
            const int r = SSL_read(tls_.get(), into, static_cast<int>(std::min<std::size_t>(n, 1 << 30)));
            if (r > 0) {
                co_return static_cast<std::size_t>(r);
            }
            co_await wait_for_tls(SSL_get_error(tls_.get(), r), "read");
        }
    }
    co_return co_await socket_.async_read_some(asio::buffer(into, n), use_awaitable);
}

// Makes room (moving unread bytes to the front) and reads at least one more byte.
asio::awaitable<void> pop3_client::fill() {
    if (rpos_ > 0 && (rpos_ == wpos_ || wpos_ == cap_)) {
        std::memmove(buf_.get(), buf_.get() + rpos_, wpos_ - rpos_);
        wpos_ -= rpos_;
        rpos_ = 0;
    }
    if (wpos_ == cap_) {
        reserve(cap_ * 2);
    }
    wpos_ += co_await read_some(buf_.get() + wpos_, cap_ - wpos_);
}

asio::awaitable<std::string_view> pop3_client::read_line() {
    std::size_t scanned = rpos_;
    while (true) {
        const char* start = buf_.get() + scanned;
        const void* nl = std::memchr(start, '\n', wpos_ - scanned);
        if (nl != nullptr) {
            const std::size_t end = static_cast<std::size_t>(static_cast<const char*>(nl) - buf_.get());
            std::size_t len = end - rpos_;
            if (len > 0 && buf_[end - 1] == '\r') {
                --len;
            }
            std::string_view line(buf_.get() + rpos_, len);
            rpos_ = end + 1;
            co_return line;
        }
        if (wpos_ - rpos_ > max_line) {
            throw pop3_failure("reply line too long");
        }
        const std::size_t offset = wpos_ - rpos_;
        co_await fill();  // may move the unread bytes to the front
        scanned = rpos_ + offset;
    }
}

asio::awaitable<std::string_view> pop3_client::expect_ok(std::string_view command_for_errors) {
    std::string_view line = co_await read_line();
    if (line.substr(0, 3) != "+OK") {
        throw pop3_failure(fmt::format("{} -> \"{}\"", command_for_errors, shorten(line)));
    }
    co_return line;
}

asio::awaitable<void> pop3_client::handshake() {
    if (tls_ctx_ == nullptr) {
        throw pop3_failure("TLS requested but no client context");
    }
    socket_.native_non_blocking(true);
    tls_.reset(SSL_new(tls_ctx_->native_handle()));
    if (!tls_ || SSL_set_fd(tls_.get(), socket_.native_handle()) != 1) {
        throw pop3_failure("TLS: cannot create the connection");
    }
    SSL_set_connect_state(tls_.get());
    while (true) {
        const int r = SSL_do_handshake(tls_.get());
        if (r == 1) {
            co_return;
        }
        const int err = SSL_get_error(tls_.get(), r);
        if (err == SSL_ERROR_WANT_READ) {
            co_await socket_.async_wait(asio::socket_base::wait_read, use_awaitable);
        } else if (err == SSL_ERROR_WANT_WRITE) {
            co_await socket_.async_wait(asio::socket_base::wait_write, use_awaitable);
        } else {
            throw_tls("handshake", err);
        }
    }
}

asio::awaitable<void> pop3_client::open(const asio::ip::tcp::endpoint& ep, tls_mode tls) {
    co_await socket_.async_connect(ep, use_awaitable);
    socket_.set_option(asio::ip::tcp::no_delay(true));
    if (tls == tls_mode::implicit) {
        co_await handshake();
    }
    co_await expect_ok("greeting");
    if (tls == tls_mode::stls) {
        co_await write("STLS\r\n");
        co_await expect_ok("STLS");
        if (rpos_ != wpos_) {
            throw pop3_failure("bytes after the STLS reply, before the TLS handshake");
        }
        co_await handshake();
    }
}

asio::awaitable<std::chrono::nanoseconds> pop3_client::login(const credential& who, auth_mode how) {
    if (how == auth_mode::user) {
        cmd_ = fmt::format("USER {}\r\n", who.user);
        co_await write(cmd_);
        co_await expect_ok("USER");
        cmd_ = fmt::format("PASS {}\r\n", who.password);
        const auto t0 = std::chrono::steady_clock::now();
        co_await write(cmd_);
        const std::string what = fmt::format("PASS (user {})", who.user);
        co_await expect_ok(what);
        co_return std::chrono::steady_clock::now() - t0;
    }
    std::string blob;
    blob.reserve(who.user.size() + who.password.size() + 2);
    blob += '\0';
    blob += who.user;
    blob += '\0';
    blob += who.password;
    cmd_ = fmt::format("AUTH PLAIN {}\r\n", base64(blob));
    const auto t0 = std::chrono::steady_clock::now();
    co_await write(cmd_);
    const std::string what = fmt::format("AUTH PLAIN (user {})", who.user);
    co_await expect_ok(what);
    co_return std::chrono::steady_clock::now() - t0;
}

asio::awaitable<std::pair<std::uint64_t, std::uint64_t>> pop3_client::stat() {
    co_await write("STAT\r\n");
    std::string_view line = co_await expect_ok("STAT");
    // "+OK nn mm"
    line.remove_prefix(3);
    while (!line.empty() && line.front() == ' ') {
        line.remove_prefix(1);
    }
    const auto sp = line.find(' ');
    if (sp == std::string_view::npos) {
        throw pop3_failure(fmt::format("STAT -> \"+OK {}\"", shorten(line)));
    }
    const std::uint64_t count = parse_number(line.substr(0, sp), "STAT");
    const std::uint64_t size = parse_number(line.substr(sp + 1), "STAT");
    co_return std::pair{count, size};
}

asio::awaitable<void> pop3_client::list(std::vector<std::uint64_t>& sizes) {
    sizes.clear();
    co_await write("LIST\r\n");
    co_await expect_ok("LIST");
    while (true) {
        std::string_view line = co_await read_line();
        if (line == ".") {
            co_return;
        }
        const auto sp = line.find(' ');
        if (sp == std::string_view::npos) {
            throw pop3_failure(fmt::format("LIST line \"{}\"", shorten(line)));
        }
        const std::uint64_t msn = parse_number(line.substr(0, sp), "LIST");
        if (msn != sizes.size() + 1) {
            throw pop3_failure(fmt::format("LIST: msn {} after {}", msn, sizes.size()));
        }
        sizes.push_back(parse_number(line.substr(sp + 1), "LIST"));
    }
}

asio::awaitable<std::uint64_t> pop3_client::uidl() {
    co_await write("UIDL\r\n");
    co_await expect_ok("UIDL");
    std::uint64_t lines = 0;
    while (true) {
        std::string_view line = co_await read_line();
        if (line == ".") {
            co_return lines;
        }
        if (line.find(' ') == std::string_view::npos) {
            throw pop3_failure(fmt::format("UIDL line \"{}\"", shorten(line)));
        }
        ++lines;
    }
}

asio::awaitable<retr_result> pop3_client::retr(std::uint64_t msn) {
    cmd_ = fmt::format("RETR {}\r\n", msn);
    co_await write(cmd_);
    const std::string_view what(cmd_.data(), cmd_.size() - 2);
    co_await expect_ok(what);
    reserve(body_buffer);
    body_scanner scan;
    while (true) {
        rpos_ += scan.feed(buf_.get() + rpos_, wpos_ - rpos_);
        if (scan.done()) {
            break;
        }
        co_await fill();
    }
    if (scan.malformed()) {
        throw pop3_failure(fmt::format("RETR {}: a line starts with a single '.' (bad byte-stuffing)", msn));
    }
    co_return retr_result{scan.wire_octets(), scan.message_octets()};
}

asio::awaitable<void> pop3_client::simple(std::string_view command) {
    cmd_ = fmt::format("{}\r\n", command);
    co_await write(cmd_);
    co_await expect_ok(command);
}

asio::awaitable<void> pop3_client::quit() {
    co_await write("QUIT\r\n");
    co_await expect_ok("QUIT");
    // The server closes after QUIT's reply (RFC 1939 §6). Wait for it; eof, a TLS close_notify
    // or a truncated TLS stream all mean "closed".
    char sink[512];
    try {
        for (int i = 0; i < 8; ++i) {
            co_await read_some(sink, sizeof sink);
        }
    } catch (const std::exception&) {
        // closed: what we were waiting for
    }
}

void pop3_client::close() {
    asio::error_code ignored;
    socket_.close(ignored);
    watchdog_.cancel();
}

std::string describe_tls(const ssl_st* ssl) {
    if (ssl == nullptr) {
        return {};
    }
    const char* name = SSL_get_cipher_name(ssl);
    const char* version = SSL_get_version(ssl);
    return fmt::format("{} {}", version ? version : "?", name ? name : "?");
}

std::string pop3_client::cipher() const { return describe_tls(tls_.get()); }

}  // namespace loadgen
