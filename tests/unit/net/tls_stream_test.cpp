// Tests tls_stream against a real OpenSSL client (asio::ssl::stream) over a loopback TCP pair in
// one io_context: the handshake, exact bytes both ways, and every way a session can end (the
// client's close_notify, a TCP drop, garbage, plaintext before the ClientHello, cancellation).
// Every test runs under a time limit, so a hang is a failure, not a stuck suite.
#include "net/tls_stream.h"

#include <asio/co_spawn.hpp>
#include <asio/detached.hpp>
#include <asio/io_context.hpp>
#include <asio/read.hpp>
#include <asio/redirect_error.hpp>
#include <asio/ssl/error.hpp>
#include <asio/ssl/host_name_verification.hpp>
#include <asio/ssl/stream.hpp>
#include <asio/steady_timer.hpp>
#include <asio/use_awaitable.hpp>
#include <asio/write.hpp>
#include <openssl/ssl.h>
#include <stdlib.h>

#include <gtest/gtest.h>

#include <chrono>
#include <exception>
#include <filesystem>
#include <functional>
#include <memory>
#include <random>
#include <string>

#include "config/config.h"
#include "net/tls_context.h"

namespace poplar::net {
namespace {

namespace fs = std::filesystem;
using asio::ip::tcp;
using asio::redirect_error;
using asio::use_awaitable;
using namespace std::chrono_literals;
using client_stream = asio::ssl::stream<tcp::socket&>;

std::string random_bytes(std::size_t n) {
    std::mt19937 gen(20261122);
    std::string s(n, '\0');
    for (char& c : s) {
        c = static_cast<char>(gen());
    }
    return s;
}

// read_available() and async_wait_readable() in a loop, as connection::receive() drives them: at
// least one byte, or an error.
asio::awaitable<std::size_t> read_some(tls_stream& s, std::span<char> into, asio::error_code& ec) {
    for (;;) {
        const std::size_t n = s.read_available(into, ec);
        if (n > 0 || ec != asio::error::would_block) {
            co_return n;
        }
        co_await s.async_wait_readable(ec);
        if (ec) {
            co_return 0;
        }
    }
}

// Reads exactly n bytes, or fewer with ec set.
asio::awaitable<std::string> read_exactly(tls_stream& s, std::size_t n, asio::error_code& ec) {
    std::string got(n, '\0');
    std::size_t have = 0;
    while (have < n) {
        const std::span<char> rest(got.data() + have, n - have);
        const std::size_t k = co_await read_some(s, rest, ec);
        if (ec) {
            break;
        }
        have += k;
    }
    got.resize(have);
    co_return got;
}

class TlsStreamTest : public testing::Test {
protected:
    // One key and certificate for the suite: generating them per test is needless work.
    static void SetUpTestSuite() {
        std::string tmpl = testing::TempDir() + "poplar-tls-XXXXXX";
        ASSERT_NE(::mkdtemp(tmpl.data()), nullptr);
        dir_ = new fs::path(tmpl);
        write_self_signed_certificate(*dir_ / "cert.pem", *dir_ / "key.pem", {"localhost"}, 1);
    }
    static void TearDownTestSuite() {
        std::error_code ec;
        fs::remove_all(*dir_, ec);
        delete dir_;
        dir_ = nullptr;
    }

    void SetUp() override {
        config::tls_settings settings;
        settings.certificate = *dir_ / "cert.pem";
        settings.private_key = *dir_ / "key.pem";
        server_ctx_ = make_server_tls_context(settings);
        client_ctx_.load_verify_file((*dir_ / "cert.pem").string());
        client_ctx_.set_verify_mode(asio::ssl::verify_peer);

        tcp::acceptor acceptor(io_, tcp::endpoint(asio::ip::address_v4::loopback(), 0));
        client_socket_.connect(acceptor.local_endpoint());
        acceptor.accept(server_socket_);
        server_socket_.non_blocking(true);  // as connection does
        server_socket_.set_option(tcp::no_delay(true));
    }

    // Builds the client's TLS stream (after any change to client_ctx_).
    client_stream& client() {
        if (!client_) {
            client_ = std::make_unique<client_stream>(client_socket_, client_ctx_);
            client_->set_verify_callback(asio::ssl::host_name_verification("localhost"));
            SSL_set_tlsext_host_name(client_->native_handle(), "localhost");
        }
        return *client_;
    }

    tls_stream& server() {
        if (!server_) {
            server_ = std::make_unique<tls_stream>(server_socket_, *server_ctx_);
        }
        return *server_;
    }

