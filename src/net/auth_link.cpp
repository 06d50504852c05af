// The network process's channels to the auth process and the relaying authenticator (auth_link.h).
#include "net/auth_link.h"

#include <asio/co_spawn.hpp>
#include <asio/detached.hpp>
#include <asio/redirect_error.hpp>
#include <asio/use_awaitable.hpp>
#include <poll.h>
#include <spdlog/spdlog.h>
#include <sys/socket.h>

#include <cerrno>
#include <cstring>

#include "core/limits.h"
#include "util/secret.h"
#include "util/text.h"

namespace poplar::net {

using asio::use_awaitable;

// --- auth_state ---

std::shared_ptr<const std::vector<auth_wire::mechanism>> auth_state::mechanisms() const {
    std::lock_guard lock(mutex_);
    return mechanisms_;
}

void auth_state::set_mechanisms(std::vector<auth_wire::mechanism> m) {
    auto next = std::make_shared<const std::vector<auth_wire::mechanism>>(std::move(m));
    std::lock_guard lock(mutex_);
    mechanisms_ = std::move(next);
}

void auth_state::note_blocked(const auth_wire::address& a, std::chrono::milliseconds left, clock::time_point now) {
    if (left.count() == 0 && !any_blocked_.load(std::memory_order_relaxed)) {
        return;  // the common case: nothing blocked, nothing to lift
    }
    std::lock_guard lock(mutex_);
    if (left.count() > 0) {
        blocked_[a] = now + left;
    } else {
        blocked_.erase(a);
    }
    // Expired blocks go when the map is touched, so it holds only the addresses blocked now.
    std::erase_if(blocked_, [now](const auto& kv) { return kv.second <= now; });
    any_blocked_.store(!blocked_.empty(), std::memory_order_relaxed);
}

std::chrono::milliseconds auth_state::blocked_for(const auth_wire::address& a, clock::time_point now) {
    if (!any_blocked_.load(std::memory_order_relaxed)) {
        return std::chrono::milliseconds(0);  // no lock on the path of every accept
    }
    std::lock_guard lock(mutex_);
    auto it = blocked_.find(a);
    if (it == blocked_.end() || it->second <= now) {
        return std::chrono::milliseconds(0);
    }
    return std::chrono::ceil<std::chrono::milliseconds>(it->second - now);
}

void auth_state::forget_blocks() {
    std::lock_guard lock(mutex_);
    blocked_.clear();
    any_blocked_.store(false, std::memory_order_relaxed);
}

// --- auth_channel ---

struct auth_channel::waiter {
    explicit waiter(asio::io_context& io) : timer(io) {}
    asio::steady_timer timer;
    std::optional<auth_wire::message> answer;
    bool failed = false;  // reset or lost before the answer
};

auth_channel::auth_channel(asio::io_context& io, int fd, auth_state& shared)
    : io_(io), socket_(std::in_place, io, asio::generic::seq_packet_protocol(AF_UNIX, 0), fd), shared_(shared) {}

auth_channel::~auth_channel() = default;

result<void, std::string> auth_channel::wait_for_hello(std::chrono::milliseconds timeout) {
    const int fd = socket_->native_handle();
    const auto until = std::chrono::steady_clock::now() + timeout;
    std::vector<std::uint8_t> buf(auth_wire::max_frame + 1);
    for (;;) {
        const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(until - std::chrono::steady_clock::now());
        if (left.count() <= 0) {
            return unexpected(std::string("the auth process did not start within ") +
                              std::to_string(timeout.count() / 1000) + "s");
        }
        pollfd p{fd, POLLIN, 0};
        const int ready = ::poll(&p, 1, static_cast<int>(left.count()));
        if (ready < 0 && errno == EINTR) {
            continue;
        }
        if (ready <= 0) {
            continue;
        }
        const ssize_t n = ::recv(fd, buf.data(), buf.size(), MSG_DONTWAIT);
        if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
            continue;
        }
        if (n <= 0) {
            return unexpected(std::string("the auth supervisor exited"));
        }
        auto m = auth_wire::decode(std::span<const std::uint8_t>(buf.data(), static_cast<std::size_t>(n)));
        if (!m) {
            return unexpected("protocol error from the auth process: " + m.error());
        }
        if (auto* h = std::get_if<auth_wire::hello>(&m.value())) {
            generation_ = h->generation;
            up_ = true;
            shared_.set_mechanisms(std::move(h->mechanisms));
            return {};
        }
        if (std::holds_alternative<auth_wire::reset>(m.value())) {
            return unexpected(std::string("the auth process could not start (its log lines say why)"));
        }
    }
}

