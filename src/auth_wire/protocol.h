// The auth process's wire protocol: the messages the network process and the auth process
// exchange over their Unix sockets (docs/security.md "Processes"), encoded and decoded without
// I/O, so the decoder is fuzzed (fuzz/fuzz_auth_wire.cpp) like the POP3 core.
//
// Why a protocol of our own, and why this shape: the network process must never hold a stored
// secret (issue 11), so it relays each SASL step, as Dovecot's login processes do over their
// line-based auth protocol (VERSION/MECH/DONE handshake, one id per exchange). Ours is binary
// and length-prefixed, so a password containing any byte needs no escaping and a frame is
// checked by its length before a field is read. Every frame:
//
//     u32 length   the whole frame, these four bytes included (big-endian, as every integer)
//     u8  version  protocol_version; a frame of another version is refused, not guessed at
//     u8  type     message_type
//     u64 id       the exchange (step, resume, end, reply) or request (reload); 0 otherwise
//     ...          the type's fields: integers, 17-byte addresses, and byte strings (u32 length
//                  then the bytes); nothing may follow the last field
//
// The sockets are SOCK_SEQPACKET, so one frame is one packet and a reader never sees half of
// one; the length prefix still guards against a short or padded packet.
#pragma once

#include <array>
#include <cstdint>
#include <span>
#include <string>
#include <variant>
#include <vector>

#include "util/result.h"

