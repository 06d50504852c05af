// The poplar executable: parses the command line (CLI11) and runs one subcommand.
#include <CLI/CLI.hpp>

#include "cli/commands.h"

int main(int argc, char** argv) {
    CLI::App app{"poplar: a POP3 mail suite (RFC 1939, 2449, 2595, 3206, 5034, 8314)", "poplar"};
    app.require_subcommand(1);
    app.set_version_flag("--version", "poplar 0.1.0");

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

    std::string scheme = "SHA512-CRYPT";
    bool password_stdin = false;
    CLI::App* pw = app.add_subcommand("pw", "Hash a password for the passwd-file");
    pw->add_option("-s,--scheme", scheme, "SHA512-CRYPT, SHA256-CRYPT, BLF-CRYPT, ARGON2ID, ARGON2I, PLAIN")
        ->capture_default_str();
    pw->add_flag("--password-stdin", password_stdin, "Read the password from standard input (no prompt)");

    try {
        app.parse(argc, argv);
    } catch (const CLI::ParseError& e) {
        return app.exit(e) == 0 ? 0 : poplar::cli::exit_config;
    }
    if (*serve) {
        return poplar::cli::serve(config_file.empty() ? std::nullopt : std::optional<std::filesystem::path>(config_file),
                                  state_dir);
    }
    if (*check) {
        return poplar::cli::check(check_file);
    }
    return poplar::cli::pw(scheme, password_stdin);
}
