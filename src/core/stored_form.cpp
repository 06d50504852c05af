// The stored form of received mail (stored_form.h): CRLF line ends become LF, nothing else moves.
#include "core/stored_form.h"

#include <cstring>

namespace poplar::core {

void append_stored_line(std::string& out, std::string_view content) {
    out.append(content);
    // A line ending in CR keeps its CRLF: "x\r\n" on disk would read back as "x" (stored_form.h).
    if (!content.empty() && content.back() == '\r') {
        out.append("\r\n");
    } else {
        out.push_back('\n');
    }
}

std::string stored_form(std::string_view raw) {
    std::string out;
    out.reserve(raw.size());
    while (!raw.empty()) {
        const void* lf = std::memchr(raw.data(), '\n', raw.size());
        if (lf == nullptr) {
            out.append(raw);  // no final newline: kept as received
            break;
        }
        std::size_t len = static_cast<std::size_t>(static_cast<const char*>(lf) - raw.data());
        std::string_view content = raw.substr(0, len);
        if (!content.empty() && content.back() == '\r') {
            content.remove_suffix(1);  // the CR of CRLF belongs to the line end
        }
        append_stored_line(out, content);
        raw.remove_prefix(len + 1);
    }
    return out;
}

}  // namespace poplar::core
