// SPDX-License-Identifier: MIT
// ringd-control's logic as a library call: probe a PID file, check and stop a daemon.
// Built and run as a test: it starts a detached daemon of its own (a forked copy of itself on
// daemon_run), then checks and stops it through the guard-file protocol.
#include <ringd/control.hpp>
#include <ringd/daemon.hpp>

#include <sys/wait.h>

#include <cstdio>
#include <cstdlib>
#include <string>

namespace {

int run_daemon(const std::string& pid_file) {
    ringd::daemon_params params;
    params.program = "exampled";
    params.pid_file = pid_file;
    return ringd::daemon_run(params, [](ringd::daemon_context& d) -> ringd::task<int> {
        d.ready();
        co_await d.stopped();
        co_return 0;
    });
}

} // namespace

int main() {
    char dir[] = "/tmp/ringd-doc-XXXXXX";
    if (::mkdtemp(dir) == nullptr) return 1;
    std::string pid_file = std::string(dir) + "/exampled.pid";
    pid_t starter = ::fork();
    if (starter == 0) ::_exit(run_daemon(pid_file)); // exits 0 once the daemon is ready
    int status = 0;
    ::waitpid(starter, &status, 0);
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) return 1;

    // [probe]
    auto st = ringd::probe_pid_file(pid_file); // never blocks; the lock is probed, not taken
    if (st && st->state == ringd::pid_file_state::running)
        std::printf("running as PID %d\n", static_cast<int>(st->pid));
    // [/probe]

    // [control]
    ringd::control_params check;
    check.pid_file = pid_file; // guard file: the same name with .lock
    check.action = ringd::control_action::check;
    auto out = ringd::daemon_control(check);
    std::printf("check: exit %d, %s, PID %d\n", out.exit_code, out.state.c_str(),
                static_cast<int>(out.pid));

    ringd::control_params stop = check;
    stop.action = ringd::control_action::stop;
    stop.timeout = std::chrono::seconds(10); // then SIGKILL, and out.killed says so
    out = ringd::daemon_control(stop);
    if (out.exit_code != ringd::control_exit::done)
        std::fprintf(stderr, "ringd-control: %s\n", out.message.c_str()); // "stop F: reason"
    // [/control]

    std::string cleanup = std::string("rm -rf ") + dir;
    (void)std::system(cleanup.c_str());
    return out.exit_code == ringd::control_exit::done && !out.killed ? 0 : 1;
}
