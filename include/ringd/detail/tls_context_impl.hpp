// SPDX-License-Identifier: MIT
// ringd/detail/tls_context_impl.hpp — tls_context (tls.hpp) made from tls_options: the versions
// and ciphers, and each certificate, key and CA file checked and loaded, with an error that names
// the file and what is wrong with it.
#pragma once

#include <ringd/tls.hpp>

#include <openssl/pem.h>
#include <openssl/x509.h>

#include <fcntl.h>
#include <sys/stat.h>

#include <algorithm>
#include <cerrno>

namespace ringd {

inline tls_context tls_context::server(const tls_options& options) {
    return make(options, true);
}
inline tls_context tls_context::client(const tls_options& options) {
    return make(options, false);
}

namespace detail {

// Why the setup file at `path` cannot be read, as the tls_category() code OpenSSL would give
// (errno), or no error. Checked before OpenSSL reads it: OpenSSL reads a directory as a file
// with no PEM in it. O_NONBLOCK: a FIFO does not block the check.
inline std::error_code tls_file_unreadable(const std::string& path) noexcept {
    unique_fd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK));
    if (!fd) return tls_system_error(errno);
    struct stat st {};
    if (::fstat(fd.get(), &st) != 0) return tls_system_error(errno);
    if (S_ISDIR(st.st_mode)) return tls_system_error(EISDIR);
    return {};
}

// Throws OpenSSL's oldest queued error (or `fallback`) with `what`, which names the setting or
// file; when OpenSSL has no text for the error, `call` (the OpenSSL function that failed) too.
[[noreturn]] inline void throw_tls_setup_error(std::error_code ec, std::string what,
                                               const char* call) {
    if (!tls_error_has_reason(ec)) what += std::string(" (") + call + " failed)";
    throw std::system_error(ec, what);
}
inline std::error_code take_tls_setup_error() noexcept {
    return take_tls_error(std::make_error_code(std::errc::invalid_argument));
}

} // namespace detail

inline std::optional<tls_setting> rejected_tls_setting(const tls_options& options) {
    SSL_CTX* ctx = SSL_CTX_new(TLS_server_method());
    if (ctx == nullptr) return std::nullopt; // cannot check: making the context will say why
    std::optional<tls_setting> rejected;
    if (!options.ciphers.empty() && SSL_CTX_set_cipher_list(ctx, options.ciphers.c_str()) != 1)
        rejected = tls_setting{"ciphers", options.ciphers};
    else if (!options.ciphersuites.empty() &&
             SSL_CTX_set_ciphersuites(ctx, options.ciphersuites.c_str()) != 1)
        rejected = tls_setting{"ciphersuites", options.ciphersuites};
    else if (!options.groups.empty() && SSL_CTX_set1_groups_list(ctx, options.groups.c_str()) != 1)
        rejected = tls_setting{"groups", options.groups};
    SSL_CTX_free(ctx);
    ERR_clear_error();
    return rejected;
}

