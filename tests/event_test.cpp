// SPDX-License-Identifier: MIT
// ringd::event: take() is a wake-up that resets, wait() a latch that does not; a set() from
// another thread or before the waiter is never lost; a stop request ends either wait.
#include <ringd/event.hpp>

#include "test_support.hpp"

#include <ringd/scope.hpp>
#include <ringd/timer.hpp>

#include <catch2/catch.hpp>

#include <atomic>
#include <thread>

using namespace std::chrono_literals;
using ringd::event;
using ringd::io_context;
using ringd::scope;
using ringd::task;

TEST_CASE("a set before take() is kept, several sets coalesce, and take() resets") {
    io_context ctx;
    event e;
    e.set();
    e.set();
    CHECK(e.is_set());
    auto body = [&]() -> task<bool> { co_return (co_await e.take(ctx)).has_value(); };
    CHECK(ringd::testing::run_bounded(ctx, body()));
    CHECK_FALSE(e.is_set()); // both sets were one wake-up
}

TEST_CASE("a set from another thread wakes a coroutine waiting in take()") {
    io_context ctx;
    event e;
    std::thread setter([&] {
        std::this_thread::sleep_for(20ms);
        e.set();
    });
    auto body = [&]() -> task<bool> { co_return (co_await e.take(ctx)).has_value(); };
    CHECK(ringd::testing::run_bounded(ctx, body()));
    setter.join();
}

TEST_CASE("wait() is a latch: every waiter, now and later, sees the event set") {
    io_context ctx;
    event e;
    int woken = 0;
    auto waiter = [&]() -> task<void> {
        if (co_await e.wait(ctx)) ++woken;
    };
    auto body = [&]() -> task<void> {
        scope s;
        s.spawn(waiter());
        s.spawn(waiter());
        co_await ringd::sleep_for(ctx, 5ms);
        e.set();
        co_await s.join();
        co_await waiter(); // after the set: at once
    };
    ringd::testing::run_bounded(ctx, body());
    CHECK(woken == 3);
    CHECK(e.is_set());
}

TEST_CASE("a stop request ends take() and wait() with operation_canceled") {
    io_context ctx;
    event e;
    std::error_code took, waited;
    auto take = [&]() -> task<void> {
        if (auto r = co_await e.take(ctx); !r) took = r.error();
    };
    auto wait = [&]() -> task<void> {
        if (auto r = co_await e.wait(ctx); !r) waited = r.error();
    };
    auto body = [&]() -> task<void> {
        scope s;
        s.spawn(take());
        s.spawn(wait());
        co_await ringd::sleep_for(ctx, 5ms);
        s.request_stop();
        co_await s.join();
    };
    ringd::testing::run_bounded(ctx, body());
    CHECK(ringd::is_cancelled(took));
    CHECK(ringd::is_cancelled(waited));
    CHECK_FALSE(e.is_set());
}

TEST_CASE("sets from another thread racing with take() are never lost") {
    // Each round the other thread sets the event once it sees the previous take() done, and
    // sometimes sets it again at once (a burst). A lost wake-up leaves take() waiting for a set
    // that never writes, and the watchdog fails the test.
    io_context ctx;
    event e;
    constexpr int rounds = 2000;
    std::atomic<int> taken{0};
    std::thread setter([&] {
        for (int i = 0; i < rounds; ++i) {
            while (taken.load() < i) std::this_thread::yield();
            e.set();
            if (i % 3 == 0) e.set();
        }
    });
    auto body = [&]() -> task<int> {
        int woken = 0;
        for (int i = 0; i < rounds; ++i) {
            if (!co_await e.take(ctx)) break;
            ++woken;
            taken.store(i + 1);
        }
        co_return woken;
    };
    const int woken = ringd::testing::run_bounded(ctx, body());
    setter.join();
    CHECK(woken == rounds);
}
