// SPDX-License-Identifier: MIT
// ringd/detail/io_op.hpp — what the event loop knows of an operation: how to fill its SQE and
// what to do with its CQE; and ring_op, the one base through which every operation gets it.
// Every awaitable op, timer, stream and supervisor watch embeds one; none is allocated.
#pragma once

#include <liburing.h>

#include <cstdint>

namespace ringd::detail {

template <class Derived>
class ring_op;

struct io_op {
    // Fills the SQE; called when the op gets a slot in the ring (maybe later than submit()).
    using prepare_fn = void (*)(io_op* self, io_uring_sqe* sqe) noexcept;
    // Receives the CQE's res and flags. Must not throw: it stores the result and resumes.
    using complete_fn = void (*)(io_op* self, int res, std::uint32_t flags) noexcept;

    enum class place : std::uint8_t { idle, pending, in_flight, completed_locally };

    // How long the op may stay in the kernel. Only matters where the ring caps ops in flight
    // (kernels without IORING_FEAT_NODROP): there an unbounded op (recv, accept, poll, waitid, a
    // signal read: it ends when a peer or another process acts) never makes a bounded one (send,
    // close, timer: it ends on its own) wait for a slot. Unbounded is the safe default.
    enum class duration : std::uint8_t { unbounded, bounded };

    io_op(const io_op&) = delete;
    io_op& operator=(const io_op&) = delete;

    // Set once, by ring_op.
    prepare_fn fill_sqe;
    complete_fn take_cqe;
    duration lasts;

    // Owned by io_context: which list the op is on, its links, and its cancel-list links.
    place where = place::idle;
    bool cancel_listed = false;
    int local_result = 0; // the result of a completion the loop makes itself (e.g. -ECANCELED)
    io_op* prev = nullptr;
    io_op* next = nullptr;
    io_op* cancel_prev = nullptr;
    io_op* cancel_next = nullptr;

private:
    template <class Derived>
    friend class ring_op;
    io_op(prepare_fn p, complete_fn c, duration d) noexcept : fill_sqe(p), take_cqe(c), lasts(d) {}
};

// The one way to make an operation: derive from ring_op<Self> (CRTP) and give Self
//   void prepare(io_uring_sqe* sqe) noexcept;            fill the SQE (when a slot is free)
//   void complete(int res, std::uint32_t flags) noexcept; take the CQE (must not throw)
// as members ring_op can reach (public, or Self befriends ring_op<Self>). An op that the loop
// only ever completes itself (io_context::complete_later) declares
// `static constexpr bool completed_by_loop_only = true;` and has no prepare.
// A multishot op stays in the kernel while its CQEs carry IORING_CQE_F_MORE; `ends_multishot`
// reads that, for the op to know when it must re-arm.
template <class Derived>
class ring_op : public io_op {
public:
    [[nodiscard]] static constexpr bool ends_multishot(std::uint32_t cqe_flags) noexcept {
        return (cqe_flags & IORING_CQE_F_MORE) == 0;
    }

protected:
    explicit ring_op(duration d = duration::unbounded) noexcept
        : io_op(prepare_hook(), &complete_thunk, d) {}

private:
    static constexpr bool never_submitted() noexcept {
        if constexpr (requires { Derived::completed_by_loop_only; })
            return Derived::completed_by_loop_only;
        else
            return false;
    }
    static constexpr prepare_fn prepare_hook() noexcept {
        if constexpr (never_submitted())
            return nullptr;
        else
            return &prepare_thunk;
    }
    static void prepare_thunk(io_op* self, io_uring_sqe* sqe) noexcept {
        static_cast<Derived*>(static_cast<ring_op*>(self))->prepare(sqe);
    }
    static void complete_thunk(io_op* self, int res, std::uint32_t flags) noexcept {
        static_cast<Derived*>(static_cast<ring_op*>(self))->complete(res, flags);
    }
};

// An intrusive doubly linked FIFO of io_op through the (prev, next) or (cancel_prev, cancel_next)
// links. O(1) push, pop and unlink; never allocates.
template <io_op* io_op::*Prev, io_op* io_op::*Next>
class op_list {
public:
    [[nodiscard]] bool empty() const noexcept { return head_ == nullptr; }
    [[nodiscard]] io_op* front() const noexcept { return head_; }

    void push_back(io_op* op) noexcept {
        op->*Prev = tail_;
        op->*Next = nullptr;
        if (tail_ != nullptr)
            tail_->*Next = op;
        else
            head_ = op;
        tail_ = op;
    }
    io_op* pop_front() noexcept {
        io_op* op = head_;
        if (op != nullptr) unlink(op);
        return op;
    }
    void unlink(io_op* op) noexcept {
        if (op->*Prev != nullptr)
            op->*Prev->*Next = op->*Next;
        else
            head_ = op->*Next;
        if (op->*Next != nullptr)
            op->*Next->*Prev = op->*Prev;
        else
            tail_ = op->*Prev;
        op->*Prev = op->*Next = nullptr;
    }

private:
    io_op* head_ = nullptr;
    io_op* tail_ = nullptr;
};

using op_queue = op_list<&io_op::prev, &io_op::next>;
using cancel_queue = op_list<&io_op::cancel_prev, &io_op::cancel_next>;

} // namespace ringd::detail
