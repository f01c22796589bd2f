// SPDX-License-Identifier: MIT
// ringd/event.hpp — an event that coroutines await on the ring and that anything may set: a
// coroutine, another thread, a signal handler (set() is one write(2) to an eventfd, which is
// async-signal-safe). Two ways to wait, for the two uses daemons have:
//   take() — a wake-up: completes once the event was set since the last take(), and resets it.
//            Sets that come before the waiter are not lost, and several coalesce into one
//            ("the queue has new work: look again").
//   wait() — a latch: completes once the event is set and leaves it set, for every waiter,
//            now and later ("a stop was requested").
// Use one event either as a wake-up or as a latch, not both. A set() while the event is set
// costs no system call, so a burst of sets from completions (or signals) is one write(2).
#pragma once

#include <ringd/fd.hpp>
#include <ringd/io_context.hpp>
#include <ringd/ops.hpp>
#include <ringd/result.hpp>
#include <ringd/task.hpp>

#include <poll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdint>

namespace ringd {

class event {
public:
    // Throws std::system_error ("eventfd: ...").
    event() : fd_(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)) {
        if (!fd_) throw_errno(errno, "eventfd");
    }

    // Sets the event. Safe from any thread and from a signal handler.
    void set() noexcept {
        if (pending_.exchange(true, std::memory_order_acq_rel)) return; // set already
        std::uint64_t one = 1;
        (void)!::write(fd_.get(), &one, sizeof one);
    }

    // Waits until the event was set since the last take(), and resets it. Error:
    // operation_canceled when the awaiting coroutine's stop is requested.
    [[nodiscard]] task<result<void>> take(io_context& ctx) {
        for (;;) {
            // The flag says whether the event is set; the counter only wakes the poll. It is
            // emptied before the flag is taken, so a write emptied here belongs to a set() that
            // this take() (or an earlier one) takes: nobody polls an empty counter while the
            // flag is set, which would lose that wake-up (the next set() would not write).
            drain();
            if (pending_.exchange(false, std::memory_order_acq_rel)) co_return result<void>{};
            auto ready = co_await async_poll(ctx, fd_, POLLIN);
            if (!ready) co_return error_of(ready);
        }
    }

    // Waits until the event is set; it stays set. Error: operation_canceled as for take().
    [[nodiscard]] task<result<void>> wait(io_context& ctx) {
        while (!is_set()) {
            auto ready = co_await async_poll(ctx, fd_, POLLIN);
            if (!ready) co_return error_of(ready);
        }
        co_return result<void>{};
    }

    // Whether the event is set now (take() has not reset it since).
    [[nodiscard]] bool is_set() const noexcept { return pending_.load(std::memory_order_acquire); }

private:
    void drain() noexcept {
        std::uint64_t count = 0;
        (void)!::read(fd_.get(), &count, sizeof count);
    }

    unique_fd fd_;                     // the eventfd: readable once a set() wrote to it
    std::atomic<bool> pending_{false}; // set and not yet taken; the one writer of fd_ is the
                                       // set() that turns it true
};

} // namespace ringd
