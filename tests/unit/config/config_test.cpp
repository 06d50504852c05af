// Tests for the TOML config loader: defaults, every validation error names its key.
#include "config/config.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

namespace poplar::config {
namespace {

namespace fs = std::filesystem;

class config_test : public ::testing::Test {
protected:
    void SetUp() override {
        char tmpl[] = "/tmp/poplar-config-test-XXXXXX";
        ASSERT_NE(::mkdtemp(tmpl), nullptr);
        dir_ = tmpl;
        std::ofstream(dir_ / "users.passwd") << "demo:{PLAIN}x\n";
        std::ofstream(dir_ / "cert.pem") << "not really a cert\n";
        std::ofstream(dir_ / "key.pem") << "not really a key\n";
    }
    void TearDown() override { fs::remove_all(dir_); }

    config load(const std::string& text) { return load_string(text, dir_, "test.toml"); }

    // The message of the config_error `text` raises.
    std::string error_of(const std::string& text) {
        try {
            load(text);
        } catch (const config_error& e) {
            return e.what();
        }
        return "(no error)";
    }

    static constexpr const char* minimal = R"(
[listen]
pop3 = ["127.0.0.1:110"]
[storage]
maildir = "mail/%u"
[auth]
passwd_file = "users.passwd"
)";

    fs::path dir_;
};

TEST_F(config_test, minimal_config_gets_documented_defaults) {
    const config c = load(minimal);
    ASSERT_EQ(c.pop3.size(), 1u);
    EXPECT_EQ(c.pop3[0].host, "127.0.0.1");
    EXPECT_EQ(c.pop3[0].port, 110);
    EXPECT_TRUE(c.pop3s.empty());
    EXPECT_FALSE(c.tls.has_value());
    EXPECT_EQ(c.storage.maildir, (dir_ / "mail/%u").string());  // relative to the config file
    EXPECT_EQ(load(std::string(minimal).replace(std::string(minimal).find("mail/%u"), 7, "./mail/../m/%u")).storage.maildir,
              (dir_ / "m/%u").string());  // normalised: no "." or ".." reaches the path template
    EXPECT_EQ(c.storage.locking, storage::lock_mode::snapshot);
    EXPECT_EQ(c.auth.passwd_file, dir_ / "users.passwd");
    EXPECT_EQ(c.auth.cache_ttl, std::chrono::hours(1));
    EXPECT_EQ(c.auth.cache_size, 100000u);
    EXPECT_EQ(c.policy.plaintext, core::plaintext_policy::loopback);
    EXPECT_TRUE(c.policy.apop);
    EXPECT_EQ(c.policy.expire, "NEVER");
    EXPECT_EQ(c.policy.login_delay, 0u);
    EXPECT_EQ(c.policy.auth_failure_delay, std::chrono::milliseconds(2000));
    EXPECT_EQ(c.policy.max_auth_failures, 3u);
    EXPECT_EQ(c.policy.max_bad_commands, 10u);
    EXPECT_EQ(c.timeout.idle, std::chrono::minutes(10));  // RFC 1939 §3 minimum
    EXPECT_EQ(c.timeout.login, std::chrono::seconds(60));
    EXPECT_EQ(c.log_level, "info");
}

TEST_F(config_test, full_config_is_read) {
    const config c = load(R"(
[server]
hostname = "mail.example.org"
threads = 2
worker_threads = 3
shutdown_grace = "3s"
max_connections = 500
[listen]
pop3 = ["0.0.0.0:110", "[::]:110"]
pop3s = ["[::1]:995"]
[tls]
certificate = "cert.pem"
private_key = "key.pem"
min_version = "1.3"
[storage]
maildir = "/srv/mail/%d/%n"
locking = "exclusive"
[auth]
passwd_file = "users.passwd"
plaintext = "tls-only"
apop = false
failure_delay = "500ms"
max_failures = 5
cache_ttl = "0s"
cache_size = 5000
[pop3]
expire = "30"
login_delay = 900
login_timeout = "30s"
idle_timeout = "1h"
write_timeout = "2m"
max_bad_commands = 20
[log]
level = "debug"
)");
    EXPECT_EQ(c.server.hostname, "mail.example.org");
    EXPECT_EQ(c.server.threads, 2u);
    EXPECT_EQ(c.server.worker_threads, 3u);
    EXPECT_EQ(c.server.shutdown_grace, std::chrono::seconds(3));
    EXPECT_EQ(c.server.max_connections, 500u);
    ASSERT_EQ(c.pop3.size(), 2u);
    EXPECT_EQ(c.pop3[1].host, "::");
    EXPECT_EQ(c.pop3[1].to_string(), "[::]:110");
    ASSERT_EQ(c.pop3s.size(), 1u);
    EXPECT_EQ(c.pop3s[0].host, "::1");
    ASSERT_TRUE(c.tls.has_value());
    EXPECT_EQ(c.tls->min_version, "1.3");
    EXPECT_EQ(c.tls->certificate, dir_ / "cert.pem");
    EXPECT_EQ(c.storage.maildir, "/srv/mail/%d/%n");
    EXPECT_EQ(c.storage.locking, storage::lock_mode::exclusive);
    EXPECT_EQ(c.policy.plaintext, core::plaintext_policy::tls_only);
    EXPECT_FALSE(c.policy.apop);
    EXPECT_EQ(c.policy.auth_failure_delay, std::chrono::milliseconds(500));
    EXPECT_EQ(c.policy.max_auth_failures, 5u);
    EXPECT_EQ(c.auth.cache_ttl, std::chrono::milliseconds(0));
    EXPECT_EQ(c.auth.cache_size, 5000u);
    EXPECT_EQ(c.policy.expire, "30");
    EXPECT_EQ(c.policy.login_delay, 900u);
    EXPECT_EQ(c.timeout.login, std::chrono::seconds(30));
    EXPECT_EQ(c.timeout.idle, std::chrono::hours(1));
    EXPECT_EQ(c.timeout.write, std::chrono::minutes(2));
    EXPECT_EQ(c.policy.max_bad_commands, 20u);
    EXPECT_EQ(c.log_level, "debug");
}

TEST_F(config_test, errors_name_the_key) {
    const std::string base = minimal;
    EXPECT_EQ(error_of(base + "[pop3]\nexpir = \"NEVER\"\n"), "test.toml: pop3.expir: unknown key");
    EXPECT_EQ(error_of("[listen]\npop3 = [\"127.0.0.1:110\"]\n[storage]\nmaildir = \"m/%u\"\n"
                       "[auth]\npasswd_file = \"users.passwd\"\nplaintext = \"sometimes\"\n"),
              "test.toml: auth.plaintext: expected one of \"loopback\", \"always\", \"tls-only\"");
    EXPECT_EQ(error_of("[listen]\npop3 = [\"localhost\"]\n"),
              "test.toml: listen.pop3: \"localhost\" is not an address like \"127.0.0.1:110\" or \"[::1]:110\"");
    EXPECT_EQ(error_of("[listen]\npop3 = [\"127.0.0.1:70000\"]\n"),
              "test.toml: listen.pop3: \"127.0.0.1:70000\" is not an address like \"127.0.0.1:110\" or \"[::1]:110\"");
    EXPECT_EQ(error_of("[storage]\nmaildir = \"m/%u\"\n"),
              "test.toml: listen: no listener: set listen.pop3 and/or listen.pop3s");
    EXPECT_EQ(error_of("[listen]\npop3s = [\"127.0.0.1:995\"]\n"),
              "test.toml: listen.pop3s: implicit TLS listeners need a [tls] section with certificate and private_key");
    EXPECT_EQ(error_of("[listen]\npop3 = [\"127.0.0.1:110\"]\n[storage]\nmaildir = \"/srv/mail\"\n"),
              "test.toml: storage.maildir: must contain %u or %n, or every user would share one maildrop");
    EXPECT_EQ(error_of("[listen]\npop3 = [\"127.0.0.1:110\"]\n[storage]\nmaildir = \"m/%u\"\nlocking = \"none\"\n"),
              "test.toml: storage.locking: expected one of \"snapshot\", \"exclusive\"");
    EXPECT_EQ(error_of("[listen]\npop3 = [\"127.0.0.1:110\"]\n[storage]\nmaildir = \"m/%u\"\n"),
              "test.toml: auth.passwd_file: missing: the Dovecot-format passwd-file with the users");
    EXPECT_EQ(error_of(base + "[pop3]\nidle_timeout = \"ten minutes\"\n"),
              "test.toml: pop3.idle_timeout: \"ten minutes\" is not a duration like \"500ms\", \"30s\", \"10m\"");
    EXPECT_EQ(error_of(base + "[pop3]\nmax_bad_commands = 0\n"),
              "test.toml: pop3.max_bad_commands: must be between 1 and 1000");
    EXPECT_EQ(error_of(base + "[pop3]\nmax_bad_commands = \"5\"\n"),
              "test.toml: pop3.max_bad_commands: expected an integer");
    EXPECT_EQ(error_of(base + "[pop3]\nexpire = \"soon\"\n"),
              "test.toml: pop3.expire: expected \"NEVER\" or a number of days such as \"30\" (RFC 2449 section 6.7)");
    EXPECT_EQ(error_of(base + "[log]\nlevel = \"loud\"\n"),
              "test.toml: log.level: expected one of \"trace\", \"debug\", \"info\", \"warn\", \"error\", \"critical\", \"off\"");
    EXPECT_EQ(error_of(base + "[auth2]\n"), "test.toml: auth2: unknown key");
    EXPECT_EQ(error_of(base + "[tls]\ncertificate = \"cert.pem\"\n"),
              "test.toml: tls.private_key: missing (required when [tls] is present)");
    EXPECT_EQ(error_of(base + "[tls]\ncertificate = \"cert.pem\"\nprivate_key = \"key.pem\"\nmin_version = \"1.0\"\n"),
              "test.toml: tls.min_version: expected \"1.2\" or \"1.3\"");
}

TEST_F(config_test, unreadable_files_are_named) {
    const std::string msg = error_of(
        "[listen]\npop3 = [\"127.0.0.1:110\"]\n[storage]\nmaildir = \"m/%u\"\n[auth]\npasswd_file = \"nope\"\n");
    EXPECT_EQ(msg.rfind("test.toml: auth.passwd_file: cannot read \"", 0), 0u) << msg;
    EXPECT_NE(msg.find("No such file or directory"), std::string::npos) << msg;
}

TEST_F(config_test, toml_syntax_errors_give_line_and_column) {
    const std::string msg = error_of("[listen\npop3 = 1\n");
    EXPECT_EQ(msg.rfind("test.toml:1:", 0), 0u) << msg;
}

TEST(parse_duration, accepts_units_and_rejects_the_rest) {
    EXPECT_EQ(parse_duration("500ms"), std::chrono::milliseconds(500));
    EXPECT_EQ(parse_duration("2s"), std::chrono::milliseconds(2000));
    EXPECT_EQ(parse_duration("10m"), std::chrono::milliseconds(600000));
    EXPECT_EQ(parse_duration("1h"), std::chrono::milliseconds(3600000));
    EXPECT_EQ(parse_duration("0s"), std::chrono::milliseconds(0));
    EXPECT_FALSE(parse_duration(""));
    EXPECT_FALSE(parse_duration("s"));
    EXPECT_FALSE(parse_duration("10"));
    EXPECT_FALSE(parse_duration("-1s"));
    EXPECT_FALSE(parse_duration("1.5s"));
    EXPECT_FALSE(parse_duration("1 s"));
    EXPECT_FALSE(parse_duration("99999999999999999999s"));
}

TEST(parse_endpoint, ipv4_ipv6_and_garbage) {
    auto v4 = parse_endpoint("127.0.0.1:1110");
    ASSERT_TRUE(v4);
    EXPECT_EQ(v4->host, "127.0.0.1");
    EXPECT_EQ(v4->port, 1110);
    auto v6 = parse_endpoint("[::1]:995");
    ASSERT_TRUE(v6);
    EXPECT_EQ(v6->host, "::1");
    EXPECT_EQ(v6->port, 995);
    EXPECT_EQ(parse_endpoint("127.0.0.1:0")->port, 0);
    EXPECT_FALSE(parse_endpoint("::1:995"));
    EXPECT_FALSE(parse_endpoint("[127.0.0.1]:995"));
    EXPECT_FALSE(parse_endpoint("[::1]995"));
    EXPECT_FALSE(parse_endpoint(":110"));
    EXPECT_FALSE(parse_endpoint("host:"));
    EXPECT_FALSE(parse_endpoint("host:1x"));
    EXPECT_FALSE(parse_endpoint("host:65536"));
    EXPECT_FALSE(parse_endpoint("localhost:110"));  // `serve` cannot bind a name: `check` refuses it
    EXPECT_FALSE(parse_endpoint("[fe80::1%eth0]:110"));
    EXPECT_FALSE(parse_endpoint("1.2.3:110"));
}

}  // namespace
}  // namespace poplar::config
