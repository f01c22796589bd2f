// SPDX-License-Identifier: MIT
// Tests of io_context::close_detached: a close on the ring that posts no completion when it
// succeeds (the accept benchmark's server closes its connections this way).
#include <ringd/io_context.hpp>

#include "test_support.hpp"

#include <ringd/ops.hpp>
#include <ringd/scope.hpp>
#include <ringd/task.hpp>
#include <ringd/timer.hpp>

#include <catch2/catch.hpp>

#include <fcntl.h>

#include <cstddef>
#include <span>

using namespace std::chrono_literals;
using ringd::io_context;
using ringd::task;
using ringd::unique_fd;
using ringd::testing::pipe_pair;

namespace {

bool is_open(int fd) {
    return ::fcntl(fd, F_GETFD) != -1;
}

// Whether close_detached goes through the ring here; says why not when it does not.
bool ring_closes(const io_context& ctx) {
    if (!ctx.features().cqe_skip)
        WARN("no IOSQE_CQE_SKIP_SUCCESS (Linux < 5.17): close_detached uses close(2)");
    return ctx.features().cqe_skip;
}

} // namespace

TEST_CASE("close_detached closes the descriptor on the ring and posts no completion") {
    io_context ctx;
    if (!ring_closes(ctx)) return;
    pipe_pair p;
    const int fd = p.read_end.get();
    auto body = [](io_context& c, unique_fd f) -> task<void> {
        ringd::close_detached(c, std::move(f));
        co_return;
    };
    const auto completions_before = ctx.stats().completions;
    ringd::testing::run_bounded(ctx, body(ctx, std::move(p.read_end)));
    CHECK_FALSE(is_open(fd)); // closed by the time run() returns
    CHECK(ctx.stats().detached_closes == 1);
    CHECK(ctx.stats().detached_close_errors == 0);
    CHECK(ctx.stats().completions == completions_before); // no CQE for a successful close
}

TEST_CASE("a detached close that fails is counted, not reported") {
    io_context ctx;
    if (!ring_closes(ctx)) return;
    pipe_pair p;
    // A descriptor number that is surely not open: the kernel answers EBADF with a CQE.
    auto body = [](io_context& c, unique_fd other) -> task<void> {
        ringd::close_detached(c, unique_fd(1 << 20));
        // One more trip through the kernel, so that the failure's CQE is reaped.
        (void)co_await ringd::async_close(c, std::move(other));
    };
    ringd::testing::run_bounded(ctx, body(ctx, std::move(p.read_end)));
    CHECK(ctx.stats().detached_closes == 1);
    CHECK(ctx.stats().detached_close_errors == 1);
}

TEST_CASE("a detached close queued outside run() happens when the context goes away") {
    pipe_pair p;
    const int fd = p.read_end.get();
    {
        io_context ctx;
        ctx.close_detached(std::move(p.read_end));
        if (ctx.features().cqe_skip) CHECK(is_open(fd)); // queued, not yet submitted
    }
    CHECK_FALSE(is_open(fd));
}

TEST_CASE("close_detached on a ring at its in-flight cap closes at once with close(2)") {
    io_context::options o;
    o.sq_entries = 4;
    o.cq_entries = 8;
    o.cap_in_flight = true; // what kernels without NODROP get
    io_context ctx(o);
    pipe_pair never_ready;
    pipe_pair victim;
    const int fd = victim.read_end.get();
    auto reader = [](io_context& c, const unique_fd& f) -> task<void> {
        std::byte b;
        (void)co_await ringd::async_read(c, f, std::span(&b, 1));
    };
    auto sleeper = [](io_context& c) -> task<void> { (void)co_await ringd::sleep_for(c, 1h); };
    auto body = [&]() -> task<void> {
        ringd::scope s;
        // Every CQ slot is now held: reads that never complete take what unbounded ops may,
        // long timers the rest.
        for (int i = 0; i < 16; ++i) s.spawn(reader(ctx, never_ready.read_end));
        for (int i = 0; i < 16; ++i) s.spawn(sleeper(ctx));
        REQUIRE(ctx.ops_in_flight() == ctx.features().cq_entries);
        const auto ring_closes = ctx.stats().detached_closes;
        ctx.close_detached(std::move(victim.read_end));
        CHECK_FALSE(is_open(fd));                          // closed synchronously
        CHECK(ctx.stats().detached_closes == ring_closes); // not through the ring
        s.request_stop();
        co_await s.join();
    };
    ringd::testing::run_bounded(ctx, body());
}
