// Shows how a 100,000-message Maildir behaves: the first login sizes every message; later logins
// read only the index (directories unchanged) or the directories and the index, never a message.
// Prints timings; asserts only on behaviour.
#include "storage/maildir/maildir_store.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <string>

namespace poplar::storage::maildir {
namespace {

namespace fs = std::filesystem;

TEST(MaildirScale, HundredThousandMessagesOpenFromTheIndex) {
    constexpr int count = 100'000;
    std::string tmpl = testing::TempDir() + "poplar-maildir-scale-XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl.data()), nullptr);
    const std::string base = tmpl;
    const std::string maildir = base + "/bulk";
    for (const char* d : {"cur", "new", "tmp"}) {
        fs::create_directories(maildir + "/" + d);
    }
    // Postfix-style names (no size hints) so that the first login must read every file.
    const std::string body = "Subject: bulk\n\nhello\n";
    for (int i = 0; i < count; ++i) {
        const std::string path = maildir + (i % 2 == 0 ? "/new/" : "/cur/") + std::to_string(1700000000 + i) +
                                 ".V801I" + std::to_string(i) + "M123456.mx.example.org" + (i % 2 == 0 ? "" : ":2,S");
        const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
        ASSERT_GE(fd, 0);
        ASSERT_EQ(::write(fd, body.data(), body.size()), static_cast<ssize_t>(body.size()));
        ::close(fd);
    }

    // Settled directories, as in a real maildrop that received its last message a while ago.
    for (const char* d : {"/new", "/cur"}) {
        struct timespec times[2];
        ::clock_gettime(CLOCK_REALTIME, &times[0]);
        times[1] = times[0];
        times[1].tv_sec -= 3600;
        ASSERT_EQ(::utimensat(AT_FDCWD, (maildir + d).c_str(), times, 0), 0);
    }

    maildir_store store{base + "/%u", maildir_options{}};
    maildir_options listing_options;
    listing_options.trust_directory_mtimes = false;
    maildir_store listing_store{base + "/%u", listing_options};
    using clock = std::chrono::steady_clock;
    auto timed_open = [](maildir_store& s, const char* label) {
        const auto start = clock::now();
        auto drop = s.open("bulk", lock_mode::snapshot);
        const auto ms = std::chrono::duration<double, std::milli>(clock::now() - start).count();
        std::printf("[ timing ] %s open of %d messages: %.1f ms\n", label, count, ms);
        return drop;
    };

    {
        auto first = timed_open(store, "first (sizes every file)");
        ASSERT_TRUE(first) << first.error().detail;
        ASSERT_EQ((*first)->messages().size(), static_cast<std::size_t>(count));
    }
    EXPECT_EQ(store.statistics().messages_sized_by_reading, static_cast<std::uint64_t>(count));

    for (int round = 0; round < 3; ++round) {
        auto again = timed_open(store, "indexed, directories unchanged (index only)");
        ASSERT_TRUE(again);
        ASSERT_EQ((*again)->messages().size(), static_cast<std::size_t>(count));
        EXPECT_EQ((*again)->messages()[count - 1].virtual_size, body.size() + 3);
    }
    EXPECT_EQ(store.statistics().directory_scans, 1u);
    for (int round = 0; round < 3; ++round) {
        auto again = timed_open(listing_store, "indexed, directories listed (no file read)");
        ASSERT_TRUE(again);
        ASSERT_EQ((*again)->messages().size(), static_cast<std::size_t>(count));
    }
    EXPECT_EQ(listing_store.statistics().directory_scans, 3u);
    // Nothing was read again by either store.
    EXPECT_EQ(store.statistics().messages_sized_by_reading, static_cast<std::uint64_t>(count));
    EXPECT_EQ(listing_store.statistics().messages_sized_by_reading, 0u);

    std::error_code ec;
    fs::remove_all(base, ec);
}

}  // namespace
}  // namespace poplar::storage::maildir
