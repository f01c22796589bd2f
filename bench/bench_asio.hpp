// SPDX-License-Identifier: MIT
// bench_asio.hpp — what the Boost.Asio baselines (accept_asio, echo_asio) share: the worker's
// listener and stop eventfd as Asio objects, and the acceptor loop with its handling of running
// out of descriptors. Idiomatic Asio 1.74 with C++20 coroutines, as its examples write it.
#pragma once

// Boost 1.74 enables co_await support for clang only with <experimental/coroutine> (clang's old
// TS mode); clang 19 with libstdc++ has the standard <coroutine>, which Asio already detects.
#if defined(__clang__) && !defined(BOOST_ASIO_HAS_CO_AWAIT)
#define BOOST_ASIO_HAS_CO_AWAIT 1
#endif

#include "bench_server_common.hpp"

#include <boost/asio.hpp>
#include <fcntl.h>

#include <chrono>

namespace bench::asio_base {

namespace asio = boost::asio;
using asio::ip::tcp;

// After EMFILE and the like, wait this long before accepting again: retrying at once would fail
// at once (a busy loop); the condition clears only as descriptors close.
inline constexpr std::chrono::milliseconds backoff_delay{10};

inline bool out_of_resources(const boost::system::error_code& ec) {
    return ec == asio::error::no_descriptors || ec == asio::error::no_buffer_space ||
           ec == asio::error::no_memory || ec == boost::system::errc::too_many_files_open_in_system;
}

// Accepts until the acceptor is closed, calling on_accept(tcp::socket&&) for each connection.
template <class OnAccept>
asio::awaitable<void> accept_loop(tcp::acceptor& acceptor, OnAccept on_accept) {
    asio::steady_timer backoff(acceptor.get_executor());
    while (acceptor.is_open()) {
        boost::system::error_code ec;
        tcp::socket socket =
            co_await acceptor.async_accept(asio::redirect_error(asio::use_awaitable, ec));
        if (!ec) {
            on_accept(std::move(socket));
        } else if (ec == asio::error::operation_aborted || !acceptor.is_open()) {
            co_return; // the stop closed the acceptor
        } else if (out_of_resources(ec)) {
            backoff.expires_after(backoff_delay);
            co_await backoff.async_wait(asio::redirect_error(asio::use_awaitable, ec));
        } else if (ec != asio::error::connection_aborted && ec != asio::error::interrupted &&
                   ec != asio::error::try_again) {
            throw boost::system::system_error(ec, "async_accept");
        }
    }
}

// The worker's listener as an acceptor, which from then on owns it.
inline tcp::acceptor adopt_listener(asio::io_context& io, worker_context& ctx) {
    sockaddr_storage local{};
    socklen_t len = sizeof local;
    check(::getsockname(ctx.listener.get(), reinterpret_cast<sockaddr*>(&local), &len),
          "getsockname");
    tcp::acceptor acceptor(io);
    acceptor.assign(local.ss_family == AF_INET6 ? tcp::v6() : tcp::v4(), ctx.listener.get());
    (void)ctx.listener.release();
    return acceptor;
}

// The server-wide stop eventfd as a descriptor to wait on. Asio objects own what they are given,
// so it gets a duplicate, handed over (release) only once the Asio object holds it.
inline asio::posix::stream_descriptor stop_descriptor(asio::io_context& io, worker_context& ctx) {
    asio::posix::stream_descriptor stop(io);
    unique_fd dup(check(::fcntl(ctx.stop_fd, F_DUPFD_CLOEXEC, 0), "fcntl F_DUPFD_CLOEXEC"));
    stop.assign(dup.get());
    (void)dup.release();
    return stop;
}

// co_spawn's completion handler: an error leaves io_context::run() as an exception, which
// run_server reports.
inline void rethrow(std::exception_ptr e) {
    if (e) std::rethrow_exception(e);
}

} // namespace bench::asio_base
