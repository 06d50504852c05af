// Password schemes: "{SCHEME}data" parsing, hashing via libxcrypt/libargon2, constant-time checks.
#include "auth/password_hash.h"

#include <argon2.h>
#include <crypt.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <spdlog/spdlog.h>

#include <array>
#include <charconv>
#include <memory>

#include "util/secret.h"
#include "util/text.h"

namespace poplar::auth {

namespace {

struct scheme_entry {
    std::string_view name;
    scheme id;
};

// Strongest first: the order `poplar pw --help` lists them in.
constexpr std::array<scheme_entry, 7> scheme_table{{
    {"ARGON2ID", scheme::argon2id},
    {"ARGON2I", scheme::argon2i},
    {"BLF-CRYPT", scheme::blf_crypt},
    {"SHA512-CRYPT", scheme::sha512_crypt},
    {"SHA256-CRYPT", scheme::sha256_crypt},
    {"CRYPT", scheme::crypt},
    {"PLAIN", scheme::plain},
}};

// bcrypt's salt input is 16 bytes; SHA-crypt and yescrypt use fewer, and crypt_gensalt_rn takes
// what it needs from the front. Argon2's recommended salt is 16 bytes too (RFC 9106 §3.1).
constexpr std::size_t salt_bytes = 16;
constexpr std::size_t argon2_hash_bytes = 32;
// libxcrypt's limits for SHA-crypt rounds and bcrypt cost; outside them it would clamp silently.
constexpr unsigned long min_sha_crypt_rounds = 1000;
constexpr unsigned long max_sha_crypt_rounds = 999999999;
constexpr unsigned min_blf_cost = 4;
constexpr unsigned max_blf_cost = 31;

// A stored string split into its "{SCHEME}" label (absent: CRYPT, as in Dovecot) and the data.
struct split_result {
    std::optional<std::string_view> label;
    std::string_view data;
};

split_result split_stored(std::string_view stored) {
    if (!stored.empty() && stored.front() == '{') {
        const auto close = stored.find('}');
        if (close != std::string_view::npos) {
            return {stored.substr(1, close - 1), stored.substr(close + 1)};
        }
    }
    return {std::nullopt, stored};
}

bool starts_with(std::string_view s, std::string_view prefix) noexcept { return s.substr(0, prefix.size()) == prefix; }

// The data must carry the identifier its label promises; otherwise a file that says
// {SHA512-CRYPT} but holds a DES hash would quietly accept the weaker scheme.
bool data_fits_scheme(scheme s, std::string_view data) {
    switch (s) {
    case scheme::sha512_crypt: return starts_with(data, "$6$");
    case scheme::sha256_crypt: return starts_with(data, "$5$");
    // $2a$ is what older tools (and Dovecot before 2.3) wrote; libxcrypt handles all three.
    case scheme::blf_crypt:
        return starts_with(data, "$2y$") || starts_with(data, "$2b$") || starts_with(data, "$2a$");
    case scheme::argon2id: return starts_with(data, "$argon2id$");
    case scheme::argon2i: return starts_with(data, "$argon2i$");
    case scheme::crypt: return !data.empty();
    case scheme::plain: return true;
    }
    return false;
}

// The scheme a stored string uses, or nullopt for an unknown label or data that does not fit it.
std::optional<scheme> usable_scheme(const split_result& parts) {
    const auto s = parts.label ? parse_scheme(*parts.label) : std::optional<scheme>(scheme::crypt);
    if (!s || !data_fits_scheme(*s, parts.data)) {
        return std::nullopt;
    }
    return s;
}

// crypt_data is about 32 KiB: too large for a worker's stack, so it lives on the heap and is
// cleansed afterwards because crypt_rn copies the password into it.
struct crypt_buffer {
    crypt_buffer() : data(std::make_unique<crypt_data>()) {}  // value-initialised: zeroed, as required
    ~crypt_buffer() { OPENSSL_cleanse(data.get(), sizeof(crypt_data)); }
    crypt_buffer(const crypt_buffer&) = delete;
    crypt_buffer& operator=(const crypt_buffer&) = delete;
    std::unique_ptr<crypt_data> data;
};

// crypt_rn(password, setting): nullopt when libxcrypt rejects the setting. The password is copied
// to a NUL-terminated buffer and wiped; the caller rejects passwords containing NUL beforehand.
std::optional<std::string> run_crypt(std::string_view password, std::string_view setting) {
    std::string phrase(password);
    const std::string setting_z(setting);
    crypt_buffer buffer;
    const char* out = crypt_rn(phrase.c_str(), setting_z.c_str(), buffer.data.get(), sizeof(crypt_data));
    util::wipe(phrase);
    if (out == nullptr) {
        return std::nullopt;
    }
    return std::string(out);
}

verify_status verify_crypt(std::string_view data, std::string_view password) {
    if (data.find('\0') != std::string_view::npos) {
        return verify_status::malformed_hash;
    }
    // crypt(3) stops at NUL, so "secret\0anything" would match "secret": refuse it outright.
    if (password.find('\0') != std::string_view::npos) {
        return verify_status::mismatch;
    }
    const auto computed = run_crypt(password, data);
    if (!computed) {
        return verify_status::malformed_hash;
    }
    return util::constant_time_equals(*computed, data) ? verify_status::match : verify_status::mismatch;
}

verify_status verify_argon2(scheme s, std::string_view data, std::string_view password) {
    const std::string encoded(data);
    const argon2_type type = s == scheme::argon2id ? Argon2_id : Argon2_i;
    // argon2_verify recomputes the hash and compares it with its own constant-time comparison.
    const int rc = argon2_verify(encoded.c_str(), password.data(), password.size(), type);
    if (rc == ARGON2_OK) {
        return verify_status::match;
    }
    if (rc == ARGON2_VERIFY_MISMATCH) {
        return verify_status::mismatch;
    }
    return verify_status::malformed_hash;
}

// SHA-256 of both sides, compared in constant time: comparing the cleartexts directly would let
// the running time reveal the stored password's length.
verify_status verify_plain(std::string_view data, std::string_view password) {
    std::array<unsigned char, EVP_MAX_MD_SIZE> a{};
    std::array<unsigned char, EVP_MAX_MD_SIZE> b{};
    unsigned int a_len = 0;
    unsigned int b_len = 0;
    if (EVP_Digest(data.data(), data.size(), a.data(), &a_len, EVP_sha256(), nullptr) != 1 ||
        EVP_Digest(password.data(), password.size(), b.data(), &b_len, EVP_sha256(), nullptr) != 1) {
        return verify_status::malformed_hash;
    }
    const std::string_view da(reinterpret_cast<const char*>(a.data()), a_len);
    const std::string_view db(reinterpret_cast<const char*>(b.data()), b_len);
    return util::constant_time_equals(da, db) ? verify_status::match : verify_status::mismatch;
}

std::optional<std::string> random_bytes(std::size_t n) {
    std::string out(n, '\0');
    if (RAND_bytes(reinterpret_cast<unsigned char*>(out.data()), static_cast<int>(n)) != 1) {
        return std::nullopt;
    }
    return out;
}

std::string labelled(scheme s, std::string_view data) {
    std::string out;
    out.reserve(data.size() + 16);
    out += '{';
    out += scheme_name(s);
    out += '}';
    out += data;
    return out;
}

result<std::string, std::string> hash_crypt(scheme s, std::string_view password, const hash_params& params) {
    if (password.find('\0') != std::string_view::npos) {
        return unexpected(std::string("crypt(3) schemes cannot hash a password containing NUL"));
    }
    const char* prefix = nullptr;  // nullptr: libxcrypt's preferred method (yescrypt on Debian)
    unsigned long count = 0;
    switch (s) {
    case scheme::sha512_crypt:
    case scheme::sha256_crypt:
        prefix = s == scheme::sha512_crypt ? "$6$" : "$5$";
        count = params.sha_crypt_rounds;
        if (count != 0 && (count < min_sha_crypt_rounds || count > max_sha_crypt_rounds)) {
            return unexpected(std::string("SHA-crypt rounds must be between 1000 and 999999999"));
        }
        break;
    case scheme::blf_crypt:
        // $2y$ is what Dovecot and PHP write; libxcrypt computes it identically to $2b$.
        prefix = "$2y$";
        count = params.blf_cost;
        if (count < min_blf_cost || count > max_blf_cost) {
            return unexpected(std::string("bcrypt cost must be between 4 and 31"));
        }
        break;
    default:
        break;
    }
    const auto entropy = random_bytes(salt_bytes);
    if (!entropy) {
        return unexpected(std::string("no random bytes for a salt (OpenSSL RAND_bytes failed)"));
    }
    std::array<char, CRYPT_GENSALT_OUTPUT_SIZE> setting{};
    if (crypt_gensalt_rn(prefix, count, entropy->data(), static_cast<int>(entropy->size()), setting.data(),
                         static_cast<int>(setting.size())) == nullptr) {
        return unexpected(std::string("libxcrypt could not make a salt for ") + std::string(scheme_name(s)));
    }
    const auto hashed = run_crypt(password, setting.data());
    if (!hashed) {
        return unexpected(std::string("libxcrypt could not hash with ") + std::string(scheme_name(s)));
    }
    return labelled(s, *hashed);
}

result<std::string, std::string> hash_argon2(scheme s, std::string_view password, std::uint32_t t_cost,
                                             std::uint32_t m_cost, std::uint32_t parallelism,
                                             std::uint32_t version, std::size_t hash_len) {
    const argon2_type type = s == scheme::argon2id ? Argon2_id : Argon2_i;
    const auto salt = random_bytes(salt_bytes);
    if (!salt) {
        return unexpected(std::string("no random bytes for a salt (OpenSSL RAND_bytes failed)"));
    }
    std::string encoded(argon2_encodedlen(t_cost, m_cost, parallelism, salt_bytes,
                                          static_cast<std::uint32_t>(hash_len), type) + 1,
                        '\0');
    const int rc = argon2_hash(t_cost, m_cost, parallelism, password.data(), password.size(), salt->data(),
                               salt->size(), nullptr, hash_len, encoded.data(), encoded.size(), type, version);
    if (rc != ARGON2_OK) {
        return unexpected(std::string("Argon2: ") + argon2_error_message(rc));
    }
    encoded.resize(encoded.find('\0'));
    return labelled(s, encoded);
}

// Parses "$argon2id$v=19$m=65536,t=3,p=1$salt$hash" (v= absent in pre-1.3 hashes, version 0x10).
struct argon2_settings {
    std::uint32_t version = ARGON2_VERSION_10;
    std::uint32_t m = 0;
    std::uint32_t t = 0;
    std::uint32_t p = 0;
    std::size_t hash_len = 0;
};

bool parse_u32(std::string_view text, std::string_view key, std::uint32_t& out) {
    if (!starts_with(text, key)) {
        return false;
    }
    text.remove_prefix(key.size());
    const auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size(), out);
    return ec == std::errc{} && ptr == text.data() + text.size();
}

std::optional<argon2_settings> parse_argon2(std::string_view data) {
    std::vector<std::string_view> parts;
    std::size_t start = 0;
    while (start <= data.size()) {
        const auto next = data.find('$', start);
        const auto end = next == std::string_view::npos ? data.size() : next;
        parts.push_back(data.substr(start, end - start));
        start = end + 1;
    }
    // "", "argon2id", ["v=19",] "m=..,t=..,p=..", salt, hash
    if (parts.size() != 5 && parts.size() != 6) {
        return std::nullopt;
    }
    argon2_settings out;
    std::size_t i = 2;
    if (parts.size() == 6 && !parse_u32(parts[i++], "v=", out.version)) {
        return std::nullopt;
    }
    const std::string_view mtp = parts[i];
    const auto c1 = mtp.find(',');
    const auto c2 = mtp.find(',', c1 == std::string_view::npos ? c1 : c1 + 1);
    if (c1 == std::string_view::npos || c2 == std::string_view::npos || !parse_u32(mtp.substr(0, c1), "m=", out.m) ||
        !parse_u32(mtp.substr(c1 + 1, c2 - c1 - 1), "t=", out.t) || !parse_u32(mtp.substr(c2 + 1), "p=", out.p)) {
        return std::nullopt;
    }
    // Unpadded base64: every 4 characters carry 3 bytes, a tail of 2 or 3 carries 1 or 2.
    const std::size_t b64 = parts[i + 2].size();
    out.hash_len = b64 / 4 * 3 + (b64 % 4 == 0 ? 0 : b64 % 4 - 1);
    return out;
}

std::string hex_encode(std::string_view bytes) {
    static constexpr char digits[] = "0123456789abcdef";
    std::string out;
    out.reserve(bytes.size() * 2);
    for (const unsigned char c : bytes) {
        out += digits[c >> 4];
        out += digits[c & 0x0F];
    }
    return out;
}

}  // namespace

