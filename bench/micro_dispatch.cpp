// SPDX-License-Identifier: MIT
// micro_dispatch — completion dispatch to coroutine resume: one coroutine awaits NOPs back to
// back, so every iteration is one SQE, one io_uring_enter (the NOP completes inside it), one
// CQE and one resume.
//   nop_dispatch/raw    liburing by hand: the awaiter puts its address in user_data, the loop
//                       peeks the CQE, stores res and calls handle.resume()
//   nop_dispatch/ringd  a ringd operation (detail::basic_operation) awaited by a task in a scope
//                       (so with a stop token, as every op in a server has), io_context's loop
#include "micro_common.hpp"

#include <ringd/scope.hpp>
#include <ringd/task.hpp>

namespace {

micro::raw_detached raw_worker(micro::raw_ring& ring, benchmark::State& state, bool& done) {
    for (auto _ : state) {
        int r = co_await micro::raw_nop{&ring};
        benchmark::DoNotOptimize(r);
    }
    done = true;
}

void nop_dispatch_raw(benchmark::State& state) {
    micro::raw_ring ring;
    bool done = false;
    std::uint64_t enters = 0;
    raw_worker(ring, state, done);
    while (!done) {
        io_uring_submit_and_wait(ring.get(), 1);
        ++enters;
        micro::raw_dispatch(ring.get());
    }
    micro::report_ops(state, 1);
    state.counters["enters_per_op"] = static_cast<double>(enters) / state.iterations();
}
BENCHMARK(nop_dispatch_raw)->Name("nop_dispatch/raw");

ringd::task<void> ringd_worker(ringd::io_context& ctx, benchmark::State& state) {
    for (auto _ : state) {
        int r = co_await micro::nop_operation(ctx);
        benchmark::DoNotOptimize(r);
    }
}

ringd::task<void> ringd_main(ringd::io_context& ctx, benchmark::State& state) {
    ringd::scope s;
    s.spawn(ringd_worker(ctx, state));
    co_await s.join();
}

void nop_dispatch_ringd(benchmark::State& state) {
    ringd::io_context ctx;
    std::uint64_t before = ctx.stats().iterations;
    ctx.run(ringd_main(ctx, state));
    micro::report_ops(state, 1);
    state.counters["enters_per_op"] =
        static_cast<double>(ctx.stats().iterations - before) / state.iterations();
}
BENCHMARK(nop_dispatch_ringd)->Name("nop_dispatch/ringd");

} // namespace
