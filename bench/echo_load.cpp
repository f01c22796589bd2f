// SPDX-License-Identifier: MIT
// echo_load — load client for the echo benchmark: C connections in ping-pong (send a message of
// M bytes, wait for all M back, send the next) and I idle ones (connected, silent) against one
// server, for D seconds; then every idle connection and a fresh one must still echo.
//
//   echo_load --port P [--host 127.0.0.1] [--connections C] [--idle I] [--size M]
//             [--duration S] [--threads T] [--check-timeout S] [--sync]
//
// stdout, one line at the end:
//   msgs=<round trips> seconds=<s> msgs_per_s=<r> p50_us=<x> p99_us=<y> idle_ok=<k>/<I> fresh=ok
// With --sync it stops twice and waits for a line on stdin (at most 10 minutes each), so that a
// script can measure the server between the phases:
//   "ready idle=<I> connections=<C>"  every connection is established and silent
//   "done msgs=<n>"                   the ping-pong phase is over (nothing in flight)
// Exit 0 when everything echoed; 1 bad usage; 2 otherwise, with one line on stderr per failed
// connection (the first 20 of each kind, then a count).
//
// Open files: this machine allows at most 20,000 per process, hard. The idle connections are held
// by child processes ("holders", at most 16,384 connections each, forked before anything else),
// so one server can be given ~19,000 idle connections; the ping-pong connections and the fresh
// one live in this process. Beyond 20,000 connections to a loopback server they are spread over
// the source addresses 127.0.0.1, 127.0.0.2, ... (20,000 each), since one source address reaches
// one server port from ~28,000 ephemeral ports at most.
//
// The ping-pong runs on io_uring (one ring per --threads thread): a message is a send that posts
// no CQE on success (IOSQE_CQE_SKIP_SUCCESS) and a recv; the round trip is timed from just
// before the send is queued to the reap of the recv that completes it, into a log-linear
// histogram (1.6% resolution). Every echoed message is compared with what was sent.
#include "bench_uring.hpp"

#include <fcntl.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/wait.h>

#include <algorithm>
#include <array>
#include <bit>
#include <chrono>
#include <latch>
#include <memory>
#include <span>
#include <thread>
#include <vector>

namespace {

using clock_type = std::chrono::steady_clock;
using namespace std::chrono_literals;

constexpr std::string_view prog = "echo_load";
constexpr unsigned per_source = 20'000; // connections per loopback source address
constexpr unsigned per_holder = 16'384; // idle connections per holder process
constexpr unsigned fd_reserve = 256;    // descriptors kept free in every process
constexpr auto drain_grace = 2s;        // for round trips in flight when the phase ends
constexpr auto sync_wait = 600s;        // --sync: the longest wait for the script's go-ahead
constexpr std::size_t check_size = 16;  // bytes of a check message
constexpr unsigned max_reported = 20;   // failures printed per kind

// --host, --port, --connections (in ping-pong), --duration (default 2 s), --threads, and:
struct load_options : bench::client_options {
    unsigned idle = 0;         // --idle
    unsigned size = 64;        // --size: bytes per message
    double check_timeout = 10; // --check-timeout, seconds
    bool sync = false;         // --sync
};

void print_usage() {
    std::printf(
        "usage: echo_load --port P [--host ADDR] [--connections C] [--idle I] [--size M]\n"
        "                 [--duration S] [--threads T] [--check-timeout S] [--sync]\n"
        "Keeps C connections in ping-pong with an echo server and I idle ones, then checks that\n"
        "every idle connection and a fresh one still echo.\n"
        "  --port P            server port\n"
        "  --host ADDR         numeric IPv4/IPv6 server address (default 127.0.0.1)\n"
        "  --connections C     connections in ping-pong (default 64)\n"
        "  --idle I            idle connections (default 0), held by child processes\n"
        "  --size M            bytes per message (default 64)\n"
        "  --duration S        seconds of ping-pong (default 2)\n"
        "  --threads T         ping-pong threads, each with its own ring (default 1)\n"
        "  --check-timeout S   how long the final echoes may take (default 10)\n"
        "  --sync              print 'ready ...' and 'done ...' and wait for a line on stdin\n"
        "                      after each (for measuring the server between the phases)\n"
        "Prints: msgs=<n> seconds=<s> msgs_per_s=<r> p50_us=<x> p99_us=<y> idle_ok=<k>/<I> "
        "fresh=ok\n");
}

load_options parse_args(int argc, char** argv) {
    load_options opt;
    static_cast<bench::client_options&>(opt) = bench::parse_client_args(
        prog, argc, argv, 16'384, print_usage, [&](std::string_view f, bench::arg_reader& args) {
            if (f == "--idle")
                opt.idle = args.integer<unsigned>(0, 1'000'000);
            else if (f == "--size")
                opt.size = args.integer<unsigned>(1, 1u << 20);
            else if (f == "--check-timeout")
                opt.check_timeout = args.seconds(600);
            else if (f == "--sync")
                opt.sync = true;
            else
                return false;
            return true;
        });
    return opt;
}

