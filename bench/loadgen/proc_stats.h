// The server's CPU time and memory, read from /proc, for a whole process tree.
//
// Dovecot is many processes (master, login, auth, one pop3 per session); poplar is three (network,
// auth supervisor, auth; docs/security.md "Processes"). To count
// both fairly, each measured PID stands for itself and every live descendant. CPU is utime+stime
// of every live process in the tree plus cutime+cstime (children that exited and were reaped by
// a process in the tree), so a pop3 process that ends during the run still counts, via its parent.
#pragma once

#include <cstdint>
#include <vector>

namespace loadgen {

struct tree_sample {
    double cpu_s = 0;              // user + system, live and reaped
    std::uint64_t rss_bytes = 0;   // sum of VmRSS over live processes (counts shared pages per process)
    std::uint64_t pss_bytes = 0;   // sum of Pss (smaps_rollup): shared pages split fairly; 0 if not read
    unsigned processes = 0;
};

// Samples every tree rooted at `roots`. with_pss reads /proc/N/smaps_rollup for each process,
// which costs the kernel a page-table walk: fine before and after a run, not in a tight loop.
tree_sample sample_trees(const std::vector<int>& roots, bool with_pss);

// This process's own CPU time (getrusage), user + system.
double self_cpu_s();
// The calling thread's, likewise.
double thread_cpu_s();

// The whole machine's busy CPU time so far (all cores, from /proc/stat: user, nice, system, irq,
// softirq) and the time the hypervisor stole. A run's busy time minus the server's and the load
// generator's is what other processes took: the benchmark's noise, reported with every run.
struct machine_sample {
    double busy_s = 0;
    double steal_s = 0;
};
machine_sample sample_machine();

}  // namespace loadgen
