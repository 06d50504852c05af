// Percentiles, rates and the two report formats.
#include "report.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>

namespace loadgen {

namespace {

struct percentiles {
    double p50 = 0, p90 = 0, p99 = 0, max = 0;
    std::size_t n = 0;
};

// Nearest-rank percentiles.
percentiles summarize(std::vector<float>& v) {
    percentiles p;
    p.n = v.size();
    if (v.empty()) {
        return p;
    }
    std::sort(v.begin(), v.end());
    auto at = [&](double q) {
        const auto rank = static_cast<std::size_t>(std::ceil(q * static_cast<double>(v.size())));
        return static_cast<double>(v[std::min(v.size() - 1, rank == 0 ? 0 : rank - 1)]);
    };
    p.p50 = at(0.50);
    p.p90 = at(0.90);
    p.p99 = at(0.99);
    p.max = v.back();
    return p;
}

double median(std::vector<double> v) {
    if (v.empty()) {
        return 0;
    }
    std::sort(v.begin(), v.end());
    const std::size_t n = v.size();
    return n % 2 == 1 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

std::string json_string(const std::string& s) {
    std::string out = "\"";
    for (const char ch : s) {
        const auto c = static_cast<unsigned char>(ch);
        if (c == '"' || c == '\\') {
            out += '\\';
            out += ch;
        } else if (c < 0x20) {
            out += fmt::format("\\u{:04x}", c);
        } else {
            out += ch;
        }
    }
    return out + "\"";
}

std::string json_percentiles(const percentiles& p) {
    return fmt::format(R"({{"n":{},"p50":{:.3f},"p90":{:.3f},"p99":{:.3f},"max":{:.3f}}})", p.n, p.p50, p.p90, p.p99,
                       p.max);
}

std::string json_sample(const tree_sample& s) {
    return fmt::format(R"({{"cpu_s":{:.3f},"rss_bytes":{},"pss_bytes":{},"processes":{}}})", s.cpu_s, s.rss_bytes,
                       s.pss_bytes, s.processes);
}

struct derived {
    percentiles latency, login, ready;
    double sessions_per_s = 0, messages_per_s = 0, mb_per_s = 0;
    double server_cpu_s = 0, server_cpu_per_session_ms = 0, loadgen_cpu_per_session_ms = 0;
    double idle_rss_per_session = 0, idle_pss_per_session = 0;  // bytes
    double retr_mb_per_s_median = 0, retr_mb_per_s_best = 0;
    double other_cpu_s = 0, steal_s = 0;  // CPU other processes took during the run (noise)
    double sender_ns_per_octet = 0;       // bare-copy
};

derived derive(const options& opt, run_result& r) {
    derived d;
    d.latency = summarize(r.latency_ms);
    d.login = summarize(r.login_ms);
    d.ready = summarize(r.ready_ms);
    if (r.elapsed_s > 0) {
        d.sessions_per_s = static_cast<double>(r.sessions) / r.elapsed_s;
        d.messages_per_s = static_cast<double>(r.messages) / r.elapsed_s;
        d.mb_per_s = static_cast<double>(r.retr_wire_bytes) / 1e6 / r.elapsed_s;
    }
    d.server_cpu_s = r.server_after.cpu_s - r.server_before.cpu_s;
    const auto sessions = static_cast<double>(std::max<std::uint64_t>(r.sessions + r.errors, 1));
    d.server_cpu_per_session_ms = d.server_cpu_s * 1000 / sessions;
    d.loadgen_cpu_per_session_ms = r.loadgen_cpu_s * 1000 / sessions;
    if (opt.mode == run_mode::idle && r.idle_logged_in > 0) {
        const auto n = static_cast<double>(r.idle_logged_in);
        d.idle_rss_per_session =
            (static_cast<double>(r.server_held.rss_bytes) - static_cast<double>(r.server_before.rss_bytes)) / n;
        d.idle_pss_per_session =
            (static_cast<double>(r.server_held.pss_bytes) - static_cast<double>(r.server_before.pss_bytes)) / n;
    }
    d.other_cpu_s = std::max(0.0, (r.machine_after.busy_s - r.machine_before.busy_s) - r.loadgen_cpu_s -
                                      (opt.server_pids.empty() ? 0.0 : d.server_cpu_s));
    d.steal_s = r.machine_after.steal_s - r.machine_before.steal_s;
    if (r.retr_wire_bytes > 0) {
        d.sender_ns_per_octet = r.sender_cpu_s * 1e9 / static_cast<double>(r.retr_wire_bytes);
    }
    d.retr_mb_per_s_median = median(r.retr_mb_per_s);
    if (!r.retr_mb_per_s.empty()) {
        d.retr_mb_per_s_best = *std::max_element(r.retr_mb_per_s.begin(), r.retr_mb_per_s.end());
    }
    return d;
}

}  // namespace

std::string human_report(const options& opt, run_result& r) {
    const derived d = derive(opt, r);
    std::string o;
    auto line = [&](std::string_view k, const std::string& v) { o += fmt::format("  {:<28} {}\n", k, v); };
    o += fmt::format("poplar-loadgen {}{}: {}:{} tls={} auth={} concurrency={} threads={}\n", to_string(opt.mode),
                     opt.label.empty() ? "" : " [" + opt.label + "]", opt.host, opt.port, to_string(opt.tls),
                     to_string(opt.auth), opt.concurrency, opt.threads);
    line("elapsed", fmt::format("{:.2f} s", r.elapsed_s));
    line("sessions ok / errors", fmt::format("{} / {}", r.sessions, r.errors));
    if (opt.mode == run_mode::full || opt.mode == run_mode::login) {
        line("sessions/s", fmt::format("{:.1f}", d.sessions_per_s));
    }
    if (opt.mode == run_mode::full) {
        line("messages/s", fmt::format("{:.1f}", d.messages_per_s));
        line("MB/s (RETR bodies)", fmt::format("{:.1f}", d.mb_per_s));
    }
    if (d.latency.n > 0) {
        line("session latency ms", fmt::format("p50 {:.2f}  p90 {:.2f}  p99 {:.2f}  max {:.2f}", d.latency.p50,
                                               d.latency.p90, d.latency.p99, d.latency.max));
    }
    if (d.login.n > 0) {
        line("login (PASS->+OK) ms", fmt::format("p50 {:.2f}  p90 {:.2f}  p99 {:.2f}  max {:.2f}", d.login.p50,
                                                 d.login.p90, d.login.p99, d.login.max));
    }
    if (d.ready.n > 0) {
        line("ready (PASS->STAT) ms", fmt::format("p50 {:.2f}  p90 {:.2f}  p99 {:.2f}  max {:.2f}", d.ready.p50,
                                                  d.ready.p90, d.ready.p99, d.ready.max));
    }
    if (opt.mode == run_mode::large || opt.mode == run_mode::bare_copy) {
        line("transfer octets", fmt::format("{}", r.retr_octets));
        line("MB/s per transfer", fmt::format("median {:.1f}  best {:.1f}  (n={})", d.retr_mb_per_s_median,
                                              d.retr_mb_per_s_best, r.retr_mb_per_s.size()));
    }
    if (opt.mode == run_mode::bare_copy) {
        line("sender CPU", fmt::format("{:.3f} s ({:.3f} ns/octet: the floor for sending these bytes)", r.sender_cpu_s,
                                       d.sender_ns_per_octet));
    }
    if (!r.cipher.empty()) {
        line("TLS", r.cipher);
    }
    line("loadgen CPU", fmt::format("{:.2f} s ({:.3f} ms/session)", r.loadgen_cpu_s, d.loadgen_cpu_per_session_ms));
    line("other processes' CPU", fmt::format("{:.2f} s ({:.0f}% of one core; hypervisor steal {:.2f} s)", d.other_cpu_s,
                                              r.elapsed_s > 0 ? 100 * d.other_cpu_s / r.elapsed_s : 0.0, d.steal_s));
    if (!opt.server_pids.empty()) {
        line("server CPU", fmt::format("{:.2f} s ({:.3f} ms/session)", d.server_cpu_s, d.server_cpu_per_session_ms));
        line("server RSS before/after/peak",
             fmt::format("{:.1f} / {:.1f} / {:.1f} MiB ({} processes after)", r.server_before.rss_bytes / 1048576.0,
                         r.server_after.rss_bytes / 1048576.0, r.server_rss_peak / 1048576.0,
                         r.server_after.processes));
        line("server PSS before/after", fmt::format("{:.1f} / {:.1f} MiB", r.server_before.pss_bytes / 1048576.0,
                                                    r.server_after.pss_bytes / 1048576.0));
        if (opt.mode == run_mode::idle) {
            line("idle sessions logged in", fmt::format("{}", r.idle_logged_in));
            line("memory per idle session", fmt::format("RSS {:.1f} KiB, PSS {:.1f} KiB",
                                                        d.idle_rss_per_session / 1024, d.idle_pss_per_session / 1024));
        }
    }
    for (const std::string& e : r.error_samples) {
        line("error", e);
    }
    return o;
}

std::string json_report(const options& opt, run_result& r) {
    const derived d = derive(opt, r);
    std::string errors = "[";
    for (std::size_t i = 0; i < r.error_samples.size(); ++i) {
        errors += (i ? "," : "") + json_string(r.error_samples[i]);
    }
    errors += "]";
    std::string mbs = "[";
    for (std::size_t i = 0; i < r.retr_mb_per_s.size(); ++i) {
        mbs += fmt::format("{}{:.2f}", i ? "," : "", r.retr_mb_per_s[i]);
    }
    mbs += "]";
    std::string o = "{";
    o += fmt::format(R"("label":{},"mode":"{}","host":{},"port":{},"tls":"{}","auth":"{}",)", json_string(opt.label),
                     to_string(opt.mode), json_string(opt.host), opt.port, to_string(opt.tls), to_string(opt.auth));
    o += fmt::format(R"("concurrency":{},"threads":{},"elapsed_s":{:.4f},"sessions":{},"errors":{},"error_samples":{},)",
                     opt.concurrency, opt.threads, r.elapsed_s, r.sessions, r.errors, errors);
    o += fmt::format(R"("sessions_per_s":{:.3f},"messages":{},"messages_per_s":{:.3f},"retr_bytes":{},"mb_per_s":{:.3f},)",
                     d.sessions_per_s, r.messages, d.messages_per_s, r.retr_wire_bytes, d.mb_per_s);
    o += fmt::format(R"("latency_ms":{},"login_ms":{},"ready_ms":{},"cipher":{},)", json_percentiles(d.latency),
                     json_percentiles(d.login), json_percentiles(d.ready), json_string(r.cipher));
    o += fmt::format(R"("loadgen_cpu_s":{:.4f},"loadgen_cpu_per_session_ms":{:.4f},"other_cpu_s":{:.3f},"steal_s":{:.3f},)",
                     r.loadgen_cpu_s, d.loadgen_cpu_per_session_ms, d.other_cpu_s, d.steal_s);
    o += fmt::format(R"("server":{{"measured":{},"cpu_s":{:.4f},"cpu_per_session_ms":{:.4f},"rss_peak_bytes":{},)",
                     opt.server_pids.empty() ? "false" : "true", d.server_cpu_s, d.server_cpu_per_session_ms,
                     r.server_rss_peak);
    o += fmt::format(R"("before":{},"after":{},"loaded":{},"held":{}}},)", json_sample(r.server_before),
                     json_sample(r.server_after), json_sample(r.server_loaded), json_sample(r.server_held));
    o += fmt::format(R"("idle":{{"logged_in":{},"rss_per_session_bytes":{:.1f},"pss_per_session_bytes":{:.1f}}},)",
                     r.idle_logged_in, d.idle_rss_per_session, d.idle_pss_per_session);
    o += fmt::format(R"("transfer":{{"octets":{},"mb_per_s":{},"mb_per_s_median":{:.3f},"mb_per_s_best":{:.3f},)",
                     r.retr_octets, mbs, d.retr_mb_per_s_median, d.retr_mb_per_s_best);
    o += fmt::format(R"("sender_cpu_s":{:.4f},"sender_ns_per_octet":{:.4f}}})", r.sender_cpu_s, d.sender_ns_per_octet);
    o += "}\n";
    return o;
}

}  // namespace loadgen
