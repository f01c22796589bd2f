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
    int notification_fd = -1;              // s6: ready() writes "\n" here and closes it; -1: none
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

namespace detail {
inline task<void> daemon_signal_loop(daemon_context& d, lifecycle_signals& signals);
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

namespace detail {

// Opens a stdio target: stdin read-only, the others appending (a log file is created 0640).
inline unique_fd daemon_open_stdio(const std::string& path, bool input) {
    int flags = input ? O_RDONLY : (O_WRONLY | O_CREAT | O_APPEND);
    return unique_fd(::open(path.c_str(), flags | O_CLOEXEC | O_NOCTTY, 0640));
}

// The parent in detach mode: waits for 'R' (ready) or for the child's end.
inline int daemon_wait_for_ready(unique_fd pipe, pid_t child, const std::string& program) {
    char c = 0;
    ssize_t n;
    do n = ::read(pipe.get(), &c, 1);
    while (n < 0 && errno == EINTR);
    if (n == 1 && c == 'R') return exit_code::ok;
    int status = 0;
    while (::waitpid(child, &status, 0) < 0 && errno == EINTR) {
    }
    if (WIFEXITED(status)) {
        if (WEXITSTATUS(status) != 0) return WEXITSTATUS(status); // it said why on stderr
        std::fprintf(stderr, "%s: start: the daemon exited before it was ready\n", program.c_str());
        return exit_code::failure;
    }
    int sig = WIFSIGNALED(status) ? WTERMSIG(status) : 0;
    std::fprintf(stderr, "%s: start: the daemon was killed by signal %d (%s) before it was ready\n",
                 program.c_str(), sig, ::strsignal(sig));
    return 128 + sig;
}

} // namespace detail

inline expected<daemon_start, daemon_failure> daemon_init(daemon_params params) {
    daemon_start s;
    if (params.program.empty()) params.program = program_invocation_short_name;
    auto fail = [&](int code, const std::string& what) {
        return unexpected<daemon_failure>(daemon_failure{code, params.program + ": " + what});
    };
    // Who to become.
    if (!params.user.empty()) {
        auto c = lookup_credentials(params.user, params.group);
        if (!c) return fail(exit_code::config, c.error());
        s.run_as_ = std::move(*c);
    } else if (!params.group.empty()) {
        auto gid = lookup_group(params.group);
        if (!gid) return fail(exit_code::config, gid.error());
        s.run_as_ = credentials{::getuid(), *gid, {*gid}};
    }
    // Signals queue for the signalfd from now on; threads and children made later inherit it.
    try {
        block_signals({SIGHUP, SIGTERM, SIGINT});
    } catch (const std::system_error& e) {
        return fail(exit_code::failure, e.what());
    }
    // An upgrade names the daemon it replaces; children of this one must not inherit that.
    pid_t upgrade_from = 0;
    if (const char* text = std::getenv(upgrade_env)) {
        std::uint64_t v = 0;
        if (detail::notify_parse_u64(text, v) && v > 0 && v < (1u << 31))
            upgrade_from = static_cast<pid_t>(v);
        ::unsetenv(upgrade_env);
    }
    if (!params.pid_file.empty()) {
        auto f = pid_file::open(params.pid_file);
        if (!f)
            return fail(exit_code_for(f.error()),
                        "open " + params.pid_file + ": " + f.error().message());
        // A busy answer may come from a prober (ringd-control) that holds the lock for a few
        // microseconds: ask again for up to 100 ms before believing another daemon runs.
        for (int attempt = 0;; ++attempt) {
            auto got = f->try_lock();
            if (!got && got.error() == std::errc::bad_message)
                return fail(exit_code::config, "lock " + params.pid_file +
                                                   ": not a PID file (it holds other data); "
                                                   "left unchanged");
            if (!got)
                return fail(exit_code_for(got.error()),
                            "lock " + params.pid_file + ": " + got.error().message());
            if (*got == lock_outcome::locked) break;
            auto holder = probe_pid_file(params.pid_file);
            if (upgrade_from != 0 && holder && holder->pid == upgrade_from &&
                (holder->state == pid_file_state::running ||
                 holder->state == pid_file_state::exiting)) {
                // The daemon we replace: a pidfd for it, proven by a second probe (the PID
                // cannot have been recycled while the holder still has that PID).
                unique_fd pidfd(static_cast<int>(::syscall(SYS_pidfd_open, upgrade_from, 0)));
                auto again = probe_pid_file(params.pid_file);
                if (pidfd && again && again->pid == upgrade_from &&
                    (again->state == pid_file_state::running ||
                     again->state == pid_file_state::exiting)) {
                    s.upgrade_from_ = std::move(pidfd);
                    s.upgrade_pid_ = upgrade_from;
                    break;
                }
            }
            bool daemon_there = holder && (holder->state == pid_file_state::running ||
                                           holder->state == pid_file_state::exiting ||
                                           holder->state == pid_file_state::foreign);
            if (attempt >= 50 || daemon_there) {
                std::string who =
                    holder && holder->pid != 0 ? " as PID " + std::to_string(holder->pid) : "";
                if (holder && holder->state == pid_file_state::foreign)
                    who = " (locked by a process other than PID " + std::to_string(holder->pid) +
                          " that it names)";
                std::string how =
                    holder && holder->state == pid_file_state::exiting ? " (exiting)" : "";
                return fail(exit_code::already_running,
                            "start " + params.pid_file + ": already running" + who + how);
            }
            std::this_thread::sleep_for(std::chrono::milliseconds(2));
        }
        s.pid_ = std::move(*f);
        if (params.reload_status.empty())
            params.reload_status = pid_file_sibling(params.pid_file, ".reload");
    }
    if (!params.reload_status.empty() && params.reload_status != "-") {
        s.reload_status_.reset(
            ::open(params.reload_status.c_str(), O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0644));
        if (!s.reload_status_)
            return fail(exit_code_for({errno, std::system_category()}),
                        "open " + params.reload_status + ": " + errno_text(errno));
        (void)::ftruncate(s.reload_status_.get(), 0);
    }
    s.params_ = std::move(params);
    return s;
}

inline daemon_context::daemon_context(daemon_start& start, io_context& io, notifier n,
                                      unique_fd ready_pipe, unique_fd stderr_target)
    : start_(&start), io_(&io), notifier_(std::move(n)), ready_pipe_(std::move(ready_pipe)),
      stderr_target_(std::move(stderr_target)) {
    write_reload_status("running", {}); // "this daemon acknowledges reloads"
}

inline void daemon_context::ready(std::string_view status) {
    if (ready_) {
        if (!status.empty()) (void)notifier_.status(status);
        return;
    }
    ready_ = true;
    (void)notifier_.ready(status);
    if (start_->params_.notification_fd >= 0) {
        (void)notify_fd_ready(unique_fd(start_->params_.notification_fd));
        start_->params_.notification_fd = -1;
    }
    if (stderr_target_) { // first stderr, so that the starter sees EOF when the parent exits
        std::fflush(stderr);
        ::dup2(stderr_target_.get(), STDERR_FILENO);
        stderr_target_.reset();
    }
    if (start_->upgrade_from_) (void)::prctl(PR_SET_PDEATHSIG, 0); // ready: on our own now
    if (ready_pipe_) {
        detail::fork_close_list::remove(ready_pipe_.get());
        while (::write(ready_pipe_.get(), "R", 1) < 0 && errno == EINTR) {
        }
        ready_pipe_.reset();
    }
}

inline void daemon_context::write_reload_status(std::string_view state,
                                                std::string_view reason) noexcept {
    if (!start_->reload_status_) return;
    try {
        auto text = detail::format_reload_record(
            {generation_, ::getpid(), std::string(state), std::string(reason)});
        (void)::pwrite(start_->reload_status_.get(), text.data(), text.size(), 0);
    } catch (...) {
    } // out of memory: the status stays as it was; control times out
}

inline void daemon_context::reload() {
    ++generation_;
    write_reload_status("reloading", {});
    (void)notifier_.reloading();
    expected<void, std::string> outcome = unexpected<std::string>("reload is not supported");
    if (reload_) {
        try {
            outcome = reload_();
        } catch (const std::exception& e) {
            outcome = unexpected<std::string>(e.what());
        }
    }
    if (outcome) {
        write_reload_status("ok", {});
        (void)notifier_.ready("reloaded");
        message("reloaded");
    } else {
        write_reload_status("failed", outcome.error());
        (void)notifier_.ready("reload failed: " + outcome.error());
        message("reload failed, keeping the running configuration: " + outcome.error());
    }
}

inline task<void> daemon_context::stopped() {
    if (stopping_) co_return;
    (void)co_await stop_event_.wait(*io_); // cancelled: return as well
}

inline void daemon_context::request_stop() noexcept {
    if (stopping_) return;
    stopping_ = true;
    stop_deadline_ = std::chrono::steady_clock::now() + start_->params_.stop_timeout;
    (void)notifier_.stopping();
    if (start_->pid_.locked()) (void)start_->pid_.mark_exiting();
    stop_event_.set();
}

inline result<void> daemon_context::hand_over(std::vector<handover_socket> sockets) {
    for (auto& h : sockets)
        if (h.fd < 0 || h.name.empty() || h.name.size() > 255 ||
            h.name.find_first_of(":\n ") != std::string::npos)
            return errno_error(EINVAL);
    start_->handover_ = std::move(sockets);
    if (start_->pid_.locked()) return write_handover();
    return {}; // an upgrade that has not taken the PID file over yet: written when it does
}

inline result<void> daemon_context::write_handover() noexcept {
    const std::string& pid_path = start_->params_.pid_file;
    if (pid_path.empty()) return {};
    try {
        std::string text = std::to_string(::getpid()) + "\n";
        for (auto& h : start_->handover_) text += std::to_string(h.fd) + " " + h.name + "\n";
        // It names our descriptors for this boot only: no need to survive a power loss.
        auto written = write_file_atomically(pid_file_sibling(pid_path, ".listen"), text, 0644,
                                             file_durability::survives_process_crash);
        if (!written) return written;
        start_->handover_written_ = true;
        return {};
    } catch (...) {
        return errno_error(ENOMEM);
    }
}

// An upgraded daemon takes the PID file over once the daemon it replaces has exited (its pidfd
// becomes readable only after the kernel closed that process's files, and with them its locks).
// Until then it serves beside the old one, and the file names the old one. If the lock is still
// busy 2 s later, another daemon took it (a start that bypassed ringd-control's guard): this
// one stops, so that never two daemons serve as one.
inline task<void> daemon_take_over(daemon_context& d) {
    daemon_start& s = *d.start_;
    const std::string old = "PID " + std::to_string(s.upgrade_pid_);
    auto gone = co_await async_poll(d.io(), s.upgrade_from_, POLLIN);
    if (!gone && is_cancelled(gone.error())) co_return;
    std::string why = "still locked by another process 2 s after " + old + " exited";
    for (int attempt = 0; attempt < 400; ++attempt) {
        auto got = s.pid_.try_lock();
        if (!got) {
            why = got.error().message();
            break;
        }
        if (*got == lock_outcome::locked) {
            s.pid_.protect_from_children();
            // The sockets first, then the PID: ringd-control's upgrade ends (and releases the
            // guard lock) once the file names this process, and a second upgrade waiting for
            // that lock must then find them offered.
            if (!s.handover_.empty())
                if (auto h = d.write_handover(); !h)
                    d.message("write " + pid_file_sibling(s.params_.pid_file, ".listen") + ": " +
                              h.error().message());
            if (auto w = s.pid_.write_pid(::getpid()); !w) {
                why = "write: " + w.error().message();
                break;
            }
            s.upgrade_from_.reset();
            if (d.stopping_) (void)s.pid_.mark_exiting();
            d.message("took over " + s.params_.pid_file + " from " + old);
            co_return;
        }
        auto slept = co_await sleep_for(d.io(), std::chrono::milliseconds(5));
        if (!slept) co_return;
    }
    d.message("take over " + s.params_.pid_file + ": " + why + "; stopping");
    d.request_stop();
}

namespace detail {

inline task<void> daemon_signal_loop(daemon_context& d, lifecycle_signals& signals) {
    for (;;) {
        auto ev = co_await signals.next();
        if (!ev) co_return; // cancelled at the end of the body
        if (*ev == lifecycle_event::stop) {
            const signal_info& s = signals.last();
            if (s.number == SIGTERM && s.code == SI_QUEUE && s.value == handover_stop_value)
                d.handed_over_ = true;
            d.request_stop();
        } else {
            d.reload();
        }
    }
}

inline task<void> daemon_watchdog_loop(daemon_context& d, std::chrono::microseconds period) {
    for (;;) {
        auto slept = co_await sleep_for(d.io(), period);
        if (!slept) co_return;
        (void)d.notify().watchdog();
    }
}

} // namespace detail

template <class Body>
int daemon_run(daemon_start&& start_arg, Body body) {
    daemon_start start = std::move(start_arg);
    auto& p = start.params_;
    auto say = [&](const std::string& text) {
        std::fprintf(stderr, "%s: %s\n", p.program.c_str(), text.c_str());
    };
    const bool detach = !p.flags.foreground && !p.flags.simulate;
    const pid_t starter = ::getpid();
    unique_fd ready_pipe, stderr_target;
    if (detach) {
        // Opened here, before privileges go, so that a log file under /var/log can be a target.
        unique_fd in = detail::daemon_open_stdio(p.stdin_path, true);
        unique_fd out = detail::daemon_open_stdio(p.stdout_path, false);
        stderr_target = detail::daemon_open_stdio(p.stderr_path, false);
        if (!in || !out || !stderr_target) {
            int e = errno;
            say("open stdio target: " + errno_text(e));
            return exit_code_for({e, std::system_category()});
        }
        int fds[2];
        if (::pipe2(fds, O_CLOEXEC) != 0) {
            int e = errno;
            say("pipe: " + errno_text(e));
            return exit_code_for({e, std::system_category()});
        }
        unique_fd read_end(fds[0]);
        ready_pipe.reset(fds[1]);
        std::fflush(nullptr);
        pid_t child = ::fork();
        if (child < 0) {
            int e = errno;
            say("fork: " + errno_text(e));
            return exit_code_for({e, std::system_category()});
        }
        if (child > 0) {
            // The parent shares the PID-file lock until it exits and never clears it. It leaves
            // with _exit: the objects of main() (listeners that unlink their UNIX path, files)
            // belong to the daemon now, and their destructors must not run here.
            ready_pipe.reset();
            int code = detail::daemon_wait_for_ready(std::move(read_end), child, p.program);
            std::fflush(nullptr);
            ::_exit(code);
        }
        read_end.reset();
        ::setsid(); // cannot fail: the child of a fork is never a process-group leader
        ::dup2(in.get(), STDIN_FILENO);
        ::dup2(out.get(), STDOUT_FILENO);
    }
    // From here on: the final process.
    if (!p.flags.preserve_cwd && ::chdir(p.working_directory.c_str()) != 0) {
        int e = errno;
        say("chdir " + p.working_directory + ": " + errno_text(e));
        return exit_code::config;
    }
    ::umask(p.umask);
    start.pid_.protect_from_children();
    if (ready_pipe) detail::fork_close_list::add(ready_pipe.get());
    if (start.run_as_) {
        auto dropped = drop_privileges(*start.run_as_);
        if (!dropped) {
            say("drop privileges to " + (p.user.empty() ? p.group : p.user) + ": " +
                dropped.error());
            return exit_code::no_permission;
        }
    }
    // An upgrade not yet ready dies with its starter (SIGTERM: it drains), so that a starter
    // that ringd-control gives up on takes its half-started daemon along. Set after setuid,
    // which clears it; cleared again by ready().
    if (start.upgrade_from_ && detach &&
        (::prctl(PR_SET_PDEATHSIG, SIGTERM) != 0 || ::getppid() != starter)) {
        say("upgrade: the starter is gone before the daemon was ready");
        return exit_code::failure;
    }
    if (start.pid_.locked()) {
        if (auto w = start.pid_.write_pid(::getpid()); !w) {
            say("write " + p.pid_file + ": " + w.error().message());
            return exit_code_for(w.error());
        }
    }
    int code = exit_code::failure;
    try {
        auto n = notifier::from_environment();
        if (!n) throw std::system_error(n.error(), "NOTIFY_SOCKET");
        io_context io;
        lifecycle_signals signals(io);
        daemon_context d(start, io, std::move(*n), std::move(ready_pipe), std::move(stderr_target));
        auto main_task = [&]() -> task<int> {
            scope background;
            background.spawn(detail::daemon_signal_loop(d, signals));
            if (start.upgrade_from_) background.spawn(daemon_take_over(d));
            if (auto period = d.notify().watchdog_period())
                background.spawn(detail::daemon_watchdog_loop(d, *period));
            int result = exit_code::failure;
            std::exception_ptr error;
            try {
                result = co_await body(d);
            } catch (...) {
                error = std::current_exception();
            }
            d.on_reload(nullptr); // the hook may point into the body's finished frame
            background.request_stop();
            co_await background.join();
            if (error) std::rethrow_exception(error);
            co_return result;
        };
        code = io.run(main_task());
        if (!d.stop_requested()) (void)d.notify().stopping();
    } catch (const std::system_error& e) {
        say(e.what());
        code = exit_code_for(e.code());
    } catch (const std::exception& e) {
        say(e.what());
        code = exit_code::failure;
    }
    // A clean end: nothing stale left behind. The locks go with the process, and the file
    // with its exit (after main()'s objects): start-stop-daemon and pidofproc then say "not
    // running". If the process ends by _exit instead, the emptied file says the same to ringd.
    if (start.reload_status_) (void)::ftruncate(start.reload_status_.get(), 0);
    if (start.pid_.locked()) {
        if (start.handover_written_) // ours: only the holder of the PID file writes it
            (void)::unlink(pid_file_sibling(p.pid_file, ".listen").c_str());
        (void)start.pid_.mark_exiting();
        (void)start.pid_.clear();
        (void)start.pid_.remove_at_exit();
    }
    return code;
}

template <class Body>
int daemon_run(daemon_params params, Body body) {
    auto start = daemon_init(std::move(params));
    if (!start) {
        std::fprintf(stderr, "%s\n", start.error().message.c_str());
        return start.error().exit_code;
    }
    return daemon_run(std::move(*start), std::move(body));
}

} // namespace ringd
