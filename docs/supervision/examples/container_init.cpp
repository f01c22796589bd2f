// SPDX-License-Identifier: MIT
// The supervisor as a container's init: a subreaper (or PID 1) gets every orphan and must reap
// it. Built and run as a test (doc_supervision_container_init).
#include <ringd/container_init.hpp>
#include <ringd/scope.hpp>
#include <ringd/supervisor.hpp>
#include <ringd/timer.hpp>

#include <cstdio>

using namespace std::chrono_literals;

int main() {
    // [subreaper]
    // Orphans of our services now come to us rather than to PID 1 (as PID 1 we get them anyway).
    if (!ringd::become_child_subreaper()) return 1;
    ringd::io_context ctx;
    ringd::logger log("container_init");
    log.set_threshold(ringd::log_level::info); // "reap pid N: orphan exited with status 0"
    bool reaped = false;
    log.use_hook([&](ringd::log_level, std::string_view line) {
        reaped = reaped || line.find("orphan") != std::string_view::npos;
    });
    ringd::supervisor_options options;
    options.reap_orphans = true; // SIGCHLD on a signalfd; reap whatever is not a service's own
    ringd::supervisor sup(ctx, log, options);
    // [/subreaper]
    ringd::service_spec daemonizer;
    daemonizer.name = "daemonizer";
    daemonizer.argv = {"/bin/sh", "-c", "(sleep 0.1 &); exec sleep 100"}; // leaves an orphan
    if (!sup.add(daemonizer)) return 1;
    auto demo = [&]() -> ringd::task<void> {
        ringd::scope s;
        s.spawn(sup.run());
        for (int i = 0; i < 300 && !reaped; ++i) co_await ringd::sleep_for(ctx, 10ms);
        // [forward]
        // SIGTERM (docker stop) → stop every service in reverse order; SIGHUP → forwarded.
        sup.signal_all(SIGHUP);
        sup.shutdown();
        // [/forward]
        co_await s.join();
    };
    ctx.run(demo());
    return reaped ? 0 : 1;
}
