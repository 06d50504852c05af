// Tests the Maildir backend end to end on real temp directories: listing, sizes, uids, renames by
// other agents, removal, locking, index damage and crash safety.
#include "storage/maildir/maildir_store.h"

#include "storage/maildir/maildir_sync.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <atomic>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

namespace poplar::storage::maildir {
namespace {

namespace fs = std::filesystem;

class MaildirStoreTest : public testing::Test {
protected:
    void SetUp() override {
        std::string tmpl = testing::TempDir() + "poplar-maildir-XXXXXX";
        ASSERT_NE(::mkdtemp(tmpl.data()), nullptr);
        base_ = tmpl;
    }
    void TearDown() override {
        std::error_code ec;
        fs::remove_all(base_, ec);
    }

    std::unique_ptr<maildir_store> make_store(maildir_options options = {}) {
        if (!options.uidvalidity_source) {
            options.uidvalidity_source = [this] { return next_uidvalidity_++; };
        }
        return std::make_unique<maildir_store>(base_ + "/%u", std::move(options));
    }

    std::string maildir(const std::string& user = "alice") const { return base_ + "/" + user; }

    void deliver(const std::string& sub, const std::string& name, std::string_view content,
                 const std::string& user = "alice") {
        for (const char* d : {"cur", "new", "tmp"}) {
            fs::create_directories(maildir(user) + "/" + d);
        }
        std::ofstream out(maildir(user) + "/" + sub + "/" + name, std::ios::binary);
        out << content;
        ASSERT_TRUE(out.good());
    }

    static std::unique_ptr<maildrop> open_ok(maildir_store& store, const std::string& user = "alice",
                                             lock_mode mode = lock_mode::snapshot) {
        auto drop = store.open(user, mode);
        EXPECT_TRUE(drop) << (drop ? "" : drop.error().detail);
        return drop ? std::move(*drop) : nullptr;
    }

    static std::vector<std::string> uidls(const maildrop& drop) {
        std::vector<std::string> out;
        for (const message_info& m : drop.messages()) {
            out.push_back(m.uidl);
        }
        return out;
    }

    static std::vector<std::uint64_t> sizes(const maildrop& drop) {
        std::vector<std::uint64_t> out;
        for (const message_info& m : drop.messages()) {
            out.push_back(m.virtual_size);
        }
        return out;
    }

    static result<std::string, error> read_message(maildrop& drop, std::size_t index) {
        auto src = drop.open_message(index);
        if (!src) {
            return unexpected{src.error()};
        }
        std::string out;
        char buf[7];  // small on purpose: exercises chunked reads
        for (;;) {
            auto n = (*src)->read(buf);
            if (!n) {
                return unexpected{n.error()};
            }
            if (*n == 0) {
                return out;
            }
            out.append(buf, *n);
        }
    }

    static std::string slurp(const std::string& path) {
        std::ifstream in(path, std::ios::binary);
        std::stringstream ss;
        ss << in.rdbuf();
        return ss.str();
    }

    std::string index_text(const std::string& user = "alice") const { return slurp(maildir(user) + "/poplar-uidlist"); }

    // Backdates new/ and cur/ so their mtimes count as settled (maildir_sync.h, quiet period).
    void age_directories(const std::string& user = "alice") const {
        for (const char* d : {"/new", "/cur"}) {
            struct timespec times[2];
            ::clock_gettime(CLOCK_REALTIME, &times[0]);
            times[1] = times[0];
            times[1].tv_sec -= 60;
            ASSERT_EQ(::utimensat(AT_FDCWD, (maildir(user) + d).c_str(), times, 0), 0);
        }
    }

    static std::uint32_t uid_of(const std::string& uidl) { return static_cast<std::uint32_t>(std::stoul(uidl.substr(8), nullptr, 16)); }

