// SPDX-License-Identifier: MIT
// ringd/detail/tls_error.hpp — OpenSSL's errors as std::error_code: the packed code from the
// thread's error queue (message: OpenSSL's reason, or errno's text for a failed system call), and
// X.509 verification results.
#pragma once

#include <ringd/result.hpp>

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include <cstdio>
#include <string>
#include <system_error>

namespace ringd::detail {

// Values are OpenSSL 3 packed error codes (library << 23 | reason), which fit an int. A failed
// system call (OpenSSL's ERR_SYSTEM_FLAG, taken off here) is library 0 with errno as the reason:
// its message is errno's text and it compares equal to the std::errc (e.g. "No such file or
// directory", == std::errc::no_such_file_or_directory).
class tls_error_category final : public std::error_category {
public:
    const char* name() const noexcept override { return "tls"; }
    std::string message(int value) const override {
        auto code = static_cast<unsigned long>(value);
        if (ERR_GET_LIB(code) == 0) return errno_text(ERR_GET_REASON(code));
        const char* reason = ERR_reason_error_string(code);
        const char* library = ERR_lib_error_string(code);
        char packed[16];
        std::snprintf(packed, sizeof packed, "%08lX", code);
        std::string text = reason != nullptr ? reason : std::string("OpenSSL error ") + packed;
        if (library != nullptr) text += std::string(" (") + library + ")";
        return text;
    }
    std::error_condition default_error_condition(int value) const noexcept override {
        auto code = static_cast<unsigned long>(value);
        if (ERR_GET_LIB(code) == 0)
            return {static_cast<int>(ERR_GET_REASON(code)), std::generic_category()};
        return {value, *this};
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

// A failed system call (errno `e`) as the tls_category() code OpenSSL's queue holds for it.
inline std::error_code tls_system_error(int e) noexcept {
    return {e, tls_category()};
}

// Whether `ec` is OpenSSL's error `reason` of library `library` (e.g. ERR_LIB_PEM,
// PEM_R_NO_START_LINE).
inline bool tls_error_is(std::error_code ec, int library, int reason) noexcept {
    auto code = static_cast<unsigned long>(ec.value());
    return ec.category() == tls_category() && ERR_GET_LIB(code) == library &&
           ERR_GET_REASON(code) == reason;
}

// Whether OpenSSL has a text for `ec` (it may not for a code of a tls_category() value).
inline bool tls_error_has_reason(std::error_code ec) noexcept {
    auto code = static_cast<unsigned long>(ec.value());
    return ec.category() != tls_category() || ERR_GET_LIB(code) == 0 ||
           ERR_reason_error_string(code) != nullptr;
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
