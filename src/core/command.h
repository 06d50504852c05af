// POP3 command parsing (RFC 1939 §3, RFC 2449 §4): one line in, a verb and its arguments out.
//
// Pure and total: any byte string yields either a command or a specific error, never a crash.
// Message numbers are parsed here so that "0", "-1", "1x" and "99999999999999999999" are handled
// in one place.
#pragma once

#include <cstdint>
#include <optional>
#include <string_view>
#include <vector>

namespace poplar::core {

enum class verb {
    user, pass, apop, auth, stls, capa, quit,          // AUTHORIZATION (CAPA, QUIT: any state)
    stat, list, retr, dele, noop, rset, top, uidl,     // TRANSACTION
    unknown,
};

struct command {
    verb what = verb::unknown;
    // Arguments split on single spaces, except PASS, whose argument is the rest of the line
    // (RFC 1939 §7 allows spaces in passwords; clients send them). Views into the parsed line.
    std::vector<std::string_view> args;
};

command parse_command(std::string_view line);

// A message number or line count argument (RFC 1939 §5: a decimal number).
struct number_arg {
    enum class kind { ok, out_of_range, invalid };
    kind status;
    std::uint64_t value = 0;
};
// "1".."9999999999" -> ok; digits but longer (e.g. "99999999999999999999") -> out_of_range;
// anything else ("", "-1", "1x", "+1", " 1") -> invalid. Zero is ok here; the caller decides.
number_arg parse_number(std::string_view s);

}  // namespace poplar::core
