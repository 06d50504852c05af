// Per-user usage windows and their thresholds (see usage_alerts.h).
#include "detect/usage_alerts.h"

#include <algorithm>

namespace poplar::detect {

std::string_view name(alert_kind k) {
    switch (k) {
        case alert_kind::retr_messages:
            return "retr_messages";
        case alert_kind::retr_bytes:
            return "retr_bytes";
        case alert_kind::dele_messages:
            return "dele_messages";
        case alert_kind::addresses:
            return "addresses";
    }
    return "?";
}

usage_alerts::usage usage_alerts::fresh(clock::time_point now) {
    usage u;
    u.window_start = now;
    return u;
}

usage_alerts::usage* usage_alerts::find_or_start(const std::string& user, clock::time_point now,
                                                 const alert_thresholds& t) {
    auto it = users_.find(user);
    if (it == users_.end()) {
        if (users_.size() >= max_users_) {
            std::erase_if(users_, [&](const auto& e) { return now - e.second.window_start >= t.window; });
            if (users_.size() >= max_users_) {
                return nullptr;
            }
        }
        it = users_.emplace(user, fresh(now)).first;
    } else if (now - it->second.window_start >= t.window) {
        it->second = fresh(now);  // a new window: counts and reports start again
    }
    return &it->second;
}

std::optional<alert> usage_alerts::crossed(usage& u, alert_kind k, std::uint64_t value, std::uint64_t threshold) {
    const unsigned bit = 1u << static_cast<unsigned>(k);
    if (threshold == 0 || value < threshold || (u.reported & bit) != 0) {
        return std::nullopt;
    }
    u.reported |= bit;
    return alert{k, value, threshold};
}

std::optional<alert> usage_alerts::login(const std::string& user, const address& from, clock::time_point now,
                                         const alert_thresholds& t) {
    std::lock_guard lock(mutex_);
    usage* u = find_or_start(user, now, t);
    if (u == nullptr || t.addresses == 0) {
        return std::nullopt;
    }
    if (std::find(u->addresses.begin(), u->addresses.end(), from) == u->addresses.end() &&
        u->addresses.size() < t.addresses) {
        u->addresses.push_back(from);
        return crossed(*u, alert_kind::addresses, u->addresses.size(), t.addresses);
    }
    return std::nullopt;
}

std::optional<alert> usage_alerts::retrieved(const std::string& user, std::uint64_t octets, clock::time_point now,
                                             const alert_thresholds& t) {
    std::lock_guard lock(mutex_);
    usage* u = find_or_start(user, now, t);
    if (u == nullptr) {
        return std::nullopt;
    }
    u->retr_messages += 1;
    u->retr_bytes += octets;
    if (auto a = crossed(*u, alert_kind::retr_messages, u->retr_messages, t.retr_messages)) {
        return a;
    }
    return crossed(*u, alert_kind::retr_bytes, u->retr_bytes, t.retr_bytes);
}

std::optional<alert> usage_alerts::deleted(const std::string& user, std::uint64_t messages, clock::time_point now,
                                           const alert_thresholds& t) {
    std::lock_guard lock(mutex_);
    usage* u = find_or_start(user, now, t);
    if (u == nullptr) {
        return std::nullopt;
    }
    u->dele_messages += messages;
    return crossed(*u, alert_kind::dele_messages, u->dele_messages, t.dele_messages);
}

std::size_t usage_alerts::tracked() const {
    std::lock_guard lock(mutex_);
    return users_.size();
}

}  // namespace poplar::detect
