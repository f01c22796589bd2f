// SPDX-License-Identifier: MIT
// ringd/daemon.hpp — daemon_params and daemon_run: a daemon's whole life around one coroutine.
// Lock the PID file, detach (or stay in the foreground for a supervisor), drop privileges, create
// the ring in the final process, run the body; SIGHUP reloads, SIGTERM/SIGINT stop.
//
//     auto start = ringd::daemon_init(params);        // as invoked: PID file locked, user resolved
//     ... bind listeners (still root) ...
//     return ringd::daemon_run(std::move(*start), [&](ringd::daemon_context& d) -> task<int> {
//         ... d.on_reload(...); d.ready(); co_await d.stopped(); drain; co_return 0; });
//
// Exit codes (a supervisor restarts on the temporary ones and gives up on the permanent ones):
//   0 ok · 1 failure (unclassified: treat as temporary) · 64 usage (permanent) · 73 already
//   running (temporary: the other instance may go) · 75 temporary (address in use, out of memory
//   or descriptors) · 77 no permission (permanent) · 78 configuration (permanent until the
//   configuration changes). systemd: RestartPreventExitStatus=64 77 78.
#pragma once

#include <ringd/atomic_file.hpp>
#include <ringd/credentials.hpp>
#include <ringd/detail/daemon_reload_status.hpp>
#include <ringd/detail/pidfile_atfork.hpp>
#include <ringd/event.hpp>
#include <ringd/fd.hpp>
#include <ringd/io_context.hpp>
#include <ringd/notify.hpp>
#include <ringd/ops.hpp>
#include <ringd/pidfile.hpp>
#include <ringd/result.hpp>
#include <ringd/scope.hpp>
#include <ringd/signals.hpp>
#include <ringd/task.hpp>
#include <ringd/timer.hpp>

#include <fcntl.h>
#include <grp.h>
#include <poll.h>
#include <pwd.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

namespace ringd {

namespace exit_code {
inline constexpr int ok = 0;
inline constexpr int failure = 1;          // unclassified: supervisors treat it as temporary
inline constexpr int usage = 64;           // EX_USAGE, permanent: fix the command line
inline constexpr int already_running = 73; // temporary: another instance holds the PID file
inline constexpr int temporary = 75;       // EX_TEMPFAIL: retry later
inline constexpr int no_permission = 77;   // EX_NOPERM, permanent
inline constexpr int config = 78;          // EX_CONFIG, permanent until the config changes
} // namespace exit_code

// The exit code for a failed setup step: temporary for shortages and busy addresses, no
// permission for EACCES/EPERM, failure otherwise.
int exit_code_for(const std::error_code& ec) noexcept;

struct daemon_flags {
    bool foreground = false;   // no fork/setsid/stdio redirection: for systemd Type=notify, s6,
                               // containers; readiness goes to NOTIFY_SOCKET / notification fd
    bool simulate = false;     // as detach mode but without fork, setsid and stdio redirection:
                               // for debuggers (the process you started is the daemon)
    bool preserve_cwd = false; // do not chdir to working_directory
};

struct daemon_params {
    std::string program;       // for messages ("echod"); empty: the invoked name
    std::string pid_file;      // empty: no PID file (a supervisor tracks the process)
    std::string reload_status; // empty: beside the PID file (".pid" → ".reload"); "-": none
    std::string user;          // run as this user (name, uid or "#uid"); empty: stay
    std::string group;         // and group (name, gid or "#gid"); empty: the user's primary group
    daemon_flags flags;
    mode_t umask = 022;
    std::string working_directory = "/";
    // Detach mode only: where stdio goes. stdin/stdout at once; stderr from ready() on, so that
    // start-up errors still reach whoever started the daemon (and ringd-control).
    std::string stdin_path = "/dev/null";
    std::string stdout_path = "/dev/null";
    std::string stderr_path = "/dev/null";
    int notification_fd = -1; // s6: ready() writes "\n" here and closes it; -1: none
    // Foreground only: the signal this process gets when its parent dies (PR_SET_PDEATHSIG), for a
    // child that the process which started it supervises and must take along when it goes (xfer's
    // master and its receivers). 0: none. A detached daemon outlives its starter by design, so
    // there it does nothing.
    int parent_death_signal = 0;
    std::chrono::seconds stop_timeout{10}; // how long the body may drain after a stop request
};

// Why the daemon could not start: the message ("echod: start /run/echod.pid: already running
// as PID 42") and the exit code to leave with.
struct daemon_failure {
    int exit_code = exit_code::failure;
    std::string message;
};

class daemon_context;

// The environment variable through which `ringd-control --upgrade` tells the new daemon which
// running daemon it replaces (its PID). See daemon_init() and daemon_context::hand_over().
inline constexpr const char* upgrade_env = "RINGD_UPGRADE_FROM";

// A listening socket that a daemon offers to its successor (daemon_context::hand_over()).
struct handover_socket {
    int fd = -1;      // the listening socket, as numbered in this process
    std::string name; // LISTEN_FDNAMES entry for the successor: no ':' nor newline
};

// Phase one, in the process as invoked: resolves the user and group, blocks SIGHUP, SIGTERM and
// SIGINT (before any thread exists), locks the PID file (busy: exit code 73, naming the running
// PID) and opens the reload-status file. Nothing is printed; nothing forks. Bind privileged
// listeners after this and before daemon_run().
// Upgrade (zero-downtime restart): when $RINGD_UPGRADE_FROM names the PID that holds the PID
// file's lock (proven by its record lock), the start is not refused: the PID file stays
// unlocked, the new daemon starts and becomes ready beside the old one (on the listening
// sockets inherited from it by LISTEN_FDS), and takes the lock over in daemon_run() the moment
// the old one has exited (a pidfd tells). ringd-control holds the guard lock throughout, so no
// --start can slip in between. The variable is removed from the environment.
class daemon_start {
public:
    daemon_start(daemon_start&&) noexcept = default;
    daemon_start& operator=(daemon_start&&) noexcept = default;
    // A start given up before daemon_run() took the PID file over (a bind that failed, an
    // early return from daemon_run()): the locked file goes, so that no tool reads it as a daemon.
    ~daemon_start() { pid_.discard(); }
    [[nodiscard]] const daemon_params& params() const noexcept { return params_; }

private:
    friend expected<daemon_start, daemon_failure> daemon_init(daemon_params params);
    friend class daemon_context;
    friend task<void> daemon_take_over(daemon_context& d);
    template <class Body>
    friend int daemon_run(daemon_start&& start, Body body);
    daemon_start() = default;

