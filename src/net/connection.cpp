// One POP3 connection: read lines, feed the session, write replies, carry out effects.
#include "net/connection.h"

#include <asio/bind_cancellation_slot.hpp>
#include <asio/buffer.hpp>
#include <asio/dispatch.hpp>
#include <asio/post.hpp>
#include <asio/read.hpp>
#include <asio/redirect_error.hpp>
#include <asio/use_awaitable.hpp>
#include <asio/write.hpp>
#include <fmt/format.h>
#include <openssl/rand.h>
#include <poll.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <algorithm>
#include <cassert>
#include <cstring>

#include "core/message_encoder.h"
#include "core/reply.h"
#include "util/network.h"
#include "util/secret.h"
#include "util/text.h"

namespace poplar::net {

namespace {

using asio::use_awaitable;
using namespace std::chrono_literals;

bool is_loopback(const asio::ip::address& a) {
    if (a.is_v4()) {
        return a.to_v4().is_loopback();
    }
    const asio::ip::address_v6 v6 = a.to_v6();
    if (v6.is_v4_mapped()) {
        return asio::ip::make_address_v4(asio::ip::v4_mapped, v6).is_loopback();
    }
    return v6.is_loopback();
}

// RFC 1939 §7: the APOP timestamp must be unique per greeting; random bytes make it also
// unpredictable, so a captured APOP digest cannot be replayed.
std::string make_apop_timestamp(const std::string& hostname) {
    unsigned char r[8];
    if (RAND_bytes(r, sizeof r) != 1) {
        return {};  // no randomness: APOP is not offered rather than offered weakly
    }
    std::uint64_t v = 0;
    for (unsigned char b : r) {
        v = (v << 8) | b;
    }
    // RFC 1939's example carries the process id; poplar leaves it out (it tells an attacker
    // nothing useful, so it need not be there) and uses 64 random bits instead.
    return fmt::format("<{:016x}@{}>", v, hostname);
}


// Read size for command lines: enough for any pipelined burst, small enough that idle sessions
// cost little (the framer frees it when idle).
constexpr std::size_t read_chunk = 4096;

// Output capacity an idle session may keep: enough for any ordinary reply, so a command-by-command
// client does not allocate per reply, small enough for the idle-session memory target.
constexpr std::size_t idle_output_capacity = 256;

}  // namespace

const char* phase_name(phase p) {
    static const char* const names[] = {"handshake", "authorization", "transaction", "update", "closing"};
    return names[static_cast<int>(p)];
}

const char* connection::reason_name(end_reason r) {
    static const char* const names[] = {"quit",  "disconnect",       "timeout", "shutdown",
                                        "error", "closed-by-server", "kicked"};
    return names[static_cast<int>(r)];
}

connection::connection(asio::ip::tcp::socket socket, std::shared_ptr<const connection_context> ctx, auth_channel& auth,
                       bool implicit_tls, std::optional<asio::ip::address> client)
    : ctx_holder_(std::move(ctx)),
      socket_(std::move(socket)),
      watchdog_(socket_.get_executor()),
      delay_(socket_.get_executor()),
      ctx_(*ctx_holder_),
      auth_(auth),
      implicit_tls_(implicit_tls),
      started_(std::chrono::steady_clock::now()),
      framer_(limits::max_command_line),
      connected_at_(std::chrono::system_clock::now()) {
    asio::error_code ec;
    // For read_available() and tls_stream: synchronous reads and writes that answer would_block
    // instead of waiting. Asio's own asynchronous operations are unaffected by this flag.
    socket_.non_blocking(true, ec);
    const auto remote = socket_.remote_endpoint(ec);
    if (client || !ec) {
        const asio::ip::address a = client ? *client : remote.address();
        peer_ = a.to_string();
        loopback_ = is_loopback(a);
        address_ = address_key::of(a);
    } else {
        peer_ = "unknown";
    }
}

// The server admitted this connection (connection_limits::admit) before constructing it.
connection::~connection() { ctx_.limits.release(address_, counted_login_, logged_in_user_); }

void connection::stop() { end_from_outside(end_reason::shutdown); }

void connection::kick() { end_from_outside(end_reason::kicked); }

void connection::end_from_outside(end_reason why) {
    asio::dispatch(socket_.get_executor(), [self = shared_from_this(), why] {
        if (self->closed_ || self->stopping_) {
            return;
        }
        self->stopping_ = true;
        self->stop_reason_ = why;
        asio::error_code ec;
        self->socket_.cancel(ec);
        self->delay_.cancel();
    });
}

connection_info connection::info() const {
    connection_info i;
    i.rip = peer_;
    i.where = phase_.load(std::memory_order_relaxed);
    i.tls = tls_on_.load(std::memory_order_relaxed);
    i.connected = connected_at_;
    i.bytes_in = bytes_in_.load(std::memory_order_relaxed);
    i.bytes_out = bytes_out_.load(std::memory_order_relaxed);
    std::lock_guard lock(info_mutex_);
    i.user = logged_in_user_;
    i.logged_in = logged_in_at_;
    return i;
}

// Under pressure (more than half of server.max_unauthenticated in use, as in a flood of idle or
// slow connections) a client that has not logged in gets limits::login_timeout_under_pressure
// for each read instead of pop3.login_timeout, so the flood drains faster than it can refill.
std::chrono::milliseconds connection::login_timeout_now() const {
    if (ctx_.limits.unauthenticated() * 2 > ctx_.server.max_unauthenticated) {
        return std::min<std::chrono::milliseconds>(ctx_.timeouts.login, limits::login_timeout_under_pressure);
    }
    return ctx_.timeouts.login;
}

void connection::arm_deadline(std::chrono::milliseconds from_now) {
    deadline_ = std::chrono::steady_clock::now() + from_now;
    if (!watchdog_waiting_) {
        // It fired (a timeout) and did not re-arm: the goodbye and the TLS close that follow a
        // timeout have deadlines of their own, and a client that stopped reading must not be
        // able to hold them, and the connection, forever.
        start_watchdog();
    } else if (deadline_ < watchdog_.expiry()) {
        // Earlier than the pending wake-up: cancelling makes the watchdog re-check at once and
        // re-arm for the new deadline.
        watchdog_.expires_at(deadline_);
    }
}

// One timer per connection, re-armed lazily: reads and writes only move deadline_, and the
// timer wakes at most once per deadline period to check it (the Asio "deadline" pattern).
// Exactly one wait is pending or completing at a time: only arm_deadline() starts it, and only
// when none is (watchdog_waiting_); a wait cancelled by expires_at() re-arms from its handler.
void connection::start_watchdog() {
    watchdog_waiting_ = true;
    watchdog_.expires_at(deadline_);
    watchdog_.async_wait([self = shared_from_this()](asio::error_code) {
        self->watchdog_waiting_ = false;
        // Not closed_: that is set when closing begins, and the TLS close still needs a deadline.
        if (!self->socket_.is_open()) {
            return;
        }
        if (std::chrono::steady_clock::now() >= self->deadline_) {
            self->timed_out_ = true;
            asio::error_code ignored;
            self->socket_.cancel(ignored);
            return;
        }
        self->start_watchdog();
    });
}

// Read what has arrived (decrypted, over TLS) into a buffer on this thread's stack (this is not a
// coroutine, so the buffer is not part of the session's frame) and hand the framer exactly those
// bytes. Together with waiting for readability before reading, an idle session holds no receive
// buffer at all, with or without TLS: the 10,000-idle-session memory target
// (docs/performance.md). The stack copy held PASS and AUTH lines, so it is wiped.
std::size_t connection::read_available(asio::error_code& ec) {
    char tmp[read_chunk];
    const std::size_t n =
        tls_ ? tls_->read_available(std::span<char>(tmp), ec) : socket_.read_some(asio::buffer(tmp), ec);
    if (n > 0) {
        std::memcpy(framer_.prepare(n).data(), tmp, n);
        framer_.commit(n);
        util::wipe(std::span<char>(tmp, n));
    }
    count_in(n);
    return n;
}

asio::awaitable<void> connection::receive(asio::error_code& ec) {
    // Try first, wait only on EAGAIN: Asio's epoll registration is edge-triggered, and a wait
    // begun after bytes arrived would not complete until more came. Over TLS, would_block means
    // OpenSSL read the socket dry; tls_stream sends anything it has queued before it waits.
    for (;;) {
        if (read_available(ec) > 0 || ec != asio::error::would_block) {
            co_return;
        }
        ec = {};
        if (tls_) {
            co_await tls_->async_wait_readable(ec);
        } else {
            co_await socket_.async_wait(asio::ip::tcp::socket::wait_read, asio::redirect_error(use_awaitable, ec));
        }
        if (ec) {
            co_return;
        }
    }
}

asio::awaitable<bool> connection::flush() {
    if (out_.empty()) {
        co_return true;
    }
    if (stopping_ || timed_out_) {
        co_return false;
    }
    arm_deadline(ctx_.timeouts.write);
    asio::error_code ec;
    auto buf = asio::buffer(out_.data(), out_.size());
    const std::size_t n = tls_ ? co_await tls_->async_write(out_.view(), ec)
                               : co_await asio::async_write(socket_, buf, asio::redirect_error(use_awaitable, ec));
    count_out(n);
    out_.clear();  // keeps its capacity for the rest of a RETR; run() frees it before idling
    if (ec) {
        if (reason_ == end_reason::disconnect) {
            reason_ = timed_out_ ? end_reason::timeout : stopping_ ? end_reason::shutdown : end_reason::disconnect;
        }
        co_return false;
    }
    co_return true;
}

asio::awaitable<void> connection::say_goodbye(const std::string& reply) {
    // A last reply on a connection we are closing: short deadline, errors ignored.
    out_.assign(reply);
    stopping_ = false;
    timed_out_ = false;
    arm_deadline(2s);
    co_await flush();
}

asio::awaitable<void> connection::close_transport() {
    closed_ = true;
    if (tls_) {
        // Send close_notify so the client can tell a complete reply from a truncated one.
        arm_deadline(2s);
        asio::error_code ec;
        co_await tls_->async_shutdown(ec);
    }
    asio::error_code ec;
    socket_.shutdown(asio::ip::tcp::socket::shutdown_both, ec);
    socket_.close(ec);
    watchdog_.cancel();
    delay_.cancel();
}

asio::awaitable<void> connection::run() {
    auto self = shared_from_this();
    arm_deadline(ctx_.timeouts.login);  // also starts the watchdog

    core::connection_facts facts;
    facts.loopback = loopback_;
    facts.tls = implicit_tls_;
    facts.tls_available = ctx_.tls != nullptr;
    if (implicit_tls_) {
        tls_ = std::make_unique<tls_stream>(socket_, *ctx_.tls);
        asio::error_code ec;
        co_await tls_->async_handshake(ec);
        if (ec) {
            spdlog::debug("tls handshake failed: rip={} error=\"{}\"", peer_, util::log_escape(ec.message()));
            ctx_.counters.tls_handshake_failures.fetch_add(1, std::memory_order_relaxed);
            reason_ = timed_out_ ? end_reason::timeout : end_reason::error;
            tls_.reset();
            co_await close_transport();
            // No "session end": there was no session (no greeting), and scanners would flood the
            // info log with one per probe. Debug shows the failure itself (docs/operations.md).
            co_return;
        }
        tls_on_.store(true, std::memory_order_relaxed);
    }

    session_ = std::make_unique<core::session>(ctx_.policy, facts, ctx_.auth,
                                               ctx_.policy.apop ? make_apop_timestamp(ctx_.hostname) : std::string());
    set_phase(phase::authorization);
    out_.assign(session_->greeting());
    bool open = co_await flush();

    while (open) {
        // Answer every complete line already received before reading again: a pipelining
        // client's burst gets its replies in order, in as few writes as possible.
        while (open) {
            auto ev = framer_.next();
            if (!ev) {
                break;
            }
            // Timed from the line's arrival in the framer to its reply being queued: the session,
            // the auth check or maildrop open it starts, the failure delay (docs/operations.md).
            const auto began = std::chrono::steady_clock::now();
            const std::size_t command = session_->current_state() == core::session::state::sasl
                                            ? metrics::auth_command_index
                                            : metrics::command_index(ev->text);
            core::step st = ev->what == core::line_framer::event::kind::line ? session_->on_line(ev->text)
                                                                             : session_->on_line_too_long();
            open = co_await perform(std::move(st));
            time_command(command, std::chrono::steady_clock::now() - began);
            framer_.set_max_line(session_->max_line());
            if (open && out_.size() >= limits::max_batched_output) {
                open = co_await flush();
            }
        }
        if (!open) {
            break;
        }
        open = co_await flush();
        if (!open) {
            break;
        }
        if (stopping_) {
            break;
        }
        framer_.shrink();
        if (out_.capacity() > idle_output_capacity) {
            out_.release();  // a RETR grew it: idle sessions keep no output buffer
        }
        if (session_->idle_is_transaction()) {
            arm_deadline(ctx_.timeouts.idle);
        } else {
            const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
                started_ + limits::max_unauthenticated_session - std::chrono::steady_clock::now());
            arm_deadline(std::max(std::chrono::milliseconds(0), std::min(left, login_timeout_now())));
        }
        asio::error_code ec;
        co_await receive(ec);
        if (ec) {
            if (timed_out_) {
                reason_ = end_reason::timeout;
                const std::string bye = core::autologout_reply();
                co_await say_goodbye(bye);
            } else if (stopping_) {
                reason_ = stop_reason_;
                const std::string bye = stop_reason_ == end_reason::kicked ? core::kicked_reply() : core::shutdown_reply();
                co_await say_goodbye(bye);
            } else {
                reason_ = end_reason::disconnect;
            }
            break;
        }
    }
    if (stopping_ && (reason_ == end_reason::disconnect || reason_ == end_reason::shutdown)) {
        reason_ = stop_reason_;
        const std::string bye = stop_reason_ == end_reason::kicked ? core::kicked_reply() : core::shutdown_reply();
        co_await say_goodbye(bye);
    }
    set_phase(phase::closing);
    if (session_) {
        session_->on_disconnect();  // after QUIT already closed; otherwise deletes nothing
    }
    co_await close_transport();
    log_session_end();
}

