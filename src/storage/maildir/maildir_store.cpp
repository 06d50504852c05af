// The Maildir backend's store and maildrop: open, session locks, reading and removing messages.
#include "storage/maildir/maildir_store.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#include <algorithm>
#include <cassert>
#include <cerrno>
#include <ctime>
#include <optional>
#include <vector>

#include <spdlog/spdlog.h>

#include "storage/maildir/maildir_layout.h"
#include "storage/maildir/maildir_sync.h"
#include "storage/maildir/posix_file.h"
#include "storage/maildir/uid_index.h"
#include "util/text.h"

namespace poplar::storage::maildir {

namespace {

// RFC 1939 §8: an exclusive session holds LOCK_EX for its lifetime. Snapshot sessions take no
// lock at all: a held descriptor per idle session would cap the sessions a descriptor limit
// allows (3 per session instead of 1 failed a third of 10,000 logins in the benchmark), and
// snapshot semantics need none. So the two modes do not exclude each other if they ever meet
// (two instances configured differently). flock() locks belong to the open file description, so
// two exclusive sessions in one process conflict just like two processes do.
result<unique_fd, error> take_session_lock(int root_fd, lock_mode mode, const std::string& path) {
    auto fd = open_lock_file(root_fd, session_lock_file);
    if (!fd) {
        return unexpected{errno_error(errc::temporary, "cannot open session lock in", path, fd.error())};
    }
    const int operation = (mode == lock_mode::exclusive ? LOCK_EX : LOCK_SH) | LOCK_NB;
    while (::flock(fd->get(), operation) != 0) {
        if (errno == EWOULDBLOCK) {
            return unexpected{error{errc::in_use, "maildir " + path + " is locked by another session"}};
        }
        if (errno != EINTR) {
            return unexpected{errno_error(errc::temporary, "cannot lock", path, errno)};
        }
    }
    return std::move(*fd);
}

result<unique_fd, error> take_index_lock(int root_fd, std::chrono::milliseconds timeout, std::string_view path) {
    auto fd = open_lock_file(root_fd, uid_index_lock_file);
    if (!fd) {
        return unexpected{errno_error(errc::temporary, "cannot open uid index lock in", path, fd.error())};
    }
    if (auto locked = flock_with_timeout(fd->get(), LOCK_EX, timeout); !locked) {
        if (locked.error() == EWOULDBLOCK) {
            return unexpected{error{errc::temporary, "timed out waiting for the uid index lock of " + std::string{path}}};
        }
        return unexpected{errno_error(errc::temporary, "cannot lock uid index in", path, locked.error())};
    }
    return std::move(*fd);
}

// Streams one message file with plain read(2); the caller picks the chunk size.
class maildir_message_source final : public message_source {
public:
    // The path is escaped for the log only when an error needs it: escaping it for every RETR
    // showed up in full-session profiles.
    //
    // Maildir message files are never modified after delivery (only renamed or removed), so the
    // size at open is the message: reading stops there, which also saves the read() that would
    // only have returned 0 (one system call per RETR).
    maildir_message_source(unique_fd fd, std::string path, std::uint64_t size)
        : fd_(std::move(fd)), path_(std::move(path)), remaining_(size) {}

    result<std::size_t, error> read(std::span<char> buf) override {
        buf = limit(buf);
        if (buf.empty()) {
            return std::size_t{0};
        }
        for (;;) {
            const ssize_t n = ::read(fd_.get(), buf.data(), buf.size());
            if (n >= 0) {
                return consumed(n);
            }
            if (errno != EINTR) {
                return unexpected{errno_error(errc::temporary, "cannot read message", util::log_escape(path_, 512), errno)};
            }
        }
    }

