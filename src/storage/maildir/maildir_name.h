// Parses Maildir file names: the base name that identifies a message, and the S=/W= size hints.
//
// A Maildir file name is "<unique>[:<info>]" (https://cr.yp.to/proto/maildir.html). The unique
// part never changes once delivered; agents change the info ("2,<flags>") and move the file from
// new/ to cur/. So the base name (everything before the first ':') is what identifies a message
// across renames, and what the uid index stores.
//
// Dovecot and Courier append ",S=<physical size>" and Dovecot ",W=<virtual size>" to the unique
// part, e.g. "1700000000.M20P3.host,S=1200,W=1230:2,S". W= is the size with CRLF line ends, which
// is exactly the POP3 virtual size (core/message_encoder.h), so it saves reading the file.
#pragma once

#include <cstdint>
#include <optional>
#include <string_view>

namespace poplar::storage::maildir {

struct maildir_name {
    std::string_view base;                       // unique part: before the first ':'
    std::optional<std::uint64_t> physical_size;  // ",S=" (bytes on disk)
    std::optional<std::uint64_t> crlf_size;      // ",W=" (bytes with CRLF line ends)
};

// The base name of a file name (the whole name when it carries no ":info").
std::string_view base_name(std::string_view file_name) noexcept;

maildir_name parse_maildir_name(std::string_view file_name) noexcept;

// Whether a directory entry can be a message: not a dotfile (".", "..", editors' and other
// agents' hidden files), a non-empty base name, and no CR/LF (they would break the
// line-oriented uid index and nobody's MDA produces them).
bool is_message_file_name(std::string_view file_name) noexcept;

// The W= size if it is plausible. Converting a file of S bytes to CRLF adds at most one byte per
// byte (every byte a LF) plus a final CRLF, so S <= W <= 2*S + 2; a W= outside that range (a
// hand-crafted or damaged name) is ignored and the file is read instead.
std::optional<std::uint64_t> trusted_virtual_size(const maildir_name& name) noexcept;

}  // namespace poplar::storage::maildir
