// SPDX-License-Identifier: MIT
// A load client for restart tests over loopback TCP: threads that keep doing short round trips
// (connect, send one line, read one line back, close) and count how each one ended. Bounded: 2 s
// timeouts on every step; the destructor stops and joins the thread.
#pragma once

#include <ringd/fd.hpp>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/time.h>

#include <atomic>
#include <cerrno>
#include <string>
#include <thread>

namespace ringd::testing {

// What one connection did.
enum class trip { ok, refused, reset, unanswered, other };

// One round trip to 127.0.0.1:port: sends `line` + "\n" and expects `reply` + "\n" (empty:
// the line itself, as an echo server answers).
inline trip round_trip(int port, const std::string& line, const std::string& reply = {}) {
    ringd::unique_fd s(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
    if (!s) return trip::other;
    timeval tv{2, 0};
    ::setsockopt(s.get(), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    ::setsockopt(s.get(), SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(static_cast<std::uint16_t>(port));
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (::connect(s.get(), reinterpret_cast<sockaddr*>(&a), sizeof a) != 0)
        return errno == ECONNREFUSED ? trip::refused : trip::other;
    std::string msg = line + "\n";
    const std::string wanted = (reply.empty() ? line : reply) + "\n";
    if (::send(s.get(), msg.data(), msg.size(), MSG_NOSIGNAL) != static_cast<ssize_t>(msg.size()))
        return errno == ECONNRESET || errno == EPIPE ? trip::reset : trip::other;
    std::string got;
    char buf[256];
    while (got.size() < wanted.size()) {
        ssize_t n = ::recv(s.get(), buf, sizeof buf, 0);
        if (n > 0) {
            got.append(buf, static_cast<std::size_t>(n));
            continue;
        }
        if (n < 0 && errno == ECONNRESET) return trip::reset;
        return trip::unanswered; // EOF before the reply, or 2 s without one
    }
    return got == wanted ? trip::ok : trip::other;
}

// A client thread that keeps doing round trips until stopped, counting each outcome. `line`
// empty: numbered lines, echoed back; else `line` answered by `reply`.
class load_client {
public:
    explicit load_client(int port, std::string line = {}, std::string reply = {})
        : port_(port), line_(std::move(line)), reply_(std::move(reply)),
          thread_([this] { run(); }) {}
    ~load_client() { stop(); }
    load_client(const load_client&) = delete;
    load_client& operator=(const load_client&) = delete;
    void stop() {
        done_ = true;
        if (thread_.joinable()) thread_.join();
    }
    [[nodiscard]] long count(trip t) const { return counts_[static_cast<int>(t)].load(); }
    // Every round trip so far was answered: none refused, reset, unanswered or wrong.
    [[nodiscard]] bool lost_none() const {
        return count(trip::refused) + count(trip::reset) + count(trip::unanswered) +
                   count(trip::other) ==
               0;
    }
    // "ok 1200, refused 0, reset 0, unanswered 0, other 0", for test messages.
    [[nodiscard]] std::string summary() const {
        return "ok " + std::to_string(count(trip::ok)) + ", refused " +
               std::to_string(count(trip::refused)) + ", reset " +
               std::to_string(count(trip::reset)) + ", unanswered " +
               std::to_string(count(trip::unanswered)) + ", other " +
               std::to_string(count(trip::other));
    }

private:
    void run() {
        for (long i = 0; !done_; ++i)
            ++counts_[static_cast<int>(line_.empty()
                                           ? round_trip(port_, "line " + std::to_string(i))
                                           : round_trip(port_, line_, reply_))];
    }
    int port_;
    std::string line_, reply_;
    std::atomic<bool> done_{false};
    std::atomic<long> counts_[5] = {};
    std::thread thread_;
};

} // namespace ringd::testing
