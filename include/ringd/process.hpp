// SPDX-License-Identifier: MIT
// ringd/process.hpp — processes named by pidfds: spawn a child, signal it or its process group,
// wait for its end on the ring. A pidfd names one incarnation, so a recycled pid is never hit.
//
//   ringd::spawn_options o;
//   o.argv = {"/bin/sleep", "5"};
//   o.log_dir = "/var/log/x"; o.log_name = "nap";       // stdout/stderr: /var/log/x/nap.<pid>
//   auto child = ringd::spawn(o);
//   if (!child) fail(child.error().message());          // "execve /bin/sleep: ..."
//   auto end = co_await ringd::async_wait(ctx, *child); // result<exit_info>
#pragma once

#include <ringd/credentials.hpp>
#include <ringd/detail/process_child.hpp>
#include <ringd/detail/process_syscalls.hpp>
#include <ringd/detail/process_wait.hpp>
#include <ringd/detail/stop_binding.hpp>
#include <ringd/fd.hpp>
#include <ringd/io_context.hpp>
#include <ringd/result.hpp>
#include <ringd/task.hpp>

#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <charconv>
#include <coroutine>
#include <cstdint>
#include <cstring>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace ringd {

// ---------------------------------------------------------------------------------------------
// How a process ended

struct exit_info {
    int code = 0;   // CLD_EXITED, CLD_KILLED or CLD_DUMPED; 0: unknown (not our child)
    int status = 0; // the exit status (CLD_EXITED) or the signal number

    [[nodiscard]] static exit_info from_siginfo(const siginfo_t& si) noexcept {
        if (si.si_pid == 0) return {};
        return {si.si_code, si.si_status};
    }
    [[nodiscard]] bool known() const noexcept { return code != 0; }
    [[nodiscard]] bool exited() const noexcept { return code == CLD_EXITED; }
    [[nodiscard]] bool signalled() const noexcept {
        return code == CLD_KILLED || code == CLD_DUMPED;
    }
    [[nodiscard]] bool success() const noexcept { return exited() && status == 0; }
    // "exited with status 1", "killed by SIGKILL", "killed by SIGSEGV (core dumped)",
    // "ended (status unknown: not a child of this process)".
    [[nodiscard]] std::string to_string() const;
};

// "SIGTERM" for 15 (or "signal 77" for a number without a name).
[[nodiscard]] std::string signal_name(int signo);
// "TERM", "SIGTERM", "term" or "15" → 15; nullopt for anything else.
[[nodiscard]] std::optional<int> parse_signal(std::string_view text) noexcept;

// ---------------------------------------------------------------------------------------------
// Spawning

// Which process group the child is in. Its own group (or session) lets signal_group() stop
// whatever it started as well; a terminal's Ctrl-C no longer reaches it directly.
enum class process_group : std::uint8_t { inherit, own_group, own_session };

// A descriptor of the parent that the child gets as `target` (3..63), e.g. a notification fd.
struct fd_mapping {
    borrowed_fd source;
    int target;
};

// A listening socket handed to a child by systemd's socket-activation protocol (sd_listen_fds(3)).
struct listen_fd {
    borrowed_fd fd;
    std::string name; // its LISTEN_FDNAMES entry: no ':' and no newline
};