std::optional<scheme> parse_scheme(std::string_view name) {
    if (util::iequals(name, "CLEAR")) {
        return scheme::plain;
    }
    for (const auto& entry : scheme_table) {
        if (util::iequals(name, entry.name)) {
            return entry.id;
        }
    }
    return std::nullopt;
}

std::string_view scheme_name(scheme s) noexcept {
    for (const auto& entry : scheme_table) {
        if (entry.id == s) {
            return entry.name;
        }
    }
    return "UNKNOWN";
}

std::vector<std::string_view> scheme_names() {
    std::vector<std::string_view> names;
    for (const auto& entry : scheme_table) {
        names.push_back(entry.name);
    }
    names.emplace_back("CLEAR");
    return names;
}

result<std::string, std::string> hash_password(scheme s, std::string_view password, const hash_params& params) {
    switch (s) {
    case scheme::plain:
        // passwd-file fields are ':'-separated lines (Dovecot's format), so these bytes would
        // corrupt the line rather than be stored.
        if (password.find_first_of(std::string_view(":\r\n\0", 4)) != std::string_view::npos) {
            return unexpected(std::string("a PLAIN password cannot contain ':', CR, LF or NUL"));
        }
        return labelled(s, password);
    case scheme::argon2id:
    case scheme::argon2i:
        return hash_argon2(s, password, params.argon2_time_cost, params.argon2_memory_kib,
                           params.argon2_parallelism, ARGON2_VERSION_13, argon2_hash_bytes);
    case scheme::sha512_crypt:
    case scheme::sha256_crypt:
    case scheme::blf_crypt:
    case scheme::crypt:
        return hash_crypt(s, password, params);
    }
    return unexpected(std::string("unknown scheme"));
}

