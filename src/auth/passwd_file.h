// The Dovecot-format passwd-file user database: "user:{SCHEME}hash:uid:gid:gecos:home:shell:extra".
//
// Only the first two fields are used; the rest are Dovecot userdb fields, accepted so an existing
// Dovecot file loads unchanged. The file is re-read when it changes on disk, so `poplar pw` plus
// an editor takes effect without a restart.
#pragma once

#include <cstddef>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "auth/passdb.h"
#include "util/result.h"

namespace poplar::auth {

class passwd_file final : public passdb {
public:
    // Reads and checks the whole file. The error lists every bad line (up to
    // max_reported_problems), each naming file and line: "/etc/poplar/passwd:7: duplicate user
    // 'bob' (first on line 3)"; or the one reason it could not be read ("...: cannot open:
    // Permission denied"). Lines are "user:password[:ignored...]"; '#' comment lines and blank
    // lines are skipped; a password without "{SCHEME}" is CRYPT; an unknown "{SCHEME}" is an error
    // here rather than a silent per-user login failure later. Also makes the timing dummy (one
    // hash computation). Logs nothing: what deserves a warning is in warnings().
    static result<passwd_file, std::vector<std::string>> load(const std::filesystem::path& path);

    // The parser alone, as load() runs it on a file called `name` holding `text`: the users it
    // defines (in name order), or every problem. No file is read and no hash computed; for the
    // fuzzer (fuzz/fuzz_passwd_file.cpp) and tests.
    static result<std::vector<std::string>, std::vector<std::string>> parse_users(const std::filesystem::path& name,
                                                                                  std::string_view text);

    // Bad lines beyond this many are summed up in one "PATH: N more bad lines not listed" line.
    static constexpr std::size_t max_reported_problems = 100;

    passwd_file(passwd_file&&) noexcept;
    passwd_file& operator=(passwd_file&&) noexcept;
    ~passwd_file() override;

    // Before answering, checks whether the file changed (inode, size, mtime, ctime) and if so
    // re-reads it. A file that became unreadable or malformed gives temp_error (fail closed: a
    // half-written file must not lock out or let in the wrong users) until it is fixed.
    result<std::optional<stored_credential>, temp_error> lookup(std::string_view user) override;
    // From the loaded version when the file has not changed (one stat(), as lookup() does) and no
    // other thread holds the lock (a reload in progress); nullopt otherwise.
    std::optional<std::optional<stored_credential>> try_lookup_cached(std::string_view user) override;
    std::string timing_dummy() const override;

    // What the admin should hear about the version in memory, each starting with the path:
    // readable or writable by others, users without a password, {PLAIN}/{CLEAR} secrets (how
    // many, and the first few users). `poplar check` prints them and `serve` logs them at start;
    // a version loaded later, when the file changed, logs its own.
    std::vector<std::string> warnings() const;

    // Users in the version of the file currently in memory.
    std::size_t user_count() const;
    const std::filesystem::path& path() const noexcept;

private:
    struct state;
    explicit passwd_file(std::unique_ptr<state> s);
    std::unique_ptr<state> state_;
};

}  // namespace poplar::auth
