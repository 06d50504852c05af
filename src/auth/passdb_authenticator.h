// The authenticator over a passdb (passwd-file now, SQL later): PLAIN, LOGIN and APOP.
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "auth/authenticator.h"
#include "auth/credential_checker.h"
#include "auth/passdb.h"

namespace poplar::auth {

class passdb_authenticator final : public authenticator {
public:
    // `verify` is check_password() except in tests, which observe the timing-dummy verification.
    explicit passdb_authenticator(std::shared_ptr<passdb> db, password_verifier verify = check_password,
                                  std::shared_ptr<verification_cache> cache = nullptr);

    // PLAIN then LOGIN, both marked sends_plaintext: the password crosses the wire readably, so
    // the core offers them only over TLS unless the admin allows plaintext logins.
    std::vector<mechanism_info> mechanisms() const override;
    std::unique_ptr<sasl_mechanism> start(std::string_view name) override;
    std::unique_ptr<sasl_mechanism> start_apop(std::string timestamp) override;

private:
    std::shared_ptr<const credential_checker> checker_;
};

}  // namespace poplar::auth
