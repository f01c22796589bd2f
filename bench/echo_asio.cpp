// SPDX-License-Identifier: MIT
// echo_asio — the echo benchmark's Asio baseline: Boost.Asio 1.74 with C++20 coroutines, written
// the way Asio's own example is (examples/cpp20/coroutines/echo_server.cpp): an acceptor loop
// that co_spawns one `echo` coroutine per connection, each with its own 1024-byte buffer in its
// frame, co_await async_read_some then co_await async_write. Idiomatic rather than tuned: one
// io_context per thread (concurrency hint 1). The differences from the example: the counts, no
// message per disconnect, and the shared listener, stop and final line (bench_asio.hpp).
//
// Usage: see bench_server_common.hpp.
#include "bench_asio.hpp"

namespace {

using namespace bench::asio_base;

// As in Asio's example; the connection ends with an exception (EOF, reset), quietly here.
asio::awaitable<void> echo(tcp::socket socket, bench::echo_counts& counts) {
    try {
        char data[1024];
        for (;;) {
            std::size_t n =
                co_await socket.async_read_some(asio::buffer(data), asio::use_awaitable);
            co_await async_write(socket, asio::buffer(data, n), asio::use_awaitable);
            ++counts.msgs;
            counts.bytes += n;
        }
    } catch (const std::exception&) {
        // EOF or an error: the socket closes as the frame goes
    }
}

// Waits for the server-wide stop eventfd, then stops the loop: the connections' coroutines are
// destroyed with the io_context, which closes their sockets.
asio::awaitable<void> stop_watch(asio::posix::stream_descriptor& stop, tcp::acceptor& acceptor,
                                 asio::io_context& io) {
    co_await stop.async_wait(asio::posix::stream_descriptor::wait_read, asio::use_awaitable);
    acceptor.close();
    io.stop();
}

bench::echo_counts serve(bench::worker_context& ctx) {
    asio::io_context io(1); // this thread is the only one that runs it
    asio::posix::stream_descriptor stop = stop_descriptor(io, ctx);
    tcp::acceptor acceptor = adopt_listener(io, ctx); // TCP_NODELAY comes from the listener
    bench::echo_counts counts;
    auto spawn_echo = [&](tcp::socket&& socket) {
        asio::co_spawn(io, echo(std::move(socket), counts), asio::detached);
    };
    asio::co_spawn(io, accept_loop(acceptor, spawn_echo), rethrow);
    asio::co_spawn(io, stop_watch(stop, acceptor, io), rethrow);
    io.run();
    return counts;
}

} // namespace

int main(int argc, char** argv) {
    return bench::run_server("echo_asio", argc, argv, /*nonblocking_listener=*/false, serve);
}
