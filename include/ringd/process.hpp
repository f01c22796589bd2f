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
#include <stop_token>
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

    io_context* ctx_;                // the ring
    process* process_;               // what we wait for (outlives the operation)
    wait_method method_;             // how
    bool reap_;                      // reap a child once it ended
    std::coroutine_handle<> waiter_; // resumed at the end
    int error_ = 0;                  // errno of the wait, 0 if it ended
    exit_info info_;                 // how it ended
    std::optional<std::stop_callback<canceller>> stop_callback_; // live while waiting
};

[[nodiscard]] inline exit_operation async_wait(io_context& ctx, process& p,
                                               wait_method method = wait_method::automatic,
                                               bool reap = true) noexcept {
    return {ctx, p, method, reap};
}

// =============================================================================================
// Implementation

inline std::string signal_name(int signo) {
    if (const char* abbrev = ::sigabbrev_np(signo)) return std::string("SIG") + abbrev;
    return "signal " + std::to_string(signo);
}

inline std::optional<int> parse_signal(std::string_view text) noexcept {
    int number = 0;
    auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), number);
    if (!text.empty() && ec == std::errc() && end == text.data() + text.size())
        return number >= 1 && number < NSIG ? std::optional(number) : std::nullopt;
    char upper[32];
    if (text.size() >= sizeof upper) return std::nullopt;
    for (std::size_t i = 0; i < text.size(); ++i)
        upper[i] =
            (text[i] >= 'a' && text[i] <= 'z') ? static_cast<char>(text[i] - 'a' + 'A') : text[i];
    std::string_view name(upper, text.size());
    if (name.starts_with("SIG")) name.remove_prefix(3);
    for (int s = 1; s < NSIG; ++s)
        if (const char* abbrev = ::sigabbrev_np(s); abbrev != nullptr && name == abbrev) return s;
    return std::nullopt;
}

inline std::string exit_info::to_string() const {
    switch (code) {
    case CLD_EXITED:
        return "exited with status " + std::to_string(status);
    case CLD_KILLED:
        return "killed by " + signal_name(status);
    case CLD_DUMPED:
        return "killed by " + signal_name(status) + " (core dumped)";
    case 0:
        return "ended (status unknown: not a child of this process)";
    default:
        return "ended (si_code " + std::to_string(code) + ", status " + std::to_string(status) +
               ")";
    }
}

namespace detail {

// The path execve gets: argv[0] itself if it holds a '/', else the first executable file of
// that name in PATH (from the child's environment, else the default).
inline expected<std::string, spawn_error>
process_resolve_program(const std::string& program, const std::vector<std::string>& env) {
    if (program.find('/') != std::string::npos) return program;
    std::string path = "/usr/local/bin:/usr/bin:/bin";
    for (const std::string& e : env)
        if (e.starts_with("PATH=")) path = e.substr(5);
    std::string first_found;
    for (std::size_t start = 0; start <= path.size();) {
        std::size_t colon = path.find(':', start);
        if (colon == std::string::npos) colon = path.size();
        std::string dir = path.substr(start, colon - start);
        start = colon + 1;
        std::string candidate = (dir.empty() ? std::string(".") : dir) + "/" + program;
        struct stat st {};
        if (::stat(candidate.c_str(), &st) != 0 || !S_ISREG(st.st_mode)) continue;
        if (::access(candidate.c_str(), X_OK) == 0) return candidate;
        if (first_found.empty()) first_found = candidate; // exists, not executable: EACCES later
    }
    if (!first_found.empty()) return first_found;
    return unexpected<spawn_error>(
        spawn_error{std::make_error_code(std::errc::no_such_file_or_directory), "execve " + program,
                    "not found in PATH " + path});
}

inline std::vector<std::string> process_environment(const spawn_options& o) {
    std::vector<std::string> env;
    if (o.inherit_environment)
        for (char** e = environ; e != nullptr && *e != nullptr; ++e) env.emplace_back(*e);
    for (const std::string& kv : o.environment) {
        const std::string_view key = std::string_view(kv).substr(0, kv.find('=') + 1);
        std::erase_if(env, [&](const std::string& e) { return e.starts_with(key); });
        env.push_back(kv);
    }
    return env;
}

inline std::string process_child_step_what(process_child_step step, const spawn_options& o,
                                           const std::string& program, const std::string& log) {
    switch (step) {
    case process_child_step::process_group:
        return o.group == process_group::own_session ? "setsid" : "setpgid";
    case process_child_step::stdin_null:
        return "open /dev/null";
    case process_child_step::log_file:
        return "open log file " + log;
    case process_child_step::stdio:
        return "dup2 stdio";
    case process_child_step::descriptors:
        return "pass descriptors";
    case process_child_step::cwd:
        return "chdir " + o.cwd;
    case process_child_step::groups:
        return "setgroups";
    case process_child_step::gid:
        return "setresgid";
    case process_child_step::uid:
        return "setresuid";
    case process_child_step::exec:
        return "execve " + program;
    case process_child_step::none:
        break;
    }
    return "spawn";
}

// A close-on-exec descriptor numbered ≥ 3, so that the child's dup2 onto 0..2 cannot hit it.
inline int process_above_stdio(int fd) noexcept {
    if (fd < 0 || fd > 2) return fd;
    const int moved = ::fcntl(fd, F_DUPFD_CLOEXEC, 3);
    ::close(fd);
    return moved;
}

} // namespace detail

