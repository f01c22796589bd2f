// SPDX-License-Identifier: MIT
// ringd/deadline.hpp — waiting for a scope's tasks with a deadline: at the deadline, whatever is
// still running is cancelled, and the wait goes on until it has ended. The shape of every
// graceful drain ("let open connections finish for 5 s, then close them") and of every bounded
// read ("a request must arrive within 5 s").
#pragma once

#include <ringd/io_context.hpp>
#include <ringd/scope.hpp>
#include <ringd/task.hpp>
#include <ringd/timer.hpp>

#include <chrono>

namespace ringd {

// Joins `tasks`; if they have not all ended by `deadline`, requests their stop (each pending
// operation ends as operation_canceled) and joins what is left. Returns true when every task
// ended before the deadline, false when the deadline cancelled some. Rethrows as scope::join.
inline task<bool> join_until(io_context& ctx, scope& tasks,
                             std::chrono::steady_clock::time_point deadline);

// The same with a delay from now.
inline task<bool> join_within(io_context& ctx, scope& tasks, std::chrono::nanoseconds delay) {
    return join_until(ctx, tasks, std::chrono::steady_clock::now() + delay);
}

namespace detail {
// Sleeps until `deadline` unless cancelled first; then stops `target` and notes it in `cut`.
inline task<void> stop_at(io_context& ctx, std::chrono::steady_clock::time_point deadline,
                          scope& target, bool& cut) {
    auto slept = co_await sleep_until(ctx, deadline);
    if (!slept || target.size() == 0) co_return;
    cut = true;
    target.request_stop();
}
} // namespace detail

inline task<bool> join_until(io_context& ctx, scope& tasks,
                             std::chrono::steady_clock::time_point deadline) {
    bool cut = false;
    scope timer;
    timer.spawn(detail::stop_at(ctx, deadline, tasks, cut));
    co_await tasks.join();
    timer.request_stop();
    co_await timer.join();
    co_return !cut;
}

} // namespace ringd
