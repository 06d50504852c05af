// The auth process's event loop: its sockets, reload, the familiar addresses' file, signals.
#include "authd/auth_process.h"

#include <asio/co_spawn.hpp>
#include <asio/detached.hpp>
#include <asio/generic/seq_packet_protocol.hpp>
#include <asio/io_context.hpp>
#include <asio/redirect_error.hpp>
#include <asio/signal_set.hpp>
#include <asio/steady_timer.hpp>
#include <asio/use_awaitable.hpp>
#include <fmt/format.h>
#include <spdlog/spdlog.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <deque>
#include <fstream>
#include <iterator>
#include <thread>

#include "authd/auth_service.h"
#include "core/limits.h"
#include "util/sandbox.h"
#include "util/secret.h"
#include "util/state_file.h"

namespace poplar::authd {

namespace {

using seq_socket = asio::generic::seq_packet_protocol::socket;

// A reload carries the configuration file's text to the network process in one frame.
constexpr std::size_t max_config_text = 48 * 1024;

unsigned or_cores(unsigned n) { return n == 0 ? std::max(1u, std::thread::hardware_concurrency()) : n; }

struct channel {
    explicit channel(seq_socket s) : socket(std::move(s)) {}
    seq_socket socket;
    std::deque<std::string> out;
    bool writing = false;
    bool open = true;
};

class process {
public:
    process(const auth_process_options& o, config::config cfg, std::shared_ptr<const user_database> db)
        : options_(o), cfg_(std::move(cfg)), pool_(or_cores(cfg_.server.worker_threads)),
          service_(io_, pool_, o.generation, cfg_.auth.penalty_table_size, familiar_,
                   [this](std::size_t ch, std::string frame) { send(ch, std::move(frame)); }),
          familiar_file_(cfg_.server.state_directory.empty() ? std::filesystem::path()
                                                              : cfg_.server.state_directory / "familiar-addresses") {
        service_.set_database(std::move(db));
        for (int fd : o.channels) {
            channels_.push_back(std::make_unique<channel>(
                seq_socket(io_, asio::generic::seq_packet_protocol(AF_UNIX, 0), fd)));
        }
    }

    int run() {
        load_familiar();
        auth_wire::hello h{options_.generation, service_.database().mechanisms};
        for (std::size_t i = 0; i < channels_.size(); ++i) {
            send(i, auth_wire::encode(h));
            asio::co_spawn(io_, read_loop(i), asio::detached);
        }
        asio::signal_set stop(io_, SIGTERM, SIGINT);
        stop.async_wait([this](asio::error_code ec, int signo) {
            if (!ec) {
                spdlog::info("auth process: received signal {}", signo);
                io_.stop();
            }
        });
        asio::co_spawn(io_, housekeeping(), asio::detached);
        spdlog::info("auth process: ready, generation {}, uid {}, {} channels", options_.generation, ::getuid(),
                     channels_.size());
        io_.run();
        pool_.join();
        save_familiar();
        return 0;
    }

private:
    void send(std::size_t i, std::string frame) {
        channel& ch = *channels_[i];
        if (!ch.open) {
            return;
        }
        ch.out.push_back(std::move(frame));
        if (!ch.writing) {
            ch.writing = true;
            asio::co_spawn(io_, write_loop(i), asio::detached);
        }
    }

    asio::awaitable<void> write_loop(std::size_t i) {
        channel& ch = *channels_[i];
        while (!ch.out.empty() && ch.open) {
            asio::error_code ec;
            co_await ch.socket.async_send(asio::buffer(ch.out.front()), 0, asio::redirect_error(asio::use_awaitable, ec));
            ch.out.pop_front();
            if (ec) {
                spdlog::error("auth process: sending to the network process failed: {}", ec.message());
                ch.open = false;
                ch.out.clear();
            }
        }
        ch.writing = false;
    }

    asio::awaitable<void> read_loop(std::size_t i) {
        channel& ch = *channels_[i];
        // One byte more than a frame may have, so a longer packet shows as too long.
        std::vector<std::uint8_t> buf(auth_wire::max_frame + 1);
        for (;;) {
            asio::error_code ec;
            asio::socket_base::message_flags flags = 0;
            const std::size_t n = co_await ch.socket.async_receive(asio::buffer(buf), flags,
                                                                   asio::redirect_error(asio::use_awaitable, ec));
            if (ec || n == 0) {
                break;  // the network process is gone (or stopping)
            }
            auto decoded = auth_wire::decode(std::span<const std::uint8_t>(buf.data(), n));
            util::wipe(std::span<char>(reinterpret_cast<char*>(buf.data()), n));  // a step holds a password
            if (!decoded) {
                spdlog::error("auth process: protocol error from the network process: {}", decoded.error());
                continue;
            }
            dispatch(i, std::move(decoded.value()));
        }
        ch.open = false;
        if (++closed_ == channels_.size()) {
            spdlog::info("auth process: the network process closed its sockets; stopping");
            io_.stop();
        }
    }

