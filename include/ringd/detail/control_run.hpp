// SPDX-License-Identifier: MIT
// ringd/detail/control_run.hpp — one daemon_control action (control.hpp): the guard lock, the
// settled PID-file state with a proven pidfd, and the steps of check, signal, reload and stop.
// Starting (--start, --upgrade) is in detail/control_start.hpp.
#pragma once

#include <ringd/control.hpp>
#include <ringd/detail/control_support.hpp>
#include <ringd/duration_text.hpp>
#include <ringd/pidfile.hpp>
#include <ringd/process.hpp>

#include <fcntl.h>
#include <sys/file.h>
#include <sys/socket.h>
#include <sys/wait.h>

#include <chrono>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace ringd::detail {

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
        return ringd::seconds_text(static_cast<double>(ms.count()) / 1000.0) + " s";
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

    // Starting a daemon: --start and --upgrade (detail/control_start.hpp).
    bool wait_starter(pid_t child, unique_fd out_read, bool stop_on_timeout);
    void start();
    void upgrade();
    std::optional<std::vector<std::pair<unique_fd, std::string>>> take_listeners(borrowed_fd pidfd,
                                                                                 pid_t pid);
    expected<process, spawn_error>
    spawn_with_sockets(const std::vector<std::pair<unique_fd, std::string>>& sockets, pid_t old,
                       borrowed_fd err);

    const control_params& p_;
    std::string guard_;                   // the guard file's path
    std::string status_path_;             // the reload-status file's path, or "-"
    std::chrono::milliseconds timeout_{}; // params.timeout, or the action's default
    std::error_code pidfd_error_;         // why the last pidfd_open failed, for the message
    time_point deadline_;                 // every wait of the action ends by then
    control_outcome out_;
};

} // namespace ringd::detail

namespace ringd {

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

// --start and --upgrade, declared in control_run above.
#include <ringd/detail/control_start.hpp>
