// SPDX-License-Identifier: MIT
// accept_connections: connections are served up to the cap, the next ones refused, the cap is
// read at each connection, and a stream that ends by stop_accepting() ends the loop cleanly.
#include "test_support.hpp"

#include <ringd/accept_connections.hpp>
#include <ringd/ops.hpp>
#include <ringd/timer.hpp>

#include <sys/socket.h>

#include <array>
#include <chrono>
#include <cstddef>
#include <optional>
#include <vector>

namespace {

using namespace std::chrono_literals;
using ringd::unique_fd;

// A connection's task: ends when its peer sends a byte (or closes).
ringd::task<void> hold_until_peer_speaks(ringd::io_context& ctx, unique_fd fd) {
    std::byte b{};
    (void)co_await ringd::async_recv(ctx, fd, {&b, 1});
}

// Waits (on the loop, so that it turns) until `done()` holds; false if it never does.
template <class Condition>
ringd::task<bool> eventually(ringd::io_context& ctx, Condition done) {
    for (int i = 0; i < 5000 && !done(); ++i) co_await ringd::sleep_for(ctx, 1ms);
    co_return done();
}

// Whether the peer of this client closed its end (EOF readable now).
bool closed_by_server(const unique_fd& client) {
    char c = 0;
    return ::recv(client.get(), &c, 1, MSG_DONTWAIT) == 0;
}

template <class Cap, class Serve, class Refuse>
ringd::task<void> accept_into(std::optional<ringd::result<void>>& ended, ringd::accept_stream& s,
                              ringd::scope& connections, Cap cap, Serve& serve, Refuse& refuse) {
    ended = co_await ringd::accept_connections(s, connections, cap, serve, refuse);
}

} // namespace

TEST_CASE("connections beyond the cap are refused; the cap is read at each connection") {
    ringd::io_context ctx;
    auto main = [&]() -> ringd::task<void> {
        auto l = ringd::listener::bind(ringd::testing::loopback_any_port());
        ringd::accept_stream stream(ctx, l);
        ringd::scope connections;
        std::size_t cap = 2;
        std::size_t refused = 0;
        auto max_open = [&] { return cap; };
        auto serve = [&](unique_fd fd) { return hold_until_peer_speaks(ctx, std::move(fd)); };
        auto refuse = [&](unique_fd) { ++refused; }; // the descriptor closes here
        std::optional<ringd::result<void>> ended;
        ringd::scope accepting;
        std::vector<unique_fd> clients;
        for (int i = 0; i < 3; ++i)
            clients.push_back(ringd::testing::connect_blocking(l.address()));
        accepting.spawn(accept_into(ended, stream, connections, max_open, serve, refuse));

        // Two served, the third refused and closed.
        CHECK(co_await eventually(ctx, [&] { return refused == 1; }));
        CHECK(connections.size() == 2);
        CHECK(co_await eventually(ctx, [&] {
            int closed = 0;
            for (const auto& c : clients) closed += closed_by_server(c) ? 1 : 0;
            return closed == 1;
        }));

        // One served connection ends: there is room for one more.
        for (auto& c : clients)
            if (!closed_by_server(c)) {
                REQUIRE(::send(c.get(), "x", 1, MSG_NOSIGNAL) == 1);
                break;
            }
        CHECK(co_await eventually(ctx, [&] { return connections.size() == 1; }));

        // The cap is lowered to 1: the next connection is refused, though one slot was free.
        cap = 1;
        clients.push_back(ringd::testing::connect_blocking(l.address()));
        CHECK(co_await eventually(ctx, [&] { return refused == 2; }));
        CHECK(connections.size() == 1);

        // Raised to 3: the next is served.
        cap = 3;
        clients.push_back(ringd::testing::connect_blocking(l.address()));
        CHECK(co_await eventually(ctx, [&] { return connections.size() == 2; }));
        CHECK(refused == 2);

        // stop_accepting() ends the loop, and that is no error.
        stream.stop_accepting();
        co_await accepting.join();
        REQUIRE(ended.has_value());
        CHECK(ended->has_value());

        clients.clear(); // the served connections see EOF and end
        co_await connections.join();
    };
    ringd::testing::run_bounded(ctx, main());
}

TEST_CASE("without a cap every connection is served") {
    ringd::io_context ctx;
    auto main = [&]() -> ringd::task<void> {
        auto l = ringd::listener::bind(ringd::testing::loopback_any_port());
        ringd::accept_stream stream(ctx, l);
        ringd::scope connections;
        std::size_t served = 0;
        auto serve = [&](unique_fd fd) {
            ++served;
            return hold_until_peer_speaks(ctx, std::move(fd));
        };
        std::optional<ringd::result<void>> ended;
        auto run = [&]() -> ringd::task<void> {
            ended = co_await ringd::accept_connections(stream, connections, serve);
        };
        ringd::scope accepting;
        accepting.spawn(run());
        std::vector<unique_fd> clients;
        for (int i = 0; i < 40; ++i)
            clients.push_back(ringd::testing::connect_blocking(l.address()));
        CHECK(co_await eventually(ctx, [&] { return served == 40; }));
        CHECK(connections.size() == 40);
        stream.stop_accepting();
        co_await accepting.join();
        REQUIRE(ended.has_value());
        CHECK(ended->has_value());
        clients.clear();
        co_await connections.join();
    };
    ringd::testing::run_bounded(ctx, main());
}
