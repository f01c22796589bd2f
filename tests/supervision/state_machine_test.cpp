// SPDX-License-Identifier: MIT
// Tests of the pure supervision state machine: every behaviour is driven by events and a
// simulated clock, without forking. Each test asserts the behaviour its name states.
#include <ringd/supervision_state.hpp>

#include "../allocation_counter.hpp"

#include <catch2/catch.hpp>

#include <cerrno>
#include <csignal>
#include <limits>
#include <string>
#include <vector>

using namespace ringd::supervision;
using namespace std::chrono_literals;

// ---- helpers ---------------------------------------------------------------------------------

namespace {

const time_point t0 = time_point{} + 1000s;

// A machine plus a simulated clock.
struct harness {
    explicit harness(service_policy p = {}) : m(p) {}

    service_machine m;
    time_point now = t0;

    transition_result feed(const event& e) { return m.on(e, now); }
    transition_result after(duration d, const event& e) {
        now += d;
        return feed(e);
    }
    // Moves the clock to the armed deadline and fires the timer.
    transition_result fire() {
        REQUIRE(m.deadline().has_value());
        now = *m.deadline();
        return feed(timer_fired{});
    }
    // start_requested + spawned: the service runs (or waits for readiness).
    void start(pid_t pid = 100) {
        auto r = feed(start_requested{});
        REQUIRE(r.actions.contains<spawn>());
        feed(spawned{pid});
    }
};

bool logged(const action_list& actions, reason why) {
    for (const action& a : actions)
        if (const auto* l = std::get_if<log_message>(&a); l && l->why == why) return true;
    return false;
}

std::optional<log_level> level_of(const action_list& actions, reason why) {
    for (const action& a : actions)
        if (const auto* l = std::get_if<log_message>(&a); l && l->why == why) return l->level;
    return std::nullopt;
}

std::optional<time_point> armed(const action_list& actions) {
    std::optional<time_point> t;
    for (const action& a : actions)
        if (const auto* arm = std::get_if<arm_timer>(&a)) t = arm->deadline;
    return t;
}

std::string describe(const action_list& actions) {
    std::string s;
    for (const action& a : actions) {
        if (!s.empty()) s += ", ";
        s += action_name(a);
        if (const auto* l = std::get_if<log_message>(&a)) {
            s += "(";
            s += to_string(l->level);
            s += " ";
            s += to_string(l->why);
            s += ")";
        }
    }
    return "[" + s + "]";
}

const exited clean_exit{exit_status::exited_with(0)};
const exited failing_exit{exit_status::exited_with(1)};
const exited sigterm_death{exit_status::killed_by(SIGTERM)};

} // namespace

// ---- start limit -----------------------------------------------------------------------------

TEST_CASE("a crash loop reaches backoff and then failed at the start limit") {
    service_policy p;
    p.restart_delay = 1s;
    p.backoff_factor = 1;
    p.start_limit_burst = 3;
    p.start_limit_interval = 60s;
    harness h(p);

    h.start();
    REQUIRE(h.m.current() == state::running);
    // Starts 1..3 are allowed: each crash goes to backoff, each timer spawns again.
    for (int start = 1; start <= 3; ++start) {
        auto r = h.after(100ms, failing_exit);
        REQUIRE(r.next == state::backoff);
        REQUIRE(armed(r.actions) == h.now + 1s);
        REQUIRE(level_of(r.actions, reason::exit_failure) == log_level::err);
        r = h.fire();
        if (start == 3) {
            // A 4th start within 60 s is more than the burst: failed, nothing spawned or armed.
            REQUIRE(r.next == state::failed);
            REQUIRE(level_of(r.actions, reason::start_limit_hit) == log_level::err);
            REQUIRE_FALSE(r.actions.contains<spawn>());
            REQUIRE_FALSE(r.actions.contains<arm_timer>());
            REQUIRE(h.m.quiescent());
            break;
        }
        REQUIRE(r.next == state::starting);
        REQUIRE(r.actions.contains<spawn>());
        REQUIRE(logged(r.actions, reason::restart));
        h.feed(spawned{101});
        REQUIRE(h.m.current() == state::running);
    }
    REQUIRE(h.m.restarts() == 2);

    // A manual start resets the failed service: it spawns at once, with a fresh window.
    auto r = h.after(1s, start_requested{});
    REQUIRE(r.next == state::starting);
    REQUIRE(r.actions.contains<spawn>());
    REQUIRE(logged(r.actions, reason::start));
    REQUIRE(h.m.restarts() == 0);
}