    daemon_params params_;   // as given, with program and reload_status filled in
    pid_file pid_;           // locked exclusively (starting); upgrade: open, not yet locked
    unique_fd upgrade_from_; // upgrade: pidfd of the daemon being replaced; else empty
    pid_t upgrade_pid_ = 0;  // its PID, for messages
    std::vector<handover_socket> handover_; // what hand_over() offered
    bool handover_written_ = false;         // the ".listen" file is ours: remove it at the end
    unique_fd reload_status_;           // opened before privileges are dropped; written in place
    std::optional<credentials> run_as_; // resolved user and group; nullopt: stay
};

expected<daemon_start, daemon_failure> daemon_init(daemon_params params);

// Phase two. Detach mode: forks; the parent waits until the body calls ready() and exits 0, or
// exits with the child's exit code when it fails first (the child has printed why on the shared
// stderr); the parent never returns, it leaves with _exit so that no destructor of main()'s
// objects (a listener unlinking its socket path) runs in it. In the final process: setsid, chdir,
// umask, stdio, drop privileges (verified), write the PID, create the io_context, run `body` (a
// callable daemon_context& → task<int>) with the signal loop beside it, then clear the PID file and
// return the body's code. The PID-file locks (the exclusive flock, and the record lock that says
// running or exiting) are kept until the process exits, and the file is removed as it exits
// (pid_file::remove_at_exit; an _exit leaves it empty). Never throws: failures print
// "program: ..." and return a code.
template <class Body>
int daemon_run(daemon_start&& start, Body body);

// daemon_init + daemon_run; prints the init failure and returns its code.
template <class Body>
int daemon_run(daemon_params params, Body body);

// Defined in detail/daemon_*.hpp, included below; declared here so that each of those headers
// compiles whichever of them comes first.
inline task<void> daemon_take_over(daemon_context& d);
namespace detail {
inline task<void> daemon_signal_loop(daemon_context& d, lifecycle_signals& signals);
inline task<void> daemon_watchdog_loop(daemon_context& d, std::chrono::microseconds period);
inline unique_fd daemon_open_stdio(const std::string& path, bool input);
inline int daemon_wait_for_ready(unique_fd pipe, pid_t child, const std::string& program);
} // namespace detail

// What the body gets: the loop, and the daemon's side of the lifecycle.
class daemon_context {
public:
    using reload_hook = std::function<expected<void, std::string>()>;

    [[nodiscard]] io_context& io() noexcept { return *io_; }
    [[nodiscard]] const daemon_params& params() const noexcept { return start_->params_; }
    [[nodiscard]] const notifier& notify() const noexcept { return notifier_; }