inline tls_context tls_context::make(const tls_options& options, bool server) {
    auto fail = [](const std::string& what, const char* call) {
        detail::throw_tls_setup_error(detail::take_tls_setup_error(), what, call);
    };
    // A file that cannot be read: "certificate /etc/x/cert.pem: No such file or directory".
    auto check_file = [](const std::string& role, const std::string& path) {
        if (std::error_code ec = detail::tls_file_unreadable(path))
            throw std::system_error(ec, role + " " + path);
    };
    ERR_clear_error();
    SSL_CTX* raw = SSL_CTX_new(server ? TLS_server_method() : TLS_client_method());
    if (raw == nullptr) fail("create the TLS context", "SSL_CTX_new");
    tls_context tls(raw, server); // owns it from here on, also when we throw
    if (SSL_CTX_set_min_proto_version(raw, std::max(options.min_version, TLS1_2_VERSION)) != 1)
        fail("set minimum TLS version", "SSL_CTX_set_min_proto_version");
    if (!options.ciphers.empty() && SSL_CTX_set_cipher_list(raw, options.ciphers.c_str()) != 1)
        fail("set ciphers '" + options.ciphers + "'", "SSL_CTX_set_cipher_list");
    if (!options.ciphersuites.empty() &&
        SSL_CTX_set_ciphersuites(raw, options.ciphersuites.c_str()) != 1)
        fail("set TLS 1.3 ciphersuites '" + options.ciphersuites + "'", "SSL_CTX_set_ciphersuites");
    if (!options.groups.empty() && SSL_CTX_set1_groups_list(raw, options.groups.c_str()) != 1)
        fail("set groups '" + options.groups + "'", "SSL_CTX_set1_groups_list");
    if (server) SSL_CTX_set_options(raw, SSL_OP_CIPHER_SERVER_PREFERENCE);
    SSL_CTX_set_mode(raw, SSL_MODE_RELEASE_BUFFERS);
    if (!options.certificate_file.empty()) {
        const std::string& cert = options.certificate_file;
        check_file("certificate", cert);
        if (SSL_CTX_use_certificate_chain_file(raw, cert.c_str()) != 1) {
            std::error_code ec = detail::take_tls_setup_error();
            bool not_pem = detail::tls_error_is(ec, ERR_LIB_PEM, PEM_R_NO_START_LINE);
            detail::throw_tls_setup_error(
                ec, "certificate " + cert + (not_pem ? " is not a PEM certificate" : ""),
                "SSL_CTX_use_certificate_chain_file");
        }
        const std::string& key = options.private_key_file.empty() ? cert : options.private_key_file;
        check_file("private key", key);
        // An encrypted key: an error, not OpenSSL's passphrase prompt on the terminal (a daemon
        // started from a shell would wait there). The callback notes that it was asked.
        bool passphrase_asked = false;
        SSL_CTX_set_default_passwd_cb(raw, [](char*, int, int, void* asked) -> int {
            if (asked != nullptr) *static_cast<bool*>(asked) = true;
            return -1;
        });
        SSL_CTX_set_default_passwd_cb_userdata(raw, &passphrase_asked);
        int loaded = SSL_CTX_use_PrivateKey_file(raw, key.c_str(), SSL_FILETYPE_PEM);
        SSL_CTX_set_default_passwd_cb_userdata(raw, nullptr);
        if (loaded != 1) {
            std::error_code ec = detail::take_tls_setup_error();
            std::string what = "private key " + key;
            if (passphrase_asked) {
                what += " is encrypted (a key without a passphrase is needed)";
                ec = {static_cast<int>(ERR_PACK(ERR_LIB_PEM, 0, PEM_R_BAD_PASSWORD_READ)),
                      tls_category()};
            } else if (detail::tls_error_is(ec, ERR_LIB_X509, X509_R_KEY_VALUES_MISMATCH))
                what += " does not match certificate " + cert;
            else if (detail::tls_error_is(ec, ERR_LIB_PEM, PEM_R_NO_START_LINE) ||
                     detail::tls_error_is(ec, ERR_LIB_OSSL_DECODER, ERR_R_UNSUPPORTED))
                what += " is not a PEM private key";
            detail::throw_tls_setup_error(ec, what, "SSL_CTX_use_PrivateKey_file");
        }
        if (SSL_CTX_check_private_key(raw) != 1)
            fail("private key " + key + " does not match certificate " + cert,
                 "SSL_CTX_check_private_key");
    } else if (server) {
        throw std::system_error(std::make_error_code(std::errc::invalid_argument),
                                "TLS server: a certificate_file is required");
    }
    if (!options.ca_file.empty()) {
        const std::string role = server ? "client CA file" : "CA file";
        check_file(role, options.ca_file);
        // A file with no certificate in it (empty, or not PEM) is an error of its own.
        auto fail_ca = [&](const char* call) {
            std::error_code ec = detail::take_tls_setup_error();
            bool none =
                detail::tls_error_is(ec, ERR_LIB_X509, X509_R_NO_CERTIFICATE_OR_CRL_FOUND) ||
                detail::tls_error_is(ec, ERR_LIB_PEM, PEM_R_NO_START_LINE);
            detail::throw_tls_setup_error(
                ec, role + " " + options.ca_file + (none ? " has no certificate in it" : ""), call);
        };
        if (SSL_CTX_load_verify_locations(raw, options.ca_file.c_str(), nullptr) != 1)
            fail_ca("SSL_CTX_load_verify_locations");
        if (server) {
            STACK_OF(X509_NAME)* names = SSL_load_client_CA_file(options.ca_file.c_str());
            if (names == nullptr) fail_ca("SSL_load_client_CA_file");
            SSL_CTX_set_client_CA_list(raw, names);
        }
    } else if (!server && SSL_CTX_set_default_verify_paths(raw) != 1) {
        fail("load the system's CA store", "SSL_CTX_set_default_verify_paths");
    }
    if (server) {
        if (!options.ca_file.empty())
            SSL_CTX_set_verify(raw, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, nullptr);
    } else {
        SSL_CTX_set_verify(raw, options.verify_peer ? SSL_VERIFY_PEER : SSL_VERIFY_NONE, nullptr);
    }
    return tls;
}

} // namespace ringd