TEST_CASE("starts spread wider than the start-limit interval never reach failed") {
    service_policy p;
    p.restart_delay = 6s;
    p.backoff_factor = 1;
    p.start_limit_burst = 2;
    p.start_limit_interval = 10s;
    harness h(p);

    h.start();
    // Every start is 6 s after the previous one: at most 2 fall within any 10 s window.
    for (int i = 0; i < 20; ++i) {
        h.feed(failing_exit);
        auto r = h.fire();
        REQUIRE(r.next == state::starting);
        h.feed(spawned{200 + i});
    }
    REQUIRE(h.m.current() == state::running);
    REQUIRE(h.m.restarts() == 20);
}

TEST_CASE("a start limit burst of zero turns the limit off") {
    service_policy p;
    p.restart_delay = 0s;
    p.start_limit_burst = 0;
    harness h(p);
    h.start();
    for (int i = 0; i < 200; ++i) {
        h.feed(failing_exit);
        REQUIRE(h.fire().next == state::starting);
        h.feed(spawned{300});
    }
    REQUIRE(h.m.current() == state::running);
}

// ---- restart policy --------------------------------------------------------------------------

TEST_CASE("a clean exit under on_failure stops the service") {
    service_policy p;
    p.restart = restart_policy::on_failure;
    harness h(p);
    h.start();

    auto r = h.after(1s, clean_exit);
    REQUIRE(r.previous == state::running);
    REQUIRE(r.next == state::stopped);
    REQUIRE(level_of(r.actions, reason::exit_clean) == log_level::notice);
    REQUIRE_FALSE(r.actions.contains<arm_timer>());
    REQUIRE_FALSE(r.actions.contains<spawn>());
    REQUIRE(h.m.quiescent());

    // The same service restarts after a failure, and after a death by signal it did not ask for.
    h.start();
    REQUIRE(h.after(1s, failing_exit).next == state::backoff);
    h.fire();
    h.feed(spawned{101});
    REQUIRE(h.after(1s, sigterm_death).next == state::backoff);
}

TEST_CASE("never leaves a clean exit stopped and a failed one failed") {
    service_policy p;
    p.restart = restart_policy::never;
    harness h(p);
    h.start();
    auto r = h.after(1s, clean_exit);
    REQUIRE(r.next == state::stopped);
    REQUIRE_FALSE(r.actions.contains<arm_timer>());

    h.start();
    r = h.after(1s, failing_exit);
    REQUIRE(r.next == state::failed);
    REQUIRE_FALSE(r.actions.contains<arm_timer>());
    REQUIRE(h.m.last_exit() == exit_status::exited_with(1));
}

TEST_CASE("an exit with a permanent-failure code (64, 77, 78) is failed, not restarted") {
    for (int code : {64, 77, 78}) {
        harness h; // restart = always
        h.start();
        auto r = h.after(1s, exited{exit_status::exited_with(code)});
        CHECK(r.next == state::failed);
        CHECK_FALSE(r.actions.contains<arm_timer>());
        CHECK(h.m.last_exit() == exit_status::exited_with(code));
    }
    harness before_ready([] {
        service_policy p;
        p.needs_readiness = true;
        return p;
    }());
    before_ready.start();
    CHECK(before_ready.after(1s, exited{exit_status::exited_with(78)}).next == state::failed);
    harness other; // any other code, and a death by signal 78, still restart
    other.start();
    CHECK(other.after(1s, exited{exit_status::exited_with(75)}).next == state::backoff);
    other.fire();
    other.feed(spawned{101});
    CHECK(other.after(1s, exited{exit_status::killed_by(64)}).next == state::backoff);
}

