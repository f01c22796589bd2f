// SPDX-License-Identifier: MIT
// Why pidfds: a process is named by (pid, start time) when it is recorded and by a pidfd when it
// is acted on, so a recycled pid is never signalled, waited for, or adopted. Built and run as a
// test (doc_supervision_adopt).
#include <ringd/process.hpp>

#include <cstdio>

int main() {
    ringd::spawn_options o;
    o.argv = {"/bin/sleep", "100"};
    auto child = ringd::spawn(o);
    if (!child) return 1;
    const pid_t pid = child->pid();
    // [record]
    // What the table keeps: the pid and the start time (/proc/<pid>/stat field 22, clock ticks
    // after boot). Together they name one incarnation; the pid alone names whoever has it now.
    const std::uint64_t start_time = child->start_time();
    // [/record]
    // [adopt]
    // A restarted supervisor: pidfd_open first, then the start time is compared. Were the pid
    // recycled in between, the times differ (ESTALE) and nothing is adopted.
    auto again = ringd::process::adopt(pid, start_time);
    if (!again) {
        std::printf("pid %d: %s; start it afresh\n", pid, again.error().message().c_str());
        return 1;
    }
    auto stranger = ringd::process::adopt(pid, start_time + 1); // another incarnation
    std::printf("same start time: adopted; other start time: %s\n",
                stranger ? "adopted (wrong!)" : stranger.error().message().c_str());
    // [/adopt]
    (void)again->signal(SIGKILL); // through the pidfd: never a stranger
    int status = 0;
    ::waitpid(pid, &status, 0);
    return !stranger && stranger.error().value() == ESTALE ? 0 : 1;
}
