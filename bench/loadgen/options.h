// poplar-loadgen's command line: what to run, against what, for how long.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace loadgen {

enum class tls_mode { none, stls, implicit };
enum class auth_mode { user, plain };
enum class run_mode { full, login, idle, large, bare_copy };

struct credential {
    std::string user;
    std::string password;
};

struct options {
    std::string host = "127.0.0.1";
    std::uint16_t port = 110;
    tls_mode tls = tls_mode::none;
    auth_mode auth = auth_mode::user;
    run_mode mode = run_mode::full;
    std::vector<credential> users;  // sessions pick them round-robin
    unsigned concurrency = 16;      // workers (full, login) or sessions held open (idle)
    unsigned threads = 1;           // event-loop threads, each with its own io_context
    double rate = 0;                // full, login: at most this many session starts per second (0: no cap)
    std::optional<double> duration_s;        // stop starting sessions after this long
    std::optional<std::uint64_t> sessions;   // ... or after this many
    bool stat = false;              // login: STAT after logging in (measures "ready", see sessions.h)
    bool dele = false;              // full: DELE every message, then RSET (mail is kept)
    double hold_s = 5;              // idle: how long to keep the sessions logged in
    unsigned ramp = 64;             // idle: logins in flight while opening the sessions
    unsigned msn = 1;               // large: which message to RETR
    unsigned repeat = 1;            // large, bare-copy: RETRs (copies) to time
    std::string user;               // large: user name to pick from --users (default: the first)
    std::string file;               // bare-copy: the message file (LF endings, sent as CRLF)
    std::string cert, key;          // bare-copy with --tls implicit: the sender's certificate and key
    double timeout_s = 60;          // one session's deadline, from connect to QUIT's +OK
    std::vector<int> server_pids;   // process trees to measure (CPU and memory from /proc)
    bool json = false;
    std::string label;              // echoed in the report
};

// Parses argv; prints usage and exits on --help or a bad option.
options parse_options(int argc, char** argv);

const char* to_string(tls_mode m);
const char* to_string(auth_mode m);
const char* to_string(run_mode m);

}  // namespace loadgen
