// Session runners. One io_context per thread; the calling thread only coordinates and samples
// the server's memory while the sessions run.
#include "sessions.h"

#include <asio/co_spawn.hpp>
#include <asio/detached.hpp>
#include <asio/io_context.hpp>
#include <asio/post.hpp>
#include <asio/redirect_error.hpp>
#include <asio/steady_timer.hpp>
#include <asio/this_coro.hpp>
#include <asio/use_awaitable.hpp>
#include <fmt/format.h>

#include <algorithm>
#include <atomic>
#include <memory>
#include <thread>

#include "pop3_client.h"

namespace loadgen {

namespace {

using clock_type = std::chrono::steady_clock;
using asio::use_awaitable;

constexpr std::size_t max_error_samples = 5;
// How often the coordinator samples the server's RSS for the peak (cheap: /proc/N/stat only).
constexpr auto rss_sample_period = std::chrono::milliseconds(500);
// Idle mode: memory is sampled this long after the last login, once the servers have settled.
constexpr auto idle_settle = std::chrono::seconds(1);

std::atomic<bool> stop_requested{false};

double ms_since(clock_type::time_point t0) {
    return std::chrono::duration<double, std::milli>(clock_type::now() - t0).count();
}

// State shared by every thread of one run.
struct shared_run {
    const options& opt;
    asio::ip::tcp::endpoint ep;
    asio::ssl::context* tls;
    clock_type::time_point start;
    clock_type::time_point stop_starting;  // --duration
    std::atomic<std::uint64_t> next_user{0};
    std::atomic<std::uint64_t> claimed{0};
    std::atomic<std::uint64_t> paced{0};  // --rate: sessions given a start slot so far
    // idle
    std::atomic<std::uint64_t> idle_done{0};  // sessions that logged in or failed trying
    std::atomic<std::uint64_t> idle_ok{0};
    std::atomic<bool> released{false};  // a holder that starts after the release does not wait

