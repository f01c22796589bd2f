// SPDX-License-Identifier: MIT
// ringd/supervision_state.hpp — the supervision state machine of one service, with no processes.
// Pure: (state, event, now) → (next state, actions); supervisor.hpp performs the actions and feeds
// back the events. No fork, no syscalls, no clock reads (time comes in as `now`), no allocation.
//
// THE TABLE (state × event → next state [actions]). Sub-phases that a state hides:
//   starting·  spawn asked for, no pid yet      starting+  process alive, waiting for `ready`
//   stopping·  stop asked while spawn pending   stopping+  process alive, stop signal sent
//   then       (stopping only) what follows the exit: down | again (start) | fail (policy step)
// Notation: TERM = send_stop_signal{policy.stop_signal}, KILL = send_kill, arm(x) = arm_timer at
//   now + x (no arm when x is 0 = "none"), cancel = cancel_timer (only if one is armed);
//   log:LEVEL reason; "-" = ignored, no actions; "?" = ignored, [log:warning unexpected_event]:
//   the machine never asked for it, so the process layer has a bug.
//   START  = start-limit check: hit → failed [log:err start_limit_hit];
//            else → starting· [log:notice start|restart, spawn].
//   FRESH  = clear the start-limit window and reset the backoff delay to restart_delay.
//   AFTER(f) = policy step for a run that ended, f = it failed: restart (always, or on_failure and
//            f) → backoff [arm(delay)], delay grows ×backoff_factor up to the cap; else f → failed,
//            !f → stopped. An exit (not a stop) with a status in policy.no_restart_exit_codes
//            (default 64, 77, 78: permanent failures) never restarts.
//   Every change of state appends notify_state_changed{from, to} as the last action.
//
// state     event              next [actions]
// --------- ------------------ ---------------------------------------------------------------
// stopped   start_requested    FRESH, restarts = 0, START
//           stop_requested     -
//           restart_requested  -  (the service is wanted down; restart only refreshes a service
//                              that is wanted up: use start_requested to start it)
//           spawned            ?
//           spawn_failed       ?
//           ready              -
//           exited             ?
//           timer_fired        -  (no deadline armed: a stale timer)
// starting· start_requested    -
//           stop_requested     → stopping· then=down  (TERM as soon as `spawned` arrives)
//           restart_requested  FRESH, → stopping· then=again
//           spawned            needs_readiness ? starting+ [arm(ready_timeout)] : → running
//           spawn_failed       → backoff [log:err spawn_failure, arm(spawn_retry_interval)]
//           ready              -
//           exited             ?
//           timer_fired        -
// starting+ start_requested    -
//           stop_requested     → stopping+ then=down [TERM, arm(stop_timeout)]
//           restart_requested  FRESH, → stopping+ then=again [TERM, arm(stop_timeout)]
//           spawned            ?
//           spawn_failed       ?
//           ready              → running [cancel, log:info ready]
//           exited             [cancel, log:err exit_failure] AFTER(true)  (died before ready)
//           timer_fired        ready timeout: → stopping+ then=fail
//                              [log:err ready_timeout, TERM, arm(stop_timeout)]
// running   start_requested    -
//           stop_requested     → stopping+ then=down [TERM, arm(stop_timeout)]
//           restart_requested  FRESH, → stopping+ then=again [TERM, arm(stop_timeout)]
//           spawned            ?
//           spawn_failed       ?
//           ready              -  (a repeated READY=1)
//           exited             [log:notice exit_clean | log:err exit_failure]; a run of at least
//                              stable_after resets the delay first; AFTER(!clean)
//           timer_fired        -
// backoff   start_requested    -  (already wanted up: the timer starts it, as systemd does)
//           stop_requested     → stopped [cancel]
//           restart_requested  FRESH, [cancel] START  (skips the wait)
//           spawned            ?
//           spawn_failed       ?
//           ready              -
//           exited             ?
//           timer_fired        START
// stopping  start_requested    then: down → again; again, fail unchanged
//           stop_requested     then = down
//           restart_requested  then: again, fail → again with FRESH; down stays down
//           spawned            stopping· → stopping+ [TERM, arm(stop_timeout)];  stopping+: ?
//           spawn_failed       stopping·: [log:err spawn_failure] then=again ? → backoff
//                              [arm(spawn_retry_interval)] : → stopped;  stopping+: ?
//           ready              -
//           exited             stopping+: [cancel] then=down → stopped [log:notice stopped, or
//                              log:warning stopped if not clean or SIGKILLed]; then=again
//                              [log:notice stopped] START; then=fail [log:notice stopped]
//                              AFTER(true);  stopping·: ?
//           timer_fired        stopping+, first time: [KILL, log:warning stop_timeout], stays
//                              stopping and waits for `exited` with no further deadline
// failed    start_requested    FRESH, restarts = 0, START
//           stop_requested     → stopped  (acknowledged: now wanted down)
//           restart_requested  as start_requested
//           spawned            ?
//           spawn_failed       ?
//           ready              -
//           exited             ?
//           timer_fired        -
// Any state: a timer_fired with `now` before the armed deadline re-arms it [arm_timer{deadline}],
//   so a timer that fires early (or a stale one that races a re-arm) is neither lost nor obeyed.
//
// Decisions worth knowing (details at the declarations):
// - One timer per service: arm_timer replaces any armed deadline; cancel_timer removes it.
// - A spawn failure (fork/clone/exec setup failed, nothing ran) is retried every
//   spawn_retry_interval forever (keepalive -t), whatever the restart policy; it does not count
//   towards the start limit, the backoff delay or restarts(): the limit is for crash loops, and a
//   node short of resources should come back by itself once it recovers.
// - `failed` means "wanted up, down, not retried until an operator asks": the start limit was
//   hit, or a run failed under restart = never (a refinement of "never: exited → stopped", so
//   that a status display tells a crash from an end). A clean exit with no restart is `stopped`.
// - Operator starts (start_requested from stopped/failed) and restart_requested are FRESH: the
//   start limit protects against crash loops, not against the operator or a changed script.
#pragma once

