// `poplar serve` and `poplar check`: load and validate the config, assemble, run.
#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <malloc.h>

#include <csignal>
#include <cstdio>
#include <fstream>

#include "cli/commands.h"
#include "cli/runtime.h"
#include "cli/version.h"
#include "net/server.h"
#include "net/tls_context.h"

namespace poplar::cli {

namespace {

void print_demo_help(const std::filesystem::path& state_dir, const config::config& cfg) {
    std::string password;
    std::ifstream in(state_dir / "demo-password");
    std::getline(in, password);
    const std::string cert = (state_dir / "tls" / "cert.pem").string();
    std::string help = fmt::format("\npoplar demo server (no --config given; embedded default in {})\n"
                                   "  account: demo / {}\n",
                                   state_dir.string(), password);
    // The ports come from the (possibly edited) config, not from the defaults written into it.
    for (const config::endpoint& ep : cfg.pop3s) {
        help += fmt::format("  POP3S {}:  curl --cacert {} pop3s://localhost:{}/ -u 'demo:{}'\n", ep.to_string(),
                            cert, ep.port, password);
    }
    for (const config::endpoint& ep : cfg.pop3) {
        help += fmt::format("  POP3 {} (STLS):  curl --ssl-reqd --cacert {} pop3://localhost:{}/1 -u 'demo:{}'\n",
                            ep.to_string(), cert, ep.port, password);
    }
    const std::string config_file = (state_dir / "poplar.toml").string();
    std::error_code ec;
    std::string self = std::filesystem::read_symlink("/proc/self/exe", ec).string();
    if (ec) {
        self = "poplar";
    }
    help += fmt::format("  Admin, in another terminal:\n    {} status --config {}\n", self, config_file);
    help += fmt::format("    (also: who, stats, reload, kick demo; SIGHUP reloads too)\n");
    help += fmt::format("  Stop with Ctrl-C. The config to copy and edit: {}\n\n", config_file);
    std::fputs(help.c_str(), stderr);
}

// The config file read, checked and assembled into what sessions use: at start and at each
// reload, the same steps `check` takes. Throws config::config_error.
std::shared_ptr<const net::generation> load_generation(const std::filesystem::path& path) {
    auto g = std::make_shared<net::generation>();
    g->cfg = config::load_file(path);
    runtime rt = assemble(g->cfg);
    g->auth = std::move(rt.auth);
    g->store = std::move(rt.store);
    if (g->cfg.tls) {
        g->tls = net::make_server_tls_context(*g->cfg.tls);
    }
    return g;
}

}  // namespace

int serve(const std::optional<std::filesystem::path>& config_file, const std::filesystem::path& state_dir) {
    std::filesystem::path path;
    if (config_file) {
        path = *config_file;
    } else {
        try {
            path = prepare_demo(state_dir);
        } catch (const std::exception& e) {
            std::fprintf(stderr, "poplar: cannot prepare the demo in %s: %s\n", state_dir.c_str(), e.what());
            return exit_runtime;
        }
    }
    try {
        const config::config cfg = config::load_file(path);
        setup_logging(cfg.log_level);
    } catch (const config::config_error& e) {
        std::fprintf(stderr, "poplar: invalid configuration: %s\n", e.what());
        return exit_config;
    }
    std::shared_ptr<const net::generation> first;
    try {
        // Logging is set up: what fails from here on (passwd-file, certificate, Maildir
        // template) is a start-up failure in the log, where journald and the admin look.
        first = load_generation(path);
    } catch (const config::config_error& e) {
        spdlog::critical("cannot start: {}", e.what());
        return exit_config;
    }
    std::signal(SIGPIPE, SIG_IGN);  // a peer closing mid-write is an error code, not a signal
    // RETR buffers of up to 256 KiB (and their wire form) come and go all the time. By default
    // glibc gives each back to the kernel (mmap/munmap above 128 KiB; madvise when the top of a
    // thread's arena is freed) and the next RETR page-faults and zeroes it again: about 5% of a
    // full session's CPU in perf (docs/performance.md). Keep up to 32 MiB per arena instead.
    ::mallopt(M_MMAP_THRESHOLD, 4 * 1024 * 1024);
    ::mallopt(M_TRIM_THRESHOLD, 32 * 1024 * 1024);
    try {
        const config::config& cfg = first->cfg;
        const std::filesystem::path absolute = std::filesystem::absolute(path).lexically_normal();
        net::server srv(first, [absolute] { return load_generation(absolute); }, {version_line(), absolute});
        if (!config_file) {
            print_demo_help(state_dir, cfg);
        }
        srv.run();
    } catch (const config::config_error& e) {
        spdlog::critical("cannot start: {}", e.what());
        return exit_config;
    } catch (const std::exception& e) {
        spdlog::critical("fatal: {}", e.what());
        return exit_runtime;
    }
    return exit_ok;
}

int check(const std::filesystem::path& config_file) {
    try {
        const config::config cfg = config::load_file(config_file);
        const runtime rt = assemble(cfg);
        if (cfg.tls) {
            (void)net::make_server_tls_context(*cfg.tls);
        }
    } catch (const config::config_error& e) {
        std::fprintf(stderr, "poplar: invalid configuration: %s\n", e.what());
        return exit_config;
    }
    std::printf("%s: configuration is valid\n", config_file.c_str());
    return exit_ok;
}

}  // namespace poplar::cli
