// SPDX-License-Identifier: MIT
// xfer/debug_sink.hpp — every xfer process's log lines also go, one datagram each, to
// xferdebugd's socket. Best effort by design: never blocks, never fails the sender; a missing or
// busy collector loses lines, the process's own log file still has them.
#pragma once

#include <ringd/fd.hpp>
#include <ringd/log.hpp>

#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstring>
#include <memory>
#include <string>
#include <string_view>

namespace xfer {

// The datagram: "<level> <pid> <program>: <message>" (level as log.hpp spells it).
class debug_sink {
public:
    explicit debug_sink(const std::string& socket_path)
        : socket_(::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0)) {
        address_.sun_family = AF_UNIX;
        std::strncpy(address_.sun_path, socket_path.c_str(), sizeof address_.sun_path - 1);
    }

    void send(ringd::log_level level, std::string_view line) noexcept {
        if (!socket_) return;
        char datagram[4400];
        int n = std::snprintf(datagram, sizeof datagram, "%.*s %d %.*s",
                              static_cast<int>(ringd::to_string(level).size()),
                              ringd::to_string(level).data(), static_cast<int>(::getpid()),
                              static_cast<int>(line.size()), line.data());
        if (n <= 0) return;
        std::size_t size = static_cast<std::size_t>(n) < sizeof datagram
                               ? static_cast<std::size_t>(n)
                               : sizeof datagram - 1;
        (void)::sendto(socket_.get(), datagram, size, MSG_DONTWAIT | MSG_NOSIGNAL,
                       reinterpret_cast<const sockaddr*>(&address_), sizeof address_);
    }

private:
    ringd::unique_fd socket_; // unbound datagram socket
    sockaddr_un address_{};   // xferdebugd's socket
};

// Logs as `program` to stderr (the process's log file) and to xferdebugd, at info and above.
inline void setup_family_logger(ringd::logger& log, const std::string& debug_socket) {
    log.set_threshold(ringd::log_level::info);
    auto sink = std::make_shared<debug_sink>(debug_socket);
    log.use_hook(
        [sink](ringd::log_level level, std::string_view line) { sink->send(level, line); });
}

} // namespace xfer