bool connection::client_gone() const {
    pollfd p{};
    p.fd = const_cast<asio::ip::tcp::socket&>(socket_).native_handle();
    p.events = POLLIN | POLLRDHUP;
    return ::poll(&p, 1, 0) > 0 && (p.revents & (POLLRDHUP | POLLHUP | POLLERR)) != 0;
}

detect::usage_alerts::address detect_address(const address_key& k) {
    detect::usage_alerts::address a{};
    std::copy(k.bytes.begin(), k.bytes.end(), a.begin());
    a[16] = k.v6 ? 1 : 0;
    return a;
}

asio::awaitable<std::optional<connection::relayed>> connection::relay_step(relay_mechanism& mech,
                                                                           util::secret_string response) {
    auth_wire::step s;
    s.first = !mech.started();
    if (s.first) {
        mech.bind(auth_, ctx_.auth_shared.next_id());
        s.mechanism = mech.name();
        s.log_mechanism = session_->mechanism_name();
        s.apop_timestamp = mech.apop_timestamp();
        s.client = detect_address(address_);
        s.client_text = peer_;
        s.tls = tls_ != nullptr;
    }
    s.exchange = mech.id();
    s.response.assign(response.view());
    std::optional<auth_wire::reply> r = co_await auth_.step(std::move(s));
    if (r && r->kind == auth_wire::reply_kind::delay) {
        // The authentication penalty (detect/auth_penalties.h), decided by the auth process and
        // enforced there too; waited out here, where a client hanging up can be seen.
        ctx_.counters.auth_penalties.fetch_add(1, std::memory_order_relaxed);
        if (!co_await flush()) {  // replies to pipelined commands before this one go out first
            auth_.end(mech.id(), auth_wire::end_reason::client_left);
            mech.finished();
            co_return std::nullopt;
        }
        delay_.expires_after(std::min<std::chrono::milliseconds>(std::chrono::milliseconds(r->delay_ms),
                                                                 limits::auth_reply_timeout));
        asio::error_code ec;
        co_await delay_.async_wait(asio::redirect_error(use_awaitable, ec));
        if (stopping_) {
            co_return std::nullopt;  // the relay's destructor ends the exchange
        }
        if (client_gone()) {
            // Never verified: the attempt counted already (auth process: "auth abandoned").
            auth_.end(mech.id(), auth_wire::end_reason::client_left);
            mech.finished();
            reason_ = end_reason::disconnect;
            co_return std::nullopt;
        }
        r = co_await auth_.resume(mech.id());
    }
    relayed out;
    if (!r || r->kind == auth_wire::reply_kind::delay) {
        // Down, died meanwhile, or silent: the client may retry (the auth process is restarted
        // by its supervisor). Not "auth failed": fail2ban must not ban anyone for it.
        ctx_.counters.auth_unavailable.fetch_add(1, std::memory_order_relaxed);
        spdlog::warn("auth unavailable: user=\"\" rip={} mech={} reason=\"the auth process is not answering\"", peer_,
                     session_->mechanism_name());
        mech.finished();
        out.step.done = true;
        out.step.result = auth::outcome(auth::verdict::temporary_failure, {}, "auth process unavailable");
        co_return out;
    }
    ctx_.auth_shared.penalty_keys.store(r->penalty_keys, std::memory_order_relaxed);
    if (r->kind == auth_wire::reply_kind::challenge) {
        out.step.done = false;
        out.step.challenge = std::move(r->challenge);
        co_return out;
    }
    mech.finished();
    ctx_.auth_shared.note_blocked(detect_address(address_), std::chrono::milliseconds(r->address_blocked_ms),
                                  std::chrono::steady_clock::now());
    out.step.done = true;
    switch (r->result) {
        case auth_wire::verdict::success:
            out.step.result = auth::outcome(auth::verdict::success, std::move(r->user), {});
            break;
        case auth_wire::verdict::failure:
            if (r->refused != auth_wire::refusal::none) {
                ctx_.counters.auth_blocks.fetch_add(1, std::memory_order_relaxed);
                out.refusal = r->refused == auth_wire::refusal::address_blocked
                                  ? "too many failed logins from your address, try again later"
                                  : "too many failed logins for this account, try again later";
                break;
            }
            ctx_.counters.auth_failures.fetch_add(1, std::memory_order_relaxed);
            out.step.result = auth::outcome(auth::verdict::failure, std::move(r->user), std::move(r->log_reason),
                                            nullptr, std::move(r->client_message));
            break;
        case auth_wire::verdict::temporary_failure:
            ctx_.counters.auth_unavailable.fetch_add(1, std::memory_order_relaxed);
            out.step.result =
                auth::outcome(auth::verdict::temporary_failure, std::move(r->user), std::move(r->log_reason));
            break;
    }
    co_return out;
}