    // The daemon serves (listeners bound, configuration loaded). Detach mode: stderr goes to its
    // target and the waiting parent exits 0. Under systemd: READY=1 (with STATUS= when given);
    // with a notification fd: "\n". Later calls only update STATUS=.
    void ready(std::string_view status = {});
    [[nodiscard]] bool is_ready() const noexcept { return ready_; }

    // Called on SIGHUP. Returns nothing on success, or why the new configuration was refused
    // (the hook must then keep the old one). The outcome goes to the reload-status file,
    // systemd (RELOADING=1 … READY=1) and stderr. Without a hook, reloads fail "not supported".
    void on_reload(reload_hook hook) { reload_ = std::move(hook); }
    // Runs the reload step now, as SIGHUP does.
    void reload();
    [[nodiscard]] std::uint64_t reload_generation() const noexcept { return generation_; }

    // Completes once a stop was requested (SIGTERM, SIGINT or request_stop()); at once if it was.
    task<void> stopped();
    // Begins the stop: STOPPING=1, the PID file says "exiting", stopped() completes.
    void request_stop() noexcept;
    [[nodiscard]] bool stop_requested() const noexcept { return stopping_; }
    // The stop request's time plus params().stop_timeout: drain in-flight work until then.
    [[nodiscard]] std::chrono::steady_clock::time_point stop_deadline() const noexcept {
        return stop_deadline_;
    }

    // Opts in to upgrades: names the listening sockets that `ringd-control --upgrade` passes to
    // the successor (by LISTEN_FDS, in this order). They are listed in the file beside the PID
    // file (".pid" → ".listen": "PID\nFD NAME\n..."), written while this process holds the PID
    // file (at once, or when an upgraded daemon takes it over) and removed at a clean exit.
    // Errors: a bad name (EINVAL), or the file's open/write/rename errors.
    result<void> hand_over(std::vector<handover_socket> sockets);
    // True while this daemon is an upgrade that has not yet taken over the PID file.
    // True once the stop request came from `ringd-control --upgrade` (a SIGTERM queued with
    // detail::handover_stop_value): a successor serves on this daemon's listening sockets, so
    // nothing they need may go at exit. A UNIX listener keeps its path: release() it instead of
    // letting its destructor unlink the path.
    [[nodiscard]] bool handed_over() const noexcept { return handed_over_; }
    [[nodiscard]] bool taking_over() const noexcept {
        return static_cast<bool>(start_->upgrade_from_) && !start_->pid_.locked();
    }

    // For daemon_run.
    daemon_context(daemon_start& start, io_context& io, notifier n, unique_fd ready_pipe,
                   unique_fd stderr_target);

private:
    void write_reload_status(std::string_view state, std::string_view reason) noexcept;
    result<void> write_handover() noexcept;
    friend task<void> daemon_take_over(daemon_context& d);
    friend task<void> detail::daemon_signal_loop(daemon_context& d, lifecycle_signals& signals);
    void message(const std::string& text) const noexcept {
        std::fprintf(stderr, "%s: %s\n", start_->params_.program.c_str(), text.c_str());
    }

    daemon_start* start_;          // PID file, reload-status file, params
    io_context* io_;               // the ring of the final process
    notifier notifier_;            // systemd's socket, or disabled
    unique_fd ready_pipe_;         // detach mode: the waiting parent reads 'R' from here
    unique_fd stderr_target_;      // detach mode: what stderr becomes at ready()
    event stop_event_;             // set once a stop was requested
    reload_hook reload_;           // the daemon's reload step
    std::uint64_t generation_ = 0; // reloads started
    bool ready_ = false;
    bool stopping_ = false;
    bool handed_over_ = false; // the stop came from ringd-control --upgrade
    std::chrono::steady_clock::time_point stop_deadline_{};
};

// ---------------------------------------------------------------------------------------------

inline int exit_code_for(const std::error_code& ec) noexcept {
    if (ec.category() != std::system_category()) return exit_code::failure;
    switch (ec.value()) {
    case EADDRINUSE:
    case EADDRNOTAVAIL:
    case ENOMEM:
    case EMFILE:
    case ENFILE:
    case ENOBUFS:
    case EAGAIN:
    case EINTR:
    case ENOSPC:
    case ETIMEDOUT:
    case ECONNREFUSED:
    case ENETUNREACH:
        return exit_code::temporary;
    case EACCES:
    case EPERM:
    case EROFS:
        return exit_code::no_permission;
    default:
        return exit_code::failure;
    }
}

} // namespace ringd

// The implementation.
#include <ringd/detail/daemon_context_impl.hpp>
#include <ringd/detail/daemon_init.hpp>
#include <ringd/detail/daemon_run_impl.hpp>
