// SPDX-License-Identifier: MIT
// ringd-supervise/control.hpp — the control socket (keepalive/spawndaemon's registration mode):
// the requests, their parsing and answers, the server with its peer-credential check, and the
// `ctl` client.
//
// Wire format: the client sends the words after `ctl --control SOCKET` each followed by '\0',
// then shuts down its sending side. The answer is one line with the exit status (ctl_exit: "0",
// "1", "3", "4"), then the text to print (on stdout for 0 and 3, stderr otherwise). Only root and
// the supervisor's own uid may ask (SO_PEERCRED); the socket is mode 0666 so that others get that
// answer in words rather than a bare EACCES.
#pragma once

#include "config.hpp"

#include <ringd/absolute_path.hpp>
#include <ringd/accept_connections.hpp>
#include <ringd/cli.hpp>
#include <ringd/deadline.hpp>
#include <ringd/duration_text.hpp>
#include <ringd/io_context.hpp>
#include <ringd/log.hpp>
#include <ringd/net.hpp>
#include <ringd/ops.hpp>
#include <ringd/process.hpp>
#include <ringd/recv_stream.hpp>
#include <ringd/scope.hpp>
#include <ringd/supervisor.hpp>
#include <ringd/task.hpp>
#include <ringd/timer.hpp>

#include <nlohmann/json.hpp>

#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <functional>
#include <stdexcept>
#include <string>
#include <vector>

