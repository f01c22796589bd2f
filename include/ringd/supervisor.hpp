// SPDX-License-Identifier: MIT
// ringd/supervisor.hpp — keeps services running: one supervision::service_machine per service,
// fed by process ends, timers and readiness on the ring; the process layer only feeds it events.
//
// Also: ordered start (priority, then the S<nn> prefix; a group starts once the groups before it
// are up) and stop (init.d's K<nn> first, then the reverse of start); per-process logs
// <log_dir>/<name>.<pid> (the last few instances' files are kept, the crashed one always; all
// go on removal);
// readiness by sd_notify (a datagram socket per service, passed as NOTIFY_SOCKET) or an s6
// notification fd; a persistent table from which a restarted supervisor re-adopts the children
// still running (pidfd + start time), never starting a second copy; orphan reaping for a subreaper
// or PID 1. Everything runs on the loop's thread. The work of one event does not grow with the
// number of services: the table files are rewritten at most once per interval under a burst, and
// a burst of due events is fed in slices between which the loop serves its other operations.
#pragma once

#include <ringd/fd.hpp>
#include <ringd/io_context.hpp>
#include <ringd/log.hpp>
#include <ringd/process.hpp>
#include <ringd/result.hpp>
#include <ringd/service_spec.hpp>
#include <ringd/supervision_state.hpp>
#include <ringd/task.hpp>

#include <sys/types.h>

#include <coroutine>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace ringd {

struct supervisor_options {
    std::string log_dir; // per-process logs; empty: children share our stdout and stderr
    // The persistent table; empty: none. Services and whether they are wanted, replaced with
    // fsync; their processes in <table>.pids, replaced without (they die with the boot);
    // <table>.lock guards both.
    std::string table_path;
    // Reap every child that is not a service's process: orphans re-parented to a subreaper or
    // PID 1, and children inherited across execve (a shell that exec'd us after starting one).
    // Each is peeked at (waitid WNOWAIT) and only a pid that no service owns is reaped, so the
    // services' own waits never lose their status. Only for a process whose every other child
    // belongs to the supervisor: a child waited for elsewhere would lose its status to us.
    bool reap_orphans = false;
    wait_method wait = wait_method::automatic; // how process ends reach the ring
    // Called by run() once per turn in which a service changed state, was added or was
    // forgotten (status files, displays). On the loop's thread, outside any API call, so it may
    // call list() and the API functions; it must not throw. ({}: brace-initialisers that end
    // before it stay free of -Wmissing-field-initializers.)
    std::function<void()> on_change{};
    // Logs of earlier processes kept per service (at a respawn the previous process's log joins
    // them, the oldest beyond the count go): at most keep_logs files, together at most
    // keep_logs_bytes, but the newest earlier one (the crashed instance's) always stays.
    std::size_t keep_logs{5};
    std::uint64_t keep_logs_bytes{std::uint64_t{64} << 20};
    // Container mode: each line a service writes to stdout (stderr) goes to our stdout (stderr)
    // as "<name> | <line>" (docker compose's separator), through a pipe per stream and service
    // kept for the service's lifetime, instead of log files (log_dir is then not used). A line
    // longer than 4 KiB is cut into several; one without its newline is written at the end.
    // Ignore or block SIGPIPE: a closed stdout must end the line, not the process.
    bool prefix_output = false;
    // Listening sockets that the owner holds already (bound itself, or inherited from the
    // process it replaces in an upgrade: xferrd's master). A service's `listen` address that
    // one of them is bound to (the same text form) gets a duplicate of it instead of a socket
    // bound anew: the owner and its services share one socket and one accept queue, and the
    // owner can offer it to its own successor. They must stay open while the supervisor runs.
    std::vector<borrowed_fd> held_listeners{};
};

class supervisor {
public:
    // Takes the table's lock (<table>.lock, flock, held for our lifetime) when there is a table.
    // Throws std::runtime_error at setup: "lock table F.lock: held by another supervisor
    // (pid N)", or naming the syscall that failed.
    supervisor(io_context& ctx, logger& log, supervisor_options options);
    // run() must have returned, or the loop must have been stopped and drained. Otherwise the
    // services still tied to the ring are left allocated (reported on stderr) rather than freed
    // under the kernel's feet.
    ~supervisor();
    supervisor(const supervisor&) = delete;
    supervisor& operator=(const supervisor&) = delete;

