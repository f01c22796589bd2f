// SPDX-License-Identifier: MIT
// docs/examples/classic_recv.cpp — the handler shape that chapter 4 replaces: a buffer in every
// connection's frame, pinned by the kernel while the recv waits. Compiled and run (it echoes one
// message) so that the chapter's listing cannot rot.
#include <ringd.hpp>

ringd::task<void> classic_handle(ringd::io_context& ctx, ringd::unique_fd c) {
    // [classic]
    std::byte buf[4096];
    auto n = co_await ringd::async_recv(ctx, c, buf);
    // [/classic]
    if (n && *n > 0) (void)co_await ringd::async_send_all(ctx, c, std::span(buf, *n));
}

int main() {
    ringd::io_context ctx;
    auto l = ringd::listener::bind(*ringd::socket_address::parse("127.0.0.1:0"));
    auto body = [&]() -> ringd::task<int> {
        ringd::accept_stream connections(ctx, l);
        auto client = co_await ringd::connect(ctx, l.address());
        if (!client) co_return 1;
        auto server_side = co_await connections.next();
        if (!server_side) co_return 1;
        ringd::scope s;
        s.spawn(classic_handle(ctx, std::move(*server_side)));
        static constexpr char ping[] = "ping";
        (void)co_await ringd::async_send(ctx, *client, std::as_bytes(std::span(ping, 4)));
        char reply[8] = {};
        auto n = co_await ringd::async_recv(ctx, *client, std::as_writable_bytes(std::span(reply)));
        co_await s.join();
        co_return n&&* n == 4 ? 0 : 1;
    };
    return ctx.run(body());
}
