// SPDX-License-Identifier: MIT
// ringd/detail/supervisor_actions.hpp — what the supervisor does with the supervision
// state machine: feeding it an event, performing the actions of a transition (spawn with its log
// file, readiness channel and held sockets; signal; timers; forget), the messages that explain
// each decision, the end of a process (leftovers of its group killed, then reaped), and the
// reaping of orphans that no service owns.
#pragma once

#include <ringd/detail/supervisor_service.hpp>

#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace ringd {

namespace detail {

// A duplicate of the held socket bound to `a`, or a new socket bound to it. Throws as
// listener::bind.
inline listener supervisor_held_or_bind(const std::vector<borrowed_fd>& held,
                                        const socket_address& a) {
    for (borrowed_fd fd : held) {
        auto bound = socket_address::local_of(fd);
        if (!bound || bound->to_string() != a.to_string()) continue;
        unique_fd copy(::fcntl(fd.get(), F_DUPFD_CLOEXEC, 3));
        if (!copy) throw_errno(errno, "dup the held socket of " + a.to_string());
        return listener::adopt(std::move(copy));
    }
    return listener::bind(a);
}
} // namespace detail

// ---- the machine's actions -------------------------------------------------------------------

inline void supervisor::impl::feed(service& s, const supervision::event& e) {
    const supervision::time_point now = supervision::clock::now();
    const supervision::time_point outer = std::exchange(feed_time_, now);
    const bool was_quiescent = s.machine.quiescent();
    const supervision::transition_result r = s.machine.on(e, now);
    if (was_quiescent != s.machine.quiescent()) {
        if (was_quiescent)
            ++busy_;
        else
            --busy_;
    }
    perform(s, r);
    feed_time_ = outer;
}

inline void supervisor::impl::perform(service& s, const supervision::transition_result& r) {
    std::optional<supervision::event> outcome;
    std::optional<supervision::reason> start_reason; // logged once the pid is known
    for (const supervision::action& a : r.actions) {
        if (std::holds_alternative<supervision::spawn>(a)) {
            do_spawn(s, outcome);
        } else if (const auto* sig = std::get_if<supervision::send_stop_signal>(&a)) {
            if (s.proc.valid()) {
                auto sent = s.proc.signal_group(sig->signo);
                if (!sent && sent.error() != std::errc::no_such_process)
                    log_->logf(log_level::err, "stop %s: send %s to pid %d: %s",
                               s.spec.name.c_str(), signal_name(sig->signo).c_str(), s.proc.pid(),
                               sent.error().message().c_str());
            }
        } else if (std::holds_alternative<supervision::send_kill>(a)) {
            if (s.proc.valid()) (void)s.proc.signal_group(SIGKILL);
        } else if (const auto* arm = std::get_if<supervision::arm_timer>(&a)) {
            arm_timer(s, arm->deadline);
        } else if (std::holds_alternative<supervision::cancel_timer>(a)) {
            cancel_timer(s);
        } else if (const auto* m = std::get_if<supervision::log_message>(&a)) {
            if (m->why == supervision::reason::start || m->why == supervision::reason::restart)
                start_reason = m->why;
            else
                log_reason(s, *m, r);
        } else if (std::holds_alternative<supervision::notify_state_changed>(a)) {
            s.since = supervision::clock::now();
            pids_dirty_ = true; // a process started or ended
            changed_ = true;
        }
    }
    if (!outcome) return;
    const bool spawned = std::holds_alternative<supervision::spawned>(*outcome);
    feed(s, *outcome);
    if (!spawned || !start_reason) return;
    const char* name = s.spec.name.c_str();
    if (s.adopted)
        log_->logf(log_level::notice, "adopt %s: pid %d still runs; supervising it again", name,
                   s.proc.pid());
    else if (*start_reason == supervision::reason::restart)
        log_->logf(log_level::notice, "restart %s: running as pid %d (restart %u)", name,
                   s.proc.pid(), s.machine.restarts());
    else
        log_->logf(log_level::notice, "start %s: running as pid %d", name, s.proc.pid());
}

