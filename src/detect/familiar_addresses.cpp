#include "detect/familiar_addresses.h"

#include <arpa/inet.h>

#include <algorithm>
#include <charconv>
#include <cstring>

namespace poplar::detect {

namespace {

bool storable(std::string_view user) {
    // Tabs and line ends would break the file; passwd-file names never hold them anyway.
    return !user.empty() && std::none_of(user.begin(), user.end(), [](char c) {
        return static_cast<unsigned char>(c) < 0x20 || c == 0x7f;
    });
}

std::string date_text(std::int32_t day) {
    const std::chrono::year_month_day ymd{std::chrono::sys_days{std::chrono::days{day}}};
    char buf[16];
    std::snprintf(buf, sizeof buf, "%04d-%02u-%02u", static_cast<int>(ymd.year()), static_cast<unsigned>(ymd.month()),
                  static_cast<unsigned>(ymd.day()));
    return buf;
}

bool parse_date(std::string_view s, std::int32_t& day) {
    int y = 0;
    unsigned m = 0;
    unsigned d = 0;
    if (s.size() != 10 || s[4] != '-' || s[7] != '-') {
        return false;
    }
    auto num = [&](std::size_t at, std::size_t len, auto& out) {
        auto [p, ec] = std::from_chars(s.data() + at, s.data() + at + len, out);
        return ec == std::errc{} && p == s.data() + at + len;
    };
    if (!num(0, 4, y) || !num(5, 2, m) || !num(8, 2, d)) {
        return false;
    }
    const std::chrono::year_month_day ymd{std::chrono::year{y}, std::chrono::month{m}, std::chrono::day{d}};
    if (!ymd.ok()) {
        return false;
    }
    day = static_cast<std::int32_t>(std::chrono::sys_days{ymd}.time_since_epoch().count());
    return true;
}

}  // namespace

std::string address_text(const usage_alerts::address& a) {
    char buf[INET6_ADDRSTRLEN];
    if (a[16] != 0) {
        unsigned char full[16]{};
        std::memcpy(full, a.data(), 8);
        ::inet_ntop(AF_INET6, full, buf, sizeof buf);
        return std::string(buf) + "/64";
    }
    ::inet_ntop(AF_INET, a.data(), buf, sizeof buf);
    return buf;
}

bool parse_address_text(std::string_view text, usage_alerts::address& out) {
    out = {};
    std::string s(text);
    if (s.size() > 3 && s.ends_with("/64")) {
        s.resize(s.size() - 3);
        unsigned char full[16];
        if (::inet_pton(AF_INET6, s.c_str(), full) != 1) {
            return false;
        }
        std::memcpy(out.data(), full, 8);  // the /64, as address_key::of cuts it
        out[16] = 1;
        return true;
    }
    return ::inet_pton(AF_INET, s.c_str(), out.data()) == 1;
}

std::int32_t familiar_addresses::day_of(clock::time_point t) {
    return static_cast<std::int32_t>(std::chrono::floor<std::chrono::days>(t).time_since_epoch().count());
}

std::int32_t familiar_addresses::newest(const slots& s) {
    std::int32_t n = -1;
    for (const seen& x : s) {
        n = std::max(n, x.day);
    }
    return n;
}

bool familiar_addresses::is_familiar(std::string_view user, const address& from, clock::time_point now,
                                     unsigned days) const {
    if (days == 0) {
        return false;
    }
    const std::int32_t oldest = day_of(now) - static_cast<std::int32_t>(days) + 1;
    std::lock_guard lock(mutex_);
    auto it = accounts_.find(std::string(user));
    if (it == accounts_.end()) {
        return false;
    }
    return std::any_of(it->second.begin(), it->second.end(),
                       [&](const seen& x) { return x.day >= oldest && x.from == from; });
}

void familiar_addresses::make_room(std::int32_t today, unsigned days) {
    const std::int32_t oldest = today - static_cast<std::int32_t>(days) + 1;
    std::erase_if(accounts_, [&](const auto& kv) { return newest(kv.second) < oldest; });
    if (accounts_.size() < max_accounts_) {
        return;
    }
    // Still full of accounts seen within the period: forget the tenth seen least recently.
    std::vector<std::int32_t> days_seen;
    days_seen.reserve(accounts_.size());
    for (const auto& kv : accounts_) {
        days_seen.push_back(newest(kv.second));
    }
    const std::size_t cut = std::max<std::size_t>(1, days_seen.size() / 10);
    std::nth_element(days_seen.begin(), days_seen.begin() + static_cast<std::ptrdiff_t>(cut - 1), days_seen.end());
    const std::int32_t threshold = days_seen[cut - 1];
    std::size_t dropped = 0;
    std::erase_if(accounts_, [&](const auto& kv) {
        if (dropped < cut && newest(kv.second) <= threshold) {
            ++dropped;
            return true;
        }
        return false;
    });
}

bool familiar_addresses::insert(std::string_view user, const address& from, std::int32_t day) {
    auto it = accounts_.find(std::string(user));
    if (it == accounts_.end()) {
        it = accounts_.emplace(std::string(user), slots{}).first;
    }
    slots& s = it->second;
    seen* target = nullptr;
    for (seen& x : s) {
        if (x.day >= 0 && x.from == from) {
            if (x.day >= day) {
                return false;
            }
            target = &x;
            break;
        }
    }
    if (target == nullptr) {
        // An empty slot, or the address seen longest ago.
        target = &*std::min_element(s.begin(), s.end(), [](const seen& a, const seen& b) { return a.day < b.day; });
        target->from = from;
    }
    target->day = day;
    return true;
}

bool familiar_addresses::note_success(std::string_view user, const address& from, clock::time_point now,
                                      unsigned days) {
    if (days == 0 || !storable(user)) {
        return false;
    }
    const std::int32_t today = day_of(now);
    std::lock_guard lock(mutex_);
    if (accounts_.size() >= max_accounts_ && !accounts_.contains(std::string(user))) {
        make_room(today, days);
    }
    return insert(user, from, today);
}

std::string familiar_addresses::to_text(clock::time_point now, unsigned days) const {
    const std::int32_t oldest = day_of(now) - static_cast<std::int32_t>(days) + 1;
    std::string out =
        "# poplar: addresses each account logged in from recently (auth.familiar_days); "
        "rewritten by the server\n";
    std::lock_guard lock(mutex_);
    for (const auto& [user, s] : accounts_) {
        for (const seen& x : s) {
            if (x.day >= oldest) {
                out += user;
                out += '\t';
                out += address_text(x.from);
                out += '\t';
                out += date_text(x.day);
                out += '\n';
            }
        }
    }
    return out;
}

std::vector<std::string> familiar_addresses::load_text(std::string_view text, clock::time_point now, unsigned days) {
    const std::int32_t today = day_of(now);
    const std::int32_t oldest = today - static_cast<std::int32_t>(days) + 1;
    std::vector<std::string> problems;
    std::lock_guard lock(mutex_);
    accounts_.clear();
    std::size_t line_no = 0;
    while (!text.empty()) {
        const std::size_t nl = text.find('\n');
        std::string_view line = text.substr(0, nl);
        text = nl == std::string_view::npos ? std::string_view{} : text.substr(nl + 1);
        ++line_no;
        if (line.empty() || line.front() == '#') {
            continue;
        }
        const std::size_t t1 = line.find('\t');
        const std::size_t t2 = t1 == std::string_view::npos ? t1 : line.find('\t', t1 + 1);
        address a;
        std::int32_t day = 0;
        if (t2 == std::string_view::npos || !storable(line.substr(0, t1)) ||
            !parse_address_text(line.substr(t1 + 1, t2 - t1 - 1), a) || !parse_date(line.substr(t2 + 1), day)) {
            if (problems.size() < 10) {
                problems.push_back(std::to_string(line_no) + ": not \"user<TAB>address<TAB>YYYY-MM-DD\"");
            }
            continue;
        }
        if (day < oldest || day > today + 1) {
            continue;  // expired, or from a clock that was wrong
        }
        if (accounts_.size() >= max_accounts_ && !accounts_.contains(std::string(line.substr(0, t1)))) {
            continue;
        }
        insert(line.substr(0, t1), a, day);
    }
    return problems;
}

std::size_t familiar_addresses::accounts() const {
    std::lock_guard lock(mutex_);
    return accounts_.size();
}

}  // namespace poplar::detect
