// `poplar deliver`: the local delivery agent. One message on standard input into one user's
// maildrop, through the same delivery path as the LMTP listener (delivery/local_delivery.h).
//
// Postfix runs it as a pipe(8) transport or mailbox_command and reads two things back: the exit
// status, in sysexits(3) terms (67 unknown user, 75 try again, 77/73 refused for good), and the
// first line of output, whose leading RFC 3463 enhanced status code pipe(8) uses in the bounce
// or the deferral (so "5.2.2 ... mailbox full" reaches the sender, not a generic 5.3.0).
#include <sysexits.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <string>

#include <fmt/format.h>

#include "auth/passwd_file.h"
#include "cli/commands.h"
#include "config/config.h"
#include "core/stored_form.h"
#include "delivery/local_delivery.h"
#include "delivery/recipient_lookup.h"
#include "storage/maildir/maildir_delivery.h"
#include "util/privileges.h"
#include "util/text.h"

namespace poplar::cli {

namespace {

// The one line Postfix shows: "<enhanced code> <text>".
int fail(int exit_code, std::string_view enhanced, const std::string& text) {
    std::fprintf(stderr, "%.*s poplar deliver: %s\n", static_cast<int>(enhanced.size()), enhanced.data(), text.c_str());
    return exit_code;
}

int exit_code_of(delivery::status s) {
    switch (s) {
    case delivery::status::delivered: return EX_OK;
    case delivery::status::over_quota_temp: return EX_TEMPFAIL;
    case delivery::status::over_quota_perm: return EX_NOPERM;   // Dovecot's LDA uses it for a full mailbox too
    case delivery::status::too_large: return EX_CANTCREAT;
    case delivery::status::unknown_user: return EX_NOUSER;
    case delivery::status::permanent: return EX_CANTCREAT;
    case delivery::status::temporary: break;
    }
    return EX_TEMPFAIL;
}

// Reads standard input up to `limit` + 1 octets (so "too large" is known without reading a
// runaway pipe forever). nullopt and errno on a read error.
std::optional<std::string> read_message(std::uint64_t limit) {
    std::string raw;
    char buf[64 * 1024];
    for (;;) {
        const ssize_t n = ::read(STDIN_FILENO, buf, sizeof buf);
        if (n < 0) {
            if (errno == EINTR) {
                continue;
            }
            return std::nullopt;
        }
        if (n == 0) {
            return raw;
        }
        raw.append(buf, static_cast<std::size_t>(n));
        if (raw.size() > limit) {
            return raw;
        }
    }
}

}  // namespace

int deliver(const deliver_options& o) {
    config::loaded_config read;
    try {
        // As the auth process reads it: the TLS files are not checked (this never opens them,
        // and the delivering user may not be able to).
        read = config::read_file_for_auth_process(o.config_file);
    } catch (const config::config_error& e) {
        return fail(EX_CONFIG, "4.3.5", fmt::format("{}", e.what()));
    }
    if (!read.problems.empty()) {
        return fail(EX_CONFIG, "4.3.5", fmt::format("invalid configuration: {}", read.problems.front()));
    }
    const config::config& cfg = read.cfg;
    config::delivery_settings settings = cfg.delivery;
    if (o.no_trace_headers) {
        settings.trace_headers = false;
    }

    auto users = auth::passwd_file::load(cfg.auth.passwd_file);
    if (!users) {
        return fail(EX_TEMPFAIL, "4.3.0", fmt::format("user database: {}", users.error().front()));
    }
    auto found = delivery::find_recipient(*users, o.user, settings);
    if (!found) {
        return fail(EX_TEMPFAIL, "4.3.0", fmt::format("user database: {}", found.error()));
    }
    if (!*found) {
        return fail(EX_NOUSER, "5.1.1", fmt::format("{}: no such user", util::log_escape(o.user)));
    }

    // Mail must belong to the user the POP3 server runs as, never to root: started as root,
    // deliver becomes server.user before it touches a maildrop, as serve does.
    if (::geteuid() == 0) {
        if (!cfg.server.user.empty()) {
            auto id = util::look_up_identity(cfg.server.user, cfg.server.group);
            if (!id) {
                return fail(EX_CONFIG, "4.3.5", fmt::format("server.user: {}", id.error()));
            }
            if (auto dropped = util::drop_privileges(*id); !dropped) {
                return fail(EX_TEMPFAIL, "4.3.0", fmt::format("cannot become {}: {}", id->user, dropped.error()));
            }
        } else if (!cfg.server.allow_root) {
            return fail(EX_CONFIG, "4.3.5",
                        "started as root without server.user: mail would belong to root, which the POP3 server may "
                        "not read; set server.user or run deliver as the mail user");
        }
    }

    const auto raw = read_message(settings.max_message_size);
    if (!raw) {
        return fail(EX_TEMPFAIL, "4.3.0", fmt::format("cannot read the message: {}", std::strerror(errno)));
    }
    if (raw->size() > settings.max_message_size) {
        // Reading stopped there: refused whole, never stored cut short.
        return fail(EX_CANTCREAT, "5.3.4",
                    fmt::format("message too large (more than delivery.max_message_size, {} octets)",
                                settings.max_message_size));
    }
    const std::string body = core::stored_form(*raw);
    std::unique_ptr<storage::mail_delivery> store;
    try {
        store = std::make_unique<storage::maildir::maildir_delivery>(
            cfg.storage.maildir, storage::maildir::delivery_options{cfg.server.hostname, {}});
    } catch (const std::invalid_argument& e) {
        return fail(EX_CONFIG, "4.3.5", fmt::format("storage.maildir: {}", e.what()));
    }
    const std::string& recipient = o.recipient.empty() ? o.user : o.recipient;
    const delivery::outcome out =
        delivery::deliver_message(*store, **found, delivery::message{o.sender, recipient, body}, settings);
    if (out.what == delivery::status::delivered) {
        return EX_OK;
    }
    const std::string who = util::log_escape((*found)->user);
    switch (out.what) {
    case delivery::status::over_quota_temp:
    case delivery::status::over_quota_perm:
        return fail(exit_code_of(out.what), delivery::enhanced_code(out.what), fmt::format("{}: mailbox full", who));
    case delivery::status::too_large:
        return fail(exit_code_of(out.what), delivery::enhanced_code(out.what),
                    fmt::format("message too large ({})", out.detail));
    default:
        return fail(exit_code_of(out.what), delivery::enhanced_code(out.what),
                    fmt::format("{}: {}", who, util::log_escape(out.detail, 512)));
    }
}

}  // namespace poplar::cli
