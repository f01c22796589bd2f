// SPDX-License-Identifier: MIT
// ringd/notify.hpp — telling a supervisor how the daemon is doing: systemd's sd_notify protocol
// written natively (no libsystemd), s6's notification fd, and the fd store (FDSTORE=1). Taking
// the sockets a supervisor hands over (LISTEN_FDS) is ringd/socket_activation.hpp.
#pragma once

#include <ringd/fd.hpp>
#include <ringd/result.hpp>

#include <fcntl.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <charconv>
#include <chrono>
#include <cstddef>
#include <cstdlib>
#include <cstring>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace ringd {

// A connection to systemd's notification socket ($NOTIFY_SOCKET: a path, or "@name" for the
// abstract namespace). Without one every call is a no-op that succeeds, so a daemon can notify
// unconditionally. Messages are newline-separated KEY=VALUE lines in one datagram.
class notifier {
public:
    notifier() noexcept = default; // disabled
    // Connects to `socket_path` ("/run/systemd/notify" or "@name"). Errors: ENAMETOOLONG,
    // socket(2)'s; EAFNOSUPPORT for kinds we do not speak (vsock).
    static result<notifier> connect(std::string_view socket_path);
    // From $NOTIFY_SOCKET, $WATCHDOG_USEC and $WATCHDOG_PID. With `unset`, removes them from the
    // environment so that processes the daemon starts do not notify in its name. An empty or
    // absent $NOTIFY_SOCKET gives a disabled notifier.
    static result<notifier> from_environment(bool unset = true);

    [[nodiscard]] bool enabled() const noexcept { return socket_.valid(); }
    // How often systemd wants WATCHDOG=1 ($WATCHDOG_USEC), when it is meant for this process.
    // Send at half of it (watchdog_period()).
    [[nodiscard]] std::optional<std::chrono::microseconds> watchdog_timeout() const noexcept {
        return watchdog_;
    }
    [[nodiscard]] std::optional<std::chrono::microseconds> watchdog_period() const noexcept {
        if (!watchdog_) return std::nullopt;
        return *watchdog_ / 2;
    }

    // Sends `state` as is ("READY=1\nSTATUS=..."). Errors: sendmsg's (ECONNREFUSED when the
    // supervisor went away).
    result<void> send(std::string_view state) const { return send_with_fds(state, {}); }
    // READY=1 (and STATUS= when given): the daemon serves.
    result<void> ready(std::string_view status = {}) const {
        return send(with_status("READY=1", status));
    }
    // RELOADING=1 with MONOTONIC_USEC, as Type=notify-reload wants; follow with ready().
    result<void> reloading(std::string_view status = {}) const {
        return send(
            with_status("RELOADING=1\nMONOTONIC_USEC=" + std::to_string(monotonic_usec()), status));
    }
    result<void> stopping(std::string_view status = {}) const {
        return send(with_status("STOPPING=1", status));
    }
    result<void> status(std::string_view text) const { return send(with_status("", text)); }
    result<void> watchdog() const { return send("WATCHDOG=1"); }
    // Asks for more time in the current phase (start, reload, stop) before systemd gives up.
    result<void> extend_timeout(std::chrono::microseconds more) const {
        return send("EXTEND_TIMEOUT_USEC=" + std::to_string(more.count()));
    }
    // Names the main process when the notifying process is not it.
    result<void> main_pid(pid_t pid) const { return send("MAINPID=" + std::to_string(pid)); }
    // FDSTORE=1: systemd keeps `fds` (e.g. listening sockets) and passes them back through
    // LISTEN_FDS on the next start, so a restart drops no connection attempt. `name` must be
    // 1-255 characters without ':' (FDNAME=). Errors: EINVAL for a bad name, sendmsg's.
    result<void> store_fds(std::span<const borrowed_fd> fds, std::string_view name) const;

    // The lower-level send: `state` plus descriptors passed with SCM_RIGHTS.
    result<void> send_with_fds(std::string_view state, std::span<const borrowed_fd> fds) const;

    // CLOCK_MONOTONIC in microseconds, as sd_notify's MONOTONIC_USEC wants it.
    static std::uint64_t monotonic_usec() noexcept {
        timespec ts{};
        ::clock_gettime(CLOCK_MONOTONIC, &ts);
        return static_cast<std::uint64_t>(ts.tv_sec) * 1'000'000u +
               static_cast<std::uint64_t>(ts.tv_nsec) / 1000u;
    }

private:
    static std::string with_status(std::string head, std::string_view status) {
        if (!status.empty()) {
            if (!head.empty()) head += '\n';
            head += "STATUS=";
            head += status;
        }
        return head;
    }