asio::awaitable<bool> connection::perform(core::step st) {
    if (st.delay.count() > 0) {
        // Failed login: earlier replies go out first, then the delayed one (brute-force slowdown).
        if (!co_await flush()) {
            co_return false;
        }
        delay_.expires_after(st.delay);
        asio::error_code ec;
        co_await delay_.async_wait(asio::redirect_error(use_awaitable, ec));
        if (stopping_) {
            co_return false;
        }
    }
    out_ += st.reply;

    if (auto* a = std::get_if<core::effect::run_auth>(&st.next)) {
        // Every mechanism here is a relay (net/auth_link.h): the verification, the penalties and
        // their log lines are the auth process's; this side carries the bytes, waits out the
        // delay it is told to, and counts.
        auto* mech = dynamic_cast<relay_mechanism*>(a->mechanism);
        assert(mech != nullptr);
        std::optional<relayed> r = co_await relay_step(*mech, util::secret_string(std::move(a->response)));
        if (!r) {
            co_return false;
        }
        // A block: [SYS/TEMP] (RFC 3206 §4), not [AUTH]: the credentials may be right, and a
        // client shown [AUTH] would ask its user for a new password instead of trying later.
        core::step next = r->refusal.empty() ? session_->on_auth_step(std::move(r->step))
                                             : session_->on_auth_refused(core::resp_code::sys_temp, r->refusal);
        co_return co_await perform(std::move(next));
    }
    if (auto* o = std::get_if<core::effect::open_maildrop>(&st.next)) {
        const std::chrono::seconds login_delay(ctx_.policy.login_delay);
        if (login_delay.count() > 0 && ctx_.limits.too_soon(o->user, std::chrono::steady_clock::now(), login_delay)) {
            spdlog::info("login refused: user=\"{}\" rip={} reason=\"pop3.login_delay: last login less than {}s ago\"",
                         util::log_escape(o->user), peer_, login_delay.count());
            core::step next = session_->on_login_refused(
                core::resp_code::login_delay, fmt::format("wait {} seconds between logins", login_delay.count()));
            co_return co_await perform(std::move(next));
        }
        // Counted before the open, so that many logins of one user at once cannot all pass.
        if (!ctx_.limits.login(o->user, ctx_.server.max_sessions_per_user)) {
            spdlog::warn("login refused: user=\"{}\" rip={} reason=\"server.max_sessions_per_user reached\"",
                         util::log_escape(o->user), peer_);
            core::step next = session_->on_login_refused(core::resp_code::in_use, "too many sessions for this user");
            co_return co_await perform(std::move(next));
        }
        {
            std::lock_guard lock(info_mutex_);
            logged_in_user_ = o->user;  // counted from here on, released with the connection
        }
        counted_login_ = true;
        // Cheapest first, as for messages: an unchanged maildrop whose index the kernel holds
        // opens here; anything else (the first login, new mail, a cold cache) on the pool.
        result<std::unique_ptr<storage::maildrop>, storage::error> opened{
            ctx_.store.try_open_without_blocking(o->user, ctx_.locking)};
        if (!opened.value()) {
            auto job = [this, user = o->user]() { return ctx_.store.open(user, ctx_.locking); };
            auto on_pool = co_await ctx_.pool.async_run(std::move(job));
            opened = std::move(on_pool);
        }
        if (opened) {
            spdlog::info("login: user=\"{}\" rip={} mech={} tls={} messages={}", util::log_escape(o->user), peer_,
                         session_->mechanism_name(), tls_ ? "yes" : "no", opened.value()->messages().size());
            if (tls_) {
                tls_->set_cleanse_plaintext(false);  // no more secrets from the client (STYLE.md habit 3)
            }
            ctx_.counters.count(ctx_.counters.logins[metrics::mechanism_index(session_->mechanism_name())]);
            if (login_delay.count() > 0) {
                ctx_.limits.note_login(o->user, std::chrono::steady_clock::now(), login_delay);
            }
            report(ctx_.usage.login(o->user, detect_address(address_), std::chrono::steady_clock::now(), ctx_.alert_thresholds), o->user);
            {
                std::lock_guard lock(info_mutex_);
                logged_in_at_ = std::chrono::system_clock::now();
            }
            set_phase(phase::transaction);
        } else {
            ctx_.counters.count(ctx_.counters.storage_errors[static_cast<int>(metrics::storage_error::maildrop_open)]);
            spdlog::warn("maildrop open failed: user=\"{}\" rip={} error=\"{}\"", util::log_escape(o->user), peer_,
                         util::log_escape(opened.error().detail, 512));
            // Back in AUTHORIZATION: no longer one of the user's sessions.
            ctx_.limits.logout(o->user);
            counted_login_ = false;
            std::lock_guard lock(info_mutex_);
            logged_in_user_.clear();
        }
        core::step next = session_->on_maildrop_opened(std::move(opened));
        co_return co_await perform(std::move(next));
    }
    if (auto* m = std::get_if<core::effect::send_message>(&st.next)) {
        co_return co_await send_message(*m);
    }
    if (std::holds_alternative<core::effect::start_tls>(st.next)) {
        co_return co_await start_tls();
    }
    if (auto* c = std::get_if<core::effect::commit>(&st.next)) {
        set_phase(phase::update);
        storage::maildrop* drop = session_->maildrop();
        auto job = [drop, indices = std::move(c->indices)]() { return drop->remove(indices); };
        auto removed = co_await ctx_.pool.async_run(std::move(job));
        if (!removed) {
            ctx_.counters.count(ctx_.counters.storage_errors[static_cast<int>(metrics::storage_error::remove)]);
            spdlog::error("removing deleted messages failed: user=\"{}\" rip={} error=\"{}\"",
                          util::log_escape(session_->user()), peer_, util::log_escape(removed.error().detail, 512));
        }
        core::step next = session_->on_commit_done(removed);
        if (removed && session_->stats().dele > 0) {
            report(ctx_.usage.deleted(session_->user(), session_->stats().dele, std::chrono::steady_clock::now(),
                                      ctx_.alert_thresholds),
                   session_->user());
        }
        co_return co_await perform(std::move(next));
    }
    if (std::holds_alternative<core::effect::close>(st.next)) {
        reason_ = session_->quit_requested() ? end_reason::quit : end_reason::closed_by_server;
        session_->release_maildrop();  // before the reply: the lock is gone when the client sees it
        co_await flush();
        co_return false;
    }
    co_return true;
}

