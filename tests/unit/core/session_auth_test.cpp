// Tests for core::session before login: greeting, CAPA, USER/PASS, AUTH, APOP, STLS, failures.
#include <gtest/gtest.h>

#include <chrono>
#include <string>
#include <tuple>
#include <utility>
#include <variant>

#include "core/limits.h"
#include "core/session.h"
#include "session_fixture.h"
#include "util/text.h"

namespace poplar::test {
namespace {

using core::plaintext_policy;
using core::session;
using namespace std::chrono_literals;

// ---- greeting -------------------------------------------------------------------------------

core::session_policy apop_policy(plaintext_policy p = plaintext_policy::loopback, bool in_clear = false) {
    core::session_policy pol = policy_with(p);
    pol.apop = true;
    pol.apop_in_clear = in_clear;
    return pol;
}

TEST(SessionGreeting, WithApop) {
    fake_authenticator auth;
    session s(apop_policy(), loopback_facts(), auth, "<1a2b.3c4d@mail.example>");
    EXPECT_EQ(s.greeting(), "+OK poplar ready <1a2b.3c4d@mail.example>\r\n");
}

TEST(SessionGreeting, WithoutApopWhichIsTheDefault) {
    fake_authenticator auth;
    session s({}, loopback_facts(), auth, "<1a2b.3c4d@mail.example>");
    EXPECT_EQ(s.greeting(), "+OK poplar ready\r\n");
}

// RFC 1939 §7: the timestamp is what tells a client APOP is there, so it is shown exactly where
// APOP would be accepted: where USER/PASS is, or anywhere with apop_in_clear.
TEST(SessionGreeting, TimestampOnlyWhereApopIsAllowed) {
    struct greeting_case {
        plaintext_policy policy;
        core::connection_facts facts;
        bool in_clear;
        bool timestamp;
    };
    const core::connection_facts remote{false, false, true};
    const core::connection_facts loopback{true, false, true};
    const core::connection_facts tls{false, true, false};
    const greeting_case cases[] = {
        {plaintext_policy::loopback, remote, false, false},   {plaintext_policy::loopback, loopback, false, true},
        {plaintext_policy::loopback, tls, false, true},       {plaintext_policy::loopback, remote, true, true},
        {plaintext_policy::tls_only, remote, false, false},   {plaintext_policy::tls_only, loopback, false, false},
        {plaintext_policy::tls_only, tls, false, true},       {plaintext_policy::tls_only, loopback, true, true},
        {plaintext_policy::always, remote, false, true},      {plaintext_policy::always, loopback, false, true},
    };
    for (const greeting_case& c : cases) {
        fake_authenticator auth;
        session s(apop_policy(c.policy, c.in_clear), c.facts, auth, "<7.8@h>");
        EXPECT_EQ(s.greeting(), c.timestamp ? "+OK poplar ready <7.8@h>\r\n" : "+OK poplar ready\r\n")
            << "policy " << static_cast<int>(c.policy) << " loopback " << c.facts.loopback << " tls " << c.facts.tls
            << " in_clear " << c.in_clear;
    }
}

// ---- CAPA -----------------------------------------------------------------------------------

struct capa_case {
    plaintext_policy policy;
    core::connection_facts facts;
    bool user;   // USER and "SASL PLAIN LOGIN" expected
    bool stls;
};

TEST(SessionCapa, AuthorizationStateEveryCombination) {
    const capa_case cases[] = {
        // loopback policy: plaintext on TLS or loopback
        {plaintext_policy::loopback, {true, false, false}, true, false},
        {plaintext_policy::loopback, {true, false, true}, true, true},
        {plaintext_policy::loopback, {false, false, false}, false, false},
        {plaintext_policy::loopback, {false, false, true}, false, true},
        {plaintext_policy::loopback, {false, true, true}, true, false},
        {plaintext_policy::loopback, {true, true, true}, true, false},
        // always
        {plaintext_policy::always, {false, false, false}, true, false},
        {plaintext_policy::always, {false, false, true}, true, true},
        {plaintext_policy::always, {false, true, true}, true, false},
        {plaintext_policy::always, {true, false, false}, true, false},
        // tls_only: loopback does not count
        {plaintext_policy::tls_only, {true, false, false}, false, false},
        {plaintext_policy::tls_only, {true, false, true}, false, true},
        {plaintext_policy::tls_only, {false, false, true}, false, true},
        {plaintext_policy::tls_only, {false, true, true}, true, false},
        {plaintext_policy::tls_only, {false, true, false}, true, false},
    };
    for (const capa_case& c : cases) {
        fake_authenticator auth;
        session_driver d(policy_with(c.policy), c.facts, auth);
        std::string expected = capa_common;
        if (c.user) {
            expected += "USER\r\nSASL PLAIN LOGIN\r\n";
        }
        if (c.stls) {
            expected += "STLS\r\n";
        }
        expected += capa_end;
        EXPECT_EQ(d.line("CAPA"), expected) << "policy " << static_cast<int>(c.policy) << " loopback "
                                            << c.facts.loopback << " tls " << c.facts.tls << " tls_available "
                                            << c.facts.tls_available;
    }
}

TEST(SessionCapa, NonPlaintextMechanismListedWhenPlaintextRefused) {
    fake_authenticator auth;
    auth.mechs = {{"PLAIN", true}, {"SCRAM-SHA-256", false}, {"LOGIN", true}};
    session_driver refused(policy_with(plaintext_policy::loopback), remote_facts(false), auth);
    EXPECT_EQ(refused.line("CAPA"), capa_common + "SASL SCRAM-SHA-256\r\n" + capa_end);
    session_driver allowed(policy_with(plaintext_policy::loopback), loopback_facts(), auth);
    EXPECT_EQ(allowed.line("CAPA"), capa_common + "USER\r\nSASL PLAIN SCRAM-SHA-256 LOGIN\r\n" + capa_end);
}

TEST(SessionCapa, ExpireAndLoginDelayFromPolicy) {
    fake_authenticator auth;
    core::session_policy pol;
    pol.expire = "30";
    pol.login_delay = 900;
    session_driver d(pol, loopback_facts(), auth);
    const std::string capa = d.line("capa");
    EXPECT_NE(capa.find("\r\nEXPIRE 30\r\nLOGIN-DELAY 900\r\n"), std::string::npos) << capa;
}

TEST(SessionCapa, TransactionState) {
    logged_in li;
    EXPECT_EQ(li.d.line("CAPA"), capa_common + capa_end);
}

TEST(SessionCapa, AfterStlsShowsUserForTlsOnlyAndNoStls) {
    fake_authenticator auth;
    session_driver d(policy_with(plaintext_policy::tls_only), remote_facts(), auth);
    EXPECT_EQ(d.line("CAPA"), capa_common + "STLS\r\n" + capa_end);
    EXPECT_EQ(d.line("STLS"), "+OK begin TLS negotiation\r\n");
    EXPECT_EQ(d.tls_handshakes(), 1);
    EXPECT_EQ(d.line("CAPA"), capa_common + "USER\r\nSASL PLAIN LOGIN\r\n" + capa_end);
    EXPECT_EQ(d.line("USER u"), "+OK\r\n");
    EXPECT_EQ(d.line("PASS p"), "+OK maildrop has 0 messages (0 octets)\r\n");
}

// ---- USER / PASS ----------------------------------------------------------------------------

TEST(SessionUserPass, SuccessPathThroughEffects) {
    fake_authenticator auth;
    session s({}, loopback_facts(), auth, "<1.2@x>");
    core::step st = s.on_line("USER u");
    EXPECT_EQ(st.reply, "+OK\r\n");
    EXPECT_TRUE(std::holds_alternative<core::effect::none>(st.next));

    st = s.on_line("PASS p");
    EXPECT_EQ(st.reply, "");
    auto* ra = std::get_if<core::effect::run_auth>(&st.next);
    ASSERT_NE(ra, nullptr);
    EXPECT_EQ(ra->response, std::string("\0u\0p", 4));  // USER/PASS repacked as SASL PLAIN
    EXPECT_EQ(auth.started, std::vector<std::string>{"PLAIN"});
    EXPECT_EQ(s.current_state(), session::state::authorization);

    st = s.on_auth_step(ra->mechanism->step(ra->response));
    EXPECT_EQ(st.reply, "");
    EXPECT_EQ(st.delay, 0ms);
    auto* om = std::get_if<core::effect::open_maildrop>(&st.next);
    ASSERT_NE(om, nullptr);
    EXPECT_EQ(om->user, "u");
    EXPECT_EQ(s.user(), "u");
    EXPECT_EQ(s.mechanism_name(), "USER");
    EXPECT_EQ(s.maildrop(), nullptr);  // before the maildrop is open nothing is reachable

    auto drop = std::make_unique<memory_maildrop>(three_messages());
    memory_maildrop* raw = drop.get();
    st = s.on_maildrop_opened(std::unique_ptr<storage::maildrop>(std::move(drop)));
    EXPECT_EQ(st.reply, logged_in_3);
    EXPECT_TRUE(std::holds_alternative<core::effect::none>(st.next));
    EXPECT_EQ(s.current_state(), session::state::transaction);
    EXPECT_TRUE(s.idle_is_transaction());
    EXPECT_EQ(s.maildrop(), raw);
}

TEST(SessionUserPass, PasswordWithSpaces) {
    fake_authenticator auth;
    auth.users = {{"u", " correct horse "}};
    session_driver d({}, loopback_facts(), auth, three_messages());
    d.line("USER u");
    EXPECT_EQ(d.line("PASS  correct horse "), logged_in_3);
}

TEST(SessionUserPass, PlaintextRefused) {
    fake_authenticator auth;
    session_driver d(policy_with(plaintext_policy::loopback), remote_facts(), auth);
    EXPECT_EQ(d.line("USER u"), plaintext_refused);
    EXPECT_EQ(d.line("PASS p"), "-ERR send USER first\r\n");
    EXPECT_TRUE(auth.started.empty());
    session_driver tls_only(policy_with(plaintext_policy::tls_only), loopback_facts(), auth);
    EXPECT_EQ(tls_only.line("USER u"), plaintext_refused);
}

TEST(SessionUserPass, PassWithoutUser) {
    fake_authenticator auth;
    session_driver d({}, loopback_facts(), auth);
    EXPECT_EQ(d.line("PASS p"), "-ERR send USER first\r\n");
    // USER is used up by one PASS attempt.
    d.line("USER u");
    EXPECT_EQ(d.line("PASS wrong"), invalid_login);
    EXPECT_EQ(d.line("PASS p"), "-ERR send USER first\r\n");
}

TEST(SessionUserPass, FailuresDelayedCountedAndClose) {
    fake_authenticator auth;
    core::session_policy pol;
    pol.auth_failure_delay = 1234ms;
    pol.max_auth_failures = 3;
    session s(pol, loopback_facts(), auth, "<1.2@x>");
    for (int i = 1; i <= 3; ++i) {
        EXPECT_EQ(s.on_line("USER u").reply, "+OK\r\n");
        core::step st = s.on_line("PASS nope");
        auto* ra = std::get_if<core::effect::run_auth>(&st.next);
        ASSERT_NE(ra, nullptr);
        st = s.on_auth_step(ra->mechanism->step(ra->response));
        EXPECT_EQ(st.reply, invalid_login);
        EXPECT_EQ(st.delay, 1234ms);
        EXPECT_EQ(s.user(), "u");  // for the "auth failed" log line
        if (i < 3) {
            EXPECT_TRUE(std::holds_alternative<core::effect::none>(st.next)) << i;
        } else {
            EXPECT_TRUE(std::holds_alternative<core::effect::close>(st.next));
            EXPECT_EQ(s.current_state(), session::state::closed);
        }
    }
}

TEST(SessionUserPass, UnknownUserSameReply) {
    fake_authenticator auth;
    session_driver d({}, loopback_facts(), auth);
    d.line("USER nobody");
    EXPECT_EQ(d.line("PASS p"), invalid_login);
    EXPECT_EQ(d.total_delay(), limits::default_auth_failure_delay);
}

TEST(SessionUserPass, TemporaryFailure) {
    fake_authenticator auth;
    auth.database_down = true;
    session_driver d({}, loopback_facts(), auth);
    for (int i = 0; i < 5; ++i) {  // not a failed login: never closes
        d.line("USER u");
        EXPECT_EQ(d.line("PASS p"), "-ERR [SYS/TEMP] authentication temporarily unavailable\r\n");
    }
    EXPECT_FALSE(d.closed());
    EXPECT_EQ(d.total_delay(), 0ms);
    auth.database_down = false;
    d.line("USER u");
    EXPECT_EQ(d.line("PASS p"), "+OK maildrop has 0 messages (0 octets)\r\n");
}

TEST(SessionUserPass, MechanismUnavailable) {
    fake_authenticator auth;
    auth.unavailable = true;
    session_driver d({}, loopback_facts(), auth);
    d.line("USER u");
    EXPECT_EQ(d.line("PASS p"), "-ERR [SYS/TEMP] authentication temporarily unavailable\r\n");
    EXPECT_EQ(d.session().current_state(), session::state::authorization);
}

TEST(SessionUserPass, MaildropErrors) {
    struct error_case {
        storage::errc code;
        std::string reply;
    };
    const error_case cases[] = {
        {storage::errc::in_use, "-ERR [IN-USE] maildrop is locked by another session\r\n"},
        {storage::errc::temporary, "-ERR [SYS/TEMP] maildrop temporarily unavailable\r\n"},
        {storage::errc::permanent, "-ERR [SYS/PERM] maildrop unavailable\r\n"},
    };
    for (const error_case& c : cases) {
        fake_authenticator auth;
        session_driver d({}, loopback_facts(), auth, three_messages());
        d.open_error = storage::error{c.code, "detail for the log only"};
        d.line("USER u");
        EXPECT_EQ(d.line("PASS p"), c.reply);
        EXPECT_EQ(d.session().current_state(), session::state::authorization);
        EXPECT_EQ(d.session().maildrop(), nullptr);
        EXPECT_EQ(d.line("STAT"), wrong_state);
        // The user may try again once the lock is gone.
        d.open_error.reset();
        d.line("USER u");
        EXPECT_EQ(d.line("PASS p"), logged_in_3);
    }
}

// ---- APOP -----------------------------------------------------------------------------------

TEST(SessionApop, Success) {
    fake_authenticator auth;
    session_driver d(apop_policy(plaintext_policy::tls_only), {false, true, false}, auth, three_messages(), "<7.8@h>");
    EXPECT_EQ(d.line("APOP u " + md5_hex("<7.8@h>p")), logged_in_3);
    EXPECT_EQ(auth.started, std::vector<std::string>{"APOP <7.8@h>"});
    EXPECT_EQ(d.session().mechanism_name(), "APOP");
}

TEST(SessionApop, RefusedInClearLikeUserPass) {
    // "loopback" off loopback and "tls-only" on any plain connection: the USER/PASS refusal.
    const std::pair<plaintext_policy, core::connection_facts> refused[] = {
        {plaintext_policy::loopback, remote_facts()},
        {plaintext_policy::tls_only, remote_facts()},
        {plaintext_policy::tls_only, loopback_facts()},
    };
    for (const auto& [policy, facts] : refused) {
        fake_authenticator auth;
        core::session_policy pol = apop_policy(policy);
        pol.max_bad_commands = 2;
        session_driver d(pol, facts, auth, three_messages(), "<7.8@h>");
        EXPECT_EQ(d.line("APOP u " + md5_hex("<7.8@h>p")), plaintext_refused);
        EXPECT_TRUE(auth.started.empty());  // the digest is never checked
        EXPECT_EQ(d.total_delay(), 0ms);
        EXPECT_EQ(d.line("APOP u " + md5_hex("<7.8@h>p")), too_many_bad);  // a bad command, as USER is
        EXPECT_TRUE(d.closed());
    }
}

TEST(SessionApop, AllowedInClearWhereUserPassIsOrWithApopInClear) {
    const std::tuple<plaintext_policy, core::connection_facts, bool> allowed[] = {
        {plaintext_policy::loopback, loopback_facts(), false},
        {plaintext_policy::always, remote_facts(), false},
        {plaintext_policy::loopback, remote_facts(), true},
        {plaintext_policy::tls_only, remote_facts(), true},
    };
    for (const auto& [policy, facts, in_clear] : allowed) {
        fake_authenticator auth;
        session_driver d(apop_policy(policy, in_clear), facts, auth, three_messages(), "<7.8@h>");
        EXPECT_EQ(d.line("APOP u " + md5_hex("<7.8@h>p")), logged_in_3);
    }
}

TEST(SessionApop, AfterStlsWithoutATimestampInTheGreeting) {
    fake_authenticator auth;
    session_driver d(apop_policy(plaintext_policy::loopback), remote_facts(), auth, three_messages(), "<7.8@h>");
    EXPECT_EQ(d.session().greeting(), "+OK poplar ready\r\n");
    EXPECT_EQ(d.line("STLS"), "+OK begin TLS negotiation\r\n");
    EXPECT_EQ(d.line("APOP u " + md5_hex("<7.8@h>p")),
              "-ERR APOP is not available on this connection: the greeting had no timestamp\r\n");
    EXPECT_TRUE(auth.started.empty());
    EXPECT_EQ(d.line("USER u"), "+OK\r\n");  // inside TLS, USER/PASS is the way in
    EXPECT_EQ(d.line("PASS p"), logged_in_3);
}

TEST(SessionApop, EveryFailureLooksTheSame) {
    fake_authenticator auth;
    auth.users.emplace("hashed", "x");
    auth.hashed.insert("hashed");
    core::session_policy pol = apop_policy();
    pol.auth_failure_delay = 1500ms;
    session_driver d(pol, loopback_facts(), auth, {}, "<7.8@h>");
    // Wrong digest, an account without a PLAIN secret, an unknown user: one reply, one delay.
    EXPECT_EQ(d.line("APOP u " + md5_hex("<7.8@h>wrong")), invalid_login);
    EXPECT_EQ(d.total_delay(), 1500ms);
    EXPECT_EQ(d.line("APOP hashed " + md5_hex("<7.8@h>x")), invalid_login);
    EXPECT_EQ(d.total_delay(), 3000ms);
    EXPECT_FALSE(d.closed());
    EXPECT_EQ(d.line("APOP nosuchuser " + md5_hex("<7.8@h>x")), invalid_login);
    EXPECT_EQ(d.total_delay(), 4500ms);
    EXPECT_TRUE(d.closed());  // third failed login
}

TEST(SessionApop, DisabledByDefault) {
    fake_authenticator auth;
    session_driver d({}, loopback_facts(), auth, {}, "<7.8@h>");
    EXPECT_EQ(d.line("APOP u 0123456789abcdef0123456789abcdef"), "-ERR APOP is not enabled\r\n");
    EXPECT_TRUE(auth.started.empty());
}

TEST(SessionApop, Arity) {
    fake_authenticator auth;
    session_driver d({}, loopback_facts(), auth);
    EXPECT_EQ(d.line("APOP u"), "-ERR missing argument\r\n");
    EXPECT_EQ(d.line("APOP u d x"), "-ERR too many arguments\r\n");
}

// ---- STLS -----------------------------------------------------------------------------------

TEST(SessionStls, StartsTls) {
    fake_authenticator auth;
    session s({}, remote_facts(), auth, "");
    core::step st = s.on_line("STLS");
    EXPECT_EQ(st.reply, "+OK begin TLS negotiation\r\n");
    EXPECT_TRUE(std::holds_alternative<core::effect::start_tls>(st.next));
    st = s.on_tls_established();
    EXPECT_EQ(st.reply, "");
    EXPECT_TRUE(std::holds_alternative<core::effect::none>(st.next));
    EXPECT_EQ(s.on_line("STLS").reply, "-ERR already using TLS\r\n");
}

TEST(SessionStls, Refused) {
    fake_authenticator auth;
    session_driver on_tls({}, {false, true, true}, auth);
    EXPECT_EQ(on_tls.line("STLS"), "-ERR already using TLS\r\n");
    session_driver no_tls({}, remote_facts(false), auth);
    EXPECT_EQ(no_tls.line("STLS"), "-ERR TLS is not available\r\n");
    EXPECT_EQ(on_tls.tls_handshakes() + no_tls.tls_handshakes(), 0);
}

TEST(SessionStls, ForgetsUserSentBeforeIt) {
    fake_authenticator auth;
    session_driver d(policy_with(plaintext_policy::always), remote_facts(), auth);
    d.line("USER u");
    d.line("STLS");
    EXPECT_EQ(d.line("PASS p"), "-ERR send USER first\r\n");
}

TEST(SessionStls, NotValidInTransaction) {
    logged_in li;
    EXPECT_EQ(li.d.line("STLS"), wrong_state);
}

// ---- AUTH -----------------------------------------------------------------------------------

TEST(SessionAuth, NoArgumentListsMechanisms) {
    fake_authenticator auth;
    session_driver d({}, loopback_facts(), auth);
    EXPECT_EQ(d.line("AUTH"), "+OK\r\nPLAIN\r\nLOGIN\r\n.\r\n");
    session_driver refused({}, remote_facts(), auth);
    EXPECT_EQ(refused.line("AUTH"), "+OK\r\n.\r\n");
}

TEST(SessionAuth, PlainWithInitialResponse) {
    fake_authenticator auth;
    session_driver d({}, loopback_facts(), auth, three_messages());
    EXPECT_EQ(d.line("AUTH PLAIN " + util::base64_encode(std::string("\0u\0p", 4))), logged_in_3);
    EXPECT_EQ(auth.responses, std::vector<std::string>{std::string("\0u\0p", 4)});
    EXPECT_EQ(d.session().mechanism_name(), "PLAIN");
}

TEST(SessionAuth, MechanismNameCaseInsensitive) {
    fake_authenticator auth;
    session_driver d({}, loopback_facts(), auth, three_messages());
    EXPECT_EQ(d.line("auth plain AHUAcA=="), logged_in_3);
}

TEST(SessionAuth, PlainEmptyInitialResponse) {
    fake_authenticator auth;
    session_driver d({}, loopback_facts(), auth);
    EXPECT_EQ(d.line("AUTH PLAIN ="), invalid_login);
    EXPECT_EQ(auth.responses, std::vector<std::string>{""});
}

TEST(SessionAuth, PlainWithoutInitialResponse) {
    fake_authenticator auth;
    session_driver d({}, loopback_facts(), auth, three_messages());
    EXPECT_EQ(d.line("AUTH PLAIN"), "+ \r\n");
    EXPECT_EQ(d.session().current_state(), session::state::sasl);
    EXPECT_EQ(d.session().max_line(), limits::max_sasl_line);
    EXPECT_EQ(d.line("AHUAcA=="), logged_in_3);
    EXPECT_EQ(d.session().max_line(), limits::max_command_line);
}

TEST(SessionAuth, ContinuationIsNotACommand) {
    fake_authenticator auth;
    session_driver d({}, loopback_facts(), auth);
    EXPECT_EQ(d.line("AUTH PLAIN"), "+ \r\n");
    // "QUIT" is valid base64 and goes to the mechanism, not to the command table.
    EXPECT_EQ(d.line("QUIT"), invalid_login);
    EXPECT_FALSE(d.closed());
}

TEST(SessionAuth, Cancel) {
    fake_authenticator auth;
    session_driver d({}, loopback_facts(), auth);
    EXPECT_EQ(d.line("AUTH PLAIN"), "+ \r\n");
    EXPECT_EQ(d.line("*"), "-ERR authentication cancelled\r\n");
    EXPECT_EQ(d.session().current_state(), session::state::authorization);
    EXPECT_TRUE(auth.responses.empty());
    EXPECT_EQ(d.line("NOOP"), wrong_state);  // back to the command table
}

TEST(SessionAuth, BadBase64) {
    fake_authenticator auth;
    session_driver d({}, loopback_facts(), auth);
    EXPECT_EQ(d.line("AUTH PLAIN"), "+ \r\n");
    EXPECT_EQ(d.line("not base64!"), "-ERR invalid base64 data\r\n");
    EXPECT_EQ(d.session().current_state(), session::state::authorization);
    EXPECT_EQ(d.line("AUTH PLAIN AHUAcA="), "-ERR invalid base64 data\r\n");
    EXPECT_EQ(d.line("AUTH PLAIN AHUAcA==="), "-ERR invalid base64 data\r\n");
    EXPECT_TRUE(auth.responses.empty());
}

TEST(SessionAuth, LoginChallenges) {
    fake_authenticator auth;
    session_driver d({}, loopback_facts(), auth, three_messages());
    EXPECT_EQ(d.line("AUTH LOGIN"), "+ VXNlcm5hbWU6\r\n");  // "Username:"
    EXPECT_EQ(d.line(util::base64_encode("u")), "+ UGFzc3dvcmQ6\r\n");  // "Password:"
    EXPECT_EQ(d.session().current_state(), session::state::sasl);
    EXPECT_EQ(d.line(util::base64_encode("p")), logged_in_3);
    EXPECT_EQ(auth.responses, (std::vector<std::string>{"u", "p"}));
}

TEST(SessionAuth, LoginWithInitialResponse) {
    fake_authenticator auth;
    session_driver d({}, loopback_facts(), auth, three_messages());
    EXPECT_EQ(d.line("AUTH LOGIN dQ=="), "+ UGFzc3dvcmQ6\r\n");
    EXPECT_EQ(d.line("cA=="), logged_in_3);
}

TEST(SessionAuth, MechanismUnavailable) {
    fake_authenticator auth;
    auth.unavailable = true;
    session_driver d(apop_policy(), loopback_facts(), auth, {}, "<7.8@h>");
    EXPECT_EQ(d.line("AUTH PLAIN"), "-ERR [SYS/TEMP] authentication temporarily unavailable\r\n");
    EXPECT_EQ(d.line("AUTH PLAIN AHUAcA=="), "-ERR [SYS/TEMP] authentication temporarily unavailable\r\n");
    EXPECT_EQ(d.line("APOP u 0123456789abcdef0123456789abcdef"),
              "-ERR [SYS/TEMP] authentication temporarily unavailable\r\n");
    EXPECT_EQ(d.session().current_state(), session::state::authorization);
    EXPECT_EQ(d.total_delay(), 0ms);
}

TEST(SessionAuth, FailedLoginsAreNotBadCommands) {
    fake_authenticator auth;
    core::session_policy pol;
    pol.max_bad_commands = 2;
    pol.max_auth_failures = 10;
    session_driver d(pol, loopback_facts(), auth);
    for (int i = 0; i < 4; ++i) {
        d.line("USER u");
        EXPECT_EQ(d.line("PASS x"), invalid_login);
    }
    EXPECT_FALSE(d.closed());
}

TEST(SessionAuth, UnknownMechanism) {
    fake_authenticator auth;
    session_driver d({}, loopback_facts(), auth);
    EXPECT_EQ(d.line("AUTH CRAM-MD5"), "-ERR unsupported authentication mechanism\r\n");
    EXPECT_EQ(d.line("AUTH X dQ=="), "-ERR unsupported authentication mechanism\r\n");
    EXPECT_TRUE(auth.started.empty());
}

TEST(SessionAuth, PlaintextMechanismRefused) {
    fake_authenticator auth;
    session_driver d(policy_with(plaintext_policy::loopback), remote_facts(), auth);
    EXPECT_EQ(d.line("AUTH PLAIN AHUAcA=="), plaintext_refused);
    EXPECT_EQ(d.line("AUTH LOGIN"), plaintext_refused);
    EXPECT_TRUE(auth.started.empty());
}

TEST(SessionAuth, InitialResponseMayExceedArgumentLimit) {
    fake_authenticator auth;
    session_driver d({}, loopback_facts(), auth);
    const std::string long_pw(300, 'w');
    EXPECT_EQ(d.line("AUTH PLAIN " + util::base64_encode(std::string("\0u\0", 3) + long_pw)), invalid_login);
    ASSERT_EQ(auth.responses.size(), 1u);
    EXPECT_EQ(auth.responses[0].size(), 303u);
}

TEST(SessionAuth, FailuresCountAcrossMechanisms) {
    fake_authenticator auth;
    session_driver d({}, loopback_facts(), auth);
    d.line("USER u");
    EXPECT_EQ(d.line("PASS x"), invalid_login);
    EXPECT_EQ(d.line("AUTH PLAIN AHUAeA=="), invalid_login);
    EXPECT_FALSE(d.closed());
    d.line("AUTH LOGIN");
    d.line("dQ==");
    EXPECT_EQ(d.line("eA=="), invalid_login);
    EXPECT_TRUE(d.closed());
    EXPECT_EQ(d.total_delay(), 3 * limits::default_auth_failure_delay);
}

TEST(SessionAuth, OverLongLineCancelsExchange) {
    fake_authenticator auth;
    session_driver d({}, loopback_facts(), auth);
    d.line("AUTH PLAIN");
    EXPECT_EQ(d.too_long(), "-ERR line too long\r\n");
    EXPECT_EQ(d.session().current_state(), session::state::authorization);
    EXPECT_EQ(d.session().max_line(), limits::max_command_line);
}

// ---- bad commands ---------------------------------------------------------------------------

TEST(SessionBadCommands, Texts) {
    fake_authenticator auth;
    session_driver d({}, loopback_facts(), auth);
    EXPECT_EQ(d.line("HELO x"), "-ERR unknown command\r\n");
    EXPECT_EQ(d.line(""), "-ERR unknown command\r\n");
    EXPECT_EQ(d.line("STAT"), wrong_state);
    EXPECT_EQ(d.line("RETR 1"), wrong_state);
    EXPECT_EQ(d.line("USER"), "-ERR missing argument\r\n");
    EXPECT_EQ(d.line("USER "), "-ERR missing argument\r\n");
    EXPECT_EQ(d.line("USER a b"), "-ERR too many arguments\r\n");
    EXPECT_EQ(d.line("QUIT x"), "-ERR too many arguments\r\n");
}

TEST(SessionBadCommands, ArgumentLength) {
    fake_authenticator auth;
    session_driver d({}, loopback_facts(), auth);
    EXPECT_EQ(d.line("USER " + std::string(255, 'u')), "+OK\r\n");
    EXPECT_EQ(d.line("USER " + std::string(256, 'u')), "-ERR argument too long\r\n");
    EXPECT_EQ(d.line("PASS " + std::string(256, 'p')), "-ERR argument too long\r\n");
    EXPECT_TRUE(auth.started.empty());
}

TEST(SessionBadCommands, CloseAtLimitAndGoodCommandResets) {
    fake_authenticator auth;
    core::session_policy pol;
    pol.max_bad_commands = 4;
    session_driver d(pol, loopback_facts(), auth);
    for (int i = 0; i < 3; ++i) {
        EXPECT_EQ(d.line("BOGUS"), "-ERR unknown command\r\n");
    }
    EXPECT_EQ(d.line("USER u"), "+OK\r\n");  // resets
    for (int i = 0; i < 3; ++i) {
        EXPECT_EQ(d.line("STAT"), wrong_state);
    }
    EXPECT_FALSE(d.closed());
    EXPECT_EQ(d.too_long(), too_many_bad);  // over-long lines count too
    EXPECT_TRUE(d.closed());
    EXPECT_EQ(d.session().current_state(), session::state::closed);
}

TEST(SessionBadCommands, DefaultLimit) {
    fake_authenticator auth;
    session_driver d({}, loopback_facts(), auth);
    for (unsigned i = 1; i < limits::default_max_bad_commands; ++i) {
        EXPECT_EQ(d.line("X"), "-ERR unknown command\r\n") << i;
    }
    EXPECT_EQ(d.line("X"), too_many_bad);
    EXPECT_EQ(d.effects().back(), "close");
}

TEST(SessionBadCommands, CapaResets) {
    fake_authenticator auth;
    core::session_policy pol;
    pol.max_bad_commands = 2;
    session_driver d(pol, loopback_facts(), auth);
    d.line("X");
    d.line("CAPA");
    EXPECT_EQ(d.line("X"), "-ERR unknown command\r\n");
    EXPECT_EQ(d.line("X"), too_many_bad);
}

TEST(SessionQuit, InAuthorization) {
    fake_authenticator auth;
    session s({}, loopback_facts(), auth, "");
    core::step st = s.on_line("quit");
    EXPECT_EQ(st.reply, "+OK signing off\r\n");
    EXPECT_TRUE(std::holds_alternative<core::effect::close>(st.next));
    EXPECT_EQ(s.current_state(), session::state::closed);
}

}  // namespace
}  // namespace poplar::test

namespace poplar::test {
namespace {

// After QUIT (or any forced close) the session runs nothing more, even if the connection were to
// feed it lines still buffered from a pipelining client.
TEST(SessionClosed, LinesAfterQuitRunNothing) {
    fake_authenticator auth;
    core::session s({}, loopback_facts(), auth, "<1@x>");
    EXPECT_EQ(s.on_line("QUIT").reply, "+OK signing off\r\n");
    for (const char* line : {"USER u", "PASS p", "CAPA", "STAT", "QUIT"}) {
        const core::step st = s.on_line(line);
        EXPECT_EQ(st.reply, "") << line;
        EXPECT_TRUE(std::holds_alternative<core::effect::close>(st.next)) << line;
    }
    EXPECT_TRUE(auth.responses.empty());
}

}  // namespace
}  // namespace poplar::test
