// weakness(): which stored hashes `poplar check` calls too cheap, and which it leaves alone.
#include "auth/password_hash.h"

#include <gtest/gtest.h>

namespace poplar::auth {
namespace {

TEST(weakness, cheap_schemes_and_low_costs) {
    EXPECT_EQ(weakness("{CRYPT}$1$ab$Wc5HnzmyyULfkeWnKpNQp/"), "MD5-CRYPT");
    EXPECT_EQ(weakness("abJnggxhB/yWI"), "DES crypt");
    EXPECT_EQ(weakness("{SHA512-CRYPT}$6$rounds=1000$saltsalt$w9KQdgZ0Ki6LoC1UHsgXGBQaO4XJhW7upynW4LSaoTX6YuFX0KIqzhQcvdJFwTJS."
                       "I2sYmby8LApILDV7m1xF/"),
              "SHA512-CRYPT with 1000 rounds (under 5000)");
    EXPECT_EQ(weakness("{BLF-CRYPT}$2y$05$abcdefghijklmnopqrstuuJ9bA1fZkYbZ.fhhkqkGjdxTAsmJ.Yza"), "bcrypt cost 5 (under 10)");
    EXPECT_EQ(weakness("{ARGON2ID}$argon2id$v=19$m=4096,t=1,p=1$c2FsdHNhbHQ$YWJjZGVmZ2hpamtsbW5vcHFyc3R1dnd4eXoxMjM0NTY"),
              "Argon2 with m=4096 KiB, t=1 (under OWASP's m=19456, t=2)");
}

TEST(weakness, what_poplar_pw_writes_is_not_weak) {
    for (scheme s : {scheme::sha512_crypt, scheme::sha256_crypt, scheme::blf_crypt, scheme::argon2id}) {
        auto h = hash_password(s, "a long enough password");
        ASSERT_TRUE(h) << h.error();
        EXPECT_EQ(weakness(*h), std::nullopt) << *h;
    }
    EXPECT_EQ(weakness("{PLAIN}secret"), std::nullopt);  // passwd_file warns about cleartext itself
    EXPECT_EQ(weakness("{SHA512-CRYPT}$6$rounds=5000$saltsalt$x"), std::nullopt);
}

}  // namespace
}  // namespace poplar::auth
