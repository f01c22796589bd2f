// SPDX-License-Identifier: MIT
// ringd/control.hpp — starting, stopping, checking, reloading and signalling a daemon from outside:
// libucw's guard-file protocol (daemon_control) with its exit codes, made race-free with pidfds.
//
// Every action holds the guard file's flock for its whole length, so actions never interleave.
// Running = the PID file is flock()ed (pidfile.hpp). A signal goes through a pidfd opened while
// the PID file is locked *by the process it names* (the daemon's record lock names its holder's
// PID; /proc/PID/fdinfo for daemons without one), and that proof is made again after pidfd_open:
// the pidfd then refers to the lock holder itself, never to a process that recycled its PID, and
// never to a process that a file locked by someone else merely names (then nothing is sent).
// Every wait is bounded by one deadline (control_params::timeout, or a default per action) and
// wakes on events (inotify, pidfd), never by polling in a loop.
#pragma once

#include <ringd/detail/daemon_reload_status.hpp>
#include <ringd/fd.hpp>
#include <ringd/pidfile.hpp>
#include <ringd/process.hpp>
#include <ringd/result.hpp>

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/file.h>
#include <sys/inotify.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <charconv>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace ringd {

// The exit codes of libucw's daemon_control, kept by ringd-control.
namespace control_exit {
inline constexpr int done = 0;          // done (check: running)
inline constexpr int already = 100;     // start: already running; stop: not running
inline constexpr int not_running = 101; // check, reload, signal: not running
inline constexpr int error = 102;       // with a one-line message
inline constexpr int stale = 103;       // a stale PID file was found (and cleaned)
inline constexpr int usage = 1;         // bad command line (ringd-control only)
} // namespace control_exit

enum class control_action { start, stop, check, reload, signal, upgrade };

inline const char* to_string(control_action a) noexcept {
    switch (a) {
    case control_action::start:
        return "start";
    case control_action::stop:
        return "stop";
    case control_action::check:
        return "check";
    case control_action::reload:
        return "reload";
    case control_action::signal:
        return "signal";
    case control_action::upgrade:
        return "upgrade";
    }
    return "?";
}

struct control_params {
    std::string pid_file;
    std::string guard_file;    // empty: pid_file_sibling(pid_file, ".lock")
    std::string reload_status; // empty: pid_file_sibling(pid_file, ".reload"); "-": never wait
    control_action action = control_action::check;
    std::vector<std::string> command; // start: the daemon's argv (it must detach when ready)
    int signal = 0;                   // signal: which one
    // Bounds the whole action, from the wait for the guard lock on. start: until the daemon is
    // ready; stop: then SIGKILL; reload: until acknowledged; check, signal: a daemon caught
    // starting. Unset: control_default_timeout(action).
    std::optional<std::chrono::milliseconds> timeout;
};

// The deadline of an action without control_params::timeout: start and stop 90 s (systemd's
// default start and stop timeouts; --stop then sends SIGKILL), reload 30 s, check and signal 10 s.
inline std::chrono::milliseconds control_default_timeout(control_action a) noexcept {
    using std::chrono::seconds;
    switch (a) {
    case control_action::start:
    case control_action::stop:
    case control_action::upgrade:
        return seconds(90);
    case control_action::reload:
        return seconds(30);
    case control_action::check:
    case control_action::signal:
        return seconds(10);
    }
    return seconds(10);
}

struct control_outcome {
    int exit_code = control_exit::error;
    std::string state;         // started, running, exiting, stopped, killed, not running, stale,
                               // reloaded, signalled, failed
    pid_t pid = 0;             // the daemon the action concerned (0: none)
    std::string message;       // "<action> <object>: <reason>" for errors and notices; else empty
    std::string daemon_output; // start: what the daemon wrote on stderr before it was ready
    int daemon_exit_code = -1; // start: the starter's exit code when it failed (128+N: signal N)
    bool killed = false;       // stop: SIGKILL was needed
    std::uint64_t reload_generation = 0; // reload: the acknowledged generation
    std::int64_t guard_acquired_ns = 0;  // CLOCK_MONOTONIC when the guard lock was taken: orders
    std::int64_t guard_released_ns = 0;  // concurrent actions (they never overlap)
};

// Performs one action under the guard lock. Never throws for runtime conditions: every failure is
// an outcome with exit code 102 and a message naming the action, the object and the reason.
control_outcome daemon_control(const control_params& params);

