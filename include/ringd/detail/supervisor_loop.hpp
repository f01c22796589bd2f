// SPDX-License-Identifier: MIT
// ringd/detail/supervisor_loop.hpp — the supervisor's life: construction (the
// table's lock, the signalfd of orphan reaping) and destruction, and run(): feeding the due
// events in slices, letting the next start group go, the ordered shutdown group by group, the
// sweep of removed services, detach, and the drain of the ring's operations before it returns.
#pragma once

#include <ringd/detail/supervisor_order.hpp>
#include <ringd/detail/supervisor_service.hpp>
#include <ringd/timer.hpp>

#include <pthread.h>
#include <signal.h>
#include <sys/file.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include <chrono>
#include <coroutine>
#include <cstdio>
#include <exception>
#include <memory>
#include <stdexcept>
#include <string>
#include <utility>

namespace ringd {

namespace detail {

// Awaits a task or an operation, held by the caller in a named variable (with a temporary task
// co_awaited in an if's condition, g++ 12's code crashed here), without the awaiting coroutine's
// stop token: it sees a type-erased handle, whose promise carries none. run() ends by
// shutdown() or detach(), not by a stop request of its caller, and it must get its operations
// back before it returns.
template <class Awaitable>
struct supervisor_ignoring_stop {
    Awaitable& inner;
    decltype(auto) awaiter() noexcept {
        if constexpr (requires { inner.operator co_await(); })
            return inner.operator co_await(); // a task: its awaiter only holds the handle
        else
            return (inner);
    }
    bool await_ready() noexcept { return awaiter().await_ready(); }
    auto await_suspend(std::coroutine_handle<> h) noexcept { return awaiter().await_suspend(h); }
    decltype(auto) await_resume() { return awaiter().await_resume(); }
};

} // namespace detail

// ---- construction ----------------------------------------------------------------------------

inline supervisor::impl::impl(io_context& ctx, logger& log, supervisor_options options)
    : ctx_(&ctx), log_(&log), options_(std::move(options)),
      flush_(std::make_unique<flush_op>(this)) {
    if (!options_.table_path.empty()) {
        const std::string lock = options_.table_path + ".lock";
        table_lock_.reset(::open(lock.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600));
        if (!table_lock_) throw_errno(errno, "open " + lock);
        if (::flock(table_lock_.get(), LOCK_EX | LOCK_NB) != 0) {
            if (errno != EWOULDBLOCK) throw_errno(errno, "flock " + lock);
            char holder[32] = {};
            [[maybe_unused]] ssize_t n = ::pread(table_lock_.get(), holder, sizeof holder - 1, 0);
            throw std::runtime_error("lock table " + lock + ": held by another supervisor (pid " +
                                     std::string(holder, ::strcspn(holder, "\n")) + ")");
        }
        const std::string me = std::to_string(::getpid()) + "\n";
        if (::ftruncate(table_lock_.get(), 0) != 0 ||
            ::pwrite(table_lock_.get(), me.data(), me.size(), 0) < 0)
            throw_errno(errno, "write " + lock);
    }
    // With SIGCHLD ignored the kernel reaps children itself and waitid() fails: undo that.
    struct sigaction chld {};
    if (::sigaction(SIGCHLD, nullptr, &chld) == 0 && chld.sa_handler == SIG_IGN) {
        chld.sa_handler = SIG_DFL;
        ::sigaction(SIGCHLD, &chld, nullptr);
    }
    if (options_.reap_orphans) {
        sigset_t set;
        sigemptyset(&set);
        sigaddset(&set, SIGCHLD);
        if (int e = ::pthread_sigmask(SIG_BLOCK, &set, nullptr); e != 0)
            throw_errno(e, "pthread_sigmask SIGCHLD");
        sigchld_fd_.reset(::signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK));
        if (!sigchld_fd_) throw_errno(errno, "signalfd SIGCHLD");
        orphans_ = std::make_unique<orphan_op>(this);
        orphans_->in_flight = true;
        ++active_ops_;
        ctx_->submit(orphans_.get());
    }
}

