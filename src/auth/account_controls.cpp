#include "auth/account_controls.h"

#include <charconv>
#include <cstring>

namespace poplar::auth {

namespace {

// Dovecot's reason= cannot hold a space (the fields are split on spaces); poplar shows '_' as a
// space so "reason=account_suspended,_call_the_helpdesk" reads naturally. Only printable ASCII
// reaches the client: the text goes into a POP3 reply line (RFC 1939 §3: no CR or LF).
std::optional<std::string> client_text(std::string_view raw) {
    std::string out;
    for (char c : raw) {
        if (c == '_') {
            out += ' ';
        } else if (c >= 0x20 && c < 0x7f) {
            out += c;
        } else {
            return std::nullopt;
        }
    }
    return out;
}

}  // namespace

result<account_controls, std::string> parse_account_controls(std::string_view extra) {
    account_controls c;
    std::size_t pos = 0;
    while (pos < extra.size()) {
        const auto start = extra.find_first_not_of(" \t", pos);
        if (start == std::string_view::npos) {
            break;
        }
        const auto end = extra.find_first_of(" \t", start);
        const std::string_view field = extra.substr(start, end == std::string_view::npos ? end : end - start);
        pos = end == std::string_view::npos ? extra.size() : end;
        const auto eq = field.find('=');
        const std::string_view key = field.substr(0, eq);
        const std::string_view value = eq == std::string_view::npos ? std::string_view{} : field.substr(eq + 1);
        if (key == "nologin") {
            c.nologin = true;
        } else if (key == "reason") {
            auto text = client_text(value);
            if (!text) {
                return unexpected(std::string("reason= may only hold printable ASCII"));
            }
            c.reason = std::move(*text);
        } else if (key == "allow_nets") {
            std::vector<util::network> nets;
            std::size_t from = 0;
            while (from <= value.size()) {
                const auto comma = value.find(',', from);
                const std::string_view item =
                    value.substr(from, comma == std::string_view::npos ? std::string_view::npos : comma - from);
                from = comma == std::string_view::npos ? value.size() + 1 : comma + 1;
                if (item == "local") {
                    continue;  // Dovecot's Unix-socket clients; poplar has none
                }
                auto n = util::parse_network(item);
                if (!n) {
                    return unexpected("allow_nets: " + n.error());
                }
                nets.push_back(*n);
            }
            c.allow_nets = std::move(nets);
        } else if (key == "require_tls") {
            if (!value.empty() && value != "yes" && value != "no") {
                return unexpected(std::string("require_tls takes no value, or yes/no"));
            }
            c.require_tls = value != "no";
        }
        // Anything else is another program's field (userdb_*, uid=, ...): kept out of the way.
    }
    return c;
}

std::optional<login_refusal> refuse_login(const account_controls& c, const client_facts& client) {
    if (c.nologin) {
        return login_refusal{"account disabled (nologin)", c.reason};
    }
    if (c.allow_nets) {
        bool allowed = false;
        for (const util::network& n : *c.allow_nets) {
            allowed = allowed || n.contains(client.address);
        }
        if (!allowed) {
            return login_refusal{"client address not in allow_nets", {}};
        }
    }
    if (c.require_tls && !client.tls) {
        return login_refusal{"TLS required for this account (require_tls)", {}};
    }
    return std::nullopt;
}

}  // namespace poplar::auth
