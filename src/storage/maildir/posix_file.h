// POSIX file helpers for the Maildir backend: an owning fd, EINTR-safe I/O, flock with a deadline.
//
// Every descriptor is opened with O_CLOEXEC so that no child process (an auth helper, a
// post-login script) inherits a maildrop, an index or a lock. Failures are returned as errno
// values; the caller decides which storage errc they become.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <optional>
#include <string>
#include <string_view>
#include <utility>

#include "storage/maildrop.h"
#include "util/result.h"

namespace poplar::storage::maildir {

// Owns one file descriptor; closes it on destruction (which also drops any flock held on it).
class unique_fd {
public:
    unique_fd() = default;
    explicit unique_fd(int fd) noexcept : fd_(fd) {}
    unique_fd(unique_fd&& other) noexcept : fd_(std::exchange(other.fd_, -1)) {}
    unique_fd& operator=(unique_fd&& other) noexcept {
        if (this != &other) {
            reset(std::exchange(other.fd_, -1));
        }
        return *this;
    }
    unique_fd(const unique_fd&) = delete;
    unique_fd& operator=(const unique_fd&) = delete;
    ~unique_fd() { reset(); }

    [[nodiscard]] int get() const noexcept { return fd_; }
    explicit operator bool() const noexcept { return fd_ >= 0; }
    void reset(int fd = -1) noexcept;
    // Gives up ownership without closing (for fdopendir(), which takes the descriptor over).
    [[nodiscard]] int release() noexcept { return std::exchange(fd_, -1); }

private:
    int fd_ = -1;
};

// openat(2) with O_CLOEXEC added, retried on EINTR. The error is an errno value.
result<unique_fd, int> open_at(int dir_fd, const char* path, int flags, mode_t mode = 0);

// Reads everything from the current offset to end of file.
result<std::string, int> read_all(int fd);

// The non-blocking counterparts, for the event loop. Each answers nullopt when it cannot do its
// job without waiting for a disk or a server (or at all: the caller then does it the blocking
// way on the worker pool, which also reports errors).
//
// openat2(RESOLVE_CACHED) (Linux 5.12+) resolves a path only from the dentry cache and fails with
// EAGAIN where it would have to ask the file system (including any revalidation, as on NFS): the
// open() counterpart of RWF_NOWAIT. Kernels without it answer EINVAL or ENOSYS, and then it is
// never tried again. O_CLOEXEC is added; pass O_NOFOLLOW where the blocking open has it.
std::optional<unique_fd> open_if_cached(int dir_fd, const char* path, int flags);
// A regular file's contents, if the page cache holds all of it and it has at most `max_size`
// octets: preadv2(RWF_NOWAIT) (Linux 4.14+) copies only page-cache hits.
std::optional<std::string> read_all_if_cached(int fd, std::size_t max_size);

// Writes all of `data`, retrying short writes and EINTR.
result<void, int> write_all(int fd, std::string_view data);

// fsync(2) retried on EINTR. For a directory this makes creations, renames and unlinks durable.
result<void, int> fsync_fd(int fd);

// Takes flock(LOCK_EX) (or LOCK_SH), polling LOCK_NB until `timeout` passes, so that a session
// stuck while holding the lock (a hung NFS server) costs the others a [SYS/TEMP], not a worker
// thread forever. Returns EWOULDBLOCK on timeout.
result<void, int> flock_with_timeout(int fd, int operation, std::chrono::milliseconds timeout);

// Opens (creating it, mode 0600) a lock file inside `dir_fd`. Falls back to read-only on a
// read-only file system where the file already exists: flock() works on any open mode.
result<unique_fd, int> open_lock_file(int dir_fd, const char* name);

// "<what> <path>: <strerror>", for error details and logs. `path` must already be log-safe.
std::string describe_errno(std::string_view what, std::string_view path, int err);

// A storage error carrying describe_errno() as its detail.
error errno_error(errc code, std::string_view what, std::string_view path, int err);

}  // namespace poplar::storage::maildir
