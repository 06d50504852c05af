// POP3 status line formatting with response codes.
#include "core/reply.h"

namespace poplar::core {

namespace {
std::string_view code_text(resp_code code) {
    switch (code) {
        case resp_code::none: return {};
        case resp_code::auth: return "[AUTH] ";
        case resp_code::sys_temp: return "[SYS/TEMP] ";
        case resp_code::sys_perm: return "[SYS/PERM] ";
        case resp_code::in_use: return "[IN-USE] ";
        case resp_code::login_delay: return "[LOGIN-DELAY] ";
    }
    return {};
}
}  // namespace

void append_ok(std::string& out, std::string_view text) {
    out += "+OK";
    if (!text.empty()) {
        out += ' ';
        out += text;
    }
    out += "\r\n";
}

void append_err(std::string& out, resp_code code, std::string_view text) {
    out += "-ERR ";
    out += code_text(code);
    out += text;
    out += "\r\n";
}

std::string ok(std::string_view text) {
    std::string s;
    append_ok(s, text);
    return s;
}

std::string err(resp_code code, std::string_view text) {
    std::string s;
    append_err(s, code, text);
    return s;
}

std::string shutdown_reply() { return err(resp_code::sys_temp, "server shutting down"); }
std::string autologout_reply() { return err("autologout: idle for too long"); }
// `poplar kick`: no response code fits (RFC 2449 §8, RFC 3206): it is neither the server's
// trouble ([SYS/TEMP]) nor the client's credentials ([AUTH]).
std::string kicked_reply() { return err("session ended by the administrator"); }

}  // namespace poplar::core
