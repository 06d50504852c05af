// The auth process: the only process that reads the passwd-file, verifies passwords and keeps
// the penalty tables and the familiar addresses (docs/security.md "Processes"). Forked by the
// supervisor (supervisor.h); talks to the network process over one SOCK_SEQPACKET socket per
// event loop of the network process, in the auth wire protocol (auth_wire/protocol.h).
#pragma once

#include <cstdint>
#include <filesystem>
#include <optional>
#include <vector>

#include "util/privileges.h"

namespace poplar::authd {

// The exit status of an auth process that could not load its configuration or user database:
// the supervisor does not restart the first one (serve reports the problem and stops).
inline constexpr int exit_unusable_config = 78;  // EX_CONFIG, sysexits.h

struct auth_process_options {
    std::filesystem::path config_file;
    std::vector<int> channels;      // its ends of the sockets, one per network event loop
    std::uint32_t generation = 1;   // how many auth processes this one's supervisor has started
    std::optional<util::identity> run_as;  // auth.process_user, else server.user (when root)
};

// Runs until the network process closes the sockets or SIGTERM/SIGINT arrives, then saves the
// familiar addresses. Returns the process's exit status.
int run_auth_process(const auth_process_options& options);

}  // namespace poplar::authd
