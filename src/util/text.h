// Small text helpers shared by the protocol core, auth and logging.
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace poplar::util {

// ASCII-only case-insensitive equality: POP3 keywords are case-insensitive (RFC 1939 §3) and
// locale-dependent comparisons must never decide protocol behaviour.
bool iequals(std::string_view a, std::string_view b) noexcept;

std::string to_upper_ascii(std::string_view s);

// Makes untrusted text safe for one log line: control bytes, backslash, '"' and bytes >= 0x7F
// become \xNN, and the result is cut at `max` bytes. Stops log injection (a user name with CR LF
// forging a second "auth failed" line that fail2ban would act on).
std::string log_escape(std::string_view s, std::size_t max = 128);

// RFC 4648 §4 base64, as SASL on POP3 uses it (RFC 5034 §4). decode() rejects anything that is
// not canonical base64 (bad characters, bad padding) with nullopt.
std::string base64_encode(std::string_view data);
std::optional<std::string> base64_decode(std::string_view text);

}  // namespace poplar::util
