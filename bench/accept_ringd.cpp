// accept_ringd — the accept benchmark server written with ringd as a user would write it: a
// listener, multishot accept as a stream, and one coroutine per connection that closes it on the
// ring. Same command line and output as the baselines (bench_server_common.hpp).
#include "bench_server_common.hpp"

#include <ringd.hpp>

#include <poll.h>

namespace {

ringd::task<void> close_connection(ringd::io_context& ctx, ringd::unique_fd connection) {
    (void)co_await ringd::async_close(ctx, std::move(connection));
}

ringd::task<void> accept_connections(ringd::io_context& ctx, const ringd::listener& l,
                                     std::uint64_t& accepted) {
    ringd::accept_stream connections(ctx, l);
    ringd::scope handlers;
    for (;;) {
        auto c = co_await connections.next();
        if (!c) break; // cancelled by the stop watcher (or the listener broke)
        ++accepted;
        handlers.spawn(close_connection(ctx, std::move(*c)));
    }
    co_await handlers.join();
}

// Waits for the server-wide stop eventfd, then cancels the accept loop.
ringd::task<void> stop_when_told(ringd::io_context& ctx, int stop_fd, ringd::scope& server) {
    (void)co_await ringd::async_poll(ctx, ringd::borrowed_fd(stop_fd), POLLIN);
    server.request_stop();
}

ringd::task<std::uint64_t> serve(ringd::io_context& ctx, const ringd::listener& l, int stop_fd) {
    std::uint64_t accepted = 0;
    ringd::scope server;
    server.spawn(accept_connections(ctx, l, accepted));
    server.spawn(stop_when_told(ctx, stop_fd, server));
    co_await server.join();
    co_return accepted;
}

} // namespace

int main(int argc, char** argv) {
    return bench::run_server("accept_ringd", argc, argv, false, [](bench::worker_context& w) {
        ringd::io_context ctx; // in the worker thread: one ring per thread
        auto l = ringd::listener::adopt(ringd::unique_fd(w.listener.release()));
        return ctx.run(serve(ctx, l, w.stop_fd));
    });
}
