// xfer/master.hpp — xferrd, the master: one supervised child per configured transport
// (xferrd_tcpip, xferrd_tcpip_tls, xferrd_unix) plus xferdebugd and xfersqd. A child that dies is
// restarted with backoff; SIGHUP re-reads the configuration, starts and stops transports to match
// it and passes SIGHUP on (children re-read it themselves, transfers in progress keep going);
// SIGTERM stops every child (each drains) and then the master.
#pragma once

#include "child_supervisor.hpp"
#include "config.hpp"
#include "receiving_child.hpp"
#include "spool.hpp"
#include "status_file.hpp"
#include "wake_event.hpp"

#include <ringd/daemon.hpp>
#include <ringd/log.hpp>
#include <ringd/scope.hpp>
#include <ringd/task.hpp>

#include <memory>
#include <string>
#include <vector>

namespace xfer {

class family_master {
public:
    // `programs_dir`: where xferrd, xfersqd and xferdebugd are installed.
    family_master(ringd::daemon_context& d, config c, ringd::logger& log, std::string programs_dir)
        : daemon_(d), config_(std::move(c)), log_(log), programs_dir_(std::move(programs_dir)),
          started_(std::chrono::duration_cast<std::chrono::seconds>(
                       std::chrono::system_clock::now().time_since_epoch()).count()) {}

    ringd::task<int> run() {
        if (auto n = spool::open(config_.spool).remove_stale_temporaries(); n > 0)
            log_.logf(ringd::log_level::notice, "removed %zu stale temporary files from %s/tmp", n, config_.spool.c_str());
        add("xferdebugd", {programs_dir_ + "/xferdebugd", "-c", config_.path});
        for (transport t : {transport::tcpip, transport::tcpip_tls, transport::unix_socket}) {
            std::string kind = process_name(t).substr(7);
            add(process_name(t), {programs_dir_ + "/xferrd", "--child", kind == "unix" ? "unix" : kind, "-c", config_.path});
        }
        add("xfersqd", {programs_dir_ + "/xfersqd", "-c", config_.path});
        reconcile();
        daemon_.on_reload([this]() { return reload(); });
        daemon_.ready();
        log_.logf(ringd::log_level::notice, "running with %s", config_.path.c_str());

        co_await daemon_.stopped();
        log_.log(ringd::log_level::notice, "stopping every child");
        stopping_ = true;
        for (auto& child : children_) child->stop();
        if (!all_quiescent()) {
            auto all_stopped = co_await all_stopped_.wait(daemon_.io());
            (void)all_stopped;
        }
        tasks_.request_stop(); // timers that no longer matter
        co_await tasks_.join();
        write_status();
        log_.log(ringd::log_level::notice, "stopped");
        co_return 0;
    }

private:
    // [policy]
    void add(const std::string& name, std::vector<std::string> argv) {
        ringd::supervision::service_policy policy;
        policy.restart_delay = std::chrono::milliseconds(200); // a crashed receiver is back at once
        policy.max_restart_delay = std::chrono::seconds(10);
        policy.start_limit_burst = 0; // keep trying (with backoff): the family must come back
        policy.stop_timeout = config_.drain_timeout + std::chrono::seconds(5);
        children_.push_back(std::make_unique<supervised_child>(
            daemon_.io(), log_, tasks_, child_spec{name, std::move(argv), config_.log_dir}, policy,
            [this] { on_change(); }));
    }
    // [/policy]

    [[nodiscard]] bool wanted(const std::string& name) const {
        if (name == "xferrd_tcpip") return config_.tcpip.has_value();
        if (name == "xferrd_tcpip_tls") return config_.tcpip_tls.has_value();
        if (name == "xferrd_unix") return config_.unix_socket.has_value();
        return true; // xferdebugd, xfersqd
    }

    // Starts what the configuration wants and is not running; stops what it no longer wants.
    void reconcile() {
        using ringd::supervision::state;
        for (auto& child : children_) {
            bool down = child->state() == state::stopped || child->state() == state::failed;
            if (wanted(child->spec().name) && down) child->start();
            if (!wanted(child->spec().name) && !down) child->stop();
        }
    }

    ringd::expected<void, std::string> reload() {
        auto fresh = load_config(config_.path);
        if (!fresh) return ringd::unexpected<std::string>(fresh.error());
        if (fresh->run_dir != config_.run_dir || fresh->spool != config_.spool)
            return ringd::unexpected<std::string>("spool and run_dir cannot change while running: restart instead");
        config_ = std::move(*fresh);
        for (auto& child : children_)
            if (wanted(child->spec().name)) (void)child->signal(SIGHUP);
        reconcile();
        return {};
    }

    void on_change() {
        write_status();
        if (stopping_ && all_quiescent()) all_stopped_.set();
    }

    [[nodiscard]] bool all_quiescent() const {
        for (const auto& child : children_)
            if (!child->quiescent()) return false;
        return true;
    }

    void write_status() { write_status_file(config_, started_, children_); }

    ringd::daemon_context& daemon_;
    config config_;                                       // as last loaded successfully
    ringd::logger& log_;
    std::string programs_dir_;                            // where the family's programs are
    std::int64_t started_;                                // epoch seconds, for status
    ringd::scope tasks_;                                  // the children's waits and timers
    std::vector<std::unique_ptr<supervised_child>> children_; // in start order
    wake_event all_stopped_;                              // set when stopping and all quiescent
    bool stopping_ = false;
};

} // namespace xfer