    // preadv2(RWF_NOWAIT) (Linux 4.14+) copies only page-cache hits and fails with EAGAIN
    // instead of waiting for the disk. Offset -1 uses and advances the file position, so it
    // interleaves correctly with read().
    result<std::optional<std::size_t>, error> try_read_cached(std::span<char> buf) override {
        buf = limit(buf);
        if (buf.empty()) {
            return std::optional<std::size_t>{0};
        }
        if (!nowait_works_) {
            return std::optional<std::size_t>{};
        }
        iovec iov{buf.data(), buf.size()};
        for (;;) {
            const ssize_t n = ::preadv2(fd_.get(), &iov, 1, -1, RWF_NOWAIT);
            if (n >= 0) {
                return std::optional<std::size_t>{consumed(n)};
            }
            if (errno == EINTR) {
                continue;
            }
            if (errno == EAGAIN) {
                return std::optional<std::size_t>{};
            }
            if (errno == EOPNOTSUPP || errno == EINVAL || errno == ENOSYS) {
                nowait_works_ = false;  // an older kernel or a file system without support
                return std::optional<std::size_t>{};
            }
            return unexpected{errno_error(errc::temporary, "cannot read message", util::log_escape(path_, 512), errno)};
        }
    }

private:
    std::span<char> limit(std::span<char> buf) const {
        return buf.first(static_cast<std::size_t>(std::min<std::uint64_t>(buf.size(), remaining_)));
    }
    std::size_t consumed(ssize_t n) {
        const auto got = static_cast<std::size_t>(n);
        // A file that shrank (it must not, but) ends early, as read() says.
        remaining_ = got == 0 ? 0 : remaining_ - got;
        return got;
    }

    unique_fd fd_;
    std::string path_;
    std::uint64_t remaining_;
    bool nowait_works_ = true;
};

class maildir_maildrop final : public maildrop {
public:
    // Holds no descriptor but the exclusive-mode lock: a logged-in session costs its socket and
    // nothing more, so 10,000 idle sessions fit in a 20,000-descriptor limit. The Maildir is
    // opened again by path for each operation (a cached lookup).
    maildir_maildrop(std::string path, unique_fd session_lock, maildir_snapshot snapshot, sync_options sync,
                     std::chrono::milliseconds index_lock_timeout)
        : path_(std::move(path)),
          session_lock_(std::move(session_lock)),
          snapshot_(std::move(snapshot)),
          sync_(std::move(sync)),
          index_lock_timeout_(index_lock_timeout) {}

    std::span<const message_info> messages() const override { return snapshot_.infos; }

    result<std::unique_ptr<message_source>, error> open_message(std::size_t index) override {
        assert(index < snapshot_.messages.size());
        if (index >= snapshot_.messages.size()) {
            return unexpected{error{errc::permanent, "message index out of range"}};
        }
        auto root = open_root();
        if (!root) {
            return unexpected{std::move(root.error())};
        }
        const int root_fd = root->get();
        // A file that vanished may only have been renamed (moved to cur/, flags changed): look
        // it up again by base name. Twice, in case it moves again in between.
        for (int attempt = 0;; ++attempt) {
            const located_message& m = snapshot_.messages[index];
            if (m.gone) {
                return unexpected{error{errc::temporary, "message " + log_name(m) + " is no longer in the Maildir"}};
            }
            const std::string relative = snapshot_.relative_path(m);
            auto fd = open_at(root_fd, relative.c_str(), O_RDONLY | O_NOFOLLOW | O_NONBLOCK);
            if (fd) {
                return source_for(std::move(*fd), path_ + "/" + relative, m);
            }
            if (fd.error() != ENOENT || attempt == 2) {
                return unexpected{errno_error(errc::temporary, "cannot open message", log_name(m), fd.error())};
            }
            if (auto r = relocate_messages(root_fd, path_, sync_, snapshot_); !r) {
                return unexpected{std::move(r.error())};
            }
        }
    }

    std::unique_ptr<message_source> try_open_message_cached(std::size_t index) override {
        if (index >= snapshot_.messages.size() || snapshot_.messages[index].gone) {
            return nullptr;
        }
        const located_message& m = snapshot_.messages[index];
        std::string full = path_;
        full += '/';
        full += snapshot_.relative_path(m);
        auto fd = open_if_cached(AT_FDCWD, full.c_str(), O_RDONLY | O_NOFOLLOW | O_NONBLOCK);  // as open_message()
        if (!fd) {
            return nullptr;  // not cached, renamed, or an error: open_message() sorts it out
        }
        auto source = source_for(std::move(*fd), std::move(full), m);
        return source ? std::move(source.value()) : nullptr;  // open_message() reports the error
    }

