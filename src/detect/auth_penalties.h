// Authentication penalties shared by every connection: each login attempt from a client address
// (IPv4 /32, IPv6 /64), and against an account from an address the account does not know, makes
// the next attempt wait longer before it is verified, and past a threshold refuses it outright
// (docs/security.md "Password guessing"; docs/configuration.md [auth] penalty_*, block_*).
//
// Why before the verification and whatever its result: a delay applied only to wrong answers
// tells a client that hangs up early that the answer was wrong (issue 10's attack found a
// password in 9.7 s that way). Dovecot's auth penalty works the same way (2^n seconds for an IP
// with n recent failures, up to 15 s). And why an attempt counts when it starts: a client that
// abandons the attempt during the wait must still pay for it, or hanging up would be free.
//
// Scores decay exponentially (half_life) and are rounded to whole failures, so a burst of typing errors is forgotten and a steady
// guesser stays penalised, and updating a score is O(1) with no sweeping. A success from an
// address clears that address's score (it is the owner's network); an account's score is only
// raised by strangers (addresses not familiar to the account, familiar_addresses.h), so its owner
// on a familiar network is never slowed or refused by someone else's guessing.
//
// Pure (time is passed in) and thread-safe (one mutex, held for two table lookups).
#pragma once

#include <chrono>
#include <cstdint>
#include <mutex>
#include <string_view>

#include "detect/penalty_table.h"
#include "detect/usage_alerts.h"

namespace poplar::detect {

struct penalty_settings {
    // The delay after one failure; it doubles with each further one (auth.failure_delay). Zero
    // turns the delays off (blocking still applies).
    std::chrono::milliseconds base{2000};
    std::chrono::milliseconds max_delay{15'000};    // auth.penalty_max_delay
    std::chrono::milliseconds half_life{15 * 60'000};  // auth.penalty_half_life
    unsigned block_after = 20;                      // auth.block_after; 0: never block
    std::chrono::milliseconds block_duration{15 * 60'000};  // auth.block_duration
};

class auth_penalties {
public:
    using clock = std::chrono::steady_clock;
    using address = usage_alerts::address;

    // `max_keys` addresses and accounts together (auth.penalty_table_size), least recently
    // used forgotten first. About 60 bytes a key (penalty_table.h).
    explicit auth_penalties(std::size_t max_keys);

    enum class refusal { none, address_blocked, account_blocked };

    // What one attempt must do, from begin().
    struct attempt {
        std::chrono::milliseconds delay{0};  // wait this long, then verify
        refusal refused = refusal::none;     // or refuse without verifying
        bool block_started = false;          // this attempt started the block (log it once)
        float address_score = 0;             // failures counted before this attempt (for logs)
        float account_score = 0;
        bool counted_account = false;        // the account's score was raised (a stranger)
    };

    // A login attempt for `user` (the name the client gave; may be empty when unknown) from
    // `from`, which the account knows when `familiar`. Counts it as a failure now (undone by
    // succeeded() or not_a_guess()).
    attempt begin(const address& from, std::string_view user, bool familiar, clock::time_point now,
                  const penalty_settings& s);
    // The attempt succeeded: the address's score is cleared, the account keeps only what
    // strangers did before.
    void succeeded(const address& from, std::string_view user, const attempt& a, clock::time_point now,
                   const penalty_settings& s);
    // The attempt could not be judged (the user database was down): it was not the client's fault.
    void not_a_guess(const address& from, std::string_view user, const attempt& a, clock::time_point now,
                     const penalty_settings& s);

    // Whether new connections from `from` are refused (checked at accept), and for how long.
    std::chrono::milliseconds address_blocked_for(const address& from, clock::time_point now);

    std::size_t tracked() const;
    std::size_t memory_bytes() const;

private:
    penalty_key address_key(const address& a) const;
    penalty_key account_key(std::string_view user) const;
    static std::int64_t ms(clock::time_point t);
    // The entry's score decayed to `now_ms`.
    static float decayed(penalty_entry& e, std::int64_t now_ms, const penalty_settings& s);
    static std::chrono::milliseconds delay_for(float score, const penalty_settings& s);
    void undo(const address& from, std::string_view user, const attempt& a, bool clear_address, clock::time_point now,
              const penalty_settings& s);

    mutable std::mutex mutex_;
    penalty_table table_;
    std::array<unsigned char, 32> secret_{};  // keys account_key(): names an attacker picks cannot collide
};

}  // namespace poplar::detect
