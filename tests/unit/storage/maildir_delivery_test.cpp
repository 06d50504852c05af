// Tests Maildir delivery (storage/maildir/maildir_delivery.h) on real temp directories: names and
// sizes, durability steps, quota, failure paths, crash points, and that an open session's
// snapshot is not disturbed.
#include "storage/maildir/maildir_delivery.h"

#include <sys/stat.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>
#include <thread>

#include "core/message_encoder.h"
#include "storage/maildir/maildir_name.h"
#include "storage/maildir/maildir_store.h"

namespace poplar::storage::maildir {
namespace {

namespace fs = std::filesystem;

class MaildirDeliveryTest : public testing::Test {
protected:
    void SetUp() override {
        std::string tmpl = testing::TempDir() + "poplar-delivery-XXXXXX";
        ASSERT_NE(::mkdtemp(tmpl.data()), nullptr);
        base_ = tmpl;
    }
    void TearDown() override {
        std::error_code ec;
        fs::remove_all(base_, ec);
    }

    std::vector<std::string> files(const std::string& sub, const std::string& user = "alice") const {
        std::vector<std::string> out;
        std::error_code ec;
        for (const auto& e : fs::directory_iterator(base_ + "/" + user + "/" + sub, ec)) {
            out.push_back(e.path().filename().string());
        }
        std::sort(out.begin(), out.end());
        return out;
    }
    static std::string slurp(const std::string& path) {
        std::ifstream in(path, std::ios::binary);
        std::stringstream ss;
        ss << in.rdbuf();
        return ss.str();
    }
    result<delivery_receipt, delivery_error> put(maildir_delivery& d, std::string_view message,
                                                 const std::string& user = "alice", quota q = {}) {
        return d.deliver(delivery_request{user, message, core::virtual_size(message), q});
    }

