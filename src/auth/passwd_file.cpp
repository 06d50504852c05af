// passwd-file parsing, change detection and the timing dummy for unknown users.
#include "auth/passwd_file.h"

#include <fcntl.h>
#include <openssl/crypto.h>
#include <openssl/rand.h>
#include <spdlog/spdlog.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fmt/format.h>
#include <map>
#include <mutex>
#include <tuple>
#include <unordered_map>
#include <vector>

#include "auth/password_hash.h"
#include "util/text.h"

namespace poplar::auth {

namespace {

// What identifies one version of the file. mtime alone can miss two writes within the clock's
// granularity; size and ctime catch most of those, the inode catches "write new file, rename".
struct file_key {
    dev_t dev = 0;
    ino_t ino = 0;
    off_t size = 0;
    timespec mtime{};
    timespec ctime{};

    static file_key of(const struct stat& st) {
        return {st.st_dev, st.st_ino, st.st_size, st.st_mtim, st.st_ctim};
    }
    bool operator==(const file_key& o) const noexcept {
        return dev == o.dev && ino == o.ino && size == o.size && mtime.tv_sec == o.mtime.tv_sec &&
               mtime.tv_nsec == o.mtime.tv_nsec && ctime.tv_sec == o.ctime.tv_sec &&
               ctime.tv_nsec == o.ctime.tv_nsec;
    }
};

struct entry {
    util::secret_string password;
    std::size_t line = 0;
    std::shared_ptr<const account_controls> controls;  // null: none
};

// One parsed version of the file. Immutable once built, shared by readers through shared_ptr so a
// reload never pulls an entry out from under a lookup in progress.
struct snapshot {
    std::map<std::string, entry, std::less<>> users;
    std::string timing_dummy;
    std::vector<std::string> warnings;  // passwd_file::warnings()
};

// The first few users named in a warning about many.
constexpr std::size_t users_named_in_warning = 3;

using problems = std::vector<std::string>;

// strerror() may share a static buffer between threads; GNU strerror_r does not.
std::string errno_text(int err) {
    char buf[256];
    return ::strerror_r(err, buf, sizeof buf);
}

std::string quoted(std::string_view user) { return "'" + util::log_escape(user, 64) + "'"; }

// The file as bytes, plus the identity of what was read. The buffer holds secrets: callers wipe it.
struct file_bytes {
    std::string data;
    file_key key;
    mode_t mode = 0;
};

result<file_bytes, std::string> read_file(const std::filesystem::path& path) {
    const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOCTTY);
    if (fd < 0) {
        const int err = errno;  // before anything that allocates
        return unexpected(path.string() + ": cannot open: " + errno_text(err));
    }
    file_bytes out;
    struct stat st {};
    if (::fstat(fd, &st) != 0) {
        const int err = errno;
        ::close(fd);
        return unexpected(path.string() + ": cannot stat: " + errno_text(err));
    }
    if (!S_ISREG(st.st_mode)) {
        ::close(fd);
        return unexpected(path.string() + ": not a regular file");
    }
    out.key = file_key::of(st);
    out.mode = st.st_mode;
    char buf[16 * 1024];
    for (;;) {
        const ssize_t n = ::read(fd, buf, sizeof buf);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n < 0) {
            const int err = errno;
            ::close(fd);
            OPENSSL_cleanse(buf, sizeof buf);
            util::wipe(out.data);
            return unexpected(path.string() + ": read error: " + errno_text(err));
        }
        if (n == 0) {
            break;
        }
        out.data.append(buf, static_cast<std::size_t>(n));
    }
    ::close(fd);
    OPENSSL_cleanse(buf, sizeof buf);
    return out;
}

