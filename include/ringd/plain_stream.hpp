// SPDX-License-Identifier: MIT
// ringd/plain_stream.hpp — a connected TCP or UNIX socket as a byte_stream (stream.hpp): the
// same read/write/shutdown as tls_stream, so that one coroutine serves both.
//
//   ringd::plain_stream s(ctx, std::move(fd));
//   auto n = co_await s.read(buf);     // result<size_t>; 0: the peer has closed its end
//   auto w = co_await s.write(bytes);  // all of it, or the error
#pragma once

#include <ringd/fd.hpp>
#include <ringd/io_context.hpp>
#include <ringd/ops.hpp>
#include <ringd/result.hpp>
#include <ringd/stream.hpp>
#include <ringd/task.hpp>

#include <sys/socket.h>

#include <cstddef>
#include <span>
#include <utility>

namespace ringd {

// Owns the socket. Reads go straight into the caller's buffer (one recv each); a connection
// that should hold no buffer while it waits reads through a recv_stream instead.
class plain_stream {
public:
    plain_stream(io_context& ctx, unique_fd socket) noexcept
        : ctx_(&ctx), socket_(std::move(socket)) {}

    // Up to data.size() bytes; 0 when the peer has closed its end. Errors: recv's,
    // operation_canceled.
    task<result<std::size_t>> read(std::span<std::byte> data) {
        auto n = co_await async_recv(*ctx_, socket_, data);
        co_return n;
    }

    // All of `data` (async_send_all), or the error that stopped it (EPIPE, ECONNRESET,
    // operation_canceled).
    task<result<std::size_t>> write(std::span<const std::byte> data) {
        auto sent = co_await async_send_all(*ctx_, socket_, data);
        if (!sent) co_return error_of(sent);
        co_return data.size();
    }

    // Ends our direction (the peer reads EOF after what was written); reads stay possible.
    // Errors: shutdown(2)'s (ENOTCONN).
    task<result<void>> shutdown() {
        if (::shutdown(socket_.get(), SHUT_WR) != 0) co_return last_error();
        co_return result<void>{};
    }

    [[nodiscard]] borrowed_fd socket() const noexcept { return socket_; }

private:
    io_context* ctx_;  // the ring
    unique_fd socket_; // the connection
};

static_assert(byte_stream<plain_stream>);

} // namespace ringd
