// SPDX-License-Identifier: MIT
// Restart policies on a real crash loop: the delay grows, and the start limit turns the service
// `failed`. Built and run as a test (doc_supervision_restart_policy).
#include <ringd/scope.hpp>
#include <ringd/supervisor.hpp>
#include <ringd/timer.hpp>

#include <cstdio>
#include <cstdlib>
#include <string>

using namespace std::chrono_literals;

namespace {

ringd::task<int> demo(ringd::io_context& ctx, ringd::supervisor& sup) {
    ringd::scope s;
    s.spawn(sup.run()); // drives every service until shutdown()
    for (int i = 0; i < 500; ++i) {
        if (sup.status("crasher")->state == ringd::supervision::state::failed) break;
        co_await ringd::sleep_for(ctx, 10ms);
    }
    const bool failed = sup.status("crasher")->state == ringd::supervision::state::failed;
    sup.shutdown(); // stops everything in reverse start order; run() then returns
    co_await s.join();
    co_return failed ? 0 : 1;
}

} // namespace

int main() {
    char dir[] = "/tmp/ringd-doc-XXXXXX";
    if (::mkdtemp(dir) == nullptr) return 1;
    ringd::io_context ctx;
    ringd::logger log("restart_policy"); // stderr: "restart_policy: exit crasher: ..."
    // [supervisor]
    ringd::supervisor_options options;
    options.log_dir = dir;   // <dir>/<name>.<pid>; earlier instances' files are kept (keep_logs)
    options.table_path = {}; // no persistent table in this example
    ringd::supervisor sup(ctx, log, options);
    // [/supervisor]

    ringd::service_spec crasher;
    crasher.name = "crasher";
    crasher.argv = {"/bin/sh", "-c", "exit 3"};
    // [policy]
    ringd::supervision::service_policy& p = crasher.policy;
    p.restart = ringd::supervision::restart_policy::on_failure; // always | on_failure | never
    p.restart_delay = 20ms;                                     // first delay...
    p.backoff_factor = 2.0;       // ...doubled after each failed run: 20, 40, 80 ms
    p.max_restart_delay = 1s;     // up to this
    p.stable_after = 10s;         // a run this long resets the delay
    p.start_limit_burst = 3;      // more than 3 starts...
    p.start_limit_interval = 60s; // ...within 60 s: failed, until an operator restarts it
    // cssd's "re-invoke 5 s after an exit" is restart_delay = 5s, backoff_factor = 1.
    // [/policy]
    // [add]
    if (auto added = sup.add(crasher); !added) { // a bad spec or a name in use
        std::fprintf(stderr, "%s\n", added.error().c_str());
        return 1;
    }
    // starts it (in start order) once sup.run() runs; the next exit is a crash, and so on
    // [/add]
    const int rc = ctx.run(demo(ctx, sup));
    std::system(("rm -rf " + std::string(dir)).c_str());
    return rc;
}
