// Where the POP3 core gets SASL mechanisms from; implemented over a user database (passwd-file now,
// SQL later). The core decides policy (which mechanisms may run on an unencrypted connection);
// the authenticator only knows how to verify.
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "auth/sasl_mechanism.h"

namespace poplar::auth {

struct mechanism_info {
    std::string name;        // as in CAPA SASL and AUTH (RFC 5034 §3), upper case
    bool sends_plaintext;    // true when the password crosses the wire readable (PLAIN, LOGIN)
};

class authenticator {
public:
    virtual ~authenticator() = default;
    // Mechanisms in the order CAPA should list them.
    virtual std::vector<mechanism_info> mechanisms() const = 0;
    // A fresh exchange for `name` (case-insensitive), or nullptr when unknown.
    virtual std::unique_ptr<sasl_mechanism> start(std::string_view name) = 0;
    // APOP (RFC 1939 §7): the response is "user digest", the digest MD5(timestamp + secret).
    // Only accounts whose secret is stored as {PLAIN} can use it; others fail with log_reason
    // "APOP needs a PLAIN secret".
    virtual std::unique_ptr<sasl_mechanism> start_apop(std::string timestamp) = 0;
};

}  // namespace poplar::auth
