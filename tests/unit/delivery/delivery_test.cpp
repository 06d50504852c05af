// Tests the one delivery path (delivery/local_delivery.h), recipient lookup and trace headers,
// with a fake user database and a fake store that records what it was asked to store.
#include "delivery/local_delivery.h"

#include <gtest/gtest.h>

#include <map>

#include "core/message_encoder.h"
#include "delivery/recipient_lookup.h"
#include "delivery/trace_headers.h"

namespace poplar::delivery {
namespace {

class fake_users final : public auth::passdb {
public:
    std::map<std::string, std::shared_ptr<const auth::account_controls>> users;
    bool down = false;
    bool cached = true;
    std::vector<std::string> asked;

    result<std::optional<auth::stored_credential>, auth::temp_error> lookup(std::string_view user) override {
        asked.emplace_back(user);
        if (down) {
            return unexpected{auth::temp_error{"passwd-file unreadable"}};
        }
        auto it = users.find(std::string(user));
        if (it == users.end()) {
            return std::optional<auth::stored_credential>{};
        }
        return std::optional<auth::stored_credential>{auth::stored_credential{it->first, {}, it->second}};
    }
    std::optional<std::optional<auth::stored_credential>> try_lookup_cached(std::string_view user) override {
        if (!cached) {
            return std::nullopt;
        }
        auto r = lookup(user);
        return std::move(*r);
    }
    std::string timing_dummy() const override { return "{PLAIN}x"; }
};

class fake_store final : public storage::mail_delivery {
public:
    std::vector<std::pair<std::string, std::string>> stored;  // user, bytes
    std::vector<std::uint64_t> virtual_sizes;
    std::optional<storage::delivery_error> fail;
    storage::usage now;

