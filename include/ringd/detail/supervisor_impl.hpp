// SPDX-License-Identifier: MIT
// ringd/detail/supervisor_impl.hpp — bodies of supervisor.hpp.
#pragma once

#include <ringd/supervisor.hpp>

#include <poll.h>
#include <pthread.h>
#include <sys/wait.h>

#include <cstring>

// The table's text form, defined in detail/supervisor_table.hpp (which
// supervisor.hpp includes after this file).
namespace ringd::detail {
inline std::string supervisor_table_format(const std::vector<table_entry>& entries);
inline expected<std::vector<table_entry>, std::string>
supervisor_table_parse(std::string_view text);
inline std::string supervisor_pids_format(const std::vector<table_entry>& entries);
inline expected<std::vector<table_entry>, std::string> supervisor_pids_parse(std::string_view text);
} // namespace ringd::detail

namespace ringd {

// ---- names and specs -------------------------------------------------------------------------

constexpr std::string_view to_string(readiness_protocol r) noexcept {
    switch (r) {
    case readiness_protocol::none:
        return "none";
    case readiness_protocol::notify_socket:
        return "notify";
    case readiness_protocol::notification_fd:
        return "fd";
    }
    return "invalid";
}

inline std::optional<readiness_protocol> parse_readiness(std::string_view text) noexcept {
    for (auto r : {readiness_protocol::none, readiness_protocol::notify_socket,
                   readiness_protocol::notification_fd})
        if (text == to_string(r)) return r;
    return std::nullopt;
}

inline std::optional<supervision::restart_policy>
parse_restart_policy(std::string_view text) noexcept {
    if (text == "always") return supervision::restart_policy::always;
    if (text == "on-failure" || text == "on_failure")
        return supervision::restart_policy::on_failure;
    if (text == "never") return supervision::restart_policy::never;
    return std::nullopt;
}

inline expected<void, std::string> check_service_name(std::string_view name) {
    auto fail = [&](const char* why) {
        return unexpected<std::string>("name '" + std::string(name) + "': " + why);
    };
    if (name.empty()) return unexpected<std::string>("empty service name");
    if (name.size() > 100) return fail("longer than 100 characters");
    if (name[0] == '.') return fail("starts with '.'");
    for (char c : name) {
        const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
                        (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '-' || c == '@' ||
                        c == '+';
        if (!ok) return fail("only letters, digits and . _ - @ + are allowed");
    }
    return {};
}

inline expected<void, std::string> validate(const service_spec& spec) {
    if (auto n = check_service_name(spec.name); !n) return n;
    auto fail = [&](const std::string& why) {
        return unexpected<std::string>("service " + spec.name + ": " + why);
    };
    if (spec.argv.empty() || spec.argv[0].empty()) return fail("no command");
    for (const std::string& e : spec.environment)
        if (e.find('=') == std::string::npos || e[0] == '=')
            return fail("environment entry '" + e + "' is not KEY=VALUE");
    if (!spec.user.empty() || !spec.group.empty()) {
        auto c = lookup_credentials(spec.user.empty() ? std::to_string(::geteuid()) : spec.user,
                                    spec.group);
        if (!c) return fail(c.error());
        if (::geteuid() != 0 && (c->uid != ::geteuid() || c->gid != ::getegid()))
            return fail("running as another user or group needs a supervisor running as root");
    }
    if (spec.readiness == readiness_protocol::notification_fd &&
        (spec.notification_fd < 3 || spec.notification_fd > 63))
        return fail("notification fd " + std::to_string(spec.notification_fd) + " is not in 3..63");
    if (spec.listen.size() > 15) return fail("more than 15 listening addresses");
    for (const std::string& a : spec.listen)
        if (auto parsed = socket_address::parse(a); !parsed)
            return fail("listen address '" + a + "': " + parsed.error());
    if (spec.readiness == readiness_protocol::notification_fd &&
        spec.notification_fd < 3 + static_cast<int>(spec.listen.size()))
        return fail("notification fd " + std::to_string(spec.notification_fd) +
                    " is taken by a listening socket (3.." +
                    std::to_string(2 + spec.listen.size()) + ")");
    if (spec.stop_sequence.size() > 100 ||
        spec.stop_sequence.find_first_not_of("0123456789") != std::string::npos)
        return fail("stop sequence '" + spec.stop_sequence + "' is not a number of 1-100 digits");
    return {};
}

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

// "5 s", "250 ms".
inline std::string supervisor_duration(supervision::duration d) {
    const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(d).count();
    if (ms % 1000 == 0) return std::to_string(ms / 1000) + " s";
    return std::to_string(ms) + " ms";
}

// What orders services: priority, then the number of an S<nn> prefix; names without one last.
struct supervisor_group_key {
    int priority = 0;
    bool unsequenced = true;
    std::string_view number; // without leading zeros

    friend bool operator<(const supervisor_group_key& a, const supervisor_group_key& b) noexcept {
        if (a.priority != b.priority) return a.priority < b.priority;
        if (a.unsequenced != b.unsequenced) return !a.unsequenced;
        if (a.number.size() != b.number.size()) return a.number.size() < b.number.size();
        return a.number < b.number;
    }
    friend bool operator==(const supervisor_group_key& a, const supervisor_group_key& b) noexcept {
        return !(a < b) && !(b < a);
    }
};

inline supervisor_group_key supervisor_group_of(const service_spec& spec) noexcept {
    const supervision::start_key k = supervision::start_key_of(spec.name);
    return {spec.priority, !k.sequenced, k.number};
}

// What orders the shutdown: a < b when a's group stops first. A stop_sequence first, by number;
// then the others in reverse start order.
struct supervisor_stop_key {
    std::string_view sequence; // the spec's stop_sequence; empty: none
    supervisor_group_key start;

    friend bool operator<(const supervisor_stop_key& a, const supervisor_stop_key& b) noexcept {
        if (a.sequence.empty() != b.sequence.empty()) return b.sequence.empty();
        if (!a.sequence.empty()) return supervision::compare_numbers(a.sequence, b.sequence) < 0;
        return b.start < a.start;
    }
    friend bool operator==(const supervisor_stop_key& a, const supervisor_stop_key& b) noexcept {
        return !(a < b) && !(b < a);
    }
};

inline supervisor_stop_key supervisor_stop_group_of(const service_spec& spec) noexcept {
    return {spec.stop_sequence, supervisor_group_of(spec)};
}

// One step of an ordered start or stop, as often as it goes: the least key among the `waiting`
// services is the next group; it goes (`go`, each of its services) once no `busy` service has a
// lesser key. `go` answers false when it is out of time: the rest waits for the next call.
template <class Services, class KeyOf, class Waiting, class Busy, class Go>
void supervisor_advance_groups(Services& services, KeyOf key_of, Waiting waiting, Busy busy,
                               Go go) {
    for (;;) {
        std::optional<decltype(key_of(services.begin()->second->spec))> next;
        for (auto& [name, s] : services) {
            if (!waiting(*s)) continue;
            const auto k = key_of(s->spec);
            if (!next || k < *next) next = k;
        }
        if (!next) return;
        for (auto& [name, s] : services)
            if (!waiting(*s) && busy(*s) && key_of(s->spec) < *next) return;
        for (auto& [name, s] : services)
            if (waiting(*s) && key_of(s->spec) == *next && !go(*s)) return; // out of time
    }
}

// The middle part of the notify sockets' names: a hash of the table's absolute path (stable
// across restarts on that table), or "pid<N>" without a table.
inline std::string supervisor_notify_scope(const supervisor_options& options) {
    if (options.table_path.empty()) return "pid" + std::to_string(::getpid());
    std::error_code ec;
    std::string path = std::filesystem::absolute(options.table_path, ec).lexically_normal();
    if (ec) path = options.table_path;
    std::uint64_t hash = 14695981039346656037ull; // FNV-1a: short, stable, no dependency
    for (unsigned char c : path) hash = (hash ^ c) * 1099511628211ull;
    char hex[17];
    std::snprintf(hex, sizeof hex, "%016llx", static_cast<unsigned long long>(hash));
    return hex;
}

// The abstract name of a service's notify socket: "ringd-supervise/<scope>/<name>", or, when that
// would not fit in sun_path (a long name), "ringd-supervise/<scope>/#<hash of the name>". Either
// is the same for every supervisor on the table and distinct per name (a clash of the 64-bit
// hashes would fail the bind with EADDRINUSE, never share a socket).
inline std::string supervisor_notify_name(const std::string& scope, std::string_view service) {
    constexpr std::size_t fits = sizeof(sockaddr_un::sun_path) - 2; // the leading NUL, a spare
    std::string name = "ringd-supervise/" + scope + "/";
    if (name.size() + service.size() <= fits) return name + std::string(service);
    std::uint64_t hash = 14695981039346656037ull;
    for (unsigned char c : service) hash = (hash ^ c) * 1099511628211ull;
    char hex[18];
    std::snprintf(hex, sizeof hex, "#%016llx", static_cast<unsigned long long>(hash));
    return name + hex;
}

// An absolute deadline of the steady clock as IORING_TIMEOUT_ABS reads it.
inline __kernel_timespec supervisor_timespec(supervision::time_point when) noexcept {
    const auto ns =
        std::chrono::duration_cast<std::chrono::nanoseconds>(when.time_since_epoch()).count();
    return {static_cast<long long>(ns / 1'000'000'000), static_cast<long long>(ns % 1'000'000'000)};
}

} // namespace detail

// ---- ring operations -------------------------------------------------------------------------

inline supervisor::timer_op::timer_op(service* s) noexcept
    : io_op(
          [](io_op* self, io_uring_sqe* sqe) noexcept {
              auto* t = static_cast<timer_op*>(self);
              io_uring_prep_timeout(sqe, &t->when, 0, IORING_TIMEOUT_ABS);
          },
          &supervisor::timer_complete),
      svc(s) {}

inline supervisor::ready_op::ready_op(service* s) noexcept
    : io_op(
          [](io_op* self, io_uring_sqe* sqe) noexcept {
              auto* r = static_cast<ready_op*>(self);
              if (r->from_socket) {
                  r->iov = {r->buffer.get(), ready_op::buffer_size - 1};
                  r->message = msghdr{};
                  r->message.msg_iov = &r->iov;
                  r->message.msg_iovlen = 1;
                  r->message.msg_control = r->control;
                  r->message.msg_controllen = sizeof r->control;
                  io_uring_prep_recvmsg(sqe, r->svc->notify_socket.get(), &r->message, 0);
              } else {
                  io_uring_prep_read(sqe, r->svc->ready_pipe.get(), r->buffer.get(),
                                     ready_op::buffer_size - 1, static_cast<std::uint64_t>(-1));
              }
          },
          &supervisor::ready_complete),
      svc(s) {}

inline supervisor::output_op::output_op(service* s, int to) noexcept
    : io_op(
          [](io_op* self, io_uring_sqe* sqe) noexcept {
              auto* o = static_cast<output_op*>(self);
              io_uring_prep_read(sqe, o->read_end.get(), o->buffer.get(), output_op::buffer_size,
                                 static_cast<std::uint64_t>(-1));
          },
          &supervisor::output_complete),
      svc(s), target(to) {}

inline supervisor::kick_op::kick_op(supervisor* s) noexcept
    : io_op([](io_op*, io_uring_sqe* sqe) noexcept { io_uring_prep_nop(sqe); },
            &supervisor::kick_complete),
      owner(s) {}

inline supervisor::orphan_op::orphan_op(supervisor* s) noexcept
    : io_op(
          [](io_op* self, io_uring_sqe* sqe) noexcept {
              auto* o = static_cast<orphan_op*>(self);
              io_uring_prep_poll_add(sqe, o->owner->sigchld_fd_.get(), POLLIN);
          },
          &supervisor::orphan_complete),
      owner(s) {}

inline supervisor::flush_op::flush_op(supervisor* s) noexcept
    : io_op(
          [](io_op* self, io_uring_sqe* sqe) noexcept {
              auto* f = static_cast<flush_op*>(self);
              io_uring_prep_timeout(sqe, &f->when, 0, IORING_TIMEOUT_ABS);
          },
          &supervisor::flush_complete),
      owner(s) {}

inline supervisor::service::service(supervisor* s, service_spec sp)
    : owner(s), spec(std::move(sp)), machine(spec.policy) {}

inline void supervisor::exit_watch::on_process_end(int error, const siginfo_t& info) noexcept {
    supervisor* owner = svc->owner;
    if (owner == nullptr) return;
    --owner->active_ops_;
    svc->exit_due = true;
    svc->exit_error = error;
    svc->exit = exit_info::from_siginfo(info);
    owner->schedule(*svc);
    owner->resume_parked();
}

inline void supervisor::timer_complete(detail::io_op* op, int res, std::uint32_t) noexcept {
    auto* t = static_cast<timer_op*>(op);
    t->in_flight = false;
    service* s = t->svc;
    supervisor* owner = s->owner;
    if (owner == nullptr) return;
    --owner->active_ops_;
    if (owner->ctx_->stopping() || !t->wanted) return owner->resume_parked(); // cancelled
    if (*t->wanted != t->submitted || res == -ECANCELED) {
        owner->submit_timer(*s); // re-armed while in flight
        return;
    }
    t->wanted.reset();
    s->timer_due = true;
    owner->schedule(*s);
    owner->resume_parked();
}

inline void supervisor::ready_complete(detail::io_op* op, int res, std::uint32_t) noexcept {
    auto* r = static_cast<ready_op*>(op);
    r->in_flight = false;
    service* s = r->svc;
    supervisor* owner = s->owner;
    if (owner == nullptr) return;
    --owner->active_ops_;
    const bool stopping = owner->ctx_->stopping() || res == -ECANCELED;
    if (r->from_socket) {
        if (res > 0) {
            // Accept only what root, we, or the service's own user sent (SCM_CREDENTIALS).
            bool trusted = false;
            for (cmsghdr* c = CMSG_FIRSTHDR(&r->message); c != nullptr;
                 c = CMSG_NXTHDR(&r->message, c)) {
                if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_CREDENTIALS) continue;
                ucred cred{};
                std::memcpy(&cred, CMSG_DATA(c), sizeof cred);
                trusted = cred.uid == 0 || cred.uid == ::geteuid() ||
                          (s->service_uid && cred.uid == *s->service_uid);
            }
            std::string_view text(r->buffer.get(), static_cast<std::size_t>(res));
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
        if (!stale && res > 0 && std::memchr(r->buffer.get(), '\n', static_cast<std::size_t>(res)))
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

inline void supervisor::output_complete(detail::io_op* op, int res, std::uint32_t) noexcept {
    auto* o = static_cast<output_op*>(op);
    o->in_flight = false;
    service* s = o->svc;
    supervisor* owner = s->owner;
    if (owner == nullptr) return;
    --owner->active_ops_;
    if (res > 0) owner->emit_output(*o, {o->buffer.get(), static_cast<std::size_t>(res)}, false);
    const bool stopping = owner->ctx_->stopping() || res == -ECANCELED;
    // EOF cannot come while we hold the write end; any other error ends this pipe's reading.
    const bool broken = res == 0 || (res < 0 && res != -EINTR && res != -EAGAIN);
    if (broken && !stopping)
        owner->log_->logf(log_level::err, "output %s: read: %s; its lines are no longer copied",
                          s->spec.name.c_str(), std::strerror(res < 0 ? -res : EPIPE));
    // A removed service's reading ends once it is down (sweep_removed cancels it then).
    if (!stopping && !broken && !(s->removing && s->machine.quiescent()))
        owner->start_output_read(*o);
    owner->resume_parked();
}

inline void supervisor::kick_complete(detail::io_op* op, int, std::uint32_t) noexcept {
    auto* k = static_cast<kick_op*>(op);
    k->pending = false;
    if (k->owner != nullptr) k->owner->resume_now();
}

inline void supervisor::orphan_complete(detail::io_op* op, int res, std::uint32_t) noexcept {
    auto* o = static_cast<orphan_op*>(op);
    o->in_flight = false;
    supervisor* owner = o->owner;
    if (owner == nullptr) return;
    --owner->active_ops_;
    if (owner->ctx_->stopping() || owner->draining_ || res == -ECANCELED)
        return owner->resume_parked();
    signalfd_siginfo si;
    while (::read(owner->sigchld_fd_.get(), &si, sizeof si) == static_cast<ssize_t>(sizeof si)) {
    }
    owner->reap_orphans();
    o->in_flight = true;
    ++owner->active_ops_;
    owner->ctx_->submit(o);
}

inline void supervisor::flush_complete(detail::io_op* op, int, std::uint32_t) noexcept {
    auto* f = static_cast<flush_op*>(op);
    f->in_flight = false;
    supervisor* owner = f->owner;
    if (owner == nullptr) return;
    --owner->active_ops_;
    owner->kicked_ = true; // run() writes what is due (or, draining, counts the op back)
    owner->resume_parked();
}

inline void supervisor::arm_flush(supervision::time_point when) noexcept {
    if (flush_->in_flight || draining_) return;
    flush_->when = detail::supervisor_timespec(when);
    flush_->in_flight = true;
    ++active_ops_;
    ctx_->submit(flush_.get());
}

inline void supervisor::submit_timer(service& s) noexcept {
    timer_op& t = s.timer;
    t.submitted = *t.wanted;
    t.when = detail::supervisor_timespec(t.submitted);
    t.in_flight = true;
    ++active_ops_;
    ctx_->submit(&t);
}

inline void supervisor::arm_timer(service& s, supervision::time_point deadline) {
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

inline void supervisor::cancel_timer(service& s) noexcept {
    s.timer.wanted.reset();
    if (s.timer.in_flight) ctx_->cancel(&s.timer);
}

inline expected<void, std::string> supervisor::open_output(service& s) {
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

inline void supervisor::start_output_read(output_op& o) noexcept {
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

inline void supervisor::emit_output(output_op& o, std::string_view data, bool end) noexcept {
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

inline void supervisor::drain_output(output_op& o) noexcept {
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

inline void supervisor::leave_child(pid_t pid, bool leave) {
    std::erase(left_children_, pid);
    if (leave) {
        left_children_.push_back(pid);
    } else if (options_.reap_orphans) {
        orphans_due_ = true; // it may have hidden others from the last look
        wake();
    }
}

inline void supervisor::start_ready_read(service& s) noexcept {
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

inline void supervisor::schedule(service& s) noexcept {
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

inline void supervisor::wake() noexcept {
    kicked_ = true;
    if (parked_ && !kick_->pending) {
        kick_->pending = true;
        ctx_->complete_later(kick_.get(), 0);
    }
}

inline void supervisor::resume_parked() noexcept {
    if (!parked_) return;
    if (due_head_ == nullptr && !kicked_ && !draining_ && !sweep_waiting_)
        return; // nothing for run() to do
    // Not from inside this completion: run() goes on when the kick, a NOP through the ring,
    // comes back among the other completions (10,000 exits, and among them the control
    // socket's), which are dispatched in between. Resumed inline, or by a local completion
    // (dispatched in the same turn as those it posts), a burst would hold the loop to the end.
    if (!kick_->pending) {
        kick_->pending = true;
        ctx_->submit(kick_.get());
    }
}

inline void supervisor::resume_now() noexcept {
    if (!parked_) return;
    if (due_head_ == nullptr && !kicked_ && !draining_ && !sweep_waiting_) return;
    std::exchange(parked_, {}).resume();
}

inline void supervisor::cancel_everything() noexcept {
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

// ---- construction ----------------------------------------------------------------------------

inline supervisor::supervisor(io_context& ctx, logger& log, supervisor_options options)
    : ctx_(&ctx), log_(&log), options_(std::move(options)), kick_(std::make_unique<kick_op>(this)),
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

inline supervisor::~supervisor() {
    if (active_ops_ == 0 && !kick_->pending) return;
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
    kick_->owner = nullptr;
    (void)kick_.release();
    flush_->owner = nullptr;
    (void)flush_.release();
    if (orphans_) {
        orphans_->owner = nullptr;
        (void)orphans_.release();
        (void)sigchld_fd_.release();
    }
}

// ---- the table -------------------------------------------------------------------------------

inline expected<std::vector<table_entry>, std::string>
supervisor::read_table(const std::string& path) {
    auto fail = [&](const std::string& why) {
        return unexpected<std::string>("read table " + path + ": " + why);
    };
    unique_fd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
    if (!fd) {
        if (errno == ENOENT) return std::vector<table_entry>{};
        return fail(std::strerror(errno));
    }
    std::string text;
    char buf[8192];
    for (;;) {
        const ssize_t n = ::read(fd.get(), buf, sizeof buf);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) return fail(std::strerror(errno));
        if (n == 0) break;
        text.append(buf, static_cast<std::size_t>(n));
    }
    auto entries = detail::supervisor_table_parse(text);
    if (!entries) return fail(entries.error());
    return entries;
}

inline std::vector<table_entry> supervisor::load_table() const {
    if (options_.table_path.empty()) return {};
    const std::string& path = options_.table_path;
    auto entries = read_table(path);
    if (!entries) throw std::runtime_error(entries.error());
    // The processes, from <table>.pids: written without fsync (they mean nothing after a
    // reboot), so a missing or torn file only costs the adoption, never the services.
    const std::string pids_path = path + ".pids";
    std::ifstream pids_file(pids_path);
    if (pids_file) {
        std::stringstream pids_text;
        pids_text << pids_file.rdbuf();
        auto pids = detail::supervisor_pids_parse(pids_text.str());
        if (!pids) {
            log_->logf(log_level::warning, "read %s: %s; not adopting any process",
                       pids_path.c_str(), pids.error().c_str());
        } else {
            for (const table_entry& p : *pids)
                for (table_entry& e : *entries)
                    if (e.spec.name == p.spec.name) {
                        e.pid = p.pid;
                        e.start_time = p.start_time;
                        e.log_path = p.log_path;
                        e.ready = p.ready;
                    }
        }
    }
    return std::move(*entries);
}

inline void supervisor::discard_table() {
    if (options_.table_path.empty()) return;
    for (const char* suffix : {"", ".tmp", ".pids", ".pids.tmp"})
        ::unlink((options_.table_path + suffix).c_str());
}

inline std::vector<table_entry> supervisor::table_entries() const {
    std::vector<const service*> order;
    order.reserve(services_.size());
    for (const auto& [name, s] : services_) order.push_back(s.get());
    std::sort(order.begin(), order.end(), [](const service* a, const service* b) {
        if (a->spec.priority != b->spec.priority) return a->spec.priority < b->spec.priority;
        return supervision::starts_before(a->spec.name, b->spec.name);
    });
    std::vector<table_entry> entries;
    entries.reserve(order.size());
    for (const service* each : order) {
        const service& s = *each;
        if (s.removing && !s.machine.has_process()) continue; // forgotten once down
        table_entry e;
        e.spec = s.spec;
        e.wanted_up = s.wanted_up && !s.removing;
        if (s.machine.has_process() && s.proc.valid()) {
            e.pid = s.proc.pid();
            e.start_time = s.proc.start_time();
            e.ready = s.machine.current() != supervision::state::starting;
        }
        e.log_path = s.log_path;
        entries.push_back(std::move(e));
    }
    return entries;
}

inline void supervisor::mark_table_dirty() noexcept {
    table_dirty_ = true;
    ++table_changes_;
}

inline void supervisor::write_table() {
    table_dirty_ = false;
    pids_dirty_ = true; // a fresh table: write the processes next to it
    const std::uint64_t covering = table_changes_;
    struct settle { // whatever the outcome, those waiting for these changes go on
        supervisor* self;
        std::uint64_t covering;
        ~settle() { self->table_settled(covering); }
    } settled{this, covering};
    if (options_.table_path.empty()) return;
    std::vector<table_entry> entries = table_entries();
    for (table_entry& e : entries) {
        e.pid = 0; // the processes go to <table>.pids
        e.log_path.clear();
    }
    auto written =
        write_file_atomically(options_.table_path, detail::supervisor_table_format(entries), 0600);
    if (!written) {
        log_->logf(log_level::err, "write table %s: %s", options_.table_path.c_str(),
                   written.error().message().c_str());
        table_dirty_ = true; // the next turn tries again
    }
}

inline void supervisor::table_settled(std::uint64_t covering) noexcept {
    table_written_upto_ = std::max(table_written_upto_, covering);
    // Resumed here, on the loop's thread (their next step is a send on the ring).
    while (!durable_waiters_.empty()) {
        auto it = std::find_if(durable_waiters_.begin(), durable_waiters_.end(),
                               [&](const auto& w) { return w.first <= table_written_upto_; });
        if (it == durable_waiters_.end()) return;
        const std::coroutine_handle<> h = it->second;
        durable_waiters_.erase(it);
        h.resume();
    }
}

inline void supervisor::flush_tables() {
    if (!table_dirty_ && !pids_dirty_) return;
    if (options_.table_path.empty()) {
        table_dirty_ = pids_dirty_ = false;
        return;
    }
    // Each file waits at least 3 times as long as its last write took (at least 10 ms): at most
    // a quarter of the loop's time goes to the table under a burst (the requests that wait for
    // a durable table share each write), and an isolated change is written at once.
    auto interval = [](supervision::duration took) {
        return std::max<supervision::duration>(std::chrono::milliseconds(10), took * 3);
    };
    // <table>.pids at least every 100 ms: a process it does not name yet would be started a
    // second time by a supervisor restarted after a crash.
    auto pids_interval = [&](supervision::duration took) {
        return std::min<supervision::duration>(interval(took), std::chrono::milliseconds(100));
    };
    supervision::time_point now = supervision::clock::now();
    std::optional<supervision::time_point> later;
    if (table_dirty_) {
        if (now - table_written_ >= table_interval_) {
            write_table();
            const auto done = supervision::clock::now();
            table_interval_ = interval(done - now);
            table_written_ = now = done;
        } else {
            later = table_written_ + table_interval_;
        }
    }
    if (pids_dirty_) {
        if (now - pids_written_ >= pids_interval_) {
            write_pids();
            const auto done = supervision::clock::now();
            pids_interval_ = pids_interval(done - now);
            pids_written_ = done;
        } else {
            const auto when = pids_written_ + pids_interval_;
            later = later ? std::min(*later, when) : when;
        }
    }
    if (table_dirty_ && !later) later = now + table_interval_; // a failed write: try again
    if (pids_dirty_ && !later) later = now + pids_interval_;
    if (later) arm_flush(*later);
}

inline void supervisor::write_pids() {
    pids_dirty_ = false;
    if (options_.table_path.empty()) return;
    // Replaced atomically, but not fsynced: the loop never waits for the disk after a respawn,
    // and the file only matters while this boot lasts.
    const std::string path = options_.table_path + ".pids";
    // Only what the file holds (no spec copies, in no particular order): it is rewritten often.
    std::vector<table_entry> entries;
    entries.reserve(services_.size());
    for (const auto& [name, s] : services_) {
        if (s->removing && !s->machine.has_process()) continue; // forgotten once down
        table_entry& e = entries.emplace_back();
        e.spec.name = name;
        if (s->machine.has_process() && s->proc.valid()) {
            e.pid = s->proc.pid();
            e.start_time = s->proc.start_time();
            e.ready = s->machine.current() != supervision::state::starting;
        }
        e.log_path = s->log_path;
    }
    auto written = write_file_atomically(path, detail::supervisor_pids_format(entries), 0600,
                                         file_durability::survives_process_crash);
    if (!written) {
        log_->logf(log_level::err, "write %s: %s", path.c_str(), written.error().message().c_str());
        pids_dirty_ = true;
    }
}

// ---- services --------------------------------------------------------------------------------

inline supervisor::service* supervisor::lookup(std::string_view name) const noexcept {
    auto it = services_.find(name);
    return it == services_.end() ? nullptr : it->second.get();
}

inline const service_spec* supervisor::find(std::string_view name) const {
    const service* s = lookup(name);
    return s != nullptr ? &s->spec : nullptr;
}

inline void supervisor::open_notify_socket(service& s) {
    unique_fd fd(::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
    if (!fd) throw_errno(errno, "socket for the notify socket of " + s.spec.name);
    int on = 1;
    if (::setsockopt(fd.get(), SOL_SOCKET, SO_PASSCRED, &on, sizeof on) != 0)
        throw_errno(errno, "setsockopt SO_PASSCRED for " + s.spec.name);
    // An abstract name: nothing to clean up, and it dies with us. With a table, it is named
    // after the table rather than our pid: a supervisor started again on the same table after a
    // crash (the table's lock makes it the only one) binds the same names, so a process it
    // re-adopts before that process was ready still reaches it through its NOTIFY_SOCKET.
    // A name too long for sun_path is hashed (supervisor_notify_name), never cut.
    const std::string name =
        detail::supervisor_notify_name(detail::supervisor_notify_scope(options_), s.spec.name);
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    if (name.size() > sizeof addr.sun_path - 2) // cannot happen: the name is made to fit
        throw std::runtime_error("notify socket name @" + name + " is too long");
    std::memcpy(addr.sun_path + 1, name.data(), name.size());
    const auto len = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + 1 + name.size());
    if (::bind(fd.get(), reinterpret_cast<sockaddr*>(&addr), len) != 0)
        throw_errno(errno, "bind @" + name);
    s.notify_socket = std::move(fd);
    s.notify_address = "@" + name;
    s.service_uid.reset();
    if (!s.spec.user.empty())
        if (auto who = lookup_credentials(s.spec.user); who) s.service_uid = who->uid;
    start_ready_read(s);
}

inline expected<void, std::string> supervisor::add(service_spec spec, const table_entry* previous) {
    if (shutting_down_)
        return unexpected<std::string>("add " + spec.name + ": the supervisor is shutting down");
    if (auto v = validate(spec); !v) return v;
    if (const service* other = lookup(spec.name)) {
        if (other->removing)
            return unexpected<std::string>("add " + spec.name +
                                           ": a service of that name is being removed; try again");
        return unexpected<std::string>(
            "add " + spec.name + ": the name is taken (" +
            (other->spec.origin.empty() ? std::string("registered") : other->spec.origin) + ")");
    }
    auto owned = std::make_unique<service>(this, std::move(spec));
    service& s = *owned;
    s.since = supervision::clock::now();
    s.wanted_up = previous == nullptr || previous->wanted_up;
    if (s.spec.readiness == readiness_protocol::notify_socket) {
        try {
            open_notify_socket(s);
        } catch (const std::exception& e) {
            return unexpected<std::string>("add " + s.spec.name + ": " + e.what());
        }
    }
    services_.emplace(s.spec.name, std::move(owned));
    mark_table_dirty();
    changed_ = true;
    if (previous != nullptr) s.log_path = previous->log_path;
    for (auto& [path, size] : take_found_logs(s.spec.name)) {
        if (path == s.log_path) continue; // the current (or last) one
        s.old_logs.push_back(std::move(path));
        s.old_log_sizes.push_back(size);
    }
    if (previous != nullptr) {
        if (previous->pid > 0) {
            auto p = process::adopt(previous->pid, previous->start_time);
            if (p) {
                s.adopting = std::move(*p);
                feed(s, supervision::start_requested{});
                // Ready if it had told the previous supervisor; else it must tell us in time.
                if (s.machine.current() == supervision::state::starting &&
                    s.machine.has_process()) {
                    if (previous->ready)
                        feed(s, supervision::ready{});
                    else
                        log_->logf(
                            log_level::notice,
                            "adopt %s: pid %d has not reported readiness; waiting %s for it",
                            s.spec.name.c_str(), previous->pid,
                            s.spec.policy.ready_timeout > supervision::duration::zero()
                                ? detail::supervisor_duration(s.spec.policy.ready_timeout).c_str()
                                : "without a time limit");
                }
                if (!s.wanted_up) feed(s, supervision::stop_requested{});
                wake();
                return {};
            }
            log_->logf(log_level::info, "adopt %s: pid %d %s; starting afresh", s.spec.name.c_str(),
                       previous->pid,
                       p.error().value() == ESTALE ? "is another process now" : "is gone");
        }
    }
    if (s.wanted_up) set_pending_start(s, true);
    wake();
    return {};
}

inline void supervisor::set_pending_start(service& s, bool pending) noexcept {
    if (s.pending_start == pending) return;
    s.pending_start = pending;
    if (pending)
        ++pending_starts_;
    else
        --pending_starts_;
}

inline expected<supervisor::service*, std::string>
supervisor::operand(std::string_view verb, std::string_view name, bool brings_up) const {
    service* s = lookup(name);
    const auto fail = [&](const char* why) {
        return unexpected<std::string>(std::string(verb) + " " + std::string(name) + ": " + why);
    };
    if (s == nullptr) return fail("no such service");
    if (brings_up && s->removing) return fail("being removed");
    if (brings_up && shutting_down_) return fail("shutting down");
    return s;
}

inline void supervisor::start_or_restart(service& s) {
    if (s.machine.current() == supervision::state::stopped)
        feed(s, supervision::start_requested{});
    else
        feed(s, supervision::restart_requested{});
}

inline void supervisor::changed_by_operator() noexcept {
    mark_table_dirty();
    wake();
}

inline expected<std::string, std::string> supervisor::remove(std::string_view name) {
    auto found = operand("remove", name, false);
    if (!found) return unexpected<std::string>(found.error());
    service* s = *found;
    if (s->removing) return std::string("already being removed");
    s->removing = true;
    ++removing_;
    s->wanted_up = false;
    set_pending_start(*s, false);
    const pid_t pid = s->machine.pid();
    feed(*s, supervision::stop_requested{});
    changed_by_operator();
    return pid != 0 ? "stopping pid " + std::to_string(pid) : std::string("removed");
}

inline expected<void, std::string> supervisor::start(std::string_view name) {
    auto found = operand("start", name, true);
    if (!found) return unexpected<std::string>(found.error());
    service* s = *found;
    s->wanted_up = true;
    set_pending_start(*s, false);
    feed(*s, supervision::start_requested{});
    changed_by_operator();
    return {};
}

inline expected<void, std::string> supervisor::stop(std::string_view name) {
    auto found = operand("stop", name, false);
    if (!found) return unexpected<std::string>(found.error());
    service* s = *found;
    s->wanted_up = false;
    set_pending_start(*s, false);
    feed(*s, supervision::stop_requested{});
    changed_by_operator();
    return {};
}

inline expected<void, std::string> supervisor::restart(std::string_view name) {
    auto found = operand("restart", name, true);
    if (!found) return unexpected<std::string>(found.error());
    service* s = *found;
    s->wanted_up = true;
    set_pending_start(*s, false);
    start_or_restart(*s);
    changed_by_operator();
    return {};
}

inline expected<void, std::string> supervisor::replace(service_spec spec, bool restart) {
    auto found = operand("replace", spec.name, false);
    if (!found) return unexpected<std::string>(found.error());
    service* s = *found;
    if (auto v = validate(spec); !v) return v;
    const bool needs_socket = spec.readiness == readiness_protocol::notify_socket;
    if (spec.listen != s->spec.listen) s->listeners.clear(); // bound again at the next start
    s->spec = std::move(spec);
    s->machine.set_policy(s->spec.policy);
    if (needs_socket && s->notify_socket) {
        s->service_uid.reset();
        if (!s->spec.user.empty())
            if (auto who = lookup_credentials(s->spec.user); who) s->service_uid = who->uid;
    }
    if (needs_socket && !s->notify_socket) {
        try {
            open_notify_socket(*s);
        } catch (const std::exception& e) {
            return unexpected<std::string>("replace " + s->spec.name + ": " + e.what());
        }
    }
    if (restart && s->wanted_up && !s->pending_start && !shutting_down_) start_or_restart(*s);
    changed_by_operator();
    return {};
}

inline void supervisor::signal_all(int sig) {
    for (auto& [name, s] : services_)
        if (s->machine.has_process() && s->proc.valid()) (void)s->proc.signal_group(sig);
}

inline expected<void, std::string> supervisor::signal(std::string_view name, int sig) {
    const service* s = lookup(name);
    const std::string what = "send " + signal_name(sig) + " to " + std::string(name);
    if (s == nullptr) return unexpected<std::string>(what + ": no such service");
    if (!s->machine.has_process() || !s->proc.valid())
        return unexpected<std::string>(what + ": not running");
    if (auto sent = s->proc.signal_group(sig); !sent)
        return unexpected<std::string>(what + ": " + sent.error().message());
    return {};
}

inline void supervisor::remove_log(const std::string& path) noexcept {
    if (!path.empty()) ::unlink(path.c_str());
}

inline void supervisor::retire_log(service& s, const std::string& new_log) {
    // A recycled pid reuses a name: that file is the new process's now, not a kept one.
    for (std::size_t i = 0; i < s.old_logs.size(); ++i) {
        if (s.old_logs[i] != new_log) continue;
        s.old_logs.erase(s.old_logs.begin() + static_cast<std::ptrdiff_t>(i));
        s.old_log_sizes.erase(s.old_log_sizes.begin() + static_cast<std::ptrdiff_t>(i));
        break;
    }
    if (s.log_path.empty() || s.log_path == new_log) return;
    struct stat st {};
    if (::stat(s.log_path.c_str(), &st) != 0) return; // gone already: nothing to keep
    s.old_logs.push_back(s.log_path);
    s.old_log_sizes.push_back(static_cast<std::uint64_t>(st.st_size));
    std::uint64_t total = 0;
    for (std::uint64_t size : s.old_log_sizes) total += size;
    const std::size_t keep = std::max<std::size_t>(options_.keep_logs, 1);
    // The oldest go first; the one just added (the crashed instance's) stays whatever its size.
    std::size_t doomed = 0;
    while (s.old_logs.size() - doomed > 1 &&
           (s.old_logs.size() - doomed > keep || total > options_.keep_logs_bytes)) {
        remove_log(s.old_logs[doomed]);
        total -= s.old_log_sizes[doomed];
        ++doomed;
    }
    const auto cut = static_cast<std::ptrdiff_t>(doomed);
    s.old_logs.erase(s.old_logs.begin(), s.old_logs.begin() + cut);
    s.old_log_sizes.erase(s.old_log_sizes.begin(), s.old_log_sizes.begin() + cut);
}

inline std::vector<std::pair<std::string, std::uint64_t>>
supervisor::take_found_logs(const std::string& name) {
    if (options_.log_dir.empty()) return {};
    if (!logs_scanned_) {
        // Once: what earlier supervisors left, <name>.<digits>, oldest first (by mtime).
        logs_scanned_ = true;
        struct found {
            std::string name, path;
            std::uint64_t size;
            std::int64_t mtime_ns;
        };
        std::vector<found> all;
        if (DIR* dir = ::opendir(options_.log_dir.c_str())) {
            while (dirent* e = ::readdir(dir)) {
                const std::string_view file(e->d_name);
                const auto dot = file.rfind('.');
                if (dot == std::string_view::npos || dot == 0 || dot + 1 == file.size() ||
                    file.find_first_not_of("0123456789", dot + 1) != std::string_view::npos)
                    continue;
                const std::string path = options_.log_dir + "/" + std::string(file);
                struct stat st {};
                if (::stat(path.c_str(), &st) != 0 || !S_ISREG(st.st_mode)) continue;
                all.push_back({std::string(file.substr(0, dot)), path,
                               static_cast<std::uint64_t>(st.st_size),
                               static_cast<std::int64_t>(st.st_mtim.tv_sec) * 1'000'000'000 +
                                   st.st_mtim.tv_nsec});
            }
            ::closedir(dir);
        }
        std::sort(all.begin(), all.end(), [](const found& a, const found& b) {
            return a.mtime_ns != b.mtime_ns ? a.mtime_ns < b.mtime_ns : a.path < b.path;
        });
        for (found& f : all) found_logs_[f.name].emplace_back(std::move(f.path), f.size);
    }
    auto it = found_logs_.find(name);
    if (it == found_logs_.end()) return {};
    auto out = std::move(it->second);
    found_logs_.erase(it);
    return out;
}

inline void supervisor::remove_unused_logs(const std::vector<std::string>& more_names) {
    if (options_.log_dir.empty()) return;
    std::vector<std::string> in_use;
    for (auto& [name, s] : services_)
        if (s->machine.has_process()) in_use.push_back(s->log_path);
    DIR* dir = ::opendir(options_.log_dir.c_str());
    if (dir == nullptr) return;
    std::vector<std::string> doomed;
    while (dirent* e = ::readdir(dir)) {
        const std::string_view file(e->d_name);
        const auto dot = file.rfind('.');
        if (dot == std::string_view::npos || dot + 1 == file.size()) continue;
        if (file.find_first_not_of("0123456789", dot + 1) != std::string_view::npos) continue;
        const std::string_view name = file.substr(0, dot);
        const bool ours = lookup(name) != nullptr ||
                          std::find(more_names.begin(), more_names.end(), name) != more_names.end();
        const std::string path = options_.log_dir + "/" + std::string(file);
        if (ours && std::find(in_use.begin(), in_use.end(), path) == in_use.end())
            doomed.push_back(path);
    }
    ::closedir(dir);
    for (const std::string& path : doomed) remove_log(path);
}

inline service_status supervisor::status_of(const service& s) const {
    service_status st;
    st.name = s.spec.name;
    st.state = s.machine.current();
    st.wanted_up = s.wanted_up && !s.removing;
    st.pid = s.machine.pid();
    st.restarts = s.machine.restarts();
    st.in_state =
        std::chrono::duration_cast<std::chrono::seconds>(supervision::clock::now() - s.since);
    st.last_exit = s.last_exit;
    st.last_error = s.spawn_error;
    st.status_text = s.status_text;
    st.log_path = s.log_path;
    st.origin = s.spec.origin;
    st.priority = s.spec.priority;
    st.stop_sequence = s.spec.stop_sequence;
    st.readiness = s.spec.readiness;
    st.argv = s.spec.argv;
    for (const listener& l : s.listeners) st.listening.push_back(l.address().to_string());
    st.adopted = s.adopted && s.machine.has_process();
    return st;
}

inline std::vector<service_status> supervisor::list() const {
    std::vector<const service*> order;
    for (const auto& [name, s] : services_) order.push_back(s.get());
    std::sort(order.begin(), order.end(), [](const service* a, const service* b) {
        if (a->spec.priority != b->spec.priority) return a->spec.priority < b->spec.priority;
        return supervision::starts_before(a->spec.name, b->spec.name);
    });
    std::vector<service_status> out;
    for (const service* s : order) out.push_back(status_of(*s));
    return out;
}

inline std::optional<service_status> supervisor::status(std::string_view name) const {
    const service* s = lookup(name);
    if (s == nullptr) return std::nullopt;
    return status_of(*s);
}

// ---- the machine's actions -------------------------------------------------------------------

inline void supervisor::feed(service& s, const supervision::event& e) {
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

inline void supervisor::perform(service& s, const supervision::transition_result& r) {
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

inline void supervisor::do_spawn(service& s, std::optional<supervision::event>& outcome) {
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

inline std::string supervisor::describe_exit(const service& s) const {
    if (!s.last_exit) return "ended";
    if (!s.last_exit->known())
        return s.adopted ? "ended (status unknown: started by an earlier supervisor)"
                         : s.last_exit->to_string();
    return s.last_exit->to_string();
}

inline void supervisor::log_reason(service& s, const supervision::log_message& m,
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

inline void supervisor::handle_exit(service& s) {
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

inline void supervisor::reap_orphans() noexcept {
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

// ---- the loop --------------------------------------------------------------------------------

inline bool supervisor::process_due() {
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

inline void supervisor::advance_start_order() {
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

inline bool supervisor::advance_shutdown() {
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

inline void supervisor::sweep_removed() {
    sweep_waiting_ = false;
    if (removing_ == 0) return;
    for (auto it = services_.begin(); it != services_.end();) {
        service& s = *it->second;
        if (!s.removing || !s.machine.quiescent() || s.in_due_list) {
            ++it;
            continue;
        }
        if (s.ready.in_flight) ctx_->cancel(&s.ready); // the notify socket's receive
        if (s.out.in_flight) ctx_->cancel(&s.out);
        if (s.err.in_flight) ctx_->cancel(&s.err);
        if (s.timer.in_flight) cancel_timer(s);
        if (s.ready.in_flight || s.timer.in_flight || s.watch.active() || s.out.in_flight ||
            s.err.in_flight) {
            sweep_waiting_ = true; // their completions bring run() back here
            ++it;
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
        it = services_.erase(it);
    }
}

inline bool supervisor::all_down() const noexcept {
    return busy_ == 0 && due_head_ == nullptr; // the due list: services with events to feed
}

inline void supervisor::shutdown(bool keep_table) {
    if (shutting_down_) return;
    shutting_down_ = true;
    keep_table_ = keep_table;
    for (auto& [name, s] : services_) set_pending_start(*s, false);
    wake();
}

inline void supervisor::detach() noexcept {
    detaching_ = true;
    keep_table_ = true;
    wake();
}

inline task<void> supervisor::run() {
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
            co_await yield_awaiter{this}; // the rest of the burst after the loop's other work
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
        co_await park_awaiter{this};
    }
    // Everything is down (or left running by detach): let go of the ring.
    draining_ = true; // before the cancels: nothing may be re-armed from here on
    cancel_everything();
    while (active_ops_ != 0 || kick_->pending) {
        due_head_ = due_tail_ = nullptr;
        for (auto& [name, s] : services_) s->in_due_list = false;
        co_await park_awaiter{this};
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
