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
#include <string>
#include <string_view>

namespace poplar::core {

// Streaming encoder for RETR (all lines) and TOP (header, blank line, then n body lines).
class message_encoder {
public:
    // body_lines: nullopt for RETR; n for "TOP msg n" (RFC 1939 §7).
    explicit message_encoder(std::optional<std::uint64_t> body_lines = std::nullopt);

    // Appends the wire form of the next stored bytes to `out`. Returns false once TOP has produced
    // all the lines it wants, so the caller can stop reading the file early.
    bool feed(std::string_view stored, std::string& out);

    // At end of input: completes a final line that had no newline and appends ".\r\n".
    void finish(std::string& out);

private:
    std::optional<std::uint64_t> body_lines_;
    std::uint64_t body_lines_sent_ = 0;
    bool at_line_start_ = true;
    bool pending_cr_ = false;   // a CR ended the previous chunk; its meaning depends on the next byte
    bool in_body_ = false;      // past the blank line ending the header
    bool line_empty_ = true;    // current line has no content bytes yet (to find the blank line)
    bool done_ = false;
};

// Counts a message's virtual size incrementally, by the same rules as message_encoder.
class virtual_size_counter {
public:
    void feed(std::string_view stored);
    std::uint64_t finish();

private:
    std::uint64_t size_ = 0;
    bool pending_cr_ = false;
    bool at_line_start_ = true;
};

// Convenience for whole buffers.
std::uint64_t virtual_size(std::string_view stored);

}  // namespace poplar::core
