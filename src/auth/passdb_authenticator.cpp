// passdb_authenticator: maps mechanism names to the SASL mechanisms in auth/sasl/.
#include "auth/passdb_authenticator.h"

#include "auth/sasl/mechanisms.h"
#include "util/text.h"

namespace poplar::auth {

passdb_authenticator::passdb_authenticator(std::shared_ptr<passdb> db, password_verifier verify,
                                           std::shared_ptr<verification_cache> cache)
    : checker_(std::make_shared<const credential_checker>(std::move(db), std::move(verify), std::move(cache))) {}

std::vector<mechanism_info> passdb_authenticator::mechanisms() const {
    return {{"PLAIN", true}, {"LOGIN", true}};
}

std::unique_ptr<sasl_mechanism> passdb_authenticator::start(std::string_view name) {
    // Mechanism names are registered in upper case (RFC 4422 §3.1), but clients also send
    // "auth plain", and POP3 keywords are case-insensitive (RFC 1939 §3), so match either.
    if (util::iequals(name, "PLAIN")) {
        return sasl::make_plain(checker_);
    }
    if (util::iequals(name, "LOGIN")) {
        return sasl::make_login(checker_);
    }
    return nullptr;
}

std::unique_ptr<sasl_mechanism> passdb_authenticator::start_apop(std::string timestamp) {
    return sasl::make_apop(checker_, std::move(timestamp));
}

}  // namespace poplar::auth