namespace poplar::auth_wire {

inline constexpr std::uint8_t protocol_version = 1;
// Larger than any frame poplar makes: a SASL response is at most core::limits::max_sasl_line
// (16 KiB of base64, 12 KiB decoded) and a reload's problems a few lines. Also the receive
// buffer's size, so a longer packet is truncated and refused, never read past.
inline constexpr std::size_t max_frame = 64 * 1024;
inline constexpr std::size_t header_size = 4 + 1 + 1 + 8;

enum class message_type : std::uint8_t {
    hello = 1,         // auth -> network, when ready: its generation and mechanisms
    step = 2,          // network -> auth: one client response of an exchange
    resume = 3,        // network -> auth: the penalty delay a reply asked for is over
    end = 4,           // network -> auth: the exchange is over on the network side
    reply = 5,         // auth -> network: a challenge, a delay or the verdict
    reload = 7,        // network -> auth: reread the configuration and the user database
    reload_reply = 8,  // auth -> network
    reset = 9,         // supervisor -> network: the auth process died; pending exchanges are void
    lookup = 10,       // network -> auth: who receives mail for this address (LMTP RCPT)
    lookup_reply = 11, // auth -> network
};

// The client address as detect::usage_alerts keeps it: 16 bytes (IPv4 mapped) and a v6 flag.
using address = std::array<std::uint8_t, 17>;

struct mechanism {
    std::string name;  // "PLAIN", as in CAPA SASL (RFC 5034 §3)
    bool sends_plaintext = false;
    std::string initial_challenge;  // sent when the client gives no initial response ("Username:")
    bool operator==(const mechanism&) const = default;
};

struct hello {
    std::uint32_t generation = 0;  // which start of the auth process this is (1, 2, ...)
    std::vector<mechanism> mechanisms;
    bool operator==(const hello&) const = default;
};

// Every request names the auth process generation it is meant for: one that a restarted auth
// process finds in its socket, sent to its dead predecessor, is dropped unanswered.
struct step {
    std::uint64_t exchange = 0;
    std::uint32_t generation = 0;
    bool first = false;  // starts the exchange: the fields below are read only then
    bool tls = false;
    std::string mechanism;       // "PLAIN", "LOGIN" or "APOP"
    std::string log_mechanism;   // the name log lines show: "USER" for USER/PASS (run as PLAIN)
    std::string apop_timestamp;  // APOP's greeting timestamp (RFC 1939 §7)
    address client{};
    std::string client_text;  // the address as the logs show it ("rip=")
    std::string response;     // decoded SASL response; a password: wiped after use
    bool operator==(const step&) const = default;
};

struct resume {
    std::uint64_t exchange = 0;
    std::uint32_t generation = 0;
    bool operator==(const resume&) const = default;
};

enum class end_reason : std::uint8_t {
    finished = 0,     // the client cancelled ("*", RFC 5034 §4) or the session ended
    client_left = 1,  // the client hung up during the penalty delay: never verify it
};

struct end {
    std::uint64_t exchange = 0;
    std::uint32_t generation = 0;
    end_reason why = end_reason::finished;
    bool operator==(const end&) const = default;
};

enum class reply_kind : std::uint8_t {
    challenge = 0,  // send `challenge` to the client and relay its answer in another step
    delay = 1,      // wait delay_ms (the authentication penalty), then send resume
    done = 2,       // the verdict
};

enum class verdict : std::uint8_t { success = 0, failure = 1, temporary_failure = 2 };
enum class refusal : std::uint8_t { none = 0, address_blocked = 1, account_blocked = 2 };

struct reply {
    std::uint64_t exchange = 0;
    reply_kind kind = reply_kind::done;
    std::uint32_t delay_ms = 0;
    verdict result = verdict::failure;
    refusal refused = refusal::none;  // failure without verification: -ERR [SYS/TEMP]
    std::string user;                 // canonical on success, the attempted one otherwise
    std::string log_reason;
    std::string client_message;
    std::string challenge;
    std::uint64_t penalty_keys = 0;   // the penalty table's size now, for the metrics
    // With kind done: how long new connections from the client's address are refused from now
    // (0: not blocked), which the network process checks at accept without asking.
    std::uint32_t address_blocked_ms = 0;
    bool operator==(const reply&) const = default;
};

// A reload in two steps, so that the network process's half (TLS, listeners) can still refuse
// it: `commit` false rereads and checks, keeping the result aside; true switches to it.
struct reload {
    std::uint64_t request = 0;
    std::uint32_t generation = 0;
    bool commit = false;
    bool operator==(const reload&) const = default;
};

struct reload_reply {
    std::uint64_t request = 0;
    bool ok = false;
    std::string message;  // the problems, one per line, when !ok
    std::vector<mechanism> mechanisms;
    // The configuration file as the auth process read it: the network process, whose sandbox
    // keeps it out of the configuration's directory (the passwd-file's too, often), parses this.
    std::string config_text;
    bool operator==(const reload_reply&) const = default;
};

struct reset {
    std::uint32_t generation = 0;  // the generation that died
    bool operator==(const reset&) const = default;
};

// LMTP RCPT (issue 12): the network process delivers, but only the auth process reads the user
// database, so it resolves the address (delivery/recipient_lookup.h) and answers with the
// user and the quota to enforce. Nothing secret crosses.
struct lookup {
    std::uint64_t request = 0;
    std::uint32_t generation = 0;
    std::string address;  // RCPT TO's address without <>
    bool operator==(const lookup&) const = default;
};

enum class lookup_result : std::uint8_t { found = 0, unknown = 1, temporary_failure = 2 };

struct lookup_reply {
    std::uint64_t request = 0;
    lookup_result result = lookup_result::temporary_failure;
    std::string user;  // canonical, with result found
    std::uint64_t quota_bytes = 0;     // 0: no limit
    std::uint64_t quota_messages = 0;  // 0: no limit
    std::string log_reason;            // with temporary_failure: why, for the log
    bool operator==(const lookup_reply&) const = default;
};

using message = std::variant<hello, step, resume, end, reply, reload, reload_reply, reset, lookup, lookup_reply>;

// One frame. A step's buffer holds a password: callers wipe it (util::wipe) once it is sent.
std::string encode(const message& m);

// One frame, checked whole: length, version, type, every field's bounds, nothing left over.
// The error says what was wrong, for the log; a peer that sends one is not trusted further.
result<message, std::string> decode(std::span<const std::uint8_t> frame);

}  // namespace poplar::auth_wire
