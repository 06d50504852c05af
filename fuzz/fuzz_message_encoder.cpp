// libFuzzer target: core::message_encoder and virtual_size over random messages and chunkings.
//
// Input: byte 0 picks the TOP line count, bytes 1-4 seed the chunk sizes, the rest is the stored
// message. Checked, for RETR and TOP alike:
//   * the output over the random chunking equals the single-chunk output, and equals a simple
//     whole-message reference encoder (the rules message_encoder.h states);
//   * every LF in the output is part of a CRLF, and the output ends in ".\r\n";
//   * no line starts with a single "." except the terminator (dot-stuffing);
//   * RETR without its terminator and dot-stuffing has exactly virtual_size() octets, and the
//     incremental virtual_size_counter over the same chunking agrees;
//   * TOP output (without terminator) is a prefix of RETR output.
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/message_encoder.h"
#include "fuzz_harness.h"

namespace poplar::fuzz {

namespace {

// The wire form computed from the whole message at once, as plainly as possible.
std::string reference_encode(std::string_view stored, std::optional<std::uint64_t> top) {
    std::vector<std::string_view> lines;
    std::size_t start = 0;
    while (start < stored.size()) {
        const std::size_t lf = stored.find('\n', start);
        if (lf == std::string_view::npos) {
            lines.push_back(stored.substr(start));  // final line without newline; a CR is content
            break;
        }
        std::string_view line = stored.substr(start, lf - start);
        if (!line.empty() && line.back() == '\r') {
            line.remove_suffix(1);
        }
        lines.push_back(line);
        start = lf + 1;
    }
    std::string out;
    bool in_body = false;
    std::uint64_t body_sent = 0;
    for (std::string_view line : lines) {
        if (top && in_body && body_sent == *top) {
            break;
        }
        if (!line.empty() && line[0] == '.') {
            out += '.';
        }
        out.append(line);
        out += "\r\n";
        if (in_body) {
            ++body_sent;
        } else if (line.empty()) {
            in_body = true;
        }
    }
    out += ".\r\n";
    return out;
}

struct chunked {
    core::output_buffer out;
    std::uint64_t size;
};

chunked encode_chunked(std::string_view stored, std::optional<std::uint64_t> top, std::uint32_t seed) {
    core::message_encoder enc(top);
    core::virtual_size_counter counter;
    chunk_sizes sizes(seed);
    chunked r;
    bool want_more = true;
    while (!stored.empty()) {
        const std::string_view chunk = stored.substr(0, sizes.next(9));  // empty chunks too
        stored.remove_prefix(chunk.size());
        counter.feed(chunk);
        if (want_more) {
            want_more = enc.feed(chunk, r.out);
        }
    }
    enc.finish(r.out);
    r.size = counter.finish();
    return r;
}

std::string encode_whole(std::string_view stored, std::optional<std::uint64_t> top) {
    core::message_encoder enc(top);
    core::output_buffer out;
    enc.feed(stored, out);
    enc.finish(out);
    return std::string(out.view());
}

void check_wire_form(std::string_view wire) {
    POPLAR_FUZZ_CHECK(wire.size() >= 3 && wire.substr(wire.size() - 3) == ".\r\n");
    std::size_t line_start = 0;
    for (std::size_t i = 0; i < wire.size(); ++i) {
        if (wire[i] != '\n') {
            continue;
        }
        POPLAR_FUZZ_CHECK(i > line_start && wire[i - 1] == '\r');  // every line ends in CRLF
        const std::string_view line = wire.substr(line_start, i + 1 - line_start);
        const bool terminator = i + 1 == wire.size();
        if (terminator) {
            POPLAR_FUZZ_CHECK(line == ".\r\n");
        } else if (line[0] == '.') {
            POPLAR_FUZZ_CHECK(line.size() >= 2 && line[1] == '.');  // stuffed
        }
        line_start = i + 1;
    }
    POPLAR_FUZZ_CHECK(line_start == wire.size());
}

// The wire form without terminator and without the dot added to stuffed lines.
std::size_t unstuffed_size(std::string_view wire) {
    wire.remove_suffix(3);
    std::size_t n = wire.size();
    bool at_line_start = true;
    for (char c : wire) {
        if (at_line_start && c == '.') {
            --n;
        }
        at_line_start = c == '\n';
    }
    return n;
}

}  // namespace

int message_encoder_one_input(const std::uint8_t* data, std::size_t size) {
    byte_reader in(data, size);
    const std::uint8_t top_byte = in.byte();
    const std::uint64_t top_lines = top_byte >= 0xF8 ? (std::uint64_t{1} << 40) : top_byte % 8;
    const std::uint32_t seed = in.u32();
    const std::string_view stored = in.rest();

    const std::string retr = encode_whole(stored, std::nullopt);
    const std::string top = encode_whole(stored, top_lines);
    check_wire_form(retr);
    check_wire_form(top);
    POPLAR_FUZZ_CHECK(retr == reference_encode(stored, std::nullopt));
    POPLAR_FUZZ_CHECK(top == reference_encode(stored, top_lines));

    const chunked retr_chunked = encode_chunked(stored, std::nullopt, seed);
    const chunked top_chunked = encode_chunked(stored, top_lines, seed);
    POPLAR_FUZZ_CHECK(retr_chunked.out.view() == retr);
    POPLAR_FUZZ_CHECK(top_chunked.out.view() == top);

    const std::uint64_t vsize = core::virtual_size(stored);
    POPLAR_FUZZ_CHECK(vsize == unstuffed_size(retr));
    POPLAR_FUZZ_CHECK(retr_chunked.size == vsize);

    POPLAR_FUZZ_CHECK(retr.compare(0, top.size() - 3, top, 0, top.size() - 3) == 0);
    if (stored.empty()) {
        POPLAR_FUZZ_CHECK(retr == ".\r\n" && vsize == 0);
    }
    return 0;
}

}  // namespace poplar::fuzz

#ifndef POPLAR_FUZZ_NO_ENTRY_POINT
extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    return poplar::fuzz::message_encoder_one_input(data, size);
}
#endif
