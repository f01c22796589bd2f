// SPDX-License-Identifier: MIT
// ringd/stream.hpp: one coroutine, written against byte_stream alone, exchanges data over a
// plain_stream and over a tls_stream (socketpairs, certificates made by the openssl CLI).
#include <ringd/stream.hpp>

#include "test_certs.hpp" // tests/xfer
#include "test_dir.hpp"   // tests/xfer
#include "test_support.hpp"

#include <ringd/plain_stream.hpp>
#include <ringd/scope.hpp>
#include <ringd/tls.hpp>

#include <catch2/catch.hpp>

#include <sys/socket.h>

#include <algorithm>
#include <string>
#include <utility>

using xfer::testing::tls_options_for;

namespace {

// What one side of an exchange saw.
struct side {
    std::string error;       // empty: no operation failed
    std::string received;    // every byte read before read() said 0
    std::size_t written = 0; // what write() reported
    bool eof = false;        // read() returned 0
    bool eof_again = false;  // and so did the read after it
    bool shut_down = false;  // shutdown() succeeded
};

std::span<const std::byte> bytes_of(const std::string& s) {
    return std::as_bytes(std::span(s));
}

// Reads into out.received until read() returns 0, then reads once more.
template <ringd::byte_stream S>
ringd::task<void> read_to_eof(S& s, side& out) {
    std::byte buf[4096];
    for (;;) {
        auto n = co_await s.read(buf);
        if (!n) {
            out.error = "read: " + n.error().message();
            co_return;
        }
        if (*n == 0) break;
        out.received.append(reinterpret_cast<const char*>(buf), *n);
    }
    out.eof = true;
    auto again = co_await s.read(buf);
    out.eof_again = again && *again == 0;
}

// The server: everything until the client's shutdown, then all of it back in one write, then
// our own shutdown.
template <ringd::byte_stream S>
ringd::task<void> echo_back(S& s, side& out) {
    co_await read_to_eof(s, out);
    if (!out.eof) co_return;
    auto w = co_await s.write(bytes_of(out.received));
    if (!w) {
        out.error = "write: " + w.error().message();
        co_return;
    }
    out.written = *w;
    auto ended = co_await s.shutdown();
    if (!ended) out.error = "shutdown: " + ended.error().message();
    out.shut_down = ended.has_value();
}

// The client: the payload in one write, shutdown, then the echo until the server's shutdown
// (reading stays possible after our own).
template <ringd::byte_stream S>
ringd::task<void> send_and_collect(S& s, std::string payload, side& out) {
    auto w = co_await s.write(bytes_of(payload));
    if (!w) {
        out.error = "write: " + w.error().message();
        co_return;
    }
    out.written = *w;
    auto ended = co_await s.shutdown();
    if (!ended) {
        out.error = "shutdown: " + ended.error().message();
        co_return;
    }
    out.shut_down = true;
    co_await read_to_eof(s, out);
}

template <ringd::byte_stream S>
ringd::task<void> exchange(S& server, S& client, std::string payload, side& s, side& c) {
    ringd::scope both;
    both.spawn(echo_back(server, s));
    both.spawn(send_and_collect(client, std::move(payload), c));
    co_await both.join();
}

// Bytes that differ from their neighbours, so that a lost, repeated or reordered piece shows.
std::string pattern(std::size_t size) {
    std::string out(size, '\0');
    for (std::size_t i = 0; i < size; ++i) out[i] = static_cast<char>((i * 7 + i / 251) % 256);
    return out;
}

// A connected pair with small socket buffers: a 1 MiB write takes many partial sends.
std::pair<ringd::unique_fd, ringd::unique_fd> small_socketpair() {
    int sv[2];
    REQUIRE(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) == 0);
    ringd::unique_fd a(sv[0]), b(sv[1]);
    int size = 4096;
    for (int fd : sv) {
        REQUIRE(::setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &size, sizeof size) == 0);
        REQUIRE(::setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &size, sizeof size) == 0);
    }
    return {std::move(a), std::move(b)};
}