TEST_CASE("the no-restart exit codes are per service: empty restarts them, 0 stops cleanly") {
    service_policy p;
    p.no_restart_exit_codes = {};
    harness h(p);
    h.start();
    CHECK(h.after(1s, exited{exit_status::exited_with(78)}).next == state::backoff);
    p.no_restart_exit_codes = {0, 3};
    harness zero(p);
    zero.start();
    CHECK(zero.after(1s, clean_exit).next == state::stopped);
    zero.start();
    CHECK(zero.after(1s, exited{exit_status::exited_with(3)}).next == state::failed);
}

TEST_CASE("policy durations: out of range, negative, NaN and sub-millisecond seconds are refused") {
    using ringd::supervision::policy_duration;
    CHECK(policy_duration(5) == std::chrono::seconds(5));
    CHECK(policy_duration(0) == duration::zero());
    CHECK(policy_duration(0.0015) == std::chrono::milliseconds(2)); // rounded to the millisecond
    CHECK(policy_duration(0.001) == std::chrono::milliseconds(1));
    CHECK_FALSE(policy_duration(0.0004)); // would become 0: "none"
    CHECK_FALSE(policy_duration(-1));
    CHECK_FALSE(policy_duration(1e30)); // overflowed to 0 before: a restart loop without delay
    CHECK_FALSE(policy_duration(1e300));
    CHECK_FALSE(policy_duration(std::numeric_limits<double>::infinity()));
    CHECK_FALSE(policy_duration(std::numeric_limits<double>::quiet_NaN()));
    const double most = static_cast<double>(ringd::supervision::max_policy_duration_ms / 1000);
    REQUIRE(policy_duration(most));
    CHECK(*policy_duration(most) > std::chrono::hours(24 * 365 * 290));
}

TEST_CASE("always restarts even after a clean exit") {
    harness h;
    h.start();
    auto r = h.after(1s, clean_exit);
    REQUIRE(r.next == state::backoff);
    REQUIRE(armed(r.actions) == h.now + 5s);
    REQUIRE(h.fire().actions.contains<spawn>());
}

TEST_CASE("cssd's fixed five-second re-invoke is a delay of 5 s with a backoff factor of 1") {
    service_policy p;
    p.restart_delay = 5s;
    p.backoff_factor = 1;
    p.start_limit_burst = 0;
    harness h(p);
    h.start();
    for (int i = 0; i < 10; ++i) {
        auto r = h.after(1s, failing_exit);
        REQUIRE(armed(r.actions) == h.now + 5s);
        h.fire();
        h.feed(spawned{100});
    }
}

// ---- backoff ---------------------------------------------------------------------------------

TEST_CASE("backoff doubles up to the cap and resets after a stable run") {
    service_policy p;
    p.restart_delay = 1s;
    p.backoff_factor = 2;
    p.max_restart_delay = 5s;
    p.start_limit_burst = 0;
    p.stable_after = 30s;
    harness h(p);
    h.start();

    auto crash_after = [&](duration ran) {
        auto r = h.after(ran, failing_exit);
        REQUIRE(r.next == state::backoff);
        const auto deadline = armed(r.actions);
        REQUIRE(deadline.has_value());
        const duration delay = *deadline - h.now;
        h.fire();
        h.feed(spawned{100});
        return delay;
    };

    CHECK(crash_after(1s) == 1s);
    CHECK(crash_after(1s) == 2s);
    CHECK(crash_after(1s) == 4s);
    CHECK(crash_after(1s) == 5s); // 8 s capped
    CHECK(crash_after(1s) == 5s);
    CHECK(crash_after(29s) == 5s); // just short of stable: no reset
    CHECK(crash_after(30s) == 1s); // a stable run resets the delay
    CHECK(crash_after(1s) == 2s);
}

TEST_CASE("a cap below the first delay does not shorten it") {
    service_policy p;
    p.restart_delay = 10s;
    p.max_restart_delay = 3s;
    REQUIRE(normalized(p).max_restart_delay == 10s);
    harness h(p);
    h.start();
    const auto r = h.after(1s, failing_exit);
    REQUIRE(armed(r.actions) == h.now + 10s);
}

// ---- stop ------------------------------------------------------------------------------------