inline expected<std::string, spawn_error> resolve_program(const spawn_options& o) {
    if (o.argv.empty() || o.argv[0].empty())
        return unexpected<spawn_error>(spawn_error{
            std::make_error_code(std::errc::invalid_argument), "spawn", "no program to run"});
    return detail::process_resolve_program(o.argv[0], detail::process_environment(o));
}

inline expected<process, spawn_error> spawn(const spawn_options& o) {
    auto bad = [](std::string detail) {
        return unexpected<spawn_error>(spawn_error{
            std::make_error_code(std::errc::invalid_argument), "spawn", std::move(detail)});
    };
    auto failed = [](int e, std::string what) {
        return unexpected<spawn_error>(
            spawn_error{{e, std::system_category()}, std::move(what), {}});
    };
    if (o.argv.empty() || o.argv[0].empty()) return bad("no program to run (argv is empty)");
    if (o.descriptors.size() + o.listen_fds.size() > 16)
        return bad("more than 16 descriptors to pass");
    std::vector<int> sources, targets;
    const int listen_end = 3 + static_cast<int>(o.listen_fds.size());
    std::string listen_names;
    for (const listen_fd& l : o.listen_fds) {
        if (l.name.find_first_of(":\n") != std::string::npos)
            return bad("listening socket name '" + l.name + "' contains ':' or a newline");
        listen_names += (listen_names.empty() ? "" : ":") + l.name;
        sources.push_back(l.fd.get());
        targets.push_back(3 + static_cast<int>(targets.size()));
    }
    for (const fd_mapping& m : o.descriptors) {
        if (m.target < 3 || m.target > 63)
            return bad("descriptor target " + std::to_string(m.target) + " is not in 3..63");
        if (m.target < listen_end)
            return bad("descriptor target " + std::to_string(m.target) +
                       " is taken by a listening socket (3.." + std::to_string(listen_end - 1) +
                       ")");
        for (int t : targets)
            if (t == m.target)
                return bad("descriptor target " + std::to_string(t) + " given twice");
        sources.push_back(m.source.get());
        targets.push_back(m.target);
    }
    if (o.log_dir.empty() != o.log_name.empty()) return bad("log_dir and log_name go together");
    if (!o.log_dir.empty() && (o.stdout_to.get() >= 0 || o.stderr_to.get() >= 0))
        return bad("log_dir and stdout_to/stderr_to exclude each other");
    if (o.log_name.find('/') != std::string::npos)
        return bad("log name '" + o.log_name + "' contains '/'");

    // Everything the child needs is prepared here: it may not allocate.
    std::vector<std::string> env = detail::process_environment(o);
    auto program = detail::process_resolve_program(o.argv[0], env);
    if (!program) return unexpected<spawn_error>(program.error());
    if (!o.listen_fds.empty()) {
        std::erase_if(env, [](const std::string& e) {
            return e.starts_with("LISTEN_PID=") || e.starts_with("LISTEN_FDS=") ||
                   e.starts_with("LISTEN_FDNAMES=");
        });
        env.push_back("LISTEN_FDS=" + std::to_string(o.listen_fds.size()));
        env.push_back("LISTEN_FDNAMES=" + listen_names);
        env.push_back("LISTEN_PID=" + std::string(24, '\0')); // the child writes its pid here
    }
    std::vector<char*> argv, envp;
    for (const std::string& a : o.argv) argv.push_back(const_cast<char*>(a.c_str()));
    argv.push_back(nullptr);
    for (std::string& e : env) envp.push_back(e.data());
    envp.push_back(nullptr);
    std::string log_buffer;
    if (!o.log_dir.empty()) {
        log_buffer = o.log_dir + "/" + o.log_name + ".";
        log_buffer.append(24, '\0'); // room for the pid
    }
    const std::size_t log_prefix = log_buffer.empty() ? 0 : log_buffer.size() - 24;

    detail::process_child_plan plan;
    plan.path = program->c_str();
    plan.argv = argv.data();
    plan.envp = envp.data();
    plan.cwd = o.cwd.empty() ? nullptr : o.cwd.c_str();
    plan.group_mode = static_cast<int>(o.group);
    plan.log_path = log_buffer.empty() ? nullptr : log_buffer.data();
    plan.log_prefix = log_prefix;
    plan.log_capacity = log_buffer.size();
    plan.stdout_fd = o.stdout_to.get();
    plan.stderr_fd = o.stderr_to.get();
    if (o.run_as) {
        plan.set_ids = true;
        plan.uid = o.run_as->uid;
        plan.gid = o.run_as->gid;
        plan.groups = o.run_as->groups.data();
        plan.group_count = o.run_as->groups.size();
    }
    plan.fd_sources = sources.data();
    plan.fd_targets = targets.data();
    plan.fd_count = sources.size();
    if (!o.listen_fds.empty()) plan.listen_pid_digits = env.back().data() + 11;

    // The child reports a failure before execve in `failure` (shared memory), or through a
    // close-on-exec pipe when it was forked.
    detail::process_child_failure failure;
    int pidfd = -1;
    long pid = -1;
    bool forked = !o.share_memory_until_exec;
    if (!forked) {
        plan.shared_failure = &failure;
        pid = detail::process_start_child(plan, &pidfd);
        // No CLONE_PIDFD (< 5.2), or clone refused by a seccomp filter: fork instead.
        forked = pid < 0 && (errno == EINVAL || errno == ENOSYS || errno == EPERM);
    }
    unique_fd status_read;
    if (forked) {
        int pipe_fds[2];
        if (::pipe2(pipe_fds, O_CLOEXEC) != 0) return failed(errno, "pipe2");
        status_read.reset(detail::process_above_stdio(pipe_fds[0]));
        unique_fd status_write(detail::process_above_stdio(pipe_fds[1]));
        if (!status_read || !status_write) return failed(errno, "fcntl F_DUPFD_CLOEXEC");
        plan.shared_failure = nullptr;
        plan.status_fd = status_write.get();
        pid = ::fork();
        if (pid == 0) detail::process_child_main(plan);
    }
    if (pid < 0) return failed(errno, forked ? "fork" : "clone");

    process p;
    p.pid_ = static_cast<pid_t>(pid);
    p.is_child_ = true;
    p.leads_group_ = o.group != process_group::inherit;
    int pidfd_error = 0;
    bool child_failed = failure.step != 0;
    if (forked) {
        // Our unreaped child cannot vanish or be recycled, so this names the right process.
        pidfd = detail::process_pidfd_open(p.pid_);
        if (pidfd < 0) pidfd_error = errno;
        std::size_t got = 0;
        while (got < sizeof failure) {
            ssize_t n = ::read(status_read.get(), reinterpret_cast<char*>(&failure) + got,
                               sizeof failure - got);
            if (n < 0 && errno == EINTR) continue;
            if (n <= 0) break;
            got += static_cast<std::size_t>(n);
        }
        child_failed = got == sizeof failure;
    }
    p.pidfd_.reset(pidfd);

    if (child_failed || pidfd_error != 0) {
        // The child failed before execve (it _exits at once), or we cannot name it: reap it.
        if (pidfd_error != 0) ::kill(p.pid_, SIGKILL);
        siginfo_t si{};
        while (::waitid(P_PID, static_cast<id_t>(p.pid_), &si, WEXITED) != 0 && errno == EINTR) {
        }
        if (pidfd_error != 0) return failed(pidfd_error, "pidfd_open");
        std::string log(log_buffer.c_str());
        if (!log.empty()) log = o.log_dir + "/" + o.log_name + "." + std::to_string(p.pid_);
        return failed(failure.error,
                      detail::process_child_step_what(
                          static_cast<detail::process_child_step>(failure.step), o, *program, log));
    }
    if (!log_buffer.empty())
        p.log_path_ = o.log_dir + "/" + o.log_name + "." + std::to_string(p.pid_);
    // An unreaped child's /proc entry stays, even once it has ended.
    if (auto st = detail::read_process_stat(p.pid_)) p.start_time_ = st->start_time;
    return p;
}

