// SPDX-License-Identifier: MIT
// accept_epoll — the accept benchmark's readiness baseline: epoll plus accept4, the way a tuned
// classic server does it. ringd's own server is measured against this.
//
// Edge-triggered: after a wakeup the listener is drained with accept4 until EAGAIN, so epoll_wait
// never has to re-check a listener that is still readable (level-triggered would re-poll it on
// every wait and then return it again). Each connection is closed the moment it is accepted.
//
// Usage: see bench_server_common.hpp.
#include "bench_server_common.hpp"

#include <sys/epoll.h>

namespace {

constexpr std::uint32_t ev_listener = 0;
constexpr std::uint32_t ev_stop = 1;

// After EMFILE and the like, wait this long before accepting again: retrying at once would fail
// at once (a busy loop), and an edge-triggered listener would not wake us again by itself.
constexpr int backoff_ms = 10;

// Accepts and closes until the queue is empty (EAGAIN) or descriptors run out.
bench::drain_result drain(int listener, std::uint64_t& accepted) {
    return bench::accept_ready(listener, SOCK_CLOEXEC, [&](int fd) {
        ::close(fd);
        ++accepted;
    });
}

std::uint64_t accept_loop(bench::worker_context& ctx) {
    bench::unique_fd ep(bench::check(::epoll_create1(EPOLL_CLOEXEC), "epoll_create1"));
    epoll_event ev{};
    ev.events = EPOLLIN | EPOLLET;
    ev.data.u32 = ev_listener;
    bench::check(::epoll_ctl(ep.get(), EPOLL_CTL_ADD, ctx.listener.get(), &ev), "epoll_ctl");
    ev.events = EPOLLIN; // never read, so level-triggered it stays ready until we leave
    ev.data.u32 = ev_stop;
    bench::check(::epoll_ctl(ep.get(), EPOLL_CTL_ADD, ctx.stop_fd, &ev), "epoll_ctl");

    std::uint64_t accepted = 0;
    // Connections may have queued before the listener joined the epoll set; an edge-triggered
    // registration reports them only if it starts ready, so drain once up front to be sure.
    int timeout =
        drain(ctx.listener.get(), accepted) == bench::drain_result::backoff ? backoff_ms : -1;
    epoll_event events[2];
    while (true) {
        int n = ::epoll_wait(ep.get(), events, 2, timeout);
        if (n < 0) {
            if (errno == EINTR) continue;
            throw bench::sys_error(errno, "epoll_wait");
        }
        bool listener_ready = n == 0; // a backoff timeout: try again
        for (int i = 0; i < n; ++i) {
            if (events[i].data.u32 == ev_stop) return accepted;
            listener_ready = true;
        }
        if (listener_ready)
            timeout = drain(ctx.listener.get(), accepted) == bench::drain_result::backoff
                          ? backoff_ms
                          : -1;
    }
}

} // namespace

int main(int argc, char** argv) {
    return bench::run_server("accept_epoll", argc, argv, /*nonblocking_listener=*/true,
                             accept_loop);
}
