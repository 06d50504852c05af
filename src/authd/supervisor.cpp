// The supervisor's fork-wait-restart loop (supervisor.h).
#include "authd/supervisor.h"

#include <poll.h>
#include <spdlog/spdlog.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <csignal>
#include <system_error>
#include <thread>

#include "auth_wire/protocol.h"
#include "authd/auth_process.h"

namespace poplar::authd {

namespace {

using namespace std::chrono_literals;

// A crashing auth process is started again after a pause that doubles while it keeps dying
// young, so a bad binary or a broken passwd-file cannot make the supervisor spin.
constexpr auto first_backoff = 100ms;
constexpr auto max_backoff = 5s;
constexpr auto lived_long_enough = 10s;

volatile std::sig_atomic_t stop_requested = 0;

void on_stop(int) { stop_requested = 1; }

void install(int signo, void (*handler)(int)) {
    struct sigaction sa {};
    sa.sa_handler = handler;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = 0;  // no SA_RESTART: waitpid() returns EINTR so the stop is seen
    ::sigaction(signo, &sa, nullptr);
}

bool network_gone(const std::vector<int>& ends, pid_t network) {
    if (::getppid() != network) {
        return true;
    }
    pollfd p{ends.front(), 0, 0};
    return ::poll(&p, 1, 0) > 0 && (p.revents & (POLLHUP | POLLERR)) != 0;
}

std::string describe(int status) {
    if (WIFEXITED(status)) {
        return "exited with status " + std::to_string(WEXITSTATUS(status));
    }
    if (WIFSIGNALED(status)) {
        return std::string("killed by signal ") + std::to_string(WTERMSIG(status)) + " (" +
               ::strsignal(WTERMSIG(status)) + ")";
    }
    return "stopped";
}

[[noreturn]] void supervise(const supervisor_options& o, std::vector<int> ends, pid_t network) {
    ::prctl(PR_SET_NAME, "poplar-authsup", 0, 0, 0);
    // The network process's death (even SIGKILL) stops the supervisor, which stops the auth process.
    ::prctl(PR_SET_PDEATHSIG, SIGTERM, 0, 0, 0);
    install(SIGTERM, on_stop);
    install(SIGINT, on_stop);
    ::signal(SIGHUP, SIG_IGN);  // reload is the network process's to ask for, over the socket
    if (::getppid() != network) {
        ::_exit(0);
    }
    std::uint32_t generation = 1;
    auto backoff = std::chrono::milliseconds(0);
    for (;;) {
        const auto started = std::chrono::steady_clock::now();
        const pid_t child = ::fork();
        if (child < 0) {
            spdlog::critical("auth supervisor: fork failed: {}", std::strerror(errno));
            std::this_thread::sleep_for(max_backoff);
            continue;
        }
        if (child == 0) {
            ::signal(SIGTERM, SIG_DFL);
            ::signal(SIGINT, SIG_DFL);
            ::prctl(PR_SET_PDEATHSIG, SIGTERM, 0, 0, 0);
            ::_exit(run_auth_process({o.config_file, ends, generation, o.run_as}));
        }
        int status = 0;
        bool forwarded = false;
        while (::waitpid(child, &status, 0) < 0) {
            if (errno != EINTR) {
                break;
            }
            if (stop_requested && !forwarded) {
                ::kill(child, SIGTERM);
                forwarded = true;
            }
        }
        if (stop_requested || network_gone(ends, network)) {
            ::_exit(0);
        }
        const bool unusable = WIFEXITED(status) && WEXITSTATUS(status) == exit_unusable_config;
        spdlog::error("auth process (pid {}, generation {}) {}{}", child, generation, describe(status),
                      generation == 1 && unusable ? "; serve cannot start" : "; logins fail with [SYS/TEMP] until it is back");
        const std::string reset = auth_wire::encode(auth_wire::reset{generation});
        for (int fd : ends) {
            (void)::send(fd, reset.data(), reset.size(), MSG_DONTWAIT | MSG_NOSIGNAL);
        }
        if (generation == 1 && unusable) {
            ::_exit(exit_unusable_config);  // the network process reports it and exits
        }
        if (std::chrono::steady_clock::now() - started >= lived_long_enough) {
            backoff = std::chrono::milliseconds(0);
        } else {
            backoff = std::clamp(backoff * 2, std::chrono::milliseconds(first_backoff), std::chrono::milliseconds(max_backoff));
        }
        // Interruptible by the stop signals (sleep_for restarts on EINTR; nanosleep does not).
        timespec ts{static_cast<time_t>(backoff.count() / 1000), static_cast<long>(backoff.count() % 1000) * 1'000'000};
        ::nanosleep(&ts, nullptr);
        if (stop_requested || network_gone(ends, network)) {
            ::_exit(0);
        }
        ++generation;
        spdlog::info("auth supervisor: starting auth process generation {}", generation);
    }
}

}  // namespace

supervisor_handle start_supervisor(const supervisor_options& o) {
    std::vector<int> network_ends;
    std::vector<int> auth_ends;
    for (std::size_t i = 0; i < std::max<std::size_t>(1, o.channels); ++i) {
        int sv[2];
        if (::socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) != 0) {
            throw std::system_error(errno, std::generic_category(), "socketpair for the auth process");
        }
        network_ends.push_back(sv[0]);
        auth_ends.push_back(sv[1]);
    }
    const pid_t network = ::getpid();
    const pid_t pid = ::fork();
    if (pid < 0) {
        throw std::system_error(errno, std::generic_category(), "fork of the auth supervisor");
    }
    if (pid == 0) {
        for (int fd : network_ends) {
            ::close(fd);
        }
        supervise(o, std::move(auth_ends), network);
    }
    for (int fd : auth_ends) {
        ::close(fd);
    }
    return {pid, std::move(network_ends)};
}

}  // namespace poplar::authd
