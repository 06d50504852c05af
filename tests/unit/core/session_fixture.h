// Shared set-up for the session tests: a three-message maildrop, policies and common replies.
#pragma once

#include <string>
#include <vector>

#include "core/session.h"
#include "fake_authenticator.h"
#include "memory_maildrop.h"
#include "session_driver.h"

namespace poplar::test {

// Virtual sizes 11, 21 and 20 octets (52 in all); message 2 needs dot-stuffing, message 3 has
// no final newline.
inline std::vector<memory_maildrop::stored_message> three_messages() {
    return {
        {"uid-1", "A: 1\n\nx\n"},
        {"uid-2", "B: 2\r\n\r\n.dot\r\nline2\r\n"},
        {"uid-3", "C: 3\n\nno newline"},
    };
}

inline const std::string capa_common =
    "+OK capability list follows\r\n"
    "TOP\r\nUIDL\r\nRESP-CODES\r\nAUTH-RESP-CODE\r\nPIPELINING\r\nEXPIRE NEVER\r\nLOGIN-DELAY 0\r\n";
inline const std::string capa_end = "IMPLEMENTATION poplar\r\n.\r\n";

inline const std::string invalid_login = "-ERR [AUTH] invalid user name or password\r\n";
inline const std::string plaintext_refused =
    "-ERR [AUTH] plaintext login refused on an unencrypted connection, use STLS\r\n";
inline const std::string wrong_state = "-ERR command not valid in this state\r\n";
inline const std::string too_many_bad = "-ERR too many bad commands, closing connection\r\n";
inline const std::string logged_in_3 = "+OK maildrop has 3 messages (52 octets)\r\n";

inline core::session_policy policy_with(core::plaintext_policy p) {
    core::session_policy pol;
    pol.plaintext = p;
    return pol;
}

inline core::connection_facts loopback_facts() { return {true, false, false}; }
inline core::connection_facts remote_facts(bool tls_available = true) { return {false, false, tls_available}; }

// A driver logged in as "u" over loopback with USER/PASS.
struct logged_in {
    fake_authenticator auth;
    session_driver d;
    explicit logged_in(std::vector<memory_maildrop::stored_message> msgs = three_messages(),
                       core::session_policy pol = {})
        : d(pol, loopback_facts(), auth, std::move(msgs)) {
        d.line("USER u");
        last_login = d.line("PASS p");
    }
    std::string last_login;
};

}  // namespace poplar::test
