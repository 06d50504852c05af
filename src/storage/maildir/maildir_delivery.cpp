// Maildir delivery: tmp/, fsync, rename into new/ with ,S= and ,W=, fsync new/ (maildir_delivery.h).
#include "storage/maildir/maildir_delivery.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdio>

#include <fmt/format.h>

#include "storage/maildir/maildir_layout.h"
#include "storage/maildir/maildir_name.h"
#include "storage/maildir/maildir_scan.h"
#include "storage/maildir/posix_file.h"
#include "util/text.h"

namespace poplar::storage::maildir {

namespace {

// A quota is counted over at most this many messages: what maildir_store refuses to open beyond.
constexpr std::size_t max_counted_messages = 10'000'000;

// Serialises quota-checked deliveries to one Maildir. A delivery holds it for one directory
// listing and one fsynced write; waiting longer means something is stuck: [SYS/TEMP]-like 4.x.x.
constexpr const char* quota_lock_file = "poplar-quota.lock";
constexpr std::chrono::milliseconds quota_lock_timeout{30'000};

// The Maildir spec's escaping of the host part: '/' and ':' cannot appear in a file name's
// unique part.
std::string maildir_host(std::string host) {
    std::string out;
    for (char c : host) {
        if (c == '/') {
            out += "\\057";
        } else if (c == ':') {
            out += "\\072";
        } else if (static_cast<unsigned char>(c) < 0x21 || c == 0x7F || c == ',') {
            out += fmt::format("\\{:03o}", static_cast<unsigned char>(c));  // ',' would look like ,S=
        } else {
            out += c;
        }
    }
    return out.empty() ? std::string{"localhost"} : out;
}

delivery_errc from_errc(errc c) {
    return c == errc::permanent ? delivery_errc::permanent : delivery_errc::temporary;
}

delivery_error io_error(std::string_view what, std::string_view path, int err) {
    // Nothing about a failed write is the sender's fault, and a full disk or quota on the file
    // system (ENOSPC, EDQUOT) goes away when the admin acts: temporary, so the message waits in
    // the client's queue. Permissions and impossible paths do not fix themselves.
    const errc c = classify_setup_errno(err);
    return delivery_error{from_errc(c), describe_errno(what, path, err)};
}

}  // namespace

maildir_delivery::maildir_delivery(std::string path_template, delivery_options options)
    : template_(std::move(path_template)), options_(std::move(options)) {
    std::string host = options_.hostname;
    if (host.empty()) {
        char buf[256] = {};
        if (::gethostname(buf, sizeof buf - 1) == 0) {
            host = buf;
        }
    }
    host_ = maildir_host(std::move(host));
}

// Dovecot's form, "<seconds>.M<microseconds>P<pid>Q<sequence>R<random>.<host>", so tools that
// sort by delivery time see the usual shape; the sequence makes names unique within the process
// and the random part across processes that share a pid (containers) or a clock that steps back.
std::string maildir_delivery::unique_name(std::uint64_t size, std::uint64_t virtual_size) {
    const auto now = std::chrono::system_clock::now().time_since_epoch();
    const auto us = std::chrono::duration_cast<std::chrono::microseconds>(now).count();
    std::uint64_t random = 0;
    if (::getrandom(&random, sizeof random, GRND_NONBLOCK) != static_cast<ssize_t>(sizeof random)) {
        random = static_cast<std::uint64_t>(us) * 0x9E3779B97F4A7C15ull;  // the sequence still makes it unique here
    }
    const std::uint64_t seq = sequence_.fetch_add(1, std::memory_order_relaxed);
    return fmt::format("{}.M{}P{}Q{}R{:016x}.{},S={},W={}", us / 1'000'000, us % 1'000'000, ::getpid(), seq, random,
                       host_, size, virtual_size);
}

result<usage, delivery_error> maildir_delivery::current_usage(std::string_view user) {
    auto path = template_.expand(user);
    if (!path) {
        return unexpected{delivery_error{from_errc(path.error().code), path.error().detail}};
    }
    auto root = open_at(AT_FDCWD, path->c_str(), O_RDONLY | O_DIRECTORY);
    if (!root) {
        if (root.error() == ENOENT) {
            return usage{};  // created by the first delivery
        }
        return unexpected{io_error("cannot open Maildir", util::log_escape(*path, 512), root.error())};
    }
    auto listing = scan_maildir(root->get(), max_counted_messages, *path);
    if (!listing) {
        return unexpected{delivery_error{from_errc(listing.error().code), listing.error().detail}};
    }
    usage u;
    for (const listed_file& f : listing->files) {
        const maildir_name name = parse_maildir_name(listing->file_name(f));
        std::uint64_t size = 0;
        if (name.physical_size) {
            size = *name.physical_size;
        } else {
            // Another agent's file without ,S=: one stat. Gone meanwhile (expunged): not counted.
            struct stat st {};
            if (::fstatat(root->get(), listing->relative_path(f).c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) {
                continue;
            }
            size = static_cast<std::uint64_t>(st.st_size);
        }
        u.bytes += size;
        ++u.messages;
    }
    return u;
}

result<delivery_receipt, delivery_error> maildir_delivery::deliver(const delivery_request& request) {
    auto path = template_.expand(request.user);
    if (!path) {
        return unexpected{delivery_error{from_errc(path.error().code), path.error().detail}};
    }
    auto root = open_maildir(*path);
    if (!root) {
        return unexpected{delivery_error{from_errc(root.error().code), root.error().detail}};
    }
    const int root_fd = root->get();
    const std::string log_path = util::log_escape(*path, 512);

    delivery_receipt receipt;
    unique_fd quota_lock;  // held until the message is in new/
    if (request.limits.any()) {
        // Under a quota, deliveries to one maildrop take turns from the usage check to the
        // rename (flock, so `poplar deliver` processes and the LMTP listener agree): two that
        // each fit alone cannot both be stored past the quota.
        auto lock = open_lock_file(root_fd, quota_lock_file);
        if (!lock) {
            return unexpected{io_error("cannot open the quota lock in", log_path, lock.error())};
        }
        if (auto locked = flock_with_timeout(lock->get(), LOCK_EX, quota_lock_timeout); !locked) {
            return unexpected{delivery_error{delivery_errc::temporary,
                                             describe_errno("cannot lock the quota of", log_path, locked.error())}};
        }
        quota_lock = std::move(*lock);
        auto u = current_usage(request.user);
        if (!u) {
            return unexpected{std::move(u.error())};
        }
        if (!fits(request.limits, *u, request.message.size())) {
            return unexpected{delivery_error{
                delivery_errc::over_quota,
                fmt::format("{} holds {} messages, {} octets; quota {} messages, {} octets; message {} octets", log_path,
                            u->messages, u->bytes, request.limits.max_messages, request.limits.max_bytes,
                            request.message.size())}};
        }
        receipt.after = usage{u->bytes + request.message.size(), u->messages + 1};
    }

    const std::string name = unique_name(request.message.size(), request.virtual_size);
    const std::string tmp = "tmp/" + name;
    const std::string dest = "new/" + name;
    auto fd = open_at(root_fd, tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW, 0600);
    if (!fd) {
        return unexpected{io_error("cannot create", log_path + "/" + tmp, fd.error())};
    }
    // From here on, any failure removes the file in tmp/: nothing half-written is left to be
    // mistaken for mail (nothing lists tmp/, but it costs disk).
    auto fail = [&](delivery_error e) -> result<delivery_receipt, delivery_error> {
        ::unlinkat(root_fd, tmp.c_str(), 0);
        return unexpected{std::move(e)};
    };
    if (auto w = write_all(fd->get(), request.message); !w) {
        return fail(io_error("cannot write", log_path + "/" + tmp, w.error()));
    }
    if (auto s = fsync_fd(fd->get()); !s) {
        return fail(io_error("cannot fsync", log_path + "/" + tmp, s.error()));
    }
    // close() can report a deferred write error (NFS); the message is not safe before it says so.
    if (::close(fd->release()) != 0 && errno != EINTR) {
        return fail(io_error("cannot close", log_path + "/" + tmp, errno));
    }
    if (options_.test_hook) {
        options_.test_hook("written");
    }
    // RENAME_NOREPLACE: a name collision (impossible by construction, but) fails instead of
    // replacing another message, which the Maildir spec's link()+unlink() also guarantees.
    if (::renameat2(root_fd, tmp.c_str(), root_fd, dest.c_str(), RENAME_NOREPLACE) != 0) {
        return fail(io_error("cannot move into new/", log_path + "/" + tmp, errno));
    }
    if (options_.test_hook) {
        options_.test_hook("renamed");
    }
    auto new_dir = open_at(root_fd, "new", O_RDONLY | O_DIRECTORY);
    auto synced = new_dir ? fsync_fd(new_dir->get()) : result<void, int>{unexpected{new_dir.error()}};
    if (!synced) {
        // Visible but not known to be durable: take it back and let the client retry, rather
        // than report a delivery a crash could undo. (If even the unlink fails, a retry may
        // store it twice: a duplicate, never a loss.)
        ::unlinkat(root_fd, dest.c_str(), 0);
        return unexpected{io_error("cannot fsync", log_path + "/new", synced.error())};
    }
    receipt.id = name;
    return receipt;
}

}  // namespace poplar::storage::maildir
