// The addresses each account logged in from successfully, recently: what "smart lockout" needs
// to tell the owner from strangers guessing the owner's password (auth_penalties.h). An address
// here is an IPv4 address or an IPv6 /64, as for the penalties.
//
// Kept for a number of days (auth.familiar_days), a few addresses per account (the most recent
// ones win), and written to a small text file under server.state_directory so a restart does
// not turn every owner into a stranger. Days, not seconds: a login on a day already recorded
// changes nothing, so the file is rewritten at most once per account and day, not per login.
//
// Pure (time passed in, the file's text made and read here, the file itself written by the
// server) and thread-safe (one mutex). Bounded: at most max_accounts accounts; when full, those
// not seen within the period are dropped, then the tenth least recently seen.
#pragma once

#include <array>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "detect/usage_alerts.h"

namespace poplar::detect {

class familiar_addresses {
public:
    using address = usage_alerts::address;
    using clock = std::chrono::system_clock;
    static constexpr std::size_t per_account = 4;
    static constexpr std::size_t default_max_accounts = 100'000;  // about 15 MiB at worst

    explicit familiar_addresses(std::size_t max_accounts = default_max_accounts) : max_accounts_(max_accounts) {}

    // `user` logged in from `from` within the last `days` days (today counts as one).
    bool is_familiar(std::string_view user, const address& from, clock::time_point now, unsigned days) const;
    // A successful login. True when what the file holds changed (a new address, or a new day).
    bool note_success(std::string_view user, const address& from, clock::time_point now, unsigned days);

    // The file's text: "# comment" lines, then one "user<TAB>address<TAB>YYYY-MM-DD" line per
    // address ("192.0.2.7", "2001:db8:1:2::/64"), entries older than `days` left out.
    std::string to_text(clock::time_point now, unsigned days) const;
    // Replaces what is held by `text`'s entries (those older than `days` skipped). Lines that do
    // not parse are skipped and described, "LINE: problem", for the log.
    std::vector<std::string> load_text(std::string_view text, clock::time_point now, unsigned days);

    std::size_t accounts() const;

private:
    struct seen {
        address from{};
        std::int32_t day = -1;  // days since 1970-01-01 (UTC); -1: empty slot
    };
    using slots = std::array<seen, per_account>;
    static std::int32_t day_of(clock::time_point t);
    static std::int32_t newest(const slots& s);
    void make_room(std::int32_t today, unsigned days);
    bool insert(std::string_view user, const address& from, std::int32_t day);

    mutable std::mutex mutex_;
    std::size_t max_accounts_;
    std::unordered_map<std::string, slots> accounts_;
};

// "192.0.2.7" or "2001:db8:1:2::/64" for an address as the penalties see it; the reverse, false
// on anything else.
std::string address_text(const usage_alerts::address& a);
bool parse_address_text(std::string_view text, usage_alerts::address& out);

}  // namespace poplar::detect
