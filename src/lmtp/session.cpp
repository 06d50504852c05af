// The LMTP session state machine (RFC 2033): command parsing, the transaction, every reply.
#include "lmtp/session.h"

#include <fmt/format.h>

#include <algorithm>
#include <cassert>
#include <limits>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "core/limits.h"
#include "core/stored_form.h"
#include "util/text.h"

namespace poplar::lmtp {

namespace {

// RFC 5321 §4.5.3.1.3: a path is at most 256 octets. Longer ones are refused as bad syntax
// rather than cut, so nothing is ever delivered to a different address than the one sent.
constexpr std::size_t max_address = 256;

// Inside DATA the framer's limit is max_message_size (session.h), but never below a command
// line, so the final "." always fits even under a tiny limit, and never so close to SIZE_MAX
// that the framer's "limit + 1" overflows.
constexpr std::size_t max_data_line_cap = std::numeric_limits<std::size_t>::max() / 2;

enum class verb { lhlo, helo, ehlo, mail, rcpt, data, rset, noop, quit, vrfy, help, unknown };

// The one command table (STYLE.md: one table, looked up case-insensitively, RFC 5321 §2.4).
// STARTTLS, AUTH, BDAT, ETRN, EXPN and TURN are not offered in LHLO, so they are unknown here.
struct verb_name {
    std::string_view name;
    verb what;
};
constexpr verb_name verbs[] = {
    {"LHLO", verb::lhlo}, {"HELO", verb::helo}, {"EHLO", verb::ehlo}, {"MAIL", verb::mail},
    {"RCPT", verb::rcpt}, {"DATA", verb::data}, {"RSET", verb::rset}, {"NOOP", verb::noop},
    {"QUIT", verb::quit}, {"VRFY", verb::vrfy}, {"HELP", verb::help},
};

struct command {
    verb what = verb::unknown;
    std::string_view arg;  // after the verb and its spaces, trailing spaces removed
};

command parse_command(std::string_view line) {
    const std::size_t sp = line.find(' ');
    const std::string_view name = line.substr(0, sp);
    std::string_view arg = sp == std::string_view::npos ? std::string_view{} : line.substr(sp + 1);
    while (!arg.empty() && arg.front() == ' ') {
        arg.remove_prefix(1);
    }
    while (!arg.empty() && arg.back() == ' ') {
        arg.remove_suffix(1);
    }
    command cmd;
    cmd.arg = arg;
    for (const verb_name& v : verbs) {
        if (util::iequals(name, v.name)) {
            cmd.what = v.what;
            break;
        }
    }
    return cmd;
}

// Every reply line is built here. RFC 2034 §4: every 2xx, 4xx and 5xx reply after the greeting
// and the LHLO reply carries an enhanced status code after the basic one.
std::string reply(unsigned code, std::string_view status, std::string_view text) {
    return fmt::format("{} {} {}\r\n", code, status, text);
}

// "<addr> text" replies: RFC 2033 §4.2 asks the client to tell the per-recipient replies after
// DATA apart by order, but naming the address makes logs and transcripts readable.
std::string recipient_reply(unsigned code, std::string_view status, std::string_view address,
                            std::string_view text) {
    return fmt::format("{} {} <{}> {}\r\n", code, status, address, text);
}

const std::string& ok_reply() {
    static const std::string r = reply(250, "2.0.0", "Ok");
    return r;
}

// A command refused: its reply, and whether it is a client error that counts towards
// max_bad_commands (syntax, sequence) or a refusal of a valid command (SIZE, recipient limit).
struct refusal {
    std::string reply;
    bool bad = true;
};

// An RFC 5321 §4.1.2 esmtp-keyword: ALPHA / DIGIT, then also "-". Checked before the keyword is
// echoed in a 555 reply, so a reply never carries control bytes from the client.
bool is_esmtp_keyword(std::string_view s) {
    if (s.empty()) {
        return false;
    }
    for (std::size_t i = 0; i < s.size(); ++i) {
        const char c = s[i];
        const bool alnum = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
        if (!alnum && (i == 0 || c != '-')) {
            return false;
        }
    }
    return true;
}

// "FROM:<path> params" / "TO:<path> params", split into the address and the parameters.
struct path_arg {
    enum class kind { ok, syntax, bad_address };
    kind status = kind::syntax;
    std::string_view address;  // inside <>, source route removed
    std::string_view params;   // the text after '>', leading spaces removed
};

path_arg parse_path(std::string_view arg, std::string_view prefix) {
    path_arg out;
    if (arg.size() < prefix.size() || !util::iequals(arg.substr(0, prefix.size()), prefix)) {
        return out;
    }
    arg.remove_prefix(prefix.size());
    // "MAIL FROM: <a@b>": RFC 5321 §3.3 has no space there, but clients send one and Postfix
    // and Exim accept it, so it costs nothing to be lenient.
    while (!arg.empty() && arg.front() == ' ') {
        arg.remove_prefix(1);
    }
    if (arg.empty() || arg.front() != '<') {
        return out;
    }
    // Find the closing '>', skipping quoted strings: RFC 5321 §4.1.2 lets a quoted local part
    // hold '>' and spaces ("a b"@x), with backslash escapes inside the quotes.
    std::size_t i = 1;
    bool quoted = false;
    for (; i < arg.size(); ++i) {
        const char c = arg[i];
        if (quoted) {
            if (c == '\\') {
                ++i;
            } else if (c == '"') {
                quoted = false;
            }
        } else if (c == '"') {
            quoted = true;
        } else if (c == '>') {
            break;
        }
    }
    if (i >= arg.size()) {
        return out;  // no closing '>' (or only inside an unterminated quote)
    }
    std::string_view address = arg.substr(1, i - 1);
    std::string_view rest = arg.substr(i + 1);
    if (!rest.empty() && rest.front() != ' ') {
        return out;  // "<a@b>x": garbage glued to the path
    }
    while (!rest.empty() && rest.front() == ' ') {
        rest.remove_prefix(1);
    }
    out.params = rest;
    out.status = path_arg::kind::bad_address;
    if (address.size() > max_address) {
        return out;
    }
    for (const char c : address) {
        const auto u = static_cast<unsigned char>(c);
        if (u < 0x20 || u == 0x7F) {
            return out;  // never let a control byte reach a reply, a log line or a file name
        }
    }
    // RFC 5321 §4.1.2 and Appendix C: an "@a,@b:" source route MUST be accepted and SHOULD be
    // ignored; delivery goes to the mailbox after the colon.
    if (!address.empty() && address.front() == '@') {
        const std::size_t colon = address.find(':');
        if (colon == std::string_view::npos) {
            return out;
        }
        address.remove_prefix(colon + 1);
    }
    out.address = address;
    out.status = path_arg::kind::ok;
    return out;
}

// One "KEYWORD[=value]" parameter after a path (RFC 5321 §4.1.2 esmtp-param).
struct param {
    std::string_view keyword;
    std::optional<std::string_view> value;
};

// Splits the parameters on spaces; nullopt if one has no valid keyword.
std::optional<std::vector<param>> split_params(std::string_view text) {
    std::vector<param> out;
    while (!text.empty()) {
        const std::size_t sp = text.find(' ');
        const std::string_view token = text.substr(0, sp);
        text = sp == std::string_view::npos ? std::string_view{} : text.substr(sp + 1);
        if (token.empty()) {
            continue;  // several spaces in a row
        }
        param p;
        const std::size_t eq = token.find('=');
        p.keyword = token.substr(0, eq);
        if (eq != std::string_view::npos) {
            p.value = token.substr(eq + 1);
        }
        if (!is_esmtp_keyword(p.keyword)) {
            return std::nullopt;
        }
        out.push_back(p);
    }
    return out;
}

std::string unsupported_parameter(std::string_view keyword) {
    return reply(555, "5.5.4", "Unsupported parameter " + util::to_upper_ascii(keyword));
}

const std::string& mail_syntax() {
    static const std::string r = reply(501, "5.5.4", "Syntax: MAIL FROM:<address>");
    return r;
}

const std::string& rcpt_syntax() {
    static const std::string r = reply(501, "5.5.4", "Syntax: RCPT TO:<address>");
    return r;
}

const std::string& size_exceeded() {
    static const std::string r = reply(552, "5.3.4", "Message size exceeds fixed limit");
    return r;
}

// MAIL FROM's parameters: RFC 1870 SIZE and RFC 6152 BODY, nothing else (we advertise no other
// extension that has one, so RFC 5321 §4.1.1.11 makes any other a 555).
struct mail_params {
    std::optional<refusal> refused;
    std::uint64_t declared_size = 0;
};

mail_params parse_mail_params(std::string_view text, std::uint64_t max_message_size) {
    mail_params out;
    const std::optional<std::vector<param>> params = split_params(text);
    if (!params) {
        out.refused = refusal{mail_syntax()};
        return out;
    }
    for (const param& p : *params) {
        if (util::iequals(p.keyword, "SIZE")) {
            if (!p.value || p.value->empty() ||
                !std::all_of(p.value->begin(), p.value->end(), [](char c) { return c >= '0' && c <= '9'; })) {
                out.refused = refusal{reply(501, "5.5.4", "Bad SIZE parameter")};
                return out;
            }
            // Saturate instead of overflowing: any number beyond the limit gets the same 552.
            std::uint64_t size = 0;
            bool over = false;
            for (const char c : *p.value) {
                size = size * 10 + static_cast<std::uint64_t>(c - '0');
                if (size > max_message_size) {
                    over = true;
                    break;
                }
            }
            if (over) {
                // RFC 1870 §6.1: a declared size above the fixed limit is a permanent 552.
                out.refused = refusal{size_exceeded(), false};
                return out;
            }
            out.declared_size = size;
        } else if (util::iequals(p.keyword, "BODY")) {
            // RFC 6152 §2: 7BIT or 8BITMIME; the message is stored as it came either way.
            if (!p.value || (!util::iequals(*p.value, "7BIT") && !util::iequals(*p.value, "8BITMIME"))) {
                out.refused = refusal{reply(501, "5.5.4", "Bad BODY parameter")};
                return out;
            }
        } else {
            out.refused = refusal{unsupported_parameter(p.keyword)};
            return out;
        }
    }
    return out;
}

std::string recipient_checked_reply(recipient_verdict v, std::string_view address) {
    switch (v) {
        case recipient_verdict::accepted: return recipient_reply(250, "2.1.5", address, "Ok");
        case recipient_verdict::unknown: return recipient_reply(550, "5.1.1", address, "User doesn't exist");
        case recipient_verdict::over_quota_temp: return recipient_reply(452, "4.2.2", address, "Mailbox full");
        case recipient_verdict::over_quota_perm: return recipient_reply(552, "5.2.2", address, "Mailbox full");
        case recipient_verdict::temporary_failure:
            return recipient_reply(451, "4.3.0", address, "Temporary lookup failure");
    }
    return recipient_reply(451, "4.3.0", address, "Temporary lookup failure");
}

std::string temporary_delivery_failure(std::string_view address) {
    return recipient_reply(451, "4.3.0", address, "Temporary failure, try again later");
}

std::string delivered_reply(delivery_verdict v, std::string_view address) {
    switch (v) {
        case delivery_verdict::delivered: return recipient_reply(250, "2.0.0", address, "Saved");
        case delivery_verdict::over_quota_temp: return recipient_reply(452, "4.2.2", address, "Mailbox full");
        case delivery_verdict::over_quota_perm: return recipient_reply(552, "5.2.2", address, "Mailbox full");
        case delivery_verdict::too_large:
            return recipient_reply(552, "5.3.4", address, "Message too large for the mailbox");
        case delivery_verdict::unknown: return recipient_reply(550, "5.1.1", address, "User doesn't exist");
        case delivery_verdict::temporary_failure: return temporary_delivery_failure(address);
        case delivery_verdict::permanent_failure: return recipient_reply(554, "5.3.0", address, "Delivery failed");
    }
    return temporary_delivery_failure(address);
}

// Ends a transaction (RSET, LHLO, after the replies to "."): RFC 5321 §4.1.1.5 clears the
// envelope and any message data.
void clear_transaction(envelope& env, std::string& data, std::uint64_t& data_size, bool& too_large) {
    env = envelope{};
    std::string().swap(data);  // give the memory back: the session may idle for a long time
    data_size = 0;
    too_large = false;
}

}  // namespace

session::session(session_policy policy) : policy_(std::move(policy)) {}

std::string session::greeting() const {
    // RFC 2034 §4 exempts the greeting from enhanced codes (none has been negotiated yet).
    return fmt::format("220 {} LMTP poplar ready\r\n", policy_.hostname);
}

std::size_t session::max_line() const {
    if (state_ == state::data) {
        const std::uint64_t cap = std::min<std::uint64_t>(policy_.max_message_size, max_data_line_cap);
        return std::max(static_cast<std::size_t>(cap), limits::max_command_line);
    }
    return limits::max_command_line;
}

step session::on_line_too_long() {
    if (state_ == state::closed) {
        return step{{}, effect::close{}};
    }
    if (state_ == state::data) {
        // The message is lost anyway; the rest of the data is read so that its lines never run
        // as commands, and "." then refuses it for every recipient.
        data_too_large_ = true;
        std::string().swap(data_);
        return step{};
    }
    if (++bad_commands_ >= policy_.max_bad_commands) {
        state_ = state::closed;
        return step{reply(500, "5.5.6", "Line too long") +
                        fmt::format("421 4.7.0 {} Too many errors, closing connection\r\n", policy_.hostname),
                    effect::close{}};
    }
    return step{reply(500, "5.5.6", "Line too long")};
}

step session::on_line(std::string_view line) {
    if (state_ == state::closed) {
        return step{{}, effect::close{}};  // nothing runs after QUIT or a forced close
    }
    assert(pending_recipient_.empty() && "a line arrived before on_recipient_checked()");

    if (state_ == state::data) {
        if (line != ".") {
            // RFC 5321 §4.5.2: a leading dot was added by the client; take it off.
            const std::string_view content = line.empty() || line.front() != '.' ? line : line.substr(1);
            if (!data_too_large_) {
                // RFC 1870 §3: the size counts CRLF line ends, not the stuffed dots.
                data_size_ += content.size() + 2;
                if (data_size_ > policy_.max_message_size) {
                    data_too_large_ = true;
                    std::string().swap(data_);
                } else {
                    core::append_stored_line(data_, content);
                }
            }
            return step{};
        }
        ++stats_.transactions;
        if (data_too_large_) {
            // RFC 2033 §4.2: one reply per accepted recipient, in RCPT order, even when all are
            // the same; RFC 1870 §6.3: 552 for a message over the fixed limit.
            std::string out;
            for (const std::string& r : env_.recipients) {
                out += recipient_reply(552, "5.3.4", r, "Message size exceeds fixed limit");
            }
            stats_.refused += static_cast<unsigned>(env_.recipients.size());
            clear_transaction(env_, data_, data_size_, data_too_large_);
            state_ = state::ready;
            return step{std::move(out)};
        }
        // Until on_delivered() the session stays in data, with data_size_ now the stored size
        // (stats_.bytes needs it after the message has been moved out).
        data_size_ = data_.size();
        effect::deliver d{env_, std::move(data_)};
        data_.clear();  // a moved-from string is only "valid", and on_delivered() checks it is empty
        return step{{}, std::move(d)};
    }

    // A valid command ends a run of bad ones; every client error adds to it (limits.h's rule).
    const auto good = [this](std::string out) {
        bad_commands_ = 0;
        return step{std::move(out)};
    };
    const auto bad = [this](std::string out) {
        if (++bad_commands_ >= policy_.max_bad_commands) {
            state_ = state::closed;
            out += fmt::format("421 4.7.0 {} Too many errors, closing connection\r\n", policy_.hostname);
            return step{std::move(out), effect::close{}};
        }
        return step{std::move(out)};
    };
    const auto refused = [&bad](refusal r) { return r.bad ? bad(std::move(r.reply)) : step{std::move(r.reply)}; };
    const bool greeted = state_ != state::greeting;

    if (line.find_first_not_of(' ') == std::string_view::npos) {
        return bad(reply(500, "5.5.2", "Empty command"));
    }
    const command cmd = parse_command(line);
    switch (cmd.what) {
        case verb::lhlo: {
            if (cmd.arg.empty()) {
                return bad(reply(501, "5.5.4", "Syntax: LHLO hostname"));
            }
            // RFC 5321 §4.1.4: a second EHLO (here LHLO) resets the transaction like RSET.
            clear_transaction(env_, data_, data_size_, data_too_large_);
            state_ = state::ready;
            return good(fmt::format("250-{}\r\n250-PIPELINING\r\n250-ENHANCEDSTATUSCODES\r\n250-8BITMIME\r\n"
                                    "250 SIZE {}\r\n",
                                    policy_.hostname, policy_.max_message_size));
        }
        case verb::helo:
        case verb::ehlo:
            // RFC 2033 §4.1: an LMTP server must not accept HELO or EHLO, so that a client that
            // confused the port never delivers with SMTP's one-reply-per-message semantics.
            return bad(reply(500, "5.5.1", "This is LMTP (RFC 2033): use LHLO"));
        case verb::mail: {
            if (!greeted) {
                return bad(reply(503, "5.5.1", "Send LHLO first"));
            }
            if (state_ == state::mail) {
                return bad(reply(503, "5.5.1", "Nested MAIL command"));  // RFC 5321 §4.1.4
            }
            const path_arg p = parse_path(cmd.arg, "FROM:");
            if (p.status == path_arg::kind::syntax) {
                return bad(mail_syntax());
            }
            if (p.status == path_arg::kind::bad_address) {
                return bad(reply(501, "5.1.7", "Bad address syntax"));  // RFC 3463: bad sender
            }
            mail_params mp = parse_mail_params(p.params, policy_.max_message_size);
            if (mp.refused) {
                return refused(std::move(*mp.refused));
            }
            env_ = envelope{std::string(p.address), {}, mp.declared_size};  // "<>": RFC 5321 §4.5.5
            state_ = state::mail;
            return good(reply(250, "2.1.0", "Ok"));
        }
        case verb::rcpt: {
            if (!greeted) {
                return bad(reply(503, "5.5.1", "Send LHLO first"));
            }
            if (state_ != state::mail) {
                return bad(reply(503, "5.5.1", "Send MAIL first"));
            }
            const path_arg p = parse_path(cmd.arg, "TO:");
            if (p.status == path_arg::kind::syntax) {
                return bad(rcpt_syntax());
            }
            // RFC 5321 §4.1.1.3: a forward-path is never empty (only postmaster may lack a domain).
            if (p.status == path_arg::kind::bad_address || p.address.empty()) {
                return bad(reply(501, "5.1.3", "Bad address syntax"));  // RFC 3463: bad recipient
            }
            const std::optional<std::vector<param>> params = split_params(p.params);
            if (!params) {
                return bad(rcpt_syntax());
            }
            if (!params->empty()) {
                // No extension we advertise has an RCPT parameter (DSN's NOTIFY= is not offered).
                return bad(unsupported_parameter(params->front().keyword));
            }
            if (env_.recipients.size() >= policy_.max_recipients) {
                // RFC 5321 §4.5.3.1.10: 452 so that the client sends the rest in a new transaction.
                ++stats_.refused;
                return step{reply(452, "4.5.3", "Too many recipients")};
            }
            pending_recipient_ = std::string(p.address);
            return step{{}, effect::check_recipient{pending_recipient_, env_.declared_size}};
        }
        case verb::data: {
            if (!greeted) {
                return bad(reply(503, "5.5.1", "Send LHLO first"));
            }
            if (state_ != state::mail) {
                return bad(reply(503, "5.5.1", "Send MAIL first"));
            }
            if (env_.recipients.empty()) {
                // RFC 2033 §4.2 / RFC 2920 §3.1: a pipelining client learns here that the message
                // it is about to send has nowhere to go.
                return bad(reply(503, "5.5.1", "No valid recipients"));
            }
            if (!cmd.arg.empty()) {
                return bad(reply(501, "5.5.4", "Syntax: DATA"));
            }
            data_.clear();
            data_size_ = 0;
            data_too_large_ = false;
            state_ = state::data;
            return good("354 End data with <CR><LF>.<CR><LF>\r\n");
        }
        case verb::rset:
            clear_transaction(env_, data_, data_size_, data_too_large_);
            if (greeted) {
                state_ = state::ready;
            }
            return good(ok_reply());
        case verb::noop: return good(ok_reply());  // RFC 5321 §4.1.1.9: any argument is ignored
        case verb::quit:
            state_ = state::closed;
            bad_commands_ = 0;
            return step{fmt::format("221 2.0.0 {} closing connection\r\n", policy_.hostname), effect::close{}};
        case verb::vrfy:
            // RFC 5321 §3.5.3: 252 when the server will not verify but would still try delivery;
            // answering for real would let anyone on the LMTP socket enumerate users.
            return good(reply(252, "2.5.2", "Cannot VRFY user"));
        case verb::help: return good(reply(214, "2.0.0", "See RFC 2033"));
        case verb::unknown: break;
    }
    return bad(reply(500, "5.5.2", "Command not recognised"));
}

step session::on_recipient_checked(recipient_verdict v) {
    assert(!pending_recipient_.empty() && "on_recipient_checked() without a check_recipient effect");
    std::string address = std::move(pending_recipient_);
    pending_recipient_.clear();
    std::string out = recipient_checked_reply(v, address);
    if (v == recipient_verdict::accepted) {
        bad_commands_ = 0;
        env_.recipients.push_back(std::move(address));
    } else {
        ++stats_.refused;  // a refused recipient is an answer, not a client error
    }
    return step{std::move(out)};
}

step session::on_delivered(std::span<const delivery_verdict> verdicts) {
    assert(state_ == state::data && data_.empty() && "on_delivered() without a deliver effect");
    assert(verdicts.size() == env_.recipients.size());
    std::string out;
    // RFC 2033 §4.2: one reply per recipient accepted at RCPT, in the same order.
    for (std::size_t i = 0; i < env_.recipients.size() && i < verdicts.size(); ++i) {
        out += delivered_reply(verdicts[i], env_.recipients[i]);
        if (verdicts[i] == delivery_verdict::delivered) {
            ++stats_.delivered;
            stats_.bytes += data_size_;  // the stored size, kept at "."
        } else {
            ++stats_.refused;
        }
    }
    clear_transaction(env_, data_, data_size_, data_too_large_);
    state_ = state::ready;
    return step{std::move(out)};
}

step session::on_delivery_failed() {
    assert(state_ == state::data && data_.empty() && "on_delivery_failed() without a deliver effect");
    std::string out;
    // 451 for everyone: the client keeps the message queued and retries (RFC 5321 §4.2.5).
    for (const std::string& r : env_.recipients) {
        out += temporary_delivery_failure(r);
    }
    stats_.refused += static_cast<unsigned>(env_.recipients.size());
    clear_transaction(env_, data_, data_size_, data_too_large_);
    state_ = state::ready;
    return step{std::move(out)};
}

}  // namespace poplar::lmtp