    // Runs both sides to completion; a side still running after `limit` is a hang.
    void run(const std::function<asio::awaitable<void>()>& server_side,
             const std::function<asio::awaitable<void>()>& client_side, std::chrono::seconds limit = 10s) {
        bool server_done = false;
        bool client_done = false;
        std::exception_ptr failure;
        asio::co_spawn(io_, server_side, [&](std::exception_ptr e) {
            server_done = true;
            failure = failure ? failure : e;
        });
        asio::co_spawn(io_, client_side, [&](std::exception_ptr e) {
            client_done = true;
            failure = failure ? failure : e;
        });
        io_.run_for(limit);
        EXPECT_TRUE(server_done) << "server side hung";
        EXPECT_TRUE(client_done) << "client side hung";
        if (failure) {
            std::rethrow_exception(failure);
        }
    }

    // A client that completes the handshake, says nothing for `quiet`, then closes.
    asio::awaitable<void> silent_client(std::chrono::milliseconds quiet, asio::error_code& ec) {
        co_await client().async_handshake(asio::ssl::stream_base::client, redirect_error(use_awaitable, ec));
        asio::steady_timer hold(io_, quiet);
        asio::error_code ignored;
        co_await hold.async_wait(redirect_error(use_awaitable, ignored));
        client_socket_.close();
    }

    // The server's handshake against `bytes` sent by the client in place of a ClientHello (then,
    // with half_close, the client's FIN): the error it ends with. run() reports a hang.
    asio::error_code handshake_against(const std::string& bytes, bool half_close) {
        asio::error_code handshake_ec;
        auto server_side = [&]() -> asio::awaitable<void> {
            co_await server().async_handshake(handshake_ec);
            server_socket_.close();  // as connection does after a failed handshake
        };
        auto client_side = [&]() -> asio::awaitable<void> {
            asio::error_code ignored;
            co_await asio::async_write(client_socket_, asio::buffer(bytes), redirect_error(use_awaitable, ignored));
            if (half_close) {
                client_socket_.shutdown(tcp::socket::shutdown_send);
            }
        };
        run(server_side, client_side);
        return handshake_ec;
    }

    // The server echoes `payload` (read in full, then written back in one async_write) and then
    // expects the client's close_notify. The client sends while it reads, so neither side blocks
    // the other whatever the payload's size.
    void echo(const std::string& payload) {
        std::string server_got;
        std::size_t server_wrote = 0;
        std::size_t capacity_after_write = 0;
        asio::error_code handshake_ec, read_ec, write_ec, last_read_ec;
        std::string client_got;
        asio::error_code client_ec;

        auto server_side = [&]() -> asio::awaitable<void> {
            co_await server().async_handshake(handshake_ec);
            if (handshake_ec) {
                co_return;
            }
            server_got = co_await read_exactly(server(), payload.size(), read_ec);
            server_wrote = co_await server().async_write(server_got, write_ec);
            capacity_after_write = server().output_capacity();
            char byte;
            const std::span<char> one(&byte, 1);
            co_await read_some(server(), one, last_read_ec);
            asio::error_code ignored;
            co_await server().async_shutdown(ignored);
        };
        auto client_side = [&]() -> asio::awaitable<void> {
            co_await client().async_handshake(asio::ssl::stream_base::client, redirect_error(use_awaitable, client_ec));
            if (client_ec) {
                co_return;
            }
            auto send = [&]() -> asio::awaitable<void> {
                asio::error_code ignored;
                co_await asio::async_write(client(), asio::buffer(payload), redirect_error(use_awaitable, ignored));
            };
            asio::co_spawn(io_, send, asio::detached);
            client_got.assign(payload.size(), '\0');
            co_await asio::async_read(client(), asio::buffer(client_got), redirect_error(use_awaitable, client_ec));
            asio::error_code ignored;
            co_await client().async_shutdown(redirect_error(use_awaitable, ignored));
        };
        run(server_side, client_side);

        EXPECT_FALSE(handshake_ec) << handshake_ec.message();
        EXPECT_FALSE(read_ec) << read_ec.message();
        EXPECT_FALSE(write_ec) << write_ec.message();
        EXPECT_FALSE(client_ec) << client_ec.message();
        EXPECT_EQ(server_wrote, payload.size());
        EXPECT_TRUE(server_got == payload) << "server received different bytes";
        EXPECT_TRUE(client_got == payload) << "client received different bytes";
        EXPECT_EQ(last_read_ec, asio::error::eof) << last_read_ec.message();
        // A big write's records sit in one buffer (one send); waiting for the next command
        // freed it (the idle-session memory target).
        EXPECT_GE(capacity_after_write, payload.size());
        EXPECT_LE(server().output_capacity(), 512U);
    }

