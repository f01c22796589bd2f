// SPDX-License-Identifier: MIT
// The receiving connection, in process over a socketpair: replies, spool contents, limits.
#include "receiver.hpp"

#include "inbound.hpp"
#include "test_dir.hpp"
#include "test_support.hpp"

#include <catch2/catch.hpp>

#include <sys/socket.h>

#include <fstream>

using namespace std::chrono_literals;
using namespace xfer;
using xfer::testing::files_in;
using xfer::testing::temp_dir;

namespace {

struct harness {
    temp_dir dir;
    spool files = spool::open(dir.str());
    ringd::io_context ctx;
    ringd::buffer_ring pool;
    ringd::logger log{"receiver_test"};
    receive_limits limits{1 << 20, 2000ms, 0};

    explicit harness(ringd::buffer_ring::options o = {}) : pool(ctx, o) { log.use_stderr(false); }
};

// A pool of 64-byte buffers: request lines and bodies span many chunks.
ringd::buffer_ring::options tiny_buffers() {
    ringd::buffer_ring::options o;
    o.count = 64;
    o.size = 64;
    return o;
}

// The client side: sends `input` (then ends its direction unless `keep_open`), collects all
// replies until the server closes.
ringd::task<std::string> client(ringd::io_context& ctx, ringd::unique_fd fd, std::string input,
                                bool keep_open) {
    (void)co_await ringd::async_send_all(ctx, fd, std::as_bytes(std::span(input)));
    if (!keep_open) ::shutdown(fd.get(), SHUT_WR);
    std::string out;
    std::byte buf[4096];
    for (;;) {
        auto n = co_await ringd::async_recv(ctx, fd, buf);
        if (!n || *n == 0) break;
        out.append(reinterpret_cast<const char*>(buf), *n);
    }
    co_return out;
}

ringd::task<void> server(receive_context rc, ringd::buffer_ring& pool, ringd::unique_fd fd,
                         receive_limits limits) {
    plain_inbound stream(rc.io, std::move(fd), pool);
    co_await serve_connection(rc, stream, limits, "test-peer");
}

ringd::task<std::string> exchange(harness& h, std::string input, bool keep_open) {
    int sv[2];
    REQUIRE(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) == 0);
    ringd::scope s;
    s.spawn(
        server(receive_context{h.ctx, h.files, h.log}, h.pool, ringd::unique_fd(sv[0]), h.limits));
    auto replies = co_await client(h.ctx, ringd::unique_fd(sv[1]), std::move(input), keep_open);
    co_await s.join();
    co_return replies;
}

// Sends `prefix`, then one byte of `trickle` every `interval` (then ends its direction) while
// reading replies until the server closes; the replies and how long that took.
ringd::task<std::pair<std::string, std::chrono::milliseconds>>
trickle_exchange(harness& h, std::string prefix, std::string trickle,
                 std::chrono::milliseconds interval) {
    int sv[2];
    REQUIRE(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) == 0);
    ringd::unique_fd fd(sv[1]);
    ringd::scope s, sender;
    s.spawn(
        server(receive_context{h.ctx, h.files, h.log}, h.pool, ringd::unique_fd(sv[0]), h.limits));
    auto started = std::chrono::steady_clock::now();
    auto send = [&]() -> ringd::task<void> {
        (void)co_await ringd::async_send_all(h.ctx, fd, std::as_bytes(std::span(prefix)));
        for (char c : trickle) {
            if (!co_await ringd::sleep_for(h.ctx, interval)) co_return;
            auto n = ::send(fd.get(), &c, 1, MSG_NOSIGNAL | MSG_DONTWAIT);
            if (n != 1) co_return;
        }
        ::shutdown(fd.get(), SHUT_WR); // all sent: the server sees the end after its reply
    };
    sender.spawn(send());
    std::string out;
    std::byte buf[512];
    for (;;) {
        auto n = co_await ringd::async_recv(h.ctx, fd, buf);
        if (!n || *n == 0) break;
        out.append(reinterpret_cast<const char*>(buf), *n);
    }
    auto took = std::chrono::duration_cast<std::chrono::milliseconds>(
        std::chrono::steady_clock::now() - started);
    sender.request_stop();
    co_await sender.join();
    fd.reset();
    co_await s.join();
    co_return std::pair{out, took};
}

