#include "detect/penalty_table.h"

#include <cstring>

namespace poplar::detect {

namespace {

// SplitMix64's finaliser: every input bit reaches every output bit.
std::uint64_t mix(std::uint64_t x) noexcept {
    x ^= x >> 30;
    x *= 0xbf58476d1ce4e5b9ULL;
    x ^= x >> 27;
    x *= 0x94d049bb133111ebULL;
    x ^= x >> 31;
    return x;
}

constexpr std::size_t first_slots = 64;

}  // namespace

penalty_table::penalty_table(std::size_t capacity, std::uint64_t seed)
    : capacity_(capacity == 0 ? 1 : capacity), seed_(seed), slots_(first_slots, none) {}

std::size_t penalty_table::slot_of(const penalty_key& k) const noexcept {
    std::uint64_t a = 0;
    std::uint64_t b = 0;
    std::memcpy(&a, k.data(), 8);
    std::memcpy(&b, k.data() + 8, 8);
    return static_cast<std::size_t>(mix(mix(a ^ seed_) ^ b)) & (slots_.size() - 1);
}

std::size_t penalty_table::probe(const penalty_key& k) const noexcept {
    const std::size_t mask = slots_.size() - 1;
    std::size_t s = slot_of(k);
    while (slots_[s] != none && nodes_[slots_[s]].key != k) {
        s = (s + 1) & mask;
    }
    return s;
}

void penalty_table::unlink(std::uint32_t i) noexcept {
    node& n = nodes_[i];
    if (n.prev != none) {
        nodes_[n.prev].next = n.next;
    } else {
        head_ = n.next;
    }
    if (n.next != none) {
        nodes_[n.next].prev = n.prev;
    } else {
        tail_ = n.prev;
    }
}

void penalty_table::push_front(std::uint32_t i) noexcept {
    node& n = nodes_[i];
    n.prev = none;
    n.next = head_;
    if (head_ != none) {
        nodes_[head_].prev = i;
    }
    head_ = i;
    if (tail_ == none) {
        tail_ = i;
    }
}

penalty_entry* penalty_table::find(const penalty_key& k) {
    const std::size_t s = probe(k);
    if (slots_[s] == none) {
        return nullptr;
    }
    const std::uint32_t i = slots_[s];
    if (head_ != i) {
        unlink(i);
        push_front(i);
    }
    return &nodes_[i].value;
}

penalty_entry& penalty_table::get(const penalty_key& k) {
    if (penalty_entry* e = find(k)) {
        return *e;
    }
    if (size_ >= capacity_) {
        erase(nodes_[tail_].key);
    }
    if ((size_ + 1) * 2 > slots_.size()) {
        grow();
    }
    std::uint32_t i;
    if (!free_.empty()) {
        i = free_.back();
        free_.pop_back();
        nodes_[i] = node{k, {}, none, none};
    } else {
        i = static_cast<std::uint32_t>(nodes_.size());
        nodes_.push_back(node{k, {}, none, none});
    }
    slots_[probe(k)] = i;
    push_front(i);
    ++size_;
    return nodes_[i].value;
}

void penalty_table::erase(const penalty_key& k) {
    const std::size_t s = probe(k);
    if (slots_[s] != none) {
        remove_at_slot(s);
    }
}

// Algorithm R: after emptying a slot, move back every later entry of the same run whose home
// slot is not cyclically between the hole and itself, so every lookup still finds its key.
void penalty_table::remove_at_slot(std::size_t hole) noexcept {
    const std::uint32_t i = slots_[hole];
    unlink(i);
    free_.push_back(i);
    --size_;
    const std::size_t mask = slots_.size() - 1;
    slots_[hole] = none;
    std::size_t s = hole;
    for (;;) {
        s = (s + 1) & mask;
        if (slots_[s] == none) {
            return;
        }
        const std::size_t home = slot_of(nodes_[slots_[s]].key);
        const bool stays = hole <= s ? (hole < home && home <= s) : (hole < home || home <= s);
        if (!stays) {
            slots_[hole] = slots_[s];
            slots_[s] = none;
            hole = s;
        }
    }
}

void penalty_table::grow() {
    std::vector<std::uint32_t> old(slots_.size() * 2, none);
    old.swap(slots_);
    for (std::uint32_t i : old) {
        if (i != none) {
            slots_[probe(nodes_[i].key)] = i;
        }
    }
}

std::size_t penalty_table::memory_bytes() const noexcept {
    return nodes_.capacity() * sizeof(node) + slots_.capacity() * sizeof(std::uint32_t) +
           free_.capacity() * sizeof(std::uint32_t);
}

}  // namespace poplar::detect
