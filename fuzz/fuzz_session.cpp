// libFuzzer target: core::session driven by random client bytes, as the connection drives it.
//
// Input: byte 0 sets the connection facts and policy, byte 1 the limits and storage failures,
// byte 2 the framer chunking seed; the rest is what the client sends. Bytes go through the real
// line_framer (limit from session::max_line(), pipelined input dropped at STLS) into a session
// with a fake authenticator (user "u", password "p", PLAIN, LOGIN, APOP) and an in-memory
// maildrop; every effect is carried out. Checked: no crash or sanitizer report; every reply starts
// with "+OK", "-ERR " or "+ " and ends in CRLF with no bare LF; multi-line replies end in
// ".\r\n"; the session is closed exactly when a close effect was seen; nothing is read after it.
#include <cstring>
#include <string>
#include <string_view>
#include <vector>

#include "core/line_framer.h"
#include "core/session.h"
#include "fake_authenticator.h"
#include "fuzz_harness.h"
#include "memory_maildrop.h"
#include "session_driver.h"

namespace poplar::fuzz {

namespace {

std::vector<test::memory_maildrop::stored_message> fuzz_messages() {
    return {
        {"uid-1", "Subject: one\n\nhello\n.\n..\n"},
        {"uid-2", "Subject: two\r\n\r\nbody\r\n.dot\r\nno newline"},
        {"uid-3", ""},
        {"uid-4", "\r\r\n\r.\n"},
    };
}

void check_reply(std::string_view r) {
    POPLAR_FUZZ_CHECK(r.size() >= 4);
    const bool ok = r.substr(0, 3) == "+OK" && (r[3] == ' ' || r[3] == '\r');
    const bool err = r.substr(0, 5) == "-ERR ";
    const bool challenge = r.substr(0, 2) == "+ ";
    POPLAR_FUZZ_CHECK(ok || err || challenge);
    POPLAR_FUZZ_CHECK(r.substr(r.size() - 2) == "\r\n");
    std::size_t lines = 0;
    for (std::size_t i = 0; i < r.size(); ++i) {
        if (r[i] == '\n') {
            POPLAR_FUZZ_CHECK(i > 0 && r[i - 1] == '\r');
            ++lines;
        }
    }
    if (lines > 1) {
        POPLAR_FUZZ_CHECK(ok && r.substr(r.size() - 5) == "\r\n.\r\n");
    }
}

}  // namespace

int session_one_input(const std::uint8_t* data, std::size_t size) {
    byte_reader in(data, size);
    const std::uint8_t b0 = in.byte();
    const std::uint8_t b1 = in.byte();
    const std::uint8_t b2 = in.byte();

    core::connection_facts facts;
    facts.loopback = (b0 & 0x01) != 0;
    facts.tls = (b0 & 0x02) != 0;
    facts.tls_available = (b0 & 0x04) != 0;
    core::session_policy policy;
    const core::plaintext_policy policies[] = {core::plaintext_policy::loopback, core::plaintext_policy::always,
                                               core::plaintext_policy::tls_only};
    policy.plaintext = policies[(b0 >> 3) % 3];
    policy.apop = (b0 & 0x20) == 0;
    policy.apop_in_clear = (b0 & 0x40) != 0;
    policy.max_bad_commands = 1 + b1 % 10;
    policy.max_auth_failures = 1 + (b1 >> 4) % 4;

    test::fake_authenticator auth;
    test::session_driver d(policy, facts, auth, fuzz_messages(), "<1896.697170952@dbc.mtview.ca.us>");
    if ((b1 & 0x08) != 0) {
        const storage::errc codes[] = {storage::errc::temporary, storage::errc::permanent, storage::errc::in_use};
        d.open_error = storage::error{codes[b2 % 3], "fuzz"};
    }
    check_reply(d.session().greeting());

    core::line_framer framer(d.session().max_line());
    chunk_sizes sizes(b2);
    std::string_view input = in.rest();
    bool vanished = false;
    while (!input.empty() && !d.closed()) {
        const std::size_t n = 1 + sizes.next(63);
        const std::string_view chunk = input.substr(0, n);
        input.remove_prefix(chunk.size());
        std::span<char> space = framer.prepare(chunk.size());
        std::memcpy(space.data(), chunk.data(), chunk.size());
        framer.commit(chunk.size());

        while (!d.closed()) {
            auto ev = framer.next();
            if (!ev) {
                break;
            }
            const std::size_t replies_before = d.replies().size();
            const int handshakes_before = d.tls_handshakes();
            if (ev->what == core::line_framer::event::kind::too_long) {
                d.too_long();
            } else {
                d.line(ev->text);
            }
            for (std::size_t i = replies_before; i < d.replies().size(); ++i) {
                check_reply(d.replies()[i]);
            }
            // The session says it is closed exactly when it has asked the connection to close.
            POPLAR_FUZZ_CHECK(d.closed() == (d.session().current_state() == core::session::state::closed));
            if (d.tls_handshakes() != handshakes_before) {
                framer.discard_buffered();  // RFC 2595 §3.1: nothing sent before the handshake runs
            }
            framer.set_max_line(d.session().max_line());
            // Once logged in, storage trouble appears mid-session as well.
            if (!vanished && (b1 & 0x04) != 0 && d.session().maildrop() != nullptr && d.drop() != nullptr) {
                d.drop()->vanish(1);
                d.drop()->fail_remove_with({storage::errc::temporary, "fuzz"});
                vanished = true;
            }
        }
    }
    return 0;
}

}  // namespace poplar::fuzz

#ifndef POPLAR_FUZZ_NO_ENTRY_POINT
extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    return poplar::fuzz::session_one_input(data, size);
}
#endif