std::string talk(harness& h, std::string input, bool keep_open = false) {
    return ringd::testing::run_bounded(h.ctx, exchange(h, std::move(input), keep_open), 10s);
}

bool spool_is_empty(harness& h) {
    return files_in(h.dir.path() / "in").empty() && files_in(h.dir.path() / "tmp").empty();
}

const std::string abc_sha = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";

} // namespace

TEST_CASE("PUT stores the file and answers OK with size and sha256; PING answers PONG",
          "[receiver]") {
    harness h;
    CHECK(talk(h, "PUT abc 3\nabcPING\nPUT empty 0\n") ==
          "OK 3 " + abc_sha + "\nPONG\n" +
              "OK 0 e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855\n");
    CHECK(files_in(h.dir.path() / "in") == std::vector<std::string>{"abc", "empty"});
}

TEST_CASE(
    "a retry with the same content is OK again; other content is 409 and the connection goes on",
    "[receiver]") {
    harness h;
    CHECK(talk(h, "PUT abc 3\nabcPUT abc 3\nabcPUT abc 3\nxyzPING\n") ==
          "OK 3 " + abc_sha + "\nOK 3 " + abc_sha +
              "\nERR 409 abc exists with other content\nPONG\n");
    std::ifstream in(h.dir.path() / "in" / "abc");
    std::string content;
    in >> content;
    CHECK(content == "abc");
}

TEST_CASE("bad names and traversal get 400 and store nothing", "[receiver]") {
    harness h;
    for (const char* req : {"PUT ../escape 3\nabc", "PUT .hidden 3\nabc", "PUT a/b 3\nabc"}) {
        INFO(req);
        auto reply = talk(h, req);
        CHECK(reply.starts_with("ERR 400 bad name"));
        CHECK(spool_is_empty(h));
    }
    CHECK_FALSE(std::filesystem::exists(h.dir.path() / "escape"));
}

TEST_CASE("a body shorter than announced gets 400 and leaves nothing", "[receiver]") {
    harness h;
    CHECK(talk(h, "PUT short 10\nabc") == "ERR 400 connection closed after 3 of 10 bytes\n");
    CHECK(spool_is_empty(h));
}

TEST_CASE("a file above max_file_size gets 413 before any byte is stored", "[receiver]") {
    harness h;
    auto reply = talk(h, "PUT big 2000000\n" + std::string(1000, 'x'));
    CHECK(reply == "ERR 413 2000000 bytes is above the limit of 1048576\n");
    CHECK(spool_is_empty(h));
}

TEST_CASE("a file larger than the free space gets 507", "[receiver]") {
    harness h;
    h.limits.max_file_size = UINT64_MAX;
    auto reply = talk(h, "PUT huge 8000000000000\nxx");
    CHECK(reply.starts_with("ERR 507 "));
    CHECK(spool_is_empty(h));
}

TEST_CASE("garbage and overlong lines get 400", "[receiver]") {
    harness h;
    CHECK(talk(h, "HELLO THERE\n").starts_with("ERR 400 unknown request 'HELLO THERE'"));
    CHECK(talk(h, std::string(5000, 'z')).starts_with("ERR 400 request line longer than"));
    CHECK(talk(h, "PUT x").starts_with("ERR 400 connection closed inside a request line"));
    CHECK(spool_is_empty(h));
}

