// poplar-loadgen: runs POP3 sessions against a server and reports rates, latencies, errors, its
// own CPU and the server's CPU and memory (bench/README.md).
#include <asio/io_context.hpp>
#include <asio/ip/tcp.hpp>
#include <asio/ssl/context.hpp>
#include <fmt/format.h>
#include <sys/resource.h>

#include <csignal>
#include <cstdio>
#include <exception>

#include "bare_copy.h"
#include "options.h"
#include "pop3_client.h"
#include "report.h"
#include "sessions.h"

namespace {

// 10,000 idle sessions need 10,000 descriptors: lift the soft limit to the hard one.
void raise_fd_limit() {
    rlimit rl{};
    if (::getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        ::setrlimit(RLIMIT_NOFILE, &rl);
    }
}

asio::ip::tcp::endpoint resolve(const std::string& host, std::uint16_t port) {
    asio::io_context io;
    asio::ip::tcp::resolver resolver(io);
    const auto results = resolver.resolve(host, std::to_string(port));
    if (results.empty()) {
        throw std::runtime_error("cannot resolve " + host);
    }
    return *results.begin();
}

}  // namespace

int main(int argc, char** argv) {
    const loadgen::options opt = loadgen::parse_options(argc, argv);
    std::signal(SIGPIPE, SIG_IGN);
    // Stop early but still report (bench/run-vs-dovecot ends background loads this way).
    std::signal(SIGTERM, [](int) { loadgen::request_stop(); });
    std::signal(SIGINT, [](int) { loadgen::request_stop(); });
    raise_fd_limit();
    try {
        loadgen::run_result r;
        if (opt.mode == loadgen::run_mode::bare_copy) {
            r = loadgen::bare_copy(opt);
        } else {
            const auto ep = resolve(opt.host, opt.port);
            std::unique_ptr<asio::ssl::context> tls;
            if (opt.tls != loadgen::tls_mode::none) {
                tls = std::make_unique<asio::ssl::context>(asio::ssl::context::tls_client);
                // Idle sessions keep OpenSSL's small default buffer: 10,000 of them hold no data.
                loadgen::configure_client_tls(*tls, opt.mode == loadgen::run_mode::idle ? 0 : 256 * 1024);
            }
            r = loadgen::run(opt, ep, tls.get());
        }
        if (opt.json) {
            std::fputs(loadgen::human_report(opt, r).c_str(), stderr);
            std::fputs(loadgen::json_report(opt, r).c_str(), stdout);
        } else {
            std::fputs(loadgen::human_report(opt, r).c_str(), stdout);
        }
        return r.errors == 0 ? 0 : 2;
    } catch (const std::exception& e) {
        std::fprintf(stderr, "poplar-loadgen: %s\n", e.what());
        return 1;
    }
}
