// result<T, E>: a value or an error, for failures that are expected at run time (peer, disk, network).
//
// GCC 12 in C++20 mode has no std::expected and Debian 12 packages no tl::expected, so this is the
// smallest subset of std::expected's interface that poplar uses. Names follow std::expected so the
// type can be swapped for it when the toolchain moves to C++23.
#pragma once

#include <cassert>
#include <type_traits>
#include <utility>
#include <variant>

namespace poplar {

// A constructor rather than an aggregate: `unexpected(e)` on an aggregate needs C++20
// parenthesised aggregate initialisation with CTAD, which clang only has from version 16/17
// (the fuzz build uses clang 14). `unexpected{e}` works either way.
template <class E>
struct unexpected {
    explicit unexpected(E e) : error(std::move(e)) {}
    E error;
};

template <class E>
unexpected(E) -> unexpected<E>;

template <class T, class E>
class [[nodiscard]] result {
public:
    result(T value) : v_(std::in_place_index<0>, std::move(value)) {}  // NOLINT: implicit like std::expected
    template <class G>
    result(unexpected<G> e) : v_(std::in_place_index<1>, std::move(e.error)) {}  // NOLINT

    [[nodiscard]] bool has_value() const noexcept { return v_.index() == 0; }
    explicit operator bool() const noexcept { return has_value(); }

    T& value() & { assert(has_value()); return std::get<0>(v_); }
    const T& value() const& { assert(has_value()); return std::get<0>(v_); }
    T&& value() && { assert(has_value()); return std::get<0>(std::move(v_)); }
    T& operator*() & { return value(); }
    const T& operator*() const& { return value(); }
    T* operator->() { return &value(); }
    const T* operator->() const { return &value(); }

    E& error() & { assert(!has_value()); return std::get<1>(v_); }
    const E& error() const& { assert(!has_value()); return std::get<1>(v_); }

private:
    std::variant<T, E> v_;
};

template <class E>
class [[nodiscard]] result<void, E> {
public:
    result() = default;
    template <class G>
    result(unexpected<G> e) : error_(std::move(e.error)), ok_(false) {}  // NOLINT

    [[nodiscard]] bool has_value() const noexcept { return ok_; }
    explicit operator bool() const noexcept { return ok_; }
    E& error() & { assert(!ok_); return error_; }
    const E& error() const& { assert(!ok_); return error_; }

private:
    E error_{};
    bool ok_ = true;
};

}  // namespace poplar
