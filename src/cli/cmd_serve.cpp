// `poplar serve` and `poplar check`: load and validate the config, assemble, run.
#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <malloc.h>

#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <fstream>

#include "cli/commands.h"
#include "cli/runtime.h"
#include "cli/version.h"
#include "authd/supervisor.h"
#include "authd/auth_process.h"
#include "net/server.h"
#include "util/privileges.h"
#include "util/sandbox.h"
#include "util/seccomp_filter.h"

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
    help += fmt::format(R"(  Deliver a message:
    printf 'Subject: hello\n\nHi!\n' | {} deliver -u demo -f me@example.org --config {}
)",
                        self, config_file);
    for (const config::endpoint& ep : cfg.lmtp) {
        help += fmt::format(R"lmtp(    or over LMTP {}: python3 -c "import smtplib; smtplib.LMTP('{}', {}).sendmail('me@example.org', ['demo'], b'Subject: hello\r\n\r\nHi!\r\n')"
)lmtp",
                            ep.to_string(), ep.host, ep.port);
    }
    help += fmt::format("  Admin, in another terminal:\n    {} status --config {}\n", self, config_file);
    help += fmt::format("    (also: who, stats, reload, kick demo; SIGHUP reloads too)\n");
    help += fmt::format("  Stop with Ctrl-C. The config to copy and edit: {}\n\n", config_file);
    std::fputs(help.c_str(), stderr);
}

// One line per problem, as docs/configuration.md shows them; reload reports the same lines.
void print_problems(const config::config_error& e) {
    for (const std::string& p : e.problems()) {
        std::fprintf(stderr, "poplar: invalid configuration: %s\n", p.c_str());
    }
}

void print_warnings(const std::vector<std::string>& warnings) {
    for (const std::string& w : warnings) {
        std::fprintf(stderr, "poplar: warning: %s\n", w.c_str());
    }
}

// What sessions use, from what load_and_assemble() built: at start and at each reload.
std::shared_ptr<const net::generation> to_generation(loaded&& l) {
    auto g = std::make_shared<net::generation>();
    g->cfg = std::move(l.cfg);
    g->store = std::move(l.rt.store);
    g->delivery = std::move(l.rt.delivery);
    g->tls = std::move(l.tls);
    return g;
}

// The user `key` (server.user, auth.process_user) names, into `out` when poplar runs as root and
// so can switch to it. False (logged) when it does not exist: nothing has started yet.
bool switch_to(std::string_view key, const std::string& user, const std::string& group, std::string_view instead,
               std::optional<util::identity>& out) {
    if (user.empty()) {
        return true;
    }
    auto id = util::look_up_identity(user, group);
    if (!id) {
        spdlog::critical("cannot start: {}: {}", key, id.error());
        return false;
    }
    if (::geteuid() == 0) {
        out = *id;
    } else if (id->uid != ::geteuid()) {
        spdlog::warn("{} is {} (uid {}), but poplar was started as uid {}, not root: {} uid {}", key, id->user, id->uid,
                     ::geteuid(), instead, ::geteuid());
    }
    return true;
}

// Everything serve will load, checked in a child that exits (the passwd-file and the TLS key
// included), so a bad configuration is refused with the lines `check` prints before anything
// starts or logs, while this process holds no key or hash when it forks the auth supervisor.
int preflight(const std::filesystem::path& config_file) {
    std::fflush(stderr);
    const pid_t pid = ::fork();
    if (pid < 0) {
        return exit_ok;  // nothing checked early; the same problems stop serve later
    }
    if (pid == 0) {
        int code = exit_ok;
        try {
            (void)load_and_assemble(config_file, purpose::preflight);
        } catch (const config::config_error& e) {
            print_problems(e);
            code = exit_config;
        } catch (const std::exception& e) {
            std::fprintf(stderr, "poplar: %s\n", e.what());
            code = exit_config;
        }
        std::fflush(stderr);
        ::_exit(code);
    }
    int status = 0;
    while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
    return WIFEXITED(status) ? WEXITSTATUS(status) : exit_runtime;
}

// The directory a Maildir template's users all live beneath: its fixed part up to the last '/'
// before the first '%' ("/var/lib/poplar/mail/%d/%n" -> "/var/lib/poplar/mail"), or the nearest
// ancestor of it that exists (a first login creates the rest).
std::filesystem::path mail_root(const std::string& maildir_template) {
    const std::string fixed = maildir_template.substr(0, maildir_template.find('%'));
    std::filesystem::path root = fixed.substr(0, fixed.rfind('/'));
    if (root.empty()) {
        root = "/";
    }
    std::error_code ec;
    while (!std::filesystem::is_directory(root, ec) && root.has_parent_path() && root != root.parent_path()) {
        root = root.parent_path();
    }
    return root;
}