    void dispatch(std::size_t i, auth_wire::message m) {
        if (auto* s = std::get_if<auth_wire::step>(&m)) {
            service_.on_step(i, std::move(*s));
        } else if (auto* r = std::get_if<auth_wire::resume>(&m)) {
            service_.on_resume(i, *r);
        } else if (auto* e = std::get_if<auth_wire::end>(&m)) {
            service_.on_end(*e);
        } else if (auto* l = std::get_if<auth_wire::lookup>(&m)) {
            service_.on_lookup(i, std::move(*l));
        } else if (auto* q = std::get_if<auth_wire::reload>(&m)) {
            if (q->generation == options_.generation) {
                asio::co_spawn(io_, reload(i, q->request, q->commit), asio::detached);
            }
        } else {
            spdlog::error("auth process: unexpected message {} from the network process", m.index());
        }
    }

    // A reload's first step rereads the configuration file and the passwd-file it names, on the
    // pool, and keeps them aside; the second (commit) switches to them. The exchanges in progress
    // finish under the database they started with.
    asio::awaitable<void> reload(std::size_t i, std::uint64_t request, bool commit) {
        auth_wire::reload_reply r;
        r.request = request;
        if (commit) {
            if (staged_) {
                service_.set_database(staged_->db.db);
                cfg_ = std::move(*staged_->cfg);
                r.ok = true;
                r.mechanisms = service_.database().mechanisms;
                staged_.reset();
                spdlog::info("auth process: reloaded {}", options_.config_file.string());
            } else {
                r.message = "auth process: no reload was prepared\n";
            }
            send(i, auth_wire::encode(r));
            co_return;
        }
        auto job = [path = options_.config_file]() {
            staged s;
            try {
                std::ifstream in(path, std::ios::binary);
                if (!in) {
                    s.db.problems.push_back(path.string() + ": cannot read: " + std::strerror(errno));
                    return s;
                }
                s.text.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
                if (s.text.size() > max_config_text) {
                    s.db.problems.push_back(path.string() + ": larger than " + std::to_string(max_config_text / 1024) +
                                            " KiB, which a reload cannot carry");
                    return s;
                }
                config::loaded_config read = config::read_string(s.text, path.parent_path(), path.string(), false);
                if (!read.problems.empty()) {
                    s.db.problems = std::move(read.problems);
                    return s;
                }
                s.db = build_user_database(read.cfg);
                s.cfg = std::move(read.cfg);
            } catch (const std::exception& e) {
                s.db.problems.push_back(e.what());
            }
            return s;
        };
        staged l = co_await pool_.async_run(std::move(job));
        staged_.reset();
        if (l.db.db) {
            for (const std::string& w : l.db.warnings) {
                spdlog::warn("{}", w);
            }
            r.ok = true;
            r.mechanisms = l.db.db->mechanisms;
            r.config_text = l.text;
            staged_ = std::move(l);
        } else {
            for (const std::string& p : l.db.problems) {
                r.message += p + "\n";
            }
        }
        send(i, auth_wire::encode(r));
    }

    asio::awaitable<void> housekeeping() {
        asio::steady_timer t(io_);
        for (;;) {
            t.expires_after(limits::familiar_save_interval);
            asio::error_code ec;
            co_await t.async_wait(asio::redirect_error(asio::use_awaitable, ec));
            if (ec) {
                co_return;
            }
            service_.forget_stale(std::chrono::steady_clock::now());
            if (!familiar_file_.empty() && service_.take_familiar_changed()) {
                // The text is made here, the file written (and fsynced) on the pool.
                std::string text = familiar_.to_text(std::chrono::system_clock::now(), service_.database().familiar_days);
                auto job = [path = familiar_file_, text = std::move(text)]() { return util::write_file_atomically(path, text); };
                auto written = co_await pool_.async_run(std::move(job));
                if (!written) {
                    familiar_dirty_ = true;
                    spdlog::error("familiar addresses not saved: {}", written.error());
                }
            }
            if (familiar_dirty_ && !familiar_file_.empty()) {
                familiar_dirty_ = false;
                save_familiar();
            }
        }
    }

