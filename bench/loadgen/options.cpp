// Command-line parsing (CLI11) and the --users file.
#include "options.h"

#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <map>

namespace loadgen {

namespace {

std::vector<credential> read_users(const std::string& path) {
    std::ifstream in(path);
    if (!in) {
        throw CLI::ValidationError("--users", fmt::format("cannot read {}", path));
    }
    std::vector<credential> out;
    std::string line;
    while (std::getline(in, line)) {
        if (!line.empty() && line.back() == '\r') {
            line.pop_back();
        }
        if (line.empty() || line.front() == '#') {
            continue;
        }
        const auto colon = line.find(':');
        if (colon == std::string::npos || colon == 0) {
            throw CLI::ValidationError("--users", fmt::format("{}: expected user:password lines", path));
        }
        out.push_back({line.substr(0, colon), line.substr(colon + 1)});
    }
    if (out.empty()) {
        throw CLI::ValidationError("--users", fmt::format("{}: no users", path));
    }
    return out;
}

}  // namespace

const char* to_string(tls_mode m) {
    switch (m) {
        case tls_mode::none: return "none";
        case tls_mode::stls: return "stls";
        case tls_mode::implicit: return "implicit";
    }
    return "?";
}

const char* to_string(auth_mode m) {
    return m == auth_mode::user ? "user" : "plain";
}

const char* to_string(run_mode m) {
    switch (m) {
        case run_mode::full: return "full";
        case run_mode::login: return "login";
        case run_mode::idle: return "idle";
        case run_mode::large: return "large";
        case run_mode::bare_copy: return "bare-copy";
    }
    return "?";
}

options parse_options(int argc, char** argv) {
    options o;
    CLI::App app{"poplar-loadgen: concurrent POP3 sessions against any server, with server CPU and memory from /proc"};
    app.set_help_all_flag("--help-all");
    std::string users_file;
    double duration = 0;
    std::uint64_t sessions = 0;
    const std::map<std::string, tls_mode> tls_names{{"none", tls_mode::none}, {"stls", tls_mode::stls},
                                                    {"implicit", tls_mode::implicit}};
    const std::map<std::string, auth_mode> auth_names{{"user", auth_mode::user}, {"plain", auth_mode::plain}};
    const std::map<std::string, run_mode> mode_names{{"full", run_mode::full},
                                                     {"login", run_mode::login},
                                                     {"idle", run_mode::idle},
                                                     {"large", run_mode::large},
                                                     {"bare-copy", run_mode::bare_copy}};
    app.add_option("--host", o.host, "server address (numeric or resolvable)")->capture_default_str();
    app.add_option("--port", o.port, "server port")->capture_default_str();
    app.add_option("--tls", o.tls, "none | stls | implicit (certificates are not verified)")
        ->transform(CLI::CheckedTransformer(tls_names, CLI::ignore_case));
    app.add_option("--auth", o.auth, "user (USER/PASS) | plain (AUTH PLAIN with initial response)")
        ->transform(CLI::CheckedTransformer(auth_names, CLI::ignore_case));
    app.add_option("--mode", o.mode, "full | login | idle | large | bare-copy")
        ->transform(CLI::CheckedTransformer(mode_names, CLI::ignore_case));
    app.add_option("--users", users_file, "file of user:password lines, used round-robin");
    app.add_option("--concurrency,-c", o.concurrency, "concurrent sessions (idle: sessions held open)")
        ->check(CLI::Range(1u, 100000u))
        ->capture_default_str();
    app.add_option("--threads", o.threads, "event-loop threads")->check(CLI::Range(1u, 64u))->capture_default_str();
    app.add_option("--rate", o.rate,
                   "full, login: start at most this many sessions per second (an open-loop background load); "
                   "0 = as fast as the workers can")
        ->check(CLI::Range(0.0, 1e6));
    app.add_option("--duration", duration, "seconds to keep starting sessions")->check(CLI::Range(0.001, 86400.0));
    app.add_option("--sessions", sessions, "sessions to run in total")->check(CLI::Range(std::uint64_t{1}, std::uint64_t{100000000}));
    app.add_flag("--stat", o.stat,
                 "login: send STAT after logging in and report 'ready' latency (PASS/AUTH sent to STAT's reply)");
    app.add_flag("--dele", o.dele, "full: DELE every message, then RSET before QUIT (mail is kept)");
    app.add_option("--hold", o.hold_s, "idle: seconds to hold the logged-in sessions")
        ->check(CLI::Range(0.0, 3600.0))
        ->capture_default_str();
    app.add_option("--ramp", o.ramp, "idle: logins in flight while opening sessions")
        ->check(CLI::Range(1u, 10000u))
        ->capture_default_str();
    app.add_option("--msn", o.msn, "large: message number to RETR")->check(CLI::Range(1u, 10000000u))->capture_default_str();
    app.add_option("--repeat", o.repeat, "large, bare-copy: transfers to time")->check(CLI::Range(1u, 1000u))->capture_default_str();
    app.add_option("--user", o.user, "large: the user (from --users) whose message to RETR; default the first");
    app.add_option("--file", o.file, "bare-copy: message file to send over a loopback socket (LF -> CRLF first)");
    app.add_option("--cert", o.cert, "bare-copy with --tls implicit: PEM certificate (chain) of the sending side");
    app.add_option("--key", o.key, "bare-copy with --tls implicit: PEM private key of the sending side");
    app.add_option("--timeout", o.timeout_s, "seconds one session may take before it counts as an error")
        ->check(CLI::Range(0.1, 3600.0))
        ->capture_default_str();
    app.add_option("--server-pid", o.server_pids, "measure this process tree's CPU and memory (repeatable)");
    app.add_flag("--json", o.json, "print one JSON object on stdout (the table goes to stderr)");
    app.add_option("--label", o.label, "a name echoed in the report");
    try {
        app.parse(argc, argv);
        if (o.mode != run_mode::bare_copy) {
            if (users_file.empty()) {
                throw CLI::ValidationError("--users", "required (user:password lines)");
            }
            o.users = read_users(users_file);
        } else if (o.file.empty()) {
            throw CLI::ValidationError("--file", "required for --mode bare-copy");
        } else if (o.tls == tls_mode::stls) {
            throw CLI::ValidationError("--tls", "bare-copy: none or implicit (there is no POP3 to say STLS in)");
        } else if (o.tls == tls_mode::implicit && (o.cert.empty() || o.key.empty())) {
            throw CLI::ValidationError("--cert", "bare-copy with --tls implicit needs --cert and --key");
        }
        if (!o.user.empty()) {
            bool found = false;
            for (const credential& c : o.users) {
                found = found || c.user == o.user;
            }
            if (!found) {
                throw CLI::ValidationError("--user", fmt::format("{} is not in {}", o.user, users_file));
            }
        }
    } catch (const CLI::ParseError& e) {
        std::exit(app.exit(e));
    }
    if (duration > 0) {
        o.duration_s = duration;
    }
    if (sessions > 0) {
        o.sessions = sessions;
    }
    if (!o.duration_s && !o.sessions) {
        o.duration_s = 10;  // every run is bounded
    }
    return o;
}

}  // namespace loadgen
