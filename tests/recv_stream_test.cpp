// SPDX-License-Identifier: MIT
// recv_stream and buffer_ring: reads without a buffer per connection, back-pressure when the
// pool runs dry, the per-reader limit, the fallback for kernels without buffer rings.
#include <ringd/recv_stream.hpp>

#include "test_support.hpp"

#include <ringd/net.hpp>
#include <ringd/ops.hpp>
#include <ringd/scope.hpp>
#include <ringd/signals.hpp>
#include <ringd/timer.hpp>

#include <catch2/catch.hpp>

#include <sys/socket.h>

#include <atomic>
#include <string>
#include <thread>
#include <vector>

using namespace std::chrono_literals;
using ringd::buffer_ring;
using ringd::io_context;
using ringd::recv_stream;
using ringd::scope;
using ringd::task;
using ringd::unique_fd;
using ringd::testing::connect_blocking;

namespace {

// The echo handler as a user writes it: each chunk is sent back from the pool's buffer.
task<void> echo(io_context& ctx, buffer_ring& pool, unique_fd fd) {
    recv_stream in(pool, fd);
    for (;;) {
        auto chunk = co_await in.next();
        if (!chunk || chunk->empty()) break;
        if (!co_await ringd::async_send_all(ctx, fd, chunk->bytes())) break;
    }
}

std::atomic<int> accepted{0}; // for client threads that wait until the server has them all

task<void> accept_into(io_context& ctx, buffer_ring& pool, const ringd::listener& l,
                       scope& connections, ringd::accept_stream_options options = {}) {
    ringd::accept_stream stream(ctx, l, options);
    for (;;) {
        auto c = co_await stream.next();
        if (!c) co_return;
        ++accepted;
        connections.spawn(echo(ctx, pool, std::move(*c)));
    }
}

// Client-side helpers for client threads: they report failure as a value (Catch2's assertions
// are for the test's own thread).
unique_fd dial(const ringd::socket_address& to) {
    unique_fd fd(::socket(to.family(), SOCK_STREAM | SOCK_CLOEXEC, 0));
    if (!fd || ::connect(fd.get(), to.sockaddr_ptr(), to.size()) != 0) return {};
    timeval tv{10, 0}; // a broken server fails the read instead of hanging the test
    ::setsockopt(fd.get(), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    return fd;
}

// Sends `text` and reads back as many bytes (fewer if the server fails).
std::string round_trip(const unique_fd& fd, const std::string& text) {
    if (::send(fd.get(), text.data(), text.size(), MSG_NOSIGNAL) !=
        static_cast<ssize_t>(text.size()))
        return {};
    std::string back(text.size(), '\0');
    std::size_t got = 0;
    while (got < back.size()) {
        ssize_t n = ::recv(fd.get(), back.data() + got, back.size() - got, 0);
        if (n <= 0) break;
        got += static_cast<std::size_t>(n);
    }
    back.resize(got);
    return back;
}

// Serves `client_count` client threads that each do `rounds` round trips of a message made by
// make(client, round), until all are done; returns how many got every byte back in order.
template <class MakeMessage>
int serve_talkers(io_context& ctx, buffer_ring& pool, int client_count, int rounds,
                  MakeMessage make) {
    auto l = ringd::listener::bind(ringd::testing::loopback_any_port());
    std::atomic<int> intact{0};
    std::atomic<int> finished{0};
    std::vector<std::thread> clients;
    for (int c = 0; c < client_count; ++c)
        clients.emplace_back([&, c] {
            {
                unique_fd fd = dial(l.address());
                bool ok = true;
                for (int r = 0; r < rounds && ok; ++r) {
                    const std::string msg = make(c, r);
                    ok = round_trip(fd, msg) == msg;
                }
                if (ok) ++intact;
            } // closed: the server's handler sees the end of the stream
            ++finished;
        });
    auto server = [&]() -> task<void> {
        scope connections, acceptors;
        acceptors.spawn(accept_into(ctx, pool, l, connections));
        while (finished < client_count) co_await ringd::sleep_for(ctx, 5ms);
        acceptors.request_stop();
        co_await acceptors.join();
        co_await connections.join();
    };
    ringd::testing::run_bounded(ctx, server(), std::chrono::seconds(60));
    for (auto& t : clients) t.join();
    return intact;
}

} // namespace

TEST_CASE("a 16-entry CQ serves 1,000 idle connections, then a fresh one and the first and "
          "last idle ones echo, then SIGTERM stops it") {
    io_context::options o;
    o.sq_entries = 8;
    o.cq_entries = 16;
    io_context ctx(o);
    REQUIRE(ctx.features().cq_entries == 16);
    buffer_ring pool(ctx);
    ringd::signal_set signals(ctx, {SIGTERM});
    auto l = ringd::listener::bind(ringd::testing::loopback_any_port());
    constexpr int idle_count = 1000;
    std::atomic<int> echoed{0};
    std::atomic<bool> server_done{false};
    accepted = 0;

    std::thread client([&] {
        std::vector<unique_fd> idle;
        for (int i = 0; i < idle_count; ++i) idle.push_back(dial(l.address()));
        // A connect() can return before the server's kernel has queued the connection (a full
        // backlog drops the last ACK); the server holding them all is what is tested.
        while (accepted < idle_count) std::this_thread::sleep_for(1ms);
        unique_fd fresh = dial(l.address());
        for (auto* fd : {&fresh, &idle.front(), &idle.back()})
            if (round_trip(*fd, "hello\n") == "hello\n") ++echoed;
        ::kill(::getpid(), SIGTERM);
        // The connections stay open until the server has stopped: it is the stop that ends
        // their handlers, not the clients going away.
        while (!server_done) std::this_thread::sleep_for(1ms);
    });
    std::uint64_t overflows = 0;
    auto server = [&]() -> task<void> {
        scope connections, acceptors;
        acceptors.spawn(accept_into(ctx, pool, l, connections));
        auto sig = co_await signals.next();
        CHECK(sig.has_value());
        acceptors.request_stop();
        co_await acceptors.join();
        CHECK(connections.size() == idle_count + 1); // every connection still has its handler
        connections.request_stop(); // 1,001 cancellations at once: far more CQEs than the CQ
        co_await connections.join();
        overflows = ctx.stats().cq_overflows;
    };
    ringd::testing::run_bounded(ctx, server(), 60s);
    server_done = true;
    client.join();
    CHECK(echoed == 3);
    if (ctx.features().nodrop) CHECK(overflows > 0); // kept by the kernel, reaped, counted
    CHECK(ctx.stats().cq_dropped == 0);
}

TEST_CASE("with the in-flight cap (kernels without NODROP), bounded ops and stop() never wait "
          "behind recvs that hold every slot an unbounded op may take") {
    io_context::options o;
    o.sq_entries = 8;
    o.cq_entries = 16;
    o.cap_in_flight = true;
    io_context ctx(o);
    buffer_ring pool(ctx);
    auto l = ringd::listener::bind(ringd::testing::loopback_any_port());
    std::vector<unique_fd> clients;
    for (int i = 0; i < 40; ++i) clients.push_back(connect_blocking(l.address()));
    bool timer_fired = false;
    bool sent = false;
    auto server = [&]() -> task<void> {
        scope connections, acceptors;
        // One accept SQE per connection, as on the kernels that lack NODROP (and multishot).
        acceptors.spawn(accept_into(ctx, pool, l, connections, {.multishot = false}));
        // Idle recvs take every slot unbounded ops may hold; then the next accept has to wait.
        while (ctx.stats().parked == 0)
            if (!co_await ringd::sleep_for(ctx, 1ms)) co_return;
        CHECK(connections.size() < clients.size());
        CHECK(ctx.ops_in_flight() < 16);
        timer_fired = (co_await ringd::sleep_for(ctx, 1ms)).has_value();
        const char byte = 'x';
        sent = (co_await ringd::async_send(ctx, clients[0], std::as_bytes(std::span(&byte, 1))))
                   .has_value();
        // stop() from another thread: the loop's wake-up read always has its slot.
        std::thread([&] { ctx.stop(); }).detach();
        co_await acceptors.join(); // ends when stop() cancels the accept
        co_await connections.join();
    };
    ringd::testing::watchdog dog(ctx, 20s);
    try {
        ctx.run(server());
    } catch (const std::runtime_error&) {
        // stop() may end the loop before the task's last resumption: stopped either way.
    }
    CHECK_FALSE(dog.fired());
    CHECK(timer_fired);
    CHECK(sent);
}

TEST_CASE("a 4-buffer pool under 64 talking clients runs dry (ENOBUFS) and loses or reorders "
          "no byte") {
    io_context ctx;
    buffer_ring pool(ctx, {.count = 4, .size = 512});
    // 2 KiB a round: four buffers' worth from every client at once.
    const int intact = serve_talkers(ctx, pool, 64, 40, [](int c, int r) {
        std::string msg(2048, '\0');
        for (std::size_t i = 0; i < msg.size(); ++i)
            msg[i] = static_cast<char>((c * 131 + r * 17 + static_cast<int>(i)) % 251);
        return msg;
    });
    CHECK(intact == 64);
    CHECK(pool.stats().enobufs > 0);
    CHECK(pool.available() == 4); // every buffer came back
}

TEST_CASE("a reader whose consumer stalls stops at its limit and the others are still served") {
    io_context ctx;
    buffer_ring pool(ctx, {.count = 128, .size = 1024, .per_reader = 4});
    auto l = ringd::listener::bind(ringd::testing::loopback_any_port());
    unique_fd flooder = connect_blocking(l.address());
    unique_fd talker = connect_blocking(l.address());
    // Far more than the whole pool holds, queued before the server reads anything.
    std::string junk(4096, 'j');
    std::size_t flooded = 0;
    for (ssize_t n; (n = ::send(flooder.get(), junk.data(), junk.size(), MSG_DONTWAIT)) > 0;)
        flooded += static_cast<std::size_t>(n);
    REQUIRE(flooded > 2 * 128 * 1024);
    unsigned held_by_stalled = 0;
    std::string echoed;
    std::atomic<bool> answered{false};
    auto server = [&]() -> task<void> {
        ringd::accept_stream stream(ctx, l);
        auto stalled_fd = co_await stream.next();
        auto talker_fd = co_await stream.next();
        REQUIRE(stalled_fd.has_value());
        REQUIRE(talker_fd.has_value());
        recv_stream stalled(pool, *stalled_fd); // read by the kernel, never consumed here
        co_await ringd::sleep_for(ctx, 100ms);
        held_by_stalled = pool.count() - pool.available();
        scope s;
        s.spawn(echo(ctx, pool, std::move(*talker_fd)));
        std::thread client([&] {
            echoed = round_trip(talker, "still served\n");
            answered = true;
        });
        while (!answered) co_await ringd::sleep_for(ctx, 1ms);
        client.join();
        talker.reset();
        co_await s.join();
    };
    ringd::testing::run_bounded(ctx, server());
    CHECK(echoed == "still served\n");
    CHECK(held_by_stalled >= 4);
    // The limit, plus what the kernel took in the one pass before the reader could stop it.
    CHECK(held_by_stalled < pool.count());
    CHECK(pool.stats().reader_pauses > 0);
    CHECK(pool.available() == pool.count());
}

TEST_CASE("a buffer that comes back reaches a parked reader with data, past parked readers whose "
          "sockets are idle") {
    // One buffer: every reader but its holder parks. The kernel picks a buffer before it
    // receives and puts it back when the socket is empty, so a woken reader on an idle socket
    // takes nothing: unless it passes the wake-up on, the reader with data waits forever.
    io_context ctx;
    buffer_ring pool(ctx, {.count = 1, .size = 64});
    auto l = ringd::listener::bind(ringd::testing::loopback_any_port());
    unique_fd client_a = connect_blocking(l.address());
    unique_fd client_b = connect_blocking(l.address());
    unique_fd client_c = connect_blocking(l.address());
    REQUIRE(::send(client_a.get(), "a", 1, 0) == 1);
    std::string got;
    std::uint64_t parked_before_c = 0;
    auto server = [&]() -> task<void> {
        ringd::accept_stream stream(ctx, l);
        auto a = co_await stream.next();
        auto b = co_await stream.next();
        auto c = co_await stream.next();
        REQUIRE((a && b && c));
        recv_stream ra(pool, *a);
        auto held = co_await ra.next(); // the only buffer
        REQUIRE(held.has_value());
        CHECK(held->text() == "a");
        recv_stream rb(pool, *b); // idle socket: its recv finds the pool empty and parks
        co_await ringd::sleep_for(ctx, 20ms);
        parked_before_c = pool.stats().enobufs;
        REQUIRE(::send(client_c.get(), "c", 1, 0) == 1);
        recv_stream rc(pool, *c); // parks behind rb
        co_await ringd::sleep_for(ctx, 20ms);
        CHECK(pool.stats().enobufs > parked_before_c);
        held->release(); // wakes the first parked reader, whose socket is idle
        auto chunk = co_await rc.next();
        if (chunk) got = std::string(chunk->text());
    };
    ringd::testing::run_bounded(ctx, server(), 5s);
    CHECK(parked_before_c >= 1);
    CHECK(got == "c");
}

TEST_CASE("without multishot recv (Linux 5.19: one buffer-select recv per arrival) 64 clients on "
          "4 buffers echo every byte in order") {
    io_context ctx;
    buffer_ring pool(ctx, {.count = 4, .size = 512, .multishot = false});
    REQUIRE_FALSE(pool.multishot());
    const int intact = serve_talkers(ctx, pool, 64, 10, [](int c, int r) {
        std::string msg(1500, static_cast<char>('A' + (c * 7 + r) % 26));
        msg[0] = static_cast<char>(r);
        return msg;
    });
    CHECK(intact == 64);
    CHECK(pool.stats().enobufs > 0);
    CHECK(pool.available() == 4);
}

TEST_CASE("without the kernel's buffer ring (the fallback: poll, then recv into a free buffer) "
          "64 clients on 2 buffers echo every byte in order") {
    io_context ctx;
    buffer_ring pool(ctx, {.count = 2, .size = 256, .kernel_ring = false});
    REQUIRE_FALSE(pool.kernel_provided());
    const int intact = serve_talkers(ctx, pool, 64, 10, [](int c, int r) {
        std::string msg(1000, static_cast<char>('a' + (c + r) % 26));
        msg[0] = static_cast<char>(r);
        return msg;
    });
    CHECK(intact == 64);
    CHECK(pool.stats().enobufs > 0);
    CHECK(pool.available() == 2);
}

TEST_CASE("a stop request ends a waiting next() as cancelled and loses nothing already sent") {
    io_context ctx;
    buffer_ring pool(ctx);
    auto l = ringd::listener::bind(ringd::testing::loopback_any_port());
    unique_fd client = connect_blocking(l.address());
    std::string first, second;
    bool cancelled = false;
    auto server = [&]() -> task<void> {
        ringd::accept_stream stream(ctx, l);
        auto fd = co_await stream.next();
        REQUIRE(fd.has_value());
        recv_stream in(pool, *fd);
        auto waiter = [&](recv_stream& r) -> task<void> {
            auto c = co_await r.next();
            cancelled = !c && ringd::is_cancelled(c.error());
        };
        scope s;
        s.spawn(waiter(in));
        s.request_stop();
        co_await s.join();
        REQUIRE(::send(client.get(), "abc", 3, 0) == 3);
        auto c1 = co_await in.next();
        REQUIRE(c1.has_value());
        first = std::string(c1->text());
        REQUIRE(::send(client.get(), "def", 3, 0) == 3);
        auto c2 = co_await in.next();
        REQUIRE(c2.has_value());
        second = std::string(c2->text());
    };
    ringd::testing::run_bounded(ctx, server());
    CHECK(cancelled);
    CHECK(first == "abc");
    CHECK(second == "def");
}

TEST_CASE("views outlive their stream and their pool; the end of the stream is an empty view") {
    io_context ctx;
    auto pool = std::make_unique<buffer_ring>(ctx, buffer_ring::options{.count = 8, .size = 64});
    auto l = ringd::listener::bind(ringd::testing::loopback_any_port());
    unique_fd client = connect_blocking(l.address());
    REQUIRE(::send(client.get(), "kept", 4, 0) == 4);
    std::optional<ringd::received> kept;
    bool saw_end = false;
    auto server = [&]() -> task<void> {
        ringd::accept_stream stream(ctx, l);
        auto fd = co_await stream.next();
        REQUIRE(fd.has_value());
        {
            recv_stream in(*pool, *fd);
            auto c = co_await in.next();
            REQUIRE(c.has_value());
            kept.emplace(std::move(*c));
            CHECK(pool->available() == 7);
            client.reset();
            auto end = co_await in.next();
            saw_end = end.has_value() && end->empty();
        }
        pool.reset(); // the buffer_ring goes; the kept view's memory stays
        CHECK(kept->text() == "kept");
        kept.reset();
    };
    ringd::testing::run_bounded(ctx, server());
    CHECK(saw_end);
    CHECK_FALSE(kept.has_value());
}
