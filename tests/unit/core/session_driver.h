// Test double for the network connection: feeds lines to a core::session and carries out the
// effects it asks for (auth steps, maildrop open, RETR/TOP streaming, STLS, commit, close) against
// a fake_authenticator and a memory_maildrop, collecting every byte the server would send.
//
// Shared by the session unit tests and the session fuzzer, so both exercise the effect protocol
// exactly as session.h documents it.
#pragma once

#include <array>
#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <variant>
#include <vector>

#include "core/message_encoder.h"
#include "core/session.h"
#include "fake_authenticator.h"
#include "memory_maildrop.h"

namespace poplar::test {

class session_driver {
public:
    session_driver(const core::session_policy& policy, core::connection_facts facts, fake_authenticator& auth,
                   std::vector<memory_maildrop::stored_message> messages = {},
                   std::string apop_timestamp = "<1.2@test.invalid>")
        : session_(policy, facts, auth, std::move(apop_timestamp)), auth_(auth), messages_(std::move(messages)) {}

    core::session& session() { return session_; }

    // Everything sent in answer to one command line (effects carried out).
    std::string line(std::string_view l) { return run(session_.on_line(l)); }
    std::string too_long() { return run(session_.on_line_too_long()); }

    // Carries out a step and what follows from it, as the connection would.
    std::string run(core::step st) {
        std::string out;
        while (true) {
            delay_ += st.delay;
            if (!st.reply.empty()) {
                replies_.push_back(st.reply);
            }
            out += st.reply;
            core::action next = std::move(st.next);
            if (std::holds_alternative<core::effect::none>(next)) {
                effects_.emplace_back("none");
                return out;
            }
            if (auto* a = std::get_if<core::effect::run_auth>(&next)) {
                effects_.emplace_back("run_auth");
                st = session_.on_auth_step(a->mechanism->step(a->response));
                continue;
            }
            if (auto* o = std::get_if<core::effect::open_maildrop>(&next)) {
                effects_.emplace_back("open_maildrop " + o->user);
                if (open_error) {
                    st = session_.on_maildrop_opened(unexpected(*open_error));
                    continue;
                }
                auto drop = std::make_unique<memory_maildrop>(messages_);
                drop_ = drop.get();
                std::unique_ptr<storage::maildrop> base = std::move(drop);
                st = session_.on_maildrop_opened(std::move(base));
                continue;
            }
            if (auto* m = std::get_if<core::effect::send_message>(&next)) {
                effects_.emplace_back("send_message");
                auto src = session_.maildrop()->open_message(m->index);
                if (!src) {
                    st = session_.on_message_unavailable(src.error());
                    continue;
                }
                replies_.push_back(m->ok_line);
                out += m->ok_line;
                core::message_encoder enc(m->top_lines);
                core::output_buffer wire;
                std::array<char, 64> buf{};
                while (true) {
                    auto n = (*src)->read(buf);
                    if (!n || *n == 0) {
                        break;
                    }
                    if (!enc.feed(std::string_view(buf.data(), *n), wire)) {
                        break;
                    }
                }
                enc.finish(wire);
                out += wire.view();
                if (!m->top_lines) {
                    session_.note_retrieved(m->index);
                }
                return out;
            }
            if (std::holds_alternative<core::effect::start_tls>(next)) {
                effects_.emplace_back("start_tls");
                ++tls_handshakes_;
                st = session_.on_tls_established();
                continue;
            }
            if (auto* c = std::get_if<core::effect::commit>(&next)) {
                effects_.emplace_back("commit");
                st = session_.on_commit_done(session_.maildrop()->remove(c->indices));
                continue;
            }
            effects_.emplace_back("close");
            closed_ = true;
            return out;
        }
    }

    // When set, opening the maildrop fails with this error.
    std::optional<storage::error> open_error;

    bool closed() const { return closed_; }
    std::chrono::milliseconds total_delay() const { return delay_; }
    int tls_handshakes() const { return tls_handshakes_; }
    memory_maildrop* drop() const { return drop_; }  // the last maildrop opened
    const std::vector<std::string>& effects() const { return effects_; }
    // Every status reply and challenge sent, one entry per step (multi-line replies whole).
    const std::vector<std::string>& replies() const { return replies_; }
    fake_authenticator& auth() { return auth_; }

private:
    core::session session_;
    fake_authenticator& auth_;
    std::vector<memory_maildrop::stored_message> messages_;
    memory_maildrop* drop_ = nullptr;
    std::chrono::milliseconds delay_{0};
    bool closed_ = false;
    int tls_handshakes_ = 0;
    std::vector<std::string> effects_;
    std::vector<std::string> replies_;
};

}  // namespace poplar::test