#include <ringd/log_level.hpp>

#include <signal.h>    // SIGTERM, CLD_EXITED, CLD_KILLED, CLD_DUMPED (constants only)
#include <sys/types.h> // pid_t
#include <sys/wait.h>  // WIFEXITED & co. (macros only)

#include <array>
#include <chrono>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <limits>
#include <optional>
#include <string_view>
#include <variant>

namespace ringd::supervision {

using clock = std::chrono::steady_clock;
using time_point = clock::time_point;
using duration = clock::duration;

// ---------------------------------------------------------------------------------------------
// Policy

// What happens when the process of a service ends by itself.
enum class restart_policy : std::uint8_t {
    always,     // restart after any exit (cssd, keepalive)
    on_failure, // restart after a failure; a clean exit (status 0) leaves it stopped
    never,      // never restart: a clean exit → stopped, a failure → failed
};

// A set of exit statuses (0..255), e.g. the ones that mean "do not restart". No allocation.
class exit_code_set {
public:
    constexpr exit_code_set() noexcept = default;
    constexpr exit_code_set(std::initializer_list<int> codes) noexcept {
        for (int c : codes) add(c);
    }
    // Codes outside 0..255 are ignored (no exit status has them).
    constexpr void add(int code) noexcept {
        if (code >= 0 && code < 256)
            bits_[static_cast<unsigned>(code) / 64] |= std::uint64_t{1} << (code % 64);
    }
    [[nodiscard]] constexpr bool contains(int code) const noexcept {
        return code >= 0 && code < 256 &&
               (bits_[static_cast<unsigned>(code) / 64] >> (code % 64) & 1) != 0;
    }
    [[nodiscard]] constexpr bool empty() const noexcept {
        return (bits_[0] | bits_[1] | bits_[2] | bits_[3]) == 0;
    }
    friend constexpr bool operator==(const exit_code_set&, const exit_code_set&) noexcept = default;

private:
    std::array<std::uint64_t, 4> bits_{}; // bit c: code c is in the set
};

// The permanent-failure exit codes of ringd's daemons (docs/lifecycle: sysexits.h usage 64,
// no_permission 77, config 78; systemd's RestartPreventExitStatus=64 77 78): restarting cannot
// help, so by default they are not restarted.
inline constexpr exit_code_set permanent_failure_exit_codes{64, 77, 78};

// The knobs of one service. Durations of zero mean "none" where noted. normalized() says how
// out-of-range values are read; the machine applies it to every policy it is given.
// cssd's "re-invoke 5 s after an exit": restart_delay = 5s, backoff_factor = 1.
struct service_policy {
    restart_policy restart = restart_policy::always;
    // Delay before the first automatic restart; each restart multiplies it by backoff_factor,
    // up to max_restart_delay. A run of at least stable_after sets it back to restart_delay.
    duration restart_delay = std::chrono::seconds(5);
    double backoff_factor = 2.0;
    duration max_restart_delay = std::chrono::seconds(60);
    duration stable_after = std::chrono::seconds(10);
    // More than start_limit_burst starts within start_limit_interval → failed (systemd's
    // StartLimitBurst / StartLimitIntervalSec). Either one 0 = no limit.
    unsigned start_limit_burst = 5;
    duration start_limit_interval = std::chrono::seconds(10);
    // Stopping sends stop_signal, then SIGKILL after stop_timeout (0 = never escalate).
    int stop_signal = SIGTERM;
    duration stop_timeout = std::chrono::seconds(10);
    // The service reports readiness (notification fd / sd_notify READY=1): it is `running` only
    // after `ready`. No `ready` within ready_timeout (0 = wait forever) is a failure.
    bool needs_readiness = false;
    duration ready_timeout = duration::zero();
    // After a failed spawn (nothing ran), try again after this (keepalive -t).
    duration spawn_retry_interval = std::chrono::seconds(5);
    // A process that exits by itself with one of these statuses is not restarted, whatever
    // `restart` says: `failed` (or `stopped` for 0). Killed by a signal never matches.
    exit_code_set no_restart_exit_codes = permanent_failure_exit_codes;

