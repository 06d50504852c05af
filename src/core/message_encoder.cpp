// RFC 1939 §3 multi-line encoding of stored messages (CRLF normalisation, dot-stuffing, TOP), and
// the matching virtual size.
#include "core/message_encoder.h"

#include <algorithm>
#include <bit>
#include <cassert>
#include <cstddef>
#include <cstdint>
#include <cstring>

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

namespace poplar::core {

namespace {

// Room reserved in `out` for the wire form of n stored octets: mail with LF ends and lines of 32
// octets or more fits, so `out` keeps one allocation from chunk to chunk (the connection clears
// it after each write and frees it only when the session goes idle). Other mail (up to 2n + 1
// octets: every octet a bare LF or a line-opening ".", plus a held-over CR) makes it grow, as
// it would for append.
constexpr std::size_t reserve_for(std::size_t n) { return n + n / 32 + 64; }

// Room encode_retr asks for at the start of each line, so that a line of up to about this length
// is copied by the block loop with no other check: the stuffed ".", the line, CRLF.
constexpr std::size_t retr_line_room = 256;

// Makes `out` end at least `need` octets after `p`, which points into it, and returns where `p`
// points now. The room is the whole capacity (output_buffer does not zero it), or more where
// `need` passes it.
[[gnu::noinline]] char* make_room(output_buffer& out, char* p, std::size_t need) {
    const std::size_t written = static_cast<std::size_t>(p - out.data());
    out.resize_for_overwrite(std::max(out.capacity(), written + need));
    return out.data() + written;
}

#if defined(__SSE2__)
// Copies the 32 octets at `from` to `to` and returns which of them are LF (bit i: from[i]). One
// pass that both copies and searches: a line of mail is a block or two, so this beats a memchr and
// a memcpy call per line. Other targets use those for every line.
inline std::uint32_t copy_block_find_lf(const char* from, char* to) {
    const __m128i lf = _mm_set1_epi8('\n');
    const __m128i a = _mm_loadu_si128(reinterpret_cast<const __m128i*>(from));
    const __m128i b = _mm_loadu_si128(reinterpret_cast<const __m128i*>(from + 16));
    _mm_storeu_si128(reinterpret_cast<__m128i*>(to), a);
    _mm_storeu_si128(reinterpret_cast<__m128i*>(to + 16), b);
    const auto bits = [&](__m128i v) { return static_cast<std::uint32_t>(_mm_movemask_epi8(_mm_cmpeq_epi8(v, lf))); };
    return bits(a) | bits(b) << 16;
}
constexpr std::size_t block = 32;
#endif

}  // namespace

// The line rule, written out twice (see line_splitter in the header). Any change here is a change
// to what RETR sends, to what TOP sends and to the size STAT and LIST report: make it in both
// feed() and encode_retr(), and in reference_encode() in tests/unit/core/message_encoder_test.cpp.

template <class Content, class End>
bool detail::line_splitter::feed(std::string_view in, Content&& on_content, End&& on_end) {
    std::size_t pos = 0;
    if (pending_cr_ && !in.empty()) {
        pending_cr_ = false;
        if (in.front() != '\n') {
            on_content(std::string_view("\r"));
        }
    }
    while (pos < in.size()) {
        const char* start = in.data() + pos;
        const std::size_t avail = in.size() - pos;
        const void* lf = std::memchr(start, '\n', avail);
        if (lf == nullptr) {
            std::size_t len = avail;
            if (start[len - 1] == '\r') {
                pending_cr_ = true;  // a line end or content: the next byte decides
                --len;
            }
            if (len > 0) {
                on_content(std::string_view(start, len));
            }
            return true;
        }
        const std::size_t len = static_cast<std::size_t>(static_cast<const char*>(lf) - start);
        std::size_t content = len;
        if (content > 0 && start[content - 1] == '\r') {
            --content;
        }
        if (content > 0) {
            on_content(std::string_view(start, content));
        }
        pos += len + 1;
        if (!on_end()) {
            return false;
        }
    }
    return true;
}

// feed() fused with the RFC 1939 §3 writer, for RETR. Appending each content and each CRLF to the
// string separately (a capacity check and a length update each time, through callbacks) cost more
// than finding the lines, so this writes through a raw pointer into room made in steps, and keeps
// its state in locals, where the stores through that pointer cannot force it back to memory.
// Each line is copied to the output as it is searched for its LF; then CRLF is written over its LF
// or over its CRLF (a CR before LF belongs to the line end). A line goes out as found:
//   stored "abc\n"  -> "abc" copied, "\r\n" written over "\n": "abc\r\n";
//   stored "abc\r\n" -> "abc\r" copied, "\r\n" written over "\r\n": the same;
//   stored ".x\n"   -> "." then ".x", then CRLF: "..x\r\n".
void detail::line_splitter::encode_retr(std::string_view in, output_buffer& out, bool& at_line_start) {
    if (in.empty()) {
        return;
    }
    out.reserve(out.size() + reserve_for(in.size()));
    char* p = make_room(out, out.data() + out.size(), 2);
    char* end = out.data() + out.size();
    const char* s = in.data();
    const char* const e = s + in.size();
    bool line_start = at_line_start;
    if (pending_cr_) {
        // The previous chunk ended in CR: it goes out either way, as the line end or as content.
        pending_cr_ = false;
        *p++ = '\r';
        if (*s == '\n') {
            *p++ = '\n';
            ++s;
            line_start = true;
        } else {
            line_start = false;
        }
    }
    while (s != e) {
        if (static_cast<std::size_t>(end - p) < retr_line_room) [[unlikely]] {
            p = make_room(out, p, 3);  // at least the "." and CRLF
            end = out.data() + out.size();
        }
        assert(end - p >= 3);
        *p = '.';
        p += static_cast<std::size_t>(line_start & (*s == '.'));  // dot-stuffing, RFC 1939 §3
        // Copy the line to p and find its LF: k octets of it precede the LF.
        std::size_t k = 0;
        bool found = false;
#if defined(__SSE2__)
        const std::size_t limit = std::min(static_cast<std::size_t>(e - s), static_cast<std::size_t>(end - p) - 2);
        for (; k + block <= limit; k += block) {
            assert(s + k + block <= e && p + k + block + 2 <= end);
            const std::uint32_t lf_bits = copy_block_find_lf(s + k, p + k);
            if (lf_bits != 0) {
                k += static_cast<std::size_t>(std::countr_zero(lf_bits));
                found = true;
                break;
            }
        }
#endif
        if (!found) {
            // Near the end of the chunk, or a long line: the rest of the line the plain way.
            const void* lf = std::memchr(s + k, '\n', static_cast<std::size_t>(e - s) - k);
            const std::size_t len = static_cast<std::size_t>((lf != nullptr ? static_cast<const char*>(lf) : e) - s);
            if (static_cast<std::size_t>(end - p) < len + 2) {
                p = make_room(out, p, len + 2);
                end = out.data() + out.size();
            }
            std::memcpy(p + k, s + k, len - k);
            k = len;
            found = lf != nullptr;
        }
        if (!found) {
            // The chunk ends inside this line (k = e - s > 0). A final CR waits for the next
            // chunk, which says whether it is the line end or content.
            std::size_t content = k;
            if (s[k - 1] == '\r') {
                pending_cr_ = true;
                --content;
            }
            if (content > 0) {
                line_start = false;
            }
            p += content;
            assert(p <= end);
            break;
        }
        const bool cr = k > 0 && s[k - 1] == '\r';
        char* line_end = p + k - (cr ? 1 : 0);
        assert(line_end + 2 <= end);
        line_end[0] = '\r';
        line_end[1] = '\n';
        p = line_end + 2;
        s += k + 1;
        line_start = true;
    }
    out.resize_for_overwrite(static_cast<std::size_t>(p - out.data()));  // drops the room not used
    at_line_start = line_start;
}

template <class Content>
void detail::line_splitter::finish(Content&& on_content) {
    if (pending_cr_) {
        pending_cr_ = false;
        on_content(std::string_view("\r"));
    }
}

// TOP n 0 still sends the header and the blank line: done_ is set once that line is out.
message_encoder::message_encoder(std::optional<std::uint64_t> body_lines) : body_lines_(body_lines) {}

// A stored message is a sequence of lines (detail::line_splitter); every line goes out as its
// content + CRLF, dot-stuffed (RFC 1939 §3). RETR's chunks are written by encode_retr; these two
// write TOP's, and the end of every message (finish).
void message_encoder::append_content(std::string_view content, output_buffer& out) {
    if (at_line_start_) {
        at_line_start_ = false;
        if (content.front() == '.') {
            out += '.';
        }
    }
    out.append(content);
}

bool message_encoder::end_line(output_buffer& out) {
    const bool empty = at_line_start_;
    at_line_start_ = true;
    out += "\r\n";
    if (!body_lines_) {
        return true;
    }
    if (in_body_) {
        if (++body_lines_sent_ >= *body_lines_) {
            done_ = true;
        }
    } else if (empty) {
        // The blank line that ends the header (RFC 5322 §2.1) has been sent.
        in_body_ = true;
        done_ = *body_lines_ == 0;
    }
    return !done_;
}

bool message_encoder::feed(std::string_view stored, output_buffer& out) {
    if (done_) {
        return false;
    }
    if (!body_lines_) {
        splitter_.encode_retr(stored, out, at_line_start_);  // RETR: the hot path
        return true;
    }
    out.reserve(out.size() + reserve_for(stored.size()));
    return splitter_.feed(
        stored, [&](std::string_view c) { append_content(c, out); }, [&] { return end_line(out); });
}

void message_encoder::finish(output_buffer& out) {
    if (!done_) {
        splitter_.finish([&](std::string_view c) { append_content(c, out); });
        if (!at_line_start_) {
            out += "\r\n";  // a final line without newline still ends in CRLF
        }
    }
    out += ".\r\n";
    done_ = true;
}

void virtual_size_counter::feed(std::string_view stored) {
    splitter_.feed(
        stored,
        [&](std::string_view c) {
            size_ += c.size();
            at_line_start_ = false;
        },
        [&] {
            size_ += 2;
            at_line_start_ = true;
            return true;
        });
}

std::uint64_t virtual_size_counter::finish() {
    splitter_.finish([&](std::string_view c) {
        size_ += c.size();
        at_line_start_ = false;
    });
    if (!at_line_start_) {
        size_ += 2;
        at_line_start_ = true;
    }
    return size_;
}

std::uint64_t virtual_size(std::string_view stored) {
    virtual_size_counter c;
    c.feed(stored);
    return c.finish();
}

}  // namespace poplar::core
