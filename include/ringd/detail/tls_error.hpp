// SPDX-License-Identifier: MIT
// ringd/detail/tls_error.hpp — OpenSSL's errors as std::error_code: the packed code from the
// thread's error queue (message: OpenSSL's reason), and X.509 verification results.
#pragma once

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include <string>
#include <system_error>

namespace ringd::detail {

// Values are OpenSSL 3 packed error codes (library << 23 | reason), which fit an int.
class tls_error_category final : public std::error_category {
public:
    const char* name() const noexcept override { return "tls"; }
    std::string message(int value) const override {
        auto code = static_cast<unsigned long>(value);
        const char* reason = ERR_reason_error_string(code);
        const char* library = ERR_lib_error_string(code);
        std::string text = reason != nullptr ? reason : "TLS error " + std::to_string(value);
        if (library != nullptr) text += std::string(" (") + library + ")";
        return text;
    }
};

// Values are X509_V_ERR_* (why a peer's certificate was not accepted).
class tls_verify_category final : public std::error_category {
public:
    const char* name() const noexcept override { return "tls-verify"; }
    std::string message(int value) const override {
        return std::string("certificate verify failed: ") + X509_verify_cert_error_string(value);
    }
};

inline const std::error_category& tls_category() noexcept {
    static const tls_error_category category;
    return category;
}
inline const std::error_category& tls_verify_error_category() noexcept {
    static const tls_verify_category category;
    return category;
}

// The oldest error in the thread's OpenSSL queue (the queue is then cleared), or `fallback` when
// the queue is empty (e.g. a bare EOF).
inline std::error_code take_tls_error(std::error_code fallback) noexcept {
    unsigned long first = ERR_get_error();
    ERR_clear_error();
    if (first == 0) return fallback;
    return {static_cast<int>(first & 0x7fffffffUL), tls_category()};
}

// The error that explains why SSL_get_error() said `ssl_error` after an operation on `ssl`.
inline std::error_code tls_failure(SSL* ssl, int ssl_error) noexcept {
    if (long verify = SSL_get_verify_result(ssl); verify != X509_V_OK) {
        ERR_clear_error();
        return {static_cast<int>(verify), tls_verify_error_category()};
    }
    if (ssl_error == SSL_ERROR_SYSCALL && ERR_peek_error() == 0)
        return std::make_error_code(std::errc::connection_reset); // EOF without close_notify
    return take_tls_error(std::make_error_code(std::errc::protocol_error));
}

} // namespace ringd::detail
