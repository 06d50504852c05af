// Unusual use of one account: the seeds' "alert on unusual volumes of downloads or suspicious
// deletion patterns". Per user and per window (alerts.window), counts messages and octets
// retrieved, messages deleted and distinct client addresses, and reports the moment one of them
// crosses its threshold: once per kind, user and window, so an alert is a signal, not a flood.
//
// Pure: time is passed in, nothing is logged here (the connection writes the `alert:` line and
// bumps the counter). Thread-safe (one mutex; called a few times per session). Bounded: at most
// max_users users are tracked; when full, windows that have ended are swept, and if none has,
// a new user goes untracked until one does (an attacker rotating user names cannot grow it).
#pragma once

#include <array>
#include <chrono>
#include <cstdint>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace poplar::detect {

struct alert_thresholds {
    std::chrono::seconds window{3600};
    std::uint64_t retr_messages = 5000;               // 0: no alert of this kind
    std::uint64_t retr_bytes = 2ULL * 1024 * 1024 * 1024;
    std::uint64_t dele_messages = 2000;
    std::uint64_t addresses = 10;                     // distinct client addresses (IPv4, IPv6 /64)
};

enum class alert_kind { retr_messages, retr_bytes, dele_messages, addresses };
std::string_view name(alert_kind k);  // "retr_messages", ... as in the log line and the metric

struct alert {
    alert_kind kind;
    std::uint64_t value;      // the count that crossed the threshold
    std::uint64_t threshold;
};

class usage_alerts {
public:
    using clock = std::chrono::steady_clock;
    // About 150 bytes per user plus the addresses: 1,000,000 users is about 200 MiB at worst.
    explicit usage_alerts(std::size_t max_users = 1'000'000) : max_users_(max_users) {}
    // An address as 16 octets (IPv4 in the first 4); only compared for equality.
    using address = std::array<unsigned char, 17>;

    // Each returns the alert crossed by this event, if one was.
    std::optional<alert> login(const std::string& user, const address& from, clock::time_point now,
                               const alert_thresholds& t);
    std::optional<alert> retrieved(const std::string& user, std::uint64_t octets, clock::time_point now,
                                   const alert_thresholds& t);
    std::optional<alert> deleted(const std::string& user, std::uint64_t messages, clock::time_point now,
                                 const alert_thresholds& t);

    std::size_t tracked() const;

private:
    struct usage {
        clock::time_point window_start;
        std::uint64_t retr_messages = 0;
        std::uint64_t retr_bytes = 0;
        std::uint64_t dele_messages = 0;
        std::vector<address> addresses;  // at most thresholds.addresses + 1
        unsigned reported = 0;           // bit per alert_kind already reported in this window
    };
    static usage fresh(clock::time_point now);
    usage* find_or_start(const std::string& user, clock::time_point now, const alert_thresholds& t);
    static std::optional<alert> crossed(usage& u, alert_kind k, std::uint64_t value, std::uint64_t threshold);

    const std::size_t max_users_;
    mutable std::mutex mutex_;
    std::unordered_map<std::string, usage> users_;
};

}  // namespace poplar::detect
