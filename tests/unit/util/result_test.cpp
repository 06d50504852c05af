// Tests for util/result.h: the std::expected-like value-or-error type.
#include "util/result.h"

#include <gtest/gtest.h>

#include <memory>
#include <string>

namespace poplar {
namespace {

struct err {
    int code = 0;
};

TEST(Result, Value) {
    result<int, err> r = 42;
    EXPECT_TRUE(r);
    EXPECT_TRUE(r.has_value());
    EXPECT_EQ(*r, 42);
    EXPECT_EQ(r.value(), 42);
}

TEST(Result, Error) {
    result<int, err> r = unexpected(err{7});
    EXPECT_FALSE(r);
    EXPECT_EQ(r.error().code, 7);
}

TEST(Result, MoveOnlyValue) {
    result<std::unique_ptr<int>, err> r = std::make_unique<int>(5);
    ASSERT_TRUE(r);
    std::unique_ptr<int> p = std::move(r).value();
    EXPECT_EQ(*p, 5);
}

TEST(Result, SameTypeForValueAndErrorIsUnambiguous) {
    result<std::string, std::string> ok = std::string("v");
    result<std::string, std::string> bad = unexpected(std::string("e"));
    EXPECT_TRUE(ok);
    EXPECT_EQ(*ok, "v");
    EXPECT_FALSE(bad);
    EXPECT_EQ(bad.error(), "e");
}

TEST(Result, Void) {
    result<void, err> ok;
    EXPECT_TRUE(ok);
    result<void, err> bad = unexpected(err{3});
    EXPECT_FALSE(bad);
    EXPECT_EQ(bad.error().code, 3);
}

TEST(Result, ArrowOperator) {
    result<std::string, err> r = std::string("abc");
    EXPECT_EQ(r->size(), 3u);
}

}  // namespace
}  // namespace poplar
