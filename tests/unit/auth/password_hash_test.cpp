// Tests for auth/password_hash: every scheme hashes and verifies, known vectors, malformed input.
#include "auth/password_hash.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <thread>
#include <vector>

namespace poplar::auth {
namespace {

// Cheap Argon2 parameters so the suite stays fast; the default parameters get one test of their own.
hash_params fast_params() {
    hash_params p;
    p.blf_cost = 4;
    p.sha_crypt_rounds = 1000;
    p.argon2_memory_kib = 1024;
    p.argon2_time_cost = 1;
    return p;
}

bool starts_with(std::string_view s, std::string_view prefix) { return s.substr(0, prefix.size()) == prefix; }

TEST(PasswordHash, ParseSchemeIsCaseInsensitiveAndKnowsClear) {
    EXPECT_EQ(parse_scheme("SHA512-CRYPT"), scheme::sha512_crypt);
    EXPECT_EQ(parse_scheme("sha512-crypt"), scheme::sha512_crypt);
    EXPECT_EQ(parse_scheme("SHA256-CRYPT"), scheme::sha256_crypt);
    EXPECT_EQ(parse_scheme("BLF-CRYPT"), scheme::blf_crypt);
    EXPECT_EQ(parse_scheme("CRYPT"), scheme::crypt);
    EXPECT_EQ(parse_scheme("ARGON2ID"), scheme::argon2id);
    EXPECT_EQ(parse_scheme("argon2i"), scheme::argon2i);
    EXPECT_EQ(parse_scheme("PLAIN"), scheme::plain);
    EXPECT_EQ(parse_scheme("CLEAR"), scheme::plain);
    EXPECT_EQ(parse_scheme("SSHA256"), std::nullopt);
    EXPECT_EQ(parse_scheme(""), std::nullopt);
}

TEST(PasswordHash, SchemeNamesRoundTrip) {
    const auto names = scheme_names();
    ASSERT_FALSE(names.empty());
    EXPECT_EQ(names.front(), "ARGON2ID");
    for (const auto name : names) {
        const auto s = parse_scheme(name);
        ASSERT_TRUE(s.has_value()) << name;
        if (name != "CLEAR") {
            EXPECT_EQ(scheme_name(*s), name);
        }
    }
}

class EveryScheme : public ::testing::TestWithParam<scheme> {};

TEST_P(EveryScheme, HashThenVerify) {
    const auto hashed = hash_password(GetParam(), "correct horse", fast_params());
    ASSERT_TRUE(hashed.has_value()) << hashed.error();
    EXPECT_TRUE(starts_with(*hashed, "{" + std::string(scheme_name(GetParam())) + "}")) << *hashed;
    EXPECT_EQ(check_password(*hashed, "correct horse"), verify_status::match) << *hashed;
    EXPECT_EQ(check_password(*hashed, "correct horsf"), verify_status::mismatch);
    EXPECT_EQ(check_password(*hashed, ""), verify_status::mismatch);
    EXPECT_TRUE(verify_password(*hashed, "correct horse"));
    EXPECT_FALSE(verify_password(*hashed, "Correct horse"));
}

TEST_P(EveryScheme, SaltsDifferExceptForPlain) {
    const auto a = hash_password(GetParam(), "same", fast_params());
    const auto b = hash_password(GetParam(), "same", fast_params());
    ASSERT_TRUE(a.has_value() && b.has_value());
    if (GetParam() == scheme::plain) {
        EXPECT_EQ(*a, "{PLAIN}same");
        EXPECT_EQ(*a, *b);
    } else {
        EXPECT_NE(*a, *b);
    }
}

INSTANTIATE_TEST_SUITE_P(All, EveryScheme,
                         ::testing::Values(scheme::sha512_crypt, scheme::sha256_crypt, scheme::blf_crypt,
                                           scheme::crypt, scheme::argon2id, scheme::argon2i, scheme::plain));

TEST(PasswordHash, DefaultParametersAreWrittenAsDocumented) {
    const auto sha = hash_password(scheme::sha512_crypt, "pw");
    ASSERT_TRUE(sha.has_value());
    EXPECT_TRUE(starts_with(*sha, "{SHA512-CRYPT}$6$")) << *sha;
    EXPECT_EQ(sha->find("rounds="), std::string::npos) << "5000 rounds is written implicitly";

    const auto blf = hash_password(scheme::blf_crypt, "pw");
    ASSERT_TRUE(blf.has_value());
    EXPECT_TRUE(starts_with(*blf, "{BLF-CRYPT}$2y$10$")) << *blf;
    EXPECT_TRUE(verify_password(*blf, "pw"));

    const auto argon = hash_password(scheme::argon2id, "pw");
    ASSERT_TRUE(argon.has_value());
    EXPECT_TRUE(starts_with(*argon, "{ARGON2ID}$argon2id$v=19$m=65536,t=3,p=1$")) << *argon;
    EXPECT_TRUE(verify_password(*argon, "pw"));
}

TEST(PasswordHash, ExplicitRoundsAreWritten) {
    hash_params p;
    p.sha_crypt_rounds = 10000;
    const auto sha = hash_password(scheme::sha256_crypt, "pw", p);
    ASSERT_TRUE(sha.has_value());
    EXPECT_TRUE(starts_with(*sha, "{SHA256-CRYPT}$5$rounds=10000$")) << *sha;
    EXPECT_TRUE(verify_password(*sha, "pw"));
}

TEST(PasswordHash, BadParametersAreErrors) {
    hash_params p;
    p.sha_crypt_rounds = 10;
    EXPECT_FALSE(hash_password(scheme::sha512_crypt, "pw", p).has_value());
    p = {};
    p.blf_cost = 3;
    EXPECT_FALSE(hash_password(scheme::blf_crypt, "pw", p).has_value());
    p = {};
    p.argon2_memory_kib = 1;  // below Argon2's minimum of 8 KiB per lane
    EXPECT_FALSE(hash_password(scheme::argon2id, "pw", p).has_value());
}

TEST(PasswordHash, UnstorablePasswordsAreErrors) {
    EXPECT_FALSE(hash_password(scheme::plain, "a:b").has_value());
    EXPECT_FALSE(hash_password(scheme::plain, "a\nb").has_value());
    EXPECT_FALSE(hash_password(scheme::sha512_crypt, std::string_view("a\0b", 3), fast_params()).has_value());
}

// openssl passwd -6 -salt pOpLaRsAlT 'correct horse' (and -5, -1).
TEST(PasswordHash, OpensslVectors) {
    EXPECT_EQ(check_password("{SHA512-CRYPT}$6$pOpLaRsAlT$mKt4e5gYlRK7WhojpVnS3nIu2qF1P3vq7XiNXnQ6CiK05DTMwTZC0yzvirYZ"
                             "MZC6ypX1fQgff6tTfZvRPKr8X/",
                             "correct horse"),
              verify_status::match);
    EXPECT_EQ(check_password("{SHA256-CRYPT}$5$pOpLaRsAlT$Gt7ydPkKsy832T4EkfitF1NHj3PnUR2/4HolOeMonN1", "correct horse"),
              verify_status::match);
    EXPECT_EQ(check_password("{SHA256-CRYPT}$5$pOpLaRsAlT$Gt7ydPkKsy832T4EkfitF1NHj3PnUR2/4HolOeMonN1", "wrong"),
              verify_status::mismatch);
    // MD5-crypt, only through CRYPT / no prefix.
    EXPECT_EQ(check_password("$1$pOpLaRsA$7u/dVns0TJAn/TxWDTWKs0", "correct horse"), verify_status::match);
    EXPECT_EQ(check_password("{CRYPT}$1$pOpLaRsA$7u/dVns0TJAn/TxWDTWKs0", "correct horse"), verify_status::match);
    EXPECT_EQ(check_password("{CRYPT}$1$pOpLaRsA$7u/dVns0TJAn/TxWDTWKs0", "correct horsE"), verify_status::mismatch);
}

// Ulrich Drepper's SHA-crypt specification test vectors.
TEST(PasswordHash, ShaCryptSpecificationVectors) {
    EXPECT_EQ(check_password("{SHA512-CRYPT}$6$rounds=10000$saltstringsaltst$OW1/O6BYHV6BcXZu8QVeXbDWra3Oeqh0sbHbbMC"
                             "VNSnCM/UrjmM0Dp8vOuZeHBy/YTBmSK6H9qs/y3RnOaw5v.",
                             "Hello world!"),
              verify_status::match);
    EXPECT_EQ(check_password("{SHA256-CRYPT}$5$rounds=10000$saltstringsaltst$3xv.VbSHBb41AL9AvLeujZkZRBAwqFMz2.opqey6IcA",
                             "Hello world!"),
              verify_status::match);
    EXPECT_EQ(check_password("$6$rounds=5000$toolongsaltstrin$lQ8jolhgVRVhY4b5pZKaysCLi0QBxGoNeKQzQ3glMhwllF7oGDZxUhx1"
                             "yxdYcz/e1JSbq3y6JMxxl8audkUEm0",
                             "This is just a test"),
              verify_status::match);
}

// Openwall crypt_blowfish test vectors ("U*U"), in all three accepted prefixes.
TEST(PasswordHash, BcryptVectors) {
    for (const char* prefix : {"$2a$", "$2b$", "$2y$"}) {
        const std::string stored = std::string("{BLF-CRYPT}") + prefix + "05$CCCCCCCCCCCCCCCCCCCCC.E5YPO9kmyuRGyh0XouQYb4YMJKvyOeW";
        EXPECT_EQ(check_password(stored, "U*U"), verify_status::match) << stored;
        EXPECT_EQ(check_password(stored, "U*U*"), verify_status::mismatch) << stored;
    }
    EXPECT_EQ(check_password("{BLF-CRYPT}$2a$05$CCCCCCCCCCCCCCCCCCCCC.VGOzA784oUp/Z0DY336zx7pLYAy0lwK", "U*U*"),
              verify_status::match);
}

// The reference implementation's own test vectors (argon2/src/test.c) and one made with libargon2.
TEST(PasswordHash, Argon2Vectors) {
    EXPECT_EQ(check_password("{ARGON2I}$argon2i$v=19$m=65536,t=2,p=1$c29tZXNhbHQ$wWKIMhR9lyDFvRz9YTZweHKfbftvj+qf+YFY4NeBbtA",
                             "password"),
              verify_status::match);
    EXPECT_EQ(check_password("{ARGON2ID}$argon2id$v=19$m=65536,t=2,p=1$c29tZXNhbHQ$CTFhFdXPJO1aFaMaO6Mm5c8y7cJHAph8ArZWb2GRPPc",
                             "password"),
              verify_status::match);
    const std::string mine = "{ARGON2ID}$argon2id$v=19$m=1024,t=3,p=1$cG9wbGFyc2FsdHNhbHQhIQ$LTXIKHn4EAr/JEI8rppbSxwaC1UTryn8FRRc4vgp9pU";
    EXPECT_EQ(check_password(mine, "correct horse"), verify_status::match);
    EXPECT_EQ(check_password(mine, "correct horse "), verify_status::mismatch);
    // Label and data must agree.
    EXPECT_EQ(check_password("{ARGON2I}" + mine.substr(10), "correct horse"), verify_status::malformed_hash);
}

// libxcrypt's default method (yescrypt), stored without a prefix as in /etc/shadow.
TEST(PasswordHash, YescryptViaCryptAutodetect) {
    const std::string stored = "$y$j9T$k2XAnEHBqQ1Ct2aMXFKNa/$Ry7oZ9ThqkDutyuKduodO92iRCkOPEVA3D3cGUEN1J1";
    EXPECT_EQ(check_password(stored, "correct horse"), verify_status::match);
    EXPECT_EQ(check_password("{CRYPT}" + stored, "correct horse"), verify_status::match);
    EXPECT_EQ(check_password(stored, "incorrect horse"), verify_status::mismatch);
}

TEST(PasswordHash, PlainAndClear) {
    EXPECT_EQ(check_password("{PLAIN}tanstaaf", "tanstaaf"), verify_status::match);
    EXPECT_EQ(check_password("{CLEAR}tanstaaf", "tanstaaf"), verify_status::match);
    EXPECT_EQ(check_password("{clear}tanstaaf", "tanstaaf"), verify_status::match);
    EXPECT_EQ(check_password("{PLAIN}tanstaaf", "tanstaa"), verify_status::mismatch);
    EXPECT_EQ(check_password("{PLAIN}tanstaaf", "tanstaaff"), verify_status::mismatch);
    EXPECT_EQ(check_password("{PLAIN}", ""), verify_status::match);
    EXPECT_EQ(plain_secret("{CLEAR}tanstaaf"), "tanstaaf");
    EXPECT_EQ(plain_secret("{PLAIN}x}y"), "x}y");
    EXPECT_EQ(plain_secret("{SHA512-CRYPT}$6$x$y"), std::nullopt);
    EXPECT_EQ(plain_secret("tanstaaf"), std::nullopt);
}

TEST(PasswordHash, UnknownSchemeFails) {
    EXPECT_EQ(check_password("{SSHA256}abcdef", "abcdef"), verify_status::unsupported_scheme);
    EXPECT_EQ(check_password("{}abcdef", "abcdef"), verify_status::unsupported_scheme);
    EXPECT_FALSE(verify_password("{SSHA256}abcdef", "abcdef"));
    EXPECT_EQ(describe(verify_status::unsupported_scheme), "unsupported password scheme");
}

TEST(PasswordHash, MalformedHashesFail) {
    EXPECT_EQ(check_password("{SHA512-CRYPT}$5$pOpLaRsAlT$Gt7ydPkKsy832T4EkfitF1NHj3PnUR2/4HolOeMonN1", "correct horse"),
              verify_status::malformed_hash);
    EXPECT_EQ(check_password("{CRYPT}", "x"), verify_status::malformed_hash);
    EXPECT_EQ(check_password("", "x"), verify_status::malformed_hash);
    EXPECT_EQ(check_password("!$6$x$y", "x"), verify_status::malformed_hash);  // shadow-style lock
    EXPECT_EQ(check_password("{ARGON2ID}$argon2id$v=19$m=1024,t=3", "x"), verify_status::malformed_hash);
    EXPECT_EQ(check_password("{BLF-CRYPT}$2y$99$CCCCCCCCCCCCCCCCCCCCC.E5YPO9kmyuRGyh0XouQYb4YMJKvyOeW", "U*U"),
              verify_status::malformed_hash);
}

TEST(PasswordHash, NulInPasswordNeverMatchesCrypt) {
    const auto hashed = hash_password(scheme::sha512_crypt, "secret", fast_params());
    ASSERT_TRUE(hashed.has_value());
    EXPECT_EQ(check_password(*hashed, std::string_view("secret\0junk", 11)), verify_status::mismatch);
    EXPECT_EQ(check_password("{PLAIN}secret", std::string_view("secret\0junk", 11)), verify_status::mismatch);
}

TEST(PasswordHash, CostFamily) {
    EXPECT_EQ(cost_family("{SHA512-CRYPT}$6$pOpLaRsAlT$mKt4"), "$6$");
    EXPECT_EQ(cost_family("$6$pOpLaRsAlT$mKt4"), "$6$");
    EXPECT_EQ(cost_family("{CRYPT}$6$rounds=10000$salt$hash"), "$6$rounds=10000$");
    EXPECT_EQ(cost_family("{BLF-CRYPT}$2y$10$CCCCCCCCCCCCCCCCCCCCC.E5YPO9kmyuRGyh0XouQYb4YMJKvyOeW"), "$2y$10$");
    EXPECT_EQ(cost_family("$y$j9T$k2XAnEHBqQ1Ct2aMXFKNa/$Ry7o"), "$y$j9T$");
    EXPECT_EQ(cost_family("{ARGON2ID}$argon2id$v=19$m=1024,t=3,p=1$c2FsdA$aGFzaA"), "$argon2id$v=19$m=1024,t=3,p=1$");
    EXPECT_EQ(cost_family("{PLAIN}x"), "plain");
    EXPECT_EQ(cost_family("abJnggxhB/yWI"), "des");
    EXPECT_EQ(cost_family("{SSHA}x"), "");
    EXPECT_EQ(cost_family("{SHA512-CRYPT}$5$x$y"), "");
}

TEST(PasswordHash, TimingDummyHasTheTemplatesCost) {
    const std::vector<std::string> templates = {
        "{SHA512-CRYPT}$6$pOpLaRsAlT$mKt4e5gYlRK7WhojpVnS3nIu2qF1P3vq7XiNXnQ6CiK05DTMwTZC0yzvirYZMZC6ypX1fQgff6tTfZvRPKr8X/",
        "$6$rounds=10000$saltstringsaltst$OW1/O6BYHV6BcXZu8QVeXbDWra3Oeqh0sbHbbMCVNSnCM/UrjmM0Dp8vOuZeHBy/YTBmSK6H9qs/y3RnOaw5v.",
        "{BLF-CRYPT}$2y$05$CCCCCCCCCCCCCCCCCCCCC.E5YPO9kmyuRGyh0XouQYb4YMJKvyOeW",
        "$y$j9T$k2XAnEHBqQ1Ct2aMXFKNa/$Ry7oZ9ThqkDutyuKduodO92iRCkOPEVA3D3cGUEN1J1",
        "{ARGON2ID}$argon2id$v=19$m=1024,t=3,p=1$cG9wbGFyc2FsdHNhbHQhIQ$LTXIKHn4EAr/JEI8rppbSxwaC1UTryn8FRRc4vgp9pU",
        "{ARGON2I}$argon2i$v=19$m=65536,t=2,p=1$c29tZXNhbHQ$wWKIMhR9lyDFvRz9YTZweHKfbftvj+qf+YFY4NeBbtA",
        "{PLAIN}tanstaaf",
    };
    for (const auto& t : templates) {
        const auto dummy = make_timing_dummy(t);
        ASSERT_TRUE(dummy.has_value()) << t << ": " << dummy.error();
        EXPECT_NE(*dummy, t);
        EXPECT_EQ(cost_family(*dummy), cost_family(t)) << *dummy;
        EXPECT_EQ(check_password(*dummy, "correct horse"), verify_status::mismatch) << *dummy;
    }
    EXPECT_FALSE(make_timing_dummy("{SSHA}abc").has_value());
    EXPECT_FALSE(make_timing_dummy("").has_value());
}

TEST(PasswordHash, ConcurrentVerificationFromFourThreads) {
    // One hash per crypt family; each thread checks right and wrong passwords many times. crypt_rn
    // and argon2 keep all state in per-call buffers, so results must never mix.
    std::vector<std::string> stored;
    for (const scheme s : {scheme::sha512_crypt, scheme::blf_crypt, scheme::crypt, scheme::argon2id, scheme::plain}) {
        const auto h = hash_password(s, "pw-" + std::string(scheme_name(s)), fast_params());
        ASSERT_TRUE(h.has_value());
        stored.push_back(*h);
    }
    std::atomic<int> errors{0};
    std::vector<std::thread> threads;
    for (int t = 0; t < 4; ++t) {
        threads.emplace_back([&, t] {
            for (int i = 0; i < 10; ++i) {
                const auto& h = stored[static_cast<std::size_t>(i + t) % stored.size()];
                const std::string name(h.substr(1, h.find('}') - 1));
                if (check_password(h, "pw-" + name) != verify_status::match) {
                    ++errors;
                }
                if (check_password(h, "pw-" + name + "x") != verify_status::mismatch) {
                    ++errors;
                }
            }
        });
    }
    for (auto& th : threads) {
        th.join();
    }
    EXPECT_EQ(errors.load(), 0);
}

}  // namespace
}  // namespace poplar::auth
