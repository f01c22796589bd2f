// SPDX-License-Identifier: MIT
// ringd/detail/timeout_op.hpp — IORING_OP_TIMEOUT, the one way ringd waits for time on the ring:
// sleep_for/sleep_until (timer.hpp), accept_stream's back-off, the supervisor's timers.
#pragma once

#include <ringd/detail/io_op.hpp>

#include <liburing.h>

#include <cerrno>
#include <chrono>

namespace ringd::detail {

// When a timeout ends, as the kernel reads it: a delay from submission, or a deadline on the
// steady clock (CLOCK_MONOTONIC on Linux, the ring's default clock for timeouts).
struct timeout_spec {
    // After `delay` (a negative one counts as zero).
    [[nodiscard]] static timeout_spec after(std::chrono::nanoseconds delay) noexcept {
        return {to_timespec(delay), 0};
    }
    // At `deadline` (one that has passed ends at once).
    [[nodiscard]] static timeout_spec at(std::chrono::steady_clock::time_point deadline) noexcept {
        return {to_timespec(deadline.time_since_epoch()), IORING_TIMEOUT_ABS};
    }

    void prepare(io_uring_sqe* sqe) noexcept { io_uring_prep_timeout(sqe, &when, 0, flags); }

    // A completion's res as an outcome: 0 when the time came (the kernel reports -ETIME), else
    // the negative errno (-ECANCELED after a cancel).
    [[nodiscard]] static int outcome(int res) noexcept { return res == -ETIME ? 0 : res; }

    static __kernel_timespec to_timespec(std::chrono::nanoseconds d) noexcept {
        if (d.count() < 0) d = std::chrono::nanoseconds(0);
        return {static_cast<long long>(d.count() / 1'000'000'000),
                static_cast<long long>(d.count() % 1'000'000'000)};
    }

    __kernel_timespec when{}; // read by the kernel while in flight: lives as long as the op
    unsigned flags = 0;       // 0 (relative) or IORING_TIMEOUT_ABS
};

// A timeout as an operation that an owner embeds and submits itself (CRTP, like ring_op):
// Derived provides `void complete(int res, std::uint32_t flags) noexcept`, and
// timeout_spec::outcome reads res. Bounded: it ends on its own.
template <class Derived>
struct timeout_op : ring_op<Derived> {
    timeout_op() noexcept : ring_op<Derived>(io_op::duration::bounded) {}

    void prepare(io_uring_sqe* sqe) noexcept { spec.prepare(sqe); }

    timeout_spec spec; // set before each submit
};

} // namespace ringd::detail
