// The Maildir parsers' fuzz harness (fuzz/fuzz_maildir_names.cpp) as an ordinary test: over its
// seed corpus and a fixed set of generated names and index texts.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <iterator>
#include <random>
#include <string>

#include "fuzz_harness.h"

namespace poplar::fuzz {
namespace {

int run(std::string_view input) {
    return maildir_names_one_input(reinterpret_cast<const std::uint8_t*>(input.data()), input.size());
}

TEST(FuzzRegression, MaildirNames) {
    std::size_t seeds = 0;
    for (const auto& entry :
         std::filesystem::directory_iterator(std::filesystem::path(POPLAR_FUZZ_CORPUS_DIR) / "maildir_names")) {
        std::ifstream f(entry.path(), std::ios::binary);
        const std::string input((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
        SCOPED_TRACE(entry.path().string());
        EXPECT_EQ(run(input), 0);
        ++seeds;
    }
    EXPECT_GT(seeds, 0u);
    static constexpr std::string_view alphabet = "0123456789 ncx.:,SW=2\n\r\t-";
    std::mt19937 rng(1939);
    std::uniform_int_distribution<std::size_t> len(0, 200);
    std::uniform_int_distribution<std::size_t> pick(0, alphabet.size() - 1);
    for (int i = 0; i < 4000; ++i) {
        std::string input(1, static_cast<char>(i % 8));
        for (std::size_t n = len(rng); n > 0; --n) {
            input += alphabet[pick(rng)];
        }
        EXPECT_EQ(run(input), 0);
    }
}

}  // namespace
}  // namespace poplar::fuzz
