// The `poplar pw` strength policy: libpwquality settings from pwquality.conf, one check per password.
#include "auth/password_policy.h"

#include <pwquality.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "util/secret.h"

namespace poplar::auth {

namespace {

pwquality_settings_t* as_settings(void* p) { return static_cast<pwquality_settings_t*>(p); }

// pwquality_strerror frees or keeps `aux` as the error code requires; calling it once per
// non-zero code is what the API asks for (pwquality.h: "Not passing the *auxerror ... leaks").
std::string reason_text(int code, void* aux) {
    char buf[PWQ_MAX_ERROR_MESSAGE_LEN];
    const char* text = pwquality_strerror(buf, sizeof buf, code, aux);
    return text != nullptr ? std::string(text) : "libpwquality error " + std::to_string(code);
}

// cracklib's own wording when FascistCheck cannot open its dictionary (dictpath, or the
// cracklib-runtime files under /var/cache/cracklib). poplar never calls setlocale, so the
// message is untranslated. Without this, "fails the dictionary check" would blame the password.
constexpr std::string_view dictionary_load_error = "error loading dictionary";

}  // namespace

void password_policy::settings_deleter::operator()(void* p) const noexcept { pwquality_free_settings(as_settings(p)); }

password_policy::password_policy(password_policy&&) noexcept = default;
password_policy& password_policy::operator=(password_policy&&) noexcept = default;
password_policy::~password_policy() = default;

result<password_policy, std::string> password_policy::load(const std::optional<std::filesystem::path>& config_file) {
    password_policy out;
    out.settings_.reset(pwquality_default_settings());
    if (!out.settings_) {
        return unexpected(std::string("libpwquality: out of memory"));
    }
    // libpwquality itself ignores a missing default file but not a missing named one, except
    // when the name happens to equal the default: check a named file here so it is never skipped.
    if (config_file && ::access(config_file->c_str(), R_OK) != 0) {
        const int err = errno;
        return unexpected(config_file->string() + ": cannot read: " + std::strerror(err));
    }
    const std::string shown = config_file ? config_file->string() : std::string(system_config);
    void* aux = nullptr;
    const int rc = pwquality_read_config(as_settings(out.settings_.get()), config_file ? config_file->c_str() : nullptr,
                                         &aux);
    if (rc == PWQ_ERROR_CFGFILE_OPEN && !config_file) {
        const std::string why = reason_text(rc, aux);
        // The defaults are the same settings Debian's commented-out file describes.
        out.warnings_.push_back(shown + ": " + why + "; using libpwquality's built-in defaults");
    } else if (rc != 0) {
        return unexpected(shown + ": " + reason_text(rc, aux));
    }
    int enforcing = 1;
    if (pwquality_get_int_value(as_settings(out.settings_.get()), PWQ_SETTING_ENFORCING, &enforcing) == 0) {
        out.enforcing_ = enforcing != 0;
    }
    return out;
}

result<std::optional<std::string>, std::string> password_policy::check(std::string_view password,
                                                                       std::string_view user) const {
    if (password.find('\0') != std::string_view::npos) {
        return unexpected(std::string("cannot check a password containing NUL"));
    }
    std::string pw(password);  // a NUL-terminated copy of the secret, wiped below
    std::vector<std::string> names;
    if (!user.empty()) {
        names.emplace_back(user);
        // "alice@example.com": libpwquality looks for the whole name only, so "alice2024!" would
        // pass; the local part is the word people actually reuse.
        if (const auto at = user.rfind('@'); at != std::string_view::npos && at > 0) {
            names.emplace_back(user.substr(0, at));
        }
    } else {
        names.emplace_back();
    }
    std::optional<std::string> verdict;
    for (const std::string& name : names) {
        void* aux = nullptr;
        const int score = pwquality_check(as_settings(settings_.get()), pw.c_str(), nullptr,
                                          name.empty() ? nullptr : name.c_str(), &aux);
        if (score >= 0) {
            continue;
        }
        // For this code aux is cracklib's static message, not something strerror must free.
        if (score == PWQ_ERROR_CRACKLIB_CHECK && aux != nullptr &&
            std::string_view(static_cast<const char*>(aux)) == dictionary_load_error) {
            util::wipe(pw);
            return unexpected(std::string("libpwquality cannot load the cracklib dictionary (install "
                                          "cracklib-runtime, or set dictpath in ") +
                              system_config + ")");
        }
        verdict = reason_text(score, aux);
        break;
    }
    util::wipe(pw);
    return verdict;
}

}  // namespace poplar::auth
