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
#include <asio/io_context.hpp>
#include <asio/use_awaitable.hpp>

#include <algorithm>
#include <memory>
#include <thread>
#include <vector>
#include <type_traits>

#include "util/fair_queue.h"
#include <utility>

namespace poplar::util {

// A queued job for async_run_fair: the completion lambda, type-erased for the fair_queue.
template <class Fn>
struct fair_job final : fair_queue::job {
    explicit fair_job(Fn f) : fn(std::move(f)) {}
    void run() override { fn(); }
    Fn fn;
};

class worker_pool {
public:
    // `start_now` false: the threads start at start(), so that a process can confine itself
    // first (util/sandbox.h: Landlock binds the threads started after it). Jobs posted before
    // then wait.
    explicit worker_pool(unsigned threads, bool start_now = true) : threads_(threads), guard_(io_.get_executor()) {
        if (start_now) {
            start();
        }
    }
    ~worker_pool() { join(); }

    // Starts the threads; idempotent.
    void start() {
        if (!workers_.empty() || joined_) {
            return;
        }
        for (unsigned i = 0; i < std::max(1u, threads_); ++i) {
            workers_.emplace_back([this] { io_.run(); });
        }
    }
    worker_pool(const worker_pool&) = delete;
    worker_pool& operator=(const worker_pool&) = delete;

    // GCC 12 may destroy non-trivial temporaries in a co_await expression twice, so callers
    // pass a named job with std::move, and nothing here is a temporary of the caller's co_await.
    template <class F, class Token = asio::use_awaitable_t<>>
    auto async_run(F&& f, Token&& token = {}) {
        using task = std::decay_t<F>;
        using R = std::invoke_result_t<task&>;
        return asio::async_initiate<Token, void(R)>(
            [this](auto handler, task fn) { asio::post(io_, completion<R>(std::move(handler), std::move(fn))); },
            token, std::forward<F>(f));
    }

    // As async_run(), but jobs are taken in turn per `client` (fair_queue.h): for work whose
    // amount a client decides, such as password verifications.
    template <class F, class Token = asio::use_awaitable_t<>>
    auto async_run_fair(std::size_t client, F&& f, Token&& token = {}) {
        using task = std::decay_t<F>;
        using R = std::invoke_result_t<task&>;
        return asio::async_initiate<Token, void(R)>(
            [this, client](auto handler, task fn) {
                auto run = completion<R>(std::move(handler), std::move(fn));
                fair_.push(client, std::make_unique<fair_job<decltype(run)>>(std::move(run)));
                // One runner per job: each takes whichever job is next in turn, not its own.
                asio::post(io_, [this] {
                    if (auto next = fair_.pop()) {
                        next->run();
                    }
                });
            },
            token, std::forward<F>(f));
    }

    // Waits for queued and running jobs to finish; idempotent. Each job's completion is posted to
    // its caller's event loop, so the loops must outlive this call. A pool never started runs
    // what is queued on this thread.
    void join() {
        if (joined_) {
            return;
        }
        joined_ = true;
        guard_.reset();
        if (workers_.empty()) {
            io_.run();
        }
        for (std::thread& t : workers_) {
            t.join();
        }
        workers_.clear();
    }

private:
    // What a worker runs: the job, then its result handed to the caller's executor. The work
    // guard keeps that executor's loop alive while the job is out.
    template <class R, class Handler, class Task>
    static auto completion(Handler handler, Task fn) {
        auto work = asio::make_work_guard(asio::get_associated_executor(handler));
        return [handler = std::move(handler), fn = std::move(fn), work = std::move(work)]() mutable {
            R r = fn();
            auto ex = work.get_executor();
            asio::dispatch(ex, [handler = std::move(handler), r = std::move(r)]() mutable {
                std::move(handler)(std::move(r));
            });
            work.reset();
        };
    }

    fair_queue fair_;  // before the threads: they use it until join()
    unsigned threads_;
    asio::io_context io_;
    asio::executor_work_guard<asio::io_context::executor_type> guard_;
    std::vector<std::thread> workers_;
    bool joined_ = false;
};

}  // namespace poplar::util
