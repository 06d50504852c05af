// One LMTP connection: socket <-> lmtp::session, lookups via the auth process, deliveries on the pool.
#include "net/lmtp_connection.h"

#include <asio/redirect_error.hpp>
#include <asio/use_awaitable.hpp>
#include <asio/write.hpp>
#include <spdlog/spdlog.h>

#include <variant>

#include "delivery/local_delivery.h"
#include "util/text.h"

namespace poplar::net {

using asio::use_awaitable;

namespace {

// What one read asks the kernel for; a 1 MiB message arrives in 16 reads.
constexpr std::size_t read_chunk = 64 * 1024;

lmtp::delivery_verdict to_lmtp(delivery::status s) {
    switch (s) {
    case delivery::status::delivered: return lmtp::delivery_verdict::delivered;
    case delivery::status::over_quota_temp: return lmtp::delivery_verdict::over_quota_temp;
    case delivery::status::over_quota_perm: return lmtp::delivery_verdict::over_quota_perm;
    case delivery::status::too_large: return lmtp::delivery_verdict::too_large;
    case delivery::status::unknown_user: return lmtp::delivery_verdict::unknown;
    case delivery::status::permanent: return lmtp::delivery_verdict::permanent_failure;
    case delivery::status::temporary: break;
    }
    return lmtp::delivery_verdict::temporary_failure;
}

}  // namespace

lmtp_connection::lmtp_connection(socket_type socket, std::shared_ptr<const lmtp_context> ctx, auth_channel& auth,
                                 std::string peer)
    : socket_(std::move(socket)),
      ctx_holder_(std::move(ctx)),
      ctx_(*ctx_holder_),
      auth_(auth),
      peer_(std::move(peer)),
      deadline_(socket_.get_executor()),
      session_(ctx_.policy),
      framer_(session_.max_line()),
      started_(std::chrono::steady_clock::now()) {}

void lmtp_connection::stop() {
    stopping_ = true;
    // Wake a read in progress on the connection's own loop; a delivery in progress is left to
    // finish (its replies are sent, then the loop sees stopping_).
    asio::post(socket_.get_executor(), [self = shared_from_this()] {
        if (!self->delivering_) {
            asio::error_code ec;
            self->socket_.cancel(ec);
        }
    });
}

asio::awaitable<bool> lmtp_connection::flush() {
    if (out_.empty()) {
        co_return true;
    }
    asio::error_code ec;
    deadline_.expires_after(ctx_.idle_timeout);
    deadline_.async_wait([this](asio::error_code e) {
        if (!e) {
            asio::error_code ignored;
            socket_.cancel(ignored);  // the MTA stopped reading: give up on it
        }
    });
    co_await asio::async_write(socket_, asio::buffer(out_), asio::redirect_error(use_awaitable, ec));
    deadline_.cancel();
    out_.clear();
    co_return !ec;
}

asio::awaitable<void> lmtp_connection::run() {
    ctx_.counters.connections.fetch_add(1, std::memory_order_relaxed);
    out_ = session_.greeting();
    const char* reason = "disconnect";
    for (;;) {
        // Every complete line first: pipelined commands (RFC 2920) are answered in one write.
        bool closed = false;
        while (auto ev = framer_.next()) {
            lmtp::step st = ev->what == core::line_framer::event::kind::line ? session_.on_line(ev->text)
                                                                           : session_.on_line_too_long();
            framer_.set_max_line(session_.max_line());
            if (!co_await perform(std::move(st))) {
                closed = true;
                reason = session_.current_state() == lmtp::session::state::closed ? "quit" : "error";
                break;
            }
            framer_.set_max_line(session_.max_line());
            if (recipients_.size() > session_.current_envelope().recipients.size()) {
                recipients_.resize(session_.current_envelope().recipients.size());  // RSET, MAIL, after DATA
            }
        }
        if (closed) {
            break;
        }
        if (!co_await flush()) {
            reason = "error";
            break;
        }
        if (stopping_) {
            out_ = "421 4.3.2 " + ctx_.policy.hostname + " Server shutting down\r\n";
            co_await flush();
            reason = "shutdown";
            break;
        }
        asio::error_code ec;
        bool timed_out = false;
        deadline_.expires_after(ctx_.idle_timeout);
        deadline_.async_wait([this, &timed_out](asio::error_code e) {
            if (!e) {
                timed_out = true;
                asio::error_code ignored;
                socket_.cancel(ignored);
            }
        });
        auto buf = framer_.prepare(read_chunk);
        const std::size_t n = co_await socket_.async_read_some(asio::buffer(buf.data(), buf.size()), asio::redirect_error(use_awaitable, ec));
        deadline_.cancel();
        if (timed_out) {
            // RFC 5321 §4.5.3.2.7: the server may close after its timeout, with 421.
            out_ = "421 4.4.2 " + ctx_.policy.hostname + " Timeout, closing connection\r\n";
            co_await flush();
            reason = "timeout";
            break;
        }
        if (ec == asio::error::operation_aborted && stopping_) {
            continue;  // the loop above sends 421
        }
        if (ec) {
            reason = ec == asio::error::eof ? "disconnect" : "error";
            break;
        }
        framer_.commit(n);
    }
    asio::error_code ignored;
    socket_.close(ignored);
    log_end(reason);
}

asio::awaitable<bool> lmtp_connection::perform(lmtp::step step) {
    out_ += step.reply;
    if (std::holds_alternative<lmtp::effect::none>(step.next)) {
        co_return true;
    }
    if (std::holds_alternative<lmtp::effect::close>(step.next)) {
        co_await flush();
        co_return false;
    }
    if (auto* c = std::get_if<lmtp::effect::check_recipient>(&step.next)) {
        const lmtp::recipient_verdict v = co_await check_recipient(*c);
        // Named, not a temporary in the co_await expression (GCC 12, see auth_link.cpp).
        lmtp::step next = session_.on_recipient_checked(v);
        co_return co_await perform(std::move(next));
    }
    auto& d = std::get<lmtp::effect::deliver>(step.next);
    delivering_ = true;
    std::vector<lmtp::delivery_verdict> verdicts = co_await deliver(std::move(d));
    delivering_ = false;
    lmtp::step next = session_.on_delivered(verdicts);
    co_return co_await perform(std::move(next));
}

asio::awaitable<lmtp::recipient_verdict> lmtp_connection::check_recipient(const lmtp::effect::check_recipient& c) {
    std::string address = c.address;
    auto found = co_await auth_.lookup(std::move(address));
    const std::string to = util::log_escape(c.address);
    if (!found || found->result == auth_wire::lookup_result::temporary_failure) {
        ctx_.counters.temporary_failures.fetch_add(1, std::memory_order_relaxed);
        ctx_.counters.refused.fetch_add(1, std::memory_order_relaxed);
        spdlog::error("lmtp failed: to=<{}> status=4.3.0 reason=\"recipient lookup: {}\"", to,
                      found ? util::log_escape(found->log_reason) : std::string("auth process unavailable"));
        co_return lmtp::recipient_verdict::temporary_failure;
    }
    if (found->result == auth_wire::lookup_result::unknown) {
        ctx_.counters.refused.fetch_add(1, std::memory_order_relaxed);
        spdlog::info("lmtp refused: to=<{}> status=5.1.1 reason=\"no such user\"", to);
        co_return lmtp::recipient_verdict::unknown;
    }
    delivery::recipient r{found->user, storage::quota{found->quota_bytes, found->quota_messages}};
    if (c.declared_size > 0 && r.quota.any()) {
        // RFC 1870 §6: with the size declared, a message that cannot fit is refused now, before
        // the MTA sends it.
        auto job = [&store = ctx_.store, r, size = c.declared_size, &settings = ctx_.delivery] {
            return delivery::check_quota(store, r, size, settings);
        };
        const delivery::outcome o = co_await ctx_.pool.async_run(std::move(job));
        if (o.what != delivery::status::delivered) {
            ctx_.counters.refused.fetch_add(1, std::memory_order_relaxed);
            if (o.what == delivery::status::temporary) {
                ctx_.counters.temporary_failures.fetch_add(1, std::memory_order_relaxed);
                spdlog::error("lmtp failed: user=\"{}\" to=<{}> status=4.3.0 reason=\"{}\"", util::log_escape(r.user),
                              to, util::log_escape(o.detail, 512));
                co_return lmtp::recipient_verdict::temporary_failure;
            }
            spdlog::info("lmtp refused: user=\"{}\" to=<{}> status={} reason=\"over quota: {}\"",
                         util::log_escape(r.user), to, delivery::enhanced_code(o.what), util::log_escape(o.detail, 512));
            co_return o.what == delivery::status::over_quota_temp ? lmtp::recipient_verdict::over_quota_temp
                                                                 : lmtp::recipient_verdict::over_quota_perm;
        }
    }
    recipients_.push_back(std::move(r));
    co_return lmtp::recipient_verdict::accepted;
}

asio::awaitable<std::vector<lmtp::delivery_verdict>> lmtp_connection::deliver(lmtp::effect::deliver d) {
    // One trip to the pool for every recipient: each is stored (and fsynced) in turn.
    auto job = [&store = ctx_.store, &settings = ctx_.delivery, recipients = recipients_, d = std::move(d)] {
        std::vector<delivery::outcome> out;
        out.reserve(recipients.size());
        for (std::size_t i = 0; i < recipients.size(); ++i) {
            const delivery::message m{d.env.sender, d.env.recipients[i], d.message};
            out.push_back(delivery::deliver_message(store, recipients[i], m, settings));
        }
        return std::make_pair(std::move(out), std::move(d));
    };
    auto [outcomes, done] = co_await ctx_.pool.async_run(std::move(job));
    std::vector<lmtp::delivery_verdict> verdicts;
    verdicts.reserve(outcomes.size());
    const std::string from = util::log_escape(done.env.sender);
    for (std::size_t i = 0; i < outcomes.size(); ++i) {
        const delivery::outcome& o = outcomes[i];
        const std::string user = util::log_escape(recipients_[i].user);
        const std::string to = util::log_escape(done.env.recipients[i]);
        verdicts.push_back(to_lmtp(o.what));
        if (o.what == delivery::status::delivered) {
            ctx_.counters.delivered.fetch_add(1, std::memory_order_relaxed);
            ctx_.counters.delivered_bytes.fetch_add(done.message.size(), std::memory_order_relaxed);
            spdlog::info("lmtp delivered: user=\"{}\" to=<{}> from=<{}> size={} id={}", user, to, from,
                         done.message.size(), util::log_escape(o.detail, 256));
            continue;
        }
        ctx_.counters.refused.fetch_add(1, std::memory_order_relaxed);
        if (o.what == delivery::status::temporary || o.what == delivery::status::permanent) {
            ctx_.counters.temporary_failures.fetch_add(o.what == delivery::status::temporary ? 1 : 0,
                                                       std::memory_order_relaxed);
            spdlog::error("lmtp failed: user=\"{}\" to=<{}> from=<{}> status={} reason=\"{}\"", user, to, from,
                          delivery::enhanced_code(o.what), util::log_escape(o.detail, 512));
        } else {
            spdlog::info("lmtp refused: user=\"{}\" to=<{}> from=<{}> status={} reason=\"{}\"", user, to, from,
                         delivery::enhanced_code(o.what), util::log_escape(o.detail, 512));
        }
    }
    co_return verdicts;
}

void lmtp_connection::log_end(const char* reason) const {
    const lmtp::session_stats& s = session_.stats();
    const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - started_).count();
    spdlog::info("lmtp session end: peer={} transactions={} delivered={} refused={} bytes={} duration={:.3f}s reason={}",
                 peer_, s.transactions, s.delivered, s.refused, s.bytes, secs, reason);
}

}  // namespace poplar::net