    unique_fd socket_;      // AF_UNIX datagram socket, unconnected; -1: disabled
    sockaddr_un address_{}; // the supervisor's socket
    socklen_t address_len_ = 0;
    std::optional<std::chrono::microseconds> watchdog_; // $WATCHDOG_USEC meant for us
};

// s6-style readiness: writes "\n" to the notification fd and closes it. Errors: write's.
result<void> notify_fd_ready(unique_fd fd);

// ---------------------------------------------------------------------------------------------

namespace detail {
inline bool notify_parse_u64(const char* text, std::uint64_t& out) noexcept {
    if (text == nullptr || *text == '\0') return false;
    auto end = text + std::strlen(text);
    auto [p, ec] = std::from_chars(text, end, out);
    return ec == std::errc{} && p == end;
}
} // namespace detail

inline result<notifier> notifier::connect(std::string_view socket_path) {
    notifier n;
    if (socket_path.empty()) return n;
    if (socket_path[0] != '/' && socket_path[0] != '@') return errno_error(EAFNOSUPPORT);
    if (socket_path.size() >= sizeof n.address_.sun_path) return errno_error(ENAMETOOLONG);
    n.address_.sun_family = AF_UNIX;
    std::memcpy(n.address_.sun_path, socket_path.data(), socket_path.size());
    if (socket_path[0] == '@') n.address_.sun_path[0] = '\0'; // abstract: no trailing NUL
    n.address_len_ = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + socket_path.size() +
                                            (socket_path[0] == '/' ? 1 : 0));
    n.socket_.reset(::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0));
    if (!n.socket_) return last_error();
    return n;
}

inline result<notifier> notifier::from_environment(bool unset) {
    const char* path = std::getenv("NOTIFY_SOCKET");
    auto n = connect(path != nullptr ? std::string_view(path) : std::string_view());
    if (!n) return n;
    std::uint64_t usec = 0, pid = 0;
    if (detail::notify_parse_u64(std::getenv("WATCHDOG_USEC"), usec) && usec > 0) {
        const char* wpid = std::getenv("WATCHDOG_PID");
        if (wpid == nullptr ||
            (detail::notify_parse_u64(wpid, pid) && pid == static_cast<std::uint64_t>(::getpid())))
            n->watchdog_ = std::chrono::microseconds(usec);
    }
    if (unset) {
        ::unsetenv("NOTIFY_SOCKET");
        ::unsetenv("WATCHDOG_USEC");
        ::unsetenv("WATCHDOG_PID");
    }
    return n;
}

inline result<void> notifier::send_with_fds(std::string_view state,
                                            std::span<const borrowed_fd> fds) const {
    if (!socket_) return {};
    iovec iov{const_cast<char*>(state.data()), state.size()};
    msghdr msg{};
    msg.msg_name = const_cast<sockaddr_un*>(&address_);
    msg.msg_namelen = address_len_;
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    constexpr std::size_t max_fds = 253; // SCM_MAX_FD
    if (fds.size() > max_fds) return errno_error(E2BIG);
    std::vector<char> control;
    if (!fds.empty()) {
        control.resize(CMSG_SPACE(sizeof(int) * fds.size()));
        msg.msg_control = control.data();
        msg.msg_controllen = control.size();
        cmsghdr* c = CMSG_FIRSTHDR(&msg);
        c->cmsg_level = SOL_SOCKET;
        c->cmsg_type = SCM_RIGHTS;
        c->cmsg_len = CMSG_LEN(sizeof(int) * fds.size());
        auto* out = reinterpret_cast<int*>(CMSG_DATA(c));
        for (std::size_t i = 0; i < fds.size(); ++i) {
            int fd = fds[i].get();
            std::memcpy(out + i, &fd, sizeof fd);
        }
    }
    for (;;) {
        if (::sendmsg(socket_.get(), &msg, MSG_NOSIGNAL) >= 0) return {};
        if (errno != EINTR) return last_error();
    }
}

inline result<void> notifier::store_fds(std::span<const borrowed_fd> fds,
                                        std::string_view name) const {
    if (name.empty() || name.size() > 255 || name.find_first_of(":\n") != std::string_view::npos)
        return errno_error(EINVAL);
    return send_with_fds("FDSTORE=1\nFDNAME=" + std::string(name), fds);
}

inline result<void> notify_fd_ready(unique_fd fd) {
    for (;;) {
        if (::write(fd.get(), "\n", 1) == 1) break;
        if (errno != EINTR) return last_error();
    }
    if (auto ec = fd.close()) return unexpected<std::error_code>(ec);
    return {};
}

} // namespace ringd
