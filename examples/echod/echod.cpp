// SPDX-License-Identifier: MIT
// echod — the smallest complete ringd daemon: it echoes each line back.
//   echod --listen ADDR [--listen ADDR...] [--config FILE] [--drain-timeout S]
//         [--pid-file F] [--foreground] [--user U] [--group G] [--notify-fd N]
// ADDR is HOST:PORT, [V6]:PORT or a UNIX path; port 0 picks a free port, and the bound address
// is printed once listening. Without --foreground it detaches (daemon_run) and its starter
// exits 0 once it listens; with it, it tells systemd (NOTIFY_SOCKET) or s6 (--notify-fd) instead,
// and uses sockets passed by socket activation. SIGHUP re-reads FILE (prefix=TEXT: put before
// each echoed line); a bad file keeps the old settings and the reason goes to ringd-control.
// SIGTERM/SIGINT: stop accepting, let open connections finish (at most --drain-timeout
// seconds), exit 0. Upgrades: echod offers its listening sockets to its successor
// (`ringd-control --upgrade`), and a socket it inherits for an address it was told to --listen
// on is used instead of binding again.
#include <ringd.hpp>
#include <ringd/cli.hpp>
#include <ringd/daemon.hpp>
#include <ringd/daemon_serve.hpp>
#include <ringd/inherit_listeners.hpp>
#include <ringd/notify.hpp>
#include <ringd/process_title.hpp>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <string>
#include <vector>

using namespace std::chrono_literals;
using ringd::task;

namespace {

// [settings]
struct settings {
    std::string prefix; // put before every echoed line
};

// Reads FILE as key=value lines. The error names the file, the line and the fault.
ringd::expected<settings, std::string> load_settings(const std::string& path) {
    settings s;
    if (path.empty()) return s;
    std::ifstream in(path);
    if (!in) return ringd::unexpected<std::string>(path + ": cannot open: " + std::strerror(errno));
    std::string line;
    for (int number = 1; std::getline(in, line); ++number) {
        if (line.empty() || line[0] == '#') continue;
        auto eq = line.find('=');
        std::string key = line.substr(0, eq);
        if (eq == std::string::npos || key != "prefix")
            return ringd::unexpected<std::string>(path + ":" + std::to_string(number) +
                                                  ": expected prefix=TEXT, got '" + line + "'");
        s.prefix = line.substr(eq + 1);
    }
    return s;
}
// [/settings]

// Sends back the complete lines of `chunk`, each after the current prefix; the first one starts
// with `partial`, and what follows the last newline is kept there. False: the connection ends
// (a send failed, or the line in progress grew past max_line, which the client is told).
task<bool> echo_chunk(ringd::io_context& ctx, ringd::borrowed_fd fd, ringd::received chunk,
                      std::string& partial, const settings& current) {
    constexpr std::size_t max_line = 4096;
    const std::string_view data = chunk.text();
    const std::size_t last_nl = data.rfind('\n');
    const std::size_t whole = last_nl == data.npos ? 0 : last_nl + 1;
    std::string_view lines = data.substr(0, whole); // complete lines
    std::string out;
    if (current.prefix.empty() && partial.empty()) {
        // The common case sends straight from the pool's buffer: no copy.
        auto sent = co_await ringd::async_send_all(ctx, fd, std::as_bytes(std::span(lines)));
        if (!sent) co_return false;
    } else {
        for (auto nl = lines.find('\n'); nl != lines.npos; nl = lines.find('\n')) {
            out += current.prefix;
            out += partial;
            out.append(lines.substr(0, nl + 1));
            partial.clear();
            lines.remove_prefix(nl + 1);
        }
    }
    partial.append(data.substr(whole));
    chunk.release(); // what is left is copied: the buffer can go back
    const bool too_long = partial.size() > max_line;
    if (too_long) out += "error: line longer than 4096 bytes\n";
    if (!out.empty()) {
        auto sent = co_await ringd::async_send_all(ctx, fd, std::as_bytes(std::span(out)));
        if (!sent) co_return false;
    }
    co_return !too_long;
}

// One connection. Reads come from the shared pool, so a connection waiting for its next line
// holds no buffer: only this frame and its reader's state (~400 bytes in all; `partial` owns
// no memory while no line is in progress). The work on a chunk happens in echo_chunk's frame,
// which exists only while there is work.
// [echo-lines]
task<void> echo_lines(ringd::io_context& ctx, ringd::buffer_ring& pool, ringd::unique_fd fd,
                      const settings& current) {
    {
        ringd::recv_stream in(pool, fd);
        std::string partial; // the start of a line whose end has not arrived
        for (;;) {
            auto chunk = co_await in.next();
            if (!chunk || chunk->empty()) break; // error, cancelled, or the client closed
            const bool more = co_await echo_chunk(ctx, fd, std::move(*chunk), partial, current);
            if (!more) break;
        }
    }
    ringd::close_detached(ctx, std::move(fd));
}
// [/echo-lines]

// [serve]
// The daemon's body: reload on SIGHUP; daemon_serve offers the listeners for upgrades, says
// ready, accepts on every listener until SIGTERM, then stops accepting (none is dropped: in an
// upgrade, the connections not yet accepted wait in the backlog for the successor) and drains.
task<int> serve(ringd::daemon_context& d, std::vector<ringd::listener>& listeners,
                const std::string& config, settings current) {
    ringd::buffer_ring pool(d.io()); // every connection's reads: 256 buffers of 4 KiB, shared
    // SIGHUP: all or nothing. A bad file keeps `current` and says why (ringd-control prints it).
    d.on_reload([&]() -> ringd::expected<void, std::string> {
        auto fresh = load_settings(config);
        if (!fresh) return ringd::unexpected<std::string>(fresh.error());
        current = *fresh;
        return {};
    });
    // [hand-over]
    // Opts in to upgrades under this name: `ringd-control --upgrade` passes these sockets on
    // to the successor (lifecycle 4), and so does systemd's fd store ($FDSTORE).
    ringd::serve_options o;
    o.name = "echod-listen";
    auto served = co_await ringd::daemon_serve(d, listeners, o, [&](ringd::unique_fd c) {
        return echo_lines(d.io(), pool, std::move(c), current);
    });
    // [/hand-over]
    if (!served.drained)
        std::fprintf(stderr, "echod: drain timeout: closed the connections still open (of %zu)\n",
                     served.open_at_stop);
    std::fprintf(stderr, "echod: stopped\n");
    co_return 0;
}
// [/serve]

constexpr const char* usage_text =
    "usage: echod --listen ADDR [--listen ADDR...] [--config FILE] [--drain-timeout S]\n"
    "             [--pid-file F] [--foreground] [--user U] [--group G] [--notify-fd N]\n"
    "  ADDR: HOST:PORT, [V6]:PORT, /unix/path or @abstract; port 0 = ephemeral\n"
    "  without --foreground echod detaches and its starter exits once it is listening;\n"
    "  sockets passed by systemd (LISTEN_FDS) are used as well; SIGHUP re-reads FILE\n"
    "  (prefix=TEXT); SIGTERM drains (at most S seconds) and exits 0\n";

int usage(const std::string& why) {
    return ringd::cli::usage_error({"echod", usage_text}, why);
}

} // namespace

