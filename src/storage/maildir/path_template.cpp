// Expands the Maildir location template for one user (see path_template.h).
#include "storage/maildir/path_template.h"

#include <stdexcept>

#include "util/text.h"

namespace poplar::storage::maildir {

namespace {

error refuse(std::string_view why, std::string_view user) {
    return error{errc::permanent, std::string{"refusing user name \""} + util::log_escape(user) + "\": " +
                                      std::string{why}};
}

// Why `user` cannot name a Maildir, or an empty view if it can.
std::string_view user_name_problem(std::string_view user) {
    if (user.empty()) {
        return "empty";
    }
    for (const char c : user) {
        const auto u = static_cast<unsigned char>(c);
        if (c == '/') {
            return "contains '/'";
        }
        if (u < 0x20 || u == 0x7F) {
            return "contains a control character or NUL";
        }
    }
    if (user.find("..") != std::string_view::npos) {
        return "contains \"..\"";
    }
    if (user.front() == '.') {
        return "starts with '.'";
    }
    const std::size_t at = user.rfind('@');
    if (at != std::string_view::npos) {
        if (at == 0) {
            return "empty local part";
        }
        if (at + 1 == user.size()) {
            return "empty domain";
        }
        if (user[at + 1] == '.') {
            return "domain starts with '.'";
        }
    }
    return {};
}

// Defence in depth: whatever the template and the checks above allow, the final path must not
// walk upwards or contain NUL.
bool path_is_safe(std::string_view path) {
    if (path.find('\0') != std::string_view::npos) {
        return false;
    }
    std::size_t start = 0;
    while (start <= path.size()) {
        std::size_t end = path.find('/', start);
        if (end == std::string_view::npos) {
            end = path.size();
        }
        const std::string_view component = path.substr(start, end - start);
        if (component == "." || component == "..") {
            return false;
        }
        start = end + 1;
    }
    return true;
}

}  // namespace

path_template::path_template(std::string text) : text_(std::move(text)) {
    if (text_.empty() || text_.front() != '/') {
        throw std::invalid_argument("maildir path template must be an absolute path: " + text_);
    }
    bool names_user = false;
    for (std::size_t i = 0; i < text_.size(); ++i) {
        if (text_[i] != '%') {
            continue;
        }
        if (i + 1 == text_.size()) {
            throw std::invalid_argument("maildir path template ends in a lone '%': " + text_);
        }
        const char v = text_[++i];
        if (v == 'u' || v == 'n') {
            names_user = true;
        } else if (v != 'd' && v != '%') {
            throw std::invalid_argument(std::string{"maildir path template has unknown variable %"} + v +
                                        " (use %u, %n, %d or %%): " + text_);
        }
    }
    if (!names_user) {
        throw std::invalid_argument("maildir path template must contain %u or %n, or every user would share "
                                    "one maildrop: " + text_);
    }
    if (!path_is_safe(text_)) {
        throw std::invalid_argument("maildir path template contains a '.' or '..' component: " + text_);
    }
}

result<std::string, error> path_template::expand(std::string_view user) const {
    if (const std::string_view problem = user_name_problem(user); !problem.empty()) {
        return unexpected{refuse(problem, user)};
    }
    const std::size_t at = user.rfind('@');
    const std::string_view local = user.substr(0, at);
    const std::string_view domain = at == std::string_view::npos ? std::string_view{} : user.substr(at + 1);

    std::string out;
    out.reserve(text_.size() + user.size() * 2);
    for (std::size_t i = 0; i < text_.size(); ++i) {
        if (text_[i] != '%') {
            out += text_[i];
            continue;
        }
        switch (text_[++i]) {
        case 'u':
            out += user;
            break;
        case 'n':
            out += local;
            break;
        case 'd':
            out += domain;
            break;
        default:  // "%%"; the constructor rejected everything else
            out += '%';
            break;
        }
    }
    if (!path_is_safe(out)) {
        return unexpected{refuse("the expanded path has a '.' or '..' component", user)};
    }
    return out;
}

}  // namespace poplar::storage::maildir
