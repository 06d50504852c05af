// The poplar executable: parses the command line (CLI11) and runs one subcommand.
#include <CLI/CLI.hpp>

#include <cstdio>
#include <string_view>

#include "cli/commands.h"
#include "cli/version.h"

int main(int argc, char** argv) {
    CLI::App app{"poplar: a POP3 mail suite (RFC 1939, 2449, 2595, 3206, 5034, 8314)", "poplar"};
    app.require_subcommand(1);
    app.set_version_flag("--version", [] { std::string v = poplar::cli::version_report(); v.pop_back(); return v; },
                         "Print the version, commit, build type and library versions, and exit");

    std::string config_file;
    std::string state_dir = "poplar-state";
    CLI::App* serve = app.add_subcommand("serve", "Run the POP3 server");
    serve->add_option("-c,--config", config_file, "TOML configuration file (docs/configuration.md)");
    serve->add_option("--state-dir", state_dir,
                      "Without --config: folder for the embedded demo (Maildir, users, certificate)")
        ->capture_default_str();

    std::string check_file;
    CLI::App* check = app.add_subcommand("check", "Validate a configuration file and exit");
    check->add_option("-c,--config", check_file, "TOML configuration file")->required();

    poplar::cli::pw_options pw_opts;
    std::string pwquality_config;
    CLI::App* pw = app.add_subcommand("pw", "Hash a password for the passwd-file");
    pw->add_option("-s,--scheme", pw_opts.scheme,
                   "ARGON2ID, ARGON2I, BLF-CRYPT, SHA512-CRYPT, SHA256-CRYPT, CRYPT, PLAIN or CLEAR "
                   "(case-insensitive)")
        ->capture_default_str();
    pw->add_flag("--password-stdin", pw_opts.password_stdin, "Read the password from standard input (no prompt)");
    pw->add_option("-u,--user", pw_opts.user,
                   "The user the password is for, so a password containing the name (or its local part) is refused");
    pw->add_flag("--allow-weak", pw_opts.allow_weak,
                 "Store a password the strength policy rejects, with a warning on standard error");
    pw->add_option("--pwquality-config", pwquality_config,
                   "libpwquality settings to use instead of /etc/security/pwquality.conf");

    poplar::cli::deliver_options deliver_opts;
    CLI::App* deliver = app.add_subcommand("deliver", "Store the message on standard input in USER's maildrop (Postfix pipe/mailbox_command)");
    deliver->add_option("-u,--user", deliver_opts.user, "The recipient user (or address)")->required();
    deliver->add_option("-f,--from", deliver_opts.sender, "The envelope sender, for Return-Path");
    deliver->add_option("-a,--address", deliver_opts.recipient, "The original recipient address, for Delivered-To");
    deliver->add_option("-c,--config", deliver_opts.config_file, "The server's configuration file")->capture_default_str();
    deliver->add_flag("--no-trace-headers", deliver_opts.no_trace_headers, "Add no Return-Path and Delivered-To");

    CLI::App* version = app.add_subcommand("version", "Print the version, commit, build type and library versions");

    // The admin commands: each asks the running server over its control socket.
    std::string admin_config = poplar::cli::default_config_file;
    std::string kick_user;
    struct admin_command {
        const char* name;
        const char* help;
        CLI::App* app = nullptr;
    };
    admin_command admins[] = {
        {"status", "Show the running server's version, uptime, listeners, sessions and configuration"},
        {"who", "List logged-in users with client address, login time and bytes"},
        {"kick", "Close every session of USER (nothing is deleted)"},
        {"stats", "Print the running server's counters"},
        {"reload", "Reload the configuration, certificate and passwd-file (as SIGHUP does)"},
    };
    for (admin_command& a : admins) {
        a.app = app.add_subcommand(a.name, a.help);
        a.app->add_option("-c,--config", admin_config, "The server's configuration file (to find control.socket)")
            ->capture_default_str();
        if (std::string_view(a.name) == "kick") {
            a.app->add_option("user", kick_user, "User name, exactly as logged in")->required();
        }
    }

    try {
        app.parse(argc, argv);
    } catch (const CLI::ParseError& e) {
        // deliver speaks sysexits(3) to its MTA: a bad command line is EX_USAGE (64), which
        // Postfix bounces rather than guessing.
        const bool delivering = argc > 1 && std::string_view(argv[1]) == "deliver";
        return app.exit(e) == 0 ? 0 : (delivering ? 64 : poplar::cli::exit_config);
    }
    if (*deliver) {
        return poplar::cli::deliver(deliver_opts);
    }
    if (*serve) {
        return poplar::cli::serve(config_file.empty() ? std::nullopt : std::optional<std::filesystem::path>(config_file),
                                  state_dir);
    }
    if (*check) {
        return poplar::cli::check(check_file);
    }
    if (*version) {
        std::fputs(poplar::cli::version_report().c_str(), stdout);
        return poplar::cli::exit_ok;
    }
    for (const admin_command& a : admins) {
        if (*a.app) {
            return poplar::cli::admin(a.name, kick_user, admin_config);
        }
    }
    if (!pwquality_config.empty()) {
        pw_opts.pwquality_config = pwquality_config;
    }
    return poplar::cli::pw(pw_opts);
}
