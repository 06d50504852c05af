// bare-copy mode: an in-process sender thread and a receiver over 127.0.0.1.
#include "bare_copy.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <fstream>
#include <iterator>
#include <memory>
#include <stdexcept>
#include <string>
#include <system_error>
#include <thread>

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

double thread_cpu_s() {
    rusage ru{};
    ::getrusage(RUSAGE_THREAD, &ru);
    return static_cast<double>(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
           static_cast<double>(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}

}  // namespace

run_result bare_copy(const options& opt) {
    const std::string payload = crlf_bytes(opt.file);
    run_result r;
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
    std::thread sender([&] {
        const int fd = ::accept(lfd, nullptr, nullptr);
        if (fd < 0) {
            return;
        }
        const int one = 1;
        ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        char go = 0;
        while (::recv(fd, &go, 1, 0) == 1) {  // one request byte per transfer, like "RETR n"
            const double t0 = thread_cpu_s();
            try {
                send_all(fd, payload.data(), payload.size());
            } catch (const std::exception&) {
                break;
            }
            sender_cpu_s += thread_cpu_s() - t0;
        }
        ::close(fd);
    });

    const double cpu0 = self_cpu_s();
    r.machine_before = sample_machine();
    const auto start = std::chrono::steady_clock::now();
    const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0 || ::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
        fail("connect");
    }
    const int one = 1;
    ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    auto buf = std::make_unique<char[]>(receive_chunk);
    for (unsigned i = 0; i < opt.repeat; ++i) {
        const auto t0 = std::chrono::steady_clock::now();
        send_all(fd, "g", 1);
        std::size_t got = 0;
        while (got < payload.size()) {
            const ssize_t k = ::recv(fd, buf.get(), receive_chunk, 0);
            if (k <= 0) {
                if (k < 0 && errno == EINTR) {
                    continue;
                }
                r.add_error("bare-copy: connection ended early");
                break;
            }
            got += static_cast<std::size_t>(k);
        }
        const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
        r.retr_mb_per_s.push_back(static_cast<double>(got) / 1e6 / s);
        r.retr_wire_bytes += got;
        ++r.messages;
    }
    ::shutdown(fd, SHUT_RDWR);
    ::close(fd);
    sender.join();
    ::close(lfd);
    r.sender_cpu_s = sender_cpu_s;
    r.retr_octets = payload.size();
    r.sessions = 1;
    r.elapsed_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    r.loadgen_cpu_s = self_cpu_s() - cpu0;
    r.machine_after = sample_machine();
    return r;
}

}  // namespace loadgen