int main(int argc, char** argv) {
    (void)ringd::init_process_title(argc, argv);
    std::vector<ringd::socket_address> addresses;
    std::string config;
    long drain_s = 5;
    ringd::daemon_params params;
    params.program = "echod";
    params.flags.preserve_cwd = true; // relative --config paths keep working after a reload
    using ringd::cli::value;
    auto args = ringd::cli::parse(
        {"echod", usage_text}, argc, argv,
        {ringd::cli::flag("foreground", params.flags.foreground),
         value("listen", 0, "ADDR",
               [&](const std::string& v) {
                   auto a = ringd::socket_address::parse(v);
                   if (a) addresses.push_back(*a);
                   return a ? std::string() : a.error();
               }),
         value("config", 0, "FILE", config), value("pid-file", 0, "F", params.pid_file),
         value("user", 0, "U", params.user), value("group", 0, "G", params.group),
         value("notify-fd", 0, "N",
               [&](const std::string& v) {
                   params.notification_fd = ringd::cli::number<int>(v).value_or(-1);
                   const bool ok = params.notification_fd >= 0 && params.notification_fd <= 1 << 20;
                   return std::string(ok ? "" : "not a descriptor number");
               }),
         value("drain-timeout", 0, "S", [&](const std::string& v) {
             drain_s = ringd::cli::number<long>(v).value_or(-1);
             return std::string(drain_s >= 0 ? "" : "not a number of seconds");
         })});
    if (!args) return args.error();
    params.stop_timeout = std::chrono::seconds(drain_s);
    auto initial = load_settings(config);
    if (!initial) {
        std::fprintf(stderr, "echod: %s\n", initial.error().c_str());
        return ringd::exit_code::config;
    }

    // [main]
    // Phase one: PID file locked (or "already running"), user resolved, signals blocked.
    auto start = ringd::daemon_init(params);
    if (!start) {
        std::fprintf(stderr, "%s\n", start.error().message.c_str());
        return start.error().exit_code;
    }
    // Listeners now, while still root (ports below 1024), before detaching: a bind error reaches
    // the terminal (or ringd-control) with its exit code.
    std::vector<ringd::listener> listeners;
    try {
        // An inherited socket (an upgrade, systemd) for an address we were told to listen on is
        // that listener; the other addresses are bound.
        listeners = ringd::inherit_or_bind(addresses);
    } catch (const std::system_error& e) {
        std::fprintf(stderr, "echod: %s\n", e.what());
        return ringd::exit_code_for(e.code());
    }
    if (listeners.empty())
        return usage("at least one --listen ADDR is needed (or socket activation)");
    for (auto& l : listeners)
        std::printf("echod: listening on %s\n", l.address().to_string().c_str());
    std::fflush(stdout);
    (void)ringd::set_process_title("echod [" + ringd::addresses_text(listeners) + "]");

    return ringd::daemon_run(std::move(*start), [&](ringd::daemon_context& d) {
        return serve(d, listeners, config, *initial);
    });
    // [/main]
}