std::string errno_text(int err) {
    return std::strerror(err);
}

// "127.0.0.1:40312": the local end of a connection, to name it in a failure.
std::string local_name(int fd) {
    bench::endpoint ep;
    ep.len = sizeof ep.addr;
    if (::getsockname(fd, reinterpret_cast<sockaddr*>(&ep.addr), &ep.len) < 0) return "?";
    return ep.to_string();
}

// Connection `index` (0 .. idle-1 idle, then the ping-pong ones, then the fresh one): a blocking
// TCP socket with TCP_NODELAY, connected within 10 s; from 127.0.0.(1 + index / 20000) when the
// server is on loopback and there are more connections than one source address can hold.
bench::unique_fd connect_one(const bench::endpoint& target, unsigned index, bool many_sources) {
    bench::unique_fd fd(
        bench::check(::socket(target.family(), SOCK_STREAM | SOCK_CLOEXEC, 0), "socket"));
    int one = 1;
    bench::check(::setsockopt(fd.get(), IPPROTO_TCP, TCP_NODELAY, &one, sizeof one),
                 "setsockopt TCP_NODELAY");
    timeval limit{.tv_sec = 10, .tv_usec = 0}; // bounds connect() too
    bench::check(::setsockopt(fd.get(), SOL_SOCKET, SO_SNDTIMEO, &limit, sizeof limit),
                 "setsockopt SO_SNDTIMEO");
    if (many_sources) {
        bench::check(::setsockopt(fd.get(), IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof one),
                     "setsockopt IP_BIND_ADDRESS_NO_PORT");
        sockaddr_in src{};
        src.sin_family = AF_INET;
        src.sin_addr.s_addr = htonl((127u << 24) | (1 + index / per_source));
        bench::check(::bind(fd.get(), reinterpret_cast<const sockaddr*>(&src), sizeof src),
                     "bind 127.0.0.x");
    }
    while (::connect(fd.get(), target.sa(), target.len) < 0) {
        if (errno == EINTR) continue;
        throw bench::sys_error(errno,
                               "connect #" + std::to_string(index) + " to " + target.to_string());
    }
    return fd;
}

// A connection that did not echo, and why.
struct failure {
    unsigned index;
    std::string what;
};

