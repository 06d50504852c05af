// Runs the libFuzzer harnesses (fuzz/*.cpp) as ordinary tests: over the committed seed corpus
// (fuzz/corpus/<target>/) and over a fixed set of generated inputs, so CI exercises the harness
// code and its invariants with any compiler. A violated invariant aborts the test binary.
#include <gtest/gtest.h>

#include <cstdint>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <random>
#include <string>
#include <string_view>
#include <vector>

#include "fuzz_harness.h"

namespace poplar::fuzz {
namespace {

using harness = int (*)(const std::uint8_t*, std::size_t);

int run(harness h, std::string_view input) {
    return h(reinterpret_cast<const std::uint8_t*>(input.data()), input.size());
}

// Every file of fuzz/corpus/<name>/; the count, so a test can insist the corpus is not empty.
std::size_t run_corpus(harness h, const char* name) {
    const std::filesystem::path dir = std::filesystem::path(POPLAR_FUZZ_CORPUS_DIR) / name;
    std::size_t n = 0;
    for (const auto& entry : std::filesystem::directory_iterator(dir)) {
        if (!entry.is_regular_file()) {
            continue;
        }
        std::ifstream f(entry.path(), std::ios::binary);
        const std::string input((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
        SCOPED_TRACE(entry.path().string());
        EXPECT_EQ(run(h, input), 0);
        ++n;
    }
    return n;
}

// Random bytes drawn mostly from the characters that matter to the protocol.
std::string random_bytes(std::mt19937& rng, std::size_t max_len) {
    static constexpr std::string_view alphabet = "\r\n\r\n..  aZ0\x00\xff";
    std::uniform_int_distribution<std::size_t> len(0, max_len);
    std::uniform_int_distribution<int> any(0, 255);
    std::uniform_int_distribution<std::size_t> pick(0, alphabet.size() - 1);
    std::string s(len(rng), '\0');
    for (char& c : s) {
        c = any(rng) < 200 ? alphabet[pick(rng)] : static_cast<char>(any(rng));
    }
    return s;
}

TEST(FuzzRegression, LineFramer) {
    EXPECT_GT(run_corpus(line_framer_one_input, "line_framer"), 0u);
    std::mt19937 rng(1939);
    for (int i = 0; i < 2000; ++i) {
        EXPECT_EQ(run(line_framer_one_input, random_bytes(rng, 300)), 0);
    }
}

TEST(FuzzRegression, MessageEncoder) {
    EXPECT_GT(run_corpus(message_encoder_one_input, "message_encoder"), 0u);
    std::mt19937 rng(2449);
    for (int i = 0; i < 2000; ++i) {
        EXPECT_EQ(run(message_encoder_one_input, random_bytes(rng, 200)), 0);
    }
}

TEST(FuzzRegression, Session) {
    EXPECT_GT(run_corpus(session_one_input, "session"), 0u);
    // Random dialogues from a vocabulary that reaches every state.
    static const std::vector<std::string> vocabulary = {
        "USER u", "PASS p", "PASS x", "USER nobody", "APOP u 0123456789abcdef0123456789abcdef",
        "AUTH", "AUTH PLAIN", "AUTH PLAIN AHUAcA==", "AUTH PLAIN =", "AUTH LOGIN", "dQ==", "cA==",
        "AHUAcA==", "*", "!!", "STLS", "CAPA", "STAT", "LIST", "LIST 1", "LIST 9", "UIDL", "UIDL 2",
        "RETR 1", "RETR 2", "RETR 3", "RETR 4", "TOP 1 0", "TOP 2 1", "TOP 4 9", "DELE 1", "DELE 2",
        "RSET", "NOOP", "QUIT", "", "BOGUS", "LIST  1", "RETR 99999999999999999999", "TOP 1 -1",
        std::string(600, 'A'), "USER " + std::string(256, 'u'),
    };
    std::mt19937 rng(5034);
    std::uniform_int_distribution<int> byte(0, 255);
    std::uniform_int_distribution<std::size_t> word(0, vocabulary.size() - 1);
    std::uniform_int_distribution<int> count(0, 40);
    for (int i = 0; i < 1500; ++i) {
        std::string input;
        for (int b = 0; b < 3; ++b) {
            input += static_cast<char>(byte(rng));
        }
        // Half of the dialogues start with a login, so the transaction state is well covered.
        if (i % 2 == 0) {
            input += "USER u\r\nPASS p\r\n";
        }
        for (int n = count(rng); n > 0; --n) {
            input += vocabulary[word(rng)];
            input += (byte(rng) & 1) ? "\r\n" : "\n";
        }
        EXPECT_EQ(run(session_one_input, input), 0);
    }
}

}  // namespace
}  // namespace poplar::fuzz
