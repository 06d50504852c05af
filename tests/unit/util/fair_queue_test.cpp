// fair_queue's round robin, and worker_pool::async_run_fair on one thread: a client with many
// queued jobs does not delay another client's single job behind all of them.
#include "util/fair_queue.h"

#include <asio/co_spawn.hpp>
#include <asio/detached.hpp>
#include <asio/io_context.hpp>
#include <gtest/gtest.h>

#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "util/worker_pool.h"

namespace poplar::util {
namespace {

struct named final : fair_queue::job {
    named(std::string n, std::vector<std::string>& out) : name(std::move(n)), log(out) {}
    void run() override { log.push_back(name); }
    std::string name;
    std::vector<std::string>& log;
};

TEST(fair_queue, round_robin_over_keys_fifo_within_one) {
    fair_queue q;
    std::vector<std::string> ran;
    for (const char* n : {"a1", "a2", "a3"}) {
        q.push(1, std::make_unique<named>(n, ran));
    }
    q.push(2, std::make_unique<named>("b1", ran));
    q.push(3, std::make_unique<named>("c1", ran));
    q.push(2, std::make_unique<named>("b2", ran));
    while (auto j = q.pop()) {
        j->run();
    }
    EXPECT_EQ(ran, (std::vector<std::string>{"a1", "b1", "c1", "a2", "b2", "a3"}));
    EXPECT_EQ(q.pop(), nullptr);
}

TEST(worker_pool, a_busy_client_does_not_queue_ahead_of_another) {
    worker_pool pool(1);
    asio::io_context io;
    std::mutex m;
    std::vector<std::string> done;
    auto submit = [&](std::size_t client, std::string name) {
        asio::co_spawn(io, [&, client, name]() -> asio::awaitable<void> {
            auto job = [&, name] {
                std::this_thread::sleep_for(std::chrono::milliseconds(20));
                std::lock_guard lock(m);
                done.push_back(name);
                return 0;
            };
            co_await pool.async_run_fair(client, std::move(job));
        }, asio::detached);
    };
    for (int i = 0; i < 6; ++i) {
        submit(7, "guess" + std::to_string(i));
    }
    submit(8, "owner");
    io.run();
    pool.join();
    ASSERT_EQ(done.size(), 7u);
    // The one worker had taken guess0 before owner arrived at most; then owner's turn comes.
    const auto at = std::find(done.begin(), done.end(), "owner") - done.begin();
    EXPECT_LE(at, 2) << "owner ran after " << at << " guesses";
}

}  // namespace
}  // namespace poplar::util
