// `poplar version`: the versions an admin or a bug report needs, from the headers this binary was
// compiled against and, where a library can say so, the one loaded at run time (OpenSSL is a
// shared library that Debian updates on its own schedule, so the two can differ).
#include "cli/version.h"

#include <CLI/Version.hpp>
#include <argon2.h>
#include <asio/version.hpp>
#include <crypt.h>
#include <fmt/format.h>
#include <openssl/crypto.h>
#include <openssl/opensslv.h>
#include <spdlog/version.h>
#include <toml++/toml.h>

#include "cli/build_info.h"

namespace poplar::cli {

namespace {

std::string compiler() {
#if defined(__clang__)
    return fmt::format("clang {}.{}.{}", __clang_major__, __clang_minor__, __clang_patchlevel__);
#elif defined(__GNUC__)
    return fmt::format("gcc {}.{}.{}", __GNUC__, __GNUC_MINOR__, __GNUC_PATCHLEVEL__);
#else
    return "unknown";
#endif
}

}  // namespace

std::string version_line() {
    return fmt::format("poplar {} (commit {}, {})", POPLAR_VERSION, POPLAR_GIT_COMMIT, POPLAR_BUILD_TYPE);
}

std::string version_report() {
    std::string out = version_line() + "\n";
    out += fmt::format("  compiler: {}, C++ {}\n", compiler(), __cplusplus);
    out += fmt::format("  OpenSSL: {} (built with {})\n", OpenSSL_version(OPENSSL_VERSION), OPENSSL_VERSION_TEXT);
    out += fmt::format("  Asio: {}.{}.{}\n", ASIO_VERSION / 100000, ASIO_VERSION / 100 % 1000, ASIO_VERSION % 100);
    out += fmt::format("  fmt: {}.{}.{}\n", FMT_VERSION / 10000, FMT_VERSION / 100 % 100, FMT_VERSION % 100);
    out += fmt::format("  spdlog: {}.{}.{}\n", SPDLOG_VER_MAJOR, SPDLOG_VER_MINOR, SPDLOG_VER_PATCH);
    out += fmt::format("  toml++: {}.{}.{}\n", TOML_LIB_MAJOR, TOML_LIB_MINOR, TOML_LIB_PATCH);
    out += fmt::format("  CLI11: {}\n", CLI11_VERSION);
    out += fmt::format("  libxcrypt: {}\n", XCRYPT_VERSION_STR);
    // libargon2 has no library version macro; this is the Argon2 algorithm version it implements.
    out += fmt::format("  libargon2: Argon2 version 0x{:x}\n", static_cast<unsigned>(ARGON2_VERSION_NUMBER));
    return out;
}

}  // namespace poplar::cli
