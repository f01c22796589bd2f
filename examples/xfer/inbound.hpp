// SPDX-License-Identifier: MIT
// xfer/inbound.hpp — the receiving side of a connection, plain or TLS, as serve_connection reads
// it: chunks of bytes that stay valid until the next call, read through the child's buffer_ring.
// A connection that waits for the peer holds no buffer: plain chunks are views of the pool's
// buffers, and TLS decrypts into a buffer it takes for a request and gives back between requests.
#pragma once

#include <ringd/buffer_ring.hpp>
#include <ringd/fd.hpp>
#include <ringd/io_context.hpp>
#include <ringd/plain_stream.hpp>
#include <ringd/recv_stream.hpp>
#include <ringd/result.hpp>
#include <ringd/stream.hpp>
#include <ringd/task.hpp>
#include <ringd/tls.hpp>

#include <concepts>
#include <cstddef>
#include <memory>
#include <span>
#include <type_traits>

namespace xfer {

using chunk_result = ringd::result<std::span<const std::byte>>;

// What serve_connection (receiver.hpp) works on: next() gives the next bytes from the peer,
// valid until the next call, empty once the peer has closed; rest() gives back what a waiting
// connection need not hold; connection() is the stream that replies go out on (and, for TLS,
// that handshakes).
template <class S>
concept inbound_stream = requires(S& s) {
    { s.next() } -> std::same_as<ringd::task<chunk_result>>;
    { s.rest() }
    noexcept;
    requires ringd::byte_stream<std::remove_reference_t<decltype(s.connection())>>;
};

// A TCP or UNIX connection.
class plain_inbound {
public:
    plain_inbound(ringd::io_context& ctx, ringd::unique_fd socket, ringd::buffer_ring& pool)
        : connection_(ctx, std::move(socket)), in_(pool, connection_.socket()) {}

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

    // Between requests, with every chunk consumed: nothing to give back (views go with next()).
    void rest() noexcept { current_.release(); }

    [[nodiscard]] ringd::plain_stream& connection() noexcept { return connection_; }

private:
    ringd::plain_stream connection_; // the socket; writes and shutdown (reads go through in_)
    ringd::recv_stream in_;          // reads the socket into the pool's buffers
    ringd::received current_;        // the chunk handed out last
};

// A TLS connection: ciphertext through the pool, plaintext into a buffer held only while a
// request is in progress.
class tls_inbound {
public:
    tls_inbound(ringd::io_context& ctx, ringd::unique_fd socket, const ringd::tls_context& tls,
                ringd::buffer_ring& pool)
        : tls_(ctx, std::move(socket), tls, pool) {}

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

    // Between requests, with every chunk consumed: the plaintext buffer goes.
    void rest() noexcept { plain_.reset(); }

    // Handshake (errors: OpenSSL's, the socket's, operation_canceled), writes and shutdown.
    [[nodiscard]] ringd::tls_stream& connection() noexcept { return tls_; }

private:
    static constexpr std::size_t plain_size = 16 * 1024; // one record's plaintext

    ringd::tls_stream tls_;              // the connection, reading through the pool
    std::unique_ptr<std::byte[]> plain_; // decrypted bytes; only while a request is in progress
};

static_assert(inbound_stream<plain_inbound> && inbound_stream<tls_inbound>);

} // namespace xfer
