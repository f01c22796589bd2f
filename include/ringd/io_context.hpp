// SPDX-License-Identifier: MIT
// ringd/io_context.hpp — the event loop: one io_uring per thread, completions resumed as
// coroutines. Create it in the thread (and the process, after any fork) that runs it; pass it
// explicitly.
#pragma once

#include <ringd/detail/io_op.hpp>
#include <ringd/fd.hpp>
#include <ringd/result.hpp>
#include <ringd/task.hpp>

#include <liburing.h>
#include <sys/eventfd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstdint>
#include <optional>
#include <string>

namespace ringd {

// Which optional kernel features the ring got (probed at construction, never assumed).
struct ring_features {
    bool single_issuer = false;      // IORING_SETUP_SINGLE_ISSUER
    bool defer_taskrun = false;      // IORING_SETUP_DEFER_TASKRUN: completions run on our thread
    bool coop_taskrun = false;       // IORING_SETUP_COOP_TASKRUN: no IPI per completion
    bool registered_ring_fd = false; // io_uring_register_ring_fd: cheaper io_uring_enter
    bool nodrop = false;             // IORING_FEAT_NODROP: overflowed CQEs are kept, not lost
    bool cqe_skip = false;           // IORING_FEAT_CQE_SKIP: close_detached() can use the ring
    unsigned sq_entries = 0;
    unsigned cq_entries = 0;
};

// Counters for tests and benchmarks; plain integers, written only by the loop's thread.
struct loop_stats {
    std::uint64_t iterations = 0;  // times the loop entered the kernel
    std::uint64_t completions = 0; // CQEs dispatched
    std::uint64_t parked = 0;      // ops that waited in a queue for an SQE or a slot
    std::uint64_t submit_busy = 0; // io_uring_enter answered EBUSY/EAGAIN (CQ overflow, memory)
    // Turns after which the kernel still held completions that did not fit in the CQ. With
    // NODROP they are kept and reaped on the next turns: a sign the CQ is small for the load.
    std::uint64_t cq_overflows = 0;
    std::uint64_t cq_dropped = 0;            // completions the kernel lost (no NODROP): must stay 0
    std::uint64_t detached_closes = 0;       // close_detached() calls that went to the ring
    std::uint64_t detached_close_errors = 0; // ... and failed there (the error is not reported)
};

class io_context {
public:
    struct options {
        unsigned sq_entries = 256; // rounded up to a power of two by the kernel
        // Completions the kernel can post before the loop reaps them (16 bytes each). Where the
        // kernel has IORING_FEAT_NODROP (Linux 5.5+) this bounds nothing else: completions that
        // do not fit wait in the kernel, so any number of ops may be in flight. Without NODROP
        // it is also the cap on ops in flight (see submit()).
        unsigned cq_entries = 8192;
        // Keep that cap even where the kernel has NODROP (to test the older kernels' path).
        bool cap_in_flight = false;
        bool try_defer_taskrun = true;
        bool try_coop_taskrun = true;
        bool register_ring_fd = true;
    };

    // Sets up the ring, taking the best flags the kernel accepts. Throws std::system_error
    // ("io_uring_queue_init_params: ...") when no ring at all can be created.
    explicit io_context(options opts);
    io_context() : io_context(options{}) {}
    // Cancels whatever is still in flight, drains its completions, then closes the ring.
    ~io_context();
    io_context(const io_context&) = delete;
    io_context& operator=(const io_context&) = delete;

    // Runs the loop until `main` completes and returns its value (rethrows what it threw).
    // If stop() ends the loop first, throws std::runtime_error.
    template <class T>
    T run(task<T> main);
    // Runs the loop until stop().
    void run();

    // Asks the loop to stop: in-flight ops are cancelled, their completions drained, then run()
    // returns. Safe from any thread and from signal handlers (it only writes an eventfd).
    void stop() noexcept;
    [[nodiscard]] bool stopping() const noexcept { return stopping_; }

