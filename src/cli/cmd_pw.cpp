// `poplar pw`: hash a password into a passwd-file "{SCHEME}hash" field.
#include <termios.h>
#include <unistd.h>

#include <cstdio>
#include <iostream>
#include <string>

#include "auth/password_hash.h"
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

int pw(const std::string& scheme_name, bool password_stdin) {
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
    std::string password;
    if (password_stdin || !::isatty(STDIN_FILENO)) {
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