namespace {

struct chunk {
    std::size_t bytes = 0;
    bool eof = false;
};

// Reads until `buf` is full, the message ends, or `read` has nothing more without blocking
// (nullopt). `read` answers like message_source::try_read_cached.
template <class Read>
result<chunk, storage::error> fill_with(std::span<char> buf, Read&& read) {
    chunk c;
    while (c.bytes < buf.size()) {
        result<std::optional<std::size_t>, storage::error> got = read(buf.subspan(c.bytes));
        if (!got) {
            return unexpected(got.error());
        }
        if (!got.value()) {
            break;
        }
        if (*got.value() == 0) {
            c.eof = true;
            break;
        }
        c.bytes += *got.value();
    }
    return c;
}

// Blocking reads (worker pool): a message smaller than one chunk costs one trip to the pool
// rather than one per read() plus one more to learn that it ended.
result<chunk, storage::error> fill(storage::message_source& src, std::span<char> buf) {
    return fill_with(buf, [&src](std::span<char> rest) -> result<std::optional<std::size_t>, storage::error> {
        auto got = src.read(rest);
        if (!got) {
            return unexpected(got.error());
        }
        return std::optional<std::size_t>{got.value()};
    });
}

// What the page cache already holds, on the event loop, without blocking. bytes == 0 and !eof
// means nothing was cached: the caller reads on the worker pool instead.
result<chunk, storage::error> fill_cached(storage::message_source& src, std::span<char> buf) {
    return fill_with(buf, [&src](std::span<char> rest) { return src.try_read_cached(rest); });
}

struct opened_message {
    std::unique_ptr<storage::message_source> source;
    chunk first;
};

}  // namespace

