// The LMTP session fuzz harness (fuzz/fuzz_lmtp_session.cpp) over its seeds and generated input.
#include "fuzz_harness.h"
#include "fuzz_regression.h"

namespace poplar::fuzz {

// Declared here rather than in fuzz_harness.h, which belongs to the other targets' owners.
int lmtp_session_one_input(const std::uint8_t* data, std::size_t size);

namespace {

TEST(FuzzRegression, LmtpSession) {
    EXPECT_GT(testing::run_seeds(lmtp_session_one_input, "lmtp_session"), 0u);
    // Commands, paths and parameters in pieces, dots and line ends, so that generated inputs
    // reach MAIL, RCPT and DATA often enough.
    static constexpr char alphabet[] =
        "LHLO x\nMAIL FROM:<a@b>\nRCPT TO:<c@d>\nDATA\n.\n..\nRSET\nQUIT\nSIZE=9 BODY=8BITMIME\r\n\"@:,\x00\x7f\xff";
    testing::run_generated(lmtp_session_one_input, {alphabet, sizeof alphabet - 1}, 2033, 3000, 0, 400);
}

}  // namespace
}  // namespace poplar::fuzz
