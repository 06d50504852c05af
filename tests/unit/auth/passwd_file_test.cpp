// Tests for auth/passwd_file: Dovecot line format, error reports, reload on change, timing dummy.
#include "auth/passwd_file.h"

#include <gtest/gtest.h>
#include <sys/stat.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <thread>
#include <vector>

#include "auth/password_hash.h"

namespace poplar::auth {
namespace {

namespace fs = std::filesystem;

// A fresh directory per test, removed afterwards: tests never share files.
class PasswdFile : public ::testing::Test {
protected:
    void SetUp() override {
        std::string tmpl = (fs::path(::testing::TempDir()) / "poplar-auth-XXXXXX").string();
        ASSERT_NE(::mkdtemp(tmpl.data()), nullptr);
        dir_ = tmpl;
        path_ = dir_ / "passwd";
    }
    void TearDown() override {
        std::error_code ec;
        fs::remove_all(dir_, ec);
    }
    void write(std::string_view content) {
        // Write then rename, as editors and `poplar pw` scripts should: readers see old or new.
        const fs::path tmp = dir_ / "passwd.tmp";
        {
            std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
            out << content;
        }
        ::chmod(tmp.c_str(), 0600);
        fs::rename(tmp, path_);
    }
    // Every problem load() reports, one per line.
    std::string load_error(std::string_view content) {
        write(content);
        auto db = passwd_file::load(path_);
        if (db.has_value()) {
            return "(loaded)";
        }
        std::string out;
        for (const std::string& p : db.error()) {
            out += (out.empty() ? "" : "\n") + p;
        }
        return out;
    }
    std::string where(int line) const { return path_.string() + ":" + std::to_string(line) + ": "; }

