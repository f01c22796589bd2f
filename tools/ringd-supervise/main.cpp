// SPDX-License-Identifier: MIT
// ringd-supervise — keeps services running: cssd's directory mode and keepalive's registration
// mode, on pidfds and io_uring. See `ringd-supervise --help` and docs/supervision/.
#include "config.hpp"
#include "control.hpp"

#include <ringd/absolute_path.hpp>
#include <ringd/cli.hpp>
#include <ringd/container_init.hpp>
#include <ringd/daemon.hpp>
#include <ringd/io_context.hpp>
#include <ringd/log.hpp>
#include <ringd/net.hpp>
#include <ringd/scope.hpp>
#include <ringd/signals.hpp>
#include <ringd/supervisor.hpp>

#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

namespace {

constexpr const char* help_text =
    "usage: ringd-supervise [--config FILE] [--state FILE] [--log-dir DIR] [--control SOCKET]\n"
    "                       [--foreground] [-i] [--container] [--syslog-ident ID]\n"
    "                       [--syslog-facility FACILITY] [--log-level LEVEL] [-t SECONDS]\n"
    "       ringd-supervise --check-config [--config FILE] [--state FILE] [-i]\n"
    "       ringd-supervise --container [--kill-group] [--config FILE [--control SOCKET]\n"
    "                       [--state FILE] [--log-level LEVEL]] -- CMD ARGS\n"
    "       ringd-supervise ctl [--control SOCKET] COMMAND ...   (ringd-supervise ctl --help)\n"
    "\n"
    "Keeps services running and restarts them when they end.\n"
    "  --config FILE      TOML: directories = [\"/etc/ringd.d\"] (every executable there is a\n"
    "                     service; the first of a name wins; S<nn>x start by nn; a file\n"
    "                     K<nn>x is never started but makes S<mm>x stop first, by nn; a\n"
    "                     K file without its S file is skipped), restart_delay_s = 5,\n"
    "                     backoff_factor = 1, max_restart_delay_s = 60, start_limit_burst = 5,\n"
    "                     start_limit_interval_s = 10, stop_timeout_s = 10,\n"
    "                     spawn_retry_interval_s = 5, no_restart_exit_codes = [64, 77, 78]\n"
    "                     (a service exiting so is failed, not restarted), keep_logs = 5\n"
    "                     and keep_logs_bytes = 67108864 (earlier logs kept per service;\n"
    "                     the crashed one always), syslog_ident, syslog_facility.\n"
    "                     SIGHUP re-reads it and reconciles: a changed script is restarted,\n"
    "                     a new one started, a deleted one stopped; a K file added or\n"
    "                     removed changes the stop order only.\n"
    "  --state FILE       the persistent table (default /var/lib/ringd-supervise/table): a\n"
    "                     restarted supervisor resumes it and re-adopts running children\n"
    "  --log-dir DIR      each process's stdout/stderr: DIR/<name>.<pid> (kept after it ends)\n"
    "                     (default /var/log/ringd-supervise)\n"
    "  --control SOCKET   the control socket for `ctl` (default /run/ringd-supervise.sock)\n"
    "  --pid-file FILE    a flock()ed PID file, for ringd-control (--check, --stop, and\n"
    "                     --reload, which returns once the reload is done)\n"
    "  --foreground       do not detach; log to stderr as well as syslog. Under systemd\n"
    "                     (Type=notify) READY=1 is sent once the control socket listens.\n"
    "                     Without it, the command returns once the control socket listens\n"
    "                     (exit 0), or with the reason on stderr (exit 1)\n"
    "  -i                 start with an empty table (unused log files are deleted)\n"
    "  --check-config     start nothing: report every fault a start would meet, each with its\n"
    "                     file and line (the --config file, its directories and their\n"
    "                     scripts, the --state table unless -i); exit 0 when there is none,\n"
    "                     78 otherwise\n"
    "  --container        be the reaper of orphans (PR_SET_CHILD_SUBREAPER; implied as PID 1)\n"
    "                     and forward SIGHUP to every service; with --foreground (implied as\n"
    "                     PID 1) service output goes to ours, each line as `NAME | line`,\n"
    "                     instead of --log-dir. In every mode a child that is\n"
    "                     no service's (e.g. inherited across exec) is reaped when it ends\n"
    "  --container -- CMD ARGS   run CMD as a container's main process (as tini does): every\n"
    "                     catchable signal is forwarded to it (--kill-group: to its process\n"
    "                     group), orphans are reaped, its output passes through; exits with\n"
    "                     its code, 128+N if signal N killed it, 127/126 if it cannot run.\n"
    "                     With --config, its services run beside CMD (a table only with\n"
    "                     --state); their output goes to ours, each line as `NAME | line`;\n"
    "                     when CMD ends they are stopped in order; `ctl shutdown` sends\n"
    "                     SIGTERM to CMD\n"
    "  --syslog-ident ID, --syslog-facility F   (default ringd-supervise, daemon)\n"
    "  --log-level LEVEL  err, warning, notice (default) or info\n"
    "  -t SECONDS         retry a failed fork/exec after this long (keepalive -t; default 5,\n"
    "                     or spawn_retry_interval_s in the config)\n"
    "  -h, --help         this text (ctl --help: the ctl commands); --version: the version\n"
    "SIGTERM/SIGINT stop every service (those with a stop sequence first, by nn: a K<nn> file\n"
    "or `ctl register --stop-sequence nn`; then the rest in reverse start order), then exit 0\n"
    "(the table is kept). A process re-adopted before it reported readiness stays starting\n"
    "until it does, or until its ready timeout stops it.\n";

struct options {
    std::string config_path;
    std::string state = "/var/lib/ringd-supervise/table";
    std::string log_dir = "/var/log/ringd-supervise";
    std::string control = "/run/ringd-supervise.sock";
    std::string pid_file; // empty: none
    bool foreground = false;
    bool clean = false;
    bool container = false;
    bool check_only = false; // --check-config
    std::optional<std::string> syslog_ident;
    std::optional<int> syslog_facility;
    ringd::log_level level = ringd::log_level::notice;
    std::optional<double> spawn_retry_s; // -t
};

const ringd::cli::program prog{
    .name = "ringd-supervise", .help = help_text, .usage_exit = 1, .command = true};

// A config that cannot be read (not a usage error: the command line was right).
int config_error(const std::string& why) {
    std::fprintf(stderr, "ringd-supervise: %s\n", why.c_str());
    return 1;
}

// ---- the daemon's state, and the reconcile of directory services -----------------------------

struct daemon_state {
    options opts;
    supervise::config cfg;
    ringd::supervisor& sup;
    ringd::logger& log;
};

bool is_directory_service(const ringd::service_spec& s) {
    return s.origin.starts_with(supervise::directory_origin_prefix);
}

void log_scan(daemon_state& d, const supervise::scan_result& scan) {
    for (const auto& line : scan.refused) d.log.log(ringd::log_level::err, line);
    for (const auto& line : scan.skipped) d.log.log(ringd::log_level::info, line);
}

void add_or_log(daemon_state& d, ringd::service_spec spec, const ringd::table_entry* previous) {
    if (auto ok = d.sup.add(std::move(spec), previous); !ok)
        d.log.log(ringd::log_level::err, ok.error());
}

// At startup: the services of the table and of the directories, re-adopting what still runs.
void resume(daemon_state& d, const std::vector<ringd::table_entry>& table) {
    std::map<std::string, const ringd::table_entry*> previous;
    for (const auto& e : table) previous[e.spec.name] = &e;
    // Registered services first: they were accepted earlier and keep their names.
    for (const auto& e : table) {
        if (is_directory_service(e.spec)) continue;
        if (auto ok = supervise::detail::check_program(e.spec); !ok) {
            d.log.logf(ringd::log_level::err, "resume %s: refused %s; kept, but stopped",
                       e.spec.name.c_str(), ok.error().c_str());
            ringd::table_entry down = e;
            down.wanted_up = false;
            add_or_log(d, e.spec, &down);
            continue;
        }
        add_or_log(d, e.spec, &e);
    }
    const supervise::scan_result scan = supervise::scan_directories(d.cfg.directories);
    log_scan(d, scan);
    std::map<std::string, bool> found;
    for (const auto& script : scan.scripts) {
        found[script.name] = true;
        ringd::service_spec spec = supervise::spec_of(script, d.cfg);
        auto prev = previous.find(script.name);
        if (prev != previous.end() && !is_directory_service(prev->second->spec)) {
            d.log.logf(ringd::log_level::err,
                       "skip %s: the name %s is taken by a registered service", script.path.c_str(),
                       script.name.c_str());
            continue;
        }
        if (prev == previous.end()) {
            add_or_log(d, std::move(spec), nullptr);
            continue;
        }
        const bool changed = prev->second->spec.version != spec.version ||
                             prev->second->spec.argv != spec.argv ||
                             prev->second->spec.listen != spec.listen;
        add_or_log(d, spec, prev->second);
        auto st = d.sup.status(script.name);
        if (changed && st && st->adopted) {
            d.log.logf(ringd::log_level::notice,
                       "resume %s: %s changed while we were down; restarting it",
                       script.name.c_str(), script.path.c_str());
            (void)d.sup.replace(spec);
        }
    }
    // Directory services whose file went away while we were down: stop what still runs.
    for (const auto& e : table) {
        if (!is_directory_service(e.spec) || found.count(e.spec.name) != 0) continue;
        if (e.pid == 0) continue;
        add_or_log(d, e.spec, &e);
        if (d.sup.find(e.spec.name) != nullptr) {
            d.log.logf(ringd::log_level::notice, "resume %s: its file is gone; stopping it",
                       e.spec.name.c_str());
            (void)d.sup.remove(e.spec.name);
        }
    }
}

// SIGHUP: re-read the config and make the directory services match the directories.
ringd::expected<void, std::string> reconcile(daemon_state& d) {
    if (d.opts.config_path.empty()) {
        d.log.log(ringd::log_level::notice, "reload: no --config, nothing to re-read");
        return {};
    }
    auto fresh = supervise::load_config(d.opts.config_path);
    if (!fresh) {
        d.log.logf(ringd::log_level::err, "reload: %s; keeping the running set",
                   fresh.error().c_str());
        return ringd::unexpected<std::string>(fresh.error());
    }
    d.cfg = std::move(*fresh);
    if (d.opts.spawn_retry_s) d.cfg.spawn_retry_interval_s = *d.opts.spawn_retry_s;
    const supervise::scan_result scan = supervise::scan_directories(d.cfg.directories);
    log_scan(d, scan);
    std::map<std::string, const supervise::found_script*> wanted;
    for (const auto& s : scan.scripts) wanted[s.name] = &s;
    unsigned started = 0, restarted = 0, stopped = 0;
    for (const auto& st : d.sup.list()) {
        const ringd::service_spec* current = d.sup.find(st.name);
        if (current == nullptr || !is_directory_service(*current)) continue;
        auto it = wanted.find(st.name);
        if (it == wanted.end()) {
            d.log.logf(ringd::log_level::notice, "reload: %s is gone from %s; stopping it",
                       st.name.c_str(),
                       current->origin.c_str() + supervise::directory_origin_prefix.size());
            (void)d.sup.remove(st.name);
            ++stopped;
            continue;
        }
        ringd::service_spec spec = supervise::spec_of(*it->second, d.cfg);
        if (spec.version != current->version || spec.argv != current->argv ||
            spec.listen != current->listen) {
            d.log.logf(ringd::log_level::notice, "reload: %s changed; restarting it",
                       it->second->path.c_str());
            (void)d.sup.replace(std::move(spec));
            ++restarted;
        } else if (spec.policy != current->policy || spec.stop_sequence != current->stop_sequence) {
            // A new stop order (a K file added, removed or renumbered) applies without a restart.
            if (spec.stop_sequence != current->stop_sequence)
                d.log.logf(ringd::log_level::notice, "reload: %s now stops %s", st.name.c_str(),
                           spec.stop_sequence.empty() ? "in reverse start order"
                                                      : ("by " + it->second->kill_path).c_str());
            (void)d.sup.replace(std::move(spec), false);
        }
        wanted.erase(it);
    }
    for (const auto& [name, script] : wanted) {
        if (const ringd::service_spec* taken = d.sup.find(name)) {
            if (!is_directory_service(*taken))
                d.log.logf(ringd::log_level::err,
                           "skip %s: the name %s is taken by a registered service",
                           script->path.c_str(), name.c_str());
            continue; // a directory service still being removed: the next SIGHUP adds it
        }
        d.log.logf(ringd::log_level::notice, "reload: %s is new; starting it",
                   script->path.c_str());
        add_or_log(d, supervise::spec_of(*script, d.cfg), nullptr);
        ++started;
    }
    d.log.logf(ringd::log_level::notice, "reload: done (%u new, %u restarted, %u stopped)", started,
               restarted, stopped);
    return {};
}

// SIGHUP (daemon_run calls it): re-read the config, reconcile, and in container mode pass the
// signal on. A config that cannot be read is the reload's failure; the running set stays.
ringd::expected<void, std::string> reload(daemon_state& d) {
    auto outcome = reconcile(d);
    if (d.opts.container) d.sup.signal_all(SIGHUP);
    return outcome;
}

// SIGTERM/SIGINT (daemon_run's stop request): stop every service, keep the table.
ringd::task<void> stop_on_request(ringd::daemon_context& dc, daemon_state& d) {
    co_await dc.stopped();
    if (!dc.stop_requested() || d.sup.shutting_down()) co_return; // cancelled, or ctl shutdown
    d.log.log(ringd::log_level::notice, "stop: stopping every service (the table is kept)");
    d.sup.shutdown(true);
}

ringd::task<int> run_daemon(ringd::daemon_context& dc, daemon_state& d,
                            const ringd::listener& control) {
    supervise::control_context cc{d.sup, d.log, d.cfg, [&d] { d.sup.shutdown(false); }};
    ringd::scope aux;
    aux.spawn(stop_on_request(dc, d));
    aux.spawn(supervise::control_server(dc.io(), control, cc));
    co_await d.sup.run();
    aux.request_stop();
    co_await aux.join();
    d.log.log(ringd::log_level::notice, "exit: every service is down");
    co_return 0;
}

// The table of the previous supervisor, or none (-i: then what it names is only reported and
// its unused logs deleted). Throws when the table cannot be trusted.
std::vector<ringd::table_entry> previous_table(const options& opts, ringd::supervisor& sup,
                                               ringd::logger& log) {
    if (!opts.clean) {
        try {
            return sup.load_table();
        } catch (const std::exception& e) {
            throw std::runtime_error(std::string(e.what()) +
                                     "; fix it, or start with -i for an empty table");
        }
    }
    std::vector<std::string> old_names;
    try {
        for (const auto& e : sup.load_table()) {
            old_names.push_back(e.spec.name);
            if (e.pid > 0 && ringd::process::adopt(e.pid, e.start_time))
                log.logf(ringd::log_level::warning,
                         "clean start: pid %d (%s) from the old table still runs; not supervised",
                         e.pid, e.spec.name.c_str());
        }
    } catch (const std::exception& e) {
        log.logf(ringd::log_level::warning, "clean start: %s (discarded)", e.what());
    }
    sup.discard_table();
    sup.remove_unused_logs(old_names);
    return {};
}

// The daemon, in its final process (daemon_run has detached unless --foreground). A setup
// failure is printed on the starter's stderr and ends it with 1; the waiting parent exits with
// that code. ready() — after the table is resumed and the control socket listens — lets the
// parent exit 0.
ringd::task<int> serve(ringd::daemon_context& dc, options opts, supervise::config cfg) {
    ringd::logger log("ringd-supervise");
    log.use_stderr(opts.foreground);
    log.set_threshold(opts.level);
    log.use_syslog(opts.syslog_ident.value_or(cfg.syslog_ident),
                   opts.syslog_facility.value_or(cfg.syslog_facility));

    // Container mode: orphans come to us, and we reap them (PID 1 gets them anyway).
    if (::getpid() == 1) opts.container = true;
    std::optional<ringd::supervisor> sup;
    std::optional<ringd::listener> control;
    std::vector<ringd::table_entry> table;
    std::string failure;
    try {
        if (opts.container) {
            if (auto made = ringd::become_child_subreaper(); !made)
                throw std::runtime_error("prctl PR_SET_CHILD_SUBREAPER: " + made.error().message());
        }
        for (const std::string& dir : {opts.log_dir, opts.state.substr(0, opts.state.rfind('/'))}) {
            if (dir.empty()) continue;
            if (::mkdir(dir.c_str(), 0755) != 0 && errno != EEXIST)
                throw std::runtime_error("create directory " + dir + ": " + std::strerror(errno));
        }
        ::signal(SIGPIPE, SIG_IGN);
        ringd::supervisor_options so;
        so.log_dir = opts.log_dir;
        // A container's services write to its stdout/stderr (docker logs), not to files; a
        // --container supervisor that detaches has no stdout left to write to, and keeps files.
        so.prefix_output = opts.container && opts.foreground;
        so.table_path = opts.state;
        // Every child of ours is a service's or no one's (one inherited across execve, an orphan
        // re-parented to us): reap the latter in every mode, not only as a subreaper.
        so.reap_orphans = true;
        so.keep_logs = cfg.keep_logs; // read at start (a reload does not change them)
        so.keep_logs_bytes = cfg.keep_logs_bytes;
        sup.emplace(dc.io(), log, so);
        table = previous_table(opts, *sup, log);

        control.emplace(supervise::bind_control_socket(opts.control));
    } catch (const std::exception& e) {
        failure = e.what();
    }
    if (!failure.empty()) {
        std::fprintf(stderr, "ringd-supervise: %s\n", failure.c_str());
        co_return 1;
    }
    daemon_state d{opts, cfg, *sup, log};
    resume(d, table);
    log.logf(ringd::log_level::notice, "start: supervising %zu services; control socket %s%s",
             sup->size(), opts.control.c_str(), opts.container ? "; container mode" : "");
    dc.on_reload([&d] { return reload(d); });
    dc.ready();
    co_return co_await run_daemon(dc, d, *control);
}

int daemon_main(options opts) {
    supervise::config cfg;
    if (!opts.config_path.empty()) {
        auto loaded = supervise::load_config(opts.config_path);
        if (!loaded) return config_error(loaded.error());
        cfg = std::move(*loaded);
    }
    if (opts.spawn_retry_s) cfg.spawn_retry_interval_s = *opts.spawn_retry_s;
    ringd::daemon_params params;
    params.program = "ringd-supervise";
    params.pid_file = opts.pid_file;
    // PID 1 never detaches: its exit would end the PID namespace, and every service with it.
    if (::getpid() == 1) opts.foreground = true;
    params.flags.foreground = opts.foreground;
    // Services inherit the umask ringd-supervise was started with, as before daemon_run.
    params.umask = ::umask(022);
    ::umask(params.umask);
    return ringd::daemon_run(std::move(params), [&](ringd::daemon_context& dc) {
        return serve(dc, std::move(opts), std::move(cfg));
    });
}

// --check-config: report every fault a start would meet (supervise::check_configuration), one
// line each on stderr, and start nothing; exit 0 or 78 (EX_CONFIG).
int check_config(const options& opts) {
    const supervise::config_check c =
        supervise::check_configuration(opts.config_path, opts.clean ? "" : opts.state);
    for (const auto& line : c.notes) std::fprintf(stderr, "ringd-supervise: %s\n", line.c_str());
    for (const auto& line : c.faults) std::fprintf(stderr, "ringd-supervise: %s\n", line.c_str());
    if (!c.faults.empty()) return ringd::exit_code::config;
    std::printf(
        "ringd-supervise: %s: configuration OK (%zu directory services; %s)\n",
        opts.config_path.empty() ? "no --config" : opts.config_path.c_str(), c.directory_services,
        opts.clean ? "-i: no table read"
                   : (std::to_string(c.table_services) + " services in " + opts.state).c_str());
    return ringd::exit_code::ok;
}

// `ringd-supervise ctl [--control SOCKET] COMMAND ...`: the words from COMMAND on go to the
// supervisor unparsed (register has options of its own).
int ctl_main(int argc, char** argv) {
    std::string control = "/run/ringd-supervise.sock";
    const ringd::cli::program ctl{.name = "ringd-supervise",
                                  .help = std::string(supervise::ctl_usage),
                                  .usage_exit = 1,
                                  .operands = true,
                                  .stop_at_operand = true};
    auto args = ringd::cli::parse(ctl, argc - 1, argv + 1,
                                  {ringd::cli::value("control", 0, "SOCKET", control)});
    if (!args) return args.error();
    if (args->operands.empty())
        return ringd::cli::usage_error(
            ctl,
            "ctl: no command (register, unregister, list, status, start, stop, restart, shutdown)");
    return supervise::run_client(control, args->operands);
}

// ---- --container --config C -- CMD: services beside the container's command ------------------

// Every signal we receive goes on to the command (to its group with --kill-group), as
// run_container_init does, except a SIGPIPE that our own write raised.
ringd::task<void> forward_signals(ringd::signal_set& signals, ringd::process& command,
                                  bool kill_group) {
    for (;;) {
        auto s = co_await signals.next();
        if (!s) co_return; // cancelled: the command has ended
        if (s->number == SIGPIPE && s->sender == ::getpid()) continue;
        if (!command.reaped())
            (void)(kill_group ? command.signal_group(s->number) : command.signal(s->number));
    }
}

// The command's end ends the container: every service is stopped in order, and `code` is what
// we exit with (its exit status, 128 + N if signal N killed it).
ringd::task<void> wait_for_command(ringd::io_context& ctx, daemon_state& d, ringd::process& command,
                                   int& code) {
    auto end = co_await ringd::async_wait(ctx, command);
    if (!end) {
        d.log.logf(ringd::log_level::err, "wait for the command (pid %d): %s", command.pid(),
                   end.error().message().c_str());
        code = 1;
    } else {
        code = end->signalled() ? 128 + end->status : end->status;
        d.log.logf(ringd::log_level::notice,
                   "exit: the command (pid %d) %s; stopping every service", command.pid(),
                   end->to_string().c_str());
    }
    d.sup.leave_child(command.pid(), false);
    d.sup.shutdown(true);
}

ringd::task<int> run_container(ringd::io_context& ctx, daemon_state& d,
                               const ringd::listener& control, ringd::process& command,
                               bool kill_group, ringd::signal_set& signals) {
    int code = 1;
    // `ctl shutdown` ends the container the way `docker stop` does: SIGTERM to the command.
    supervise::control_context cc{d.sup, d.log, d.cfg, [&] {
                                      if (!command.reaped())
                                          (void)(kill_group ? command.signal_group(SIGTERM)
                                                            : command.signal(SIGTERM));
                                  }};
    ringd::scope aux;
    aux.spawn(supervise::control_server(ctx, control, cc));
    aux.spawn(forward_signals(signals, command, kill_group));
    aux.spawn(wait_for_command(ctx, d, command, code));
    co_await d.sup.run();
    aux.request_stop();
    co_await aux.join();
    d.log.log(ringd::log_level::notice, "exit: every service is down");
    co_return code;
}

// `ringd-supervise --container [--kill-group] --config C -- CMD`: the directory and registered
// services of C run beside the command, their output on ours, each line prefixed with the
// service's name; the command's end stops them in order and we exit with its code.
int container_with_services(options opts, const ringd::container_init_options& o,
                            const std::vector<std::string>& command_argv) {
    auto loaded = supervise::load_config(opts.config_path);
    if (!loaded) return config_error(loaded.error());
    supervise::config cfg = std::move(*loaded);
    ringd::become_child_subreaper_or_warn(o);
    sigset_t forwarded = ringd::detail::container_forwarded_signals();
    sigdelset(&forwarded, SIGCHLD); // the supervisor's own signalfd takes it
    try {
        ringd::io_context ctx;
        ringd::signal_set signals(ctx, forwarded);
        ringd::logger log("ringd-supervise");
        log.use_stderr(true);
        log.set_threshold(opts.level);
        ringd::supervisor_options so;
        so.table_path = opts.state; // only with --state: a container is usually started afresh
        so.reap_orphans = true;
        so.prefix_output = true;
        so.keep_logs = cfg.keep_logs;
        so.keep_logs_bytes = cfg.keep_logs_bytes;
        if (!so.table_path.empty()) {
            const std::string dir = so.table_path.substr(0, so.table_path.rfind('/'));
            if (!dir.empty() && ::mkdir(dir.c_str(), 0755) != 0 && errno != EEXIST)
                throw std::runtime_error("create directory " + dir + ": " + std::strerror(errno));
        }
        ringd::supervisor sup(ctx, log, so);
        const ringd::listener control = supervise::bind_control_socket(opts.control);
        const std::vector<ringd::table_entry> table = sup.load_table();

        // The command first: if it cannot run, nothing else starts.
        const auto started = ringd::start_container_command(command_argv, o);
        if (!started) return started.error();
        sup.leave_child(*started); // ours to wait for, not the reaper's
        const auto stat = ringd::detail::read_process_stat(*started);
        auto command = ringd::process::adopt(*started, stat ? stat->start_time : 0);
        if (!command)
            throw std::runtime_error("pidfd of the command: " + command.error().message());

        daemon_state d{opts, cfg, sup, log};
        resume(d, table);
        log.logf(ringd::log_level::notice,
                 "start: command pid %d, %zu services beside it; control socket %s", *started,
                 sup.size(), opts.control.c_str());
        return ctx.run(run_container(ctx, d, control, *command, o.kill_group, signals));
    } catch (const std::exception& e) {
        std::fprintf(stderr, "ringd-supervise: %s\n", e.what());
        return 1;
    }
}

} // namespace

