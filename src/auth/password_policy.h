// The strength policy `poplar pw` applies to a new password: libpwquality's checks (length,
// character classes, cracklib dictionary, user name) with the settings of pwquality.conf.
//
// Only the command line uses it: a login checks a password against its hash, never its strength.
#pragma once

#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "util/result.h"

namespace poplar::auth {

class password_policy {
public:
    // Where libpwquality looks when no file is named: Debian's libpwquality-common ships it with
    // every setting commented out, i.e. the library's defaults (minlen 8, dictcheck, usercheck).
    static constexpr const char* system_config = "/etc/security/pwquality.conf";

    // libpwquality's defaults, then `config_file`, or without one the system file (and its .d
    // folder) if present. An explicitly named file that cannot be read, and any malformed or
    // unknown setting, is an error: a policy the admin wrote must not be silently replaced by a
    // laxer one. A system file that exists but cannot be opened gives a warning and the defaults.
    static result<password_policy, std::string> load(const std::optional<std::filesystem::path>& config_file);

    password_policy(password_policy&&) noexcept;
    password_policy& operator=(password_policy&&) noexcept;
    ~password_policy();

    // What the admin should hear about how the policy was loaded (see load()).
    const std::vector<std::string>& warnings() const noexcept { return warnings_; }

    // pwquality.conf's `enforcing`: 0 means weak passwords are reported but stored, as with
    // `poplar pw --allow-weak`.
    bool enforcing() const noexcept { return enforcing_; }

    // nullopt when `password` passes; otherwise libpwquality's reason, e.g. "The password is
    // shorter than 8 characters". `user` (may be empty) enables the "contains the user name"
    // check; for "local@domain" the local part is checked too, since that is what people put in
    // passwords. Errors are failures to check at all: a password with NUL (libpwquality takes C
    // strings, so the rest would go unchecked) or a cracklib dictionary that cannot be loaded.
    result<std::optional<std::string>, std::string> check(std::string_view password, std::string_view user) const;

private:
    struct settings_deleter {
        void operator()(void* p) const noexcept;
    };
    password_policy() = default;
    std::unique_ptr<void, settings_deleter> settings_;  // pwquality_settings_t
    std::vector<std::string> warnings_;
    bool enforcing_ = true;
};

}  // namespace poplar::auth
