// libFuzzer target: the passwd-file parser (auth::passwd_file::parse_users, src/auth/passwd_file.h),
// which reads a file an admin (or a tool) wrote, Dovecot's format with its extra fields.
//
// Input: the file's text. Invariants: the parser never crashes; a file it accepts defines users
// with non-empty names free of ':', LF and NUL, each once, never more users than lines; a file
// it refuses has problems, each naming the file (and, but for the summary line, a line number).
#include <algorithm>
#include <set>
#include <string>

#include "auth/passwd_file.h"
#include "fuzz_harness.h"

namespace poplar::fuzz {

int passwd_file_one_input(const std::uint8_t* data, std::size_t size) {
    const std::string_view text(reinterpret_cast<const char*>(data), size);
    auto parsed = auth::passwd_file::parse_users("fuzz.passwd", text);
    if (parsed) {
        const std::size_t lines = static_cast<std::size_t>(std::count(text.begin(), text.end(), '\n')) + 1;
        POPLAR_FUZZ_CHECK(parsed->size() <= lines);
        std::set<std::string> seen;
        for (const std::string& user : parsed.value()) {
            POPLAR_FUZZ_CHECK(!user.empty());
            POPLAR_FUZZ_CHECK(user.find_first_of(std::string_view(":\n\0", 3)) == std::string::npos);
            POPLAR_FUZZ_CHECK(seen.insert(user).second);
        }
    } else {
        POPLAR_FUZZ_CHECK(!parsed.error().empty());
        for (const std::string& problem : parsed.error()) {
            POPLAR_FUZZ_CHECK(problem.starts_with("fuzz.passwd:"));
        }
    }
    return 0;
}

}  // namespace poplar::fuzz

#ifndef POPLAR_FUZZ_NO_ENTRY_POINT
extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    return poplar::fuzz::passwd_file_one_input(data, size);
}
#endif
