// The one delivery path (local_delivery.h).
#include "delivery/local_delivery.h"

#include <fmt/format.h>

#include "core/message_encoder.h"
#include "delivery/trace_headers.h"

namespace poplar::delivery {

std::string_view enhanced_code(status s) noexcept {
    switch (s) {
    case status::delivered: return "2.0.0";
    case status::over_quota_temp: return "4.2.2";  // RFC 3463 §3.3: mailbox full
    case status::over_quota_perm: return "5.2.2";
    case status::too_large: return "5.3.4";        // message too big for system
    case status::unknown_user: return "5.1.1";     // bad destination mailbox address
    case status::temporary: return "4.3.0";        // other or undefined mail system status
    case status::permanent: return "5.3.0";
    }
    return "4.3.0";
}

namespace {

status over_quota(const config::delivery_settings& settings) {
    return settings.over_quota == config::quota_action::defer ? status::over_quota_temp : status::over_quota_perm;
}

}  // namespace

outcome deliver_message(storage::mail_delivery& store, const recipient& r, const message& m,
                        const config::delivery_settings& settings) {
    if (m.body.size() > settings.max_message_size) {
        return outcome{status::too_large,
                       fmt::format("{} octets, delivery.max_message_size is {}", m.body.size(), settings.max_message_size),
                       {}};
    }
    std::string stored;
    if (settings.trace_headers) {
        stored = trace_headers(m.sender, m.recipient);
    }
    stored.append(m.body);
    const storage::delivery_request request{r.user, stored, core::virtual_size(stored), r.quota};
    auto done = store.deliver(request);
    if (!done) {
        switch (done.error().code) {
        case storage::delivery_errc::over_quota: return outcome{over_quota(settings), done.error().detail, {}};
        case storage::delivery_errc::permanent: return outcome{status::permanent, done.error().detail, {}};
        case storage::delivery_errc::temporary: break;
        }
        return outcome{status::temporary, done.error().detail, {}};
    }
    return outcome{status::delivered, std::move(done->id), done->after};
}

outcome check_quota(storage::mail_delivery& store, const recipient& r, std::uint64_t size,
                    const config::delivery_settings& settings) {
    if (!r.quota.any()) {
        return outcome{status::delivered, {}, {}};
    }
    auto u = store.current_usage(r.user);
    if (!u) {
        return outcome{status::temporary, u.error().detail, {}};
    }
    if (!storage::fits(r.quota, *u, size)) {
        return outcome{over_quota(settings),
                       fmt::format("holds {} messages, {} octets; quota {} messages, {} octets; declared size {}",
                                   u->messages, u->bytes, r.quota.max_messages, r.quota.max_bytes, size),
                       *u};
    }
    return outcome{status::delivered, {}, *u};
}

}  // namespace poplar::delivery
