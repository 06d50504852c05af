// The per-Maildir uid index: parsing, formatting and crash-safe replacement (see uid_index.h).
#include "storage/maildir/uid_index.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <limits>
#include <optional>

#include "storage/maildir/maildir_name.h"
#include "storage/maildir/posix_file.h"

namespace poplar::storage::maildir {

namespace {

// Splits off the next space-separated decimal field of `line`; nullopt if it is not one.
template <class T>
std::optional<T> take_number(std::string_view& line) {
    const std::size_t space = line.find(' ');
    const std::string_view field = line.substr(0, space);
    T value{};
    const auto [end, ec] = std::from_chars(field.data(), field.data() + field.size(), value);
    if (field.empty() || ec != std::errc{} || end != field.data() + field.size()) {
        return std::nullopt;
    }
    line.remove_prefix(space == std::string_view::npos ? line.size() : space + 1);
    return value;
}

// Splits off the "n " or "c " field of a record.
std::optional<subdir> take_subdir(std::string_view& line) {
    if (line.size() < 2 || line[1] != ' ' || (line[0] != 'n' && line[0] != 'c')) {
        return std::nullopt;
    }
    const subdir d = line[0] == 'n' ? subdir::new_dir : subdir::cur_dir;
    line.remove_prefix(2);
    return d;
}

template <class T>
void append_number(std::string& out, T value) {
    char buf[24];
    const auto [end, ec] = std::to_chars(buf, buf + sizeof buf, value);
    out.append(buf, end);
}

}  // namespace

uid_index parse_uid_index(std::string text) {
    uid_index index;
    index.text = std::move(text);
    const std::string_view all{index.text};
    auto unusable = [&index](std::string problem) {
        index.state = uid_index_state::unusable;
        index.entries.clear();
        index.problem = std::move(problem);
        return std::move(index);
    };
    if (all.size() > std::numeric_limits<std::uint32_t>::max()) {
        return unusable("index larger than 4 GiB");
    }

    const std::size_t header_end = all.find('\n');
    if (header_end == std::string_view::npos) {
        return unusable("no complete header line");
    }
    std::string_view header = all.substr(0, header_end);
    if (!header.starts_with(uid_index_magic) || header.size() == uid_index_magic.size() ||
        header[uid_index_magic.size()] != ' ') {
        return unusable("bad magic in header");
    }
    header.remove_prefix(uid_index_magic.size() + 1);
    const auto version = take_number<unsigned>(header);
    if (!version || *version != uid_index_version) {
        // A newer poplar may have written it after a downgrade; its fields may mean something
        // else, so only the messages' re-download is certain to be safe.
        return unusable("unsupported index version");
    }
    const auto uidvalidity = take_number<std::uint32_t>(header);
    const auto next_uid = take_number<std::uint32_t>(header);
    const auto new_stamp = take_number<std::int64_t>(header);
    const auto cur_stamp = take_number<std::int64_t>(header);
    if (!uidvalidity || !next_uid || *next_uid == 0 || !new_stamp || !cur_stamp || !header.empty()) {
        return unusable("unparseable header fields");
    }
    index.uidvalidity = *uidvalidity;
    index.next_uid = *next_uid;
    index.stamps = directory_stamps{*new_stamp, *cur_stamp};
    index.state = uid_index_state::valid;

    std::size_t pos = header_end + 1;
    std::uint32_t previous_uid = 0;
    std::size_t dropped = 0;
    while (pos < all.size()) {
        std::size_t end = all.find('\n', pos);
        const bool complete = end != std::string_view::npos;
        if (!complete) {
            end = all.size();
        }
        std::string_view line = all.substr(pos, end - pos);
        pos = complete ? end + 1 : end;

        const auto uid = take_number<std::uint32_t>(line);
        const auto size = take_number<std::uint64_t>(line);
        const auto dir = take_subdir(line);
        if (!complete || !uid || !size || !dir || !is_message_file_name(line)) {
            ++dropped;
            continue;
        }
        if (*uid >= index.next_uid) {
            // next_uid is what guarantees uids are never reused; a record above it means the
            // header cannot be trusted, and a uid handed out before might be handed out again.
            return unusable("record uid " + std::to_string(*uid) + " not below next_uid " +
                            std::to_string(index.next_uid));
        }
        if (*uid <= previous_uid) {
            ++dropped;
            continue;
        }
        previous_uid = *uid;
        listed_file file;
        file.name_offset = static_cast<std::uint32_t>(line.data() - all.data());
        file.name_length = static_cast<std::uint32_t>(line.size());
        file.base_length = static_cast<std::uint32_t>(base_name(line).size());
        file.dir = *dir;
        index.entries.push_back(uid_index_entry{*uid, *size, file});
    }
    if (dropped > 0) {
        index.state = uid_index_state::salvaged;
        index.problem = std::to_string(dropped) + " unparseable or out-of-order record(s) dropped";
    }
    return index;
}

result<uid_index, error> load_uid_index(int root_fd, std::string_view log_path) {
    auto fd = open_at(root_fd, uid_index_file, O_RDONLY | O_NOFOLLOW);
    if (!fd) {
        if (fd.error() == ENOENT) {
            return uid_index{};
        }
        return unexpected{errno_error(errc::temporary, "cannot open uid index in", log_path, fd.error())};
    }
    auto text = read_all(fd->get());
    if (!text) {
        return unexpected{errno_error(errc::temporary, "cannot read uid index in", log_path, text.error())};
    }
    return parse_uid_index(std::move(*text));
}

uid_index_writer::uid_index_writer(std::uint32_t uidvalidity, std::uint32_t next_uid, directory_stamps stamps,
                                   std::size_t expected_entries) {
    // A record is two numbers, a letter and a file name of typically 40-70 bytes.
    text_.reserve(100 + expected_entries * 80);
    text_.append(uid_index_magic).append(" ");
    append_number(text_, uid_index_version);
    text_ += ' ';
    append_number(text_, uidvalidity);
    text_ += ' ';
    append_number(text_, next_uid);
    text_ += ' ';
    append_number(text_, stamps.new_dir);
    text_ += ' ';
    append_number(text_, stamps.cur_dir);
    text_ += '\n';
}

void uid_index_writer::append(std::uint32_t uid, std::uint64_t virtual_size, subdir dir, std::string_view file_name) {
    append_number(text_, uid);
    text_ += ' ';
    append_number(text_, virtual_size);
    text_ += dir == subdir::new_dir ? " n " : " c ";
    text_.append(file_name);
    text_ += '\n';
}

result<void, error> write_uid_index(int root_fd, std::string_view text, std::string_view log_path) {
    // One fixed temp name is enough: writers hold the index lock, so there is never more than one,
    // and a temp file left by a crash is simply truncated by the next writer.
    auto fail = [&](std::string_view what, int err) -> result<void, error> {
        ::unlinkat(root_fd, uid_index_temp_file, 0);
        return unexpected{errno_error(errc::temporary, what, log_path, err)};
    };
    auto fd = open_at(root_fd, uid_index_temp_file, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW, 0600);
    if (!fd) {
        return fail("cannot create temporary uid index in", fd.error());
    }
    if (auto w = write_all(fd->get(), text); !w) {
        return fail("cannot write temporary uid index in", w.error());
    }
    // Data must be on disk before the rename makes it the index, or a crash could leave a
    // renamed but empty file (the classic ext4 delayed-allocation zero-length file).
    if (auto s = fsync_fd(fd->get()); !s) {
        return fail("cannot fsync temporary uid index in", s.error());
    }
    fd->reset();
    if (::renameat(root_fd, uid_index_temp_file, root_fd, uid_index_file) != 0) {
        return fail("cannot rename temporary uid index in", errno);
    }
    // The rename is durable only once the directory is.
    if (auto s = fsync_fd(root_fd); !s) {
        return unexpected{errno_error(errc::temporary, "cannot fsync Maildir", log_path, s.error())};
    }
    return {};
}

std::string format_uidl(std::uint32_t uidvalidity, std::uint32_t uid) {
    static constexpr char hex[] = "0123456789abcdef";
    std::string out(16, '0');
    for (int i = 0; i < 8; ++i) {
        out[static_cast<std::size_t>(7 - i)] = hex[(uidvalidity >> (4 * i)) & 0xF];
        out[static_cast<std::size_t>(15 - i)] = hex[(uid >> (4 * i)) & 0xF];
    }
    return out;
}

}  // namespace poplar::storage::maildir