    [[nodiscard]] const ring_features& features() const noexcept { return features_; }
    [[nodiscard]] const loop_stats& stats() const noexcept { return stats_; }
    [[nodiscard]] std::size_t ops_in_flight() const noexcept { return in_flight_count_; }

    // ---- for operation implementers (ops.hpp, net.hpp, timer.hpp) ----

    // Queues `op` for the ring: it gets an SQE now, or waits in FIFO order (per duration class)
    // until one is free. Never fails: while stopping, the op completes with -ECANCELED instead.
    //
    // The rule on ops in flight. With NODROP (every kernel since 5.5) there is no cap: an op
    // waits only while the SQ is full, for the next trip into the kernel. Without NODROP, the
    // CQ must never overflow, so ops in flight are capped at its size; then an op of unbounded
    // duration (io_op::duration::unbounded: recv, accept, poll, waitid, a signal read) may
    // hold at most 3/4 of the slots, and bounded ops (send, close, timer, the loop's wake-up)
    // queue separately and go first, so they never wait behind an op that may never end.
    void submit(detail::io_op* op) noexcept;
    // Asks the kernel to cancel `op` (or drops it from the queue). The op still completes once,
    // with -ECANCELED or with its result if it won the race. Call on the loop's thread only.
    void cancel(detail::io_op* op) noexcept;
    // Completes `op` with `res` from the loop (not from inside the caller's stack).
    void complete_later(detail::io_op* op, int res) noexcept;

    // Closes `fd` without anyone waiting for it: the close rides along with the loop's next
    // submission on the ring (no system call of its own, and no completion on success, so no
    // CQE to dispatch and no extra trip into the kernel). Like unique_fd's destructor it does
    // not report close's error (failures are counted in stats().detached_close_errors); await
    // async_close() where the error matters. The descriptor is closed by the time the loop next
    // enters the kernel or run() returns (called outside run(): when the loop next runs, or the
    // context is destroyed). Falls back to close(2) at once when the kernel lacks
    // IOSQE_CQE_SKIP_SUCCESS (before 5.17), the ring is at its in-flight cap, or it is stopping.
    // Call on the loop's thread.
    void close_detached(unique_fd fd) noexcept;

    // The ring itself, for registrations (buffer_ring). Call on the loop's thread.
    [[nodiscard]] io_uring& native_handle() noexcept { return ring_; }
    // A provided-buffer group id not yet used on this ring (buffer_ring).
    [[nodiscard]] std::uint16_t allocate_buffer_group() noexcept { return next_buffer_group_++; }

private:
    void run_until(const bool& done);
    void begin_stop() noexcept;
    void process_cancels() noexcept;
    void fill_ring_from_queue() noexcept;
    void dispatch_local_completions() noexcept;
    void reap_completions() noexcept;
    void note_overflow() noexcept;
    void enter_kernel(unsigned wait_nr) noexcept;
    void start_op(detail::io_op* op, io_uring_sqe* sqe) noexcept;
    io_uring_sqe* get_sqe() noexcept;
    io_uring_sqe* get_sqe_after_submit() noexcept;
    void note_submitted() noexcept;
    void flush_detached() noexcept;
    // Whether an op of duration `d` may take a slot now (always true unless capped).
    [[nodiscard]] bool has_slot(detail::io_op::duration d) const noexcept {
        if (!capped_) [[likely]]
            return true;
        if (in_flight_count_ + detached_unsubmitted_ >= max_in_flight_) return false;
        return d == detail::io_op::duration::bounded || unbounded_in_flight_ < max_unbounded_;
    }
    [[nodiscard]] detail::op_queue& waiting_for(detail::io_op::duration d) noexcept {
        return d == detail::io_op::duration::bounded ? waiting_bounded_ : waiting_unbounded_;
    }
    [[nodiscard]] bool nothing_waiting() const noexcept {
        return waiting_bounded_.empty() && waiting_unbounded_.empty();
    }
    void fill_from(detail::op_queue& queue) noexcept;
    void arm_wakeup() noexcept;

