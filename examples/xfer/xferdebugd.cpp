// SPDX-License-Identifier: MIT
// xferdebugd — collects the log records of every xfer process (one datagram each, on
// run_dir/xferdebugd.sock) for problem reports. A datagram "!dump PATH" writes the records held in
// memory to PATH and answers "OK N" (or "ERR reason") to its sender: `xferctl debug-dump`.
//   xferdebugd -c FILE      SIGHUP: reopen the file (after an outside rotation); SIGTERM: exit
#include "config.hpp"
#include "debug_collector.hpp"

#include <ringd/cli.hpp>
#include <ringd/daemon.hpp>
#include <ringd/fd.hpp>
#include <ringd/io_context.hpp>
#include <ringd/ops.hpp>
#include <ringd/scope.hpp>

#include <poll.h>
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

// Binds the socket, collects until the stop request; SIGHUP reopens the records file. Setup
// errors throw (daemon_run gives the exit code: 75 for a shortage, 77 for a permission, 1 else).
ringd::task<int> run(ringd::daemon_context& d, const xfer::config& c) {
    std::filesystem::create_directories(c.log_dir);
    auto socket = bind_datagram(c.debug_socket());
    xfer::debug_collector records(c.log_dir + "/xferdebugd.records", ring_records, rotate_bytes);
    ringd::scope work;
    work.spawn(collect(d.io(), socket, records));
    d.on_reload([&records]() -> ringd::expected<void, std::string> {
        records.reopen();
        return {};
    });
    d.ready();
    co_await d.stopped();
    work.request_stop();
    co_await work.join();
    ::unlink(c.debug_socket().c_str());
    co_return ringd::exit_code::ok;
}

} // namespace

int main(int argc, char** argv) {
    std::string config_path;
    auto args = ringd::cli::parse(
        {"xferdebugd", "usage: xferdebugd -c FILE\nCollects the debug records of the xfer family "
                       "(xferctl debug-dump); run by xferrd.\n"},
        argc, argv, {ringd::cli::required(ringd::cli::value("config", 'c', "FILE", config_path))});
    if (!args) return args.error();
    auto params = xfer::family_child("xferdebugd");
    auto c = xfer::load_config(config_path);
    if (!c) {
        std::fprintf(stderr, "xferdebugd: %s\n", c.error().c_str());
        return ringd::exit_code::config;
    }
    return ringd::daemon_run(std::move(params),
                             [&](ringd::daemon_context& d) { return run(d, *c); });
}