inline result<process> process::adopt(pid_t pid, std::uint64_t start_time) noexcept {
    if (pid <= 0) return errno_error(ESRCH);
    process p;
    p.pidfd_.reset(detail::process_pidfd_open(pid));
    if (!p.pidfd_) return last_error();
    auto st = detail::read_process_stat(pid);
    if (!st) return errno_error(errno == ENOENT ? ESRCH : errno);
    if (st->start_time != start_time) return errno_error(ESTALE);
    p.pid_ = pid;
    p.start_time_ = st->start_time;
    p.leads_group_ = st->pgid == pid;
    // WNOWAIT|WNOHANG: learns whether it is our child without reaping anything.
    siginfo_t si{};
    p.is_child_ =
        ::waitid(P_PIDFD, static_cast<id_t>(p.pidfd_.get()), &si, WEXITED | WNOHANG | WNOWAIT) == 0;
    return p;
}

inline result<void> process::signal(int sig) const noexcept {
    if (detail::process_pidfd_send_signal(pidfd_.get(), sig, 0) != 0) return last_error();
    return {};
}

inline result<void> process::signal_group(int sig) const noexcept {
    if (!leads_group_) return signal(sig);
    // Until the kernel answers EINVAL (older than 6.9).
    static std::atomic<bool> pidfd_groups{true};
    if (pidfd_groups.load(std::memory_order_relaxed)) {
        if (detail::process_pidfd_send_signal(pidfd_.get(), sig,
                                              detail::process_signal_group_flag) == 0)
            return {};
        if (errno != EINVAL) return last_error();
        pidfd_groups.store(false, std::memory_order_relaxed);
    }
    // While we have not reaped the leader, its pid (and so the group id) cannot be recycled.
    // An adopted process is reaped by someone else: signal the leader alone, safely.
    if (reaped_ || !is_child_) return signal(sig);
    if (::kill(-pid_, sig) != 0) return last_error();
    return {};
}

