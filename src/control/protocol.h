// The admin control protocol (`poplar status|who|kick|stats|reload` to a running `poplar serve`),
// as a pure core: bytes in, a request or reply (or "need more", or "bad") out; no I/O.
//
// One request per connection over a Unix stream socket, whose file mode is the access control
// (like Dovecot's doveadm socket). Versioned, so a newer CLI talking to an older server gets a
// clear refusal instead of a misreading, and length-prefixed, so a reply cut short by a dying
// server is detected rather than printed as if complete:
//
//   request:  "POPLAR-CONTROL 1 <command>[ <argument>]\n"        (at most max_request octets)
//   reply:    "OK <n>\n" or "ERR <n>\n", then exactly n octets of UTF-8 text
//
// The argument (kick's user name) is everything after the first space following the command,
// so user names with spaces work; it may not contain control characters.
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <variant>

namespace poplar::control {

inline constexpr int protocol_version = 1;
// A request is one short line; anything longer is not a poplar CLI.
inline constexpr std::size_t max_request = 1024;
// status/who/stats on a busy server: who lists every logged-in session (about 100 octets each),
// so this allows some 600,000 of them.
inline constexpr std::size_t max_reply_body = 64 * 1024 * 1024;

enum class command { status, who, kick, stats, reload };

struct request {
    command what = command::status;
    std::string argument;  // kick: the user name; empty for the others
};

// The command's name on the wire and on the command line ("status", "who", ...).
std::string_view name(command c);
// Looks a name up (case-sensitive, as typed on the command line); nullopt when unknown.
std::optional<command> command_named(std::string_view text);

struct need_more {};
struct bad {
    std::string reason;  // for the ERR reply and the log
};

std::string format_request(const request& r);
// `buffered` is everything received so far.
std::variant<request, need_more, bad> parse_request(std::string_view buffered);

struct reply {
    bool ok = false;
    std::string body;  // the text to print (ok), or the error message (!ok)
};

std::string format_reply(const reply& r);
std::variant<reply, need_more, bad> parse_reply(std::string_view buffered);

}  // namespace poplar::control
