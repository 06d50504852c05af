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

    // `text` with the first `from` replaced by `to`.
    static std::string replace(std::string text, std::string_view from, std::string_view to) {
        const std::size_t at = text.find(from);
        EXPECT_NE(at, std::string::npos) << from;
        return text.replace(at, from.size(), to);
    }

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
    EXPECT_FALSE(c.policy.apop);
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

TEST_F(config_test, errors_name_the_file_line_and_key) {
    const std::string base = minimal;  // [listen] on line 2, [storage] 4, [auth] 6; appended text from line 8
    EXPECT_EQ(error_of(base + "[pop3]\nexpir = \"NEVER\"\n"),
              "test.toml:9: pop3.expir: unknown key (did you mean \"expire\"?)");
    EXPECT_EQ(error_of(base + "plaintext = \"sometimes\"\n"),
              "test.toml:8: auth.plaintext: expected one of \"loopback\", \"always\", \"tls-only\"");
    EXPECT_EQ(error_of(replace(base, "127.0.0.1:110", "localhost")),
              "test.toml:3: listen.pop3: \"localhost\" is not an address like \"127.0.0.1:110\" or \"[::1]:110\"");
    EXPECT_EQ(error_of(replace(base, "pop3 = [\"127.0.0.1:110\"]", "")),
              "test.toml:2: listen: no listener: set listen.pop3, listen.pop3s or their _proxy forms");
    EXPECT_EQ(error_of(replace(base, "pop3 = ", "pop3s = ")),
              "test.toml:3: listen.pop3s: implicit TLS listeners need a [tls] section with certificate and private_key");
    EXPECT_EQ(error_of(replace(base, "mail/%u", "/srv/mail")),
              "test.toml:5: storage.maildir: must contain %u or %n, or every user would share one maildrop");
    EXPECT_EQ(error_of(replace(base, "[auth]", "locking = \"none\"\n[auth]")),
              "test.toml:6: storage.locking: expected one of \"snapshot\", \"exclusive\"");
    EXPECT_EQ(error_of(replace(base, "passwd_file = \"users.passwd\"", "")),
              "test.toml:6: auth.passwd_file: missing: the Dovecot-format passwd-file with the users");
    EXPECT_EQ(error_of(base + "[pop3]\nidle_timeout = \"ten minutes\"\n"),
              "test.toml:9: pop3.idle_timeout: \"ten minutes\" is not a duration like \"500ms\", \"30s\", \"10m\"");
    EXPECT_EQ(error_of(base + "[pop3]\nmax_bad_commands = 0\n"),
              "test.toml:9: pop3.max_bad_commands: must be between 1 and 1000");
    EXPECT_EQ(error_of(base + "[pop3]\nmax_bad_commands = \"5\"\n"),
              "test.toml:9: pop3.max_bad_commands: expected an integer");
    EXPECT_EQ(error_of(base + "[pop3]\nexpire = \"soon\"\n"),
              "test.toml:9: pop3.expire: expected \"NEVER\" or a number of days such as \"30\" (RFC 2449 section 6.7)");
    EXPECT_EQ(error_of(base + "[log]\nlevel = \"loud\"\n"),
              "test.toml:9: log.level: expected one of \"trace\", \"debug\", \"info\", \"warn\" (or \"warning\"), "
              "\"error\", \"critical\", \"off\"");
    EXPECT_EQ(error_of(base + "[tls]\ncertificate = \"cert.pem\"\n"),
              "test.toml:8: tls.private_key: missing (required when [tls] is present)");
    EXPECT_EQ(error_of(base + "[tls]\ncertificate = \"cert.pem\"\nprivate_key = \"key.pem\"\nmin_version = \"1.0\"\n"),
              "test.toml:11: tls.min_version: expected \"1.2\" or \"1.3\"");
    EXPECT_EQ(error_of(base + "apop = \"yes\"\n"), "test.toml:8: auth.apop: expected true or false");
    EXPECT_EQ(error_of("[storage]\nmaildir = \"m/%u\"\n"),  // absent sections have no line to show
              "test.toml: listen: no listener: set listen.pop3, listen.pop3s or their _proxy forms\n"
              "test.toml: auth.passwd_file: missing: the Dovecot-format passwd-file with the users");
}

