// Test double: a storage::maildrop held in memory, with switches for every storage failure.
//
// Used by the session unit tests and the session fuzzer (fuzz/fuzz_session.cpp). Virtual sizes are
// computed with core::virtual_size, the rule the real backends must follow as well.
#pragma once

#include <algorithm>
#include <cstring>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "core/message_encoder.h"
#include "storage/maildrop.h"

namespace poplar::test {

class memory_maildrop final : public storage::maildrop {
public:
    struct stored_message {
        std::string uidl;
        std::string content;  // as stored: LF or CRLF line ends, possibly no final newline
    };

    explicit memory_maildrop(std::vector<stored_message> messages, std::size_t read_chunk = 7)
        : stored_(std::move(messages)), read_chunk_(read_chunk) {
        for (const stored_message& m : stored_) {
            info_.push_back({core::virtual_size(m.content), m.uidl});
        }
        vanished_.assign(stored_.size(), false);
    }

    std::span<const storage::message_info> messages() const override { return info_; }

    result<std::unique_ptr<storage::message_source>, storage::error> open_message(std::size_t index) override {
        if (index >= stored_.size()) {
            return unexpected(storage::error{storage::errc::permanent, "index out of range"});
        }
        if (vanished_[index]) {
            return unexpected(storage::error{storage::errc::temporary, "message vanished"});
        }
        if (open_error_) {
            return unexpected(*open_error_);
        }
        std::unique_ptr<storage::message_source> src =
            std::make_unique<source>(stored_[index].content, read_chunk_);
        return src;
    }

    result<void, storage::error> remove(std::span<const std::size_t> indices) override {
        remove_calls_.emplace_back(indices.begin(), indices.end());
        if (remove_error_) {
            return unexpected(*remove_error_);
        }
        return {};
    }

    // Switches for the tests.
    void vanish(std::size_t index) { vanished_[index] = true; }
    void fail_open_with(storage::error e) { open_error_ = std::move(e); }
    void fail_remove_with(storage::error e) { remove_error_ = std::move(e); }
    const std::vector<std::vector<std::size_t>>& remove_calls() const { return remove_calls_; }
    const std::string& content(std::size_t index) const { return stored_[index].content; }

private:
    // Hands out the stored bytes in small reads, so the encoder sees chunk boundaries.
    class source final : public storage::message_source {
    public:
        source(std::string_view data, std::size_t chunk) : data_(data), chunk_(std::max<std::size_t>(chunk, 1)) {}
        result<std::size_t, storage::error> read(std::span<char> buf) override {
            const std::size_t n = std::min({buf.size(), chunk_, data_.size()});
            std::memcpy(buf.data(), data_.data(), n);
            data_.remove_prefix(n);
            return n;
        }

    private:
        std::string_view data_;
        std::size_t chunk_;
    };

    std::vector<stored_message> stored_;
    std::vector<storage::message_info> info_;
    std::vector<bool> vanished_;
    std::size_t read_chunk_;
    std::optional<storage::error> open_error_;
    std::optional<storage::error> remove_error_;
    std::vector<std::vector<std::size_t>> remove_calls_;
};

}  // namespace poplar::test
