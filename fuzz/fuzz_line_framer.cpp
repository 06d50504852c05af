// libFuzzer target: core::line_framer against a byte-at-a-time reference model.
//
// Input: byte 0 picks the line limit (small limits reach the edge cases quickly), then each
// control byte picks a chunk size and an operation, followed by that many payload bytes. The
// framer's events after every commit must equal the reference's, so chunking never changes the
// result. Also: no line longer than the limit, no line containing LF, has_buffered() exact.
#include <cstring>
#include <string>
#include <vector>

#include "core/line_framer.h"
#include "fuzz_harness.h"

namespace poplar::fuzz {

namespace {

constexpr std::string_view too_long = "\x01<too long>";  // cannot be a line: lines here are short

// The rule line_framer.h documents, one byte at a time.
class reference_framer {
public:
    explicit reference_framer(std::size_t max_line) : max_(max_line) {}

    void feed(std::string_view bytes, std::vector<std::string>& events) {
        for (char c : bytes) {
            if (c == '\n') {
                if (!reported_) {
                    std::string line = std::move(cur_);
                    if (!line.empty() && line.back() == '\r') {
                        line.pop_back();
                    }
                    events.push_back(line.size() > max_ ? std::string(too_long) : std::move(line));
                }
                cur_.clear();
                reported_ = false;
                continue;
            }
            if (reported_) {
                continue;  // rest of an over-long line
            }
            cur_ += c;
            // Reported as soon as the line cannot fit even if a CR LF follows.
            if (cur_.size() > max_ + 1) {
                events.emplace_back(too_long);
                reported_ = true;
                cur_.clear();
            }
        }
    }
    void discard() {
        cur_.clear();
        reported_ = false;
    }
    bool has_buffered() const { return !cur_.empty(); }

private:
    std::size_t max_;
    std::string cur_;
    bool reported_ = false;
};

}  // namespace

int line_framer_one_input(const std::uint8_t* data, std::size_t size) {
    byte_reader in(data, size);
    const std::uint8_t limit_byte = in.byte();
    const std::size_t max_line = limit_byte < 0xF0 ? 1 + limit_byte % 24 : 512;
    core::line_framer framer(max_line);
    reference_framer ref(max_line);

    while (!in.empty()) {
        const std::uint8_t op = in.byte();
        const std::string_view chunk = in.take(op & 0x1F);
        // Sometimes prepare more than is committed, as a socket read that returns less.
        const std::size_t extra = (op & 0x20) ? 100 : 0;
        std::span<char> space = framer.prepare(chunk.size() + extra);
        POPLAR_FUZZ_CHECK(space.size() >= chunk.size() + extra);
        if (!chunk.empty()) {
            std::memcpy(space.data(), chunk.data(), chunk.size());
        }
        framer.commit(chunk.size());

        std::vector<std::string> got;
        while (auto ev = framer.next()) {
            if (ev->what == core::line_framer::event::kind::too_long) {
                got.emplace_back(too_long);
                continue;
            }
            POPLAR_FUZZ_CHECK(ev->text.size() <= max_line);
            POPLAR_FUZZ_CHECK(ev->text.find('\n') == std::string_view::npos);
            got.emplace_back(ev->text);
        }
        std::vector<std::string> expected;
        ref.feed(chunk, expected);
        POPLAR_FUZZ_CHECK(got == expected);
        POPLAR_FUZZ_CHECK(framer.has_buffered() == ref.has_buffered());

        if (op & 0x40) {
            framer.shrink();  // must be harmless at any point
        }
        if ((op & 0xC0) == 0xC0) {
            framer.discard_buffered();
            ref.discard();
            POPLAR_FUZZ_CHECK(!framer.has_buffered());
        }
    }
    return 0;
}

}  // namespace poplar::fuzz

#ifndef POPLAR_FUZZ_NO_ENTRY_POINT
extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    return poplar::fuzz::line_framer_one_input(data, size);
}
#endif