    result<storage::delivery_receipt, storage::delivery_error> deliver(const storage::delivery_request& r) override {
        if (fail) {
            return unexpected{*fail};
        }
        if (!storage::fits(r.limits, now, r.message.size())) {
            return unexpected{storage::delivery_error{storage::delivery_errc::over_quota, "full"}};
        }
        stored.emplace_back(std::string(r.user), std::string(r.message));
        virtual_sizes.push_back(r.virtual_size);
        return storage::delivery_receipt{"id-" + std::to_string(stored.size()), {}};
    }
    result<storage::usage, storage::delivery_error> current_usage(std::string_view) override { return now; }
};

TEST(RecipientLookup, CandidatesAreExactThenLowerDomainThenWithoutDetail) {
    EXPECT_EQ(candidate_users("Alice@Example.ORG", ""),
              (std::vector<std::string>{"Alice@Example.ORG", "Alice@example.org"}));
    EXPECT_EQ(candidate_users("alice@example.org", ""), (std::vector<std::string>{"alice@example.org"}));
    EXPECT_EQ(candidate_users("alice+lists@Example.org", "+"),
              (std::vector<std::string>{"alice+lists@Example.org", "alice+lists@example.org", "alice@Example.org",
                                        "alice@example.org"}));
    EXPECT_EQ(candidate_users("alice+x", "+"), (std::vector<std::string>{"alice+x", "alice"}));
    // A local part that starts with the delimiter keeps it: "+x" has no user part to deliver to.
    EXPECT_EQ(candidate_users("+x@a", "+"), (std::vector<std::string>{"+x@a"}));
    EXPECT_EQ(candidate_users("bob-x@a", "+"), (std::vector<std::string>{"bob-x@a"}));
}

TEST(RecipientLookup, FindsTheCanonicalUserWithItsQuotaOrTheDefault) {
    fake_users db;
    auto controls = std::make_shared<auth::account_controls>();
    controls->quota_bytes = 1000;
    db.users["alice@example.org"] = controls;
    db.users["bob@example.org"] = nullptr;
    config::delivery_settings settings;
    settings.quota_bytes = 5000;
    settings.quota_messages = 7;
    settings.recipient_delimiter = "+";

    auto a = find_recipient(db, "alice+tag@EXAMPLE.org", settings);
    ASSERT_TRUE(a);
    ASSERT_TRUE(*a);
    EXPECT_EQ((*a)->user, "alice@example.org");
    EXPECT_EQ((*a)->quota.max_bytes, 1000u);    // the account's rule
    EXPECT_EQ((*a)->quota.max_messages, 7u);    // the default where the account has none
    auto b = find_recipient(db, "bob@example.org", settings);
    ASSERT_TRUE(b && *b);
    EXPECT_EQ((*b)->quota.max_bytes, 5000u);
    auto nobody = find_recipient(db, "carol@example.org", settings);
    ASSERT_TRUE(nobody);
    EXPECT_FALSE(*nobody);

    auto cached = find_recipient_cached(db, "bob@example.org", settings);
    ASSERT_TRUE(cached && *cached);
    EXPECT_EQ((**cached).user, "bob@example.org");
    db.cached = false;
    EXPECT_FALSE(find_recipient_cached(db, "bob@example.org", settings));
    db.down = true;
    auto down = find_recipient(db, "bob@example.org", settings);
    ASSERT_FALSE(down);
    EXPECT_EQ(down.error(), "passwd-file unreadable");
}

TEST(TraceHeaders, ReturnPathAndDeliveredToWithoutControlCharacters) {
    EXPECT_EQ(trace_headers("sender@example.net", "alice@example.org"),
              "Return-Path: <sender@example.net>\nDelivered-To: alice@example.org\n");
    EXPECT_EQ(trace_headers("", "alice@example.org"), "Return-Path: <>\nDelivered-To: alice@example.org\n");
    EXPECT_EQ(trace_headers("evil\r\nX-Forged: 1", "a\nb"),
              "Return-Path: <evilX-Forged: 1>\nDelivered-To: ab\n");
}

TEST(LocalDelivery, StoresTraceHeadersThenTheBodyWithItsVirtualSize) {
    fake_store store;
    config::delivery_settings settings;
    const recipient r{"alice@example.org", {}};
    const outcome o = deliver_message(store, r, message{"s@example.net", "alice+x@example.org", "Subject: x\n\nbody\n"},
                                      settings);
    EXPECT_EQ(o.what, status::delivered);
    EXPECT_EQ(o.detail, "id-1");
    ASSERT_EQ(store.stored.size(), 1u);
    EXPECT_EQ(store.stored[0].first, "alice@example.org");
    const std::string expected =
        "Return-Path: <s@example.net>\nDelivered-To: alice+x@example.org\nSubject: x\n\nbody\n";
    EXPECT_EQ(store.stored[0].second, expected);
    EXPECT_EQ(store.virtual_sizes[0], core::virtual_size(expected));

    settings.trace_headers = false;
    deliver_message(store, r, message{"s@example.net", "alice@example.org", "body\n"}, settings);
    EXPECT_EQ(store.stored[1].second, "body\n");
}

TEST(LocalDelivery, EachFailureHasItsStatusAndCode) {
    fake_store store;
    config::delivery_settings settings;
    settings.max_message_size = 10;
    const recipient r{"alice", {}};
    EXPECT_EQ(deliver_message(store, r, message{"", "alice", std::string(11, 'x')}, settings).what, status::too_large);
    EXPECT_TRUE(store.stored.empty());
    settings.max_message_size = 1000;

    const recipient small{"alice", storage::quota{60, 0}};
    EXPECT_EQ(deliver_message(store, small, message{"", "alice", std::string(30, 'x')}, settings).what,
              status::over_quota_perm);  // 30 + the trace headers > 60
    settings.over_quota = config::quota_action::defer;
    EXPECT_EQ(deliver_message(store, small, message{"", "alice", std::string(30, 'x')}, settings).what,
              status::over_quota_temp);
    store.now = storage::usage{0, 0};
    EXPECT_EQ(check_quota(store, small, 61, settings).what, status::over_quota_temp);
    EXPECT_EQ(check_quota(store, small, 60, settings).what, status::delivered);
    EXPECT_EQ(check_quota(store, r, 1u << 30, settings).what, status::delivered);  // no quota

    store.fail = storage::delivery_error{storage::delivery_errc::temporary, "disk full"};
    outcome t = deliver_message(store, r, message{"", "alice", "x\n"}, settings);
    EXPECT_EQ(t.what, status::temporary);
    EXPECT_EQ(t.detail, "disk full");
    store.fail = storage::delivery_error{storage::delivery_errc::permanent, "permission denied"};
    EXPECT_EQ(deliver_message(store, r, message{"", "alice", "x\n"}, settings).what, status::permanent);

    EXPECT_EQ(enhanced_code(status::delivered), "2.0.0");
    EXPECT_EQ(enhanced_code(status::over_quota_temp), "4.2.2");
    EXPECT_EQ(enhanced_code(status::over_quota_perm), "5.2.2");
    EXPECT_EQ(enhanced_code(status::too_large), "5.3.4");
    EXPECT_EQ(enhanced_code(status::unknown_user), "5.1.1");
    EXPECT_EQ(enhanced_code(status::temporary), "4.3.0");
    EXPECT_EQ(enhanced_code(status::permanent), "5.3.0");
}

}  // namespace
}  // namespace poplar::delivery