TEST_F(config_test, unknown_sections_and_keys_suggest_the_near_name) {
    const std::string base = minimal;
    EXPECT_EQ(error_of(base + "[storge]\nlocking = \"exclusive\"\n"),
              "test.toml:8: storge: unknown section (did you mean \"storage\"?)");
    EXPECT_EQ(error_of(base + "[auth2]\n"), "test.toml:8: auth2: unknown section (did you mean \"auth\"?)");
    EXPECT_EQ(error_of(base + "[server]\nthreds = 4\n"),
              "test.toml:9: server.threds: unknown key (did you mean \"threads\"?)");
    EXPECT_EQ(error_of(base + "plaintxt = \"always\"\n"),
              "test.toml:8: auth.plaintxt: unknown key (did you mean \"plaintext\"?)");
    EXPECT_EQ(error_of(base + "Apop = true\n"), "test.toml:8: auth.Apop: unknown key (did you mean \"apop\"?)");
    // Too far from every known name: no guess.
    EXPECT_EQ(error_of(base + "[server]\ncolour = \"blue\"\n"), "test.toml:9: server.colour: unknown key");
    EXPECT_EQ(error_of(base + "[mailboxes]\n"), "test.toml:8: mailboxes: unknown section");
    EXPECT_EQ(error_of(base + "ap = true\n"), "test.toml:8: auth.ap: unknown key");  // "apop" is 2 edits away
    // A key above every section header belongs in a section.
    EXPECT_EQ(error_of("threads = 4\n" + base),
              "test.toml:1: threads: unknown key (keys belong in a section: did you mean \"server.threads\"?)");
    // A sub-table of a known section.
    EXPECT_EQ(error_of(base + "[auth.apop_options]\n"), "test.toml:8: auth.apop_options: unknown section");
    EXPECT_EQ(error_of(base + "server = 3\n"), "test.toml:8: auth.server: unknown key");
    EXPECT_EQ(error_of("server = 3\n" + base), "test.toml:1: server: expected a table (a [server] section)");
}

TEST_F(config_test, every_problem_is_reported_in_file_order) {
    try {
        load("[server]\n"                                       // 1
             "threds = 4\n"                                     // 2
             "max_connections = 0\n"                            // 3
             "[listen]\n"                                       // 4
             "pop3 = [\"127.0.0.1:219950\", \"127.0.0.1:0\", \"localhost:110\"]\n"  // 5
             "[storge]\n"                                       // 6
             "[storage]\n"                                      // 7
             "maildir = \"m/%u\"\n"                             // 8
             "[auth]\n"                                         // 9
             "passwd_file = \"users.passwd\"\n"                 // 10
             "plaintext = \"sometimes\"\n"                      // 11
             "[log]\n"                                          // 12
             "level = \"loud\"\n");                             // 13
        ADD_FAILURE() << "no config_error";
    } catch (const config_error& e) {
        const std::vector<std::string> expected{
            "test.toml:2: server.threds: unknown key (did you mean \"threads\"?)",
            "test.toml:3: server.max_connections: must be between 1 and 1000000",
            "test.toml:5: listen.pop3: port 219950 in \"127.0.0.1:219950\" is out of range (1-65535, or 0 for a free "
            "port the system picks)",
            "test.toml:5: listen.pop3: \"localhost\" in \"localhost:110\" is not an IP address (host names are not "
            "resolved: a listener must not depend on DNS)",
            "test.toml:6: storge: unknown section (did you mean \"storage\"?)",
            "test.toml:11: auth.plaintext: expected one of \"loopback\", \"always\", \"tls-only\"",
            "test.toml:13: log.level: expected one of \"trace\", \"debug\", \"info\", \"warn\" (or \"warning\"), "
            "\"error\", \"critical\", \"off\"",
        };
        EXPECT_EQ(e.problems(), expected);
        std::string joined;
        for (const std::string& p : expected) {
            joined += (joined.empty() ? "" : "\n") + p;
        }
        EXPECT_EQ(std::string(e.what()), joined);
    }
    // read_string returns them with what could be read, for the checks that build on it.
    const loaded_config l =
        read_string(std::string(minimal) + "[server]\nthreds = 4\nthreads = 3\n", dir_, "test.toml");
    ASSERT_EQ(l.problems.size(), 1u);
    EXPECT_EQ(l.cfg.server.threads, 3u);
    EXPECT_EQ(l.cfg.auth.passwd_file, dir_ / "users.passwd");
}

