// The POP3 session state machine (RFC 1939 §3-§6, RFC 2449, RFC 2595, RFC 5034), without I/O.
//
// The connection feeds it command lines; it answers with a `step`: bytes to send, and at most one
// effect for the connection to carry out (verify credentials, open the maildrop, stream a message,
// start TLS, remove deleted messages, close). The effect's result comes back through the matching
// on_...() call. Nothing here blocks, reads a clock or touches a socket, so unit tests drive it
// with an in-memory maildrop and a fake authenticator, and the fuzzer drives it with random lines.
//
// Phases are visible in the types: before login the session holds an auth exchange and no
// maildrop; after login it holds a maildrop and never again a password.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "auth/authenticator.h"
#include "core/limits.h"
#include "core/reply.h"
#include "storage/maildrop.h"

namespace poplar::core {

struct command;

// When USER/PASS and plaintext SASL mechanisms may be used (docs/security.md). APOP follows it
// too unless session_policy::apop_in_clear: its MD5 digest, recorded in clear, is open to an
// offline dictionary attack.
enum class plaintext_policy {
    loopback,  // on TLS, or when the peer is 127.0.0.0/8 or ::1 (the default)
    always,    // anywhere: only for networks the admin trusts
    tls_only,  // only after STLS or on an implicit-TLS port
};

// The admin's settings that shape the dialogue (from the config file).
struct session_policy {
    plaintext_policy plaintext = plaintext_policy::loopback;
    bool apop = false;           // RFC 1939 §7; needs {PLAIN} secrets, so off unless asked for
    bool apop_in_clear = false;  // APOP on unencrypted connections whatever `plaintext` says
    std::string expire = "NEVER";  // RFC 2449 §6.7, advertised in CAPA
    unsigned login_delay = 0;      // RFC 2449 §6.5, seconds, advertised in CAPA
    std::chrono::milliseconds auth_failure_delay = limits::default_auth_failure_delay;
    unsigned max_auth_failures = limits::default_max_auth_failures;
    unsigned max_bad_commands = limits::default_max_bad_commands;
};

// What the connection knows about its transport.
struct connection_facts {
    bool loopback = false;       // peer address in 127.0.0.0/8 or ::1
    bool tls = false;            // implicit TLS port, or after STLS
    bool tls_available = false;  // STLS may be offered (the listener has a TLS context)
};

namespace effect {
struct none {};
// Run mechanism->step(response) on the worker pool, then call on_auth_step().
struct run_auth {
    auth::sasl_mechanism* mechanism;
    std::string response;  // decoded client response; the connection wipes it after use
};
// Open the user's maildrop on the worker pool, then call on_maildrop_opened().
struct open_maildrop {
    std::string user;
};
// Open message `index`; on success send `ok_line` and the encoded message (message_encoder with
// `top_lines`), on failure call on_message_unavailable() and send its reply instead.
struct send_message {
    std::size_t index;
    std::optional<std::uint64_t> top_lines;
    std::string ok_line;
};
// Send the reply, drop any pipelined input (RFC 2595 §3.1), handshake, call on_tls_established().
struct start_tls {};
// Remove these messages (RFC 1939 §6, UPDATE state), then call on_commit_done().
struct commit {
    std::vector<std::size_t> indices;
};
// Send the reply and close the connection.
struct close {};
}  // namespace effect

using action = std::variant<effect::none, effect::run_auth, effect::open_maildrop, effect::send_message,
                            effect::start_tls, effect::commit, effect::close>;

struct step {
    std::string reply;                   // bytes to send (may be empty)
    std::chrono::milliseconds delay{0};  // wait this long before sending (failed logins)
    action next = effect::none{};
};

// Counters for the session-end log line.
struct session_stats {
    unsigned retr = 0;
    std::uint64_t retr_bytes = 0;  // virtual sizes of retrieved messages
    unsigned top = 0;
    unsigned dele = 0;             // messages removed at QUIT
    // Login attempts refused before any credential was checked (the metrics' auth failure classes).
    unsigned plaintext_refused = 0;  // USER/PASS, APOP or a plaintext SASL mechanism where not allowed
    unsigned malformed_auth = 0;     // invalid base64, an unknown SASL mechanism
};

class session {
public:
    enum class state { authorization, sasl, transaction, closed };

