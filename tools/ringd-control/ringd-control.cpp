// SPDX-License-Identifier: MIT
// ringd-control — start, stop, check, reload or signal a ringd daemon through its PID file.
//   ringd-control --pid-file F [--guard-file G] [--reload-status R] [--timeout S] [--json]
//                 (--start -- CMD ARGS | --upgrade -- CMD ARGS | --stop | --check | --reload |
//                  --signal SIG)
// Exit: 0 done (check: running) · 100 already done (start: running; stop: not running) ·
// 101 not running · 102 error (one line on stderr; also: the file is locked by a process other
// than the one it names, so nothing is sent; or it is not a PID file) · 103 stale PID file found
// (and removed, or emptied where it cannot be removed) · 1 bad usage.
// --timeout S bounds the whole action, the wait for the guard lock included; without it: start
// and stop 90 s (stop then sends SIGKILL), reload 30 s, check and signal 10 s.
#include <ringd/cli.hpp>
#include <ringd/control.hpp>

#include <charconv>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <string_view>

namespace {

constexpr const char* help_text =
    "usage: ringd-control --pid-file F [--guard-file G] [--reload-status R] [--timeout S] "
    "[--json]\n"
    "                     (--start -- CMD ARGS | --upgrade -- CMD ARGS | --stop | --check |\n"
    "                      --reload | --signal SIG)\n"
    "\n"
    "  --start -- CMD ARGS  run CMD (a daemon that detaches when ready); returns when it is ready\n"
    "  --upgrade -- CMD ARGS  run CMD on the running daemon's listening sockets (LISTEN_FDS);\n"
    "                       once it is ready the old one drains and exits, and the new one\n"
    "                       takes the PID file over; no connection is refused. A new one that\n"
    "                       fails or is not ready in time is stopped: the old one serves on\n"
    "                       (exit 102). Exit 101: not running\n"
    "  --stop               SIGTERM, then wait until the daemon has exited; SIGKILL after the "
    "timeout\n"
    "  --check              print the daemon's PID if it runs\n"
    "  --reload             SIGHUP, then wait for the daemon's acknowledgement\n"
    "  --signal SIG         send SIG (HUP, SIGUSR1, 10, ...)\n"
    "  --timeout S          bounds the whole action, the wait for the guard lock included\n"
    "                       (default: start and stop 90, reload 30, check and signal 10)\n"
    "  --guard-file G       lock held during the action (default: F with .pid replaced by .lock)\n"
    "  --reload-status R    the daemon's reload acknowledgements (default: F with .pid → .reload)\n"
    "  --json               one JSON object on stdout\n"
    "  -h, --help           this text; --version: the version\n"
    "\n"
    "exit: 0 done (check: running), 100 already done (start: running; stop: not running),\n"
    "      101 not running, 102 error (also: locked by a process other than the one the file\n"
    "      names, nothing sent; not a PID file, left unchanged), 103 stale PID file found and\n"
    "      removed (or emptied where it cannot be removed), 1 bad usage\n"
    "Nothing is signalled unless the process the PID file names is the one holding its lock.\n";

std::string json_string(std::string_view s) {
    std::string out = "\"";
    for (unsigned char c : s) {
        if (c == '"' || c == '\\') {
            out += '\\';
            out += static_cast<char>(c);
        } else if (c < 0x20) {
            char buf[8];
            std::snprintf(buf, sizeof buf, "\\u%04x", c);
            out += buf;
        } else {
            out += static_cast<char>(c);
        }
    }
    return out + "\"";
}

} // namespace

