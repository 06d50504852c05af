// libFuzzer target: lmtp::session (src/lmtp/session.h) driven by random client bytes.
//
// Input: byte 0 sets the policy (recipient and bad-command limits), byte 1 the message size
// limit, byte 2 the framer chunking seed, byte 3 the seed the lookup and delivery verdicts are
// drawn from; the rest is what the client sends. Bytes go through the real line_framer (limit
// from session::max_line()) into the session, and every effect is answered as the connection
// would. Checked: no crash or sanitizer report; every reply line is "ddd " or "ddd-" text CRLF
// with no bare LF or CR, a multi-line reply keeps its code and ends; after the final "." exactly as
// many replies as accepted recipients; the state only moves along the protocol's edges; the
// session is closed exactly when it asked for a close, and reads nothing after it.
#include <cstring>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

#include "core/line_framer.h"
#include "fuzz_harness.h"
#include "lmtp/session.h"

namespace poplar::fuzz {

int lmtp_session_one_input(const std::uint8_t* data, std::size_t size);

namespace {

using lmtp::session;
using state = session::state;

// How many replies (a step may carry several: one per recipient after ".", or an error and the
// 421). Every line is well formed; the lines of a multi-line reply share its code (RFC 5321
// §4.2.1) and the last line of the step is a final one ("ddd ").
std::size_t check_reply(std::string_view r) {
    std::size_t replies = 0;
    std::string_view continued;  // the code of an unfinished multi-line reply
    while (!r.empty()) {
        const std::size_t lf = r.find('\n');
        POPLAR_FUZZ_CHECK(lf != std::string_view::npos && lf >= 5 && r[lf - 1] == '\r');
        const std::string_view line = r.substr(0, lf - 1);
        for (std::size_t i = 0; i < 3; ++i) {
            POPLAR_FUZZ_CHECK(line[i] >= '0' && line[i] <= '9');
        }
        POPLAR_FUZZ_CHECK(line[3] == ' ' || line[3] == '-');
        POPLAR_FUZZ_CHECK(line.find('\r') == std::string_view::npos);
        POPLAR_FUZZ_CHECK(continued.empty() || continued == line.substr(0, 3));
        if (line[3] == ' ') {
            ++replies;
            continued = {};
        } else {
            continued = line.substr(0, 3);
        }
        r.remove_prefix(lf + 1);
    }
    POPLAR_FUZZ_CHECK(continued.empty());
    return replies;
}

// The edges of RFC 5321 §4.1.4's sequence as session.h's states have them.
bool valid_transition(state from, state to) {
    if (from == to || to == state::closed) {
        return true;
    }
    switch (from) {
        case state::greeting: return to == state::ready;
        case state::ready: return to == state::mail;
        case state::mail: return to == state::ready || to == state::data;
        case state::data: return to == state::ready;
        case state::closed: return false;
    }
    return false;
}

}  // namespace

int lmtp_session_one_input(const std::uint8_t* data, std::size_t size) {
    byte_reader in(data, size);
    const std::uint8_t b0 = in.byte();
    const std::uint8_t b1 = in.byte();
    const std::uint8_t b2 = in.byte();
    const std::uint8_t b3 = in.byte();

    lmtp::session_policy policy;
    policy.hostname = "mx.example";
    policy.max_recipients = 1 + b0 % 4;
    policy.max_bad_commands = 1 + (b0 >> 2) % 8;
    // Small limits so that SIZE= and the too-large path are reached; 0 and a large one too.
    const std::uint64_t sizes[] = {0, 1, 16, 100, 600, 4096, 50ull * 1024 * 1024, ~0ull};
    policy.max_message_size = (b1 & 0x80) != 0 ? sizes[b1 % 8] : b1;
    session s(policy);
    POPLAR_FUZZ_CHECK(check_reply(s.greeting()) == 1);

    core::line_framer framer(s.max_line());
    chunk_sizes chunks(b2);
    chunk_sizes verdicts(0x9e3779b9u ^ b3);
    std::string_view input = in.rest();
    bool closed = false;
    unsigned dots = 0;
    while (!input.empty() && !closed) {
        const std::size_t n = 1 + chunks.next(63);
        const std::string_view chunk = input.substr(0, n);
        input.remove_prefix(chunk.size());
        std::span<char> space = framer.prepare(chunk.size());
        std::memcpy(space.data(), chunk.data(), chunk.size());
        framer.commit(chunk.size());

        while (!closed) {
            auto ev = framer.next();
            if (!ev) {
                break;
            }
            const state before = s.current_state();
            const std::size_t recipients = s.current_envelope().recipients.size();
            const bool final_dot = before == state::data && ev->what == core::line_framer::event::kind::line &&
                                   ev->text == ".";
            lmtp::step st = ev->what == core::line_framer::event::kind::too_long ? s.on_line_too_long()
                                                                                  : s.on_line(ev->text);
            std::size_t replies = check_reply(st.reply);
            if (before == state::data && !final_dot) {
                POPLAR_FUZZ_CHECK(st.reply.empty() && std::holds_alternative<lmtp::effect::none>(st.next));
            }
            if (final_dot) {
                ++dots;
            }
            if (auto* c = std::get_if<lmtp::effect::check_recipient>(&st.next)) {
                POPLAR_FUZZ_CHECK(st.reply.empty() && before == state::mail && !c->address.empty());
                POPLAR_FUZZ_CHECK(recipients < policy.max_recipients);
                const auto v = static_cast<lmtp::recipient_verdict>(verdicts.next(4));
                st = s.on_recipient_checked(v);
                replies = check_reply(st.reply);
                POPLAR_FUZZ_CHECK(replies == 1);
                const std::size_t now = s.current_envelope().recipients.size();
                POPLAR_FUZZ_CHECK(now == recipients + (v == lmtp::recipient_verdict::accepted ? 1 : 0));
                POPLAR_FUZZ_CHECK((st.reply.substr(0, 4) == "250 ") == (v == lmtp::recipient_verdict::accepted));
            } else if (auto* d = std::get_if<lmtp::effect::deliver>(&st.next)) {
                POPLAR_FUZZ_CHECK(final_dot && st.reply.empty() && s.current_state() == state::data);
                POPLAR_FUZZ_CHECK(d->env.recipients.size() == recipients && recipients > 0);
                // The stored form is never longer than the RFC 1870 size it was checked against.
                POPLAR_FUZZ_CHECK(d->message.size() <= policy.max_message_size);
                POPLAR_FUZZ_CHECK(d->message.empty() || d->message.back() == '\n');
                const std::string message = std::move(d->message);  // as the connection may
                if (verdicts.next(7) == 0) {
                    st = s.on_delivery_failed();
                } else {
                    std::vector<lmtp::delivery_verdict> vs;
                    for (std::size_t i = 0; i < recipients; ++i) {
                        vs.push_back(static_cast<lmtp::delivery_verdict>(verdicts.next(6)));
                    }
                    st = s.on_delivered(vs);
                }
                replies = check_reply(st.reply);
                POPLAR_FUZZ_CHECK(s.current_state() == state::ready && s.current_envelope().recipients.empty());
            }
            if (final_dot) {
                // RFC 2033 §4.2: one reply per accepted recipient, in order, whatever happened.
                POPLAR_FUZZ_CHECK(replies == recipients);
                POPLAR_FUZZ_CHECK(s.current_state() == state::ready);
            } else if (before != state::data) {
                POPLAR_FUZZ_CHECK(replies >= 1);  // every command is answered (maybe after its effect)
            }
            POPLAR_FUZZ_CHECK(valid_transition(before, s.current_state()));
            POPLAR_FUZZ_CHECK(s.stats().transactions == dots);
            POPLAR_FUZZ_CHECK(s.current_envelope().recipients.size() <= policy.max_recipients);
            // Closed exactly when the session asked the connection to close.
            closed = std::holds_alternative<lmtp::effect::close>(st.next);
            POPLAR_FUZZ_CHECK(closed == (s.current_state() == state::closed));
            framer.set_max_line(s.max_line());
        }
    }
    if (closed) {
        const lmtp::step after = s.on_line("NOOP");
        POPLAR_FUZZ_CHECK(after.reply.empty() && std::holds_alternative<lmtp::effect::close>(after.next));
    }
    return 0;
}

}  // namespace poplar::fuzz

#ifndef POPLAR_FUZZ_NO_ENTRY_POINT
extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    return poplar::fuzz::lmtp_session_one_input(data, size);
}
#endif
