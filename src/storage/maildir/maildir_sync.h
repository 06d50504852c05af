// Reconciles a Maildir's files with its uid index: the snapshot a session sees at login.
//
// At open, under the index lock: read the index, list new/ and cur/, keep the uid and cached size
// of every indexed message still present, give new messages the next uids (in base-name order,
// which for standard Maildir names is delivery order), drop records of vanished messages, and
// persist the result before any new uid is handed out.
//
// Fast path (what Dovecot does with its uidlist): every delivery, rename and unlink changes the
// mtime of the directory it happens in, so when new/ and cur/ still have the mtimes recorded in
// the index, the index alone is the listing and neither directory is read. On ext4, reading a
// directory of 100,000 entries costs tens of milliseconds of kernel time; this makes a login to
// an unchanged large maildrop cost one index read. Mtimes are only recorded once a directory
// has been quiet for mtime_quiet_period, so a change in the same clock tick as our scan cannot
// go unnoticed. On NFS with skewed clocks this is weaker; maildir_options can turn it off.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "storage/maildir/maildir_scan.h"
#include "storage/maildrop.h"
#include "util/result.h"

namespace poplar::storage::maildir {

// Where a snapshot message's file was last seen. Indexed like maildir_snapshot::infos.
struct located_message {
    std::uint32_t uid = 0;
    listed_file file;   // name range in maildir_snapshot::names
    bool gone = false;  // not found by the last rescan: removed by another session or agent
};

struct maildir_snapshot {
    std::uint32_t uidvalidity = 0;
    std::vector<located_message> messages;  // ascending uid
    std::vector<message_info> infos;        // what maildrop::messages() returns, same order
    std::string names;                      // file names the listed_file ranges point into

    [[nodiscard]] std::string_view base(const located_message& m) const noexcept {
        return std::string_view{names}.substr(m.file.name_offset, m.file.base_length);
    }
    [[nodiscard]] std::string relative_path(const located_message& m) const;
};

// How long a directory must have been unchanged before its mtime is trusted: longer than any
// file system's timestamp granularity (ext4 and XFS use the kernel's coarse clock, ticks of a
// few ms; FAT has 2 s), so any later change is guaranteed to produce a different mtime.
inline constexpr std::chrono::seconds mtime_quiet_period{2};

// Observability counters, shared by all sessions of one store.
struct sync_counters {
    std::atomic<std::uint64_t> sized_by_reading{0};  // messages whose file was read to size them
    std::atomic<std::uint64_t> directory_scans{0};   // listings of new/ + cur/
};

struct sync_options {
    std::size_t max_messages = 0;
    bool trust_directory_mtimes = true;
    // Picks a new uidvalidity; never returns the same value twice in a row for one Maildir in
    // practice (seconds since the epoch). Must not be empty.
    std::function<std::uint32_t()> uidvalidity_source;
    // Optional. Shared, so a maildrop that outlives its store never counts into freed memory.
    std::shared_ptr<sync_counters> counters;
};

// Builds the snapshot. The caller holds the index lock (uid_index.h) for the whole call.
// errc::temporary if the index cannot be read or, when new uids were assigned, written;
// errc::permanent for a maildrop over max_messages.
result<maildir_snapshot, error> sync_maildir(int root_fd, std::string_view log_path, const sync_options& options);

// sync_maildir's fast path (the index alone is the listing), for the event loop: the snapshot if
// it can be had without blocking (every path in the dentry cache, the index in the page cache,
// at most max_index_octets_on_loop of it) and the index's stamps match the directories; nullopt
// otherwise, and then the caller runs sync_maildir on the worker pool. Takes no index lock: it
// writes nothing, and the index is only ever replaced by rename(), so it reads one whole index
// or another; an index written by a session that listed the directories after they last changed
// carries their current stamps, and any other carries stamps that do not match.
std::optional<maildir_snapshot> try_snapshot_without_blocking(int root_fd, std::string_view log_path,
                                                              const sync_options& options);

// Parsing an index costs about 0.1 us per octet on the event loop, which serves every other
// session of its thread meanwhile: larger indexes (a maildrop of more than about 3,000 messages)
// are read on the worker pool.
inline constexpr std::size_t max_index_octets_on_loop = 256 * 1024;

// Rescans new/ and cur/ and updates where each snapshot message lives now (another agent may
// have moved it to cur/ or changed its flags), marking the ones no longer present as gone.
result<void, error> relocate_messages(int root_fd, std::string_view log_path, const sync_options& options,
                                      maildir_snapshot& snapshot);

// Rewrites the index without the given uids (ascending) after their files were unlinked. The
// caller holds the index lock. Records of other sessions' new messages are kept, since the index
// is re-read rather than rebuilt from this session's snapshot. A damaged or missing index is left
// for the next sync_maildir() to rebuild.
result<void, error> forget_uids(int root_fd, std::string_view log_path, std::span<const std::uint32_t> uids);

// Computes the virtual size of a message file by reading it (core/message_encoder.h rule).
// Refuses anything but a regular file (a FIFO would block the worker). Returns an errno value.
// `buffer` is scratch space, reused across calls to avoid an allocation per message.
result<std::uint64_t, int> read_virtual_size(int root_fd, const std::string& relative_path, std::span<char> buffer);

}  // namespace poplar::storage::maildir
