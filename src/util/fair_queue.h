// Round-robin over clients for work a client can cause at will (password verifications): one
// FIFO per client key, served in turn, so that one address's hundred queued guesses do not wait
// ahead of everyone else's first login (issue 10: "the hash workers serve addresses fairly").
#pragma once

#include <cstddef>
#include <deque>
#include <memory>
#include <mutex>
#include <unordered_map>

namespace poplar::util {

class fair_queue {
public:
    struct job {
        virtual ~job() = default;
        virtual void run() = 0;
    };

    // Thread-safe. Jobs of one key run in the order pushed.
    void push(std::size_t key, std::unique_ptr<job> j) {
        std::lock_guard lock(mutex_);
        auto& q = queues_[key];
        if (q.empty()) {
            ring_.push_back(key);
        }
        q.push_back(std::move(j));
    }

    // The next job in round-robin order over the keys that have one; nullptr when empty.
    std::unique_ptr<job> pop() {
        std::lock_guard lock(mutex_);
        if (ring_.empty()) {
            return nullptr;
        }
        const std::size_t key = ring_.front();
        ring_.pop_front();
        auto it = queues_.find(key);
        std::unique_ptr<job> j = std::move(it->second.front());
        it->second.pop_front();
        if (it->second.empty()) {
            queues_.erase(it);
        } else {
            ring_.push_back(key);
        }
        return j;
    }

private:
    std::mutex mutex_;
    std::unordered_map<std::size_t, std::deque<std::unique_ptr<job>>> queues_;
    std::deque<std::size_t> ring_;  // keys with queued jobs, each once, in serving order
};

}  // namespace poplar::util