// Where `got` first differs from `want` (a length difference counts); npos: nowhere. Keeps a
// failure's message short, where comparing the strings would print a MiB of each.
std::size_t first_difference(const std::string& got, const std::string& want) {
    auto [g, w] = std::mismatch(got.begin(), got.end(), want.begin(), want.end());
    if (g == got.end() && w == want.end()) return std::string::npos;
    return static_cast<std::size_t>(g - got.begin());
}

void check_exchange(const std::string& payload, const side& s, const side& c) {
    CHECK(s.error.empty());
    CHECK(c.error.empty());
    CHECK(c.written == payload.size());
    CHECK(c.shut_down);
    CHECK(s.eof); // the client's shutdown, after every byte it wrote
    CHECK(s.eof_again);
    CHECK(s.received.size() == payload.size());
    CHECK(first_difference(s.received, payload) == std::string::npos);
    CHECK(s.written == payload.size());
    CHECK(s.shut_down);
    CHECK(c.eof);
    CHECK(c.eof_again);
    CHECK(c.received.size() == payload.size());
    CHECK(first_difference(c.received, payload) == std::string::npos);
}

ringd::task<void> handshake(ringd::tls_stream& s, std::string& errors) {
    auto hs = co_await s.handshake();
    if (!hs) errors += "handshake: " + hs.error().message() + "\n";
}

ringd::task<void> handshake_both(ringd::tls_stream& server, ringd::tls_stream& client,
                                 std::string& errors) {
    ringd::scope both;
    both.spawn(handshake(server, errors));
    both.spawn(handshake(client, errors));
    co_await both.join();
}

} // namespace

TEST_CASE("plain_stream and tls_stream satisfy byte_stream") {
    STATIC_REQUIRE(ringd::byte_stream<ringd::plain_stream>);
    STATIC_REQUIRE(ringd::byte_stream<ringd::tls_stream>);
    STATIC_REQUIRE_FALSE(ringd::byte_stream<ringd::unique_fd>);
}

TEST_CASE("over a plain_stream, one generic coroutine writes all of 1 MiB, reads it back and sees "
          "EOF as 0 after each side's shutdown") {
    ringd::io_context ctx;
    for (std::size_t size : {std::size_t{1} << 20, std::size_t{0}}) {
        CAPTURE(size);
        auto payload = pattern(size);
        auto [a, b] = small_socketpair();
        ringd::plain_stream server(ctx, std::move(a));
        ringd::plain_stream client(ctx, std::move(b));
        side s, c;
        ringd::testing::run_bounded(ctx, exchange(server, client, payload, s, c));
        check_exchange(payload, s, c);
    }
}

TEST_CASE("over a tls_stream, the same coroutine writes all of 1 MiB, reads it back and sees "
          "close_notify as 0 after each side's shutdown") {
    xfer::testing::temp_dir dir;
    auto certs = xfer::testing::make_test_certs(dir.str());
    auto server_tls =
        ringd::tls_context::server(tls_options_for(certs.server_cert(), certs.server_key(), ""));
    auto client_tls = ringd::tls_context::client(tls_options_for("", "", certs.ca()));
    ringd::io_context ctx;
    for (std::size_t size : {std::size_t{1} << 20, std::size_t{0}}) {
        CAPTURE(size);
        auto payload = pattern(size);
        auto [a, b] = small_socketpair();
        ringd::tls_stream server(ctx, std::move(a), server_tls);
        ringd::tls_stream client(ctx, std::move(b), client_tls, "localhost");
        std::string errors;
        ringd::testing::run_bounded(ctx, handshake_both(server, client, errors));
        REQUIRE(errors.empty());
        side s, c;
        ringd::testing::run_bounded(ctx, exchange(server, client, payload, s, c));
        check_exchange(payload, s, c);
    }
}
