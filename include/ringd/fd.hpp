// SPDX-License-Identifier: MIT
// ringd/fd.hpp — unique_fd, the one owner of a file descriptor.
// Move-only; closes in its noexcept destructor; close() reports the error for callers that care.
#pragma once

#include <unistd.h>

#include <system_error>
#include <utility>

namespace ringd {

// A descriptor that someone else owns, for APIs that use one without taking it. Built implicitly
// from a unique_fd; from a bare int only explicitly, so an unowned int never slips in unnoticed.
class borrowed_fd {
public:
    constexpr explicit borrowed_fd(int fd) noexcept : fd_(fd) {}
    [[nodiscard]] constexpr int get() const noexcept { return fd_; }

private:
    int fd_; // not owned
};

class unique_fd {
public:
    unique_fd() noexcept = default;
    // Takes ownership of fd (which may be -1 for "none").
    explicit unique_fd(int fd) noexcept : fd_(fd) {}
    unique_fd(unique_fd&& other) noexcept : fd_(other.release()) {}
    unique_fd& operator=(unique_fd&& other) noexcept {
        if (this != &other) reset(other.release());
        return *this;
    }
    unique_fd(const unique_fd&) = delete;
    unique_fd& operator=(const unique_fd&) = delete;
    ~unique_fd() { reset(); }

    [[nodiscard]] int get() const noexcept { return fd_; }
    operator borrowed_fd() const noexcept { return borrowed_fd(fd_); }
    [[nodiscard]] bool valid() const noexcept { return fd_ >= 0; }
    explicit operator bool() const noexcept { return valid(); }

    // Hands the descriptor to the caller, who now owns it; this object becomes empty.
    [[nodiscard]] int release() noexcept { return std::exchange(fd_, -1); }

    // Closes the owned descriptor (if any) and takes fd instead. Errors from close are ignored:
    // the descriptor is gone either way and close is never retried (EINTR included).
    void reset(int fd = -1) noexcept {
        int old = std::exchange(fd_, fd);
        if (old >= 0) ::close(old);
    }

    // Closes and reports close()'s error (e.g. EIO from a deferred write-back). Never retried:
    // on Linux the descriptor is released even when close fails.
    std::error_code close() noexcept {
        int old = std::exchange(fd_, -1);
        if (old >= 0 && ::close(old) != 0) return {errno, std::system_category()};
        return {};
    }

private:
    int fd_ = -1; // the owned descriptor, or -1
};

} // namespace ringd
