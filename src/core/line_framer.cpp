// Splits received bytes into POP3 command lines (RFC 1939 §3), bounding line length.
#include "core/line_framer.h"

#include <cstring>

#include "util/secret.h"

namespace poplar::core {

line_framer::line_framer(std::size_t max_line) : max_line_(max_line) {}

// The buffer held PASS and AUTH lines: wipe it whenever its memory is given back.
line_framer::~line_framer() { util::wipe(std::span<char>(buf_)); }

void line_framer::set_max_line(std::size_t max_line) { max_line_ = max_line; }

std::span<char> line_framer::prepare(std::size_t n) {
    if (begin_ == end_) {
        begin_ = end_ = scanned_ = 0;
    }
    if (buf_.size() - end_ < n) {
        // Compact before growing: consumed lines at the front are dead space.
        if (begin_ > 0) {
            std::memmove(buf_.data(), buf_.data() + begin_, end_ - begin_);
            end_ -= begin_;
            begin_ = 0;
        }
        if (buf_.size() - end_ < n) {
            std::vector<char> bigger(end_ + n);
            if (end_ > 0) {  // an empty vector's data() may be null, which memcpy must not get
                std::memcpy(bigger.data(), buf_.data(), end_);
            }
            util::wipe(std::span<char>(buf_));
            buf_.swap(bigger);
        }
    }
    return {buf_.data() + end_, n};
}

void line_framer::commit(std::size_t n) { end_ += n; }

std::optional<line_framer::event> line_framer::next() {
    while (begin_ + scanned_ < end_) {
        const char* start = buf_.data() + begin_;
        const std::size_t avail = end_ - begin_;
        const void* lf = std::memchr(start + scanned_, '\n', avail - scanned_);
        if (discarding_) {
            // Skip the rest of an over-long line without ever treating it as a command.
            if (lf == nullptr) {
                begin_ = end_;
                scanned_ = 0;
                return std::nullopt;
            }
            begin_ += static_cast<std::size_t>(static_cast<const char*>(lf) - start) + 1;
            scanned_ = 0;
            discarding_ = false;
            continue;
        }
        if (lf == nullptr) {
            scanned_ = avail;
            // The CRLF does not count towards the limit; a lone trailing CR might be its start.
            if (avail > max_line_ + 1) {
                discarding_ = true;
                begin_ = end_;
                scanned_ = 0;
                return event{event::kind::too_long, {}};
            }
            return std::nullopt;
        }
        std::size_t len = static_cast<std::size_t>(static_cast<const char*>(lf) - start);
        begin_ += len + 1;
        scanned_ = 0;
        if (len > 0 && start[len - 1] == '\r') {
            --len;
        }
        if (len > max_line_) {
            return event{event::kind::too_long, {}};
        }
        return event{event::kind::line, std::string_view(start, len)};
    }
    return std::nullopt;
}

bool line_framer::has_buffered() const { return begin_ < end_; }

void line_framer::discard_buffered() {
    begin_ = end_ = scanned_ = 0;
    discarding_ = false;
}

void line_framer::shrink() {
    if (begin_ == end_) {
        begin_ = end_ = scanned_ = 0;
        util::wipe(std::span<char>(buf_));
        std::vector<char>().swap(buf_);
    }
}

}  // namespace poplar::core
