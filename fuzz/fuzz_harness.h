// Shared pieces of poplar's libFuzzer harnesses: the entry points, an input reader, a check macro.
//
// Each fuzz_*.cpp defines its harness as a plain function (declared here) and, unless
// POPLAR_FUZZ_NO_ENTRY_POINT is defined, the LLVMFuzzerTestOneInput that libFuzzer calls. The unit
// tests compile the same files with POPLAR_FUZZ_NO_ENTRY_POINT and run the harnesses over a fixed
// corpus (tests/unit/core/fuzz_regression_test.cpp), so CI exercises them without clang.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string_view>

namespace poplar::fuzz {

int line_framer_one_input(const std::uint8_t* data, std::size_t size);
int message_encoder_one_input(const std::uint8_t* data, std::size_t size);
int session_one_input(const std::uint8_t* data, std::size_t size);
int proxy_header_one_input(const std::uint8_t* data, std::size_t size);
int maildir_names_one_input(const std::uint8_t* data, std::size_t size);
int config_one_input(const std::uint8_t* data, std::size_t size);
int auth_wire_one_input(const std::uint8_t* data, std::size_t size);
int passwd_file_one_input(const std::uint8_t* data, std::size_t size);

// Consumes fuzz input: control bytes first, the rest as payload. Past the end, bytes read as 0.
class byte_reader {
public:
    byte_reader(const std::uint8_t* data, std::size_t size) : data_(data), size_(size) {}
    std::uint8_t byte() { return pos_ < size_ ? data_[pos_++] : 0; }
    std::uint32_t u32() {
        std::uint32_t v = 0;
        for (int i = 0; i < 4; ++i) {
            v = (v << 8) | byte();
        }
        return v;
    }
    std::string_view take(std::size_t n) {
        n = n < size_ - pos_ ? n : size_ - pos_;
        std::string_view s(reinterpret_cast<const char*>(data_ + pos_), n);
        pos_ += n;
        return s;
    }
    std::string_view rest() { return take(size_ - pos_); }
    bool empty() const { return pos_ >= size_; }

private:
    const std::uint8_t* data_;
    std::size_t size_;
    std::size_t pos_ = 0;
};

// Deterministic chunk sizes from a seed (xorshift32), so a crashing input replays exactly.
class chunk_sizes {
public:
    explicit chunk_sizes(std::uint32_t seed) : s_(seed | 1u) {}
    std::size_t next(std::size_t max) {
        s_ ^= s_ << 13;
        s_ ^= s_ >> 17;
        s_ ^= s_ << 5;
        return s_ % (max + 1);
    }

private:
    std::uint32_t s_;
};

}  // namespace poplar::fuzz

// An invariant the harness asserts: a violation aborts, which libFuzzer reports as a crash with
// the input that caused it (and which fails the unit test running the regression corpus).
#define POPLAR_FUZZ_CHECK(cond)                                                                   \
    do {                                                                                          \
        if (!(cond)) {                                                                            \
            std::fprintf(stderr, "%s:%d: fuzz invariant failed: %s\n", __FILE__, __LINE__, #cond); \
            std::abort();                                                                         \
        }                                                                                         \
    } while (false)
