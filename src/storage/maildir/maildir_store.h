// The Maildir storage backend: one Maildir per user, found through a path template.
//
// Works beside other agents on the same Maildirs (Postfix/Dovecot/Courier delivering to new/,
// an IMAP server moving messages to cur/ and renaming them to change flags, other POP3 sessions).
// Files are never moved: POP3 has no flags to record, and leaving new/ alone keeps "unread" in
// IMAP clients that share the Maildir (Dovecot's pop3 moves them; that is a policy, not a need).
// Messages are identified by base name (maildir_name.h), uids live in a per-Maildir index
// (uid_index.h), and each session works on a snapshot taken at open (maildir_sync.h).
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>

#include "storage/maildir/maildir_sync.h"
#include "storage/maildir/path_template.h"
#include "storage/maildrop.h"
#include "util/result.h"

namespace poplar::storage::maildir {

// A maildrop with more messages is refused (errc::permanent) instead of letting one huge Maildir
// (a mail loop, an attack) exhaust the server's memory: a snapshot costs ~150 bytes per message.
inline constexpr std::size_t default_max_messages = 1'000'000;

// How long open() and remove() wait for another session's index update (normally milliseconds;
// the first login to a large unindexed Maildir reads every message once) before [SYS/TEMP].
inline constexpr std::chrono::milliseconds default_index_lock_timeout{30'000};

// Session lock for lock_mode::exclusive (RFC 1939 §8), held for the maildrop's lifetime.
inline constexpr const char* session_lock_file = "poplar-pop3.lock";

struct maildir_options {
    std::size_t max_messages = default_max_messages;
    std::chrono::milliseconds index_lock_timeout = default_index_lock_timeout;
    // Skip reading new/ and cur/ when their mtimes show no change since the index was written
    // (maildir_sync.h). Turn off for Maildirs on NFS with unsynchronised clocks.
    bool trust_directory_mtimes = true;
    // Chooses the uidvalidity of a new index. Empty: seconds since the epoch (like IMAP servers),
    // so an index recreated later never repeats an earlier one. Tests inject their own.
    std::function<std::uint32_t()> uidvalidity_source;
};

class maildir_store final : public mail_store {
public:
    // `path_template`: see path_template.h, e.g. "/var/vmail/%d/%n/Maildir". Throws
    // std::invalid_argument for a bad template (a configuration error, caught at start-up).
    maildir_store(std::string path_template, maildir_options options = {});

    // Safe to call concurrently from any number of threads, also for the same user: index
    // updates are serialised with flock(), which also covers other poplar processes.
    result<std::unique_ptr<maildrop>, error> open(std::string_view user, lock_mode mode) override;
    // An unchanged maildrop whose index is small and cached (maildir_sync.h,
    // try_snapshot_without_blocking); in exclusive mode only if the session lock is free.
    std::unique_ptr<maildrop> try_open_without_blocking(std::string_view user, lock_mode mode) override;

    // Work done so far, for metrics, and for tests proving that an indexed login reads no
    // message (and, when nothing changed, no directory).
    struct stats {
        std::uint64_t messages_sized_by_reading = 0;  // no usable W= hint and not yet indexed
        std::uint64_t directory_scans = 0;            // listings of new/ + cur/
    };
    [[nodiscard]] stats statistics() const noexcept;

private:
    path_template template_;
    maildir_options options_;
    std::shared_ptr<sync_counters> counters_;
};

}  // namespace poplar::storage::maildir