    // Every field alike (a reload that changes none of them leaves the service alone).
    friend constexpr bool operator==(const service_policy&,
                                     const service_policy&) noexcept = default;
};

// The longest duration a policy holds: what the table writes in whole milliseconds and reads
// back without overflowing `duration` (int64 nanoseconds: about 292 years).
inline constexpr std::int64_t max_policy_duration_ms =
    std::numeric_limits<duration::rep>::max() / 1'000'000;

// A number of seconds (a config value, an option) as a policy duration, rounded to the
// millisecond; nothing when it is not finite, negative, above max_policy_duration_ms, or above
// 0 but below 1 ms (it would silently become 0, which means "none" or "at once").
[[nodiscard]] constexpr std::optional<duration> policy_duration(double seconds) noexcept {
    if (!(seconds >= 0) || seconds > static_cast<double>(max_policy_duration_ms / 1000))
        return std::nullopt; // also NaN and infinity
    if (seconds > 0 && seconds < 0.001) return std::nullopt;
    const auto ms = static_cast<std::int64_t>(seconds * 1000 + 0.5);
    return std::chrono::duration_cast<duration>(std::chrono::milliseconds(ms));
}

// The longest start-limit burst the machine tracks (its start history is a fixed array).
inline constexpr unsigned max_start_limit_burst = 64;

// The policy as the machine reads it: negative durations are 0; a backoff_factor below 1 (or
// NaN) is 1; start_limit_burst is capped at max_start_limit_burst, and 0 turns the limit off,
// as does a start_limit_interval of 0; max_restart_delay is at least restart_delay (a cap below
// the first delay would silently shorten it); stop_signal outside 1..64 is SIGTERM.
[[nodiscard]] constexpr service_policy normalized(service_policy p) noexcept;

// ---------------------------------------------------------------------------------------------
// States

enum class state : std::uint8_t {
    stopped,  // wanted down, no process, nothing armed
    starting, // a spawn is pending, or the process waits to report readiness
    running,  // the process runs (and, if it must, has reported readiness)
    backoff,  // wanted up, no process, a timer will start it
    stopping, // the process was told to stop (or will be, once its spawn reports back)
    failed,   // wanted up but given up: start limit hit, or a failure the policy won't restart
};
[[nodiscard]] constexpr std::string_view to_string(state s) noexcept;
[[nodiscard]] constexpr std::string_view to_string(restart_policy p) noexcept;

// ---------------------------------------------------------------------------------------------
// Events: what the process layer (or an operator, or a reconcile) reports.

// How a process ended: exited with a code, or killed by a signal.
struct exit_status {
    bool signalled = false;   // false: exited with `value` as its status; true: killed by signal
    int value = 0;            // exit status (0..255) or signal number
    bool core_dumped = false; // killed, and the kernel wrote a core

