// Password schemes in Dovecot's "{SCHEME}data" form: creating hashes (poplar pw) and verifying them.
//
// The stored forms are the ones Dovecot's passwd-file and `doveadm pw` use, so an existing Dovecot
// user database works unchanged. crypt(3) schemes go through libxcrypt's reentrant crypt_rn and
// Argon2 through the reference libargon2, so verification is safe to run concurrently on the
// worker pool.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "util/result.h"

namespace poplar::auth {

enum class scheme {
    sha512_crypt,  // {SHA512-CRYPT} $6$ (Drepper's SHA-crypt); Dovecot's long-time default
    sha256_crypt,  // {SHA256-CRYPT} $5$
    blf_crypt,     // {BLF-CRYPT} $2y$ / $2b$ bcrypt
    crypt,         // {CRYPT} or no prefix: anything libxcrypt knows ($y$ yescrypt, $1$ MD5-crypt, ...)
    argon2id,      // {ARGON2ID} $argon2id$v=19$m=..,t=..,p=..$salt$hash
    argon2i,       // {ARGON2I}  $argon2i$...
    plain,         // {PLAIN} (alias {CLEAR}): cleartext, the only form APOP can use (RFC 1939 §7)
};

// Case-insensitive, as Dovecot treats scheme names. "CLEAR" parses as scheme::plain.
std::optional<scheme> parse_scheme(std::string_view name);

// The canonical (upper-case, Dovecot) name, e.g. "SHA512-CRYPT".
std::string_view scheme_name(scheme s) noexcept;

// Every scheme name hash_password accepts, for `poplar pw --help`. Strongest first.
std::vector<std::string_view> scheme_names();

// Cost parameters for new hashes. Every login pays the cost once on the worker pool; every
// offline guess against a stolen file pays it too, which is the point.
struct hash_params {
    // SHA256-CRYPT / SHA512-CRYPT rounds. 0 means the algorithm's default of 5000 (Drepper's
    // SHA-crypt specification), written without a "rounds=" field as glibc and Dovecot do, so the
    // output is byte-compatible with every other SHA-crypt tool.
    unsigned long sha_crypt_rounds = 0;
    // bcrypt cost, log2 of the key-expansion iterations. 10 is OpenBSD's and PHP's default:
    // tens of milliseconds per login on current hardware, far more per guess than SHA-crypt.
    unsigned blf_cost = 10;
    // Argon2: RFC 9106 §4 recommends t=3 passes over m=64 MiB for servers that cannot spend
    // 2 GiB per hash. One lane (p=1) rather than the RFC's four because each login already runs
    // beside many others on the worker pool, so extra lanes add no throughput. Memory use peaks at
    // (worker threads) x 64 MiB, which sizes the pool.
    std::uint32_t argon2_time_cost = 3;
    std::uint32_t argon2_memory_kib = 65536;
    std::uint32_t argon2_parallelism = 1;
};

// A new "{SCHEME}data" string for `password`, salted from OpenSSL's CSPRNG. Errors (bad
// parameters, NUL in a password for a crypt(3) scheme, no entropy) are returned as text for the
// CLI to print.
result<std::string, std::string> hash_password(scheme s, std::string_view password,
                                               const hash_params& params = {});

enum class verify_status {
    match,
    mismatch,
    unsupported_scheme,  // "{FOO}..." with a scheme poplar does not know
    malformed_hash,      // known scheme, but the data is not a valid hash of that scheme
};

// Why a verification did not match, for the admin's log ("password mismatch", ...).
std::string_view describe(verify_status status) noexcept;

// Checks `password` against a stored "{SCHEME}data" string (no prefix means CRYPT). Thread-safe
// and free of shared state. Runs in time that depends on the stored hash's cost, not on how the
// password differs.
verify_status check_password(std::string_view stored, std::string_view password);

// check_password() == match, logging a warning when the stored string cannot be verified at all
// (an unknown scheme is a configuration error the admin must see, not just a failed login).
bool verify_password(std::string_view stored, std::string_view password);

// The cleartext of a {PLAIN} or {CLEAR} string, or nullopt for every other scheme. APOP needs it
// (RFC 1939 §7: the server must know the shared secret).
std::optional<std::string_view> plain_secret(std::string_view stored);

// A hash of a fresh random password with exactly the cost of `stored` (same scheme, rounds,
// bcrypt cost, Argon2 m/t/p). Verifying against it makes an unknown user cost what a wrong
// password costs (popa3d's rule). Fails when `stored` cannot be verified itself.
result<std::string, std::string> make_timing_dummy(std::string_view stored);

// What a stored string costs to verify: everything before its salt, i.e. the method and its cost
// parameters ("$6$", "$6$rounds=10000$", "$2y$10$", "$y$j9T$", "$argon2id$v=19$m=65536,t=3,p=1$"),
// "des" for traditional crypt, "plain" for {PLAIN}; empty when the string is unverifiable. {CRYPT}$6$
// and {SHA512-CRYPT}$6$ are the same. A user database picks its timing dummy from the most common.
std::string cost_family(std::string_view stored);

// Why a stored hash is too cheap to resist offline guessing if the file leaks, or nullopt:
// "MD5-CRYPT", "DES crypt", "NT hash", "SHA512-CRYPT with 1000 rounds (under 5000)",
// "bcrypt cost 8 (under 10)", "Argon2 with m=4096 KiB, t=1 (under OWASP's m=19456, t=2)".
// The thresholds are the defaults `poplar pw` writes (SHA-crypt 5000, Drepper's default; bcrypt
// 10) and OWASP's Password Storage Cheat Sheet minimum for Argon2id. {PLAIN} is not reported
// here: passwd_file warns about cleartext secrets on its own.
std::optional<std::string> weakness(std::string_view stored);

}  // namespace poplar::auth
