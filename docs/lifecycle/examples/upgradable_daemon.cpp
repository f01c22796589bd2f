// SPDX-License-Identifier: MIT
// A daemon that `ringd-control --upgrade` can replace without refusing a connection (lifecycle 4):
// its listener is inherited from its predecessor when there is one, offered to its successor,
// and drained at the stop. Built and run as a test: in the foreground, with its PID file in a
// temporary directory, it greets one client of its own, checks that it offered its socket (the
// ".listen" file beside the PID file names it), and stops.
#include <ringd/daemon.hpp>
#include <ringd/daemon_serve.hpp>
#include <ringd/inherit_listeners.hpp>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace {

// [connection]
// What the daemon does with one connection: the only part that is its own.
ringd::task<void> greet(ringd::io_context& ctx, ringd::unique_fd c) {
    constexpr std::string_view hello = "hello\n";
    (void)co_await ringd::async_send_all(ctx, c, std::as_bytes(std::span(hello)));
    ringd::close_detached(ctx, std::move(c));
}
// [/connection]

// The test's client: one greeting, then the offer is checked and the daemon asked to stop.
ringd::task<void> self_check(ringd::daemon_context& d, ringd::socket_address address, int& fault) {
    auto c = co_await ringd::connect(d.io(), address);
    std::byte buf[16];
    auto n = c ? co_await ringd::async_recv(d.io(), *c, buf) : ringd::result<std::size_t>(0);
    if (!n || *n != 6) fault = 1;
    std::ifstream offered(ringd::pid_file_sibling(d.params().pid_file, ".listen"));
    long pid = 0;
    offered >> pid;
    if (pid != ::getpid()) fault = 2; // the file names its holder: this daemon
    d.request_stop();
}

// [body]
ringd::task<int> body(ringd::daemon_context& d, std::vector<ringd::listener>& listeners) {
    // Offers the sockets (".listen" for ringd-control, and systemd's fd store), says ready(),
    // accepts until the stop, then stops accepting and drains until the stop deadline.
    ringd::serve_options o;
    o.name = "greeterd";
    auto served = co_await ringd::daemon_serve(
        d, listeners, o, [&](ringd::unique_fd c) { return greet(d.io(), std::move(c)); });
    co_return served.drained ? ringd::exit_code::ok : ringd::exit_code::failure;
}
// [/body]

// The body with the test's own client beside it.
ringd::task<int> checked_body(ringd::daemon_context& d, std::vector<ringd::listener>& listeners,
                              int& fault) {
    ringd::scope client;
    client.spawn(self_check(d, listeners[0].address(), fault));
    int code = co_await body(d, listeners);
    co_await client.join();
    co_return code;
}

} // namespace

int main() {
    char dir[] = "/tmp/ringd-doc-XXXXXX";
    if (::mkdtemp(dir) == nullptr) return 1;
    ringd::daemon_params params;
    params.program = "greeterd";
    params.pid_file = std::string(dir) + "/greeterd.pid";
    params.flags.foreground = true;
    int fault = 0;
    // [main]
    auto start = ringd::daemon_init(params);
    if (!start) {
        std::fprintf(stderr, "%s\n", start.error().message.c_str());
        return start.error().exit_code;
    }
    // The socket of the daemon this one replaces, if any (LISTEN_FDS); else bound here.
    std::vector<ringd::listener> listeners;
    try {
        listeners = ringd::inherit_or_bind({*ringd::socket_address::parse("127.0.0.1:0")});
    } catch (const std::system_error& e) {
        std::fprintf(stderr, "greeterd: %s\n", e.what());
        return ringd::exit_code_for(e.code());
    }
    int code = ringd::daemon_run(std::move(*start), [&](ringd::daemon_context& d) {
        return checked_body(d, listeners, fault); // a real daemon: body(d, listeners)
    });
    // [/main]
    std::string cleanup = std::string("rm -rf ") + dir;
    (void)std::system(cleanup.c_str());
    if (fault != 0) std::fprintf(stderr, "greeterd: self-check failed at step %d\n", fault);
    return code != 0 ? code : fault;
}