// Picks the stored string whose cost is the most common in the file (first user of that cost
// class on ties) and makes the dummy from it, so an unknown user costs what most wrong passwords
// cost. With no verifiable users, the default SHA512-CRYPT cost stands in.
result<std::string, std::string> build_timing_dummy(const snapshot& snap) {
    std::unordered_map<std::string, std::size_t> counts;
    std::vector<std::pair<std::string, std::string_view>> first_of;  // class -> first stored string
    std::map<std::size_t, std::string_view> by_line;                 // file order, for "first"
    for (const auto& [name, e] : snap.users) {
        by_line.emplace(e.line, e.password.view());
    }
    for (const auto& [line, stored] : by_line) {
        std::string cls = cost_family(stored);
        if (cls.empty()) {
            continue;
        }
        if (counts[cls]++ == 0) {
            first_of.emplace_back(std::move(cls), stored);
        }
    }
    std::string_view best;
    std::size_t best_count = 0;
    for (const auto& [cls, stored] : first_of) {
        if (counts[cls] > best_count) {
            best_count = counts[cls];
            best = stored;
        }
    }
    if (best_count > 0) {
        return make_timing_dummy(best);
    }
    unsigned char random[24];
    if (RAND_bytes(random, sizeof random) != 1) {
        return unexpected(std::string("no random bytes (OpenSSL RAND_bytes failed)"));
    }
    std::string password(reinterpret_cast<const char*>(random), sizeof random);
    for (char& c : password) {
        c = static_cast<char>('a' + static_cast<unsigned char>(c) % 26);  // crypt(3) needs no NUL
    }
    auto out = hash_password(scheme::sha512_crypt, password);
    util::wipe(password);
    OPENSSL_cleanse(random, sizeof random);
    return out;
}

// "'bob' (line 3), 'carol' (line 7) and 2 more" for a warning about several users.
std::string some_users(const std::vector<std::pair<std::size_t, std::string_view>>& users) {
    std::string out;
    for (std::size_t i = 0; i < users.size() && i < users_named_in_warning; ++i) {
        out += fmt::format("{}{} (line {})", i == 0 ? "" : ", ", quoted(users[i].second), users[i].first);
    }
    if (users.size() > users_named_in_warning) {
        out += fmt::format(" and {} more", users.size() - users_named_in_warning);
    }
    return out;
}

