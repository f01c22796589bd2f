// xfer/child_supervisor.hpp — one supervised child process: ringd's pure supervision state
// machine (supervision_state.hpp) decides, this class performs its actions with process.hpp
// (spawn with a pidfd, wait on the ring) and ring timers, and feeds the outcomes back.
// TO BE REPLACED by ringd/supervisor.hpp (issue 4) when it lands; the interface is the part the
// master uses: start(), stop(), signal(), and the read-only state for status displays.
#pragma once

#include <ringd/io_context.hpp>
#include <ringd/log.hpp>
#include <ringd/process.hpp>
#include <ringd/scope.hpp>
#include <ringd/supervision_state.hpp>
#include <ringd/task.hpp>
#include <ringd/timer.hpp>

#include <chrono>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <utility>
#include <variant>
#include <vector>

namespace xfer {

struct child_spec {
    std::string name;              // what ps -ef shows, and the log file's name
    std::vector<std::string> argv; // argv[0]: the program's path
    std::string log_dir;           // its stdout/stderr go to <log_dir>/<name>.<pid>
};

class supervised_child {
public:
    using clock = std::chrono::steady_clock;

    // `tasks` holds the waits and timers this child starts; the owner cancels and joins it after
    // every child is quiescent(). `on_change` runs after every state change (status files).
    supervised_child(ringd::io_context& ctx, ringd::logger& log, ringd::scope& tasks, child_spec spec,
                     ringd::supervision::service_policy policy, std::function<void()> on_change)
        : ctx_(&ctx), log_(&log), tasks_(&tasks), spec_(std::move(spec)), machine_(policy),
          on_change_(std::move(on_change)) {}
    supervised_child(const supervised_child&) = delete;
    supervised_child& operator=(const supervised_child&) = delete;

    void start() { feed(ringd::supervision::start_requested{}); }
    void stop() { feed(ringd::supervision::stop_requested{}); }
    // Passes `sig` (SIGHUP: reload) to the running process; false if there is none.
    bool signal(int sig) const noexcept { return process_ && process_->valid() && process_->signal(sig).has_value(); }

    [[nodiscard]] const child_spec& spec() const noexcept { return spec_; }
    [[nodiscard]] ringd::supervision::state state() const noexcept { return machine_.current(); }
    [[nodiscard]] pid_t pid() const noexcept { return machine_.pid(); }
    [[nodiscard]] unsigned restarts() const noexcept { return machine_.restarts(); }
    [[nodiscard]] clock::time_point up_since() const noexcept { return machine_.up_since(); }
    [[nodiscard]] bool quiescent() const noexcept { return machine_.quiescent(); }
    [[nodiscard]] const std::string& log_path() const noexcept { return log_path_; }

private:
    void feed(const ringd::supervision::event& e) {
        auto step = machine_.on(e, clock::now());
        for (const auto& a : step.actions) perform(a);
        if (step.changed() && on_change_) on_change_();
    }

    void perform(const ringd::supervision::action& a) {
        namespace sv = ringd::supervision;
        if (std::holds_alternative<sv::spawn>(a)) {
            ringd::spawn_options options;
            options.argv = spec_.argv;
            options.log_dir = spec_.log_dir;
            options.log_name = spec_.name;
            auto p = ringd::spawn(options);
            if (!p) {
                log_->logf(ringd::log_level::err, "start %s: %s", spec_.name.c_str(), p.error().message().c_str());
                int error = p.error().code.value() != 0 ? p.error().code.value() : EINVAL;
                return feed(sv::spawn_failed{error});
            }
            process_.emplace(std::move(*p));
            log_path_ = process_->log_path();
            tasks_->spawn(wait_for_exit(*process_));
            return feed(sv::spawned{process_->pid()});
        }
        if (auto* s = std::get_if<sv::send_stop_signal>(&a)) {
            if (process_) (void)process_->signal(s->signo);
            return;
        }
        if (std::holds_alternative<sv::send_kill>(a)) {
            log_->logf(ringd::log_level::warning, "stop %s: still running after the stop timeout: SIGKILL", spec_.name.c_str());
            if (process_) (void)process_->signal(SIGKILL);
            return;
        }
        if (auto* t = std::get_if<sv::arm_timer>(&a)) {
            tasks_->spawn(fire_at(t->deadline, ++timer_generation_));
            return;
        }
        if (std::holds_alternative<sv::cancel_timer>(a)) {
            ++timer_generation_; // the sleeping timer will find itself stale
            return;
        }
        if (auto* m = std::get_if<sv::log_message>(&a)) {
            auto level = static_cast<ringd::log_level>(static_cast<int>(m->level));
            std::string how = last_exit_.empty() ? "" : ": " + last_exit_;
            log_->logf(level, "%s %s%s", spec_.name.c_str(), std::string(sv::to_string(m->why)).c_str(),
                       m->why == sv::reason::exit_failure || m->why == sv::reason::stopped ||
                               m->why == sv::reason::exit_clean ? how.c_str() : "");
        }
    }

    ringd::task<void> wait_for_exit(ringd::process& p) {
        auto end = co_await ringd::async_wait(*ctx_, p);
        if (!end) co_return; // cancelled: the master is going away
        last_exit_ = end->to_string();
        auto status = end->signalled() ? ringd::supervision::exit_status::killed_by(end->status, end->code == CLD_DUMPED)
                                       : ringd::supervision::exit_status::exited_with(end->status);
        feed(ringd::supervision::exited{status});
    }

    ringd::task<void> fire_at(clock::time_point deadline, std::uint64_t generation) {
        auto slept = co_await ringd::sleep_until(*ctx_, deadline);
        if (!slept || generation != timer_generation_) co_return;
        feed(ringd::supervision::timer_fired{});
    }

    ringd::io_context* ctx_;                    // the master's ring
    ringd::logger* log_;                        // the master's log
    ringd::scope* tasks_;                       // waits and timers
    child_spec spec_;                           // what to run
    ringd::supervision::service_machine machine_; // what to do next
    std::function<void()> on_change_;           // after each state change
    std::optional<ringd::process> process_;     // the current (or last) incarnation
    std::uint64_t timer_generation_ = 0;        // bumps on arm and cancel: older timers are stale
    std::string last_exit_;                     // how the last process ended, for log lines
    std::string log_path_;                      // its current log file
};

} // namespace xfer
