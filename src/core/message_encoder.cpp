// RFC 1939 §3 multi-line encoding of stored messages (CRLF normalisation, dot-stuffing, TOP), and
// the matching virtual size.
#include "core/message_encoder.h"

#include <cstring>

namespace poplar::core {

// TOP n 0 still sends the header and the blank line: done_ is set once that line is out.
message_encoder::message_encoder(std::optional<std::uint64_t> body_lines) : body_lines_(body_lines) {}

// A stored message is a sequence of lines, each ended by LF (with an optional CR before it, which
// belongs to the line end) or by the end of the message. Every line goes out as content + CRLF.
bool message_encoder::feed(std::string_view stored, std::string& out) {
    if (done_) {
        return false;
    }
    out.reserve(out.size() + stored.size() + stored.size() / 32 + 8);
    std::size_t pos = 0;
    if (pending_cr_ && !stored.empty()) {
        pending_cr_ = false;
        if (stored[0] != '\n') {
            // The CR that ended the previous chunk was a lone CR: content, not a line end.
            out += '\r';
            line_empty_ = false;
        }
        // Else the CR + LF pair is handled with the LF below.
    }
    while (pos < stored.size()) {
        if (at_line_start_) {
            at_line_start_ = false;
            line_empty_ = true;
            if (stored[pos] == '.') {
                out += '.';  // dot-stuffing, RFC 1939 §3
            }
        }
        const char* start = stored.data() + pos;
        const std::size_t avail = stored.size() - pos;
        const void* lf = std::memchr(start, '\n', avail);
        if (lf == nullptr) {
            std::size_t len = avail;
            if (start[len - 1] == '\r') {
                pending_cr_ = true;  // decide when the next byte arrives
                --len;
            }
            out.append(start, len);
            if (len > 0) {
                line_empty_ = false;
            }
            return true;
        }
        std::size_t len = static_cast<std::size_t>(static_cast<const char*>(lf) - start);
        std::size_t content = len;
        if (content > 0 && start[content - 1] == '\r') {
            --content;
        }
        out.append(start, content);
        out += "\r\n";
        if (content > 0) {
            line_empty_ = false;
        }
        pos += len + 1;
        at_line_start_ = true;
        if (body_lines_) {
            if (in_body_) {
                if (++body_lines_sent_ >= *body_lines_) {
                    done_ = true;
                    return false;
                }
            } else if (line_empty_) {
                // The blank line that ends the header (RFC 5322 §2.1) has been sent.
                in_body_ = true;
                if (*body_lines_ == 0) {
                    done_ = true;
                    return false;
                }
            }
        }
    }
    return true;
}

void message_encoder::finish(std::string& out) {
    if (!done_) {
        if (pending_cr_) {
            out += '\r';  // a lone CR at the very end is content
            pending_cr_ = false;
            at_line_start_ = false;
        }
        if (!at_line_start_) {
            out += "\r\n";  // a final line without newline still ends in CRLF
        }
    }
    out += ".\r\n";
    done_ = true;
}

void virtual_size_counter::feed(std::string_view stored) {
    std::size_t pos = 0;
    if (pending_cr_ && !stored.empty()) {
        pending_cr_ = false;
        if (stored[0] != '\n') {
            size_ += 1;  // lone CR: one content byte
            at_line_start_ = false;
        }
    }
    while (pos < stored.size()) {
        const char* start = stored.data() + pos;
        const std::size_t avail = stored.size() - pos;
        const void* lf = std::memchr(start, '\n', avail);
        if (lf == nullptr) {
            std::size_t len = avail;
            if (start[len - 1] == '\r') {
                pending_cr_ = true;
                --len;
            }
            size_ += len;
            if (len > 0) {
                at_line_start_ = false;
            }
            return;
        }
        std::size_t len = static_cast<std::size_t>(static_cast<const char*>(lf) - start);
        std::size_t content = len;
        if (content > 0 && start[content - 1] == '\r') {
            --content;
        }
        size_ += content + 2;
        pos += len + 1;
        at_line_start_ = true;
    }
}

std::uint64_t virtual_size_counter::finish() {
    if (pending_cr_) {
        size_ += 1;
        pending_cr_ = false;
        at_line_start_ = false;
    }
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
