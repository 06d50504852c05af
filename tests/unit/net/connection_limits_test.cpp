// connection_limits: each limit, that refusals count nothing, and that release undoes exactly
// what admit and login counted; address_key's IPv4, IPv4-mapped and IPv6 /64 grouping.
#include "net/connection_limits.h"

#include <gtest/gtest.h>

namespace poplar::net {
namespace {

address_key key(const char* text) { return address_key::of(asio::ip::make_address(text)); }

using v = connection_limits::verdict;

TEST(address_key, ipv6_groups_by_slash_64_and_mapped_ipv4_is_ipv4) {
    EXPECT_EQ(key("2001:db8:1:2::1"), key("2001:db8:1:2:ffff:ffff:ffff:ffff"));
    EXPECT_NE(key("2001:db8:1:2::1"), key("2001:db8:1:3::1"));
    EXPECT_EQ(key("::ffff:192.0.2.7"), key("192.0.2.7"));
    EXPECT_NE(key("192.0.2.7"), key("192.0.2.8"));
    // An IPv4 address and the IPv6 /64 starting with the same bytes are different keys.
    EXPECT_NE(key("192.0.2.7"), key("c000:207::"));
    EXPECT_EQ(address_key_hash{}(key("2001:db8::1")), address_key_hash{}(key("2001:db8::2")));
}

TEST(connection_limits, per_address_limit_and_release) {
    connection_limits l;
    const connection_limits::settings s{100, 100, 2, 10};
    EXPECT_EQ(l.admit(key("192.0.2.1"), s), v::ok);
    EXPECT_EQ(l.admit(key("192.0.2.1"), s), v::ok);
    EXPECT_EQ(l.admit(key("192.0.2.1"), s), v::per_address);
    EXPECT_EQ(l.admit(key("192.0.2.2"), s), v::ok);
    EXPECT_EQ(l.total(), 3u);
    l.release(key("192.0.2.1"), false, "");
    EXPECT_EQ(l.admit(key("192.0.2.1"), s), v::ok);
    EXPECT_EQ(l.total(), 3u);
}

TEST(connection_limits, total_and_unauthenticated) {
    connection_limits l;
    EXPECT_EQ(l.admit(key("192.0.2.1"), {2, 1, 10, 10}), v::ok);
    EXPECT_EQ(l.admit(key("192.0.2.2"), {2, 1, 10, 10}), v::unauthenticated);
    EXPECT_TRUE(l.login("alice", 10));
    EXPECT_EQ(l.unauthenticated(), 0u);
    EXPECT_EQ(l.admit(key("192.0.2.2"), {2, 1, 10, 10}), v::ok);
    EXPECT_EQ(l.admit(key("192.0.2.3"), {2, 5, 10, 10}), v::total);
    l.release(key("192.0.2.1"), true, "alice");
    EXPECT_EQ(l.total(), 1u);
    EXPECT_EQ(l.unauthenticated(), 1u);
}

TEST(connection_limits, per_user_and_logout) {
    connection_limits l;
    const connection_limits::settings s{100, 100, 100, 2};
    for (int i = 0; i < 3; ++i) {
        ASSERT_EQ(l.admit(key("192.0.2.1"), s), v::ok);
    }
    EXPECT_TRUE(l.login("alice", 2));
    EXPECT_TRUE(l.login("alice", 2));
    EXPECT_FALSE(l.login("alice", 2));
    EXPECT_EQ(l.unauthenticated(), 1u);  // the refused one still waits to log in
    EXPECT_TRUE(l.login("bob", 2));
    l.logout("alice");  // its maildrop failed to open: unauthenticated again
    EXPECT_EQ(l.unauthenticated(), 1u);
    EXPECT_TRUE(l.login("alice", 2));
}

}  // namespace
}  // namespace poplar::net