inline result<std::optional<exit_info>> process::try_reap() noexcept {
    siginfo_t si{};
    if (::waitid(P_PIDFD, static_cast<id_t>(pidfd_.get()), &si, WEXITED | WNOHANG) != 0)
        return last_error();
    if (si.si_pid == 0) return std::optional<exit_info>();
    reaped_ = true;
    return std::optional<exit_info>(exit_info::from_siginfo(si));
}

template <class Promise>
bool exit_operation::await_suspend(std::coroutine_handle<Promise> awaiting) noexcept {
    waiter_ = awaiting;
    const std::stop_token* token = detail::stop_token_of(awaiting);
    if (token != nullptr && token->stop_requested()) {
        error_ = ECANCELED;
        return false;
    }
    const bool waitid_op = method_ == wait_method::waitid_op ||
                           (method_ == wait_method::automatic && waitid_op_supported());
    start(*ctx_, process_->pidfd_.get(), process_->is_child_, reap_, waitid_op);
    if (token != nullptr && token->stop_possible()) stop_callback_.emplace(*token, canceller{this});
    return true;
}

inline result<exit_info> exit_operation::await_resume() noexcept {
    stop_callback_.reset();
    if (error_ != 0) return errno_error(error_);
    return info_;
}

inline void exit_operation::on_process_end(int error, const siginfo_t& info) noexcept {
    error_ = error;
    info_ = exit_info::from_siginfo(info);
    if (error == 0 && reap_ && info_.known()) process_->reaped_ = true;
    waiter_.resume();
}

} // namespace ringd