// ---------------------------------------------------------------------------------------------

namespace detail {

inline std::int64_t control_now_ns() noexcept {
    timespec ts{};
    ::clock_gettime(CLOCK_MONOTONIC, &ts);
    return static_cast<std::int64_t>(ts.tv_sec) * 1'000'000'000 + ts.tv_nsec;
}

inline result<unique_fd> control_pidfd_open(pid_t pid) noexcept {
    int fd = static_cast<int>(::syscall(SYS_pidfd_open, pid, 0)); // close-on-exec by definition
    if (fd < 0) return last_error();
    return unique_fd(fd);
}

// With a nonzero `value`, the signal is sent as sigqueue(3) would (si_code SI_QUEUE, si_int).
inline result<void> control_pidfd_signal(borrowed_fd pidfd, int sig, int value = 0) noexcept {
    siginfo_t info{};
    info.si_signo = sig;
    info.si_code = SI_QUEUE;
    info.si_pid = ::getpid();
    info.si_uid = ::getuid();
    info.si_value.sival_int = value;
    if (::syscall(SYS_pidfd_send_signal, pidfd.get(), sig, value != 0 ? &info : nullptr, 0) != 0)
        return last_error();
    return {};
}

// Milliseconds left until `deadline` for poll(2): -1 = forever.
inline int control_poll_ms(std::optional<std::chrono::steady_clock::time_point> deadline) noexcept {
    if (!deadline) return -1;
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        *deadline - std::chrono::steady_clock::now());
    return left.count() < 0 ? 0 : static_cast<int>(std::min<long long>(left.count(), 1 << 30));
}

// Waits for changes to one file, woken by inotify events, never by polling in a loop. Two bounded
// fallbacks: the kernel reports a close (IN_CLOSE_*) a moment *before* it drops that open file's
// flock, so after an event the caller looks at once and then a few more times (after 50 µs, then
// doubling to 64 ms); and a lock dropped with no event we watch for is caught by a look every
// second (every 50 ms without inotify).
class control_file_watch {
public:
    using time_point = std::chrono::steady_clock::time_point;

    control_file_watch(const std::string& path, std::uint32_t mask)
        : fd_(::inotify_init1(IN_CLOEXEC | IN_NONBLOCK)) {
        if (fd_ && ::inotify_add_watch(fd_.get(), path.c_str(), mask) < 0) fd_.reset();
    }

    // False once `limit` has passed; otherwise true after an event or a fallback's interval.
    bool wait(time_point limit) {
        using namespace std::chrono;
        auto now = steady_clock::now();
        if (now >= limit) return false;
        microseconds step = follow_up_ > microseconds(0) ? follow_up_
                            : fd_                        ? microseconds(seconds(1))
                                                         : microseconds(milliseconds(50));
        step = std::min(step, duration_cast<microseconds>(limit - now) + microseconds(1));
        timespec ts{static_cast<time_t>(step.count() / 1'000'000),
                    static_cast<long>(step.count() % 1'000'000 * 1000)};
        pollfd p{fd_ ? fd_.get() : -1, POLLIN, 0};
        int n = ::ppoll(&p, 1, &ts, nullptr);
        if (n > 0) {
            char drain[4096];
            while (::read(fd_.get(), drain, sizeof drain) > 0) {
            }
            follow_up_ = microseconds(50);
        } else if (follow_up_ > microseconds(0)) {
            follow_up_ = follow_up_ >= milliseconds(64) ? microseconds(0) : follow_up_ * 2;
        }
        return true;
    }

private:
    unique_fd fd_;                          // the inotify instance (empty: unavailable)
    std::chrono::microseconds follow_up_{}; // the next quick look after an event (0: none)
};

// Waits until the process behind `pidfd` has exited. True: exited; false: deadline passed.
inline bool control_wait_exit(borrowed_fd pidfd,
                              std::optional<std::chrono::steady_clock::time_point> deadline) {
    for (;;) {
        pollfd p{pidfd.get(), POLLIN, 0};
        int n = ::poll(&p, 1, control_poll_ms(deadline));
        if (n > 0) return true;
        if (n == 0) return false;
        if (errno != EINTR) return true; // cannot wait: let the lock probe decide
    }
}

