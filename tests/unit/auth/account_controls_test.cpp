// The passwd-file's per-account controls: Dovecot's nologin/reason/allow_nets and poplar's
// require_tls parsed from the extra fields, other programs' fields ignored, bad values refused,
// and the decision for IPv4, IPv6 and IPv4-mapped clients.
#include "auth/account_controls.h"

#include <gtest/gtest.h>

namespace poplar::auth {
namespace {

client_facts from(std::string_view ip, bool tls = false) { return {util::mapped_address(ip), tls}; }

TEST(account_controls, unknown_fields_are_ignored) {
    auto c = parse_account_controls("userdb_mail=maildir:~/Maildir uid=1000 quota_rule=Trash:storage=1G");
    ASSERT_TRUE(c);
    EXPECT_FALSE(c->any());
    EXPECT_FALSE(refuse_login(*c, from("192.0.2.1")));
}

// Dovecot's quota rules (docs/delivery.md "Quota"): storage in kilobytes unless a suffix says
// otherwise, bytes= in bytes, messages= a count; later rules override earlier ones.
TEST(account_controls, quota_rules_in_dovecots_syntax) {
    auto c = parse_account_controls("userdb_quota_rule=*:storage=1G userdb_quota_rule2=*:messages=1000");
    ASSERT_TRUE(c) << c.error();
    EXPECT_TRUE(c->any());
    EXPECT_EQ(c->quota_bytes, 1ull << 30);
    EXPECT_EQ(c->quota_messages, 1000u);
    EXPECT_FALSE(refuse_login(*c, from("192.0.2.1")));

    auto k = parse_account_controls("quota_rule=INBOX:storage=2048:messages=5");
    ASSERT_TRUE(k) << k.error();
    EXPECT_EQ(k->quota_bytes, 2048u * 1024);
    EXPECT_EQ(k->quota_messages, 5u);

    auto b = parse_account_controls("quota_rule=*:bytes=4096b quota_rule3=*:storage=0");
    ASSERT_TRUE(b) << b.error();
    EXPECT_EQ(b->quota_bytes, 0u);  // the later rule: no limit

    auto m = parse_account_controls("quota_rule=*:bytes=10M");
    ASSERT_TRUE(m) << m.error();
    EXPECT_EQ(m->quota_bytes, 10u * 1024 * 1024);
}

TEST(account_controls, quota_rules_poplar_cannot_honour_are_errors) {
    EXPECT_EQ(parse_account_controls("quota_rule=*:storage=+10M").error(),
              "quota_rule: relative limits and \"ignore\" are not supported");
    EXPECT_EQ(parse_account_controls("quota_rule=*:storage=10%").error(),
              "quota_rule: relative limits and \"ignore\" are not supported");
    EXPECT_EQ(parse_account_controls("quota_rule=*:ignore").error(),
              "quota_rule: relative limits and \"ignore\" are not supported");
    EXPECT_EQ(parse_account_controls("quota_rule=*:storage=lots").error(), "quota_rule: bad number in \"storage=lots\"");
    EXPECT_EQ(parse_account_controls("quota_rule=*:messages=10k").error(), "quota_rule: bad number in \"messages=10k\"");
    EXPECT_EQ(parse_account_controls("quota_rule=*:size=10").error(),
              "quota_rule: unknown limit \"size\" (storage, bytes, messages)");
    EXPECT_EQ(parse_account_controls("quota_rule=storage").error(),
              "quota_rule: expected MAILBOX:storage=SIZE or MAILBOX:messages=N");
    EXPECT_EQ(parse_account_controls("quota_rule=*:storage=99999999999999999T").error(),
              "quota_rule: bad number in \"storage=99999999999999999T\"");
}

TEST(account_controls, nologin_with_and_without_reason) {
    auto bare = parse_account_controls("nologin");
    ASSERT_TRUE(bare);
    auto r = refuse_login(*bare, from("127.0.0.1", true));
    ASSERT_TRUE(r);
    EXPECT_EQ(r->log_reason, "account disabled (nologin)");
    EXPECT_EQ(r->client_message, "");
    auto why = parse_account_controls("nologin reason=moved_to_imap.example.com");
    ASSERT_TRUE(why);
    EXPECT_EQ(refuse_login(*why, from("127.0.0.1"))->client_message, "moved to imap.example.com");
    EXPECT_FALSE(parse_account_controls("nologin reason=bad\x01text"));
}

TEST(account_controls, allow_nets_ipv4_ipv6_and_mapped) {
    auto c = parse_account_controls("allow_nets=192.0.2.0/24,2001:db8::/32,198.51.100.7,local");
    ASSERT_TRUE(c) << c.error();
    EXPECT_FALSE(refuse_login(*c, from("192.0.2.200")));
    EXPECT_FALSE(refuse_login(*c, from("::ffff:192.0.2.9")));  // IPv4 client on an IPv6 socket
    EXPECT_FALSE(refuse_login(*c, from("2001:db8:ffff::1")));
    EXPECT_FALSE(refuse_login(*c, from("198.51.100.7")));
    EXPECT_EQ(refuse_login(*c, from("198.51.100.8"))->log_reason, "client address not in allow_nets");
    EXPECT_TRUE(refuse_login(*c, from("192.0.3.1")));
    EXPECT_TRUE(refuse_login(*c, from("2001:db9::1")));
    EXPECT_TRUE(refuse_login(*c, from("unknown")));
}

TEST(account_controls, allow_nets_edges) {
    auto all4 = parse_account_controls("allow_nets=0.0.0.0/0");
    ASSERT_TRUE(all4);
    EXPECT_FALSE(refuse_login(*all4, from("203.0.113.5")));
    EXPECT_TRUE(refuse_login(*all4, from("2001:db8::1")));  // /0 of IPv4 is every IPv4 address only
    auto host6 = parse_account_controls("allow_nets=::1/128");
    ASSERT_TRUE(host6);
    EXPECT_FALSE(refuse_login(*host6, from("::1")));
    EXPECT_TRUE(refuse_login(*host6, from("::2")));
    auto host4 = parse_account_controls("allow_nets=127.0.0.1/32");
    ASSERT_TRUE(host4);
    EXPECT_FALSE(refuse_login(*host4, from("127.0.0.1")));
    EXPECT_TRUE(refuse_login(*host4, from("127.0.0.2")));
}

TEST(account_controls, bad_networks_are_refused_with_the_reason) {
    EXPECT_EQ(parse_account_controls("allow_nets=192.0.2.0/33").error(),
              "allow_nets: \"192.0.2.0/33\": the prefix length must be 0-32");
    EXPECT_EQ(parse_account_controls("allow_nets=192.0.2.7/24").error(),
              "allow_nets: \"192.0.2.7/24\" has bits set beyond its prefix length");
    EXPECT_EQ(parse_account_controls("allow_nets=example.com").error(),
              "allow_nets: \"example.com\" is not an IP address or network");
    EXPECT_FALSE(parse_account_controls("allow_nets=10.0.0.0/8,"));  // empty item
    EXPECT_FALSE(parse_account_controls("allow_nets=2001:db8::/129"));
}

TEST(account_controls, require_tls) {
    auto c = parse_account_controls("require_tls");
    ASSERT_TRUE(c);
    EXPECT_EQ(refuse_login(*c, from("127.0.0.1", false))->log_reason, "TLS required for this account (require_tls)");
    EXPECT_FALSE(refuse_login(*c, from("127.0.0.1", true)));
    EXPECT_FALSE(parse_account_controls("require_tls=no")->any());
    EXPECT_FALSE(parse_account_controls("require_tls=maybe"));
}

}  // namespace
}  // namespace poplar::auth
