// The auth process's request handling: SASL exchanges relayed by the network process, run
// against the user database with the authentication penalties and the familiar addresses, each
// decision logged here, where it is made (docs/operations.md "Logs").
//
// Runs on the auth process's one event loop; hashes go to the worker pool in turn per client
// address (util::worker_pool::async_run_fair), so a guesser's queue delays nobody else, and a
// login whose password the verification cache holds finishes on the loop. The penalty a reply
// asks the network process to wait is enforced here too: a resume that comes early waits the
// rest, so a network process that skips the wait gains nothing.
#pragma once

#include <asio/awaitable.hpp>
#include <asio/io_context.hpp>

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <unordered_map>

#include "auth_wire/protocol.h"
#include "authd/user_database.h"
#include "detect/auth_penalties.h"
#include "detect/familiar_addresses.h"
#include "util/secret.h"
#include "util/worker_pool.h"

namespace poplar::authd {

class auth_service {
public:
    // Sends one frame on channel `channel` (auth_process.cpp); must not block.
    using send_fn = std::function<void(std::size_t channel, std::string frame)>;

    auth_service(asio::io_context& io, util::worker_pool& pool, std::uint32_t generation,
                 std::size_t penalty_table_size, detect::familiar_addresses& familiar, send_fn send);

    void set_database(std::shared_ptr<const user_database> db) { db_ = std::move(db); }
    const user_database& database() const { return *db_; }
    std::uint32_t generation() const { return generation_; }

    // A step, resume or end from the network process on `channel` (others are the caller's).
    void on_step(std::size_t channel, auth_wire::step s);
    void on_resume(std::size_t channel, const auth_wire::resume& r);
    void on_end(const auth_wire::end& e);
    // LMTP RCPT: resolves the address (delivery/recipient_lookup.h) and answers lookup_reply,
    // on the loop when the user database can answer without blocking, else on the pool.
    void on_lookup(std::size_t channel, auth_wire::lookup l);

    // Exchanges left open longer than a session may stay unauthenticated are forgotten
    // (limits::max_unauthenticated_session): called now and then by the process.
    void forget_stale(std::chrono::steady_clock::time_point now);

    // The familiar addresses changed since the last call (to save them).
    bool take_familiar_changed() { return std::exchange(familiar_changed_, false); }
    std::size_t exchanges() const { return exchanges_.size(); }

private:
    struct exchange;
    using exchange_ptr = std::shared_ptr<exchange>;

    void run(const exchange_ptr& ex, util::secret_string response);
    asio::awaitable<void> verify(exchange_ptr ex, util::secret_string response);
    asio::awaitable<void> wait_then_verify(exchange_ptr ex, std::chrono::steady_clock::duration left);
    void finish(const exchange_ptr& ex, auth::sasl_mechanism::step_result r);
    void send_reply(std::size_t channel, auth_wire::reply r);
    asio::awaitable<void> lookup_on_pool(std::size_t channel, auth_wire::lookup l,
                                         std::shared_ptr<const user_database> db);
    void refuse(std::size_t channel, std::uint64_t id, auth_wire::verdict v, std::string reason);

    asio::io_context& io_;
    util::worker_pool& pool_;
    const std::uint32_t generation_;
    detect::auth_penalties penalties_;
    detect::familiar_addresses& familiar_;
    bool familiar_changed_ = false;
    send_fn send_;
    std::shared_ptr<const user_database> db_;
    std::unordered_map<std::uint64_t, exchange_ptr> exchanges_;
};

}  // namespace poplar::authd
