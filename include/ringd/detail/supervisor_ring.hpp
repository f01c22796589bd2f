// SPDX-License-Identifier: MIT
// ringd/detail/supervisor_ring.hpp — the supervisor's operations on the ring: the
// per-service timer, the wait for a process's end, the readiness read (sd_notify socket or s6
// notification pipe), the prefix_output pipes and the lines they carry, the SIGCHLD watch of
// orphan reaping, the deadline of a coalesced table write, and their completions, which only
// record an event, schedule the service for run() to feed and wake run().
#pragma once

#include <ringd/detail/supervisor_service.hpp>

#include <poll.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <new>
#include <string>
#include <string_view>
#include <utility>

namespace ringd {

// ---- ring operations -------------------------------------------------------------------------

inline supervisor::impl::timer_op::timer_op(service* s) noexcept : svc(s) {}

inline supervisor::impl::ready_op::ready_op(service* s) noexcept : svc(s) {}

inline void supervisor::impl::ready_op::prepare(io_uring_sqe* sqe) noexcept {
    if (from_socket) {
        iov = {buffer.get(), buffer_size - 1};
        message = msghdr{};
        message.msg_iov = &iov;
        message.msg_iovlen = 1;
        message.msg_control = control;
        message.msg_controllen = sizeof control;
        io_uring_prep_recvmsg(sqe, svc->notify_socket.get(), &message, 0);
    } else {
        io_uring_prep_read(sqe, svc->ready_pipe.get(), buffer.get(), buffer_size - 1,
                           static_cast<std::uint64_t>(-1));
    }
}

inline supervisor::impl::output_op::output_op(service* s, int to) noexcept : svc(s), target(to) {}

inline void supervisor::impl::output_op::prepare(io_uring_sqe* sqe) noexcept {
    io_uring_prep_read(sqe, read_end.get(), buffer.get(), buffer_size,
                       static_cast<std::uint64_t>(-1));
}

inline supervisor::impl::orphan_op::orphan_op(impl* s) noexcept : owner(s) {}

inline void supervisor::impl::orphan_op::prepare(io_uring_sqe* sqe) noexcept {
    io_uring_prep_poll_add(sqe, owner->sigchld_fd_.get(), POLLIN);
}

inline supervisor::impl::flush_op::flush_op(impl* s) noexcept : owner(s) {}

inline supervisor::impl::service::service(impl* s, service_spec sp)
    : owner(s), spec(std::move(sp)), machine(spec.policy) {}

inline void supervisor::impl::exit_watch::on_process_end(int error,
                                                         const siginfo_t& info) noexcept {
    impl* owner = svc->owner;
    if (owner == nullptr) return;
    --owner->active_ops_;
    svc->exit_due = true;
    svc->exit_error = error;
    svc->exit = exit_info::from_siginfo(info);
    owner->schedule(*svc);
    owner->resume_parked();
}

inline void supervisor::impl::timer_op::complete(int res, std::uint32_t) noexcept {
    in_flight = false;
    service* s = svc;
    impl* owner = s->owner;
    if (owner == nullptr) return;
    --owner->active_ops_;
    if (owner->ctx_->stopping() || !wanted) return owner->resume_parked(); // cancelled
    if (*wanted != submitted || res == -ECANCELED) {
        owner->submit_timer(*s); // re-armed while in flight
        return;
    }
    wanted.reset();
    s->timer_due = true;
    owner->schedule(*s);
    owner->resume_parked();
}

inline void supervisor::impl::ready_op::complete(int res, std::uint32_t) noexcept {
    in_flight = false;
    service* s = svc;
    impl* owner = s->owner;
    if (owner == nullptr) return;
    --owner->active_ops_;
    const bool stopping = owner->ctx_->stopping() || res == -ECANCELED;
    if (from_socket) {
        if (res > 0) {
            // Accept only what root, we, or the service's own user sent (SCM_CREDENTIALS).
            bool trusted = false;
            for (cmsghdr* c = CMSG_FIRSTHDR(&message); c != nullptr; c = CMSG_NXTHDR(&message, c)) {
                if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_CREDENTIALS) continue;
                ucred cred{};
                std::memcpy(&cred, CMSG_DATA(c), sizeof cred);
                trusted = cred.uid == 0 || cred.uid == ::geteuid() ||
                          (s->service_uid && cred.uid == *s->service_uid);
            }
            std::string_view text(buffer.get(), static_cast<std::size_t>(res));
            while (trusted && !text.empty()) {
                const auto nl = text.find('\n');
                const std::string_view line = text.substr(0, nl);
                text.remove_prefix(nl == std::string_view::npos ? text.size() : nl + 1);
                if (line == "READY=1") s->ready_due = true;
                if (line.starts_with("STATUS=")) {
                    try {
                        s->status_text.assign(line.substr(7));
                    } catch (...) {
                        // Out of memory: the status text is only for display.
                    }
                }
            }
        }
        const bool broken = res < 0 && res != -EINTR && res != -EAGAIN && res != -ENOBUFS;
        if (!stopping && !broken && !s->removing) owner->start_ready_read(*s);
    } else {
        const bool stale = s->next_ready_pipe.valid(); // the pipe of an earlier process
        if (!stale && res > 0 && std::memchr(buffer.get(), '\n', static_cast<std::size_t>(res)))
            s->ready_due = true;
        if (!stopping && !stale && res > 0 && !s->ready_due) {
            owner->start_ready_read(*s); // a partial line: read on
        } else {
            s->ready_pipe.reset(); // ready, EOF, error or replaced: done with this pipe
            if (stale) s->ready_pipe = std::move(s->next_ready_pipe);
            if (stale && !stopping) owner->start_ready_read(*s);
        }
    }
    if (s->ready_due) owner->schedule(*s);
    owner->resume_parked();
}

