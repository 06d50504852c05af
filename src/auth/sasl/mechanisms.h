// Factories for the SASL mechanisms poplar implements over a passdb: PLAIN, LOGIN and APOP.
//
// Conventions shared by all of them: when the client gave no initial response the core sends
// initial_challenge() (RFC 4422 §3.3), so the first step() always receives the client's first
// message; a step() after the exchange finished fails. outcome.user is the attempted name on
// failure (for the fail2ban log line) and the canonical stored name on success.
#pragma once

#include <memory>
#include <string>

#include "auth/credential_checker.h"
#include "auth/sasl_mechanism.h"

namespace poplar::auth::sasl {

// RFC 4616 §2: authzid, authcid and passwd are each at most 255 octets.
inline constexpr std::size_t max_field = 255;

// RFC 4616 PLAIN: "[authzid] NUL authcid NUL passwd", client-first (empty initial challenge). An authzid naming another user is refused
// (no proxy logins); one equal to the authcid is accepted, as some clients send it.
std::unique_ptr<sasl_mechanism> make_plain(std::shared_ptr<const credential_checker> checker);

// LOGIN (draft-murchison-sasl-login-00): challenges "Username:" then "Password:". Obsolete but
// still what Outlook and older Thunderbird send.
std::unique_ptr<sasl_mechanism> make_login(std::shared_ptr<const credential_checker> checker);

// APOP (RFC 1939 §7) as a one-step mechanism: the response is "name digest", digest the lowercase
// hex MD5 of `timestamp` (the banner's "<...>") followed by the shared secret. Works only for
// accounts stored as {PLAIN}/{CLEAR}.
std::unique_ptr<sasl_mechanism> make_apop(std::shared_ptr<const credential_checker> checker, std::string timestamp);

}  // namespace poplar::auth::sasl