void auth_channel::start(std::function<void()> lost) {
    lost_ = std::move(lost);
    asio::co_spawn(io_, read_loop(), asio::detached);
}

void auth_channel::close() {
    up_ = false;
    fail_all();
    socket_.reset();
}

asio::awaitable<void> auth_channel::read_loop() {
    std::vector<std::uint8_t> buf(auth_wire::max_frame + 1);
    for (;;) {
        asio::error_code ec;
        asio::socket_base::message_flags flags = 0;
        const std::size_t n =
            co_await socket_->async_receive(asio::buffer(buf), flags, asio::redirect_error(use_awaitable, ec));
        if (ec == asio::error::operation_aborted) {
            break;  // closed at shutdown
        }
        if (ec || n == 0) {
            spdlog::critical("auth supervisor gone ({}): logins fail with [SYS/TEMP]; stopping",
                             ec ? ec.message() : std::string("end of file"));
            up_ = false;
            fail_all();
            if (lost_) {
                lost_();
            }
            break;
        }
        auto m = auth_wire::decode(std::span<const std::uint8_t>(buf.data(), n));
        if (!m) {
            spdlog::error("auth protocol error from the auth process: {}", m.error());
            continue;
        }
        take(std::move(m.value()));
    }
}

void auth_channel::take(auth_wire::message m) {
    std::uint64_t id = 0;
    if (auto* h = std::get_if<auth_wire::hello>(&m)) {
        generation_ = h->generation;
        up_ = true;
        shared_.set_mechanisms(std::move(h->mechanisms));
        spdlog::info("auth process generation {} is up", generation_);
        return;
    }
    if (auto* r = std::get_if<auth_wire::reset>(&m)) {
        if (r->generation == generation_ && up_) {
            up_ = false;
            shared_.forget_blocks();
            fail_all();
        }
        return;
    }
    if (auto* r = std::get_if<auth_wire::reply>(&m)) {
        id = r->exchange;
    } else if (auto* q = std::get_if<auth_wire::reload_reply>(&m)) {
        id = q->request;
    } else if (auto* l = std::get_if<auth_wire::lookup_reply>(&m)) {
        id = l->request;
    } else {
        spdlog::error("auth protocol: unexpected message {} from the auth process", m.index());
        return;
    }
    auto it = waiting_.find(id);
    if (it == waiting_.end()) {
        return;  // its waiter gave up (timeout, reset)
    }
    it->second->answer = std::move(m);
    it->second->timer.cancel();
    waiting_.erase(it);
}

void auth_channel::fail_all() {
    for (auto& [id, w] : waiting_) {
        w->failed = true;
        w->timer.cancel();
    }
    waiting_.clear();
}

asio::awaitable<std::optional<auth_wire::message>> auth_channel::request(std::uint64_t id, std::string frame) {
    if (!up_ || !socket_) {
        util::wipe(frame);
        co_return std::nullopt;
    }
    waiter w(io_);
    w.timer.expires_after(limits::auth_reply_timeout);
    waiting_.emplace(id, &w);
    asio::error_code ec;
    co_await socket_->async_send(asio::buffer(frame), 0, asio::redirect_error(use_awaitable, ec));
    util::wipe(frame);  // a step carries the client's password
    if (ec) {
        waiting_.erase(id);
        spdlog::error("auth protocol: sending to the auth process failed: {}", ec.message());
        co_return std::nullopt;
    }
    if (!w.answer && !w.failed) {
        co_await w.timer.async_wait(asio::redirect_error(use_awaitable, ec));
    }
    if (!w.answer) {
        waiting_.erase(id);
        if (!ec && !w.failed) {
            spdlog::error("auth protocol: no reply from the auth process within {}s",
                          std::chrono::duration_cast<std::chrono::seconds>(limits::auth_reply_timeout).count());
        }
    }
    co_return std::move(w.answer);
}

