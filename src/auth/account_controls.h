// Per-account login controls from the passwd-file's extra fields (field 8, space-separated,
// Dovecot's syntax), decided after the password verified:
//
//   nologin            Dovecot's: the account may not log in, right password or not
//   reason=TEXT        Dovecot's: with nologin, the text the client is told (one token: Dovecot
//                      splits the fields on spaces too; '_' is shown as a space, see below)
//   allow_nets=N[,N]   Dovecot's: client addresses allowed to log in, IPv4/IPv6 CIDRs or
//                      single addresses ("local" is accepted and matches nothing here: poplar
//                      has no Unix-socket clients)
//   require_tls        poplar's (Dovecot has no per-user equivalent): logins on a connection
//                      without TLS are refused even where auth.plaintext would allow them
//   [userdb_]quota_rule[N]=*:storage=SIZE   Dovecot's quota rules, for delivery (docs/delivery.md):
//   [userdb_]quota_rule[N]=*:messages=N     storage in kilobytes, or with a b/k/M/G/T suffix;
//   ...:bytes=N                              bytes=N in bytes; 0 is "no limit"; "*" or "INBOX" only
//                                            (POP3 has one mailbox; other mailboxes' rules are
//                                            ignored); relative (+, %) and "ignore" rules refused
//
// Other fields (Dovecot's userdb_*, uid=, ...) are accepted and ignored, so a Dovecot file loads
// unchanged. Pure: no I/O, no clock.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "util/network.h"
#include "util/result.h"

namespace poplar::auth {

struct account_controls {
    bool nologin = false;
    std::string reason;                 // nologin's text for the client; empty: the usual reply
    std::optional<std::vector<util::network>> allow_nets;  // nullopt: any address
    bool require_tls = false;
    // The account's quota (0: no limit); nullopt: the config's delivery.quota_* default.
    std::optional<std::uint64_t> quota_bytes;
    std::optional<std::uint64_t> quota_messages;
    bool any() const noexcept {
        return nologin || allow_nets.has_value() || require_tls || quota_bytes || quota_messages;
    }
};

// The extra fields of one passwd-file line; an error for a malformed allow_nets or reason.
result<account_controls, std::string> parse_account_controls(std::string_view extra_fields);

// What a login from this connection must be told, or nullopt when the controls allow it.
struct client_facts {
    std::array<std::uint8_t, 16> address{};  // util::mapped_address() form
    bool tls = false;
};
struct login_refusal {
    std::string log_reason;      // for `auth failed: ... reason="..."`
    std::string client_message;  // after "-ERR [AUTH] "; empty: the usual failure text
};
std::optional<login_refusal> refuse_login(const account_controls& c, const client_facts& client);

}  // namespace poplar::auth
