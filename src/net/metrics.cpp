// Prometheus text exposition (format 0.0.4) and the metrics endpoint's request parser.
#include "net/metrics.h"

#include <fmt/format.h>

#include <algorithm>

#include "util/text.h"

namespace poplar::net::metrics {

namespace {

// Writes one metric family: "# HELP", "# TYPE", then its samples (added by the caller).
class writer {
public:
    void family(std::string_view name, std::string_view type, std::string_view help) {
        fmt::format_to(std::back_inserter(out_), "# HELP {} {}\n# TYPE {} {}\n", name, help, name, type);
    }
    void sample(std::string_view name, std::uint64_t v) { fmt::format_to(std::back_inserter(out_), "{} {}\n", name, v); }
    void sample(std::string_view name, std::string_view label, std::string_view value, std::uint64_t v) {
        fmt::format_to(std::back_inserter(out_), "{}{{{}=\"{}\"}} {}\n", name, label, value, v);
    }
    template <std::size_t N>
    void labelled(std::string_view name, std::string_view type, std::string_view help, std::string_view label,
                  const std::array<std::string_view, N>& values, const std::array<std::uint64_t, N>& counts) {
        family(name, type, help);
        for (std::size_t i = 0; i < N; ++i) {
            sample(name, label, values[i], counts[i]);
        }
    }
    void single(std::string_view name, std::string_view type, std::string_view help, std::uint64_t v) {
        family(name, type, help);
        sample(name, v);
    }
    std::string& out() { return out_; }

private:
    std::string out_;
};

// Nanoseconds as seconds, exactly: "0.000123456", "2", "1.5". No float, so no rounding noise.
std::string seconds_from_ns(std::uint64_t ns) {
    std::string s = fmt::format("{}.{:09}", ns / 1'000'000'000, ns % 1'000'000'000);
    while (s.back() == '0') {
        s.pop_back();
    }
    if (s.back() == '.') {
        s.pop_back();
    }
    return s;
}

}  // namespace

std::size_t mechanism_index(std::string_view name) {
    for (std::size_t i = 0; i + 1 < mechanisms.size(); ++i) {
        if (mechanisms[i] == name) {
            return i;
        }
    }
    return mechanisms.size() - 1;
}

std::size_t command_index(std::string_view line) {
    const std::string_view word = line.substr(0, line.find(' '));
    for (std::size_t i = 0; i + 1 < commands.size(); ++i) {
        if (util::iequals(word, commands[i])) {
            return i;
        }
    }
    return commands.size() - 1;
}

std::size_t latency_bucket(std::uint64_t nanoseconds) {
    const auto it = std::lower_bound(latency_bucket_bounds_ns.begin(), latency_bucket_bounds_ns.end(), nanoseconds);
    return static_cast<std::size_t>(it - latency_bucket_bounds_ns.begin());
}

std::string escape_label_value(std::string_view v) {
    std::string out;
    out.reserve(v.size());
    for (char c : v) {
        if (c == '\\') {
            out += "\\\\";
        } else if (c == '"') {
            out += "\\\"";
        } else if (c == '\n') {
            out += "\\n";
        } else {
            out += c;
        }
    }
    return out;
}

std::string format_exposition(const snapshot& s) {
    writer w;
    w.family("poplar_build_info", "gauge", "Always 1; the version label says which poplar runs.");
    w.sample("poplar_build_info", "version", escape_label_value(s.version), 1);
    w.family("poplar_start_time_seconds", "gauge", "When the server started, in seconds since the Unix epoch.");
    fmt::format_to(std::back_inserter(w.out()), "poplar_start_time_seconds {}\n", s.start_time_seconds);
    w.single("poplar_connections_total", "counter", "Connections accepted and served.", s.connections);
    w.labelled("poplar_connections_refused_total", "counter",
               "Connections refused before the greeting, by the limit or block that refused them.", "reason",
               refusal_names, s.connections_refused);
    w.single("poplar_tls_handshake_failures_total", "counter",
             "TLS handshakes that failed, on the implicit-TLS port or after STLS.", s.tls_handshake_failures);
    w.labelled("poplar_sessions", "gauge", "Sessions now open, by phase.", "phase", phase_names, s.sessions);
    w.labelled("poplar_sessions_ended_total", "counter", "Sessions ended, by reason.", "reason", end_reason_names,
               s.sessions_ended);
    w.labelled("poplar_logins_total", "counter", "Successful logins, by mechanism (USER is USER/PASS).",
               "mechanism", mechanisms, s.logins);
    w.labelled("poplar_auth_failures_total", "counter", "Failed login attempts, by reason.", "reason",
               auth_failure_names, s.auth_failures);
    // Fed by the authentication penalty engine; zero until it counts.
    w.single("poplar_auth_penalties_total", "counter", "Login attempts slowed down by an authentication penalty.",
             s.auth_penalties);
    w.single("poplar_auth_blocks_total", "counter",
             "Login attempts and connections refused by an authentication block.", s.auth_blocks);
    w.single("poplar_auth_penalty_keys", "gauge", "Client addresses and accounts the penalty table tracks.",
             s.auth_penalty_keys);
    w.labelled("poplar_alerts_total", "counter", "Usage alerts raised ([alerts]), by kind.", "kind", alert_names,
               s.alerts);
    w.single("poplar_retr_messages_total", "counter", "Messages retrieved with RETR.", s.retr_messages);
    w.single("poplar_retr_bytes_total", "counter", "Octets of messages retrieved with RETR (their sizes as LIST shows them).",
             s.retr_bytes);
    w.single("poplar_top_messages_total", "counter", "Messages read with TOP.", s.top_messages);
    w.single("poplar_dele_messages_total", "counter", "Messages removed at QUIT after DELE.", s.dele_messages);
    w.single("poplar_received_bytes_total", "counter", "Bytes received from POP3 clients (after TLS decryption).",
             s.bytes_in);
    w.single("poplar_sent_bytes_total", "counter", "Bytes sent to POP3 clients (before TLS encryption).", s.bytes_out);
    w.labelled("poplar_storage_errors_total", "counter", "Storage failures a client noticed, by kind.", "kind",
               storage_error_names, s.storage_errors);
    w.single("poplar_reloads_total", "counter", "Configuration reloads that succeeded.", s.reloads);
    w.single("poplar_reload_failures_total", "counter", "Configuration reloads that were refused.", s.reload_failures);

    w.family("poplar_command_duration_seconds", "histogram",
             "Time to handle one POP3 command line, from its arrival to its reply being queued, by command.");
    for (std::size_t c = 0; c < commands.size(); ++c) {
        const latency_histogram& h = s.command_latency[c];
        std::uint64_t cumulative = 0;
        for (std::size_t b = 0; b < latency_buckets; ++b) {
            cumulative += h.buckets[b];
            fmt::format_to(std::back_inserter(w.out()), "poplar_command_duration_seconds_bucket{{command=\"{}\",le=\"{}\"}} {}\n",
                           commands[c], b < latency_bucket_bounds.size() ? latency_bucket_bounds[b] : "+Inf",
                           cumulative);
        }
        fmt::format_to(std::back_inserter(w.out()), "poplar_command_duration_seconds_sum{{command=\"{}\"}} {}\n",
                       commands[c], seconds_from_ns(h.sum_ns));
        fmt::format_to(std::back_inserter(w.out()), "poplar_command_duration_seconds_count{{command=\"{}\"}} {}\n",
                       commands[c], cumulative);
    }
    return std::move(w.out());
}

std::variant<request, need_more, bad> parse_request(std::string_view received) {
    const std::size_t end = received.find("\r\n\r\n");
    if (end == std::string_view::npos) {
        if (received.size() >= max_request_bytes) {
            return bad{431, "request headers too large"};
        }
        return need_more{};
    }
    if (end + 4 > max_request_bytes) {
        return bad{431, "request headers too large"};
    }
    // RFC 9112 §3: method SP request-target SP HTTP-version.
    const std::string_view line = received.substr(0, received.find("\r\n"));
    const std::size_t sp1 = line.find(' ');
    const std::size_t sp2 = sp1 == std::string_view::npos ? sp1 : line.find(' ', sp1 + 1);
    if (sp1 == std::string_view::npos || sp2 == std::string_view::npos || sp1 == 0 || sp2 == sp1 + 1) {
        return bad{400, "malformed request line"};
    }
    const std::string_view method = line.substr(0, sp1);
    const std::string_view target = line.substr(sp1 + 1, sp2 - sp1 - 1);
    const std::string_view version = line.substr(sp2 + 1);
    if (version != "HTTP/1.1" && version != "HTTP/1.0") {
        return bad{400, "unsupported HTTP version"};
    }
    for (char c : method) {
        if (c < 'A' || c > 'Z') {
            return bad{400, "malformed method"};
        }
    }
    if (target.front() != '/') {
        return bad{400, "request target is not a path"};
    }
    for (char c : line) {
        if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) {
            return bad{400, "control character in the request line"};
        }
    }
    return request{std::string(method), std::string(target.substr(0, target.find('?')))};
}

std::string response(int status, std::string_view body, std::string_view type) {
    std::string_view text = "Bad Request";
    switch (status) {
        case 200: text = "OK"; break;
        case 404: text = "Not Found"; break;
        case 405: text = "Method Not Allowed"; break;
        case 431: text = "Request Header Fields Too Large"; break;
        default: break;
    }
    std::string out = fmt::format("HTTP/1.1 {} {}\r\nContent-Type: {}\r\nContent-Length: {}\r\n{}Connection: close\r\n\r\n",
                                  status, text, type, body.size(), status == 405 ? "Allow: GET\r\n" : "");
    out += body;
    return out;
}

}  // namespace poplar::net::metrics