TEST_CASE("stop escalates to SIGKILL after the stop timeout") {
    service_policy p;
    p.stop_timeout = 10s;
    harness h(p);
    h.start();

    auto r = h.after(1s, stop_requested{});
    REQUIRE(r.next == state::stopping);
    REQUIRE(r.actions.find<send_stop_signal>() != nullptr);
    REQUIRE(r.actions.find<send_stop_signal>()->signo == SIGTERM);
    REQUIRE(armed(r.actions) == h.now + 10s);
    REQUIRE_FALSE(r.actions.contains<send_kill>());

    // A timer that fires early is re-armed, not obeyed.
    r = h.after(5s, timer_fired{});
    REQUIRE_FALSE(r.actions.contains<send_kill>());
    REQUIRE(armed(r.actions) == h.now + 5s);

    r = h.fire();
    REQUIRE(r.next == state::stopping);
    REQUIRE(r.actions.count<send_kill>() == 1);
    REQUIRE(level_of(r.actions, reason::stop_timeout) == log_level::warning);
    REQUIRE_FALSE(h.m.deadline().has_value()); // waits for the exit, no further deadline

    r = h.after(10ms, exited{exit_status::killed_by(SIGKILL)});
    REQUIRE(r.next == state::stopped);
    REQUIRE_FALSE(r.actions.contains<spawn>());
    REQUIRE(h.m.quiescent());
}

TEST_CASE("a process that exits after the stop signal is stopped and not restarted") {
    harness h; // restart = always
    h.start();
    h.after(1s, stop_requested{});
    auto r = h.after(1s, sigterm_death);
    REQUIRE(r.next == state::stopped);
    REQUIRE(r.actions.contains<cancel_timer>());
    REQUIRE_FALSE(r.actions.contains<spawn>());
    REQUIRE_FALSE(r.actions.contains<send_kill>());
    REQUIRE(level_of(r.actions, reason::stopped) == log_level::notice);
    REQUIRE(h.m.quiescent());
}

TEST_CASE("a stop timeout of zero never escalates") {
    service_policy p;
    p.stop_timeout = 0s;
    harness h(p);
    h.start();
    auto r = h.after(1s, stop_requested{});
    REQUIRE(r.actions.contains<send_stop_signal>());
    REQUIRE_FALSE(h.m.deadline().has_value());
    REQUIRE(h.after(1h, sigterm_death).next == state::stopped);
}

TEST_CASE("stop during backoff cancels the restart") {
    harness h;
    h.start();
    h.after(1s, failing_exit);
    REQUIRE(h.m.current() == state::backoff);
    const time_point deadline = *h.m.deadline();

    auto r = h.after(1s, stop_requested{});
    REQUIRE(r.next == state::stopped);
    REQUIRE(r.actions.contains<cancel_timer>());
    REQUIRE(h.m.quiescent());

    // The cancelled timer may still race in: it changes nothing.
    h.now = deadline;
    r = h.feed(timer_fired{});
    REQUIRE(r.next == state::stopped);
    REQUIRE(r.actions.empty());
}

TEST_CASE("stop_requested while the spawn is pending stops the process once it is spawned") {
    harness h;
    h.feed(start_requested{});
    auto r = h.feed(stop_requested{});
    REQUIRE(r.next == state::stopping);
    REQUIRE_FALSE(r.actions.contains<send_stop_signal>()); // no process to signal yet

    r = h.feed(spawned{100});
    REQUIRE(r.actions.contains<send_stop_signal>());
    REQUIRE(r.actions.contains<arm_timer>());
    REQUIRE(h.after(1s, sigterm_death).next == state::stopped);

    // And if that spawn fails instead, the service is simply stopped.
    harness g;
    g.feed(start_requested{});
    g.feed(stop_requested{});
    r = g.feed(spawn_failed{EAGAIN});
    REQUIRE(r.next == state::stopped);
    REQUIRE(g.m.quiescent());
}

TEST_CASE("start_requested during stopping starts the service again after it exits") {
    harness h;
    h.start();
    h.after(1s, stop_requested{});
    REQUIRE(h.after(1s, start_requested{}).actions.empty());
    auto r = h.after(1s, sigterm_death);
    REQUIRE(r.next == state::starting);
    REQUIRE(r.actions.contains<spawn>());

    // stop after start while stopping: down wins again.
    h.feed(spawned{101});
    h.after(1s, stop_requested{});
    h.feed(start_requested{});
    h.feed(stop_requested{});
    REQUIRE(h.after(1s, sigterm_death).next == state::stopped);
}

