// What `poplar version` and `poplar --version` print: poplar's version and commit, how it was
// built, and the version of every library it was built with (and, for OpenSSL, runs with).
#pragma once

#include <string>

namespace poplar::cli {

// "poplar 0.1.0 (commit 3e0eb5d, RelWithDebInfo)": the first line, also used by `status`.
std::string version_line();

// version_line() and one "  library: version" line each, ending in '\n'.
std::string version_report();

}  // namespace poplar::cli
