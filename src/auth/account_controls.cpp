#include "auth/account_controls.h"

#include <arpa/inet.h>

#include <charconv>
#include <cstring>

namespace poplar::auth {

namespace {

bool parse_ip(const std::string& s, std::array<std::uint8_t, 16>& out, bool& v4) {
    in_addr a4{};
    if (::inet_pton(AF_INET, s.c_str(), &a4) == 1) {
        out = {};
        out[10] = 0xff;
        out[11] = 0xff;
        std::memcpy(out.data() + 12, &a4, 4);
        v4 = true;
        return true;
    }
    v4 = false;
    return ::inet_pton(AF_INET6, s.c_str(), out.data()) == 1;
}

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

bool network::contains(const std::array<std::uint8_t, 16>& address) const noexcept {
    unsigned bits = prefix;
    for (std::size_t i = 0; i < 16 && bits > 0; ++i) {
        const unsigned take = bits >= 8 ? 8 : bits;
        const std::uint8_t mask = static_cast<std::uint8_t>(0xff << (8 - take));
        if ((address[i] & mask) != (bytes[i] & mask)) {
            return false;
        }
        bits -= take;
    }
    return true;
}

std::array<std::uint8_t, 16> mapped_address(std::string_view ip_text) {
    std::array<std::uint8_t, 16> out{};
    bool v4 = false;
    if (!parse_ip(std::string(ip_text), out, v4)) {
        return {};
    }
    return out;
}

result<network, std::string> parse_network(std::string_view text) {
    const auto slash = text.find('/');
    const std::string ip(text.substr(0, slash));
    network n;
    bool v4 = false;
    if (!parse_ip(ip, n.bytes, v4)) {
        return unexpected("\"" + std::string(text) + "\" is not an IP address or network");
    }
    const unsigned max = v4 ? 32 : 128;
    unsigned len = max;
    if (slash != std::string_view::npos) {
        const std::string_view digits = text.substr(slash + 1);
        auto [p, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), len);
        if (digits.empty() || ec != std::errc{} || p != digits.data() + digits.size() || len > max) {
            return unexpected("\"" + std::string(text) + "\": the prefix length must be 0-" + std::to_string(max));
        }
    }
    n.prefix = v4 ? 96 + len : len;
    // Host bits set ("192.0.2.7/24") are a typo more often than not: refuse rather than guess.
    for (unsigned bit = n.prefix; bit < 128; ++bit) {
        if ((n.bytes[bit / 8] >> (7 - bit % 8)) & 1) {
            return unexpected("\"" + std::string(text) + "\" has bits set beyond its prefix length");
        }
    }
    return n;
}

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
            std::vector<network> nets;
            std::size_t from = 0;
            while (from <= value.size()) {
                const auto comma = value.find(',', from);
                const std::string_view item =
                    value.substr(from, comma == std::string_view::npos ? std::string_view::npos : comma - from);
                from = comma == std::string_view::npos ? value.size() + 1 : comma + 1;
                if (item == "local") {
                    continue;  // Dovecot's Unix-socket clients; poplar has none
                }
                auto n = parse_network(item);
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
        for (const network& n : *c.allow_nets) {
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