inline supervisor::impl::~impl() {
    if (active_ops_ == 0) return;
    // The ring still holds our operations (run() did not finish and the loop was not drained):
    // leave their memory to them rather than free it under the kernel.
    std::fprintf(stderr,
                 "ringd::supervisor destroyed with %zu operations in the ring; "
                 "their services stay allocated\n",
                 active_ops_);
    for (auto& [name, s] : services_) {
        s->owner = nullptr;
        (void)s.release();
    }
    flush_->owner = nullptr;
    (void)flush_.release();
    if (orphans_) {
        orphans_->owner = nullptr;
        (void)orphans_.release();
        (void)sigchld_fd_.release();
    }
}

// ---- the loop --------------------------------------------------------------------------------

inline bool supervisor::impl::process_due() {
    // A slice of 20 ms: a burst (10,000 exits at once) is fed in slices, and between them the
    // loop answers the control socket and signals.
    const auto until = supervision::clock::now() + std::chrono::milliseconds(20);
    while (service* s = due_head_) {
        if (supervision::clock::now() >= until) return false;
        due_head_ = s->next_due;
        if (due_head_ == nullptr) due_tail_ = nullptr;
        s->in_due_list = false;
        s->next_due = nullptr;
        if (s->ready_due) {
            s->ready_due = false;
            if (s->machine.has_process()) feed(*s, supervision::ready{});
        }
        if (s->exit_due) {
            s->exit_due = false;
            handle_exit(*s);
        }
        if (s->timer_due) {
            s->timer_due = false;
            feed(*s, supervision::timer_fired{});
        }
    }
    return true;
}

inline void supervisor::impl::advance_start_order() {
    if (pending_starts_ == 0) return; // the usual case: nothing to look at
    // A group starts once every earlier group is up (or given up): nothing there `starting`.
    detail::supervisor_advance_groups(
        services_, detail::supervisor_group_of, [](service& s) { return s.pending_start; },
        [](service& s) { return s.machine.current() == supervision::state::starting; },
        [this](service& s) {
            set_pending_start(s, false);
            feed(s, supervision::start_requested{});
            return true;
        });
}

inline bool supervisor::impl::advance_shutdown() {
    if (all_stop_sent_) return true; // nothing can be added while shutting down
    bool waiting = false;
    for (const auto& [name, s] : services_) waiting = waiting || !s->stop_sent;
    if (!waiting) {
        all_stop_sent_ = true;
        return true;
    }
    // In slices, as process_due: 10,000 stops at once would hold the loop for seconds.
    const auto until = supervision::clock::now() + std::chrono::milliseconds(20);
    bool in_time = true;
    // A group stops once every group before it in stop order is down.
    detail::supervisor_advance_groups(
        services_, detail::supervisor_stop_group_of, [](service& s) { return !s.stop_sent; },
        [](service& s) { return !s.machine.quiescent(); },
        [&](service& s) {
            if (supervision::clock::now() >= until) return in_time = false;
            s.stop_sent = true;
            set_pending_start(s, false);
            feed(s, supervision::stop_requested{});
            return true;
        });
    return in_time;
}