// Sends a distinct 16-byte message on each connection (fds[i] is connection first + i) and waits
// until `deadline` for every one to come back whole and unchanged. Returns the failures.
std::vector<failure> check_echo(std::span<const int> fds, unsigned first,
                                clock_type::time_point deadline) {
    std::vector<failure> failed;
    std::vector<std::array<char, check_size>> got(fds.size());
    std::vector<std::uint8_t> have(fds.size(), 0); // bytes received; check_size = done
    auto message = [&](std::size_t i) {
        std::array<char, check_size + 1> m{};
        std::snprintf(m.data(), m.size(), "check %09u\n", first + static_cast<unsigned>(i));
        return m;
    };
    bench::unique_fd ep(bench::check(::epoll_create1(EPOLL_CLOEXEC), "epoll_create1"));
    std::size_t waiting = 0;
    auto fail = [&](std::size_t i, std::string what) {
        failed.push_back(
            {first + static_cast<unsigned>(i), local_name(fds[i]) + ": " + std::move(what)});
        have[i] = check_size;
    };
    for (std::size_t i = 0; i < fds.size(); ++i) {
        auto m = message(i);
        if (::send(fds[i], m.data(), check_size, MSG_NOSIGNAL | MSG_DONTWAIT) !=
            static_cast<ssize_t>(check_size)) {
            fail(i, "send: " + errno_text(errno));
            continue;
        }
        epoll_event ev{};
        ev.events = EPOLLIN;
        ev.data.u64 = i;
        bench::check(::epoll_ctl(ep.get(), EPOLL_CTL_ADD, fds[i], &ev), "epoll_ctl");
        ++waiting;
    }
    std::array<epoll_event, 256> events;
    while (waiting > 0) {
        auto left = std::chrono::ceil<std::chrono::milliseconds>(deadline - clock_type::now());
        if (left <= 0ms) break;
        int n = ::epoll_wait(ep.get(), events.data(), int(events.size()), int(left.count()));
        if (n < 0 && errno != EINTR) throw bench::sys_error(errno, "epoll_wait");
        for (int k = 0; k < n; ++k) {
            auto i = static_cast<std::size_t>(events[k].data.u64);
            ssize_t r = ::recv(fds[i], got[i].data() + have[i], check_size - have[i], MSG_DONTWAIT);
            if (r < 0 && (errno == EAGAIN || errno == EINTR)) continue;
            if (r <= 0) {
                fail(i, r == 0 ? "closed by the server" : "recv: " + errno_text(errno));
            } else if ((have[i] += static_cast<std::uint8_t>(r)) == check_size) {
                if (std::memcmp(got[i].data(), message(i).data(), check_size) != 0) {
                    have[i] = 0;
                    fail(i, "echoed other bytes than were sent");
                }
            } else {
                continue;
            }
            ::epoll_ctl(ep.get(), EPOLL_CTL_DEL, fds[i], nullptr);
            --waiting;
        }
    }
    for (std::size_t i = 0; i < fds.size(); ++i)
        if (have[i] < check_size)
            fail(i, "no echo within the check timeout (" + std::to_string(have[i]) + " of " +
                        std::to_string(check_size) + " bytes back)");
    return failed;
}

// ---- idle connections: the holder processes ----

// A child process that holds idle connections first .. first+count-1. Line protocol on two
// pipes: child "connected N" (or "error TEXT"); parent "check MS"; child "fail INDEX TEXT"
// for each failure, then "end OK FAILED"; the child then exits.
struct holder {
    pid_t pid = -1;
    unsigned first = 0;
    unsigned count = 0;
    std::FILE* to = nullptr;   // parent → child
    std::FILE* from = nullptr; // child → parent
};

[[noreturn]] void holder_main(const load_options& opt, bool many_sources, unsigned first,
                              unsigned count, std::FILE* in, std::FILE* out) {
    int rc = 0;
    try {
        std::vector<bench::unique_fd> conns;
        conns.reserve(count);
        for (unsigned i = 0; i < count; ++i)
            conns.push_back(connect_one(opt.target, first + i, many_sources));
        std::fprintf(out, "connected %u\n", count);
        std::fflush(out);
        char line[64];
        unsigned ms = 0;
        if (std::fgets(line, sizeof line, in) == nullptr || std::sscanf(line, "check %u", &ms) != 1)
            std::_Exit(0); // the parent gave up
        std::vector<int> fds;
        for (auto& c : conns) fds.push_back(c.get());
        auto failed = check_echo(fds, first, clock_type::now() + std::chrono::milliseconds(ms));
        for (const auto& f : failed) std::fprintf(out, "fail %u %s\n", f.index, f.what.c_str());
        std::fprintf(out, "end %zu %zu\n", fds.size() - failed.size(), failed.size());
    } catch (const std::exception& e) {
        std::fprintf(out, "error %s\n", e.what());
        rc = 2;
    }
    std::fflush(out);
    std::_Exit(rc);
}

