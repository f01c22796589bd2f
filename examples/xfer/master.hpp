// SPDX-License-Identifier: MIT
// xfer/master.hpp — xferrd, the master: one supervised child per configured transport
// (xferrd_tcpip, xferrd_tcpip_tls, xferrd_unix) plus xferdebugd and xfersqd. A child that dies is
// restarted with backoff; SIGHUP re-reads the configuration, starts and stops transports to match
// it and passes SIGHUP on (children re-read it themselves, transfers in progress keep going);
// SIGTERM stops every child (each drains) and then the master. ringd::supervisor does the
// supervising; this class says what to run and when it is wanted.
#pragma once

#include "config.hpp"
#include "receiving_child.hpp"
#include "spool.hpp"
#include "status_file.hpp"

#include <ringd/daemon.hpp>
#include <ringd/log.hpp>
#include <ringd/scope.hpp>
#include <ringd/supervisor.hpp>
#include <ringd/task.hpp>

#include <signal.h>

#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

namespace xfer {

class family_master {
public:
    // `programs_dir`: where xferrd, xfersqd and xferdebugd are installed.
    family_master(ringd::daemon_context& d, config c, ringd::logger& log, std::string programs_dir)
        : daemon_(d), config_(std::move(c)), log_(log), programs_dir_(std::move(programs_dir)),
          started_(std::chrono::duration_cast<std::chrono::seconds>(
                       std::chrono::system_clock::now().time_since_epoch())
                       .count()),
          children_(d.io(), log, children_options()) {}

    ringd::task<int> run() {
        if (auto n = spool::open(config_.spool).remove_stale_temporaries(); n > 0)
            log_.logf(ringd::log_level::notice, "removed %zu stale temporary files from %s/tmp", n,
                      config_.spool.c_str());
        add("xferdebugd", {programs_dir_ + "/xferdebugd", "-c", config_.path});
        for (transport t : {transport::tcpip, transport::tcpip_tls, transport::unix_socket}) {
            std::string kind = process_name(t).substr(7);
            add(process_name(t), {programs_dir_ + "/xferrd", "--child", kind, "-c", config_.path});
        }
        add("xfersqd", {programs_dir_ + "/xfersqd", "-c", config_.path});
        tasks_.spawn(children_.run()); // starts what add() left wanted
        daemon_.on_reload([this]() { return reload(); });
        daemon_.ready();
        log_.logf(ringd::log_level::notice, "running with %s", config_.path.c_str());

        co_await daemon_.stopped();
        log_.log(ringd::log_level::notice, "stopping every child");
        children_.shutdown();   // keeping the table (there is none) keeps the children's last logs
        co_await tasks_.join(); // run() returns once every child is down
        write_status();
        log_.log(ringd::log_level::notice, "stopped");
        co_return 0;
    }

private:
    ringd::supervisor_options children_options() {
        ringd::supervisor_options o;
        o.log_dir = config_.log_dir; // stdout/stderr of each child: <log_dir>/<name>.<pid>
        o.on_change = [this] { write_status(); };
        return o;
    }

    // [policy]
    void add(const std::string& name, std::vector<std::string> argv) {
        ringd::service_spec spec;
        spec.name = name;
        spec.argv = std::move(argv);
        spec.policy.restart_delay =
            std::chrono::milliseconds(200); // a crashed receiver is back at once
        spec.policy.max_restart_delay = std::chrono::seconds(10);
        spec.policy.start_limit_burst = 0; // keep trying (with backoff): the family must come back
        spec.policy.stop_timeout = config_.drain_timeout + std::chrono::seconds(5);
        // A transport the configuration leaves out is listed, but down until a reload wants it.
        ringd::table_entry down;
        down.wanted_up = false;
        if (auto added = children_.add(std::move(spec), wanted(name) ? nullptr : &down); !added)
            log_.log(ringd::log_level::err, added.error());
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
        for (const auto& child : children_.list()) {
            bool down = child.state == state::stopped || child.state == state::failed;
            if (wanted(child.name) && down) (void)children_.start(child.name);
            if (!wanted(child.name) && !down) (void)children_.stop(child.name);
        }
    }

    ringd::expected<void, std::string> reload() {
        auto fresh = load_config(config_.path);
        if (!fresh) return ringd::unexpected<std::string>(fresh.error());
        if (fresh->run_dir != config_.run_dir || fresh->spool != config_.spool)
            return ringd::unexpected<std::string>(
                "spool and run_dir cannot change while running: restart instead");
        config_ = std::move(*fresh);
        for (const auto& child : children_.list())
            if (wanted(child.name))
                (void)children_.signal(child.name, SIGHUP); // none: nothing to tell
        reconcile();
        return {};
    }

    void write_status() {
        if (auto w = write_status_file(config_, started_, children_.list()); !w)
            log_.logf(ringd::log_level::err, "write %s: %s", config_.status_file().c_str(),
                      w.error().message().c_str());
    }

    ringd::daemon_context& daemon_;
    config config_; // as last loaded successfully
    ringd::logger& log_;
    std::string programs_dir_;   // where the family's programs are
    std::int64_t started_;       // epoch seconds, for status
    ringd::supervisor children_; // one service per child, in start order
    ringd::scope tasks_;         // children_.run()
};

} // namespace xfer
