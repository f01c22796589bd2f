// SPDX-License-Identifier: MIT
// bench_server_common.hpp — the skeleton every benchmark server (accept_*, echo_*) shares: the
// command line, one SO_REUSEPORT listener and thread per --threads, SIGTERM/SIGINT through a
// signalfd, and the final line. A server supplies only its loop (see run_server); what that loop
// returns says which kind of server it is (server_kind below).
//
//   NAME --port P [--threads N] [--host 127.0.0.1]
//   stdout: "listening on 127.0.0.1:<port>" once listening; after SIGTERM/SIGINT
//           "accepted=<total>" (accept_*) or "msgs=<recv completions echoed> bytes=<n>" (echo_*)
//   exit:   0 after a signal, 1 bad usage, 2 a system call failed (one line on stderr)
#pragma once

#include "bench_common.hpp"

#include <pthread.h>
#include <sys/eventfd.h>
#include <sys/signalfd.h>

#include <csignal>
#include <exception>
#include <memory>
#include <netinet/tcp.h>
#include <thread>
#include <type_traits>
#include <vector>

namespace bench {

// What an echo server's worker returns: recv completions whose bytes it sent back, and the bytes.
struct echo_counts {
    std::uint64_t msgs = 0;
    std::uint64_t bytes = 0;

    echo_counts& operator+=(const echo_counts& o) noexcept {
        msgs += o.msgs;
        bytes += o.bytes;
        return *this;
    }
};

// The kind of server, told apart by what its worker returns: the usage text, the final line, and
// whether the listeners get TCP_NODELAY (Linux copies it to every accepted socket, so the echo
// servers need no setsockopt per connection).
template <class Result>
struct server_kind;

template <>
struct server_kind<std::uint64_t> { // accept_*: connections accepted (and closed at once)
    static constexpr const char* what =
        "Accepts TCP connections and closes each at once (an accept benchmark server).";
    static constexpr const char* final_line = "accepted=<count>";
    static constexpr bool nodelay = false;
    static void print(std::uint64_t accepted) {
        std::printf("accepted=%llu\n", static_cast<unsigned long long>(accepted));
    }
};

template <>
struct server_kind<echo_counts> { // echo_*: every byte sent back on its connection
    static constexpr const char* what =
        "Echoes every byte back on its TCP connection (an echo benchmark server; TCP_NODELAY).";
    static constexpr const char* final_line = "msgs=<recv completions echoed> bytes=<n>";
    static constexpr bool nodelay = true;
    static void print(const echo_counts& c) {
        std::printf("msgs=%llu bytes=%llu\n", static_cast<unsigned long long>(c.msgs),
                    static_cast<unsigned long long>(c.bytes));
    }
};

struct server_options {
    endpoint listen;      // --host and --port; port 0 = ephemeral
    unsigned threads = 1; // --threads: this many listeners, threads and loops
};

// What one worker thread gets: its own listener and the server-wide stop signal.
struct worker_context {
    unsigned index;     // 0 .. threads-1
    unique_fd listener; // bound, listening, SO_REUSEPORT; the worker owns it
    int stop_fd;        // eventfd that becomes readable, and stays readable, when the server stops
};

// `what` says what the server does; `final_line` what it prints when stopped.
inline void print_server_usage(std::string_view prog, const char* what, const char* final_line) {
    std::printf(
        "usage: %.*s --port P [--threads N] [--host ADDR]\n"
        "%s\n"
        "  --port P     port to listen on; 0 = ephemeral. Prints 'listening on ADDR:PORT'.\n"
        "  --threads N  listeners on the same port (SO_REUSEPORT), one thread and loop "
        "each (default 1)\n"
        "  --host ADDR  numeric IPv4 or IPv6 address (default 127.0.0.1)\n"
        "On SIGTERM or SIGINT: stops, prints '%s', exits 0.\n",
        int(prog.size()), prog.data(), what, final_line);
}

// Parses the shared command line; prints usage and exits on --help, exits 1 on bad input.
template <class Kind>
server_options parse_server_args(std::string_view prog, int argc, char** argv) {
    server_options opt;
    opt.listen = parse_address_args(
        prog, argc, argv, 0, [&] { print_server_usage(prog, Kind::what, Kind::final_line); },
        [&](std::string_view f, arg_reader& args) {
            if (f != "--threads") return false;
            opt.threads = args.integer<unsigned>(1, 1024);
            return true;
        });
    return opt;
}

// A TCP listener on ep with SO_REUSEPORT, so that each thread can own one and the kernel spreads
// incoming connections over them. SO_REUSEADDR lets a fixed port be reused at once although the
// previous run left server-side TIME_WAIT sockets on it (the server closes first). `nodelay`:
// TCP_NODELAY, which accepted sockets inherit.
inline unique_fd make_listener(const endpoint& ep, bool nonblocking, bool nodelay = false) {
    int type = SOCK_STREAM | SOCK_CLOEXEC | (nonblocking ? SOCK_NONBLOCK : 0);
    unique_fd fd(check(::socket(ep.family(), type, 0), "socket"));
    int one = 1;
    check(::setsockopt(fd.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof one),
          "setsockopt SO_REUSEADDR");
    check(::setsockopt(fd.get(), SOL_SOCKET, SO_REUSEPORT, &one, sizeof one),
          "setsockopt SO_REUSEPORT");
    if (nodelay)
        check(::setsockopt(fd.get(), IPPROTO_TCP, TCP_NODELAY, &one, sizeof one),
              "setsockopt TCP_NODELAY");
    if (::bind(fd.get(), ep.sa(), ep.len) < 0) throw sys_error(errno, "bind " + ep.to_string());
    check(::listen(fd.get(), SOMAXCONN), "listen");
    return fd;
}

// What accept_ready found at the end.
enum class drain_result {
    empty,   // the listener's queue is empty (EAGAIN)
    backoff, // descriptors or memory ran out: try again after a pause, not at once
};

// For readiness servers (epoll): accepts from a non-blocking listener until its queue is empty or
// descriptors run out, calling on_accept(fd) for each connection. `flags` go to accept4.
template <class OnAccept>
drain_result accept_ready(int listener, int flags, OnAccept&& on_accept) {
    while (true) {
        int fd = ::accept4(listener, nullptr, nullptr, flags);
        if (fd >= 0) {
            on_accept(fd);
            continue;
        }
        switch (errno) {
        case EAGAIN:
            return drain_result::empty;
        case EINTR:
        case ECONNABORTED: // the peer gave up while queued
            continue;
        case EMFILE:
        case ENFILE:
        case ENOBUFS:
        case ENOMEM:
            return drain_result::backoff;
        default:
            throw sys_error(errno, "accept4");
        }
    }
}

// Runs a server: parses the command line, opens the listeners, prints the listening line, runs
// `worker(worker_context&)` on one thread per listener, and on SIGTERM/SIGINT makes ctx.stop_fd
// readable, joins the workers and prints the total of what they returned: std::uint64_t
// accepted, or echo_counts (server_kind says how each is printed). The worker
// must return soon after stop_fd becomes readable; it may throw (a setup failure), which stops
// the whole server with exit code 2. `nonblocking_listener` gives the listeners O_NONBLOCK.
//
// Signals are blocked in every thread and read from a signalfd by the main thread, so no code
// runs in a signal handler and no accept loop has to look at signals at all.
template <class Worker>
int run_server(std::string_view prog, int argc, char** argv, bool nonblocking_listener,
               Worker worker) noexcept {
    using result_type = std::invoke_result_t<Worker&, worker_context&>;
    using kind = server_kind<result_type>;
    server_options opt = parse_server_args<kind>(prog, argc, argv);
    try {
        sigset_t stop_signals;
        sigemptyset(&stop_signals);
        sigaddset(&stop_signals, SIGTERM);
        sigaddset(&stop_signals, SIGINT);
        // Before any thread exists, so that every thread inherits the mask.
        if (int err = pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr); err != 0)
            throw sys_error(err, "pthread_sigmask");
        unique_fd signals(check(::signalfd(-1, &stop_signals, SFD_CLOEXEC), "signalfd"));

        // Written once and never read: level-triggered readiness reaches every loop, whatever
        // it waits with (epoll, a ring poll, an Asio descriptor).
        unique_fd stop(check(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK), "eventfd"));

