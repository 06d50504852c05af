// The exposition format and the endpoint's request parser: exact bytes.
#include "net/metrics.h"

#include "detect/usage_alerts.h"

#include <gtest/gtest.h>

namespace poplar::net::metrics {
namespace {

// The lines of `text` that start with `prefix`, joined.
std::string lines_starting(const std::string& text, std::string_view prefix) {
    std::string out;
    std::size_t from = 0;
    while (from < text.size()) {
        const std::size_t to = text.find('\n', from);
        const std::string_view line(text.data() + from, to - from);
        if (line.starts_with(prefix)) {
            out += line;
            out += '\n';
        }
        from = to + 1;
    }
    return out;
}

TEST(MetricsExposition, CountersAndGaugesExactly) {
    snapshot s;
    s.version = "poplar 1.0 \"x\"\\y";
    s.start_time_seconds = 1700000000;
    s.logins[mechanism_index("APOP")] = 3;
    s.auth_failures[static_cast<int>(auth_failure::plaintext_refused)] = 2;
    s.sessions[2] = 5;
    s.retr_bytes = 12345678901ull;
    const std::string text = format_exposition(s);
    EXPECT_EQ(text.substr(0, text.find("# HELP poplar_connections_total")),
              "# HELP poplar_build_info Always 1; the version label says which poplar runs.\n"
              "# TYPE poplar_build_info gauge\n"
              "poplar_build_info{version=\"poplar 1.0 \\\"x\\\"\\\\y\"} 1\n"
              "# HELP poplar_start_time_seconds When the server started, in seconds since the Unix epoch.\n"
              "# TYPE poplar_start_time_seconds gauge\n"
              "poplar_start_time_seconds 1700000000\n");
    EXPECT_EQ(lines_starting(text, "poplar_logins_total"),
              "poplar_logins_total{mechanism=\"USER\"} 0\n"
              "poplar_logins_total{mechanism=\"APOP\"} 3\n"
              "poplar_logins_total{mechanism=\"PLAIN\"} 0\n"
              "poplar_logins_total{mechanism=\"LOGIN\"} 0\n"
              "poplar_logins_total{mechanism=\"other\"} 0\n");
    EXPECT_EQ(lines_starting(text, "poplar_auth_failures_total{"),
              "poplar_auth_failures_total{reason=\"invalid_credentials\"} 0\n"
              "poplar_auth_failures_total{reason=\"plaintext_refused\"} 2\n"
              "poplar_auth_failures_total{reason=\"malformed\"} 0\n"
              "poplar_auth_failures_total{reason=\"unavailable\"} 0\n");
    EXPECT_EQ(lines_starting(text, "poplar_sessions{phase=\"transaction\"}"), "poplar_sessions{phase=\"transaction\"} 5\n");
    EXPECT_EQ(lines_starting(text, "poplar_retr_bytes_total"), "poplar_retr_bytes_total 12345678901\n");
    EXPECT_EQ(lines_starting(text, "# TYPE poplar_auth_blocks_total"), "# TYPE poplar_auth_blocks_total counter\n");
    EXPECT_EQ(lines_starting(text, "poplar_auth_blocks_total"), "poplar_auth_blocks_total 0\n");
    EXPECT_EQ(lines_starting(text, "poplar_auth_penalties_total"), "poplar_auth_penalties_total 0\n");
    EXPECT_TRUE(text.ends_with("poplar_command_duration_seconds_count{command=\"other\"} 0\n"));
}

TEST(MetricsExposition, RefusalsByReasonAlertsByKindAndPenaltyKeys) {
    snapshot s;
    s.connections_refused[static_cast<int>(refusal::blocked)] = 7;
    s.connections_refused[static_cast<int>(refusal::max_connections_per_address)] = 2;
    s.alerts[static_cast<int>(detect::alert_kind::dele_messages)] = 1;
    s.auth_penalty_keys = 42;
    const std::string text = format_exposition(s);
    EXPECT_EQ(lines_starting(text, "poplar_connections_refused_total{"),
              "poplar_connections_refused_total{reason=\"max_connections\"} 0\n"
              "poplar_connections_refused_total{reason=\"max_unauthenticated\"} 0\n"
              "poplar_connections_refused_total{reason=\"max_connections_per_address\"} 2\n"
              "poplar_connections_refused_total{reason=\"blocked\"} 7\n"
              "poplar_connections_refused_total{reason=\"proxy\"} 0\n");
    EXPECT_EQ(lines_starting(text, "poplar_alerts_total{"),
              "poplar_alerts_total{kind=\"retr_messages\"} 0\n"
              "poplar_alerts_total{kind=\"retr_bytes\"} 0\n"
              "poplar_alerts_total{kind=\"dele_messages\"} 1\n"
              "poplar_alerts_total{kind=\"addresses\"} 0\n");
    EXPECT_EQ(lines_starting(text, "poplar_auth_penalty_keys"), "poplar_auth_penalty_keys 42\n");
    // The alert names are detect's, in detect::alert_kind's order.
    for (std::size_t k = 0; k < alert_names.size(); ++k) {
        EXPECT_EQ(alert_names[k], detect::name(static_cast<detect::alert_kind>(k)));
    }
}

TEST(MetricsExposition, HistogramIsCumulativeWithExactSeconds) {
    snapshot s;
    const std::size_t retr = command_index("retr 1");
    ASSERT_EQ(commands[retr], "RETR");
    s.command_latency[retr].buckets[latency_bucket(50'000)] += 1;        // 50 µs
    s.command_latency[retr].buckets[latency_bucket(500'000)] += 2;       // exactly 0.5 ms: le="0.0005"
    s.command_latency[retr].buckets[latency_bucket(7'000'000'000)] += 1;  // 7 s: only +Inf
    s.command_latency[retr].sum_ns = 7'001'050'000;
    const std::string text = format_exposition(s);
    EXPECT_EQ(lines_starting(text, "poplar_command_duration_seconds_bucket{command=\"RETR\""),
              "poplar_command_duration_seconds_bucket{command=\"RETR\",le=\"0.0001\"} 1\n"
              "poplar_command_duration_seconds_bucket{command=\"RETR\",le=\"0.0005\"} 3\n"
              "poplar_command_duration_seconds_bucket{command=\"RETR\",le=\"0.001\"} 3\n"
              "poplar_command_duration_seconds_bucket{command=\"RETR\",le=\"0.005\"} 3\n"
              "poplar_command_duration_seconds_bucket{command=\"RETR\",le=\"0.01\"} 3\n"
              "poplar_command_duration_seconds_bucket{command=\"RETR\",le=\"0.05\"} 3\n"
              "poplar_command_duration_seconds_bucket{command=\"RETR\",le=\"0.1\"} 3\n"
              "poplar_command_duration_seconds_bucket{command=\"RETR\",le=\"0.5\"} 3\n"
              "poplar_command_duration_seconds_bucket{command=\"RETR\",le=\"1\"} 3\n"
              "poplar_command_duration_seconds_bucket{command=\"RETR\",le=\"5\"} 3\n"
              "poplar_command_duration_seconds_bucket{command=\"RETR\",le=\"+Inf\"} 4\n");
    EXPECT_EQ(lines_starting(text, "poplar_command_duration_seconds_sum{command=\"RETR\"}"),
              "poplar_command_duration_seconds_sum{command=\"RETR\"} 7.00105\n");
    EXPECT_EQ(lines_starting(text, "poplar_command_duration_seconds_count{command=\"RETR\"}"),
              "poplar_command_duration_seconds_count{command=\"RETR\"} 4\n");
    EXPECT_EQ(lines_starting(text, "poplar_command_duration_seconds_sum{command=\"STAT\"}"),
              "poplar_command_duration_seconds_sum{command=\"STAT\"} 0\n");
    EXPECT_EQ(lines_starting(text, "# TYPE poplar_command_duration_seconds"),
              "# TYPE poplar_command_duration_seconds histogram\n");
}

TEST(MetricsExposition, EveryFamilyHasHelpAndTypeOnceAndEveryLineEnds) {
    const std::string text = format_exposition(snapshot{});
    ASSERT_TRUE(text.ends_with('\n'));
    EXPECT_EQ(text.find("\n\n"), std::string::npos);
    std::size_t helps = 0;
    std::size_t types = 0;
    for (std::size_t p = 0; (p = text.find("# HELP ", p)) != std::string::npos; ++p) {
        ++helps;
    }
    for (std::size_t p = 0; (p = text.find("# TYPE ", p)) != std::string::npos; ++p) {
        ++types;
    }
    EXPECT_EQ(helps, 23u);
    EXPECT_EQ(types, 23u);
}

TEST(MetricsNames, CommandsAndMechanisms) {
    EXPECT_EQ(commands[command_index("PASS secret")], "PASS");
    EXPECT_EQ(commands[command_index("quit")], "QUIT");
    EXPECT_EQ(commands[command_index("GET / HTTP/1.1")], "other");
    EXPECT_EQ(commands[command_index("")], "other");
    EXPECT_EQ(mechanisms[mechanism_index("LOGIN")], "LOGIN");
    EXPECT_EQ(mechanisms[mechanism_index("XOAUTH2")], "other");
    EXPECT_EQ(latency_bucket(0), 0u);
    EXPECT_EQ(latency_bucket(100'000), 0u);
    EXPECT_EQ(latency_bucket(100'001), 1u);
    EXPECT_EQ(latency_bucket(5'000'000'001), 10u);
}

TEST(MetricsHttp, ParsesAGetAndStripsTheQuery) {
    auto r = parse_request("GET /metrics?x=1 HTTP/1.1\r\nHost: a\r\nAccept: */*\r\n\r\n");
    ASSERT_TRUE(std::holds_alternative<request>(r));
    EXPECT_EQ(std::get<request>(r).method, "GET");
    EXPECT_EQ(std::get<request>(r).target, "/metrics");
    EXPECT_TRUE(std::holds_alternative<need_more>(parse_request("GET /metrics HTTP/1.1\r\nHost: a\r\n")));
}

TEST(MetricsHttp, BadRequests) {
    auto status = [](std::string_view in) {
        auto r = parse_request(in);
        return std::holds_alternative<bad>(r) ? std::get<bad>(r).status : 0;
    };
    EXPECT_EQ(status("garbage\r\n\r\n"), 400);
    EXPECT_EQ(status("GET /metrics\r\n\r\n"), 400);
    EXPECT_EQ(status("GET /metrics HTTP/2.0\r\n\r\n"), 400);
    EXPECT_EQ(status("get /metrics HTTP/1.1\r\n\r\n"), 400);
    EXPECT_EQ(status("GET metrics HTTP/1.1\r\n\r\n"), 400);
    EXPECT_EQ(status("GET  /metrics HTTP/1.1\r\n\r\n"), 400);
    EXPECT_EQ(status(std::string(max_request_bytes, 'a')), 431);
    EXPECT_EQ(status("GET / HTTP/1.1\r\nX: " + std::string(max_request_bytes, 'a') + "\r\n\r\n"), 431);
}

TEST(MetricsHttp, ResponsesExactly) {
    EXPECT_EQ(response(404, "no\n"),
              "HTTP/1.1 404 Not Found\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: 3\r\n"
              "Connection: close\r\n\r\nno\n");
    EXPECT_EQ(response(405, ""),
              "HTTP/1.1 405 Method Not Allowed\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: 0\r\n"
              "Allow: GET\r\nConnection: close\r\n\r\n");
    EXPECT_EQ(response(200, "a 1\n", content_type),
              "HTTP/1.1 200 OK\r\nContent-Type: text/plain; version=0.0.4; charset=utf-8\r\nContent-Length: 4\r\n"
              "Connection: close\r\n\r\na 1\n");
}

}  // namespace
}  // namespace poplar::net::metrics
