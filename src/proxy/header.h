// The PROXY protocol header (HAProxy's doc/proxy-protocol.txt, versions 1 and 2): what a TCP
// proxy in front of poplar sends first, so that poplar sees the real client's address.
//
// Pure and stateless: parse() looks at the bytes received so far (the network layer peeks at
// the socket, so nothing after the header is ever consumed here: the POP3 or TLS bytes that
// follow stay in the kernel for the session) and says whether they are a complete header, its
// beginning, or not a header at all.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>

namespace poplar::proxy {

// Version 1 is one text line of at most 107 bytes (section 2.1); version 2 is 16 bytes plus a
// length field (section 2.2). A version 2 header longer than this (TLVs included) is refused:
// HAProxy's own TLVs (ALPN, authority, CRC, unique ID up to 128, SSL) fit well within it.
inline constexpr std::size_t max_header = 1024;
inline constexpr std::size_t max_v1_line = 107;

struct address {
    std::array<std::uint8_t, 16> bytes{};  // IPv4 in the first 4
    bool v6 = false;
    std::uint16_t port = 0;
};

struct header {
    int version = 0;  // 1 or 2
    // True when the header carries no client address to use: v1 "UNKNOWN", v2 LOCAL (health
    // checks from the proxy itself), or a family poplar does not serve (AF_UNIX, AF_UNSPEC).
    // The connection's own addresses apply then (section 2.1 and 2.2 say so).
    bool local = false;
    address source;
    address destination;
};

struct parsed {
    enum class kind { need_more, complete, invalid } what = kind::need_more;
    std::size_t length = 0;  // complete: the header's size in bytes, to consume
    header value;            // complete
    std::string error;       // invalid: why, for the log ("bad signature", "v1 line too long", ...)
};

parsed parse(std::span<const std::uint8_t> received);

}  // namespace poplar::proxy
