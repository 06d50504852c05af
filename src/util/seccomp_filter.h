// The network process's system call filter (libseccomp; docs/security.md "Processes"): once
// serve has bound its ports, switched users and confined its files, only the system calls a
// POP3 session, a reload and a shutdown make are allowed. Everything else fails with EPERM: an
// exploit cannot execute a program, ptrace, open a network connection of its own, mount, load a
// module or start a process, and a call poplar itself forgot to list fails as an error, not a
// crash. Threads are still allowed (clone with CLONE_THREAD only; clone3 answers ENOSYS so glibc
// uses clone).
#pragma once

#include <cstddef>
#include <string>

#include "util/result.h"

namespace poplar::util {

// Installs the filter on the calling thread and every thread it starts later (call it before
// starting any). Needs no_new_privs (sandbox.h). Refused, with the reason, in sanitizer builds:
// LeakSanitizer checks at exit from a ptrace-ing helper process that the filter forbids.
result<void, std::string> restrict_system_calls();

// How many system calls the filter allows (for the log line).
std::size_t allowed_system_calls();

}  // namespace poplar::util
