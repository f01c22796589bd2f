// SPDX-License-Identifier: MIT
// accept_raw_uring — the accept benchmark's io_uring baseline: plain liburing, no framework, as
// fast as an accept-and-close loop can be made. ringd's own server is measured against this.
//
// What makes it fast: one multishot accept per listener (one SQE, a CQE per connection); CQEs
// reaped in batches; SINGLE_ISSUER|DEFER_TASKRUN so completions are only run when this thread
// enters the kernel anyway; a registered ring fd (no fdget per io_uring_enter); closes queued on
// the ring with IOSQE_CQE_SKIP_SUCCESS, so they ride along with the next submit-and-wait and
// post no CQE.
//
// The close variant was measured (RAW_URING_CLOSE=ring|sync|direct in the environment selects
// it, for A/B runs with run_accept.sh; 2 cores, 31 interleaved rounds, paired per round):
// close(2) per connection cost a median 5% (quartiles -1%, +10%) more server CPU per accept than
// the ring close (under load the ring reaps ~25 accepts per io_uring_enter, and the ring close
// adds no system call to that);
// direct descriptors (accept into the fixed-file table, close the slot) were no better than the
// ring close (median ratio 1.00) and would hide the fd-table work every real server pays. So the
// default is the ring close.
//
// Usage: see bench_server_common.hpp.
#include "bench_server_common.hpp"
#include "bench_uring.hpp"

#include <poll.h>
#include <sys/resource.h>

#include <cstdlib>

namespace {

// user_data tags: every CQE says what it completes. Accepted fds travel in cqe->res instead.
enum tag : std::uint64_t {
    tag_accept = 1,  // the (multishot) accept
    tag_stop = 2,    // poll on the stop eventfd
    tag_backoff = 3, // timeout after EMFILE/ENFILE and friends
    tag_close = 4,   // close of an accepted fd; only failures post a CQE, and they are ignored
    tag_cancel = 5,  // cancel requests issued at shutdown
};

// How an accepted connection is closed.
enum class close_mode {
    ring,   // IORING_OP_CLOSE on the ring, batched with the next submit
    sync,   // close(2) right away: one syscall per connection
    direct, // accept into the ring's fixed-file table, IORING_OP_CLOSE on the slot: the
            // connection never enters the process fd table
};

constexpr unsigned sq_entries = 256;
// CQ room for bursts of accept CQEs between two reaps. Overflow would still be safe (the kernel
// keeps overflowed CQEs, NODROP, and ends the multishot, which is then re-armed), only slower.
constexpr unsigned cq_entries = 4096;
// Fixed-file table for close_mode::direct: slots live only between an accept CQE and the close
// queued in the same reap, so a CQ's worth is plenty; a full table is ENFILE, i.e. backoff.
constexpr unsigned direct_slots = cq_entries;

// RAW_URING_CLOSE: unset or "ring" (the default, measured fastest), "sync" or "direct".
std::optional<close_mode> close_mode_from_env() {
    const char* v = std::getenv("RAW_URING_CLOSE");
    if (v == nullptr || std::string_view(v) == "ring") return close_mode::ring;
    if (std::string_view(v) == "sync") return close_mode::sync;
    if (std::string_view(v) == "direct") return close_mode::direct;
    return std::nullopt;
}

// The accept loop of one thread: everything below runs on that thread only.
class acceptor {
public:
    acceptor(bench::worker_context& ctx, close_mode mode) : ctx_(ctx), mode_(mode) {
        if (mode_ == close_mode::direct) {
            // The kernel caps the table at RLIMIT_NOFILE.
            rlimit nofile{};
            unsigned slots = direct_slots;
            if (::getrlimit(RLIMIT_NOFILE, &nofile) == 0 && nofile.rlim_cur < slots)
                slots = static_cast<unsigned>(nofile.rlim_cur);
            if (int rc = io_uring_register_files_sparse(ring_.get(), slots); rc < 0)
                throw bench::sys_error(-rc, "io_uring_register_files_sparse");
        }
        // Without CQE_SKIP (pre-5.17) the close CQEs come back tagged and are just dropped.
        close_flags_ = ring_.has_feature(IORING_FEAT_CQE_SKIP) ? IOSQE_CQE_SKIP_SUCCESS : 0;
    }

    std::uint64_t run() {
        arm_accept();
        io_uring_sqe* s = ring_.sqe();
        io_uring_prep_poll_add(s, ctx_.stop_fd, POLLIN);
        io_uring_sqe_set_data64(s, tag_stop);
        stop_armed_ = true;

        // Until shutdown has drained every op that will post a CQE (closes complete inline
        // during submit, so nothing of theirs is left in flight).
        while (accept_armed_ || stop_armed_ || backoff_armed_ || cancels_ > 0)
            ring_.wait_and_reap([this](const io_uring_cqe& cqe) { complete(cqe); });
        // The last reap may have queued closes; they must run before the ring goes away.
        io_uring_submit(ring_.get());
        return accepted_;
    }

private:
    void complete(const io_uring_cqe& cqe) {
        switch (io_uring_cqe_get_data64(&cqe)) {
        case tag_accept:
            if (cqe.res >= 0) {
                ++accepted_;
                ++accepted_since_arm_;
                close_accepted(cqe.res);
            }
            if ((cqe.flags & IORING_CQE_F_MORE) == 0) {
                accept_armed_ = false;
                if (cqe.res < 0)
                    accept_failed(-cqe.res);
                else if (!stopping_)
                    arm_accept(); // multishot ended (e.g. CQ overflow)
            }
            break;
        case tag_backoff:
            backoff_armed_ = false;
            if (!stopping_) arm_accept();
            break;
        case tag_stop:
            stop_armed_ = false;
            begin_stop();
            break;
        case tag_cancel:
            --cancels_;
            break;
        default: // tag_close: a failed close (the fd is released anyway; never retried)
            break;
        }
    }

