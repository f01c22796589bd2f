// SPDX-License-Identifier: MIT
// micro_common.hpp — what the Google Benchmark microbenchmarks share: a raw liburing ring set up
// with the same flags as ringd's io_context, a NOP operation in ringd's operation shape, and a
// minimal hand-written coroutine machinery (heap frames, no scope, no stop tokens) that plays
// the part of "what you would write on raw liburing without ringd".
//
// Every benchmark comes in a pair named CASE/raw and CASE/ringd (plus /ARG when parametrised);
// bench/run_all.sh divides their median CPU times per operation. Rates are per CPU second of the
// benchmark thread (Google Benchmark's default), so contention from other processes on the
// machine shows up less than it would in wall time.
#pragma once

#include <ringd/detail/operation.hpp>
#include <ringd/io_context.hpp>

#include <benchmark/benchmark.h>
#include <liburing.h>

#include <coroutine>
#include <cstdint>
#include <exception>
#include <stdexcept>
#include <string>
#include <system_error>

namespace micro {

// A NOP through ringd's ring, built the way any ringd operation is (detail::basic_operation):
// the SQE is taken in await_suspend, the CQE resumes the awaiting coroutine.
class nop_operation : public ringd::detail::basic_operation<nop_operation> {
public:
    explicit nop_operation(ringd::io_context& ctx) noexcept : basic_operation(ctx) {}
    void prepare(io_uring_sqe* sqe) noexcept { io_uring_prep_nop(sqe); }
    int make_result(int res) noexcept { return res; }
};

// A plain ring with ringd's set-up flags (SUBMIT_ALL | SINGLE_ISSUER | DEFER_TASKRUN, a CQ of
// 8192, registered ring fd), falling back like io_context does.
class raw_ring {
public:
    raw_ring() {
        int rc = -EINVAL;
        for (unsigned flags :
             {IORING_SETUP_SUBMIT_ALL | IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN,
              IORING_SETUP_SUBMIT_ALL | IORING_SETUP_COOP_TASKRUN,
              unsigned{IORING_SETUP_SUBMIT_ALL}, 0u}) {
            io_uring_params p{};
            p.flags = flags | IORING_SETUP_CQSIZE;
            p.cq_entries = 8192;
            if ((rc = io_uring_queue_init_params(256, &ring_, &p)) != -EINVAL) break;
        }
        if (rc < 0) throw std::system_error(-rc, std::system_category(), "io_uring_queue_init");
        (void)io_uring_register_ring_fd(&ring_);
    }
    raw_ring(const raw_ring&) = delete;
    raw_ring& operator=(const raw_ring&) = delete;
    ~raw_ring() { io_uring_queue_exit(&ring_); }

    io_uring* get() noexcept { return &ring_; }
    io_uring_sqe* sqe() noexcept {
        io_uring_sqe* s = io_uring_get_sqe(&ring_);
        if (s == nullptr) {
            io_uring_submit(&ring_);
            s = io_uring_get_sqe(&ring_);
        }
        return s;
    }

private:
    io_uring ring_{};
};

// The raw counterpart of an awaitable op: user_data points at the awaiter, whose CQE handler
// stores the result and resumes the coroutine.
struct raw_completion {
    std::coroutine_handle<> waiter;
    int res = 0;
};

// Reaps every ready CQE and resumes its waiter (user_data 0: nothing to resume). A resumed
// coroutine may queue SQEs but never reaps, so the CQ can be released after the loop.
inline unsigned raw_dispatch(io_uring* ring) noexcept {
    unsigned head;
    unsigned seen = 0;
    io_uring_cqe* cqe;
    io_uring_for_each_cqe(ring, head, cqe) {
        ++seen;
        if (auto* c = reinterpret_cast<raw_completion*>(cqe->user_data)) {
            c->res = cqe->res;
            c->waiter.resume();
        }
    }
    io_uring_cq_advance(ring, seen);
    return seen;
}

struct raw_nop {
    raw_ring* ring;
    raw_completion done{};
    bool await_ready() const noexcept { return false; }
    void await_suspend(std::coroutine_handle<> h) noexcept {
        done.waiter = h;
        io_uring_sqe* s = ring->sqe();
        io_uring_prep_nop(s);
        io_uring_sqe_set_data(s, &done);
    }
    int await_resume() const noexcept { return done.res; }
};

// A fire-and-forget coroutine with plain new/delete frames: starts at once and frees its own
// frame at the end. The minimum a hand-written server would use.
struct raw_detached {
    struct promise_type {
        raw_detached get_return_object() noexcept { return {}; }
        std::suspend_never initial_suspend() const noexcept { return {}; }
        std::suspend_never final_suspend() const noexcept { return {}; }
        void return_void() const noexcept {}
        void unhandled_exception() const noexcept { std::terminate(); }
    };
};

// A lazy task with plain new/delete frames and symmetric transfer, for the spawn comparison.
class raw_task {
public:
    struct promise_type {
        std::coroutine_handle<> continuation;
        raw_task get_return_object() noexcept {
            return raw_task(std::coroutine_handle<promise_type>::from_promise(*this));
        }
        std::suspend_always initial_suspend() const noexcept { return {}; }
        struct final_awaiter {
            bool await_ready() const noexcept { return false; }
            std::coroutine_handle<>
            await_suspend(std::coroutine_handle<promise_type> h) const noexcept {
                return h.promise().continuation;
            }
            void await_resume() const noexcept {}
        };
        final_awaiter final_suspend() const noexcept { return {}; }
        void return_void() const noexcept {}
        void unhandled_exception() const noexcept { std::terminate(); }
    };
    explicit raw_task(std::coroutine_handle<promise_type> h) noexcept : h_(h) {}
    raw_task(raw_task&& o) noexcept : h_(std::exchange(o.h_, {})) {}
    raw_task& operator=(raw_task&&) = delete;
    ~raw_task() {
        if (h_) h_.destroy();
    }
    bool await_ready() const noexcept { return false; }
    std::coroutine_handle<> await_suspend(std::coroutine_handle<> parent) noexcept {
        h_.promise().continuation = parent;
        return h_;
    }
    void await_resume() const noexcept {}

private:
    std::coroutine_handle<promise_type> h_;
};

// Items (operations) per CPU second, and their inverse as the counter time_per_op (seconds in
// the JSON output; shown as e.g. "383n" on the console). run_all.sh reads time_per_op.
inline void report_ops(benchmark::State& state, std::int64_t ops_per_iteration) {
    const auto ops = static_cast<double>(state.iterations() * ops_per_iteration);
    state.SetItemsProcessed(state.iterations() * ops_per_iteration);
    state.counters["time_per_op"] =
        benchmark::Counter(ops, benchmark::Counter::kIsRate | benchmark::Counter::kInvert);
}

} // namespace micro
