// SPDX-License-Identifier: MIT
// ringd/detail/process_wait.hpp — waiting for a process to end, on the ring. IORING_OP_WAITID
// (Linux 6.7) where the kernel has it; else poll the pidfd, then waitid(P_PIDFD, WNOHANG). A
// process that is not our child (adopted after a restart) can only be polled: it ends unreaped
// by us and its status is unknown.
#pragma once

#include <ringd/detail/io_op.hpp>
#include <ringd/io_context.hpp>

#include <liburing.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>

#include <cerrno>
#include <cstdint>
#include <cstring>
#include <memory>

namespace ringd::detail {

inline constexpr std::uint8_t process_op_waitid = 50; // IORING_OP_WAITID; liburing 2.3 lacks it

// Whether this kernel's io_uring knows IORING_OP_WAITID (probed once per process).
inline bool process_waitid_op_supported() noexcept {
    static const bool supported = [] {
        io_uring_probe* probe = io_uring_get_probe();
        if (probe == nullptr) return false;
        const bool yes = io_uring_opcode_supported(probe, process_op_waitid) != 0;
        io_uring_free_probe(probe);
        return yes;
    }();
    return supported;
}

// One wait for the end of the process behind a pidfd. Derived provides
//   void on_process_end(int error, const siginfo_t& info) noexcept;
// error is 0 (info.si_pid == 0 when the process was not our child: status unknown) or a
// positive errno (ECANCELED after cancel()). With `reap` false the child is left a zombie
// (WNOWAIT): its pid, and so its process group, cannot be recycled until someone reaps it.
template <class Derived>
class process_exit_watch : private ring_op<process_exit_watch<Derived>> {
public:
    process_exit_watch() noexcept = default;

    // Starts the wait. The pidfd must stay open until on_process_end has been called.
    // waitid_op: use IORING_OP_WAITID (for a child only; the caller probed the kernel).
    void start(io_context& ctx, int pidfd, bool is_child, bool reap, bool waitid_op) noexcept {
        ctx_ = &ctx;
        pidfd_ = pidfd;
        is_child_ = is_child;
        reap_ = reap;
        use_waitid_op_ = is_child && waitid_op;
        std::memset(&info_, 0, sizeof info_);
        active_ = true;
        ctx.submit(this);
    }
    // Asks for an early end: on_process_end follows with ECANCELED (or with the exit, if it
    // won the race). Loop thread only.
    void cancel() noexcept {
        if (active_) ctx_->cancel(this);
    }
    // Between start() and the call of on_process_end.
    [[nodiscard]] bool active() const noexcept { return active_; }

private:
    friend class ring_op<process_exit_watch>;

    void prepare(io_uring_sqe* sqe) noexcept {
        if (use_waitid_op_) {
            // io_uring_prep_waitid(sqe, P_PIDFD, pidfd, &info, options, 0), by hand.
            io_uring_prep_rw(process_op_waitid, sqe, pidfd_, nullptr, P_PIDFD, 0);
            sqe->file_index = static_cast<std::uint32_t>(wait_options());
            sqe->addr2 = reinterpret_cast<std::uintptr_t>(&info_);
        } else {
            io_uring_prep_poll_add(sqe, pidfd_, POLLIN);
        }
    }

    void complete(int res, std::uint32_t) noexcept {
        if (use_waitid_op_) {
            if (res == -EINVAL || res == -EOPNOTSUPP) {
                use_waitid_op_ = false; // an opcode the ring refused: poll instead
                return ctx_->submit(this);
            }
            if (res == -ECHILD) return finish_unknown(); // someone else reaped it
            return finish(res < 0 ? -res : 0);
        }
        if (res < 0) return finish(-res);
        if (!is_child_) return finish_unknown(); // not ours to wait for
        std::memset(&info_, 0, sizeof info_);
        if (::waitid(P_PIDFD, static_cast<id_t>(pidfd_), &info_, wait_options() | WNOHANG) != 0) {
            if (errno == ECHILD) return finish_unknown(); // someone else reaped it
            return finish(errno);
        }
        if (info_.si_pid == 0) return ctx_->submit(this); // woken early: wait again
        finish(0);
    }

    int wait_options() const noexcept { return WEXITED | (reap_ ? 0 : WNOWAIT); }

    void finish_unknown() noexcept {
        std::memset(&info_, 0, sizeof info_);
        finish(0);
    }
    void finish(int error) noexcept {
        active_ = false;
        static_cast<Derived*>(this)->on_process_end(error, info_);
    }

    io_context* ctx_ = nullptr;  // the ring the wait runs on
    int pidfd_ = -1;             // not owned
    bool is_child_ = false;      // we may waitid() it
    bool reap_ = true;           // false: WNOWAIT
    bool use_waitid_op_ = false; // IORING_OP_WAITID, else poll + waitid
    bool active_ = false;        // started and not finished
    siginfo_t info_{};           // written by the kernel (WAITID) or by waitid()
};

} // namespace ringd::detail
