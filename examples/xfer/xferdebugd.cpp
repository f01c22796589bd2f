// SPDX-License-Identifier: MIT
// xferdebugd — collects the log records of every xfer process (one datagram each, on
// run_dir/xferdebugd.sock) for problem reports. A datagram "!dump PATH" writes the records held in
// memory to PATH and answers "OK N" (or "ERR reason") to its sender: `xferctl debug-dump`.
//   xferdebugd -c FILE      SIGHUP: reopen the file (after an outside rotation); SIGTERM: exit
#include "config.hpp"
#include "debug_collector.hpp"

#include <ringd/cli.hpp>
#include <ringd/fd.hpp>
#include <ringd/io_context.hpp>
#include <ringd/ops.hpp>
#include <ringd/scope.hpp>
#include <ringd/signals.hpp>

#include <poll.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/un.h>

#include <cstdio>
#include <cstring>
#include <filesystem>
#include <string>

namespace {

constexpr std::size_t ring_records = 10000;      // in memory
constexpr std::uint64_t rotate_bytes = 4u << 20; // on disk, per file

ringd::unique_fd bind_datagram(const std::string& path) {
    ringd::unique_fd fd(::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
    if (!fd) ringd::throw_errno(errno, "socket");
    sockaddr_un a{};
    a.sun_family = AF_UNIX;
    if (path.size() >= sizeof a.sun_path) ringd::throw_errno(ENAMETOOLONG, "bind " + path);
    std::strcpy(a.sun_path, path.c_str());
    ::unlink(path.c_str()); // a datagram socket file left by a crash; the PID lock is the master's
    if (::bind(fd.get(), reinterpret_cast<sockaddr*>(&a), sizeof a) != 0)
        ringd::throw_errno(errno, "bind " + path);
    int buffer = 4 << 20; // bursts of log lines wait here, not in the senders
    ::setsockopt(fd.get(), SOL_SOCKET, SO_RCVBUF, &buffer, sizeof buffer);
    return fd;
}

ringd::task<void> collect(ringd::io_context& ctx, ringd::borrowed_fd socket,
                          xfer::debug_collector& records) {
    char datagram[8192];
    for (;;) {
        auto ready = co_await ringd::async_poll(ctx, socket, POLLIN);
        if (!ready) co_return; // cancelled: stopping
        for (;;) {
            sockaddr_un from{};
            socklen_t from_len = sizeof from;
            ssize_t n = ::recvfrom(socket.get(), datagram, sizeof datagram, MSG_DONTWAIT,
                                   reinterpret_cast<sockaddr*>(&from), &from_len);
            if (n < 0) break; // EAGAIN: all read
            std::string_view text(datagram, static_cast<std::size_t>(n));
            if (!text.starts_with("!dump ")) {
                records.add(text);
                continue;
            }
            long count = records.dump(std::string(text.substr(6)));
            std::string reply = count < 0 ? "ERR cannot write " + std::string(text.substr(6)) +
                                                ": " + std::strerror(errno)
                                          : "OK " + std::to_string(count);
            (void)::sendto(socket.get(), reply.data(), reply.size(), MSG_DONTWAIT,
                           reinterpret_cast<sockaddr*>(&from), from_len);
        }
    }
}

ringd::task<int> run(ringd::io_context& ctx, ringd::borrowed_fd socket,
                     xfer::debug_collector& records) {
    ringd::lifecycle_signals signals(ctx);
    ringd::scope work;
    work.spawn(collect(ctx, socket, records));
    for (;;) {
        auto event = co_await signals.next();
        if (!event || *event == ringd::lifecycle_event::stop) break;
        records.reopen();
    }
    work.request_stop();
    co_await work.join();
    co_return 0;
}

} // namespace

int main(int argc, char** argv) {
    std::string config_path;
    auto args = ringd::cli::parse(
        {"xferdebugd", "usage: xferdebugd -c FILE\nCollects the debug records of the xfer family "
                       "(xferctl debug-dump); run by xferrd.\n"},
        argc, argv, {ringd::cli::required(ringd::cli::value("config", 'c', "FILE", config_path))});
    if (!args) return args.error();
    ::prctl(PR_SET_PDEATHSIG, SIGTERM);
    auto c = xfer::load_config(config_path);
    if (!c) {
        std::fprintf(stderr, "xferdebugd: %s\n", c.error().c_str());
        return 78;
    }
    try {
        ringd::block_signals({SIGHUP, SIGTERM, SIGINT});
        std::filesystem::create_directories(c->log_dir);
        auto socket = bind_datagram(c->debug_socket());
        xfer::debug_collector records(c->log_dir + "/xferdebugd.records", ring_records,
                                      rotate_bytes);
        ringd::io_context ctx;
        int code = ctx.run(run(ctx, socket, records));
        ::unlink(c->debug_socket().c_str());
        return code;
    } catch (const std::exception& e) {
        std::fprintf(stderr, "xferdebugd: %s\n", e.what());
        return 75;
    }
}
