// SPDX-License-Identifier: MIT
// ringd/accept_connections.hpp — the accept loop that every server writes: take connections
// from an accept_stream, run each as a task in a scope, and decide what becomes of one that
// comes while the cap on open connections is reached (nginx's worker_connections; a control
// socket that answers "busy"). daemon_serve, ringd-supervise's control socket and xfer's
// receiving child all accept through it.
#pragma once

#include <ringd/fd.hpp>
#include <ringd/net.hpp>
#include <ringd/result.hpp>
#include <ringd/scope.hpp>
#include <ringd/task.hpp>

#include <cstddef>
#include <limits>
#include <type_traits>
#include <utility>

namespace ringd {

inline constexpr std::size_t unlimited_connections = std::numeric_limits<std::size_t>::max();

// Until `stream` ends, each connection it hands over is spawned into `connections` as
// `serve(unique_fd)` (a callable returning task<void>) while fewer than `max_open` tasks run
// there; one beyond goes to `refuse(unique_fd)` instead, called at once (it may answer and
// let the descriptor close, or spawn a short reply into a scope of its own). `max_open` is a
// number, or a callable returning one, asked at each connection (so that a reload can change
// it). `serve` and `refuse` are used by reference: they must outlive the call.
// Returns success when the stream ended by stop_accepting() or a stop request, else the error
// that ended it (EBADF, ENOTSOCK...: the listener itself is broken; accept_stream retries the
// errors of one connection and backs off when descriptors run out).
// [accept-connections]
template <class Cap, class Serve, class Refuse>
task<result<void>> accept_connections(accept_stream& stream, scope& connections, Cap max_open,
                                      Serve& serve, Refuse& refuse) {
    for (;;) {
        auto c = co_await stream.next();
        if (!c) {
            if (is_cancelled(c.error())) co_return result<void>{};
            co_return error_of(c);
        }
        std::size_t cap = 0;
        if constexpr (std::is_invocable_v<Cap&>)
            cap = max_open();
        else
            cap = max_open;
        if (connections.size() < cap)
            connections.spawn(serve(std::move(*c)));
        else
            refuse(std::move(*c));
    }
}
// [/accept-connections]

// Without a cap: every connection is served.
template <class Serve>
task<result<void>> accept_connections(accept_stream& stream, scope& connections, Serve& serve) {
    auto never = [](unique_fd) noexcept {};
    co_return co_await accept_connections(stream, connections, unlimited_connections, serve, never);
}

} // namespace ringd
