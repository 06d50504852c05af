// POSIX file helpers for the Maildir backend (see posix_file.h).
#include "storage/maildir/posix_file.h"

#include <fcntl.h>
#include <linux/openat2.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstdint>
#include <system_error>
#include <thread>

namespace poplar::storage::maildir {

void unique_fd::reset(int fd) noexcept {
    if (fd_ >= 0) {
        // POSIX leaves the descriptor state unspecified after EINTR from close(); on Linux it is
        // always closed, so retrying would close someone else's descriptor. Never retry.
        ::close(fd_);
    }
    fd_ = fd;
}

result<unique_fd, int> open_at(int dir_fd, const char* path, int flags, mode_t mode) {
    for (;;) {
        const int fd = ::openat(dir_fd, path, flags | O_CLOEXEC, mode);
        if (fd >= 0) {
            return unique_fd{fd};
        }
        if (errno != EINTR) {
            return unexpected{errno};
        }
    }
}

result<std::string, int> read_all(int fd) {
    std::string out;
    struct stat st {};
    if (::fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && st.st_size > 0) {
        out.reserve(static_cast<std::size_t>(st.st_size));
    }
    char buf[64 * 1024];
    for (;;) {
        const ssize_t n = ::read(fd, buf, sizeof buf);
        if (n > 0) {
            out.append(buf, static_cast<std::size_t>(n));
        } else if (n == 0) {
            return out;
        } else if (errno != EINTR) {
            return unexpected{errno};
        }
    }
}

namespace {
std::atomic<bool> resolve_cached_works{true};
}  // namespace

std::optional<unique_fd> open_if_cached(int dir_fd, const char* path, int flags) {
    if (!resolve_cached_works.load(std::memory_order_relaxed)) {
        return std::nullopt;
    }
    open_how how{};
    how.flags = static_cast<std::uint64_t>(flags | O_CLOEXEC);
    how.resolve = RESOLVE_CACHED;
    const long fd = ::syscall(SYS_openat2, dir_fd, path, &how, sizeof how);
    if (fd >= 0) {
        return unique_fd{static_cast<int>(fd)};
    }
    if (errno == EINVAL || errno == ENOSYS || errno == E2BIG) {
        resolve_cached_works.store(false, std::memory_order_relaxed);
    }
    return std::nullopt;
}

std::optional<std::string> read_all_if_cached(int fd, std::size_t max_size) {
    struct stat st {};
    if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) || static_cast<std::uint64_t>(st.st_size) > max_size) {
        return std::nullopt;
    }
    // One octet more than the size: a file that grew since fstat() is read to its new end or
    // refused, never cut short.
    std::string out(static_cast<std::size_t>(st.st_size) + 1, '\0');
    std::size_t got = 0;
    while (got < out.size()) {
        iovec iov{out.data() + got, out.size() - got};
        const ssize_t n = ::preadv2(fd, &iov, 1, static_cast<off_t>(got), RWF_NOWAIT);
        if (n > 0) {
            got += static_cast<std::size_t>(n);
        } else if (n == 0) {
            out.resize(got);
            return out;
        } else if (errno != EINTR) {
            return std::nullopt;  // EAGAIN: not all cached; anything else: the pool reports it
        }
    }
    return std::nullopt;  // grew past what fstat() said: let the blocking path read it
}

result<void, int> write_all(int fd, std::string_view data) {
    while (!data.empty()) {
        const ssize_t n = ::write(fd, data.data(), data.size());
        if (n >= 0) {
            data.remove_prefix(static_cast<std::size_t>(n));
        } else if (errno != EINTR) {
            return unexpected{errno};
        }
    }
    return {};
}

result<void, int> fsync_fd(int fd) {
    while (::fsync(fd) != 0) {
        if (errno != EINTR) {
            return unexpected{errno};
        }
    }
    return {};
}

result<void, int> flock_with_timeout(int fd, int operation, std::chrono::milliseconds timeout) {
    using clock = std::chrono::steady_clock;
    const auto deadline = clock::now() + timeout;
    // Start at 1 ms so an uncontended-but-busy lock (another login indexing a few new messages)
    // costs little, and back off to 50 ms so a long wait does not spin.
    auto pause = std::chrono::milliseconds{1};
    for (;;) {
        if (::flock(fd, operation | LOCK_NB) == 0) {
            return {};
        }
        if (errno == EINTR) {
            continue;
        }
        if (errno != EWOULDBLOCK) {
            return unexpected{errno};
        }
        if (clock::now() >= deadline) {
            return unexpected{EWOULDBLOCK};
        }
        std::this_thread::sleep_for(pause);
        pause = std::min(pause * 2, std::chrono::milliseconds{50});
    }
}

result<unique_fd, int> open_lock_file(int dir_fd, const char* name) {
    auto fd = open_at(dir_fd, name, O_RDWR | O_CREAT | O_NOFOLLOW, 0600);
    if (!fd && (fd.error() == EROFS || fd.error() == EACCES)) {
        return open_at(dir_fd, name, O_RDONLY | O_NOFOLLOW);
    }
    return fd;
}

std::string describe_errno(std::string_view what, std::string_view path, int err) {
    std::string out;
    out.reserve(what.size() + path.size() + 40);
    out.append(what).append(" ").append(path).append(": ");
    // std::generic_category().message() is thread-safe, unlike strerror().
    out.append(std::generic_category().message(err));
    return out;
}

error errno_error(errc code, std::string_view what, std::string_view path, int err) {
    return error{code, describe_errno(what, path, err)};
}

}  // namespace poplar::storage::maildir
