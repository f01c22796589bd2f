// SPDX-License-Identifier: MIT
// ringd/detail/supervisor_operator.hpp — the supervisor's operator API: add (with the
// adoption of a process an earlier supervisor left), remove, start, stop, restart, replace,
// signals to services, and the status of each; the lookups behind them, the notify socket a
// service gets when it is added (named after the table so a successor finds it), and the
// bookkeeping of a service waiting for its turn in the start order.
#pragma once

#include <ringd/detail/supervisor_service.hpp>
#include <ringd/start_order.hpp>

#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace ringd {

namespace detail {

// `path` as std::filesystem::absolute(path).lexically_normal() writes it: relative to the working
// directory made absolute, then "." elements and "name/.." pairs removed, runs of '/' made one, a
// trailing '/' kept (or left by a removed last element). `path` itself without a working directory.
inline std::string supervisor_absolute_path(const std::string& path) {
    std::string full;
    if (!path.empty() && path[0] == '/') {
        full = path;
    } else {
        std::unique_ptr<char, decltype(&std::free)> cwd(::getcwd(nullptr, 0), &std::free);
        if (!cwd) return path;
        full = cwd.get();
        if (full.empty() || full.back() != '/') full += '/';
        full += path;
    }
    std::vector<std::string_view> names;
    bool trailing = false; // the last element was empty, "." or ".."
    std::string_view rest(full);
    rest.remove_prefix(1); // the root
    for (;;) {
        const std::size_t slash = rest.find('/');
        const std::string_view name = rest.substr(0, slash);
        trailing = name.empty() || name == "." || name == "..";
        if (name == "..") {
            if (!names.empty()) names.pop_back();
        } else if (!name.empty() && name != ".") {
            names.push_back(name);
        }
        if (slash == std::string_view::npos) break;
        rest.remove_prefix(slash + 1);
    }
    std::string out = "/";
    for (std::size_t i = 0; i < names.size(); ++i) {
        if (i > 0) out += '/';
        out += names[i];
    }
    if (trailing && !names.empty()) out += '/';
    return out;
}

// The middle part of the notify sockets' names: a hash of the table's absolute path (stable
// across restarts on that table), or "pid<N>" without a table.
inline std::string supervisor_notify_scope(const supervisor_options& options) {
    if (options.table_path.empty()) return "pid" + std::to_string(::getpid());
    const std::string path = supervisor_absolute_path(options.table_path);
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

} // namespace detail

// ---- services --------------------------------------------------------------------------------

inline supervisor::impl::service* supervisor::impl::lookup(std::string_view name) const noexcept {
    auto it = position(name);
    return it == services_.end() || it->first != name ? nullptr : it->second.get();
}

inline const service_spec* supervisor::impl::find(std::string_view name) const {
    const service* s = lookup(name);
    return s != nullptr ? &s->spec : nullptr;
}

inline void supervisor::impl::open_notify_socket(service& s) {
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

inline expected<void, std::string> supervisor::impl::add(service_spec spec,
                                                         const table_entry* previous) {
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
    services_.emplace(position(s.spec.name), s.spec.name, std::move(owned));
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

inline void supervisor::impl::set_pending_start(service& s, bool pending) noexcept {
    if (s.pending_start == pending) return;
    s.pending_start = pending;
    if (pending)
        ++pending_starts_;
    else
        --pending_starts_;
}

inline expected<supervisor::impl::service*, std::string>
supervisor::impl::operand(std::string_view verb, std::string_view name, bool brings_up) const {
    service* s = lookup(name);
    const auto fail = [&](const char* why) {
        return unexpected<std::string>(std::string(verb) + " " + std::string(name) + ": " + why);
    };
    if (s == nullptr) return fail("no such service");
    if (brings_up && s->removing) return fail("being removed");
    if (brings_up && shutting_down_) return fail("shutting down");
    return s;
}

inline void supervisor::impl::start_or_restart(service& s) {
    if (s.machine.current() == supervision::state::stopped)
        feed(s, supervision::start_requested{});
    else
        feed(s, supervision::restart_requested{});
}

inline void supervisor::impl::changed_by_operator() noexcept {
    mark_table_dirty();
    wake();
}

inline expected<std::string, std::string> supervisor::impl::remove(std::string_view name) {
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

inline expected<void, std::string> supervisor::impl::start(std::string_view name) {
    auto found = operand("start", name, true);
    if (!found) return unexpected<std::string>(found.error());
    service* s = *found;
    s->wanted_up = true;
    set_pending_start(*s, false);
    feed(*s, supervision::start_requested{});
    changed_by_operator();
    return {};
}

inline expected<void, std::string> supervisor::impl::stop(std::string_view name) {
    auto found = operand("stop", name, false);
    if (!found) return unexpected<std::string>(found.error());
    service* s = *found;
    s->wanted_up = false;
    set_pending_start(*s, false);
    feed(*s, supervision::stop_requested{});
    changed_by_operator();
    return {};
}

inline expected<void, std::string> supervisor::impl::restart(std::string_view name) {
    auto found = operand("restart", name, true);
    if (!found) return unexpected<std::string>(found.error());
    service* s = *found;
    s->wanted_up = true;
    set_pending_start(*s, false);
    start_or_restart(*s);
    changed_by_operator();
    return {};
}

inline expected<void, std::string> supervisor::impl::replace(service_spec spec, bool restart) {
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

inline void supervisor::impl::signal_all(int sig) {
    for (auto& [name, s] : services_)
        if (s->machine.has_process() && s->proc.valid()) (void)s->proc.signal_group(sig);
}

inline expected<void, std::string> supervisor::impl::signal(std::string_view name, int sig) {
    const service* s = lookup(name);
    const std::string what = "send " + signal_name(sig) + " to " + std::string(name);
    if (s == nullptr) return unexpected<std::string>(what + ": no such service");
    if (!s->machine.has_process() || !s->proc.valid())
        return unexpected<std::string>(what + ": not running");
    if (auto sent = s->proc.signal_group(sig); !sent)
        return unexpected<std::string>(what + ": " + sent.error().message());
    return {};
}

inline void supervisor::impl::leave_child(pid_t pid, bool leave) {
    std::erase(left_children_, pid);
    if (leave) {
        left_children_.push_back(pid);
    } else if (options_.reap_orphans) {
        orphans_due_ = true; // it may have hidden others from the last look
        wake();
    }
}

inline service_status supervisor::impl::status_of(const service& s) const {
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

inline std::vector<service_status> supervisor::impl::list() const {
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

inline std::optional<service_status> supervisor::impl::status(std::string_view name) const {
    const service* s = lookup(name);
    if (s == nullptr) return std::nullopt;
    return status_of(*s);
}

} // namespace ringd
