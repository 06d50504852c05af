// The per-Maildir uid index ("poplar-uidlist"): persistent uids and cached virtual sizes.
//
// RFC 1939 §7 requires a unique-id that stays the same across sessions and is never given to
// another message. A Maildir base name would do, but it may be longer than 70 octets and contain
// characters outside 0x21-0x7E, so poplar numbers messages instead, the way IMAP UIDs work
// (RFC 3501 §2.3.1.1): a uidvalidity chosen once per index plus a uid that only grows. The UIDL
// string is 8 hex digits of uidvalidity followed by 8 of uid.
//
// File format (text, so an admin can read and repair it), one record per line, LF-terminated:
//   poplar-uidlist 1 <uidvalidity> <next_uid> <new_mtime_ns> <cur_mtime_ns>
//   <uid> <virtual_size> <n|c> <file name>
//   ...
// Numbers are decimal; uids ascend strictly and are all below next_uid; "n"/"c" says whether the
// file was in new/ or cur/; the file name is the rest of the line (it may contain spaces, never
// CR or LF), and its base name (maildir_name.h) identifies the message. The virtual size is
// cached here so that a login to a large maildrop does not read every message. The two mtimes
// are those of new/ and cur/ when the records were last known to match the directories (0 =
// unknown); while both are unchanged the directories need not be read at all (maildir_sync.h).
//
// The file is replaced, never edited in place: written to "poplar-uidlist.tmp", fsynced, renamed
// over the index and the directory fsynced, so a crash leaves the old index or the new one. All
// updates happen under flock() on "poplar-uidlist.lock" (see maildir_sync.h).
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "storage/maildir/maildir_scan.h"
#include "storage/maildrop.h"
#include "util/result.h"

namespace poplar::storage::maildir {

inline constexpr const char* uid_index_file = "poplar-uidlist";
inline constexpr const char* uid_index_temp_file = "poplar-uidlist.tmp";
inline constexpr const char* uid_index_lock_file = "poplar-uidlist.lock";
inline constexpr std::string_view uid_index_magic = "poplar-uidlist";
inline constexpr unsigned uid_index_version = 1;

// One index record. The file name is a range of the index text, so a 100,000-line index costs
// one allocation for the names and one for the records.
struct uid_index_entry {
    std::uint32_t uid = 0;
    std::uint64_t virtual_size = 0;
    listed_file file;  // name range in uid_index::text
};

// Modification times of new/ and cur/ in nanoseconds since the epoch; 0 means unknown.
struct directory_stamps {
    std::int64_t new_dir = 0;
    std::int64_t cur_dir = 0;

    [[nodiscard]] bool known() const noexcept { return new_dir != 0 && cur_dir != 0; }
    friend bool operator==(const directory_stamps&, const directory_stamps&) = default;
};

enum class uid_index_state {
    missing,    // no index yet: a new uidvalidity is chosen
    valid,      // parsed completely
    salvaged,   // header trusted, some records unparseable or out of order and dropped
    unusable,   // header unreadable (or contradicted by the records): a new uidvalidity is needed
};

struct uid_index {
    uid_index_state state = uid_index_state::missing;
    std::uint32_t uidvalidity = 0;  // meaningful for valid and salvaged only
    std::uint32_t next_uid = 1;     // ditto
    directory_stamps stamps;        // ditto
    std::vector<uid_index_entry> entries;  // ascending uid
    std::string text;                      // the file's bytes; entries point into it
    std::string problem;                   // why the index is salvaged/unusable, for the log

    [[nodiscard]] std::string_view file_name(const uid_index_entry& e) const noexcept {
        return std::string_view{text}.substr(e.file.name_offset, e.file.name_length);
    }
    [[nodiscard]] std::string_view base(const uid_index_entry& e) const noexcept {
        return std::string_view{text}.substr(e.file.name_offset, e.file.base_length);
    }
};

// Parses index bytes. Never fails: damage is reported through `state` and `problem`.
uid_index parse_uid_index(std::string text);

// Reads and parses the index in `root_fd`; errc::temporary on an I/O error other than ENOENT.
// `log_path` names the Maildir in error details.
result<uid_index, error> load_uid_index(int root_fd, std::string_view log_path);

// Builds index text: the header, then one append() per message in ascending uid order.
class uid_index_writer {
public:
    uid_index_writer(std::uint32_t uidvalidity, std::uint32_t next_uid, directory_stamps stamps,
                     std::size_t expected_entries);
    void append(std::uint32_t uid, std::uint64_t virtual_size, subdir dir, std::string_view file_name);
    [[nodiscard]] const std::string& text() const noexcept { return text_; }

private:
    std::string text_;
};

// Replaces the index crash-safely (temp file, fsync, rename, fsync of the directory). On failure
// the temp file is removed, the old index is untouched, and the error is errc::temporary.
result<void, error> write_uid_index(int root_fd, std::string_view text, std::string_view log_path);

// The RFC 1939 §7 unique-id: 16 lower-case hex digits, all in 0x21-0x7E.
std::string format_uidl(std::uint32_t uidvalidity, std::uint32_t uid);

}  // namespace poplar::storage::maildir