// Forks a holder for `count` idle connections starting at `first`. The child closes its copies of
// the earlier holders' pipes, so that each holder sees EOF when the parent closes its pipe.
holder start_holder(const load_options& opt, bool many_sources, unsigned first, unsigned count,
                    const std::vector<holder>& earlier) {
    int down[2], up[2];
    bench::check(::pipe2(down, O_CLOEXEC), "pipe2");
    bench::check(::pipe2(up, O_CLOEXEC), "pipe2");
    std::fflush(nullptr);
    pid_t pid = bench::check(::fork(), "fork");
    if (pid == 0) {
        ::prctl(PR_SET_PDEATHSIG, SIGKILL); // never outlive the load client
        for (const holder& h : earlier) {
            ::close(::fileno(h.to));
            ::close(::fileno(h.from));
        }
        ::close(down[1]);
        ::close(up[0]);
        holder_main(opt, many_sources, first, count, ::fdopen(down[0], "r"), ::fdopen(up[1], "w"));
    }
    ::close(down[0]);
    ::close(up[1]);
    return {pid, first, count, ::fdopen(down[1], "w"), ::fdopen(up[0], "r")};
}

// ---- the ping-pong ----

// Round-trip times in nanoseconds, log-linear: exact below 128 ns, then 64 buckets per power of
// two (at most 1.6% off).
class histogram {
public:
    void add(std::uint64_t ns) {
        ++counts_[index(ns)];
        ++total_;
    }
    void merge(const histogram& o) {
        for (std::size_t i = 0; i < buckets; ++i) counts_[i] += o.counts_[i];
        total_ += o.total_;
    }
    [[nodiscard]] std::uint64_t total() const noexcept { return total_; }
    // The q-quantile (0 < q < 1) in microseconds; 0 when empty.
    [[nodiscard]] double quantile_us(double q) const {
        if (total_ == 0) return 0;
        auto rank = static_cast<std::uint64_t>(q * double(total_ - 1)) + 1;
        std::uint64_t seen = 0;
        for (std::size_t i = 0; i < buckets; ++i)
            if ((seen += counts_[i]) >= rank) return double(middle(i)) / 1000.0;
        return 0;
    }

private:
    static constexpr std::size_t buckets = 128 + 64 * 58;
    static std::size_t index(std::uint64_t v) {
        if (v < 128) return v;
        int e = std::bit_width(v) - 7; // v >> e is in [64, 128)
        return 128 + std::size_t(e - 1) * 64 + ((v >> e) - 64);
    }
    static std::uint64_t middle(std::size_t i) {
        if (i < 128) return i;
        std::size_t e = (i - 128) / 64 + 1;
        std::uint64_t lo = (((i - 128) % 64) + 64) << e;
        return lo + (std::uint64_t{1} << e) / 2;
    }
    std::vector<std::uint64_t> counts_ = std::vector<std::uint64_t>(buckets, 0);
    std::uint64_t total_ = 0;
};

struct pingpong_result {
    std::uint64_t msgs = 0; // round trips completed before the deadline
    histogram rtt;
    std::string error; // the first failure, which ends the thread's run
};

// One thread's ring and its connections.
class pingpong {
public:
    pingpong(std::vector<bench::unique_fd> conns, unsigned first, unsigned size)
        : size_(size), first_(first), ring_(prog, sq_entries(conns.size())) {
        for (auto& fd : conns) {
            conn c;
            c.fd = std::move(fd);
            c.tx.resize(size);
            c.rx.resize(size);
            // Ends with a newline, so that line-based echo servers (echod) answer it too.
            for (unsigned k = 0; k < size; ++k)
                c.tx[k] = k + 1 == size ? '\n' : static_cast<char>('a' + k % 26);
            conns_.push_back(std::move(c));
        }
        send_flags_ = ring_.has_feature(IORING_FEAT_CQE_SKIP) ? IOSQE_CQE_SKIP_SUCCESS : 0;
    }

