// SPDX-License-Identifier: MIT
// xfer/plain_stream.hpp — a connected socket with the same read/write/shutdown shape as
// ringd::tls_stream, so that one receiver coroutine serves TCP, UNIX and TLS connections.
#pragma once

#include <ringd/fd.hpp>
#include <ringd/io_context.hpp>
#include <ringd/ops.hpp>
#include <ringd/result.hpp>
#include <ringd/task.hpp>

#include <sys/socket.h>

#include <cstddef>
#include <span>

namespace xfer {

class plain_stream {
public:
    plain_stream(ringd::io_context& ctx, ringd::unique_fd socket) noexcept
        : ctx_(&ctx), socket_(std::move(socket)) {}

    // Up to data.size() bytes; 0 when the peer has closed its end. Errors: recv's, cancelled.
    ringd::task<ringd::result<std::size_t>> read(std::span<std::byte> data) {
        auto n = co_await ringd::async_recv(*ctx_, socket_, data);
        co_return n;
    }

    // All of `data`, or the error that stopped it (EPIPE, ECONNRESET, cancelled).
    ringd::task<ringd::result<std::size_t>> write(std::span<const std::byte> data) {
        std::size_t done = 0;
        while (done < data.size()) {
            auto n = co_await ringd::async_send(*ctx_, socket_, data.subspan(done));
            if (!n) co_return ringd::error_of(n);
            done += *n;
        }
        co_return done;
    }

    // Ends our direction (the peer reads EOF after what was written); reads stay possible.
    ringd::task<ringd::result<void>> shutdown() {
        if (::shutdown(socket_.get(), SHUT_WR) != 0) co_return ringd::last_error();
        co_return ringd::result<void>{};
    }

    [[nodiscard]] ringd::borrowed_fd socket() const noexcept { return socket_; }

private:
    ringd::io_context* ctx_;  // the ring
    ringd::unique_fd socket_; // the connection
};

} // namespace xfer
