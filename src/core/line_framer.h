// Splits the bytes a POP3 peer sends into command lines (RFC 1939 §3: lines end in CRLF).
//
// Pure: no I/O. The connection writes received bytes into prepare()/commit() and pulls complete
// lines with next(). A bare LF also ends a line (lenient, as every deployed server is), and the CR
// before it is stripped. A line longer than the limit is reported once as too_long the moment it
// exceeds the limit and then discarded up to and including its LF, so it can never be split into
// two commands.
#pragma once

#include <cstddef>
#include <optional>
#include <span>
#include <string_view>
#include <vector>

namespace poplar::core {

class line_framer {
public:
    explicit line_framer(std::size_t max_line);
    ~line_framer();
    line_framer(const line_framer&) = delete;
    line_framer& operator=(const line_framer&) = delete;

    // The limit for lines not yet returned (the SASL exchange raises it, limits.h).
    void set_max_line(std::size_t max_line);

    // Space for at least `n` more received bytes; commit() says how many were written.
    std::span<char> prepare(std::size_t n);
    void commit(std::size_t n);

    struct event {
        enum class kind { line, too_long };
        kind what;
        std::string_view text;  // kind::line: the line without CR/LF; valid until the next call
    };
    // The next complete line, or nullopt when more bytes are needed.
    std::optional<event> next();

    // True when bytes after the last returned line are buffered (a pipelining client).
    bool has_buffered() const;
    // Drops everything buffered: after STLS, bytes sent before the handshake must not run as
    // commands afterwards (RFC 2595 §3.1, CVE-2021-38542).
    void discard_buffered();
    // Frees the buffer's memory when nothing is buffered, so idle sessions stay small. The bytes
    // are wiped first: they held PASS and AUTH lines.
    void shrink();

private:
    std::vector<char> buf_;
    std::size_t begin_ = 0;    // first unconsumed byte
    std::size_t end_ = 0;      // one past the last received byte
    std::size_t scanned_ = 0;  // bytes from begin_ already searched for LF
    std::size_t max_line_;
    bool discarding_ = false;  // inside an over-long line, skipping to its LF
};

}  // namespace poplar::core
