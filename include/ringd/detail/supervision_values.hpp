// SPDX-License-Identifier: MIT
// ringd/detail/supervision_values.hpp — the supervision machine's values and their names:
// a policy made sane (normalized), the names of states, policies, reasons, events and actions
// for messages, an exit status from waitid's or wait's report, and the fixed-size action list.
#pragma once

#include <ringd/supervision_state.hpp>

#include <sys/wait.h>

#include <cstddef>
#include <string_view>
#include <variant>

namespace ringd::supervision {

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

} // namespace ringd::supervision
