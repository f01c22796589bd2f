// SPDX-License-Identifier: MIT
// xfer/inbound.hpp — the receiving side of a connection, plain or TLS, as serve_connection reads
// it: chunks of bytes that stay valid until the next call, read through the child's buffer_ring.
// A connection that waits for the peer holds no buffer: plain chunks are views of the pool's
// buffers, and TLS decrypts into a buffer it takes for a request and gives back between requests.
#pragma once

#include <ringd/buffer_ring.hpp>
#include <ringd/fd.hpp>
#include <ringd/io_context.hpp>
#include <ringd/ops.hpp>
#include <ringd/recv_stream.hpp>
#include <ringd/result.hpp>
#include <ringd/task.hpp>
#include <ringd/tls.hpp>

#include <sys/socket.h>

#include <cstddef>
#include <memory>
#include <span>

namespace xfer {

using chunk_result = ringd::result<std::span<const std::byte>>;

// A TCP or UNIX connection.
class plain_inbound {
public:
    plain_inbound(ringd::io_context& ctx, ringd::unique_fd socket, ringd::buffer_ring& pool)
        : ctx_(&ctx), socket_(std::move(socket)), in_(pool, socket_) {}

    // The next bytes from the peer, valid until the next call; empty once the peer has closed.
    // The previous chunk's buffer goes back to the pool first. Errors: recv's, ENOBUFS (the pool
    // is gone), operation_canceled.
    ringd::task<chunk_result> next() {
        current_.release();
        auto view = co_await in_.next();
        if (!view) co_return ringd::error_of(view);
        current_ = std::move(*view);
        co_return current_.bytes();
    }

    // All of `data`, or the error that stopped it (EPIPE, ECONNRESET, cancelled).
    ringd::task<ringd::result<void>> write(std::span<const std::byte> data) {
        return ringd::async_send_all(*ctx_, socket_, data);
    }

    // Ends our direction (the peer reads EOF after what was written); reads stay possible.
    ringd::task<ringd::result<void>> shutdown() {
        if (::shutdown(socket_.get(), SHUT_WR) != 0) co_return ringd::last_error();
        co_return ringd::result<void>{};
    }

    // Between requests, with every chunk consumed: nothing to give back (views go with next()).
    void rest() noexcept { current_.release(); }

    [[nodiscard]] ringd::borrowed_fd socket() const noexcept { return socket_; }

private:
    ringd::io_context* ctx_;  // the ring
    ringd::unique_fd socket_; // the connection
    ringd::recv_stream in_;   // reads socket_ into the pool's buffers
    ringd::received current_; // the chunk handed out last
};

// A TLS connection: ciphertext through the pool, plaintext into a buffer held only while a
// request is in progress.
class tls_inbound {
public:
    tls_inbound(ringd::io_context& ctx, ringd::unique_fd socket, const ringd::tls_context& tls,
                ringd::buffer_ring& pool)
        : tls_(ctx, std::move(socket), tls, pool) {}

    // Errors: OpenSSL's (tls/tls-verify categories), the socket's, operation_canceled.
    ringd::task<ringd::result<void>> handshake() { return tls_.handshake(); }

    // As plain_inbound::next(); empty once the peer sent close_notify. A peer that closes
    // without close_notify is an error ("unexpected eof while reading").
    ringd::task<chunk_result> next() {
        // Wait without the plaintext buffer: it is taken once there is something to decrypt.
        auto ready = co_await tls_.wait_readable();
        if (!ready) co_return ringd::error_of(ready);
        if (!plain_) plain_ = std::make_unique_for_overwrite<std::byte[]>(plain_size);
        auto n = co_await tls_.read(std::span(plain_.get(), plain_size));
        if (!n) co_return ringd::error_of(n);
        co_return std::span<const std::byte>(plain_.get(), *n);
    }

    ringd::task<ringd::result<void>> write(std::span<const std::byte> data) {
        auto n = co_await tls_.write(data);
        if (!n) co_return ringd::error_of(n);
        co_return ringd::result<void>{};
    }
    ringd::task<ringd::result<void>> shutdown() { return tls_.shutdown(); }

    // Between requests, with every chunk consumed: the plaintext buffer goes.
    void rest() noexcept { plain_.reset(); }

    [[nodiscard]] ringd::borrowed_fd socket() const noexcept { return tls_.socket(); }

private:
    static constexpr std::size_t plain_size = 16 * 1024; // one record's plaintext

    ringd::tls_stream tls_;              // the connection, reading through the pool
    std::unique_ptr<std::byte[]> plain_; // decrypted bytes; only while a request is in progress
};

} // namespace xfer
