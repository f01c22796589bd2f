// SPDX-License-Identifier: MIT
// The smallest daemon on daemon_run: PID file, reload hook, readiness, graceful stop.
// Built and run as a test: it runs in the foreground with its PID file in a temporary directory
// and asks itself to stop once it is ready.
#include <ringd/daemon.hpp>

#include <cstdio>
#include <cstdlib>
#include <string>

namespace {
std::string load_config() {
    return "greeting=hello";
} // stands in for parsing a file
} // namespace

// [body]
ringd::task<int> body(ringd::daemon_context& d) {
    std::string config = load_config();
    d.on_reload([&]() -> ringd::expected<void, std::string> {
        std::string fresh = load_config(); // all or nothing: on error return the reason,
        if (fresh.empty()) return ringd::unexpected<std::string>("empty configuration");
        config = fresh; // and the old configuration stays in force
        return {};
    });
    // ... bind or adopt listeners, spawn the accept loops into a scope ...
    d.ready("serving");   // detach mode: the starter exits 0 now; systemd: READY=1
    d.request_stop();     // (this example stops itself; a daemon waits for SIGTERM)
    co_await d.stopped(); // SIGTERM/SIGINT: STOPPING=1, the PID file says "exiting"
    // ... stop accepting, drain until d.stop_deadline(), then:
    co_return ringd::exit_code::ok;
}
// [/body]

int main() {
    char dir[] = "/tmp/ringd-doc-XXXXXX";
    if (::mkdtemp(dir) == nullptr) return 1;
    std::string pid_file = std::string(dir) + "/minimal.pid";
    // [params]
    ringd::daemon_params params;
    params.program = "minimald";
    params.pid_file = pid_file;     // flock()ed for the daemon's whole life
    params.flags.foreground = true; // under systemd/s6; leave false to detach
    params.stop_timeout = std::chrono::seconds(5);
    // [/params]
    // [run]
    auto start = ringd::daemon_init(params); // PID file locked, user resolved, signals blocked
    if (!start) {
        std::fprintf(
            stderr, "%s\n",
            start.error().message.c_str()); // "minimald: start ...: already running as PID 42"
        return start.error().exit_code;     // 73: temporary
    }
    // ... bind privileged listeners here, still as root ...
    int code = ringd::daemon_run(std::move(*start), body);
    // [/run]
    std::string cleanup = std::string("rm -rf ") + dir;
    (void)std::system(cleanup.c_str());
    return code;
}
