// The network process's side of the auth process (authd/): one channel per event loop, each a
// SOCK_SEQPACKET socket to the auth process, and the authenticator the POP3 core sees, whose
// mechanisms only relay the client's responses (docs/security.md "Processes").
//
// A connection's login is one or more request/reply pairs on its own loop's channel, so no
// reply ever crosses threads. A channel is "down" from the supervisor's reset (the auth process
// died) to the next auth process's hello; meanwhile, and when a reply does not come within
// limits::auth_reply_timeout, the login is a temporary failure (-ERR [SYS/TEMP], RFC 3206 §4),
// never a hang.
#pragma once

#include <asio/awaitable.hpp>
#include <asio/generic/seq_packet_protocol.hpp>
#include <asio/io_context.hpp>
#include <asio/steady_timer.hpp>

#include <atomic>
#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "auth/authenticator.h"
#include "auth_wire/protocol.h"
#include "util/result.h"

namespace poplar::net {

// What every channel shares: the mechanisms the auth process announced, the addresses it said
// are blocked (checked at accept), the penalty table's size (for the metrics) and the ids.
class auth_state {
public:
    using clock = std::chrono::steady_clock;

    std::shared_ptr<const std::vector<auth_wire::mechanism>> mechanisms() const;
    void set_mechanisms(std::vector<auth_wire::mechanism> m);

    // From each verdict: how long the client's address stays blocked (0: not, or no longer).
    void note_blocked(const auth_wire::address& a, std::chrono::milliseconds left, clock::time_point now);
    std::chrono::milliseconds blocked_for(const auth_wire::address& a, clock::time_point now);
    void forget_blocks();  // the auth process that decided them is gone

    std::uint64_t next_id() { return ids_.fetch_add(1, std::memory_order_relaxed) + 1; }
    std::atomic<std::uint64_t> penalty_keys{0};

private:
    mutable std::mutex mutex_;
    std::shared_ptr<const std::vector<auth_wire::mechanism>> mechanisms_;
    std::map<auth_wire::address, clock::time_point> blocked_;
    std::atomic<bool> any_blocked_{false};
    std::atomic<std::uint64_t> ids_{0};
};

class auth_channel {
public:
    auth_channel(asio::io_context& io, int fd, auth_state& shared);
    ~auth_channel();

    // Before the loop runs: waits (blocking) for the first auth process's hello. The error
    // says why it did not come (the auth process could not start, or the time ran out).
    result<void, std::string> wait_for_hello(std::chrono::milliseconds timeout);
    // Starts reading replies on the loop; `lost` is called there if the supervisor goes away.
    void start(std::function<void()> lost);
    // Closes and destroys the socket, before its loop's io_context goes: the channel itself
    // outlives the io_context, whose destruction ends the sessions (and their exchanges, whose
    // end() then finds the channel closed).
    void close();

    // Requests; each completes on this channel's loop, with nullopt when the auth process is
    // down, dies meanwhile or does not answer in time.
    asio::awaitable<std::optional<auth_wire::reply>> step(auth_wire::step s);
    asio::awaitable<std::optional<auth_wire::reply>> resume(std::uint64_t exchange);
    asio::awaitable<std::optional<auth_wire::reload_reply>> reload(bool commit);
    // LMTP RCPT: the user and quota that receive mail for `address` (auth_wire::lookup).
    asio::awaitable<std::optional<auth_wire::lookup_reply>> lookup(std::string address);
    // The exchange is over on this side; never waits (a lost one the auth process forgets later).
    void end(std::uint64_t exchange, auth_wire::end_reason why);

    bool up() const { return up_; }

private:
    struct waiter;
    asio::awaitable<std::optional<auth_wire::message>> request(std::uint64_t id, std::string frame);
    asio::awaitable<void> read_loop();
    void take(auth_wire::message m);
    void fail_all();

    asio::io_context& io_;
    std::optional<asio::generic::seq_packet_protocol::socket> socket_;
    auth_state& shared_;
    std::function<void()> lost_;
    std::unordered_map<std::uint64_t, waiter*> waiting_;
    std::uint32_t generation_ = 0;
    bool up_ = false;
};

// A SASL exchange as the POP3 core sees it; the connection relays its steps to the auth
// process (connection.cpp). It holds no secret and verifies nothing.
class relay_mechanism final : public auth::sasl_mechanism {
public:
    relay_mechanism(std::string name, std::string initial_challenge, std::string apop_timestamp)
        : name_(std::move(name)), initial_challenge_(std::move(initial_challenge)),
          apop_timestamp_(std::move(apop_timestamp)) {}
    ~relay_mechanism() override;

    std::string initial_challenge() const override { return initial_challenge_; }
    // Never called: the connection relays. Answers a temporary failure rather than guessing.
    step_result step(std::string_view client_response) override;

    const std::string& name() const { return name_; }
    const std::string& apop_timestamp() const { return apop_timestamp_; }
    // The first relayed step binds the exchange to its id and channel; its end is sent when the
    // core drops it before a verdict (the client cancelled, the session ended).
    bool started() const { return channel_ != nullptr; }
    void bind(auth_channel& ch, std::uint64_t id) {
        channel_ = &ch;
        id_ = id;
    }
    std::uint64_t id() const { return id_; }
    void finished() { open_ = false; }

private:
    std::string name_;
    std::string initial_challenge_;
    std::string apop_timestamp_;
    auth_channel* channel_ = nullptr;
    std::uint64_t id_ = 0;
    bool open_ = true;
};

// The authenticator of `poplar serve`: the auth process's mechanisms, as relays.
class relay_authenticator final : public auth::authenticator {
public:
    explicit relay_authenticator(auth_state& shared) : shared_(shared) {}
    std::vector<auth::mechanism_info> mechanisms() const override;
    std::unique_ptr<auth::sasl_mechanism> start(std::string_view name) override;
    std::unique_ptr<auth::sasl_mechanism> start_apop(std::string timestamp) override;

private:
    auth_state& shared_;
};

}  // namespace poplar::net
