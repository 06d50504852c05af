// Opens (creating as needed, durably) a Maildir root and its cur/, new/ and tmp/.
#include "storage/maildir/maildir_layout.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>

namespace poplar::storage::maildir {

errc classify_setup_errno(int err) {
    switch (err) {
    case EACCES:
    case EPERM:
    case ENOTDIR:
    case ELOOP:
    case ENAMETOOLONG:
        return errc::permanent;
    default:
        return errc::temporary;
    }
}

namespace {

// fsync of the directory holding `path`'s last component: makes a mkdir() there durable.
result<void, int> sync_parent(const std::string& path) {
    const auto slash = path.rfind('/');
    const std::string parent = slash == 0 ? std::string{"/"} : path.substr(0, slash);
    auto fd = open_at(AT_FDCWD, parent.c_str(), O_RDONLY | O_DIRECTORY);
    if (!fd) {
        return unexpected{fd.error()};
    }
    return fsync_fd(fd->get());
}

// mkdir -p with mode 0700; each directory created is fsynced into its parent.
result<void, int> make_directories(const std::string& path) {
    std::size_t pos = 0;
    while (pos != std::string::npos) {
        pos = path.find('/', pos + 1);
        const std::string prefix = path.substr(0, pos);
        if (prefix.empty() || prefix.back() == '/') {
            continue;
        }
        if (::mkdir(prefix.c_str(), 0700) != 0) {
            if (errno != EEXIST) {
                return unexpected{errno};
            }
            continue;
        }
        if (auto synced = sync_parent(prefix); !synced) {
            return synced;
        }
    }
    return {};
}

}  // namespace

result<unique_fd, error> open_maildir(const std::string& path) {
    auto root = open_at(AT_FDCWD, path.c_str(), O_RDONLY | O_DIRECTORY);
    if (!root && root.error() == ENOENT) {
        if (auto made = make_directories(path); !made) {
            return unexpected{errno_error(classify_setup_errno(made.error()), "cannot create Maildir", path, made.error())};
        }
        root = open_at(AT_FDCWD, path.c_str(), O_RDONLY | O_DIRECTORY);
    }
    if (!root) {
        return unexpected{errno_error(classify_setup_errno(root.error()), "cannot open Maildir", path, root.error())};
    }
    bool created = false;
    for (const char* sub : {"cur", "new", "tmp"}) {
        if (::mkdirat(root->get(), sub, 0700) == 0) {
            created = true;
        } else if (errno != EEXIST) {
            const int err = errno;
            return unexpected{errno_error(classify_setup_errno(err), std::string{"cannot create "} + sub + "/ in", path, err)};
        }
    }
    if (created) {
        if (auto synced = fsync_fd(root->get()); !synced) {
            return unexpected{errno_error(errc::temporary, "cannot fsync Maildir", path, synced.error())};
        }
    }
    return std::move(*root);
}

}  // namespace poplar::storage::maildir
