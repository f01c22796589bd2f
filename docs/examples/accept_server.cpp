// SPDX-License-Identifier: MIT
// docs/examples/accept_server.cpp — chapter 2: a listener, multishot accept, one coroutine per
// connection. It connects to itself so that it can run as a test.
#include <ringd.hpp>

#include <cstdio>

// [handler]
// One coroutine per connection: it owns the descriptor and closes it on the ring.
ringd::task<void> greet(ringd::io_context& ctx, ringd::unique_fd connection) {
    static constexpr char hello[] = "hello\n";
    (void)co_await ringd::async_send(ctx, connection, std::as_bytes(std::span(hello, 6)));
    (void)co_await ringd::async_close(ctx, std::move(connection));
}
// [/handler]

// [accept-loop]
ringd::task<void> serve(ringd::io_context& ctx, const ringd::listener& l, int how_many) {
    ringd::accept_stream connections(ctx, l); // one multishot SQE feeds this stream
    ringd::scope handlers;
    for (int i = 0; i < how_many; ++i) {
        auto c = co_await connections.next(); // EMFILE never shows here: the stream backs off
        if (!c) break;                        // the listener broke, or we were cancelled
        handlers.spawn(greet(ctx, std::move(*c)));
    }
    co_await handlers.join();
}
// [/accept-loop]

ringd::task<int> client(ringd::io_context& ctx, ringd::socket_address to) {
    auto fd = co_await ringd::connect(ctx, to);
    if (!fd) co_return 1;
    char buf[16];
    auto n = co_await ringd::async_recv(ctx, *fd, std::as_writable_bytes(std::span(buf)));
    co_return n&&* n == 6 ? 0 : 1;
}

int main() {
    // [bind]
    auto address = ringd::socket_address::parse("127.0.0.1:0"); // port 0: the kernel picks
    if (!address) {
        std::fprintf(stderr, "%s\n", address.error().c_str());
        return 1;
    }
    ringd::listener l = ringd::listener::bind(*address); // throws "bind ...: reason"
    std::printf("listening on %s\n", l.address().to_string().c_str());
    // [/bind]
    ringd::io_context ctx;
    auto body = [&]() -> ringd::task<int> {
        ringd::scope s;
        s.spawn(serve(ctx, l, 3));
        int failures = 0;
        for (int i = 0; i < 3; ++i) failures += co_await client(ctx, l.address());
        co_await s.join();
        co_return failures;
    };
    return ctx.run(body());
}
