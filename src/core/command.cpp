// POP3 command parsing: keyword lookup (case-insensitive, RFC 1939 §3) and argument splitting.
#include "core/command.h"

#include <array>
#include <utility>

#include "core/limits.h"
#include "util/text.h"

namespace poplar::core {

namespace {

constexpr std::array<std::pair<std::string_view, verb>, 15> keywords{{
    {"USER", verb::user}, {"PASS", verb::pass}, {"APOP", verb::apop}, {"AUTH", verb::auth},
    {"STLS", verb::stls}, {"CAPA", verb::capa}, {"QUIT", verb::quit}, {"STAT", verb::stat},
    {"LIST", verb::list}, {"RETR", verb::retr}, {"DELE", verb::dele}, {"NOOP", verb::noop},
    {"RSET", verb::rset}, {"TOP", verb::top},   {"UIDL", verb::uidl},
}};

verb lookup(std::string_view keyword) {
    for (const auto& [name, v] : keywords) {
        if (util::iequals(name, keyword)) {
            return v;
        }
    }
    return verb::unknown;
}

}  // namespace

command parse_command(std::string_view line) {
    command cmd;
    const std::size_t sp = line.find(' ');
    cmd.what = lookup(line.substr(0, sp));
    if (sp == std::string_view::npos || cmd.what == verb::unknown) {
        return cmd;
    }
    std::string_view rest = line.substr(sp + 1);
    if (cmd.what == verb::pass) {
        cmd.args.push_back(rest);
        return cmd;
    }
    // Some clients end commands with a space ("LIST \r\n"); that is not an empty argument.
    while (!rest.empty() && rest.back() == ' ') {
        rest.remove_suffix(1);
    }
    if (rest.empty()) {
        return cmd;
    }
    // Split on single spaces: "LIST  1" has an empty first argument, which the number parser
    // rejects as invalid rather than guessing what the client meant.
    while (true) {
        const std::size_t next = rest.find(' ');
        cmd.args.push_back(rest.substr(0, next));
        if (next == std::string_view::npos) {
            break;
        }
        rest = rest.substr(next + 1);
    }
    return cmd;
}

number_arg parse_number(std::string_view s) {
    if (s.empty()) {
        return {number_arg::kind::invalid};
    }
    for (char c : s) {
        if (c < '0' || c > '9') {
            return {number_arg::kind::invalid};
        }
    }
    if (s.size() > limits::max_number_digits) {
        return {number_arg::kind::out_of_range};
    }
    std::uint64_t v = 0;
    for (char c : s) {
        v = v * 10 + static_cast<std::uint64_t>(c - '0');
    }
    return {number_arg::kind::ok, v};
}

}  // namespace poplar::core
