// SPDX-License-Identifier: MIT
// ringd/stream.hpp — byte_stream: what code that talks over a connection needs from it, so that
// one coroutine serves plain sockets (plain_stream.hpp) and TLS (tls.hpp's tls_stream) alike.
#pragma once

#include <ringd/fd.hpp>
#include <ringd/result.hpp>
#include <ringd/task.hpp>

#include <concepts>
#include <cstddef>
#include <span>
#include <utility>

namespace ringd {

// A connected stream of bytes, as a coroutine uses it:
//   read(span<byte>)        -> task<result<size_t>>: up to size() bytes, at least one; 0 once
//                              the peer has ended its direction (EOF, TLS close_notify).
//   write(span<const byte>) -> task<result<size_t>>: all of it (the size), or the error that
//                              stopped it, after which an unknown prefix has been sent.
//   shutdown()              -> task<result<void>>: ends our direction; the peer reads 0 after
//                              what was written, and reads on our side stay possible.
//   socket() const          -> borrowed_fd: the connection, for timers, peer names, options.
// One operation at a time: read and write are not awaited concurrently on one stream.
// Setting up (a TLS handshake) is not part of it; whoever makes the stream does that.
template <class S>
concept byte_stream = requires(S& s, const S& cs, std::span<std::byte> in,
                               std::span<const std::byte> out) {
    { s.read(in) } -> std::same_as<task<result<std::size_t>>>;
    { s.write(out) } -> std::same_as<task<result<std::size_t>>>;
    { s.shutdown() } -> std::same_as<task<result<void>>>;
    { cs.socket() } -> std::same_as<borrowed_fd>;
};

} // namespace ringd
