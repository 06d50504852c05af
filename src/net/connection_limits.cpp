// The shared connection counts behind server.max_connections, max_unauthenticated,
// max_connections_per_address and max_sessions_per_user.
#include "net/connection_limits.h"

#include <cstring>
#include <string_view>

namespace poplar::net {

address_key address_key::of(const asio::ip::address& a) {
    address_key k;
    if (a.is_v4()) {
        const auto b = a.to_v4().to_bytes();
        std::memcpy(k.bytes.data(), b.data(), b.size());
        return k;
    }
    const asio::ip::address_v6 v6 = a.to_v6();
    if (v6.is_v4_mapped()) {
        return of(asio::ip::make_address_v4(asio::ip::v4_mapped, v6));
    }
    const auto b = v6.to_bytes();
    std::memcpy(k.bytes.data(), b.data(), 8);  // the /64; the interface identifier is ignored
    k.v6 = true;
    return k;
}

std::size_t address_key_hash::operator()(const address_key& k) const noexcept {
    return std::hash<std::string_view>{}(
               std::string_view(reinterpret_cast<const char*>(k.bytes.data()), k.bytes.size())) ^
           (k.v6 ? 0x9e3779b97f4a7c15ULL : 0);
}

connection_limits::verdict connection_limits::admit(const address_key& k, const settings& s) {
    std::lock_guard lock(mutex_);
    if (total_ >= s.total) {
        return verdict::total;
    }
    if (unauthenticated_ >= s.unauthenticated) {
        return verdict::unauthenticated;
    }
    std::size_t& n = per_address_[k];
    if (n >= s.per_address) {
        return verdict::per_address;  // n > 0 here, so the entry existed: nothing to erase
    }
    ++n;
    ++total_;
    ++unauthenticated_;
    return verdict::ok;
}

void connection_limits::release(const address_key& k, bool logged_in, const std::string& user) {
    std::lock_guard lock(mutex_);
    --total_;
    if (logged_in) {
        auto u = per_user_.find(user);
        if (u != per_user_.end() && --u->second == 0) {
            per_user_.erase(u);
        }
    } else {
        --unauthenticated_;
    }
    auto a = per_address_.find(k);
    if (a != per_address_.end() && --a->second == 0) {
        per_address_.erase(a);
    }
}

bool connection_limits::login(const std::string& user, std::size_t per_user) {
    std::lock_guard lock(mutex_);
    std::size_t& n = per_user_[user];
    if (n >= per_user) {
        return false;  // n >= per_user >= 1: the entry existed, nothing to erase
    }
    ++n;
    --unauthenticated_;
    return true;
}

void connection_limits::logout(const std::string& user) {
    std::lock_guard lock(mutex_);
    auto u = per_user_.find(user);
    if (u != per_user_.end() && --u->second == 0) {
        per_user_.erase(u);
    }
    ++unauthenticated_;
}

bool connection_limits::too_soon(const std::string& user, std::chrono::steady_clock::time_point now,
                                 std::chrono::seconds delay) const {
    std::lock_guard lock(mutex_);
    auto it = last_login_.find(user);
    return it != last_login_.end() && now - it->second < delay;
}

void connection_limits::note_login(const std::string& user, std::chrono::steady_clock::time_point now,
                                   std::chrono::seconds delay) {
    std::lock_guard lock(mutex_);
    if (last_login_.size() >= max_login_times && last_login_.find(user) == last_login_.end()) {
        std::erase_if(last_login_, [&](const auto& e) { return now - e.second >= delay; });
        if (last_login_.size() >= max_login_times) {
            return;  // a million users logged in within the delay: this one goes unrecorded
        }
    }
    last_login_[user] = now;
}

std::size_t connection_limits::unauthenticated() const {
    std::lock_guard lock(mutex_);
    return unauthenticated_;
}

std::size_t connection_limits::total() const {
    std::lock_guard lock(mutex_);
    return total_;
}

const char* verdict_reason(connection_limits::verdict v) {
    switch (v) {
        case connection_limits::verdict::total:
            return "server.max_connections reached";
        case connection_limits::verdict::unauthenticated:
            return "server.max_unauthenticated reached";
        case connection_limits::verdict::per_address:
            return "server.max_connections_per_address reached";
        case connection_limits::verdict::ok:
            break;
    }
    return "ok";
}

}  // namespace poplar::net