    [[nodiscard]] static constexpr exit_status exited_with(int code) noexcept {
        return {false, code, false};
    }
    [[nodiscard]] static constexpr exit_status killed_by(int signo, bool core = false) noexcept {
        return {true, signo, core};
    }
    // From waitid()'s siginfo: code = si_code, status = si_status (e.g. an IORING_OP_WAITID
    // completion). CLD_EXITED → exited_with; CLD_KILLED/CLD_DUMPED → killed_by. Any other code
    // is not a termination (the layer waits with WEXITED only) and is read as killed_by(status).
    [[nodiscard]] static constexpr exit_status from_siginfo(int code, int status) noexcept;
    // From a wait()/waitpid() status word.
    [[nodiscard]] static constexpr exit_status from_wait_status(int wstatus) noexcept;

    // Exited with status 0.
    [[nodiscard]] constexpr bool success() const noexcept { return !signalled && value == 0; }
    // Counts as a clean end: success(), or — only after we asked it to stop — death by the stop
    // signal, or exit status 128 + stop signal (what a shell reports for a child it lost so).
    [[nodiscard]] constexpr bool clean(bool stop_was_requested,
                                       int stop_signal = SIGTERM) const noexcept {
        if (success()) return true;
        if (!stop_was_requested) return false;
        return signalled ? value == stop_signal : value == 128 + stop_signal;
    }
    friend constexpr bool operator==(const exit_status&, const exit_status&) noexcept = default;
};

struct start_requested {};   // operator/config: the service is wanted up
struct stop_requested {};    // operator/config/shutdown: the service is wanted down
struct restart_requested {}; // e.g. its script's mtime changed: replace the running instance
struct spawned {             // the spawn asked for succeeded
    pid_t pid;
};
struct spawn_failed { // the spawn asked for failed before anything ran
    int error;        // errno value
};
struct ready {}; // the process reported readiness (notification fd, sd_notify READY=1)
struct exited {  // the process ended (pidfd readable, waitid reaped it)
    exit_status status;
};
struct timer_fired {}; // the deadline of the last arm_timer has passed

using event = std::variant<start_requested, stop_requested, restart_requested, spawned,
                           spawn_failed, ready, exited, timer_fired>;
[[nodiscard]] constexpr std::string_view event_name(const event& e) noexcept;

// ---------------------------------------------------------------------------------------------
// Actions: what the machine asks the process layer to do, in order.

// Log messages carry syslog priorities (ringd::log_level), so that the layer can pass them on
// unchanged. The machine uses err, warning, notice and info (cssd: errors at err, (re)starts at
// notice).
using ringd::log_level;

// Why a log_message was asked for. The layer has the details (exit status, errno, deadline)
// from the event it fed and the other actions of the same transition.
enum class reason : std::uint8_t {
    start,            // notice: spawning after an operator start
    restart,          // notice: spawning again (after an exit, a restart request, a spawn retry)
    spawn_failure,    // err: the spawn failed; retried after spawn_retry_interval
    ready,            // info: the process reported readiness
    ready_timeout,    // err: no readiness within ready_timeout; stopping it as a failure
    exit_clean,       // notice: the process exited with status 0
    exit_failure,     // err: the process failed (non-zero status, signal, or died before ready)
    start_limit_hit,  // err: too many starts within start_limit_interval; now failed
    stop_timeout,     // warning: it outlived stop_timeout after the stop signal; SIGKILL sent
    stopped,          // notice (warning if not clean): the process ended after a stop
    unexpected_event, // warning: an event the machine never asked for (a process-layer bug)
};
[[nodiscard]] constexpr std::string_view to_string(reason r) noexcept;

struct spawn {};          // start the process; answer with spawned or spawn_failed
struct send_stop_signal { // send this signal to the process (its pidfd)
    int signo;
};
struct send_kill {}; // send SIGKILL to the process
struct arm_timer {   // feed timer_fired at (or after) this deadline; replaces any earlier
    time_point deadline;
};
struct cancel_timer {}; // the armed deadline is void (a timer_fired racing this is ignored)
struct log_message {
    log_level level;
    reason why;
};
struct notify_state_changed { // for status displays, sd_notify STATUS=, the control socket
    state from;
    state to;
};

using action = std::variant<spawn, send_stop_signal, send_kill, arm_timer, cancel_timer,
                            log_message, notify_state_changed>;
[[nodiscard]] constexpr std::string_view action_name(const action& a) noexcept;

// A fixed-capacity list of actions (no heap). No transition produces more than 5; at capacity a
// push is dropped and overflowed() turns true (the table test proves that never happens).
class action_list {
public:
    static constexpr std::size_t capacity = 8;