asio::awaitable<std::optional<auth_wire::reply>> auth_channel::step(auth_wire::step s) {
    s.generation = generation_;
    const std::uint64_t id = s.exchange;
    std::string frame = auth_wire::encode(s);
    util::wipe(s.response);
    auto m = co_await request(id, std::move(frame));
    if (!m) {
        co_return std::nullopt;
    }
    co_return std::get<auth_wire::reply>(std::move(*m));
}

asio::awaitable<std::optional<auth_wire::reply>> auth_channel::resume(std::uint64_t exchange) {
    auto m = co_await request(exchange, auth_wire::encode(auth_wire::resume{exchange, generation_}));
    if (!m) {
        co_return std::nullopt;
    }
    co_return std::get<auth_wire::reply>(std::move(*m));
}

asio::awaitable<std::optional<auth_wire::reload_reply>> auth_channel::reload(bool commit) {
    const std::uint64_t id = shared_.next_id();
    auto m = co_await request(id, auth_wire::encode(auth_wire::reload{id, generation_, commit}));
    if (!m) {
        co_return std::nullopt;
    }
    co_return std::get<auth_wire::reload_reply>(std::move(*m));
}

asio::awaitable<std::optional<auth_wire::lookup_reply>> auth_channel::lookup(std::string address) {
    const std::uint64_t id = shared_.next_id();
    // Built before the co_await: GCC 12 destroys a temporary holding a string twice when it
    // lives in a co_await's full expression (found by ASan here).
    const auth_wire::message request_message = auth_wire::lookup{id, generation_, std::move(address)};
    std::string frame = auth_wire::encode(request_message);
    auto m = co_await request(id, std::move(frame));
    if (!m) {
        co_return std::nullopt;
    }
    // An answer of another type under this id is the auth process's bug: no answer, not a crash.
    auto* reply = std::get_if<auth_wire::lookup_reply>(&*m);
    if (reply == nullptr) {
        co_return std::nullopt;
    }
    co_return std::move(*reply);
}

void auth_channel::end(std::uint64_t exchange, auth_wire::end_reason why) {
    if (!up_ || !socket_) {
        return;
    }
    const std::string frame = auth_wire::encode(auth_wire::end{exchange, generation_, why});
    (void)::send(socket_->native_handle(), frame.data(), frame.size(), MSG_DONTWAIT | MSG_NOSIGNAL);
}

// --- relay_mechanism, relay_authenticator ---

relay_mechanism::~relay_mechanism() {
    if (channel_ != nullptr && open_) {
        channel_->end(id_, auth_wire::end_reason::finished);
    }
}

auth::sasl_mechanism::step_result relay_mechanism::step(std::string_view) {
    step_result r;
    r.done = true;
    r.result = auth::outcome(auth::verdict::temporary_failure, {}, "relayed exchange stepped in the network process");
    return r;
}

std::vector<auth::mechanism_info> relay_authenticator::mechanisms() const {
    std::vector<auth::mechanism_info> out;
    if (auto ms = shared_.mechanisms()) {
        for (const auth_wire::mechanism& m : *ms) {
            out.push_back({m.name, m.sends_plaintext});
        }
    }
    return out;
}

std::unique_ptr<auth::sasl_mechanism> relay_authenticator::start(std::string_view name) {
    if (auto ms = shared_.mechanisms()) {
        for (const auth_wire::mechanism& m : *ms) {
            if (util::iequals(m.name, name)) {
                return std::make_unique<relay_mechanism>(m.name, m.initial_challenge, std::string());
            }
        }
    }
    return nullptr;
}

std::unique_ptr<auth::sasl_mechanism> relay_authenticator::start_apop(std::string timestamp) {
    return std::make_unique<relay_mechanism>("APOP", std::string(), std::move(timestamp));
}

}  // namespace poplar::net
