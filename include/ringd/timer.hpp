// SPDX-License-Identifier: MIT
// ringd/timer.hpp — sleeping on the ring (IORING_OP_TIMEOUT): no timerfd, no thread.
// co_await sleep_for(ctx, 10ms) resumes after the delay, or with operation_canceled on stop.
#pragma once

#include <ringd/detail/operation.hpp>
#include <ringd/detail/timeout_op.hpp>
#include <ringd/io_context.hpp>
#include <ringd/result.hpp>

#include <chrono>

namespace ringd {

class timeout_operation : public detail::basic_operation<timeout_operation> {
public:
    static constexpr bool bounded = true; // it ends on its own (io_op::duration)
    // A relative delay (negative counts as zero).
    timeout_operation(io_context& ctx, std::chrono::nanoseconds delay) noexcept
        : basic_operation(ctx), spec_(detail::timeout_spec::after(delay)) {}
    // An absolute deadline on the steady clock (CLOCK_MONOTONIC on Linux, as the ring's default).
    timeout_operation(io_context& ctx, std::chrono::steady_clock::time_point deadline) noexcept
        : basic_operation(ctx), spec_(detail::timeout_spec::at(deadline)) {}

    void prepare(io_uring_sqe* sqe) noexcept { spec_.prepare(sqe); }
    // The time came (the kernel's -ETIME): success; else the error (operation_canceled).
    result<void> make_result(int res) noexcept {
        if (const int outcome = detail::timeout_spec::outcome(res); outcome < 0)
            return errno_error(-outcome);
        return {};
    }

private:
    detail::timeout_spec spec_; // read by the kernel while in flight: lives in the awaiter
};

inline timeout_operation sleep_for(io_context& ctx, std::chrono::nanoseconds delay) noexcept {
    return {ctx, delay};
}
inline timeout_operation sleep_until(io_context& ctx,
                                     std::chrono::steady_clock::time_point deadline) noexcept {
    return {ctx, deadline};
}

} // namespace ringd
