// Reconciles a Maildir's files with its uid index (see maildir_sync.h).
#include "storage/maildir/maildir_sync.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <limits>
#include <memory>
#include <optional>
#include <system_error>

#include <spdlog/spdlog.h>

#include "core/limits.h"
#include "core/message_encoder.h"
#include "storage/maildir/maildir_name.h"
#include "storage/maildir/posix_file.h"
#include "storage/maildir/uid_index.h"
#include "util/text.h"

namespace poplar::storage::maildir {

namespace {

constexpr std::uint32_t max_uid = std::numeric_limits<std::uint32_t>::max() - 1;

void count(std::atomic<std::uint64_t> sync_counters::*counter, const sync_options& options) {
    if (options.counters != nullptr) {
        ((*options.counters).*counter).fetch_add(1, std::memory_order_relaxed);
    }
}

// A fresh uidvalidity that differs from `previous` (0 = none known): clients compare UIDLs, and
// an unchanged uidvalidity with restarted uids would make them skip new mail as already seen.
std::uint32_t new_uidvalidity(const sync_options& options, std::uint32_t previous) {
    std::uint32_t v = options.uidvalidity_source();
    if (v == previous) {
        ++v;
    }
    return v == 0 ? 1 : v;
}

std::int64_t stamp_of(const struct stat& st) {
    const std::int64_t ns = static_cast<std::int64_t>(st.st_mtim.tv_sec) * 1'000'000'000 + st.st_mtim.tv_nsec;
    return ns == 0 ? 1 : ns;  // 0 means "unknown" in the index
}

result<std::int64_t, int> mtime_ns(int root_fd, const char* dir) {
    struct stat st {};
    if (::fstatat(root_fd, dir, &st, 0) != 0) {
        return unexpected{errno};
    }
    return stamp_of(st);
}

result<directory_stamps, error> read_stamps(int root_fd, std::string_view log_path) {
    auto new_dir = mtime_ns(root_fd, "new");
    auto cur_dir = mtime_ns(root_fd, "cur");
    if (!new_dir || !cur_dir) {
        return unexpected{errno_error(errc::temporary, "cannot stat new/ or cur/ of", log_path,
                                      new_dir ? cur_dir.error() : new_dir.error())};
    }
    return directory_stamps{*new_dir, *cur_dir};
}

// Stamps worth recording: only those of directories quiet for mtime_quiet_period (see .h).
directory_stamps recordable(directory_stamps stamps) {
    const auto now = std::chrono::duration_cast<std::chrono::nanoseconds>(
                         std::chrono::system_clock::now().time_since_epoch())
                         .count();
    const auto quiet = std::chrono::duration_cast<std::chrono::nanoseconds>(mtime_quiet_period).count();
    if (stamps.new_dir + quiet < now && stamps.cur_dir + quiet < now) {
        return stamps;
    }
    return directory_stamps{};
}

// The messages of the index that are still on disk, matched against one listing.
struct match_result {
    std::vector<located_message> kept;
    std::vector<std::uint64_t> sizes;  // parallel to kept
    std::vector<bool> matched;         // per listed file
    std::size_t missing = 0;           // index records with no file
    std::size_t renamed = 0;           // records whose file has another name or directory now
};

match_result match(const uid_index& index, bool trusted, const maildir_listing& listing,
                   const base_name_table& table) {
    match_result m;
    m.matched.assign(listing.files.size(), false);
    if (!trusted) {
        return m;
    }
    m.kept.reserve(std::min(index.entries.size(), listing.files.size()));
    m.sizes.reserve(m.kept.capacity());
    for (const uid_index_entry& e : index.entries) {
        const auto i = table.find(index.base(e));
        if (!i || m.matched[*i]) {
            ++m.missing;
            continue;
        }
        const listed_file& f = listing.files[*i];
        m.matched[*i] = true;
        m.kept.push_back(located_message{e.uid, f, false});
        m.sizes.push_back(e.virtual_size);
        if (f.dir != e.file.dir || listing.file_name(f) != index.file_name(e)) {
            ++m.renamed;
        }
    }
    return m;
}

maildir_snapshot make_snapshot(std::uint32_t uidvalidity, std::vector<located_message> messages,
                               const std::vector<std::uint64_t>& sizes, std::string names) {
    maildir_snapshot snapshot;
    snapshot.uidvalidity = uidvalidity;
    snapshot.infos.reserve(messages.size());
    for (std::size_t k = 0; k < messages.size(); ++k) {
        snapshot.infos.push_back(message_info{sizes[k], format_uidl(uidvalidity, messages[k].uid)});
    }
    snapshot.messages = std::move(messages);
    snapshot.names = std::move(names);
    return snapshot;
}

// The fast path: the index is the listing (see maildir_sync.h).
result<maildir_snapshot, error> snapshot_from_index(uid_index& index, std::string_view log_path,
                                                    const sync_options& options) {
    if (index.entries.size() > options.max_messages) {
        return unexpected{error{errc::permanent, "maildir " + std::string{log_path} + " has more than " +
                                                     std::to_string(options.max_messages) + " messages"}};
    }
    std::vector<located_message> messages;
    std::vector<std::uint64_t> sizes;
    messages.reserve(index.entries.size());
    sizes.reserve(index.entries.size());
    for (const uid_index_entry& e : index.entries) {
        messages.push_back(located_message{e.uid, e.file, false});
        sizes.push_back(e.virtual_size);
    }
    // The records' name ranges point into the index text, which becomes the snapshot's names.
    return make_snapshot(index.uidvalidity, std::move(messages), sizes, std::move(index.text));
}

}  // namespace

std::optional<maildir_snapshot> try_snapshot_without_blocking(int root_fd, std::string_view log_path,
                                                              const sync_options& options) {
    if (!options.trust_directory_mtimes) {
        return std::nullopt;  // every open lists the directories
    }
    // Stamps first, as in sync_maildir: a change after this point makes the index's stamps older.
    directory_stamps stamps;
    for (const subdir d : {subdir::new_dir, subdir::cur_dir}) {
        auto dir = open_if_cached(root_fd, subdir_name(d), O_PATH | O_DIRECTORY);  // follows, as mtime_ns()
        struct stat st {};
        if (!dir || ::fstat(dir->get(), &st) != 0) {
            return std::nullopt;
        }
        (d == subdir::new_dir ? stamps.new_dir : stamps.cur_dir) = stamp_of(st);
    }
    auto fd = open_if_cached(root_fd, uid_index_file, O_RDONLY | O_NOFOLLOW | O_NONBLOCK);  // as load_uid_index()
    if (!fd) {
        return std::nullopt;
    }
    auto text = read_all_if_cached(fd->get(), max_index_octets_on_loop);
    if (!text) {
        return std::nullopt;
    }
    uid_index index = parse_uid_index(std::move(*text));
    if (index.state != uid_index_state::valid || !index.stamps.known() || index.stamps != stamps) {
        return std::nullopt;
    }
    auto snapshot = snapshot_from_index(index, log_path, options);
    if (!snapshot) {
        return std::nullopt;  // over max_messages: sync_maildir reports it
    }
    return std::move(*snapshot);
}

std::string maildir_snapshot::relative_path(const located_message& m) const {
    std::string out;
    out.reserve(4 + m.file.name_length);
    out.append(subdir_name(m.file.dir))
        .append("/")
        .append(std::string_view{names}.substr(m.file.name_offset, m.file.name_length));
    return out;
}

result<std::uint64_t, int> read_virtual_size(int root_fd, const std::string& relative_path, std::span<char> buffer) {
    // O_NONBLOCK: opening a FIFO planted in the Maildir must not hang the worker thread.
    auto fd = open_at(root_fd, relative_path.c_str(), O_RDONLY | O_NOFOLLOW | O_NONBLOCK);
    if (!fd) {
        return unexpected{fd.error()};
    }
    struct stat st {};
    if (::fstat(fd->get(), &st) != 0) {
        return unexpected{errno};
    }
    if (!S_ISREG(st.st_mode)) {
        return unexpected{EINVAL};  // a directory, FIFO or device where a message should be
    }
    core::virtual_size_counter counter;
    for (;;) {
        const ssize_t n = ::read(fd->get(), buffer.data(), buffer.size());
        if (n > 0) {
            counter.feed(std::string_view{buffer.data(), static_cast<std::size_t>(n)});
        } else if (n == 0) {
            return counter.finish();
        } else if (errno != EINTR) {
            return unexpected{errno};
        }
    }
}

result<maildir_snapshot, error> sync_maildir(int root_fd, std::string_view log_path, const sync_options& options) {
    // Stamps first: a change made after this point gives the directories a newer mtime than
    // the one recorded below, so the next login rescans.
    auto stamps = read_stamps(root_fd, log_path);
    if (!stamps) {
        return unexpected{std::move(stamps.error())};
    }
    auto loaded = load_uid_index(root_fd, log_path);
    if (!loaded) {
        return unexpected{std::move(loaded.error())};
    }
    uid_index& index = *loaded;
    if (options.trust_directory_mtimes && index.state == uid_index_state::valid && index.stamps.known() &&
        index.stamps == *stamps) {
        return snapshot_from_index(index, log_path, options);
    }

    const bool trusted = index.state == uid_index_state::valid || index.state == uid_index_state::salvaged;
    if (index.state == uid_index_state::salvaged) {
        spdlog::warn("maildir {}: uid index damaged ({}); keeping uidvalidity, affected messages get new uids",
                     log_path, index.problem);
    } else if (index.state == uid_index_state::unusable) {
        // Safe but costly: every client re-downloads the maildrop. Losing mail would not be safe.
        spdlog::warn("maildir {}: uid index unusable ({}); rebuilding with a new uidvalidity", log_path,
                     index.problem);
    }
    std::uint32_t uidvalidity = trusted ? index.uidvalidity : new_uidvalidity(options, 0);
    std::uint32_t next_uid = trusted ? index.next_uid : 1;

    // Match the index against the directories. If an indexed message is not found, read the
    // directories once more before forgetting its uid: readdir() may miss a file another agent
    // renames while we read (a flag change in cur/), and a forgotten uid means the client
    // downloads the message again.
    maildir_listing listing;
    std::optional<base_name_table> table;
    match_result m;
    for (int attempt = 0; attempt < 2; ++attempt) {
        auto scanned = scan_maildir(root_fd, options.max_messages, log_path, index.entries.size());
        count(&sync_counters::directory_scans, options);
        if (!scanned) {
            return unexpected{std::move(scanned.error())};
        }
        table.reset();  // it refers to the listing about to be replaced
        listing = std::move(*scanned);
        table.emplace(listing);
        m = match(index, trusted, listing, *table);
        if (m.missing == 0) {
            break;
        }
    }

    // New messages, in base-name order: standard names start with the delivery time, so uids
    // follow delivery order and are the same whichever session assigns them.
    std::vector<std::uint32_t> fresh;
    for (std::uint32_t i = 0; i < listing.files.size(); ++i) {
        // A base name listed twice (moved from new/ to cur/ during the scan) is one message; the
        // table's choice is the one that counts.
        if (!m.matched[i] && table->find(listing.base(listing.files[i])) == i) {
            fresh.push_back(i);
        }
    }
    std::sort(fresh.begin(), fresh.end(), [&listing](std::uint32_t a, std::uint32_t b) {
        return listing.base(listing.files[a]) < listing.base(listing.files[b]);
    });

    // uids are 32 bits (like IMAP's); when they run out, renumber under a new uidvalidity.
    bool renumbered = false;
    if (fresh.size() > max_uid + 1 - next_uid) {
        spdlog::warn("maildir {}: uids exhausted; renumbering under a new uidvalidity", log_path);
        uidvalidity = new_uidvalidity(options, uidvalidity);
        next_uid = 1;
        for (located_message& lm : m.kept) {
            lm.uid = next_uid++;
        }
        renumbered = true;
    }

    std::size_t assigned = 0;
    std::unique_ptr<char[]> buffer;
    for (const std::uint32_t i : fresh) {
        const listed_file& f = listing.files[i];
        std::optional<std::uint64_t> size = trusted_virtual_size(parse_maildir_name(listing.file_name(f)));
        if (!size) {
            if (!buffer) {
                buffer = std::make_unique<char[]>(limits::message_read_chunk);
            }
            auto computed = read_virtual_size(root_fd, listing.relative_path(f),
                                              std::span{buffer.get(), limits::message_read_chunk});
            if (!computed) {
                // Gone since the scan (removed, or moved to cur/: it shows up at the next login),
                // or unreadable: leave it out of this snapshot, unindexed, rather than refuse the
                // whole maildrop. The next login tries again.
                if (computed.error() != ENOENT) {
                    spdlog::warn("maildir {}: skipping unreadable message {}: {}", log_path,
                                 util::log_escape(listing.relative_path(f), 512),
                                 std::generic_category().message(computed.error()));
                }
                continue;
            }
            count(&sync_counters::sized_by_reading, options);
            size = *computed;
        }
        m.kept.push_back(located_message{next_uid++, f, false});
        m.sizes.push_back(*size);
        ++assigned;
    }

    // Record the stamps only if nothing was left out: a skipped message must be retried.
    const directory_stamps record =
        assigned == fresh.size() && options.trust_directory_mtimes ? recordable(*stamps) : directory_stamps{};
    const bool names_or_stamps_changed = record.known() && (m.renamed > 0 || record != index.stamps);
    if (assigned > 0 || renumbered || m.missing > 0 || index.state != uid_index_state::valid ||
        names_or_stamps_changed) {
        uid_index_writer writer{uidvalidity, next_uid, record, m.kept.size()};
        for (std::size_t k = 0; k < m.kept.size(); ++k) {
            writer.append(m.kept[k].uid, m.sizes[k], m.kept[k].file.dir, listing.file_name(m.kept[k].file));
        }
        if (auto w = write_uid_index(root_fd, writer.text(), log_path); !w) {
            // Never hand out a uid that is not on disk: after a crash it could be given to
            // another message (RFC 1939 §7 forbids reuse).
            if (assigned > 0 || renumbered) {
                return unexpected{std::move(w.error())};
            }
            // Only dropped records, names or stamps were to be written: the uids handed out are
            // the persisted ones, so the session can go on; the next login retries.
            spdlog::warn("maildir {}: uid index not written, the next login retries: {}", log_path,
                         w.error().detail);
        }
    }
    return make_snapshot(uidvalidity, std::move(m.kept), m.sizes, std::move(listing.names));
}

result<void, error> relocate_messages(int root_fd, std::string_view log_path, const sync_options& options,
                                      maildir_snapshot& snapshot) {
    auto scanned = scan_maildir(root_fd, options.max_messages, log_path, snapshot.messages.size());
    count(&sync_counters::directory_scans, options);
    if (!scanned) {
        return unexpected{std::move(scanned.error())};
    }
    const maildir_listing& listing = *scanned;
    const base_name_table table{listing};
    std::string names;
    names.reserve(snapshot.names.size());
    for (located_message& lm : snapshot.messages) {
        const auto i = table.find(snapshot.base(lm));
        // A gone message keeps its old name: only its base name matters from now on.
        listed_file moved = i ? listing.files[*i] : lm.file;
        const std::string_view name =
            i ? listing.file_name(moved) : std::string_view{snapshot.names}.substr(moved.name_offset, moved.name_length);
        moved.name_offset = static_cast<std::uint32_t>(names.size());
        names.append(name);
        lm.file = moved;
        lm.gone = !i;
    }
    snapshot.names = std::move(names);
    return {};
}

result<void, error> forget_uids(int root_fd, std::string_view log_path, std::span<const std::uint32_t> uids) {
    auto loaded = load_uid_index(root_fd, log_path);
    if (!loaded) {
        return unexpected{std::move(loaded.error())};
    }
    const uid_index& index = *loaded;
    if (index.state != uid_index_state::valid && index.state != uid_index_state::salvaged) {
        return {};
    }
    // Stamps are cleared: the unlinks changed the directories, so the next login must list them.
    uid_index_writer writer{index.uidvalidity, index.next_uid, directory_stamps{}, index.entries.size()};
    std::size_t forgotten = 0;
    for (const uid_index_entry& e : index.entries) {
        if (std::binary_search(uids.begin(), uids.end(), e.uid)) {
            ++forgotten;
        } else {
            writer.append(e.uid, e.virtual_size, e.file.dir, index.file_name(e));
        }
    }
    if (forgotten == 0) {
        return {};
    }
    return write_uid_index(root_fd, writer.text(), log_path);
}

}  // namespace poplar::storage::maildir