struct spawn_options {
    std::vector<std::string> argv; // argv[0]: a path, or a name looked up in PATH
    // KEY=VALUE pairs. inherit_environment: added to this process's environment (replacing
    // equal keys); else the child's whole environment.
    std::vector<std::string> environment;
    bool inherit_environment = true;
    std::string cwd;                   // empty: this process's working directory
    std::optional<credentials> run_as; // nullopt: this process's ids (needs root otherwise)
    // Non-empty: stdout and stderr go to `<log_dir>/<log_name>.<pid>` (created 0640, truncated).
    // Empty: the child shares this process's stdout and stderr. stdin is always /dev/null.
    std::string log_dir;
    std::string log_name;
    // ≥ 0: the child's stdout (stderr) is a copy of this descriptor of ours, e.g. a pipe that
    // the caller reads (a supervisor prefixing each line), instead of a log file or our own.
    // Not together with log_dir.
    borrowed_fd stdout_to{-1};
    borrowed_fd stderr_to{-1};
    process_group group = process_group::own_group;
    std::vector<fd_mapping> descriptors; // at most 16; every other descriptor closes at exec
    // Listening sockets passed the way systemd passes them: as descriptors 3, 4, ... in this
    // order (`descriptors` must not target those), with LISTEN_FDS, LISTEN_FDNAMES and
    // LISTEN_PID — set in the child to its own pid before execve, which only the child can do.
    // A supervisor that holds its services' sockets passes them to every start this way.
    std::vector<listen_fd> listen_fds;
    // true: clone(CLONE_VM | CLONE_VFORK | CLONE_PIDFD), nothing copied; false: fork +
    // pidfd_open, the fallback path where that clone is unavailable (tests use it).
    bool share_memory_until_exec = true;
};

// Why a spawn failed, and at which step: message() reads "execve /opt/x/run: Permission denied".
struct spawn_error {
    std::error_code code;
    std::string what;   // the step and its object: "execve /opt/x/run", "chdir /srv", "clone"
    std::string detail; // replaces code.message() when set (bad options)

    [[nodiscard]] std::string message() const {
        return what + ": " + (detail.empty() ? code.message() : detail);
    }
};

class process;

// The file that spawn(o) would execve: o.argv[0] itself if it holds a '/', else the first
// executable file of that name in the child's PATH (o.environment's PATH=, else this process's,
// else /usr/local/bin:/usr/bin:/bin). Checking this file (a permission rule, say) checks what
// will run, not a namesake in the caller's PATH.
[[nodiscard]] expected<std::string, spawn_error> resolve_program(const spawn_options& o);

// Starts a child: clone(CLONE_VM | CLONE_VFORK | CLONE_PIDFD) on a stack of its own, or fork +
// pidfd_open where that is missing or refused.
// In the child: signal mask emptied and every disposition default, own process group (by
// default), stdin /dev/null, stdout/stderr to the log file, descriptors placed, cwd, groups,
// gid, uid, execve. Returns once the child has called execve successfully; a failure of any
// step in the child comes back as a spawn_error (the child is reaped). Blocks only as long as
// the child takes to reach execve.
[[nodiscard]] expected<process, spawn_error> spawn(const spawn_options& options);

// ---------------------------------------------------------------------------------------------
// A process

class process {
public:
    process() noexcept = default;
    process(process&&) noexcept = default;
    process& operator=(process&&) noexcept = default;
    // Closes the pidfd. Neither kills nor reaps: a supervisor's children may outlive it, and an
    // unreaped child stays a zombie until it is reaped or this process ends.
    ~process() = default;

    // Takes over a running process by pid, e.g. a child of a previous supervisor. It must still
    // be the same incarnation: its start time (clock ticks after boot, /proc/<pid>/stat field
    // 22) must equal `start_time`. The pidfd is opened first and the start time read after, so
    // a pid recycled in between is caught. Errors: no_such_process (gone), ESTALE (the pid
    // names another process now), EPERM, ...
    [[nodiscard]] static result<process> adopt(pid_t pid, std::uint64_t start_time) noexcept;

    [[nodiscard]] bool valid() const noexcept { return pidfd_.valid(); }
    [[nodiscard]] pid_t pid() const noexcept { return pid_; }
    [[nodiscard]] borrowed_fd pidfd() const noexcept { return pidfd_; }
    // We may waitid() it (spawned here, or adopted as an orphan by a subreaper).
    [[nodiscard]] bool is_child() const noexcept { return is_child_; }
    // It leads its own process group (so signal_group reaches what it started).
    [[nodiscard]] bool leads_group() const noexcept { return leads_group_; }
    // Clock ticks after boot when it started (identifies the incarnation with the pid).
    [[nodiscard]] std::uint64_t start_time() const noexcept { return start_time_; }
    // Its stdout/stderr file, if spawn() made one.
    [[nodiscard]] const std::string& log_path() const noexcept { return log_path_; }
    [[nodiscard]] bool reaped() const noexcept { return reaped_; }

