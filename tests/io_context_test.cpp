// SPDX-License-Identifier: MIT
#include <ringd/io_context.hpp>

#include "test_support.hpp"

#include <ringd/ops.hpp>
#include <ringd/scope.hpp>
#include <ringd/timer.hpp>

#include <catch2/catch.hpp>

#include <fcntl.h>
#include <poll.h>
#include <unistd.h>

#include <cstdlib>
#include <thread>

using namespace std::chrono_literals;
using ringd::io_context;
using ringd::result;
using ringd::scope;
using ringd::task;
using ringd::unique_fd;
using ringd::testing::pipe_pair;

namespace {

io_context::options tiny_ring() {
    io_context::options o;
    o.sq_entries = 4;
    o.cq_entries = 8;
    return o;
}

// Runs 1,000 concurrent 1 ms timers; counts those that completed and the most ops in flight.
void run_1000_timers(io_context& ctx, int& completed, std::size_t& max_in_flight) {
    auto one = [](io_context& c, int& done, std::size_t& peak) -> task<void> {
        peak = std::max(peak, c.ops_in_flight());
        auto r = co_await ringd::sleep_for(c, 1ms);
        REQUIRE(r.has_value());
        peak = std::max(peak, c.ops_in_flight());
        ++done;
    };
    auto body = [&]() -> task<void> {
        scope s;
        for (int i = 0; i < 1000; ++i) s.spawn(one(ctx, completed, max_in_flight));
        co_await s.join();
    };
    ringd::testing::run_bounded(ctx, body());
}

} // namespace

TEST_CASE("the ring is set up with the best flags the kernel accepts") {
    io_context ctx;
    const auto& f = ctx.features();
    CHECK(f.sq_entries >= 256);
    CHECK(f.cq_entries >= 8192); // the default cap on ops in flight
    // DEFER_TASKRUN is only valid together with SINGLE_ISSUER.
    if (f.defer_taskrun) CHECK(f.single_issuer);
}

TEST_CASE("the ring falls back when DEFER_TASKRUN and COOP_TASKRUN are not wanted") {
    io_context::options o;
    o.try_defer_taskrun = false;
    o.try_coop_taskrun = false;
    io_context ctx(o);
    CHECK_FALSE(ctx.features().defer_taskrun);
    CHECK_FALSE(ctx.features().coop_taskrun);
    // And it still works.
    auto nap = [](io_context& c) -> task<bool> {
        auto r = co_await ringd::sleep_for(c, 1ms);
        co_return r.has_value();
    };
    CHECK(ringd::testing::run_bounded(ctx, nap(ctx)));
}

TEST_CASE("an op on a never-ready pipe is cancelled by its scope and ends as cancelled") {
    io_context ctx;
    pipe_pair p;
    std::optional<result<std::size_t>> outcome;
    auto reader = [](io_context& c, const unique_fd& fd,
                     std::optional<result<std::size_t>>& out) -> task<void> {
        std::byte buf[16];
        auto r = co_await ringd::async_read(c, fd, buf);
        out.emplace(r);
    };
    auto body = [&]() -> task<void> {
        scope s;
        s.spawn(reader(ctx, p.read_end, outcome));
        co_await ringd::sleep_for(ctx, 20ms); // the read is surely in the kernel now
        CHECK_FALSE(outcome.has_value());
        CHECK(ctx.ops_in_flight() >= 2); // the read and the loop's own wake-up read
        s.request_stop();
        co_await s.join();
    };
    ringd::testing::run_bounded(ctx, body());
    REQUIRE(outcome.has_value());
    REQUIRE_FALSE(outcome->has_value());
    CHECK(ringd::is_cancelled(outcome->error()));
}

TEST_CASE("a task spawned into a stopped scope completes as cancelled without using the ring") {
    io_context ctx;
    pipe_pair p;
    std::optional<result<std::size_t>> outcome;
    auto body = [&]() -> task<void> {
        scope s;
        s.request_stop();
        s.spawn([](io_context& c, const unique_fd& fd,
                   std::optional<result<std::size_t>>& out) -> task<void> {
            std::byte buf[16];
            auto r = co_await ringd::async_read(c, fd, buf);
            out.emplace(r);
        }(ctx, p.read_end, outcome));
        co_await s.join();
    };
    ringd::testing::run_bounded(ctx, body());
    REQUIRE(outcome.has_value());
    CHECK(ringd::is_cancelled(outcome->error()));
}

