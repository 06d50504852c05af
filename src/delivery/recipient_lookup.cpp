// Recipient address -> user and quota (recipient_lookup.h).
#include "delivery/recipient_lookup.h"

#include <algorithm>

namespace poplar::delivery {

std::vector<std::string> candidate_users(std::string_view address, std::string_view delimiter) {
    std::vector<std::string> out;
    auto add = [&](std::string s) {
        if (!s.empty() && std::find(out.begin(), out.end(), s) == out.end()) {
            out.push_back(std::move(s));
        }
    };
    std::string lower_domain{address};
    const auto at = lower_domain.rfind('@');
    if (at != std::string::npos) {
        std::transform(lower_domain.begin() + static_cast<std::ptrdiff_t>(at), lower_domain.end(),
                       lower_domain.begin() + static_cast<std::ptrdiff_t>(at),
                       [](unsigned char c) { return static_cast<char>(c >= 'A' && c <= 'Z' ? c + 32 : c); });
    }
    add(std::string{address});
    add(lower_domain);
    if (!delimiter.empty()) {
        for (const std::string& a : std::vector<std::string>{std::string{address}, lower_domain}) {
            const auto domain_at = a.rfind('@');
            const std::string local = a.substr(0, domain_at);
            const auto d = local.find(delimiter);
            if (d != std::string::npos && d > 0) {
                add(local.substr(0, d) + (domain_at == std::string::npos ? std::string{} : a.substr(domain_at)));
            }
        }
    }
    return out;
}

storage::quota quota_for(const auth::account_controls* controls, const config::delivery_settings& settings) {
    storage::quota q{settings.quota_bytes, settings.quota_messages};
    if (controls != nullptr) {
        q.max_bytes = controls->quota_bytes.value_or(q.max_bytes);
        q.max_messages = controls->quota_messages.value_or(q.max_messages);
    }
    return q;
}

result<std::optional<recipient>, std::string> find_recipient(auth::passdb& db, std::string_view address,
                                                             const config::delivery_settings& settings) {
    for (const std::string& user : candidate_users(address, settings.recipient_delimiter)) {
        auto found = db.lookup(user);
        if (!found) {
            return unexpected{std::move(found.error().message)};
        }
        if (*found) {
            return std::optional<recipient>{recipient{(*found)->user, quota_for((*found)->controls.get(), settings)}};
        }
    }
    return std::optional<recipient>{};
}

std::optional<std::optional<recipient>> find_recipient_cached(auth::passdb& db, std::string_view address,
                                                              const config::delivery_settings& settings) {
    for (const std::string& user : candidate_users(address, settings.recipient_delimiter)) {
        auto found = db.try_lookup_cached(user);
        if (!found) {
            return std::nullopt;
        }
        if (*found) {
            return std::optional<recipient>{recipient{(**found).user, quota_for((**found).controls.get(), settings)}};
        }
    }
    return std::optional<recipient>{};
}

}  // namespace poplar::delivery