    // Sends `sig` through the pidfd. ESRCH once it has ended.
    result<void> signal(int sig) const noexcept;
    // Sends `sig` to its whole process group (signal() if it does not lead one). Through the
    // pidfd where the kernel can (Linux 6.9); else kill(-pgid) while the leader is unreaped, so
    // that the group id cannot have been recycled. ESRCH when nobody is left.
    result<void> signal_group(int sig) const noexcept;
    // Reaps the child if it has ended (after a wait with reap = false): its exit_info, or nullopt
    // while it runs. ECHILD if it is not our child.
    result<std::optional<exit_info>> try_reap() noexcept;

private:
    friend expected<process, spawn_error> spawn(const spawn_options& options);
    friend class exit_operation;

    unique_fd pidfd_;              // names the process
    pid_t pid_ = 0;                // for display, /proc and the process group
    std::uint64_t start_time_ = 0; // /proc/<pid>/stat field 22
    bool is_child_ = false;        // waitid() works on it
    bool leads_group_ = false;     // pgid == pid
    bool reaped_ = false;          // waited for with reap: its pid may be recycled
    std::string log_path_;         // <log_dir>/<name>.<pid>, or empty
};

// ---------------------------------------------------------------------------------------------
// Waiting for the end

// How a wait reaches the kernel.
enum class wait_method : std::uint8_t {
    automatic,  // waitid_op where the kernel has it, else pidfd_poll
    waitid_op,  // IORING_OP_WAITID (Linux 6.7): one SQE, the kernel fills the siginfo
    pidfd_poll, // POLLIN on the pidfd, then waitid(P_PIDFD, WNOHANG)
};
// Whether IORING_OP_WAITID is available here (probed once).
[[nodiscard]] inline bool waitid_op_supported() noexcept {
    return detail::process_waitid_op_supported();
}

// Waits until the process ends. With reap (the default) a child is reaped; without, it stays a
// zombie (WNOWAIT) so that its group can still be signalled safely, and try_reap() follows.
// A process that is not our child ends with exit_info{} (unknown status). Errors:
// operation_canceled (the awaiting coroutine's stop was requested), or waitid's.
class exit_operation : private detail::process_exit_watch<exit_operation> {
public:
    exit_operation(io_context& ctx, process& p, wait_method method = wait_method::automatic,
                   bool reap = true) noexcept
        : ctx_(&ctx), process_(&p), method_(method), reap_(reap) {}

    bool await_ready() const noexcept { return false; }
    template <class Promise>
    bool await_suspend(std::coroutine_handle<Promise> awaiting) noexcept;
    result<exit_info> await_resume() noexcept;

private:
    friend class detail::process_exit_watch<exit_operation>;
    void on_process_end(int error, const siginfo_t& info) noexcept;

    struct canceller {
        exit_operation* op;
        void operator()() const noexcept { op->cancel(); }
    };

    io_context* ctx_;                      // the ring
    process* process_;                     // what we wait for (outlives the operation)
    wait_method method_;                   // how
    bool reap_;                            // reap a child once it ended
    std::coroutine_handle<> waiter_;       // resumed at the end
    int error_ = 0;                        // errno of the wait, 0 if it ended
    exit_info info_;                       // how it ended
    detail::stop_binding<canceller> stop_; // bound while waiting
};

[[nodiscard]] inline exit_operation async_wait(io_context& ctx, process& p,
                                               wait_method method = wait_method::automatic,
                                               bool reap = true) noexcept {
    return {ctx, p, method, reap};
}

} // namespace ringd

// The implementation.
#include <ringd/detail/process_impl.hpp>
#include <ringd/detail/process_spawn.hpp>