    [[nodiscard]] std::size_t size() const noexcept { return size_; }
    [[nodiscard]] bool empty() const noexcept { return size_ == 0; }
    [[nodiscard]] bool overflowed() const noexcept { return overflowed_; }
    [[nodiscard]] const action* begin() const noexcept { return items_.data(); }
    [[nodiscard]] const action* end() const noexcept { return items_.data() + size_; }
    [[nodiscard]] const action& operator[](std::size_t i) const noexcept { return items_[i]; }

    // The first action of type A, or nullptr.
    template <class A>
    [[nodiscard]] const A* find() const noexcept;
    template <class A>
    [[nodiscard]] bool contains() const noexcept {
        return find<A>() != nullptr;
    }
    template <class A>
    [[nodiscard]] std::size_t count() const noexcept;

    void push_back(const action& a) noexcept;

private:
    std::array<action, capacity> items_{}; // items_[0, size_) are the actions, in order
    std::uint8_t size_ = 0;                // number of actions held
    bool overflowed_ = false;              // a push found the list full
};

struct transition_result {
    state previous;      // the state before the event
    state next;          // the state after it (== current())
    action_list actions; // to perform in order

    [[nodiscard]] bool changed() const noexcept { return previous != next; }
};

// ---------------------------------------------------------------------------------------------
// The machine

class service_machine {
public:
    // A stopped service; feed start_requested to start it.
    explicit service_machine(service_policy policy = {}) noexcept;

    // Feeds one event that happened at `now` (steady clock, not decreasing between calls) and
    // returns what to do. Never fails: every state × event is defined (see THE TABLE).
    [[nodiscard]] transition_result on(const event& e, time_point now) noexcept;

