// The delivery interface: how a received message gets into a user's maildrop, whatever store
// holds it (Maildir now, PostgreSQL later). `poplar deliver` and the LMTP listener both reach the
// store through it (delivery/local_delivery.h), so there is one delivery path.
//
// The contract that makes mail safe (issue 12): deliver() returns success only once the message
// is durable (on disk and fsynced, or committed) and visible whole to the next session; on any
// failure nothing of it is visible. A kill at any point leaves the whole message or nothing.
// deliver() may block (disk, network): the network layer calls it on its worker pool.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "storage/maildrop.h"
#include "util/result.h"

namespace poplar::storage {

// A user's limits (docs/delivery.md "Quota"); 0 means no limit.
struct quota {
    std::uint64_t max_bytes = 0;     // stored octets of all messages together
    std::uint64_t max_messages = 0;  // messages
    [[nodiscard]] bool any() const noexcept { return max_bytes != 0 || max_messages != 0; }
};

// What a maildrop holds now, as far as the quota counts it.
struct usage {
    std::uint64_t bytes = 0;
    std::uint64_t messages = 0;
};

// Whether one more message of `size` stored octets fits. A message larger than the whole quota
// never fits, even in an empty maildrop (so it can be refused for good at once).
[[nodiscard]] inline bool fits(const quota& q, const usage& u, std::uint64_t size) noexcept {
    if (q.max_messages != 0 && u.messages + 1 > q.max_messages) {
        return false;
    }
    return q.max_bytes == 0 || (size <= q.max_bytes && u.bytes <= q.max_bytes - size);
}

struct delivery_request {
    std::string_view user;     // canonical user name (from the user database)
    std::string_view message;  // the bytes to store: core/stored_form.h's form, trace headers first
    std::uint64_t virtual_size = 0;  // message_encoder's size of `message` (Maildir's W=)
    quota limits;                    // checked against the maildrop's usage before storing
};

enum class delivery_errc {
    temporary,   // try again later: I/O error, disk full, lock timeout (LMTP 451 4.3.0, EX_TEMPFAIL)
    permanent,   // will not go away by itself: bad permissions, impossible path (554 5.3.0)
    over_quota,  // the message does not fit the user's quota (defer or bounce: the admin decides)
};

struct delivery_error {
    delivery_errc code;
    std::string detail;  // for the admin's log
};

struct delivery_receipt {
    std::string id;      // the stored message's identity, for the log (a Maildir file name)
    usage after;         // the maildrop's usage with this message (counted only under a quota)
};

class mail_delivery {
public:
    virtual ~mail_delivery() = default;
    // Stores one message durably (see above), creating the user's maildrop if it has none. Safe
    // to call concurrently, also for one user and beside POP3 sessions of that user: a session's
    // snapshot is not disturbed (it sees the message at its next login).
    virtual result<delivery_receipt, delivery_error> deliver(const delivery_request& request) = 0;
    // The maildrop's usage now, for a quota check before the message arrives (LMTP RCPT with
    // SIZE=, RFC 1870 §6). A maildrop that does not exist yet is empty.
    virtual result<usage, delivery_error> current_usage(std::string_view user) = 0;
};

}  // namespace poplar::storage