int main(int argc, char** argv) {
    const ringd::cli::program prog{.name = "ringd-control",
                                   .help = help_text,
                                   .usage_exit = ringd::control_exit::usage,
                                   .command = true};
    ringd::control_params p;
    bool json = false;
    int actions = 0;
    auto action = [&](ringd::control_action a) {
        return [&p, &actions, a] {
            p.action = a;
            ++actions;
            return std::string();
        };
    };
    using ringd::cli::flag, ringd::cli::required, ringd::cli::value;
    auto args = ringd::cli::parse(
        prog, argc, argv,
        {required(value("pid-file", 0, "F", p.pid_file)), value("guard-file", 0, "G", p.guard_file),
         value("reload-status", 0, "R", p.reload_status),
         value("timeout", 0, "S",
               [&](const std::string& v) {
                   auto s = ringd::cli::number<double>(v);
                   if (!s || !(*s >= 0) || *s > 1e7) return std::string("not a number of seconds");
                   p.timeout = std::chrono::milliseconds(static_cast<long long>(*s * 1000));
                   return std::string();
               }),
         value("signal", 0, "SIG",
               [&](const std::string& v) {
                   auto signo = ringd::parse_signal(v);
                   if (!signo) return std::string("not a signal");
                   p.signal = *signo;
                   return action(ringd::control_action::signal)();
               }),
         flag("start", 0, action(ringd::control_action::start)),
         flag("upgrade", 0, action(ringd::control_action::upgrade)),
         flag("stop", 0, action(ringd::control_action::stop)),
         flag("check", 0, action(ringd::control_action::check)),
         flag("reload", 0, action(ringd::control_action::reload)), flag("json", json)});
    if (!args) return args.error();
    p.command = args->command;
    if (actions != 1)
        return ringd::cli::usage_error(
            prog,
            "exactly one of --start, --upgrade, --stop, --check, --reload, --signal is required");
    const bool takes_command =
        p.action == ringd::control_action::start || p.action == ringd::control_action::upgrade;
    if (takes_command && p.command.empty())
        return ringd::cli::usage_error(prog, std::string("--") + ringd::to_string(p.action) +
                                                 " needs the daemon's command after --");
    if (!takes_command && !p.command.empty())
        return ringd::cli::usage_error(prog, "only --start and --upgrade take a command");

    auto out = ringd::daemon_control(p);

    if (out.exit_code == ringd::control_exit::error) {
        // The daemon's own words first (all but the last line, which the summary repeats).
        std::string shown = out.daemon_output;
        while (!shown.empty() && shown.back() == '\n') shown.pop_back();
        if (auto nl = shown.rfind('\n'); nl != std::string::npos && !json)
            std::fprintf(stderr, "%s\n", shown.substr(0, nl).c_str());
        std::fprintf(stderr, "ringd-control: %s\n", out.message.c_str());
    } else if (!out.daemon_output.empty() && !json) {
        std::fputs(out.daemon_output.c_str(), stderr); // warnings the daemon printed while starting
    }
    if (json) {
        std::printf(
            "{\"action\":%s,\"exit_code\":%d,\"state\":%s,\"pid\":%d,\"message\":%s,"
            "\"killed\":%s,\"daemon_exit_code\":%d,\"daemon_output\":%s,"
            "\"reload_generation\":%llu,\"guard_acquired_ns\":%lld,\"guard_released_ns\":%lld}\n",
            json_string(ringd::to_string(p.action)).c_str(), out.exit_code,
            json_string(out.state).c_str(), static_cast<int>(out.pid),
            json_string(out.message).c_str(), out.killed ? "true" : "false", out.daemon_exit_code,
            json_string(out.daemon_output).c_str(),
            static_cast<unsigned long long>(out.reload_generation),
            static_cast<long long>(out.guard_acquired_ns),
            static_cast<long long>(out.guard_released_ns));
        return out.exit_code;
    }
    if (out.exit_code != ringd::control_exit::error && !out.message.empty())
        std::fprintf(stderr, "ringd-control: %s\n", out.message.c_str());
    if (out.exit_code == ringd::control_exit::done &&
        (p.action == ringd::control_action::check || takes_command))
        std::printf("%d\n", static_cast<int>(out.pid));
    return out.exit_code;
}