asio::awaitable<bool> connection::send_message(const core::effect::send_message& msg) {
    storage::maildrop* drop = session_->maildrop();
    const std::size_t index = msg.index;
    // for_overwrite: every byte is written by read() before it is used; zeroing the buffer per
    // RETR showed up in the profile.
    // Sized to the message (its stored form is never larger than its virtual size), so a 3 KiB
    // message does not cost a 256 KiB buffer.
    const std::size_t buf_size = static_cast<std::size_t>(std::clamp<std::uint64_t>(
        drop->messages()[index].virtual_size, read_chunk, limits::message_read_chunk));
    auto buffer = std::make_unique_for_overwrite<char[]>(buf_size);
    const std::span<char> buf(buffer.get(), buf_size);
    // Nothing is sent before the first chunk is in hand, so a message that vanished or cannot be
    // read still gets a clean -ERR rather than a dropped connection. Cheapest first: open and read
    // on the event loop when the kernel can do both without blocking (the usual case: mail just
    // listed is in the dentry and page caches); otherwise one worker-pool job does what is left.
    std::unique_ptr<storage::message_source> source = drop->try_open_message_cached(index);
    std::optional<chunk> first;
    if (source) {
        auto cached = fill_cached(*source, buf);
        if (!cached) {
            source.reset();  // let open_message() on the pool report it properly
        } else if (cached.value().bytes > 0 || cached.value().eof) {
            first = cached.value();
        }
    }
    if (!first) {
        auto open_job = [drop, index, buf, src = std::move(source)]() mutable -> result<opened_message, storage::error> {
            if (!src) {
                auto opened = drop->open_message(index);
                if (!opened) {
                    return unexpected(opened.error());
                }
                src = std::move(opened.value());
            }
            auto got = fill(*src, buf);
            if (!got) {
                return unexpected(got.error());
            }
            return opened_message{std::move(src), got.value()};
        };
        auto opened = co_await ctx_.pool.async_run(std::move(open_job));
        if (!opened) {
            ctx_.counters.count(
                ctx_.counters.storage_errors[static_cast<int>(metrics::storage_error::message_unavailable)]);
            spdlog::warn("message unavailable: user=\"{}\" rip={} msn={} error=\"{}\"", util::log_escape(session_->user()),
                         peer_, index + 1, util::log_escape(opened.error().detail, 512));
            core::step next = session_->on_message_unavailable(opened.error());
            co_return co_await perform(std::move(next));
        }
        source = std::move(opened.value().source);
        first = opened.value().first;
    }
    chunk c = *first;
    out_ += msg.ok_line;
    core::message_encoder encoder(msg.top_lines);
    storage::message_source* src = source.get();
    while (true) {
        const bool more = encoder.feed(std::string_view(buf.data(), c.bytes), out_);
        if (out_.size() >= limits::max_batched_output && !co_await flush()) {
            co_return false;
        }
        if (!more || c.eof) {
            break;
        }
        auto got = fill_cached(*src, buf);
        if (got && got.value().bytes == 0 && !got.value().eof) {
            auto read_job = [src, buf]() { return fill(*src, buf); };
            got = co_await ctx_.pool.async_run(std::move(read_job));
        }
        if (!got) {
            // +OK is already out: the only honest signal left is to drop the connection, so the
            // client sees no terminating "." and does not take a truncated message as whole.
            ctx_.counters.count(ctx_.counters.storage_errors[static_cast<int>(metrics::storage_error::read)]);
            spdlog::error("read failed mid-message: user=\"{}\" rip={} msn={} error=\"{}\"",
                          util::log_escape(session_->user()), peer_, index + 1,
                          util::log_escape(got.error().detail, 512));
            reason_ = end_reason::error;
            co_return false;
        }
        c = got.value();
    }
    encoder.finish(out_);
    if (!msg.top_lines) {
        session_->note_retrieved(index);
        report(ctx_.usage.retrieved(session_->user(), drop->messages()[index].virtual_size,
                                    std::chrono::steady_clock::now(), ctx_.alert_thresholds),
               session_->user());
    }
    co_return true;
}