namespace supervise {

// What a request can touch.
struct control_context {
    ringd::supervisor& sup;
    ringd::logger& log;
    const config& defaults;         // policy defaults for registered services
    std::function<void()> shutdown; // what `shutdown` does (stop all, remove the table, exit)
};

// The client's exit statuses. `status NAME` follows systemctl (LSB's init-script codes): 0 when
// the service has a process (starting, running or stopping), 3 when it has none (stopped, in
// backoff, failed: still printed on stdout), 4 when there is no such service.
namespace ctl_exit {
inline constexpr int ok = 0;
inline constexpr int error = 1; // the reason on stderr
inline constexpr int not_running = 3;
inline constexpr int no_such_service = 4;
} // namespace ctl_exit

struct answer {
    int status = 0;       // the client's exit status (ctl_exit)
    std::string text;     // printed by the client
    bool durable = false; // sent once the table holds the change (supervisor::table_durable)
};

inline constexpr std::string_view ctl_usage =
    "usage: ringd-supervise ctl [--control SOCKET] COMMAND\n"
    "commands:\n"
    "  register NAME [OPTIONS] -- CMD [ARGS...]   supervise CMD as NAME (keepalive/spawndaemon)\n"
    "  unregister NAME                            stop NAME and forget it; its log is deleted\n"
    "  list [--json]                              every service, in start order\n"
    "  status NAME [--json]                       one service in detail; exit 0 when it has\n"
    "                                             a process, 3 when not (stopped, backoff,\n"
    "                                             failed), 4 when there is no such service\n"
    "  start NAME | stop NAME | restart NAME      change what is wanted\n"
    "  shutdown                                   stop everything, remove the table, exit\n"
    "register options:\n"
    "  --user U --group G --cwd DIR --env KEY=VALUE (repeatable) --priority N\n"
    "  --stop-sequence NN (init.d's K<nn>: stop before services without one, ascending NN)\n"
    "  --restart always|on-failure|never --restart-delay S --backoff FACTOR\n"
    "  --max-restart-delay S --stable-after S --start-limit-burst N --start-limit-interval S\n"
    "  --stop-signal SIG --stop-timeout S\n"
    "  --no-restart-exit CODES|none (exit statuses that mean failed, not restarted; default\n"
    "    no_restart_exit_codes of the config: 64,77,78)\n"
    "  --notify (sd_notify READY=1 on $NOTIFY_SOCKET) | --notification-fd N (s6: a line on fd N)\n"
    "  --ready-timeout S (default 60 with --notify or --notification-fd)\n"
    "  --listen ADDR (repeatable: 127.0.0.1:8080, [::1]:80, /run/x.sock; bound once by the\n"
    "    supervisor and passed to every start as LISTEN_FDS: a restart refuses no connection)\n";

// Parses `register NAME [OPTIONS] -- CMD [ARGS...]` (words[0] is "register").
[[nodiscard]] ringd::expected<ringd::service_spec, std::string>
parse_register(const std::vector<std::string>& words, const config& defaults);
// Carries out one request.
[[nodiscard]] answer handle_request(const std::vector<std::string>& words, control_context& c);
// "NAME STATE PID ..." lines, or a JSON array.
[[nodiscard]] std::string format_list(const std::vector<ringd::service_status>& services,
                                      bool json);
[[nodiscard]] std::string format_status(const ringd::service_status& s, bool json);

// Binds the control socket `path` (a UNIX path or @name), mode 0666: anyone may connect, and
// SO_PEERCRED decides who is answered. An address in use is retried for 2 s (we hold the table's
// lock, so a socket that still answers is a just-killed predecessor's, whose listener the kernel
// releases asynchronously). Throws std::runtime_error ("--control: ...") or std::system_error.
[[nodiscard]] ringd::listener bind_control_socket(const std::string& path);

// Accepts control connections until cancelled. At most 16 at once (more are told to retry);
// each must send its request within 5 s.
ringd::task<void> control_server(ringd::io_context& ctx, const ringd::listener& l,
                                 control_context& c);

// The `ctl` client: sends `words`, prints the answer, returns the exit status.
[[nodiscard]] int run_client(const std::string& socket_path, std::vector<std::string> words);

// =============================================================================================
// Implementation

namespace detail {

inline ringd::expected<double, std::string> seconds_value(const std::string& option,
                                                          const std::string& text) {
    char* end = nullptr;
    const double v = std::strtod(text.c_str(), &end);
    if (text.empty() || *end != '\0' || !std::isfinite(v) || v < 0)
        return ringd::unexpected<std::string>(option + " '" + text + "': not a number of seconds");
    return v;
}

inline ringd::expected<long, std::string>
integer_value(const std::string& option, const std::string& text, long low, long high) {
    const auto v = ringd::cli::number<long>(text);
    if (!v || *v < low || *v > high)
        return ringd::unexpected<std::string>(option + " '" + text + "': not an integer in " +
                                              std::to_string(low) + ".." + std::to_string(high));
    return *v;
}

// "64,77,78" or "none".
inline ringd::expected<ringd::supervision::exit_code_set, std::string>
exit_codes_value(const std::string& option, const std::string& text) {
    ringd::supervision::exit_code_set codes;
    if (text == "none") return codes;
    for (std::size_t start = 0; start <= text.size();) {
        std::size_t comma = text.find(',', start);
        if (comma == std::string::npos) comma = text.size();
        auto code = integer_value(option, text.substr(start, comma - start), 0, 255);
        if (!code)
            return ringd::unexpected<std::string>(
                option + " '" + text + "': expected exit statuses in 0..255 (64,77,78) or none");
        codes.add(static_cast<int>(*code));
        start = comma + 1;
    }
    return codes;
}

// The file CMD names: itself if it has a '/', else the first executable in our PATH.
// The file a service's spawn would run (its own PATH, not ours) passes check_script, or why not.
inline ringd::expected<void, std::string> check_program(const ringd::service_spec& spec) {
    ringd::spawn_options o;
    o.argv = spec.argv;
    o.environment = spec.environment;
    auto program = ringd::resolve_program(o);
    if (!program) return ringd::unexpected<std::string>(program.error().message());
    return check_script(*program);
}

inline std::string state_name(ringd::supervision::state s) {
    return std::string(ringd::supervision::to_string(s));
}

} // namespace detail

inline ringd::expected<ringd::service_spec, std::string>
parse_register(const std::vector<std::string>& words, const config& defaults) {
    using ringd::unexpected;
    if (words.size() < 2 || words[1].starts_with("-"))
        return unexpected<std::string>(
            "register: missing NAME (register NAME [OPTIONS] -- CMD [ARGS...])");
    ringd::service_spec s;
    s.name = words[1];
    s.origin = "registered";
    s.policy = defaults.policy();
    if (auto ok = ringd::check_service_name(s.name); !ok)
        return unexpected<std::string>("register: " + ok.error());
    auto fail = [&](const std::string& why) {
        return unexpected<std::string>("register " + s.name + ": " + why);
    };
    bool ready_timeout_given = false;
    std::size_t i = 2;
    for (; i < words.size() && words[i] != "--"; ++i) {
        const std::string& opt = words[i];
        if (!opt.starts_with("--"))
            return fail("expected -- before the command, got '" + opt + "'");
        const bool is_flag = opt == "--notify";
        if (!is_flag && i + 1 >= words.size()) return fail("option " + opt + " needs a value");
        const std::string value = is_flag ? std::string() : words[i + 1];
        if (!is_flag) ++i;
        auto secs = [&](ringd::supervision::duration& out) -> ringd::expected<void, std::string> {
            auto v = detail::seconds_value(opt, value);
            if (!v) return fail(v.error());
            auto d = ringd::supervision::policy_duration(*v);
            if (!d) return fail(opt + " '" + value + "': " + std::string(duration_range));
            out = *d;
            return {};
        };
        ringd::expected<void, std::string> ok;
        if (opt == "--user") {
            s.user = value;
        } else if (opt == "--group") {
            s.group = value;
        } else if (opt == "--cwd") {
            if (value.empty() || value[0] != '/')
                return fail("--cwd '" + value + "': not an absolute path");
            s.cwd = value;
        } else if (opt == "--env") {
            if (value.find('=') == std::string::npos || value[0] == '=')
                return fail("--env '" + value + "': expected KEY=VALUE");
            s.environment.push_back(value);
        } else if (opt == "--restart") {
            auto p = ringd::parse_restart_policy(value);
            if (!p) return fail("--restart '" + value + "': expected always, on-failure or never");
            s.policy.restart = *p;
        } else if (opt == "--restart-delay") {
            ok = secs(s.policy.restart_delay);
        } else if (opt == "--max-restart-delay") {
            ok = secs(s.policy.max_restart_delay);
        } else if (opt == "--stable-after") {
            ok = secs(s.policy.stable_after);
        } else if (opt == "--start-limit-interval") {
            ok = secs(s.policy.start_limit_interval);
        } else if (opt == "--stop-timeout") {
            ok = secs(s.policy.stop_timeout);
        } else if (opt == "--ready-timeout") {
            ok = secs(s.policy.ready_timeout);
            ready_timeout_given = true;
        } else if (opt == "--backoff") {
            auto v = detail::seconds_value(opt, value);
            if (!v || *v < 1)
                return fail("--backoff '" + value + "': expected a factor of at least 1");
            s.policy.backoff_factor = *v;
        } else if (opt == "--start-limit-burst") {
            auto v =
                detail::integer_value(opt, value, 0, ringd::supervision::max_start_limit_burst);
            if (!v) return fail(v.error());
            s.policy.start_limit_burst = static_cast<unsigned>(*v);
        } else if (opt == "--priority") {
            auto v = detail::integer_value(opt, value, -1000000, 1000000);
            if (!v) return fail(v.error());
            s.priority = static_cast<int>(*v);
        } else if (opt == "--stop-sequence") {
            if (value.empty() || value.size() > 100 ||
                value.find_first_not_of("0123456789") != std::string::npos)
                return fail("--stop-sequence '" + value +
                            "': not a number of 1-100 digits (init.d's K<nn>: nn)");
            s.stop_sequence = value;
        } else if (opt == "--stop-signal") {
            auto sig = ringd::parse_signal(value);
            if (!sig) return fail("--stop-signal '" + value + "': not a signal name or number");
            s.policy.stop_signal = *sig;
        } else if (opt == "--no-restart-exit") {
            auto codes = detail::exit_codes_value(opt, value);
            if (!codes) return fail(codes.error());
            s.policy.no_restart_exit_codes = *codes;
        } else if (opt == "--listen") {
            if (auto a = ringd::socket_address::parse(value); !a)
                return fail("--listen '" + value + "': " + a.error());
            s.listen.push_back(value);
        } else if (opt == "--notify") {
            s.readiness = ringd::readiness_protocol::notify_socket;
        } else if (opt == "--notification-fd") {
            auto v = detail::integer_value(opt, value, 3, 63);
            if (!v) return fail(v.error());
            s.readiness = ringd::readiness_protocol::notification_fd;
            s.notification_fd = static_cast<int>(*v);
        } else {
            return fail("unknown option '" + opt + "'");
        }
        if (!ok) return unexpected<std::string>(ok.error());
    }
    if (i >= words.size()) return fail("expected -- before the command");
    s.argv.assign(words.begin() + static_cast<std::ptrdiff_t>(i) + 1, words.end());
    if (s.argv.empty() || s.argv[0].empty()) return fail("no command after --");
    if (s.readiness != ringd::readiness_protocol::none) {
        s.policy.needs_readiness = true;
        if (!ready_timeout_given) s.policy.ready_timeout = std::chrono::seconds(60);
    }
    return s;
}

namespace detail {

// JSON text that is valid UTF-8 whatever the strings hold (an argv, a STATUS=, a path): an
// invalid byte becomes U+FFFD instead of an exception.
inline std::string dump_json(const nlohmann::json& j, int indent = -1) {
    return j.dump(indent, ' ', false, nlohmann::json::error_handler_t::replace);
}

inline std::string last_exit_text(const ringd::service_status& s) {
    return s.last_exit ? s.last_exit->to_string() : std::string();
}

// A failed service says how its last process ended: "failed (exited with status 78)", or in a
// list's column "failed:78" (exit status) / "failed:SIGSEGV".
inline std::string state_text(const ringd::service_status& s, bool column = false) {
    std::string text = state_name(s.state);
    if (s.state != ringd::supervision::state::failed || !s.last_exit || !s.last_exit->known())
        return text;
    if (!column) return text + " (" + last_exit_text(s) + ")";
    if (s.last_exit->exited()) return text + ":" + std::to_string(s.last_exit->status);
    return text + ":" + ringd::signal_name(s.last_exit->status);
}

inline nlohmann::json status_json(const ringd::service_status& s) {
    nlohmann::json j;
    j["name"] = s.name;
    j["state"] = state_name(s.state);
    j["wanted"] = s.wanted_up ? "up" : "down";
    j["pid"] = s.pid;
    j["in_state_s"] = s.in_state.count();
    j["restarts"] = s.restarts;
    j["last_exit"] = last_exit_text(s);
    if (s.last_exit && s.last_exit->exited()) j["exit_status"] = s.last_exit->status;
    j["last_error"] = s.last_error;
    j["status"] = s.status_text;
    j["log"] = s.log_path;
    j["origin"] = s.origin;
    j["priority"] = s.priority;
    j["stop_sequence"] = s.stop_sequence;
    j["readiness"] = std::string(ringd::to_string(s.readiness));
    j["argv"] = s.argv;
    j["adopted"] = s.adopted;
    j["listening"] = s.listening;
    return j;
}

} // namespace detail

inline std::string format_list(const std::vector<ringd::service_status>& services, bool json) {
    if (json) {
        nlohmann::json out = nlohmann::json::array();
        for (const auto& s : services) out.push_back(detail::status_json(s));
        return detail::dump_json(out, 2) + "\n";
    }
    std::string out;
    char line[512];
    std::snprintf(line, sizeof line, "%-24s %-10s %8s %9s %8s  %s\n", "NAME", "STATE", "PID",
                  "SINCE", "RESTARTS", "ORIGIN");
    out += line;
    for (const auto& s : services) {
        std::snprintf(line, sizeof line, "%-24s %-10s %8s %9s %8u  %s\n", s.name.c_str(),
                      detail::state_text(s, true).c_str(),
                      s.pid != 0 ? std::to_string(s.pid).c_str() : "-",
                      ringd::duration_text(s.in_state).c_str(), s.restarts, s.origin.c_str());
        out += line;
    }
    return out;
}

inline std::string format_status(const ringd::service_status& s, bool json) {
    std::string command;
    for (const auto& a : s.argv) command += (command.empty() ? "" : " ") + a;
    const std::string last_exit = detail::last_exit_text(s);
    if (json) return detail::dump_json(detail::status_json(s));
    std::string out;
    auto row = [&](const char* key, const std::string& value) {
        if (!value.empty()) out += std::string(key) + ": " + value + "\n";
    };
    row("name", s.name);
    row("state", detail::state_text(s) + " for " + ringd::duration_text(s.in_state) +
                     (s.wanted_up ? "" : " (wanted down)"));
    row("pid",
        s.pid != 0 ? std::to_string(s.pid) + (s.adopted ? " (adopted)" : "") : std::string());
    row("restarts", std::to_string(s.restarts));
    row("last exit", last_exit);
    row("last error", s.last_error);
    row("status", s.status_text);
    row("command", command);
    row("log", s.log_path);
    row("origin", s.origin);
    row("stop sequence", s.stop_sequence.empty() ? "" : "K" + s.stop_sequence);
    row("readiness", std::string(ringd::to_string(s.readiness)));
    std::string listening;
    for (const std::string& a : s.listening) listening += (listening.empty() ? "" : " ") + a;
    row("listening", listening);
    return out;
}

namespace detail {
inline answer handle_request_or_throw(const std::vector<std::string>& words, control_context& c);
} // namespace detail

inline answer handle_request(const std::vector<std::string>& words, control_context& c) {
    // Whatever goes wrong in one request (out of memory, a formatting error) is that request's
    // answer: it never reaches the control server, whose end would end the supervisor.
    try {
        return detail::handle_request_or_throw(words, c);
    } catch (const std::exception& e) {
        c.log.logf(ringd::log_level::err, "control: %s: %s",
                   words.empty() ? "(empty request)" : words[0].c_str(), e.what());
        return {1, "internal error: " + std::string(e.what()) + "\n"};
    }
}

inline answer detail::handle_request_or_throw(const std::vector<std::string>& words,
                                              control_context& c) {
    auto error = [](const std::string& text) { return answer{1, text + "\n"}; };
    if (words.empty()) return error("no command\n" + std::string(ctl_usage));
    const std::string& cmd = words[0];
    auto one_name = [&]() -> ringd::expected<std::string, std::string> {
        if (words.size() != 2) return ringd::unexpected<std::string>(cmd + ": expected one NAME");
        return words[1];
    };
    if (cmd == "register") {
        if (c.sup.shutting_down()) return error("register: the supervisor is shutting down");
        auto spec = parse_register(words, c.defaults);
        if (!spec) return error(spec.error());
        if (auto ok = detail::check_program(*spec); !ok) {
            c.log.logf(ringd::log_level::err, "register %s: refused %s", spec->name.c_str(),
                       ok.error().c_str());
            return error("register " + spec->name + ": refused " + ok.error());
        }
        const std::string name = spec->name;
        const std::string program = spec->argv[0];
        if (auto added = c.sup.add(std::move(*spec)); !added) {
            std::string why = added.error(); // "add NAME: ..." in the supervisor's words
            if (why.starts_with("add ")) why.replace(0, 4, "register ");
            return error(why);
        }
        c.log.logf(ringd::log_level::notice, "register %s: %s", name.c_str(), program.c_str());
        return {0, "registered " + name + "\n", true};
    }
    if (cmd == "unregister") {
        auto name = one_name();
        if (!name) return error(name.error());
        const ringd::service_spec* spec = c.sup.find(*name);
        if (spec == nullptr) return error("unregister " + *name + ": no such service");
        if (spec->origin.starts_with(directory_origin_prefix))
            return error("unregister " + *name + ": it comes from " + spec->origin +
                         "; delete its file there and send SIGHUP");
        auto removed = c.sup.remove(*name);
        if (!removed) return error(removed.error());
        c.log.logf(ringd::log_level::notice, "unregister %s: %s", name->c_str(), removed->c_str());
        return {0, "unregistered " + *name + ": " + *removed + "\n", true};
    }
    if (cmd == "list") {
        const bool json = words.size() == 2 && words[1] == "--json";
        if (words.size() > 2 || (words.size() == 2 && !json))
            return error("list: expected nothing or --json");
        return {0, format_list(c.sup.list(), json)};
    }
    if (cmd == "status") {
        const bool json = words.size() == 3 && words[2] == "--json";
        if (words.size() < 2 || words.size() > 3 || (words.size() == 3 && !json))
            return error("status: expected NAME [--json]");
        auto st = c.sup.status(words[1]);
        if (!st) return {ctl_exit::no_such_service, "status " + words[1] + ": no such service\n"};
        return {st->pid != 0 ? ctl_exit::ok : ctl_exit::not_running,
                format_status(*st, json) + (json ? "\n" : "")};
    }
    if (cmd == "start" || cmd == "stop" || cmd == "restart") {
        auto name = one_name();
        if (!name) return error(name.error());
        const ringd::service_spec* spec = c.sup.find(*name);
        if (spec == nullptr) return error(cmd + " " + *name + ": no such service");
        if (cmd != "stop") {
            // The script may have changed since it was accepted: check it again.
            if (auto ok = detail::check_program(*spec); !ok)
                return error(cmd + " " + *name + ": refused " + ok.error());
        }
        auto done = cmd == "start"  ? c.sup.start(*name)
                    : cmd == "stop" ? c.sup.stop(*name)
                                    : c.sup.restart(*name);
        if (!done) return error(done.error());
        c.log.logf(ringd::log_level::notice, "%s %s: requested", cmd.c_str(), name->c_str());
        return {0, cmd + " " + *name + ": ok\n", true};
    }
    if (cmd == "shutdown") {
        if (words.size() != 1) return error("shutdown: takes no arguments");
        c.log.logf(ringd::log_level::notice, "shutdown: requested over the control socket");
        c.shutdown();
        return {0, "shutting down\n"};
    }
    return error("unknown command '" + cmd + "'\n" + std::string(ctl_usage));
}

namespace detail {

// Reads the request (words, each ending in '\0') until the client shuts down its side, from the
// control server's shared pool: a client that connects and says nothing holds no buffer.
inline ringd::task<void> read_request(ringd::buffer_ring& pool, const ringd::unique_fd& fd,
                                      std::string& request, std::string& fault) {
    ringd::recv_stream in(pool, fd);
    for (;;) {
        auto chunk = co_await in.next();
        if (!chunk) {
            fault = ringd::is_cancelled(chunk.error()) ? "request not complete within 5 s"
                                                       : chunk.error().message();
            co_return;
        }
        if (chunk->empty()) co_return;
        request.append(chunk->text());
        if (request.size() > 65536) {
            fault = "request longer than 64 KiB";
            co_return;
        }
    }
}

inline ringd::task<void> send_text(ringd::io_context& ctx, const ringd::unique_fd& fd,
                                   std::string text) {
    (void)co_await ringd::async_send_all(ctx, fd, std::as_bytes(std::span(text)));
}

inline ringd::task<void> serve_connection(ringd::io_context& ctx, ringd::buffer_ring& pool,
                                          ringd::unique_fd fd, control_context& c) {
    const auto peer = ringd::peer_credentials(fd);
    if (!peer) co_return;
    if (peer->uid != 0 && peer->uid != ::geteuid()) {
        c.log.logf(ringd::log_level::warning,
                   "control: refused a request from uid %u (pid %d): only root and uid %u may ask",
                   peer->uid, peer->pid, ::geteuid());
        co_await send_text(ctx, fd,
                           "1\npermission denied: uid " + std::to_string(peer->uid) +
                               " is neither root nor the supervisor's user (uid " +
                               std::to_string(::geteuid()) + ")\n");
        co_return;
    }
    std::string request, fault;
    {
        ringd::scope reading;
        reading.spawn(read_request(pool, fd, request, fault));
        (void)co_await ringd::join_within(ctx, reading, std::chrono::seconds(5));
    }
    answer a;
    if (!fault.empty()) {
        a = {1, "control request: " + fault + "\n"};
    } else {
        std::vector<std::string> words;
        for (std::size_t start = 0; start < request.size();) {
            std::size_t end = request.find('\0', start);
            if (end == std::string::npos) end = request.size();
            words.push_back(request.substr(start, end - start));
            start = end + 1;
        }
        a = handle_request(words, c);
    }
    if (a.durable) co_await c.sup.table_durable(); // a crash from here on keeps the change
    co_await send_text(ctx, fd, std::to_string(a.status) + "\n" + a.text);
}

} // namespace detail

inline ringd::listener bind_control_socket(const std::string& path) {
    auto address = ringd::socket_address::parse(path);
    if (!address) throw std::runtime_error("--control: " + address.error());
    ringd::listen_options lo;
    lo.unix_mode = 0666;
    lo.retry_address_in_use = std::chrono::seconds(2);
    return ringd::listener::bind(*address, lo);
}

inline ringd::task<void> control_server(ringd::io_context& ctx, const ringd::listener& l,
                                        control_context& c) {
    ringd::buffer_ring pool(ctx, {.count = 16, .size = 4096}); // shared by every request
    ringd::scope connections;
    {
        ringd::accept_stream stream(ctx, l);
        auto serve = [&](ringd::unique_fd fd) {
            return detail::serve_connection(ctx, pool, std::move(fd), c);
        };
        auto refuse_busy = [](ringd::unique_fd fd) {
            static constexpr char busy[] =
                "1\nbusy: too many control requests at once; try again\n";
            [[maybe_unused]] ssize_t n =
                ::send(fd.get(), busy, sizeof busy - 1, MSG_NOSIGNAL | MSG_DONTWAIT);
        };
        auto ended =
            co_await ringd::accept_connections(stream, connections, 16, serve, refuse_busy);
        if (!ended)
            c.log.logf(ringd::log_level::err, "control: accept on %s: %s",
                       l.address().to_string().c_str(), ended.error().message().c_str());
    }
    connections.request_stop();
    co_await connections.join();
}

inline int run_client(const std::string& socket_path, std::vector<std::string> words) {
    // A command's path is the client's: make it absolute before the supervisor (cwd /) reads
    // it. A bare name stays one (it is looked up in PATH).
    if (!words.empty() && words[0] == "register") {
        const auto dashes = std::find(words.begin() + 1, words.end(), "--");
        if (dashes != words.end() && dashes + 1 != words.end() &&
            dashes[1].find('/') != std::string::npos)
            dashes[1] = ringd::absolute_path(dashes[1]);
    }
    auto address = ringd::socket_address::parse(socket_path);
    if (!address) {
        std::fprintf(stderr, "ringd-supervise: ctl: %s\n", address.error().c_str());
        return 1;
    }
    ringd::unique_fd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
    if (!fd || ::connect(fd.get(), address->sockaddr_ptr(), address->size()) != 0) {
        std::fprintf(stderr, "ringd-supervise: connect %s: %s (is the supervisor running?)\n",
                     socket_path.c_str(), std::strerror(errno));
        return 1;
    }
    std::string request;
    for (const auto& w : words) {
        request += w;
        request += '\0';
    }
    for (std::size_t sent = 0; sent < request.size();) {
        const ssize_t n =
            ::send(fd.get(), request.data() + sent, request.size() - sent, MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0 && (errno == EPIPE || errno == ECONNRESET)) break; // it answered early: read it
        if (n < 0) {
            std::fprintf(stderr, "ringd-supervise: send to %s: %s\n", socket_path.c_str(),
                         std::strerror(errno));
            return 1;
        }
        sent += static_cast<std::size_t>(n);
    }
    ::shutdown(fd.get(), SHUT_WR);
    std::string reply;
    char buf[4096];
    for (;;) {
        const ssize_t n = ::recv(fd.get(), buf, sizeof buf, 0);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) break;
        reply.append(buf, static_cast<std::size_t>(n));
    }
    const auto nl = reply.find('\n');
    int status = 1;
    if (nl == std::string::npos ||
        std::from_chars(reply.data(), reply.data() + nl, status).ec != std::errc()) {
        std::fprintf(stderr,
                     "ringd-supervise: %s: no answer (the supervisor closed the connection)\n",
                     socket_path.c_str());
        return 1;
    }
    const std::string text = reply.substr(nl + 1);
    if (status == ctl_exit::ok || status == ctl_exit::not_running) { // an answer, not an error
        std::fputs(text.c_str(), stdout);
    } else {
        // One "ringd-supervise: " per line of the reason, as every other message.
        std::size_t start = 0;
        while (start < text.size()) {
            std::size_t end = text.find('\n', start);
            if (end == std::string::npos) end = text.size();
            const std::string line = text.substr(start, end - start);
            if (line.empty()) {
                // nothing to print
            } else if (line.starts_with("usage:") || line.starts_with("  ") ||
                       line.ends_with(":")) {
                std::fprintf(stderr, "%s\n", line.c_str());
            } else {
                std::fprintf(stderr, "ringd-supervise: %s\n", line.c_str());
            }
            start = end + 1;
        }
    }
    return status;
}

} // namespace supervise
