// Connection and session limits shared by every event loop: total, before login, per client
// address and per user (docs/configuration.md, [server]; docs/security.md, "Connection floods").
//
// Counted here rather than in each loop so that one address's flood, spread over every loop,
// is still one address. One mutex: it is taken twice per connection and once per login, far
// less often than anything else a session does, and the maps stay small (one entry per address
// or user that has a connection now).
#pragma once

#include <asio/ip/address.hpp>

#include <array>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <mutex>
#include <string>
#include <unordered_map>

#include "config/config.h"

namespace poplar::net {

// A client address as the limits (and penalties) see it: IPv4 as is, IPv6 by its /64, since one
// host or one customer of an ISP commonly holds a whole /64. IPv4-mapped IPv6 counts as IPv4.
struct address_key {
    std::array<unsigned char, 16> bytes{};
    bool v6 = false;
    bool operator==(const address_key&) const = default;
    static address_key of(const asio::ip::address& a);
};

struct address_key_hash {
    std::size_t operator()(const address_key& k) const noexcept;
};

class connection_limits {
public:
    enum class verdict { ok, total, unauthenticated, per_address };

    // The limits in force are those of the current configuration; effective_total is
    // server.max_connections lowered to what the descriptor limit allows (server.cpp).
    struct settings {
        std::size_t total;
        std::size_t unauthenticated;
        std::size_t per_address;
        std::size_t per_user;
    };

    // At accept. On ok the connection is counted (total, unauthenticated, its address) until
    // release(); otherwise nothing is counted.
    verdict admit(const address_key& k, const settings& s);
    // The connection ends: undoes admit(), and login() if it logged in.
    void release(const address_key& k, bool logged_in, const std::string& user);
    // After authentication, before the maildrop opens: false when the user already has
    // per_user sessions (nothing counted then; the connection stays unauthenticated).
    bool login(const std::string& user, std::size_t per_user);
    // Undoes login() when the maildrop then failed to open: unauthenticated again.
    void logout(const std::string& user);

    // LOGIN-DELAY (RFC 2449 §6.5): true when `user` last logged in less than `delay` before
    // `now`. note_login() records a login that succeeded. Entries older than the delay mean
    // nothing and are swept when the table reaches max_login_times, so it stays bounded.
    bool too_soon(const std::string& user, std::chrono::steady_clock::time_point now,
                  std::chrono::seconds delay) const;
    void note_login(const std::string& user, std::chrono::steady_clock::time_point now, std::chrono::seconds delay);
    static constexpr std::size_t max_login_times = 1'000'000;  // about 100 MiB at worst

    std::size_t unauthenticated() const;
    std::size_t total() const;

private:
    mutable std::mutex mutex_;
    std::size_t total_ = 0;
    std::size_t unauthenticated_ = 0;
    std::unordered_map<address_key, std::size_t, address_key_hash> per_address_;
    std::unordered_map<std::string, std::size_t> per_user_;
    std::unordered_map<std::string, std::chrono::steady_clock::time_point> last_login_;
};

const char* verdict_reason(connection_limits::verdict v);

}  // namespace poplar::net
