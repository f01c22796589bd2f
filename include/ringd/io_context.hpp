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
    struct wakeup_op : detail::ring_op<wakeup_op> {
        explicit wakeup_op(io_context* c) noexcept;
        void prepare(io_uring_sqe* sqe) noexcept;
        void complete(int res, std::uint32_t flags) noexcept;
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

// The implementation.
#include <ringd/detail/io_context_loop.hpp>
#include <ringd/detail/io_context_setup.hpp>
