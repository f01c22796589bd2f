// SPDX-License-Identifier: MIT
// ringd/signals.hpp — signals as events on the ring (signalfd), never as handlers.
// The signals are blocked so they queue on the signalfd; a daemon's SIGHUP means reload and
// SIGTERM/SIGINT mean stop. Children must start with a clean mask: reset_signals_for_exec().
#pragma once

#include <ringd/detail/exec_signals.hpp> // reset_signals_for_exec()
#include <ringd/fd.hpp>
#include <ringd/io_context.hpp>
#include <ringd/ops.hpp>
#include <ringd/result.hpp>
#include <ringd/task.hpp>

#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <sys/signalfd.h>

#include <initializer_list>

namespace ringd {

struct signal_info {
    int number = 0;   // SIGHUP, SIGTERM, ...
    pid_t sender = 0; // ssi_pid: who sent it (kill/sigqueue), 0 for the kernel
    uid_t sender_uid = 0;
    int code = 0;  // ssi_code: SI_USER (kill), SI_QUEUE (sigqueue), SI_KERNEL ...
    int value = 0; // ssi_int: the value sent with sigqueue (SI_QUEUE), else 0
};

// Blocks `signals` in the calling thread; threads created afterwards inherit the mask. Call it
// in main() before starting any thread, so that no thread takes these signals the old way.
// Throws std::system_error on failure.
inline void block_signals(std::initializer_list<int> signals) {
    sigset_t set;
    sigemptyset(&set);
    for (int s : signals) sigaddset(&set, s);
    if (int e = ::pthread_sigmask(SIG_BLOCK, &set, nullptr); e != 0)
        throw_errno(e, "pthread_sigmask");
}

// A set of signals read through the ring.
class signal_set {
public:
    // Blocks the signals (in this thread) and opens a signalfd for them. Throws
    // std::system_error ("signalfd: ...") on failure.
    signal_set(io_context& ctx, std::initializer_list<int> signals)
        : signal_set(ctx, mask_of(signals)) {}
    // The same for a set built otherwise (every signal a container init forwards, say).
    signal_set(io_context& ctx, const sigset_t& signals) : ctx_(&ctx), set_(signals) {
        if (int e = ::pthread_sigmask(SIG_BLOCK, &set_, nullptr); e != 0)
            throw_errno(e, "pthread_sigmask");
        fd_.reset(::signalfd(-1, &set_, SFD_CLOEXEC | SFD_NONBLOCK));
        if (!fd_) throw_errno(errno, "signalfd");
    }

    // Waits for the next signal of the set. Errors: operation_canceled on stop, or read's error.
    task<result<signal_info>> next() {
        for (;;) {
            signalfd_siginfo si;
            ssize_t n = ::read(fd_.get(), &si, sizeof si);
            if (n == static_cast<ssize_t>(sizeof si))
                co_return signal_info{static_cast<int>(si.ssi_signo),
                                      static_cast<pid_t>(si.ssi_pid), si.ssi_uid, si.ssi_code,
                                      si.ssi_int};
            if (n < 0 && errno != EAGAIN && errno != EINTR) co_return last_error();
            // Nothing queued: wait for readability on the ring (no thread, no handler).
            auto ready = co_await async_poll(*ctx_, fd_, POLLIN);
            if (!ready) co_return error_of(ready);
        }
    }

    [[nodiscard]] borrowed_fd fd() const noexcept { return fd_; }

private:
    static sigset_t mask_of(std::initializer_list<int> signals) noexcept {
        sigset_t set;
        sigemptyset(&set);
        for (int s : signals) sigaddset(&set, s);
        return set;
    }

    io_context* ctx_;
    sigset_t set_; // the signals we read
    unique_fd fd_; // the signalfd
};

// What a daemon's lifecycle signals mean.
enum class lifecycle_event { reload, stop };

// SIGHUP → reload, SIGTERM and SIGINT → stop. The daemon-shaped use of signal_set:
//     for (;;) { auto ev = co_await signals.next(); if (*ev == lifecycle_event::stop) break; ... }
class lifecycle_signals {
public:
    explicit lifecycle_signals(io_context& ctx) : set_(ctx, {SIGHUP, SIGTERM, SIGINT}) {}

    task<result<lifecycle_event>> next() {
        auto s = co_await set_.next();
        if (!s) co_return error_of(s);
        last_ = *s;
        co_return s->number == SIGHUP ? lifecycle_event::reload : lifecycle_event::stop;
    }

    // The signal behind the last event next() returned (who sent it, a sigqueue value).
    [[nodiscard]] const signal_info& last() const noexcept { return last_; }

private:
    signal_set set_;
    signal_info last_;
};

} // namespace ringd