    void load_familiar() {
        if (familiar_file_.empty()) {
            return;
        }
        auto text = util::read_file_if_exists(familiar_file_);
        if (!text) {
            // Not fatal: every address is a stranger until the owners log in again.
            spdlog::warn("familiar addresses not loaded: {}", text.error());
            return;
        }
        if (!text.value()) {
            return;
        }
        const auto problems = familiar_.load_text(**text, std::chrono::system_clock::now(), cfg_.auth.familiar_days);
        for (const std::string& p : problems) {
            spdlog::warn("familiar addresses: {}:{} (line skipped)", familiar_file_.string(), p);
        }
        spdlog::info("familiar addresses: {} accounts loaded from {}", familiar_.accounts(), familiar_file_.string());
    }

    void save_familiar() {
        if (familiar_file_.empty() || (!service_.take_familiar_changed() && !familiar_dirty_)) {
            return;
        }
        auto written = util::write_file_atomically(
            familiar_file_, familiar_.to_text(std::chrono::system_clock::now(), service_.database().familiar_days));
        if (!written) {
            spdlog::error("familiar addresses not saved: {}", written.error());
        }
    }

    const auth_process_options& options_;
    config::config cfg_;
    asio::io_context io_{1};
    util::worker_pool pool_;
    detect::familiar_addresses familiar_;
    auth_service service_;
    const std::filesystem::path familiar_file_;
    bool familiar_dirty_ = false;
    std::vector<std::unique_ptr<channel>> channels_;
    std::size_t closed_ = 0;
    struct staged {
        std::optional<config::config> cfg;
        built_database db;
        std::string text;
    };
    std::optional<staged> staged_;  // a reload read and checked, waiting for its commit
};

}  // namespace

// Landlock for the auth process too (util/sandbox.h), before its worker threads start: it may
// read the configuration's and the passwd-file's directories and write the state directory,
// nothing else: never the TLS key or a Maildir, whatever its user may read.
void confine(const auth_process_options& o, const config::config& cfg) {
    if (!cfg.server.sandbox) {
        (void)util::forbid_new_privileges();
        return;
    }
    std::vector<util::landlock_rule> rules{{o.config_file.parent_path(), util::landlock_rule::access::read}};
    std::error_code ec;
    const std::filesystem::path users = std::filesystem::weakly_canonical(cfg.auth.passwd_file, ec).parent_path();
    if (users != rules.front().path) {
        rules.push_back({users, util::landlock_rule::access::read});
    }
    if (!cfg.server.state_directory.empty()) {
        rules.push_back({cfg.server.state_directory, util::landlock_rule::access::read_write});
    }
    auto applied = util::restrict_file_system(rules);
    if (!applied) {
        (void)util::forbid_new_privileges();
        spdlog::warn("auth process: sandbox: files not limited: {}", applied.error());
        return;
    }
    std::string dirs;
    for (const util::landlock_rule& r : rules) {
        dirs += fmt::format("{}{} ({})", dirs.empty() ? "" : ", ", r.path.string(),
                            r.what == util::landlock_rule::access::read ? "read" : "read-write");
    }
    spdlog::info("auth process: sandbox: Landlock ABI {}, no_new_privs: it may open only files in {}", applied.value(),
                 dirs);
}

int run_auth_process(const auth_process_options& o) {
    // Not dumpable: a process of the same user (the network process, when auth.process_user is
    // not set) can neither ptrace it nor read its memory through /proc, where the hashes are.
    ::prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
    ::prctl(PR_SET_NAME, "poplar-auth", 0, 0, 0);
    if (o.run_as) {
        if (auto dropped = util::drop_privileges(*o.run_as); !dropped) {
            spdlog::critical("auth process: switching to {} failed: {}", o.run_as->user, dropped.error());
            return exit_unusable_config;
        }
        ::prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);  // set*id resets it only towards dumpable=0, but be explicit
    }
    std::optional<config::config> cfg;
    built_database db;
    try {
        config::loaded_config read = config::read_file_for_auth_process(o.config_file);
        db.problems = std::move(read.problems);
        if (db.problems.empty()) {
            db = build_user_database(read.cfg);
            cfg = std::move(read.cfg);
        }
    } catch (const std::exception& e) {
        db.problems.push_back(e.what());
    }
    for (const std::string& w : db.warnings) {
        spdlog::warn("{}", w);
    }
    if (!db.db) {
        for (const std::string& p : db.problems) {
            spdlog::critical("auth process: cannot start: {}", p);
        }
        return exit_unusable_config;
    }
    confine(o, *cfg);
    process p(o, std::move(*cfg), std::move(db.db));
    return p.run();
}

}  // namespace poplar::authd
