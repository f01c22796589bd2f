// SPDX-License-Identifier: MIT
// xfer/wake_event.hpp — a one-shot event that a coroutine can wait for on the ring (an eventfd):
// "every child has stopped", "the sender has new work".
#pragma once

#include <ringd/fd.hpp>
#include <ringd/io_context.hpp>
#include <ringd/ops.hpp>
#include <ringd/result.hpp>
#include <ringd/task.hpp>

#include <poll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <cstdint>

namespace xfer {

class wake_event {
public:
    // Throws std::system_error ("eventfd: ...") at setup.
    wake_event() : fd_(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)) {
        if (!fd_) ringd::throw_errno(errno, "eventfd");
    }

    void set() noexcept {
        std::uint64_t one = 1;
        (void)::write(fd_.get(), &one, sizeof one);
    }

    // Completes once set() was called since the last wait (and resets). Errors: cancelled.
    ringd::task<ringd::result<void>> wait(ringd::io_context& ctx) {
        for (;;) {
            std::uint64_t count = 0;
            if (::read(fd_.get(), &count, sizeof count) == static_cast<ssize_t>(sizeof count))
                co_return ringd::result<void>{};
            auto ready = co_await ringd::async_poll(ctx, fd_, POLLIN);
            if (!ready) co_return ringd::unexpected<std::error_code>(ready.error());
        }
    }

private:
    ringd::unique_fd fd_; // the counter
};

} // namespace xfer
