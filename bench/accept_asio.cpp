// accept_asio — the accept benchmark's Asio baseline: Boost.Asio 1.74 with C++20 coroutines, an
// acceptor loop written the way the Asio examples write it. ringd's own server is measured
// against this, so it is idiomatic rather than tuned: one io_context per thread (concurrency
// hint 1), co_await async_accept, and the socket's destructor closes the connection.
//
// Usage: see bench_server_common.hpp.

// Boost 1.74 enables co_await support for clang only with <experimental/coroutine> (clang's old
// TS mode); clang 19 with libstdc++ has the standard <coroutine>, which Asio already detects.
#if defined(__clang__) && !defined(BOOST_ASIO_HAS_CO_AWAIT)
#define BOOST_ASIO_HAS_CO_AWAIT 1
#endif

#include "bench_server_common.hpp"

#include <boost/asio.hpp>
#include <fcntl.h>

#include <chrono>

namespace {

namespace asio = boost::asio;
using asio::ip::tcp;

// After EMFILE and the like, wait this long before accepting again: retrying at once would fail
// at once (a busy loop); the condition clears only as descriptors close.
constexpr std::chrono::milliseconds backoff_delay{10};

bool out_of_resources(const boost::system::error_code& ec) {
    return ec == asio::error::no_descriptors || ec == asio::error::no_buffer_space ||
           ec == asio::error::no_memory || ec == boost::system::errc::too_many_files_open_in_system;
}

asio::awaitable<void> accept_loop(tcp::acceptor& acceptor, std::uint64_t& accepted) {
    asio::steady_timer backoff(acceptor.get_executor());
    while (acceptor.is_open()) {
        boost::system::error_code ec;
        tcp::socket socket =
            co_await acceptor.async_accept(asio::redirect_error(asio::use_awaitable, ec));
        if (!ec) {
            ++accepted; // `socket` closes the connection as it goes out of scope
        } else if (ec == asio::error::operation_aborted || !acceptor.is_open()) {
            co_return; // stop_watch closed the acceptor
        } else if (out_of_resources(ec)) {
            backoff.expires_after(backoff_delay);
            co_await backoff.async_wait(asio::redirect_error(asio::use_awaitable, ec));
        } else if (ec != asio::error::connection_aborted && ec != asio::error::interrupted &&
                   ec != asio::error::try_again) {
            throw boost::system::system_error(ec, "async_accept");
        }
    }
}

// Waits until the server-wide stop eventfd is readable, then closes the acceptor, which ends
// accept_loop's pending async_accept with operation_aborted; run() then runs out of work.
asio::awaitable<void> stop_watch(asio::posix::stream_descriptor& stop, tcp::acceptor& acceptor) {
    co_await stop.async_wait(asio::posix::stream_descriptor::wait_read, asio::use_awaitable);
    acceptor.close();
}

std::uint64_t serve(bench::worker_context& ctx) {
    asio::io_context io(1); // this thread is the only one that runs it

    // Asio objects own what they are given: the stop watcher gets its own duplicate of the stop
    // fd. Each descriptor is handed over (release) only once the Asio object holds it.
    asio::posix::stream_descriptor stop(io);
    bench::unique_fd stop_dup(
        bench::check(::fcntl(ctx.stop_fd, F_DUPFD_CLOEXEC, 0), "fcntl F_DUPFD_CLOEXEC"));
    stop.assign(stop_dup.get());
    (void)stop_dup.release();

    sockaddr_storage local{};
    socklen_t len = sizeof local;
    bench::check(::getsockname(ctx.listener.get(), reinterpret_cast<sockaddr*>(&local), &len),
                 "getsockname");
    tcp::acceptor acceptor(io);
    acceptor.assign(local.ss_family == AF_INET6 ? tcp::v6() : tcp::v4(), ctx.listener.get());
    (void)ctx.listener.release();

    std::uint64_t accepted = 0;
    // Errors leave run() as exceptions, which run_server reports.
    auto rethrow = [](std::exception_ptr e) {
        if (e) std::rethrow_exception(e);
    };
    asio::co_spawn(io, accept_loop(acceptor, accepted), rethrow);
    asio::co_spawn(io, stop_watch(stop, acceptor), rethrow);
    io.run();
    return accepted;
}

} // namespace

int main(int argc, char** argv) {
    return bench::run_server("accept_asio", argc, argv, /*nonblocking_listener=*/false, serve);
}
