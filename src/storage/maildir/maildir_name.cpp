// Parses Maildir file names (see maildir_name.h).
#include "storage/maildir/maildir_name.h"

#include <charconv>
#include <limits>

namespace poplar::storage::maildir {

namespace {

// "<digits>" only: no sign, no spaces, no overflow.
std::optional<std::uint64_t> parse_decimal(std::string_view s) noexcept {
    if (s.empty()) {
        return std::nullopt;
    }
    std::uint64_t value = 0;
    const auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), value);
    if (ec != std::errc{} || end != s.data() + s.size()) {
        return std::nullopt;
    }
    return value;
}

}  // namespace

std::string_view base_name(std::string_view file_name) noexcept {
    // The Maildir spec puts the info after the first ':' (":2,<flags>"; ":1," is the obsolete
    // experimental form). Hostnames in unique names have ':' encoded as "\072", so the first ':'
    // is always the separator.
    return file_name.substr(0, file_name.find(':'));
}

maildir_name parse_maildir_name(std::string_view file_name) noexcept {
    maildir_name out;
    out.base = base_name(file_name);
    // Fields follow the unique part, separated by ','. Unique parts never contain ',' themselves
    // (the spec encodes it as "\054" in hostnames).
    std::string_view rest = out.base;
    std::size_t comma = rest.find(',');
    while (comma != std::string_view::npos) {
        rest.remove_prefix(comma + 1);
        comma = rest.find(',');
        const std::string_view field = rest.substr(0, comma);
        if (field.size() > 2 && field[1] == '=') {
            if (field[0] == 'S') {
                out.physical_size = parse_decimal(field.substr(2));
            } else if (field[0] == 'W') {
                out.crlf_size = parse_decimal(field.substr(2));
            }
        }
    }
    return out;
}

bool is_message_file_name(std::string_view file_name) noexcept {
    if (file_name.empty() || file_name.front() == '.') {
        return false;
    }
    // A plain loop: find_first_of() with a two-byte set calls memchr() once per byte.
    for (const char c : file_name) {
        if (c == '\r' || c == '\n') {
            return false;
        }
    }
    return !base_name(file_name).empty();
}

std::optional<std::uint64_t> trusted_virtual_size(const maildir_name& name) noexcept {
    if (!name.crlf_size) {
        return std::nullopt;
    }
    const std::uint64_t w = *name.crlf_size;
    if (name.physical_size) {
        const std::uint64_t s = *name.physical_size;
        const bool overflow = s > (std::numeric_limits<std::uint64_t>::max() - 2) / 2;
        if (w < s || (!overflow && w > 2 * s + 2)) {
            return std::nullopt;
        }
    }
    return w;
}

}  // namespace poplar::storage::maildir
