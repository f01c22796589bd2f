// SPDX-License-Identifier: MIT
// ringd/service_spec.hpp — what a supervised service is: its spec (command, user, readiness,
// policy, start and stop order, held sockets) and the checks made before any spawn, the record a
// supervisor's persistent table keeps of it, and the status displays show. Values only: no ring,
// no process; ringd/supervisor.hpp runs services described this way.
#pragma once

#include <ringd/credentials.hpp>
#include <ringd/net.hpp>
#include <ringd/process.hpp>
#include <ringd/result.hpp>
#include <ringd/supervision_state.hpp>

#include <sys/types.h>
#include <unistd.h>

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace ringd {

// ---------------------------------------------------------------------------------------------
// What a service is

// How a service says it is ready (before that it is `starting`, not `running`).
enum class readiness_protocol : std::uint8_t {
    none,            // running as soon as it is spawned
    notify_socket,   // sd_notify: READY=1 on the datagram socket named in NOTIFY_SOCKET
    notification_fd, // s6: a line written to descriptor `notification_fd`
};
[[nodiscard]] constexpr std::string_view to_string(readiness_protocol r) noexcept;
[[nodiscard]] std::optional<readiness_protocol> parse_readiness(std::string_view text) noexcept;
// "always", "on-failure" (or "on_failure"), "never".
[[nodiscard]] std::optional<supervision::restart_policy>
parse_restart_policy(std::string_view text) noexcept;

struct service_spec {
    std::string name;              // unique: 1-100 of [A-Za-z0-9._@+-], not starting with '.'
    std::vector<std::string> argv; // the command: argv[0] is a path or a name in PATH
    std::vector<std::string> environment; // KEY=VALUE, over the supervisor's environment
    std::string cwd;                      // empty: /
    std::string user;                     // empty: the supervisor's user
    std::string group;                    // empty: the user's primary group
    supervision::service_policy policy;   // restart, backoff, start limit, stop, readiness timeout
    readiness_protocol readiness = readiness_protocol::none;
    int notification_fd = 3; // for notification_fd: the child's descriptor number
    int priority = 0;        // start order: lower first, then the S<nn> name order
    // Stop order, init.d's K<nn>: the number nn in decimal digits (any length, compared as a
    // number). Services with one stop first, by it; empty: none, stop in reverse start order.
    std::string stop_sequence;
    // Addresses the supervisor binds once and passes to every start of the service as
    // LISTEN_FDS (3, 4, ...; ringd::socket_address::parse syntax): while the service restarts,
    // after a crash or a kill -9 alike, the kernel's backlog holds new connections instead of
    // refusing them. At most 15.
    std::vector<std::string> listen;
    std::string origin;       // who declared it: "registered", a directory, ...
    std::int64_t version = 0; // the declarer's change marker (e.g. script mtime)
};

// "name 'a/b': ..." when the name cannot be a service's (it names files and sockets).
[[nodiscard]] expected<void, std::string> check_service_name(std::string_view name);
// Checks everything that can be checked before a spawn: name, command, user and group exist,
// readiness descriptor in 3..63, stop sequence digits only (at most 100). The error names the
// service and the fault.
[[nodiscard]] expected<void, std::string> validate(const service_spec& spec);

// One service as the persistent table records it.
struct table_entry {
    service_spec spec;
    bool wanted_up = true;        // stopped by an operator: false
    pid_t pid = 0;                // its process when the table was written (0: none)
    std::uint64_t start_time = 0; // that process's start time (/proc/<pid>/stat field 22)
    std::string log_path;         // that process's (or the last one's) log file
    // That process had reported readiness (or its service needs none). An adopted process that
    // had not stays `starting`, and its ready_timeout runs again from the adoption.
    bool ready = true;
};

// A service as status displays show it.
struct service_status {
    std::string name;
    supervision::state state = supervision::state::stopped;
    bool wanted_up = false;
    pid_t pid = 0;                      // 0: no process
    unsigned restarts = 0;              // since the last operator start
    std::chrono::seconds in_state{0};   // how long it has been in `state`
    std::optional<exit_info> last_exit; // how the last process ended
    std::string last_error;             // the last spawn failure, if any
    std::string status_text;            // the service's last sd_notify STATUS=
    std::string log_path;               // the current (or last) process's log file
    std::string origin;
    int priority = 0;
    std::string stop_sequence; // init.d's K<nn>: nn; empty: none
    readiness_protocol readiness = readiness_protocol::none;
    std::vector<std::string> argv;
    std::vector<std::string> listening; // the sockets held for it, as bound ("127.0.0.1:8080")
    bool adopted = false;               // its process was started by an earlier supervisor
};

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

// "5 s", "250 ms".
inline std::string supervisor_duration(supervision::duration d) {
    const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(d).count();
    if (ms % 1000 == 0) return std::to_string(ms / 1000) + " s";
    return std::to_string(ms) + " ms";
}

} // namespace detail

} // namespace ringd
