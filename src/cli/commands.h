// The subcommands of the poplar executable; main.cpp parses arguments and calls one of these.
#pragma once

#include <filesystem>
#include <optional>
#include <string>

namespace poplar::cli {

// Exit codes, shared by every subcommand (docs/operations.md).
inline constexpr int exit_ok = 0;
inline constexpr int exit_config = 1;   // invalid configuration or unusable file
inline constexpr int exit_runtime = 2;  // could not start or failed while running
inline constexpr int exit_unreachable = 3;  // admin commands: no server answers on the control socket
inline constexpr int exit_refused = 4;      // admin commands: the server answered with an error

// Where the admin commands and `check` look when --config is not given.
inline constexpr const char* default_config_file = "/etc/poplar/poplar.toml";

// `poplar serve`: with a config file, or (none given) the embedded demo under `state_dir`.
int serve(const std::optional<std::filesystem::path>& config_file, const std::filesystem::path& state_dir);

// `poplar check`: validates a config file like serve would, without binding ports.
int check(const std::filesystem::path& config_file);

// `poplar status|who|kick|stats|reload`: asks the server that runs with `config_file` over its
// control socket and prints the answer.
int admin(const std::string& command_name, const std::string& argument, const std::filesystem::path& config_file);

// `poplar pw`: hashes a password for the passwd-file, after the strength policy
// (src/auth/password_policy.h) accepted it.
struct pw_options {
    std::string scheme = "SHA512-CRYPT";
    bool password_stdin = false;
    std::string user;        // for libpwquality's "contains the user name" check; may be empty
    bool allow_weak = false;  // store a password the policy rejects, with a warning
    std::optional<std::filesystem::path> pwquality_config;  // nullopt: /etc/security/pwquality.conf
};
int pw(const pw_options& opts);

// `poplar deliver`: stores the message on standard input in `user`'s maildrop; sysexits(3)
// exit codes and one line on standard error, as Postfix expects (docs/delivery.md).
struct deliver_options {
    std::string user;
    std::string sender;     // -f: the envelope sender, for Return-Path ("" for <>)
    std::string recipient;  // -a: the original recipient address, for Delivered-To (default: user)
    std::filesystem::path config_file = default_config_file;
    bool no_trace_headers = false;
};
int deliver(const deliver_options& opts);

// Creates the demo state folder if absent (Maildir with sample messages, passwd-file with a
// "demo" user, self-signed certificate, config file) and returns the config file's path.
std::filesystem::path prepare_demo(const std::filesystem::path& state_dir);

}  // namespace poplar::cli
