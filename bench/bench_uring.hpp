// SPDX-License-Identifier: MIT
// bench_uring.hpp — the io_uring plumbing the raw-liburing benchmark programs share
// (accept_raw_uring, echo_raw_uring, echo_load): a ring set up with the best task-run mode the
// kernel accepts, an SQE that never fails, and the reap loop. Plain liburing: no ringd header is
// involved.
#pragma once

#include "bench_common.hpp"

#include <liburing.h>

namespace bench {

// One ring, set up with the best task-run mode the kernel accepts. Used by one thread only.
class ring {
public:
    // `prog` names the program in the fallback notes on stderr; `cq_entries` 0 = twice the SQ.
    ring(std::string_view prog, unsigned sq_entries, unsigned cq_entries = 0) {
        // Newest first. SINGLE_ISSUER|DEFER_TASKRUN (6.1): completions run only when we enter
        // the kernel to wait, with no IPIs; COOP_TASKRUN (5.19): no forced interrupts.
        static constexpr struct {
            unsigned flags;
            const char* name;
        } modes[] = {
            {IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN, nullptr},
            {IORING_SETUP_COOP_TASKRUN, "COOP_TASKRUN (no DEFER_TASKRUN)"},
            {0, "plain ring (no COOP_TASKRUN)"},
        };
        int rc = -EINVAL;
        for (const auto& mode : modes) {
            io_uring_params p{};
            p.flags = mode.flags | (cq_entries != 0 ? IORING_SETUP_CQSIZE : 0);
            p.cq_entries = cq_entries;
            rc = io_uring_queue_init_params(sq_entries, &ring_, &p);
            if (rc == 0) {
                features_ = p.features;
                if (mode.name != nullptr)
                    std::fprintf(stderr, "%.*s: falling back to %s\n", int(prog.size()),
                                 prog.data(), mode.name);
                break;
            }
            if (rc != -EINVAL) break;
        }
        if (rc < 0) throw sys_error(-rc, "io_uring_queue_init_params");
        // Saves an fget/fput per io_uring_enter; optional (5.18+), so failure is fine.
        (void)io_uring_register_ring_fd(&ring_);
    }
    ring(const ring&) = delete;
    ring& operator=(const ring&) = delete;
    ~ring() { io_uring_queue_exit(&ring_); }

    io_uring* get() noexcept { return &ring_; }
    [[nodiscard]] bool has_feature(unsigned f) const noexcept { return (features_ & f) != 0; }

    // A free SQE; when the SQ is full, submits what is queued and takes one from the space made.
    io_uring_sqe* sqe() {
        while (true) {
            if (io_uring_sqe* s = io_uring_get_sqe(&ring_)) return s;
            if (int rc = io_uring_submit(&ring_); rc < 0 && rc != -EINTR && rc != -EBUSY)
                throw sys_error(-rc, "io_uring_submit");
        }
    }

    // Submits what is queued and waits for at least one CQE (or until `timeout`, when given),
    // then calls on_cqe(const io_uring_cqe&) for every CQE ready and marks them seen.
    // EINTR, and EBUSY/EAGAIN (a CQ overflow backlog, which the reap clears) are not errors.
    template <class F>
    void wait_and_reap(F&& on_cqe, __kernel_timespec* timeout = nullptr) {
        io_uring_cqe* first;
        int rc = timeout ? io_uring_submit_and_wait_timeout(&ring_, &first, 1, timeout, nullptr)
                         : io_uring_submit_and_wait(&ring_, 1);
        if (rc < 0 && rc != -ETIME && rc != -EINTR && rc != -EBUSY && rc != -EAGAIN)
            throw sys_error(-rc, "io_uring_submit_and_wait");
        unsigned head;
        unsigned seen = 0;
        io_uring_cqe* cqe;
        io_uring_for_each_cqe(&ring_, head, cqe) {
            ++seen;
            on_cqe(*cqe);
        }
        io_uring_cq_advance(&ring_, seen);
    }

private:
    io_uring ring_{};       // the liburing state
    unsigned features_ = 0; // IORING_FEAT_* the kernel reported
};

} // namespace bench