TEST_CASE("an 8-entry CQ has 1,000 timers in flight at once where the kernel keeps overflowed "
          "completions (NODROP), and loses none") {
    io_context ctx(tiny_ring());
    if (!ctx.features().nodrop) {
        WARN("no IORING_FEAT_NODROP (Linux < 5.5): the capped path is tested below");
        return;
    }
    int completed = 0;
    std::size_t max_in_flight = 0;
    run_1000_timers(ctx, completed, max_in_flight);
    CHECK(completed == 1000);
    CHECK(max_in_flight > 500);          // far beyond the CQ's 8 entries
    CHECK(ctx.stats().cq_overflows > 0); // the kernel held what did not fit, we reaped it
    CHECK(ctx.stats().cq_dropped == 0);
}

TEST_CASE("with the in-flight cap, a 4-entry ring completes 1,000 concurrent ops, parking the "
          "excess") {
    io_context::options o = tiny_ring();
    o.cap_in_flight = true;
    io_context ctx(o);
    REQUIRE(ctx.features().sq_entries == 4);
    int completed = 0;
    std::size_t max_in_flight = 0;
    run_1000_timers(ctx, completed, max_in_flight);
    CHECK(completed == 1000);
    CHECK(ctx.stats().parked >= 900);                  // most waited in the queue
    CHECK(max_in_flight <= ctx.features().cq_entries); // never more than the CQ can hold
}

TEST_CASE("1,000 pipe reads cancelled on a 4-entry ring all end as cancelled, with and without "
          "the in-flight cap") {
    const bool capped = GENERATE(false, true);
    io_context::options o = tiny_ring();
    o.cap_in_flight = capped;
    io_context ctx(o);
    pipe_pair p;
    int cancelled = 0;
    bool timer_done = false;
    auto reader = [](io_context& c, const unique_fd& fd, int& n) -> task<void> {
        std::byte b;
        auto r = co_await ringd::async_read(c, fd, std::span(&b, 1));
        if (!r && ringd::is_cancelled(r.error())) ++n;
    };
    auto body = [&]() -> task<void> {
        scope s;
        for (int i = 0; i < 1000; ++i) s.spawn(reader(ctx, p.read_end, cancelled));
        if (capped) {
            // Reads may hold 3/4 of the slots; the rest are parked...
            CHECK(ctx.ops_in_flight() < ctx.features().cq_entries);
            CHECK(ctx.stats().parked >= 990);
        } else {
            CHECK(ctx.ops_in_flight() > 1000); // every read, and the loop's wake-up
        }
        // ...and a timer (bounded) still runs: it never waits behind reads that may never end.
        timer_done = (co_await ringd::sleep_for(ctx, 1ms)).has_value();
        s.request_stop();
        co_await s.join();
    };
    ringd::testing::run_bounded(ctx, body());
    CHECK(cancelled == 1000);
    CHECK(timer_done);
}

TEST_CASE("stop() from another thread cancels in-flight ops and run() returns") {
    io_context ctx;
    pipe_pair p;
    std::optional<result<std::size_t>> outcome;
    auto reader = [](io_context& c, const unique_fd& fd,
                     std::optional<result<std::size_t>>& out) -> task<void> {
        std::byte buf[4];
        auto r = co_await ringd::async_read(c, fd, buf);
        out.emplace(r);
    };
    scope s;
    auto starter = [&]() -> task<void> {
        s.spawn(reader(ctx, p.read_end, outcome));
        co_return;
    };
    ctx.run(starter());
    std::thread stopper([&] {
        std::this_thread::sleep_for(20ms);
        ctx.stop();
    });
    ctx.run(); // returns once the read has drained
    stopper.join();
    REQUIRE(outcome.has_value());
    CHECK(ringd::is_cancelled(outcome->error()));
    CHECK(s.size() == 0);
    CHECK(ctx.ops_in_flight() == 1); // only the wake-up read, re-armed for the next run()
}

TEST_CASE("the loop sleeps in the kernel instead of spinning while a timer runs") {
    io_context ctx;
    auto nap = [](io_context& c) -> task<void> { co_await ringd::sleep_for(c, 100ms); };
    ringd::testing::run_bounded(ctx, nap(ctx));
    CHECK(ctx.stats().iterations <= 4);
}

TEST_CASE("poll reports readiness and write/read move bytes through a pipe") {
    io_context ctx;
    pipe_pair p;
    auto body = [&]() -> task<std::string> {
        const char msg[] = "hello";
        auto w = co_await ringd::async_write(ctx, p.write_end, std::as_bytes(std::span(msg, 5)));
        REQUIRE(w.has_value());
        auto ready = co_await ringd::async_poll(ctx, p.read_end, POLLIN);
        REQUIRE(ready.has_value());
        CHECK((*ready & POLLIN) != 0);
        char buf[8] = {};
        auto r =
            co_await ringd::async_read(ctx, p.read_end, std::as_writable_bytes(std::span(buf, 8)));
        REQUIRE(r.has_value());
        co_return std::string(buf, *r);
    };
    CHECK(ringd::testing::run_bounded(ctx, body()) == "hello");
}

