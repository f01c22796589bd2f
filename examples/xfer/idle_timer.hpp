// SPDX-License-Identifier: MIT
// xfer/idle_timer.hpp — ends a connection whose peer is too slow, measured over windows of the
// idle limit: a request line (or a TLS handshake) must be complete within one window, and a
// body must arrive at min_rate bytes per second, window after window. A peer that sends nothing
// is dropped after one window whatever it was doing, and so is a slowloris that trickles a byte
// now and then: a gap between bytes no longer restarts the clock.
// Only time spent waiting for the peer counts: a long fsync on our side is not the peer's
// slowness. When it fires it shuts the socket's read side, so the pending (or next) read
// returns EOF and the receiver, seeing expired(), can still answer "ERR 400 ..." before it closes.
#pragma once

#include <ringd/fd.hpp>
#include <ringd/io_context.hpp>
#include <ringd/task.hpp>
#include <ringd/timer.hpp>

#include <sys/socket.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <string>

namespace xfer {

class idle_timer {
public:
    using clock = std::chrono::steady_clock;

    // `limit`: the window; `min_rate`: bytes per second a body must keep up (0: one byte per
    // window is enough).
    explicit idle_timer(std::chrono::milliseconds limit, std::uint64_t min_rate = 0) noexcept
        : limit_(limit), min_rate_(min_rate) {}

    // What the peer owes from now on: a complete line within one window (also the handshake
    // and a final drain), or a body at the minimum rate. Each starts a fresh window.
    void expect_line() noexcept { start(false); }
    void expect_body() noexcept { start(true); }

    // Around every read from the peer; received() counts what it brought.
    void begin_wait() noexcept {
        waiting_ = true;
        since_ = clock::now();
    }
    void end_wait() noexcept {
        if (!waiting_) return;
        waiting_ = false;
        waited_ += clock::now() - since_;
    }
    void received(std::size_t n) noexcept { bytes_ += n; }

    [[nodiscard]] bool expired() const noexcept { return expired_; }
    [[nodiscard]] std::chrono::milliseconds limit() const noexcept { return limit_; }
    // Why it expired, for the ERR line: "idle for 1000 ms", "request line not complete in
    // 1000 ms", or for a body that came too slowly "12 bytes in 1000 ms, below the minimum of
    // 1024 bytes/s".
    [[nodiscard]] std::string reason() const {
        std::string window = std::to_string(limit_.count()) + " ms";
        if (bytes_ == 0) return "idle for " + window;
        if (!body_) return "request line not complete in " + window;
        return std::to_string(bytes_) + " bytes in " + window + ", below the minimum of " +
               std::to_string(min_rate_) + " bytes/s";
    }

    // Runs until cancelled (spawn it beside the connection and stop it when the connection ends),
    // or until the peer owes more than it gave: then shuts down reads on `socket`.
    ringd::task<void> watch(ringd::io_context& ctx, ringd::borrowed_fd socket) {
        for (;;) {
            // Not waiting: look again after a quarter of the limit, so a wait that begins in
            // between is caught at most limit/4 late.
            clock::time_point deadline =
                waiting_ ? since_ + (limit_ - waited_) : clock::now() + limit_ / 4;
            auto slept = co_await ringd::sleep_until(ctx, deadline);
            if (!slept) co_return; // cancelled: the connection ended
            if (waited() < limit_) continue;
            if (body_ && bytes_ >= owed()) { // kept up: the next window
                waited_ = {};
                bytes_ = 0;
                if (waiting_) since_ = clock::now();
                continue;
            }
            expired_ = true;
            ::shutdown(socket.get(), SHUT_RD);
            co_return;
        }
    }

private:
    void start(bool body) noexcept {
        body_ = body;
        waited_ = {};
        bytes_ = 0;
        if (waiting_) since_ = clock::now();
    }
    [[nodiscard]] clock::duration waited() const noexcept {
        return waited_ + (waiting_ ? clock::now() - since_ : clock::duration{});
    }
    // Bytes a body owes per window: min_rate × window, at least one.
    [[nodiscard]] std::uint64_t owed() const noexcept {
        return std::max<std::uint64_t>(1, min_rate_ * static_cast<std::uint64_t>(limit_.count()) /
                                              1000);
    }

    std::chrono::milliseconds limit_; // the window
    std::uint64_t min_rate_;          // bytes/s a body must keep up
    clock::time_point since_{};       // when the current wait began
    clock::duration waited_{};        // waiting time in this window before the current wait
    std::uint64_t bytes_ = 0;         // received in this window
    bool waiting_ = false;            // a read from the peer is pending
    bool body_ = false;               // a body (rate) rather than a line (deadline)
    bool expired_ = false;            // the peer fell behind and reads were shut down
};

} // namespace xfer