    // ---- the table ----
    // What the previous supervisor left: its services and their processes ({} if no table).
    // Throws std::runtime_error "read table F: line N: ..." when the file is there but cannot
    // be trusted: then nothing is started and nothing overwritten (start clean with -i).
    [[nodiscard]] std::vector<table_entry> load_table() const;
    // The services of the table at `path`, read without a supervisor and without its lock
    // (ringd-supervise --check-config); {} when there is no file. The error is load_table's
    // "read table F: line N: ...". The processes (<table>.pids) are not read.
    [[nodiscard]] static expected<std::vector<table_entry>, std::string>
    read_table(const std::string& path);
    // Removes the table (a clean start: keepalive's -i).
    void discard_table();

    // ---- services (loop thread; before or during run()) ----
    // Adds a service, wanted up unless `previous` says it was stopped. If `previous` names a
    // process that still runs as the same incarnation, it is adopted (pidfd, start time) and not
    // started again: `running` if previous->ready, else `starting` until it reports readiness
    // (an sd_notify socket is named after the table, so it has the same name for the next
    // supervisor on that table; a notification fd's pipe is gone) or its ready_timeout, counted
    // from the adoption, stops it. Else the service starts in order. Errors: a bad spec, a name
    // in use, or shutting down.
    expected<void, std::string> add(service_spec spec, const table_entry* previous = nullptr);
    // Stops the service and forgets it once it is down; its log files are deleted. Returns
    // what happens ("stopping pid 1234").
    expected<std::string, std::string> remove(std::string_view name);
    expected<void, std::string> start(std::string_view name);
    expected<void, std::string> stop(std::string_view name);
    expected<void, std::string> restart(std::string_view name);
    // Replaces the spec of a service (same name). restart: restart it if it is wanted up (a
    // changed script, reconcile after SIGHUP); else the new spec applies from the next spawn
    // and the new policy from the next decision (changed defaults).
    expected<void, std::string> replace(service_spec spec, bool restart = true);
    // Sends `sig` to the process group of every running service (container mode forwards
    // SIGHUP this way).
    void signal_all(int sig);
    // Sends `sig` to the process group of one service (a reload passed on to some services
    // only). Errors: no such service; "not running"; or the kill's errno.
    expected<void, std::string> signal(std::string_view name, int sig);
    // A child of ours that the caller waits for itself (e.g. a container's command): the
    // orphan reaper leaves it alone (leave = false: no longer, once the caller has reaped it).
    void leave_child(pid_t pid, bool leave = true);
    // Deletes <log_dir>/<name>.<digits> of every known name (and of `more_names`), except the
    // files of processes that still run (keepalive: on -i and on shutdown).
    void remove_unused_logs(const std::vector<std::string>& more_names = {});

    [[nodiscard]] std::vector<service_status> list() const; // in start order
    [[nodiscard]] std::optional<service_status> status(std::string_view name) const;
    [[nodiscard]] const service_spec* find(std::string_view name) const;
    [[nodiscard]] std::size_t size() const noexcept;
    [[nodiscard]] bool shutting_down() const noexcept;

    // ---- lifecycle ----
    // Drives every service until shutdown() has brought them all down; then writes the table
    // (or removes it, see shutdown) and returns. Start it once. A stop request of the coroutine
    // that awaits it does not end it (shutdown() or detach() does: it gets its operations back
    // from the ring before it returns).
    task<void> run();
    // Stops every service, in groups, a group once the groups before it are down:
    //   1. services with a stop_sequence (init.d's K<nn>), ascending; equal numbers are a group;
    //   2. then the others in reverse start order (priority, then S<nn>, as groups start).
    // So K10db, K20web, S10db, S20web (K entries for db and web) stop db, then web, where plain
    // reverse start order would stop web first.
    // keep_table: the table keeps every service as wanted (SIGTERM: the next supervisor resumes
    // them); else the table is removed and unused logs deleted (an operator's shutdown).
    void shutdown(bool keep_table = true);
    // Completes once the table holds every change made before it was created (at once
    // without a table; also if that write failed, which is logged): an operator's request is
    // answered once it would survive a crash. Resumed on the loop's thread, from run().
    struct table_durable_awaiter {
        supervisor* s;
        std::uint64_t target;
        bool await_ready() const noexcept;
        void await_suspend(std::coroutine_handle<> h);
        void await_resume() const noexcept {}
    };
    [[nodiscard]] table_durable_awaiter table_durable() noexcept;
    // Ends run() without stopping anything: the table records every process, which keeps
    // running for the next supervisor to adopt (an in-place upgrade: detach, then execve the
    // new binary, whose children they still are).
    void detach() noexcept;

private:
    // The state behind the API and the machinery that drives it (detail/supervisor_state.hpp):
    // on the heap, made once with the supervisor; the ring's operations point into it.
    struct impl;
    std::unique_ptr<impl> impl_;
};

} // namespace ringd

// The state behind the API, then the bodies.
#include <ringd/detail/supervisor_state.hpp>
