// SPDX-License-Identifier: MIT
// restarts_load — the load client of bench/restarts.sh: keeps a steady rate of short
// connections (connect, send one line, read one line back, close) against a TCP server on
// loopback while the server is restarted, and counts how each connection ended.
//
//   restarts_load --port P [--rate R] [--threads T] [--line TEXT] [--expect TEXT]
//                 [--reply-timeout-ms MS] [--max-seconds S]
//
// Runs until SIGINT or SIGTERM (or --max-seconds, default 600), then prints one line:
//   seconds=<s> connections=<n> conn_per_s=<r> ok=<n> refused=<n> reset=<n> unanswered=<n>
//   other=<n>
// refused: connect() failed with ECONNREFUSED (nobody listened). reset: ECONNRESET or EPIPE on
// send or receive (a queued connection dropped when its listener closed). unanswered: the
// connection ended, or stayed silent for --reply-timeout-ms (default 3000), before the whole
// reply came. other: any other failure, or a wrong reply (the first one of each is printed).
// Exit 0, or 1 for bad usage.
//
// T threads (default 32) each pace themselves to R/T connections per second (R default 6000;
// 0: as fast as they can). A thread that falls behind does not try to catch up by more than
// one second's worth. Source addresses 127.0.0.1..16 (IP_BIND_ADDRESS_NO_PORT) spread the
// client's TIME_WAIT sockets over 16 address pairs, so a long run does not run out of ports.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace {

using clock_type = std::chrono::steady_clock;

enum outcome { ok, refused, reset, unanswered, other, outcomes };
constexpr const char* outcome_names[outcomes] = {"ok", "refused", "reset", "unanswered", "other"};

struct options {
    int port = 0;
    double rate = 6000;
    int threads = 32;
    std::string line = "restart-load";
    std::string expect; // empty: the line itself
    int reply_timeout_ms = 3000;
    int max_seconds = 600;
};

std::atomic<bool> stop_requested{false};
std::atomic<long> counts[outcomes] = {};
std::mutex first_error_lock;
bool first_error_printed[outcomes] = {};

void note_first(outcome o, const std::string& what) {
    std::lock_guard<std::mutex> g(first_error_lock);
    if (first_error_printed[o]) return;
    first_error_printed[o] = true;
    std::fprintf(stderr, "restarts_load: first %s: %s\n", outcome_names[o], what.c_str());
}

