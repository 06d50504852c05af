// The PROXY header fuzz harness (fuzz/fuzz_proxy_header.cpp) over its seeds and generated input.
#include "fuzz_harness.h"
#include "fuzz_regression.h"

namespace poplar::fuzz {
namespace {

TEST(FuzzRegression, ProxyHeader) {
    EXPECT_GT(testing::run_seeds(proxy_header_one_input, "proxy_header"), 0u);
    static constexpr char alphabet[] = "TCP46UNKOWN 0123456789.:abcdef\r\n\x00\x11\x21\x0c\x24\xff";
    testing::run_generated(proxy_header_one_input, {alphabet, sizeof alphabet - 1}, 2449, 4000, 4, 160);  // NUL too
}

}  // namespace
}  // namespace poplar::fuzz