// Every bad line is reported (up to passwd_file::max_reported_problems), so one `poplar check`
// shows them all; a file with any bad line is not used at all (no timing dummy is made for it).
result<std::shared_ptr<snapshot>, problems> parse(const std::filesystem::path& path, std::string_view data,
                                                   mode_t mode) {
    auto snap = std::make_shared<snapshot>();
    if ((mode & (S_IROTH | S_IWOTH)) != 0) {
        snap->warnings.push_back(path.string() + ": readable or writable by every local user; chmod o= it");
    }
    const std::string where = path.string() + ":";
    problems bad;
    std::size_t unreported = 0;
    const auto report = [&](std::string problem) {
        if (bad.size() < passwd_file::max_reported_problems) {
            bad.push_back(std::move(problem));
        } else {
            ++unreported;
        }
    };
    std::vector<std::pair<std::size_t, std::string_view>> plain_users;  // (line, user), file order
    std::vector<std::tuple<std::size_t, std::string_view, std::string>> weak_users;  // (line, user, why)
    std::size_t line_no = 0;
    std::size_t pos = 0;
    while (pos < data.size()) {
        const auto nl = data.find('\n', pos);
        std::string_view line = data.substr(pos, nl == std::string_view::npos ? std::string_view::npos : nl - pos);
        pos = nl == std::string_view::npos ? data.size() : nl + 1;
        ++line_no;
        const std::string at = where + std::to_string(line_no) + ": ";
        if (!line.empty() && line.back() == '\r') {
            line.remove_suffix(1);  // files edited on Windows
        }
        const auto first = line.find_first_not_of(" \t");
        if (first == std::string_view::npos || line[first] == '#') {
            continue;
        }
        if (line.find('\0') != std::string_view::npos) {
            report(at + "contains a NUL byte");
            continue;
        }
        const auto colon = line.find(':');
        if (colon == std::string_view::npos) {
            report(at + "expected user:password[:uid:gid:gecos:home:shell:extra_fields]");
            continue;
        }
        const std::string_view user = line.substr(0, colon);
        if (user.empty()) {
            report(at + "empty user name");
            continue;
        }
        std::string_view password = line.substr(colon + 1);
        // Field 8, Dovecot's extra fields: everything after the seventh colon (values such as
        // userdb_mail=maildir:~/Maildir hold colons themselves).
        std::string_view extra;
        std::size_t seventh = colon;  // the first colon, after the user name
        for (int n = 2; n <= 7 && seventh != std::string_view::npos; ++n) {
            seventh = line.find(':', seventh + 1);
        }
        if (seventh != std::string_view::npos) {
            extra = line.substr(seventh + 1);
        }
        password = password.substr(0, password.find(':'));
        std::shared_ptr<const account_controls> controls;
        if (!extra.empty()) {
            auto parsed = parse_account_controls(extra);
            if (!parsed) {
                report(at + "extra fields of " + quoted(user) + ": " + parsed.error());
                continue;
            }
            if (parsed->any()) {
                controls = std::make_shared<const account_controls>(std::move(*parsed));
            }
        }
        if (!password.empty() && password.front() == '{') {
            const auto close = password.find('}');
            if (close == std::string_view::npos) {
                report(at + "password of " + quoted(user) + " starts with '{' but has no '}'");
                continue;
            }
            const std::string_view label = password.substr(1, close - 1);
            const std::optional<scheme> s = parse_scheme(label);
            if (!s) {
                report(at + "unsupported password scheme {" + util::log_escape(label, 32) + "} for " + quoted(user));
                continue;
            }
            if (*s == scheme::plain) {
                plain_users.emplace_back(line_no, user);
            }
        }
        if (auto weak = weakness(password)) {
            weak_users.emplace_back(line_no, user, std::move(*weak));
        }
        if (const auto it = snap->users.find(user); it != snap->users.end()) {
            report(at + "duplicate user " + quoted(user) + " (first on line " + std::to_string(it->second.line) + ")");
            continue;
        }
        if (password.empty()) {
            // Not an error (the line may exist for other tools), but nobody can log in as this user.
            snap->warnings.push_back(fmt::format("{}{}: user {} has no password; logins are refused", where, line_no,
                                                 quoted(user)));
        }
        snap->users.emplace(std::string(user), entry{util::secret_string(std::string(password)), line_no,
                                                     std::move(controls)});
    }
    if (unreported > 0) {
        bad.push_back(fmt::format("{}: {} more bad {} not listed", path.string(), unreported,
                                  unreported == 1 ? "line" : "lines"));
    }
    if (!bad.empty()) {
        return unexpected(std::move(bad));
    }
    if (!plain_users.empty()) {
        snap->warnings.push_back(fmt::format(
            "{}: {} {} a {{PLAIN}}/{{CLEAR}} password, stored readably: {}; replace {} with a hash (poplar pw) unless "
            "APOP needs {}",
            path.string(), plain_users.size(), plain_users.size() == 1 ? "user has" : "users have",
            some_users(plain_users), plain_users.size() == 1 ? "it" : "them",
            plain_users.size() == 1 ? "it" : "them"));
    }
    if (!weak_users.empty()) {
        std::string named;
        for (std::size_t i = 0; i < weak_users.size() && i < users_named_in_warning; ++i) {
            const auto& [line, user, why] = weak_users[i];
            named += fmt::format("{}{} (line {}, {})", i == 0 ? "" : ", ", quoted(user), line, why);
        }
        if (weak_users.size() > users_named_in_warning) {
            named += fmt::format(" and {} more", weak_users.size() - users_named_in_warning);
        }
        snap->warnings.push_back(fmt::format(
            "{}: {} {} a weak password hash, cheap to crack if the file leaks: {}; set a new password with "
            "poplar pw (SHA512-CRYPT, BLF-CRYPT or ARGON2ID)",
            path.string(), weak_users.size(), weak_users.size() == 1 ? "user has" : "users have", named));
    }
    return snap;
}

struct loaded {
    std::shared_ptr<const snapshot> snap;
    file_key key;
};

result<loaded, problems> load_version(const std::filesystem::path& path) {
    auto bytes = read_file(path);
    if (!bytes) {
        return unexpected(problems{std::move(bytes.error())});
    }
    auto snap = parse(path, bytes->data, bytes->mode);
    util::wipe(bytes->data);
    if (!snap) {
        return unexpected(std::move(snap.error()));
    }
    auto dummy = build_timing_dummy(**snap);
    if (!dummy) {
        return unexpected(problems{path.string() + ": cannot make the timing dummy hash: " + dummy.error()});
    }
    (*snap)->timing_dummy = std::move(*dummy);
    return loaded{std::shared_ptr<const snapshot>(std::move(*snap)), bytes->key};
}

// For the per-login temp_error: the first problem, with a count of the rest.
std::string first_of(const problems& p) {
    if (p.size() == 1) {
        return p.front();
    }
    return fmt::format("{} (and {} more {}; poplar check lists them)", p.front(), p.size() - 1,
                       p.size() == 2 ? "problem" : "problems");
}

std::string joined(const problems& p) {
    std::string out;
    for (const std::string& s : p) {
        out += out.empty() ? "" : "; ";
        out += s;
    }
    return out;
}

}  // namespace

