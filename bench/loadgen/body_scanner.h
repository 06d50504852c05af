// Finds the end of a POP3 multi-line reply (RFC 1939 §3) in a byte stream and counts its octets.
//
// Pure: bytes in, counts out. A multi-line reply ends with CRLF "." CRLF; a line of the message
// that begins with "." is sent with one more "." in front (byte-stuffing), so the message's own
// size is the octets on the wire minus the stuffed dots. Only lines that begin with "." matter,
// so the scanner jumps from one "\n." to the next with SIMD and never looks at ordinary lines:
// it runs at memory speed and the load generator stays far from being the bottleneck.
#pragma once

#include <cstddef>
#include <cstdint>

namespace loadgen {

class body_scanner {
public:
    // Consumes bytes from [p, p + n). Stops right after the terminating ".\r\n" (the rest
    // belongs to the next reply), or leaves at most two trailing bytes unconsumed when it cannot
    // yet tell what a line-initial "." is; feed them again followed by more data.
    std::size_t feed(const char* p, std::size_t n);

    bool done() const { return done_; }
    // A line began with "." followed by neither "." nor CRLF: not valid RFC 1939 byte-stuffing.
    bool malformed() const { return malformed_; }
    // Octets before the terminator, as sent (with the stuffed dots).
    std::uint64_t wire_octets() const { return wire_; }
    // The message's size: what LIST reports for it (RFC 1939 §5: exact octet count with CRLF).
    std::uint64_t message_octets() const { return wire_ - stuffed_; }

private:
    std::uint64_t wire_ = 0;
    std::uint64_t stuffed_ = 0;
    bool bol_ = true;  // the next byte begins a line (the body starts right after the +OK line)
    bool done_ = false;
    bool malformed_ = false;
};

// The first "\n." in [p, end), or nullptr. Exposed for the bare-copy comparison.
const char* find_lf_dot(const char* p, const char* end);

}  // namespace loadgen
