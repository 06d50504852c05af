// bare-copy mode: an in-process sender thread and a receiver over 127.0.0.1, plain or TLS.
#include "bare_copy.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <fstream>
#include <iterator>
#include <memory>
#include <new>
#include <stdexcept>
#include <string>
#include <system_error>
#include <thread>

#include <asio/ssl/context.hpp>
#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/ssl.h>

#include "pop3_client.h"
#include "proc_stats.h"

namespace loadgen {

namespace {

// Same read size as a RETR body read in pop3_client.
constexpr std::size_t receive_chunk = 256 * 1024;

[[noreturn]] void fail(const char* what) {
    throw std::system_error(errno, std::generic_category(), what);
}

std::string crlf_bytes(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    if (!in) {
        throw std::runtime_error("cannot read " + path);
    }
    const std::string lf((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    std::string out;
    out.reserve(lf.size() + lf.size() / 32);
    char prev = '\0';
    for (const char c : lf) {
        if (c == '\n' && prev != '\r') {
            out += '\r';
        }
        out += c;
        prev = c;
    }
    return out;
}

void send_all(int fd, const char* p, std::size_t n) {
    while (n > 0) {
        const ssize_t k = ::send(fd, p, n, MSG_NOSIGNAL);
        if (k < 0) {
            if (errno == EINTR) {
                continue;
            }
            fail("send");
        }
        p += k;
        n -= static_cast<std::size_t>(k);
    }
}

// What OpenSSL says went wrong, for an exception.
[[noreturn]] void fail_tls(const char* what) {
    char text[256] = "no OpenSSL error queued";
    if (const unsigned long e = ERR_get_error(); e != 0) {
        ERR_error_string_n(e, text, sizeof text);
    }
    ERR_clear_error();
    throw std::runtime_error(std::string("bare-copy: TLS ") + what + ": " + text);
}

struct ssl_free {
    void operator()(SSL* s) const { SSL_free(s); }
};
using ssl_ptr = std::unique_ptr<SSL, ssl_free>;

// Plaintext handed to SSL_write at a time: poplar's read chunk (limits::message_read_chunk), so
// the records of one chunk go out together, as poplar's tls_stream sends them.
constexpr std::size_t tls_write_chunk = 256 * 1024;

// The sender's write BIO: appends OpenSSL's records to a std::string, which send() empties. Not
// BIO_s_mem(): its BIO_reset() zero-fills the whole buffer, a cost no server has to pay.
int records_write(BIO* bio, const char* bytes, std::size_t n, std::size_t* written) noexcept {
    try {
        static_cast<std::string*>(BIO_get_data(bio))->append(bytes, n);
    } catch (const std::bad_alloc&) {
        return 0;  // no exception may cross OpenSSL's C frames; SSL_write then fails
    }
    *written = n;
    return 1;
}

long records_ctrl(BIO*, int cmd, long, void*) { return cmd == BIO_CTRL_FLUSH ? 1 : 0; }

int records_create(BIO* bio) {
    BIO_set_init(bio, 1);
    return 1;
}

const BIO_METHOD* records_method() {
    static BIO_METHOD* const method = [] {
        BIO_METHOD* m = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK, "bare-copy records");
        if (m != nullptr) {
            BIO_meth_set_write_ex(m, records_write);
            BIO_meth_set_ctrl(m, records_ctrl);
            BIO_meth_set_create(m, records_create);
        }
        return m;
    }();
    return method;
}

// A TLS session on the connected socket `fd`, after `handshake` (SSL_accept or SSL_connect).
ssl_ptr tls_session(SSL_CTX* tls, int fd, int (*handshake)(SSL*), const char* what) {
    ssl_ptr ssl(SSL_new(tls));
    if (!ssl || SSL_set_fd(ssl.get(), fd) != 1 || handshake(ssl.get()) != 1) {
        fail_tls(what);
    }
    return ssl;
}

// The sending end: a bare send() loop, or TLS records made in memory and sent a chunk at a time.
class sender_end {
public:
    sender_end(int fd, SSL_CTX* tls) : fd_(fd) {
        if (tls == nullptr) {
            return;
        }
        ssl_ = tls_session(tls, fd, SSL_accept, "accept");
        // From here on OpenSSL writes into records_; send() sends them. Reads stay on the socket.
        BIO* out = records_method() != nullptr ? BIO_new(records_method()) : nullptr;
        if (out == nullptr) {
            fail_tls("BIO_new");
        }
        BIO_set_data(out, &records_);
        records_.reserve(tls_write_chunk + tls_write_chunk / 16);  // 16 KiB records, ~22 octets each extra
        SSL_set0_wbio(ssl_.get(), out);
    }

    // One request octet per transfer, like "RETR n"; false once the receiver has gone.
    bool read_request() {
        char go = 0;
        return ssl_ ? SSL_read(ssl_.get(), &go, 1) == 1 : ::recv(fd_, &go, 1, 0) == 1;
    }

    void send(const char* p, std::size_t n) {
        if (!ssl_) {
            send_all(fd_, p, n);
            return;
        }
        while (n > 0) {
            const std::size_t k = std::min(n, tls_write_chunk);
            if (SSL_write(ssl_.get(), p, static_cast<int>(k)) != static_cast<int>(k)) {
                fail_tls("write");  // the records BIO never asks to wait
            }
            send_all(fd_, records_.data(), records_.size());
            records_.clear();
            p += k;
            n -= k;
        }
    }

private:
    int fd_;
    std::string records_;  // before ssl_: its write BIO points here until ssl_ is freed
    ssl_ptr ssl_;
};

// The receiving end: recv(), or SSL_read() with the load generator's client settings.
class receiver_end {
public:
    receiver_end(int fd, SSL_CTX* tls) : fd_(fd) {
        if (tls == nullptr) {
            return;
        }
        ssl_ = tls_session(tls, fd, SSL_connect, "connect");
    }

    void request() {
        if (!ssl_) {
            send_all(fd_, "g", 1);
        } else if (SSL_write(ssl_.get(), "g", 1) != 1) {
            fail_tls("write");
        }
    }

    // Octets received (> 0), or 0 once the connection has ended.
    std::size_t receive(char* buf, std::size_t n) {
        for (;;) {
            const ssize_t k = ssl_ ? SSL_read(ssl_.get(), buf, static_cast<int>(n)) : ::recv(fd_, buf, n, 0);
            if (k > 0) {
                return static_cast<std::size_t>(k);
            }
            if (!ssl_ && k < 0 && errno == EINTR) {
                continue;
            }
            ERR_clear_error();
            return 0;
        }
    }

    std::string cipher() const { return describe_tls(ssl_.get()); }

private:
    int fd_;
    ssl_ptr ssl_;
};

}  // namespace

run_result bare_copy(const options& opt) {
    const std::string payload = crlf_bytes(opt.file);
    run_result r;
    std::unique_ptr<asio::ssl::context> server_tls;
    std::unique_ptr<asio::ssl::context> client_tls;
    if (opt.tls == tls_mode::implicit) {
        server_tls = std::make_unique<asio::ssl::context>(asio::ssl::context::tls_server);
        server_tls->use_certificate_chain_file(opt.cert);
        server_tls->use_private_key_file(opt.key, asio::ssl::context::pem);
        client_tls = std::make_unique<asio::ssl::context>(asio::ssl::context::tls_client);
        configure_client_tls(*client_tls, receive_chunk);
    }
    const int lfd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (lfd < 0) {
        fail("socket");
    }
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr.sin_port = 0;
    socklen_t len = sizeof addr;
    if (::bind(lfd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 || ::listen(lfd, 1) != 0 ||
        ::getsockname(lfd, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
        fail("bind/listen");
    }
    double sender_cpu_s = 0;
    std::string sender_error;
    std::thread sender([&] {
        const int fd = ::accept(lfd, nullptr, nullptr);
        if (fd < 0) {
            return;
        }
        const int one = 1;
        ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        try {
            sender_end end(fd, server_tls ? server_tls->native_handle() : nullptr);
            while (end.read_request()) {
                const double t0 = thread_cpu_s();
                end.send(payload.data(), payload.size());
                sender_cpu_s += thread_cpu_s() - t0;
            }
        } catch (const std::exception& e) {
            sender_error = e.what();  // reported after join(); the receiver sees the connection end
        }
        ::shutdown(fd, SHUT_RDWR);
        ::close(fd);
    });

    const double cpu0 = self_cpu_s();
    r.machine_before = sample_machine();
    const auto start = std::chrono::steady_clock::now();
    const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0 || ::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
        const int err = errno;
        ::shutdown(lfd, SHUT_RDWR);  // wakes the sender's accept(), so it can be joined
        sender.join();
        ::close(lfd);
        errno = err;
        fail("connect");
    }
    const int one = 1;
    ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    auto buf = std::make_unique<char[]>(receive_chunk);
    try {
        receiver_end end(fd, client_tls ? client_tls->native_handle() : nullptr);
        r.cipher = end.cipher();
        for (unsigned i = 0; i < opt.repeat; ++i) {
            const auto t0 = std::chrono::steady_clock::now();
            end.request();
            std::size_t got = 0;
            while (got < payload.size()) {
                const std::size_t k = end.receive(buf.get(), receive_chunk);
                if (k == 0) {
                    r.add_error("bare-copy: connection ended early");
                    break;
                }
                got += k;
            }
            const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
            r.retr_mb_per_s.push_back(static_cast<double>(got) / 1e6 / s);
            r.retr_wire_bytes += got;
            ++r.messages;
            if (got < payload.size()) {
                break;
            }
        }
    } catch (const std::exception& e) {
        r.add_error(e.what());
    }
    ::shutdown(fd, SHUT_RDWR);
    ::close(fd);
    sender.join();
    ::close(lfd);
    if (!sender_error.empty()) {
        r.add_error(sender_error);
    }
    r.sender_cpu_s = sender_cpu_s;
    r.retr_octets = payload.size();
    r.sessions = 1;
    r.elapsed_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    r.loadgen_cpu_s = self_cpu_s() - cpu0;
    r.machine_after = sample_machine();
    return r;
}

}  // namespace loadgen
