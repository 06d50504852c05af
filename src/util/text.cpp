// Small text helpers: ASCII case folding, log escaping, base64 (via OpenSSL's EVP codec).
#include "util/text.h"

#include <openssl/evp.h>

#include <algorithm>
#include <cstdio>

namespace poplar::util {

namespace {
char lower(char c) noexcept { return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c; }
char upper(char c) noexcept { return (c >= 'a' && c <= 'z') ? static_cast<char>(c - 'a' + 'A') : c; }
}  // namespace

bool iequals(std::string_view a, std::string_view b) noexcept {
    return a.size() == b.size() &&
           std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) { return lower(x) == lower(y); });
}

std::string to_upper_ascii(std::string_view s) {
    std::string out(s);
    std::transform(out.begin(), out.end(), out.begin(), upper);
    return out;
}

std::string log_escape(std::string_view s, std::size_t max) {
    std::string out;
    out.reserve(std::min(s.size(), max));
    for (unsigned char c : s) {
        if (out.size() >= max) {
            out += "...";
            break;
        }
        if (c < 0x20 || c >= 0x7F || c == '\\' || c == '"') {
            char hex[5];
            std::snprintf(hex, sizeof hex, "\\x%02X", c);
            out += hex;
        } else {
            out += static_cast<char>(c);
        }
    }
    return out;
}

std::string base64_encode(std::string_view data) {
    std::string out(4 * ((data.size() + 2) / 3), '\0');
    const int n = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                                  reinterpret_cast<const unsigned char*>(data.data()),
                                  static_cast<int>(data.size()));
    out.resize(static_cast<std::size_t>(n));
    return out;
}

std::optional<std::string> base64_decode(std::string_view text) {
    // EVP_DecodeBlock accepts whitespace and ignores padding semantics, so validate first:
    // length a multiple of 4, alphabet only, '=' only as the last one or two characters.
    if (text.size() % 4 != 0) {
        return std::nullopt;
    }
    std::size_t pad = 0;
    for (std::size_t i = 0; i < text.size(); ++i) {
        const char c = text[i];
        const bool alpha = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
                           c == '+' || c == '/';
        if (c == '=') {
            if (i + 2 < text.size()) {
                return std::nullopt;
            }
            ++pad;
        } else if (!alpha || pad > 0) {
            return std::nullopt;
        }
    }
    std::string out(3 * text.size() / 4, '\0');
    if (text.empty()) {
        return out;
    }
    if (pad > 0) {
        // RFC 4648 §3.5: the bits of the last character that fall after the last octet must be
        // zero ("Zh==" is not "Zg=="); otherwise one octet string would have several encodings.
        const char c = text[text.size() - pad - 1];
        const int v = c >= 'a' ? c - 'a' + 26 : c >= 'A' ? c - 'A' : c >= '0' ? c - '0' + 52 : c == '+' ? 62 : 63;
        const int unused_bits_mask = pad == 1 ? 0x03 : 0x0F;
        if ((v & unused_bits_mask) != 0) {
            return std::nullopt;
        }
    }
    const int n = EVP_DecodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                                  reinterpret_cast<const unsigned char*>(text.data()),
                                  static_cast<int>(text.size()));
    if (n < 0) {
        return std::nullopt;
    }
    out.resize(static_cast<std::size_t>(n) - pad);
    return out;
}

}  // namespace poplar::util