asio::awaitable<bool> connection::start_tls() {
    if (!co_await flush()) {
        co_return false;
    }
    // STARTTLS command injection (RFC 7457 §2.2; CVE-2011-0411 and its POP3 relatives such as
    // CVE-2021-38542): whatever arrived after STLS was sent in the clear, possibly injected by a
    // man in the middle; it must not run inside the TLS session (RFC 2595 §4).
    framer_.discard_buffered();
    // With OpenSSL reading the socket itself, nothing sent before STLS reaches TLS except what is
    // still unread in the kernel, and that is not a TLS record: the handshake fails on it.
    tls_ = std::make_unique<tls_stream>(socket_, *ctx_.tls);
    arm_deadline(ctx_.timeouts.login);
    asio::error_code ec;
    co_await tls_->async_handshake(ec);
    if (ec) {
        spdlog::info("stls handshake failed: rip={} error=\"{}\"", peer_, util::log_escape(ec.message()));
        ctx_.counters.count(ctx_.counters.tls_handshake_failures);
        tls_.reset();
        reason_ = end_reason::error;
        co_return false;
    }
    tls_on_.store(true, std::memory_order_relaxed);
    core::step next = session_->on_tls_established();
    co_return co_await perform(std::move(next));
}

// An account crossed a usage threshold ([alerts]): one warning line, for log monitoring, and
// the counter behind `poplar stats` and the metrics.
void connection::report(const std::optional<detect::alert>& a, const std::string& user) {
    if (!a) {
        return;
    }
    ctx_.counters.alerts[static_cast<int>(a->kind)].fetch_add(1, std::memory_order_relaxed);
    spdlog::warn("alert: user=\"{}\" rip={} kind={} value={} threshold={} window={}s", util::log_escape(user), peer_,
                 detect::name(a->kind), a->value, a->threshold, ctx_.alert_thresholds.window.count());
}

