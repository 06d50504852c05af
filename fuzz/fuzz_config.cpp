// libFuzzer target: the configuration loader (src/config/config.h, config::read_string): TOML
// from the admin's file, which `poplar check` and a reload must judge without ever crashing.
//
// Input: the file's text. Invariants: the only exception is config_error, and it carries at least
// one problem (a syntax error); otherwise every problem names the file; and a text with no
// problem loads through load_string() as well (check and serve agree).
#include <string_view>

#include "config/config.h"
#include "fuzz_harness.h"

namespace poplar::fuzz {

int config_one_input(const std::uint8_t* data, std::size_t size) {
    const std::string_view text(reinterpret_cast<const char*>(data), size);
    // A base folder that does not exist: relative paths in the input resolve to nothing real.
    const std::filesystem::path base = "/nonexistent/poplar-fuzz";
    try {
        const config::loaded_config l = config::read_string(text, base, "fuzz.toml");
        for (const std::string& p : l.problems) {
            POPLAR_FUZZ_CHECK(std::string_view(p).starts_with("fuzz.toml"));
        }
        if (l.problems.empty()) {
            static_cast<void>(config::load_string(text, base, "fuzz.toml"));
        }
    } catch (const config::config_error& e) {
        POPLAR_FUZZ_CHECK(!e.problems().empty());
    }
    return 0;
}

}  // namespace poplar::fuzz

#ifndef POPLAR_FUZZ_NO_ENTRY_POINT
extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    return poplar::fuzz::config_one_input(data, size);
}
#endif