    void arm_accept() {
        io_uring_sqe* s = ring_.sqe();
        int fd = ctx_.listener.get();
        if (mode_ == close_mode::direct) {
            if (multishot_)
                io_uring_prep_multishot_accept_direct(s, fd, nullptr, nullptr, 0);
            else
                // liburing 2.3 stores file_index + 1 as is; ALLOC - 1 becomes the ALLOC marker
                // (later liburings do this adjustment themselves).
                io_uring_prep_accept_direct(s, fd, nullptr, nullptr, 0,
                                            IORING_FILE_INDEX_ALLOC - 1);
        } else {
            if (multishot_)
                io_uring_prep_multishot_accept(s, fd, nullptr, nullptr, SOCK_CLOEXEC);
            else
                io_uring_prep_accept(s, fd, nullptr, nullptr, SOCK_CLOEXEC);
        }
        io_uring_sqe_set_data64(s, tag_accept);
        accept_armed_ = true;
        accepted_since_arm_ = 0;
    }

    void close_accepted(int fd_or_slot) {
        if (mode_ == close_mode::sync) {
            ::close(fd_or_slot);
            return;
        }
        io_uring_sqe* s = ring_.sqe();
        if (mode_ == close_mode::direct)
            io_uring_prep_close_direct(s, static_cast<unsigned>(fd_or_slot));
        else
            io_uring_prep_close(s, fd_or_slot);
        s->flags |= close_flags_;
        io_uring_sqe_set_data64(s, tag_close);
    }

    void accept_failed(int err) {
        if (stopping_ && err == ECANCELED) return;
        switch (err) {
        case EINVAL:
            // A kernel without multishot accept (< 5.19) rejects the request: use one-shot
            // accepts, re-armed after every connection. EINVAL again is a real error.
            if (!multishot_) break;
            multishot_ = false;
            if (!stopping_) arm_accept();
            return;
        case EMFILE: // out of descriptors (process, system, or fixed-file slots)
        case ENFILE:
        case ENOBUFS:
        case ENOMEM: {
            if (stopping_) return;
            // A multishot accept takes the whole queue in one go, so it runs out of descriptors
            // before the closes of its own connections (queued while reaping) have run. Those
            // closes go out with the next submit, ahead of a new accept: if this accept got any
            // connections, re-arm at once (each re-arm follows progress, so this cannot spin).
            if (accepted_since_arm_ > 0) {
                arm_accept();
                return;
            }
            io_uring_sqe* s = ring_.sqe();
            io_uring_prep_timeout(s, &backoff_delay_, 0, 0);
            io_uring_sqe_set_data64(s, tag_backoff);
            backoff_armed_ = true;
            return;
        }
        case ECONNABORTED: // the peer gave up while queued: not our problem
        case EINTR:
        case EAGAIN:
        case ECANCELED:
            if (!stopping_) arm_accept();
            return;
        default:
            break;
        }
        throw bench::sys_error(err, "accept");
    }

    // Stop taking connections: cancel the accept (its final CQE still arrives and may carry
    // connections, which are counted and closed) and any backoff, then drain.
    void begin_stop() {
        stopping_ = true;
        for (tag t : {tag_accept, tag_backoff}) {
            if (t == tag_accept ? !accept_armed_ : !backoff_armed_) continue;
            io_uring_sqe* s = ring_.sqe();
            io_uring_prep_cancel64(s, t, 0);
            io_uring_sqe_set_data64(s, tag_cancel);
            ++cancels_;
        }
    }

    // Data: all of it written by this thread only.
    bench::worker_context& ctx_;                                   // listener and stop fd
    bench::ring ring_{"accept_raw_uring", sq_entries, cq_entries}; // this thread's ring
    close_mode mode_;            // how accepted connections are closed
    unsigned close_flags_ = 0;   // IOSQE_CQE_SKIP_SUCCESS when the kernel has it
    bool multishot_ = true;      // false once the kernel refused multishot accept
    bool accept_armed_ = false;  // an accept is in flight (its last CQE lacks F_MORE)
    bool stop_armed_ = false;    // the stop poll is in flight
    bool backoff_armed_ = false; // the EMFILE backoff timeout is in flight
    bool stopping_ = false;      // stop seen: re-arm nothing
    unsigned cancels_ = 0;       // cancel requests in flight
    // After EMFILE and the like the accept is re-armed only after this pause: retrying at once
    // would fail again at once (a busy loop); the condition clears only as descriptors close.
    __kernel_timespec backoff_delay_{.tv_sec = 0, .tv_nsec = 10'000'000};
    std::uint64_t accepted_ = 0;           // connections accepted (and closed)
    std::uint64_t accepted_since_arm_ = 0; // by the accept in flight: 0 at EMFILE = back off
};

} // namespace

int main(int argc, char** argv) {
    std::optional<close_mode> mode = close_mode_from_env();
    if (!mode) {
        std::fprintf(stderr,
                     "accept_raw_uring: bad RAW_URING_CLOSE '%s': expected ring, sync or "
                     "direct\n",
                     std::getenv("RAW_URING_CLOSE"));
        return bench::exit_usage;
    }
    return bench::run_server("accept_raw_uring", argc, argv, /*nonblocking_listener=*/false,
                             [mode = *mode](bench::worker_context& ctx) {
                                 acceptor a(ctx, mode);
                                 return a.run();
                             });
}
