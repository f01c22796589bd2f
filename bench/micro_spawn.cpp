// SPDX-License-Identifier: MIT
// micro_spawn — spawning a coroutine and destroying it when it ends, with nothing in between:
// the fixed cost of one handler per connection.
//   task_spawn/raw    the same two-frame shape written by hand with plain new/delete frames: an
//                     eager wrapper that awaits a lazy task (symmetric transfer both ways)
//   task_spawn/ringd  scope::spawn(task<void>): the wrapper and the task frame come from ringd's
//                     recycling frame allocator, and the scope counts the child in and out
#include "micro_common.hpp"

#include <ringd/scope.hpp>
#include <ringd/task.hpp>

namespace {

micro::raw_task raw_child(int& n) {
    ++n;
    co_return;
}

micro::raw_detached raw_run_child(micro::raw_task child) {
    co_await child;
}

void task_spawn_raw(benchmark::State& state) {
    int n = 0;
    for (auto _ : state) raw_run_child(raw_child(n));
    benchmark::DoNotOptimize(n);
    micro::report_ops(state, 1);
}
BENCHMARK(task_spawn_raw)->Name("task_spawn/raw");

ringd::task<void> ringd_child(int& n) {
    ++n;
    co_return;
}

void task_spawn_ringd(benchmark::State& state) {
    ringd::scope s;
    int n = 0;
    for (auto _ : state) s.spawn(ringd_child(n));
    benchmark::DoNotOptimize(n);
    micro::report_ops(state, 1);
}
BENCHMARK(task_spawn_ringd)->Name("task_spawn/ringd");

} // namespace