TEST_F(config_test, ports) {
    const std::string base = minimal;
    EXPECT_EQ(load(replace(base, "127.0.0.1:110", "127.0.0.1:0")).pop3[0].port, 0);  // any free port
    EXPECT_EQ(load(replace(base, "127.0.0.1:110", "[::1]:65535")).pop3[0].port, 65535);
    EXPECT_EQ(error_of(replace(base, "127.0.0.1:110", "127.0.0.1:65536")),
              "test.toml:3: listen.pop3: port 65536 in \"127.0.0.1:65536\" is out of range (1-65535, or 0 for a free "
              "port the system picks)");
    EXPECT_EQ(error_of(replace(base, "127.0.0.1:110", "[::1]:99999999999999999999")),
              "test.toml:3: listen.pop3: port 99999999999999999999 in \"[::1]:99999999999999999999\" is out of range "
              "(1-65535, or 0 for a free port the system picks)");
    EXPECT_EQ(error_of(replace(base, "127.0.0.1:110", "127.0.0.1:-1")),
              "test.toml:3: listen.pop3: \"127.0.0.1:-1\" is not an address like \"127.0.0.1:110\" or \"[::1]:110\"");
}

TEST_F(config_test, log_level_warning_is_warn) {
    EXPECT_EQ(load(std::string(minimal) + "[log]\nlevel = \"warning\"\n").log_level, "warn");
    EXPECT_EQ(load(std::string(minimal) + "[log]\nlevel = \"warn\"\n").log_level, "warn");
}

TEST_F(config_test, apop_is_off_by_default_and_in_clear_needs_its_own_key) {
    const config off = load(minimal);
    EXPECT_FALSE(off.policy.apop);
    EXPECT_FALSE(off.policy.apop_in_clear);
    const config on = load(std::string(minimal) + "apop = true\napop_in_clear = true\n");
    EXPECT_TRUE(on.policy.apop);
    EXPECT_TRUE(on.policy.apop_in_clear);
    EXPECT_EQ(error_of(std::string(minimal) + "apop_in_clear = 1\n"),
              "test.toml:8: auth.apop_in_clear: expected true or false");
}

TEST_F(config_test, dot_slash_config_path_resolves_cleanly) {
    std::ofstream(dir_ / "poplar.toml") << minimal;
    const fs::path old = fs::current_path();
    fs::current_path(dir_);
    const config c = load_file("./poplar.toml");
    const config up = load_file("../" + dir_.filename().string() + "/./poplar.toml");
    fs::current_path(old);
    EXPECT_EQ(c.storage.maildir, (dir_ / "mail/%u").string());
    EXPECT_EQ(up.storage.maildir, (dir_ / "mail/%u").string());
    EXPECT_EQ(c.auth.passwd_file, dir_ / "users.passwd");
}

TEST_F(config_test, unreadable_files_are_named) {
    const std::string msg = error_of(replace(minimal, "\"users.passwd\"", "\"nope\""));
    EXPECT_EQ(msg.rfind("test.toml:7: auth.passwd_file: cannot read \"", 0), 0u) << msg;
    EXPECT_NE(msg.find("No such file or directory"), std::string::npos) << msg;
}

TEST_F(config_test, toml_syntax_errors_give_line_and_column_and_stop) {
    const std::string msg = error_of("[listen\npop3 = 1\n");
    EXPECT_EQ(msg.rfind("test.toml:1:", 0), 0u) << msg;
    EXPECT_EQ(msg.find('\n'), std::string::npos) << msg;  // one problem: nothing after it was read
}

TEST_F(config_test, control_socket_of_reports_control_problems) {
    std::ofstream(dir_ / "c.toml") << "[control]\nsocket = \"ctl.sock\"\nmode = \"9\"\n";
    try {
        (void)control_socket_of(dir_ / "c.toml");
        ADD_FAILURE() << "no config_error";
    } catch (const config_error& e) {
        EXPECT_EQ(std::string(e.what()), (dir_ / "c.toml").string() + ":3: control.mode: \"9\" is not an octal file "
                                                                      "mode like \"0660\"");
    }
    std::ofstream(dir_ / "c.toml") << "[control]\nsocket = \"ctl.sock\"\n";
    EXPECT_EQ(control_socket_of(dir_ / "c.toml"), dir_ / "ctl.sock");
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
