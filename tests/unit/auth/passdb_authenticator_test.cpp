// Tests for auth/passdb_authenticator over a real passwd-file: timing dummy, threads, temp errors.
#include "auth/passdb_authenticator.h"

#include <gtest/gtest.h>
#include <spdlog/spdlog.h>
#include <sys/stat.h>

#include <atomic>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <thread>
#include <vector>

#include "auth/passwd_file.h"
#include "auth/password_hash.h"

namespace poplar::auth {
namespace {

namespace fs = std::filesystem;
using namespace std::string_literals;

class PassdbAuthenticator : public ::testing::Test {
protected:
    void SetUp() override {
        std::string tmpl = (fs::path(::testing::TempDir()) / "poplar-authn-XXXXXX").string();
        ASSERT_NE(::mkdtemp(tmpl.data()), nullptr);
        dir_ = tmpl;
        path_ = dir_ / "passwd";

        hash_params fast;
        fast.sha_crypt_rounds = 1000;
        const auto alice = hash_password(scheme::sha512_crypt, "alice-pw", fast);
        const auto bob = hash_password(scheme::sha512_crypt, "bob-pw", fast);
        const auto carol = hash_password(scheme::blf_crypt, "carol-pw", hash_params{.blf_cost = 4});
        ASSERT_TRUE(alice.has_value() && bob.has_value() && carol.has_value());
        {
            std::ofstream out(path_);
            out << "alice:" << *alice << ":1000:1000::/home/alice:/bin/false\n"
                << "bob:" << *bob << "\n"
                << "carol:" << *carol << "\n"
                << "mrose:{PLAIN}tanstaaf\n";
        }
        ::chmod(path_.c_str(), 0600);
        auto loaded = passwd_file::load(path_);
        ASSERT_TRUE(loaded.has_value()) << loaded.error().front();
        db_ = std::make_shared<passwd_file>(std::move(*loaded));
    }
    void TearDown() override {
        std::error_code ec;
        fs::remove_all(dir_, ec);
    }

    static outcome plain(authenticator& auth, const std::string& user, const std::string& password) {
        auto mech = auth.start("PLAIN");
        auto r = mech->step("\0"s + user + "\0"s + password);
        EXPECT_TRUE(r.done);
        return r.result;
    }

    fs::path dir_;
    fs::path path_;
    std::shared_ptr<passwd_file> db_;
};

TEST_F(PassdbAuthenticator, LoginsAgainstTheFile) {
    passdb_authenticator auth(db_);
    EXPECT_EQ(plain(auth, "alice", "alice-pw").result, verdict::success);
    EXPECT_EQ(plain(auth, "carol", "carol-pw").result, verdict::success);
    EXPECT_EQ(plain(auth, "alice", "bob-pw").log_reason, "password mismatch");
    EXPECT_EQ(plain(auth, "Alice", "alice-pw").log_reason, "unknown user");
    auto apop = auth.start_apop("<1896.697170952@dbc.mtview.ca.us>");
    EXPECT_EQ(apop->step("mrose c4c9334bac560ecc979e58001b3e22fb").result.result, verdict::success);
}

// popa3d's rule, observed through the verifier hook rather than a stopwatch: an unknown user
// costs exactly one verification against the file's dummy, whose cost class is the file's most
// common one (SHA512-CRYPT, rounds=1000 here).
TEST_F(PassdbAuthenticator, UnknownUserRunsTheDummyHash) {
    std::mutex mu;
    std::vector<std::string> verified;
    std::atomic<int> scheme_work{0};
    passdb_authenticator auth(db_, [&](std::string_view stored, std::string_view password) {
        {
            const std::lock_guard lock(mu);
            verified.emplace_back(stored);
        }
        const verify_status status = check_password(stored, password);
        if (status == verify_status::match || status == verify_status::mismatch) {
            ++scheme_work;  // the scheme's verifier actually ran to a verdict
        }
        return status;
    });
    const outcome o = plain(auth, "mallory", "guess");
    EXPECT_EQ(o.result, verdict::failure);
    EXPECT_EQ(o.user, "mallory");
    EXPECT_EQ(o.log_reason, "unknown user");
    ASSERT_EQ(verified.size(), 1u);
    EXPECT_EQ(verified[0], db_->timing_dummy());
    EXPECT_EQ(scheme_work.load(), 1);
    EXPECT_EQ(cost_family(verified[0]), "$6$rounds=1000$");

    const outcome wrong = plain(auth, "alice", "guess");
    EXPECT_EQ(wrong.log_reason, "password mismatch");
    ASSERT_EQ(verified.size(), 2u);
    EXPECT_EQ(cost_family(verified[1]), cost_family(verified[0]));
    EXPECT_EQ(scheme_work.load(), 2);
}

TEST_F(PassdbAuthenticator, ConcurrentLoginsFromFourThreads) {
    passdb_authenticator auth(db_);
    std::atomic<int> errors{0};
    std::vector<std::thread> threads;
    for (int t = 0; t < 4; ++t) {
        threads.emplace_back([&, t] {
            for (int i = 0; i < 10; ++i) {
                const bool use_alice = (i + t) % 2 == 0;
                const std::string user = use_alice ? "alice" : "bob";
                const std::string pw = use_alice ? "alice-pw" : "bob-pw";
                const outcome good = plain(auth, user, pw);
                if (good.result != verdict::success || good.user != user) {
                    ++errors;
                }
                if (plain(auth, user, pw + "x").result != verdict::failure) {
                    ++errors;
                }
                if (plain(auth, "ghost" + std::to_string(t), pw).log_reason != "unknown user") {
                    ++errors;
                }
                auto login = auth.start("LOGIN");
                static_cast<void>(login->step(user));
                if (login->step(pw).result.result != verdict::success) {
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

TEST_F(PassdbAuthenticator, UnreadableFileIsATemporaryFailure) {
    passdb_authenticator auth(db_);
    fs::remove(path_);
    const outcome o = plain(auth, "alice", "alice-pw");
    EXPECT_EQ(o.result, verdict::temporary_failure);
    EXPECT_EQ(o.user, "alice");
    EXPECT_EQ(o.log_reason, "user database unavailable: " + path_.string() + ": cannot stat: No such file or directory");
    auto apop = auth.start_apop("<1896.697170952@dbc.mtview.ca.us>");
    EXPECT_EQ(apop->step("mrose c4c9334bac560ecc979e58001b3e22fb").result.result, verdict::temporary_failure);
}

}  // namespace
}  // namespace poplar::auth
