// Tests for lmtp::session: every reply's exact bytes, the transaction, DATA and its limits.
#include "lmtp/session.h"

#include <gtest/gtest.h>

#include <cstring>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "core/line_framer.h"

namespace poplar::lmtp {
namespace {

using state = session::state;

session_policy test_policy() {
    session_policy p;
    p.hostname = "mx.example";
    p.max_message_size = 10000;
    p.max_recipients = 100;
    p.max_bad_commands = 10;
    return p;
}

// A line that must be answered at once, without an effect.
std::string say(session& s, std::string_view line) {
    step st = s.on_line(line);
    EXPECT_TRUE(std::holds_alternative<effect::none>(st.next)) << line;
    return st.reply;
}

// An RCPT line that must ask for a lookup; the lookup answers `v`.
std::string rcpt(session& s, std::string_view line, recipient_verdict v = recipient_verdict::accepted) {
    step st = s.on_line(line);
    EXPECT_EQ(st.reply, "") << line;
    EXPECT_TRUE(std::holds_alternative<effect::check_recipient>(st.next)) << line;
    if (!std::holds_alternative<effect::check_recipient>(st.next)) {
        return st.reply;
    }
    return s.on_recipient_checked(v).reply;
}

// LHLO, MAIL FROM:<sender@example.org> and the given accepted recipients, then DATA.
void open_data(session& s, const std::vector<std::string>& recipients) {
    ASSERT_EQ(say(s, "LHLO client.example").substr(0, 4), "250-");
    ASSERT_EQ(say(s, "MAIL FROM:<sender@example.org>"), "250 2.1.0 Ok\r\n");
    for (const std::string& r : recipients) {
        ASSERT_EQ(rcpt(s, "RCPT TO:<" + r + ">"), "250 2.1.5 <" + r + "> Ok\r\n");
    }
    ASSERT_EQ(say(s, "DATA"), "354 End data with <CR><LF>.<CR><LF>\r\n");
    ASSERT_EQ(s.current_state(), state::data);
}

// Sends the final "." and returns the message to deliver (empty if there was no deliver effect).
effect::deliver finish(session& s) {
    step st = s.on_line(".");
    EXPECT_EQ(st.reply, "");
    auto* d = std::get_if<effect::deliver>(&st.next);
    EXPECT_NE(d, nullptr);
    return d != nullptr ? std::move(*d) : effect::deliver{};
}

// Raw client bytes through the real framer, every effect answered in order as the connection
// would: lookups by `lookup`, deliveries by `deliver`. Returns everything sent, the greeting
// not included.
struct driver {
    session s;
    core::line_framer framer;
    std::vector<recipient_verdict> lookups;  // answers in order; accepted when exhausted
    std::vector<delivery_verdict> deliveries;  // answers in order; delivered when exhausted
    std::vector<std::string> messages;         // what was delivered
    bool closed = false;

    explicit driver(session_policy p = test_policy()) : s(std::move(p)), framer(s.max_line()) {}