// A consistent reload record, or nothing.
inline std::optional<reload_record> control_read_reload(const std::string& path) {
    unique_fd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW));
    if (!fd) return std::nullopt;
    for (int attempt = 0; attempt < 5; ++attempt) {
        char buf[reload_record_size];
        ssize_t n = ::pread(fd.get(), buf, sizeof buf, 0);
        if (n <= 0) return std::nullopt;
        if (auto r = parse_reload_record(std::string_view(buf, static_cast<std::size_t>(n))))
            return r;
    }
    return std::nullopt;
}

// The action's state, shared by its steps.
class control_run {
public:
    explicit control_run(const control_params& p) : p_(p) {
        guard_ = p.guard_file.empty() ? pid_file_sibling(p.pid_file, ".lock") : p.guard_file;
        status_path_ =
            p.reload_status.empty() ? pid_file_sibling(p.pid_file, ".reload") : p.reload_status;
        timeout_ = p.timeout ? *p.timeout : control_default_timeout(p.action);
        deadline_ = std::chrono::steady_clock::now() + timeout_;
    }

    control_outcome run() {
        unique_fd guard(::open(guard_.c_str(), O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0644));
        if (!guard && (errno == EACCES || errno == EROFS))
            guard.reset(::open(guard_.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW));
        if (!guard) return fail(guard_, "cannot open: " + errno_text(errno));
        // Another action holds the guard: wait for it, woken when a holder closes the file.
        std::optional<control_file_watch> watch;
        for (;;) {
            auto locked = try_flock(guard, LOCK_EX);
            if (!locked) return fail(guard_, "cannot lock: " + locked.error().message());
            if (*locked) break;
            if (!watch) {
                watch.emplace(guard_, IN_CLOSE_WRITE | IN_CLOSE_NOWRITE);
                continue; // look once more now that no release can go unseen
            }
            if (!watch->wait(deadline_))
                return fail(guard_, "another action holds the lock; gave up after " +
                                        seconds_text(timeout_));
        }
        out_.guard_acquired_ns = control_now_ns();
        switch (p_.action) {
        case control_action::start:
            start();
            break;
        case control_action::stop:
            stop();
            break;
        case control_action::check:
            check();
            break;
        case control_action::reload:
            signal(true);
            break;
        case control_action::signal:
            signal(false);
            break;
        case control_action::upgrade:
            upgrade();
            break;
        }
        out_.guard_released_ns = control_now_ns();
        return std::move(out_);
    }

private:
    using time_point = std::chrono::steady_clock::time_point;

    control_outcome& finish(int code, std::string state, pid_t pid = 0, std::string message = {}) {
        out_.exit_code = code;
        out_.state = std::move(state);
        out_.pid = pid;
        if (!message.empty())
            out_.message = std::string(to_string(p_.action)) + " " + p_.pid_file + ": " + message;
        return out_;
    }
    control_outcome fail(const std::string& object, const std::string& reason) {
        out_.exit_code = control_exit::error;
        out_.state = "failed";
        out_.message = std::string(to_string(p_.action)) + " " + object + ": " + reason;
        return std::move(out_);
    }
    void error(const std::string& reason, pid_t pid = 0) {
        finish(control_exit::error, "failed", pid);
        out_.message = std::string(to_string(p_.action)) + " " + p_.pid_file + ": " + reason;
    }

    static std::string seconds_text(std::chrono::milliseconds ms) {
        char buf[32];
        std::snprintf(buf, sizeof buf, "%g s", static_cast<double>(ms.count()) / 1000.0);
        return buf;
    }

    // The PID file's state; a "starting" file is waited on until it names a PID (a signal needs
    // one), or until the deadline. Woken by the daemon's write (IN_MODIFY), by the last close of
    // its descriptor when it dies (IN_CLOSE_WRITE), by its removal; our own probes open the file
    // read-only, so they wake nobody (they once woke themselves: a busy loop). Errors end the
    // action.
    std::optional<pid_file_status> probe(bool clean_stale) {
        std::optional<control_file_watch> watch;
        for (;;) {
            auto st = probe_pid_file(p_.pid_file, clean_stale);
            if (!st) {
                error("cannot read: " + st.error().message());
                return std::nullopt;
            }
            if (st->state != pid_file_state::starting) return *st;
            if (!watch) {
                watch.emplace(p_.pid_file, IN_MODIFY | IN_CLOSE_WRITE | IN_ATTRIB | IN_DELETE_SELF |
                                               IN_MOVE_SELF);
                continue; // look once more now that no change can go unseen
            }
            if (!watch->wait(deadline_)) {
                error("the file is locked but names no PID after " + seconds_text(timeout_) +
                      " (a daemon that never finished starting?)");
                return std::nullopt;
            }
        }
    }

