// The LMTP session state machine (RFC 2033, with RFC 5321's commands, RFC 1870 SIZE, RFC 2034
// ENHANCEDSTATUSCODES, RFC 6152 8BITMIME, RFC 2920 PIPELINING), without I/O.
//
// Like core::session for POP3: the connection feeds it lines (core::line_framer, CR/LF removed)
// and gets a `step` back: bytes to send and at most one effect to carry out (look a recipient up,
// deliver the message, close). The effect's result comes back through the matching on_...() call;
// until then the connection feeds no further line, so pipelined commands simply wait in the
// framer and their replies come in order (RFC 2920 §3). Nothing here blocks, reads a clock or
// touches a socket: unit tests drive it directly and fuzz/fuzz_lmtp_session.cpp with random lines.
//
// What LMTP changes from SMTP (RFC 2033 §4): LHLO instead of EHLO, and after the final "." one
// reply per accepted recipient, in RCPT order, so a delivery to one user that fails temporarily
// does not make the client resend the message to the others.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

namespace poplar::lmtp {

// The admin's settings that shape the dialogue (config [lmtp], docs/configuration.md).
struct session_policy {
    std::string hostname;  // greeting and LHLO reply
    // RFC 1870: advertised in LHLO as "SIZE n"; MAIL with a larger SIZE= is refused (552 5.3.4)
    // and a message that turns out larger is refused for every recipient after DATA.
    std::uint64_t max_message_size = 50ull * 1024 * 1024;
    // RFC 5321 §4.5.3.1.8 asks servers to take at least 100; more are refused with 452 4.5.3,
    // which the client retries in a later transaction (RFC 5321 §3.3).
    unsigned max_recipients = 100;
    // Consecutive bad commands before "421 4.7.0" and close (the POP3 side's rule, limits.h).
    unsigned max_bad_commands = 10;
};

// The envelope of one transaction (RFC 5321 §3.3).
struct envelope {
    std::string sender;                   // MAIL FROM's reverse-path without <>; empty for <>
    std::vector<std::string> recipients;  // accepted RCPT TO addresses, without <>, in order
    std::uint64_t declared_size = 0;      // MAIL FROM's SIZE= (RFC 1870), 0 when not given
};

// What the recipient lookup found (effect::check_recipient).
enum class recipient_verdict {
    accepted,          // 250 2.1.5
    unknown,           // 550 5.1.1: no such user (RFC 3463 "bad destination mailbox address")
    over_quota_temp,   // 452 4.2.2: mailbox full, try later (delivery.quota_action = "defer")
    over_quota_perm,   // 552 5.2.2: mailbox full, bounce (delivery.quota_action = "bounce")
    temporary_failure, // 451 4.3.0: the user database could not answer
};

// What delivering to one recipient came to (effect::deliver), in RCPT order.
enum class delivery_verdict {
    delivered,          // 250 2.0.0
    over_quota_temp,    // 452 4.2.2
    over_quota_perm,    // 552 5.2.2
    too_large,          // 552 5.3.4 (the user's own size limit, if any)
    unknown,            // 550 5.1.1 (the user went away between RCPT and DATA)
    temporary_failure,  // 451 4.3.0: a storage failure (disk full, I/O error): never lost, retried
    permanent_failure,  // 554 5.3.0: the store refuses for good (corrupt maildrop, permissions)
};

namespace effect {
struct none {};
// Look up `address` (as the client sent it, without <>), then call on_recipient_checked().
// `declared_size` (0: unknown) lets the quota be checked before the data comes (RFC 1870 §6).
struct check_recipient {
    std::string address;
    std::uint64_t declared_size = 0;
};
// Deliver `message` (in core/stored_form.h's form: LF line ends, dot-unstuffed, no trace
// headers; the delivery path adds those) to every recipient of `env`, then call on_delivered()
// with one verdict per recipient in the same order. The connection may move `message` out.
struct deliver {
    envelope env;
    std::string message;
};
// Send the reply and close the connection.
struct close {};
}  // namespace effect

using action = std::variant<effect::none, effect::check_recipient, effect::deliver, effect::close>;

struct step {
    std::string reply;  // bytes to send (may be empty: inside DATA)
    action next = effect::none{};
};

// Counters for the session-end log line.
struct session_stats {
    unsigned transactions = 0;  // DATA phases completed (whatever the verdicts)
    unsigned delivered = 0;     // recipient deliveries that got 250
    unsigned refused = 0;       // RCPTs refused plus deliveries that did not get 250
    std::uint64_t bytes = 0;    // stored-form octets of delivered messages, once per recipient
};

class session {
public:
    enum class state {
        greeting,  // before LHLO
        ready,     // after LHLO or RSET, no transaction
        mail,      // after MAIL FROM
        data,      // after "354", collecting message lines
        closed,
    };

    explicit session(session_policy policy);

    // "220 <hostname> LMTP poplar ready\r\n" (RFC 5321 §4.2, 220 greeting).
    std::string greeting() const;

    step on_line(std::string_view line);
    // The framer reported a line beyond max_line(): "500 5.5.6 Line too long" for a command
    // (counted as a bad command); inside DATA the message is marked too large (552 5.3.4 for
    // every recipient after the final "."), and the rest of the data is still read.
    step on_line_too_long();

    step on_recipient_checked(recipient_verdict v);
    step on_delivered(std::span<const delivery_verdict> verdicts);
    // The connection could not carry out the delivery at all (no worker, shutdown): 451 4.3.0
    // for every recipient, so the client keeps the message queued.
    step on_delivery_failed();

    state current_state() const { return state_; }
    // The longest line the next input may be: 512 octets with CRLF for commands (RFC 5321
    // §4.5.3.1.4, 510 without), and inside DATA max_message_size (RFC 5321's 1000-octet text
    // line limit is not enforced: the message is stored as it came, issue 12).
    std::size_t max_line() const;
    const session_stats& stats() const { return stats_; }
    const envelope& current_envelope() const { return env_; }

private:
    session_policy policy_;
    state state_ = state::greeting;
    envelope env_;
    std::string pending_recipient_;  // the address of the check_recipient in flight
    std::string data_;               // the message so far, stored form
    std::uint64_t data_size_ = 0;    // octets received in DATA (the RFC 1870 size: CRLF lines)
    bool data_too_large_ = false;
    unsigned bad_commands_ = 0;
    session_stats stats_;
};

}  // namespace poplar::lmtp
