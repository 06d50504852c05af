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

// "1G", "100M", "512k", "2048b", "10" (kilobytes: Dovecot's unit for storage=).
std::optional<std::uint64_t> parse_storage(std::string_view v, std::uint64_t default_unit) {
    std::uint64_t unit = default_unit;
    if (!v.empty() && (v.back() < '0' || v.back() > '9')) {
        switch (v.back()) {
        case 'b': case 'B': unit = 1; break;
        case 'k': case 'K': unit = 1024; break;
        case 'M': case 'm': unit = 1024ull * 1024; break;
        case 'G': case 'g': unit = 1024ull * 1024 * 1024; break;
        case 'T': case 't': unit = 1024ull * 1024 * 1024 * 1024; break;
        default: return std::nullopt;
        }
        v.remove_suffix(1);
    }
    std::uint64_t n = 0;
    const auto [end, ec] = std::from_chars(v.data(), v.data() + v.size(), n);
    if (v.empty() || ec != std::errc{} || end != v.data() + v.size() || n > UINT64_MAX / unit) {
        return std::nullopt;
    }
    return n * unit;
}

bool is_quota_rule_key(std::string_view key) {
    if (key.starts_with("userdb_")) {
        key.remove_prefix(7);
    }
    if (!key.starts_with("quota_rule")) {
        return false;
    }
    key.remove_prefix(10);
    return key.find_first_not_of("0123456789") == std::string_view::npos;
}

// One Dovecot quota rule, "MAILBOX:LIMIT[:LIMIT...]" (e.g. "*:storage=1G:messages=1000").
result<void, std::string> parse_quota_rule(std::string_view rule, account_controls& c) {
    const auto colon = rule.find(':');
    if (colon == std::string_view::npos) {
        return unexpected(std::string("quota_rule: expected MAILBOX:storage=SIZE or MAILBOX:messages=N"));
    }
    const std::string_view mailbox = rule.substr(0, colon);
    if (mailbox != "*" && mailbox != "INBOX") {
        return {};  // an IMAP folder's rule: POP3 delivers to the one mailbox only
    }
    std::string_view rest = rule.substr(colon + 1);
    while (!rest.empty()) {
        const auto next = rest.find(':');
        const std::string_view limit = rest.substr(0, next);
        rest = next == std::string_view::npos ? std::string_view{} : rest.substr(next + 1);
        const auto eq = limit.find('=');
        const std::string_view name = limit.substr(0, eq);
        const std::string_view value = eq == std::string_view::npos ? std::string_view{} : limit.substr(eq + 1);
        if (value.starts_with('+') || value.starts_with('-') || value.ends_with('%') || name == "ignore") {
            return unexpected(std::string("quota_rule: relative limits and \"ignore\" are not supported"));
        }
        std::optional<std::uint64_t> n;
        if (name == "storage") {
            n = parse_storage(value, 1024);
        } else if (name == "bytes") {
            n = parse_storage(value, 1);
        } else if (name == "messages") {
            n = parse_storage(value, 1);
            if (!value.empty() && (value.back() < '0' || value.back() > '9')) {
                n.reset();  // a count has no unit
            }
        } else {
            return unexpected("quota_rule: unknown limit \"" + std::string(name) + "\" (storage, bytes, messages)");
        }
        if (!n) {
            return unexpected("quota_rule: bad number in \"" + std::string(limit) + "\"");
        }
        (name == "messages" ? c.quota_messages : c.quota_bytes) = *n;
    }
    return {};
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
        } else if (is_quota_rule_key(key)) {
            if (auto q = parse_quota_rule(value, c); !q) {
                return unexpected(std::move(q.error()));
            }
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
