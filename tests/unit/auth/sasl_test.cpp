// Tests for auth/sasl: PLAIN, LOGIN and APOP over an in-memory passdb.
#include <gtest/gtest.h>
#include <openssl/evp.h>

#include <map>
#include <mutex>

#include "auth/passdb_authenticator.h"
#include "auth/password_hash.h"
#include "auth/sasl/mechanisms.h"

namespace poplar::auth {
namespace {

using namespace std::string_literals;  // "\0" inside literals needs the length-aware ""s

// An in-memory user database that can be told to fail like an unreadable file.
class fake_passdb final : public passdb {
public:
    explicit fake_passdb(std::map<std::string, std::string, std::less<>> users) : users_(std::move(users)) {}

    result<std::optional<stored_credential>, temp_error> lookup(std::string_view user) override {
        if (fail) {
            return unexpected(temp_error{"fake database down"});
        }
        const auto it = users_.find(user);
        if (it == users_.end()) {
            return std::optional<stored_credential>{};
        }
        return std::optional<stored_credential>(stored_credential{it->first, util::secret_string(it->second), nullptr});
    }
    std::optional<std::optional<stored_credential>> try_lookup_cached(std::string_view user) override {
        auto found = lookup(user);
        if (!found) {
            return std::nullopt;
        }
        return std::move(found.value());
    }
    std::string timing_dummy() const override { return dummy; }

    bool fail = false;
    std::string dummy = "{PLAIN}dummy-never-matches-anything-0123456789";

private:
    std::map<std::string, std::string, std::less<>> users_;
};

// Records which stored strings were verified, to prove unknown users cost a verification.
struct recording_verifier {
    std::shared_ptr<std::mutex> mu = std::make_shared<std::mutex>();
    std::shared_ptr<std::vector<std::string>> calls = std::make_shared<std::vector<std::string>>();
    verify_status operator()(std::string_view stored, std::string_view password) const {
        {
            const std::lock_guard lock(*mu);
            calls->emplace_back(stored);
        }
        return check_password(stored, password);
    }
};

class Sasl : public ::testing::Test {
protected:
    Sasl()
        : db_(std::make_shared<fake_passdb>(std::map<std::string, std::string, std::less<>>{
              {"alice", "{PLAIN}secret"},
              {"mrose", "{PLAIN}tanstaaf"},
              {"clear", "{CLEAR}open sesame"},
              {"hashed", "{SHA256-CRYPT}$5$rounds=10000$saltstringsaltst$3xv.VbSHBb41AL9AvLeujZkZRBAwqFMz2.opqey6IcA"},
              {"weird", "{SSHA256}abcdef"},
              {"nopass", ""},
              {"emptyplain", "{PLAIN}"},
          })),
          auth_(db_, verifier_) {}

    // Runs a whole exchange: every response in turn; the last step must finish it.
    outcome run(sasl_mechanism& mech, const std::vector<std::string>& responses) {
        for (std::size_t i = 0; i < responses.size(); ++i) {
            auto r = mech.step(responses[i]);
            if (r.done) {
                EXPECT_EQ(i + 1, responses.size()) << "finished early";
                return r.result;
            }
        }
        ADD_FAILURE() << "exchange not finished";
        return {};
    }
    outcome plain(const std::string& message) {
        auto mech = auth_.start("PLAIN");
        return run(*mech, {message});
    }
    outcome apop(std::string_view timestamp, const std::string& response) {
        auto mech = auth_.start_apop(std::string(timestamp));
        return run(*mech, {response});
    }

