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
#include <cstring>
#include <optional>
#include <string>
#include <string_view>

namespace poplar::core {

namespace detail {
// The one place the line rule lives: splits stored bytes, across chunk boundaries, into line
// content and line ends. A CR directly before LF belongs to the line end; any other CR is content.
// Both the encoder and the size counter use it, so STAT/LIST can never disagree with RETR.
class line_splitter {
public:
    // Calls on_content(std::string_view) for content bytes and on_end() -> bool at each line end;
    // stops early (returning false) when on_end() returns false.
    template <class Content, class End>
    bool feed(std::string_view in, Content&& on_content, End&& on_end) {
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

    // At end of input: a CR that ended the last chunk was content after all.
    template <class Content>
    void finish(Content&& on_content) {
        if (pending_cr_) {
            pending_cr_ = false;
            on_content(std::string_view("\r"));
        }
    }

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
    bool feed(std::string_view stored, std::string& out);

    // At end of input: completes a final line that had no newline and appends ".\r\n".
    void finish(std::string& out);

private:
    void append_content(std::string_view content, std::string& out);
    bool end_line(std::string& out);

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
