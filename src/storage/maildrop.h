// The storage interface: how the POP3 core sees a user's maildrop, whatever format holds it.
//
// The protocol code never names Maildir (or, later, PostgreSQL); it opens a `maildrop` through a
// `mail_store`, reads the snapshot taken at open, streams messages and removes the ones deleted
// at QUIT. Every member that touches disk or network may block, so the network layer calls them on
// its worker pool, never on an event-loop thread.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>

#include "util/result.h"

namespace poplar::storage {

// How a storage failure is reported to the client (RFC 3206 response codes).
enum class errc {
    temporary,  // -ERR [SYS/TEMP]: try again later (I/O error, message vanished, disk full)
    permanent,  // -ERR [SYS/PERM]: will not go away by itself (bad permissions, corrupt drop)
    in_use,     // -ERR [IN-USE]: another session holds the exclusive lock (RFC 2449 §8.1.1)
};

struct error {
    errc code;
    std::string detail;  // for the admin's log only, never sent to the client
};

// One message as the session sees it. `index` below is the 0-based position in the snapshot
// returned by maildrop::messages(); the session's msn (RFC 1939 message number) is index + 1.
struct message_info {
    // Octets RETR sends before dot-stuffing: every line CRLF-terminated, final newline added
    // (core/message_encoder.h defines the exact rule; STAT/LIST must equal what RETR sends).
    std::uint64_t virtual_size = 0;
    // RFC 1939 §7 unique-id: 1-70 octets in 0x21-0x7E, stable across sessions, never reused.
    std::string uidl;
};

// The raw bytes of one stored message, in whatever line-ending form it was stored.
class message_source {
public:
    virtual ~message_source() = default;
    // Reads up to buf.size() bytes; returns 0 at end of message. May block: worker pool only.
    virtual result<std::size_t, error> read(std::span<char> buf) = 0;

    // Reads only what is already in memory (the page cache), never blocking, so the event loop
    // can stream cached mail without a round trip to the worker pool for every chunk (those
    // thread switches cost more CPU than the copying). nullopt: nothing could be read without
    // blocking; use read() on the worker pool. 0 means end of message. The default never tries.
    virtual result<std::optional<std::size_t>, error> try_read_cached(std::span<char> buf) {
        (void)buf;
        return std::optional<std::size_t>{};
    }
};

// RFC 1939 §8 lets a server lock the maildrop for a whole session; snapshot sessions instead
// each see the maildrop as it was when they opened it (docs/configuration.md, storage.locking).
enum class lock_mode { snapshot, exclusive };

// One session's view of a maildrop: a snapshot fixed at open. Destroying it releases any lock.
class maildrop {
public:
    virtual ~maildrop() = default;
    virtual std::span<const message_info> messages() const = 0;
    // Opens message `index` for reading. A message removed since the snapshot was taken yields
    // errc::temporary.
    virtual result<std::unique_ptr<message_source>, error> open_message(std::size_t index) = 0;
    // Opens message `index` only if that cannot block (every path component is in the kernel's
    // lookup cache), so the event loop can do it without a round trip to the worker pool: with
    // the page cache warm, those round trips were most of what a full session's 20 RETRs cost.
    // nullptr means "not without blocking, or not at all": call open_message() on the worker
    // pool, which also reports errors and finds renamed files. The default never tries.
    virtual std::unique_ptr<message_source> try_open_message_cached(std::size_t index) {
        (void)index;
        return nullptr;
    }
    // Removes the given messages (RFC 1939 §6, UPDATE state). Crash-safe: a kill at any point
    // leaves each message fully present or fully gone. Messages already removed by someone else
    // count as removed. On error, the ones removed so far stay removed.
    virtual result<void, error> remove(std::span<const std::size_t> indices) = 0;
};

class mail_store {
public:
    virtual ~mail_store() = default;
    // Opens (creating it if absent) the maildrop of an authenticated user.
    virtual result<std::unique_ptr<maildrop>, error> open(std::string_view user, lock_mode mode) = 0;
    // Opens it only if that cannot block (what it needs is in the kernel's caches and nothing has
    // to be written), so the event loop can do it without a round trip to the worker pool, which
    // was about a fifth of a login-only session's CPU, and which a pool busy with password hashes
    // would make a legitimate login wait for. nullptr means "not without blocking, or not at all":
    // call open() on the worker pool, which also reports errors. The default never tries.
    virtual std::unique_ptr<maildrop> try_open_without_blocking(std::string_view /*user*/, lock_mode /*mode*/) {
        return nullptr;
    }
};

}  // namespace poplar::storage