void filter_system_calls() {
    if (auto filtered = util::restrict_system_calls(); filtered) {
        spdlog::info("sandbox: seccomp: the network process may make {} kinds of system call, the others fail with "
                     "EPERM",
                     util::allowed_system_calls());
    } else {
        spdlog::warn("sandbox: no system call filter: {}", filtered.error());
    }
}

// The network process's sandbox (util/sandbox.h), once its ports are bound, its users switched
// and before it starts a thread: Landlock to the mail root and the TLS files' directories, and
// no_new_privs. Each step logs what it did or why it could not; none stops the start.
void confine(const config::config& cfg) {
    if (!cfg.server.sandbox) {
        if (auto nnp = util::forbid_new_privileges(); !nnp) {
            spdlog::warn("sandbox: no_new_privs not set: {}", nnp.error());
        }
        spdlog::warn("sandbox: off (server.sandbox = false): the network process may open whatever its user may");
        return;
    }
    std::vector<util::landlock_rule> rules;
    const std::filesystem::path mail = mail_root(cfg.storage.maildir);
    rules.push_back({mail, util::landlock_rule::access::read_write});
    std::string read_dirs;
    if (cfg.tls) {
        for (const std::filesystem::path& f : {cfg.tls->certificate, cfg.tls->private_key}) {
            std::error_code ec;
            const std::filesystem::path dir = std::filesystem::weakly_canonical(f, ec).parent_path();
            if (std::none_of(rules.begin(), rules.end(), [&](const util::landlock_rule& r) { return r.path == dir; })) {
                rules.push_back({dir, util::landlock_rule::access::read});
                read_dirs += (read_dirs.empty() ? "" : ", ") + dir.string();
            }
        }
    }
    if (util::sanitizer_build) {
        // LeakSanitizer reads /proc/PID/task and maps at exit; only sanitizer builds get /proc.
        rules.push_back({"/proc", util::landlock_rule::access::read});
    }
    // The control socket is removed at shutdown: its directory allows that and nothing else.
    if (!cfg.control.socket.empty()) {
        rules.push_back({cfg.control.socket.parent_path(), util::landlock_rule::access::remove});
    }
    // So are the LMTP sockets.
    for (const std::filesystem::path& p : cfg.lmtp_socket.sockets) {
        if (std::none_of(rules.begin(), rules.end(), [&](const util::landlock_rule& r) { return r.path == p.parent_path(); })) {
            rules.push_back({p.parent_path(), util::landlock_rule::access::remove});
        }
    }
    // The passwd-file must stay out of reach: a TLS directory that holds it would let it in.
    std::error_code ec;
    const std::filesystem::path users = std::filesystem::weakly_canonical(cfg.auth.passwd_file, ec);
    for (const util::landlock_rule& r : rules) {
        if (r.what == util::landlock_rule::access::remove) {
            continue;
        }
        const auto rel = users.lexically_relative(r.path);
        if (!rel.empty() && *rel.begin() != "..") {
            spdlog::warn("sandbox: the passwd-file {} is beneath {}, which the network process may read; move the "
                         "passwd-file (or the TLS files) to a directory of its own",
                         users.string(), r.path.string());
        }
    }
    auto applied = util::restrict_file_system(rules);
    if (!applied) {
        if (auto nnp = util::forbid_new_privileges(); !nnp) {
            spdlog::warn("sandbox: no_new_privs not set: {}", nnp.error());
        }
        spdlog::warn("sandbox: files not limited: {}; the network process may open whatever its user may",
                     applied.error());
        filter_system_calls();
        return;
    }
    filter_system_calls();
    spdlog::info("sandbox: Landlock ABI {}, no_new_privs: the network process may open only files beneath {} "
                 "(read-write){}{}",
                 applied.value(), mail.string(), read_dirs.empty() ? "" : " and in ", read_dirs.empty() ? "" : read_dirs + " (read)");
}

