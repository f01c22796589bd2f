// echod — the smallest complete ringd daemon: it echoes each line back.
//   echod --listen ADDR [--listen ADDR...] [--config FILE] [--drain-timeout S]
// ADDR is HOST:PORT, [V6]:PORT or a UNIX path; port 0 picks a free port, and the bound address
// is printed once listening. SIGHUP re-reads FILE (prefix=TEXT: put before each echoed line);
// a bad file keeps the old settings. SIGTERM/SIGINT: stop accepting, let open connections
// finish (at most --drain-timeout seconds), exit 0.
#include <ringd.hpp>

#include <cstdio>
#include <cstring>
#include <fstream>
#include <string>
#include <vector>

using namespace std::chrono_literals;
using ringd::task;

namespace {

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

// Echoes complete lines; a line longer than the buffer ends the connection with a message.
task<void> echo_lines(ringd::io_context& ctx, ringd::unique_fd fd, const settings& current) {
    constexpr std::size_t max_line = 4096;
    std::string pending;
    std::byte buf[4096];
    for (;;) {
        auto n = co_await ringd::async_recv(ctx, fd, buf);
        if (!n || *n == 0) break; // error, cancelled, or the client closed
        pending.append(reinterpret_cast<const char*>(buf), *n);
        std::string out;
        std::size_t start = 0;
        for (auto nl = pending.find('\n'); nl != std::string::npos; nl = pending.find('\n', start)) {
            out += current.prefix;
            out.append(pending, start, nl + 1 - start);
            start = nl + 1;
        }
        pending.erase(0, start);
        if (pending.size() > max_line) out += "error: line longer than 4096 bytes\n";
        for (std::size_t sent = 0; sent < out.size();) {
            auto w = co_await ringd::async_send(ctx, fd, std::as_bytes(std::span(out)).subspan(sent));
            if (!w) co_return;
            sent += *w;
        }
        if (pending.size() > max_line) break;
    }
    (void)co_await ringd::async_close(ctx, std::move(fd));
}

task<void> accept_loop(ringd::io_context& ctx, const ringd::listener& l, ringd::scope& connections,
                       const settings& current) {
    ringd::accept_stream stream(ctx, l);
    for (;;) {
        auto c = co_await stream.next();
        if (!c) {
            if (!ringd::is_cancelled(c.error()))
                std::fprintf(stderr, "echod: accept on %s: %s\n", l.address().to_string().c_str(),
                             c.error().message().c_str());
            co_return;
        }
        connections.spawn(echo_lines(ctx, std::move(*c), current));
    }
}

// Cancels `target` after `delay` unless this task is cancelled first.
task<void> cancel_after(ringd::io_context& ctx, std::chrono::seconds delay, ringd::scope& target) {
    auto slept = co_await ringd::sleep_for(ctx, delay);
    if (slept) {
        std::fprintf(stderr, "echod: drain timeout: closing %zu connections\n", target.size());
        target.request_stop();
    }
}

task<int> run_daemon(ringd::io_context& ctx, std::vector<ringd::listener>& listeners,
                     std::string config, std::chrono::seconds drain_timeout, settings current) {
    ringd::lifecycle_signals signals(ctx);
    ringd::scope connections;
    ringd::scope acceptors;
    for (auto& l : listeners) acceptors.spawn(accept_loop(ctx, l, connections, current));

    for (;;) {
        auto event = co_await signals.next();
        if (!event) {
            std::fprintf(stderr, "echod: signalfd: %s\n", event.error().message().c_str());
            break;
        }
        if (*event == ringd::lifecycle_event::stop) break;
        auto fresh = load_settings(config); // reload: all or nothing
        if (fresh) {
            current = *fresh;
            std::fprintf(stderr, "echod: reloaded %s\n", config.empty() ? "(no config)" : config.c_str());
        } else {
            std::fprintf(stderr, "echod: reload failed, keeping the running settings: %s\n",
                         fresh.error().c_str());
        }
    }
    // Graceful stop: no new connections; open ones may finish within the drain timeout.
    std::fprintf(stderr, "echod: stopping, %zu connections open\n", connections.size());
    acceptors.request_stop();
    co_await acceptors.join();
    ringd::scope timer;
    timer.spawn(cancel_after(ctx, drain_timeout, connections));
    co_await connections.join();
    timer.request_stop();
    co_await timer.join();
    std::fprintf(stderr, "echod: stopped\n");
    co_return 0;
}

int usage(const char* why) {
    std::fprintf(stderr, "echod: %s\nusage: echod --listen ADDR [--listen ADDR...] [--config FILE] "
                         "[--drain-timeout S]\n", why);
    return 1;
}

} // namespace

int main(int argc, char** argv) {
    std::vector<ringd::socket_address> addresses;
    std::string config;
    long drain_s = 5;
    for (int i = 1; i < argc; ++i) {
        std::string arg = argv[i];
        if (arg == "--help" || arg == "-h") {
            std::printf("usage: echod --listen ADDR [--listen ADDR...] [--config FILE] [--drain-timeout S]\n"
                        "  ADDR: HOST:PORT, [V6]:PORT, /unix/path or @abstract; port 0 = ephemeral\n"
                        "  SIGHUP re-reads FILE (prefix=TEXT); SIGTERM drains and exits 0\n");
            return 0;
        }
        if (i + 1 >= argc) return usage(("option " + arg + " needs a value").c_str());
        std::string value = argv[++i];
        if (arg == "--listen") {
            auto a = ringd::socket_address::parse(value);
            if (!a) return usage(("bad --listen: " + a.error()).c_str());
            addresses.push_back(*a);
        } else if (arg == "--config") {
            config = value;
        } else if (arg == "--drain-timeout") {
            char* end = nullptr;
            drain_s = std::strtol(value.c_str(), &end, 10);
            if (*end != '\0' || drain_s < 0)
                return usage(("bad --drain-timeout '" + value + "': not a number of seconds").c_str());
        } else {
            return usage(("unknown option " + arg).c_str());
        }
    }
    if (addresses.empty()) return usage("at least one --listen ADDR is needed");
    auto initial = load_settings(config);
    if (!initial) return usage(initial.error().c_str());

    try {
        ringd::block_signals({SIGHUP, SIGTERM, SIGINT}); // before anything could start a thread
        ringd::io_context ctx;
        std::vector<ringd::listener> listeners;
        for (const auto& a : addresses) {
            listeners.push_back(ringd::listener::bind(a));
            std::printf("echod: listening on %s\n", listeners.back().address().to_string().c_str());
        }
        std::fflush(stdout);
        return ctx.run(run_daemon(ctx, listeners, config, std::chrono::seconds(drain_s), *initial));
    } catch (const std::exception& e) {
        std::fprintf(stderr, "echod: %s\n", e.what());
        return 1;
    }
}
