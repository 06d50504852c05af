// `poplar pw`: hash a password into a passwd-file "{SCHEME}hash" field.
#include <termios.h>
#include <unistd.h>

#include <cstdio>
#include <iostream>
#include <string>

#include "auth/password_hash.h"
#include "auth/password_policy.h"
#include "cli/commands.h"
#include "util/secret.h"

namespace poplar::cli {

namespace {

// Reads one line from the terminal without echo, so the password is not left on screen.
bool read_hidden(const char* prompt, std::string& out) {
    std::fprintf(stderr, "%s", prompt);
    termios old{};
    const bool tty = ::tcgetattr(STDIN_FILENO, &old) == 0;
    if (tty) {
        termios quiet = old;
        quiet.c_lflag &= ~static_cast<tcflag_t>(ECHO);
        ::tcsetattr(STDIN_FILENO, TCSANOW, &quiet);
    }
    const bool ok = static_cast<bool>(std::getline(std::cin, out));
    if (tty) {
        ::tcsetattr(STDIN_FILENO, TCSANOW, &old);
        std::fprintf(stderr, "\n");
    }
    return ok;
}

}  // namespace

int pw(const pw_options& opts) {
    const std::string& scheme_name = opts.scheme;
    const auto s = auth::parse_scheme(scheme_name);
    if (!s) {
        std::string known;
        for (std::string_view n : auth::scheme_names()) {
            known += known.empty() ? "" : ", ";
            known += n;
        }
        std::fprintf(stderr, "poplar pw: unknown scheme \"%s\" (known: %s)\n", scheme_name.c_str(), known.c_str());
        return exit_config;
    }
    // Loaded before the password is asked for, so a broken pwquality.conf costs no typing.
    auto policy = auth::password_policy::load(opts.pwquality_config);
    if (!policy) {
        std::fprintf(stderr, "poplar pw: password policy: %s\n", policy.error().c_str());
        return exit_config;
    }
    for (const std::string& w : policy->warnings()) {
        std::fprintf(stderr, "poplar pw: warning: %s\n", w.c_str());
    }
    std::string password;
    if (opts.password_stdin || !::isatty(STDIN_FILENO)) {
        if (!std::getline(std::cin, password)) {
            std::fprintf(stderr, "poplar pw: no password on standard input\n");
            return exit_config;
        }
    } else {
        std::string again;
        if (!read_hidden("Password: ", password) || !read_hidden("Retype password: ", again)) {
            return exit_config;
        }
        const bool same = util::constant_time_equals(password, again);
        util::wipe(again);
        if (!same) {
            util::wipe(password);
            std::fprintf(stderr, "poplar pw: passwords do not match\n");
            return exit_config;
        }
    }
    if (password.empty()) {
        std::fprintf(stderr, "poplar pw: empty password refused\n");
        return exit_config;
    }
    // Every scheme, {PLAIN} included: a weak secret is as guessable online as offline.
    auto weak = policy->check(password, opts.user);
    if (!weak) {
        util::wipe(password);
        std::fprintf(stderr, "poplar pw: %s\n", weak.error().c_str());
        return exit_config;
    }
    if (weak->has_value()) {
        if (!opts.allow_weak && policy->enforcing()) {
            util::wipe(password);
            std::fprintf(stderr, "poplar pw: weak password: %s; use --allow-weak to store it anyway\n",
                         weak->value().c_str());
            return exit_config;
        }
        std::fprintf(stderr, "poplar pw: warning: weak password stored anyway (%s): %s\n",
                     opts.allow_weak ? "--allow-weak" : "enforcing = 0 in pwquality.conf", weak->value().c_str());
    }
    auto hashed = auth::hash_password(*s, password);
    util::wipe(password);
    if (!hashed) {
        std::fprintf(stderr, "poplar pw: %s\n", hashed.error().c_str());
        return exit_runtime;
    }
    std::printf("%s\n", hashed.value().c_str());
    return exit_ok;
}

}  // namespace poplar::cli
