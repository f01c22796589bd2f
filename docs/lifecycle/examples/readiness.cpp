// SPDX-License-Identifier: MIT
// Readiness and handed-over sockets without libsystemd: sd_notify, s6's notification fd,
// socket activation and the fd store. Built and run as a test (with no supervisor around, every
// call is a no-op that succeeds).
#include <ringd/notify.hpp>
#include <ringd/socket_activation.hpp>

#include <cstdio>

int main() {
    // [activation]
    // systemd (or systemd-socket-activate) passed sockets from fd 3 on: adopt the listening ones.
    std::vector<ringd::listener> listeners = ringd::activated_listeners();
    if (listeners.empty()) // started by hand: bind our own
        listeners.push_back(ringd::listener::bind(*ringd::socket_address::parse("127.0.0.1:0")));
    // [/activation]

    // [notify]
    auto n = ringd::notifier::from_environment(); // $NOTIFY_SOCKET; removed from the environment
    if (!n) return 1;
    (void)n->ready("listening on " + listeners[0].address().to_string()); // READY=1, STATUS=...
    if (auto period = n->watchdog_period())                               // half of $WATCHDOG_USEC
        std::printf("send WATCHDOG=1 every %lld us\n", static_cast<long long>(period->count()));
    ringd::borrowed_fd keep[] = {listeners[0].fd()};
    (void)n->store_fds(keep, "listen"); // FDSTORE=1: back in LISTEN_FDS after a restart
    // [/notify]

    // [s6]
    // s6: the run script names the fd (notification-fd file); readiness is one newline on it.
    int p[2];
    if (::pipe2(p, O_CLOEXEC) != 0) return 1;
    ringd::unique_fd supervisor_end(p[0]);
    if (!ringd::notify_fd_ready(ringd::unique_fd(p[1]))) return 1;
    // [/s6]
    char c = 0;
    return ::read(supervisor_end.get(), &c, 1) == 1 && c == '\n' ? 0 : 1;
}
