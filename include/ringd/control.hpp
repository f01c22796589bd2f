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

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
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

} // namespace ringd

// The implementation: detail/control_run.hpp (and the headers it includes).
#include <ringd/detail/control_run.hpp>