        // The first listener fixes the port (the kernel picks one for port 0); the others join
        // it through SO_REUSEPORT.
        std::vector<unique_fd> listeners;
        listeners.push_back(make_listener(opt.listen, nonblocking_listener, kind::nodelay));
        sockaddr_storage bound{};
        socklen_t bound_len = sizeof bound;
        check(::getsockname(listeners[0].get(), reinterpret_cast<sockaddr*>(&bound), &bound_len),
              "getsockname");
        endpoint ep = opt.listen;
        ep.set_port(endpoint{bound, bound_len}.port());
        for (unsigned i = 1; i < opt.threads; ++i)
            listeners.push_back(make_listener(ep, nonblocking_listener, kind::nodelay));
        std::printf("listening on %s\n", ep.to_string().c_str());
        std::fflush(stdout);

        // Each worker writes only its own slot, and only when it ends; cache-line aligned so
        // that neighbours never share a line anyway.
        struct alignas(64) worker_result {
            result_type result{};
            std::string error; // what() of the exception that ended the worker, if any
        };
        auto results = std::make_unique<worker_result[]>(opt.threads);
        std::vector<std::thread> threads;
        auto stop_all = [&] {
            std::uint64_t one = 1;
            // Cannot fail short of a bug: the counter is 1 at most, far from overflow.
            [[maybe_unused]] ssize_t n = ::write(stop.get(), &one, sizeof one);
            for (auto& t : threads) t.join();
        };
        try {
            for (unsigned i = 0; i < opt.threads; ++i) {
                threads.emplace_back([&, i, listener = std::move(listeners[i])]() mutable {
                    worker_context ctx{i, std::move(listener), stop.get()};
                    try {
                        results[i].result = worker(ctx);
                    } catch (const std::exception& e) {
                        results[i].error = e.what();
                        ::kill(::getpid(), SIGTERM); // wakes the main thread, which stops all
                    }
                });
            }
        } catch (...) {
            stop_all();
            throw;
        }

        signalfd_siginfo si;
        while (::read(signals.get(), &si, sizeof si) < 0) {
            if (errno != EINTR) {
                int err = errno;
                stop_all();
                throw sys_error(err, "read signalfd");
            }
        }
        stop_all();

        result_type total{};
        bool failed = false;
        for (unsigned i = 0; i < opt.threads; ++i) {
            total += results[i].result;
            if (!results[i].error.empty()) {
                std::fprintf(stderr, "%.*s: thread %u: %s\n", int(prog.size()), prog.data(), i,
                             results[i].error.c_str());
                failed = true;
            }
        }
        if (failed) return exit_system;
        kind::print(total);
        std::fflush(stdout);
        return 0;
    } catch (const std::exception& e) {
        std::fprintf(stderr, "%.*s: %s\n", int(prog.size()), prog.data(), e.what());
        return exit_system;
    }
}

} // namespace bench