inline void supervisor::impl::do_spawn(service& s, std::optional<supervision::event>& outcome) {
    const bool waitid_op = options_.wait == wait_method::waitid_op ||
                           (options_.wait == wait_method::automatic && waitid_op_supported());
    if (s.adopting) {
        s.proc = std::move(*s.adopting);
        s.adopting.reset();
        s.adopted = true;
        s.watch.start(*ctx_, s.proc.pidfd().get(), s.proc.is_child(), false, waitid_op);
        ++active_ops_;
        outcome = supervision::spawned{s.proc.pid()};
        return;
    }
    s.adopted = false;
    auto fail = [&](int error, std::string why) {
        s.spawn_error = std::move(why);
        outcome = supervision::spawn_failed{error != 0 ? error : EIO};
    };
    spawn_options o;
    o.argv = s.spec.argv;
    o.environment = s.spec.environment;
    o.cwd = s.spec.cwd.empty() ? "/" : s.spec.cwd;
    if (!s.spec.user.empty() || !s.spec.group.empty()) {
        auto who = lookup_credentials(
            s.spec.user.empty() ? std::to_string(::geteuid()) : s.spec.user, s.spec.group);
        if (!who) return fail(EINVAL, who.error());
        o.run_as = std::move(*who);
    }
    if (options_.prefix_output) {
        if (auto ok = open_output(s); !ok) return fail(errno, ok.error());
        o.stdout_to = borrowed_fd(s.out.write_end.get());
        o.stderr_to = borrowed_fd(s.err.write_end.get());
    } else if (!options_.log_dir.empty()) {
        o.log_dir = options_.log_dir;
        o.log_name = s.spec.name;
    }
    if (s.listeners.size() != s.spec.listen.size()) {
        s.listeners.clear();
        for (const std::string& a : s.spec.listen) {
            try {
                s.listeners.push_back(detail::supervisor_held_or_bind(options_.held_listeners,
                                                                      *socket_address::parse(a)));
            } catch (const std::system_error& e) {
                s.listeners.clear();
                return fail(e.code().value(), "listen " + a + ": " + e.code().message());
            }
        }
    }
    for (const listener& l : s.listeners) o.listen_fds.push_back({l.fd(), s.spec.name});
    unique_fd pipe_write;
    unique_fd pipe_read;
    if (s.spec.readiness == readiness_protocol::notify_socket) {
        o.environment.push_back("NOTIFY_SOCKET=" + s.notify_address);
    } else if (s.spec.readiness == readiness_protocol::notification_fd) {
        int fds[2];
        if (::pipe2(fds, O_CLOEXEC) != 0)
            return fail(errno, std::string("pipe2: ") + std::strerror(errno));
        pipe_read.reset(fds[0]);
        pipe_write.reset(fds[1]);
        o.descriptors.push_back({pipe_write, s.spec.notification_fd});
    }
    auto p = spawn(o);
    pipe_write.reset(); // the child has its copy
    if (!p) return fail(p.error().code.value(), p.error().message());
    retire_log(s, p->log_path());
    s.log_path = p->log_path();
    s.spawn_error.clear();
    s.status_text.clear();
    s.proc = std::move(*p);
    s.watch.start(*ctx_, s.proc.pidfd().get(), s.proc.is_child(), false, waitid_op);
    ++active_ops_;
    start_output_read(s.out);
    start_output_read(s.err);
    if (pipe_read) {
        if (s.ready.in_flight) {
            s.next_ready_pipe = std::move(pipe_read); // after the old pipe's read ends
        } else {
            s.ready_pipe = std::move(pipe_read);
            start_ready_read(s);
        }
    }
    outcome = supervision::spawned{s.proc.pid()};
}

inline std::string supervisor::impl::describe_exit(const service& s) const {
    if (!s.last_exit) return "ended";
    if (!s.last_exit->known())
        return s.adopted ? "ended (status unknown: started by an earlier supervisor)"
                         : s.last_exit->to_string();
    return s.last_exit->to_string();
}

