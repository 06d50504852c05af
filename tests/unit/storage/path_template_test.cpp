// Tests the Maildir path template: Dovecot-style variables and refusal of unsafe user names.
#include "storage/maildir/path_template.h"

#include <gtest/gtest.h>

#include <stdexcept>
#include <string>

namespace poplar::storage::maildir {
namespace {

using namespace std::string_literals;

TEST(PathTemplate, ExpandsUserLocalPartDomainAndPercent) {
    const path_template t{"/srv/mail/%d/%n/100%%/%u"};
    auto p = t.expand("alice@example.org");
    ASSERT_TRUE(p) << p.error().detail;
    EXPECT_EQ(*p, "/srv/mail/example.org/alice/100%/alice@example.org");
}

TEST(PathTemplate, DomainIsEmptyWithoutAt) {
    const path_template t{"/srv/mail/%n%d"};
    auto p = t.expand("bob");
    ASSERT_TRUE(p);
    EXPECT_EQ(*p, "/srv/mail/bob");
}

TEST(PathTemplate, DomainFollowsTheLastAt) {
    const path_template t{"/m/%d/%n"};
    auto p = t.expand("a@b@example.org");
    ASSERT_TRUE(p);
    EXPECT_EQ(*p, "/m/example.org/a@b");
}

TEST(PathTemplate, RefusesUnsafeUserNames) {
    const path_template t{"/srv/mail/%d/%n"};
    const std::string bad[] = {
        "",            "..",           "../root",       "a/../../etc", "a/b",        ".hidden",
        "a..b",        "x@..",         "x@../etc",      "x@.example",  "@example",   "user@",
        "evil\nline",  "nul\0byte"s,   "tab\tuser",     "del\x7f",     "/abs",       "x@a/b",
    };
    for (const std::string& user : bad) {
        auto p = t.expand(user);
        ASSERT_FALSE(p) << "accepted " << user;
        EXPECT_EQ(p.error().code, errc::permanent);
        EXPECT_FALSE(p.error().detail.empty());
        // The detail goes to the log: no raw control characters from the user name.
        EXPECT_EQ(p.error().detail.find('\n'), std::string::npos);
    }
}

TEST(PathTemplate, AcceptsOrdinaryNames) {
    const path_template t{"/srv/mail/%u"};
    for (const char* user : {"alice", "a.b@example.org", "x_y-z+tag@sub.example.org", "user.", "a.b.c"}) {
        EXPECT_TRUE(t.expand(user)) << user;
    }
}

TEST(PathTemplate, RejectsBadTemplatesAtStartup) {
    EXPECT_THROW(path_template{"relative/%u"}, std::invalid_argument);
    EXPECT_THROW(path_template{""}, std::invalid_argument);
    EXPECT_THROW(path_template{"/srv/%x/%u"}, std::invalid_argument);
    EXPECT_THROW(path_template{"/srv/%u%"}, std::invalid_argument);
    EXPECT_THROW(path_template{"/srv/shared"}, std::invalid_argument);  // no user variable
    EXPECT_THROW(path_template{"/srv/%d"}, std::invalid_argument);
    EXPECT_THROW(path_template{"/srv/../%u"}, std::invalid_argument);
    EXPECT_NO_THROW(path_template{"/srv/%n"});
}

}  // namespace
}  // namespace poplar::storage::maildir