    std::string base_;
    std::atomic<std::uint32_t> next_uidvalidity_{1000};
};

TEST_F(MaildirStoreTest, CreatesMissingMaildirPrivately) {
    auto store = make_store();
    auto drop = open_ok(*store, "new.user@example.org");
    ASSERT_TRUE(drop);
    EXPECT_TRUE(drop->messages().empty());
    for (const char* d : {"", "/cur", "/new", "/tmp"}) {
        struct stat st {};
        ASSERT_EQ(::stat((maildir("new.user@example.org") + d).c_str(), &st), 0) << d;
        EXPECT_TRUE(S_ISDIR(st.st_mode));
        EXPECT_EQ(st.st_mode & 0777, 0700u) << d;
    }
}

TEST_F(MaildirStoreTest, RefusesTraversalWithoutTouchingDisk) {
    auto store = make_store();
    for (const char* user : {"../escape", "a/../../b", "..", ".dot", "x@../y", ""}) {
        auto drop = store->open(user, lock_mode::snapshot);
        ASSERT_FALSE(drop) << user;
        EXPECT_EQ(drop.error().code, errc::permanent);
    }
    EXPECT_FALSE(fs::exists(fs::path(base_).parent_path() / "escape"));
    EXPECT_TRUE(fs::is_empty(base_));
}

TEST_F(MaildirStoreTest, ListsNewAndCurAcrossLayoutsWithoutMovingFiles) {
    deliver("new", "1700000001.V801I1M1.mx", "Subject: lf\n\nbody\n");                // Postfix, LF
    deliver("cur", "1700000002.M2P2.imap:2,S", "Subject: crlf\r\n\r\nbody\r\n");      // CRLF, seen
    deliver("cur", "1700000003.M3P3.imap:2,", "no final newline");                     // Courier-style info
    deliver("new", ".hidden-by-someone", "ignored");
    deliver("tmp", "1700000000.M0P0.mx", "delivery in progress");
    fs::create_directories(maildir() + "/cur/1700000004.looks-like-a-message");

    auto store = make_store();
    auto drop = open_ok(*store);
    ASSERT_TRUE(drop);
    ASSERT_EQ(drop->messages().size(), 3u);
    EXPECT_EQ(sizes(*drop), (std::vector<std::uint64_t>{21, 23, 18}));
    auto first = read_message(*drop, 0);
    ASSERT_TRUE(first);
    EXPECT_EQ(*first, "Subject: lf\n\nbody\n");  // raw stored bytes; the encoder converts
    auto second = read_message(*drop, 1);
    ASSERT_TRUE(second);
    EXPECT_EQ(*second, "Subject: crlf\r\n\r\nbody\r\n");
    // Nothing moved from new/ to cur/ (see maildir_store.h for why).
    EXPECT_TRUE(fs::exists(maildir() + "/new/1700000001.V801I1M1.mx"));
}

TEST_F(MaildirStoreTest, UsesWHintWithoutReadingTheFile) {
    // The content disagrees with W=: reporting 1234 proves the file was not read for its size.
    deliver("new", "1700000001.M1P1.host,S=1000,W=1234", std::string(10, 'x'));
    auto store = make_store();
    auto drop = open_ok(*store);
    ASSERT_TRUE(drop);
    EXPECT_EQ(sizes(*drop), std::vector<std::uint64_t>{1234});
    EXPECT_EQ(store->statistics().messages_sized_by_reading, 0u);
}

TEST_F(MaildirStoreTest, IgnoresPhysicalSizeAndImplausibleW) {
    deliver("new", "1700000001.M1P1.host,S=3", "a\nb\n");            // S= is not the virtual size
    deliver("new", "1700000002.M1P1.host,S=4,W=99", "a\nb\n");       // W= cannot be right
    auto store = make_store();
    auto drop = open_ok(*store);
    ASSERT_TRUE(drop);
    EXPECT_EQ(sizes(*drop), (std::vector<std::uint64_t>{6, 6}));
    EXPECT_EQ(store->statistics().messages_sized_by_reading, 2u);
}

TEST_F(MaildirStoreTest, ComputesSizeOnceAndCachesItInTheIndex) {
    deliver("new", "1700000001.A.host", "line\n");
    deliver("cur", "1700000002.B.host:2,S", "line\r\nline\r\n");
    auto store = make_store();
    {
        auto drop = open_ok(*store);
        ASSERT_TRUE(drop);
        EXPECT_EQ(sizes(*drop), (std::vector<std::uint64_t>{6, 12}));
    }
    EXPECT_EQ(store->statistics().messages_sized_by_reading, 2u);
    EXPECT_EQ(index_text(), "poplar-uidlist 1 1000 3 0 0\n1 6 n 1700000001.A.host\n2 12 c 1700000002.B.host:2,S\n");

    // Rewrite a message behind the index's back (same name, other size): a second login must
    // report the cached size, i.e. not read the file. Works as root, unlike chmod 000.
    deliver("new", "1700000001.A.host", "a much longer line than before\n");
    auto store2 = make_store();
    auto drop = open_ok(*store2);
    ASSERT_TRUE(drop);
    EXPECT_EQ(sizes(*drop), (std::vector<std::uint64_t>{6, 12}));
    EXPECT_EQ(store2->statistics().messages_sized_by_reading, 0u);
}

TEST_F(MaildirStoreTest, UidlsAreStableUniqueAndNeverReused) {
    deliver("new", "1700000001.A.host", "1\n");
    deliver("new", "1700000002.B.host", "2\n");
    deliver("new", "1700000003.C.host", "3\n");
    auto store = make_store();
    std::vector<std::string> first;
    {
        auto drop = open_ok(*store);
        ASSERT_TRUE(drop);
        first = uidls(*drop);
        ASSERT_EQ(first, (std::vector<std::string>{"000003e800000001", "000003e800000002", "000003e800000003"}));
    }
    {
        auto drop = open_ok(*make_store());  // a "restart": a fresh store object
        ASSERT_TRUE(drop);
        EXPECT_EQ(uidls(*drop), first);
        const std::size_t remove_uid2[] = {1};
        ASSERT_TRUE(drop->remove(remove_uid2));
    }
    deliver("new", "1700000004.D.host", "4\n");
    {
        auto drop = open_ok(*store);
        ASSERT_TRUE(drop);
        EXPECT_EQ(uidls(*drop), (std::vector<std::string>{first[0], first[2], "000003e800000004"}));
    }
    // Deleted behind our back (say by an IMAP client): its uid is not reused either.
    fs::remove(maildir() + "/new/1700000004.D.host");
    deliver("new", "1700000005.E.host", "5\n");
    auto drop = open_ok(*store);
    ASSERT_TRUE(drop);
    EXPECT_EQ(uidls(*drop), (std::vector<std::string>{first[0], first[2], "000003e800000005"}));
    EXPECT_EQ(next_uidvalidity_.load(), 1001u);  // one uidvalidity for the Maildir's lifetime
}

TEST_F(MaildirStoreTest, NewMessagesGetUidsInBaseNameOrder) {
    // Delivered (created) in the opposite order of their names.
    deliver("cur", "1700000003.C.host:2,S", "c\n");
    deliver("new", "1700000002.B.host", "b\n");
    deliver("new", "1700000001.A.host", "a\n");
    auto drop = open_ok(*make_store());
    ASSERT_TRUE(drop);
    std::vector<std::string> contents;
    for (std::size_t i = 0; i < drop->messages().size(); ++i) {
        auto text = read_message(*drop, i);
        ASSERT_TRUE(text);
        contents.push_back(*text);
        EXPECT_EQ(uid_of(drop->messages()[i].uidl), i + 1);
    }
    EXPECT_EQ(contents, (std::vector<std::string>{"a\n", "b\n", "c\n"}));
}

TEST_F(MaildirStoreTest, FindsMessagesRenamedByAnotherAgent) {
    deliver("new", "1700000001.A.host", "moved to cur\n");
    deliver("cur", "1700000002.B.host:2,S", "flags changed\n");
    deliver("cur", "1700000003.C.host:2,", "removed after rename\n");
    auto drop = open_ok(*make_store());
    ASSERT_TRUE(drop);
    const auto before = uidls(*drop);

    // An IMAP server marks the first seen and the second replied, after our snapshot.
    fs::rename(maildir() + "/new/1700000001.A.host", maildir() + "/cur/1700000001.A.host:2,S");
    fs::rename(maildir() + "/cur/1700000002.B.host:2,S", maildir() + "/cur/1700000002.B.host:2,RS");
    fs::rename(maildir() + "/cur/1700000003.C.host:2,", maildir() + "/cur/1700000003.C.host:2,T");

    auto a = read_message(*drop, 0);
    ASSERT_TRUE(a) << a.error().detail;
    EXPECT_EQ(*a, "moved to cur\n");
    auto b = read_message(*drop, 1);
    ASSERT_TRUE(b) << b.error().detail;
    EXPECT_EQ(*b, "flags changed\n");

    const std::size_t third[] = {2};
    ASSERT_TRUE(drop->remove(third));
    EXPECT_FALSE(fs::exists(maildir() + "/cur/1700000003.C.host:2,T"));
    drop.reset();

    auto again = open_ok(*make_store());
    ASSERT_TRUE(again);
    EXPECT_EQ(uidls(*again), (std::vector<std::string>{before[0], before[1]}));  // renames keep uids
}

TEST_F(MaildirStoreTest, MessageRemovedByAnotherSession) {
    deliver("new", "1700000001.A.host", "a\n");
    deliver("new", "1700000002.B.host", "b\n");
    auto store = make_store();
    auto a = open_ok(*store);
    auto b = open_ok(*store);
    ASSERT_TRUE(a && b);
    const std::size_t first[] = {0};
    ASSERT_TRUE(b->remove(first));
    b.reset();

    auto gone = a->open_message(0);
    ASSERT_FALSE(gone);
    EXPECT_EQ(gone.error().code, errc::temporary);
    EXPECT_FALSE(gone.error().detail.empty());
    EXPECT_TRUE(read_message(*a, 1));
    const std::size_t both[] = {0, 1};
    EXPECT_TRUE(a->remove(both));  // already gone counts as removed
    EXPECT_TRUE(fs::is_empty(maildir() + "/new"));
}

TEST_F(MaildirStoreTest, ExclusiveModeLocksOutOtherSessions) {
    deliver("new", "1700000001.A.host", "a\n");
    auto store = make_store();
    auto first = open_ok(*store, "alice", lock_mode::exclusive);
    ASSERT_TRUE(first);

    auto second = store->open("alice", lock_mode::exclusive);
    ASSERT_FALSE(second);
    EXPECT_EQ(second.error().code, errc::in_use);
    // A second store object in the same process is another open file description: same result.
    auto third = make_store()->open("alice", lock_mode::exclusive);
    ASSERT_FALSE(third);
    EXPECT_EQ(third.error().code, errc::in_use);
    // Other users are not affected.
    EXPECT_TRUE(open_ok(*store, "bob", lock_mode::exclusive));

    first.reset();
    EXPECT_TRUE(open_ok(*store, "alice", lock_mode::exclusive));
}

TEST_F(MaildirStoreTest, SnapshotModeAllowsConcurrentSessions) {
    deliver("new", "1700000001.A.host", "a\n");
    auto store = make_store();
    auto a = open_ok(*store);
    auto b = open_ok(*store);
    ASSERT_TRUE(a && b);
    EXPECT_EQ(uidls(*a), uidls(*b));
    deliver("new", "1700000002.B.host", "b\n");
    auto c = open_ok(*store);
    ASSERT_TRUE(c);
    EXPECT_EQ(a->messages().size(), 1u);  // a snapshot does not change under a session
    EXPECT_EQ(c->messages().size(), 2u);
}

TEST_F(MaildirStoreTest, ConcurrentOpensAgreeOnUids) {
    for (int i = 0; i < 200; ++i) {
        deliver("new", std::to_string(1700000000 + i) + ".M" + std::to_string(i) + ".host", "x\n");
    }
    auto store = make_store();
    std::vector<std::vector<std::string>> seen(8);
    std::vector<std::thread> threads;
    for (std::size_t t = 0; t < seen.size(); ++t) {
        threads.emplace_back([&, t] {
            auto drop = store->open("alice", lock_mode::snapshot);
            if (drop) {
                seen[t] = uidls(**drop);
            }
        });
    }
    for (auto& th : threads) {
        th.join();
    }
    const std::set<std::string> unique(seen[0].begin(), seen[0].end());
    EXPECT_EQ(unique.size(), 200u);
    for (const auto& s : seen) {
        EXPECT_EQ(s, seen[0]);
    }
    EXPECT_EQ(store->statistics().messages_sized_by_reading, 200u);  // sized once, whoever got there first
}

TEST_F(MaildirStoreTest, UnchangedDirectoriesAreNotReadAgain) {
    deliver("new", "1700000001.A.host", "a\n");
    deliver("cur", "1700000002.B.host:2,S", "bb\n");
    age_directories();
    auto store = make_store();
    auto first = open_ok(*store);
    ASSERT_TRUE(first);
    EXPECT_EQ(store->statistics().directory_scans, 1u);
    EXPECT_EQ(index_text().find("poplar-uidlist 1 1000 3 0 0\n"), std::string::npos);  // stamps recorded

    auto second = open_ok(*store);
    ASSERT_TRUE(second);
    EXPECT_EQ(store->statistics().directory_scans, 1u);  // served from the index alone
    EXPECT_EQ(uidls(*second), uidls(*first));
    EXPECT_EQ(sizes(*second), (std::vector<std::uint64_t>{3, 4}));
    auto b = read_message(*second, 1);
    ASSERT_TRUE(b);
    EXPECT_EQ(*b, "bb\n");

    // A delivery changes new/'s mtime, so the next login lists the directories again.
    deliver("new", "1700000003.C.host", "c\n");
    auto third = open_ok(*store);
    ASSERT_TRUE(third);
    EXPECT_EQ(store->statistics().directory_scans, 2u);
    EXPECT_EQ(third->messages().size(), 3u);
}

TEST_F(MaildirStoreTest, RecentlyChangedDirectoriesAreAlwaysRead) {
    // Just delivered: a change in the same timestamp tick could follow unnoticed, so the
    // mtimes are not recorded and every login lists the directories.
    deliver("new", "1700000001.A.host", "a\n");
    auto store = make_store();
    ASSERT_TRUE(open_ok(*store));
    ASSERT_TRUE(open_ok(*store));
    EXPECT_EQ(store->statistics().directory_scans, 2u);
    EXPECT_EQ(index_text(), "poplar-uidlist 1 1000 2 0 0\n1 3 n 1700000001.A.host\n");
}

TEST_F(MaildirStoreTest, MtimeTrustCanBeTurnedOff) {
    deliver("new", "1700000001.A.host", "a\n");
    age_directories();
    maildir_options options;
    options.trust_directory_mtimes = false;
    auto store = make_store(options);
    ASSERT_TRUE(open_ok(*store));
    ASSERT_TRUE(open_ok(*store));
    EXPECT_EQ(store->statistics().directory_scans, 2u);
}

// try_open_without_blocking: the event loop's open. It may decline anything (the caller then
// opens on the worker pool), but what it opens must be exactly what open() would have opened.

// openat2(RESOLVE_CACHED) needs Linux 5.12; without it the fast path never opens anything.
bool resolve_cached_supported() {
    struct open_how_probe {
        std::uint64_t flags, mode, resolve;
    } how{O_RDONLY | O_DIRECTORY | O_CLOEXEC, 0, 0x20 /* RESOLVE_CACHED */};
    const long fd = ::syscall(SYS_openat2, AT_FDCWD, "/", &how, sizeof how);
    if (fd >= 0) {
        ::close(static_cast<int>(fd));
    }
    return fd >= 0;
}

class MaildirOpenWithoutBlockingTest : public MaildirStoreTest {
protected:
    void SetUp() override {
        if (!resolve_cached_supported()) {
            GTEST_SKIP() << "openat2(RESOLVE_CACHED) needs Linux 5.12";
        }
        MaildirStoreTest::SetUp();
    }
};

TEST_F(MaildirOpenWithoutBlockingTest, UnchangedCachedMaildropOpens) {
    deliver("new", "1700000001.A.host", "a\n");
    deliver("cur", "1700000002.B.host:2,S", ".b\n");
    age_directories();
    auto store = make_store();
    auto first = open_ok(*store);  // lists the directories and records their stamps
    ASSERT_TRUE(first);
    first.reset();

    auto fast = store->try_open_without_blocking("alice", lock_mode::snapshot);
    ASSERT_TRUE(fast);
    EXPECT_EQ(store->statistics().directory_scans, 1u);  // the index alone
    auto slow = open_ok(*store);
    ASSERT_TRUE(slow);
    EXPECT_EQ(uidls(*fast), uidls(*slow));
    EXPECT_EQ(sizes(*fast), sizes(*slow));
    EXPECT_EQ(sizes(*fast), (std::vector<std::uint64_t>{3, 4}));
    auto b = read_message(*fast, 1);
    ASSERT_TRUE(b);
    EXPECT_EQ(*b, ".b\n");
}

TEST_F(MaildirOpenWithoutBlockingTest, FollowsASymlinkedMaildirAsOpenDoes) {
    fs::create_directories(base_ + "/real-alice");
    fs::create_directory_symlink(base_ + "/real-alice", maildir());
    deliver("new", "1700000001.A.host", "a\n");
    age_directories();
    auto store = make_store();
    ASSERT_TRUE(open_ok(*store));
    auto fast = store->try_open_without_blocking("alice", lock_mode::snapshot);
    ASSERT_TRUE(fast);
    EXPECT_EQ(fast->messages().size(), 1u);
    // A symlinked index is refused by open() (O_NOFOLLOW) and so is not read here either.
    fs::rename(maildir() + "/poplar-uidlist", base_ + "/elsewhere");
    fs::create_symlink(base_ + "/elsewhere", maildir() + "/poplar-uidlist");
    EXPECT_FALSE(store->try_open_without_blocking("alice", lock_mode::snapshot));
}

TEST_F(MaildirOpenWithoutBlockingTest, DeclinesWhatOpenMustDo) {
    auto store = make_store();
    // No Maildir yet: open() creates it.
    EXPECT_FALSE(store->try_open_without_blocking("alice", lock_mode::snapshot));
    // Mail but no index yet: open() assigns uids and writes it.
    deliver("new", "1700000001.A.host", "a\n");
    age_directories();
    EXPECT_FALSE(store->try_open_without_blocking("alice", lock_mode::snapshot));
    ASSERT_TRUE(open_ok(*store));
    ASSERT_TRUE(store->try_open_without_blocking("alice", lock_mode::snapshot));

    // New mail changes new/'s mtime: open() lists the directories and indexes it.
    deliver("new", "1700000002.B.host", "b\n");
    EXPECT_FALSE(store->try_open_without_blocking("alice", lock_mode::snapshot));
    auto listed = open_ok(*store);
    ASSERT_TRUE(listed);
    EXPECT_EQ(listed->messages().size(), 2u);
    // Just changed, so its stamps were not recorded (quiet period): still declined.
    EXPECT_FALSE(store->try_open_without_blocking("alice", lock_mode::snapshot));
    age_directories();
    ASSERT_TRUE(open_ok(*store));  // records the settled stamps
    auto fast = store->try_open_without_blocking("alice", lock_mode::snapshot);
    ASSERT_TRUE(fast);
    EXPECT_EQ(uidls(*fast), uidls(*listed));

    // A flag change by another agent renames in cur/: declined until open() has seen it.
    fs::rename(maildir() + "/new/1700000001.A.host", maildir() + "/cur/1700000001.A.host:2,S");
    EXPECT_FALSE(store->try_open_without_blocking("alice", lock_mode::snapshot));

    // With mtime trust off every open lists the directories.
    maildir_options no_trust;
    no_trust.trust_directory_mtimes = false;
    age_directories();
    ASSERT_TRUE(open_ok(*store));
    ASSERT_TRUE(store->try_open_without_blocking("alice", lock_mode::snapshot));
    EXPECT_FALSE(make_store(no_trust)->try_open_without_blocking("alice", lock_mode::snapshot));
}

TEST_F(MaildirOpenWithoutBlockingTest, DeclinesADamagedIndex) {
    deliver("new", "1700000001.A.host", "a\n");
    deliver("new", "1700000002.B.host", "b\n");
    age_directories();
    auto store = make_store();
    ASSERT_TRUE(open_ok(*store));
    std::string text = index_text();
    ASSERT_EQ(text.find(" 0 0\n"), std::string::npos) << text;  // stamps recorded
    ASSERT_TRUE(store->try_open_without_blocking("alice", lock_mode::snapshot));
    // The same stamps, one record damaged: only sync_maildir may salvage it (and log why).
    text.replace(text.find("2 3 n"), 5, "2 x n");
    std::ofstream(maildir() + "/poplar-uidlist", std::ios::trunc) << text;
    age_directories();  // the rewrite above touched nothing in new/ or cur/, but keep them settled
    EXPECT_FALSE(store->try_open_without_blocking("alice", lock_mode::snapshot));
}

TEST_F(MaildirOpenWithoutBlockingTest, DeclinesALargeIndex) {
    // Enough long names for an index over max_index_octets_on_loop: parsing it would hold up
    // the event loop's other sessions, so the pool reads it.
    const std::string padding(200, 'p');
    std::size_t index_octets = 0;
    for (int i = 0; index_octets <= max_index_octets_on_loop; ++i) {
        const std::string name = std::to_string(1700000000 + i) + ".M" + padding + ".host";
        deliver("cur", name, "x\n");
        index_octets += name.size() + 8;  // a record: "uid size c name\n"
    }
    age_directories();
    auto store = make_store();
    ASSERT_TRUE(open_ok(*store));
    ASSERT_GT(index_text().size(), max_index_octets_on_loop);
    EXPECT_FALSE(store->try_open_without_blocking("alice", lock_mode::snapshot));
}

TEST_F(MaildirOpenWithoutBlockingTest, TakesTheExclusiveLock) {
    deliver("new", "1700000001.A.host", "a\n");
    age_directories();
    auto store = make_store();
    auto held = open_ok(*store, "alice", lock_mode::exclusive);
    ASSERT_TRUE(held);
    // Locked by another session: declined, and open() reports [IN-USE].
    EXPECT_FALSE(store->try_open_without_blocking("alice", lock_mode::exclusive));
    held.reset();
    auto fast = store->try_open_without_blocking("alice", lock_mode::exclusive);
    ASSERT_TRUE(fast);
    auto second = store->open("alice", lock_mode::exclusive);
    ASSERT_FALSE(second);
    EXPECT_EQ(second.error().code, errc::in_use);
    fast.reset();
    EXPECT_TRUE(open_ok(*store, "alice", lock_mode::exclusive));
}

TEST_F(MaildirStoreTest, StaleNameInIndexIsFoundAgain) {
    deliver("cur", "1700000001.A.host:2,S", "a\n");
    age_directories();
    auto store = make_store();
    ASSERT_TRUE(open_ok(*store));
    // A flag change whose mtime update went unseen (forged here by restoring the old mtime):
    // the index names a file that no longer exists, and open_message() must still find it.
    struct stat st {};
    ASSERT_EQ(::stat((maildir() + "/cur").c_str(), &st), 0);
    fs::rename(maildir() + "/cur/1700000001.A.host:2,S", maildir() + "/cur/1700000001.A.host:2,RS");
    const struct timespec times[2] = {st.st_atim, st.st_mtim};
    ASSERT_EQ(::utimensat(AT_FDCWD, (maildir() + "/cur").c_str(), times, 0), 0);

    auto drop = open_ok(*store);
    ASSERT_TRUE(drop);
    EXPECT_EQ(store->statistics().directory_scans, 1u);
    auto a = read_message(*drop, 0);
    ASSERT_TRUE(a) << a.error().detail;
    EXPECT_EQ(*a, "a\n");
    const std::size_t first[] = {0};
    EXPECT_TRUE(drop->remove(first));
    EXPECT_TRUE(fs::is_empty(maildir() + "/cur"));
}

TEST_F(MaildirStoreTest, CorruptIndexIsRebuiltWithNewUidvalidity) {
    deliver("new", "1700000001.A.host", "a\n");
    deliver("new", "1700000002.B.host", "b\n");
    fs::create_directories(maildir());
    std::ofstream(maildir() + "/poplar-uidlist") << "\x7f" "ELF garbage\n\n\n";
    auto drop = open_ok(*make_store());
    ASSERT_TRUE(drop);
    EXPECT_EQ(uidls(*drop), (std::vector<std::string>{"000003e800000001", "000003e800000002"}));
    EXPECT_EQ(index_text(), "poplar-uidlist 1 1000 3 0 0\n1 3 n 1700000001.A.host\n2 3 n 1700000002.B.host\n");
}

TEST_F(MaildirStoreTest, DamagedRecordsAreSalvagedKeepingUidvalidity) {
    deliver("new", "1700000001.A.host", "a\n");
    deliver("new", "1700000002.B.host", "b\n");
    fs::create_directories(maildir());
    std::ofstream(maildir() + "/poplar-uidlist") << "poplar-uidlist 1 77 9 0 0\n4 3 n 1700000001.A.host\n#?!\n";
    auto drop = open_ok(*make_store());
    ASSERT_TRUE(drop);
    // A keeps its uid; B's record was lost, so B gets a fresh uid above next_uid.
    EXPECT_EQ(uidls(*drop), (std::vector<std::string>{"0000004d00000004", "0000004d00000009"}));
    EXPECT_EQ(index_text(), "poplar-uidlist 1 77 10 0 0\n4 3 n 1700000001.A.host\n9 3 n 1700000002.B.host\n");
}

TEST_F(MaildirStoreTest, UnwritableIndexRefusesToHandOutUids) {
    deliver("new", "1700000001.A.host", "a\n");
    // Root ignores permissions, so make the index path something that cannot be replaced.
    fs::create_directories(maildir() + "/poplar-uidlist/blocker");
    auto drop = make_store()->open("alice", lock_mode::snapshot);
    ASSERT_FALSE(drop);
    EXPECT_EQ(drop.error().code, errc::temporary);
    EXPECT_FALSE(fs::exists(maildir() + "/poplar-uidlist.tmp"));
}

TEST_F(MaildirStoreTest, FailedIndexWriteLeavesOldIndexIntact) {
    deliver("new", "1700000001.A.host", "a\n");
    auto store = make_store();
    ASSERT_TRUE(open_ok(*store));
    const std::string before = index_text();

    deliver("new", "1700000002.B.host", "b\n");
    fs::create_directories(maildir() + "/poplar-uidlist.tmp/blocker");  // the temp file cannot be created
    auto drop = store->open("alice", lock_mode::snapshot);
    ASSERT_FALSE(drop);
    EXPECT_EQ(drop.error().code, errc::temporary);
    EXPECT_EQ(index_text(), before);

    fs::remove_all(maildir() + "/poplar-uidlist.tmp");
    auto ok = open_ok(*store);
    ASSERT_TRUE(ok);
    EXPECT_EQ(uidls(*ok), (std::vector<std::string>{"000003e800000001", "000003e800000002"}));
}

TEST_F(MaildirStoreTest, RemoveRewritesIndexAtomically) {
    deliver("new", "1700000001.A.host", "a\n");
    deliver("cur", "1700000002.B.host:2,S", "b\n");
    deliver("new", "1700000003.C.host", "c\n");
    // A temp file left by a crash mid-write is never read and is replaced by the next writer.
    fs::create_directories(maildir());
    std::ofstream(maildir() + "/poplar-uidlist.tmp") << "torn";
    auto store = make_store();
    auto drop = open_ok(*store);
    ASSERT_TRUE(drop);
    const std::size_t two[] = {0, 1};
    ASSERT_TRUE(drop->remove(two));
    EXPECT_FALSE(fs::exists(maildir() + "/new/1700000001.A.host"));
    EXPECT_FALSE(fs::exists(maildir() + "/cur/1700000002.B.host:2,S"));
    EXPECT_EQ(index_text(), "poplar-uidlist 1 1000 4 0 0\n3 3 n 1700000003.C.host\n");
    EXPECT_FALSE(fs::exists(maildir() + "/poplar-uidlist.tmp"));

    // Removal keeps records other sessions added meanwhile: the index is re-read, not rebuilt
    // from this session's snapshot.
    deliver("new", "1700000004.D.host", "d\n");
    auto other = open_ok(*store);
    ASSERT_TRUE(other);
    const std::size_t third[] = {2};
    ASSERT_TRUE(drop->remove(third));
    EXPECT_EQ(index_text(), "poplar-uidlist 1 1000 5 0 0\n4 3 n 1700000004.D.host\n");
}

TEST_F(MaildirStoreTest, CrashBetweenUnlinkAndIndexUpdateIsHarmless) {
    deliver("new", "1700000001.A.host", "a\n");
    deliver("new", "1700000002.B.host", "b\n");
    auto store = make_store();
    ASSERT_TRUE(open_ok(*store));
    // The state a crash after unlink() and before the index rewrite leaves behind.
    fs::remove(maildir() + "/new/1700000002.B.host");
    auto drop = open_ok(*store);
    ASSERT_TRUE(drop);
    EXPECT_EQ(uidls(*drop), std::vector<std::string>{"000003e800000001"});
    EXPECT_EQ(index_text(), "poplar-uidlist 1 1000 3 0 0\n1 3 n 1700000001.A.host\n");
}

TEST_F(MaildirStoreTest, UnlinkFailureIsReportedAfterRemovingTheRest) {
    deliver("new", "1700000001.A.host", "a\n");
    deliver("new", "1700000002.B.host", "b\n");
    auto drop = open_ok(*make_store());
    ASSERT_TRUE(drop);
    // unlink() of a directory fails with EISDIR, even for root.
    fs::remove(maildir() + "/new/1700000001.A.host");
    fs::create_directories(maildir() + "/new/1700000001.A.host/x");
    const std::size_t both[] = {0, 1};
    auto r = drop->remove(both);
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error().code, errc::temporary);
    EXPECT_FALSE(fs::exists(maildir() + "/new/1700000002.B.host"));
}

TEST_F(MaildirStoreTest, RefusesOversizedMaildrop) {
    for (int i = 0; i < 4; ++i) {
        deliver("new", std::to_string(1700000000 + i) + ".M.host", "x\n");
    }
    maildir_options options;
    options.max_messages = 3;
    auto drop = make_store(options)->open("alice", lock_mode::snapshot);
    ASSERT_FALSE(drop);
    EXPECT_EQ(drop.error().code, errc::permanent);
}

TEST_F(MaildirStoreTest, FifoIsNotReadAndDoesNotBlock) {
    deliver("new", "1700000001.A.host", "a\n");
    ASSERT_EQ(::mkfifo((maildir() + "/new/1700000002.FIFO.host").c_str(), 0600), 0);
    auto drop = open_ok(*make_store());
    ASSERT_TRUE(drop);
    EXPECT_EQ(drop->messages().size(), 1u);  // skipped with a warning, not hung on
}

TEST_F(MaildirStoreTest, DescriptorsAreCloseOnExec) {
    deliver("new", "1700000001.A.host", "a\n");
    auto drop = open_ok(*make_store(), "alice", lock_mode::exclusive);
    ASSERT_TRUE(drop);
    auto src = drop->open_message(0);
    ASSERT_TRUE(src);
    int checked = 0;
    for (const auto& entry : fs::directory_iterator("/proc/self/fd")) {
        std::error_code ec;
        const fs::path target = fs::read_symlink(entry.path(), ec);
        if (ec || target.string().rfind(base_, 0) != 0) {
            continue;
        }
        const int fd = std::stoi(entry.path().filename().string());
        EXPECT_TRUE(::fcntl(fd, F_GETFD) & FD_CLOEXEC) << target;
        ++checked;
    }
    EXPECT_GE(checked, 2);  // session lock, message
}

// Idle sessions are what a descriptor limit must hold: a snapshot session keeps no descriptor
// open between operations (the benchmark's 10,000 idle sessions need it).
TEST_F(MaildirStoreTest, SnapshotSessionHoldsNoDescriptor) {
    deliver("new", "1700000001.A.host", "a\n");
    auto count_fds = [&] {
        int n = 0;
        for (const auto& entry : fs::directory_iterator("/proc/self/fd")) {
            std::error_code ec;
            const fs::path target = fs::read_symlink(entry.path(), ec);
            n += (!ec && target.string().rfind(base_, 0) == 0) ? 1 : 0;
        }
        return n;
    };
    auto store = make_store();
    auto drop = open_ok(*store, "alice", lock_mode::snapshot);
    ASSERT_TRUE(drop);
    EXPECT_EQ(count_fds(), 0);
    auto again = open_ok(*store, "alice", lock_mode::snapshot);  // and many can coexist
    ASSERT_TRUE(again);
    EXPECT_EQ(count_fds(), 0);
}

}  // namespace
}  // namespace poplar::storage::maildir

