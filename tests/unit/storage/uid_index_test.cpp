// Tests the uid index format: UIDL strings, parsing, salvage of damaged files, round trips.
#include "storage/maildir/uid_index.h"

#include <gtest/gtest.h>

#include <string>

namespace poplar::storage::maildir {
namespace {

TEST(UidIndex, UidlIsSixteenPrintableHexDigits) {
    EXPECT_EQ(format_uidl(0x12345678, 1), "1234567800000001");
    EXPECT_EQ(format_uidl(0xFFFFFFFF, 0xABCDEF01), "ffffffffabcdef01");
    const std::string u = format_uidl(1700000000, 42);
    ASSERT_EQ(u.size(), 16u);
    for (const char c : u) {
        EXPECT_GE(c, 0x21);  // RFC 1939 §7
        EXPECT_LE(c, 0x7E);
    }
}

TEST(UidIndex, RoundTripsThroughWriter) {
    uid_index_writer w{1700000000, 8, directory_stamps{1700000000123456789, 1700000001000000000}, 2};
    w.append(3, 120, subdir::new_dir, "1700000001.M1P1.host");
    w.append(7, 0, subdir::cur_dir, "1700000002.M1P1.host with spaces:2,RS");
    EXPECT_EQ(w.text(), "poplar-uidlist 1 1700000000 8 1700000000123456789 1700000001000000000\n"
                        "3 120 n 1700000001.M1P1.host\n"
                        "7 0 c 1700000002.M1P1.host with spaces:2,RS\n");
    const uid_index idx = parse_uid_index(w.text());
    ASSERT_EQ(idx.state, uid_index_state::valid);
    EXPECT_EQ(idx.uidvalidity, 1700000000u);
    EXPECT_EQ(idx.next_uid, 8u);
    EXPECT_EQ(idx.stamps, (directory_stamps{1700000000123456789, 1700000001000000000}));
    ASSERT_EQ(idx.entries.size(), 2u);
    EXPECT_EQ(idx.entries[0].uid, 3u);
    EXPECT_EQ(idx.entries[0].virtual_size, 120u);
    EXPECT_EQ(idx.entries[0].file.dir, subdir::new_dir);
    EXPECT_EQ(idx.file_name(idx.entries[0]), "1700000001.M1P1.host");
    EXPECT_EQ(idx.entries[1].file.dir, subdir::cur_dir);
    EXPECT_EQ(idx.file_name(idx.entries[1]), "1700000002.M1P1.host with spaces:2,RS");
    EXPECT_EQ(idx.base(idx.entries[1]), "1700000002.M1P1.host with spaces");
}

TEST(UidIndex, SalvagesBadRecordsKeepingHeader) {
    const uid_index idx = parse_uid_index("poplar-uidlist 1 555 10 0 0\n"
                                          "1 10 n a\n"
                                          "garbage line\n"
                                          "3 x n b\n"
                                          "2 5 n\n"
                                          "2 5 x wrong-dir\n"
                                          "2 5 c .dotfile\n"
                                          "5 10 c c:2,S\n"
                                          "4 10 n out-of-order\n"
                                          "6 10 n torn-without-newline");
    EXPECT_EQ(idx.state, uid_index_state::salvaged);
    EXPECT_EQ(idx.uidvalidity, 555u);
    EXPECT_EQ(idx.next_uid, 10u);
    ASSERT_EQ(idx.entries.size(), 2u);
    EXPECT_EQ(idx.base(idx.entries[0]), "a");
    EXPECT_EQ(idx.base(idx.entries[1]), "c");
    EXPECT_FALSE(idx.problem.empty());
}

TEST(UidIndex, UnusableHeaderMeansNewUidvalidity) {
    for (const char* text : {
             "",
             "\n",
             "poplar-uidlist 1 555 10 0\n",
             "poplar-uidlist 1 555 0 0 0\n",
             "poplar-uidlist 2 555 10 0 0\n",
             "poplar-uidlistX 1 555 10 0 0\n",
             "poplar-uidlist 1 555 10 0 0 extra\n",
             "poplar-uidlist 1 555 10 0 0",  // torn header
             "poplar-uidlist 1 abc 10 0 0\n",
             "poplar-uidlist 1 99999999999 10 0 0\n",  // uidvalidity overflows 32 bits
         }) {
        EXPECT_EQ(parse_uid_index(text).state, uid_index_state::unusable) << text;
    }
}

TEST(UidIndex, RecordAboveNextUidDistrustsHeader) {
    // If next_uid were believed, uid 12 could be handed out a second time.
    const uid_index idx = parse_uid_index("poplar-uidlist 1 555 10 0 0\n1 1 n a\n12 1 n b\n");
    EXPECT_EQ(idx.state, uid_index_state::unusable);
    EXPECT_TRUE(idx.entries.empty());
}

TEST(UidIndex, CrLfInRecordIsDamage) {
    const uid_index idx = parse_uid_index("poplar-uidlist 1 555 10 0 0\n1 1 n a\r\n2 1 n b\n");
    EXPECT_EQ(idx.state, uid_index_state::salvaged);
    ASSERT_EQ(idx.entries.size(), 1u);
    EXPECT_EQ(idx.base(idx.entries[0]), "b");
}

}  // namespace
}  // namespace poplar::storage::maildir
