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

// =============================================================================================
// Implementation

constexpr service_policy normalized(service_policy p) noexcept {
    auto nonneg = [](duration d) { return d < duration::zero() ? duration::zero() : d; };
    p.restart_delay = nonneg(p.restart_delay);
    p.max_restart_delay = nonneg(p.max_restart_delay);
    if (p.max_restart_delay < p.restart_delay) p.max_restart_delay = p.restart_delay;
    if (!(p.backoff_factor >= 1.0)) p.backoff_factor = 1.0; // also catches NaN
    if (p.start_limit_burst > max_start_limit_burst) p.start_limit_burst = max_start_limit_burst;
    p.start_limit_interval = nonneg(p.start_limit_interval);
    p.stop_timeout = nonneg(p.stop_timeout);
    if (p.stop_signal < 1 || p.stop_signal > 64) p.stop_signal = SIGTERM;
    p.ready_timeout = nonneg(p.ready_timeout);
    p.spawn_retry_interval = nonneg(p.spawn_retry_interval);
    p.stable_after = nonneg(p.stable_after);
    return p;
}

constexpr std::string_view to_string(state s) noexcept {
    switch (s) {
    case state::stopped:
        return "stopped";
    case state::starting:
        return "starting";
    case state::running:
        return "running";
    case state::backoff:
        return "backoff";
    case state::stopping:
        return "stopping";
    case state::failed:
        return "failed";
    }
    return "invalid";
}

constexpr std::string_view to_string(restart_policy p) noexcept {
    switch (p) {
    case restart_policy::always:
        return "always";
    case restart_policy::on_failure:
        return "on_failure";
    case restart_policy::never:
        return "never";
    }
    return "invalid";
}

constexpr std::string_view to_string(reason r) noexcept {
    switch (r) {
    case reason::start:
        return "start";
    case reason::restart:
        return "restart";
    case reason::spawn_failure:
        return "spawn_failure";
    case reason::ready:
        return "ready";
    case reason::ready_timeout:
        return "ready_timeout";
    case reason::exit_clean:
        return "exit_clean";
    case reason::exit_failure:
        return "exit_failure";
    case reason::start_limit_hit:
        return "start_limit_hit";
    case reason::stop_timeout:
        return "stop_timeout";
    case reason::stopped:
        return "stopped";
    case reason::unexpected_event:
        return "unexpected_event";
    }
    return "invalid";
}

constexpr std::string_view event_name(const event& e) noexcept {
    constexpr std::array<std::string_view, std::variant_size_v<event>> names{
        "start_requested", "stop_requested", "restart_requested", "spawned", "spawn_failed",
        "ready",           "exited",         "timer_fired"};
    return e.index() < names.size() ? names[e.index()] : "invalid";
}

constexpr std::string_view action_name(const action& a) noexcept {
    constexpr std::array<std::string_view, std::variant_size_v<action>> names{
        "spawn",        "send_stop_signal", "send_kill",           "arm_timer",
        "cancel_timer", "log_message",      "notify_state_changed"};
    return a.index() < names.size() ? names[a.index()] : "invalid";
}

constexpr exit_status exit_status::from_siginfo(int code, int status) noexcept {
    switch (code) {
    case CLD_EXITED:
        return exited_with(status);
    case CLD_DUMPED:
        return killed_by(status, true);
    default:
        return killed_by(status); // CLD_KILLED (and, defensively, anything else)
    }
}

constexpr exit_status exit_status::from_wait_status(int wstatus) noexcept {
    if (WIFEXITED(wstatus)) return exited_with(WEXITSTATUS(wstatus));
    return killed_by(WTERMSIG(wstatus), WCOREDUMP(wstatus) != 0);
}

template <class A>
const A* action_list::find() const noexcept {
    for (const action& a : *this)
        if (const A* p = std::get_if<A>(&a)) return p;
    return nullptr;
}