    // A pidfd for the daemon that the (running or exiting) status names, proven to be it: the
    // probe found that PID holding the lock, the pidfd is opened, and the probe is made once
    // more. A live process behind the pidfd is then the holder (PIDs are unique among live
    // processes); one that died meanwhile can no longer be signalled (ESRCH), never a stranger.
    // Nothing: the daemon went away meanwhile (look again).
    std::optional<unique_fd> open_daemon(const pid_file_status& st) {
        auto pidfd = control_pidfd_open(st.pid);
        if (!pidfd) { // ESRCH: gone meanwhile; anything else is worth reporting
            pidfd_error_ = pidfd.error();
            return std::nullopt;
        }
        auto again = probe_pid_file(p_.pid_file);
        if (!again || again->pid != st.pid ||
            (again->state != pid_file_state::running && again->state != pid_file_state::exiting))
            return std::nullopt;
        return std::move(*pidfd);
    }

    // Probes until the state is settled and, when a daemon runs, opens its pidfd. The answer is
    // absent, stale, running or exiting (with the pidfd); anything else ends the action with
    // exit 102 and a message, having changed and signalled nothing.
    // A lock held by a process the file does not name ("foreign") may be a moment's: a daemon
    // that died just now leaves its lock with a child it forked just before, until the kernel
    // first runs that child (whose atfork handler closes it); a libucw-style prober holds it for
    // microseconds. Hence up to ~250 ms of patience (back-off 1, 2, 4 ... 128 ms) before saying so.
    std::optional<pid_file_status> settle(bool clean_stale, std::optional<unique_fd>& pidfd) {
        std::optional<pid_file_status> st;
        for (int wait_ms = 1;; wait_ms *= 2) {
            st = probe(clean_stale);
            if (!st) return std::nullopt;
            if (st->state == pid_file_state::invalid) {
                error("not a PID file (it holds other data): left unchanged");
                return std::nullopt;
            }
            bool daemon =
                st->state == pid_file_state::running || st->state == pid_file_state::exiting;
            if (daemon && (pidfd = open_daemon(*st))) return st;
            if (!daemon && st->state != pid_file_state::foreign) return st;
            if (wait_ms > 128 || std::chrono::steady_clock::now() >= deadline_) break;
            ::usleep(static_cast<useconds_t>(wait_ms) * 1000);
        }
        std::string who = "PID " + std::to_string(st->pid);
        if (st->state != pid_file_state::foreign) { // running or exiting, but no pidfd for it
            error("cannot open a pidfd for " + who + ": " +
                      (pidfd_error_ ? pidfd_error_.message() : "it changed at every look"),
                  st->pid);
            return std::nullopt;
        }
        bool alive = st->pid > 0 && (::kill(st->pid, 0) == 0 || errno == EPERM);
        error("the file is locked, but not by " + who + " that it names (" +
              (alive ? "a process that does not hold the lock" : "no such process") + "): " +
              (p_.action == control_action::start   ? "not started"
               : p_.action == control_action::check ? "cannot tell which process runs"
                                                    : "nothing sent"));
        return std::nullopt;
    }

    // What the probe did with a stale file, for the message.
    static std::string stale_text(const pid_file_status& st) {
        std::string pid = "PID " + std::to_string(st.pid) + " was not running";
        switch (st.cleanup) {
        case stale_cleanup::removed:
            return "stale PID file removed (" + pid + ")";
        case stale_cleanup::emptied:
            return "stale PID file emptied (" + pid +
                   "; cannot remove it: " + st.cleanup_error.message() + ")";
        case stale_cleanup::failed:
            return "stale PID file left in place (" + pid +
                   "; cannot remove or empty it: " + st.cleanup_error.message() + ")";
        case stale_cleanup::none:
            break;
        }
        return "stale PID file found (" + pid + ")";
    }

    void check() {
        std::optional<unique_fd> pidfd;
        auto st = settle(true, pidfd);
        if (!st) return;
        if (st->state == pid_file_state::absent)
            finish(control_exit::not_running, "not running", 0, "not running");
        else if (st->state == pid_file_state::stale)
            finish(control_exit::stale, "stale", st->pid, stale_text(*st));
        else
            finish(control_exit::done, to_string(st->state), st->pid);
    }

