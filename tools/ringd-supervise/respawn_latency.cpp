// SPDX-License-Identifier: MIT
// respawn_latency — measures how long a supervised service is down when it crashes with a
// restart delay of 0: from the child's last instruction before exit to the next child's first
// instruction in main (both stamped by the child, CLOCK_MONOTONIC). Includes the kernel's exit,
// the completion on the ring, the supervisor's turn (leftovers killed, reap, state machine),
// clone + execve of the next child and its dynamic loading.
//   respawn_latency PROBE [--count N] [--table FILE] [--wait waitid|poll] [--run-ms MS]
// --run-ms: each child lives that long before it exits (default 0: a tight crash loop).
#include <ringd/scope.hpp>
#include <ringd/supervisor.hpp>
#include <ringd/timer.hpp>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <string>
#include <vector>

using namespace std::chrono_literals;

int main(int argc, char** argv) {
    if (argc < 2) {
        std::fprintf(stderr, "usage: respawn_latency PROBE [--count N] [--table FILE] [--wait "
                             "waitid|poll] [--run-ms MS]\n");
        return 1;
    }
    const std::string probe = argv[1];
    int count = 1000;
    std::string table;
    int run_ms = 0;
    ringd::wait_method method = ringd::wait_method::automatic;
    for (int i = 2; i + 1 < argc; i += 2) {
        const std::string opt = argv[i], value = argv[i + 1];
        if (opt == "--count")
            count = std::atoi(value.c_str());
        else if (opt == "--table")
            table = value;
        else if (opt == "--run-ms")
            run_ms = std::atoi(value.c_str());
        else if (opt == "--wait")
            method =
                value == "poll" ? ringd::wait_method::pidfd_poll : ringd::wait_method::waitid_op;
        else {
            std::fprintf(stderr, "respawn_latency: unknown option '%s'\n", opt.c_str());
            return 1;
        }
    }
    char dir[] = "/tmp/ringd-respawn-XXXXXX";
    if (::mkdtemp(dir) == nullptr) return 1;
    const std::string times = std::string(dir) + "/times";

    ringd::io_context ctx;
    ringd::logger log("respawn_latency");
    log.use_stderr(false);
    ringd::supervisor_options o;
    o.log_dir = dir;
    o.table_path = table;
    o.wait = method;
    ringd::supervisor sup(ctx, log, o);
    ringd::service_spec s;
    s.name = "probe";
    s.argv = {probe};
    s.environment = {"RESPAWN_TIMES=" + times, "RESPAWN_RUN_MS=" + std::to_string(run_ms)};
    s.policy.restart = ringd::supervision::restart_policy::always;
    s.policy.restart_delay = 0s;
    s.policy.start_limit_burst = 0; // no limit: a crash loop on purpose
    if (auto added = sup.add(s); !added) {
        std::fprintf(stderr, "respawn_latency: %s\n", added.error().c_str());
        return 1;
    }
    auto body = [&]() -> ringd::task<void> {
        ringd::scope sc;
        sc.spawn(sup.run());
        for (;;) {
            co_await ringd::sleep_for(ctx, 50ms);
            if (sup.status("probe")->restarts >= static_cast<unsigned>(count)) break;
        }
        sup.shutdown(false);
        co_await sc.join();
    };
    ctx.run(body());

    std::ifstream in(times);
    std::vector<double> gaps;
    char kind = 0;
    long long t = 0, last_exit = -1;
    while (in >> kind >> t) {
        if (kind == 's' && last_exit >= 0)
            gaps.push_back(static_cast<double>(t - last_exit) / 1000.0);
        if (kind == 'e') last_exit = t;
    }
    std::system(("rm -rf " + std::string(dir)).c_str());
    if (gaps.empty()) return 1;
    std::sort(gaps.begin(), gaps.end());
    auto at = [&](double q) {
        return gaps[std::min(gaps.size() - 1,
                             static_cast<std::size_t>(q * static_cast<double>(gaps.size())))];
    };
    std::printf("respawns=%zu run=%d ms wait=%s table=%s  exit->running us: min %.0f  median %.0f  "
                "p90 %.0f  p99 %.0f  max %.0f\n",
                gaps.size(), run_ms,
                method == ringd::wait_method::pidfd_poll
                    ? "poll"
                    : (ringd::waitid_op_supported() ? "waitid" : "poll"),
                table.empty() ? "none" : table.c_str(), gaps.front(), at(0.5), at(0.9), at(0.99),
                gaps.back());
    return 0;
}
