// Expands the Maildir location template ("/var/vmail/%d/%n/Maildir") for one user, safely.
//
// Variables follow Dovecot's mail_location: %u = full user name, %n = local part (before the
// last '@'), %d = domain (after it, empty if there is none), %% = '%'. The user name comes from a
// successful login, but a user database may hold anything (an LDAP uid of "../root", a
// passwd-file entry with a '/'), so every name is checked before it becomes a path.
#pragma once

#include <string>
#include <string_view>

#include "storage/maildrop.h"
#include "util/result.h"

namespace poplar::storage::maildir {

class path_template {
public:
    // Throws std::invalid_argument (a start-up configuration error) if the template is not an
    // absolute path, contains a '%' other than %u %n %d %%, or uses neither %u nor %n (all users
    // would share one maildrop).
    explicit path_template(std::string text);

    // The Maildir path of `user`, or errc::permanent for a user name that is empty, contains
    // '/', NUL, a control character or "..", starts with '.', has an empty local part or domain
    // around its '@', or would otherwise yield a path with a "." or ".." component.
    [[nodiscard]] result<std::string, error> expand(std::string_view user) const;

    [[nodiscard]] const std::string& text() const noexcept { return text_; }

private:
    std::string text_;
};

}  // namespace poplar::storage::maildir
