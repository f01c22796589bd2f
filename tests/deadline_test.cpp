// SPDX-License-Identifier: MIT
// join_until: a scope's tasks get until the deadline, then are cancelled; the wait ends either
// way, and says which.
#include <ringd/deadline.hpp>

#include "test_support.hpp"

#include <ringd/ops.hpp>

#include <catch2/catch.hpp>

using namespace std::chrono_literals;
using ringd::io_context;
using ringd::scope;
using ringd::task;

namespace {

task<void> nap(io_context& ctx, std::chrono::milliseconds d, bool& finished, bool& cancelled) {
    auto r = co_await ringd::sleep_for(ctx, d);
    finished = r.has_value();
    cancelled = !r && ringd::is_cancelled(r.error());
}

} // namespace

TEST_CASE("tasks that end before the deadline are joined and not cancelled") {
    io_context ctx;
    bool finished = false, cancelled = false, in_time = false;
    auto body = [&]() -> task<void> {
        scope s;
        s.spawn(nap(ctx, 5ms, finished, cancelled));
        in_time = co_await ringd::join_within(ctx, s, 5s);
    };
    ringd::testing::run_bounded(ctx, body());
    CHECK(in_time);
    CHECK(finished);
    CHECK_FALSE(cancelled);
}

TEST_CASE("a task still running at the deadline is cancelled, and the join returns at once") {
    io_context ctx;

    ringd::testing::pipe_pair never_ready;
    bool finished = false, cancelled = false, in_time = true;
    std::optional<ringd::result<std::size_t>> read;
    auto reader = [](io_context& c, const ringd::unique_fd& fd,
                     std::optional<ringd::result<std::size_t>>& out) -> task<void> {
        std::byte b;
        out.emplace(co_await ringd::async_read(c, fd, std::span(&b, 1)));
    };
    auto body = [&]() -> task<void> {
        scope s;
        s.spawn(nap(ctx, 1h, finished, cancelled));
        s.spawn(reader(ctx, never_ready.read_end, read));
        // Bounded by run_bounded's watchdog: waiting for the hour would fail the test.
        in_time = co_await ringd::join_within(ctx, s, 20ms);
    };
    ringd::testing::run_bounded(ctx, body());
    CHECK_FALSE(in_time);
    CHECK_FALSE(finished);
    CHECK(cancelled);
    REQUIRE(read.has_value());
    CHECK(ringd::is_cancelled(read->error()));
}