TEST_CASE("stop_requested acknowledges a failed service as stopped") {
    service_policy p;
    p.restart = restart_policy::never;
    harness h(p);
    h.start();
    h.after(1s, failing_exit);
    REQUIRE(h.m.current() == state::failed);
    auto r = h.feed(stop_requested{});
    REQUIRE(r.next == state::stopped);
    REQUIRE(r.actions.size() == 1); // only notify_state_changed
    REQUIRE(r.actions.contains<notify_state_changed>());
}

// ---- readiness -------------------------------------------------------------------------------

TEST_CASE("a service that needs readiness counts as running only after ready") {
    service_policy p;
    p.needs_readiness = true;
    p.ready_timeout = 30s;
    harness h(p);

    h.feed(start_requested{});
    auto r = h.feed(spawned{100});
    REQUIRE(r.next == state::starting);
    REQUIRE(h.m.has_process());
    REQUIRE(armed(r.actions) == h.now + 30s);

    r = h.after(2s, ready{});
    REQUIRE(r.previous == state::starting);
    REQUIRE(r.next == state::running);
    REQUIRE(r.actions.contains<cancel_timer>());
    REQUIRE(level_of(r.actions, reason::ready) == log_level::info);
    REQUIRE(h.m.up_since() == h.now);

    // A repeated READY=1 changes nothing.
    REQUIRE(h.after(1s, ready{}).actions.empty());
}

TEST_CASE("without readiness a spawned service is running at once") {
    harness h;
    h.feed(start_requested{});
    auto r = h.feed(spawned{100});
    REQUIRE(r.next == state::running);
    REQUIRE_FALSE(r.actions.contains<arm_timer>());
}

TEST_CASE("a service that misses its ready timeout is stopped and counted as a failure") {
    service_policy p;
    p.needs_readiness = true;
    p.ready_timeout = 30s;
    p.restart_delay = 2s;
    harness h(p);
    h.start();

    auto r = h.fire();
    REQUIRE(r.next == state::stopping);
    REQUIRE(level_of(r.actions, reason::ready_timeout) == log_level::err);
    REQUIRE(r.actions.contains<send_stop_signal>());
    REQUIRE(armed(r.actions) == h.now + p.stop_timeout);

    // The exit after our stop is clean in itself, but the run failed: restart per policy.
    r = h.after(1s, sigterm_death);
    REQUIRE(r.next == state::backoff);
    REQUIRE(armed(r.actions) == h.now + 2s);

    // Under never, the same story ends in failed.
    p.restart = restart_policy::never;
    harness g(p);
    g.start();
    g.fire();
    REQUIRE(g.after(1s, sigterm_death).next == state::failed);
}

TEST_CASE("a service that exits before it is ready has failed even with status 0") {
    service_policy p;
    p.needs_readiness = true;
    p.restart = restart_policy::on_failure;
    harness h(p);
    h.start();
    auto r = h.after(1s, clean_exit);
    REQUIRE(r.next == state::backoff);
    REQUIRE(level_of(r.actions, reason::exit_failure) == log_level::err);
}

// ---- restart requests ------------------------------------------------------------------------

TEST_CASE("restart_requested while running stops and starts again") {
    harness h;
    h.start();

    auto r = h.after(1s, restart_requested{});
    REQUIRE(r.next == state::stopping);
    REQUIRE(r.actions.contains<send_stop_signal>());
    REQUIRE_FALSE(r.actions.contains<spawn>());

    r = h.after(1s, sigterm_death);
    REQUIRE(r.previous == state::stopping);
    REQUIRE(r.next == state::starting);
    REQUIRE(r.actions.contains<cancel_timer>());
    REQUIRE(r.actions.contains<spawn>());
    REQUIRE(logged(r.actions, reason::restart));

    REQUIRE(h.feed(spawned{101}).next == state::running);
    REQUIRE(h.m.pid() == 101);
    REQUIRE(h.m.restarts() == 1);
}

TEST_CASE("restart_requested during backoff skips the wait") {
    harness h;
    h.start();
    h.after(1s, failing_exit);
    auto r = h.after(1s, restart_requested{});
    REQUIRE(r.next == state::starting);
    REQUIRE(r.actions.contains<cancel_timer>());
    REQUIRE(r.actions.contains<spawn>());
}