    // user_data of CQEs that belong to no op (io_op pointers are never this small).
    static constexpr std::uint64_t cancel_tag = 0;         // a cancel request's own completion
    static constexpr std::uint64_t detached_close_tag = 1; // a close_detached() that failed

    template <class T>
    struct root;

    // The eventfd read that lets stop() wake a loop blocked in io_uring_enter.
    struct wakeup_op : detail::io_op {
        explicit wakeup_op(io_context* c) noexcept;
        io_context* ctx;
        std::uint64_t counter = 0;
    };

    // Written by the loop thread only.
    io_uring ring_{};
    ring_features features_;
    loop_stats stats_;
    bool capped_ = false;                 // no NODROP (or asked): ops in flight are capped
    unsigned max_in_flight_ = 0;          // when capped: the CQ's capacity
    unsigned max_unbounded_ = 0;          // when capped: what unbounded ops may hold of it
    std::size_t in_flight_count_ = 0;     // ops in the kernel
    std::size_t unbounded_in_flight_ = 0; // ... of which unbounded
    // close_detached() SQEs not yet handed to the kernel. Each may still post a CQE (on failure)
    // when it runs, so until then it holds CQ room like an op in flight; once submitted it has
    // run (a close completes inline unless the file has a flush method) and holds none.
    std::size_t detached_unsubmitted_ = 0;
    detail::op_queue waiting_bounded_;    // submitted, waiting for an SQE or a slot
    detail::op_queue waiting_unbounded_;  // ... the same for unbounded ops
    detail::op_queue in_flight_;          // in the kernel, for cancel-all at stop
    detail::op_queue completed_;          // completions made by the loop itself
    detail::cancel_queue cancels_;        // cancel requests not yet turned into SQEs
    bool stopping_ = false;               // begin_stop() ran: no new work reaches the kernel
    std::uint16_t next_buffer_group_ = 0; // allocate_buffer_group()
    unique_fd wake_fd_;                   // eventfd written by stop()
    wakeup_op wakeup_{this};

