// Running a libFuzzer harness (fuzz/*.cpp) as an ordinary test: over its committed seeds and
// over generated inputs, so CI checks the harness's invariants with any compiler.
#pragma once

#include <gtest/gtest.h>

#include <cstdint>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <random>
#include <string>
#include <string_view>

namespace poplar::fuzz::testing {

using harness = int (*)(const std::uint8_t*, std::size_t);

inline int run(harness h, std::string_view input) {
    return h(reinterpret_cast<const std::uint8_t*>(input.data()), input.size());
}

// Every file of fuzz/corpus/<name>/ (POPLAR_FUZZ_CORPUS_DIR); how many there were.
inline std::size_t run_seeds(harness h, const char* name) {
    std::size_t seeds = 0;
    for (const auto& entry : std::filesystem::directory_iterator(std::filesystem::path(POPLAR_FUZZ_CORPUS_DIR) / name)) {
        std::ifstream f(entry.path(), std::ios::binary);
        const std::string input((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
        SCOPED_TRACE(entry.path().string());
        EXPECT_EQ(run(h, input), 0);
        ++seeds;
    }
    return seeds;
}

// `count` inputs: a first byte cycling through 0..modes-1 (the harness's mode byte; none when
// modes is 0), then up to `max_len` bytes drawn from `alphabet`, the characters the format under
// test cares about.
inline void run_generated(harness h, std::string_view alphabet, unsigned seed, int count, int modes,
                          std::size_t max_len) {
    std::mt19937 rng(seed);
    std::uniform_int_distribution<std::size_t> len(0, max_len);
    std::uniform_int_distribution<std::size_t> pick(0, alphabet.size() - 1);
    for (int i = 0; i < count; ++i) {
        std::string input = modes > 0 ? std::string(1, static_cast<char>(i % modes)) : std::string();
        for (std::size_t n = len(rng); n > 0; --n) {
            input += alphabet[pick(rng)];
        }
        EXPECT_EQ(run(h, input), 0);
    }
}

}  // namespace poplar::fuzz::testing
