// SPDX-License-Identifier: MIT
// ringd/detail/supervision_transitions.hpp — the supervision machine's transitions: on()
// dispatches an event to its handler, which moves the state and emits actions through the steps
// they share (begin a start, begin a stop, decide after an exit, back off, the start-limit window),
// as the table at the top of supervision_state.hpp writes them.
#pragma once

#include <ringd/supervision_state.hpp>

#include <signal.h>

#include <chrono>
#include <cstddef>
#include <optional>
#include <variant>

namespace ringd::supervision {

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