TEST_CASE("restart_requested leaves a stopped service stopped") {
    harness h;
    auto r = h.feed(restart_requested{});
    REQUIRE(r.next == state::stopped);
    REQUIRE(r.actions.empty());
}

TEST_CASE("restart_requested starts a failed service afresh") {
    service_policy p;
    p.restart = restart_policy::never;
    harness h(p);
    h.start();
    h.after(1s, failing_exit);
    auto r = h.after(1s, restart_requested{});
    REQUIRE(r.next == state::starting);
    REQUIRE(r.actions.contains<spawn>());
}

TEST_CASE("start_requested during backoff waits for the timer") {
    harness h;
    h.start();
    h.after(1s, failing_exit);
    auto r = h.after(1s, start_requested{});
    REQUIRE(r.next == state::backoff);
    REQUIRE(r.actions.empty());
}

// ---- spawn failures --------------------------------------------------------------------------

TEST_CASE("spawn failure retries at the polling interval") {
    service_policy p;
    p.spawn_retry_interval = 5s;
    p.restart_delay = 1s;
    p.start_limit_burst = 1; // a counted failure would reach failed at the 2nd attempt
    p.start_limit_interval = 1h;
    p.restart = restart_policy::never; // spawn retries happen whatever the restart policy
    harness h(p);

    auto r = h.feed(start_requested{});
    REQUIRE(r.actions.contains<spawn>());
    for (int attempt = 0; attempt < 10; ++attempt) {
        r = h.feed(spawn_failed{EAGAIN});
        REQUIRE(r.next == state::backoff);
        REQUIRE(level_of(r.actions, reason::spawn_failure) == log_level::err);
        REQUIRE(armed(r.actions) == h.now + 5s); // not the restart delay, and not growing
        REQUIRE(h.m.last_spawn_error() == EAGAIN);
        r = h.fire();
        REQUIRE(r.next == state::starting);
        REQUIRE(r.actions.contains<spawn>());
    }
    REQUIRE(h.feed(spawned{100}).next == state::running);
    REQUIRE(h.m.restarts() == 0); // the retries of the first start are not restarts
    REQUIRE(h.m.next_restart_delay() == 1s);
}

// ---- robustness ------------------------------------------------------------------------------

TEST_CASE("events the machine did not ask for change nothing but a warning") {
    harness h;
    for (const event& e : {event{spawned{1}}, event{spawn_failed{ENOMEM}}, event{clean_exit}}) {
        auto r = h.feed(e);
        REQUIRE(r.next == state::stopped);
        REQUIRE(r.actions.size() == 1);
        REQUIRE(level_of(r.actions, reason::unexpected_event) == log_level::warning);
    }
    h.start(100);
    auto r = h.feed(spawned{200}); // a second spawned while running
    REQUIRE(r.next == state::running);
    REQUIRE(h.m.pid() == 100);
    REQUIRE(logged(r.actions, reason::unexpected_event));
}

TEST_CASE("exit status: 0 is clean, the stop signal is clean only after a stop") {
    REQUIRE(exit_status::exited_with(0).clean(false));
    REQUIRE_FALSE(exit_status::exited_with(1).clean(true));
    REQUIRE_FALSE(exit_status::killed_by(SIGTERM).clean(false));
    REQUIRE(exit_status::killed_by(SIGTERM).clean(true));
    REQUIRE(exit_status::exited_with(128 + SIGTERM).clean(true));
    REQUIRE_FALSE(exit_status::killed_by(SIGKILL).clean(true));
    REQUIRE(exit_status::killed_by(SIGINT).clean(true, SIGINT));

    REQUIRE(exit_status::from_siginfo(CLD_EXITED, 3) == exit_status::exited_with(3));
    REQUIRE(exit_status::from_siginfo(CLD_KILLED, SIGKILL) == exit_status::killed_by(SIGKILL));
    REQUIRE(exit_status::from_siginfo(CLD_DUMPED, SIGSEGV) ==
            exit_status::killed_by(SIGSEGV, true));
    REQUIRE(exit_status::from_wait_status(2 << 8) == exit_status::exited_with(2));
    REQUIRE(exit_status::from_wait_status(SIGTERM) == exit_status::killed_by(SIGTERM));
    REQUIRE(exit_status::from_wait_status(SIGSEGV | 0x80) == exit_status::killed_by(SIGSEGV, true));
}