    void signal(bool reload) {
        std::optional<unique_fd> pidfd;
        auto st = settle(true, pidfd);
        if (!st) return;
        if (st->state == pid_file_state::absent)
            return void(finish(control_exit::not_running, "not running", 0, "not running"));
        if (st->state == pid_file_state::stale)
            return void(finish(control_exit::stale, "stale", st->pid, stale_text(*st)));
        if (st->state == pid_file_state::exiting)
            return void(finish(control_exit::not_running, "exiting", st->pid,
                               "not running (PID " + std::to_string(st->pid) + " is exiting)"));
        int sig = reload ? SIGHUP : p_.signal;
        std::optional<reload_record> before;
        unique_fd watch;
        if (reload && status_path_ != "-") {
            // Watch before signalling, so that no acknowledgement can slip past us.
            watch.reset(::inotify_init1(IN_CLOEXEC | IN_NONBLOCK));
            if (watch)
                ::inotify_add_watch(watch.get(), status_path_.c_str(), IN_MODIFY | IN_CLOSE_WRITE);
            before = control_read_reload(status_path_);
            if (before && before->pid != st->pid) before.reset(); // from another instance
        }
        if (auto s = control_pidfd_signal(*pidfd, sig); !s)
            return error("cannot signal PID " + std::to_string(st->pid) + ": " +
                             s.error().message(),
                         st->pid);
        if (!reload) return void(finish(control_exit::done, "signalled", st->pid));
        if (!before)
            return void(finish(control_exit::done, "signalled", st->pid,
                               "sent SIGHUP; this daemon does not acknowledge reloads"));
        auto limit = deadline_;
        for (;;) {
            auto now = control_read_reload(status_path_);
            if (now && now->pid == st->pid && now->generation > before->generation &&
                (now->state == "ok" || now->state == "failed")) {
                out_.reload_generation = now->generation;
                if (now->state == "ok")
                    return void(finish(control_exit::done, "reloaded", st->pid));
                return error("the daemon kept its running configuration: " + now->reason, st->pid);
            }
            pollfd fds[2] = {{watch.get(), POLLIN, 0}, {(*pidfd).get(), POLLIN, 0}};
            int n = ::poll(fds, 2, std::min(control_poll_ms(limit), watch ? 1000 : 50));
            if (n > 0 && (fds[1].revents & POLLIN) != 0)
                return error("PID " + std::to_string(st->pid) + " exited during the reload",
                             st->pid);
            if (n > 0) {
                char drain[4096];
                while (::read(watch.get(), drain, sizeof drain) > 0) {
                }
            }
            if (std::chrono::steady_clock::now() >= limit)
                return error("no acknowledgement of the reload within the time limit", st->pid);
        }
    }

    // SIGTERM (unless `signal` is false: it is exiting already), then waits for the exit until
    // the deadline; then SIGKILL (killed, and the message says so) and 10 s more. False: error()
    // said why (it could not be signalled, or survived SIGKILL).
    // With `handover`, the SIGTERM carries detail::handover_stop_value (sigqueue-style), which
    // tells the daemon that a successor serves on its sockets (daemon_context::handed_over()).
    bool end_daemon(borrowed_fd pidfd, pid_t pid, bool signal, bool handover = false) {
        if (signal) {
            if (auto s = control_pidfd_signal(pidfd, SIGTERM, handover ? handover_stop_value : 0);
                !s && s.error().value() != ESRCH) {
                error("cannot signal PID " + std::to_string(pid) + ": " + s.error().message(), pid);
                return false;
            }
        }
        if (!control_wait_exit(pidfd, deadline_)) {
            (void)control_pidfd_signal(pidfd, SIGKILL);
            out_.killed = true;
            out_.message = std::string(to_string(p_.action)) + " " + p_.pid_file + ": PID " +
                           std::to_string(pid) + " did not stop within " + seconds_text(timeout_) +
                           ": sent SIGKILL";
            if (!control_wait_exit(pidfd,
                                   std::chrono::steady_clock::now() + std::chrono::seconds(10))) {
                error("PID " + std::to_string(pid) + " survived SIGKILL for 10 s", pid);
                return false;
            }
        }
        return true;
    }

