// SPDX-License-Identifier: MIT
// docs/examples/readme_echo.cpp — the README's first example, compiled and run as a test.
#include <ringd.hpp>

#include <vector>

// [readme]
#include <ringd.hpp>

ringd::task<void> handle(ringd::io_context& ctx, ringd::buffer_ring& pool, ringd::unique_fd c) {
    ringd::recv_stream in(pool, c); // reads land in the shared pool: no buffer per connection
    for (;;) {
        auto chunk = co_await in.next(); // a view into the pool, in order
        if (!chunk || chunk->empty()) break;
        auto sent = co_await ringd::async_send_all(ctx, c, chunk->bytes());
        if (!sent) break;
    } // each view gives its buffer back as it goes
}

ringd::task<void> serve(ringd::io_context& ctx, const ringd::listener& l) {
    ringd::buffer_ring pool(ctx); // 256 buffers of 4 KiB for every connection of this loop
    ringd::accept_stream connections(ctx, l);
    ringd::scope handlers;
    for (;;) {
        auto c = co_await connections.next();
        if (!c) break;
        handlers.spawn(handle(ctx, pool, std::move(*c)));
    }
    co_await handlers.join();
}
// [/readme]

// Runs serve() on a deliberately tiny ring (a 16-entry CQ) with 200 idle connections open, then
// checks that a fresh one still echoes and cancels the server: the README's code really echoes,
// whatever the number of connections.
int main() {
    ringd::io_context ctx(ringd::io_context::options{.sq_entries = 8, .cq_entries = 16});
    auto l = ringd::listener::bind(*ringd::socket_address::parse("127.0.0.1:0"));
    auto body = [&]() -> ringd::task<int> {
        ringd::scope server;
        server.spawn(serve(ctx, l));
        std::vector<ringd::unique_fd> idle;
        for (int i = 0; i < 200; ++i) {
            auto fd = co_await ringd::connect(ctx, l.address());
            if (!fd) co_return 1;
            idle.push_back(std::move(*fd));
        }
        auto fd = co_await ringd::connect(ctx, l.address());
        if (!fd) co_return 1;
        static constexpr char ping[] = "ping";
        (void)co_await ringd::async_send(ctx, *fd, std::as_bytes(std::span(ping, 4)));
        char reply[8] = {};
        auto n = co_await ringd::async_recv(ctx, *fd, std::as_writable_bytes(std::span(reply)));
        server.request_stop();
        co_await server.join();
        co_return n&&* n == 4 && std::string_view(reply, 4) == "ping" ? 0 : 1;
    };
    return ctx.run(body());
}
