// xfer/idle_timer.hpp — ends a connection whose peer has sent nothing for too long.
// Only time spent waiting for the peer counts: a long fsync on our side is not the peer's idling.
// When it fires it shuts the socket's read side, so the pending (or next) read returns EOF and
// the receiver, seeing expired(), can still answer "ERR 400 idle ..." before it closes.
#pragma once

#include <ringd/fd.hpp>
#include <ringd/io_context.hpp>
#include <ringd/task.hpp>
#include <ringd/timer.hpp>

#include <sys/socket.h>

#include <chrono>

namespace xfer {

class idle_timer {
public:
    using clock = std::chrono::steady_clock;

    explicit idle_timer(std::chrono::milliseconds limit) noexcept : limit_(limit) {}

    // Around every read from the peer.
    void begin_wait() noexcept {
        waiting_ = true;
        since_ = clock::now();
    }
    void end_wait() noexcept { waiting_ = false; }

    [[nodiscard]] bool expired() const noexcept { return expired_; }
    [[nodiscard]] std::chrono::milliseconds limit() const noexcept { return limit_; }

    // Runs until cancelled (spawn it beside the connection and stop it when the connection ends),
    // or until the peer has idled for the limit: then shuts down reads on `socket`.
    ringd::task<void> watch(ringd::io_context& ctx, ringd::borrowed_fd socket) {
        for (;;) {
            // Not waiting: look again after a quarter of the limit, so a wait that begins in
            // between is caught at most limit/4 late.
            clock::time_point deadline = waiting_ ? since_ + limit_ : clock::now() + limit_ / 4;
            auto slept = co_await ringd::sleep_until(ctx, deadline);
            if (!slept) co_return; // cancelled: the connection ended
            if (waiting_ && clock::now() - since_ >= limit_) {
                expired_ = true;
                ::shutdown(socket.get(), SHUT_RD);
                co_return;
            }
        }
    }

private:
    std::chrono::milliseconds limit_; // how long the peer may stay silent
    clock::time_point since_{};       // when the current wait began
    bool waiting_ = false;            // a read from the peer is pending
    bool expired_ = false;            // the limit was hit and reads were shut down
};

} // namespace xfer
