// SPDX-License-Identifier: MIT
// micro_submit — submit batching: N coroutines each await one NOP, all queued before the loop
// enters the kernel, so one io_uring_enter submits N SQEs and the N CQEs come back in one reap.
// Per-op cost falls with N as the system call is shared; the ratio shows what ringd adds per op
// (the operation object, the in-flight list, the stop-callback registration, the scope).
//   submit_batch/raw/N    N hand-written coroutines with plain new/delete frames, each awaiting
//                         a raw NOP; one submit_and_wait, then resume every waiter
//   submit_batch/ringd/N  N ringd tasks spawned into a scope, each awaiting a NOP operation;
//                         co_await scope.join() runs the loop
#include "micro_common.hpp"

#include <ringd/scope.hpp>
#include <ringd/task.hpp>

namespace {

micro::raw_detached raw_one(micro::raw_ring& ring, int& live) {
    int r = co_await micro::raw_nop{&ring};
    benchmark::DoNotOptimize(r);
    --live;
}

void submit_batch_raw(benchmark::State& state) {
    micro::raw_ring ring;
    const auto n = static_cast<int>(state.range(0));
    std::uint64_t enters = 0;
    for (auto _ : state) {
        int live = n;
        for (int i = 0; i < n; ++i) raw_one(ring, live);
        while (live > 0) {
            io_uring_submit_and_wait(ring.get(), 1);
            ++enters;
            micro::raw_dispatch(ring.get());
        }
    }
    micro::report_ops(state, n);
    state.counters["enters_per_op"] = static_cast<double>(enters) / (state.iterations() * n);
}
BENCHMARK(submit_batch_raw)->Name("submit_batch/raw")->Arg(1)->Arg(8)->Arg(64)->Arg(256);

ringd::task<void> ringd_one(ringd::io_context& ctx) {
    int r = co_await micro::nop_operation(ctx);
    benchmark::DoNotOptimize(r);
}

ringd::task<void> ringd_bursts(ringd::io_context& ctx, benchmark::State& state, int n) {
    ringd::scope s;
    for (auto _ : state) {
        for (int i = 0; i < n; ++i) s.spawn(ringd_one(ctx));
        co_await s.join();
    }
}

void submit_batch_ringd(benchmark::State& state) {
    ringd::io_context ctx;
    const auto n = static_cast<int>(state.range(0));
    std::uint64_t before = ctx.stats().iterations;
    ctx.run(ringd_bursts(ctx, state, n));
    micro::report_ops(state, n);
    state.counters["enters_per_op"] =
        static_cast<double>(ctx.stats().iterations - before) / (state.iterations() * n);
}
BENCHMARK(submit_batch_ringd)->Name("submit_batch/ringd")->Arg(1)->Arg(8)->Arg(64)->Arg(256);

} // namespace
