// SPDX-License-Identifier: MIT
// ringd/timer.hpp — sleeping on the ring (IORING_OP_TIMEOUT): no timerfd, no thread.
// co_await sleep_for(ctx, 10ms) resumes after the delay, or with operation_canceled on stop.
#pragma once

#include <ringd/detail/operation.hpp>
#include <ringd/io_context.hpp>
#include <ringd/result.hpp>

#include <chrono>

namespace ringd {

class timeout_operation : public detail::basic_operation<timeout_operation> {
public:
    static constexpr bool bounded = true; // it ends on its own (io_op::duration)
    // A relative delay (negative counts as zero).
    timeout_operation(io_context& ctx, std::chrono::nanoseconds delay) noexcept
        : basic_operation(ctx), when_(to_timespec(delay)), flags_(0) {}
    // An absolute deadline on the steady clock (CLOCK_MONOTONIC on Linux, as the ring's default).
    timeout_operation(io_context& ctx, std::chrono::steady_clock::time_point deadline) noexcept
        : basic_operation(ctx), when_(to_timespec(deadline.time_since_epoch())),
          flags_(IORING_TIMEOUT_ABS) {}

    void prepare(io_uring_sqe* sqe) noexcept { io_uring_prep_timeout(sqe, &when_, 0, flags_); }
    // The kernel reports an expired timeout as -ETIME: that is success here.
    result<void> make_result(int res) noexcept {
        if (res < 0 && res != -ETIME) return errno_error(-res);
        return {};
    }

private:
    static __kernel_timespec to_timespec(std::chrono::nanoseconds d) noexcept {
        if (d.count() < 0) d = std::chrono::nanoseconds(0);
        return {static_cast<long long>(d.count() / 1'000'000'000),
                static_cast<long long>(d.count() % 1'000'000'000)};
    }

    __kernel_timespec when_; // read by the kernel while in flight: lives in the awaiter
    unsigned flags_;
};

inline timeout_operation sleep_for(io_context& ctx, std::chrono::nanoseconds delay) noexcept {
    return {ctx, delay};
}
inline timeout_operation sleep_until(io_context& ctx,
                                     std::chrono::steady_clock::time_point deadline) noexcept {
    return {ctx, deadline};
}

} // namespace ringd
