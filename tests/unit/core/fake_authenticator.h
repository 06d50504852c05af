// Test double: an auth::authenticator over a fixed user table, with PLAIN, LOGIN and APOP.
//
// Default account: user "u", password "p" (a PLAIN secret, so APOP works too). Users listed in
// `hashed` have no PLAIN secret (APOP fails with "APOP needs a PLAIN secret", like the real one);
// `database_down` makes every verification a temporary failure; `unavailable` makes start()
// return nullptr. Every response a mechanism sees is recorded, so tests can assert the exact
// bytes the session hands over (e.g. USER/PASS repacked as PLAIN "\0u\0p").
#pragma once

#include <openssl/evp.h>

#include <array>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "auth/authenticator.h"
#include "util/text.h"

namespace poplar::test {

inline std::string md5_hex(std::string_view data) {
    std::array<unsigned char, EVP_MAX_MD_SIZE> md{};
    unsigned int len = 0;
    EVP_Digest(data.data(), data.size(), md.data(), &len, EVP_md5(), nullptr);
    static constexpr char digits[] = "0123456789abcdef";
    std::string out;
    for (unsigned int i = 0; i < len; ++i) {
        out += digits[md[i] >> 4];
        out += digits[md[i] & 0x0F];
    }
    return out;
}

class fake_authenticator final : public auth::authenticator {
public:
    std::vector<auth::mechanism_info> mechs{{"PLAIN", true}, {"LOGIN", true}};
    std::map<std::string, std::string, std::less<>> users{{"u", "p"}};
    std::set<std::string, std::less<>> hashed;
    bool database_down = false;
    bool unavailable = false;
    std::vector<std::string> responses;  // every client response any mechanism received
    std::vector<std::string> started;    // mechanism names passed to start(), "APOP <ts>" for APOP

    std::vector<auth::mechanism_info> mechanisms() const override { return mechs; }

    std::unique_ptr<auth::sasl_mechanism> start(std::string_view name) override {
        started.emplace_back(name);
        if (unavailable) {
            return nullptr;
        }
        if (util::iequals(name, "PLAIN")) {
            return std::make_unique<plain>(*this);
        }
        if (util::iequals(name, "LOGIN")) {
            return std::make_unique<login>(*this);
        }
        return nullptr;
    }

    std::unique_ptr<auth::sasl_mechanism> start_apop(std::string timestamp) override {
        started.push_back("APOP " + timestamp);
        if (unavailable) {
            return nullptr;
        }
        return std::make_unique<apop>(*this, std::move(timestamp));
    }

    auth::outcome verify(std::string_view user, std::string_view password) const {
        if (database_down) {
            return {auth::verdict::temporary_failure, std::string(user), "database down"};
        }
        auto it = users.find(user);
        if (it == users.end()) {
            return {auth::verdict::failure, std::string(user), "unknown user"};
        }
        if (it->second != password) {
            return {auth::verdict::failure, std::string(user), "password mismatch"};
        }
        return {auth::verdict::success, std::string(user), {}};
    }

private:
    using step_result = auth::sasl_mechanism::step_result;

    // RFC 4616: [authzid] NUL authcid NUL passwd.
    class plain final : public auth::sasl_mechanism {
    public:
        explicit plain(fake_authenticator& a) : a_(a) {}
        step_result step(std::string_view r) override {
            a_.responses.emplace_back(r);
            const auto n1 = r.find('\0');
            const auto n2 = n1 == std::string_view::npos ? n1 : r.find('\0', n1 + 1);
            if (n2 == std::string_view::npos) {
                return {true, {}, {auth::verdict::failure, {}, "malformed PLAIN response"}};
            }
            const std::string_view authzid = r.substr(0, n1);
            const std::string_view user = r.substr(n1 + 1, n2 - n1 - 1);
            if (!authzid.empty() && authzid != user) {
                return {true, {}, {auth::verdict::failure, std::string(user), "authzid differs"}};
            }
            return {true, {}, a_.verify(user, r.substr(n2 + 1))};
        }

    private:
        fake_authenticator& a_;
    };

    // The LOGIN mechanism (draft-murchison-sasl-login): "Username:", then "Password:".
    class login final : public auth::sasl_mechanism {
    public:
        explicit login(fake_authenticator& a) : a_(a) {}
        std::string initial_challenge() const override { return "Username:"; }
        step_result step(std::string_view r) override {
            a_.responses.emplace_back(r);
            if (!have_user_) {
                have_user_ = true;
                user_ = std::string(r);
                return {false, "Password:", {}};
            }
            return {true, {}, a_.verify(user_, r)};
        }

    private:
        fake_authenticator& a_;
        bool have_user_ = false;
        std::string user_;
    };

    // RFC 1939 §7: "user digest", digest = MD5(timestamp + secret).
    class apop final : public auth::sasl_mechanism {
    public:
        apop(fake_authenticator& a, std::string ts) : a_(a), ts_(std::move(ts)) {}
        step_result step(std::string_view r) override {
            a_.responses.emplace_back(r);
            const auto sp = r.find(' ');
            const std::string user(r.substr(0, sp));
            if (a_.database_down) {
                return {true, {}, {auth::verdict::temporary_failure, user, "database down"}};
            }
            auto it = a_.users.find(user);
            if (sp == std::string_view::npos || it == a_.users.end() || a_.hashed.count(user) != 0) {
                return {true, {}, {auth::verdict::failure, user, "APOP needs a PLAIN secret"}};
            }
            if (r.substr(sp + 1) != md5_hex(ts_ + it->second)) {
                return {true, {}, {auth::verdict::failure, user, "APOP digest mismatch"}};
            }
            return {true, {}, {auth::verdict::success, user, {}}};
        }

    private:
        fake_authenticator& a_;
        std::string ts_;
    };
};

}  // namespace poplar::test
