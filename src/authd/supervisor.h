// Starting and supervising the auth process, Postfix master style: `poplar serve` forks the
// supervisor before it binds a port or loads a key, so the supervisor holds neither; the
// supervisor forks the auth process and starts it again when it dies (docs/security.md
// "Processes", docs/operations.md "Processes").
//
// The sockets outlive the auth processes: the supervisor keeps its ends open, each auth process
// inherits them, and the network process's ends never change. When an auth process dies the
// supervisor sends `reset` on every socket, so the network process answers the logins in flight
// (and those that come before the next hello) -ERR [SYS/TEMP] at once instead of waiting.
#pragma once

#include <sys/types.h>

#include <filesystem>
#include <optional>
#include <vector>

#include "util/privileges.h"

namespace poplar::authd {

struct supervisor_options {
    std::filesystem::path config_file;
    std::size_t channels = 1;              // one per event loop of the network process
    std::optional<util::identity> run_as;  // for the auth process
};

struct supervisor_handle {
    pid_t pid = -1;
    std::vector<int> channels;  // the network process's ends, close-on-exec, blocking
};

// Forks the supervisor, which starts the first auth process at once. The caller must not have
// started threads yet. Throws std::system_error when a socket or the fork cannot be made.
supervisor_handle start_supervisor(const supervisor_options& options);

}  // namespace poplar::authd
