// SPDX-License-Identifier: MIT
// echo_ringd — the echo benchmark server written with ringd as a user would write it: a listener,
// multishot accept as a stream, and one coroutine per connection that reads through a
// recv_stream (multishot recv into the loop's shared buffer_ring: no buffer per connection) and
// sends each chunk back from the pool's buffer before releasing it. Same command line and output
// as the baselines (bench_server_common.hpp).
#include "bench_server_common.hpp"

#include <ringd.hpp>

#include <poll.h>

namespace {

// The pool's shape matches echo_raw_uring's (1,024 buffers of 4 KiB), so that the two differ only
// in the code around the ring.
constexpr ringd::buffer_ring::options pool_shape{.count = 1024, .size = 4096};

ringd::task<void> echo(ringd::io_context& ctx, ringd::buffer_ring& pool, ringd::unique_fd fd,
                       bench::echo_counts& counts) {
    {
        ringd::recv_stream in(pool, fd);
        for (;;) {
            auto chunk = co_await in.next();
            if (!chunk || chunk->empty()) break;
            ++counts.msgs;
            counts.bytes += chunk->size();
            auto sent = co_await ringd::async_send_all(ctx, fd, chunk->bytes());
            if (!sent) break;
        }
    }
    ringd::close_detached(ctx, std::move(fd));
}

ringd::task<void> accept_connections(ringd::io_context& ctx, ringd::buffer_ring& pool,
                                     const ringd::listener& l, bench::echo_counts& counts) {
    ringd::accept_stream connections(ctx, l);
    ringd::scope handlers;
    for (;;) {
        auto c = co_await connections.next();
        if (!c) break; // cancelled by the stop watcher (or the listener broke)
        handlers.spawn(echo(ctx, pool, std::move(*c), counts));
    }
    co_await handlers.join(); // cancelling the accept loop cancelled the handlers too
}

// Waits for the server-wide stop eventfd, then cancels the accept loop and its handlers.
ringd::task<void> stop_when_told(ringd::io_context& ctx, int stop_fd, ringd::scope& server) {
    (void)co_await ringd::async_poll(ctx, ringd::borrowed_fd(stop_fd), POLLIN);
    server.request_stop();
}

ringd::task<bench::echo_counts> serve(ringd::io_context& ctx, const ringd::listener& l,
                                      int stop_fd) {
    bench::echo_counts counts;
    ringd::buffer_ring pool(ctx, pool_shape);
    ringd::scope server;
    server.spawn(accept_connections(ctx, pool, l, counts));
    server.spawn(stop_when_told(ctx, stop_fd, server));
    co_await server.join();
    co_return counts;
}

} // namespace

int main(int argc, char** argv) {
    return bench::run_server("echo_ringd", argc, argv, false, [](bench::worker_context& w) {
        ringd::io_context ctx; // in the worker thread: one ring per thread
        auto l = ringd::listener::adopt(ringd::unique_fd(w.listener.release()));
        return ctx.run(serve(ctx, l, w.stop_fd));
    });
}
