// bench_server_common.hpp — the skeleton every accept-benchmark server shares: the command line,
// one SO_REUSEPORT listener and thread per --threads, SIGTERM/SIGINT through a signalfd, and the
// final `accepted=N` line. A server supplies only its accept loop (see run_server).
//
//   NAME --port P [--threads N] [--host 127.0.0.1]
//   stdout: "listening on 127.0.0.1:<port>" once listening, "accepted=<total>" after SIGTERM/SIGINT
//   exit:   0 after a signal, 1 bad usage, 2 a system call failed (one line on stderr)
#pragma once

#include "bench_common.hpp"

#include <pthread.h>
#include <sys/eventfd.h>
#include <sys/signalfd.h>

#include <csignal>
#include <exception>
#include <memory>
#include <thread>
#include <vector>

namespace bench {

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

inline void print_server_usage(std::string_view prog) {
    std::printf(
        "usage: %.*s --port P [--threads N] [--host ADDR]\n"
        "Accepts TCP connections and closes each at once (an accept benchmark server).\n"
        "  --port P     port to listen on; 0 = ephemeral. Prints 'listening on ADDR:PORT'.\n"
        "  --threads N  listeners on the same port (SO_REUSEPORT), one thread and loop "
        "each (default 1)\n"
        "  --host ADDR  numeric IPv4 or IPv6 address (default 127.0.0.1)\n"
        "On SIGTERM or SIGINT: stops, prints 'accepted=<count>', exits 0.\n",
        int(prog.size()), prog.data());
}

// Parses the shared command line; prints usage and exits on --help, exits 1 on bad input.
inline server_options parse_server_args(std::string_view prog, int argc, char** argv) {
    server_options opt;
    opt.listen = *endpoint::parse("127.0.0.1", 0);
    std::optional<std::uint16_t> port;
    arg_reader args(prog, argc, argv);
    while (args.next()) {
        std::string_view f = args.flag();
        if (f == "--port") {
            port = args.integer<std::uint16_t>(0, 65535);
        } else if (f == "--threads") {
            opt.threads = args.integer<unsigned>(1, 1024);
        } else if (f == "--host") {
            opt.listen = host_value(args);
        } else if (f == "--help" || f == "-h") {
            print_server_usage(prog);
            std::exit(0);
        } else {
            args.unknown();
        }
    }
    if (!port) args.usage_error("missing --port (0 = ephemeral; try --help)");
    opt.listen.set_port(*port);
    return opt;
}

// A TCP listener on ep with SO_REUSEPORT, so that each thread can own one and the kernel spreads
// incoming connections over them. SO_REUSEADDR lets a fixed port be reused at once although the
// previous run left server-side TIME_WAIT sockets on it (the server closes first).
inline unique_fd make_listener(const endpoint& ep, bool nonblocking) {
    int type = SOCK_STREAM | SOCK_CLOEXEC | (nonblocking ? SOCK_NONBLOCK : 0);
    unique_fd fd(check(::socket(ep.family(), type, 0), "socket"));
    int one = 1;
    check(::setsockopt(fd.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof one),
          "setsockopt SO_REUSEADDR");
    check(::setsockopt(fd.get(), SOL_SOCKET, SO_REUSEPORT, &one, sizeof one),
          "setsockopt SO_REUSEPORT");
    if (::bind(fd.get(), ep.sa(), ep.len) < 0) throw sys_error(errno, "bind " + ep.to_string());
    check(::listen(fd.get(), SOMAXCONN), "listen");
    return fd;
}

// Runs a server: parses the command line, opens the listeners, prints the listening line, runs
// `worker(worker_context&) -> std::uint64_t accepted` on one thread per listener, and on
// SIGTERM/SIGINT makes ctx.stop_fd readable, joins the workers and prints the total. The worker
// must return soon after stop_fd becomes readable; it may throw (a setup failure), which stops
// the whole server with exit code 2. `nonblocking_listener` gives the listeners O_NONBLOCK.
//
// Signals are blocked in every thread and read from a signalfd by the main thread, so no code
// runs in a signal handler and no accept loop has to look at signals at all.
template <class Worker>
int run_server(std::string_view prog, int argc, char** argv, bool nonblocking_listener,
               Worker worker) noexcept {
    server_options opt = parse_server_args(prog, argc, argv);
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
        listeners.push_back(make_listener(opt.listen, nonblocking_listener));
        sockaddr_storage bound{};
        socklen_t bound_len = sizeof bound;
        check(::getsockname(listeners[0].get(), reinterpret_cast<sockaddr*>(&bound), &bound_len),
              "getsockname");
        endpoint ep = opt.listen;
        ep.set_port(endpoint{bound, bound_len}.port());
        for (unsigned i = 1; i < opt.threads; ++i)
            listeners.push_back(make_listener(ep, nonblocking_listener));
        std::printf("listening on %s\n", ep.to_string().c_str());
        std::fflush(stdout);

        // Each worker writes only its own slot, and only when it ends; cache-line aligned so
        // that neighbours never share a line anyway.
        struct alignas(64) worker_result {
            std::uint64_t accepted = 0;
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
                        results[i].accepted = worker(ctx);
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

        std::uint64_t total = 0;
        bool failed = false;
        for (unsigned i = 0; i < opt.threads; ++i) {
            total += results[i].accepted;
            if (!results[i].error.empty()) {
                std::fprintf(stderr, "%.*s: thread %u: %s\n", int(prog.size()), prog.data(), i,
                             results[i].error.c_str());
                failed = true;
            }
        }
        if (failed) return exit_system;
        std::printf("accepted=%llu\n", static_cast<unsigned long long>(total));
        std::fflush(stdout);
        return 0;
    } catch (const std::exception& e) {
        std::fprintf(stderr, "%.*s: %s\n", int(prog.size()), prog.data(), e.what());
        return exit_system;
    }
}

} // namespace bench