    const credential& pick_user() {
        return opt.users[next_user.fetch_add(1, std::memory_order_relaxed) % opt.users.size()];
    }
    // May one more session start? Bounded by --sessions and --duration.
    bool claim() {
        if (clock_type::now() >= stop_starting || stop_requested.load(std::memory_order_relaxed)) {
            return false;
        }
        return !opt.sessions || claimed.fetch_add(1, std::memory_order_relaxed) < *opt.sessions;
    }
    std::chrono::nanoseconds session_timeout() const {
        return std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::duration<double>(opt.timeout_s));
    }
};

std::string describe(const std::exception& e, clock_type::time_point deadline) {
    if (clock_type::now() >= deadline) {
        return fmt::format("session timeout (--timeout) during: {}", e.what());
    }
    return e.what();
}

// One worker of full/login mode: sessions back to back until the run is over.
asio::awaitable<void> session_worker(shared_run& sh, run_result& out) {
    const auto ex = co_await asio::this_coro::executor;
    const options& opt = sh.opt;
    std::vector<std::uint64_t> sizes;
    while (sh.claim()) {
        if (opt.rate > 0) {
            // Open loop: session n starts at start + n / rate, however long earlier ones take.
            const auto n = static_cast<double>(sh.paced.fetch_add(1));
            const auto due = sh.start + std::chrono::duration_cast<clock_type::duration>(
                                            std::chrono::duration<double>(n / opt.rate));
            if (due > clock_type::now()) {
                asio::steady_timer pace(ex, due);
                asio::error_code ignored;
                co_await pace.async_wait(asio::redirect_error(use_awaitable, ignored));
            }
        }
        const credential& who = sh.pick_user();
        const auto t0 = clock_type::now();
        const auto deadline = t0 + sh.session_timeout();
        pop3_client c(ex, sh.tls);
        c.set_deadline(deadline);
        bool failed = false;
        try {
            co_await c.open(sh.ep, opt.tls);
            const auto login = co_await c.login(who, opt.auth);
            const auto logged_in = clock_type::now();
            if (opt.mode == run_mode::login && opt.stat) {
                co_await c.stat();
                out.ready_ms.push_back(static_cast<float>(
                    std::chrono::duration<double, std::milli>(login + (clock_type::now() - logged_in)).count()));
            }
            if (opt.mode == run_mode::full) {
                const auto [count, total] = co_await c.stat();
                out.ready_ms.push_back(static_cast<float>(
                    std::chrono::duration<double, std::milli>(login + (clock_type::now() - logged_in)).count()));
                co_await c.list(sizes);
                std::uint64_t sum = 0;
                for (std::uint64_t s : sizes) {
                    sum += s;
                }
                if (sizes.size() != count || sum != total) {
                    throw pop3_failure(fmt::format("user {}: STAT says {} messages / {} octets, LIST {} / {}",
                                                   who.user, count, total, sizes.size(), sum));
                }
                const std::uint64_t uidls = co_await c.uidl();
                if (uidls != count) {
                    throw pop3_failure(fmt::format("user {}: UIDL lists {} of {} messages", who.user, uidls, count));
                }
                for (std::uint64_t msn = 1; msn <= count; ++msn) {
                    const retr_result r = co_await c.retr(msn);
                    if (r.message_octets != sizes[msn - 1]) {
                        throw pop3_failure(fmt::format("user {}: RETR {} sent {} octets, LIST said {}", who.user,
                                                       msn, r.message_octets, sizes[msn - 1]));
                    }
                    ++out.messages;
                    out.retr_wire_bytes += r.wire_octets;
                }
                if (opt.dele) {
                    for (std::uint64_t msn = 1; msn <= count; ++msn) {
                        const std::string dele = fmt::format("DELE {}", msn);
                        co_await c.simple(dele);
                    }
                    co_await c.simple("RSET");
                }
            }
            co_await c.quit();
            out.latency_ms.push_back(static_cast<float>(ms_since(t0)));
            out.login_ms.push_back(static_cast<float>(std::chrono::duration<double, std::milli>(login).count()));
            if (out.cipher.empty()) {
                out.cipher = c.cipher();
            }
            ++out.sessions;
        } catch (const std::exception& e) {
            out.add_error(describe(e, deadline));
            failed = true;
        }
        c.close();
        if (failed) {
            // A refusing or crashed server must not turn the run into a busy loop.
            asio::steady_timer pause(ex, std::chrono::milliseconds(10));
            asio::error_code ignored;
            co_await pause.async_wait(asio::redirect_error(use_awaitable, ignored));
        }
    }
}

// Idle mode, per session: logged in by a launcher, then held here until released.
asio::awaitable<void> idle_holder(std::shared_ptr<pop3_client> c, asio::steady_timer& release, shared_run& sh,
                                  run_result& out) {
    if (!sh.released.load()) {
        asio::error_code ec;
        co_await release.async_wait(asio::redirect_error(use_awaitable, ec));
    }
    const auto deadline = clock_type::now() + sh.session_timeout();
    c->set_deadline(deadline);
    try {
        co_await c->quit();
        ++out.sessions;
    } catch (const std::exception& e) {
        out.add_error(fmt::format("after holding the session: {}", describe(e, deadline)));
    }
    c->close();
}

// Idle mode: opens sessions one after another (--ramp launchers in all), hands each to a holder.
asio::awaitable<void> idle_launcher(shared_run& sh, run_result& out, asio::steady_timer& release) {
    const auto ex = co_await asio::this_coro::executor;
    const std::uint64_t total = sh.opt.concurrency;
    while (sh.claimed.fetch_add(1) < total && !stop_requested.load()) {
        const credential& who = sh.pick_user();
        const auto t0 = clock_type::now();
        const auto deadline = t0 + sh.session_timeout();
        auto c = std::make_shared<pop3_client>(ex, sh.tls);
        c->set_deadline(deadline);
        try {
            co_await c->open(sh.ep, sh.opt.tls);
            const auto login = co_await c->login(who, sh.opt.auth);
            out.latency_ms.push_back(static_cast<float>(ms_since(t0)));
            out.login_ms.push_back(static_cast<float>(std::chrono::duration<double, std::milli>(login).count()));
            c->set_deadline(clock_type::time_point::max());
            ++out.idle_logged_in;
            sh.idle_ok.fetch_add(1);
            asio::co_spawn(ex, idle_holder(std::move(c), release, sh, out), asio::detached);
        } catch (const std::exception& e) {
            out.add_error(describe(e, deadline));
            c->close();
        }
        sh.idle_done.fetch_add(1);
    }
}

// Large mode: one session, --repeat timed RETRs of --msn.
asio::awaitable<void> large_session(shared_run& sh, run_result& out) {
    const auto ex = co_await asio::this_coro::executor;
    const options& opt = sh.opt;
    const credential* who = &opt.users.front();
    for (const credential& c : opt.users) {
        if (c.user == opt.user) {
            who = &c;
        }
    }
    const auto t0 = clock_type::now();
    const auto deadline = t0 + sh.session_timeout();
    pop3_client c(ex, sh.tls);
    c.set_deadline(deadline);
    try {
        co_await c.open(sh.ep, opt.tls);
        const auto login = co_await c.login(*who, opt.auth);
        out.login_ms.push_back(static_cast<float>(std::chrono::duration<double, std::milli>(login).count()));
        const auto [count, total] = co_await c.stat();
        if (opt.msn > count) {
            throw pop3_failure(fmt::format("user {} has {} messages; --msn {} does not exist", who->user, count, opt.msn));
        }
        for (unsigned i = 0; i < opt.repeat; ++i) {
            const auto r0 = clock_type::now();
            const retr_result r = co_await c.retr(opt.msn);
            const double s = std::chrono::duration<double>(clock_type::now() - r0).count();
            out.retr_mb_per_s.push_back(static_cast<double>(r.wire_octets) / 1e6 / s);
            out.retr_octets = r.wire_octets;
            ++out.messages;
            out.retr_wire_bytes += r.wire_octets;
        }
        co_await c.quit();
        out.latency_ms.push_back(static_cast<float>(ms_since(t0)));
        out.cipher = c.cipher();
        ++out.sessions;
    } catch (const std::exception& e) {
        out.add_error(describe(e, deadline));
    }
    c.close();
}

}  // namespace