std::string_view describe(verify_status status) noexcept {
    switch (status) {
    case verify_status::match: return "password matches";
    case verify_status::mismatch: return "password mismatch";
    case verify_status::unsupported_scheme: return "unsupported password scheme";
    case verify_status::malformed_hash: return "malformed password hash";
    }
    return "unknown";
}

verify_status check_password(std::string_view stored, std::string_view password) {
    const auto [label, data] = split_stored(stored);
    scheme s = scheme::crypt;
    if (label) {
        const auto parsed = parse_scheme(*label);
        if (!parsed) {
            return verify_status::unsupported_scheme;
        }
        s = *parsed;
    }
    if (!data_fits_scheme(s, data)) {
        return verify_status::malformed_hash;
    }
    switch (s) {
    case scheme::plain: return verify_plain(data, password);
    case scheme::argon2id:
    case scheme::argon2i: return verify_argon2(s, data, password);
    case scheme::sha512_crypt:
    case scheme::sha256_crypt:
    case scheme::blf_crypt:
    case scheme::crypt: return verify_crypt(data, password);
    }
    return verify_status::unsupported_scheme;
}

bool verify_password(std::string_view stored, std::string_view password) {
    const verify_status status = check_password(stored, password);
    if (status == verify_status::unsupported_scheme || status == verify_status::malformed_hash) {
        const auto label = split_stored(stored).label;
        spdlog::warn("password verification impossible: {} ({{{}}})", describe(status),
                     util::log_escape(label.value_or("CRYPT"), 32));
    }
    return status == verify_status::match;
}

