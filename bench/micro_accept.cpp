// SPDX-License-Identifier: MIT
// micro_accept — one loopback accept+close round per iteration, client included, in one thread:
// connect(2) a blocking client (on loopback the handshake completes inside connect), take the
// connection from a multishot accept, close it on the ring, close the previous client. The
// kernel's TCP work is most of each round and is the same for both; the ratio is what the
// server shape around it costs.
//   accept_close/raw    accept_raw_uring's loop: multishot accept, IORING_OP_CLOSE with
//                       IOSQE_CQE_SKIP_SUCCESS riding along with the next submit_and_wait
//   accept_close/ringd  accept_ringd's shape: accept_stream::next() in a task in a scope, one
//                       spawned handler per connection that calls ringd::close_detached
#include "micro_common.hpp"

#include <ringd/net.hpp>
#include <ringd/ops.hpp>
#include <ringd/scope.hpp>
#include <ringd/task.hpp>

#include <netinet/in.h>
#include <sys/socket.h>

namespace {

// A listening socket on 127.0.0.1 and an ephemeral port.
struct loopback_listener {
    ringd::listener l = ringd::listener::bind(*ringd::socket_address::parse("127.0.0.1:0"));
};

// A connected blocking client. The server closes each connection first (the previous client is
// closed only after its server side was), so TIME_WAIT lands on the server side and the client's
// ephemeral ports never run out however long the benchmark runs.
int connect_client(const ringd::socket_address& to) {
    int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0 || ::connect(fd, to.sockaddr_ptr(), to.size()) != 0)
        throw std::system_error(errno, std::system_category(), "connect");
    return fd;
}

void accept_close_raw(benchmark::State& state) {
    micro::raw_ring ring;
    loopback_listener server;
    io_uring_sqe* s = ring.sqe();
    io_uring_prep_multishot_accept(s, server.l.fd().get(), nullptr, nullptr, SOCK_CLOEXEC);
    io_uring_sqe_set_data64(s, 1);
    int previous_client = -1;
    for (auto _ : state) {
        int client = connect_client(server.l.address());
        int accepted = -1;
        while (accepted < 0) {
            io_uring_submit_and_wait(ring.get(), 1);
            unsigned head;
            unsigned seen = 0;
            io_uring_cqe* cqe;
            io_uring_for_each_cqe(ring.get(), head, cqe) {
                ++seen;
                if (cqe->user_data != 1) continue; // a failed close
                if (cqe->res < 0) {
                    state.SkipWithError("accept failed");
                    return;
                }
                accepted = cqe->res;
                io_uring_sqe* c = ring.sqe();
                io_uring_prep_close(c, accepted);
                io_uring_sqe_set_flags(c, IOSQE_CQE_SKIP_SUCCESS);
                io_uring_sqe_set_data64(c, 2);
            }
            io_uring_cq_advance(ring.get(), seen);
        }
        if (previous_client >= 0) ::close(previous_client);
        previous_client = client;
    }
    io_uring_submit(ring.get());
    if (previous_client >= 0) ::close(previous_client);
    micro::report_ops(state, 1);
}
BENCHMARK(accept_close_raw)->Name("accept_close/raw");

ringd::task<void> close_connection(ringd::io_context& ctx, ringd::unique_fd c) {
    ringd::close_detached(ctx, std::move(c));
    co_return;
}

ringd::task<void> accept_rounds(ringd::io_context& ctx, const ringd::listener& l,
                                benchmark::State& state) {
    ringd::accept_stream stream(ctx, l);
    ringd::scope handlers;
    int previous_client = -1;
    for (auto _ : state) {
        int client = connect_client(l.address());
        auto c = co_await stream.next();
        if (!c) {
            state.SkipWithError("accept failed");
            break;
        }
        handlers.spawn(close_connection(ctx, std::move(*c)));
        if (previous_client >= 0) ::close(previous_client);
        previous_client = client;
    }
    co_await handlers.join();
    if (previous_client >= 0) ::close(previous_client);
}

ringd::task<void> ringd_main(ringd::io_context& ctx, const ringd::listener& l,
                             benchmark::State& state) {
    ringd::scope server;
    server.spawn(accept_rounds(ctx, l, state));
    co_await server.join();
}

void accept_close_ringd(benchmark::State& state) {
    ringd::io_context ctx;
    loopback_listener server;
    ctx.run(ringd_main(ctx, server.l, state));
    micro::report_ops(state, 1);
}
BENCHMARK(accept_close_ringd)->Name("accept_close/ringd");

} // namespace