    std::shared_ptr<fake_passdb> db_;
    recording_verifier verifier_;
    passdb_authenticator auth_;
};

void expect_failure(const outcome& o, std::string_view user, std::string_view reason) {
    EXPECT_EQ(o.result, verdict::failure);
    EXPECT_EQ(o.user, user);
    EXPECT_EQ(o.log_reason, reason);
}

TEST_F(Sasl, PlainFinishesWithoutBlockingOnlyOnACachedSuccess) {
    passdb_authenticator cached(db_, verifier_, std::make_shared<verification_cache>(verification_cache_options{}));
    using namespace std::string_literals;
    const std::string good = "\0alice\0secret"s;

    // Not verified yet: nothing is consumed, and step() (on the worker pool) does the work.
    auto first = cached.start("PLAIN");
    EXPECT_FALSE(first->try_step_without_blocking(good));
    const auto r = first->step(good);
    ASSERT_TRUE(r.done);
    EXPECT_EQ(r.result.result, verdict::success);
    EXPECT_EQ(verifier_.calls->size(), 1u);

    // Verified within the TTL: the next login finishes at once, with no hash.
    auto second = cached.start("PLAIN");
    const auto quick = second->try_step_without_blocking(good);
    ASSERT_TRUE(quick);
    EXPECT_TRUE(quick->done);
    EXPECT_EQ(quick->result.result, verdict::success);
    EXPECT_EQ(quick->result.user, "alice");
    EXPECT_EQ(verifier_.calls->size(), 1u);
    // The exchange is over, as after step().
    expect_failure(second->step(good).result, "", "PLAIN exchange already finished");
    EXPECT_FALSE(second->try_step_without_blocking(good));

    // Refusals never finish early: malformed, proxy authorization, a wrong password, an unknown
    // user, a database that cannot answer. Each goes to step() and its full cost.
    for (const std::string& response : {"alice\0secret"s, "bob\0alice\0secret"s, "\0alice\0guess"s,
                                        "\0nobody\0secret"s, "\0alice\0"s}) {
        auto mech = cached.start("PLAIN");
        EXPECT_FALSE(mech->try_step_without_blocking(response)) << response;
    }
    db_->fail = true;
    EXPECT_FALSE(cached.start("PLAIN")->try_step_without_blocking(good));
    EXPECT_EQ(verifier_.calls->size(), 1u);
}

TEST_F(Sasl, MechanismListAndLookup) {
    const auto mechs = auth_.mechanisms();
    ASSERT_EQ(mechs.size(), 2u);
    EXPECT_EQ(mechs[0].name, "PLAIN");
    EXPECT_TRUE(mechs[0].sends_plaintext);
    EXPECT_EQ(mechs[1].name, "LOGIN");
    EXPECT_TRUE(mechs[1].sends_plaintext);
    EXPECT_NE(auth_.start("plain"), nullptr);
    EXPECT_NE(auth_.start("Login"), nullptr);
    EXPECT_EQ(auth_.start("CRAM-MD5"), nullptr);
    EXPECT_EQ(auth_.start("PLAINX"), nullptr);
    EXPECT_EQ(auth_.start(""), nullptr);
}

TEST_F(Sasl, PlainGood) {
    const outcome o = plain("\0alice\0secret"s);
    EXPECT_EQ(o.result, verdict::success);
    EXPECT_EQ(o.user, "alice");
    EXPECT_EQ(o.log_reason, "");
}

TEST_F(Sasl, PlainIsClientFirst) {
    auto mech = auth_.start("PLAIN");
    EXPECT_EQ(mech->initial_challenge(), "");  // the core sends "+ " and passes the answer to step()
    const auto first = mech->step("\0alice\0secret"s);
    ASSERT_TRUE(first.done);
    EXPECT_EQ(first.result.result, verdict::success);
    // Nothing more after the exchange finished.
    const auto second = mech->step("\0alice\0secret"s);
    EXPECT_TRUE(second.done);
    EXPECT_EQ(second.result.result, verdict::failure);
}

TEST_F(Sasl, PlainBadPasswordAndUnknownUser) {
    expect_failure(plain("\0alice\0Secret"s), "alice", "password mismatch");
    expect_failure(plain("\0mallory\0secret"s), "mallory", "unknown user");
}

TEST_F(Sasl, PlainAuthzidRules) {
    const outcome same = plain("alice\0alice\0secret"s);
    EXPECT_EQ(same.result, verdict::success);
    EXPECT_EQ(same.user, "alice");
    expect_failure(plain("mrose\0alice\0secret"s), "alice", "proxy authorization not allowed");
}

TEST_F(Sasl, PlainMalformed) {
    const std::string two_nuls = "malformed PLAIN response: expected [authzid] NUL authcid NUL passwd";
    expect_failure(plain(""), "", two_nuls);  // "AUTH PLAIN =": an empty initial response
    expect_failure(plain("alice secret"), "", two_nuls);
    expect_failure(plain("\0alice"s), "", two_nuls);
    expect_failure(plain("\0alice\0secret\0more"s), "alice", "malformed PLAIN response: more than two NUL separators");
    expect_failure(plain("\0\0secret"s), "", "malformed PLAIN response: empty authentication identity");
    expect_failure(plain("\0alice\0"s), "alice", "malformed PLAIN response: empty password");
    expect_failure(plain("\0alice\0"s + std::string(256, 'x')), "alice",
                   "malformed PLAIN response: field longer than 255 octets");
    EXPECT_EQ(plain("\0alice\0"s + std::string(255, 'x')).log_reason, "password mismatch");
}

TEST_F(Sasl, PlainTemporaryFailure) {
    db_->fail = true;
    const outcome o = plain("\0alice\0secret"s);
    EXPECT_EQ(o.result, verdict::temporary_failure);
    EXPECT_EQ(o.user, "alice");
    EXPECT_EQ(o.log_reason, "user database unavailable: fake database down");
}

TEST_F(Sasl, UnknownUserIsVerifiedAgainstTheDummy) {
    verifier_.calls->clear();
    expect_failure(plain("\0mallory\0secret"s), "mallory", "unknown user");
    ASSERT_EQ(verifier_.calls->size(), 1u);
    EXPECT_EQ(verifier_.calls->front(), db_->dummy);

    verifier_.calls->clear();
    expect_failure(plain("\0alice\0wrong"s), "alice", "password mismatch");
    ASSERT_EQ(verifier_.calls->size(), 1u);
    EXPECT_EQ(verifier_.calls->front(), "{PLAIN}secret");
}

TEST_F(Sasl, UnverifiableAccountsAlsoPayForTheDummy) {
    verifier_.calls->clear();
    expect_failure(plain("\0weird\0abcdef"s), "weird", "cannot verify stored password: unsupported password scheme");
    ASSERT_EQ(verifier_.calls->size(), 2u);
    EXPECT_EQ(verifier_.calls->back(), db_->dummy);

    verifier_.calls->clear();
    expect_failure(plain("\0nopass\0x"s), "nopass", "account has no password");
    ASSERT_EQ(verifier_.calls->size(), 2u);
    EXPECT_EQ(verifier_.calls->back(), db_->dummy);
}

TEST_F(Sasl, PlainAgainstAHashedAccount) {
    EXPECT_EQ(plain("\0hashed\0Hello world!"s).result, verdict::success);
    expect_failure(plain("\0hashed\0Hello world"s), "hashed", "password mismatch");
}

TEST_F(Sasl, LoginTakesTheUserWithoutBlockingAndOnlyACachedPassword) {
    passdb_authenticator cached(db_, verifier_, std::make_shared<verification_cache>(verification_cache_options{}));
    verifier_.calls->clear();

    // The user name step never needs the pool.
    auto first = cached.start("LOGIN");
    const auto user = first->try_step_without_blocking("alice");
    ASSERT_TRUE(user);
    EXPECT_FALSE(user->done);
    EXPECT_EQ(user->challenge, "Password:");
    // Not cached yet: the password goes to step().
    EXPECT_FALSE(first->try_step_without_blocking("secret"));
    const auto verified = first->step("secret");
    ASSERT_TRUE(verified.done);
    EXPECT_EQ(verified.result.result, verdict::success);
    EXPECT_EQ(verifier_.calls->size(), 1u);

    auto second = cached.start("LOGIN");
    ASSERT_TRUE(second->try_step_without_blocking("alice"));
    const auto quick = second->try_step_without_blocking("secret");
    ASSERT_TRUE(quick);
    EXPECT_TRUE(quick->done);
    EXPECT_EQ(quick->result.result, verdict::success);
    EXPECT_EQ(quick->result.user, "alice");
    EXPECT_EQ(verifier_.calls->size(), 1u);
    EXPECT_FALSE(second->try_step_without_blocking("secret"));  // finished

    // A wrong or overlong password never finishes early.
    auto third = cached.start("LOGIN");
    ASSERT_TRUE(third->try_step_without_blocking("alice"));
    EXPECT_FALSE(third->try_step_without_blocking("guess"));
    EXPECT_FALSE(third->try_step_without_blocking(std::string(256, 'x')));
    expect_failure(third->step("guess").result, "alice", "password mismatch");
}

TEST_F(Sasl, LoginTwoSteps) {
    auto mech = auth_.start("LOGIN");
    EXPECT_EQ(mech->initial_challenge(), "Username:");
    auto r = mech->step("alice");
    ASSERT_FALSE(r.done);
    EXPECT_EQ(r.challenge, "Password:");
    r = mech->step("secret");
    ASSERT_TRUE(r.done);
    EXPECT_EQ(r.result.result, verdict::success);
    EXPECT_EQ(r.result.user, "alice");
    r = mech->step("secret");
    EXPECT_TRUE(r.done);
    EXPECT_EQ(r.result.result, verdict::failure);
}

TEST_F(Sasl, LoginFailures) {
    auto wrong = auth_.start("LOGIN");
    expect_failure(run(*wrong, {"alice", "nope"}), "alice", "password mismatch");
    auto unknown = auth_.start("LOGIN");
    expect_failure(run(*unknown, {"mallory", "secret"}), "mallory", "unknown user");
    // An empty stored PLAIN secret must not make an empty password work.
    auto empty_password = auth_.start("LOGIN");
    expect_failure(run(*empty_password, {"emptyplain", ""}), "emptyplain", "empty password");
    auto empty_user = auth_.start("LOGIN");
    expect_failure(run(*empty_user, {""}), "", "LOGIN: empty user name");
    db_->fail = true;
    auto down = auth_.start("LOGIN");
    EXPECT_EQ(run(*down, {"alice", "secret"}).result, verdict::temporary_failure);
}

std::string md5_hex(std::string_view data) {
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int len = 0;
    EXPECT_EQ(EVP_Digest(data.data(), data.size(), md, &len, EVP_md5(), nullptr), 1);
    std::string out;
    for (unsigned int i = 0; i < len; ++i) {
        char hex[3];
        std::snprintf(hex, sizeof hex, "%02x", md[i]);
        out += hex;
    }
    return out;
}

constexpr std::string_view rfc1939_timestamp = "<1896.697170952@dbc.mtview.ca.us>";

TEST_F(Sasl, ApopRfc1939Example) {
    // RFC 1939 §7's example exchange, byte for byte.
    ASSERT_EQ(md5_hex(std::string(rfc1939_timestamp) + "tanstaaf"), "c4c9334bac560ecc979e58001b3e22fb");
    const outcome o = apop(rfc1939_timestamp, "mrose c4c9334bac560ecc979e58001b3e22fb");
    EXPECT_EQ(o.result, verdict::success);
    EXPECT_EQ(o.user, "mrose");
    EXPECT_EQ(apop(rfc1939_timestamp, "mrose C4C9334BAC560ECC979E58001B3E22FB").result, verdict::success);
}

TEST_F(Sasl, ApopWithClearSecretAndOtherTimestamp) {
    const std::string ts = "<4711.1234567890@pop.example.org>";
    EXPECT_EQ(apop(ts, "clear " + md5_hex(ts + "open sesame")).result, verdict::success);
    // The digest of another banner's timestamp is a replay.
    expect_failure(apop(ts, "mrose c4c9334bac560ecc979e58001b3e22fb"), "mrose", "APOP digest mismatch");
}

TEST_F(Sasl, ApopFailures) {
    expect_failure(apop(rfc1939_timestamp, "mrose c4c9334bac560ecc979e58001b3e22fc"), "mrose", "APOP digest mismatch");
    const std::string hashed_digest = md5_hex(std::string(rfc1939_timestamp) + "Hello world!");
    expect_failure(apop(rfc1939_timestamp, "hashed " + hashed_digest), "hashed", "APOP needs a PLAIN secret");
    expect_failure(apop(rfc1939_timestamp, "nobody c4c9334bac560ecc979e58001b3e22fb"), "nobody", "unknown user");
    // Users APOP cannot check are compared against a stand-in secret; knowing it lets nobody in.
    const std::string dummy_digest = md5_hex(std::string(rfc1939_timestamp) + "poplar-apop-dummy-secret");
    expect_failure(apop(rfc1939_timestamp, "hashed " + dummy_digest), "hashed", "APOP needs a PLAIN secret");
    expect_failure(apop(rfc1939_timestamp, "nobody " + dummy_digest), "nobody", "unknown user");
    expect_failure(apop(rfc1939_timestamp, "mrose"), "mrose", "malformed APOP response: expected name SP digest");
    expect_failure(apop(rfc1939_timestamp, " c4c9334bac560ecc979e58001b3e22fb"), "",
                   "malformed APOP response: expected name SP digest");
    expect_failure(apop(rfc1939_timestamp, "mrose c4c9334bac560ecc979e58001b3e22f"), "mrose",
                   "malformed APOP response: digest is not 32 hex digits");
    expect_failure(apop(rfc1939_timestamp, "mrose c4c9334bac560ecc979e58001b3e22fg"), "mrose",
                   "malformed APOP response: digest is not 32 hex digits");
    expect_failure(apop(rfc1939_timestamp, "mrose  c4c9334bac560ecc979e58001b3e22fb"), "mrose",
                   "malformed APOP response: digest is not 32 hex digits");
    expect_failure(apop("", "mrose c4c9334bac560ecc979e58001b3e22fb"), "mrose", "APOP without a banner timestamp");
    db_->fail = true;
    EXPECT_EQ(apop(rfc1939_timestamp, "mrose c4c9334bac560ecc979e58001b3e22fb").result, verdict::temporary_failure);
}

TEST_F(Sasl, ApopIsOneStep) {
    auto mech = auth_.start_apop(std::string(rfc1939_timestamp));
    auto r = mech->step("mrose c4c9334bac560ecc979e58001b3e22fb");
    ASSERT_TRUE(r.done);
    EXPECT_EQ(r.result.result, verdict::success);
    r = mech->step("mrose c4c9334bac560ecc979e58001b3e22fb");
    EXPECT_TRUE(r.done);
    EXPECT_EQ(r.result.result, verdict::failure);
}

}  // namespace
}  // namespace poplar::auth
