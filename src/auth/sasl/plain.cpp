// The PLAIN SASL mechanism (RFC 4616); also what USER/PASS is repacked into.
#include <cstddef>
#include <optional>
#include <variant>

#include "auth/sasl/mechanisms.h"

namespace poplar::auth::sasl {

namespace {

outcome failure(std::string_view user, std::string reason) {
    return outcome{verdict::failure, std::string(user), std::move(reason)};
}

struct credentials {
    std::string_view authcid;
    std::string_view passwd;
};

// message = [authzid] UTF8NUL authcid UTF8NUL passwd (RFC 4616 §2): the credentials to check, or
// why the message is refused before any check.
std::variant<credentials, outcome> parse(std::string_view message) {
    const auto nul1 = message.find('\0');
    const auto nul2 = nul1 == std::string_view::npos ? nul1 : message.find('\0', nul1 + 1);
    if (nul2 == std::string_view::npos) {
        return failure({}, "malformed PLAIN response: expected [authzid] NUL authcid NUL passwd");
    }
    const std::string_view authzid = message.substr(0, nul1);
    const std::string_view authcid = message.substr(nul1 + 1, nul2 - nul1 - 1);
    const std::string_view passwd = message.substr(nul2 + 1);
    if (passwd.find('\0') != std::string_view::npos) {
        return failure(authcid, "malformed PLAIN response: more than two NUL separators");
    }
    if (authcid.empty()) {
        return failure({}, "malformed PLAIN response: empty authentication identity");
    }
    if (passwd.empty()) {
        return failure(authcid, "malformed PLAIN response: empty password");
    }
    if (authzid.size() > max_field || authcid.size() > max_field || passwd.size() > max_field) {
        return failure(authcid.substr(0, max_field), "malformed PLAIN response: field longer than 255 octets");
    }
    // Acting as another user needs an authorization policy poplar does not have (RFC 4616 §2
    // leaves it to the server); an authzid equal to the authcid asks for nothing extra.
    if (!authzid.empty() && authzid != authcid) {
        return failure(authcid, "proxy authorization not allowed");
    }
    return credentials{authcid, passwd};
}

class plain_mechanism final : public sasl_mechanism {
public:
    explicit plain_mechanism(std::shared_ptr<const credential_checker> checker) : checker_(std::move(checker)) {}

    step_result step(std::string_view response) override {
        if (done_) {
            return {true, {}, failure({}, "PLAIN exchange already finished")};
        }
        // PLAIN is client-first: the core sends the (empty) initial_challenge() itself when the
        // client gave no initial response, so the first step always carries the message.
        done_ = true;
        auto parsed = parse(response);
        if (const auto* c = std::get_if<credentials>(&parsed)) {
            return {true, {}, checker_->check(c->authcid, c->passwd)};
        }
        return {true, {}, std::move(std::get<outcome>(parsed))};
    }

    std::optional<std::string> attempted_user(std::string_view response) const override {
        auto parsed = parse(response);
        if (const auto* c = std::get_if<credentials>(&parsed)) {
            return std::string(c->authcid);
        }
        return std::get<outcome>(parsed).user;
    }

    // Only a success from the verification cache finishes here; anything else, refusals
    // included, goes through step() on the worker pool with its full cost.
    std::optional<step_result> try_step_without_blocking(std::string_view response) override {
        if (done_) {
            return std::nullopt;
        }
        auto parsed = parse(response);
        const auto* c = std::get_if<credentials>(&parsed);
        if (c == nullptr) {
            return std::nullopt;
        }
        auto cached = checker_->check_cached(c->authcid, c->passwd);
        if (!cached) {
            return std::nullopt;
        }
        done_ = true;
        return step_result{true, {}, std::move(*cached)};
    }

private:
    std::shared_ptr<const credential_checker> checker_;
    bool done_ = false;
};

}  // namespace

std::unique_ptr<sasl_mechanism> make_plain(std::shared_ptr<const credential_checker> checker) {
    return std::make_unique<plain_mechanism>(std::move(checker));
}

}  // namespace poplar::auth::sasl