template <class A>
std::size_t action_list::count() const noexcept {
    std::size_t n = 0;
    for (const action& a : *this) n += std::holds_alternative<A>(a) ? 1 : 0;
    return n;
}

inline void action_list::push_back(const action& a) noexcept {
    if (size_ == capacity) {
        overflowed_ = true;
        return;
    }
    items_[size_++] = a;
}

inline service_machine::service_machine(service_policy policy) noexcept
    : policy_(normalized(policy)), next_delay_(policy_.restart_delay) {}

inline void service_machine::set_policy(const service_policy& policy) noexcept {
    policy_ = normalized(policy);
    next_delay_ = policy_.restart_delay;
}

inline transition_result service_machine::on(const event& e, time_point now) noexcept {
    transition_result r{state_, state_, {}};
    step s{r.actions, now};
    // Dispatch by index, not std::visit, which may throw bad_variant_access (it cannot here:
    // every alternative is trivially copyable, so an event is never valueless).
    switch (e.index()) {
    case 0:
        handle(*std::get_if<0>(&e), s);
        break;
    case 1:
        handle(*std::get_if<1>(&e), s);
        break;
    case 2:
        handle(*std::get_if<2>(&e), s);
        break;
    case 3:
        handle(*std::get_if<3>(&e), s);
        break;
    case 4:
        handle(*std::get_if<4>(&e), s);
        break;
    case 5:
        handle(*std::get_if<5>(&e), s);
        break;
    case 6:
        handle(*std::get_if<6>(&e), s);
        break;
    case 7:
        handle(*std::get_if<7>(&e), s);
        break;
    default:
        break;
    }
    static_assert(std::variant_size_v<event> == 8, "a new event needs a case above");
    r.next = state_;
    if (r.changed()) r.actions.push_back(notify_state_changed{r.previous, r.next});
    return r;
}

// ---- events ----

inline void service_machine::handle(const start_requested&, step& s) noexcept {
    switch (state_) {
    case state::stopped:
    case state::failed:
        fresh();
        restarts_ = 0;
        begin_start(s, false);
        break;
    case state::stopping:
        if (then_ == after_stop::down) then_ = after_stop::again;
        break;
    case state::starting:
    case state::running:
    case state::backoff:
        break; // already wanted up
    }
}

inline void service_machine::handle(const stop_requested&, step& s) noexcept {
    switch (state_) {
    case state::stopped:
        break;
    case state::failed:
        state_ = state::stopped;
        break;
    case state::starting:
    case state::running:
        begin_stop(s, after_stop::down);
        break;
    case state::backoff:
        disarm(s);
        state_ = state::stopped;
        break;
    case state::stopping:
        then_ = after_stop::down;
        break;
    }
}

inline void service_machine::handle(const restart_requested&, step& s) noexcept {
    switch (state_) {
    case state::stopped:
        break; // wanted down: nothing to refresh
    case state::failed:
        fresh();
        restarts_ = 0;
        begin_start(s, false);
        break;
    case state::starting:
    case state::running:
        fresh();
        begin_stop(s, after_stop::again);
        break;
    case state::backoff:
        fresh();
        disarm(s);
        begin_start(s, true);
        break;
    case state::stopping:
        if (then_ != after_stop::down) {
            fresh();
            then_ = after_stop::again;
        }
        break;
    }
}

inline void service_machine::handle(const spawned& e, step& s) noexcept {
    if (!spawn_pending_) return unexpected(s);
    spawn_pending_ = false;
    has_process_ = true;
    pid_ = e.pid;
    kill_sent_ = false;
    if (pending_is_restart_) ++restarts_;
    if (state_ == state::stopping) return send_stop(s); // stop was asked while spawning
    // state_ == starting: a pending spawn exists only in starting or stopping.
    if (!policy_.needs_readiness) return enter_running(s);
    if (policy_.ready_timeout > duration::zero()) arm(s, after(s.now, policy_.ready_timeout));
}