    static inline fs::path* dir_ = nullptr;
    asio::io_context io_;
    std::unique_ptr<asio::ssl::context> server_ctx_;
    asio::ssl::context client_ctx_{asio::ssl::context::tls_client};
    tcp::socket server_socket_{io_};
    tcp::socket client_socket_{io_};
    std::unique_ptr<tls_stream> server_;
    std::unique_ptr<client_stream> client_;
};

TEST_F(TlsStreamTest, EchoesSmallPayloadExactly) {
    echo("CAPA\r\n");
}

TEST_F(TlsStreamTest, EchoesThreeMebibytesWrittenInOneCall) {
    echo(random_bytes(3 * 1024 * 1024));
}

// TLS 1.2's server Finished is the last handshake message and comes out of the server's final
// SSL_do_handshake: it must be sent before the server waits for the client's first command, or
// both sides wait for each other (STLS, where the client speaks first after the handshake).
TEST_F(TlsStreamTest, Tls12HandshakeSendsFinalFlightBeforeWaiting) {
    SSL_CTX_set_max_proto_version(client_ctx_.native_handle(), TLS1_2_VERSION);
    echo("STAT\r\n");
    EXPECT_EQ(SSL_version(client().native_handle()), TLS1_2_VERSION);
}

TEST_F(TlsStreamTest, ClientCloseNotifyIsEofAndShutdownCompletes) {
    asio::error_code handshake_ec, read_ec, shutdown_ec, client_ec;
    auto server_side = [&]() -> asio::awaitable<void> {
        co_await server().async_handshake(handshake_ec);
        char buf[16];
        const std::span<char> into(buf);
        co_await read_some(server(), into, read_ec);
        co_await server().async_shutdown(shutdown_ec);
    };
    auto client_side = [&]() -> asio::awaitable<void> {
        co_await client().async_handshake(asio::ssl::stream_base::client, redirect_error(use_awaitable, client_ec));
        // Returns once the server's close_notify answers ours.
        co_await client().async_shutdown(redirect_error(use_awaitable, client_ec));
    };
    run(server_side, client_side);
    EXPECT_FALSE(handshake_ec) << handshake_ec.message();
    EXPECT_EQ(read_ec, asio::error::eof) << read_ec.message();
    EXPECT_FALSE(shutdown_ec) << shutdown_ec.message();
    EXPECT_FALSE(client_ec) << client_ec.message();
}

TEST_F(TlsStreamTest, ServerShutdownSendsCloseNotifyAndWaitsForClients) {
    asio::error_code handshake_ec, write_ec, shutdown_ec, client_read_ec, client_ec;
    std::string client_got(5, '\0');
    auto server_side = [&]() -> asio::awaitable<void> {
        co_await server().async_handshake(handshake_ec);
        co_await server().async_write("+OK\r\n", write_ec);
        co_await server().async_shutdown(shutdown_ec);
    };
    auto client_side = [&]() -> asio::awaitable<void> {
        co_await client().async_handshake(asio::ssl::stream_base::client, redirect_error(use_awaitable, client_ec));
        co_await asio::async_read(client(), asio::buffer(client_got), redirect_error(use_awaitable, client_ec));
        char more;
        co_await client().async_read_some(asio::buffer(&more, 1), redirect_error(use_awaitable, client_read_ec));
        co_await client().async_shutdown(redirect_error(use_awaitable, client_ec));
    };
    run(server_side, client_side);
    EXPECT_FALSE(handshake_ec) << handshake_ec.message();
    EXPECT_FALSE(write_ec) << write_ec.message();
    EXPECT_FALSE(shutdown_ec) << shutdown_ec.message();
    EXPECT_EQ(client_got, "+OK\r\n");
    EXPECT_EQ(client_read_ec, asio::error::eof) << "no close_notify: " << client_read_ec.message();
    EXPECT_FALSE(client_ec) << client_ec.message();
}

// A client that neither answers close_notify nor closes must not hold the session: the wait for
// it has its own limit, since the connection's deadline may already be spent.
TEST_F(TlsStreamTest, ServerShutdownGivesUpOnASilentClient) {
    asio::error_code handshake_ec, shutdown_ec, client_ec;
    std::chrono::steady_clock::duration lingered{};
    auto server_side = [&]() -> asio::awaitable<void> {
        co_await server().async_handshake(handshake_ec);
        co_await server().async_write("-ERR autologout\r\n", shutdown_ec);
        const auto start = std::chrono::steady_clock::now();
        co_await server().async_shutdown(shutdown_ec, 200ms);
        lingered = std::chrono::steady_clock::now() - start;
    };
    auto client_side = [&]() { return silent_client(1s, client_ec); };  // connected and silent well past the limit
    run(server_side, client_side);
    EXPECT_FALSE(handshake_ec) << handshake_ec.message();
    EXPECT_FALSE(client_ec) << client_ec.message();
    EXPECT_FALSE(shutdown_ec) << shutdown_ec.message();
    EXPECT_GE(lingered, 200ms);
    EXPECT_LT(lingered, 800ms);
}

TEST_F(TlsStreamTest, TcpDropWithoutCloseNotifyIsTruncation) {
    asio::error_code handshake_ec, write_ec, read_ec, again_ec, shutdown_ec, client_ec;
    auto server_side = [&]() -> asio::awaitable<void> {
        co_await server().async_handshake(handshake_ec);
        co_await server().async_write("+OK\r\n", write_ec);
        char buf[16];
        const std::span<char> into(buf);
        co_await read_some(server(), into, read_ec);
        co_await read_some(server(), into, again_ec);  // stays failed, does not wait
        co_await server().async_shutdown(shutdown_ec);      // nothing to do after a fatal error
    };
    auto client_side = [&]() -> asio::awaitable<void> {
        co_await client().async_handshake(asio::ssl::stream_base::client, redirect_error(use_awaitable, client_ec));
        // Reading the reply also reads the session tickets, so the close below is a FIN, not a
        // reset for unread data.
        std::string got(5, '\0');
        co_await asio::async_read(client(), asio::buffer(got), redirect_error(use_awaitable, client_ec));
        client_socket_.close();
    };
    run(server_side, client_side);
    EXPECT_FALSE(handshake_ec) << handshake_ec.message();
    EXPECT_FALSE(write_ec) << write_ec.message();
    EXPECT_FALSE(client_ec) << client_ec.message();
    EXPECT_EQ(read_ec, asio::ssl::error::stream_truncated) << read_ec.message();
    EXPECT_EQ(again_ec, asio::ssl::error::stream_truncated) << again_ec.message();
    EXPECT_FALSE(shutdown_ec) << shutdown_ec.message();
}

TEST_F(TlsStreamTest, GarbageFailsTheHandshakeWithAMeaningfulError) {
    const asio::error_code handshake_ec = handshake_against("GET / HTTP/1.0\r\nHost: localhost\r\n\r\n", false);
    ASSERT_TRUE(handshake_ec);
    EXPECT_EQ(handshake_ec.category(), asio::error::get_ssl_category());
    EXPECT_NE(handshake_ec.message(), "asio.ssl error");  // OpenSSL's reason, for the log line
}

TEST_F(TlsStreamTest, GarbageThenCloseDoesNotHang) {
    // A record header promising 128 bytes, then 7 and EOF.
    EXPECT_TRUE(handshake_against(std::string("\x16\x03\x01\x00\x80garbage", 12), true));
}

// What STARTTLS injection (RFC 2595 §4, CVE-2021-38542) leaves in the kernel for the stream to
// read: plaintext before the ClientHello. It must fail the handshake, never be taken as input.
TEST_F(TlsStreamTest, PlaintextBeforeClientHelloFailsTheHandshake) {
    asio::error_code handshake_ec, client_ec;
    auto server_side = [&]() -> asio::awaitable<void> {
        co_await server().async_handshake(handshake_ec);
        server_socket_.close();  // as connection does after a failed handshake
    };
    auto client_side = [&]() -> asio::awaitable<void> {
        const std::string injected = "CAPA\r\n";
        co_await asio::async_write(client_socket_, asio::buffer(injected), redirect_error(use_awaitable, client_ec));
        co_await client().async_handshake(asio::ssl::stream_base::client, redirect_error(use_awaitable, client_ec));
        client_socket_.close();
    };
    run(server_side, client_side);
    EXPECT_TRUE(handshake_ec);
    EXPECT_TRUE(client_ec);
}

TEST_F(TlsStreamTest, SocketCancelWhileWaitingToReadIsOperationAborted) {
    asio::error_code handshake_ec, read_ec, client_ec;
    asio::steady_timer watchdog(io_);
    auto server_side = [&]() -> asio::awaitable<void> {
        co_await server().async_handshake(handshake_ec);
        // As connection's watchdog does: cancel the socket's pending operations.
        watchdog.expires_after(100ms);
        watchdog.async_wait([this](asio::error_code) { server_socket_.cancel(); });
        char buf[16];
        const std::span<char> into(buf);
        co_await read_some(server(), into, read_ec);
    };
    auto client_side = [&]() { return silent_client(500ms, client_ec); };  // connected and silent past the cancellation
    run(server_side, client_side);
    EXPECT_FALSE(handshake_ec) << handshake_ec.message();
    EXPECT_FALSE(client_ec) << client_ec.message();
    EXPECT_EQ(read_ec, asio::error::operation_aborted) << read_ec.message();
}

}  // namespace
}  // namespace poplar::net