// One connection from source address 127.0.0.<source>.
outcome round_trip(const options& o, int source, const std::string& request,
                   const std::string& reply_wanted) {
    int s = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (s < 0) {
        note_first(other, std::string("socket: ") + std::strerror(errno));
        return other;
    }
    struct closer {
        int fd;
        ~closer() { ::close(fd); }
    } close_at_end{s};
    int one = 1;
    ::setsockopt(s, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof one);
    sockaddr_in from{};
    from.sin_family = AF_INET;
    from.sin_addr.s_addr = htonl(INADDR_LOOPBACK + static_cast<unsigned>(source));
    if (::bind(s, reinterpret_cast<sockaddr*>(&from), sizeof from) != 0) {
        note_first(other, std::string("bind: ") + std::strerror(errno));
        return other;
    }
    timeval tv{o.reply_timeout_ms / 1000, (o.reply_timeout_ms % 1000) * 1000};
    ::setsockopt(s, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    ::setsockopt(s, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    sockaddr_in to{};
    to.sin_family = AF_INET;
    to.sin_port = htons(static_cast<std::uint16_t>(o.port));
    to.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (::connect(s, reinterpret_cast<sockaddr*>(&to), sizeof to) != 0) {
        if (errno == ECONNREFUSED) return refused;
        if (errno == ECONNRESET) return reset;
        note_first(other, std::string("connect: ") + std::strerror(errno));
        return other;
    }
    if (::send(s, request.data(), request.size(), MSG_NOSIGNAL) !=
        static_cast<ssize_t>(request.size())) {
        if (errno == ECONNRESET || errno == EPIPE) return reset;
        note_first(other, std::string("send: ") + std::strerror(errno));
        return other;
    }
    std::string reply;
    char buf[512];
    while (reply.size() < reply_wanted.size()) {
        ssize_t n = ::recv(s, buf, sizeof buf, 0);
        if (n > 0) {
            reply.append(buf, static_cast<std::size_t>(n));
            continue;
        }
        if (n < 0 && errno == ECONNRESET) return reset;
        return unanswered; // EOF before the reply, or the timeout
    }
    if (reply != reply_wanted) {
        note_first(other, "reply '" + reply + "'");
        return other;
    }
    return ok;
}

void client_thread(const options& o, int index) {
    const std::string request = o.line + "\n";
    const std::string reply = (o.expect.empty() ? o.line : o.expect) + "\n";
    const auto period = o.rate > 0 ? std::chrono::duration_cast<clock_type::duration>(
                                         std::chrono::duration<double>(o.threads / o.rate))
                                   : clock_type::duration::zero();
    auto next = clock_type::now();
    for (long i = 0; !stop_requested.load(std::memory_order_relaxed); ++i) {
        const int source = 1 + static_cast<int>((i * o.threads + index) % 16);
        ++counts[round_trip(o, source, request, reply)];
        if (period == clock_type::duration::zero()) continue;
        next += period;
        auto now = clock_type::now();
        if (next > now)
            std::this_thread::sleep_until(next);
        else if (now - next > std::chrono::seconds(1))
            next = now - std::chrono::seconds(1); // behind: catch up by at most one second
    }
}

int usage(const char* why) {
    std::fprintf(stderr,
                 "restarts_load: %s\nusage: restarts_load --port P [--rate R] [--threads T] "
                 "[--line TEXT] [--expect TEXT] [--reply-timeout-ms MS] [--max-seconds S]\n",
                 why);
    return 1;
}

bool parse_number(const char* text, double& out) {
    char* end = nullptr;
    out = std::strtod(text, &end);
    return end != text && *end == '\0' && out >= 0;
}

} // namespace

int main(int argc, char** argv) {
    options o;
    for (int i = 1; i < argc; ++i) {
        std::string arg = argv[i];
        if (i + 1 >= argc) return usage(("option " + arg + " needs a value").c_str());
        const char* value = argv[++i];
        double n = 0;
        if (arg == "--line") {
            o.line = value;
        } else if (arg == "--expect") {
            o.expect = value;
        } else if (!parse_number(value, n)) {
            return usage(("bad value for " + arg + ": '" + value + "'").c_str());
        } else if (arg == "--port") {
            o.port = static_cast<int>(n);
        } else if (arg == "--rate") {
            o.rate = n;
        } else if (arg == "--threads") {
            o.threads = static_cast<int>(n);
        } else if (arg == "--reply-timeout-ms") {
            o.reply_timeout_ms = static_cast<int>(n);
        } else if (arg == "--max-seconds") {
            o.max_seconds = static_cast<int>(n);
        } else {
            return usage(("unknown option " + arg).c_str());
        }
    }
    if (o.port <= 0 || o.port > 65535) return usage("--port P (1-65535) is required");
    if (o.threads < 1 || o.threads > 256) return usage("--threads must be 1-256");

    // SIGINT/SIGTERM end the run: taken by sigwait in the main thread (blocked everywhere).
    sigset_t stop_signals;
    sigemptyset(&stop_signals);
    sigaddset(&stop_signals, SIGINT);
    sigaddset(&stop_signals, SIGTERM);
    sigaddset(&stop_signals, SIGALRM);
    ::pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);
    ::alarm(static_cast<unsigned>(o.max_seconds));

    const auto started = clock_type::now();
    std::vector<std::thread> threads;
    for (int t = 0; t < o.threads; ++t) threads.emplace_back(client_thread, std::cref(o), t);
    int sig = 0;
    ::sigwait(&stop_signals, &sig);
    stop_requested = true;
    for (auto& t : threads) t.join();
    const double seconds = std::chrono::duration<double>(clock_type::now() - started).count();
    long total = 0;
    for (auto& c : counts) total += c.load();
    std::printf("seconds=%.2f connections=%ld conn_per_s=%.0f", seconds, total, total / seconds);
    for (int k = 0; k < outcomes; ++k) std::printf(" %s=%ld", outcome_names[k], counts[k].load());
    std::printf("\n");
    return 0;
}
