// The one authentication path: every login (USER/PASS, APOP, AUTH) is a SASL-style exchange.
//
// As in Dovecot, USER/PASS is repacked as SASL PLAIN (RFC 4616) and APOP is a one-step mechanism,
// so brute-force accounting, timing equalisation and logging happen in one place. Future SCRAM
// (RFC 5802), OAUTHBEARER (RFC 7628) and EXTERNAL (RFC 4422 App. A) plug in as further mechanisms.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "auth/account_controls.h"

namespace poplar::auth {

enum class verdict {
    success,
    failure,            // bad credentials or unknown user: -ERR [AUTH] (RFC 3206 §4)
    temporary_failure,  // the user database could not be read: -ERR [SYS/TEMP]
};

struct outcome {
    outcome() = default;
    outcome(verdict v, std::string u, std::string reason, std::shared_ptr<const account_controls> c = nullptr,
            std::string message = {})
        : result(v), user(std::move(u)), log_reason(std::move(reason)), controls(std::move(c)),
          client_message(std::move(message)) {}

    verdict result = verdict::failure;
    // On success the canonical user name, which opens the maildrop. On failure the name the
    // client tried (possibly empty), for the log line fail2ban reads; never trusted further.
    std::string user;
    // For the admin's log only: why it failed ("unknown user", "password mismatch", ...).
    std::string log_reason;
    // On success: the account's controls (nologin, allow_nets, require_tls), which the network
    // layer applies with what it knows of the connection; null when there are none.
    std::shared_ptr<const account_controls> controls;
    // On failure: the text after "-ERR [AUTH] " when it is not the usual one (nologin's reason=).
    std::string client_message;
};

// One server-side SASL exchange (RFC 4422 §3). Created per AUTH attempt, destroyed after it, so
// that nothing after login ever holds a password.
class sasl_mechanism {
public:
    virtual ~sasl_mechanism() = default;

    struct step_result {
        bool done = false;
        std::string challenge;  // when !done: raw challenge bytes (the core base64-encodes them)
        outcome result;         // when done
    };

    // The challenge sent when the client gave no initial response (RFC 4422 §3.3): empty for
    // client-first mechanisms such as PLAIN; "Username:" for the server-first LOGIN mechanism.
    virtual std::string initial_challenge() const { return {}; }

    // Consumes one decoded client response (the initial response, or a continuation). May block
    // on password hashing or a database lookup: the network layer runs it on the worker pool.
    virtual step_result step(std::string_view client_response) = 0;

    // Whether step(client_response) would end the exchange with a verdict, and for which user:
    // the name the client claims (empty when the response is too malformed to name one), or
    // nullopt for a step that verifies nothing (LOGIN's user name). Read before the step, so the
    // network layer can apply the authentication penalties (detect/auth_penalties.h) to the
    // attempt before any verification. The default: every step is an attempt of an unnamed user.
    virtual std::optional<std::string> attempted_user(std::string_view client_response) const {
        (void)client_response;
        return std::string();
    }

    // step() when it can finish without blocking (a password the verification cache holds), for
    // the event loop; nullopt, with nothing consumed, when step() must run on the worker pool.
    // The default never tries.
    virtual std::optional<step_result> try_step_without_blocking(std::string_view client_response) {
        (void)client_response;
        return std::nullopt;
    }
};

}  // namespace poplar::auth
