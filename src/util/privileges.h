// Giving up root after the privileged start-up (binding ports below 1024, reading root-only
// files): popa3d's and Dovecot's order, so nothing that parses a client's bytes runs as root.
#pragma once

#include <string>
#include <sys/types.h>

#include "util/result.h"

namespace poplar::util {

struct identity {
    std::string user;
    uid_t uid = 0;
    gid_t gid = 0;
};

// Looks up `user` (and `group`, or the user's primary group when empty).
result<identity, std::string> look_up_identity(const std::string& user, const std::string& group);

// setgroups(0) (no supplementary groups), setgid, setuid, in that order, for every thread of the
// process (glibc applies set*id to all threads), then checks that root cannot be regained. The
// error names the step that failed.
result<void, std::string> drop_privileges(const identity& to);

}  // namespace poplar::util