void request_stop() noexcept {
    stop_requested.store(true);
}

void run_result::add_error(const std::string& text) {
    ++errors;
    if (error_samples.size() < max_error_samples) {
        error_samples.push_back(text);
    }
}

void run_result::merge(run_result&& o) {
    sessions += o.sessions;
    errors += o.errors;
    for (auto& e : o.error_samples) {
        if (error_samples.size() < max_error_samples) {
            error_samples.push_back(std::move(e));
        }
    }
    messages += o.messages;
    retr_wire_bytes += o.retr_wire_bytes;
    latency_ms.insert(latency_ms.end(), o.latency_ms.begin(), o.latency_ms.end());
    login_ms.insert(login_ms.end(), o.login_ms.begin(), o.login_ms.end());
    ready_ms.insert(ready_ms.end(), o.ready_ms.begin(), o.ready_ms.end());
    if (cipher.empty()) {
        cipher = std::move(o.cipher);
    }
    idle_logged_in += o.idle_logged_in;
    retr_mb_per_s.insert(retr_mb_per_s.end(), o.retr_mb_per_s.begin(), o.retr_mb_per_s.end());
    retr_octets = std::max(retr_octets, o.retr_octets);
}

run_result run(const options& opt, const asio::ip::tcp::endpoint& server, asio::ssl::context* tls) {
    shared_run sh{opt, server, tls, {}, {}};
    const unsigned threads = opt.mode == run_mode::large ? 1 : opt.threads;
    std::vector<std::unique_ptr<asio::io_context>> ios;
    std::vector<run_result> per_thread(threads);
    std::vector<std::unique_ptr<asio::steady_timer>> releases;
    for (unsigned t = 0; t < threads; ++t) {
        ios.push_back(std::make_unique<asio::io_context>(1));
        releases.push_back(std::make_unique<asio::steady_timer>(*ios.back(), clock_type::time_point::max()));
    }

    run_result total;
    const bool measure = !opt.server_pids.empty();
    if (measure) {
        total.server_before = sample_trees(opt.server_pids, true);
    }
    const double cpu0 = self_cpu_s();
    total.machine_before = sample_machine();
    sh.start = clock_type::now();
    sh.stop_starting = opt.duration_s ? sh.start + std::chrono::duration_cast<clock_type::duration>(
                                                       std::chrono::duration<double>(*opt.duration_s))
                                      : clock_type::time_point::max();

    for (unsigned t = 0; t < threads; ++t) {
        asio::io_context& io = *ios[t];
        run_result& out = per_thread[t];
        if (opt.mode == run_mode::large) {
            asio::co_spawn(io, large_session(sh, out), asio::detached);
            continue;
        }
        const bool idle = opt.mode == run_mode::idle;
        const unsigned workers_total = idle ? std::min(opt.ramp, opt.concurrency) : opt.concurrency;
        const unsigned mine = workers_total / threads + (t < workers_total % threads ? 1 : 0);
        for (unsigned w = 0; w < mine; ++w) {
            if (idle) {
                asio::co_spawn(io, idle_launcher(sh, out, *releases[t]), asio::detached);
            } else {
                asio::co_spawn(io, session_worker(sh, out), asio::detached);
            }
        }
    }
    std::vector<std::thread> runners;
    std::atomic<unsigned> finished{0};
    for (unsigned t = 0; t < threads; ++t) {
        runners.emplace_back([&, t] {
            ios[t]->run();
            finished.fetch_add(1);
        });
    }

    // Coordinate: sample the server's RSS peak; in idle mode, release the sessions after the hold.
    auto last_sample = clock_type::now() - rss_sample_period;
    auto sample_peak = [&] {
        if (measure && clock_type::now() - last_sample >= rss_sample_period) {
            last_sample = clock_type::now();
            total.server_rss_peak = std::max(total.server_rss_peak, sample_trees(opt.server_pids, false).rss_bytes);
        }
    };
    if (opt.mode == run_mode::idle) {
        const auto login_bound = sh.start + std::chrono::duration_cast<clock_type::duration>(
                                                std::chrono::duration<double>(opt.timeout_s * 4 + 60));
        while (sh.idle_done.load() < opt.concurrency && clock_type::now() < login_bound && !stop_requested.load()) {
            sample_peak();
            std::this_thread::sleep_for(std::chrono::milliseconds(20));
        }
        std::this_thread::sleep_for(idle_settle);
        if (measure) {
            total.server_loaded = sample_trees(opt.server_pids, true);
        }
        const auto hold_end = clock_type::now() + std::chrono::duration_cast<clock_type::duration>(
                                                      std::chrono::duration<double>(opt.hold_s));
        while (clock_type::now() < hold_end && !stop_requested.load()) {
            sample_peak();
            std::this_thread::sleep_for(std::chrono::milliseconds(50));
        }
        if (measure) {
            total.server_held = sample_trees(opt.server_pids, true);
            total.server_rss_peak = std::max(total.server_rss_peak, total.server_held.rss_bytes);
        }
        sh.released.store(true);
        for (unsigned t = 0; t < threads; ++t) {
            asio::post(*ios[t], [r = releases[t].get()] { r->cancel(); });
        }
    }
    while (finished.load() < threads) {
        sample_peak();
        std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    for (auto& r : runners) {
        r.join();
    }
    total.elapsed_s = std::chrono::duration<double>(clock_type::now() - sh.start).count();
    total.loadgen_cpu_s = self_cpu_s() - cpu0;
    total.machine_after = sample_machine();
    if (measure) {
        total.server_after = sample_trees(opt.server_pids, true);
        total.server_rss_peak = std::max(total.server_rss_peak, total.server_after.rss_bytes);
        // A server that exited (or a --server-pid that named a process on its way out) would read
        // as negative CPU: say so instead of printing a number. (A tree may lose processes in a
        // run, as Dovecot's do; reaped children's CPU stays in their parent's, so CPU never drops.)
        if ((total.server_after.processes == 0 && total.server_before.processes > 0) ||
            total.server_after.cpu_s < total.server_before.cpu_s) {
            total.add_error(fmt::format("the server ended during the run ({} -> {} processes, CPU {:.2f} -> {:.2f} s): "
                                        "its CPU and memory figures are not valid",
                                        total.server_before.processes, total.server_after.processes,
                                        total.server_before.cpu_s, total.server_after.cpu_s));
        }
    }
    for (run_result& r : per_thread) {
        total.merge(std::move(r));
    }
    return total;
}

}  // namespace loadgen
