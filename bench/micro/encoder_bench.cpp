// poplar-micro-encoder: encodes a realistic stored message for RETR (core::message_encoder), as
// a fixed workload for instruction counts.
//
//   poplar-micro-encoder <lf|crlf> <repetitions> [chunk bytes]
//
// The message is 58 KiB of generated mail: a header, then body lines of 0-120 octets, some of
// them starting with "." (so dot-stuffed, RFC 1939 §3); "lf" stores it with LF line ends as
// Postfix does, "crlf" with CRLF. It is fed in chunks of limits::message_read_chunk, as the
// connection does, into an output string that is cleared, not freed, between messages (as
// connection::flush leaves it). Wall time on a shared machine is noise; count instructions:
//
//   valgrind --tool=callgrind --callgrind-out-file=/dev/null poplar-micro-encoder lf 1
//   valgrind --tool=callgrind --callgrind-out-file=/dev/null poplar-micro-encoder lf 11
//
// and divide the difference of the two "Collected" totals by 10: the cost of one message, free of
// start-up. The output's size and FNV-1a hash are printed, so two builds can be checked to send the
// same bytes.
#include <charconv>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <string>
#include <string_view>

#include "core/limits.h"
#include "core/message_encoder.h"

namespace {

constexpr std::size_t message_size = 58 * 1024;

// Deterministic, so every build encodes the same bytes (xorshift64).
class rng {
public:
    std::uint64_t next() {
        state_ ^= state_ << 13;
        state_ ^= state_ >> 7;
        state_ ^= state_ << 17;
        return state_;
    }
    std::size_t below(std::size_t n) { return static_cast<std::size_t>(next() % n); }

private:
    std::uint64_t state_ = 0x9e3779b97f4a7c15u;
};

std::string make_message(std::string_view eol) {
    static constexpr std::string_view header[] = {
        "Return-Path: <alice@example.org>",
        "Delivered-To: bob@example.net",
        "Received: from mail.example.org (mail.example.org [192.0.2.25])",
        "\tby mx.example.net (Postfix) with ESMTPS id 4Xk2Lq0BzNz9rxM",
        "\tfor <bob@example.net>; Sun, 22 Nov 2026 09:09:09 +0000 (UTC)",
        "Message-ID: <20261122090909.4Xk2Lq0BzNz9rxM@mail.example.org>",
        "Date: Sun, 22 Nov 2026 10:09:08 +0100",
        "From: Alice <alice@example.org>",
        "To: Bob <bob@example.net>",
        "Subject: Re: quarterly numbers, second draft",
        "MIME-Version: 1.0",
        "Content-Type: text/plain; charset=utf-8",
        "Content-Transfer-Encoding: 8bit",
    };
    static constexpr std::string_view words =
        "the quick brown fox jumps over a lazy dog while numbers and figures for the quarter are revised "
        "again; see the attached sheet, and note that the totals in the second column now include the "
        "late invoices from October, which the first draft left out. ";
    static_assert(words.size() > 240);
    std::string m;
    for (std::string_view h : header) {
        m += h;
        m += eol;
    }
    m += eol;
    rng r;
    while (m.size() < message_size) {
        std::size_t len = 0;
        const std::size_t kind = r.below(100);
        if (kind < 8) {
            len = 0;  // paragraph breaks
        } else if (kind < 80) {
            len = 60 + r.below(17);  // a wrapped paragraph line, 60-76
        } else {
            len = r.below(121);  // anything, 0-120
        }
        std::string line(words.substr(r.below(words.size() - 120), len));
        if (len > 0 && r.below(40) == 0) {
            line[0] = '.';  // "..." and ".sig" lines, stuffed on the wire
        }
        m += line;
        m += eol;
    }
    return m;
}

std::uint64_t fnv1a(std::string_view s) {
    std::uint64_t h = 0xcbf29ce484222325u;
    for (unsigned char c : s) {
        h = (h ^ c) * 0x100000001b3u;
    }
    return h;
}

// Kept out of line so a profile shows one message's cost under one name.
[[gnu::noinline]] void encode_once(std::string_view stored, std::size_t chunk, poplar::core::output_buffer& out) {
    out.clear();
    poplar::core::message_encoder enc;
    while (!stored.empty()) {
        const std::string_view piece = stored.substr(0, chunk);
        stored.remove_prefix(piece.size());
        enc.feed(piece, out);
    }
    enc.finish(out);
}

bool parse(const char* arg, std::size_t& value) {
    const char* end = arg + std::strlen(arg);
    auto [ptr, ec] = std::from_chars(arg, end, value);
    return ec == std::errc() && ptr == end;
}

}  // namespace

int main(int argc, char** argv) {
    std::size_t reps = 0;
    std::size_t chunk = poplar::limits::message_read_chunk;
    const std::string_view mode = argc > 1 ? argv[1] : "";
    if ((argc != 3 && argc != 4) || (mode != "lf" && mode != "crlf") || !parse(argv[2], reps) ||
        (argc == 4 && (!parse(argv[3], chunk) || chunk == 0))) {
        std::fprintf(stderr, "usage: poplar-micro-encoder <lf|crlf> <repetitions> [chunk bytes]\n");
        return 2;
    }
    const std::string stored = make_message(mode == "lf" ? "\n" : "\r\n");
    poplar::core::output_buffer out;
    for (std::size_t i = 0; i < reps; ++i) {
        encode_once(stored, chunk, out);
    }
    std::printf("%s: stored %zu octets, %zu repetitions, wire %zu octets, fnv1a %016llx\n", argv[1],
                stored.size(), reps, out.size(), static_cast<unsigned long long>(fnv1a(out.view())));
    return 0;
}
