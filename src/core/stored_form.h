// How a received message is stored: the inverse of message_encoder.h's rule, so that what POP3
// later serves is exactly what was received (line ends apart, which RFC 1939 §3 makes CRLF).
//
// Pure: no I/O. Maildir's convention is LF line ends (what Postfix's local/virtual write, what
// Dovecot, mutt and Courier expect), so a CRLF line end is stored as LF, and message_encoder
// turns it back into CRLF. Nothing else changes: 8-bit bytes, NUL bytes, long lines, a CR inside
// a line and a missing final newline are stored as they came. One case needs care: a line whose
// content ends in CR ("x\r" then CRLF) stored as "x\r\n" would be read back as "x" plus a line
// end, losing the CR; such a line keeps its CRLF on disk ("x\r\r\n"), which the encoder serves
// as "x\r" CRLF. docs/delivery.md "What is stored" describes this for admins.
#pragma once

#include <string>
#include <string_view>

namespace poplar::core {

// Appends one line, given without its line end (as line_framer returns it), and its stored
// line end.
void append_stored_line(std::string& out, std::string_view content);

// The stored form of a whole message given as raw bytes with any line ends (`poplar deliver`
// reads standard input this way). A final line without a newline stays without one.
std::string stored_form(std::string_view raw);

}  // namespace poplar::core
