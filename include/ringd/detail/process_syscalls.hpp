// SPDX-License-Identifier: MIT
// ringd/detail/process_syscalls.hpp — the process syscalls that glibc 2.36 does not wrap (or wraps
// in a header without extern "C"): pidfd_open, pidfd_send_signal, close_range; and
// /proc/<pid>/stat parsing. Raw syscalls only, so they are also safe between clone and exec.
#pragma once

#include <fcntl.h>
#include <signal.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <cstdint>
#include <cstring>
#include <optional>
#include <string_view>

namespace ringd::detail {

// pidfd_send_signal flag (Linux 6.9): signal the process group whose leader the pidfd names.
inline constexpr unsigned process_signal_group_flag = 1u << 2;   // PIDFD_SIGNAL_PROCESS_GROUP
inline constexpr unsigned process_close_range_cloexec = 1u << 2; // CLOSE_RANGE_CLOEXEC

inline int process_pidfd_open(pid_t pid) noexcept {
    return static_cast<int>(::syscall(SYS_pidfd_open, pid, 0)); // pidfds are always CLOEXEC
}
inline int process_pidfd_send_signal(int pidfd, int sig, unsigned flags) noexcept {
    return static_cast<int>(::syscall(SYS_pidfd_send_signal, pidfd, sig, nullptr, flags));
}
inline int process_close_range(unsigned first, unsigned last, unsigned flags) noexcept {
    return static_cast<int>(::syscall(SYS_close_range, first, last, flags));
}

// The fields of /proc/<pid>/stat that identify a process incarnation.
struct process_stat {
    char state = '?';             // R, S, D, Z, ...
    pid_t ppid = 0;               // field 4
    pid_t pgid = 0;               // field 5
    std::uint64_t start_time = 0; // field 22: clock ticks after boot when it started
};

// Parses the text of /proc/<pid>/stat. The command (field 2) may hold spaces and parentheses,
// so the fields are counted from the last ')'.
inline std::optional<process_stat> parse_process_stat(std::string_view text) noexcept {
    const auto close = text.rfind(')');
    if (close == std::string_view::npos || close + 2 > text.size()) return std::nullopt;
    std::string_view rest = text.substr(close + 2); // field 3 onwards
    process_stat st;
    for (int field = 3; field <= 22; ++field) {
        const auto space = rest.find(' ');
        const std::string_view value = rest.substr(0, space);
        if (value.empty()) return std::nullopt;
        auto number = [&](auto& out) {
            auto [end, ec] = std::from_chars(value.data(), value.data() + value.size(), out);
            return ec == std::errc() && end == value.data() + value.size();
        };
        if (field == 3) st.state = value[0];
        if (field == 4 && !number(st.ppid)) return std::nullopt;
        if (field == 5 && !number(st.pgid)) return std::nullopt;
        if (field == 22) return number(st.start_time) ? std::optional(st) : std::nullopt;
        if (space == std::string_view::npos) return std::nullopt;
        rest.remove_prefix(space + 1);
    }
    return std::nullopt;
}

// Reads /proc/<pid>/stat. On failure returns nullopt with errno set (ENOENT: no such process).
inline std::optional<process_stat> read_process_stat(pid_t pid) noexcept {
    char path[64];
    char* end = path;
    const char prefix[] = "/proc/";
    std::memcpy(end, prefix, sizeof prefix - 1);
    end += sizeof prefix - 1;
    end = std::to_chars(end, path + sizeof path - 8, pid).ptr;
    std::memcpy(end, "/stat", 6);
    const int fd = ::open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return std::nullopt;
    char buf[1024];
    ssize_t n;
    do {
        n = ::read(fd, buf, sizeof buf);
    } while (n < 0 && errno == EINTR);
    const int saved = errno;
    ::close(fd);
    if (n <= 0) {
        errno = n == 0 ? ENOENT : saved;
        return std::nullopt;
    }
    auto st = parse_process_stat(std::string_view(buf, static_cast<std::size_t>(n)));
    if (!st) errno = EINVAL;
    return st;
}

} // namespace ringd::detail