std::optional<std::string_view> plain_secret(std::string_view stored) {
    const auto [label, data] = split_stored(stored);
    if (label && parse_scheme(*label) == scheme::plain) {
        return data;
    }
    return std::nullopt;
}

result<std::string, std::string> make_timing_dummy(std::string_view stored) {
    const split_result parts = split_stored(stored);
    const std::string_view data = parts.data;
    const auto usable = usable_scheme(parts);
    if (!usable) {
        return unexpected(std::string("template hash cannot be verified"));
    }
    const scheme s = *usable;
    const auto random = random_bytes(24);
    if (!random) {
        return unexpected(std::string("no random bytes (OpenSSL RAND_bytes failed)"));
    }
    std::string password = hex_encode(*random);
    result<std::string, std::string> out = unexpected(std::string("unreachable"));
    switch (s) {
    case scheme::plain:
        out = labelled(s, password);
        break;
    case scheme::argon2id:
    case scheme::argon2i: {
        const auto settings = parse_argon2(data);
        if (!settings) {
            out = unexpected(std::string("template Argon2 hash is malformed"));
            break;
        }
        out = hash_argon2(s, password, settings->t, settings->m, settings->p, settings->version, settings->hash_len);
        break;
    }
    default: {
        // The stored hash is itself a valid setting: crypt_rn reads the method, cost and salt from
        // its front, so the dummy costs exactly what this account costs. Reusing the salt is
        // harmless: the dummy's password is random and never leaves the process.
        const auto hashed = run_crypt(password, data);
        if (!hashed) {
            out = unexpected(std::string("libxcrypt rejected the template hash"));
        } else {
            out = labelled(s, *hashed);
        }
        break;
    }
    }
    util::wipe(password);
    return out;
}

