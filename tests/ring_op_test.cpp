// SPDX-License-Identifier: MIT
// ring_op: the one base through which an operation reaches the loop. The hooks it routes to
// are the derived object's own members, the duration it declares is what the loop sees, and
// an op completed only by the loop needs no SQE hook.
#include <ringd/detail/io_op.hpp>
#include <ringd/io_context.hpp>
#include <ringd/task.hpp>

#include <catch2/catch.hpp>

#include <cerrno>
#include <coroutine>
#include <cstdint>

namespace {

using ringd::detail::io_op;
using ringd::detail::ring_op;

// A NOP on the ring that resumes whoever awaits it, recording what its hooks saw.
class nop_op : private ring_op<nop_op> {
public:
    explicit nop_op(ringd::io_context& ctx) noexcept
        : ring_op(io_op::duration::bounded), ctx_(&ctx) {}

    void start(std::coroutine_handle<> resume_when_done) noexcept {
        waiter_ = resume_when_done;
        ctx_->submit(this);
    }
    [[nodiscard]] int result() const noexcept { return res_; }

    const nop_op* prepared_by = nullptr;
    const nop_op* completed_by = nullptr;
    [[nodiscard]] io_op::duration lasts_as_seen() const noexcept { return lasts; }

private:
    friend class ring_op<nop_op>; // its hooks are private: the base reaches them as a friend

    void prepare(io_uring_sqe* sqe) noexcept {
        prepared_by = this;
        io_uring_prep_nop(sqe);
    }
    void complete(int res, std::uint32_t) noexcept {
        completed_by = this;
        res_ = res;
        waiter_.resume();
    }

    ringd::io_context* ctx_;
    std::coroutine_handle<> waiter_;
    int res_ = -1;
};

// Runs a nop_op to its end (an awaiter of its own: g++ 12 copies an lvalue awaiter).
struct run_nop {
    nop_op& op;
    bool await_ready() const noexcept { return false; }
    void await_suspend(std::coroutine_handle<> h) noexcept { op.start(h); }
    int await_resume() const noexcept { return op.result(); }
};

// Completed only through io_context::complete_later: it declares so and has no prepare.
struct loop_only_op : ring_op<loop_only_op> {
    static constexpr bool completed_by_loop_only = true;
    void complete(int r, std::uint32_t) noexcept {
        res = r;
        waiter.resume();
    }
    std::coroutine_handle<> waiter;
    int res = 0;
};

// Awaits `op` completed by the loop with `res`.
struct complete_later_with {
    ringd::io_context& ctx;
    loop_only_op& op;
    int res;
    bool await_ready() const noexcept { return false; }
    void await_suspend(std::coroutine_handle<> h) noexcept {
        op.waiter = h;
        ctx.complete_later(&op, res);
    }
    int await_resume() const noexcept { return op.res; }
};

struct default_op : ring_op<default_op> {
    void prepare(io_uring_sqe* sqe) noexcept { io_uring_prep_nop(sqe); }
    void complete(int, std::uint32_t) noexcept {}
};

} // namespace

TEST_CASE("a ring_op's SQE and CQE go to the derived object's own hooks") {
    ringd::io_context ctx;
    nop_op a(ctx);
    nop_op b(ctx);
    auto main = [&]() -> ringd::task<int> {
        const int ra = co_await run_nop{a};
        const int rb = co_await run_nop{b};
        co_return ra + rb;
    };
    CHECK(ctx.run(main()) == 0); // a NOP completes with 0
    CHECK(a.prepared_by == &a);
    CHECK(a.completed_by == &a);
    CHECK(b.prepared_by == &b);
    CHECK(b.completed_by == &b);
}

TEST_CASE("a ring_op is unbounded unless it says otherwise, as the loop's in-flight cap reads it") {
    ringd::io_context ctx;
    CHECK(nop_op(ctx).lasts_as_seen() == io_op::duration::bounded);
    default_op d;
    CHECK(d.lasts == io_op::duration::unbounded);
    CHECK(d.fill_sqe != nullptr);
}

TEST_CASE("an op the loop only completes has no SQE hook, and gets the result it is given") {
    loop_only_op op;
    CHECK(op.fill_sqe == nullptr);
    ringd::io_context ctx;
    auto main = [&]() -> ringd::task<int> {
        co_return co_await complete_later_with{ctx, op, -ECANCELED};
    };
    CHECK(ctx.run(main()) == -ECANCELED);
}

TEST_CASE("a multishot op ends with the first CQE that lacks IORING_CQE_F_MORE") {
    CHECK_FALSE(default_op::ends_multishot(IORING_CQE_F_MORE));
    CHECK_FALSE(default_op::ends_multishot(IORING_CQE_F_MORE | IORING_CQE_F_BUFFER));
    CHECK(default_op::ends_multishot(0));
    CHECK(default_op::ends_multishot(IORING_CQE_F_BUFFER));
}
