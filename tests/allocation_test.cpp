// SPDX-License-Identifier: MIT
// Proves what the core promises (docs/04-many-connections.md): no heap allocation per accepted
// connection in steady state. Global operator new is replaced by a counting one
// (allocation_counter.cpp) that counts per thread: only the loop's thread is measured.
#include <ringd/net.hpp>

#include "allocation_counter.hpp"
#include "test_support.hpp"

#include <ringd/ops.hpp>
#include <ringd/recv_stream.hpp>
#include <ringd/scope.hpp>
#include <ringd/timer.hpp>

#include <catch2/catch.hpp>

#include <atomic>
#include <cstdlib>
#include <new>
#include <thread>

using ringd::task;

namespace {

// One coroutine per connection that closes it on the ring: the server shape of the benchmark.
task<void> handle(ringd::io_context& ctx, ringd::unique_fd fd) {
    (void)co_await ringd::async_close(ctx, std::move(fd));
}

// The scope is made by the caller: its stop state is one allocation per server, not per
// connection, and is left out of the count.
task<void> serve(ringd::io_context& ctx, ringd::accept_stream& stream, ringd::scope& connections,
                 int count) {
    for (int i = 0; i < count; ++i) {
        auto c = co_await stream.next();
        REQUIRE(c.has_value());
        connections.spawn(handle(ctx, std::move(*c)));
    }
    co_await connections.join();
}

void connect_many(const ringd::socket_address& to, int count) {
    for (int i = 0; i < count; ++i) (void)ringd::testing::connect_blocking(to);
}

} // namespace

TEST_CASE("accepting and closing a connection allocates nothing once warmed up") {
    ringd::io_context ctx;
    auto l = ringd::listener::bind(ringd::testing::loopback_any_port());
    ringd::accept_stream stream(ctx, l);

    // Warm-up: every coroutine shape of the path runs once. Then the pool is primed for as many
    // connections as can be open at once here (at most all of them), as a daemon would with its
    // connection limit, so the result does not depend on how bursty this run's arrivals are.
    std::thread warm(connect_many, l.address(), 200);
    ringd::scope connections;
    ringd::testing::run_bounded(ctx, serve(ctx, stream, connections, 200));
    warm.join();
    constexpr int measured = 1000;
    ringd::detail::frame_allocator::prime(measured + 8);

    std::thread load(connect_many, l.address(), measured);
    const std::size_t before = test_support::allocation_count;
    ctx.run(serve(ctx, stream, connections, measured));
    const std::size_t allocations = test_support::allocation_count - before;
    load.join();
    INFO("allocations for " << measured << " connections: " << allocations);
    CHECK(allocations == 0);
}

namespace {

// The echo handler as README and echo_ringd write it. It counts the chunks it sends back.
task<void> echo(ringd::io_context& ctx, ringd::buffer_ring& pool, ringd::unique_fd fd,
                int& chunks) {
    ringd::recv_stream in(pool, fd);
    for (;;) {
        auto chunk = co_await in.next();
        if (!chunk || chunk->empty()) break;
        auto sent = co_await ringd::async_send_all(ctx, fd, chunk->bytes());
        if (!sent) break;
        ++chunks;
    }
}

// `rounds` round trips of 64 bytes each on one connection, from a client thread.
void ping_pong(ringd::unique_fd fd, int rounds) {
    char msg[64] = {};
    for (int r = 0; r < rounds; ++r) {
        if (::send(fd.get(), msg, sizeof msg, MSG_NOSIGNAL) != sizeof msg) return;
        for (std::size_t got = 0; got < sizeof msg;) {
            ssize_t n = ::recv(fd.get(), msg + got, sizeof msg - got, 0);
            if (n <= 0) return;
            got += static_cast<std::size_t>(n);
        }
    }
}

} // namespace

TEST_CASE("echoing a message through recv_stream allocates nothing once warmed up") {
    ringd::io_context ctx;
    ringd::buffer_ring pool(ctx);
    auto l = ringd::listener::bind(ringd::testing::loopback_any_port());
    ringd::accept_stream stream(ctx, l);
    auto client = ringd::testing::connect_blocking(l.address());
    int chunks = 0;
    constexpr int warm_up = 100;
    constexpr int measured = 2000;
    std::size_t during = 0;
    auto body = [&]() -> task<void> {
        auto c = co_await stream.next();
        REQUIRE(c.has_value());
        ringd::scope s;
        s.spawn(echo(ctx, pool, std::move(*c), chunks));
        std::thread load(ping_pong, std::move(client), warm_up + measured);
        while (chunks < warm_up) co_await ringd::sleep_for(ctx, std::chrono::milliseconds(1));
        // From here on, every message's path has run before.
        const std::size_t before = test_support::allocation_count;
        while (chunks < warm_up + measured / 2)
            co_await ringd::sleep_for(ctx, std::chrono::milliseconds(1));
        during = test_support::allocation_count - before;
        co_await s.join(); // the rest of the round trips, then the client closes
        load.join();
    };
    ringd::testing::run_bounded(ctx, body());
    INFO("allocations during " << measured / 2 << "+ messages: " << during);
    CHECK(chunks >= warm_up + measured / 2);
    CHECK(during == 0);
}

TEST_CASE("the counting allocator does see allocations (the tests above can fail)") {
    const std::size_t before = test_support::allocation_count;
    void* p = ::operator new(16); // a direct call: the compiler may not elide it
    const std::size_t allocations = test_support::allocation_count - before;
    ::operator delete(p);
    CHECK(allocations == 1);
}
