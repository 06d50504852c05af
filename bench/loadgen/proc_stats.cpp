// Reads /proc/<pid>/stat and smaps_rollup for every process of the measured trees.
#include "proc_stats.h"

#include <dirent.h>
#include <sys/resource.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <unordered_map>

namespace loadgen {

namespace {

struct proc_stat {
    int pid = 0;
    int ppid = 0;
    std::uint64_t utime = 0, stime = 0, cutime = 0, cstime = 0;  // clock ticks
    std::uint64_t rss_pages = 0;
};

bool read_file(const char* path, std::string& out) {
    FILE* f = std::fopen(path, "re");
    if (f == nullptr) {
        return false;
    }
    char buf[4096];
    out.clear();
    std::size_t n = 0;
    while ((n = std::fread(buf, 1, sizeof buf, f)) > 0) {
        out.append(buf, n);
    }
    std::fclose(f);
    return true;
}

// /proc/<pid>/stat: "pid (comm) state ppid ..."; comm may contain spaces and ')', so fields are
// counted from the last ')'. Field numbers as in proc(5).
bool parse_stat(int pid, proc_stat& st) {
    char path[64];
    std::snprintf(path, sizeof path, "/proc/%d/stat", pid);
    std::string text;
    if (!read_file(path, text)) {
        return false;
    }
    const auto close = text.rfind(')');
    if (close == std::string::npos) {
        return false;
    }
    const char* p = text.c_str() + close + 2;  // field 3 (state)
    std::uint64_t f[64] = {};
    int field = 3;
    while (*p != '\0' && field < 64) {
        while (*p == ' ') {
            ++p;
        }
        if (field == 3) {
            ++p;  // the state letter
        } else {
            char* end = nullptr;
            f[field] = std::strtoull(p, &end, 10);
            if (end == p) {
                ++p;
            } else {
                p = end;
            }
        }
        while (*p != ' ' && *p != '\0') {
            ++p;
        }
        ++field;
    }
    st.pid = pid;
    st.ppid = static_cast<int>(f[4]);
    st.utime = f[14];
    st.stime = f[15];
    st.cutime = f[16];
    st.cstime = f[17];
    st.rss_pages = f[24];
    return field > 24;
}

std::uint64_t read_pss_bytes(int pid) {
    char path[64];
    std::snprintf(path, sizeof path, "/proc/%d/smaps_rollup", pid);
    std::string text;
    if (!read_file(path, text)) {
        return 0;
    }
    const auto at = text.find("\nPss:");
    if (at == std::string::npos) {
        return 0;
    }
    return std::strtoull(text.c_str() + at + 5, nullptr, 10) * 1024;  // "Pss:   1234 kB"
}

}  // namespace

tree_sample sample_trees(const std::vector<int>& roots, bool with_pss) {
    tree_sample out;
    if (roots.empty()) {
        return out;
    }
    std::unordered_map<int, proc_stat> all;
    DIR* d = ::opendir("/proc");
    if (d == nullptr) {
        return out;
    }
    while (dirent* e = ::readdir(d)) {
        if (e->d_name[0] < '0' || e->d_name[0] > '9') {
            continue;
        }
        proc_stat st;
        if (parse_stat(std::atoi(e->d_name), st)) {
            all.emplace(st.pid, st);
        }
    }
    ::closedir(d);
    std::unordered_map<int, std::vector<int>> children;
    for (const auto& [pid, st] : all) {
        children[st.ppid].push_back(pid);
    }
    static const double ticks = static_cast<double>(::sysconf(_SC_CLK_TCK));
    static const std::uint64_t page = static_cast<std::uint64_t>(::sysconf(_SC_PAGESIZE));
    std::vector<int> todo(roots.begin(), roots.end());
    std::unordered_map<int, bool> seen;
    while (!todo.empty()) {
        const int pid = todo.back();
        todo.pop_back();
        if (seen[pid]) {
            continue;
        }
        seen[pid] = true;
        const auto it = all.find(pid);
        if (it == all.end()) {
            continue;  // exited
        }
        const proc_stat& st = it->second;
        out.cpu_s += static_cast<double>(st.utime + st.stime + st.cutime + st.cstime) / ticks;
        out.rss_bytes += st.rss_pages * page;
        if (with_pss) {
            out.pss_bytes += read_pss_bytes(pid);
        }
        ++out.processes;
        if (const auto c = children.find(pid); c != children.end()) {
            todo.insert(todo.end(), c->second.begin(), c->second.end());
        }
    }
    return out;
}

machine_sample sample_machine() {
    machine_sample m;
    std::string text;
    if (!read_file("/proc/stat", text) || text.compare(0, 4, "cpu ") != 0) {
        return m;
    }
    // "cpu  user nice system idle iowait irq softirq steal guest guest_nice" (clock ticks)
    std::uint64_t f[10] = {};
    const char* p = text.c_str() + 4;
    for (std::uint64_t& v : f) {
        char* end = nullptr;
        v = std::strtoull(p, &end, 10);
        p = end;
    }
    static const double ticks = static_cast<double>(::sysconf(_SC_CLK_TCK));
    m.busy_s = static_cast<double>(f[0] + f[1] + f[2] + f[5] + f[6]) / ticks;
    m.steal_s = static_cast<double>(f[7]) / ticks;
    return m;
}

namespace {
double rusage_cpu_s(int who) {
    rusage ru{};
    ::getrusage(who, &ru);
    return static_cast<double>(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
           static_cast<double>(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}
}  // namespace

double self_cpu_s() { return rusage_cpu_s(RUSAGE_SELF); }

double thread_cpu_s() { return rusage_cpu_s(RUSAGE_THREAD); }

}  // namespace loadgen
