// Lists the messages of a Maildir (new/ then cur/) and finds them again by base name.
//
// Only the directories are read: no stat() per file, so listing 100,000 messages costs a few
// getdents64() calls. tmp/ holds deliveries in progress and is never listed (Maildir spec).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "storage/maildrop.h"
#include "util/result.h"

namespace poplar::storage::maildir {

enum class subdir : std::uint8_t { new_dir, cur_dir };

// "new" or "cur".
const char* subdir_name(subdir d) noexcept;

// One directory entry. Names live in one shared buffer (maildir_listing::names) so that listing
// 100,000 files costs a handful of allocations, not 100,000.
struct listed_file {
    std::uint32_t name_offset = 0;
    std::uint32_t name_length = 0;
    std::uint32_t base_length = 0;  // the base name is the first base_length bytes of the name
    subdir dir = subdir::new_dir;
};

struct maildir_listing {
    std::vector<listed_file> files;
    std::string names;

    [[nodiscard]] std::string_view file_name(const listed_file& f) const noexcept {
        return std::string_view{names}.substr(f.name_offset, f.name_length);
    }
    [[nodiscard]] std::string_view base(const listed_file& f) const noexcept {
        return std::string_view{names}.substr(f.name_offset, f.base_length);
    }
    // "new/<name>" or "cur/<name>", relative to the Maildir root.
    [[nodiscard]] std::string relative_path(const listed_file& f) const;
};

// Reads new/ and then cur/. That order matters: another agent moving a message from new/ to cur/
// while we read cannot make us miss it (we either see it in new/, or read cur/ after the move).
// More than `max_messages` entries is errc::permanent; unreadable directories errc::temporary.
// `expected` (the last known message count) sizes the buffers up front.
result<maildir_listing, error> scan_maildir(int root_fd, std::size_t max_messages, std::string_view log_path,
                                            std::size_t expected = 0);

// Finds listed files by base name: an open-addressing table of indices into the listing (one
// allocation, no per-entry nodes). If a base name is listed twice (a message seen in new/ and,
// after being moved during the scan, in cur/), the later one (cur/) wins.
class base_name_table {
public:
    explicit base_name_table(const maildir_listing& listing);
    [[nodiscard]] std::optional<std::uint32_t> find(std::string_view base) const noexcept;

private:
    // The hash is kept beside the index so that probing past other names compares integers and
    // touches no name: a lookup then costs one string comparison, on the hit.
    struct slot {
        std::uint32_t hash = 0;
        std::uint32_t file = 0;  // 0 = empty, else file index + 1
    };
    const maildir_listing& listing_;
    std::vector<slot> slots_;
    std::size_t mask_ = 0;
};

}  // namespace poplar::storage::maildir
