// The LOGIN SASL mechanism (draft-murchison-sasl-login-00): user name and password in two steps.
#include <optional>

#include "auth/sasl/mechanisms.h"

namespace poplar::auth::sasl {

namespace {

class login_mechanism final : public sasl_mechanism {
public:
    explicit login_mechanism(std::shared_ptr<const credential_checker> checker) : checker_(std::move(checker)) {}

    // LOGIN is server-first: without an initial response the core sends this, and the user name
    // arrives in the first step(). The texts are the draft's; clients ignore them but some log them.
    std::string initial_challenge() const override { return "Username:"; }

    step_result step(std::string_view response) override {
        switch (state_) {
        case state::want_user:
            // Either the answer to "Username:" or an initial response ("AUTH LOGIN dXNlcg==").
            return take_user(response);
        case state::want_password:
            state_ = state::done;
            if (response.size() > max_field) {
                return finish(outcome{verdict::failure, user_, "LOGIN password longer than 255 octets"});
            }
            return finish(checker_->check(user_, response));
        case state::done:
            break;
        }
        return finish(outcome{verdict::failure, user_, "LOGIN exchange already finished"});
    }

    // The user name step verifies nothing; the password step is the attempt.
    std::optional<std::string> attempted_user(std::string_view response) const override {
        if (state_ == state::want_user) {
            if (response.empty() || response.size() > max_field) {
                return std::string(response.substr(0, max_field));  // refused at once: still an attempt
            }
            return std::nullopt;
        }
        return user_;
    }

    // Taking the user name never blocks; the password finishes here only as a success from the
    // verification cache (anything else goes to step() on the worker pool, at full cost).
    std::optional<step_result> try_step_without_blocking(std::string_view response) override {
        if (state_ == state::want_user) {
            return take_user(response);
        }
        if (state_ != state::want_password || response.size() > max_field) {
            return std::nullopt;
        }
        auto cached = checker_->check_cached(user_, response);
        if (!cached) {
            return std::nullopt;
        }
        state_ = state::done;
        return finish(std::move(*cached));
    }

private:
    enum class state { want_user, want_password, done };

    step_result take_user(std::string_view response) {
        if (response.empty() || response.size() > max_field) {
            state_ = state::done;
            return finish(outcome{verdict::failure, std::string(response.substr(0, max_field)),
                                  response.empty() ? "LOGIN: empty user name" : "LOGIN user name longer than 255 octets"});
        }
        user_ = std::string(response);
        state_ = state::want_password;
        return {false, "Password:", {}};
    }

    static step_result finish(outcome result) { return {true, {}, std::move(result)}; }

    std::shared_ptr<const credential_checker> checker_;
    std::string user_;
    state state_ = state::want_user;
};

}  // namespace

std::unique_ptr<sasl_mechanism> make_login(std::shared_ptr<const credential_checker> checker) {
    return std::make_unique<login_mechanism>(std::move(checker));
}

}  // namespace poplar::auth::sasl
