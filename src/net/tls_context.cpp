// OpenSSL server contexts and self-signed certificate generation.
#include "net/tls_context.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <fmt/format.h>
#include <openssl/err.h>
#include <openssl/bio.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <unistd.h>

#include <cstdio>
#include <stdexcept>

namespace poplar::net {

namespace {

std::string openssl_error() {
    const unsigned long e = ERR_get_error();
    if (e == 0) {
        return "unknown OpenSSL error";
    }
    char buf[256];
    ERR_error_string_n(e, buf, sizeof buf);
    ERR_clear_error();
    return buf;
}

template <class T, void (*Free)(T*)>
struct openssl_deleter {
    void operator()(T* p) const { Free(p); }
};
using evp_pkey_ptr = std::unique_ptr<EVP_PKEY, openssl_deleter<EVP_PKEY, EVP_PKEY_free>>;
using x509_ptr = std::unique_ptr<X509, openssl_deleter<X509, X509_free>>;
using bio_ptr = std::unique_ptr<BIO, openssl_deleter<BIO, BIO_free_all>>;

// A PEM private key, with the context's passphrase callback as SSL_CTX_use_PrivateKey_file
// would use it; null with the reason on the OpenSSL error queue.
evp_pkey_ptr read_private_key(const std::filesystem::path& file, SSL_CTX* ctx) {
    bio_ptr in(BIO_new_file(file.c_str(), "r"));
    if (!in) {
        return nullptr;
    }
    return evp_pkey_ptr(PEM_read_bio_PrivateKey(in.get(), nullptr, SSL_CTX_get_default_passwd_cb(ctx),
                                                SSL_CTX_get_default_passwd_cb_userdata(ctx)));
}

}  // namespace

std::unique_ptr<asio::ssl::context> make_server_tls_context(const config::tls_settings& settings) {
    auto ctx = std::make_unique<asio::ssl::context>(asio::ssl::context::tls_server);
    SSL_CTX* native = ctx->native_handle();
    const int min = settings.min_version == "1.3" ? TLS1_3_VERSION : TLS1_2_VERSION;
    SSL_CTX_set_min_proto_version(native, min);
    SSL_CTX_set_options(native, SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION | SSL_OP_CIPHER_SERVER_PREFERENCE |
                                    SSL_OP_SINGLE_ECDH_USE);
    // Release per-connection read/write buffers while idle: 10,000 idle TLS sessions would
    // otherwise pin ~34 KiB each.
    SSL_CTX_set_mode(native, SSL_MODE_RELEASE_BUFFERS);
    static const unsigned char sid_ctx[] = "poplar";
    SSL_CTX_set_session_id_context(native, sid_ctx, sizeof sid_ctx - 1);

    if (SSL_CTX_use_certificate_chain_file(native, settings.certificate.c_str()) != 1) {
        throw config::config_error(
            fmt::format("tls.certificate: cannot load \"{}\": {}", settings.certificate.string(), openssl_error()));
    }
    // The key is read and compared with the certificate here rather than by
    // SSL_CTX_use_PrivateKey_file: that call does the comparison itself, and its failure would
    // read "cannot load" when the file loads fine and is merely the wrong key
    // (docs/configuration.md shows the message an admin gets).
    evp_pkey_ptr key = read_private_key(settings.private_key, native);
    if (!key) {
        throw config::config_error(
            fmt::format("tls.private_key: cannot load \"{}\": {}", settings.private_key.string(), openssl_error()));
    }
    if (X509_check_private_key(SSL_CTX_get0_certificate(native), key.get()) != 1) {
        throw config::config_error(fmt::format("tls.private_key: does not match tls.certificate: {}", openssl_error()));
    }
    if (SSL_CTX_use_PrivateKey(native, key.get()) != 1) {
        throw config::config_error(
            fmt::format("tls.private_key: cannot use \"{}\": {}", settings.private_key.string(), openssl_error()));
    }
    // The DHE suites of the default list need DH parameters: OpenSSL's built-in RFC 7919 groups,
    // sized to the certificate's key (2048 bits or more), rather than a dhparam file to manage.
    SSL_CTX_set_dh_auto(native, 1);
    if (!settings.ciphers.empty() && SSL_CTX_set_cipher_list(native, settings.ciphers.c_str()) != 1) {
        throw config::config_error(fmt::format("tls.ciphers: \"{}\" selects no cipher", settings.ciphers));
    }
    if (!settings.ciphersuites.empty() && SSL_CTX_set_ciphersuites(native, settings.ciphersuites.c_str()) != 1) {
        throw config::config_error(fmt::format("tls.ciphersuites: \"{}\" is not valid", settings.ciphersuites));
    }
    return ctx;
}

void write_self_signed_certificate(const std::filesystem::path& cert_file, const std::filesystem::path& key_file,
                                   const std::vector<std::string>& names, int days) {
    evp_pkey_ptr key(EVP_EC_gen("P-256"));
    if (!key) {
        throw std::runtime_error("cannot generate a key: " + openssl_error());
    }
    x509_ptr cert(X509_new());
    X509_set_version(cert.get(), 2);
    unsigned char serial[16];
    if (RAND_bytes(serial, sizeof serial) != 1) {
        throw std::runtime_error("no randomness: " + openssl_error());
    }
    serial[0] &= 0x7F;  // positive
    BIGNUM* bn = BN_bin2bn(serial, sizeof serial, nullptr);
    BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(cert.get()));
    BN_free(bn);
    X509_gmtime_adj(X509_getm_notBefore(cert.get()), -3600);
    X509_gmtime_adj(X509_getm_notAfter(cert.get()), static_cast<long>(days) * 86400);
    X509_set_pubkey(cert.get(), key.get());
    X509_NAME* name = X509_get_subject_name(cert.get());
    const std::string cn = names.empty() ? std::string("localhost") : names.front();
    X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, reinterpret_cast<const unsigned char*>(cn.c_str()), -1, -1, 0);
    X509_set_issuer_name(cert.get(), name);

    std::string san;
    for (const std::string& n : names) {
        unsigned char addr[16];
        const bool ip = inet_pton(AF_INET, n.c_str(), addr) == 1 || inet_pton(AF_INET6, n.c_str(), addr) == 1;
        san += fmt::format("{}{}:{}", san.empty() ? "" : ",", ip ? "IP" : "DNS", n);
    }
    X509V3_CTX v3;
    X509V3_set_ctx_nodb(&v3);
    X509V3_set_ctx(&v3, cert.get(), cert.get(), nullptr, nullptr, 0);
    for (auto [nid, value] : {std::pair<int, std::string>{NID_subject_alt_name, san},
                              {NID_basic_constraints, "critical,CA:TRUE"},
                              {NID_key_usage, "critical,digitalSignature,keyCertSign"},
                              {NID_ext_key_usage, "serverAuth"}}) {
        X509_EXTENSION* ext = X509V3_EXT_conf_nid(nullptr, &v3, nid, value.c_str());
        if (ext == nullptr) {
            throw std::runtime_error("cannot build certificate extension: " + openssl_error());
        }
        X509_add_ext(cert.get(), ext, -1);
        X509_EXTENSION_free(ext);
    }
    if (X509_sign(cert.get(), key.get(), EVP_sha256()) == 0) {
        throw std::runtime_error("cannot sign certificate: " + openssl_error());
    }

    const int kfd = ::open(key_file.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    FILE* kf = kfd >= 0 ? ::fdopen(kfd, "w") : nullptr;
    if (kf == nullptr || PEM_write_PrivateKey(kf, key.get(), nullptr, nullptr, 0, nullptr, nullptr) != 1) {
        if (kf != nullptr) {
            std::fclose(kf);
        }
        throw std::runtime_error(fmt::format("cannot write \"{}\"", key_file.string()));
    }
    std::fclose(kf);
    FILE* cf = std::fopen(cert_file.c_str(), "w");
    if (cf == nullptr || PEM_write_X509(cf, cert.get()) != 1) {
        if (cf != nullptr) {
            std::fclose(cf);
        }
        throw std::runtime_error(fmt::format("cannot write \"{}\"", cert_file.string()));
    }
    std::fclose(cf);
}

}  // namespace poplar::net
