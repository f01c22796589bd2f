// SPDX-License-Identifier: MIT
// accept_load — load client for the accept benchmark: keeps K connects in flight against a
// server, and as each completes closes it and starts the next. Prints one line:
//   connections=<n> seconds=<s> conn_per_s=<r>
//
//   accept_load --port P [--host 127.0.0.1] [--connections K] [--duration S | --count N]
//               [--threads T] [--wait-close]
//
// Always bounded: by --duration (default 2 s), or by --count N with a 60 s time limit as a
// safety net (both when both are given, whichever comes first). Connects still in flight at the
// end get a grace period to complete, then are abandoned with a warning. Exit 0 on success, 1 bad
// usage, 2 a connect failed (the run is then meaningless; the first error is printed).
//
// Why io_uring: a connect is one SQE and one CQE, and closes ride along as SQEs that post no CQE
// (IOSQE_CQE_SKIP_SUCCESS). Per connection that leaves socket, setsockopt and bind as the only
// system calls of their own, and one io_uring_enter per batch. The client shares the machine
// with the server, so every cycle it saves is one the server can use.
//
// Ports: the server closes first, so TIME_WAIT mostly lands on its side, but the two closes race
// and some land here too. To keep a fast run from running out of ephemeral ports (about 28k per
// source address and destination), a loopback target is reached from 16 source addresses
// 127.0.0.1..16, each bound with IP_BIND_ADDRESS_NO_PORT so that the port is chosen at connect
// time for the full 4-tuple instead of reserved for the address alone by bind.
#include "bench_common.hpp"

#include <liburing.h>
#include <netinet/in.h>

#include <chrono>
#include <latch>
#include <memory>
#include <thread>
#include <vector>

namespace {

using clock_type = std::chrono::steady_clock;
using namespace std::chrono_literals;

constexpr std::string_view prog = "accept_load";
constexpr unsigned source_addresses = 16;
constexpr auto count_time_limit = 60s; // --count alone: the time bound that still applies
constexpr auto grace = 2s;             // for connects in flight when the run ends
// user_data: a slot index, plus tag_recv for the wait for the server's close; or tag_close.
constexpr std::uint64_t tag_close = ~std::uint64_t{0};
constexpr std::uint64_t tag_recv = std::uint64_t{1} << 32;

struct load_options
    : bench::client_options {           // --host, --port, --connections, --duration, --threads
    std::optional<std::uint64_t> count; // --count: connections over all threads
    bool wait_close = false;            // --wait-close
};

void print_usage() {
    std::printf("usage: accept_load --port P [--host ADDR] [--connections K] "
                "[--duration S | --count N] [--threads T] [--wait-close]\n"
                "Connects to ADDR:P again and again, closing each connection once established.\n"
                "  --port P         server port\n"
                "  --host ADDR      numeric IPv4/IPv6 server address (default 127.0.0.1)\n"
                "  --connections K  connects in flight, over all threads (default 64)\n"
                "  --duration S     run for S seconds (default 2)\n"
                "  --count N        stop after N connections (time limit 60 s unless --duration)\n"
                "  --threads T      client threads, each with its own ring (default 1)\n"
                "  --wait-close     close only after the server has closed (its FIN arrived):\n"
                "                   then at most K connections wait in the server's accept queue\n"
                "Prints: connections=<n> seconds=<s> conn_per_s=<r>\n");
}

load_options parse_args(int argc, char** argv) {
    load_options opt;
    static_cast<bench::client_options&>(opt) = bench::parse_client_args(
        prog, argc, argv, 65536, print_usage, [&](std::string_view f, bench::arg_reader& args) {
            if (f == "--count")
                opt.count = args.integer<std::uint64_t>(1, std::uint64_t{1} << 40);
            else if (f == "--wait-close")
                opt.wait_close = true;
            else
                return false;
            return true;
        });
    return opt;
}

// Splits total into `parts` shares that differ by at most one; share `i` of them.
std::uint64_t share(std::uint64_t total, unsigned parts, unsigned i) {
    return total / parts + (i < total % parts ? 1 : 0);
}

struct worker_result {
    std::uint64_t connections = 0; // connects that completed successfully
    std::uint64_t failures = 0;    // connects that failed
    int first_error = 0;           // errno of the first failure
    unsigned abandoned = 0;        // still in flight after the grace period
    std::string error;             // a setup or ring failure, which ends the worker
};

// One thread's ring and its `slots` connections.
class load_worker {
public:
    load_worker(const load_options& opt, unsigned index, unsigned slots, std::uint64_t quota)
        : target_(opt.target), wait_close_(opt.wait_close), fds_(slots, -1), quota_(quota) {
        // SQ: a connect and a close per slot can be queued between two submits.
        unsigned entries = 64;
        while (entries < 2 * slots) entries *= 2;
        int rc = -EINVAL;
        for (unsigned flags : {IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN,
                               unsigned{IORING_SETUP_COOP_TASKRUN}, 0u}) {
            io_uring_params p{};
            p.flags = flags;
            if ((rc = io_uring_queue_init_params(entries, &ring_, &p)) != -EINVAL) break;
        }
        if (rc < 0) throw bench::sys_error(-rc, "io_uring_queue_init_params");
        close_flags_ = (ring_.features & IORING_FEAT_CQE_SKIP) ? IOSQE_CQE_SKIP_SUCCESS : 0;
        (void)io_uring_register_ring_fd(&ring_); // optional (5.18+): saves an fget per enter

        if (target_.is_loopback_v4()) {
            // Threads start at different sources so that they do not all begin on one.
            next_source_ = index * source_addresses / opt.threads;
            for (unsigned i = 0; i < source_addresses; ++i) {
                sockaddr_in src{};
                src.sin_family = AF_INET;
                src.sin_addr.s_addr = htonl((127u << 24) | (i + 1));
                sources_.push_back(src);
            }
        }
    }
    load_worker(const load_worker&) = delete;
    load_worker& operator=(const load_worker&) = delete;
    ~load_worker() {
        for (int fd : fds_)
            if (fd >= 0) ::close(fd);
        io_uring_queue_exit(&ring_);
    }

