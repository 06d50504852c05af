// The RFC 1939 §3 multi-line form of a stored message, and its size.
//
// Pure: no I/O. A stored message may use LF or CRLF line ends (Postfix writes LF, some tools CRLF)
// and may lack a final newline. What a client receives is defined here, once:
//   * every line ends in CRLF: a bare LF becomes CRLF; a CR not followed by LF is kept as a byte;
//   * a final line with no newline gets CRLF appended; an empty message has no lines;
//   * before sending, a line starting with "." gets another "." (dot-stuffing), and ".\r\n" ends
//     the reply.
// The virtual size is the octet count of that form before dot-stuffing and without the final
// ".\r\n"; STAT and LIST report it, and it must equal what RETR sends (RFC 1939 §5 note).
#pragma once

#include <cstdint>
#include <optional>
#include <string_view>

#include "core/output_buffer.h"

namespace poplar::core {

namespace detail {
// The one place the line rule lives: splits stored bytes, across chunk boundaries, into line
// content and line ends. A CR directly before LF belongs to the line end; any other CR is content.
// Both the encoder and the size counter use it, so STAT/LIST can never disagree with RETR.
//
// The rule is written out twice, side by side in message_encoder.cpp: feed() hands the pieces to
// callbacks (TOP, which counts lines and stops early, and the size counter); encode_retr() is the
// same rule fused with RETR's writer, because RETR is hot (through feed(), about a tenth of server
// CPU went to it). The unit tests check that the two agree on every message of up to 6 octets
// and on random longer ones, cut into chunks every way.
class line_splitter {
public:
    // Calls on_content(std::string_view) for content bytes and on_end() -> bool at each line end;
    // stops early (returning false) when on_end() returns false. Defined in message_encoder.cpp,
    // like finish(): that file is their only user.
    template <class Content, class End>
    bool feed(std::string_view in, Content&& on_content, End&& on_end);

    // Appends to `out` the RFC 1939 §3 form of the lines in `in`: each line's content, with a "."
    // added in front if it starts with one, then CRLF. at_line_start (no content yet on the
    // current line) carries the dot-stuffing state from chunk to chunk, as message_encoder's does.
    void encode_retr(std::string_view in, output_buffer& out, bool& at_line_start);

    // At end of input: a CR that ended the last chunk was content after all.
    template <class Content>
    void finish(Content&& on_content);

private:
    bool pending_cr_ = false;
};
}  // namespace detail

// Streaming encoder for RETR (all lines) and TOP (header, blank line, then n body lines).
class message_encoder {
public:
    // body_lines: nullopt for RETR; n for "TOP msg n" (RFC 1939 §7).
    explicit message_encoder(std::optional<std::uint64_t> body_lines = std::nullopt);

    // Appends the wire form of the next stored bytes to `out`. Returns false once TOP has produced
    // all the lines it wants, so the caller can stop reading the file early.
    bool feed(std::string_view stored, output_buffer& out);

    // At end of input: completes a final line that had no newline and appends ".\r\n".
    void finish(output_buffer& out);

private:
    void append_content(std::string_view content, output_buffer& out);
    bool end_line(output_buffer& out);

    detail::line_splitter splitter_;
    std::optional<std::uint64_t> body_lines_;
    std::uint64_t body_lines_sent_ = 0;
    bool at_line_start_ = true;  // no content yet on the current line (so an empty line, so far)
    bool in_body_ = false;       // past the blank line ending the header
    bool done_ = false;
};

// Counts a message's virtual size incrementally, by the same rules as message_encoder.
class virtual_size_counter {
public:
    void feed(std::string_view stored);
    std::uint64_t finish();

private:
    detail::line_splitter splitter_;
    std::uint64_t size_ = 0;
    bool at_line_start_ = true;
};

// Convenience for whole buffers.
std::uint64_t virtual_size(std::string_view stored);

}  // namespace poplar::core