TEST_CASE("a transition never allocates") {
    service_policy p;
    p.needs_readiness = true;
    p.ready_timeout = 10s;
    harness h(p);
    std::vector<event> script{
        start_requested{}, spawned{1},           ready{},       failing_exit,
        timer_fired{},     spawned{2},           ready{},       restart_requested{},
        sigterm_death,     spawn_failed{EAGAIN}, timer_fired{}, spawned{3},
        stop_requested{},  timer_fired{},        sigterm_death};
    const std::size_t before = test_support::allocation_count;
    for (const event& e : script) {
        if (std::holds_alternative<timer_fired>(e) && h.m.deadline()) h.now = *h.m.deadline();
        const transition_result r = h.feed(e);
        (void)r;
    }
    REQUIRE(test_support::allocation_count == before);
    REQUIRE(h.m.current() == state::stopped);
}

// ---- the whole table -------------------------------------------------------------------------

namespace {

// Explores every event sequence up to a depth from a fresh machine and checks the invariants
// that hold after every transition. Records the first violation.
struct explorer {
    std::vector<event> alphabet{start_requested{}, stop_requested{},     restart_requested{},
                                spawned{100},      spawn_failed{EAGAIN}, ready{},
                                clean_exit,        failing_exit,         sigterm_death,
                                timer_fired{}};
    std::size_t transitions = 0;
    std::string violation;
    bool seen[6][std::variant_size_v<event>] = {};

    void check(bool ok, const std::string& what, const service_machine& before, const event& e,
               const transition_result& r) {
        if (ok || !violation.empty()) return;
        violation = what + ": " + std::string(to_string(before.current())) + " × " +
                    std::string(event_name(e)) + " → " + std::string(to_string(r.next)) + " " +
                    describe(r.actions);
    }

    // Feeds e to a copy of `before`, checks the invariants, and returns the copy.
    service_machine step(const service_machine& before, const event& e, time_point now) {
        service_machine m = before;
        const transition_result r = m.on(e, now);
        ++transitions;
        seen[static_cast<int>(before.current())][e.index()] = true;
        auto ck = [&](bool ok, const char* what) { check(ok, what, before, e, r); };

        ck(r.previous == before.current(), "previous is the state before");
        ck(r.next == m.current(), "next is the state after");
        ck(to_string(r.next) != "invalid", "next is a valid state");
        ck(!r.actions.overflowed() && r.actions.size() <= 5, "at most 5 actions");
        const auto notifies = r.actions.count<notify_state_changed>();
        ck(notifies == (r.changed() ? 1u : 0u), "notify exactly when the state changes");
        if (r.changed()) {
            const auto* n = std::get_if<notify_state_changed>(&r.actions[r.actions.size() - 1]);
            ck(n && n->from == r.previous && n->to == r.next, "notify last, with from and to");
        }
        if (r.actions.contains<spawn>())
            ck(r.next == state::starting && m.spawn_pending() && r.actions.count<spawn>() == 1,
               "spawn only into starting, once");
        if (r.actions.contains<send_stop_signal>() || r.actions.contains<send_kill>())
            ck(m.has_process() && r.next == state::stopping, "signals only to a live process");
        ck(!(r.actions.contains<spawn>() && r.actions.contains<send_stop_signal>()),
           "never spawn and stop at once");
        if (const auto t = armed(r.actions)) {
            ck(*t >= now, "deadlines are not in the past");
            ck(m.deadline() == t, "the last arm is the armed deadline");
        }
        if (m.deadline())
            ck(r.next == state::starting || r.next == state::backoff || r.next == state::stopping,
               "deadlines only in starting, backoff, stopping");
        switch (r.next) {
        case state::stopped:
        case state::failed:
            ck(m.quiescent(), "stopped and failed are quiescent");
            break;
        case state::starting:
            ck(m.spawn_pending() != m.has_process(), "starting: spawn pending xor process");
            break;
        case state::running:
            ck(m.has_process() && !m.spawn_pending(), "running has a process");
            break;
        case state::backoff:
            ck(m.deadline() && !m.has_process() && !m.spawn_pending(), "backoff has a timer only");
            break;
        case state::stopping:
            ck(m.has_process() || m.spawn_pending(), "stopping has something to stop");
            break;
        }
        // An answer to a spawn the machine never asked for, or an exit of no process, is a
        // warning and nothing else.
        const bool asked =
            std::holds_alternative<spawned>(e) || std::holds_alternative<spawn_failed>(e)
                ? before.spawn_pending()
                : !std::holds_alternative<exited>(e) || before.has_process();
        if (!asked)
            ck(!r.changed() && r.actions.size() == 1 && logged(r.actions, reason::unexpected_event),
               "an unasked-for event only warns");
        // A timer before the armed deadline only asks for it again.
        if (std::holds_alternative<timer_fired>(e) && before.deadline() && now < *before.deadline())
            ck(!r.changed() && r.actions.size() == 1 && armed(r.actions) == before.deadline(),
               "an early timer only re-arms");
        return m;
    }

