// SPDX-License-Identifier: MIT
// ringd/detail/control_support.hpp — what daemon_control's steps wait and signal with: pidfds
// (open, signal, wait for the exit), the deadline as a poll timeout, an inotify watch of the PID
// file's directory, and the reload-status record.
#pragma once

#include <ringd/detail/daemon_reload_status.hpp>
#include <ringd/fd.hpp>
#include <ringd/result.hpp>

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/inotify.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>

namespace ringd::detail {

inline std::int64_t control_now_ns() noexcept {
    timespec ts{};
    ::clock_gettime(CLOCK_MONOTONIC, &ts);
    return static_cast<std::int64_t>(ts.tv_sec) * 1'000'000'000 + ts.tv_nsec;
}

inline result<unique_fd> control_pidfd_open(pid_t pid) noexcept {
    int fd = static_cast<int>(::syscall(SYS_pidfd_open, pid, 0)); // close-on-exec by definition
    if (fd < 0) return last_error();
    return unique_fd(fd);
}

// With a nonzero `value`, the signal is sent as sigqueue(3) would (si_code SI_QUEUE, si_int).
inline result<void> control_pidfd_signal(borrowed_fd pidfd, int sig, int value = 0) noexcept {
    siginfo_t info{};
    info.si_signo = sig;
    info.si_code = SI_QUEUE;
    info.si_pid = ::getpid();
    info.si_uid = ::getuid();
    info.si_value.sival_int = value;
    if (::syscall(SYS_pidfd_send_signal, pidfd.get(), sig, value != 0 ? &info : nullptr, 0) != 0)
        return last_error();
    return {};
}

// Milliseconds left until `deadline` for poll(2): -1 = forever.
inline int control_poll_ms(std::optional<std::chrono::steady_clock::time_point> deadline) noexcept {
    if (!deadline) return -1;
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        *deadline - std::chrono::steady_clock::now());
    return left.count() < 0 ? 0 : static_cast<int>(std::min<long long>(left.count(), 1 << 30));
}

// Waits for changes to one file, woken by inotify events, never by polling in a loop. Two bounded
// fallbacks: the kernel reports a close (IN_CLOSE_*) a moment *before* it drops that open file's
// flock, so after an event the caller looks at once and then a few more times (after 50 µs, then
// doubling to 64 ms); and a lock dropped with no event we watch for is caught by a look every
// second (every 50 ms without inotify).
class control_file_watch {
public:
    using time_point = std::chrono::steady_clock::time_point;

    control_file_watch(const std::string& path, std::uint32_t mask)
        : fd_(::inotify_init1(IN_CLOEXEC | IN_NONBLOCK)) {
        if (fd_ && ::inotify_add_watch(fd_.get(), path.c_str(), mask) < 0) fd_.reset();
    }

    // False once `limit` has passed; otherwise true after an event or a fallback's interval.
    bool wait(time_point limit) {
        using namespace std::chrono;
        auto now = steady_clock::now();
        if (now >= limit) return false;
        microseconds step = follow_up_ > microseconds(0) ? follow_up_
                            : fd_                        ? microseconds(seconds(1))
                                                         : microseconds(milliseconds(50));
        step = std::min(step, duration_cast<microseconds>(limit - now) + microseconds(1));
        timespec ts{static_cast<time_t>(step.count() / 1'000'000),
                    static_cast<long>(step.count() % 1'000'000 * 1000)};
        pollfd p{fd_ ? fd_.get() : -1, POLLIN, 0};
        int n = ::ppoll(&p, 1, &ts, nullptr);
        if (n > 0) {
            char drain[4096];
            while (::read(fd_.get(), drain, sizeof drain) > 0) {
            }
            follow_up_ = microseconds(50);
        } else if (follow_up_ > microseconds(0)) {
            follow_up_ = follow_up_ >= milliseconds(64) ? microseconds(0) : follow_up_ * 2;
        }
        return true;
    }

private:
    unique_fd fd_;                          // the inotify instance (empty: unavailable)
    std::chrono::microseconds follow_up_{}; // the next quick look after an event (0: none)
};

// Waits until the process behind `pidfd` has exited. True: exited; false: deadline passed.
inline bool control_wait_exit(borrowed_fd pidfd,
                              std::optional<std::chrono::steady_clock::time_point> deadline) {
    for (;;) {
        pollfd p{pidfd.get(), POLLIN, 0};
        int n = ::poll(&p, 1, control_poll_ms(deadline));
        if (n > 0) return true;
        if (n == 0) return false;
        if (errno != EINTR) return true; // cannot wait: let the lock probe decide
    }
}

// A consistent reload record, or nothing.
inline std::optional<reload_record> control_read_reload(const std::string& path) {
    unique_fd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW));
    if (!fd) return std::nullopt;
    for (int attempt = 0; attempt < 5; ++attempt) {
        char buf[reload_record_size];
        ssize_t n = ::pread(fd.get(), buf, sizeof buf, 0);
        if (n <= 0) return std::nullopt;
        if (auto r = parse_reload_record(std::string_view(buf, static_cast<std::size_t>(n))))
            return r;
    }
    return std::nullopt;
}

} // namespace ringd::detail
