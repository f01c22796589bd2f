// SPDX-License-Identifier: MIT
// ringd/detail/io_context_loop.hpp — io_context (io_context.hpp) at work: submission (queued
// while the ring has no slot), cancellation, the turn that enters the kernel and resumes what
// completed, the overflow count, and the stop that drains every op.
#pragma once

#include <ringd/io_context.hpp>

#include <unistd.h>

namespace ringd {
inline void io_context::stop() noexcept {
    stop_requested_.store(true, std::memory_order_release);
    std::uint64_t one = 1;
    // Only fails if the counter would overflow, which means a wake-up is already pending.
    [[maybe_unused]] auto n = ::write(wake_fd_.get(), &one, sizeof one);
}

inline void io_context::submit(detail::io_op* op) noexcept {
    if (stopping_) return complete_later(op, -ECANCELED);
    // FIFO within a class: once one of its ops waits, newcomers wait behind it.
    detail::op_queue& queue = waiting_for(op->lasts);
    if (queue.empty() && has_slot(op->lasts)) {
        if (io_uring_sqe* sqe = get_sqe()) return start_op(op, sqe);
    }
    op->where = detail::io_op::place::pending;
    queue.push_back(op);
    ++stats_.parked;
}

inline void io_context::cancel(detail::io_op* op) noexcept {
    if (op->cancel_listed || op->where == detail::io_op::place::idle ||
        op->where == detail::io_op::place::completed_locally)
        return;
    op->cancel_listed = true;
    cancels_.push_back(op);
}

inline void io_context::complete_later(detail::io_op* op, int res) noexcept {
    op->where = detail::io_op::place::completed_locally;
    op->local_result = res;
    completed_.push_back(op);
}

inline void io_context::close_detached(unique_fd fd) noexcept {
    if (!fd) return;
    if (!features_.cqe_skip || stopping_ || !has_slot(detail::io_op::duration::bounded))
        return fd.reset();
    io_uring_sqe* sqe = get_sqe();
    if (sqe == nullptr) return fd.reset();
    io_uring_prep_close(sqe, fd.release());
    io_uring_sqe_set_flags(sqe, IOSQE_CQE_SKIP_SUCCESS);
    io_uring_sqe_set_data64(sqe, detached_close_tag);
    ++detached_unsubmitted_;
    ++stats_.detached_closes;
}

inline io_uring_sqe* io_context::get_sqe() noexcept {
    if (io_uring_sqe* sqe = io_uring_get_sqe(&ring_)) [[likely]]
        return sqe;
    return get_sqe_after_submit();
}

// The SQ is full: hand it to the kernel and take a fresh slot (never assert).
inline io_uring_sqe* io_context::get_sqe_after_submit() noexcept {
    io_uring_submit(&ring_);
    note_submitted();
    return io_uring_get_sqe(&ring_);
}

// After a submission: once the kernel has taken every queued SQE, the detached closes among
// them have run and hold no CQ room any more.
inline void io_context::note_submitted() noexcept {
    if (detached_unsubmitted_ != 0 && io_uring_sq_ready(&ring_) == 0) detached_unsubmitted_ = 0;
}

// Hands queued detached closes to the kernel now (before run() returns, or the ring closes).
inline void io_context::flush_detached() noexcept {
    if (detached_unsubmitted_ == 0) return;
    io_uring_submit(&ring_);
    note_submitted();
}

inline void io_context::start_op(detail::io_op* op, io_uring_sqe* sqe) noexcept {
    op->fill_sqe(op, sqe);
    io_uring_sqe_set_data(sqe, op);
    op->where = detail::io_op::place::in_flight;
    in_flight_.push_back(op);
    ++in_flight_count_;
    if (op->lasts == detail::io_op::duration::unbounded) ++unbounded_in_flight_;
}

inline void io_context::arm_wakeup() noexcept {
    submit(&wakeup_);
}

inline void io_context::begin_stop() noexcept {
    stopping_ = true;
    while (detail::io_op* op = waiting_bounded_.pop_front()) complete_later(op, -ECANCELED);
    while (detail::io_op* op = waiting_unbounded_.pop_front()) complete_later(op, -ECANCELED);
    for (detail::io_op* op = in_flight_.front(); op != nullptr; op = op->next) cancel(op);
}

inline void io_context::process_cancels() noexcept {
    while (detail::io_op* op = cancels_.front()) {
        if (op->where == detail::io_op::place::pending) {
            cancels_.pop_front();
            op->cancel_listed = false;
            waiting_for(op->lasts).unlink(op);
            complete_later(op, -ECANCELED);
            continue;
        }
        io_uring_sqe* sqe = get_sqe();
        if (sqe == nullptr) return; // retried on the next turn of the loop
        cancels_.pop_front();
        op->cancel_listed = false;
        // The cancel's own CQE carries user_data 0 and is ignored; the op's CQE says the outcome.
        io_uring_prep_cancel64(sqe, reinterpret_cast<std::uintptr_t>(op), 0);
        io_uring_sqe_set_data64(sqe, 0);
    }
}

// Bounded ops first: they free their slot again soon, whatever peers do.
inline void io_context::fill_ring_from_queue() noexcept {
    fill_from(waiting_bounded_);
    fill_from(waiting_unbounded_);
}

inline void io_context::fill_from(detail::op_queue& queue) noexcept {
    while (!queue.empty() && has_slot(queue.front()->lasts)) {
        io_uring_sqe* sqe = get_sqe();
        if (sqe == nullptr) return;
        start_op(queue.pop_front(), sqe);
    }
}

inline void io_context::dispatch_local_completions() noexcept {
    while (detail::io_op* op = completed_.pop_front()) {
        op->where = detail::io_op::place::idle;
        op->take_cqe(op, op->local_result, 0);
    }
}

inline void io_context::enter_kernel(unsigned wait_nr) noexcept {
    ++stats_.iterations;
    int rc = io_uring_submit_and_wait(&ring_, wait_nr);
    // EINTR: a signal arrived (we keep going). EBUSY/EAGAIN: the kernel holds overflowed
    // completions it cannot flush into a full CQ, or is short of memory; the caller reaps,
    // which frees room, and the next turn submits again (the SQEs stay queued meanwhile).
    if (rc == -EBUSY || rc == -EAGAIN) ++stats_.submit_busy;
    note_submitted();
}

inline void io_context::reap_completions() noexcept {
    constexpr unsigned batch_size = 64;
    struct entry {
        std::uint64_t user_data;
        int res;
        std::uint32_t flags;
    } batch[batch_size];
    for (;;) {
        // io_uring_peek_batch_cqe, inline and without its check for overflowed CQEs: those are
        // flushed by enter_kernel, which enters with GETEVENTS whenever the kernel flags them.
        const unsigned head = *ring_.cq.khead;
        const unsigned ready = io_uring_cq_ready(&ring_);
        const unsigned n = ready < batch_size ? ready : batch_size;
        if (n == 0) return note_overflow();
        // Copy and release the CQ slots first: the resumed coroutines submit new work.
        for (unsigned i = 0; i < n; ++i) {
            const io_uring_cqe& cqe =
                ring_.cq.cqes[io_uring_cqe_index(&ring_, head + i, ring_.cq.ring_mask)];
            batch[i] = {cqe.user_data, cqe.res, cqe.flags};
        }
        io_uring_cq_advance(&ring_, n);
        stats_.completions += n;
        for (unsigned i = 0; i < n; ++i) {
            if (batch[i].user_data <= detached_close_tag) {
                // A cancel request's own completion, or a detached close that failed.
                if (batch[i].user_data == detached_close_tag) ++stats_.detached_close_errors;
                continue;
            }
            auto* op = reinterpret_cast<detail::io_op*>(batch[i].user_data);
            if ((batch[i].flags & IORING_CQE_F_MORE) == 0) {
                // Final CQE: the op leaves the kernel (a multishot op stays until then).
                in_flight_.unlink(op);
                --in_flight_count_;
                op->where = detail::io_op::place::idle;
                if (op->lasts == detail::io_op::duration::unbounded) --unbounded_in_flight_;
                if (op->cancel_listed) {
                    cancels_.unlink(op);
                    op->cancel_listed = false;
                }
            }
            op->take_cqe(op, batch[i].res, batch[i].flags);
        }
        if (n < batch_size) return note_overflow();
    }
}

// Counts the turns that left completions in the kernel's overflow list (the next entry into
// the kernel flushes them into the CQ), and whatever the kernel had to drop.
inline void io_context::note_overflow() noexcept {
    if ((IO_URING_READ_ONCE(*ring_.sq.kflags) & IORING_SQ_CQ_OVERFLOW) != 0) [[unlikely]]
        ++stats_.cq_overflows;
    stats_.cq_dropped = IO_URING_READ_ONCE(*ring_.cq.koverflow);
}

inline void io_context::run_until(const bool& done) {
    while (!done) {
        if (stop_requested_.load(std::memory_order_acquire) && !stopping_) begin_stop();
        if (stopping_ && in_flight_count_ == 0 && completed_.empty() && nothing_waiting()) {
            // Drained to zero. Leave the context reusable: a later run() starts afresh.
            stopping_ = false;
            stop_requested_.store(false, std::memory_order_relaxed);
            arm_wakeup();
            return flush_detached();
        }
        // Both lists are empty on almost every turn: test before calling.
        if (!cancels_.empty()) process_cancels();
        if (!completed_.empty()) dispatch_local_completions();
        if (done) return flush_detached();
        fill_ring_from_queue();
        // With local work queued, only collect what is ready; otherwise sleep in the kernel.
        bool local_work = !completed_.empty() || !cancels_.empty();
        enter_kernel(local_work ? 0 : 1);
        reap_completions();
    }
    flush_detached();
}

inline void io_context::run() {
    const bool never = false;
    run_until(never);
}

} // namespace ringd
