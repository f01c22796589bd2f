// SPDX-License-Identifier: MIT
// ringd/detail/io_op.hpp — what the event loop knows of an operation: how to fill its SQE and
// what to do with its CQE. Every awaitable op, timer and stream embeds one; none is allocated.
#pragma once

#include <liburing.h>

#include <cstdint>

namespace ringd::detail {

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

    io_op(prepare_fn p, complete_fn c, duration d = duration::unbounded) noexcept
        : prepare(p), complete(c), lasts(d) {}
    io_op(const io_op&) = delete;
    io_op& operator=(const io_op&) = delete;

    // Set by the op's owner.
    prepare_fn prepare;
    complete_fn complete;
    duration lasts;

    // Owned by io_context: which list the op is on, its links, and its cancel-list links.
    place where = place::idle;
    bool cancel_listed = false;
    int local_result = 0; // the result of a completion the loop makes itself (e.g. -ECANCELED)
    io_op* prev = nullptr;
    io_op* next = nullptr;
    io_op* cancel_prev = nullptr;
    io_op* cancel_next = nullptr;
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
