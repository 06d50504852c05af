// TLS for the listeners: an OpenSSL server context built from [tls], and the self-signed
// certificate the embedded demo configuration makes on first run.
#pragma once

#include <asio/ssl/context.hpp>

#include <filesystem>
#include <memory>
#include <vector>
#include <string>

#include "config/config.h"

namespace poplar::net {

// TLS 1.2+ (or 1.3 only), no compression (CRIME), no renegotiation (a CPU DoS lever), server
// cipher preference. Throws config::config_error naming the tls.* key on a bad certificate/key.
std::unique_ptr<asio::ssl::context> make_server_tls_context(const config::tls_settings& settings);

// Writes a new ECDSA P-256 key and a self-signed certificate for `names` (DNS names and IP
// addresses, as subjectAltName) valid for `days`. The key file is created with mode 0600.
// Throws std::runtime_error on failure.
void write_self_signed_certificate(const std::filesystem::path& cert_file, const std::filesystem::path& key_file,
                                   const std::vector<std::string>& names, int days);

}  // namespace poplar::net
