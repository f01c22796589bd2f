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

#include <ringd/detail/io_op.hpp>
#include <ringd/event.hpp>
#include <ringd/fd.hpp>
#include <ringd/io_context.hpp>
#include <ringd/log.hpp>
#include <ringd/process.hpp>
#include <ringd/result.hpp>
#include <ringd/service_spec.hpp>
#include <ringd/supervision_state.hpp>
#include <ringd/task.hpp>

#include <sys/types.h>

#include <chrono>
#include <coroutine>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
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
    [[nodiscard]] std::size_t size() const noexcept { return services_.size(); }
    [[nodiscard]] bool shutting_down() const noexcept { return shutting_down_; }

    // ---- lifecycle ----
    // Drives every service until shutdown() has brought them all down; then writes the table
    // (or removes it, see shutdown) and returns. Start it once.
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
        bool await_ready() const noexcept {
            return s->options_.table_path.empty() || !s->running_ ||
                   s->table_written_upto_ >= target;
        }
        void await_suspend(std::coroutine_handle<> h) {
            s->durable_waiters_.emplace_back(target, h);
        }
        void await_resume() const noexcept {}
    };
    [[nodiscard]] table_durable_awaiter table_durable() noexcept { return {this, table_changes_}; }
    // Ends run() without stopping anything: the table records every process, which keeps
    // running for the next supervisor to adopt (an in-place upgrade: detach, then execve the
    // new binary, whose children they still are).
    void detach() noexcept;

