// The allow list of the network process's system calls (seccomp_filter.h), x86-64 and arm64
// names as libseccomp resolves them; a name the architecture lacks is skipped.
#include "util/seccomp_filter.h"

#include "util/sandbox.h"

#include <seccomp.h>
#include <sched.h>
#include <sys/socket.h>

#include <cerrno>
#include <cstring>
#include <iterator>

namespace poplar::util {

namespace {

// Grouped by who needs them. Everything not here is EPERM (clone3: ENOSYS).
constexpr const char* allowed_calls[] = {
    // memory, threads, time (glibc, libstdc++, Asio, OpenSSL)
    "brk", "mmap", "munmap", "mremap", "mprotect", "madvise", "futex", "set_robust_list", "rseq",
    "sched_yield", "sched_getaffinity", "getrandom", "clock_gettime", "clock_getres", "clock_nanosleep",
    "nanosleep", "gettimeofday", "time", "restart_syscall", "exit", "exit_group", "getpid", "gettid",
    "getuid", "geteuid", "getgid", "getegid", "getppid", "uname", "sysinfo", "prlimit64", "getrlimit",
    "rt_sigaction", "rt_sigprocmask", "rt_sigreturn", "sigaltstack", "tgkill", "tkill",
    // the event loops (Asio's epoll reactor, its timers and wake-ups)
    "epoll_create1", "epoll_ctl", "epoll_wait", "epoll_pwait", "epoll_pwait2", "eventfd2", "timerfd_create",
    "timerfd_settime", "timerfd_gettime", "poll", "ppoll", "pipe2",
    // sockets: accepting, reading and writing sessions, the auth channels, new listeners at a reload
    "accept", "accept4", "recvfrom", "recvmsg", "recvmmsg", "sendto", "sendmsg", "sendmmsg", "bind",
    "listen", "setsockopt", "getsockopt", "getsockname", "getpeername", "shutdown",
    // files beneath the mail root and the TLS directories (Landlock decides which)
    "read", "write", "readv", "writev", "pread64", "pwrite64", "preadv", "preadv2", "pwritev", "pwritev2", "openat", "open", "close", "fcntl", "ioctl",
    "lseek", "fstat", "newfstatat", "stat", "lstat", "statx", "getdents64", "mkdir", "mkdirat", "unlink",
    "unlinkat", "rename", "renameat", "renameat2", "fsync", "fdatasync", "ftruncate", "flock", "fadvise64",
    "readlink", "readlinkat", "access", "faccessat", "faccessat2", "dup", "dup3", "umask", "getcwd", "chmod",
    "fchmod", "fchmodat", "fstatfs", "statfs",
    // shutdown: the auth supervisor reaped, killed if it outstays its grace period
    "wait4", "waitid", "kill",
};

}  // namespace

std::size_t allowed_system_calls() { return std::size(allowed_calls) + 2; }  // + socket (2 rules), clone

result<void, std::string> restrict_system_calls() {
#if defined(POPLAR_ASAN)
    return unexpected(std::string("not in sanitizer builds (their leak check at exit needs ptrace)"));
#else
    scmp_filter_ctx ctx = ::seccomp_init(SCMP_ACT_ERRNO(EPERM));
    if (ctx == nullptr) {
        return unexpected(std::string("seccomp_init failed"));
    }
    auto fail = [ctx](std::string why) -> result<void, std::string> {
        ::seccomp_release(ctx);
        return unexpected(std::move(why));
    };
    for (const char* name : allowed_calls) {
        const int nr = ::seccomp_syscall_resolve_name(name);
        if (nr == __NR_SCMP_ERROR) {
            continue;  // not on this architecture (open, stat, ... on arm64)
        }
        if (const int rc = ::seccomp_rule_add(ctx, SCMP_ACT_ALLOW, nr, 0); rc != 0) {
            return fail(std::string("seccomp_rule_add(") + name + "): " + std::strerror(-rc));
        }
    }
    // Stream sockets (TCP listeners at a reload) and local ones (sd_notify's datagram to
    // systemd): no UDP or raw socket to send anything out on, and connect() is not allowed.
    // Argument tests spelled out: libseccomp's SCMP_A0() macros are C compound literals.
    const scmp_arg_cmp stream{1, SCMP_CMP_MASKED_EQ, 0xf, SOCK_STREAM};
    const scmp_arg_cmp local{0, SCMP_CMP_EQ, AF_UNIX, 0};
    const scmp_arg_cmp thread{0, SCMP_CMP_MASKED_EQ, CLONE_THREAD, CLONE_THREAD};
    if (const int rc = ::seccomp_rule_add_array(ctx, SCMP_ACT_ALLOW, SCMP_SYS(socket), 1, &stream); rc != 0) {
        return fail(std::string("seccomp_rule_add(socket): ") + std::strerror(-rc));
    }
    if (const int rc = ::seccomp_rule_add_array(ctx, SCMP_ACT_ALLOW, SCMP_SYS(socket), 1, &local); rc != 0) {
        return fail(std::string("seccomp_rule_add(socket): ") + std::strerror(-rc));
    }
    // Threads only: clone with CLONE_THREAD; clone3 hides its flags in memory a filter cannot
    // read, so it answers ENOSYS and glibc falls back to clone.
    if (const int rc = ::seccomp_rule_add_array(ctx, SCMP_ACT_ALLOW, SCMP_SYS(clone), 1, &thread); rc != 0) {
        return fail(std::string("seccomp_rule_add(clone): ") + std::strerror(-rc));
    }
    if (const int rc = ::seccomp_rule_add(ctx, SCMP_ACT_ERRNO(ENOSYS), SCMP_SYS(clone3), 0); rc != 0) {
        return fail(std::string("seccomp_rule_add(clone3): ") + std::strerror(-rc));
    }
    if (const int rc = ::seccomp_load(ctx); rc != 0) {
        return fail(std::string("seccomp_load: ") + std::strerror(-rc));
    }
    ::seccomp_release(ctx);
    return {};
#endif
}

}  // namespace poplar::util