    // Written by any thread.
    std::atomic<bool> stop_requested_{false};
};

// ---------------------------------------------------------------------------------------------

inline io_context::wakeup_op::wakeup_op(io_context* c) noexcept
    : io_op(
          [](io_op* self, io_uring_sqe* sqe) noexcept {
              auto* w = static_cast<wakeup_op*>(self);
              io_uring_prep_read(sqe, w->ctx->wake_fd_.get(), &w->counter, sizeof w->counter, 0);
          },
          [](io_op* self, int, std::uint32_t) noexcept {
              auto* w = static_cast<wakeup_op*>(self);
              if (!w->ctx->stopping_) w->ctx->arm_wakeup();
          },
          duration::bounded), // it must always get a slot: stop() depends on it
      ctx(c) {}

inline io_context::io_context(options opts) {
    io_uring_params params{};
    unsigned cq = std::max(opts.cq_entries, 2 * opts.sq_entries);
    auto try_setup = [&](unsigned flags) {
        params = io_uring_params{};
        params.flags = flags | IORING_SETUP_CQSIZE;
        params.cq_entries = cq;
        return io_uring_queue_init_params(opts.sq_entries, &ring_, &params);
    };
    // Best first; each step drops what an older kernel rejects with EINVAL.
    int rc = -EINVAL;
    if (opts.try_defer_taskrun)
        rc = try_setup(IORING_SETUP_SUBMIT_ALL | IORING_SETUP_SINGLE_ISSUER |
                       IORING_SETUP_DEFER_TASKRUN);
    if (rc == -EINVAL && opts.try_coop_taskrun)
        // TASKRUN_FLAG (same kernel as COOP_TASKRUN, 5.19): the kernel flags pending task work
        // in the SQ ring, so a turn that only peeks still enters to run it (liburing checks).
        rc = try_setup(IORING_SETUP_SUBMIT_ALL | IORING_SETUP_COOP_TASKRUN |
                       IORING_SETUP_TASKRUN_FLAG);
    if (rc == -EINVAL) rc = try_setup(IORING_SETUP_SUBMIT_ALL);
    if (rc == -EINVAL) rc = try_setup(0);
    if (rc < 0) throw_errno(-rc, "io_uring_queue_init_params");

    features_.single_issuer = (params.flags & IORING_SETUP_SINGLE_ISSUER) != 0;
    features_.defer_taskrun = (params.flags & IORING_SETUP_DEFER_TASKRUN) != 0;
    features_.coop_taskrun = (params.flags & IORING_SETUP_COOP_TASKRUN) != 0;
    features_.nodrop = (params.features & IORING_FEAT_NODROP) != 0;
    features_.cqe_skip = (params.features & IORING_FEAT_CQE_SKIP) != 0;
    features_.sq_entries = params.sq_entries;
    features_.cq_entries = params.cq_entries;
    if (opts.register_ring_fd)
        features_.registered_ring_fd = io_uring_register_ring_fd(&ring_) == 1;
    capped_ = opts.cap_in_flight || !features_.nodrop;
    max_in_flight_ = params.cq_entries;
    max_unbounded_ = params.cq_entries - std::max(params.cq_entries / 4, 2u);

    wake_fd_.reset(::eventfd(0, EFD_CLOEXEC));
    if (!wake_fd_) {
        int e = errno;
        io_uring_queue_exit(&ring_);
        throw_errno(e, "eventfd");
    }
    arm_wakeup();
}

inline io_context::~io_context() {
    // Whatever still waits for the kernel must complete before the ring (and the memory the
    // kernel writes into) goes away.
    if (!stopping_) begin_stop();
    while (in_flight_count_ != 0 || !completed_.empty() || !cancels_.empty()) {
        process_cancels();
        dispatch_local_completions();
        if (in_flight_count_ == 0) continue;
        enter_kernel(1);
        reap_completions();
    }
    flush_detached(); // closes queued by the last completions
    io_uring_queue_exit(&ring_);
}

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
    op->prepare(op, sqe);
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
        op->complete(op, op->local_result, 0);
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
            op->complete(op, batch[i].res, batch[i].flags);
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

// The frame that drives run(task): awaits `main` and records that it finished.
template <class T>
struct io_context::root {
    struct promise_type {
        bool* done;
        static void* operator new(std::size_t n) { return detail::frame_allocator::allocate(n); }
        static void operator delete(void* p, std::size_t n) noexcept {
            detail::frame_allocator::deallocate(p, n);
        }
        root get_return_object() noexcept {
            return root{std::coroutine_handle<promise_type>::from_promise(*this)};
        }
        std::suspend_always initial_suspend() const noexcept { return {}; }
        struct finish {
            bool await_ready() const noexcept { return false; }
            void await_suspend(std::coroutine_handle<promise_type> h) const noexcept {
                *h.promise().done = true;
            }
            void await_resume() const noexcept {}
        };
        finish final_suspend() const noexcept { return {}; }
        void return_void() const noexcept {}
        void unhandled_exception() noexcept { error = std::current_exception(); }
        std::exception_ptr error;
    };
    std::coroutine_handle<promise_type> handle;
};

template <class T>
T io_context::run(task<T> main) {
    bool done = false;
    std::optional<std::conditional_t<std::is_void_v<T>, bool, T>> value;
    auto body = [](task<T>& t, auto& out) -> root<T> {
        if constexpr (std::is_void_v<T>) {
            co_await t;
            out.emplace(true);
        } else {
            T v = co_await t;
            out.emplace(std::move(v));
        }
    };
    root<T> r = body(main, value);
    r.handle.promise().done = &done;
    r.handle.resume();
    run_until(done);
    std::exception_ptr error = r.handle.promise().error;
    r.handle.destroy();
    if (!done) throw std::runtime_error("ringd::io_context::run: stopped before the task finished");
    if (error) std::rethrow_exception(error);
    if constexpr (!std::is_void_v<T>) return std::move(*value);
}

} // namespace ringd
