// Lists the messages of a Maildir and finds them by base name (see maildir_scan.h).
#include "storage/maildir/maildir_scan.h"

#include <dirent.h>
#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <algorithm>
#include <functional>
#include <limits>
#include <memory>

#include <spdlog/spdlog.h>

#include "storage/maildir/maildir_name.h"
#include "storage/maildir/posix_file.h"
#include "util/text.h"

namespace poplar::storage::maildir {

namespace {

// Closes a DIR stream (and with it the descriptor fdopendir() took over).
struct dir_closer {
    void operator()(DIR* d) const noexcept { ::closedir(d); }
};

result<void, error> scan_one(int root_fd, subdir which, std::size_t max_messages, std::string_view log_path,
                             maildir_listing& out) {
    const char* name = subdir_name(which);
    const std::string what = std::string{"cannot read "} + name + "/ of";
    auto fd = open_at(root_fd, name, O_RDONLY | O_DIRECTORY);
    if (!fd) {
        return unexpected{errno_error(errc::temporary, what, log_path, fd.error())};
    }
    std::unique_ptr<DIR, dir_closer> dir{::fdopendir(fd->get())};
    if (!dir) {
        return unexpected{errno_error(errc::temporary, what, log_path, errno)};
    }
    (void)fd->release();  // fdopendir() owns the descriptor now; closedir() closes it

    for (;;) {
        errno = 0;
        const dirent* entry = ::readdir(dir.get());
        if (entry == nullptr) {
            if (errno != 0) {
                return unexpected{errno_error(errc::temporary, what, log_path, errno)};
            }
            return {};
        }
        const std::string_view file_name{entry->d_name};
        // d_type saves a stat() per file; DT_UNKNOWN (some file systems) is treated as a file and
        // anything else that is not one fails harmlessly when opened.
        if (entry->d_type == DT_DIR || !is_message_file_name(file_name)) {
            if (!file_name.empty() && file_name.front() != '.' && entry->d_type != DT_DIR) {
                spdlog::warn("maildir {}: ignoring file {}/{} (name unusable as a message)", log_path, name,
                             util::log_escape(file_name));
            }
            continue;
        }
        if (out.files.size() >= max_messages) {
            return unexpected{error{errc::permanent, "maildir " + std::string{log_path} + " has more than " +
                                                         std::to_string(max_messages) + " messages"}};
        }
        if (out.names.size() + file_name.size() > std::numeric_limits<std::uint32_t>::max()) {
            return unexpected{error{errc::permanent, "maildir " + std::string{log_path} + ": file names too large"}};
        }
        listed_file f;
        f.name_offset = static_cast<std::uint32_t>(out.names.size());
        f.name_length = static_cast<std::uint32_t>(file_name.size());
        f.base_length = static_cast<std::uint32_t>(base_name(file_name).size());
        f.dir = which;
        out.names.append(file_name);
        out.files.push_back(f);
    }
}

}  // namespace

const char* subdir_name(subdir d) noexcept { return d == subdir::new_dir ? "new" : "cur"; }

std::string maildir_listing::relative_path(const listed_file& f) const {
    std::string out;
    out.reserve(4 + f.name_length);
    out.append(subdir_name(f.dir)).append("/").append(file_name(f));
    return out;
}

result<maildir_listing, error> scan_maildir(int root_fd, std::size_t max_messages, std::string_view log_path,
                                            std::size_t expected) {
    maildir_listing listing;
    expected = std::min(expected, max_messages) + 16;
    listing.files.reserve(expected);
    listing.names.reserve(expected * 64);
    for (const subdir which : {subdir::new_dir, subdir::cur_dir}) {
        if (auto r = scan_one(root_fd, which, max_messages, log_path, listing); !r) {
            return unexpected{std::move(r.error())};
        }
    }
    return listing;
}

base_name_table::base_name_table(const maildir_listing& listing) : listing_(listing) {
    std::size_t capacity = 16;
    while (capacity < listing.files.size() * 2) {
        capacity *= 2;
    }
    slots_.assign(capacity, slot{});
    mask_ = capacity - 1;
    const std::hash<std::string_view> hasher;
    for (std::uint32_t i = 0; i < listing.files.size(); ++i) {
        const std::string_view base = listing.base(listing.files[i]);
        const std::size_t h = hasher(base);
        const auto h32 = static_cast<std::uint32_t>(static_cast<std::uint64_t>(h) >> 32);  // bits the slot does not use
        std::size_t s = h & mask_;
        while (slots_[s].file != 0 &&
               (slots_[s].hash != h32 || listing.base(listing.files[slots_[s].file - 1]) != base)) {
            s = (s + 1) & mask_;
        }
        slots_[s] = slot{h32, i + 1};
    }
}

std::optional<std::uint32_t> base_name_table::find(std::string_view base) const noexcept {
    const std::size_t h = std::hash<std::string_view>{}(base);
    const auto h32 = static_cast<std::uint32_t>(static_cast<std::uint64_t>(h) >> 32);  // bits the slot does not use
    for (std::size_t s = h & mask_; slots_[s].file != 0; s = (s + 1) & mask_) {
        if (slots_[s].hash == h32) {
            const std::uint32_t i = slots_[s].file - 1;
            if (listing_.base(listing_.files[i]) == base) {
                return i;
            }
        }
    }
    return std::nullopt;
}

}  // namespace poplar::storage::maildir