inline void supervisor::impl::output_op::complete(int res, std::uint32_t) noexcept {
    in_flight = false;
    service* s = svc;
    impl* owner = s->owner;
    if (owner == nullptr) return;
    --owner->active_ops_;
    if (res > 0) owner->emit_output(*this, {buffer.get(), static_cast<std::size_t>(res)}, false);
    const bool stopping = owner->ctx_->stopping() || res == -ECANCELED;
    // EOF cannot come while we hold the write end; any other error ends this pipe's reading.
    const bool broken = res == 0 || (res < 0 && res != -EINTR && res != -EAGAIN);
    if (broken && !stopping)
        owner->log_->logf(log_level::err, "output %s: read: %s; its lines are no longer copied",
                          s->spec.name.c_str(), std::strerror(res < 0 ? -res : EPIPE));
    // A removed service's reading ends once it is down (sweep_removed cancels it then).
    if (!stopping && !broken && !(s->removing && s->machine.quiescent()))
        owner->start_output_read(*this);
    owner->resume_parked();
}

inline void supervisor::impl::orphan_op::complete(int res, std::uint32_t) noexcept {
    in_flight = false;
    if (owner == nullptr) return;
    --owner->active_ops_;
    if (owner->ctx_->stopping() || owner->draining_ || res == -ECANCELED)
        return owner->resume_parked();
    signalfd_siginfo si;
    while (::read(owner->sigchld_fd_.get(), &si, sizeof si) == static_cast<ssize_t>(sizeof si)) {
    }
    owner->reap_orphans();
    in_flight = true;
    ++owner->active_ops_;
    owner->ctx_->submit(this);
}

inline void supervisor::impl::flush_op::complete(int, std::uint32_t) noexcept {
    in_flight = false;
    if (owner == nullptr) return;
    --owner->active_ops_;
    owner->wake(); // run() writes what is due (or, draining, counts the op back)
}

inline void supervisor::impl::arm_flush(supervision::time_point when) noexcept {
    if (flush_->in_flight || draining_) return;
    flush_->spec = detail::timeout_spec::at(when);
    flush_->in_flight = true;
    ++active_ops_;
    ctx_->submit(flush_.get());
}

inline void supervisor::impl::submit_timer(service& s) noexcept {
    timer_op& t = s.timer;
    t.submitted = *t.wanted;
    t.spec = detail::timeout_spec::at(t.submitted);
    t.in_flight = true;
    ++active_ops_;
    ctx_->submit(&t);
}

inline void supervisor::impl::arm_timer(service& s, supervision::time_point deadline) {
    timer_op& t = s.timer;
    if (deadline <= supervision::clock::now()) {
        // Due already (a restart delay of 0): no round trip through the kernel.
        t.wanted.reset();
        if (t.in_flight) ctx_->cancel(&t);
        s.timer_due = true;
        schedule(s);
        return;
    }
    t.wanted = deadline;
    if (!t.in_flight)
        submit_timer(s);
    else if (t.submitted != deadline)
        ctx_->cancel(&t); // its completion submits the new deadline
}

inline void supervisor::impl::cancel_timer(service& s) noexcept {
    s.timer.wanted.reset();
    if (s.timer.in_flight) ctx_->cancel(&s.timer);
}

inline expected<void, std::string> supervisor::impl::open_output(service& s) {
    for (output_op* o : {&s.out, &s.err}) {
        if (o->read_end) continue;
        int fds[2];
        if (::pipe2(fds, O_CLOEXEC) != 0)
            return unexpected<std::string>(std::string("pipe2: ") + std::strerror(errno));
        o->read_end.reset(fds[0]);
        o->write_end.reset(fds[1]);
        if (!o->buffer) o->buffer.reset(new (std::nothrow) char[output_op::buffer_size]);
        if (!o->buffer) return unexpected<std::string>("out of memory for the output buffer");
    }
    return {};
}

inline void supervisor::impl::start_output_read(output_op& o) noexcept {
    if (o.in_flight || draining_ || !o.read_end) return; // draining: run() waits for our ops
    o.in_flight = true;
    ++active_ops_;
    ctx_->submit(&o);
}