    std::string base_;
};

TEST_F(MaildirDeliveryTest, AMessageLandsInNewWithItsSizesInTheName) {
    maildir_delivery d(base_ + "/%u", delivery_options{"mx.example:org/x", {}});
    const std::string msg = "Subject: hi\n\nline one\nline two\n";
    auto r = put(d, msg);
    ASSERT_TRUE(r) << r.error().detail;
    ASSERT_EQ(files("new"), std::vector<std::string>{r->id});
    EXPECT_TRUE(files("tmp").empty());
    EXPECT_TRUE(files("cur").empty());
    EXPECT_EQ(slurp(base_ + "/alice/new/" + r->id), msg);
    const maildir_name name = parse_maildir_name(r->id);
    EXPECT_EQ(name.physical_size, msg.size());
    EXPECT_EQ(name.crlf_size, msg.size() + 4);  // four LF line ends
    // The host part is escaped as the Maildir spec says: no '/' or ':' in a file name.
    EXPECT_NE(r->id.find(".mx.example\\072org\\057x,S="), std::string::npos) << r->id;
    // Created private, like the store's own Maildirs.
    struct stat st {};
    ASSERT_EQ(::stat((base_ + "/alice/new/" + r->id).c_str(), &st), 0);
    EXPECT_EQ(st.st_mode & 0777, 0600u);
    ASSERT_EQ(::stat((base_ + "/alice").c_str(), &st), 0);
    EXPECT_EQ(st.st_mode & 0777, 0700u);
}

TEST_F(MaildirDeliveryTest, NamesAreUniqueUnderConcurrentDelivery) {
    maildir_delivery d(base_ + "/%u");
    std::vector<std::thread> threads;
    for (int t = 0; t < 4; ++t) {
        threads.emplace_back([&] {
            for (int i = 0; i < 50; ++i) {
                ASSERT_TRUE(put(d, "x\n"));
            }
        });
    }
    for (auto& t : threads) {
        t.join();
    }
    const std::vector<std::string> names = files("new");
    EXPECT_EQ(names.size(), 200u);
    EXPECT_EQ(std::set<std::string>(names.begin(), names.end()).size(), 200u);
}

TEST_F(MaildirDeliveryTest, TheNextSessionSeesTheMessageAndAnOpenOneKeepsItsSnapshot) {
    maildir_delivery d(base_ + "/%u");
    maildir_store store(base_ + "/%u");
    ASSERT_TRUE(put(d, "first\n"));
    auto open = store.open("alice", lock_mode::snapshot);
    ASSERT_TRUE(open);
    ASSERT_EQ((*open)->messages().size(), 1u);
    const std::string first_uidl = (*open)->messages()[0].uidl;
    ASSERT_TRUE(put(d, "second\n"));
    EXPECT_EQ((*open)->messages().size(), 1u);  // the open session's view
    auto m = (*open)->open_message(0);
    ASSERT_TRUE(m);
    auto next = store.open("alice", lock_mode::snapshot);
    ASSERT_TRUE(next);
    ASSERT_EQ((*next)->messages().size(), 2u);
    EXPECT_EQ((*next)->messages()[0].uidl, first_uidl);
    EXPECT_EQ((*next)->messages()[1].virtual_size, 8u);
}

TEST_F(MaildirDeliveryTest, QuotaCountsMessagesAndOctetsFromTheNames) {
    maildir_delivery d(base_ + "/%u");
    const quota q{100, 3};
    ASSERT_TRUE(put(d, std::string(40, 'a'), "alice", q));
    ASSERT_TRUE(put(d, std::string(40, 'b'), "alice", q));
    auto u = d.current_usage("alice");
    ASSERT_TRUE(u);
    EXPECT_EQ(u->messages, 2u);
    EXPECT_EQ(u->bytes, 80u);
    auto over = put(d, std::string(21, 'c'), "alice", q);  // 101 octets
    ASSERT_FALSE(over);
    EXPECT_EQ(over.error().code, delivery_errc::over_quota);
    EXPECT_EQ(files("new").size(), 2u);
    EXPECT_TRUE(files("tmp").empty());
    ASSERT_TRUE(put(d, std::string(20, 'c'), "alice", q));  // exactly 100
    auto count = put(d, "", "alice", quota{0, 3});          // the fourth message
    ASSERT_FALSE(count);
    EXPECT_EQ(count.error().code, delivery_errc::over_quota);
    // Another agent's file without ,S= is sized by stat(); a moved one in cur/ counts too.
    fs::rename(base_ + "/alice/new/" + files("new")[0], base_ + "/alice/cur/" + files("new")[0] + ":2,S");
    std::ofstream(base_ + "/alice/new/1700000000.M1P1.other") << std::string(7, 'x');
    u = d.current_usage("alice");
    ASSERT_TRUE(u);
    EXPECT_EQ(u->messages, 4u);
    EXPECT_EQ(u->bytes, 107u);
    // A user with no Maildir yet has used nothing.
    auto none = d.current_usage("bob");
    ASSERT_TRUE(none);
    EXPECT_EQ(none->messages, 0u);
    EXPECT_EQ(none->bytes, 0u);
}

// The quota lock: deliveries racing for the last free place cannot both take it (seen failing
// with Postfix's concurrent pipe deliveries before the lock, test_postfix_delivery.py).
TEST_F(MaildirDeliveryTest, ConcurrentDeliveriesCannotTogetherPassTheQuota) {
    for (int round = 0; round < 10; ++round) {
        const std::string user = "racer" + std::to_string(round);
        maildir_delivery d(base_ + "/%u");
        std::atomic<int> stored{0};
        std::atomic<int> refused{0};
        std::vector<std::thread> threads;
        for (int t = 0; t < 8; ++t) {
            threads.emplace_back([&, t] {
                // Separate instances, as separate processes would be: only the flock is shared.
                maildir_delivery mine(base_ + "/%u");
                auto r = put(t % 2 ? mine : d, "racing\n", user, quota{0, 3});
                (r ? stored : refused)++;
                if (!r) {
                    EXPECT_EQ(r.error().code, delivery_errc::over_quota);
                }
            });
        }
        for (auto& t : threads) {
            t.join();
        }
        EXPECT_EQ(stored.load(), 3);
        EXPECT_EQ(refused.load(), 5);
        EXPECT_EQ(files("new", user).size(), 3u);
    }
}

TEST_F(MaildirDeliveryTest, AMessageLargerThanTheWholeQuotaNeverFits) {
    EXPECT_FALSE(fits(quota{10, 0}, usage{}, 11));
    EXPECT_TRUE(fits(quota{10, 0}, usage{}, 10));
    EXPECT_TRUE(fits(quota{0, 0}, usage{~0ull, ~0ull - 1}, ~0ull));
    EXPECT_FALSE(fits(quota{10, 0}, usage{5, 0}, ~0ull));  // no overflow
}

TEST_F(MaildirDeliveryTest, AnImpossibleUserIsAPermanentFailureAndNothingIsCreated) {
    maildir_delivery d(base_ + "/%u");
    auto r = put(d, "x\n", "../etc");
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error().code, delivery_errc::permanent);
    EXPECT_TRUE(fs::is_empty(base_));
}

// tmp/ replaced by a file (ENOTDIR, as a broken Maildir or a wrong template gives): a failure
// that will not pass by itself, and nothing is left anywhere. (Root ignores permission bits, so
// a file in the way is the failure every user, root included, gets.)
TEST_F(MaildirDeliveryTest, AnUnwritableMaildirIsAFailureAndLeavesNothingBehind) {
    maildir_delivery d(base_ + "/%u");
    ASSERT_TRUE(put(d, "first\n"));
    fs::remove(base_ + "/alice/tmp");
    std::ofstream(base_ + "/alice/tmp") << "not a directory";
    auto r = put(d, "second\n");
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error().code, delivery_errc::permanent);
    EXPECT_NE(r.error().detail.find("cannot create"), std::string::npos) << r.error().detail;
    EXPECT_EQ(files("new").size(), 1u);
}

// The crash points: a delivery stopped after its file is written (before the rename) leaves
// nothing in new/; one stopped after the rename has the whole message there. The hook stands in
// for the kill (the integration tests kill -9 the real process, test_delivery.py).
TEST_F(MaildirDeliveryTest, StoppedBeforeTheRenameNothingIsVisibleAfterItAllOfIt) {
    struct stop {};
    std::string stop_at;
    maildir_delivery d(base_ + "/%u", delivery_options{"", [&](std::string_view stage) {
                                                           if (stage == stop_at) {
                                                               throw stop{};
                                                           }
                                                       }});
    const std::string msg(100'000, 'm');
    stop_at = "written";
    EXPECT_THROW(put(d, msg), stop);
    EXPECT_TRUE(files("new").empty());
    ASSERT_EQ(files("tmp").size(), 1u);  // invisible to every reader (maildir_scan.h)
    EXPECT_EQ(slurp(base_ + "/alice/tmp/" + files("tmp")[0]), msg);
    maildir_store store(base_ + "/%u");
    auto open = store.open("alice", lock_mode::snapshot);
    ASSERT_TRUE(open);
    EXPECT_EQ((*open)->messages().size(), 0u);

    stop_at = "renamed";
    EXPECT_THROW(put(d, msg), stop);
    ASSERT_EQ(files("new").size(), 1u);
    EXPECT_EQ(slurp(base_ + "/alice/new/" + files("new")[0]), msg);
}

}  // namespace
}  // namespace poplar::storage::maildir
