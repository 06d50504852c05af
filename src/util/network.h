// IP networks as admins write them ("192.0.2.0/24", "2001:db8::/32", "198.51.100.7"): the
// passwd-file's allow_nets (auth/account_controls.h) and server.trusted_proxies (the PROXY
// protocol) both match client addresses against lists of them. Pure.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <string_view>

#include "util/result.h"

namespace poplar::util {

// An IPv4 or IPv6 network; IPv4 is kept as IPv4-mapped IPv6 (::ffff:a.b.c.d), so one comparison
// serves both and an IPv4 client seen on an IPv6 socket still matches its IPv4 network.
struct network {
    std::array<std::uint8_t, 16> bytes{};
    unsigned prefix = 128;  // in IPv6 bits (an IPv4 /24 is 96 + 24)
    bool contains(const std::array<std::uint8_t, 16>& address) const noexcept;
};

// "192.0.2.0/24", "2001:db8::/32", "198.51.100.7", "::1"; the error says what is wrong (host
// bits set beyond the prefix are refused: "192.0.2.7/24" is a typo more often than not).
result<network, std::string> parse_network(std::string_view text);
// An address as `network` compares it: IPv4 as IPv4-mapped IPv6; all zeros when unparsable.
std::array<std::uint8_t, 16> mapped_address(std::string_view ip_text);

}  // namespace poplar::util
