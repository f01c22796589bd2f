// SPDX-License-Identifier: MIT
// ringd/detail/process_impl.hpp — the rest of process.hpp: signal names, exit_info's text,
// adopting a process by PID and start time, signalling it and its group, reaping, and the awaitable
// exit.
#pragma once

#include <ringd/process.hpp>

namespace ringd {

inline std::string signal_name(int signo) {
    if (const char* abbrev = ::sigabbrev_np(signo)) return std::string("SIG") + abbrev;
    return "signal " + std::to_string(signo);
}

inline std::optional<int> parse_signal(std::string_view text) noexcept {
    int number = 0;
    auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), number);
    if (!text.empty() && ec == std::errc() && end == text.data() + text.size())
        return number >= 1 && number < NSIG ? std::optional(number) : std::nullopt;
    char upper[32];
    if (text.size() >= sizeof upper) return std::nullopt;
    for (std::size_t i = 0; i < text.size(); ++i)
        upper[i] =
            (text[i] >= 'a' && text[i] <= 'z') ? static_cast<char>(text[i] - 'a' + 'A') : text[i];
    std::string_view name(upper, text.size());
    if (name.starts_with("SIG")) name.remove_prefix(3);
    for (int s = 1; s < NSIG; ++s)
        if (const char* abbrev = ::sigabbrev_np(s); abbrev != nullptr && name == abbrev) return s;
    return std::nullopt;
}

inline std::string exit_info::to_string() const {
    switch (code) {
    case CLD_EXITED:
        return "exited with status " + std::to_string(status);
    case CLD_KILLED:
        return "killed by " + signal_name(status);
    case CLD_DUMPED:
        return "killed by " + signal_name(status) + " (core dumped)";
    case 0:
        return "ended (status unknown: not a child of this process)";
    default:
        return "ended (si_code " + std::to_string(code) + ", status " + std::to_string(status) +
               ")";
    }
}

inline result<process> process::adopt(pid_t pid, std::uint64_t start_time) noexcept {
    if (pid <= 0) return errno_error(ESRCH);
    process p;
    p.pidfd_.reset(detail::process_pidfd_open(pid));
    if (!p.pidfd_) return last_error();
    auto st = detail::read_process_stat(pid);
    if (!st) return errno_error(errno == ENOENT ? ESRCH : errno);
    if (st->start_time != start_time) return errno_error(ESTALE);
    p.pid_ = pid;
    p.start_time_ = st->start_time;
    p.leads_group_ = st->pgid == pid;
    // WNOWAIT|WNOHANG: learns whether it is our child without reaping anything.
    siginfo_t si{};
    p.is_child_ =
        ::waitid(P_PIDFD, static_cast<id_t>(p.pidfd_.get()), &si, WEXITED | WNOHANG | WNOWAIT) == 0;
    return p;
}

inline result<void> process::signal(int sig) const noexcept {
    if (detail::process_pidfd_send_signal(pidfd_.get(), sig, 0) != 0) return last_error();
    return {};
}

inline result<void> process::signal_group(int sig) const noexcept {
    if (!leads_group_) return signal(sig);
    // Until the kernel answers EINVAL (older than 6.9).
    static std::atomic<bool> pidfd_groups{true};
    if (pidfd_groups.load(std::memory_order_relaxed)) {
        if (detail::process_pidfd_send_signal(pidfd_.get(), sig,
                                              detail::process_signal_group_flag) == 0)
            return {};
        if (errno != EINVAL) return last_error();
        pidfd_groups.store(false, std::memory_order_relaxed);
    }
    // While we have not reaped the leader, its pid (and so the group id) cannot be recycled.
    // An adopted process is reaped by someone else: signal the leader alone, safely.
    if (reaped_ || !is_child_) return signal(sig);
    if (::kill(-pid_, sig) != 0) return last_error();
    return {};
}

inline result<std::optional<exit_info>> process::try_reap() noexcept {
    siginfo_t si{};
    if (::waitid(P_PIDFD, static_cast<id_t>(pidfd_.get()), &si, WEXITED | WNOHANG) != 0)
        return last_error();
    if (si.si_pid == 0) return std::optional<exit_info>();
    reaped_ = true;
    return std::optional<exit_info>(exit_info::from_siginfo(si));
}

template <class Promise>
bool exit_operation::await_suspend(std::coroutine_handle<Promise> awaiting) noexcept {
    waiter_ = awaiting;
    const std::stop_token* token = detail::stop_token_of(awaiting);
    if (detail::stop_requested(token)) {
        error_ = ECANCELED;
        return false;
    }
    const bool waitid_op = method_ == wait_method::waitid_op ||
                           (method_ == wait_method::automatic && waitid_op_supported());
    start(*ctx_, process_->pidfd_.get(), process_->is_child_, reap_, waitid_op);
    stop_.bind(token, canceller{this});
    return true;
}

inline result<exit_info> exit_operation::await_resume() noexcept {
    stop_.unbind();
    if (error_ != 0) return errno_error(error_);
    return info_;
}

inline void exit_operation::on_process_end(int error, const siginfo_t& info) noexcept {
    error_ = error;
    info_ = exit_info::from_siginfo(info);
    if (error == 0 && reap_ && info_.known()) process_->reaped_ = true;
    waiter_.resume();
}

} // namespace ringd