TEST_CASE("an idle client gets 400 and is disconnected, also in the middle of a body",
          "[receiver]") {
    harness h;
    h.limits.idle_timeout = 200ms;
    CHECK(talk(h, "", true) == "ERR 400 idle for 200 ms\n");
    CHECK(talk(h, "PUT slow 10\nabc", true) == "ERR 400 idle for 200 ms\n");
    CHECK(spool_is_empty(h));
}

TEST_CASE("a large file streams through a small buffer with the right digest", "[receiver]") {
    harness h;
    h.limits.max_file_size = 64 << 20;
    std::string body(3 << 20, '\0');
    for (std::size_t i = 0; i < body.size(); ++i) body[i] = static_cast<char>(i * 7 + (i >> 12));
    sha256 expected;
    expected.update(std::as_bytes(std::span(body)));
    auto reply = talk(h, "PUT big " + std::to_string(body.size()) + "\n" + body);
    CHECK(reply == "OK " + std::to_string(body.size()) + " " + expected.finish_hex() + "\n");
    CHECK(std::filesystem::file_size(h.dir.path() / "in" / "big") == body.size());
}

TEST_CASE("request lines and bodies that span many small buffers arrive intact", "[receiver]") {
    harness h(tiny_buffers());
    std::string name(255, 'n');
    std::string body(5000, '\0');
    for (std::size_t i = 0; i < body.size(); ++i) body[i] = static_cast<char>(i * 13);
    sha256 expected;
    expected.update(std::as_bytes(std::span(body)));
    auto reply = talk(h, "PING\nPUT " + name + " 5000\n" + body + "PUT abc 3\nabcPING\n");
    CHECK(reply == "PONG\nOK 5000 " + expected.finish_hex() + "\nOK 3 " + abc_sha + "\nPONG\n");
    CHECK(std::filesystem::file_size(h.dir.path() / "in" / name) == body.size());
}

TEST_CASE("a request line longer than the limit is refused with 400 from a bounded accumulator, "
          "before its end arrives",
          "[receiver]") {
    harness h(tiny_buffers());
    // No newline and the connection kept open: the answer cannot wait for the line's end.
    auto reply = talk(h, "PUT " + std::string(400, 'x'), true);
    CHECK(reply ==
          "ERR 400 request line longer than " + std::to_string(max_line_length) + " bytes\n");
    // One byte over the limit, with its newline, spanning chunks.
    CHECK(talk(h, "PUT " + std::string(max_line_length - 3, 'y') + "\n")
              .starts_with("ERR 400 request line longer than"));
    CHECK(spool_is_empty(h));
}

TEST_CASE("a body trickled below min_rate is dropped at the end of the window although bytes keep "
          "coming",
          "[receiver]") {
    harness h;
    h.limits.idle_timeout = 300ms;
    h.limits.min_rate = 1000; // 300 bytes per window; the trickle brings ~15
    auto [reply, took] = ringd::testing::run_bounded(
        h.ctx, trickle_exchange(h, "PUT slow 100\n", std::string(100, 't'), 20ms), 10s);
    INFO(reply);
    CHECK(reply.starts_with("ERR 400 "));
    CHECK(reply.ends_with(" bytes in 300 ms, below the minimum of 1000 bytes/s\n"));
    CHECK(took < 1000ms); // one window (and a little), not the 2 s the trickle would last
    CHECK(spool_is_empty(h));
}

TEST_CASE("a body that keeps min_rate goes on across many windows, however it is spaced",
          "[receiver]") {
    harness h;
    h.limits.idle_timeout = 200ms;
    h.limits.min_rate = 50; // 10 bytes per window; the trickle brings ~20
    std::string body(40, 'b');
    auto [reply, took] =
        ringd::testing::run_bounded(h.ctx, trickle_exchange(h, "PUT steady 40\n", body, 10ms), 10s);
    sha256 expected;
    expected.update(std::as_bytes(std::span(body)));
    CHECK(reply == "OK 40 " + expected.finish_hex() + "\n");
}
