// The PROXY header parser against the specification's examples and every malformed case: v1
// TCP4/TCP6/UNKNOWN, v2 PROXY/LOCAL over IPv4/IPv6/UNSPEC/UNIX, TLVs, truncation at every byte
// (need_more, never a wrong answer), and that the bytes after the header are never counted.
#include "proxy/header.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace poplar::proxy {
namespace {

std::vector<std::uint8_t> bytes(std::string_view s) { return {s.begin(), s.end()}; }

parsed of(const std::vector<std::uint8_t>& b) { return parse(b); }

std::vector<std::uint8_t> v2(std::uint8_t ver_cmd, std::uint8_t fam, std::vector<std::uint8_t> body) {
    // Built front to back (GCC 12 warns, wrongly, about insert() of a possibly empty range here).
    body.insert(body.begin(), {0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D, 0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A, ver_cmd, fam,
                               static_cast<std::uint8_t>(body.size() >> 8), static_cast<std::uint8_t>(body.size())});
    return body;
}

TEST(proxy_header, v1_tcp4_and_the_bytes_after_it_are_not_counted) {
    const std::string h = "PROXY TCP4 192.0.2.7 198.51.100.1 56324 995\r\n";
    auto p = of(bytes(h + "CAPA\r\n"));
    ASSERT_EQ(p.what, parsed::kind::complete) << p.error;
    EXPECT_EQ(p.length, h.size());
    EXPECT_EQ(p.value.version, 1);
    EXPECT_FALSE(p.value.local);
    EXPECT_FALSE(p.value.source.v6);
    EXPECT_EQ(p.value.source.bytes[0], 192);
    EXPECT_EQ(p.value.source.bytes[3], 7);
    EXPECT_EQ(p.value.source.port, 56324);
    EXPECT_EQ(p.value.destination.port, 995);
}

TEST(proxy_header, v1_tcp6_unknown_and_the_longest_line) {
    auto p = of(bytes("PROXY TCP6 2001:db8::1 2001:db8::2 1 110\r\n"));
    ASSERT_EQ(p.what, parsed::kind::complete) << p.error;
    EXPECT_TRUE(p.value.source.v6);
    EXPECT_EQ(p.value.source.bytes[15], 1);
    auto u = of(bytes("PROXY UNKNOWN ffff::1 whatever\r\n"));
    ASSERT_EQ(u.what, parsed::kind::complete);
    EXPECT_TRUE(u.value.local);
    // Section 2.1's worst case is exactly 107 bytes.
    const std::string longest = "PROXY TCP6 ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff "
                                "65535 65535\r\n";
    ASSERT_EQ(longest.size(), 104u);
    EXPECT_EQ(of(bytes(longest)).what, parsed::kind::complete);
}

TEST(proxy_header, v1_malformed) {
    EXPECT_EQ(of(bytes("PROXY TCP4 192.0.2.7 198.51.100.1 56324\r\n")).error,
              "v1 header needs protocol, two addresses and two ports, single spaces");
    EXPECT_EQ(of(bytes("PROXY TCP4 192.0.2.777 198.51.100.1 1 2\r\n")).error, "v1 address is not an IPv4 address");
    EXPECT_EQ(of(bytes("PROXY TCP4 2001:db8::1 198.51.100.1 1 2\r\n")).error, "v1 address is not an IPv4 address");
    EXPECT_EQ(of(bytes("PROXY TCP6 192.0.2.7 2001:db8::1 1 2\r\n")).error, "v1 address is not an IPv6 address");
    EXPECT_EQ(of(bytes("PROXY TCP4 192.0.2.7 198.51.100.1 65536 2\r\n")).error,
              "v1 port is not a number from 0 to 65535");
    EXPECT_EQ(of(bytes("PROXY TCP4 192.0.2.7 198.51.100.1 080 2\r\n")).error,
              "v1 port is not a number from 0 to 65535");
    EXPECT_EQ(of(bytes("PROXY TCP4  192.0.2.7 198.51.100.1 1 2\r\n")).what, parsed::kind::invalid);
    EXPECT_EQ(of(bytes("PROXY UDP4 192.0.2.7 198.51.100.1 1 2\r\n")).error, "v1 protocol is not TCP4, TCP6 or UNKNOWN");
    EXPECT_EQ(of(bytes("PROXY TCP4 192.0.2.7 198.51.100.1 1 2\n")).error, "v1 header ends in LF without CR");
    EXPECT_EQ(of(bytes("PROXY " + std::string(120, 'x'))).error, "v1 header longer than 107 bytes");
    // Found by fuzz_proxy_header: a NUL cut the address short for inet_pton, and a LF inside the
    // line made a prefix invalid while the whole header parsed.
    EXPECT_EQ(of(bytes(std::string("PROXY TCP4 192.0.2.7\0junk 198.51.100.1 1 2\r\n", 44))).error,
              "v1 header holds a byte that is not printable ASCII");
    EXPECT_EQ(of(bytes("PROXY TCP4 192.0.2.7\n 198.51.100.1 1 2\r\n")).error, "v1 header ends in LF without CR");
    EXPECT_EQ(of(bytes("PROXY TCP4 192.0.2.7\r 198.51.100.1 1 2\r\n")).error, "v1 header has a CR not followed by LF");
    EXPECT_EQ(of(bytes("USER alice\r\n")).error, "no PROXY header: neither the v1 PROXY line nor the v2 signature");
    EXPECT_EQ(of(bytes("\x16\x03\x01")).what, parsed::kind::invalid);  // a TLS ClientHello
}

TEST(proxy_header, v2_proxy_ipv4_with_tlvs) {
    std::vector<std::uint8_t> body{192, 0, 2, 7, 198, 51, 100, 1, 0xDC, 0x04, 0x03, 0xE3};
    const std::vector<std::uint8_t> tlv{0x04, 0x00, 0x03, 'a', 'b', 'c'};  // PP2_TYPE_NOOP
    body.insert(body.end(), tlv.begin(), tlv.end());
    auto h = v2(0x21, 0x11, body);
    const std::size_t size = h.size();
    h.push_back('X');  // the client's first byte: not the header's
    auto p = of(h);
    ASSERT_EQ(p.what, parsed::kind::complete) << p.error;
    EXPECT_EQ(p.length, size);
    EXPECT_EQ(p.value.version, 2);
    EXPECT_EQ(p.value.source.bytes[3], 7);
    EXPECT_EQ(p.value.source.port, 0xDC04);
    EXPECT_EQ(p.value.destination.port, 995);
}

TEST(proxy_header, v2_ipv6_local_unspec_unix) {
    std::vector<std::uint8_t> body(36, 0);
    body[0] = 0x20;
    body[1] = 0x01;
    body[15] = 9;
    body[32] = 0x01;
    body[33] = 0x00;
    auto p = of(v2(0x21, 0x21, body));
    ASSERT_EQ(p.what, parsed::kind::complete) << p.error;
    EXPECT_TRUE(p.value.source.v6);
    EXPECT_EQ(p.value.source.bytes[15], 9);
    EXPECT_EQ(p.value.source.port, 256);
    EXPECT_TRUE(of(v2(0x20, 0x00, {})).value.local);                          // LOCAL
    EXPECT_TRUE(of(v2(0x21, 0x00, {})).value.local);                          // PROXY, AF_UNSPEC
    EXPECT_TRUE(of(v2(0x21, 0x31, std::vector<std::uint8_t>(216, 0))).value.local);  // AF_UNIX
}

TEST(proxy_header, v2_malformed) {
    EXPECT_EQ(of(v2(0x11, 0x11, std::vector<std::uint8_t>(12, 0))).error, "v2 version is not 2");
    EXPECT_EQ(of(v2(0x22, 0x11, std::vector<std::uint8_t>(12, 0))).error, "v2 command is neither LOCAL nor PROXY");
    EXPECT_EQ(of(v2(0x21, 0x11, std::vector<std::uint8_t>(8, 0))).error, "v2 length too short for IPv4 addresses");
    EXPECT_EQ(of(v2(0x21, 0x21, std::vector<std::uint8_t>(12, 0))).error, "v2 length too short for IPv6 addresses");
    EXPECT_EQ(of(v2(0x21, 0x12, std::vector<std::uint8_t>(12, 0))).error, "v2 transport is not STREAM");
    EXPECT_EQ(of(v2(0x21, 0x41, std::vector<std::uint8_t>(12, 0))).error, "v2 address family or transport is unknown");
    auto huge = v2(0x21, 0x11, {});
    huge[14] = 0x10;  // claims 4096 bytes follow
    EXPECT_EQ(of(huge).error, "v2 header longer than 1024 bytes");
    auto bad_sig = v2(0x21, 0x11, std::vector<std::uint8_t>(12, 0));
    bad_sig[11] = 'X';
    EXPECT_EQ(of(bad_sig).what, parsed::kind::invalid);
}

TEST(proxy_header, every_prefix_of_a_header_needs_more) {
    std::vector<std::vector<std::uint8_t>> headers{bytes("PROXY TCP4 192.0.2.7 198.51.100.1 56324 995\r\n"),
                                                   v2(0x21, 0x11, {192, 0, 2, 7, 198, 51, 100, 1, 0, 1, 0, 2})};
    for (const auto& h : headers) {
        for (std::size_t n = 0; n < h.size(); ++n) {
            const std::vector<std::uint8_t> part(h.begin(), h.begin() + static_cast<std::ptrdiff_t>(n));
            EXPECT_EQ(of(part).what, parsed::kind::need_more) << n;
        }
        EXPECT_EQ(of(h).what, parsed::kind::complete);
    }
}

}  // namespace
}  // namespace poplar::proxy
