// SPDX-License-Identifier: MIT
// ringd/detail/supervisor_state.hpp — what a ringd::supervisor holds behind its API: the
// services by name, the due list that completions fill for run(), the table's bookkeeping, the
// wake-up of run(), and the machinery's functions; then supervisor's own functions, each a call
// into it. Made once, on the heap, with the supervisor (the ring's operations point into it).
#pragma once

#include <ringd/supervisor.hpp>

#include <ringd/detail/io_op.hpp>
#include <ringd/event.hpp>

#include <sys/types.h>

#include <algorithm>
#include <coroutine>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

namespace ringd {

struct supervisor::impl {
    impl(io_context& ctx, logger& log, supervisor_options options);
    ~impl();
    impl(const impl&) = delete;
    impl& operator=(const impl&) = delete;

    // ---- the API (supervisor.hpp says what each does) ----
    [[nodiscard]] std::vector<table_entry> load_table() const;
    void discard_table();
    expected<void, std::string> add(service_spec spec, const table_entry* previous = nullptr);
    expected<std::string, std::string> remove(std::string_view name);
    expected<void, std::string> start(std::string_view name);
    expected<void, std::string> stop(std::string_view name);
    expected<void, std::string> restart(std::string_view name);
    expected<void, std::string> replace(service_spec spec, bool restart = true);
    void signal_all(int sig);
    expected<void, std::string> signal(std::string_view name, int sig);
    void leave_child(pid_t pid, bool leave = true);
    void remove_unused_logs(const std::vector<std::string>& more_names = {});
    [[nodiscard]] std::vector<service_status> list() const;
    [[nodiscard]] std::optional<service_status> status(std::string_view name) const;
    [[nodiscard]] const service_spec* find(std::string_view name) const;
    task<void> run();
    void shutdown(bool keep_table = true);
    void detach() noexcept;

    // ---- the machinery ----
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
    // Where `name` is, or would go, in services_.
    [[nodiscard]] auto position(std::string_view name) const noexcept {
        return std::lower_bound(services_.begin(), services_.end(), name,
                                [](const auto& e, std::string_view n) { return e.first < n; });
    }
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

    io_context* ctx_; // the ring everything runs on
    logger* log_;     // where messages go
    supervisor_options options_;
    unique_fd table_lock_; // flock on <table>.lock, held for our lifetime
    // By name, in name order (the order in which a start or stop group goes): a sorted vector,
    // searched by halves; a service is inserted once and erased once, in a compacting sweep.
    std::vector<std::pair<std::string, std::unique_ptr<service>>> services_;
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
    // Earlier logs in log_dir by service name, oldest first, not yet claimed.
    std::unordered_map<std::string, std::vector<std::pair<std::string, std::uint64_t>>> found_logs_;
    unique_fd sigchld_fd_;             // signalfd for SIGCHLD (reap_orphans only)
    std::vector<pid_t> left_children_; // children the reaper leaves alone (leave_child)
};

// ---- supervisor: each function a call into its state -----------------------------------------

inline supervisor::supervisor(io_context& ctx, logger& log, supervisor_options options)
    : impl_(std::make_unique<impl>(ctx, log, std::move(options))) {}
inline supervisor::~supervisor() = default;

inline std::vector<table_entry> supervisor::load_table() const {
    return impl_->load_table();
}
inline void supervisor::discard_table() {
    impl_->discard_table();
}
inline expected<void, std::string> supervisor::add(service_spec spec, const table_entry* previous) {
    return impl_->add(std::move(spec), previous);
}
inline expected<std::string, std::string> supervisor::remove(std::string_view name) {
    return impl_->remove(name);
}
inline expected<void, std::string> supervisor::start(std::string_view name) {
    return impl_->start(name);
}
inline expected<void, std::string> supervisor::stop(std::string_view name) {
    return impl_->stop(name);
}
inline expected<void, std::string> supervisor::restart(std::string_view name) {
    return impl_->restart(name);
}
inline expected<void, std::string> supervisor::replace(service_spec spec, bool restart) {
    return impl_->replace(std::move(spec), restart);
}
inline void supervisor::signal_all(int sig) {
    impl_->signal_all(sig);
}
inline expected<void, std::string> supervisor::signal(std::string_view name, int sig) {
    return impl_->signal(name, sig);
}
inline void supervisor::leave_child(pid_t pid, bool leave) {
    impl_->leave_child(pid, leave);
}
inline void supervisor::remove_unused_logs(const std::vector<std::string>& more_names) {
    impl_->remove_unused_logs(more_names);
}
inline std::vector<service_status> supervisor::list() const {
    return impl_->list();
}
inline std::optional<service_status> supervisor::status(std::string_view name) const {
    return impl_->status(name);
}
inline const service_spec* supervisor::find(std::string_view name) const {
    return impl_->find(name);
}
inline std::size_t supervisor::size() const noexcept {
    return impl_->services_.size();
}
inline bool supervisor::shutting_down() const noexcept {
    return impl_->shutting_down_;
}
inline task<void> supervisor::run() {
    return impl_->run();
}
inline void supervisor::shutdown(bool keep_table) {
    impl_->shutdown(keep_table);
}
inline void supervisor::detach() noexcept {
    impl_->detach();
}

inline supervisor::table_durable_awaiter supervisor::table_durable() noexcept {
    return {this, impl_->table_changes_};
}
inline bool supervisor::table_durable_awaiter::await_ready() const noexcept {
    const impl& st = *s->impl_;
    return st.options_.table_path.empty() || !st.running_ || st.table_written_upto_ >= target;
}
inline void supervisor::table_durable_awaiter::await_suspend(std::coroutine_handle<> h) {
    s->impl_->durable_waiters_.emplace_back(target, h);
}

} // namespace ringd

// The types of a service and of the ring's operations, then the bodies.
#include <ringd/detail/supervisor_service.hpp>
