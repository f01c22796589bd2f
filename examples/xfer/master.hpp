// SPDX-License-Identifier: MIT
// xfer/master.hpp — xferrd, the master: one supervised child per configured transport
// (xferrd_tcpip, xferrd_tcpip_tls, xferrd_unix) plus xferdebugd and xfersqd. The master holds the
// transports' listening sockets and passes them to each start of their child, so a child that
// dies is restarted (with backoff) on the same socket and no connection is refused meanwhile
// (a transport or an address that a reload adds is bound by its child). SIGHUP re-reads the
// configuration, starts and stops transports to match it and passes SIGHUP on (children re-read
// it themselves, transfers in progress keep going);
// SIGTERM stops every child (each drains) and then the master. ringd::supervisor does the
// supervising; this class says what to run and when it is wanted.
#pragma once

#include "config.hpp"
#include "receiving_child.hpp"
#include "spool.hpp"
#include "status_file.hpp"

#include <ringd/daemon.hpp>
#include <ringd/inherit_listeners.hpp>
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

// [held-sockets]
// The listening sockets of every configured transport, held by the master for its whole life:
// each start of a transport's child gets its transport's sockets (service_spec::listen, by
// LISTEN_FDS), so a child that crashes or is killed is replaced on the same socket, and the
// kernel's backlog keeps the connections that arrive meanwhile. In an upgrade (`xferctl
// upgrade`) they are inherited from the old master, and offered to the next one.
struct held_sockets {
    std::vector<ringd::listener> listeners;
    std::vector<transport> owners; // the transport of each listener
};

// Phase one (still as root): the inherited socket for each configured address, or a new one.
// Inherited sockets that no configured address wants (a transport dropped from the
// configuration since the old master started) are closed. Throws std::system_error ("bind
// 127.0.0.1:3305: Address already in use") or std::runtime_error for an address that does not
// parse.
inline held_sockets hold_transport_sockets(const config& c) {
    held_sockets out;
    std::vector<ringd::socket_address> addresses;
    for (transport t : {transport::tcpip, transport::tcpip_tls, transport::unix_socket}) {
        if (!configured(c, t)) continue;
        for (const auto& a : detail::parse_all(detail::addresses_of(c, t))) {
            addresses.push_back(a);
            out.owners.push_back(t);
        }
    }
    out.listeners = ringd::inherit_or_bind(addresses);
    out.listeners.erase(out.listeners.begin() + static_cast<std::ptrdiff_t>(addresses.size()),
                        out.listeners.end());
    return out;
}
// [/held-sockets]

class family_master {
public:
    // `programs_dir`: where xferrd, xfersqd and xferdebugd are installed. `held`: the
    // transports' sockets (hold_transport_sockets); they must outlive the master.
    family_master(ringd::daemon_context& d, config c, ringd::logger& log, std::string programs_dir,
                  held_sockets& held)
        : daemon_(d), config_(std::move(c)), log_(log), programs_dir_(std::move(programs_dir)),
          held_(held), started_(epoch_seconds_ago(std::chrono::seconds(0))),
          children_(d.io(), log, children_options()) {}

    ringd::task<int> run() {
        if (auto n = spool::open(config_.spool).remove_stale_temporaries(); n > 0)
            log_.logf(ringd::log_level::notice, "removed %zu stale temporary files from %s/tmp", n,
                      config_.spool.c_str());
        add("xferdebugd", {programs_dir_ + "/xferdebugd", "-c", config_.path});
        for (transport t : {transport::tcpip, transport::tcpip_tls, transport::unix_socket}) {
            std::string kind = process_name(t).substr(7);
            add(process_name(t), {programs_dir_ + "/xferrd", "--child", kind, "-c", config_.path},
                listen_of(t));
        }
        add("xfersqd", {programs_dir_ + "/xfersqd", "-c", config_.path});
        tasks_.spawn(children_.run()); // starts what add() left wanted
        daemon_.on_reload([this]() { return reload(); });
        offer_for_upgrade();
        daemon_.ready();
        log_.logf(ringd::log_level::notice, "running with %s", config_.path.c_str());

        co_await daemon_.stopped();
        log_.log(ringd::log_level::notice, "stopping every child");
        children_.shutdown();   // keeping the table (there is none) keeps the children's last logs
        co_await tasks_.join(); // run() returns once every child is down
        write_status();
        // Upgraded: the new master serves on these sockets; a UNIX socket keeps its path.
        if (daemon_.handed_over())
            for (auto& l : held_.listeners) (void)l.release();
        log_.log(ringd::log_level::notice, "stopped");
        co_return 0;
    }

private:
    ringd::supervisor_options children_options() {
        ringd::supervisor_options o;
        o.log_dir = config_.log_dir; // stdout/stderr of each child: <log_dir>/<name>.<pid>
        o.on_change = [this] { write_status(); };
        for (const auto& l : held_.listeners) o.held_listeners.push_back(l.fd());
        return o;
    }

    // The addresses of transport `t`'s held sockets, as bound: its child's service_spec::listen
    // (the supervisor passes a duplicate of each held socket to every start).
    [[nodiscard]] std::vector<std::string> listen_of(transport t) const {
        std::vector<std::string> out;
        for (std::size_t i = 0; i < held_.listeners.size(); ++i)
            if (held_.owners[i] == t) out.push_back(held_.listeners[i].address().to_string());
        return out;
    }

    // Opts in to upgrades (`xferctl upgrade`, ringd-control --upgrade): the transports' sockets,
    // each named after its child, go to the next master by LISTEN_FDS.
    void offer_for_upgrade() {
        std::vector<ringd::handover_socket> offered;
        for (std::size_t i = 0; i < held_.listeners.size(); ++i)
            offered.push_back({held_.listeners[i].fd().get(), process_name(held_.owners[i])});
        if (auto h = daemon_.hand_over(std::move(offered)); !h)
            log_.logf(ringd::log_level::err, "cannot offer the listening sockets for upgrades: %s",
                      h.error().message().c_str());
    }

    // [policy]
    void add(const std::string& name, std::vector<std::string> argv,
             std::vector<std::string> listen = {}) {
        ringd::service_spec spec;
        spec.name = name;
        spec.argv = std::move(argv);
        spec.listen = std::move(listen); // held by the master: passed to every start
        spec.policy.restart_delay =
            std::chrono::milliseconds(200); // a crashed receiver is back at once
        spec.policy.max_restart_delay = std::chrono::seconds(10);
        // A receiver that served for a second was not crash-looping: the next crash is
        // restarted after restart_delay again, not after a doubled delay (the default 10 s
        // would make every kill of a receiver that lived a few seconds wait longer than its
        // clients do, while the master holds their connections in the backlog).
        spec.policy.stable_after = std::chrono::seconds(1);
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
        for (transport t : {transport::tcpip, transport::tcpip_tls, transport::unix_socket})
            if (name == process_name(t)) return configured(config_, t);
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

    // Not once handed over: the status file is the new master's from then on.
    void write_status() {
        if (daemon_.handed_over()) return;
        if (auto w = write_status_file(config_, started_, children_.list()); !w)
            log_.logf(ringd::log_level::err, "write %s: %s", config_.status_file().c_str(),
                      w.error().message().c_str());
    }

    ringd::daemon_context& daemon_;
    config config_; // as last loaded successfully
    ringd::logger& log_;
    std::string programs_dir_;   // where the family's programs are
    held_sockets& held_;         // the transports' listening sockets, for the whole run
    std::int64_t started_;       // epoch seconds, for status
    ringd::supervisor children_; // one service per child, in start order
    ringd::scope tasks_;         // children_.run()
};

} // namespace xfer