private:
    // Defined in detail/supervisor_service.hpp: a service's state, and the ring operations whose
    // memory must outlive their completions (a service's own, and the supervisor-wide ones).
    struct service;
    struct timer_op;   // a service's timer (IORING_OP_TIMEOUT, absolute)
    struct exit_watch; // the wait for the end of a service's process
    struct ready_op;   // a service's readiness read (sd_notify socket or notification pipe)
    struct output_op;  // prefix_output: a service's stdout or stderr pipe, read on the ring
    struct orphan_op;  // the SIGCHLD signalfd of orphan reaping
    struct flush_op;   // the deadline of a coalesced write of the table files

    // events and actions
    void feed(service& s, const supervision::event& e);
    void perform(service& s, const supervision::transition_result& r);
    void do_spawn(service& s, std::optional<supervision::event>& outcome);
    void log_reason(service& s, const supervision::log_message& m,
                    const supervision::transition_result& r);
    void handle_exit(service& s);
    // Feeds the due events, for at most a slice of time; false if some are left for later.
    bool process_due();
    void advance_start_order();
    // Tells the next groups to stop, for at most a slice of time; false if some are left.
    bool advance_shutdown();
    void sweep_removed();
    [[nodiscard]] bool all_down() const noexcept;
    // Reaps the children no service owns (reap_orphans), until the first zombie is a service's
    // (its wait reaps it; the look is repeated after its exit is fed).
    void reap_orphans() noexcept;
    // ring operations
    void arm_timer(service& s, supervision::time_point deadline);
    void cancel_timer(service& s) noexcept;
    void submit_timer(service& s) noexcept;
    void start_ready_read(service& s) noexcept;
    // prefix_output: the pipes of a service (created at its first spawn), their reads, and the
    // lines they carry; drain_output reads what is left without waiting (at the end of run()).
    [[nodiscard]] expected<void, std::string> open_output(service& s);
    void start_output_read(output_op& o) noexcept;
    void emit_output(output_op& o, std::string_view data, bool end) noexcept;
    void drain_output(output_op& o) noexcept;
    void schedule(service& s) noexcept;
    // From an API call: run() looks again at the loop's next turn.
    void wake() noexcept;
    // From a completion: the same, if run() has work (or waits for its ops to come back).
    void resume_parked() noexcept;
    void cancel_everything() noexcept;
    // helpers
    [[nodiscard]] service* lookup(std::string_view name) const noexcept;
    // The service an operator command (`verb`) acts on, or its error ("start x: no such
    // service"); a command that would bring it up is also refused while it is being removed or
    // everything shuts down.
    [[nodiscard]] expected<service*, std::string>
    operand(std::string_view verb, std::string_view name, bool brings_up) const;
    // Starts a stopped service, restarts any other (restart, and replace with restart).
    void start_or_restart(service& s);
    // After an operator command changed what a service should be: the table, and the loop.
    void changed_by_operator() noexcept;
    [[nodiscard]] service_status status_of(const service& s) const;
    [[nodiscard]] std::string describe_exit(const service& s) const;
    void open_notify_socket(service& s);
    [[nodiscard]] std::vector<table_entry> table_entries() const;
    void mark_table_dirty() noexcept; // a change for the table (table_changes_ counts them)
    void write_table();
    void table_settled(std::uint64_t covering) noexcept; // resumes table_durable() waiters
    void write_pids();
    // Writes the dirty table files now, or arms flush_ for when the interval since the last
    // write has passed (a burst of events costs one write per interval, not one per event).
    void flush_tables();
    void arm_flush(supervision::time_point when) noexcept;
    void remove_log(const std::string& path) noexcept;
    // At a respawn: the previous process's log joins the kept ones; the oldest beyond the
    // limits go (never the one just added).
    void retire_log(service& s, const std::string& new_log);
    // The earlier logs of `name` found in log_dir (the directory is read once, at the first call).
    std::vector<std::pair<std::string, std::uint64_t>> take_found_logs(const std::string& name);
    void set_pending_start(service& s, bool pending) noexcept;
    static void timer_complete(detail::io_op* op, int res, std::uint32_t flags) noexcept;
    static void ready_complete(detail::io_op* op, int res, std::uint32_t flags) noexcept;
    static void orphan_complete(detail::io_op* op, int res, std::uint32_t flags) noexcept;
    static void flush_complete(detail::io_op* op, int res, std::uint32_t flags) noexcept;
    static void output_complete(detail::io_op* op, int res, std::uint32_t flags) noexcept;

    io_context* ctx_; // the ring everything runs on
    logger* log_;     // where messages go
    supervisor_options options_;
    unique_fd table_lock_; // flock on <table>.lock, held for our lifetime
    std::map<std::string, std::unique_ptr<service>, std::less<>> services_; // by name
    service* due_head_ = nullptr; // services with events for run() to feed (FIFO)
    service* due_tail_ = nullptr;
    // Set when run() should look again (an API call, a completion with work for it): run()
    // waits on it between events, so its wake-up comes through the ring among the loop's other
    // completions, and a burst of completions is one wake-up.
    event wake_;
    bool running_ = false;                // run() is active
    bool draining_ = false;               // run() waits for the ring to give back our ops
    bool sweep_waiting_ = false;          // a removed service waits for its ops to complete
    supervision::time_point feed_time_{}; // `now` of the event being fed (for messages)
    bool shutting_down_ = false;          // shutdown() was called
    bool detaching_ = false;              // detach() was called
    bool keep_table_ = true;              // what shutdown() does with the table
    bool table_dirty_ = false;            // the table (services, wanted) on disk is out of date
    bool pids_dirty_ = false;             // <table>.pids (their processes) is out of date
    bool changed_ = false;                // something for options_.on_change since its last call
    bool orphans_due_ = false;            // reap_orphans() after the due events are fed
    std::size_t active_ops_ = 0;          // our ops the ring still holds
    std::unique_ptr<orphan_op> orphans_;  // SIGCHLD watch (reap_orphans only)
    std::unique_ptr<flush_op>
        flush_; // heap: may have to outlive us, the coalesced write's deadline
    supervision::time_point table_written_{}; // when the table was last written ...
    supervision::duration table_interval_{};  // ... and the least wait before the next write
    supervision::time_point pids_written_{};  // the same for <table>.pids
    supervision::duration pids_interval_{};
    std::size_t busy_ = 0;                 // services not quiescent (for all_down without a scan)
    std::size_t removing_ = 0;             // services being removed (sweep_removed looks at them)
    std::size_t pending_starts_ = 0;       // services with pending_start
    bool all_stop_sent_ = false;           // shutdown: every service has been told to stop
    bool logs_scanned_ = false;            // log_dir was read for found_logs_
    std::uint64_t table_changes_ = 0;      // changes made for the table so far
    std::uint64_t table_written_upto_ = 0; // of them, those a write has settled
    std::vector<std::pair<std::uint64_t, std::coroutine_handle<>>>
        durable_waiters_; // ... and who waits
    std::map<std::string, std::vector<std::pair<std::string, std::uint64_t>>, std::less<>>
        found_logs_;       // earlier logs in log_dir by service name, oldest first, not yet claimed
    unique_fd sigchld_fd_; // signalfd for SIGCHLD (reap_orphans only)
    std::vector<pid_t> left_children_; // children the reaper leaves alone (leave_child)
};

} // namespace ringd

// The private state, then the bodies.
#include <ringd/detail/supervisor_service.hpp>