    // Runs until `deadline` (or the quota), then waits up to `grace` for what is in flight.
    void run(clock_type::time_point deadline, worker_result& r) {
        for (unsigned slot = 0; slot < fds_.size() && started_ < quota_; ++slot) start(slot);
        bool stopping = false;
        clock_type::time_point give_up = deadline + grace;
        while (in_flight_ > 0) {
            auto now = clock_type::now();
            if (!stopping && now >= deadline) stopping = true;
            if (stopping && now >= give_up) break;
            auto left = std::chrono::duration_cast<std::chrono::nanoseconds>(
                (stopping ? give_up : deadline) - now);
            __kernel_timespec ts{.tv_sec = left.count() / 1'000'000'000,
                                 .tv_nsec = left.count() % 1'000'000'000};
            io_uring_cqe* first;
            int rc = io_uring_submit_and_wait_timeout(&ring_, &first, 1, &ts, nullptr);
            if (rc < 0 && rc != -ETIME && rc != -EINTR && rc != -EBUSY && rc != -EAGAIN)
                throw bench::sys_error(-rc, "io_uring_submit_and_wait_timeout");

            unsigned head;
            unsigned seen = 0;
            io_uring_cqe* cqe;
            io_uring_for_each_cqe(&ring_, head, cqe) {
                ++seen;
                std::uint64_t tag = io_uring_cqe_get_data64(cqe);
                if (tag == tag_close) continue; // a failed close: the fd is gone anyway
                auto slot = static_cast<unsigned>(tag);
                if ((tag & tag_recv) == 0) { // the connect completed
                    if (cqe->res < 0) {
                        if (r.failures++ == 0) r.first_error = -cqe->res;
                        stopping = true; // a failing run measures nothing: end it
                    } else {
                        ++r.connections;
                        if (wait_close_) {
                            wait_for_server_close(slot);
                            continue;
                        }
                    }
                } // else: the server closed (0), or reset (< 0); either way it is done with us
                close_slot(slot);
                --in_flight_;
                if (!stopping && started_ < quota_) start(slot);
            }
            io_uring_cq_advance(&ring_, seen);
        }
        io_uring_submit(&ring_); // the closes queued by the last reap
        r.abandoned = in_flight_;
    }

private:
    // Opens a socket for `slot` and queues its connect.
    void start(unsigned slot) {
        int fd = bench::check(
            ::socket(target_.family(), SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0), "socket");
        fds_[slot] = fd;
        if (!sources_.empty()) {
            int one = 1;
            bench::check(::setsockopt(fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof one),
                         "setsockopt IP_BIND_ADDRESS_NO_PORT");
            const sockaddr_in& src = sources_[next_source_++ % sources_.size()];
            bench::check(::bind(fd, reinterpret_cast<const sockaddr*>(&src), sizeof src), "bind");
        }
        io_uring_sqe* s = sqe();
        io_uring_prep_connect(s, fd, target_.sa(), target_.len);
        io_uring_sqe_set_data64(s, slot);
        ++started_;
        ++in_flight_;
    }

    // Queues a recv that completes when the server closes (EOF); no data is expected, so all
    // slots share one scratch byte.
    void wait_for_server_close(unsigned slot) {
        io_uring_sqe* s = sqe();
        io_uring_prep_recv(s, fds_[slot], scratch_, sizeof scratch_, 0);
        io_uring_sqe_set_data64(s, slot | tag_recv);
    }

    // Queues the close of slot's socket; it completes during the next submit.
    void close_slot(unsigned slot) {
        io_uring_sqe* s = sqe();
        io_uring_prep_close(s, fds_[slot]);
        s->flags |= close_flags_;
        io_uring_sqe_set_data64(s, tag_close);
        fds_[slot] = -1;
    }

    // A free SQE; when the SQ is full, submits what is queued and takes one from the space made.
    io_uring_sqe* sqe() {
        while (true) {
            if (io_uring_sqe* s = io_uring_get_sqe(&ring_)) return s;
            if (int rc = io_uring_submit(&ring_); rc < 0 && rc != -EINTR && rc != -EBUSY)
                throw bench::sys_error(-rc, "io_uring_submit");
        }
    }

    const bench::endpoint target_;     // the server
    const bool wait_close_;            // close only after the server closed
    char scratch_[1];                  // recv target while waiting for the server's close
    io_uring ring_{};                  // this thread's ring
    unsigned close_flags_ = 0;         // IOSQE_CQE_SKIP_SUCCESS when the kernel has it
    std::vector<sockaddr_in> sources_; // loopback source addresses; empty: let connect choose
    unsigned next_source_ = 0;         // round-robin position in sources_
    std::vector<int> fds_;             // the socket of each slot, -1 when none
    std::uint64_t quota_;              // connects this thread may start in all
    std::uint64_t started_ = 0;        // connects started so far
    unsigned in_flight_ = 0;           // slots with a connection (connecting or open)
};

} // namespace

int main(int argc, char** argv) {
    load_options opt = parse_args(argc, argv);
    std::chrono::duration<double> limit =
        opt.duration ? std::chrono::duration<double>(*opt.duration)
                     : (opt.count ? std::chrono::duration<double>(count_time_limit)
                                  : std::chrono::duration<double>(2.0));
    std::uint64_t total_quota = opt.count.value_or(~std::uint64_t{0});

    auto results = std::make_unique<worker_result[]>(opt.threads);
    // Setup (rings, memory) is not measured: the clock starts once every worker is ready.
    std::latch ready(opt.threads);
    std::latch go(1);
    clock_type::time_point start; // written before `go` releases the workers
    std::vector<std::thread> threads;
    for (unsigned i = 0; i < opt.threads; ++i) {
        threads.emplace_back([&, i] {
            worker_result& r = results[i];
            std::unique_ptr<load_worker> w;
            try {
                w = std::make_unique<load_worker>(
                    opt, i, static_cast<unsigned>(share(opt.connections, opt.threads, i)),
                    opt.count ? share(total_quota, opt.threads, i) : total_quota);
            } catch (const std::exception& e) {
                r.error = e.what();
            }
            ready.count_down();
            go.wait();
            if (!w) return;
            try {
                w->run(start + std::chrono::duration_cast<clock_type::duration>(limit), r);
            } catch (const std::exception& e) {
                r.error = e.what();
            }
        });
    }
    ready.wait();
    start = clock_type::now();
    go.count_down();
    for (auto& t : threads) t.join();
    std::chrono::duration<double> elapsed = clock_type::now() - start;

    worker_result sum;
    bool failed = false;
    for (unsigned i = 0; i < opt.threads; ++i) {
        const worker_result& r = results[i];
        sum.connections += r.connections;
        sum.abandoned += r.abandoned;
        if (!r.error.empty()) {
            std::fprintf(stderr, "%s: thread %u: %s\n", prog.data(), i, r.error.c_str());
            failed = true;
        }
        if (r.failures > 0) {
            std::fprintf(stderr, "%s: connect %s: %s (%llu failed)\n", prog.data(),
                         opt.target.to_string().c_str(), std::strerror(r.first_error),
                         static_cast<unsigned long long>(r.failures));
            failed = true;
        }
    }
    if (failed) return bench::exit_system;
    if (sum.abandoned > 0)
        std::fprintf(stderr, "%s: warning: %u connections still pending after the grace period\n",
                     prog.data(), sum.abandoned);
    if (opt.count && !opt.duration && sum.connections + sum.abandoned < *opt.count)
        std::fprintf(stderr, "%s: warning: stopped by the %lld s time limit before --count\n",
                     prog.data(), static_cast<long long>(count_time_limit.count()));
    double seconds = elapsed.count();
    std::printf("connections=%llu seconds=%.3f conn_per_s=%.0f\n",
                static_cast<unsigned long long>(sum.connections), seconds,
                seconds > 0 ? double(sum.connections) / seconds : 0.0);
    return 0;
}