// `ringd-supervise --container [--kill-group] [--config C ...] -- CMD ARGS`: one command as the
// container's main process (tini's job, ringd/container_init.hpp), with the services of C beside
// it when --config is given.
int container_command(const ringd::cli::arguments& args, options opts, bool kill_group) {
    auto given = [&](const char* o) {
        return std::find(args.given.begin(), args.given.end(), o) != args.given.end();
    };
    for (const std::string& o : args.given)
        if (o != "--container" && o != "--kill-group" && o != "--config" && o != "--control" &&
            o != "--state" && o != "--log-level")
            return ringd::cli::usage_error(
                prog, "with a command (-- CMD ARGS), only --container, --kill-group, --config, "
                      "--control, --state and --log-level are allowed, not " +
                          o);
    if (!given("--container"))
        return ringd::cli::usage_error(prog, "a command (-- CMD ARGS) needs --container");
    if (args.command.empty())
        return ringd::cli::usage_error(prog, "--container --: the command is missing");
    ringd::container_init_options o;
    o.program = "ringd-supervise";
    o.kill_group = kill_group;
    if (!given("--state")) opts.state.clear(); // no table unless --state
    if (opts.config_path.empty()) {
        if (given("--state") || given("--control"))
            return ringd::cli::usage_error(
                prog, "--state and --control go with --config (services beside the command)");
        return ringd::run_container_init(args.command, o);
    }
    return container_with_services(std::move(opts), o, args.command);
}