    void run(clock_type::time_point deadline, pingpong_result& r) {
        for (std::uint32_t i = 0; i < conns_.size(); ++i) start(i);
        bool stopping = false;
        clock_type::time_point give_up = deadline + drain_grace;
        while (in_flight_ > 0) {
            auto now = clock_type::now();
            if (!stopping && now >= deadline) stopping = true;
            if (stopping && now >= give_up) {
                if (r.error.empty())
                    r.error = std::to_string(in_flight_) + " round trips unanswered " +
                              std::to_string(drain_grace.count()) + " s after the end";
                break;
            }
            auto left = std::chrono::duration_cast<std::chrono::nanoseconds>(
                (stopping ? give_up : deadline) - now);
            __kernel_timespec ts{.tv_sec = left.count() / 1'000'000'000,
                                 .tv_nsec = left.count() % 1'000'000'000};
            ring_.wait_and_reap(
                [&](const io_uring_cqe& cqe) {
                    if (!complete(cqe, deadline, r)) stopping = true;
                },
                &ts);
            if (stopping_after_error_) stopping = true;
        }
    }

private:
    static constexpr std::uint64_t recv_bit = std::uint64_t{1} << 32;

    struct conn {
        bench::unique_fd fd;
        std::vector<char> tx, rx;
        unsigned got = 0;          // bytes of the echo received so far
        std::uint64_t seq = 0;     // messages sent
        clock_type::time_point t0; // when the message in flight was sent
    };

    static unsigned sq_entries(std::size_t conns) {
        unsigned n = 64;
        while (n < 2 * conns && n < 4096) n *= 2;
        return n;
    }

    // Queues the next message of connection i and the recv of its echo.
    void start(std::uint32_t i) {
        conn& c = conns_[i];
        ++c.seq;
        std::memcpy(c.tx.data(), &c.seq, std::min<std::size_t>(sizeof c.seq, size_));
        c.got = 0;
        c.t0 = clock_type::now();
        io_uring_sqe* s = ring_.sqe();
        io_uring_prep_send(s, c.fd.get(), c.tx.data(), size_, MSG_NOSIGNAL | MSG_WAITALL);
        s->flags |= send_flags_;
        io_uring_sqe_set_data64(s, i);
        queue_recv(i);
        ++in_flight_;
    }

    void queue_recv(std::uint32_t i) {
        conn& c = conns_[i];
        io_uring_sqe* s = ring_.sqe();
        io_uring_prep_recv(s, c.fd.get(), c.rx.data() + c.got, size_ - c.got, MSG_WAITALL);
        io_uring_sqe_set_data64(s, i | recv_bit);
    }

    // False when the run must stop (a failure, recorded in r.error).
    bool complete(const io_uring_cqe& cqe, clock_type::time_point deadline, pingpong_result& r) {
        std::uint64_t ud = io_uring_cqe_get_data64(&cqe);
        auto i = static_cast<std::uint32_t>(ud);
        conn& c = conns_[i];
        auto failed = [&](const std::string& what) {
            if (r.error.empty())
                r.error = "connection #" + std::to_string(first_ + i) + " (" +
                          local_name(c.fd.get()) + "): " + what;
            stopping_after_error_ = true;
            return false;
        };
        if ((ud & recv_bit) == 0) // a send: only failures post a CQE (unless no CQE_SKIP)
            return cqe.res >= 0 || failed("send: " + errno_text(-cqe.res));
        if (cqe.res <= 0) {
            --in_flight_;
            return failed(cqe.res == 0 ? "closed by the server" : "recv: " + errno_text(-cqe.res));
        }
        c.got += static_cast<unsigned>(cqe.res);
        if (c.got < size_) {
            queue_recv(i);
            return true;
        }
        auto now = clock_type::now();
        --in_flight_;
        if (std::memcmp(c.rx.data(), c.tx.data(), size_) != 0)
            return failed("the echo differs from the message sent");
        if (now <= deadline) {
            ++r.msgs;
            r.rtt.add(static_cast<std::uint64_t>(
                std::chrono::duration_cast<std::chrono::nanoseconds>(now - c.t0).count()));
            if (!stopping_after_error_) start(i);
        }
        return true;
    }

    const unsigned size_;     // bytes per message
    const unsigned first_;    // connection number of conns_[0], for messages
    bench::ring ring_;        // this thread's ring
    std::vector<conn> conns_; // this thread's connections
    unsigned send_flags_ = 0; // IOSQE_CQE_SKIP_SUCCESS when the kernel has it
    unsigned in_flight_ = 0;  // round trips started and not finished
    bool stopping_after_error_ = false;
};

// --sync: prints `line` and waits (bounded) for a line on stdin.
void sync_point(const std::string& line) {
    std::printf("%s\n", line.c_str());
    std::fflush(stdout);
    pollfd p{.fd = 0, .events = POLLIN, .revents = 0};
    if (::poll(&p, 1, int(std::chrono::milliseconds(sync_wait).count())) <= 0) {
        std::fprintf(stderr, "%s: no go-ahead on stdin within %lld s: going on\n", prog.data(),
                     static_cast<long long>(sync_wait.count()));
        return;
    }
    char buf[256];
    [[maybe_unused]] ssize_t n = ::read(0, buf, sizeof buf);
}

void report(std::string_view kind, const std::vector<failure>& failed) {
    for (std::size_t k = 0; k < failed.size() && k < max_reported; ++k)
        std::fprintf(stderr, "%s: %.*s connection #%u %s\n", prog.data(), int(kind.size()),
                     kind.data(), failed[k].index, failed[k].what.c_str());
    if (failed.size() > max_reported)
        std::fprintf(stderr, "%s: ... and %zu more %.*s connections failed\n", prog.data(),
                     failed.size() - max_reported, int(kind.size()), kind.data());
}

int run(const load_options& opt) {
    // Every descriptor the hard limit allows (20,000 here, and no more even for root).
    rlimit nofile{};
    bench::check(::getrlimit(RLIMIT_NOFILE, &nofile), "getrlimit");
    nofile.rlim_cur = nofile.rlim_max;
    bench::check(::setrlimit(RLIMIT_NOFILE, &nofile), "setrlimit RLIMIT_NOFILE");
    if (nofile.rlim_cur < 2 * fd_reserve || opt.connections + fd_reserve > nofile.rlim_cur)
        throw std::runtime_error("--connections " + std::to_string(opt.connections) +
                                 " does not fit in RLIMIT_NOFILE " +
                                 std::to_string(nofile.rlim_cur));
    unsigned holder_cap =
        std::min<unsigned>(per_holder, static_cast<unsigned>(nofile.rlim_cur) - fd_reserve);

    const unsigned total = opt.idle + opt.connections + 1;
    const bool loopback4 = opt.target.is_loopback_v4();
    const bool many_sources = loopback4 && total > per_source;
    if (!loopback4 && total > 28'000)
        std::fprintf(stderr,
                     "%s: warning: %u connections to one non-loopback address and port "
                     "may run out of ephemeral ports\n",
                     prog.data(), total);

    // 1. The idle connections, in holders forked before any thread exists, in shares that differ
    //    by one at most.
    std::vector<holder> holders;
    unsigned n_holders = (opt.idle + holder_cap - 1) / holder_cap;
    for (unsigned h = 0, first = 0; h < n_holders; ++h) {
        unsigned count = opt.idle / n_holders + (h < opt.idle % n_holders ? 1 : 0);
        holders.push_back(start_holder(opt, many_sources, first, count, holders));
        first += count;
    }
    auto read_line = [](holder& h) {
        char line[512];
        if (std::fgets(line, sizeof line, h.from) == nullptr) return std::string("(exited)");
        std::string s(line);
        if (!s.empty() && s.back() == '\n') s.pop_back();
        return s;
    };
    bool setup_failed = false;
    for (auto& h : holders) {
        std::string line = read_line(h);
        if (line != "connected " + std::to_string(h.count)) {
            std::fprintf(stderr, "%s: idle connections #%u..#%u: %s\n", prog.data(), h.first,
                         h.first + h.count - 1, line.c_str());
            setup_failed = true;
        }
    }
    auto finish_holders = [&] {
        for (auto& h : holders) {
            std::fclose(h.to); // EOF: a holder still waiting for "check" exits
            std::fclose(h.from);
            ::waitpid(h.pid, nullptr, 0);
        }
    };
    if (setup_failed) {
        finish_holders();
        return bench::exit_system;
    }

    // 2. The ping-pong connections, in consecutive shares, one per thread. Each thread sets up
    //    its own ring (a ring's registered fd and its single issuer belong to one thread), then
    //    waits for the start.
    auto results = std::make_unique<pingpong_result[]>(opt.threads);
    std::latch ready(opt.threads);
    std::latch go(1);
    clock_type::time_point start, deadline; // written before `go` releases the threads
    {
        std::vector<std::jthread> threads;
        for (unsigned t = 0, first = opt.idle; t < opt.threads; ++t) {
            unsigned count = opt.connections / opt.threads + (t < opt.connections % opt.threads);
            std::vector<bench::unique_fd> share;
            for (unsigned i = 0; i < count; ++i)
                share.push_back(connect_one(opt.target, first + i, many_sources));
            threads.emplace_back([&, t, first, share = std::move(share)]() mutable {
                std::unique_ptr<pingpong> w;
                try {
                    w = std::make_unique<pingpong>(std::move(share), first, opt.size);
                } catch (const std::exception& e) {
                    results[t].error = e.what();
                }
                ready.count_down();
                go.wait();
                if (!w) return;
                try {
                    w->run(deadline, results[t]);
                } catch (const std::exception& e) {
                    results[t].error = e.what();
                }
            });
            first += count;
        }
        ready.wait();
        if (opt.sync)
            sync_point("ready idle=" + std::to_string(opt.idle) +
                       " connections=" + std::to_string(opt.connections));
        // 3. The ping-pong.
        start = clock_type::now();
        deadline = start + std::chrono::duration_cast<clock_type::duration>(
                               std::chrono::duration<double>(opt.duration.value_or(2.0)));
        go.count_down();
    }
    pingpong_result sum;
    bool failed = false;
    for (unsigned t = 0; t < opt.threads; ++t) {
        sum.msgs += results[t].msgs;
        sum.rtt.merge(results[t].rtt);
        if (!results[t].error.empty()) {
            std::fprintf(stderr, "%s: ping-pong: %s\n", prog.data(), results[t].error.c_str());
            failed = true;
        }
    }
    if (opt.sync) sync_point("done msgs=" + std::to_string(sum.msgs));

    // 4. Every idle connection (in the holders, at the same time) and a fresh one must echo.
    auto check_ms = static_cast<unsigned>(opt.check_timeout * 1000);
    for (auto& h : holders) {
        std::fprintf(h.to, "check %u\n", check_ms);
        std::fflush(h.to);
    }
    std::vector<failure> fresh_failed;
    try {
        bench::unique_fd fresh = connect_one(opt.target, total - 1, many_sources);
        int fd = fresh.get();
        fresh_failed = check_echo(std::span<const int>(&fd, 1), total - 1,
                                  clock_type::now() + std::chrono::milliseconds(check_ms));
    } catch (const std::exception& e) {
        fresh_failed.push_back({total - 1, e.what()});
    }
    std::vector<failure> idle_failed;
    unsigned idle_ok = 0;
    for (auto& h : holders) {
        while (true) {
            std::string line = read_line(h);
            unsigned index = 0, ok = 0, bad = 0;
            int at = 0;
            if (std::sscanf(line.c_str(), "fail %u %n", &index, &at) == 1 && at > 0) {
                idle_failed.push_back({index, line.substr(static_cast<std::size_t>(at))});
            } else if (std::sscanf(line.c_str(), "end %u %u", &ok, &bad) == 2) {
                idle_ok += ok;
                break;
            } else {
                std::fprintf(stderr, "%s: idle connections #%u..#%u: %s\n", prog.data(), h.first,
                             h.first + h.count - 1, line.c_str());
                failed = true;
                break;
            }
        }
    }
    finish_holders();
    report("idle", idle_failed);
    report("fresh", fresh_failed);
    failed = failed || !idle_failed.empty() || !fresh_failed.empty();

    double seconds = std::chrono::duration<double>(deadline - start).count();
    std::printf("msgs=%llu seconds=%.3f msgs_per_s=%.0f p50_us=%.1f p99_us=%.1f idle_ok=%u/%u "
                "fresh=%s\n",
                static_cast<unsigned long long>(sum.msgs), seconds, double(sum.msgs) / seconds,
                sum.rtt.quantile_us(0.50), sum.rtt.quantile_us(0.99), idle_ok, opt.idle,
                fresh_failed.empty() ? "ok" : "failed");
    std::fflush(stdout);
    return failed ? bench::exit_system : 0;
}

} // namespace

int main(int argc, char** argv) {
    load_options opt = parse_args(argc, argv);
    try {
        return run(opt);
    } catch (const std::exception& e) {
        std::fprintf(stderr, "%s: %s\n", prog.data(), e.what());
        return bench::exit_system;
    }
}
