#include "util/privileges.h"

#include <grp.h>
#include <pwd.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <vector>

namespace poplar::util {

result<identity, std::string> look_up_identity(const std::string& user, const std::string& group) {
    std::vector<char> buf(16384);
    passwd pw{};
    passwd* found = nullptr;
    const int rc = ::getpwnam_r(user.c_str(), &pw, buf.data(), buf.size(), &found);
    if (found == nullptr) {
        return unexpected("no such user \"" + user + "\"" + (rc != 0 ? std::string(": ") + std::strerror(rc) : ""));
    }
    identity id{user, pw.pw_uid, pw.pw_gid};
    if (!group.empty()) {

        ::group gr{};
        ::group* g = nullptr;
        const int grc = ::getgrnam_r(group.c_str(), &gr, buf.data(), buf.size(), &g);
        if (g == nullptr) {
            return unexpected("no such group \"" + group + "\"" + (grc != 0 ? std::string(": ") + std::strerror(grc) : ""));
        }
        id.gid = gr.gr_gid;
    }
    if (id.uid == 0) {
        return unexpected("user \"" + user + "\" is root (uid 0): name an unprivileged user");
    }
    return id;
}

result<void, std::string> drop_privileges(const identity& to) {
    if (::setgroups(0, nullptr) != 0) {
        return unexpected(std::string("setgroups: ") + std::strerror(errno));
    }
    if (::setgid(to.gid) != 0) {
        return unexpected("setgid(" + std::to_string(to.gid) + "): " + std::strerror(errno));
    }
    if (::setuid(to.uid) != 0) {
        return unexpected("setuid(" + std::to_string(to.uid) + "): " + std::strerror(errno));
    }
    // A kernel or libc that ignored part of this would leave root within reach: refuse to go on.
    if (::setuid(0) == 0 || ::geteuid() == 0 || ::getegid() != to.gid) {
        return unexpected(std::string("root could be regained after the switch"));
    }
    return {};
}

}  // namespace poplar::util