    result<void, error> remove(std::span<const std::size_t> indices) override {
        auto root = open_root();
        if (!root) {
            return unexpected{std::move(root.error())};
        }
        const int root_fd = root->get();
        std::vector<std::uint32_t> removed;
        removed.reserve(indices.size());
        bool unlinked_from[2] = {false, false};
        std::optional<error> failure;
        for (const std::size_t index : indices) {
            assert(index < snapshot_.messages.size());
            if (index >= snapshot_.messages.size()) {
                continue;
            }
            if (auto r = remove_one(root_fd, index, unlinked_from); r) {
                removed.push_back(snapshot_.messages[index].uid);
            } else if (!failure) {
                failure = std::move(r.error());
            }
        }
        // The unlinks are durable only once the directories are (RFC 1939 §6: a message
        // reported deleted must not come back after a crash).
        for (const subdir d : {subdir::new_dir, subdir::cur_dir}) {
            if (!unlinked_from[static_cast<int>(d)]) {
                continue;
            }
            auto dir = open_at(root_fd, subdir_name(d), O_RDONLY | O_DIRECTORY);
            auto synced = dir ? fsync_fd(dir->get()) : result<void, int>{unexpected{dir.error()}};
            if (!synced && !failure) {
                failure = errno_error(errc::temporary, std::string{"cannot fsync "} + subdir_name(d) + "/ of", path_,
                                      synced.error());
            }
        }
        forget(root_fd, removed);
        if (failure) {
            return unexpected{std::move(*failure)};
        }
        return {};
    }

private:
    result<unique_fd, error> open_root() const {
        auto fd = open_at(AT_FDCWD, path_.c_str(), O_RDONLY | O_DIRECTORY);
        if (!fd) {
            return unexpected{errno_error(errc::temporary, "cannot open maildir", path_, fd.error())};
        }
        return std::move(*fd);
    }

    std::string log_name(const located_message& m) const {
        return path_ + "/" + util::log_escape(snapshot_.relative_path(m), 512);
    }

    // The open file as a source, if it is a regular file: anything else (a FIFO would block its
    // reader forever) is refused. Its size at open bounds the read (maildir_message_source).
    result<std::unique_ptr<message_source>, error> source_for(unique_fd fd, std::string path,
                                                              const located_message& m) const {
        struct stat st {};
        if (::fstat(fd.get(), &st) != 0) {
            return unexpected{errno_error(errc::temporary, "cannot stat message", log_name(m), errno)};
        }
        if (!S_ISREG(st.st_mode)) {
            return unexpected{error{errc::temporary, "message " + log_name(m) + " is not a regular file"}};
        }
        return std::unique_ptr<message_source>{std::make_unique<maildir_message_source>(
            std::move(fd), std::move(path), static_cast<std::uint64_t>(st.st_size))};
    }

    // Unlinks one message; success if it is gone (by us or by someone else).
    result<void, error> remove_one(int root_fd, std::size_t index, bool (&unlinked_from)[2]) {
        for (int attempt = 0;; ++attempt) {
            located_message& m = snapshot_.messages[index];
            if (m.gone) {
                return {};  // RFC 1939 §6 only asks that it be gone; another session removed it
            }
            const std::string relative = snapshot_.relative_path(m);
            if (::unlinkat(root_fd, relative.c_str(), 0) == 0) {
                m.gone = true;
                unlinked_from[static_cast<int>(m.file.dir)] = true;
                return {};
            }
            const int err = errno;
            if (err != ENOENT || attempt == 2) {
                // After two rescans that still found it under a name that then vanished, the
                // message is being renamed continually; report rather than claim it removed.
                return unexpected{errno_error(errc::temporary, "cannot remove message", log_name(m), err)};
            }
            // One rescan relocates every message, so removing many already-gone messages costs
            // one directory read, not one per message.
            if (auto r = relocate_messages(root_fd, path_, sync_, snapshot_); !r) {
                return unexpected{std::move(r.error())};
            }
        }
    }

    // Drops removed messages from the index. Not essential (the next open drops records whose
    // file is gone, and next_uid keeps uids from being reused), so failures are only logged.
    void forget(int root_fd, std::vector<std::uint32_t>& uids) {
        if (uids.empty()) {
            return;
        }
        std::sort(uids.begin(), uids.end());
        auto lock = take_index_lock(root_fd, index_lock_timeout_, path_);
        if (!lock) {
            spdlog::warn("maildir {}: index not updated after removal: {}", path_, lock.error().detail);
            return;
        }
        if (auto r = forget_uids(root_fd, path_, uids); !r) {
            spdlog::warn("maildir {}: index not updated after removal: {}", path_, r.error().detail);
        }
    }