    void stop() {
        std::optional<unique_fd> pidfd;
        auto st = settle(true, pidfd);
        if (!st) return;
        if (st->state == pid_file_state::absent)
            return void(finish(control_exit::already, "not running", 0, "not running"));
        if (st->state == pid_file_state::stale)
            return void(finish(control_exit::stale, "stale", st->pid, stale_text(*st)));
        pid_t pid = st->pid;
        if (!end_daemon(*pidfd, pid, st->state == pid_file_state::running)) return;
        // Gone. A SIGKILLed daemon leaves its PID behind: clean it. The lock must be free now,
        // unless someone else took it meanwhile (a start that does not use the guard).
        auto after = probe_pid_file(p_.pid_file, true);
        if (after &&
            (after->state == pid_file_state::absent || after->state == pid_file_state::stale)) {
            std::string note = out_.message;
            finish(control_exit::done, out_.killed ? "killed" : "stopped", pid);
            out_.message = note;
            return;
        }
        error("PID " + std::to_string(pid) + " exited, but the PID file is still locked" +
                  (after && after->pid != 0 ? " (by PID " + std::to_string(after->pid) + ")" : ""),
              pid);
    }

    // Collects the starter's stderr until it exits or the deadline passes. True: it exited 0
    // (the daemon is ready); false: error() said why. A starter still running at the deadline
    // is left running, or killed with its process group when `stop_on_timeout`.
    bool wait_starter(pid_t child, unique_fd out_read, bool stop_on_timeout) {
        auto child_fd = control_pidfd_open(child);
        ::fcntl(out_read.get(), F_SETFL, O_NONBLOCK);
        bool exited = false, timed_out = false;
        while (!exited) {
            pollfd fds[2] = {{out_read.get(), POLLIN, 0},
                             {child_fd ? child_fd->get() : -1, POLLIN, 0}};
            int n = ::poll(fds, 2, child_fd ? control_poll_ms(deadline_) : 20);
            if (n < 0 && errno == EINTR) continue;
            if (n == 0 && child_fd) {
                timed_out = true;
                break;
            }
            char buf[4096];
            ssize_t got;
            while ((got = ::read(out_read.get(), buf, sizeof buf)) > 0)
                out_.daemon_output.append(buf, static_cast<std::size_t>(got));
            if (child_fd ? (fds[1].revents & POLLIN) != 0
                         : ::waitpid(child, nullptr, WNOHANG | WNOWAIT) == child)
                exited = true;
        }
        if (timed_out && stop_on_timeout) {
            // An upgrade's starter is ended; the daemon it forked follows it (daemon_run sets
            // the parent-death signal SIGTERM until it is ready).
            if (child_fd) (void)control_pidfd_signal(*child_fd, SIGKILL);
            ::kill(-child, SIGKILL);
            while (::waitpid(child, nullptr, 0) < 0 && errno == EINTR) {
            }
            error(p_.command[0] + " was not ready within " + seconds_text(timeout_) + " (PID " +
                  std::to_string(child) + " stopped)");
            return false;
        }
        if (timed_out) {
            error(p_.command[0] + " was not ready within " + seconds_text(timeout_) + " (PID " +
                  std::to_string(child) + " left running)");
            return false;
        }
        int status = 0;
        while (::waitpid(child, &status, 0) < 0 && errno == EINTR) {
        }
        char buf[4096];
        ssize_t got;
        while ((got = ::read(out_read.get(), buf, sizeof buf)) > 0)
            out_.daemon_output.append(buf, static_cast<std::size_t>(got));
        int code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
        if (code != 0) {
            out_.daemon_exit_code = code;
            std::string last = out_.daemon_output;
            while (!last.empty() && last.back() == '\n') last.pop_back();
            if (auto nl = last.rfind('\n'); nl != std::string::npos) last.erase(0, nl + 1);
            std::string how = WIFEXITED(status)
                                  ? "exit code " + std::to_string(code)
                                  : "killed by signal " + std::to_string(WTERMSIG(status));
            error(p_.command[0] + " failed to start (" + how + ")" +
                  (last.empty() ? "" : ": " + last));
            return false;
        }
        return true;
    }

