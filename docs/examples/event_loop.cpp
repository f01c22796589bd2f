// SPDX-License-Identifier: MIT
// docs/examples/event_loop.cpp — chapter 1: a loop, tasks, a scope. Built and run as a test.
#include <ringd.hpp>

#include <cstdio>

using namespace std::chrono_literals;

// [lazy-task]
// A task does nothing until it is awaited; then it runs on the awaiting coroutine's loop.
ringd::task<int> slow_answer(ringd::io_context& ctx) {
    auto slept = co_await ringd::sleep_for(ctx, 10ms); // the loop sleeps in io_uring_enter
    if (!slept) co_return -1;                          // errors are values: result<void>
    co_return 42;
}
// [/lazy-task]

// [scope]
// A scope owns what it spawns: children start at once, run concurrently, and are joined.
ringd::task<int> three_at_once(ringd::io_context& ctx) {
    int sum = 0;
    auto add = [](ringd::io_context& c, int& total) -> ringd::task<void> {
        int v = co_await slow_answer(c); // co_await into a named local (see chapter 1)
        total += v;
    };
    ringd::scope children;
    for (int i = 0; i < 3; ++i) children.spawn(add(ctx, sum));
    co_await children.join(); // ~10 ms in all, not 30: the three sleeps overlap
    co_return sum;
}
// [/scope]

// [cancel]
// request_stop() reaches every operation the scope's children are waiting on.
ringd::task<bool> cancelled_sleep(ringd::io_context& ctx) {
    bool was_cancelled = false;
    auto sleeper = [](ringd::io_context& c, bool& flag) -> ringd::task<void> {
        auto r = co_await ringd::sleep_for(c, 1h);
        flag = !r && ringd::is_cancelled(r.error());
    };
    ringd::scope s;
    s.spawn(sleeper(ctx, was_cancelled));
    s.request_stop(); // the timer is cancelled in the kernel; the child resumes at once
    co_await s.join();
    co_return was_cancelled;
}
// [/cancel]

// [main]
int main() {
    ringd::io_context ctx; // one ring, in the thread that runs it
    int answer = ctx.run(three_at_once(ctx));
    bool cancelled = ctx.run(cancelled_sleep(ctx));
    std::printf("sum=%d cancelled=%s\n", answer, cancelled ? "yes" : "no");
    return answer == 126 && cancelled ? 0 : 1;
}
// [/main]