    fs::path dir_;
    fs::path path_;
};

constexpr std::string_view sha512_pw =
    "{SHA512-CRYPT}$6$pOpLaRsAlT$mKt4e5gYlRK7WhojpVnS3nIu2qF1P3vq7XiNXnQ6CiK05DTMwTZC0yzvirYZMZC6ypX1fQgff6tTfZvRPKr8X/";

TEST_F(PasswdFile, CommentsBlankLinesAndExtraFields) {
    write("# poplar users\n"
          "\n"
          "   \n"
          "  # indented comment\n"
          "alice:" + std::string(sha512_pw) + ":1000:1000:Alice:/home/alice:/bin/sh:userdb_quota_rule=*:storage=1G\n"
          "bob:{PLAIN}tanstaaf\r\n"
          "carol:$1$pOpLaRsA$7u/dVns0TJAn/TxWDTWKs0::::::\n"
          "dave:{CLEAR}x");  // no final newline
    auto db = passwd_file::load(path_);
    ASSERT_TRUE(db.has_value()) << db.error().front();
    EXPECT_EQ(db->user_count(), 4u);

    auto alice = db->lookup("alice");
    ASSERT_TRUE(alice.has_value());
    ASSERT_TRUE(alice->has_value());
    EXPECT_EQ((*alice)->user, "alice");
    EXPECT_EQ((*alice)->password.view(), sha512_pw);
    EXPECT_TRUE(verify_password((*alice)->password.view(), "correct horse"));

    auto bob = db->lookup("bob");
    ASSERT_TRUE(bob.has_value() && bob->has_value());
    EXPECT_EQ((*bob)->password.view(), "{PLAIN}tanstaaf");  // CR of a CRLF line stripped

    auto carol = db->lookup("carol");  // no prefix: CRYPT
    ASSERT_TRUE(carol.has_value() && carol->has_value());
    EXPECT_EQ(check_password((*carol)->password.view(), "correct horse"), verify_status::match);

    auto dave = db->lookup("dave");
    ASSERT_TRUE(dave.has_value() && dave->has_value());
    EXPECT_EQ((*dave)->password.view(), "{CLEAR}x");
}

TEST_F(PasswdFile, UserNamesAreCaseSensitive) {
    write("Alice:{PLAIN}a\n");
    auto db = passwd_file::load(path_);
    ASSERT_TRUE(db.has_value());
    auto hit = db->lookup("Alice");
    ASSERT_TRUE(hit.has_value());
    EXPECT_TRUE(hit->has_value());
    auto miss = db->lookup("alice");
    ASSERT_TRUE(miss.has_value());
    EXPECT_FALSE(miss->has_value());
    auto empty = db->lookup("");
    ASSERT_TRUE(empty.has_value());
    EXPECT_FALSE(empty->has_value());
}

TEST_F(PasswdFile, MalformedLinesAreReportedWithLineNumbers) {
    EXPECT_EQ(load_error("# ok\nalice:{PLAIN}a\njustaname\n"),
              where(3) + "expected user:password[:uid:gid:gecos:home:shell:extra_fields]");
    EXPECT_EQ(load_error(":{PLAIN}a\n"), where(1) + "empty user name");
    EXPECT_EQ(load_error("\n\nbob:{SSHA256}abc\n"), where(3) + "unsupported password scheme {SSHA256} for 'bob'");
    EXPECT_EQ(load_error("bob:{PLAIN\n"), where(1) + "password of 'bob' starts with '{' but has no '}'");
    EXPECT_EQ(load_error(std::string("bob:{PLAIN}a\0b\n", 15)), where(1) + "contains a NUL byte");
}

TEST_F(PasswdFile, DuplicateUser) {
    EXPECT_EQ(load_error("alice:{PLAIN}a\nbob:{PLAIN}b\n# x\nalice:{PLAIN}c\n"),
              where(4) + "duplicate user 'alice' (first on line 1)");
}

TEST_F(PasswdFile, EveryBadLineIsReported) {
    EXPECT_EQ(load_error("alice:{PLAIN}a\n"
                         "bob:{SSHA}x\n"
                         "# fine\n"
                         "justaname\n"
                         ":{PLAIN}c\n"
                         "alice:{PLAIN}again\n"
                         "carol:{CRYPT\n"
                         "dave:{PLAIN}d\n"),
              where(2) + "unsupported password scheme {SSHA} for 'bob'\n" +
                  where(4) + "expected user:password[:uid:gid:gecos:home:shell:extra_fields]\n" +
                  where(5) + "empty user name\n" +
                  where(6) + "duplicate user 'alice' (first on line 1)\n" +
                  where(7) + "password of 'carol' starts with '{' but has no '}'");
}

TEST_F(PasswdFile, BadLinesBeyondTheLimitAreCounted) {
    std::string content;
    const std::size_t n = passwd_file::max_reported_problems + 7;
    for (std::size_t i = 0; i < n; ++i) {
        content += "user" + std::to_string(i) + ":{SSHA}x\n";
    }
    write(content);
    auto db = passwd_file::load(path_);
    ASSERT_FALSE(db.has_value());
    ASSERT_EQ(db.error().size(), passwd_file::max_reported_problems + 1);
    EXPECT_EQ(db.error().front(), where(1) + "unsupported password scheme {SSHA} for 'user0'");
    EXPECT_EQ(db.error().back(), path_.string() + ": 7 more bad lines not listed");
}

TEST_F(PasswdFile, WarningsAboutTheFile) {
    write("alice:" + std::string(sha512_pw) + "\n");
    auto clean = passwd_file::load(path_);
    ASSERT_TRUE(clean.has_value()) << clean.error().front();
    EXPECT_TRUE(clean->warnings().empty());

    write("demo:{PLAIN}a\nalice:" + std::string(sha512_pw) + "\nlocked:\nbob:{clear}b\ncarol:{PLAIN}c\ndave:{CLEAR}d\n");
    ::chmod(path_.c_str(), 0644);
    auto db = passwd_file::load(path_);
    ASSERT_TRUE(db.has_value()) << db.error().front();
    const std::vector<std::string> expected{
        path_.string() + ": readable or writable by every local user; chmod o= it",
        where(3) + "user 'locked' has no password; logins are refused",
        path_.string() + ": 4 users have a {PLAIN}/{CLEAR} password, stored readably: 'demo' (line 1), 'bob' (line 4), "
                         "'carol' (line 5) and 1 more; replace them with a hash (poplar pw) unless APOP needs them",
    };
    EXPECT_EQ(db->warnings(), expected);

    // A later version brings its own warnings.
    write("solo:{PLAIN}s\n");
    ASSERT_TRUE(db->lookup("solo").has_value());
    EXPECT_EQ(db->warnings(), std::vector<std::string>{path_.string() + ": 1 user has a {PLAIN}/{CLEAR} password, "
                                                                        "stored readably: 'solo' (line 1); replace "
                                                                        "it with a hash (poplar pw) unless APOP "
                                                                        "needs it"});
}

TEST_F(PasswdFile, ABrokenReloadReportsTheFirstProblemAndHowManyMore) {
    write("alice:{PLAIN}one\n");
    auto db = passwd_file::load(path_);
    ASSERT_TRUE(db.has_value());
    write("alice:{PLAIN}one\nx:{NOPE}a\ny:{NOPE}b\n");
    auto r = db->lookup("alice");
    ASSERT_FALSE(r.has_value());
    EXPECT_EQ(r.error().message,
              where(2) + "unsupported password scheme {NOPE} for 'x' (and 1 more problem; poplar check lists them)");
}

TEST_F(PasswdFile, HostileUserNamesAreEscapedInErrors) {
    EXPECT_EQ(load_error("ev\x1bil:{NOPE}x\n"), where(1) + "unsupported password scheme {NOPE} for 'ev\\x1Bil'");
}

TEST_F(PasswdFile, MissingFile) {
    auto db = passwd_file::load(dir_ / "nope");
    ASSERT_FALSE(db.has_value());
    EXPECT_EQ(db.error(),
              std::vector<std::string>{(dir_ / "nope").string() + ": cannot open: No such file or directory"});
}

TEST_F(PasswdFile, DirectoryIsNotAPasswdFile) {
    auto db = passwd_file::load(dir_);
    ASSERT_FALSE(db.has_value());
    EXPECT_EQ(db.error(), std::vector<std::string>{dir_.string() + ": not a regular file"});
}

TEST_F(PasswdFile, EmptyPasswordLoadsButCannotMatch) {
    write("locked:\n");
    auto db = passwd_file::load(path_);
    ASSERT_TRUE(db.has_value()) << db.error().front();
    auto locked = db->lookup("locked");
    ASSERT_TRUE(locked.has_value() && locked->has_value());
    EXPECT_NE(check_password((*locked)->password.view(), ""), verify_status::match);
}

TEST_F(PasswdFile, TimingDummyFollowsTheMostCommonCost) {
    // Two bcrypt cost-5 users outnumber one SHA512-CRYPT user, even though SHA512 comes first.
    write("a:" + std::string(sha512_pw) + "\n"
          "b:{BLF-CRYPT}$2y$05$CCCCCCCCCCCCCCCCCCCCC.E5YPO9kmyuRGyh0XouQYb4YMJKvyOeW\n"
          "c:{PLAIN}x\n"
          "d:{BLF-CRYPT}$2b$05$CCCCCCCCCCCCCCCCCCCCC.VGOzA784oUp/Z0DY336zx7pLYAy0lwK\n"
          "e:$2y$05$XXXXXXXXXXXXXXXXXXXXXOAcXxm9kjPGEMsLznoKqmqw7tc8WCx4a\n");
    auto db = passwd_file::load(path_);
    ASSERT_TRUE(db.has_value()) << db.error().front();
    const std::string dummy = db->timing_dummy();
    EXPECT_EQ(cost_family(dummy), "$2y$05$") << dummy;
    EXPECT_EQ(check_password(dummy, "x"), verify_status::mismatch);
}

TEST_F(PasswdFile, TimingDummyForAnEmptyFileIsDefaultShaCrypt) {
    write("# nobody yet\n");
    auto db = passwd_file::load(path_);
    ASSERT_TRUE(db.has_value()) << db.error().front();
    EXPECT_EQ(db->user_count(), 0u);
    EXPECT_EQ(cost_family(db->timing_dummy()), "$6$");
}

TEST_F(PasswdFile, ReloadsWhenTheFileChanges) {
    write("alice:{PLAIN}one\n");
    auto db = passwd_file::load(path_);
    ASSERT_TRUE(db.has_value());
    write("alice:{PLAIN}two\nbob:{PLAIN}three\n");
    auto alice = db->lookup("alice");
    ASSERT_TRUE(alice.has_value() && alice->has_value());
    EXPECT_EQ((*alice)->password.view(), "{PLAIN}two");
    EXPECT_EQ(db->user_count(), 2u);
}

TEST_F(PasswdFile, CachedLookupAnswersOnlyFromAnUnchangedFile) {
    write("alice:{PLAIN}one\n");
    auto db = passwd_file::load(path_);
    ASSERT_TRUE(db.has_value());
    auto alice = db->try_lookup_cached("alice");
    ASSERT_TRUE(alice.has_value() && alice->has_value());
    EXPECT_EQ((*alice)->password.view(), "{PLAIN}one");
    auto nobody = db->try_lookup_cached("nobody");
    ASSERT_TRUE(nobody.has_value());
    EXPECT_FALSE(nobody->has_value());  // known not to exist, as lookup() would say

    // Changed: re-reading the file is blocking work, left to lookup() on the worker pool.
    write("alice:{PLAIN}two\n");
    EXPECT_FALSE(db->try_lookup_cached("alice").has_value());
    ASSERT_TRUE(db->lookup("alice").has_value());  // reloads
    alice = db->try_lookup_cached("alice");
    ASSERT_TRUE(alice.has_value() && alice->has_value());
    EXPECT_EQ((*alice)->password.view(), "{PLAIN}two");

    // Gone: the error is lookup()'s to report.
    fs::remove(path_);
    EXPECT_FALSE(db->try_lookup_cached("alice").has_value());
}

TEST_F(PasswdFile, BrokenOrMissingFileAfterLoadIsATemporaryError) {
    write("alice:{PLAIN}one\n");
    auto db = passwd_file::load(path_);
    ASSERT_TRUE(db.has_value());

    write("alice:{PLAIN}one\nalice:{PLAIN}two\n");
    auto dup = db->lookup("alice");
    ASSERT_FALSE(dup.has_value());
    EXPECT_EQ(dup.error().message, where(2) + "duplicate user 'alice' (first on line 1)");
    auto again = db->lookup("alice");  // the same broken version: same answer, not re-parsed
    ASSERT_FALSE(again.has_value());

    write("alice:{PLAIN}fixed\n");
    auto fixed = db->lookup("alice");
    ASSERT_TRUE(fixed.has_value() && fixed->has_value());
    EXPECT_EQ((*fixed)->password.view(), "{PLAIN}fixed");

    fs::remove(path_);
    auto gone = db->lookup("alice");
    ASSERT_FALSE(gone.has_value());
    EXPECT_NE(gone.error().message.find("No such file"), std::string::npos) << gone.error().message;
}

TEST_F(PasswdFile, ConcurrentLookupsDuringReloads) {
    write("alice:{PLAIN}a\nbob:{PLAIN}b\n");
    auto db = passwd_file::load(path_);
    ASSERT_TRUE(db.has_value());
    std::atomic<bool> stop{false};
    std::atomic<int> errors{0};
    std::vector<std::thread> readers;
    for (int t = 0; t < 4; ++t) {
        readers.emplace_back([&] {
            while (!stop.load()) {
                auto r = db->lookup("alice");
                // Every version of the file has alice, and renames are atomic.
                if (!r.has_value() || !r->has_value() || !verify_password((*r)->password.view(), "a")) {
                    ++errors;
                }
                static_cast<void>(db->timing_dummy());
            }
        });
    }
    for (int i = 0; i < 20; ++i) {
        write("alice:{PLAIN}a\nbob:{PLAIN}b" + std::to_string(i) + "\n");
        std::this_thread::sleep_for(std::chrono::milliseconds(2));
    }
    stop = true;
    for (auto& r : readers) {
        r.join();
    }
    EXPECT_EQ(errors.load(), 0);
}

TEST_F(PasswdFile, MoveKeepsWorking) {
    write("alice:{PLAIN}a\n");
    auto db = passwd_file::load(path_);
    ASSERT_TRUE(db.has_value());
    passwd_file moved = std::move(*db);
    EXPECT_EQ(moved.path(), path_);
    auto r = moved.lookup("alice");
    ASSERT_TRUE(r.has_value() && r->has_value());
}

}  // namespace
}  // namespace poplar::auth