    void start() {
        std::optional<unique_fd> pidfd;
        auto st = settle(true, pidfd);
        if (!st) return;
        if (st->state == pid_file_state::exiting) { // let it finish, then start afresh
            if (!control_wait_exit(*pidfd, deadline_))
                return error("PID " + std::to_string(st->pid) + " is still exiting", st->pid);
            st = settle(true, pidfd);
            if (!st) return;
        }
        if (st->state == pid_file_state::running || st->state == pid_file_state::exiting)
            return void(finish(control_exit::already, "running", st->pid,
                               "already running as PID " + std::to_string(st->pid)));
        std::string stale_note;
        if (st->state == pid_file_state::stale) stale_note = stale_text(*st);
        if (p_.command.empty()) return error("no command to start");

        // The starter's stderr comes to us until it exits (daemon_run moves the daemon's stderr
        // away at ready()), so that its own failure message can be reported.
        int pipe_fds[2];
        if (::pipe2(pipe_fds, O_CLOEXEC) != 0) return error("pipe: " + errno_text(errno));
        unique_fd out_read(pipe_fds[0]), out_write(pipe_fds[1]);
        spawn_options o;
        o.argv = p_.command;
        o.stderr_to = out_write;
        auto child = spawn(o);
        out_write.reset();
        if (!child) return error("cannot run " + p_.command[0] + ": " + child.error().message());
        if (!wait_starter(child->pid(), std::move(out_read), false)) return;
        // The starter exited 0: the daemon said it is ready. It must hold the lock now.
        std::optional<unique_fd> started;
        auto now = settle(false, started);
        if (!now) return;
        if (now->state != pid_file_state::running)
            return error(p_.command[0] + " exited 0 but no daemon holds the PID file");
        finish(control_exit::done, "started", now->pid);
        if (!stale_note.empty()) out_.message = "start " + p_.pid_file + ": " + stale_note;
    }

