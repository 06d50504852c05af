// The auth process's handling of relayed SASL exchanges (auth_service.h).
#include "authd/auth_service.h"

#include <asio/co_spawn.hpp>
#include <asio/detached.hpp>
#include <asio/redirect_error.hpp>
#include <asio/steady_timer.hpp>
#include <asio/use_awaitable.hpp>
#include <spdlog/spdlog.h>

#include <string_view>

#include "core/limits.h"
#include "delivery/recipient_lookup.h"
#include "util/network.h"
#include "util/text.h"

namespace poplar::authd {

namespace {

using clock = std::chrono::steady_clock;

// More open exchanges than this are refused: server.max_unauthenticated bounds an honest network
// process far below it, so only a misbehaving one reaches it.
constexpr std::size_t max_exchanges = 200'000;

auth_wire::verdict to_wire(auth::verdict v) {
    switch (v) {
        case auth::verdict::success:
            return auth_wire::verdict::success;
        case auth::verdict::failure:
            return auth_wire::verdict::failure;
        case auth::verdict::temporary_failure:
            break;
    }
    return auth_wire::verdict::temporary_failure;
}

}  // namespace

struct auth_service::exchange {
    std::uint64_t id = 0;
    std::size_t channel = 0;
    std::shared_ptr<const user_database> db;  // the generation it started under, to its end
    std::unique_ptr<auth::sasl_mechanism> mech;
    std::string log_mechanism;
    detect::auth_penalties::address client{};
    std::string client_text;
    bool tls = false;
    clock::time_point started;
    // The attempt in progress (between a delay reply and the resume, and while verifying).
    std::optional<std::string> attempted;
    detect::auth_penalties::attempt penalty;
    util::secret_string pending;  // the response waiting out its delay
    bool delayed = false;
    clock::time_point not_before;
    bool busy = false;  // verifying: a second step now is a protocol error
};

auth_service::auth_service(asio::io_context& io, util::worker_pool& pool, std::uint32_t generation,
                           std::size_t penalty_table_size, detect::familiar_addresses& familiar, send_fn send)
    : io_(io), pool_(pool), generation_(generation), penalties_(penalty_table_size), familiar_(familiar),
      send_(std::move(send)) {}

namespace {

auth_wire::lookup_reply lookup_answer(std::uint64_t request,
                                      const result<std::optional<delivery::recipient>, std::string>& found) {
    auth_wire::lookup_reply r;
    r.request = request;
    if (!found) {
        r.result = auth_wire::lookup_result::temporary_failure;
        r.log_reason = found.error();
    } else if (!*found) {
        r.result = auth_wire::lookup_result::unknown;
    } else {
        r.result = auth_wire::lookup_result::found;
        r.user = (*found)->user;
        r.quota_bytes = (*found)->quota.max_bytes;
        r.quota_messages = (*found)->quota.max_messages;
    }
    return r;
}

}  // namespace

void auth_service::on_lookup(std::size_t channel, auth_wire::lookup l) {
    if (l.generation != generation_) {
        return;  // meant for the auth process before this one
    }
    if (auto fast = delivery::find_recipient_cached(*db_->users, l.address, db_->delivery)) {
        send_(channel, auth_wire::encode(lookup_answer(l.request, std::move(*fast))));
        return;
    }
    asio::co_spawn(io_, lookup_on_pool(channel, std::move(l), db_), asio::detached);
}

asio::awaitable<void> auth_service::lookup_on_pool(std::size_t channel, auth_wire::lookup l,
                                                   std::shared_ptr<const user_database> db) {
    auto job = [db, address = l.address] { return delivery::find_recipient(*db->users, address, db->delivery); };
    auto found = co_await pool_.async_run(std::move(job));
    send_(channel, auth_wire::encode(lookup_answer(l.request, found)));
}

void auth_service::send_reply(std::size_t channel, auth_wire::reply r) {
    r.penalty_keys = penalties_.tracked();
    send_(channel, auth_wire::encode(r));
}

void auth_service::refuse(std::size_t channel, std::uint64_t id, auth_wire::verdict v, std::string reason) {
    auth_wire::reply r;
    r.exchange = id;
    r.kind = auth_wire::reply_kind::done;
    r.result = v;
    r.log_reason = std::move(reason);
    send_reply(channel, std::move(r));
}

void auth_service::on_step(std::size_t channel, auth_wire::step s) {
    util::secret_string response(std::move(s.response));
    if (s.generation != generation_) {
        return;  // meant for the auth process before this one, which the network side gave up on
    }
    auto it = exchanges_.find(s.exchange);
    exchange_ptr ex;
    if (s.first) {
        if (it != exchanges_.end() || exchanges_.size() >= max_exchanges) {
            spdlog::error("auth protocol: exchange {} refused ({})", s.exchange,
                          it != exchanges_.end() ? "its id is in use" : "too many open exchanges");
            refuse(channel, s.exchange, auth_wire::verdict::temporary_failure, "auth process refused the exchange");
            return;
        }
        ex = std::make_shared<exchange>();
        ex->id = s.exchange;
        ex->channel = channel;
        ex->db = db_;
        ex->mech = s.mechanism == "APOP" ? db_->auth->start_apop(std::move(s.apop_timestamp))
                                         : db_->auth->start(s.mechanism);
        if (!ex->mech) {
            refuse(channel, s.exchange, auth_wire::verdict::temporary_failure,
                   "mechanism " + util::log_escape(s.mechanism) + " is not offered");
            return;
        }
        ex->log_mechanism = std::move(s.log_mechanism);
        std::copy(s.client.begin(), s.client.end(), ex->client.begin());
        ex->client_text = std::move(s.client_text);
        ex->tls = s.tls;
        ex->started = clock::now();
        exchanges_.emplace(ex->id, ex);
    } else {
        if (it == exchanges_.end() || it->second->busy || it->second->delayed) {
            refuse(channel, s.exchange, auth_wire::verdict::temporary_failure, "no such exchange waiting for a step");
            return;
        }
        ex = it->second;
    }
    run(ex, std::move(response));
}

void auth_service::run(const exchange_ptr& ex, util::secret_string response) {
    const user_database& db = *ex->db;
    // Penalties first, before anything is verified (detect/auth_penalties.h): a penalised
    // client waits whatever its password, and the attempt is counted before the wait.
    ex->attempted = ex->mech->attempted_user(response.view());
    ex->penalty = {};
    if (ex->attempted) {
        const std::string& user = *ex->attempted;
        const bool familiar = familiar_.is_familiar(user, ex->client, std::chrono::system_clock::now(), db.familiar_days);
        ex->penalty = penalties_.begin(ex->client, user, familiar, clock::now(), db.penalty);
        const detect::auth_penalties::attempt& p = ex->penalty;
        if (p.block_started) {
            spdlog::warn("auth block: user=\"{}\" rip={} address_failures={:.0f} account_failures={:.0f} for={}s",
                         util::log_escape(user), ex->client_text, p.address_score + 1,
                         p.counted_account ? p.account_score + 1 : p.account_score,
                         std::chrono::duration_cast<std::chrono::seconds>(db.penalty.block_duration).count());
        }
        if (p.refused != detect::auth_penalties::refusal::none) {
            const bool address = p.refused == detect::auth_penalties::refusal::address_blocked;
            // Not "auth failed": nothing was verified, so fail2ban counts the guesses, not the
            // refusals that follow from them (dist/fail2ban/filter.d/poplar.conf).
            spdlog::warn("auth refused: user=\"{}\" rip={} reason=\"{}\"", util::log_escape(user), ex->client_text,
                         address ? "address blocked after too many failed logins"
                                 : "account blocked for new addresses after too many failed logins");
            auth_wire::reply r;
            r.exchange = ex->id;
            r.kind = auth_wire::reply_kind::done;
            r.result = auth_wire::verdict::failure;
            r.refused = address ? auth_wire::refusal::address_blocked : auth_wire::refusal::account_blocked;
            r.user = user;
            r.address_blocked_ms =
                static_cast<std::uint32_t>(penalties_.address_blocked_for(ex->client, clock::now()).count());
            exchanges_.erase(ex->id);
            send_reply(ex->channel, std::move(r));
            return;
        }
        if (p.delay.count() > 0) {
            spdlog::info("auth penalty: user=\"{}\" rip={} delay={}ms address_failures={:.0f} account_failures={:.0f}",
                         util::log_escape(user), ex->client_text, p.delay.count(), p.address_score, p.account_score);
            ex->pending = std::move(response);
            ex->delayed = true;
            ex->not_before = clock::now() + p.delay;
            auth_wire::reply r;
            r.exchange = ex->id;
            r.kind = auth_wire::reply_kind::delay;
            r.delay_ms = static_cast<std::uint32_t>(p.delay.count());
            r.user = user;
            send_reply(ex->channel, std::move(r));
            return;
        }
    }
    ex->busy = true;
    asio::co_spawn(io_, verify(ex, std::move(response)), asio::detached);
}

void auth_service::on_resume(std::size_t channel, const auth_wire::resume& r) {
    if (r.generation != generation_) {
        return;
    }
    auto it = exchanges_.find(r.exchange);
    if (it == exchanges_.end() || !it->second->delayed) {
        refuse(channel, r.exchange, auth_wire::verdict::temporary_failure, "no such exchange waiting out a delay");
        return;
    }
    exchange_ptr ex = it->second;
    ex->delayed = false;
    ex->busy = true;
    const auto now = clock::now();
    if (now < ex->not_before) {
        // Early: the penalty is this process's to enforce, whatever the network side does.
        asio::co_spawn(io_, wait_then_verify(ex, ex->not_before - now), asio::detached);
        return;
    }
    asio::co_spawn(io_, verify(ex, std::move(ex->pending)), asio::detached);
}

asio::awaitable<void> auth_service::wait_then_verify(exchange_ptr ex, clock::duration left) {
    asio::steady_timer t(io_, left);
    asio::error_code ec;
    co_await t.async_wait(asio::redirect_error(asio::use_awaitable, ec));
    co_await verify(ex, std::move(ex->pending));
}

void auth_service::on_end(const auth_wire::end& e) {
    if (e.generation != generation_) {
        return;
    }
    auto it = exchanges_.find(e.exchange);
    if (it == exchanges_.end()) {
        return;
    }
    const exchange& ex = *it->second;
    if (e.why == auth_wire::end_reason::client_left && ex.delayed && ex.attempted) {
        // Not verified: its attempt counted as a failure already, and a right password verified
        // for nobody would clear the address and make it familiar, telling the next connection
        // what this one tried.
        spdlog::info("auth abandoned: user=\"{}\" rip={} reason=\"client left during the penalty delay\"",
                     util::log_escape(*ex.attempted), ex.client_text);
    }
    exchanges_.erase(it);  // a verification under way finishes and is not sent
}

asio::awaitable<void> auth_service::verify(exchange_ptr ex, util::secret_string response) {
    // A password the verification cache holds is checked here, on the loop: for a client that
    // polls every few minutes that is most logins, and each trip to the pool and back costs two
    // thread switches.
    std::optional<auth::sasl_mechanism::step_result> stepped = ex->mech->try_step_without_blocking(response.view());
    if (!stepped) {
        auth::sasl_mechanism* mech = ex->mech.get();
        auto job = [mech, keep = ex, resp = std::move(response)]() { return mech->step(resp.view()); };
        const std::string_view key(reinterpret_cast<const char*>(ex->client.data()), ex->client.size());
        // In turn per client address: a guesser's queue of hashes does not delay others.
        auth::sasl_mechanism::step_result on_pool = co_await pool_.async_run_fair(std::hash<std::string_view>{}(key), std::move(job));
        stepped = std::move(on_pool);
    }
    ex->busy = false;
    finish(ex, std::move(*stepped));
}

void auth_service::finish(const exchange_ptr& ex, auth::sasl_mechanism::step_result r) {
    const user_database& db = *ex->db;
    if (r.done && r.result.result == auth::verdict::success && r.result.controls) {
        // The passwd-file's per-account controls (auth/account_controls.h), with what the network
        // process said of the connection. A refusal is a failure like any other: same reply,
        // same delay, same count.
        auth::client_facts facts{util::mapped_address(ex->client_text), ex->tls};
        if (auto refused = auth::refuse_login(*r.result.controls, facts)) {
            r.result.result = auth::verdict::failure;
            r.result.log_reason = std::move(refused->log_reason);
            r.result.client_message = std::move(refused->client_message);
        }
    }
    if (ex->attempted && r.done) {
        const auto now = clock::now();
        if (r.result.result == auth::verdict::success) {
            penalties_.succeeded(ex->client, *ex->attempted, ex->penalty, now, db.penalty);
            if (familiar_.note_success(*ex->attempted, ex->client, std::chrono::system_clock::now(), db.familiar_days)) {
                familiar_changed_ = true;
            }
        } else if (r.result.result == auth::verdict::temporary_failure) {
            penalties_.not_a_guess(ex->client, *ex->attempted, ex->penalty, now, db.penalty);
        }
    }
    if (r.done && r.result.result == auth::verdict::failure) {
        spdlog::info("auth failed: user=\"{}\" rip={} mech={} reason=\"{}\"", util::log_escape(r.result.user),
                     ex->client_text, ex->log_mechanism, util::log_escape(r.result.log_reason));
    } else if (r.done && r.result.result == auth::verdict::temporary_failure) {
        // Not "auth failed": fail2ban must not ban users because the user database is down.
        spdlog::warn("auth unavailable: user=\"{}\" rip={} mech={} reason=\"{}\"", util::log_escape(r.result.user),
                     ex->client_text, ex->log_mechanism, util::log_escape(r.result.log_reason));
    }
    auto it = exchanges_.find(ex->id);
    if (it == exchanges_.end() || it->second != ex) {
        return;  // ended by the network side meanwhile: nobody to tell
    }
    auth_wire::reply out;
    out.exchange = ex->id;
    if (!r.done) {
        out.kind = auth_wire::reply_kind::challenge;
        out.challenge = std::move(r.challenge);
        send_reply(ex->channel, std::move(out));
        return;
    }
    out.kind = auth_wire::reply_kind::done;
    out.result = to_wire(r.result.result);
    out.user = std::move(r.result.user);
    out.log_reason = std::move(r.result.log_reason);
    out.client_message = std::move(r.result.client_message);
    out.address_blocked_ms = static_cast<std::uint32_t>(penalties_.address_blocked_for(ex->client, clock::now()).count());
    const std::size_t channel = ex->channel;
    exchanges_.erase(it);
    send_reply(channel, std::move(out));
}

void auth_service::forget_stale(clock::time_point now) {
    for (auto it = exchanges_.begin(); it != exchanges_.end();) {
        if (!it->second->busy && now - it->second->started > limits::max_unauthenticated_session) {
            it = exchanges_.erase(it);
        } else {
            ++it;
        }
    }
}

}  // namespace poplar::authd