inline void service_machine::handle(const spawn_failed& e, step& s) noexcept {
    if (!spawn_pending_) return unexpected(s);
    spawn_pending_ = false;
    last_spawn_error_ = e.error;
    unrecord_start(); // nothing ran: not a start for the limit
    log(s, log_level::err, reason::spawn_failure);
    if (state_ == state::stopping && then_ == after_stop::down) {
        state_ = state::stopped;
        return;
    }
    // starting, or stopping with then = again (then = fail needs a process, so is not here).
    schedule_spawn_retry(s, pending_is_restart_ || state_ == state::stopping);
}

inline void service_machine::handle(const ready&, step& s) noexcept {
    if (state_ != state::starting || !has_process_) return; // repeated or early: harmless
    disarm(s);
    log(s, log_level::info, reason::ready);
    enter_running(s);
}

inline void service_machine::handle(const exited& e, step& s) noexcept {
    if (!has_process_) return unexpected(s);
    has_process_ = false;
    last_exit_ = e.status;
    disarm(s);
    switch (state_) {
    case state::starting: // died before it reported readiness
        log(s, log_level::err, reason::exit_failure);
        return after_run(s, true, duration::zero(), no_restart(e.status));
    case state::running: {
        const bool failure = !e.status.clean(false, policy_.stop_signal);
        log(s, failure ? log_level::err : log_level::notice,
            failure ? reason::exit_failure : reason::exit_clean);
        return after_run(s, failure, s.now - running_since_, no_restart(e.status));
    }
    case state::stopping: {
        const bool clean = e.status.clean(true, policy_.stop_signal) && !kill_sent_;
        kill_sent_ = false;
        switch (then_) {
        case after_stop::down:
            log(s, clean ? log_level::notice : log_level::warning, reason::stopped);
            state_ = state::stopped;
            return;
        case after_stop::again:
            log(s, log_level::notice, reason::stopped);
            return begin_start(s, true);
        case after_stop::fail:
            log(s, log_level::notice, reason::stopped);
            return after_run(s, true, duration::zero());
        }
        return;
    }
    case state::stopped:
    case state::backoff:
    case state::failed:
        return; // unreachable: no process in these states
    }
}

inline void service_machine::handle(const timer_fired&, step& s) noexcept {
    if (!deadline_) return; // stale: cancelled, or fired after it was handled
    if (s.now < *deadline_) {
        s.out.push_back(arm_timer{*deadline_}); // early: ask again, keep waiting
        return;
    }
    deadline_.reset();
    switch (state_) {
    case state::starting: // only the ready timeout is armed here
        log(s, log_level::err, reason::ready_timeout);
        return begin_stop(s, after_stop::fail);
    case state::backoff:
        return begin_start(s, retry_is_restart_);
    case state::stopping:
        if (has_process_ && !kill_sent_) {
            kill_sent_ = true;
            s.out.push_back(send_kill{});
            log(s, log_level::warning, reason::stop_timeout);
        }
        return;
    case state::stopped:
    case state::running:
    case state::failed:
        return; // no deadline is ever armed in these states
    }
}

// ---- steps ----

inline void service_machine::begin_start(step& s, bool is_restart) noexcept {
    if (start_limit_hit(s.now)) {
        log(s, log_level::err, reason::start_limit_hit);
        state_ = state::failed;
        return;
    }
    record_start(s.now);
    spawn_pending_ = true;
    pending_is_restart_ = is_restart;
    log(s, log_level::notice, is_restart ? reason::restart : reason::start);
    s.out.push_back(spawn{});
    state_ = state::starting;
}

inline void service_machine::begin_stop(step& s, after_stop then) noexcept {
    then_ = then;
    state_ = state::stopping;
    if (has_process_) send_stop(s);
    // else the spawn is pending: spawned sends the signal, spawn_failed ends the stop.
}

