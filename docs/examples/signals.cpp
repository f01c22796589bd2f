// SPDX-License-Identifier: MIT
// docs/examples/signals.cpp — chapter 3: signals as events. It signals itself to run as a test.
#include <ringd.hpp>

#include <cstdio>

// [lifecycle]
ringd::task<int> daemon_body(ringd::io_context& ctx) {
    ringd::lifecycle_signals signals(ctx); // SIGHUP, SIGTERM, SIGINT: blocked, read via signalfd
    ::kill(::getpid(), SIGHUP);            // (a test stands in for the operator)
    ::kill(::getpid(), SIGTERM);
    int reloads = 0;
    for (;;) {
        auto event = co_await signals.next(); // no handler runs; the loop just wakes up
        if (!event) co_return 1;
        if (*event == ringd::lifecycle_event::stop) break;
        ++reloads; // re-read the configuration here, at leisure, with the full library at hand
    }
    std::printf("reloads=%d, then a graceful stop\n", reloads);
    co_return reloads == 1 ? 0 : 1;
}
// [/lifecycle]

// [main]
int main() {
    ringd::block_signals({SIGHUP, SIGTERM, SIGINT}); // first: every later thread inherits it
    ringd::io_context ctx;
    return ctx.run(daemon_body(ctx));
}
// [/main]