std::optional<std::string> weakness(std::string_view stored) {
    const std::string family = cost_family(stored);
    const std::string_view f = family;
    auto number_after = [&](std::string_view key) -> std::optional<unsigned long> {
        const auto at = f.find(key);
        if (at == std::string_view::npos) {
            return std::nullopt;
        }
        unsigned long n = 0;
        const char* begin = f.data() + at + key.size();
        auto [p, ec] = std::from_chars(begin, f.data() + f.size(), n);
        return ec == std::errc{} && p != begin ? std::optional<unsigned long>(n) : std::nullopt;
    };
    if (f == "des") {
        return "DES crypt";
    }
    if (starts_with(f, "$1$")) {
        return "MD5-CRYPT";
    }
    if (starts_with(f, "$3$")) {
        return "NT hash";
    }
    if (starts_with(f, "$5$") || starts_with(f, "$6$")) {
        const unsigned long rounds = number_after("rounds=").value_or(5000);
        if (rounds < 5000) {
            return fmt::format("{} with {} rounds (under 5000)", f[1] == '5' ? "SHA256-CRYPT" : "SHA512-CRYPT", rounds);
        }
        return std::nullopt;
    }
    if (starts_with(f, "$2") && f.size() >= 7) {
        const auto cost = number_after(f.substr(0, 4));
        if (cost && *cost < 10) {
            return fmt::format("bcrypt cost {} (under 10)", *cost);
        }
        return std::nullopt;
    }
    if (starts_with(f, "$argon2")) {
        const unsigned long m = number_after("m=").value_or(0);
        const unsigned long t = number_after("t=").value_or(0);
        if (m < 19456 || (m < 47104 && t < 2)) {
            return fmt::format("Argon2 with m={} KiB, t={} (under OWASP's m=19456, t=2)", m, t);
        }
    }
    return std::nullopt;
}

std::string cost_family(std::string_view stored) {
    const split_result parts = split_stored(stored);
    const std::string_view data = parts.data;
    const auto s = usable_scheme(parts);
    if (!s) {
        return {};
    }
    if (*s == scheme::plain) {
        return "plain";
    }
    if (data.front() != '$') {
        return "des";  // traditional crypt(3): two salt characters, fixed cost
    }
    // Everything before the salt carries method and cost: "$6$rounds=N$", "$y$j9T$",
    // "$argon2id$v=19$m=65536,t=3,p=1$". bcrypt is "$2y$NN$" followed by salt and hash in one field.
    const bool bcrypt = starts_with(data, "$2");
    const std::size_t drop = bcrypt ? 1 : 2;
    std::size_t end = data.size();
    for (std::size_t i = 0; i < drop; ++i) {
        const auto dollar = data.rfind('$', end == 0 ? 0 : end - 1);
        if (dollar == std::string_view::npos || dollar == 0) {
            return std::string(data.substr(0, data.find('$', 1) + 1));
        }
        end = dollar;
    }
    return std::string(data.substr(0, end + 1));
}

}  // namespace poplar::auth
