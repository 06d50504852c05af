// no_new_privs and Landlock (sandbox.h). glibc 2.36 has no Landlock wrappers: the three system
// calls are made directly, as the kernel's own samples/landlock/sandboxer.c does.
#include "util/sandbox.h"

#include <fcntl.h>
#include <linux/landlock.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstring>

namespace poplar::util {

namespace {

long create_ruleset(const landlock_ruleset_attr* attr, std::size_t size, std::uint32_t flags) {
    return ::syscall(SYS_landlock_create_ruleset, attr, size, flags);
}
long add_rule(int fd, landlock_rule_type type, const void* attr, std::uint32_t flags) {
    return ::syscall(SYS_landlock_add_rule, fd, type, attr, flags);
}
long restrict_self(int fd, std::uint32_t flags) { return ::syscall(SYS_landlock_restrict_self, fd, flags); }

// The file-system rights each ABI version knows; a newer kernel refuses none of the older ones.
std::uint64_t handled_for(int abi) {
    std::uint64_t r = LANDLOCK_ACCESS_FS_EXECUTE | LANDLOCK_ACCESS_FS_WRITE_FILE | LANDLOCK_ACCESS_FS_READ_FILE |
                      LANDLOCK_ACCESS_FS_READ_DIR | LANDLOCK_ACCESS_FS_REMOVE_DIR | LANDLOCK_ACCESS_FS_REMOVE_FILE |
                      LANDLOCK_ACCESS_FS_MAKE_CHAR | LANDLOCK_ACCESS_FS_MAKE_DIR | LANDLOCK_ACCESS_FS_MAKE_REG |
                      LANDLOCK_ACCESS_FS_MAKE_SOCK | LANDLOCK_ACCESS_FS_MAKE_FIFO | LANDLOCK_ACCESS_FS_MAKE_BLOCK |
                      LANDLOCK_ACCESS_FS_MAKE_SYM;
    if (abi >= 2) {
        r |= LANDLOCK_ACCESS_FS_REFER;
    }
#ifdef LANDLOCK_ACCESS_FS_TRUNCATE
    if (abi >= 3) {
        r |= LANDLOCK_ACCESS_FS_TRUNCATE;
    }
#endif
#ifdef LANDLOCK_ACCESS_FS_IOCTL_DEV
    if (abi >= 5) {
        r |= LANDLOCK_ACCESS_FS_IOCTL_DEV;
    }
#endif
    return r;
}

constexpr std::uint64_t file_rights = LANDLOCK_ACCESS_FS_EXECUTE | LANDLOCK_ACCESS_FS_WRITE_FILE |
                                      LANDLOCK_ACCESS_FS_READ_FILE
#ifdef LANDLOCK_ACCESS_FS_TRUNCATE
                                      | LANDLOCK_ACCESS_FS_TRUNCATE
#endif
    ;

std::uint64_t allowed(landlock_rule::access a) {
    if (a == landlock_rule::access::remove) {
        return LANDLOCK_ACCESS_FS_REMOVE_FILE;
    }
    std::uint64_t r = LANDLOCK_ACCESS_FS_READ_FILE | LANDLOCK_ACCESS_FS_READ_DIR;
    if (a == landlock_rule::access::read_write) {
        // Maildir work: new index files renamed over old ones in the same directory, cur/ new/
        // tmp/ made at a first login, messages removed at QUIT. Never executables, devices,
        // sockets, FIFOs or symlinks.
        r |= LANDLOCK_ACCESS_FS_WRITE_FILE | LANDLOCK_ACCESS_FS_REMOVE_FILE | LANDLOCK_ACCESS_FS_REMOVE_DIR |
             LANDLOCK_ACCESS_FS_MAKE_DIR | LANDLOCK_ACCESS_FS_MAKE_REG | LANDLOCK_ACCESS_FS_REFER
#ifdef LANDLOCK_ACCESS_FS_TRUNCATE
             | LANDLOCK_ACCESS_FS_TRUNCATE
#endif
            ;
    }
    return r;
}

std::string errno_text(int e) {
    char buf[128];
    return ::strerror_r(e, buf, sizeof buf);
}

}  // namespace

result<void, std::string> forbid_new_privileges() {
    if (::prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) {
        return unexpected("prctl(PR_SET_NO_NEW_PRIVS): " + errno_text(errno));
    }
    return {};
}

result<int, std::string> restrict_file_system(const std::vector<landlock_rule>& rules) {
    const long abi = create_ruleset(nullptr, 0, LANDLOCK_CREATE_RULESET_VERSION);
    if (abi < 0) {
        if (errno == ENOSYS) {
            return unexpected(std::string("the kernel has no Landlock (Linux 5.13 or later with CONFIG_SECURITY_LANDLOCK)"));
        }
        if (errno == EOPNOTSUPP) {
            return unexpected(std::string("Landlock is disabled at boot (add landlock to the lsm= kernel parameter)"));
        }
        return unexpected("landlock_create_ruleset: " + errno_text(errno));
    }
    landlock_ruleset_attr attr{};
    attr.handled_access_fs = handled_for(static_cast<int>(abi));
    const int ruleset = static_cast<int>(create_ruleset(&attr, sizeof attr.handled_access_fs, 0));
    if (ruleset < 0) {
        return unexpected("landlock_create_ruleset: " + errno_text(errno));
    }
    auto fail = [ruleset](std::string why) -> result<int, std::string> {
        ::close(ruleset);
        return unexpected(std::move(why));
    };
    for (const landlock_rule& rule : rules) {
        const int fd = ::open(rule.path.c_str(), O_PATH | O_CLOEXEC);
        if (fd < 0) {
            return fail("cannot open " + rule.path.string() + ": " + errno_text(errno));
        }
        struct stat st {};
        ::fstat(fd, &st);
        landlock_path_beneath_attr beneath{};
        beneath.parent_fd = fd;
        beneath.allowed_access = allowed(rule.what) & attr.handled_access_fs;
        if (!S_ISDIR(st.st_mode)) {
            beneath.allowed_access &= file_rights;  // a rule on a file may only grant file rights
        }
        const long added = add_rule(ruleset, LANDLOCK_RULE_PATH_BENEATH, &beneath, 0);
        const int err = errno;
        ::close(fd);
        if (added != 0) {
            return fail("landlock_add_rule for " + rule.path.string() + ": " + errno_text(err));
        }
    }
    if (auto nnp = forbid_new_privileges(); !nnp) {
        return fail(nnp.error());
    }
    if (restrict_self(ruleset, 0) != 0) {
        return fail("landlock_restrict_self: " + errno_text(errno));
    }
    ::close(ruleset);
    return static_cast<int>(abi);
}

}  // namespace poplar::util
