// SPDX-License-Identifier: MIT
// ringd/result.hpp — the value-or-error type that every I/O operation returns.
// result<T> is std::expected<T, std::error_code> where the standard library has it (C++23),
// else tl::expected, which has the same shape; code written against it moves over unchanged.
#pragma once

#include <cerrno>
#include <string>
#include <system_error>
#include <version> // defines __cpp_lib_expected, which nothing above is obliged to

#if defined(__cpp_lib_expected) && __cpp_lib_expected >= 202202L
#include <expected>
namespace ringd {
template <class T, class E>
using expected = std::expected<T, E>;
template <class E>
using unexpected = std::unexpected<E>;
} // namespace ringd
#else
#include <tl/expected.hpp>
namespace ringd {
template <class T, class E>
using expected = tl::expected<T, E>;
template <class E>
using unexpected = tl::unexpected<E>;
} // namespace ringd
#endif

namespace ringd {

// A value of T, or the std::error_code that says why there is none.
template <class T>
using result = expected<T, std::error_code>;

// The error for a positive errno value (as the kernel reports it, negated, in a CQE).
inline unexpected<std::error_code> errno_error(int errno_value) noexcept {
    return unexpected<std::error_code>(std::error_code(errno_value, std::system_category()));
}

// The error for the current errno, for use right after a failed syscall.
inline unexpected<std::error_code> last_error() noexcept {
    return errno_error(errno);
}

// Passes a failed result's error on, as the caller's own: `if (!r) co_return error_of(r);`.
template <class T>
[[nodiscard]] unexpected<std::error_code> error_of(const result<T>& failed) noexcept {
    return unexpected<std::error_code>(failed.error());
}

// Cancellation is its own outcome: an operation whose stop was requested ends with this code.
inline bool is_cancelled(const std::error_code& ec) noexcept {
    return ec == std::errc::operation_canceled;
}

// An errno value's text, for messages: "Permission denied".
[[nodiscard]] inline std::string errno_text(int errno_value) {
    return std::error_code(errno_value, std::system_category()).message();
}

// Throws std::system_error naming the call, e.g. "bind 127.0.0.1:80: Permission denied".
// For set-up paths only; the I/O paths return result<T>.
[[noreturn]] inline void throw_errno(int errno_value, const std::string& what) {
    throw std::system_error(errno_value, std::system_category(), what);
}

} // namespace ringd