    void explore(const service_machine& m, time_point now, int depth) {
        if (depth == 0 || !violation.empty()) return;
        for (const event& e : alphabet) {
            time_point t = now + 1s;
            if (std::holds_alternative<timer_fired>(e) && m.deadline() && *m.deadline() > t)
                t = *m.deadline();
            explore(step(m, e, t), t, depth - 1);
        }
        // An early timer, too: `now` before the deadline.
        if (m.deadline() && *m.deadline() > now + 1s)
            explore(step(m, timer_fired{}, now + 1s), now + 1s, depth - 1);
    }
};

} // namespace

TEST_CASE("every state handles every event") {
    std::vector<service_policy> policies;
    {
        service_policy p; // always, no readiness, a tight start limit
        p.start_limit_burst = 1;
        p.start_limit_interval = 1h;
        p.restart_delay = 2s;
        p.stop_timeout = 3s;
        policies.push_back(p);
    }
    {
        service_policy p; // never, readiness with a timeout
        p.restart = restart_policy::never;
        p.needs_readiness = true;
        p.ready_timeout = 2s;
        p.start_limit_burst = 2;
        policies.push_back(p);
    }
    {
        service_policy p; // on_failure, readiness without a timeout, no stop escalation
        p.restart = restart_policy::on_failure;
        p.needs_readiness = true;
        p.stop_timeout = 0s;
        p.restart_delay = 0s;
        policies.push_back(p);
    }

    explorer x;
    for (const auto& p : policies) {
        INFO("policy restart=" << to_string(p.restart) << " readiness=" << p.needs_readiness);
        x.explore(service_machine(p), t0, 5);
        REQUIRE(x.violation == "");
    }
    // The exploration reached every state and fed it every kind of event.
    for (int s = 0; s < 6; ++s)
        for (std::size_t e = 0; e < std::variant_size_v<event>; ++e) {
            INFO(to_string(static_cast<state>(s)) << " × event #" << e);
            CHECK(x.seen[s][e]);
        }
    CHECK(x.transitions > 100000);
}

TEST_CASE("policies are equal only when every field is, so a reload sees any change") {
    const service_policy base;
    CHECK(base == service_policy{});
    std::vector<service_policy> changed(13, base);
    changed[0].restart = restart_policy::never;
    changed[1].restart_delay += 1ms;
    changed[2].backoff_factor += 0.5;
    changed[3].max_restart_delay += 1ms;
    changed[4].stable_after += 1ms;
    changed[5].start_limit_burst += 1;
    changed[6].start_limit_interval += 1ms;
    changed[7].stop_signal = SIGINT;
    changed[8].stop_timeout += 1ms;
    changed[9].needs_readiness = !base.needs_readiness;
    changed[10].ready_timeout += 1ms;
    changed[11].spawn_retry_interval += 1ms;
    changed[12].no_restart_exit_codes.add(1);
    for (std::size_t i = 0; i < changed.size(); ++i) {
        INFO("field " << i);
        CHECK(changed[i] != base);
        CHECK_FALSE(changed[i] == base);
    }
}