inline void supervisor::impl::sweep_removed() {
    sweep_waiting_ = false;
    if (removing_ == 0) return;
    auto kept = services_.begin(); // services_ is compacted in one pass
    for (auto it = services_.begin(); it != services_.end(); ++it) {
        service& s = *it->second;
        bool stays = !s.removing || !s.machine.quiescent() || s.in_due_list;
        if (!stays) {
            if (s.ready.in_flight) ctx_->cancel(&s.ready); // the notify socket's receive
            if (s.out.in_flight) ctx_->cancel(&s.out);
            if (s.err.in_flight) ctx_->cancel(&s.err);
            if (s.timer.in_flight) cancel_timer(s);
            stays = s.ready.in_flight || s.timer.in_flight || s.watch.active() || s.out.in_flight ||
                    s.err.in_flight;
            if (stays) sweep_waiting_ = true; // their completions bring run() back here
        }
        if (stays) {
            if (kept != it) *kept = std::move(*it);
            ++kept;
            continue;
        }
        drain_output(s.out); // its last lines, before the pipes go with it
        drain_output(s.err);
        log_->logf(log_level::notice, "remove %s: done", s.spec.name.c_str());
        remove_log(s.log_path);
        for (const std::string& old : s.old_logs) remove_log(old);
        --removing_;
        set_pending_start(s, false);
        mark_table_dirty();
        changed_ = true;
    }
    services_.erase(kept, services_.end()); // the services whose removal is done go
}

inline bool supervisor::impl::all_down() const noexcept {
    return busy_ == 0 && due_head_ == nullptr; // the due list: services with events to feed
}

inline void supervisor::impl::shutdown(bool keep_table) {
    if (shutting_down_) return;
    shutting_down_ = true;
    keep_table_ = keep_table;
    for (auto& [name, s] : services_) set_pending_start(*s, false);
    wake();
}

inline void supervisor::impl::detach() noexcept {
    detaching_ = true;
    keep_table_ = true;
    wake();
}

inline task<void> supervisor::impl::run() {
    running_ = true;
    // Children that ended before SIGCHLD reached our signalfd (a child inherited across execve
    // that ended before the supervisor existed) left no signal behind: look once now.
    orphans_due_ = options_.reap_orphans;
    for (;;) {
        // First: a stop is never queued behind a burst (services in backoff would be spawned
        // by their due timers before they were told to stop). Both go in slices.
        const bool stops_sent = !shutting_down_ || advance_shutdown();
        if (!process_due() || !stops_sent) {
            flush_tables();
            // The rest of the burst after the loop's other work: once around the ring.
            auto around = ringd::sleep_for(*ctx_, {});
            (void)co_await detail::supervisor_ignoring_stop<decltype(around)>{around};
            continue;
        }
        sweep_removed();
        if (orphans_due_) {
            orphans_due_ = false;
            reap_orphans();
        }
        if (!shutting_down_)
            advance_start_order();
        else if (!advance_shutdown())
            continue;                       // out of time: the top of the loop yields first
        if (due_head_ != nullptr) continue; // the actions made more events (a due timer)
        flush_tables();
        if (changed_ && options_.on_change) {
            changed_ = false;
            options_.on_change();
            continue; // it may have called the API: look again
        }
        if ((shutting_down_ && all_down()) || detaching_) break;
        // Until a completion or an API call sets wake_. If the loop stops under us
        // (io_context::stop), it cancels our operations itself and any wait on the ring would
        // end at once: run() stays where it is, as the loop leaves it.
        auto woken = wake_.take(*ctx_);
        if (!co_await detail::supervisor_ignoring_stop<decltype(woken)>{woken})
            co_await std::suspend_always{};
    }
    // Everything is down (or left running by detach): let go of the ring.
    draining_ = true; // before the cancels: nothing may be re-armed from here on
    cancel_everything();
    while (active_ops_ != 0) {
        due_head_ = due_tail_ = nullptr;
        for (auto& [name, s] : services_) s->in_due_list = false;
        auto woken = wake_.take(*ctx_);
        if (!co_await detail::supervisor_ignoring_stop<decltype(woken)>{woken})
            co_await std::suspend_always{}; // the loop stops under us, as above
    }
    for (auto& [name, s] : services_) { // the lines still in the pipes (prefix_output)
        drain_output(s->out);
        drain_output(s->err);
    }
    if (keep_table_) {
        write_table();
        write_pids();
    } else {
        discard_table();
        remove_unused_logs();
    }
    draining_ = false;
    running_ = false;
}

} // namespace ringd
