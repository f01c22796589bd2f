// SPDX-License-Identifier: MIT
// ringd/event.hpp — an event that coroutines await on the ring and that anything may set: a
// coroutine, another thread, a signal handler (set() is one write(2) to an eventfd, which is
// async-signal-safe). Two ways to wait, for the two uses daemons have:
//   take() — a wake-up: completes once the event was set since the last take(), and resets it.
//            Sets that come before the waiter are not lost, and several coalesce into one
//            ("the queue has new work: look again").
//   wait() — a latch: completes once the event is set and leaves it set, for every waiter,
//            now and later ("a stop was requested").
#pragma once

#include <ringd/fd.hpp>
#include <ringd/io_context.hpp>
#include <ringd/ops.hpp>
#include <ringd/result.hpp>
#include <ringd/task.hpp>

#include <poll.h>
#include <sys/eventfd.h>
#include <unistd.h>

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
        std::uint64_t one = 1;
        (void)!::write(fd_.get(), &one, sizeof one);
    }

    // Waits until the event was set since the last take(), and resets it. Error:
    // operation_canceled when the awaiting coroutine's stop is requested.
    [[nodiscard]] task<result<void>> take(io_context& ctx) {
        for (;;) {
            std::uint64_t count = 0;
            if (::read(fd_.get(), &count, sizeof count) == static_cast<ssize_t>(sizeof count))
                co_return result<void>{};
            auto ready = co_await async_poll(ctx, fd_, POLLIN);
            if (!ready) co_return error_of(ready);
        }
    }

    // Waits until the event is set; it stays set. Error: operation_canceled as for take().
    [[nodiscard]] task<result<void>> wait(io_context& ctx) {
        if (is_set()) co_return result<void>{};
        auto ready = co_await async_poll(ctx, fd_, POLLIN);
        if (!ready) co_return error_of(ready);
        co_return result<void>{};
    }

    // Whether the event is set now (take() has not reset it since).
    [[nodiscard]] bool is_set() const noexcept {
        pollfd p{fd_.get(), POLLIN, 0};
        return ::poll(&p, 1, 0) == 1;
    }

private:
    unique_fd fd_; // the eventfd's counter: nonzero while set
};

} // namespace ringd
