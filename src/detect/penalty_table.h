// A bounded map from 16-byte keys to failure scores, least recently used evicted: the memory
// behind the authentication penalties (auth_penalties.h).
//
// Written here rather than as std::unordered_map plus std::list because the bound is
// 1,000,000 keys in 100 MiB: the standard containers cost about 100 bytes an entry in separate
// heap nodes, this one 48 bytes in one array plus 8-16 bytes of open-addressing slots, with no
// allocation per entry. Linear probing with backward-shift deletion (Knuth, TAOCP vol. 3,
// 6.4, Algorithm R), so there are no tombstones to sweep; the slot index is a keyed hash, so
// addresses an attacker chooses (every IPv6 /64 is theirs to pick) cannot be made to collide.
//
// Not thread-safe: auth_penalties holds the one lock.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <vector>

namespace poplar::detect {

using penalty_key = std::array<unsigned char, 16>;

struct penalty_entry {
    float score = 0;              // failures, each worth less as it ages (auth_penalties.h)
    std::int64_t updated_ms = 0;  // when score was last decayed, on the caller's clock
    std::int64_t blocked_until_ms = 0;
};

class penalty_table {
public:
    // `capacity` keys at most (at least 1); `seed` keys the slot hash.
    penalty_table(std::size_t capacity, std::uint64_t seed);

    // The entry, made most recently used; nullptr when absent.
    penalty_entry* find(const penalty_key& k);
    // The entry, made most recently used, created zeroed when absent (evicting the least
    // recently used key when full).
    penalty_entry& get(const penalty_key& k);
    void erase(const penalty_key& k);

    std::size_t size() const noexcept { return size_; }
    std::size_t capacity() const noexcept { return capacity_; }
    // Bytes held by the table's arrays (for the memory bound's test and docs).
    std::size_t memory_bytes() const noexcept;

private:
    static constexpr std::uint32_t none = 0xffffffffU;
    struct node {
        penalty_key key;
        penalty_entry value;
        std::uint32_t prev;  // towards the most recently used
        std::uint32_t next;  // towards the least recently used
    };

    std::size_t slot_of(const penalty_key& k) const noexcept;
    // The slot holding k, or the empty slot where it would go.
    std::size_t probe(const penalty_key& k) const noexcept;
    void unlink(std::uint32_t i) noexcept;
    void push_front(std::uint32_t i) noexcept;
    void remove_at_slot(std::size_t slot) noexcept;
    void grow();

    std::size_t capacity_;
    std::uint64_t seed_;
    std::size_t size_ = 0;
    std::vector<node> nodes_;
    std::vector<std::uint32_t> free_;   // indices of erased nodes, reused first
    std::vector<std::uint32_t> slots_;  // node index or none; size a power of two, at most half full
    std::uint32_t head_ = none;         // most recently used
    std::uint32_t tail_ = none;         // least recently used
};

}  // namespace poplar::detect
