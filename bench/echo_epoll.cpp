// SPDX-License-Identifier: MIT
// echo_epoll — the echo benchmark's readiness baseline: epoll with non-blocking sockets, the way
// a tuned classic server does it, and one buffer for all connections (an idle connection costs
// this program nothing but its epoll registration, which lives in the kernel).
//
// Connections are level-triggered: one recv per readiness report, its bytes sent back at once
// from the shared buffer. A larger message simply stays readable and is reported again, so no
// recv is wasted on EAGAIN (edge-triggered would need one more recv per wake-up to prove the
// socket empty). Only when a send is short (the peer's window is full) do the bytes left get a
// buffer of their own, and the connection waits for EPOLLOUT instead of EPOLLIN until they are
// sent: the byte stream is never reordered. The listener is edge-triggered and drained, as in
// accept_epoll.
//
// Usage: see bench_server_common.hpp.
#include "bench_server_common.hpp"

#include <sys/epoll.h>

#include <string>
#include <unordered_map>
#include <vector>

namespace {

constexpr std::size_t shared_buffer_size = 64 * 1024;
constexpr int max_events = 256;
// After EMFILE and the like, wait this long before accepting again (see accept_epoll).
constexpr int backoff_ms = 10;

class echoer {
public:
    explicit echoer(bench::worker_context& ctx)
        : ctx_(ctx), ep_(bench::check(::epoll_create1(EPOLL_CLOEXEC), "epoll_create1")),
          buffer_(new char[shared_buffer_size]) {
        watch(ctx.listener.get(), EPOLLIN | EPOLLET, EPOLL_CTL_ADD);
        watch(ctx.stop_fd, EPOLLIN, EPOLL_CTL_ADD); // never read: stays ready once written
    }
    echoer(const echoer&) = delete;
    echoer& operator=(const echoer&) = delete;
    ~echoer() {
        for (std::size_t fd = 0; fd < open_.size(); ++fd)
            if (open_[fd]) ::close(static_cast<int>(fd));
    }

    bench::echo_counts run() {
        const int listener = ctx_.listener.get();
        // Connections may have queued before the listener joined the epoll set.
        int timeout = accept_all() == bench::drain_result::backoff ? backoff_ms : -1;
        epoll_event events[max_events];
        while (true) {
            int n = ::epoll_wait(ep_.get(), events, max_events, timeout);
            if (n < 0) {
                if (errno == EINTR) continue;
                throw bench::sys_error(errno, "epoll_wait");
            }
            bool accept_now = n == 0; // a backoff timeout: try again
            for (int i = 0; i < n; ++i) {
                int fd = events[i].data.fd;
                if (fd == ctx_.stop_fd) return counts_;
                if (fd == listener)
                    accept_now = true;
                else if ((events[i].events & EPOLLOUT) != 0)
                    flush(fd);
                else
                    echo(fd);
            }
            if (accept_now)
                timeout = accept_all() == bench::drain_result::backoff ? backoff_ms : -1;
        }
    }

private:
    void watch(int fd, std::uint32_t events, int op) {
        epoll_event ev{};
        ev.events = events;
        ev.data.fd = fd;
        bench::check(::epoll_ctl(ep_.get(), op, fd, &ev), "epoll_ctl");
    }

    bench::drain_result accept_all() {
        return bench::accept_ready(ctx_.listener.get(), SOCK_NONBLOCK | SOCK_CLOEXEC, [&](int fd) {
            if (static_cast<std::size_t>(fd) >= open_.size()) open_.resize(2 * std::size_t(fd) + 1);
            open_[fd] = true;
            watch(fd, EPOLLIN, EPOLL_CTL_ADD); // TCP_NODELAY comes from the listener
        });
    }

    // Readable (or hung up, or in error): one recv, and its bytes straight back.
    void echo(int fd) {
        ssize_t n = ::recv(fd, buffer_.get(), shared_buffer_size, 0);
        if (n <= 0) {
            if (n < 0 && (errno == EAGAIN || errno == EINTR)) return;
            close_conn(fd); // EOF or an error
            return;
        }
        ++counts_.msgs;
        counts_.bytes += static_cast<std::size_t>(n);
        ssize_t sent = ::send(fd, buffer_.get(), static_cast<std::size_t>(n), MSG_NOSIGNAL);
        if (sent == n) return;
        if (sent < 0) {
            if (errno != EAGAIN && errno != EINTR) {
                close_conn(fd);
                return;
            }
            sent = 0;
        }
        // The peer's window is full: keep the rest and wait until it can be sent.
        pending_[fd].assign(buffer_.get() + sent, static_cast<std::size_t>(n - sent));
        watch(fd, EPOLLOUT, EPOLL_CTL_MOD);
    }

    // Writable again: send what was left; once all of it is gone, read again.
    void flush(int fd) {
        auto it = pending_.find(fd);
        if (it == pending_.end()) return;
        std::string& rest = it->second;
        ssize_t sent = ::send(fd, rest.data(), rest.size(), MSG_NOSIGNAL);
        if (sent < 0) {
            if (errno != EAGAIN && errno != EINTR) close_conn(fd);
            return;
        }
        rest.erase(0, static_cast<std::size_t>(sent));
        if (!rest.empty()) return;
        pending_.erase(it);
        watch(fd, EPOLLIN, EPOLL_CTL_MOD);
    }

    void close_conn(int fd) {
        pending_.erase(fd);
        open_[fd] = false;
        ::close(fd); // also leaves the epoll set: the descriptor was never duplicated
    }

    bench::worker_context& ctx_;                   // listener and stop fd
    bench::unique_fd ep_;                          // the epoll instance
    std::unique_ptr<char[]> buffer_;               // the one receive buffer
    std::unordered_map<int, std::string> pending_; // bytes a short send left, per fd
    std::vector<bool> open_;                       // per fd: a connection (1 bit each)
    bench::echo_counts counts_;                    // recvs echoed, bytes
};

} // namespace

int main(int argc, char** argv) {
    return bench::run_server("echo_epoll", argc, argv, /*nonblocking_listener=*/true,
                             [](bench::worker_context& ctx) {
                                 echoer e(ctx);
                                 return e.run();
                             });
}
