// The auth wire protocol fuzz harness (fuzz/fuzz_auth_wire.cpp) over its seeds and generated input.
#include "fuzz_harness.h"
#include "fuzz_regression.h"

namespace poplar::fuzz {
namespace {

TEST(FuzzRegression, AuthWire) {
    EXPECT_GT(testing::run_seeds(auth_wire_one_input, "auth_wire"), 0u);
    static constexpr char alphabet[] = "\x00\x01\x02\x05\x09\x10\x7f\x80\xffPLAINUSER:demo";
    testing::run_generated(auth_wire_one_input, {alphabet, sizeof alphabet - 1}, 5034, 4000, 3, 120);
}

}  // namespace
}  // namespace poplar::fuzz