    [[nodiscard]] state current() const noexcept { return state_; }
    // Successful spawns since the last operator start that were restarts (automatic, requested,
    // or the retry of a failed restart). Spawn failures do not count.
    [[nodiscard]] unsigned restarts() const noexcept { return restarts_; }
    // The process is alive as far as the machine knows (between spawned and exited).
    [[nodiscard]] bool has_process() const noexcept { return has_process_; }
    // Its pid while has_process(), else 0.
    [[nodiscard]] pid_t pid() const noexcept { return has_process_ ? pid_ : 0; }
    // A spawn action awaits its spawned / spawn_failed answer.
    [[nodiscard]] bool spawn_pending() const noexcept { return spawn_pending_; }
    // The armed deadline, if any (the layer's timer should match it).
    [[nodiscard]] std::optional<time_point> deadline() const noexcept { return deadline_; }
    // When the process entered running (for uptime); meaningful while current() == running.
    [[nodiscard]] time_point up_since() const noexcept { return running_since_; }
    // The delay the next automatic restart after an exit would use (before a stable-run reset).
    [[nodiscard]] duration next_restart_delay() const noexcept { return next_delay_; }
    // How the last process ended, if one has.
    [[nodiscard]] std::optional<exit_status> last_exit() const noexcept { return last_exit_; }
    // errno of the last spawn failure since the last fresh start, or 0.
    [[nodiscard]] int last_spawn_error() const noexcept { return last_spawn_error_; }
    // Nothing in flight: no process, no pending spawn, no timer (stopped or failed). A shutdown
    // is complete when every service is quiescent.
    [[nodiscard]] bool quiescent() const noexcept {
        return !has_process_ && !spawn_pending_ && !deadline_;
    }
    [[nodiscard]] const service_policy& policy() const noexcept { return policy_; }
    // Replaces the policy (e.g. after a reload); it applies from the next decision on. An armed
    // deadline stays as it is; the backoff delay restarts from the new restart_delay.
    void set_policy(const service_policy& policy) noexcept;

private:
    // What follows the exit of a process being stopped.
    enum class after_stop : std::uint8_t { down, again, fail };

    struct step {         // one call of on()
        action_list& out; // the actions being collected
        time_point now;   // when the event happened
    };

    void handle(const start_requested&, step& s) noexcept;
    void handle(const stop_requested&, step& s) noexcept;
    void handle(const restart_requested&, step& s) noexcept;
    void handle(const spawned& e, step& s) noexcept;
    void handle(const spawn_failed& e, step& s) noexcept;
    void handle(const ready&, step& s) noexcept;
    void handle(const exited& e, step& s) noexcept;
    void handle(const timer_fired&, step& s) noexcept;

    void begin_start(step& s, bool is_restart) noexcept;
    void begin_stop(step& s, after_stop then) noexcept;
    void send_stop(step& s) noexcept;
    void enter_running(step& s) noexcept;
    void after_run(step& s, bool failure, duration ran, bool no_restart = false) noexcept;
    void schedule_spawn_retry(step& s, bool is_restart) noexcept;
    void fresh() noexcept;
    void arm(step& s, time_point deadline) noexcept;
    void disarm(step& s) noexcept;
    static void log(step& s, log_level level, reason why) noexcept;
    static void unexpected(step& s) noexcept;
    [[nodiscard]] static time_point after(time_point t, duration d) noexcept;
    [[nodiscard]] duration grown(duration d) const noexcept;
    // The process exited by itself with a status of policy_.no_restart_exit_codes.
    [[nodiscard]] bool no_restart(const exit_status& e) const noexcept;

    [[nodiscard]] bool start_limit_hit(time_point now) const noexcept;
    void record_start(time_point now) noexcept;
    void unrecord_start() noexcept;

    service_policy policy_;                // normalized
    state state_ = state::stopped;         // the public state
    after_stop then_ = after_stop::down;   // stopping: what follows the exit
    bool has_process_ = false;             // between spawned and exited
    bool spawn_pending_ = false;           // between spawn and spawned / spawn_failed
    bool pending_is_restart_ = false;      // the pending spawn is a restart (for restarts_)
    bool kill_sent_ = false;               // stopping: SIGKILL already asked for
    bool retry_is_restart_ = false;        // backoff: the spawn the timer starts is a restart
    pid_t pid_ = 0;                        // the process, while has_process_
    std::optional<time_point> deadline_;   // the armed timer
    time_point running_since_{};           // when the current run entered running
    duration next_delay_{};                // delay of the next restart after an exit
    unsigned restarts_ = 0;                // see restarts()
    int last_spawn_error_ = 0;             // see last_spawn_error()
    std::optional<exit_status> last_exit_; // see last_exit()
    std::array<time_point, max_start_limit_burst> starts_{}; // ring of recent start times
    unsigned starts_head_ = 0;                               // next slot of starts_
    unsigned starts_count_ = 0; // valid entries in starts_ (≤ its size)
};

} // namespace ringd::supervision

// The bodies.
#include <ringd/detail/supervision_transitions.hpp>
#include <ringd/detail/supervision_values.hpp>
