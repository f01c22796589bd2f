// SPDX-License-Identifier: MIT
// ringd/detail/io_context_setup.hpp — io_context (io_context.hpp) made and unmade: the ring set
// up with the best flags this kernel takes (each refused one dropped in turn), the features
// probed, the wake-up eventfd armed; and the teardown that waits out every op still in the
// kernel before the ring's memory goes.
#pragma once

#include <ringd/io_context.hpp>

#include <sys/eventfd.h>

#include <algorithm>

namespace ringd {
// Bounded: it must always get a slot, for stop() depends on it.
inline io_context::wakeup_op::wakeup_op(io_context* c) noexcept
    : ring_op(duration::bounded), ctx(c) {}

inline void io_context::wakeup_op::prepare(io_uring_sqe* sqe) noexcept {
    io_uring_prep_read(sqe, ctx->wake_fd_.get(), &counter, sizeof counter, 0);
}

inline void io_context::wakeup_op::complete(int, std::uint32_t) noexcept {
    if (!ctx->stopping_) ctx->arm_wakeup();
}

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

} // namespace ringd
