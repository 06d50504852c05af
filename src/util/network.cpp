#include "util/network.h"

#include <arpa/inet.h>

#include <charconv>
#include <cstring>

namespace poplar::util {

namespace {

bool parse_ip(const std::string& s, std::array<std::uint8_t, 16>& out, bool& v4) {
    in_addr a4{};
    if (::inet_pton(AF_INET, s.c_str(), &a4) == 1) {
        out = {};
        out[10] = 0xff;
        out[11] = 0xff;
        std::memcpy(out.data() + 12, &a4, 4);
        v4 = true;
        return true;
    }
    v4 = false;
    return ::inet_pton(AF_INET6, s.c_str(), out.data()) == 1;
}

}  // namespace

bool network::contains(const std::array<std::uint8_t, 16>& address) const noexcept {
    unsigned bits = prefix;
    for (std::size_t i = 0; i < 16 && bits > 0; ++i) {
        const unsigned take = bits >= 8 ? 8 : bits;
        const std::uint8_t mask = static_cast<std::uint8_t>(0xff << (8 - take));
        if ((address[i] & mask) != (bytes[i] & mask)) {
            return false;
        }
        bits -= take;
    }
    return true;
}

std::array<std::uint8_t, 16> mapped_address(std::string_view ip_text) {
    std::array<std::uint8_t, 16> out{};
    bool v4 = false;
    if (!parse_ip(std::string(ip_text), out, v4)) {
        return {};
    }
    return out;
}

result<network, std::string> parse_network(std::string_view text) {
    const auto slash = text.find('/');
    const std::string ip(text.substr(0, slash));
    network n;
    bool v4 = false;
    if (!parse_ip(ip, n.bytes, v4)) {
        return unexpected("\"" + std::string(text) + "\" is not an IP address or network");
    }
    const unsigned max = v4 ? 32 : 128;
    unsigned len = max;
    if (slash != std::string_view::npos) {
        const std::string_view digits = text.substr(slash + 1);
        auto [p, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), len);
        if (digits.empty() || ec != std::errc{} || p != digits.data() + digits.size() || len > max) {
            return unexpected("\"" + std::string(text) + "\": the prefix length must be 0-" + std::to_string(max));
        }
    }
    n.prefix = v4 ? 96 + len : len;
    // Host bits set ("192.0.2.7/24") are a typo more often than not: refuse rather than guess.
    for (unsigned bit = n.prefix; bit < 128; ++bit) {
        if ((n.bytes[bit / 8] >> (7 - bit % 8)) & 1) {
            return unexpected("\"" + std::string(text) + "\" has bits set beyond its prefix length");
        }
    }
    return n;
}

}  // namespace poplar::util