    // The listening sockets that the daemon behind `pidfd` offers (daemon_context::hand_over():
    // the ".listen" file beside the PID file, written by the holder of the PID file and naming
    // it), each taken from it with pidfd_getfd and checked to be listening. Nothing: error()
    // said why.
    std::optional<std::vector<std::pair<unique_fd, std::string>>> take_listeners(borrowed_fd pidfd,
                                                                                 pid_t pid) {
        std::string path = pid_file_sibling(p_.pid_file, ".listen");
        std::string text;
        {
            unique_fd f(::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW));
            char buf[4096];
            ssize_t n = f ? ::read(f.get(), buf, sizeof buf) : -1;
            if (n > 0) text.assign(buf, static_cast<std::size_t>(n));
        }
        if (detail::parse_pid_text(text) != pid) {
            error("PID " + std::to_string(pid) + " offers no listening sockets (" + path +
                      " does not name it): the daemon does not support upgrades; nothing changed",
                  pid);
            return std::nullopt;
        }
        std::vector<std::pair<unique_fd, std::string>> out;
        std::size_t pos = text.find('\n') + 1;
        while (pos < text.size()) {
            std::size_t nl = text.find('\n', pos);
            if (nl == std::string::npos) break;
            std::string line = text.substr(pos, nl - pos);
            pos = nl + 1;
            std::size_t sp = line.find(' ');
            int fd = -1;
            auto [end, ec] = std::from_chars(line.data(), line.data() + line.size(), fd);
            if (ec != std::errc{} || sp == std::string::npos || end != line.data() + sp || fd < 0) {
                error(path + ": bad line '" + line + "'; nothing changed", pid);
                return std::nullopt;
            }
            int got = static_cast<int>(::syscall(SYS_pidfd_getfd, pidfd.get(), fd, 0));
            if (got < 0) {
                error("cannot take fd " + std::to_string(fd) + " of PID " + std::to_string(pid) +
                          ": " + errno_text(errno) + "; nothing changed",
                      pid);
                return std::nullopt;
            }
            unique_fd sock(got); // pidfd_getfd sets close-on-exec
            int accepting = 0;
            socklen_t len = sizeof accepting;
            if (::getsockopt(sock.get(), SOL_SOCKET, SO_ACCEPTCONN, &accepting, &len) != 0 ||
                accepting == 0) {
                error("fd " + std::to_string(fd) + " of PID " + std::to_string(pid) +
                          " is not a listening socket; nothing changed",
                      pid);
                return std::nullopt;
            }
            out.emplace_back(std::move(sock), line.substr(sp + 1));
        }
        if (out.empty()) {
            error("PID " + std::to_string(pid) + " offers no listening sockets; nothing changed",
                  pid);
            return std::nullopt;
        }
        return out;
    }

    // The command with the sockets as descriptors 3, 4, ... (LISTEN_FDS, LISTEN_FDNAMES,
    // LISTEN_PID) and RINGD_UPGRADE_FROM=old in its environment; stderr to `err`.
    expected<process, spawn_error>
    spawn_with_sockets(const std::vector<std::pair<unique_fd, std::string>>& sockets, pid_t old,
                       borrowed_fd err) {
        spawn_options o;
        o.argv = p_.command;
        o.environment = {"RINGD_UPGRADE_FROM=" + std::to_string(old)};
        o.stderr_to = err;
        for (const auto& [fd, name] : sockets) o.listen_fds.push_back({fd, name});
        return spawn(o);
    }

    // --upgrade: a new daemon on the running one's listening sockets; the old one stops only
    // once the new one is ready, and the new one takes the PID file over when the old one has
    // exited (daemon_run). The guard lock is ours throughout: no start, stop or other upgrade
    // interleaves. A new daemon that fails, or is not ready in time, is stopped, and the old
    // one was never signalled.
    void upgrade() {
        std::optional<unique_fd> pidfd;
        auto st = settle(true, pidfd);
        if (!st) return;
        if (st->state == pid_file_state::absent)
            return void(finish(control_exit::not_running, "not running", 0, "not running"));
        if (st->state == pid_file_state::stale)
            return void(finish(control_exit::not_running, "not running", st->pid,
                               "not running: " + stale_text(*st)));
        if (st->state == pid_file_state::exiting)
            return void(finish(control_exit::not_running, "exiting", st->pid,
                               "not running (PID " + std::to_string(st->pid) + " is exiting)"));
        if (p_.command.empty()) return error("no command to start");
        const pid_t old = st->pid;
        auto sockets = take_listeners(*pidfd, old);
        if (!sockets) return;

        int pipe_fds[2];
        if (::pipe2(pipe_fds, O_CLOEXEC) != 0) return error("pipe: " + errno_text(errno));
        unique_fd out_read(pipe_fds[0]), out_write(pipe_fds[1]);
        auto child = spawn_with_sockets(*sockets, old, out_write);
        out_write.reset();
        sockets->clear(); // the new daemon has them, and the old one still does
        if (!child)
            return error("cannot run " + p_.command[0] + ": " + child.error().message() + "; PID " +
                             std::to_string(old) + " goes on serving",
                         old);
        if (!wait_starter(child->pid(), std::move(out_read), true)) {
            out_.pid = old;
            out_.message += "; PID " + std::to_string(old) + " goes on serving";
            return;
        }
        // The new daemon serves beside the old one. Now the old one stops accepting and drains
        // (SIGKILL if it has not finished by the deadline, as --stop does).
        if (!end_daemon(*pidfd, old, true, true)) return;
        // The new daemon takes the PID file over at once; wait until the file names it.
        std::string dir = p_.pid_file.substr(0, p_.pid_file.rfind('/') + 1);
        control_file_watch watch(dir.empty() ? "." : dir,
                                 IN_CREATE | IN_MODIFY | IN_CLOSE_WRITE | IN_MOVED_TO);
        auto limit = std::chrono::steady_clock::now() + std::chrono::seconds(10);
        for (;;) {
            auto now = probe_pid_file(p_.pid_file);
            if (now && now->state == pid_file_state::running && now->pid != old) {
                std::string note = out_.message;
                finish(control_exit::done, "upgraded", now->pid);
                out_.message = note;
                return;
            }
            if (!watch.wait(limit))
                return error("PID " + std::to_string(old) +
                             " exited, but no new daemon took the PID file over within 10 s");
        }
    }

    const control_params& p_;
    std::string guard_;                   // the guard file's path
    std::string status_path_;             // the reload-status file's path, or "-"
    std::chrono::milliseconds timeout_{}; // params.timeout, or the action's default
    std::error_code pidfd_error_;         // why the last pidfd_open failed, for the message
    time_point deadline_;                 // every wait of the action ends by then
    control_outcome out_;
};

} // namespace detail

inline control_outcome daemon_control(const control_params& params) {
    try {
        return detail::control_run(params).run();
    } catch (const std::exception& e) { // out of memory: still an outcome
        control_outcome out;
        out.state = "failed";
        out.message =
            std::string(to_string(params.action)) + " " + params.pid_file + ": " + e.what();
        return out;
    }
}

} // namespace ringd
