// SPDX-License-Identifier: MIT
// The program every consumer under tests/consumers/ builds (./run test-install copies it next to
// each one's build file): a loop, a timer, the version macro.
#include <ringd.hpp>

#include <cstdio>

using namespace std::chrono_literals;

ringd::task<int> nap(ringd::io_context& ctx) {
    auto slept = co_await ringd::sleep_for(ctx, 1ms);
    co_return slept ? 0 : 1;
}

int main() {
    ringd::io_context ctx;
    int status = ctx.run(nap(ctx));
    std::printf("ringd %s: %s\n", RINGD_VERSION_STRING, status == 0 ? "ok" : "failed");
    return status;
}