inline void supervisor::impl::log_reason(service& s, const supervision::log_message& m,
                                         const supervision::transition_result& r) {
    using supervision::reason;
    using supervision::state;
    const char* name = s.spec.name.c_str();
    const log_level level = m.level;
    const supervision::service_policy& p = s.machine.policy();
    auto what_next = [&]() -> std::string {
        if (r.next == state::backoff && s.machine.deadline()) {
            const auto wait = *s.machine.deadline() - feed_time_;
            return "; restart in " +
                   detail::supervisor_duration(std::max(wait, supervision::duration::zero()));
        }
        if (r.next != state::backoff && s.last_exit && s.last_exit->exited() &&
            p.no_restart_exit_codes.contains(s.last_exit->status))
            return "; not restarted: exit status " + std::to_string(s.last_exit->status) +
                   " means do not restart (" + (r.next == state::failed ? "failed)" : "stopped)");
        if (r.next == state::failed) return "; not restarted (failed)";
        if (r.next == state::stopped) return "; not restarted";
        return {};
    };
    switch (m.why) {
    case reason::spawn_failure:
        log_->logf(level, "start %s: %s; retrying in %s", name, s.spawn_error.c_str(),
                   detail::supervisor_duration(p.spawn_retry_interval).c_str());
        break;
    case reason::ready:
        log_->logf(level, "ready %s: pid %d reported readiness", name, s.proc.pid());
        break;
    case reason::ready_timeout:
        log_->logf(level, "start %s: pid %d not ready within %s; stopping it", name, s.proc.pid(),
                   detail::supervisor_duration(p.ready_timeout).c_str());
        break;
    case reason::exit_clean:
    case reason::exit_failure:
        log_->logf(level, "exit %s: pid %d %s%s%s", name, s.last_pid, describe_exit(s).c_str(),
                   r.previous == state::starting ? " before it was ready" : "",
                   what_next().c_str());
        break;
    case reason::start_limit_hit:
        log_->logf(level, "start %s: more than %u starts within %s; failed until restarted by hand",
                   name, p.start_limit_burst,
                   detail::supervisor_duration(p.start_limit_interval).c_str());
        break;
    case reason::stop_timeout:
        log_->logf(level, "stop %s: pid %d still runs %s after %s; sent SIGKILL", name,
                   s.proc.pid(), detail::supervisor_duration(p.stop_timeout).c_str(),
                   signal_name(p.stop_signal).c_str());
        break;
    case reason::stopped:
        log_->logf(level, "stop %s: pid %d %s", name, s.last_pid, describe_exit(s).c_str());
        break;
    case reason::unexpected_event:
        log_->logf(level, "%s: unexpected event in state %s (a supervisor bug)", name,
                   std::string(supervision::to_string(r.previous)).c_str());
        break;
    case reason::start:
    case reason::restart:
        break; // logged with the pid, in perform()
    }
}

inline void supervisor::impl::handle_exit(service& s) {
    if (s.exit_error == ECANCELED) return; // the wait was cancelled: the ring is going away
    exit_info info = s.exit;
    if (s.exit_error != 0) {
        log_->logf(log_level::err, "watch %s: wait for pid %d: %s; taking it as ended",
                   s.spec.name.c_str(), s.proc.pid(), std::strerror(s.exit_error));
        info = {};
    }
    // What it left in its process group belongs to this instance: end it, so that a restart
    // never runs beside leftovers. The unreaped leader still holds the group id.
    if (s.proc.leads_group()) (void)s.proc.signal_group(SIGKILL);
    if (s.proc.is_child() && !s.proc.reaped()) {
        auto reaped = s.proc.try_reap();
        if (reaped && *reaped) info = **reaped;
    }
    s.last_exit = info;
    s.last_pid = s.proc.pid();
    const supervision::exit_status status =
        info.known() ? supervision::exit_status::from_siginfo(info.code, info.status)
                     : supervision::exit_status{false, -1, false}; // unknown: not clean
    feed(s, supervision::exited{status});
    if (!s.machine.has_process()) s.proc = process{};
    // Once the burst is fed, not per exit: each look may scan every service.
    if (options_.reap_orphans) orphans_due_ = true;
}

inline void supervisor::impl::reap_orphans() noexcept {
    for (int i = 0; i < 1024; ++i) {
        siginfo_t si{};
        if (::waitid(P_ALL, 0, &si, WEXITED | WNOHANG | WNOWAIT) != 0 || si.si_pid == 0) return;
        for (auto& [name, s] : services_) {
            if (s->proc.valid() && s->proc.pid() == si.si_pid && !s->proc.reaped())
                return; // a service's own process: its wait reaps it, then we look again
            if (s->adopting && s->adopting->pid() == si.si_pid)
                return; // to be adopted at its turn, and then waited for as above
        }
        if (std::find(left_children_.begin(), left_children_.end(), si.si_pid) !=
            left_children_.end())
            return; // the caller's own child (leave_child): the caller reaps it
        siginfo_t done{};
        if (::waitid(P_PID, static_cast<id_t>(si.si_pid), &done, WEXITED | WNOHANG) != 0) return;
        log_->logf(log_level::info, "reap pid %d: orphan %s", si.si_pid,
                   exit_info::from_siginfo(done).to_string().c_str());
    }
}

} // namespace ringd
