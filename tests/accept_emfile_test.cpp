// SPDX-License-Identifier: MIT
// Descriptor exhaustion during accept: the stream must back off (not spin) and recover.
#include <ringd/net.hpp>

#include "test_support.hpp"

#include <ringd/scope.hpp>
#include <ringd/timer.hpp>

#include <catch2/catch.hpp>

#include <sys/resource.h>

#include <vector>

using namespace std::chrono_literals;
using ringd::task;
using ringd::unique_fd;

TEST_CASE("EMFILE during accept backs off without spinning and recovers when descriptors free") {
    ringd::io_context ctx;
    auto l = ringd::listener::bind(ringd::testing::loopback_any_port());
    constexpr int clients = 20;
    std::vector<unique_fd> client_fds;
    for (int i = 0; i < clients; ++i)
        client_fds.push_back(ringd::testing::connect_blocking(l.address()));

    // The watchdog's thread starts before the table is full: starting threads under sanitizers
    // can need descriptors.
    ringd::testing::watchdog dog(ctx, std::chrono::seconds(20));

    // Fill the descriptor table under a low limit so that accept fails with EMFILE.
    rlimit saved{};
    REQUIRE(::getrlimit(RLIMIT_NOFILE, &saved) == 0);
    rlimit low = saved;
    low.rlim_cur = 256;
    REQUIRE(::setrlimit(RLIMIT_NOFILE, &low) == 0);
    std::vector<unique_fd> filler;
    for (;;) {
        int fd = ::dup(0);
        if (fd < 0) {
            REQUIRE(errno == EMFILE);
            break;
        }
        filler.emplace_back(fd);
    }

    ringd::accept_stream stream(ctx, l);
    int accepted = 0;
    std::uint64_t iterations_while_exhausted = 0;
    auto consumer = [](ringd::accept_stream& s, int& n) -> task<void> {
        while (n < clients) {
            auto c = co_await s.next();
            REQUIRE(c.has_value());
            ++n;
        }
    };
    auto body = [&]() -> task<void> {
        ringd::scope sc;
        sc.spawn(consumer(stream, accepted));
        auto before = ctx.stats().iterations;
        co_await ringd::sleep_for(ctx, 300ms);
        iterations_while_exhausted = ctx.stats().iterations - before;
        CHECK(accepted == 0);
        filler.clear(); // descriptors free again
        co_await sc.join();
    };
    ctx.run(body());
    ::setrlimit(RLIMIT_NOFILE, &saved);
    REQUIRE_FALSE(dog.fired());

    CHECK(accepted == clients);
    CHECK(stream.stats().descriptor_errors >= 1);
    CHECK(stream.stats().backoffs >= 1);
    // 300 ms with pauses of 5, 10, 20, 40, 80, 160 ms: a handful of wake-ups. A spinning loop
    // would turn thousands of times.
    CHECK(iterations_while_exhausted <= 20);
    INFO("loop iterations while out of descriptors: " << iterations_while_exhausted);
}
