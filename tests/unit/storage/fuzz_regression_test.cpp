// The Maildir parsers' fuzz harness (fuzz/fuzz_maildir_names.cpp) over its seeds and generated
// names and index texts.
#include "fuzz_harness.h"
#include "fuzz_regression.h"

namespace poplar::fuzz {
namespace {

TEST(FuzzRegression, MaildirNames) {
    EXPECT_GT(testing::run_seeds(maildir_names_one_input, "maildir_names"), 0u);
    testing::run_generated(maildir_names_one_input, "0123456789 ncx.:,SW=2\n\r\t-", 1939, 4000, 8, 200);
}

}  // namespace
}  // namespace poplar::fuzz