namespace detail {
// Writes all of `text` to `fd` (our stdout or stderr): a line is one write, so lines of
// different writers do not mix. Errors (a closed stdout) drop the line.
inline void supervisor_write_all(int fd, std::string_view text) noexcept {
    while (!text.empty()) {
        const ssize_t n = ::write(fd, text.data(), text.size());
        if (n > 0) {
            text.remove_prefix(static_cast<std::size_t>(n));
        } else if (n < 0 && errno == EAGAIN) {
            pollfd p{fd, POLLOUT, 0}; // a non-blocking stdout: wait until it takes more
            (void)::poll(&p, 1, -1);
        } else if (n == 0 || errno != EINTR) {
            return;
        }
    }
}
} // namespace detail

inline void supervisor::impl::emit_output(output_op& o, std::string_view data, bool end) noexcept {
    const std::string& name = o.svc->spec.name;
    try {
        std::string line;
        auto write_line = [&](std::string_view text) {
            line.assign(name).append(" | ").append(text).push_back('\n');
            detail::supervisor_write_all(o.target, line);
        };
        while (!data.empty()) {
            const std::size_t nl = data.find('\n');
            if (nl == std::string_view::npos) {
                o.partial.append(data);
                break;
            }
            if (o.partial.empty()) {
                write_line(data.substr(0, nl));
            } else {
                o.partial.append(data.substr(0, nl));
                write_line(o.partial);
                o.partial.clear();
            }
            data.remove_prefix(nl + 1);
        }
        // A line without an end is cut at the buffer's size, and written at the very end.
        while (o.partial.size() >= output_op::buffer_size || (end && !o.partial.empty())) {
            const std::size_t n = std::min(o.partial.size(), output_op::buffer_size);
            write_line(std::string_view(o.partial).substr(0, n));
            o.partial.erase(0, n);
        }
    } catch (...) {
        o.partial.clear(); // out of memory: these lines are lost, not the supervisor
    }
}

inline void supervisor::impl::drain_output(output_op& o) noexcept {
    if (!o.read_end || !o.buffer) return;
    const int flags = ::fcntl(o.read_end.get(), F_GETFL);
    if (flags >= 0) (void)::fcntl(o.read_end.get(), F_SETFL, flags | O_NONBLOCK);
    for (;;) {
        const ssize_t n = ::read(o.read_end.get(), o.buffer.get(), output_op::buffer_size);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) break;
        emit_output(o, {o.buffer.get(), static_cast<std::size_t>(n)}, false);
    }
    emit_output(o, {}, true);
}

inline void supervisor::impl::start_ready_read(service& s) noexcept {
    ready_op& r = s.ready;
    if (r.in_flight || draining_) return; // draining: run() waits for our ops to end
    r.from_socket =
        s.notify_socket.valid() && s.spec.readiness == readiness_protocol::notify_socket;
    if (!r.from_socket && !s.ready_pipe) return;
    if (!r.buffer) {
        r.buffer.reset(new (std::nothrow) char[ready_op::buffer_size]);
        if (!r.buffer) {
            log_->logf(log_level::err, "readiness %s: out of memory for its buffer",
                       s.spec.name.c_str());
            return;
        }
    }
    r.in_flight = true;
    ++active_ops_;
    ctx_->submit(&r);
}

inline void supervisor::impl::schedule(service& s) noexcept {
    if (s.in_due_list) return;
    s.in_due_list = true;
    s.next_due = nullptr;
    if (due_tail_ != nullptr)
        due_tail_->next_due = &s;
    else
        due_head_ = &s;
    due_tail_ = &s;
    // No wake-up here: completions resume run() themselves (they run at the loop's top level),
    // run() itself loops while anything is due, and every API function ends with wake().
}

inline void supervisor::impl::wake() noexcept {
    wake_.set();
}

inline void supervisor::impl::resume_parked() noexcept {
    // Not resumed from inside this completion: run() goes on when wake_'s poll comes back
    // among the other completions (10,000 exits, and among them the control socket's), which
    // are dispatched in between; resumed inline, a burst would hold the loop to the end. A
    // set() while wake_ is set costs nothing, so the burst is one wake-up.
    if (due_head_ != nullptr || draining_ || sweep_waiting_) wake_.set();
}

inline void supervisor::impl::cancel_everything() noexcept {
    for (auto& [name, s] : services_) {
        cancel_timer(*s);
        s->watch.cancel();
        if (s->ready.in_flight) ctx_->cancel(&s->ready);
        if (s->out.in_flight) ctx_->cancel(&s->out);
        if (s->err.in_flight) ctx_->cancel(&s->err);
    }
    if (orphans_ && orphans_->in_flight) ctx_->cancel(orphans_.get());
    if (flush_->in_flight) ctx_->cancel(flush_.get());
}

} // namespace ringd