struct passwd_file::state {
    std::filesystem::path path;
    mutable std::mutex mu;
    // Guarded by mu.
    std::shared_ptr<const snapshot> current;
    file_key current_key;
    // The version that last failed to load and why, so a broken file is not re-parsed on every
    // login (which would let clients make the server re-read it at will) but is as soon as it changes.
    std::optional<std::pair<file_key, std::string>> failed;
};

result<std::vector<std::string>, std::vector<std::string>> passwd_file::parse_users(const std::filesystem::path& name,
                                                                                   std::string_view text) {
    auto snap = parse(name, text, 0600);
    if (!snap) {
        return unexpected(std::move(snap.error()));
    }
    std::vector<std::string> users;
    for (const auto& [user, e] : (*snap)->users) {
        users.push_back(user);
    }
    return users;
}

passwd_file::passwd_file(std::unique_ptr<state> s) : state_(std::move(s)) {}
passwd_file::passwd_file(passwd_file&&) noexcept = default;
passwd_file& passwd_file::operator=(passwd_file&&) noexcept = default;
passwd_file::~passwd_file() = default;

result<passwd_file, std::vector<std::string>> passwd_file::load(const std::filesystem::path& path) {
    auto first = load_version(path);
    if (!first) {
        return unexpected(std::move(first.error()));
    }
    auto s = std::make_unique<state>();
    s->path = path;
    s->current = std::move(first->snap);
    s->current_key = first->key;
    return passwd_file(std::move(s));
}

namespace {

// The credential from one loaded version; a copy, so a reload may drop the version meanwhile.
std::optional<stored_credential> find_in(const snapshot& snap, std::string_view user) {
    const auto it = snap.users.find(user);
    if (it == snap.users.end()) {
        return std::nullopt;
    }
    return stored_credential{it->first, util::secret_string(std::string(it->second.password.view())),
                             it->second.controls};
}

}  // namespace

result<std::optional<stored_credential>, temp_error> passwd_file::lookup(std::string_view user) {
    std::shared_ptr<const snapshot> snap;
    {
        // stat() under the lock: a stat taken before another thread's reload would look like a
        // change and re-read the file for nothing. Held across a reload too, so concurrent logins
        // wait for the new version instead of each parsing the file (and hashing a dummy).
        const std::lock_guard lock(state_->mu);
        struct stat st {};
        if (::stat(state_->path.c_str(), &st) != 0) {
            const int err = errno;
            return unexpected(temp_error{state_->path.string() + ": cannot stat: " + errno_text(err)});
        }
        const file_key key = file_key::of(st);
        if (!(key == state_->current_key)) {
            if (state_->failed && state_->failed->first == key) {
                return unexpected(temp_error{state_->failed->second});
            }
            auto next = load_version(state_->path);
            if (!next) {
                spdlog::error("passwd-file not reloaded, logins fail until it is fixed: {}", joined(next.error()));
                state_->failed.emplace(key, first_of(next.error()));
                return unexpected(temp_error{first_of(next.error())});
            }
            spdlog::info("{}: reloaded, {} users", state_->path.string(), next->snap->users.size());
            for (const std::string& w : next->snap->warnings) {
                spdlog::warn("{}", w);
            }
            state_->current = std::move(next->snap);
            state_->current_key = next->key;
            state_->failed.reset();
        }
        snap = state_->current;
    }
    return find_in(*snap, user);
}

std::optional<std::optional<stored_credential>> passwd_file::try_lookup_cached(std::string_view user) {
    std::shared_ptr<const snapshot> snap;
    {
        const std::unique_lock lock(state_->mu, std::try_to_lock);
        if (!lock.owns_lock()) {
            return std::nullopt;  // another thread is reloading or checking: not worth waiting for
        }
        struct stat st {};
        if (::stat(state_->path.c_str(), &st) != 0 || !(file_key::of(st) == state_->current_key)) {
            return std::nullopt;  // changed or unreadable: lookup() reloads or reports it
        }
        snap = state_->current;
    }
    return find_in(*snap, user);
}

std::string passwd_file::timing_dummy() const {
    const std::lock_guard lock(state_->mu);
    return state_->current->timing_dummy;
}

std::vector<std::string> passwd_file::warnings() const {
    const std::lock_guard lock(state_->mu);
    return state_->current->warnings;
}

std::size_t passwd_file::user_count() const {
    const std::lock_guard lock(state_->mu);
    return state_->current->users.size();
}

const std::filesystem::path& passwd_file::path() const noexcept { return state_->path; }

}  // namespace poplar::auth
