// SPDX-License-Identifier: MIT
// accept_asio — the accept benchmark's Asio baseline: Boost.Asio 1.74 with C++20 coroutines, an
// acceptor loop written the way the Asio examples write it. ringd's own server is measured
// against this, so it is idiomatic rather than tuned: one io_context per thread (concurrency
// hint 1), co_await async_accept, and the socket's destructor closes the connection.
//
// Usage: see bench_server_common.hpp.
#include "bench_asio.hpp"

namespace {

using namespace bench::asio_base;

// Waits until the server-wide stop eventfd is readable, then closes the acceptor, which ends
// accept_loop's pending async_accept with operation_aborted; run() then runs out of work.
asio::awaitable<void> stop_watch(asio::posix::stream_descriptor& stop, tcp::acceptor& acceptor) {
    co_await stop.async_wait(asio::posix::stream_descriptor::wait_read, asio::use_awaitable);
    acceptor.close();
}

std::uint64_t serve(bench::worker_context& ctx) {
    asio::io_context io(1); // this thread is the only one that runs it
    asio::posix::stream_descriptor stop = stop_descriptor(io, ctx);
    tcp::acceptor acceptor = adopt_listener(io, ctx);
    std::uint64_t accepted = 0;
    // `socket` closes the connection as it goes out of scope.
    asio::co_spawn(io, accept_loop(acceptor, [&](tcp::socket&&) { ++accepted; }), rethrow);
    asio::co_spawn(io, stop_watch(stop, acceptor), rethrow);
    io.run();
    return accepted;
}

} // namespace

int main(int argc, char** argv) {
    return bench::run_server("accept_asio", argc, argv, /*nonblocking_listener=*/false, serve);
}