inline void service_machine::send_stop(step& s) noexcept {
    kill_sent_ = false;
    s.out.push_back(send_stop_signal{policy_.stop_signal});
    if (policy_.stop_timeout > duration::zero())
        arm(s, after(s.now, policy_.stop_timeout));
    else
        disarm(s); // no escalation: wait for the exit
}

inline void service_machine::enter_running(step& s) noexcept {
    running_since_ = s.now;
    state_ = state::running;
}

inline bool service_machine::no_restart(const exit_status& e) const noexcept {
    return !e.signalled && policy_.no_restart_exit_codes.contains(e.value);
}

inline void service_machine::after_run(step& s, bool failure, duration ran,
                                       bool no_restart) noexcept {
    const bool restart =
        !no_restart && (policy_.restart == restart_policy::always ||
                        (policy_.restart == restart_policy::on_failure && failure));
    if (!restart) {
        state_ = failure ? state::failed : state::stopped;
        return;
    }
    if (ran >= policy_.stable_after) next_delay_ = policy_.restart_delay;
    const duration delay = next_delay_;
    next_delay_ = grown(next_delay_);
    retry_is_restart_ = true;
    arm(s, after(s.now, delay));
    state_ = state::backoff;
}

inline void service_machine::schedule_spawn_retry(step& s, bool is_restart) noexcept {
    retry_is_restart_ = is_restart;
    arm(s, after(s.now, policy_.spawn_retry_interval));
    state_ = state::backoff;
}

inline void service_machine::fresh() noexcept {
    starts_count_ = 0;
    next_delay_ = policy_.restart_delay;
    last_spawn_error_ = 0;
}

inline void service_machine::arm(step& s, time_point deadline) noexcept {
    deadline_ = deadline;
    s.out.push_back(arm_timer{deadline});
}

inline void service_machine::disarm(step& s) noexcept {
    if (!deadline_) return;
    deadline_.reset();
    s.out.push_back(cancel_timer{});
}

inline void service_machine::log(step& s, log_level level, reason why) noexcept {
    s.out.push_back(log_message{level, why});
}

inline void service_machine::unexpected(step& s) noexcept {
    log(s, log_level::warning, reason::unexpected_event);
}

inline time_point service_machine::after(time_point t, duration d) noexcept {
    // Saturating: a huge configured duration means "far future", not an overflow into the past.
    return d > time_point::max() - t ? time_point::max() : t + d;
}

inline duration service_machine::grown(duration d) const noexcept {
    const duration cap = policy_.max_restart_delay;
    const double next = static_cast<double>(d.count()) * policy_.backoff_factor;
    if (!(next < static_cast<double>(cap.count()))) return cap;
    return duration(static_cast<duration::rep>(next));
}

// ---- start limit: the last start_limit_burst start times, newest at starts_head_ - 1 ----

inline bool service_machine::start_limit_hit(time_point now) const noexcept {
    const unsigned burst = policy_.start_limit_burst;
    if (burst == 0 || policy_.start_limit_interval == duration::zero()) return false;
    if (starts_count_ < burst) return false;
    // The burst-th most recent start: a new start now would be start burst + 1 in the window.
    const auto size = static_cast<unsigned>(starts_.size());
    const time_point oldest = starts_[(starts_head_ + size - burst) % size];
    return now - oldest < policy_.start_limit_interval;
}

inline void service_machine::record_start(time_point now) noexcept {
    const auto size = static_cast<unsigned>(starts_.size());
    starts_[starts_head_] = now;
    starts_head_ = (starts_head_ + 1) % size;
    if (starts_count_ < size) ++starts_count_;
}

inline void service_machine::unrecord_start() noexcept {
    if (starts_count_ == 0) return;
    const auto size = static_cast<unsigned>(starts_.size());
    starts_head_ = (starts_head_ + size - 1) % size;
    --starts_count_;
}

} // namespace ringd::supervision