namespace poplar::storage::maildir {
namespace {

// try_read_cached serves a just-written (so page-cached) message without blocking, interleaves
// with read() on the same file position, and reports the end with 0.
TEST_F(MaildirStoreTest, CachedReadsServeWhatThePageCacheHolds) {
    const std::string body = "Subject: cached\n\n" + std::string(100000, 'c') + "\n";
    deliver("new", "1700000001.M1P1.mx", body);
    auto store = make_store();
    auto drop = open_ok(*store);
    ASSERT_TRUE(drop);
    auto src = drop->open_message(0);
    ASSERT_TRUE(src);
    std::string got(10, '\0');
    auto first = (*src)->read(std::span<char>(got.data(), got.size()));  // blocking read first
    ASSERT_TRUE(first);
    ASSERT_EQ(*first, 10u);
    std::vector<char> buf(4096);
    for (;;) {
        auto r = (*src)->try_read_cached(buf);
        ASSERT_TRUE(r);
        ASSERT_TRUE(r.value().has_value()) << "a file written a moment ago is in the page cache";
        if (*r.value() == 0) {
            break;
        }
        got.append(buf.data(), *r.value());
    }
    EXPECT_EQ(got, body);
}


// The event loop's open: succeeds for a message whose path the kernel has cached (a file just
// listed), and answers nullptr, never an error or a wrong file, for anything it cannot open
// that way; open_message() then finds renamed files and reports removed ones.
TEST_F(MaildirStoreTest, CachedOpenServesListedMessagesAndDefersTheRest) {
    deliver("new", "1700000001.A.host", "first\n");
    deliver("new", "1700000002.B.host", "second\n");
    deliver("new", "1700000003.C.host", "third\n");
    auto store = make_store();
    auto drop = open_ok(*store);
    ASSERT_TRUE(drop);

    auto src = drop->try_open_message_cached(0);
    ASSERT_NE(src, nullptr) << "a file listed a moment ago has its path in the dentry cache";
    std::vector<char> buf(64);
    auto r = src->try_read_cached(buf);
    ASSERT_TRUE(r);
    ASSERT_TRUE(r.value().has_value());
    EXPECT_EQ(std::string(buf.data(), *r.value()), "first\n");

    // Renamed by another agent (flags): not found on the fast path, found by open_message().
    fs::rename(maildir() + "/new/1700000002.B.host", maildir() + "/cur/1700000002.B.host:2,S");
    EXPECT_EQ(drop->try_open_message_cached(1), nullptr);
    auto moved = read_message(*drop, 1);
    ASSERT_TRUE(moved) << moved.error().detail;
    EXPECT_EQ(*moved, "second\n");
    EXPECT_NE(drop->try_open_message_cached(1), nullptr) << "the snapshot now names the new path";

    // Removed: nullptr here, and open_message() gives the error the client is told.
    fs::remove(maildir() + "/new/1700000003.C.host");
    EXPECT_EQ(drop->try_open_message_cached(2), nullptr);
    EXPECT_FALSE(drop->open_message(2));

    // Something that is not a regular file where the message was is never opened here.
    ASSERT_EQ(::mkfifo((maildir() + "/new/1700000003.C.host").c_str(), 0600), 0);
    EXPECT_EQ(drop->try_open_message_cached(2), nullptr);
    EXPECT_EQ(drop->try_open_message_cached(99), nullptr);  // out of range: no crash
}


// Maildir files do not change after delivery, so the size at open ends the message: a writer
// that broke that rule mid-RETR cannot make the message longer than what LIST announced.
TEST_F(MaildirStoreTest, ReadingStopsAtTheSizeAtOpen) {
    deliver("new", "1700000001.A.host", "original\n");
    auto drop = open_ok(*make_store());
    ASSERT_TRUE(drop);
    auto src = drop->open_message(0);
    ASSERT_TRUE(src);
    {
        std::ofstream out(maildir() + "/new/1700000001.A.host", std::ios::binary | std::ios::app);
        out << "appended later\n";
    }
    std::string got;
    char buf[4];
    for (;;) {
        auto n = (*src)->read(buf);
        ASSERT_TRUE(n);
        if (*n == 0) {
            break;
        }
        got.append(buf, *n);
    }
    EXPECT_EQ(got, "original\n");
}

}  // namespace
}  // namespace poplar::storage::maildir
