// The one delivery path: `poplar deliver` (cli/cmd_deliver.cpp) and the LMTP listener
// (net/lmtp_connection.cpp) both store a message through deliver_message(), so trace headers,
// size and quota checks, and how a failure is reported are decided in one place.
#pragma once

#include <string>
#include <string_view>

#include "config/config.h"
#include "delivery/recipient_lookup.h"
#include "storage/delivery.h"

namespace poplar::delivery {

enum class status {
    delivered,
    over_quota_temp,  // delivery.quota_action = "defer"
    over_quota_perm,  // delivery.quota_action = "bounce"
    too_large,        // larger than delivery.max_message_size
    unknown_user,
    temporary,        // storage failure that may pass (disk full, I/O error, lock timeout)
    permanent,        // storage failure that will not (permissions, impossible path)
};

struct outcome {
    status what = status::temporary;
    std::string detail;  // for the log: the receipt's id on success, the reason otherwise
    storage::usage after;  // the maildrop's usage with the message (under a quota only)
};

// The RFC 3463 enhanced status code of each status ("2.0.0", "5.2.2", ...).
std::string_view enhanced_code(status s) noexcept;

struct message {
    std::string_view sender;     // the envelope sender, "" for <> (bounces)
    std::string_view recipient;  // the address as given (Delivered-To carries it)
    std::string_view body;       // core/stored_form.h's form, without trace headers
};

// Stores `m` into `r`'s maildrop: adds the trace headers (delivery.trace_headers), checks the
// size and the quota, and calls the store, which makes it durable before it returns success.
outcome deliver_message(storage::mail_delivery& store, const recipient& r, const message& m,
                        const config::delivery_settings& settings);

// The quota check before the message arrives (LMTP RCPT with a SIZE= declared, RFC 1870 §6):
// delivered (it fits, as far as anyone can tell now), over_quota_*, or temporary.
outcome check_quota(storage::mail_delivery& store, const recipient& r, std::uint64_t size,
                    const config::delivery_settings& settings);

}  // namespace poplar::delivery
