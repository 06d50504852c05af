// The worker pool: where blocking work (password hashing, disk I/O) runs, off the event loop.
//
// STYLE.md habit 6: an event-loop thread never blocks. async_run() posts a function to the pool
// and completes on the caller's executor (a connection's strand) with its return value, so a
// coroutine writes `auto r = co_await pool.async_run([&] { return store.open(user); });`.
#pragma once

#include <asio/associated_executor.hpp>
#include <asio/async_result.hpp>
#include <asio/dispatch.hpp>
#include <asio/executor_work_guard.hpp>
#include <asio/post.hpp>
#include <asio/thread_pool.hpp>
#include <asio/use_awaitable.hpp>

#include <type_traits>
#include <utility>

namespace poplar::net {

class worker_pool {
public:
    explicit worker_pool(unsigned threads) : pool_(threads) {}
    ~worker_pool() { join(); }
    worker_pool(const worker_pool&) = delete;
    worker_pool& operator=(const worker_pool&) = delete;

    // GCC 12 may destroy non-trivial temporaries in a co_await expression twice, so callers
    // pass a named job with std::move, and nothing here is a temporary of the caller's co_await.
    template <class F, class Token = asio::use_awaitable_t<>>
    auto async_run(F&& f, Token&& token = {}) {
        using job = std::decay_t<F>;
        using R = std::invoke_result_t<job&>;
        return asio::async_initiate<Token, void(R)>(
            [this](auto handler, job fn) {
                auto work = asio::make_work_guard(asio::get_associated_executor(handler));
                asio::post(pool_, [handler = std::move(handler), fn = std::move(fn), work = std::move(work)]() mutable {
                    R r = fn();
                    auto ex = work.get_executor();
                    asio::dispatch(ex, [handler = std::move(handler), r = std::move(r)]() mutable {
                        std::move(handler)(std::move(r));
                    });
                    work.reset();
                });
            },
            token, std::forward<F>(f));
    }

    // Waits for queued and running jobs to finish; idempotent. Each job's completion is posted to
    // its caller's event loop, so the loops must outlive this call.
    void join() { pool_.join(); }

private:
    asio::thread_pool pool_;
};

}  // namespace poplar::net
