// Confining the calling process where the kernel allows it (docs/security.md "Processes"):
// no_new_privs, and a Landlock rule set that limits which files it may open at all, whatever its
// user's permissions say. Each step reports what it did or why it could not, for one log line;
// none is fatal, since an older or differently configured kernel must still serve mail.
//
// Landlock applies to the calling thread and everything it starts afterwards, not to threads
// that exist already: call this before the process starts its threads.
#pragma once

#include <filesystem>
#include <string>
#include <vector>

#include "util/result.h"

// GCC says __SANITIZE_ADDRESS__; clang 14 only answers __has_feature.
#if defined(__SANITIZE_ADDRESS__)
#define POPLAR_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define POPLAR_ASAN 1
#endif
#endif

namespace poplar::util {

// AddressSanitizer builds: their leak check at exit reads /proc and ptraces the process, which
// the sandbox has to let through there.
#if defined(POPLAR_ASAN)
inline constexpr bool sanitizer_build = true;
#else
inline constexpr bool sanitizer_build = false;
#endif

struct landlock_rule {
    enum class access {
        read,        // open files for reading and list directories, beneath `path`
        read_write,  // also create, write, truncate and remove files and directories
        remove,      // only remove files beneath `path` (a socket the process made at start)
    };
    std::filesystem::path path;  // a directory (or a file: then only file rights apply)
    access what = access::read;
};

// PR_SET_NO_NEW_PRIVS: nothing this process executes can gain privileges (setuid binaries, file
// capabilities). Landlock needs it when the process lacks CAP_SYS_ADMIN.
result<void, std::string> forbid_new_privileges();

// Every file-system access outside `rules` is refused with EACCES from now on. Returns the
// Landlock ABI version in force, or why nothing was restricted (no Landlock in the kernel, or
// it is disabled at boot, or a rule's path cannot be opened).
result<int, std::string> restrict_file_system(const std::vector<landlock_rule>& rules);

}  // namespace poplar::util
