#include "core/output_buffer.h"

#include <gtest/gtest.h>

#include <cstring>
#include <string>

namespace poplar::core {
namespace {

TEST(OutputBuffer, StartsEmptyWithoutMemory) {
    output_buffer b;
    EXPECT_TRUE(b.empty());
    EXPECT_EQ(b.size(), 0u);
    EXPECT_EQ(b.capacity(), 0u);
    EXPECT_EQ(b.view(), "");
    b.append("");  // nothing to copy, from or to a null pointer
    EXPECT_EQ(b.capacity(), 0u);
}

TEST(OutputBuffer, AppendsKeepEarlierOctetsAcrossGrowth) {
    output_buffer b;
    std::string want;
    for (int i = 0; i < 1000; ++i) {
        const std::string piece = "+OK " + std::to_string(i) + "\r\n";
        b += piece;
        want += piece;
        b += '.';
        want += '.';
    }
    EXPECT_EQ(b.view(), want);
    EXPECT_GE(b.capacity(), b.size());
}

TEST(OutputBuffer, ClearKeepsTheMemoryAndReleaseFreesIt) {
    output_buffer b;
    b.append(std::string(5000, 'x'));
    const char* memory = b.data();
    const std::size_t capacity = b.capacity();
    b.clear();
    EXPECT_TRUE(b.empty());
    b.append("again");
    EXPECT_EQ(b.data(), memory);  // a RETR's chunks reuse one allocation
    EXPECT_EQ(b.capacity(), capacity);
    EXPECT_EQ(b.view(), "again");
    b.release();
    EXPECT_EQ(b.capacity(), 0u);
    EXPECT_EQ(b.data(), nullptr);
    b.assign("after release");
    EXPECT_EQ(b.view(), "after release");
}

TEST(OutputBuffer, ResizeForOverwriteKeepsThePrefixAndShrinks) {
    output_buffer b;
    b.assign("abc");
    b.resize_for_overwrite(4096);  // grows past the capacity: a reallocation that keeps "abc"
    ASSERT_EQ(b.size(), 4096u);
    EXPECT_EQ(std::string_view(b.data(), 3), "abc");
    std::memset(b.data() + 3, 'z', 4093);
    b.resize_for_overwrite(5);  // shrinking keeps the memory
    EXPECT_EQ(b.view(), "abczz");
    EXPECT_GE(b.capacity(), 4096u);
}

TEST(OutputBuffer, GrowsGeometrically) {
    // One octet at a time must not reallocate for every octet: capacity at least doubles.
    output_buffer b;
    std::size_t reallocations = 0;
    std::size_t capacity = b.capacity();
    for (int i = 0; i < 100000; ++i) {
        b += 'a';
        if (b.capacity() != capacity) {
            ++reallocations;
            capacity = b.capacity();
        }
    }
    EXPECT_LE(reallocations, 20u);
    EXPECT_EQ(b.size(), 100000u);
}

TEST(OutputBuffer, MovedFromIsEmpty) {
    output_buffer a;
    a.assign("moved");
    output_buffer b(std::move(a));
    EXPECT_EQ(b.view(), "moved");
    EXPECT_TRUE(a.empty());  // NOLINT(bugprone-use-after-move): moved-from is defined as empty
    EXPECT_EQ(a.capacity(), 0u);
    a = std::move(b);
    EXPECT_EQ(a.view(), "moved");
    EXPECT_TRUE(b.empty());  // NOLINT(bugprone-use-after-move)
    a += "!";
    EXPECT_EQ(a.view(), "moved!");
}

}  // namespace
}  // namespace poplar::core
