#include "util/state_file.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace poplar::util {

namespace {

std::string failed(std::string_view what, const std::filesystem::path& p) {
    return std::string(what) + " " + p.string() + ": " + std::strerror(errno);
}

}  // namespace

result<void, std::string> write_file_atomically(const std::filesystem::path& path, std::string_view text) {
    std::filesystem::path tmp = path;
    tmp += ".tmp";
    const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0) {
        return unexpected(failed("cannot create", tmp));
    }
    std::size_t done = 0;
    while (done < text.size()) {
        const ssize_t n = ::write(fd, text.data() + done, text.size() - done);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n <= 0) {
            std::string e = failed("cannot write", tmp);
            ::close(fd);
            ::unlink(tmp.c_str());
            return unexpected(std::move(e));
        }
        done += static_cast<std::size_t>(n);
    }
    // Data on disk before the rename makes it visible: otherwise a crash can leave an empty file
    // under the real name (ext4's delayed allocation).
    if (::fsync(fd) != 0) {
        std::string e = failed("cannot fsync", tmp);
        ::close(fd);
        ::unlink(tmp.c_str());
        return unexpected(std::move(e));
    }
    ::close(fd);
    if (::rename(tmp.c_str(), path.c_str()) != 0) {
        std::string e = failed("cannot rename over", path);
        ::unlink(tmp.c_str());
        return unexpected(std::move(e));
    }
    const std::filesystem::path dir = path.has_parent_path() ? path.parent_path() : std::filesystem::path(".");
    const int dfd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd >= 0) {
        ::fsync(dfd);  // the rename itself on disk; a failure here loses only the newest version
        ::close(dfd);
    }
    return {};
}

result<std::optional<std::string>, std::string> read_file_if_exists(const std::filesystem::path& path) {
    const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        if (errno == ENOENT) {
            return std::optional<std::string>();
        }
        return unexpected(failed("cannot open", path));
    }
    std::string out;
    char buf[65536];
    for (;;) {
        const ssize_t n = ::read(fd, buf, sizeof buf);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n < 0) {
            std::string e = failed("cannot read", path);
            ::close(fd);
            return unexpected(std::move(e));
        }
        if (n == 0) {
            break;
        }
        out.append(buf, static_cast<std::size_t>(n));
    }
    ::close(fd);
    return std::optional<std::string>(std::move(out));
}

}  // namespace poplar::util
