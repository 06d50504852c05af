// The session runners: full and login sessions by a pool of workers, idle sessions held open,
// and one large RETR. Each runs on `threads` io_contexts and returns what it measured.
#pragma once

#include <asio/ip/tcp.hpp>
#include <asio/ssl/context.hpp>

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "options.h"
#include "proc_stats.h"

namespace loadgen {

// Everything one run measured; threads' counts are merged into one.
struct run_result {
    double elapsed_s = 0;                // from the first connect to the last session's end
    std::uint64_t sessions = 0;          // completed without error
    std::uint64_t errors = 0;
    std::vector<std::string> error_samples;  // the first few error texts
    std::uint64_t messages = 0;          // RETRs completed
    std::uint64_t retr_wire_bytes = 0;   // RETR body octets received
    std::vector<float> latency_ms;       // per session: connect to QUIT's +OK
    std::vector<float> login_ms;         // per session: PASS/AUTH sent to its +OK
    // Per session: PASS/AUTH sent to the reply of the STAT right after it (full mode, login
    // --stat). Comparable across servers where login_ms is not: Dovecot's login process answers
    // PASS before its pop3 process has opened the maildrop, which the STAT reply then waits for;
    // poplar opens the maildrop before answering PASS.
    std::vector<float> ready_ms;
    std::string cipher;                  // negotiated TLS version and suite, if any

    // Server, from /proc (when --server-pid is given).
    tree_sample server_before;
    tree_sample server_after;
    std::uint64_t server_rss_peak = 0;
    double loadgen_cpu_s = 0;
    machine_sample machine_before;
    machine_sample machine_after;

    // idle
    std::uint64_t idle_logged_in = 0;
    tree_sample server_loaded;   // all sessions logged in (after a settle second)
    tree_sample server_held;     // at the end of the hold
    // large
    std::vector<double> retr_mb_per_s;   // one per timed RETR
    std::uint64_t retr_octets = 0;       // octets of one timed RETR body (wire)
    // bare-copy: CPU of the sending thread alone (its send() calls, and on loopback the kernel's
    // delivery to the receiver, which runs in the sender's context): what any server pays at
    // least to send these bytes, the floor under a server's CPU per byte.
    double sender_cpu_s = 0;

    void add_error(const std::string& text);
    void merge(run_result&& other);
};

// Set from a SIGINT/SIGTERM handler: no new sessions start, idle sessions are released early, and
// the run still reports what it measured so far.
void request_stop() noexcept;

// Runs the whole mode described by `opt`; blocks until done (bounded by --duration/--sessions,
// --timeout and --hold).
run_result run(const options& opt, const asio::ip::tcp::endpoint& server, asio::ssl::context* tls);

}  // namespace loadgen
