// The admin control protocol's framing and parsing (see protocol.h for the grammar).
#include "control/protocol.h"

#include <fmt/format.h>

#include <array>
#include <charconv>
#include <utility>

namespace poplar::control {

namespace {

constexpr std::string_view magic = "POPLAR-CONTROL";

struct entry {
    command what;
    std::string_view name;
    bool takes_argument;
};

// The one table of commands: what exists, and whether it needs an argument.
constexpr std::array<entry, 5> commands{{
    {command::status, "status", false},
    {command::who, "who", false},
    {command::kick, "kick", true},
    {command::stats, "stats", false},
    {command::reload, "reload", false},
}};

const entry* find(std::string_view text) {
    for (const entry& e : commands) {
        if (e.name == text) {
            return &e;
        }
    }
    return nullptr;
}

bool has_control_characters(std::string_view s) {
    for (unsigned char c : s) {
        if (c < 0x20 || c == 0x7f) {
            return true;
        }
    }
    return false;
}

}  // namespace

std::string_view name(command c) {
    for (const entry& e : commands) {
        if (e.what == c) {
            return e.name;
        }
    }
    return "?";
}

std::optional<command> command_named(std::string_view text) {
    const entry* e = find(text);
    return e ? std::optional<command>(e->what) : std::nullopt;
}

std::string format_request(const request& r) {
    if (r.argument.empty()) {
        return fmt::format("{} {} {}\n", magic, protocol_version, name(r.what));
    }
    return fmt::format("{} {} {} {}\n", magic, protocol_version, name(r.what), r.argument);
}

std::variant<request, need_more, bad> parse_request(std::string_view buffered) {
    const std::size_t eol = buffered.find('\n');
    if (eol == std::string_view::npos) {
        if (buffered.size() >= max_request) {
            return bad{"request too long"};
        }
        return need_more{};
    }
    if (eol + 1 > max_request) {
        return bad{"request too long"};
    }
    std::string_view line = buffered.substr(0, eol);
    if (!line.starts_with(magic) || line.size() <= magic.size() || line[magic.size()] != ' ') {
        return bad{"not a poplar control request"};
    }
    line.remove_prefix(magic.size() + 1);
    const std::size_t sp = line.find(' ');
    const std::string_view version = line.substr(0, sp);
    int v = 0;
    auto [p, ec] = std::from_chars(version.data(), version.data() + version.size(), v);
    if (ec != std::errc{} || p != version.data() + version.size()) {
        return bad{"not a poplar control request"};
    }
    if (v != protocol_version) {
        return bad{fmt::format("control protocol version {} is not supported (this server speaks {})", v,
                               protocol_version)};
    }
    if (sp == std::string_view::npos) {
        return bad{"no command"};
    }
    line.remove_prefix(sp + 1);
    const std::size_t arg_sp = line.find(' ');
    const entry* e = find(line.substr(0, arg_sp));
    if (e == nullptr) {
        return bad{"unknown command"};
    }
    request r{e->what, {}};
    if (arg_sp != std::string_view::npos) {
        r.argument = std::string(line.substr(arg_sp + 1));
    }
    if (e->takes_argument && r.argument.empty()) {
        return bad{fmt::format("{} needs an argument", e->name)};
    }
    if (!e->takes_argument && !r.argument.empty()) {
        return bad{fmt::format("{} takes no argument", e->name)};
    }
    if (has_control_characters(r.argument)) {
        return bad{"control characters in the argument"};
    }
    return r;
}

std::string format_reply(const reply& r) {
    std::string out = fmt::format("{} {}\n", r.ok ? "OK" : "ERR", r.body.size());
    out += r.body;
    return out;
}

std::variant<reply, need_more, bad> parse_reply(std::string_view buffered) {
    const std::size_t eol = buffered.find('\n');
    if (eol == std::string_view::npos) {
        return buffered.size() > 32 ? std::variant<reply, need_more, bad>(bad{"malformed reply header"})
                                    : std::variant<reply, need_more, bad>(need_more{});
    }
    std::string_view head = buffered.substr(0, eol);
    reply r;
    if (head.starts_with("OK ")) {
        r.ok = true;
        head.remove_prefix(3);
    } else if (head.starts_with("ERR ")) {
        head.remove_prefix(4);
    } else {
        return bad{"malformed reply header"};
    }
    std::size_t n = 0;
    auto [p, ec] = std::from_chars(head.data(), head.data() + head.size(), n);
    if (ec != std::errc{} || p != head.data() + head.size() || head.empty() || n > max_reply_body) {
        return bad{"malformed reply length"};
    }
    const std::string_view rest = buffered.substr(eol + 1);
    if (rest.size() < n) {
        return need_more{};
    }
    if (rest.size() > n) {
        return bad{"reply longer than announced"};
    }
    r.body = std::string(rest);
    return r;
}

}  // namespace poplar::control
