// SPDX-License-Identifier: MIT
// ringd/daemon_serve.hpp — a daemon's accept loops with zero-downtime restarts: the listening
// sockets are offered to a successor, connections are served until the stop, then accepting
// stops without losing a connection and the open ones drain until the stop deadline.
//
//     auto listeners = ringd::inherit_or_bind(addresses);          // phase one
//     return ringd::daemon_run(std::move(*start), [&](ringd::daemon_context& d) -> task<int> {
//         d.on_reload(...);
//         auto served = co_await ringd::daemon_serve(d, listeners, {.name = "echod-listen"},
//             [&](ringd::unique_fd c) { return echo(d.io(), std::move(c)); });
//         co_return 0; });
#pragma once

#include <ringd/accept_connections.hpp>
#include <ringd/daemon.hpp>
#include <ringd/deadline.hpp>
#include <ringd/fd.hpp>
#include <ringd/net.hpp>
#include <ringd/scope.hpp>
#include <ringd/task.hpp>

#include <cstdio>
#include <cstdlib>
#include <string>
#include <utility>
#include <vector>

namespace ringd {

struct serve_options {
    // LISTEN_FDNAMES entry for each socket the successor inherits: 1-255 characters without
    // ':', ' ' or newline.
    std::string name = "listen";
    // What ready() says once the sockets are offered; empty: "listening on ADDR ADDR...".
    std::string ready_status;
    accept_stream_options accept; // per listener
};

// How the drain went.
struct serve_outcome {
    std::size_t open_at_stop = 0; // connections open when the stop came
    bool drained = true;          // false: the stop deadline cancelled some of them
};

// The daemon's serving life, in this order:
//  1. opts in to upgrades: the listeners are offered to `ringd-control --upgrade`
//     (daemon_context::hand_over()) and, when systemd allows it ($FDSTORE), to its fd store;
//  2. d.ready(options.ready_status) — after the offer, so that whoever sees the daemon ready
//     can upgrade it;
//  3. accepts on every listener and runs `on_connection(unique_fd)` (a callable returning
//     task<void>; it is kept in this frame for as long as connections run) for each connection,
//     in a scope of its own, until the stop request;
//  4. stops accepting (accept_stream::stop_accepting(): every connection the kernel had handed
//     over is still served; the rest stay in the backlog, for a successor), lets the open
//     connections finish until d.stop_deadline(), and cancels those still open then;
//  5. when the stop was a hand-over (d.handed_over()), releases the listeners: the successor
//     serves on them, and a UNIX socket keeps its path.
// An accept error other than cancellation ends that listener's loop and goes to stderr
// ("echod: accept on 127.0.0.1:7: ..."). A failed offer goes to stderr too and the daemon
// serves on without upgrades. `listeners` must outlive the call.
template <class Handler>
task<serve_outcome> daemon_serve(daemon_context& d, std::vector<listener>& listeners,
                                 serve_options options, Handler on_connection);

// ---------------------------------------------------------------------------------------------

namespace detail {

// Offers `listeners` to a successor: ringd-control --upgrade (the ".listen" file) and the
// systemd fd store when $FDSTORE says it is there.
inline void daemon_serve_offer(daemon_context& d, const std::vector<listener>& listeners,
                               const std::string& name) {
    const std::string& program = d.params().program;
    std::vector<handover_socket> offered;
    for (const auto& l : listeners) offered.push_back({l.fd().get(), name});
    if (auto h = d.hand_over(std::move(offered)); !h)
        std::fprintf(stderr, "%s: cannot offer the listening sockets for upgrades: %s\n",
                     program.c_str(), h.error().message().c_str());
    if (d.notify().enabled() && std::getenv("FDSTORE") != nullptr) {
        std::vector<borrowed_fd> fds;
        for (const auto& l : listeners) fds.push_back(l.fd());
        if (auto s = d.notify().store_fds(fds, name); !s)
            std::fprintf(stderr, "%s: cannot store the listening sockets in systemd: %s\n",
                         program.c_str(), s.error().message().c_str());
    }
}

// [accept-loop]
// Ends when `stream` does: after stop_accepting(), once every connection it had accepted was
// taken (none is dropped: in an upgrade, the rest wait in the backlog for the successor).
template <class Handler>
task<void> daemon_serve_accept(const std::string& program, accept_stream& stream, const listener& l,
                               scope& connections, Handler& on_connection) {
    auto ended = co_await accept_connections(stream, connections, on_connection);
    if (!ended)
        std::fprintf(stderr, "%s: accept on %s: %s\n", program.c_str(),
                     l.address().to_string().c_str(), ended.error().message().c_str());
}
// [/accept-loop]

} // namespace detail

template <class Handler>
task<serve_outcome> daemon_serve(daemon_context& d, std::vector<listener>& listeners,
                                 serve_options options, Handler on_connection) {
    const std::string program = d.params().program;
    detail::daemon_serve_offer(d, listeners, options.name);
    std::string status = options.ready_status;
    if (status.empty()) {
        status = "listening on";
        for (const auto& l : listeners) status += " " + l.address().to_string();
    }
    d.ready(status);

    // [serve-and-drain]
    scope connections; // one task per connection: cancelling it cancels them all
    scope acceptors;   // one accept loop per listener
    std::vector<accept_stream> streams;
    streams.reserve(listeners.size());
    for (auto& l : listeners) {
        streams.emplace_back(d.io(), l, options.accept);
        acceptors.spawn(
            detail::daemon_serve_accept(program, streams.back(), l, connections, on_connection));
    }
    co_await d.stopped();
    // Graceful stop: no new connections; open ones may finish until the deadline.
    for (auto& s : streams) s.stop_accepting();
    co_await acceptors.join();
    serve_outcome out;
    out.open_at_stop = connections.size();
    out.drained = co_await join_until(d.io(), connections, d.stop_deadline());
    // Upgraded: the successor serves on these sockets; a UNIX socket keeps its path.
    if (d.handed_over())
        for (auto& l : listeners) (void)l.release();
    co_return out;
    // [/serve-and-drain]
}

} // namespace ringd
