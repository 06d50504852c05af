// Every protocol limit and timeout poplar enforces, each with the RFC section or threat that sets it.
//
// Admin-tunable values have their defaults here and are overridden from the config file
// (docs/configuration.md); the rest are fixed by the protocol.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>

namespace poplar::limits {

// RFC 2449 §4: a command line is at most 255 octets including CRLF. Real clients send longer
// USER/PASS lines (long passwords, e-mail addresses as user names), so we accept about twice that:
// 512 octets including CRLF. Like every line limit here it counts the line's content, the CRLF
// not included (510 + CRLF = 512). Longer lines get -ERR and are discarded whole, so they never
// become two commands.
inline constexpr std::size_t max_command_line = 510;

// RFC 5034 §4: SASL client responses are not bound by the 255-octet rule; OAuth 2.0 bearer
// tokens (RFC 7628) are often several KiB. Only continuation lines of an AUTH exchange get this.
inline constexpr std::size_t max_sasl_line = 16 * 1024;

// RFC 2449 §4 caps arguments at 40 octets; user names and passwords need more in practice.
inline constexpr std::size_t max_argument = 255;

// A message number larger than this cannot name a message: a maildrop is capped far below it.
// Parsing stops at this many digits so "99999999999999999999" never overflows.
inline constexpr std::size_t max_number_digits = 10;

// Dovecot disconnects after 20 bad commands; a client that sends 10 in a row is not a POP3 client
// (HTTP requests, SMTP sessions and port scanners are the usual cause), so it is disconnected.
inline constexpr unsigned default_max_bad_commands = 10;

// Failed logins allowed on one connection before it is closed (brute-force slowdown: each try
// also costs the auth failure delay below).
inline constexpr unsigned default_max_auth_failures = 3;

// Delay before answering a failed login: makes online password guessing slow without hurting a
// user who mistypes once. popa3d and Dovecot both delay; Dovecot's default is 2 seconds.
inline constexpr std::chrono::milliseconds default_auth_failure_delay{2000};

// RFC 1939 §3: the autologout timer "MUST be of at least 10 minutes' duration" once logged in.
inline constexpr std::chrono::seconds default_idle_timeout_transaction{600};
// Before login no mail is at stake, and idle unauthenticated connections are a cheap DoS, so
// the timer is shorter (Dovecot's login process uses 60 s as well).
inline constexpr std::chrono::seconds default_idle_timeout_authorization{60};

// Before login the idle timer restarts on every command, so a client sending CAPA forever would
// hold a connection slot forever; no real client needs longer than this to log in.
inline constexpr std::chrono::seconds max_unauthenticated_session{300};
// When more than half of server.max_unauthenticated is in use (a flood of idle or slow
// connections), each read before login waits at most this long: a real client sends its next
// command within milliseconds, a slowloris sending a byte every few seconds is cut off.
inline constexpr std::chrono::seconds login_timeout_under_pressure{5};

// Descriptors kept free of connections: the control and metrics sockets, log, worker-pool opens,
// the passwd-file and index files. The connection limit is lowered so that these always remain.
inline constexpr std::size_t reserved_descriptors = 128;

// A peer that accepts no bytes for this long while we send a reply is gone (or attacking with a
// zero TCP window); it is disconnected without touching the maildrop.
inline constexpr std::chrono::seconds default_write_timeout{300};

// SIGTERM: sessions are told -ERR [SYS/TEMP] and the process exits at most this long after.
inline constexpr std::chrono::seconds default_shutdown_grace{5};
// How often the server writes the familiar addresses (detect/familiar_addresses.h) when they
// changed: a crash loses at most this much of what owners did, which costs them nothing but
// being treated as strangers until their next login.
inline constexpr std::chrono::seconds familiar_save_interval{10};
// How long a connection on a PROXY protocol listener may take to send its header: a proxy
// writes it as soon as it connects (HAProxy with send-proxy or send-proxy-v2), so 5 s only
// matters to something that is not such a proxy.
inline constexpr std::chrono::seconds proxy_header_timeout{5};
// The auth process (authd/) answers a step within a hash verification and its queue; one that
// does not answer in this long is stuck, and the login is a temporary failure ([SYS/TEMP])
// rather than a session that hangs. Longer than any penalty delay (auth.penalty_max_delay).
inline constexpr std::chrono::seconds auth_reply_timeout{60};
// How long `poplar serve` waits at start for the auth process to load the passwd-file and say
// hello: a passwd-file of a million users loads in a few seconds.
inline constexpr std::chrono::seconds auth_start_timeout{60};

// LMTP (RFC 2033 uses RFC 5321's timeouts, §4.5.3.2): the server waits at least 5 minutes for
// the next command and for each chunk of DATA; an MTA that says nothing for that long is gone.
inline constexpr std::chrono::seconds lmtp_timeout{300};

// RETR/TOP read the stored message in chunks of at most this size, and send each chunk's wire
// form in one write. 256 KiB rather than 64: a 100 MiB RETR took a quarter of the system calls
// and ran about 25% faster (docs/performance.md). A RETR sizes its buffer to the message, so the
// typical message of a few KiB costs a few KiB, and only concurrent RETRs of large messages hold
// the full 256 KiB (plus about as much of output) each.
inline constexpr std::size_t message_read_chunk = 256 * 1024;

// Replies to pipelined commands (RFC 2449 §6.6) are batched into one write until this many bytes
// are pending, so fifty pipelined commands cost one send() rather than fifty.
inline constexpr std::size_t max_batched_output = 64 * 1024;

}  // namespace poplar::limits