// Waits at most `grace` for the auth supervisor (which waits for the auth process, which saves
// the familiar addresses) once the server closed its sockets; its exit status.
int reap_supervisor(pid_t pid, std::chrono::milliseconds grace) {
    const auto until = std::chrono::steady_clock::now() + grace;
    int status = 0;
    for (;;) {
        const pid_t r = ::waitpid(pid, &status, WNOHANG);
        if (r == pid) {
            return status;
        }
        if (r < 0 || std::chrono::steady_clock::now() >= until) {
            ::kill(pid, SIGKILL);
            ::waitpid(pid, &status, 0);
            return status;
        }
        ::usleep(10'000);
    }
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
    const std::filesystem::path absolute = std::filesystem::absolute(path).lexically_normal();
    if (const int refused = preflight(absolute); refused != exit_ok) {
        return refused;
    }
    // The configuration alone first: the auth supervisor is forked from a process that has read
    // nothing else (no private key, no passwd-file, no socket), so it and the auth process hold
    // nothing of the network's.
    config::loaded_config read;
    try {
        read = config::read_file(absolute);
    } catch (const config::config_error& e) {
        print_problems(e);
        return exit_config;
    }
    if (!read.problems.empty()) {
        try {
            (void)load_and_assemble(absolute);  // every problem, as check lists them
        } catch (const config::config_error& e) {
            print_problems(e);
        }
        return exit_config;
    }
    const config::config& early = read.cfg;
    setup_logging(early.log_level);
    // Root only for what needs it: refuse outright without server.user (unless allow_root),
    // look the users up before anything starts (a typo fails before any port is taken).
    std::optional<util::identity> run_as;
    std::optional<util::identity> auth_as;
    if (::geteuid() == 0 && early.server.user.empty() && !early.server.allow_root) {
        spdlog::critical("cannot start: running as root: set server.user to the unprivileged user to switch to "
                         "once the ports are bound (or server.allow_root = true to stay root)");
        return exit_config;
    }
    if (!switch_to("server.user", early.server.user, early.server.group, "it keeps running as", run_as) ||
        !switch_to("auth.process_user", early.auth.process_user, early.auth.process_group,
                   "the auth process runs as", auth_as)) {
        return exit_config;
    }
    if (early.auth.process_user.empty()) {
        auth_as = run_as;
    }
    authd::supervisor_handle supervisor;
    try {
        supervisor = authd::start_supervisor({absolute, net::event_loops(early), auth_as});
    } catch (const std::exception& e) {
        spdlog::critical("cannot start: {}", e.what());
        return exit_runtime;
    }
    auto stop_supervisor = [&supervisor](int code) {
        for (int fd : supervisor.channels) {
            ::close(fd);
        }
        supervisor.channels.clear();
        const int status = reap_supervisor(supervisor.pid, std::chrono::seconds(5));
        if (WIFEXITED(status) && WEXITSTATUS(status) == authd::exit_unusable_config) {
            return exit_config;
        }
        return code;
    };

    loaded assembled;
    try {
        assembled = load_and_assemble(absolute);
    } catch (const config::config_error& e) {
        print_problems(e);
        return stop_supervisor(exit_config);
    }
    log_warnings(assembled.warnings);
    std::signal(SIGPIPE, SIG_IGN);  // a peer closing mid-write is an error code, not a signal
    // RETR buffers of up to 256 KiB (and their wire form) come and go all the time. By default
    // glibc gives each back to the kernel (mmap/munmap above 128 KiB; madvise when the top of a
    // thread's arena is freed) and the next RETR page-faults and zeroes it again: about 5% of a
    // full session's CPU in perf (docs/performance.md). Keep up to 32 MiB per arena instead.
    ::mallopt(M_MMAP_THRESHOLD, 4 * 1024 * 1024);
    ::mallopt(M_TRIM_THRESHOLD, 32 * 1024 * 1024);
    int code = exit_ok;
    try {
        const std::shared_ptr<const net::generation> first = to_generation(std::move(assembled));
        // Reload: the same loader, so it refuses exactly what `check` would; its warnings are
        // logged as at start.
        auto reload = [absolute](const std::string& text) {
            loaded again = load_and_assemble(absolute, purpose::serve, &text);
            log_warnings(again.warnings);
            return to_generation(std::move(again));
        };
        std::vector<int> channels = std::move(supervisor.channels);
        supervisor.channels.clear();
        net::server srv(first, reload, {version_line(), absolute}, std::move(channels));
        if (auto ready = srv.wait_for_auth(); !ready) {
            spdlog::critical("cannot start: {}", ready.error());
            code = exit_runtime;
        } else {
            if (run_as) {
                if (auto dropped = util::drop_privileges(*run_as); !dropped) {
                    spdlog::critical("cannot start: switching to server.user {} failed: {}", run_as->user,
                                     dropped.error());
                    return stop_supervisor(exit_runtime);
                }
                spdlog::info("privileges dropped: user={} uid={} gid={} supplementary_groups=none", run_as->user,
                             run_as->uid, run_as->gid);
            }
            if (!config_file) {
                print_demo_help(state_dir, first->cfg);
            }
            confine(first->cfg);
            if (!srv.run()) {
                code = exit_runtime;
            }
        }
    } catch (const config::config_error& e) {
        spdlog::critical("cannot start: {}", e.what());
        code = exit_config;
    } catch (const std::exception& e) {
        spdlog::critical("fatal: {}", e.what());
        code = exit_runtime;
    }
    return stop_supervisor(code);
}

int check(const std::filesystem::path& config_file) {
    try {
        const loaded l = load_and_assemble(config_file, purpose::check);
        print_warnings(l.warnings);
    } catch (const config::config_error& e) {
        print_warnings(e.warnings());
        print_problems(e);
        return exit_config;
    }
    std::printf("%s: configuration is valid\n", config_file.c_str());
    return exit_ok;
}

}  // namespace poplar::cli
