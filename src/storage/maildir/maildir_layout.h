// Opening a user's Maildir root, creating it (and cur/, new/, tmp/) when absent.
//
// Shared by the store (a first login creates an empty Maildir) and delivery (the first message
// creates it). Mail is private: directories are created 0700; the delivering user and the POP3
// server must be the same user (docs/delivery.md).
#pragma once

#include <string>

#include "storage/maildir/posix_file.h"
#include "storage/maildrop.h"
#include "util/result.h"

namespace poplar::storage::maildir {

// Permissions problems and impossible paths will not fix themselves (errc::permanent); the rest
// (EIO, ENOSPC, EDQUOT, a file system remounted read-only after an error) may.
errc classify_setup_errno(int err);

// Opens the Maildir root at `path`, creating what is missing. Every directory it creates is made
// durable (the parent fsynced) before it returns, so a delivery that then reports success cannot
// lose its message to a crash that forgets the directory it was written into.
result<unique_fd, error> open_maildir(const std::string& path);

}  // namespace poplar::storage::maildir
