// docs/examples/readme_echo.cpp — the README's first example, compiled and run as a test.
#include <ringd.hpp>

// [readme]
#include <ringd.hpp>

ringd::task<void> handle(ringd::io_context& ctx, ringd::unique_fd c) {
    std::byte buf[4096];
    for (;;) {
        auto n = co_await ringd::async_recv(ctx, c, buf);
        if (!n || *n == 0) break;
        auto w = co_await ringd::async_send(ctx, c, std::span(buf, *n));
        if (!w) break;
    }
}

ringd::task<void> serve(ringd::io_context& ctx, const ringd::listener& l) {
    ringd::accept_stream connections(ctx, l);
    ringd::scope handlers;
    for (;;) {
        auto c = co_await connections.next();
        if (!c) break;
        handlers.spawn(handle(ctx, std::move(*c)));
    }
    co_await handlers.join();
}
// [/readme]

// Runs serve() against one client, then cancels it: the README's code really echoes.
int main() {
    ringd::io_context ctx;
    auto l = ringd::listener::bind(*ringd::socket_address::parse("127.0.0.1:0"));
    auto body = [&]() -> ringd::task<int> {
        ringd::scope server;
        server.spawn(serve(ctx, l));
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
