// SPDX-License-Identifier: MIT
// ringd/socket_activation.hpp — taking the sockets a supervisor hands over by systemd's
// protocol (sd_listen_fds(3)): descriptors from 3 on, LISTEN_FDS of them, LISTEN_FDNAMES their
// names, LISTEN_PID the process they are meant for. systemd, ringd-supervise (--listen),
// ringd-control --upgrade and the xfer master all pass sockets this way.
#pragma once

#include <ringd/fd.hpp>
#include <ringd/net.hpp>
#include <ringd/notify.hpp>
#include <ringd/result.hpp>

#include <fcntl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdint>
#include <cstdlib>
#include <string>
#include <vector>

namespace ringd {

// A socket passed in by socket activation or the fd store.
struct activated_socket {
    std::string name; // from $LISTEN_FDNAMES ("unknown" when not given)
    unique_fd fd;     // close-on-exec from now on
};

// Takes the sockets systemd passed ($LISTEN_PID must be this process; fds from 3 on), sets
// close-on-exec on them, and removes LISTEN_PID/LISTEN_FDS/LISTEN_FDNAMES from the
// environment. No activation: an empty vector. Errors: EINVAL for malformed variables,
// EBADF when a promised descriptor is not open.
result<std::vector<activated_socket>> take_activated_sockets();

// The activated sockets that are listening, as listeners (others, e.g. datagram sockets or
// stored connections, stay in `rest` when given). Throws std::system_error at setup:
// "LISTEN_FDS: ..." for a malformed environment, "adopt fd N: ..." for a bad socket.
std::vector<listener> activated_listeners(std::vector<activated_socket>* rest = nullptr);

// ---------------------------------------------------------------------------------------------

inline result<std::vector<activated_socket>> take_activated_sockets() {
    std::vector<activated_socket> out;
    const char* pid_text = std::getenv("LISTEN_PID");
    const char* fds_text = std::getenv("LISTEN_FDS");
    std::string names = std::getenv("LISTEN_FDNAMES") ? std::getenv("LISTEN_FDNAMES") : "";
    ::unsetenv("LISTEN_PID");
    ::unsetenv("LISTEN_FDS");
    ::unsetenv("LISTEN_FDNAMES");
    if (fds_text == nullptr) return out;
    std::uint64_t pid = 0, count = 0;
    if (!detail::notify_parse_u64(pid_text, pid) || !detail::notify_parse_u64(fds_text, count) ||
        count > 4096)
        return errno_error(EINVAL);
    if (pid != static_cast<std::uint64_t>(::getpid())) return out; // meant for another process
    constexpr int first = 3;                                       // SD_LISTEN_FDS_START
    std::size_t name_pos = 0;
    for (int i = 0; i < static_cast<int>(count); ++i) {
        unique_fd fd(first + i);
        int flags = ::fcntl(fd.get(), F_GETFD);
        if (flags < 0) {
            for (int j = i + 1; j < static_cast<int>(count); ++j) ::close(first + j);
            (void)fd.release(); // not ours: it is not open
            return errno_error(EBADF);
        }
        ::fcntl(fd.get(), F_SETFD, flags | FD_CLOEXEC);
        std::string name = "unknown";
        if (name_pos <= names.size() && !names.empty()) {
            auto colon = names.find(':', name_pos);
            name = names.substr(name_pos,
                                colon == std::string::npos ? std::string::npos : colon - name_pos);
            name_pos = colon == std::string::npos ? names.size() + 1 : colon + 1;
        }
        out.push_back({std::move(name), std::move(fd)});
    }
    return out;
}

inline std::vector<listener> activated_listeners(std::vector<activated_socket>* rest) {
    auto sockets = take_activated_sockets();
    if (!sockets) throw_errno(sockets.error().value(), "LISTEN_FDS");
    std::vector<listener> out;
    for (auto& s : *sockets) {
        int accepting = 0;
        socklen_t len = sizeof accepting;
        bool listening =
            ::getsockopt(s.fd.get(), SOL_SOCKET, SO_ACCEPTCONN, &accepting, &len) == 0 &&
            accepting != 0;
        if (listening)
            out.push_back(listener::adopt(std::move(s.fd)));
        else if (rest != nullptr)
            rest->push_back(std::move(s));
    }
    return out;
}

} // namespace ringd