void connection::time_command(std::size_t command, std::chrono::steady_clock::duration took) {
    const auto ns = static_cast<std::uint64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(took).count());
    server_counters::latency& h = ctx_.counters.command_latency[command];
    h.buckets[metrics::latency_bucket(ns)].fetch_add(1, std::memory_order_relaxed);
    h.sum_ns.fetch_add(ns, std::memory_order_relaxed);
}

void connection::log_session_end() const {
    const core::session_stats no_stats;
    const core::session_stats& s = session_ ? session_->stats() : no_stats;
    const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - started_).count();
    server_counters& n = ctx_.counters;
    n.retr.fetch_add(s.retr, std::memory_order_relaxed);
    n.retr_bytes.fetch_add(s.retr_bytes, std::memory_order_relaxed);
    n.top.fetch_add(s.top, std::memory_order_relaxed);
    n.dele.fetch_add(s.dele, std::memory_order_relaxed);
    n.auth_plaintext_refused.fetch_add(s.plaintext_refused, std::memory_order_relaxed);
    n.auth_malformed.fetch_add(s.malformed_auth, std::memory_order_relaxed);
    n.bytes_in.fetch_add(bytes_in_.load(std::memory_order_relaxed), std::memory_order_relaxed);
    n.bytes_out.fetch_add(bytes_out_.load(std::memory_order_relaxed), std::memory_order_relaxed);
    n.ended[static_cast<int>(reason_)].fetch_add(1, std::memory_order_relaxed);
    spdlog::info("session end: user=\"{}\" rip={} retr={}/{} top={} dele={} in={} out={} duration={:.3f}s reason={}",
                 session_ ? util::log_escape(session_->user()) : std::string(), peer_, s.retr, s.retr_bytes, s.top,
                 s.dele, bytes_in_.load(std::memory_order_relaxed), bytes_out_.load(std::memory_order_relaxed), secs,
                 reason_name(reason_));
}

}  // namespace poplar::net
