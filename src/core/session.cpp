// The POP3 session state machine: one command table per state, every reply from docs/protocol.md.
#include "core/session.h"

#include <fmt/format.h>

#include <iterator>

#include "core/command.h"
#include "core/reply.h"
#include "util/secret.h"
#include "util/text.h"

namespace poplar::core {

namespace {

// Arity of each command (RFC 1939 §5-§7, RFC 2449 §5, RFC 2595 §4, RFC 5034 §4).
struct arity {
    std::size_t min;
    std::size_t max;
};

arity arity_of(verb v) {
    switch (v) {
        case verb::user: return {1, 1};
        case verb::pass: return {1, 1};
        case verb::apop: return {2, 2};
        case verb::auth: return {0, 2};
        case verb::list:
        case verb::uidl: return {0, 1};
        case verb::retr:
        case verb::dele: return {1, 1};
        case verb::top: return {2, 2};
        default: return {0, 0};
    }
}

step reply_only(std::string reply) { return step{std::move(reply), {}, effect::none{}}; }

const std::string& plaintext_refused() {
    static const std::string r =
        err(resp_code::auth, "plaintext login refused on an unencrypted connection, use STLS");
    return r;
}

}  // namespace

session::session(const session_policy& policy, connection_facts facts, auth::authenticator& auth,
                 std::string apop_timestamp)
    : policy_(policy), facts_(facts), auth_(auth), apop_timestamp_(std::move(apop_timestamp)) {
    greeting_has_timestamp_ = !apop_timestamp_.empty() && apop_allowed();
}

session::~session() = default;

std::string session::greeting() const {
    // RFC 1939 §7: the timestamp announces APOP. Left out where APOP would be refused (a plain
    // connection off loopback under "loopback", any plain one under "tls-only"), so clients that
    // use APOP whenever they see one do not send a digest over the wire in clear.
    if (greeting_has_timestamp_) {
        return ok("poplar ready " + apop_timestamp_);
    }
    return ok("poplar ready");
}

std::size_t session::max_line() const {
    return state_ == state::sasl ? limits::max_sasl_line : limits::max_command_line;
}

bool session::plaintext_allowed() const {
    switch (policy_.plaintext) {
        case plaintext_policy::always: return true;
        case plaintext_policy::loopback: return facts_.tls || facts_.loopback;
        case plaintext_policy::tls_only: return facts_.tls;
    }
    return false;
}

bool session::apop_allowed() const {
    return policy_.apop && (policy_.apop_in_clear || plaintext_allowed());
}

step session::on_line_too_long() {
    if (state_ == state::sasl) {
        mechanism_.reset();
        state_ = state::authorization;
    }
    return bad_command(err("line too long"));
}

step session::bad_command(std::string reply) {
    if (++bad_commands_ >= policy_.max_bad_commands) {
        state_ = state::closed;
        return step{err("too many bad commands, closing connection"), {}, effect::close{}};
    }
    return reply_only(std::move(reply));
}

step session::on_line(std::string_view line) {
    if (state_ == state::closed) {
        return step{{}, {}, effect::close{}};  // nothing runs after QUIT or a forced close
    }
    if (state_ == state::sasl) {
        return sasl_response(line);
    }
    return dispatch(line);
}

step session::dispatch(std::string_view line) {
    const command cmd = parse_command(line);
    if (cmd.what == verb::unknown) {
        return bad_command(err("unknown command"));
    }
    const arity a = arity_of(cmd.what);
    if (cmd.args.size() < a.min) {
        return bad_command(err("missing argument"));
    }
    if (cmd.args.size() > a.max) {
        return bad_command(err("too many arguments"));
    }
    if (cmd.what != verb::auth) {  // an AUTH initial response is bounded by the line limit only
        for (std::string_view arg : cmd.args) {
            if (arg.size() > limits::max_argument) {
                return bad_command(err("argument too long"));
            }
        }
    }
    // CAPA and QUIT are valid in every state (RFC 2449 §5, RFC 1939 §5).
    if (cmd.what == verb::capa) {
        bad_commands_ = 0;
        return cmd_capa();
    }
    if (cmd.what == verb::quit) {
        return cmd_quit();
    }
    return state_ == state::transaction ? transaction_command(cmd) : authorization_command(cmd);
}

step session::authorization_command(const command& cmd) {
    switch (cmd.what) {
        case verb::user: return cmd_user(cmd);
        case verb::pass: return cmd_pass(cmd);
        case verb::apop: return cmd_apop(cmd);
        case verb::auth: return cmd_auth(cmd);
        case verb::stls: return cmd_stls();
        default: return bad_command(err("command not valid in this state"));
    }
}

step session::transaction_command(const command& cmd) {
    // Only a valid command ends a run of bad ones; a wrong-state command is itself a bad one.
    const auto valid = [this](step s) {
        bad_commands_ = 0;
        return s;
    };
    switch (cmd.what) {
        case verb::stat: return valid(reply_only(ok(fmt::format("{} {}", live_count_, live_size_))));
        case verb::list: return valid(cmd_list_or_uidl(cmd, false));
        case verb::uidl: return valid(cmd_list_or_uidl(cmd, true));
        case verb::retr: return valid(cmd_retr_or_top(cmd, false));
        case verb::top: return valid(cmd_retr_or_top(cmd, true));
        case verb::dele: return valid(cmd_dele(cmd));
        case verb::noop: return valid(reply_only(ok()));
        case verb::rset: return valid(cmd_rset());
        default: return bad_command(err("command not valid in this state"));
    }
}

step session::cmd_capa() const {
    std::string out = ok("capability list follows");
    out += "TOP\r\nUIDL\r\nRESP-CODES\r\nAUTH-RESP-CODE\r\nPIPELINING\r\n";
    out += fmt::format("EXPIRE {}\r\nLOGIN-DELAY {}\r\n", policy_.expire, policy_.login_delay);
    if (state_ != state::transaction) {
        const bool plain_ok = plaintext_allowed();
        if (plain_ok) {
            out += "USER\r\n";
        }
        std::string sasl;
        for (const auth::mechanism_info& m : auth_.mechanisms()) {
            if (!m.sends_plaintext || plain_ok) {
                sasl += ' ';
                sasl += m.name;
            }
        }
        if (!sasl.empty()) {
            out += "SASL" + sasl + "\r\n";
        }
        if (facts_.tls_available && !facts_.tls) {
            out += "STLS\r\n";
        }
    }
    out += "IMPLEMENTATION poplar\r\n.\r\n";
    return reply_only(std::move(out));
}

step session::cmd_user(const command& cmd) {
    if (!plaintext_allowed()) {
        ++stats_.plaintext_refused;
        return bad_command(plaintext_refused());
    }
    bad_commands_ = 0;
    pending_user_ = std::string(cmd.args[0]);
    return reply_only(ok());
}

step session::cmd_pass(const command& cmd) {
    if (pending_user_.empty()) {
        return bad_command(err("send USER first"));
    }
    if (!plaintext_allowed()) {  // policy may not have changed, but never trust call order
        ++stats_.plaintext_refused;
        return bad_command(plaintext_refused());
    }
    bad_commands_ = 0;
    // USER/PASS is SASL PLAIN in disguise (RFC 4616 §2): one auth path for every login.
    std::string response;
    response.reserve(pending_user_.size() + cmd.args[0].size() + 2);
    response += '\0';
    response += pending_user_;
    response += '\0';
    response += cmd.args[0];
    pending_user_.clear();
    return start_exchange(auth_.start("PLAIN"), "USER", std::move(response));
}

step session::cmd_apop(const command& cmd) {
    if (!policy_.apop) {
        return bad_command(err("APOP is not enabled"));
    }
    if (!apop_allowed()) {
        // The same refusal USER/PASS gets: the digest just crossed in clear, but telling the
        // client to use STLS is the only help left.
        ++stats_.plaintext_refused;
        return bad_command(plaintext_refused());
    }
    if (!greeting_has_timestamp_) {
        // After STLS on a connection whose greeting had no timestamp: there is nothing to digest.
        return bad_command(err("APOP is not available on this connection: the greeting had no timestamp"));
    }
    bad_commands_ = 0;
    pending_user_.clear();
    std::string response = fmt::format("{} {}", cmd.args[0], cmd.args[1]);
    return start_exchange(auth_.start_apop(apop_timestamp_), "APOP", std::move(response));
}

step session::cmd_auth(const command& cmd) {
    const bool plain_ok = plaintext_allowed();
    if (cmd.args.empty()) {
        // Not in RFC 5034, but Outlook and others send a bare AUTH and expect the list.
        bad_commands_ = 0;
        std::string out = ok();
        for (const auth::mechanism_info& m : auth_.mechanisms()) {
            if (!m.sends_plaintext || plain_ok) {
                out += m.name + "\r\n";
            }
        }
        out += ".\r\n";
        return reply_only(std::move(out));
    }
    std::optional<auth::mechanism_info> found;
    for (const auth::mechanism_info& m : auth_.mechanisms()) {
        if (util::iequals(m.name, cmd.args[0])) {
            found = m;
        }
    }
    if (!found) {
        ++stats_.malformed_auth;
        return bad_command(err("unsupported authentication mechanism"));
    }
    if (found->sends_plaintext && !plain_ok) {
        ++stats_.plaintext_refused;
        return bad_command(plaintext_refused());
    }
    bad_commands_ = 0;
    pending_user_.clear();
    std::unique_ptr<auth::sasl_mechanism> mech = auth_.start(found->name);
    if (!mech) {
        return reply_only(err(resp_code::sys_temp, "authentication temporarily unavailable"));
    }
    if (cmd.args.size() == 1) {
        // No initial response: send the mechanism's first challenge (RFC 4422 §3.3).
        std::string challenge = "+ " + util::base64_encode(mech->initial_challenge());
        if (challenge.size() == 2) {
            challenge.pop_back();  // "+ " for an empty challenge, as RFC 5034 §4 shows it
            challenge += ' ';
        }
        challenge += "\r\n";
        mechanism_ = std::move(mech);
        mech_name_ = found->name;
        state_ = state::sasl;
        return reply_only(std::move(challenge));
    }
    // RFC 5034 §4: "=" is an empty initial response.
    std::optional<std::string> decoded =
        cmd.args[1] == "=" ? std::optional<std::string>(std::string()) : util::base64_decode(cmd.args[1]);
    if (!decoded) {
        ++stats_.malformed_auth;
        return bad_command(err("invalid base64 data"));
    }
    return start_exchange(std::move(mech), found->name, std::move(*decoded));
}

step session::sasl_response(std::string_view line) {
    if (line == "*") {
        // RFC 5034 §4: the client cancelled; the server must reject the AUTH command.
        mechanism_.reset();
        state_ = state::authorization;
        return reply_only(err("authentication cancelled"));
    }
    std::optional<std::string> decoded = util::base64_decode(line);
    if (!decoded) {
        mechanism_.reset();
        state_ = state::authorization;
        ++stats_.malformed_auth;
        return bad_command(err("invalid base64 data"));
    }
    state_ = state::authorization;
    return step{{}, {}, effect::run_auth{mechanism_.get(), std::move(*decoded)}};
}

step session::start_exchange(std::unique_ptr<auth::sasl_mechanism> mech, std::string mech_name,
                             std::string response) {
    if (!mech) {
        util::wipe(response);
        return reply_only(err(resp_code::sys_temp, "authentication temporarily unavailable"));
    }
    mechanism_ = std::move(mech);
    mech_name_ = std::move(mech_name);
    return step{{}, {}, effect::run_auth{mechanism_.get(), std::move(response)}};
}

step session::on_auth_step(auth::sasl_mechanism::step_result r) {
    if (!r.done) {
        state_ = state::sasl;
        return reply_only("+ " + util::base64_encode(r.challenge) + "\r\n");
    }
    mechanism_.reset();  // nothing after this point holds a password
    log_user_ = std::move(r.result.user);
    switch (r.result.result) {
        case auth::verdict::success:
            return step{{}, {}, effect::open_maildrop{log_user_}};
        case auth::verdict::temporary_failure:
            return reply_only(err(resp_code::sys_temp, "authentication temporarily unavailable"));
        case auth::verdict::failure:
            break;
    }
    // One reply and one delay for every failure, whatever the mechanism: an unknown user, an
    // account APOP cannot use (no {PLAIN} secret) and a wrong password or digest look the same
    // (RFC 3206 §4 [AUTH]); only the log says which it was.
    // The exception: an account disabled with a reason (passwd-file nologin reason=, as Dovecot
    // shows it), which the network layer passes on only after the password verified.
    return failed(err(resp_code::auth, r.result.client_message.empty() ? std::string_view("invalid user name or password")
                                                                       : std::string_view(r.result.client_message)));
}

step session::on_auth_refused(resp_code code, std::string_view text) {
    mechanism_.reset();
    state_ = state::authorization;
    return failed(err(code, text));
}

step session::failed(std::string reply) {
    ++auth_failures_;
    if (auth_failures_ >= policy_.max_auth_failures) {
        state_ = state::closed;
        return step{std::move(reply), policy_.auth_failure_delay, effect::close{}};
    }
    return step{std::move(reply), policy_.auth_failure_delay, effect::none{}};
}

step session::on_maildrop_opened(result<std::unique_ptr<storage::maildrop>, storage::error> opened) {
    if (!opened) {
        switch (opened.error().code) {
            case storage::errc::in_use:
                return reply_only(err(resp_code::in_use, "maildrop is locked by another session"));
            case storage::errc::permanent:
                return reply_only(err(resp_code::sys_perm, "maildrop unavailable"));
            case storage::errc::temporary:
                break;
        }
        return reply_only(err(resp_code::sys_temp, "maildrop temporarily unavailable"));
    }
    maildrop_ = std::move(opened.value());
    const auto msgs = maildrop_->messages();
    deleted_.assign(msgs.size(), false);
    cmd_rset();
    state_ = state::transaction;
    bad_commands_ = 0;
    return reply_only(ok(maildrop_summary()));
}

step session::on_login_refused(resp_code code, std::string_view text) { return reply_only(err(code, text)); }

std::string session::maildrop_summary() const {
    return fmt::format("maildrop has {} messages ({} octets)", live_count_, live_size_);
}

std::variant<std::size_t, step> session::resolve_msn(std::string_view arg) const {
    const number_arg n = parse_number(arg);
    if (n.status == number_arg::kind::invalid) {
        return reply_only(err("invalid message number"));
    }
    if (n.status == number_arg::kind::out_of_range || n.value == 0 || n.value > deleted_.size()) {
        return reply_only(err("no such message"));
    }
    const std::size_t index = static_cast<std::size_t>(n.value - 1);
    if (deleted_[index]) {
        return reply_only(err(fmt::format("message {} is deleted", n.value)));
    }
    return index;
}

step session::cmd_list_or_uidl(const command& cmd, bool uidl) const {
    const auto msgs = maildrop_->messages();
    if (!cmd.args.empty()) {
        auto r = resolve_msn(cmd.args[0]);
        if (auto* s = std::get_if<step>(&r)) {
            return std::move(*s);
        }
        const std::size_t i = std::get<std::size_t>(r);
        return uidl ? reply_only(ok(fmt::format("{} {}", i + 1, msgs[i].uidl)))
                    : reply_only(ok(fmt::format("{} {}", i + 1, msgs[i].virtual_size)));
    }
    std::string out = uidl ? ok("unique-id listing follows")
                           : ok(fmt::format("{} messages ({} octets)", live_count_, live_size_));
    out.reserve(out.size() + live_count_ * (uidl ? 24 : 16) + 3);
    for (std::size_t i = 0; i < msgs.size(); ++i) {
        if (deleted_[i]) {
            continue;
        }
        if (uidl) {
            fmt::format_to(std::back_inserter(out), "{} {}\r\n", i + 1, msgs[i].uidl);
        } else {
            fmt::format_to(std::back_inserter(out), "{} {}\r\n", i + 1, msgs[i].virtual_size);
        }
    }
    out += ".\r\n";
    return reply_only(std::move(out));
}

step session::cmd_retr_or_top(const command& cmd, bool top) {
    auto r = resolve_msn(cmd.args[0]);
    if (auto* s = std::get_if<step>(&r)) {
        return std::move(*s);
    }
    const std::size_t i = std::get<std::size_t>(r);
    if (!top) {
        return step{{}, {}, effect::send_message{i, std::nullopt,
                                                  ok(fmt::format("{} octets", maildrop_->messages()[i].virtual_size))}};
    }
    // RFC 1939 §7: "TOP msg n", n a non-negative number of body lines.
    const number_arg lines = parse_number(cmd.args[1]);
    if (lines.status != number_arg::kind::ok) {
        return reply_only(err("invalid line count"));
    }
    ++stats_.top;
    return step{{}, {}, effect::send_message{i, lines.value, ok("top of message follows")}};
}

void session::note_retrieved(std::size_t index) {
    ++stats_.retr;
    stats_.retr_bytes += maildrop_->messages()[index].virtual_size;
}

step session::on_message_unavailable(const storage::error& e) {
    if (e.code == storage::errc::permanent) {
        return reply_only(err(resp_code::sys_perm, "message is unreadable"));
    }
    return reply_only(err(resp_code::sys_temp, "message is no longer available"));
}

step session::cmd_dele(const command& cmd) {
    auto r = resolve_msn(cmd.args[0]);
    if (auto* s = std::get_if<step>(&r)) {
        return std::move(*s);
    }
    const std::size_t i = std::get<std::size_t>(r);
    deleted_[i] = true;
    --live_count_;
    live_size_ -= maildrop_->messages()[i].virtual_size;
    return reply_only(ok(fmt::format("message {} deleted", i + 1)));
}

step session::cmd_rset() {
    const auto msgs = maildrop_->messages();
    deleted_.assign(msgs.size(), false);
    live_count_ = msgs.size();
    live_size_ = 0;
    for (const storage::message_info& m : msgs) {
        live_size_ += m.virtual_size;
    }
    return reply_only(ok(maildrop_summary()));
}

step session::cmd_stls() {
    if (facts_.tls) {
        return bad_command(err("already using TLS"));
    }
    if (!facts_.tls_available) {
        return bad_command(err("TLS is not available"));
    }
    bad_commands_ = 0;
    pending_user_.clear();
    return step{ok("begin TLS negotiation"), {}, effect::start_tls{}};
}

step session::on_tls_established() {
    facts_.tls = true;
    return {};
}

step session::cmd_quit() {
    quit_ = true;
    if (state_ != state::transaction) {
        state_ = state::closed;
        return step{ok("signing off"), {}, effect::close{}};
    }
    // RFC 1939 §6: QUIT from TRANSACTION enters UPDATE and removes the deleted messages.
    std::vector<std::size_t> indices;
    for (std::size_t i = 0; i < deleted_.size(); ++i) {
        if (deleted_[i]) {
            indices.push_back(i);
        }
    }
    state_ = state::closed;
    if (indices.empty()) {
        return step{ok("signing off"), {}, effect::close{}};
    }
    return step{{}, {}, effect::commit{std::move(indices)}};
}

void session::release_maildrop() {
    if (state_ == state::closed) {
        maildrop_.reset();
    }
}

void session::on_disconnect() {
    state_ = state::closed;
    maildrop_.reset();
}

step session::on_commit_done(const result<void, storage::error>& removed) {
    if (!removed) {
        return step{err(resp_code::sys_temp, "some deleted messages were not removed"), {}, effect::close{}};
    }
    stats_.dele = static_cast<unsigned>(deleted_.size() - live_count_);
    return step{ok("signing off"), {}, effect::close{}};
}

}  // namespace poplar::core