    // apop_timestamp: the RFC 1939 §7 "<...>" string the greeting carries (unique per
    // connection); ignored when the policy disables APOP. The greeting shows it only where APOP
    // is allowed on this connection as it starts (apop_allowed()), so a client never sends a
    // digest in clear that the server would refuse.
    session(const session_policy& policy, connection_facts facts, auth::authenticator& auth,
            std::string apop_timestamp);
    ~session();
    session(const session&) = delete;
    session& operator=(const session&) = delete;

    std::string greeting() const;

    step on_line(std::string_view line);
    step on_line_too_long();

    step on_auth_step(auth::sasl_mechanism::step_result result);
    // The network layer refused the attempt run_auth carried without verifying it (an
    // authentication block, detect/auth_penalties.h): `code` and `text` are the reply, after the
    // failure delay, and it counts towards max_failures like a wrong password.
    step on_auth_refused(resp_code code, std::string_view text);
    step on_maildrop_opened(result<std::unique_ptr<storage::maildrop>, storage::error> opened);
    // The credentials were right but the server will not open the maildrop now (a limit such
    // as server.max_sessions_per_user): the reply, and the session stays in AUTHORIZATION.
    step on_login_refused(resp_code code, std::string_view text);
    step on_message_unavailable(const storage::error& e);
    step on_tls_established();
    step on_commit_done(const result<void, storage::error>& removed);

    state current_state() const { return state_; }
    // The longest line the next command may be (SASL responses may be longer, limits.h).
    std::size_t max_line() const;
    bool idle_is_transaction() const { return state_ == state::transaction; }
    // The logged-in maildrop (TRANSACTION state only); the connection streams and removes
    // messages through it.
    storage::maildrop* maildrop() const { return maildrop_.get(); }
    // Once the session is closed, lets go of the maildrop (and with it an exclusive lock, RFC 1939
    // §8). The connection calls it before sending the last reply, so a client that reconnects the
    // moment it reads "+OK signing off" finds its maildrop free. Does nothing before then.
    void release_maildrop();
    // The connection ended without QUIT (dropped, timed out, server shutdown): the session is
    // closed without entering UPDATE, so nothing is deleted (RFC 1939 §6), and the maildrop is
    // released before the session's log line, which scripts and tests wait for.
    void on_disconnect();
    // For log lines: the user logged in (or last tried), and the mechanism in use.
    const std::string& user() const { return log_user_; }
    const std::string& mechanism_name() const { return mech_name_; }
    const session_stats& stats() const { return stats_; }
    bool quit_requested() const { return quit_; }
    // Records the octets of a sent message for the stats (called by the connection after RETR).
    void note_retrieved(std::size_t index);

private:
    step dispatch(std::string_view line);
    step authorization_command(const command& cmd);
    step transaction_command(const command& cmd);
    step sasl_response(std::string_view line);
    step cmd_capa() const;
    step cmd_user(const command& cmd);
    step cmd_pass(const command& cmd);
    step cmd_apop(const command& cmd);
    step cmd_auth(const command& cmd);
    step cmd_stls();
    step cmd_list_or_uidl(const command& cmd, bool uidl) const;
    step cmd_retr_or_top(const command& cmd, bool top);
    step cmd_dele(const command& cmd);
    step cmd_rset();
    step cmd_quit();
    step bad_command(std::string reply);
    // A failed login: the reply after the failure delay; the connection closes after
    // auth.max_failures of them, as Dovecot's does.
    step failed(std::string reply);
    step start_exchange(std::unique_ptr<auth::sasl_mechanism> mech, std::string mech_name,
                        std::string response);
    bool plaintext_allowed() const;
    // APOP enabled and, on this connection, allowed by the plaintext policy or apop_in_clear.
    bool apop_allowed() const;
    // Resolves a message-number argument; on failure returns the -ERR step.
    std::variant<std::size_t, step> resolve_msn(std::string_view arg) const;
    std::string maildrop_summary() const;

    session_policy policy_;
    connection_facts facts_;
    auth::authenticator& auth_;
    std::string apop_timestamp_;
    bool greeting_has_timestamp_ = false;  // decided once: a timestamp cannot be sent later
    state state_ = state::authorization;

    unsigned bad_commands_ = 0;
    unsigned auth_failures_ = 0;
    std::string pending_user_;  // from USER, until PASS
    std::unique_ptr<auth::sasl_mechanism> mechanism_;
    std::string mech_name_;
    std::string log_user_;

    std::unique_ptr<storage::maildrop> maildrop_;
    std::vector<bool> deleted_;
    std::size_t live_count_ = 0;
    std::uint64_t live_size_ = 0;
    session_stats stats_;
    bool quit_ = false;
};

}  // namespace poplar::core
