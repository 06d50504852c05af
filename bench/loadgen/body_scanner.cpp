// The multi-line reply scanner: SSE2 search for "\n.", then a look at the byte or two after it.
#include "body_scanner.h"

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

namespace loadgen {

const char* find_lf_dot(const char* p, const char* end) {
#if defined(__SSE2__)
    const __m128i lf = _mm_set1_epi8('\n');
    const __m128i dot = _mm_set1_epi8('.');
    auto pairs = [&](const char* q) {
        const __m128i a = _mm_loadu_si128(reinterpret_cast<const __m128i*>(q));
        const __m128i b = _mm_loadu_si128(reinterpret_cast<const __m128i*>(q + 1));
        return _mm_and_si128(_mm_cmpeq_epi8(a, lf), _mm_cmpeq_epi8(b, dot));
    };
    // 64 bytes per step with one branch: "\n." is rare in mail, so this loop is the common path.
    while (end - p >= 65) {
        const __m128i any = _mm_or_si128(_mm_or_si128(pairs(p), pairs(p + 16)), _mm_or_si128(pairs(p + 32), pairs(p + 48)));
        if (_mm_movemask_epi8(any) != 0) {
            break;  // the 16-byte loop below finds the exact position
        }
        p += 64;
    }
    while (end - p >= 17) {
        const __m128i a = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p));
        const __m128i b = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p + 1));
        const int m = _mm_movemask_epi8(_mm_and_si128(_mm_cmpeq_epi8(a, lf), _mm_cmpeq_epi8(b, dot)));
        if (m != 0) {
            return p + __builtin_ctz(static_cast<unsigned>(m));
        }
        p += 16;
    }
#endif
    for (; end - p >= 2; ++p) {
        if (p[0] == '\n' && p[1] == '.') {
            return p;
        }
    }
    return nullptr;
}

std::size_t body_scanner::feed(const char* p, std::size_t n) {
    std::size_t i = 0;  // bytes of p already accounted for
    while (!done_) {
        std::size_t dot_at = n;  // a line-initial '.' to examine
        if (bol_) {
            if (i >= n) {
                break;  // need the first byte of the next line
            }
            bol_ = false;
            if (p[i] == '.') {
                dot_at = i;
            }
        }
        if (dot_at == n) {
            const char* hit = find_lf_dot(p + i, p + n);
            if (hit == nullptr) {
                // No line-initial '.' here; if the data ends in '\n', the next byte begins a line.
                if (n > i) {
                    bol_ = p[n - 1] == '\n';
                }
                i = n;
                break;
            }
            dot_at = static_cast<std::size_t>(hit - p) + 1;
        }
        if (dot_at + 1 >= n) {
            i = dot_at;  // need the byte after '.'
            bol_ = true;
            break;
        }
        if (p[dot_at + 1] == '.') {
            ++stuffed_;
            i = dot_at + 2;
            continue;
        }
        if (dot_at + 2 >= n) {
            i = dot_at;  // ".\r" so far: need one more byte
            bol_ = true;
            break;
        }
        if (p[dot_at + 1] == '\r' && p[dot_at + 2] == '\n') {
            wire_ += dot_at;
            done_ = true;
            return dot_at + 3;
        }
        malformed_ = true;  // counted as message bytes; the size check will also fail
        i = dot_at + 1;
    }
    wire_ += i;
    return i;
}

}  // namespace loadgen
