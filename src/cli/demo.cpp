// The embedded default: a self-contained demo state folder, made once, then served like any
// admin's configuration (the generated poplar.toml goes through the normal loader).
#include <fcntl.h>
#include <fmt/format.h>
#include <openssl/rand.h>
#include <unistd.h>

#include <ctime>
#include <fstream>
#include <stdexcept>

#include "auth/password_hash.h"
#include "cli/commands.h"
#include "net/tls_context.h"

namespace poplar::cli {

namespace {

namespace fs = std::filesystem;

void write_file(const fs::path& p, std::string_view content, mode_t mode = 0644) {
    const int fd = ::open(p.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
    if (fd < 0 || ::write(fd, content.data(), content.size()) != static_cast<ssize_t>(content.size()) ||
        ::fsync(fd) != 0) {
        if (fd >= 0) {
            ::close(fd);
        }
        throw std::runtime_error(fmt::format("cannot write {}", p.string()));
    }
    ::close(fd);
}

std::string random_password() {
    // 16 characters from an alphabet without look-alikes: ~90 bits.
    static constexpr char alphabet[] = "abcdefghijkmnpqrstuvwxyzACDEFGHJKLMNPQRTUVWXY34679";
    unsigned char r[16];
    if (RAND_bytes(r, sizeof r) != 1) {
        throw std::runtime_error("no randomness for the demo password");
    }
    std::string out;
    for (unsigned char b : r) {
        out += alphabet[b % (sizeof alphabet - 1)];
    }
    return out;
}

// A few messages showing what POP3 clients must cope with (docs/protocol.md).
void write_demo_mail(const fs::path& maildir) {
    for (const char* sub : {"cur", "new", "tmp"}) {
        fs::create_directories(maildir / sub);
        fs::permissions(maildir / sub, fs::perms::owner_all);
    }
    const std::time_t now = std::time(nullptr);
    const std::string date = [&] {
        char buf[64];
        std::strftime(buf, sizeof buf, "%a, %d %b %Y %H:%M:%S +0000", std::gmtime(&now));
        return std::string(buf);
    }();
    const std::string messages[] = {
        fmt::format("From: poplar <postmaster@localhost>\nTo: demo@localhost\nSubject: Welcome to poplar\n"
                    "Date: {}\nMessage-ID: <welcome.{}@localhost>\n\n"
                    "This maildrop is served by poplar's embedded demo configuration.\n"
                    "Delete this message with DELE 1 and QUIT, or keep it.\n",
                    date, now),
        fmt::format("From: poplar <postmaster@localhost>\nTo: demo@localhost\nSubject: Dots at line starts\n"
                    "Date: {}\nMessage-ID: <dots.{}@localhost>\n\n"
                    "The next line is a single dot, which POP3 must dot-stuff:\n.\n"
                    "..and this one starts with two.\n",
                    date, now),
        fmt::format("From: poplar <postmaster@localhost>\nTo: demo@localhost\nSubject: =?UTF-8?Q?8-bit_=C3=A9?=\n"
                    "Date: {}\nMessage-ID: <eightbit.{}@localhost>\nMIME-Version: 1.0\n"
                    "Content-Type: text/plain; charset=UTF-8\nContent-Transfer-Encoding: 8bit\n\n"
                    "Grüße aus dem Demo-Postfach. Ünïcödé survives byte for byte.\n",
                    date, now),
    };
    int n = 0;
    for (const std::string& m : messages) {
        const std::string name = fmt::format("{}.M{}P{}.poplar-demo,S={}", now, n++, ::getpid(), m.size());
        write_file(maildir / "new" / name, m, 0600);
    }
}

// A TOML basic string holding `text` exactly (TOML 1.0 §String: escape '"', '\\' and controls).
std::string toml_string(std::string_view text) {
    std::string out = "\"";
    for (const char c : text) {
        if (c == '"' || c == '\\') {
            out += '\\';
            out += c;
        } else if (static_cast<unsigned char>(c) < 0x20 || c == 0x7F) {
            out += fmt::format("\\u{:04X}", static_cast<unsigned char>(c));
        } else {
            out += c;
        }
    }
    return out + "\"";
}

// A folder as the literal start of a storage.maildir template: '%' is written "%%".
std::string maildir_template_literal(const fs::path& dir) {
    std::string out;
    for (const char c : dir.string()) {
        out += c;
        if (c == '%') {
            out += '%';
        }
    }
    return out;
}

}  // namespace

std::filesystem::path prepare_demo(const std::filesystem::path& state_dir) {
    const fs::path config_file = state_dir / "poplar.toml";
    if (fs::exists(config_file)) {
        return config_file;
    }
    fs::create_directories(state_dir / "tls");
    fs::permissions(state_dir, fs::perms::owner_all);

    const std::string password = random_password();
    auto hashed = auth::hash_password(auth::scheme::sha512_crypt, password);
    if (!hashed) {
        throw std::runtime_error(hashed.error());
    }
    write_file(state_dir / "users.passwd", fmt::format("# poplar demo users (Dovecot passwd-file format)\n"
                                                       "demo:{}\n",
                                                       hashed.value()),
               0600);
    write_file(state_dir / "demo-password", password + "\n", 0600);
    write_demo_mail(state_dir / "mail" / "demo");
    net::write_self_signed_certificate(state_dir / "tls" / "cert.pem", state_dir / "tls" / "key.pem",
                                       {"localhost", "127.0.0.1", "::1"}, 825);
    // Written last: its presence means the folder is complete. Every path is absolute, so the
    // file keeps working when copied elsewhere as the start of a real configuration.
    const fs::path root = fs::absolute(state_dir).lexically_normal();
    write_file(config_file, fmt::format(R"(# poplar demo configuration, generated on first run (docs/configuration.md)
[server]
state_directory = {}  # familiar addresses of the authentication penalties
allow_root = true  # the demo runs as whoever starts it; a real server sets user = "poplar"

[listen]
pop3  = ["127.0.0.1:1110"]   # plain POP3, offers STLS
pop3s = ["127.0.0.1:1995"]   # implicit TLS
lmtp  = ["127.0.0.1:2424"]   # LMTP for a local MTA (docs/delivery.md)

[tls]
certificate = {}  # self-signed for localhost, 127.0.0.1 and ::1
private_key = {}

[storage]
maildir = {}

[auth]
passwd_file = {}
plaintext = "loopback"

[control]
socket = {}  # for poplar status/who/kick/stats/reload --config this-file
)",
                                        toml_string(root.string()),
                                        toml_string((root / "tls" / "cert.pem").string()),
                                        toml_string((root / "tls" / "key.pem").string()),
                                        toml_string(maildir_template_literal(root / "mail") + "/%u"),
                                        toml_string((root / "users.passwd").string()),
                                        toml_string((root / "control.sock").string())));
    return config_file;
}

}  // namespace poplar::cli
