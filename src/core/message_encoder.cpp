// RFC 1939 §3 multi-line encoding of stored messages (CRLF normalisation, dot-stuffing, TOP), and
// the matching virtual size.
#include "core/message_encoder.h"

namespace poplar::core {

// TOP n 0 still sends the header and the blank line: done_ is set once that line is out.
message_encoder::message_encoder(std::optional<std::uint64_t> body_lines) : body_lines_(body_lines) {}

// A stored message is a sequence of lines (detail::line_splitter); every line goes out as its
// content + CRLF, dot-stuffed (RFC 1939 §3).
void message_encoder::append_content(std::string_view content, std::string& out) {
    if (at_line_start_) {
        at_line_start_ = false;
        if (content.front() == '.') {
            out += '.';
        }
    }
    out.append(content);
}

bool message_encoder::end_line(std::string& out) {
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

bool message_encoder::feed(std::string_view stored, std::string& out) {
    if (done_) {
        return false;
    }
    out.reserve(out.size() + stored.size() + stored.size() / 32 + 8);
    return splitter_.feed(
        stored, [&](std::string_view c) { append_content(c, out); }, [&] { return end_line(out); });
}

void message_encoder::finish(std::string& out) {
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
