// The passwd-file fuzz harness (fuzz/fuzz_passwd_file.cpp) over its seeds and generated input.
#include "fuzz_harness.h"
#include "fuzz_regression.h"

namespace poplar::fuzz {
namespace {

TEST(FuzzRegression, PasswdFile) {
    EXPECT_GT(testing::run_seeds(passwd_file_one_input, "passwd_file"), 0u);
    static constexpr char alphabet[] = "ab:{}PLAIN#\n\r \t=,/nologin reason allow_nets require_tls 10.0.0.0/8\x00";
    testing::run_generated(passwd_file_one_input, {alphabet, sizeof alphabet - 1}, 1939, 4000, 0, 200);
}

}  // namespace
}  // namespace poplar::fuzz
