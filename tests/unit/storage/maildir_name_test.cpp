// Tests Maildir file-name parsing: base names across the Postfix, Courier and Dovecot layouts.
#include "storage/maildir/maildir_name.h"

#include <gtest/gtest.h>

namespace poplar::storage::maildir {
namespace {

TEST(MaildirName, BaseNameStopsAtInfo) {
    EXPECT_EQ(base_name("1700000000.V801I2M3.host"), "1700000000.V801I2M3.host");         // Postfix, new/
    EXPECT_EQ(base_name("1700000000.V801I2M3.host:2,S"), "1700000000.V801I2M3.host");     // after a flag change
    EXPECT_EQ(base_name("1700000000.V801I2M3.host:2,"), "1700000000.V801I2M3.host");      // moved, no flags
    EXPECT_EQ(base_name("1700000000.M1P2.host,S=12,W=14:2,RS"), "1700000000.M1P2.host,S=12,W=14");  // Dovecot
    EXPECT_EQ(base_name("1700000000.M1P2.host:1,experimental"), "1700000000.M1P2.host");
}

TEST(MaildirName, ParsesSizeHints) {
    const maildir_name n = parse_maildir_name("1700000000.M1P2.host,S=1200,W=1230:2,S");
    EXPECT_EQ(n.base, "1700000000.M1P2.host,S=1200,W=1230");
    EXPECT_EQ(n.physical_size, 1200u);
    EXPECT_EQ(n.crlf_size, 1230u);

    const maildir_name courier = parse_maildir_name("1700000000.M1P2.host,S=99:2,");
    EXPECT_EQ(courier.physical_size, 99u);
    EXPECT_FALSE(courier.crlf_size);

    const maildir_name postfix = parse_maildir_name("1700000000.V801I2M3.host");
    EXPECT_FALSE(postfix.physical_size);
    EXPECT_FALSE(postfix.crlf_size);
}

TEST(MaildirName, IgnoresMalformedHints) {
    EXPECT_FALSE(parse_maildir_name("1.M.host,W=12x").crlf_size);
    EXPECT_FALSE(parse_maildir_name("1.M.host,W=").crlf_size);
    EXPECT_FALSE(parse_maildir_name("1.M.host,W=-1").crlf_size);
    EXPECT_FALSE(parse_maildir_name("1.M.host,W=99999999999999999999999").crlf_size);
    // Hints belong to the base name; flags that look like hints are not hints.
    EXPECT_FALSE(parse_maildir_name("1.M.host:2,W=12").crlf_size);
}

TEST(MaildirName, TrustsOnlyPlausibleVirtualSizes) {
    EXPECT_EQ(trusted_virtual_size(parse_maildir_name("1.M.h,W=10")), 10u);
    EXPECT_EQ(trusted_virtual_size(parse_maildir_name("1.M.h,S=10,W=10")), 10u);  // already CRLF
    EXPECT_EQ(trusted_virtual_size(parse_maildir_name("1.M.h,S=10,W=22")), 22u);  // all LFs, no final one
    EXPECT_FALSE(trusted_virtual_size(parse_maildir_name("1.M.h,S=10,W=9")));     // shrinks: impossible
    EXPECT_FALSE(trusted_virtual_size(parse_maildir_name("1.M.h,S=10,W=23")));    // grows too much
    EXPECT_FALSE(trusted_virtual_size(parse_maildir_name("1.M.h,S=10")));         // S= alone is not W=
}

TEST(MaildirName, RecognisesMessageFileNames) {
    EXPECT_TRUE(is_message_file_name("1700000000.V801I2M3.host"));
    EXPECT_TRUE(is_message_file_name("1700000000.V801I2M3.host:2,S"));
    EXPECT_FALSE(is_message_file_name(""));
    EXPECT_FALSE(is_message_file_name("."));
    EXPECT_FALSE(is_message_file_name(".."));
    EXPECT_FALSE(is_message_file_name(".nfs000123"));
    EXPECT_FALSE(is_message_file_name(":2,S"));
    EXPECT_FALSE(is_message_file_name("bad\nname"));
    EXPECT_FALSE(is_message_file_name("bad\rname"));
}

}  // namespace
}  // namespace poplar::storage::maildir
