// Return-Path and Delivered-To (trace_headers.h).
#include "delivery/trace_headers.h"

namespace poplar::delivery {

namespace {

void append_clean(std::string& out, std::string_view s) {
    for (char c : s) {
        const auto u = static_cast<unsigned char>(c);
        if (u >= 0x20 && u != 0x7F) {
            out += c;
        }
    }
}

}  // namespace

std::string trace_headers(std::string_view sender, std::string_view recipient) {
    std::string out = "Return-Path: <";
    append_clean(out, sender);
    out += ">\nDelivered-To: ";
    append_clean(out, recipient);
    out += '\n';
    return out;
}

}  // namespace poplar::delivery
