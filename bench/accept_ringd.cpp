// SPDX-License-Identifier: MIT
// accept_ringd — the accept benchmark server written with ringd as a user would write it: a
// listener, multishot accept as a stream, and one coroutine per connection that closes it on the
// ring. Same command line and output as the baselines (bench_server_common.hpp).
//
// How the handler closes its connection (RINGD_CLOSE in the environment, for A/B runs with
// run_accept.sh; docs/bench/accept.md has the numbers):
//   detached (default)  ringd::close_detached: an IORING_OP_CLOSE that rides along with the loop's
//                       next submission and posts no completion on success, exactly what
//                       accept_raw_uring does; the handler ends without suspending
//   await               co_await ringd::async_close: the handler resumes with close's result,
//                       which costs a CQE and, at low load, one more io_uring_enter per batch
//   sync                the unique_fd's destructor: close(2), one system call per connection
#include "bench_server_common.hpp"

#include <ringd.hpp>

#include <poll.h>

#include <cstdlib>

namespace {

enum class close_mode { detached, await, sync };

std::optional<close_mode> close_mode_from_env() {
    const char* v = std::getenv("RINGD_CLOSE");
    if (v == nullptr || std::string_view(v) == "detached") return close_mode::detached;
    if (std::string_view(v) == "await") return close_mode::await;
    if (std::string_view(v) == "sync") return close_mode::sync;
    return std::nullopt;
}

// The handler of one connection, in each of the three ways to close it.
ringd::task<void> close_on_ring(ringd::io_context& ctx, ringd::unique_fd connection) {
    ringd::close_detached(ctx, std::move(connection));
    co_return;
}
ringd::task<void> close_awaited(ringd::io_context& ctx, ringd::unique_fd connection) {
    (void)co_await ringd::async_close(ctx, std::move(connection));
}
ringd::task<void> close_sync(ringd::unique_fd connection) {
    connection.reset();
    co_return;
}

ringd::task<void> handle(ringd::io_context& ctx, ringd::unique_fd connection, close_mode mode) {
    switch (mode) {
    case close_mode::detached:
        return close_on_ring(ctx, std::move(connection));
    case close_mode::await:
        return close_awaited(ctx, std::move(connection));
    case close_mode::sync:
        break;
    }
    return close_sync(std::move(connection));
}

ringd::task<void> accept_connections(ringd::io_context& ctx, const ringd::listener& l,
                                     close_mode mode, std::uint64_t& accepted) {
    ringd::accept_stream connections(ctx, l);
    ringd::scope handlers;
    for (;;) {
        auto c = co_await connections.next();
        if (!c) break; // cancelled by the stop watcher (or the listener broke)
        ++accepted;
        handlers.spawn(handle(ctx, std::move(*c), mode));
    }
    co_await handlers.join();
}

// Waits for the server-wide stop eventfd, then cancels the accept loop.
ringd::task<void> stop_when_told(ringd::io_context& ctx, int stop_fd, ringd::scope& server) {
    (void)co_await ringd::async_poll(ctx, ringd::borrowed_fd(stop_fd), POLLIN);
    server.request_stop();
}

ringd::task<std::uint64_t> serve(ringd::io_context& ctx, const ringd::listener& l, int stop_fd,
                                 close_mode mode) {
    std::uint64_t accepted = 0;
    ringd::scope server;
    server.spawn(accept_connections(ctx, l, mode, accepted));
    server.spawn(stop_when_told(ctx, stop_fd, server));
    co_await server.join();
    co_return accepted;
}

} // namespace

int main(int argc, char** argv) {
    std::optional<close_mode> mode = close_mode_from_env();
    if (!mode) {
        std::fprintf(stderr,
                     "accept_ringd: bad RINGD_CLOSE '%s': expected detached, await or sync\n",
                     std::getenv("RINGD_CLOSE"));
        return bench::exit_usage;
    }
    return bench::run_server(
        "accept_ringd", argc, argv, false, [mode = *mode](bench::worker_context& w) {
            ringd::io_context ctx; // in the worker thread: one ring per thread
            auto l = ringd::listener::adopt(ringd::unique_fd(w.listener.release()));
            return ctx.run(serve(ctx, l, w.stop_fd, mode));
        });
}