TEST_CASE("close on the ring closes the descriptor") {
    io_context ctx;
    pipe_pair p;
    int raw = p.write_end.get();
    auto body = [&]() -> task<bool> {
        auto r = co_await ringd::async_close(ctx, std::move(p.write_end));
        co_return r.has_value();
    };
    CHECK(ringd::testing::run_bounded(ctx, body()));
    CHECK(::fcntl(raw, F_GETFD) == -1);
    CHECK(errno == EBADF);
}

TEST_CASE("fsync and fdatasync on the ring flush a written temporary file") {
    io_context ctx;
    char path[] = "/tmp/ringd-fsync-test-XXXXXX";
    unique_fd file(::mkstemp(path));
    REQUIRE(file.valid());
    ::unlink(path); // the descriptor keeps the file alive
    auto body = [&]() -> task<bool> {
        const char msg[] = "durable";
        auto w = co_await ringd::async_write(ctx, file, std::as_bytes(std::span(msg, 7)), 0);
        REQUIRE(w.has_value());
        auto synced = co_await ringd::async_fsync(ctx, file);
        auto data_synced = co_await ringd::async_fdatasync(ctx, file);
        co_return synced.has_value() && data_synced.has_value();
    };
    CHECK(ringd::testing::run_bounded(ctx, body()));
}

TEST_CASE("fsync of a descriptor that is not open reports EBADF as a value") {
    io_context ctx;
    auto body = [&]() -> task<result<void>> {
        co_return co_await ringd::async_fsync(ctx, ringd::borrowed_fd(1 << 20));
    };
    auto r = ringd::testing::run_bounded(ctx, body());
    REQUIRE_FALSE(r.has_value());
    CHECK(r.error() == std::errc::bad_file_descriptor);
}

TEST_CASE("a child's exception is rethrown by join, after every child has finished") {
    io_context ctx;
    int finished = 0;
    auto ok = [](io_context& c, int& n) -> task<void> {
        co_await ringd::sleep_for(c, 5ms);
        ++n;
    };
    auto bad = [](io_context& c) -> task<void> {
        co_await ringd::sleep_for(c, 1ms);
        throw std::runtime_error("child failed");
    };
    auto body = [&]() -> task<void> {
        scope s;
        s.spawn(ok(ctx, finished));
        s.spawn(bad(ctx));
        s.spawn(ok(ctx, finished));
        co_await s.join();
    };
    CHECK_THROWS_WITH(ringd::testing::run_bounded(ctx, body()), "child failed");
    CHECK(finished == 2);
}

TEST_CASE("a scope's error handler sees each child's exception as it happens") {
    io_context ctx;
    std::vector<std::string> seen;
    auto bad = [](int i) -> task<void> {
        throw std::runtime_error("child " + std::to_string(i));
        co_return;
    };
    auto body = [&]() -> task<void> {
        scope s([&](std::exception_ptr e) {
            try {
                std::rethrow_exception(e);
            } catch (const std::exception& ex) {
                seen.emplace_back(ex.what());
            }
        });
        for (int i = 0; i < 3; ++i) s.spawn(bad(i));
        co_await s.join(); // does not throw: the handler took them
        CHECK(s.error_count() == 3);
    };
    ringd::testing::run_bounded(ctx, body());
    CHECK(seen == std::vector<std::string>{"child 0", "child 1", "child 2"});
}

TEST_CASE("cancelling the coroutine that joins a scope cancels that scope's children") {
    io_context ctx;
    pipe_pair p;
    std::optional<result<std::size_t>> inner_outcome;
    auto reader = [](io_context& c, const unique_fd& fd,
                     std::optional<result<std::size_t>>& out) -> task<void> {
        std::byte buf[4];
        auto r = co_await ringd::async_read(c, fd, buf);
        out.emplace(r);
    };
    // A middle task with its own scope, as a server loop has for its connection handlers.
    auto middle = [](io_context& c, const unique_fd& fd, decltype(reader)& rd,
                     std::optional<result<std::size_t>>& out) -> task<void> {
        scope inner;
        inner.spawn(rd(c, fd, out));
        co_await inner.join();
    };
    auto body = [&]() -> task<void> {
        scope outer;
        outer.spawn(middle(ctx, p.read_end, reader, inner_outcome));
        co_await ringd::sleep_for(ctx, 5ms);
        outer.request_stop(); // reaches the inner scope through its joiner
        co_await outer.join();
    };
    ringd::testing::run_bounded(ctx, body());
    REQUIRE(inner_outcome.has_value());
    CHECK(ringd::is_cancelled(inner_outcome->error()));
}
