// Formatting of POP3 status lines (RFC 1939 §3) with RFC 2449/3206 response codes.
//
// Every "-ERR" poplar sends is built here, so each response code is spelled in one place.
#pragma once

#include <string>
#include <string_view>

namespace poplar::core {

enum class resp_code {
    none,
    auth,      // RFC 3206 §4: credentials were wrong (not a temporary problem)
    sys_temp,  // RFC 3206 §5: temporary system problem, try again later
    sys_perm,  // RFC 3206 §5: permanent system problem
    in_use,    // RFC 2449 §8.1.1: the maildrop is locked by another session
    login_delay,  // RFC 2449 §8.1.2: the user logged in too recently (pop3.login_delay)
};

// "+OK text\r\n" ("+OK\r\n" for empty text).
void append_ok(std::string& out, std::string_view text = {});
// "-ERR [CODE] text\r\n".
void append_err(std::string& out, resp_code code, std::string_view text);

std::string ok(std::string_view text = {});
std::string err(resp_code code, std::string_view text);
inline std::string err(std::string_view text) { return err(resp_code::none, text); }

// Replies the network layer sends on its own, outside any command (docs/protocol.md).
std::string shutdown_reply();
std::string autologout_reply();
std::string kicked_reply();

}  // namespace poplar::core