    std::string path_;
    unique_fd session_lock_;  // exclusive mode only; held, never used: closing it releases the lock
    maildir_snapshot snapshot_;
    sync_options sync_;
    std::chrono::milliseconds index_lock_timeout_;
};

std::uint32_t seconds_since_epoch() { return static_cast<std::uint32_t>(std::time(nullptr)); }

sync_options sync_settings(const maildir_options& o, const std::shared_ptr<sync_counters>& counters) {
    return sync_options{o.max_messages, o.trust_directory_mtimes, o.uidvalidity_source, counters};
}

}  // namespace

maildir_store::maildir_store(std::string path_template_text, maildir_options options)
    : template_(std::move(path_template_text)),
      options_(std::move(options)),
      counters_(std::make_shared<sync_counters>()) {
    if (!options_.uidvalidity_source) {
        options_.uidvalidity_source = seconds_since_epoch;
    }
    if (options_.max_messages == 0) {
        options_.max_messages = default_max_messages;
    }
}

result<std::unique_ptr<maildrop>, error> maildir_store::open(std::string_view user, lock_mode mode) {
    auto path = template_.expand(user);
    if (!path) {
        return unexpected{std::move(path.error())};
    }
    auto root = open_maildir(*path);
    if (!root) {
        return unexpected{std::move(root.error())};
    }
    unique_fd session_lock;
    if (mode == lock_mode::exclusive) {
        auto taken = take_session_lock(root->get(), mode, *path);
        if (!taken) {
            return unexpected{std::move(taken.error())};
        }
        session_lock = std::move(*taken);
    }
    const sync_options sync = sync_settings(options_, counters_);
    result<maildir_snapshot, error> snapshot = [&]() -> result<maildir_snapshot, error> {
        auto index_lock = take_index_lock(root->get(), options_.index_lock_timeout, *path);
        if (!index_lock) {
            return unexpected{std::move(index_lock.error())};
        }
        return sync_maildir(root->get(), *path, sync);
    }();  // the index lock is released here, before the session starts
    if (!snapshot) {
        return unexpected{std::move(snapshot.error())};
    }
    return std::unique_ptr<maildrop>{std::make_unique<maildir_maildrop>(
        std::move(*path), std::move(session_lock), std::move(*snapshot), sync, options_.index_lock_timeout)};
}

std::unique_ptr<maildrop> maildir_store::try_open_without_blocking(std::string_view user, lock_mode mode) {
    auto path = template_.expand(user);
    if (!path) {
        return nullptr;
    }
    // The same flags as open()'s: a Maildir root may be a symbolic link.
    auto root = open_if_cached(AT_FDCWD, path->c_str(), O_RDONLY | O_DIRECTORY);
    if (!root) {
        return nullptr;  // also a Maildir not created yet: open() creates it
    }
    unique_fd session_lock;
    if (mode == lock_mode::exclusive) {
        // As take_session_lock(), without creating the file; flock() works on any open mode.
        auto fd = open_if_cached(root->get(), session_lock_file, O_RDONLY | O_NOFOLLOW | O_NONBLOCK);
        if (!fd || ::flock(fd->get(), LOCK_EX | LOCK_NB) != 0) {
            return nullptr;  // held by another session: open() says so
        }
        session_lock = std::move(*fd);
    }
    const sync_options sync = sync_settings(options_, counters_);
    auto snapshot = try_snapshot_without_blocking(root->get(), *path, sync);
    if (!snapshot) {
        return nullptr;
    }
    return std::make_unique<maildir_maildrop>(std::move(*path), std::move(session_lock), std::move(*snapshot), sync,
                                              options_.index_lock_timeout);
}

maildir_store::stats maildir_store::statistics() const noexcept {
    return stats{counters_->sized_by_reading.load(std::memory_order_relaxed),
                 counters_->directory_scans.load(std::memory_order_relaxed)};
}

}  // namespace poplar::storage::maildir