int main(int argc, char** argv) {
    if (argc >= 2 && std::string(argv[1]) == "ctl") return ctl_main(argc, argv);
    options opts;
    bool kill_group = false;
    // Paths are read after the daemon's chdir("/"): make them absolute now (not "@name", an
    // abstract socket's).
    auto path = [](std::string& target) {
        return [&target](const std::string& v) {
            target = v.starts_with('@') ? v : ringd::absolute_path(v);
            return std::string();
        };
    };
    using ringd::cli::flag, ringd::cli::value;
    auto args = ringd::cli::parse(
        prog, argc, argv,
        {flag("foreground", opts.foreground), flag("", opts.clean, 'i'),
         flag("container", opts.container), flag("kill-group", kill_group),
         flag("check-config", opts.check_only), value("config", 0, "FILE", path(opts.config_path)),
         value("state", 0, "FILE", path(opts.state)),
         value("log-dir", 0, "DIR", path(opts.log_dir)),
         value("control", 0, "SOCKET", path(opts.control)),
         value("pid-file", 0, "FILE", path(opts.pid_file)),
         value("syslog-ident", 0, "ID", opts.syslog_ident),
         value("syslog-facility", 0, "FACILITY",
               [&](const std::string& v) {
                   opts.syslog_facility = ringd::parse_syslog_facility(v);
                   return std::string(
                       opts.syslog_facility ? "" : "expected daemon, user, local0..local7, ...");
               }),
         value("log-level", 0, "LEVEL",
               [&](const std::string& v) {
                   auto l = ringd::parse_log_level(v);
                   if (l) opts.level = *l;
                   return std::string(l ? "" : "expected err, warning, notice or info");
               }),
         value("", 't', "SECONDS", [&](const std::string& v) {
             opts.spawn_retry_s = ringd::cli::number<double>(v);
             const bool ok =
                 opts.spawn_retry_s && *opts.spawn_retry_s > 0 && *opts.spawn_retry_s <= 86400;
             return std::string(ok ? "" : "not a number of seconds in (0, 86400]");
         })});
    if (!args) return args.error();
    if (args->dashes) return container_command(*args, std::move(opts), kill_group);
    if (kill_group)
        return ringd::cli::usage_error(prog, "--kill-group goes with --container -- CMD ARGS");
    if (opts.check_only) return check_config(opts);
    return daemon_main(std::move(opts));
}