    std::string feed(std::string_view bytes) {
        std::span<char> space = framer.prepare(bytes.size());
        std::memcpy(space.data(), bytes.data(), bytes.size());
        framer.commit(bytes.size());
        std::string out;
        while (!closed) {
            auto ev = framer.next();
            if (!ev) {
                break;
            }
            step st = ev->what == core::line_framer::event::kind::too_long ? s.on_line_too_long() : s.on_line(ev->text);
            out += st.reply;
            if (std::holds_alternative<effect::check_recipient>(st.next)) {
                recipient_verdict v = recipient_verdict::accepted;
                if (!lookups.empty()) {
                    v = lookups.front();
                    lookups.erase(lookups.begin());
                }
                st = s.on_recipient_checked(v);
                out += st.reply;
            } else if (auto* d = std::get_if<effect::deliver>(&st.next)) {
                messages.push_back(std::move(d->message));
                std::vector<delivery_verdict> vs;
                for (std::size_t i = 0; i < d->env.recipients.size(); ++i) {
                    delivery_verdict v = delivery_verdict::delivered;
                    if (!deliveries.empty()) {
                        v = deliveries.front();
                        deliveries.erase(deliveries.begin());
                    }
                    vs.push_back(v);
                }
                st = s.on_delivered(vs);
                out += st.reply;
            }
            closed = std::holds_alternative<effect::close>(st.next);
            framer.set_max_line(s.max_line());
        }
        return out;
    }
};

constexpr std::string_view lhlo_reply =
    "250-mx.example\r\n250-PIPELINING\r\n250-ENHANCEDSTATUSCODES\r\n250-8BITMIME\r\n250 SIZE 10000\r\n";

TEST(LmtpSession, Greeting) {
    session s(test_policy());
    EXPECT_EQ(s.greeting(), "220 mx.example LMTP poplar ready\r\n");
    EXPECT_EQ(s.current_state(), state::greeting);
}

TEST(LmtpSession, Lhlo) {
    session s(test_policy());
    EXPECT_EQ(say(s, "LHLO"), "501 5.5.4 Syntax: LHLO hostname\r\n");
    EXPECT_EQ(say(s, "LHLO   "), "501 5.5.4 Syntax: LHLO hostname\r\n");
    EXPECT_EQ(s.current_state(), state::greeting);
    EXPECT_EQ(say(s, "LHLO client.example"), lhlo_reply);
    EXPECT_EQ(s.current_state(), state::ready);
    EXPECT_EQ(say(s, "lhlo [192.0.2.1]"), lhlo_reply);  // case-insensitive (RFC 5321 §2.4)
}

TEST(LmtpSession, HeloAndEhloAreRefused) {
    session s(test_policy());
    EXPECT_EQ(say(s, "HELO client.example"), "500 5.5.1 This is LMTP (RFC 2033): use LHLO\r\n");
    EXPECT_EQ(say(s, "ehlo client.example"), "500 5.5.1 This is LMTP (RFC 2033): use LHLO\r\n");
    EXPECT_EQ(s.current_state(), state::greeting);
}

TEST(LmtpSession, FullTransactionOneReplyPerAcceptedRecipient) {
    session s(test_policy());
    EXPECT_EQ(say(s, "LHLO client.example"), lhlo_reply);
    EXPECT_EQ(say(s, "MAIL FROM:<sender@example.org>"), "250 2.1.0 Ok\r\n");
    EXPECT_EQ(s.current_state(), state::mail);

    step st = s.on_line("RCPT TO:<alice@example.com>");
    EXPECT_EQ(st.reply, "");
    auto* c = std::get_if<effect::check_recipient>(&st.next);
    ASSERT_NE(c, nullptr);
    EXPECT_EQ(c->address, "alice@example.com");
    EXPECT_EQ(c->declared_size, 0u);
    EXPECT_EQ(s.on_recipient_checked(recipient_verdict::accepted).reply, "250 2.1.5 <alice@example.com> Ok\r\n");
    EXPECT_EQ(rcpt(s, "RCPT TO:<nobody@example.com>", recipient_verdict::unknown),
              "550 5.1.1 <nobody@example.com> User doesn't exist\r\n");
    EXPECT_EQ(rcpt(s, "RCPT TO:<bob@example.com>"), "250 2.1.5 <bob@example.com> Ok\r\n");
    EXPECT_EQ(s.current_envelope().recipients, (std::vector<std::string>{"alice@example.com", "bob@example.com"}));

    EXPECT_EQ(say(s, "DATA"), "354 End data with <CR><LF>.<CR><LF>\r\n");
    EXPECT_EQ(say(s, "Subject: hi"), "");
    EXPECT_EQ(say(s, ""), "");
    EXPECT_EQ(say(s, "hello"), "");
    effect::deliver d = finish(s);
    EXPECT_EQ(d.message, "Subject: hi\n\nhello\n");
    EXPECT_EQ(d.env.sender, "sender@example.org");
    EXPECT_EQ(d.env.recipients, (std::vector<std::string>{"alice@example.com", "bob@example.com"}));

    const delivery_verdict verdicts[] = {delivery_verdict::delivered, delivery_verdict::temporary_failure};
    EXPECT_EQ(s.on_delivered(verdicts).reply,
              "250 2.0.0 <alice@example.com> Saved\r\n"
              "451 4.3.0 <bob@example.com> Temporary failure, try again later\r\n");
    EXPECT_EQ(s.current_state(), state::ready);
    EXPECT_TRUE(s.current_envelope().recipients.empty());
    EXPECT_EQ(s.current_envelope().sender, "");
    EXPECT_EQ(s.stats().transactions, 1u);
    EXPECT_EQ(s.stats().delivered, 1u);
    EXPECT_EQ(s.stats().refused, 2u);  // nobody at RCPT, bob at delivery
    EXPECT_EQ(s.stats().bytes, 19u);   // the stored form, once for alice
}

TEST(LmtpSession, PipelinedSession) {
    driver d;
    d.lookups = {recipient_verdict::accepted, recipient_verdict::unknown, recipient_verdict::accepted};
    d.deliveries = {delivery_verdict::delivered, delivery_verdict::over_quota_temp};
    // RFC 2920 §3: the whole batch in one write; the replies come back in order.
    const std::string out = d.feed(
        "LHLO client.example\r\n"
        "MAIL FROM:<a@example.org> SIZE=12 BODY=8BITMIME\r\n"
        "RCPT TO:<x@example.com>\r\n"
        "RCPT TO:<y@example.com>\r\n"
        "RCPT TO:<z@example.com>\r\n"
        "DATA\r\n"
        "body\r\n"
        ".\r\n"
        "RSET\r\n"
        "QUIT\r\n"
        "NOOP\r\n");
    EXPECT_EQ(out, std::string(lhlo_reply) +
                       "250 2.1.0 Ok\r\n"
                       "250 2.1.5 <x@example.com> Ok\r\n"
                       "550 5.1.1 <y@example.com> User doesn't exist\r\n"
                       "250 2.1.5 <z@example.com> Ok\r\n"
                       "354 End data with <CR><LF>.<CR><LF>\r\n"
                       "250 2.0.0 <x@example.com> Saved\r\n"
                       "452 4.2.2 <z@example.com> Mailbox full\r\n"
                       "250 2.0.0 Ok\r\n"
                       "221 2.0.0 mx.example closing connection\r\n");
    EXPECT_TRUE(d.closed);
    EXPECT_EQ(d.messages, std::vector<std::string>{"body\n"});
    EXPECT_EQ(d.s.stats().bytes, 5u);
}

TEST(LmtpSession, DotUnstuffing) {
    session s(test_policy());
    open_data(s, {"a@x"});
    // RFC 5321 §4.5.2: the first of the line's dots is the client's, whatever follows it.
    for (std::string_view line : {"..", ".x", "...", ". ", "a.", ".. two"}) {
        EXPECT_EQ(say(s, line), "");
    }
    EXPECT_EQ(finish(s).message, ".\nx\n..\n \na.\n. two\n");
}

TEST(LmtpSession, EmptyMessage) {
    session s(test_policy());
    open_data(s, {"a@x"});
    EXPECT_EQ(finish(s).message, "");
    const delivery_verdict v[] = {delivery_verdict::delivered};
    EXPECT_EQ(s.on_delivered(v).reply, "250 2.0.0 <a@x> Saved\r\n");
    EXPECT_EQ(s.stats().bytes, 0u);
}

TEST(LmtpSession, StoredFormOfReceivedLines) {
    driver d;
    const std::string long_line(5000, 'x');
    std::string out = d.feed("LHLO c\r\nMAIL FROM:<a@b>\r\nRCPT TO:<u@x>\r\nDATA\r\n");
    EXPECT_EQ(d.s.current_state(), state::data);
    EXPECT_EQ(d.s.max_line(), 10000u);
    out += d.feed("crlf\r\nlf\nends in cr\r\r\nbare\rcr\r\n");
    out += d.feed(std::string_view("nul\0byte\r\n", 10));
    out += d.feed("\xff\xfe 8-bit\r\n" + long_line + "\r\n");
    out += d.feed("last\r\n.\r\n");
    ASSERT_EQ(d.messages.size(), 1u);
    EXPECT_EQ(d.messages[0], std::string("crlf\nlf\nends in cr\r\r\nbare\rcr\n") + std::string("nul\0byte\n", 9) +
                                 "\xff\xfe 8-bit\n" + long_line + "\nlast\n");
    EXPECT_EQ(out, std::string(lhlo_reply) +
                       "250 2.1.0 Ok\r\n250 2.1.5 <u@x> Ok\r\n354 End data with <CR><LF>.<CR><LF>\r\n"
                       "250 2.0.0 <u@x> Saved\r\n");
    EXPECT_EQ(d.s.stats().bytes, d.messages[0].size());
    EXPECT_EQ(d.s.max_line(), 510u);
}

TEST(LmtpSession, SizeParameter) {
    session s(test_policy());
    say(s, "LHLO c");
    EXPECT_EQ(say(s, "MAIL FROM:<a@b> SIZE=10001"), "552 5.3.4 Message size exceeds fixed limit\r\n");
    EXPECT_EQ(say(s, "MAIL FROM:<a@b> SIZE=99999999999999999999999999"),
              "552 5.3.4 Message size exceeds fixed limit\r\n");
    EXPECT_EQ(say(s, "MAIL FROM:<a@b> SIZE=12x"), "501 5.5.4 Bad SIZE parameter\r\n");
    EXPECT_EQ(say(s, "MAIL FROM:<a@b> SIZE=-1"), "501 5.5.4 Bad SIZE parameter\r\n");
    EXPECT_EQ(say(s, "MAIL FROM:<a@b> SIZE="), "501 5.5.4 Bad SIZE parameter\r\n");
    EXPECT_EQ(say(s, "MAIL FROM:<a@b> SIZE"), "501 5.5.4 Bad SIZE parameter\r\n");
    EXPECT_EQ(say(s, "MAIL FROM:<a@b> BODY=BINARYMIME"), "501 5.5.4 Bad BODY parameter\r\n");
    EXPECT_EQ(say(s, "MAIL FROM:<a@b> AUTH=<>"), "555 5.5.4 Unsupported parameter AUTH\r\n");
    EXPECT_EQ(say(s, "MAIL FROM:<a@b> smtputf8"), "555 5.5.4 Unsupported parameter SMTPUTF8\r\n");
    EXPECT_EQ(s.current_state(), state::ready);
    EXPECT_EQ(say(s, "MAIL FROM:<a@b> size=10000 body=7bit"), "250 2.1.0 Ok\r\n");
    EXPECT_EQ(s.current_envelope().declared_size, 10000u);
    step st = s.on_line("RCPT TO:<u@x>");
    auto* c = std::get_if<effect::check_recipient>(&st.next);
    ASSERT_NE(c, nullptr);
    EXPECT_EQ(c->declared_size, 10000u);  // RFC 1870 §6: the quota can be checked at RCPT
    EXPECT_EQ(s.on_recipient_checked(recipient_verdict::accepted).reply, "250 2.1.5 <u@x> Ok\r\n");
}

TEST(LmtpSession, DataOverLimitIsRefusedForEveryRecipient) {
    session_policy p = test_policy();
    p.max_message_size = 20;
    session s(p);
    open_data(s, {"a@x", "b@x"});
    EXPECT_EQ(say(s, "0123456789"), "");   // 12 octets with CRLF
    EXPECT_EQ(say(s, "0123456"), "");      // 21: over the limit
    EXPECT_EQ(say(s, "more after"), "");   // still read, never a command
    EXPECT_EQ(say(s, "QUIT"), "");
    EXPECT_EQ(say(s, "."),
              "552 5.3.4 <a@x> Message size exceeds fixed limit\r\n"
              "552 5.3.4 <b@x> Message size exceeds fixed limit\r\n");
    EXPECT_EQ(s.current_state(), state::ready);
    EXPECT_TRUE(s.current_envelope().recipients.empty());
    EXPECT_EQ(s.stats().transactions, 1u);
    EXPECT_EQ(s.stats().refused, 2u);

    // The session stays usable: a message of exactly the limit goes through.
    EXPECT_EQ(say(s, "MAIL FROM:<a@b>"), "250 2.1.0 Ok\r\n");
    EXPECT_EQ(rcpt(s, "RCPT TO:<a@x>"), "250 2.1.5 <a@x> Ok\r\n");
    EXPECT_EQ(say(s, "DATA"), "354 End data with <CR><LF>.<CR><LF>\r\n");
    EXPECT_EQ(say(s, "0123456789"), "");
    EXPECT_EQ(say(s, "..23456"), "");  // 6 octets unstuffed + CRLF: 20 in all
    EXPECT_EQ(finish(s).message, "0123456789\n.23456\n");
    const delivery_verdict v[] = {delivery_verdict::delivered};
    EXPECT_EQ(s.on_delivered(v).reply, "250 2.0.0 <a@x> Saved\r\n");
    EXPECT_EQ(s.stats().transactions, 2u);
    EXPECT_EQ(s.stats().delivered, 1u);
}

TEST(LmtpSession, DataLineTooLongMakesTheMessageTooLarge) {
    session_policy p = test_policy();
    p.max_message_size = 100;
    driver d(p);
    d.feed("LHLO c\r\nMAIL FROM:<a@b>\r\nRCPT TO:<a@x>\r\nDATA\r\n");
    EXPECT_EQ(d.s.max_line(), 510u);  // never below a command line, so "." always fits
    EXPECT_EQ(d.feed(std::string(600, 'y') + "\r\nshort\r\n.\r\n"),
              "552 5.3.4 <a@x> Message size exceeds fixed limit\r\n");
    EXPECT_TRUE(d.messages.empty());
    EXPECT_EQ(d.s.current_state(), state::ready);
    // Direct too-long events inside DATA: no reply until ".".
    session s(test_policy());
    open_data(s, {"a@x"});
    EXPECT_EQ(s.on_line_too_long().reply, "");
    EXPECT_EQ(say(s, "."), "552 5.3.4 <a@x> Message size exceeds fixed limit\r\n");
}

TEST(LmtpSession, SequenceErrors) {
    session s(test_policy());
    EXPECT_EQ(say(s, "MAIL FROM:<a@b>"), "503 5.5.1 Send LHLO first\r\n");
    EXPECT_EQ(say(s, "RCPT TO:<a@b>"), "503 5.5.1 Send LHLO first\r\n");
    EXPECT_EQ(say(s, "DATA"), "503 5.5.1 Send LHLO first\r\n");
    EXPECT_EQ(s.current_state(), state::greeting);
    say(s, "LHLO c");
    EXPECT_EQ(say(s, "RCPT TO:<a@b>"), "503 5.5.1 Send MAIL first\r\n");
    EXPECT_EQ(say(s, "DATA"), "503 5.5.1 Send MAIL first\r\n");
    EXPECT_EQ(say(s, "MAIL FROM:<a@b>"), "250 2.1.0 Ok\r\n");
    EXPECT_EQ(say(s, "MAIL FROM:<a@b>"), "503 5.5.1 Nested MAIL command\r\n");
    EXPECT_EQ(say(s, "DATA"), "503 5.5.1 No valid recipients\r\n");
    EXPECT_EQ(rcpt(s, "RCPT TO:<u@x>", recipient_verdict::unknown), "550 5.1.1 <u@x> User doesn't exist\r\n");
    EXPECT_EQ(say(s, "DATA"), "503 5.5.1 No valid recipients\r\n");
    EXPECT_EQ(rcpt(s, "RCPT TO:<v@x>"), "250 2.1.5 <v@x> Ok\r\n");
    EXPECT_EQ(say(s, "DATA now"), "501 5.5.4 Syntax: DATA\r\n");
    EXPECT_EQ(s.current_state(), state::mail);
    EXPECT_EQ(say(s, "DATA"), "354 End data with <CR><LF>.<CR><LF>\r\n");
}

TEST(LmtpSession, PathSyntaxErrors) {
    session_policy p = test_policy();
    p.max_bad_commands = 100;  // each line below is a bad command
    session s(p);
    say(s, "LHLO c");
    for (std::string_view bad : {"MAIL", "MAIL FROM:", "MAIL FROM:a@b", "MAIL TO:<a@b>", "MAIL FROM:<a@b",
                                 "MAIL FROM:<a@b>x", "MAIL FROM <a@b>", "MAIL FROM:<a@b> =1", "MAIL FROM:<\"a>"}) {
        EXPECT_EQ(say(s, bad), "501 5.5.4 Syntax: MAIL FROM:<address>\r\n") << bad;
    }
    EXPECT_EQ(say(s, "MAIL FROM:<a\x01" "b@x>"), "501 5.1.7 Bad address syntax\r\n");
    EXPECT_EQ(say(s, "MAIL FROM:<a\x7f" "b@x>"), "501 5.1.7 Bad address syntax\r\n");
    EXPECT_EQ(say(s, "MAIL FROM:<" + std::string(257, 'a') + ">"), "501 5.1.7 Bad address syntax\r\n");
    EXPECT_EQ(say(s, "MAIL FROM:<" + std::string(256, 'a') + ">"), "250 2.1.0 Ok\r\n");
    for (std::string_view bad : {"RCPT", "RCPT TO:a@b", "RCPT FROM:<a@b>", "RCPT TO:<a@b>x"}) {
        EXPECT_EQ(say(s, bad), "501 5.5.4 Syntax: RCPT TO:<address>\r\n") << bad;
    }
    EXPECT_EQ(say(s, "RCPT TO:<>"), "501 5.1.3 Bad address syntax\r\n");
    EXPECT_EQ(say(s, "RCPT TO:<a\tb@x>"), "501 5.1.3 Bad address syntax\r\n");
    EXPECT_EQ(say(s, "RCPT TO:<" + std::string(257, 'a') + ">"), "501 5.1.3 Bad address syntax\r\n");
    EXPECT_EQ(say(s, "RCPT TO:<@relay-without-colon>"), "501 5.1.3 Bad address syntax\r\n");
    EXPECT_EQ(say(s, "RCPT TO:<a@b> NOTIFY=NEVER"), "555 5.5.4 Unsupported parameter NOTIFY\r\n");
    EXPECT_EQ(say(s, "RCPT TO:<a@b> orcpt=rfc822;a@b"), "555 5.5.4 Unsupported parameter ORCPT\r\n");
    EXPECT_TRUE(s.current_envelope().recipients.empty());
    EXPECT_EQ(s.stats().refused, 0u);  // syntax errors are bad commands, not refused recipients
}

TEST(LmtpSession, NullSender) {
    session s(test_policy());
    say(s, "LHLO c");
    EXPECT_EQ(say(s, "MAIL FROM:<>"), "250 2.1.0 Ok\r\n");
    EXPECT_EQ(s.current_envelope().sender, "");
    EXPECT_EQ(s.current_state(), state::mail);
    EXPECT_EQ(say(s, "RSET"), "250 2.0.0 Ok\r\n");
    EXPECT_EQ(say(s, "mail from: <> SIZE=5"), "250 2.1.0 Ok\r\n");  // a space after the colon
    EXPECT_EQ(s.current_envelope().declared_size, 5u);
}

TEST(LmtpSession, SourceRouteIsStripped) {
    session s(test_policy());
    say(s, "LHLO c");
    EXPECT_EQ(say(s, "MAIL FROM:<@a.example,@b.example:joe@c.example>"), "250 2.1.0 Ok\r\n");
    EXPECT_EQ(s.current_envelope().sender, "joe@c.example");
    step st = s.on_line("RCPT TO:<@relay.example:alice@example.com>");
    auto* c = std::get_if<effect::check_recipient>(&st.next);
    ASSERT_NE(c, nullptr);
    EXPECT_EQ(c->address, "alice@example.com");
    EXPECT_EQ(s.on_recipient_checked(recipient_verdict::accepted).reply, "250 2.1.5 <alice@example.com> Ok\r\n");
    EXPECT_EQ(s.current_envelope().recipients, std::vector<std::string>{"alice@example.com"});
}

TEST(LmtpSession, QuotedLocalPart) {
    session s(test_policy());
    say(s, "LHLO c");
    EXPECT_EQ(say(s, "MAIL FROM:<\"john doe\"@example.org> BODY=8BITMIME"), "250 2.1.0 Ok\r\n");
    EXPECT_EQ(s.current_envelope().sender, "\"john doe\"@example.org");
    step st = s.on_line("RCPT TO:<\"a>b \\\" c\"@example.com>");
    auto* c = std::get_if<effect::check_recipient>(&st.next);
    ASSERT_NE(c, nullptr);
    EXPECT_EQ(c->address, "\"a>b \\\" c\"@example.com");
    EXPECT_EQ(s.on_recipient_checked(recipient_verdict::accepted).reply,
              "250 2.1.5 <\"a>b \\\" c\"@example.com> Ok\r\n");
}

TEST(LmtpSession, RecipientLimit) {
    session_policy p = test_policy();
    p.max_recipients = 2;
    session s(p);
    say(s, "LHLO c");
    say(s, "MAIL FROM:<a@b>");
    EXPECT_EQ(rcpt(s, "RCPT TO:<u1@x>", recipient_verdict::unknown), "550 5.1.1 <u1@x> User doesn't exist\r\n");
    EXPECT_EQ(rcpt(s, "RCPT TO:<u2@x>"), "250 2.1.5 <u2@x> Ok\r\n");
    EXPECT_EQ(rcpt(s, "RCPT TO:<u3@x>"), "250 2.1.5 <u3@x> Ok\r\n");
    EXPECT_EQ(say(s, "RCPT TO:<u4@x>"), "452 4.5.3 Too many recipients\r\n");
    EXPECT_EQ(s.current_envelope().recipients, (std::vector<std::string>{"u2@x", "u3@x"}));
    EXPECT_EQ(s.stats().refused, 2u);
    EXPECT_EQ(say(s, "DATA"), "354 End data with <CR><LF>.<CR><LF>\r\n");
}

TEST(LmtpSession, DeliveryFailed) {
    session s(test_policy());
    open_data(s, {"a@x", "b@x"});
    say(s, "text");
    EXPECT_EQ(finish(s).message, "text\n");
    EXPECT_EQ(s.on_delivery_failed().reply,
              "451 4.3.0 <a@x> Temporary failure, try again later\r\n"
              "451 4.3.0 <b@x> Temporary failure, try again later\r\n");
    EXPECT_EQ(s.current_state(), state::ready);
    EXPECT_TRUE(s.current_envelope().recipients.empty());
    EXPECT_EQ(s.stats().delivered, 0u);
    EXPECT_EQ(s.stats().refused, 2u);
    EXPECT_EQ(s.stats().transactions, 1u);
    EXPECT_EQ(say(s, "MAIL FROM:<a@b>"), "250 2.1.0 Ok\r\n");
}

TEST(LmtpSession, EveryRecipientVerdict) {
    session s(test_policy());
    say(s, "LHLO c");
    say(s, "MAIL FROM:<a@b>");
    EXPECT_EQ(rcpt(s, "RCPT TO:<u@x>", recipient_verdict::accepted), "250 2.1.5 <u@x> Ok\r\n");
    EXPECT_EQ(rcpt(s, "RCPT TO:<u@x>", recipient_verdict::unknown), "550 5.1.1 <u@x> User doesn't exist\r\n");
    EXPECT_EQ(rcpt(s, "RCPT TO:<u@x>", recipient_verdict::over_quota_temp), "452 4.2.2 <u@x> Mailbox full\r\n");
    EXPECT_EQ(rcpt(s, "RCPT TO:<u@x>", recipient_verdict::over_quota_perm), "552 5.2.2 <u@x> Mailbox full\r\n");
    EXPECT_EQ(rcpt(s, "RCPT TO:<u@x>", recipient_verdict::temporary_failure),
              "451 4.3.0 <u@x> Temporary lookup failure\r\n");
    EXPECT_EQ(s.current_envelope().recipients.size(), 1u);
    EXPECT_EQ(s.stats().refused, 4u);
}

TEST(LmtpSession, EveryDeliveryVerdict) {
    session s(test_policy());
    open_data(s, {"r1@x", "r2@x", "r3@x", "r4@x", "r5@x", "r6@x", "r7@x"});
    say(s, "abc");
    EXPECT_EQ(finish(s).message, "abc\n");
    const delivery_verdict v[] = {delivery_verdict::delivered,         delivery_verdict::over_quota_temp,
                                  delivery_verdict::over_quota_perm,   delivery_verdict::too_large,
                                  delivery_verdict::unknown,           delivery_verdict::temporary_failure,
                                  delivery_verdict::permanent_failure};
    EXPECT_EQ(s.on_delivered(v).reply,
              "250 2.0.0 <r1@x> Saved\r\n"
              "452 4.2.2 <r2@x> Mailbox full\r\n"
              "552 5.2.2 <r3@x> Mailbox full\r\n"
              "552 5.3.4 <r4@x> Message too large for the mailbox\r\n"
              "550 5.1.1 <r5@x> User doesn't exist\r\n"
              "451 4.3.0 <r6@x> Temporary failure, try again later\r\n"
              "554 5.3.0 <r7@x> Delivery failed\r\n");
    EXPECT_EQ(s.stats().delivered, 1u);
    EXPECT_EQ(s.stats().refused, 6u);
    EXPECT_EQ(s.stats().bytes, 4u);
}

TEST(LmtpSession, LhloResetsTransaction) {
    session s(test_policy());
    say(s, "LHLO c");
    say(s, "MAIL FROM:<a@b> SIZE=10");
    rcpt(s, "RCPT TO:<u@x>");
    EXPECT_EQ(say(s, "LHLO again"), lhlo_reply);
    EXPECT_EQ(s.current_state(), state::ready);
    EXPECT_EQ(s.current_envelope().sender, "");
    EXPECT_TRUE(s.current_envelope().recipients.empty());
    EXPECT_EQ(s.current_envelope().declared_size, 0u);
    EXPECT_EQ(say(s, "DATA"), "503 5.5.1 Send MAIL first\r\n");
    EXPECT_EQ(say(s, "MAIL FROM:<c@d>"), "250 2.1.0 Ok\r\n");  // not a nested MAIL
}

TEST(LmtpSession, RsetNoopVrfyHelpQuit) {
    session s(test_policy());
    EXPECT_EQ(say(s, "RSET"), "250 2.0.0 Ok\r\n");
    EXPECT_EQ(s.current_state(), state::greeting);  // RSET does not stand in for LHLO
    EXPECT_EQ(say(s, "NOOP"), "250 2.0.0 Ok\r\n");
    EXPECT_EQ(say(s, "noop with an argument"), "250 2.0.0 Ok\r\n");
    EXPECT_EQ(say(s, "VRFY alice"), "252 2.5.2 Cannot VRFY user\r\n");
    EXPECT_EQ(say(s, "HELP"), "214 2.0.0 See RFC 2033\r\n");
    say(s, "LHLO c");
    say(s, "MAIL FROM:<a@b>");
    rcpt(s, "RCPT TO:<u@x>");
    EXPECT_EQ(say(s, "rset"), "250 2.0.0 Ok\r\n");
    EXPECT_EQ(s.current_state(), state::ready);
    EXPECT_TRUE(s.current_envelope().recipients.empty());
    step st = s.on_line("QUIT");
    EXPECT_EQ(st.reply, "221 2.0.0 mx.example closing connection\r\n");
    EXPECT_TRUE(std::holds_alternative<effect::close>(st.next));
    EXPECT_EQ(s.current_state(), state::closed);
    // Nothing runs after close.
    st = s.on_line("NOOP");
    EXPECT_EQ(st.reply, "");
    EXPECT_TRUE(std::holds_alternative<effect::close>(st.next));
    st = s.on_line_too_long();
    EXPECT_EQ(st.reply, "");
    EXPECT_TRUE(std::holds_alternative<effect::close>(st.next));
}

TEST(LmtpSession, UnknownCommands) {
    session_policy p = test_policy();
    p.max_bad_commands = 100;  // each line below is a bad command
    session s(p);
    say(s, "LHLO c");
    for (std::string_view cmd : {"STARTTLS", "AUTH PLAIN", "BDAT 10 LAST", "ETRN x", "EXPN list", "TURN", "XYZZY",
                                 " NOOP", "NOOPS"}) {
        EXPECT_EQ(say(s, cmd), "500 5.5.2 Command not recognised\r\n") << cmd;
    }
    EXPECT_EQ(say(s, ""), "500 5.5.2 Empty command\r\n");
    EXPECT_EQ(say(s, "   "), "500 5.5.2 Empty command\r\n");
    EXPECT_EQ(s.on_line_too_long().reply, "500 5.5.6 Line too long\r\n");
    EXPECT_EQ(s.current_state(), state::ready);
}

TEST(LmtpSession, TooManyBadCommandsClose) {
    session_policy p = test_policy();
    p.max_bad_commands = 3;
    session s(p);
    EXPECT_EQ(say(s, "FOO"), "500 5.5.2 Command not recognised\r\n");
    EXPECT_EQ(say(s, "HELO x"), "500 5.5.1 This is LMTP (RFC 2033): use LHLO\r\n");
    EXPECT_EQ(say(s, "NOOP"), "250 2.0.0 Ok\r\n");  // a good command starts the count again
    EXPECT_EQ(say(s, "MAIL FROM:<a@b>"), "503 5.5.1 Send LHLO first\r\n");
    EXPECT_EQ(s.on_line_too_long().reply, "500 5.5.6 Line too long\r\n");
    step st = s.on_line("BAR");
    EXPECT_EQ(st.reply,
              "500 5.5.2 Command not recognised\r\n"
              "421 4.7.0 mx.example Too many errors, closing connection\r\n");
    EXPECT_TRUE(std::holds_alternative<effect::close>(st.next));
    EXPECT_EQ(s.current_state(), state::closed);
}

TEST(LmtpSession, RefusalsAreNotBadCommands) {
    session_policy p = test_policy();
    p.max_bad_commands = 2;
    p.max_recipients = 1;
    session s(p);
    say(s, "LHLO c");
    EXPECT_EQ(say(s, "MAIL FROM:<a@b> SIZE=20000"), "552 5.3.4 Message size exceeds fixed limit\r\n");
    EXPECT_EQ(say(s, "MAIL FROM:<a@b>"), "250 2.1.0 Ok\r\n");
    for (int i = 0; i < 3; ++i) {
        EXPECT_EQ(rcpt(s, "RCPT TO:<u@x>", recipient_verdict::unknown), "550 5.1.1 <u@x> User doesn't exist\r\n");
    }
    EXPECT_EQ(rcpt(s, "RCPT TO:<v@x>"), "250 2.1.5 <v@x> Ok\r\n");
    EXPECT_EQ(say(s, "RCPT TO:<w@x>"), "452 4.5.3 Too many recipients\r\n");
    EXPECT_EQ(say(s, "RCPT TO:<w@x>"), "452 4.5.3 Too many recipients\r\n");
    EXPECT_EQ(s.current_state(), state::mail);
    EXPECT_EQ(say(s, "RCPT TO:<>"), "501 5.1.3 Bad address syntax\r\n");
    step st = s.on_line("RCPT TO:<>");
    EXPECT_EQ(st.reply,
              "501 5.1.3 Bad address syntax\r\n"
              "421 4.7.0 mx.example Too many errors, closing connection\r\n");
    EXPECT_TRUE(std::holds_alternative<effect::close>(st.next));
}

TEST(LmtpSession, MaxLine) {
    session s(test_policy());
    EXPECT_EQ(s.max_line(), 510u);
    open_data(s, {"a@x"});
    EXPECT_EQ(s.max_line(), 10000u);
    session_policy huge = test_policy();
    huge.max_message_size = ~0ull;
    session h(huge);
    open_data(h, {"a@x"});
    EXPECT_GT(h.max_line(), 1000000u);
    EXPECT_LT(h.max_line(), ~std::size_t{0});  // the framer adds 1 to it
}

#ifndef NDEBUG
TEST(LmtpSessionDeathTest, AnswersWithoutAnEffectAssert) {
    GTEST_FLAG_SET(death_test_style, "threadsafe");
    session s(test_policy());
    say(s, "LHLO c");
    say(s, "MAIL FROM:<a@b>");
    EXPECT_DEATH(s.on_recipient_checked(recipient_verdict::accepted), "check_recipient");
    const delivery_verdict v[] = {delivery_verdict::delivered};
    EXPECT_DEATH(s.on_delivered(v), "deliver");
    EXPECT_DEATH(s.on_delivery_failed(), "deliver");
}
#endif

}  // namespace
}  // namespace poplar::lmtp
