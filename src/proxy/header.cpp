#include "proxy/header.h"

#include <arpa/inet.h>

#include <algorithm>
#include <charconv>
#include <cstring>
#include <string_view>

namespace poplar::proxy {

namespace {

// Section 2.2: the 12-byte signature, chosen so that no v1 header, HTTP, SMTP or POP3 line
// starts with it.
constexpr std::array<std::uint8_t, 12> v2_signature{0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D,
                                                    0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A};
constexpr std::string_view v1_prefix = "PROXY ";

parsed need_more() { return {}; }

parsed invalid(std::string why) {
    parsed p;
    p.what = parsed::kind::invalid;
    p.error = std::move(why);
    return p;
}

bool parse_port(std::string_view s, std::uint16_t& out) {
    // Section 2.1: decimal, no leading zeros (but "0" alone is a port), 0-65535.
    if (s.empty() || s.size() > 5 || (s.size() > 1 && s[0] == '0')) {
        return false;
    }
    unsigned v = 0;
    auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
    if (ec != std::errc{} || p != s.data() + s.size() || v > 65535) {
        return false;
    }
    out = static_cast<std::uint16_t>(v);
    return true;
}

bool parse_ip(std::string_view s, bool v6, address& out) {
    if (s.size() > 45) {
        return false;
    }
    const std::string text(s);
    out.v6 = v6;
    return ::inet_pton(v6 ? AF_INET6 : AF_INET, text.c_str(), out.bytes.data()) == 1;
}

parsed parse_v1(std::span<const std::uint8_t> in) {
    const std::string_view text(reinterpret_cast<const char*>(in.data()), std::min(in.size(), max_v1_line));
    // Section 2.1: US-ASCII, ended by CRLF. Anything else is refused as soon as it is seen, so a
    // prefix of a header never gets an answer the whole header would not (the fuzz invariant),
    // and no NUL can cut an address short for inet_pton.
    std::size_t crlf = std::string_view::npos;
    for (std::size_t i = 0; i < text.size() && crlf == std::string_view::npos; ++i) {
        const char c = text[i];
        if (c == '\r') {
            if (i + 1 == text.size()) {
                break;  // the LF may be next
            }
            if (text[i + 1] != '\n') {
                return invalid("v1 header has a CR not followed by LF");
            }
            crlf = i;
        } else if (c < 0x20 || c > 0x7e) {
            return invalid(c == '\n' ? "v1 header ends in LF without CR" : "v1 header holds a byte that is not printable ASCII");
        }
    }
    if (crlf == std::string_view::npos) {
        if (in.size() >= max_v1_line) {
            return invalid("v1 header longer than 107 bytes");
        }
        return need_more();
    }
    const std::string_view line = text.substr(v1_prefix.size(), crlf - v1_prefix.size());
    std::array<std::string_view, 5> f{};
    std::size_t n = 0;
    std::size_t pos = 0;
    while (pos <= line.size() && n < f.size() + 1) {
        const std::size_t sp = line.find(' ', pos);
        const std::string_view word = line.substr(pos, sp == std::string_view::npos ? std::string_view::npos : sp - pos);
        if (n < f.size()) {
            f[n] = word;
        }
        ++n;
        if (sp == std::string_view::npos) {
            break;
        }
        pos = sp + 1;
    }
    parsed p;
    p.what = parsed::kind::complete;
    p.length = crlf + 2;
    p.value.version = 1;
    if (f[0] == "UNKNOWN") {
        p.value.local = true;  // section 2.1: the rest of the line is to be ignored
        return p;
    }
    if (f[0] != "TCP4" && f[0] != "TCP6") {
        return invalid("v1 protocol is not TCP4, TCP6 or UNKNOWN");
    }
    if (n != 5) {
        return invalid("v1 header needs protocol, two addresses and two ports, single spaces");
    }
    const bool v6 = f[0] == "TCP6";
    if (!parse_ip(f[1], v6, p.value.source) || !parse_ip(f[2], v6, p.value.destination)) {
        return invalid(v6 ? "v1 address is not an IPv6 address" : "v1 address is not an IPv4 address");
    }
    if (!parse_port(f[3], p.value.source.port) || !parse_port(f[4], p.value.destination.port)) {
        return invalid("v1 port is not a number from 0 to 65535");
    }
    return p;
}

std::uint16_t be16(const std::uint8_t* p) { return static_cast<std::uint16_t>(p[0] << 8 | p[1]); }

parsed parse_v2(std::span<const std::uint8_t> in) {
    if (in.size() < 16) {
        return need_more();
    }
    const std::uint8_t ver_cmd = in[12];
    const std::uint8_t fam = in[13];
    const std::size_t len = be16(in.data() + 14);
    if ((ver_cmd >> 4) != 2) {
        return invalid("v2 version is not 2");
    }
    const int cmd = ver_cmd & 0x0F;
    if (cmd > 1) {
        return invalid("v2 command is neither LOCAL nor PROXY");
    }
    if (16 + len > max_header) {
        return invalid("v2 header longer than " + std::to_string(max_header) + " bytes");
    }
    if (in.size() < 16 + len) {
        return need_more();
    }
    parsed p;
    p.what = parsed::kind::complete;
    p.length = 16 + len;
    p.value.version = 2;
    const int family = fam >> 4;
    const int transport = fam & 0x0F;
    if (family > 3 || transport > 2) {
        return invalid("v2 address family or transport is unknown");
    }
    if (cmd == 0 || family == 0 || family == 3) {
        // LOCAL, or an address poplar cannot use: the connection's own (section 2.2).
        p.value.local = true;
        return p;
    }
    if (transport != 1) {
        return invalid("v2 transport is not STREAM");
    }
    const std::uint8_t* a = in.data() + 16;
    if (family == 1) {  // AF_INET: 4 + 4 + 2 + 2
        if (len < 12) {
            return invalid("v2 length too short for IPv4 addresses");
        }
        std::memcpy(p.value.source.bytes.data(), a, 4);
        std::memcpy(p.value.destination.bytes.data(), a + 4, 4);
        p.value.source.port = be16(a + 8);
        p.value.destination.port = be16(a + 10);
        return p;
    }
    if (len < 36) {  // AF_INET6: 16 + 16 + 2 + 2
        return invalid("v2 length too short for IPv6 addresses");
    }
    p.value.source.v6 = p.value.destination.v6 = true;
    std::memcpy(p.value.source.bytes.data(), a, 16);
    std::memcpy(p.value.destination.bytes.data(), a + 16, 16);
    p.value.source.port = be16(a + 32);
    p.value.destination.port = be16(a + 34);
    // TLVs after the addresses (section 2.2.7) carry nothing poplar uses; their bytes are within
    // `len` and consumed with the header.
    return p;
}

}  // namespace

parsed parse(std::span<const std::uint8_t> in) {
    if (in.empty()) {
        return need_more();
    }
    const std::size_t v1_seen = std::min(in.size(), v1_prefix.size());
    if (std::memcmp(in.data(), v1_prefix.data(), v1_seen) == 0) {
        return in.size() < v1_prefix.size() ? need_more() : parse_v1(in);
    }
    const std::size_t v2_seen = std::min(in.size(), v2_signature.size());
    if (std::memcmp(in.data(), v2_signature.data(), v2_seen) == 0) {
        return parse_v2(in);
    }
    return invalid("no PROXY header: neither the v1 PROXY line nor the v2 signature");
}

}  // namespace poplar::proxy
