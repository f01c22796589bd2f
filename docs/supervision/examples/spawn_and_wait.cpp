// SPDX-License-Identifier: MIT
// A child on a pidfd: spawn it with its own log file, wait for its end on the ring, and signal
// its whole process group. Built and run as a test (doc_supervision_spawn_and_wait).
#include <ringd/process.hpp>
#include <ringd/timer.hpp>

#include <cstdio>
#include <cstdlib>
#include <string>

namespace {

ringd::task<int> demo(ringd::io_context& ctx, const std::string& dir) {
    // [spawn]
    ringd::spawn_options o;
    o.argv = {"/bin/sh", "-c", "echo started; sleep 100 & wait"};
    o.log_dir = dir; // stdout and stderr go to <dir>/<name>.<pid>
    o.log_name = "demo";
    // o.run_as = ringd::lookup_credentials("nobody").value(); (needs root)
    auto child = ringd::spawn(o); // returns once the child has exec'd, or says which step failed
    if (!child) {
        std::fprintf(stderr, "demo: %s\n", child.error().message().c_str()); // "execve ...: ..."
        co_return 1;
    }
    // [/spawn]
    co_await ringd::sleep_for(ctx, std::chrono::milliseconds(50));
    // [group]
    // The shell and the sleep it started share the child's own process group: one signal
    // through the pidfd reaches both (PIDFD_SIGNAL_PROCESS_GROUP, or kill(-pgid) while the
    // leader is unreaped, so the group id cannot have been recycled).
    (void)child->signal_group(SIGTERM);
    // [/group]
    // [wait]
    auto end = co_await ringd::async_wait(ctx, *child); // IORING_OP_WAITID, or poll + waitid
    if (!end) co_return 1;
    std::printf("pid %d %s; its log %s\n", child->pid(), end->to_string().c_str(),
                child->log_path().c_str()); // "pid 1234 killed by SIGTERM; ..."
    // [/wait]
    co_return end->signalled() && end->status == SIGTERM ? 0 : 1;
}

} // namespace

int main() {
    char dir[] = "/tmp/ringd-doc-XXXXXX";
    if (::mkdtemp(dir) == nullptr) return 1;
    ringd::io_context ctx;
    const int rc = ctx.run(demo(ctx, dir));
    std::system(("rm -rf " + std::string(dir)).c_str());
    return rc;
}
