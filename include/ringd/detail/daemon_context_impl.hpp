// SPDX-License-Identifier: MIT
// ringd/detail/daemon_context_impl.hpp — daemon_context (daemon.hpp): readiness, reload and its
// status record, the stop request, the hand-over of listening sockets, an upgrade's take-over of
// the PID file, and the loops for signals and the watchdog.
#pragma once

#include <ringd/daemon.hpp>

namespace ringd {

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

} // namespace ringd
