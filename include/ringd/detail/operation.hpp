// SPDX-License-Identifier: MIT
// ringd/detail/operation.hpp — the awaiter shape shared by every single-shot ring operation.
// Derived types say how to fill the SQE and what result a CQE means; this class does the rest:
// submission in await_suspend, cancellation through the awaiting coroutine's stop token.
#pragma once

#include <ringd/detail/io_op.hpp>
#include <ringd/detail/stop_binding.hpp>
#include <ringd/io_context.hpp>
#include <ringd/task.hpp>

#include <coroutine>

namespace ringd::detail {

// Derived must provide:
//   void prepare(io_uring_sqe* sqe) noexcept;    fill the SQE (called when a slot is free)
//   Result make_result(int res) noexcept;        turn the CQE's res into the awaited value
// and may declare `static constexpr bool bounded = true;` when the op ends on its own, whatever
// peers do (io_op::duration; the default is unbounded).
template <class Derived>
class basic_operation : private ring_op<basic_operation<Derived>> {
public:
    explicit basic_operation(io_context& ctx) noexcept
        : ring_op<basic_operation>(duration_of()), ctx_(&ctx) {}

    bool await_ready() const noexcept { return false; }

    // Takes the SQE now, not when the operation object was made. If the coroutine's stop was
    // already requested, completes at once with operation_canceled (no SQE used).
    template <class Promise>
    bool await_suspend(std::coroutine_handle<Promise> awaiting) noexcept {
        waiter_ = awaiting;
        const std::stop_token* token = stop_token_of(awaiting);
        if (stop_requested(token)) {
            result_ = -ECANCELED;
            return false;
        }
        ctx_->submit(this);
        stop_.bind(token, canceller{this});
        return true;
    }

    auto await_resume() noexcept {
        stop_.unbind();
        return static_cast<Derived*>(this)->make_result(result_);
    }

protected:
    io_context& context() const noexcept { return *ctx_; }

private:
    friend class ring_op<basic_operation>;
    using duration = io_op::duration;

    struct canceller {
        basic_operation* op;
        void operator()() const noexcept { op->ctx_->cancel(op); }
    };

    static constexpr duration duration_of() noexcept {
        if constexpr (requires { Derived::bounded; })
            return Derived::bounded ? duration::bounded : duration::unbounded;
        else
            return duration::unbounded;
    }

    void prepare(io_uring_sqe* sqe) noexcept { static_cast<Derived*>(this)->prepare(sqe); }
    void complete(int res, std::uint32_t) noexcept {
        result_ = res;
        waiter_.resume();
    }

    io_context* ctx_;                // the ring this op goes to
    std::coroutine_handle<> waiter_; // resumed on completion
    int result_ = 0;                 // the CQE's res
    stop_binding<canceller> stop_;   // bound while in flight
};

} // namespace ringd::detail
