// The configuration loader's fuzz harness (fuzz/fuzz_config.cpp) over its seeds and generated
// TOML-ish text.
#include "fuzz_harness.h"
#include "fuzz_regression.h"

namespace poplar::fuzz {
namespace {

TEST(FuzzRegression, Config) {
    EXPECT_GT(testing::run_seeds(config_one_input, "config"), 0u);
    testing::run_generated(config_one_input, "[]=\"\n #.,:/%0123456789abcdeflistenpop3sauthserver_", 8314, 1500, 0, 120);
}

}  // namespace
}  // namespace poplar::fuzz
