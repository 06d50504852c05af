// Delivery into Maildirs by the book (https://cr.yp.to/proto/maildir.html, issue 12): write the
// message to tmp/ under a unique name, fsync it, rename it into new/ with its ,S= and ,W= sizes
// in the name, fsync new/, and only then report success.
//
// A kill at any point leaves either the whole message in new/ or nothing there: rename(2) is
// atomic, and nothing in tmp/ is ever listed (maildir_scan.h). A kill can leave a file in tmp/,
// which no reader sees; the Maildir spec lets any agent remove tmp/ files older than 36 hours
// (docs/delivery.md says how).
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <string>
#include <string_view>

#include "storage/delivery.h"
#include "storage/maildir/path_template.h"

namespace poplar::storage::maildir {

struct delivery_options {
    // The host part of unique names (Maildir spec: '/' and ':' are written \057 and \072).
    // Empty: gethostname().
    std::string hostname;
    // Called between the fsync of the file in tmp/ and its rename into new/, and after the
    // rename before new/ is fsynced: lets the crash tests stop a delivery there. Empty in use.
    std::function<void(std::string_view stage)> test_hook;
};

class maildir_delivery final : public mail_delivery {
public:
    // `path_template`: as maildir_store's (storage.maildir). Throws std::invalid_argument.
    explicit maildir_delivery(std::string path_template, delivery_options options = {});

    // Under a quota, deliveries to one Maildir take turns (flock on poplar-quota.lock) from the
    // usage check to the rename, so concurrent ones cannot together pass the quota.
    result<delivery_receipt, delivery_error> deliver(const delivery_request& request) override;
    // From the file names of new/ and cur/ (their ,S= sizes; a file without one is stat()ed):
    // one directory listing, no file read.
    result<usage, delivery_error> current_usage(std::string_view user) override;

private:
    std::string unique_name(std::uint64_t size, std::uint64_t virtual_size);

    path_template template_;
    delivery_options options_;
    std::string host_;
    std::atomic<std::uint64_t> sequence_{0};
};

}  // namespace poplar::storage::maildir
