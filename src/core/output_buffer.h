// The octets a connection has still to write: replies, and the RFC 1939 §3 form of a message.
//
// Like std::string, except that room made for a writer is not zero-filled first. The RETR
// encoder writes through a raw pointer into room it asks for; with std::string that room has
// to be made by resize(), which zero-fills it (C++20 has no resize_and_overwrite), and that
// memset was 1.4% of the server's CPU in a full-session profile (docs/performance.md).
#pragma once

#include <algorithm>
#include <cassert>
#include <cstddef>
#include <cstring>
#include <memory>
#include <string_view>
#include <utility>

namespace poplar::core {

class output_buffer {
public:
    output_buffer() = default;
    // A moved-from buffer is empty, with no memory (as after release()).
    output_buffer(output_buffer&& other) noexcept
        : data_(std::move(other.data_)),
          size_(std::exchange(other.size_, 0)),
          capacity_(std::exchange(other.capacity_, 0)) {}
    output_buffer& operator=(output_buffer&& other) noexcept {
        if (this != &other) {
            data_ = std::move(other.data_);
            size_ = std::exchange(other.size_, 0);
            capacity_ = std::exchange(other.capacity_, 0);
        }
        return *this;
    }
    output_buffer(const output_buffer&) = delete;
    output_buffer& operator=(const output_buffer&) = delete;

    [[nodiscard]] char* data() noexcept { return data_.get(); }
    [[nodiscard]] const char* data() const noexcept { return data_.get(); }
    [[nodiscard]] std::size_t size() const noexcept { return size_; }
    [[nodiscard]] std::size_t capacity() const noexcept { return capacity_; }
    [[nodiscard]] bool empty() const noexcept { return size_ == 0; }
    [[nodiscard]] std::string_view view() const noexcept { return {data_.get(), size_}; }

    // Keeps the memory: a RETR writes chunk after chunk into the same room.
    void clear() noexcept { size_ = 0; }

    // Gives the memory back (an idle session keeps no output buffer).
    void release() noexcept {
        data_.reset();
        size_ = capacity_ = 0;
    }

    void reserve(std::size_t n) {
        if (n > capacity_) {
            reallocate(n);
        }
    }

    // Makes size() n. The first min(n, size()) octets are kept; any beyond them are
    // indeterminate until the caller writes them.
    void resize_for_overwrite(std::size_t n) {
        if (n > capacity_) {
            reallocate(std::max(n, capacity_ * 2));
        }
        size_ = n;
    }

    void append(std::string_view s) {
        const std::size_t at = size_;
        resize_for_overwrite(size_ + s.size());
        if (!s.empty()) {  // memcpy from a null pointer is undefined even for 0 octets
            std::memcpy(data_.get() + at, s.data(), s.size());
        }
    }
    output_buffer& operator+=(std::string_view s) {
        append(s);
        return *this;
    }
    output_buffer& operator+=(char c) {
        append(std::string_view(&c, 1));
        return *this;
    }
    void assign(std::string_view s) {
        clear();
        append(s);
    }

private:
    void reallocate(std::size_t n) {
        assert(n > capacity_);
        auto bigger = std::make_unique_for_overwrite<char[]>(n);
        if (size_ > 0) {
            std::memcpy(bigger.get(), data_.get(), size_);
        }
        data_ = std::move(bigger);
        capacity_ = n;
    }

    std::unique_ptr<char[]> data_;
    std::size_t size_ = 0;
    std::size_t capacity_ = 0;
};

}  // namespace poplar::core
