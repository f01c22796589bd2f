// SPDX-License-Identifier: MIT
// xfersqd — the xfer send queue daemon: sends the files in spool/out/<partner>/ to each
// configured partner (send_queue.hpp). New files are noticed at once through inotify, read on
// the ring; a rescan every rescan_interval_s catches anything inotify could not report.
// SIGHUP re-reads the partner list (unchanged partners keep their transfer going); SIGTERM stops.
//   xfersqd -c FILE
#include "config.hpp"
#include "debug_sink.hpp"
#include "send_queue.hpp"

#include <ringd/cli.hpp>
#include <ringd/daemon.hpp>
#include <ringd/io_context.hpp>
#include <ringd/ops.hpp>
#include <ringd/scope.hpp>
#include <ringd/timer.hpp>

#include <poll.h>
#include <sys/inotify.h>

#include <cstdio>
#include <map>
#include <memory>
#include <string>

namespace {

bool same(const xfer::partner& a, const xfer::partner& b) {
    return a.name == b.name && a.address == b.address && a.tls == b.tls && a.ca == b.ca;
}

class send_queue_daemon {
public:
    send_queue_daemon(ringd::daemon_context& d, ringd::logger& log, xfer::config c)
        : daemon_(d), ctx_(d.io()), log_(log), config_(std::move(c)),
          inotify_(::inotify_init1(IN_CLOEXEC | IN_NONBLOCK)) {
        if (!inotify_) ringd::throw_errno(errno, "inotify_init1");
    }

    // Serves until the stop request; SIGHUP re-reads the partner list (a bad file keeps it).
    ringd::task<int> run() {
        apply(config_.partners);
        background_.spawn(watch_directories());
        background_.spawn(rescan_periodically());
        daemon_.on_reload([this] { return reload(); });
        daemon_.ready();
        co_await daemon_.stopped();
        background_.request_stop();
        for (auto& [name, q] : queues_) q.runner->request_stop();
        co_await background_.join();
        for (auto& [name, q] : queues_) co_await q.runner->join();
        co_return ringd::exit_code::ok;
    }

private:
    ringd::expected<void, std::string> reload() {
        // Draining: nothing new may start.
        if (daemon_.stop_requested()) return ringd::unexpected<std::string>("stopping");
        auto fresh = xfer::load_config(config_.path);
        if (!fresh) return ringd::unexpected<std::string>(fresh.error());
        config_.rescan_interval = fresh->rescan_interval;
        apply(fresh->partners);
        log_.logf(ringd::log_level::notice, "reloaded: %zu partners", queues_.size());
        return {};
    }

    struct running_queue {
        std::unique_ptr<xfer::partner_queue> queue;
        std::unique_ptr<ringd::scope> runner;
        int watch = -1; // inotify watch descriptor of its out/ directory
    };

    // Keeps the queues of unchanged partners; stops removed and changed ones; starts new ones.
    void apply(const std::vector<xfer::partner>& partners) {
        for (auto it = queues_.begin(); it != queues_.end();) {
            auto wanted =
                std::find_if(partners.begin(), partners.end(), [&](const xfer::partner& p) {
                    return same(p, it->second.queue->settings());
                });
            if (wanted != partners.end()) {
                ++it;
                continue;
            }
            it->second.runner->request_stop();
            retiring_.push_back(std::move(it->second));
            it = queues_.erase(it);
            background_.spawn(retire());
        }
        for (const auto& p : partners) {
            if (queues_.contains(p.name)) continue;
            try {
                running_queue q;
                q.queue = std::make_unique<xfer::partner_queue>(ctx_, log_, config_.spool, p);
                q.runner = std::make_unique<ringd::scope>();
                q.watch = ::inotify_add_watch(inotify_.get(), q.queue->out_dir().c_str(),
                                              IN_MOVED_TO | IN_CLOSE_WRITE | IN_ONLYDIR);
                if (q.watch < 0)
                    log_.logf(ringd::log_level::warning, "watch %s: %s; relying on rescans",
                              q.queue->out_dir().c_str(), std::strerror(errno));
                q.runner->spawn(q.queue->run());
                log_.logf(ringd::log_level::notice, "partner %s: sending to %s%s", p.name.c_str(),
                          p.address.c_str(), p.tls ? " over TLS" : "");
                queues_.emplace(p.name, std::move(q));
            } catch (const std::exception& e) {
                log_.logf(ringd::log_level::err, "partner %s: %s", p.name.c_str(), e.what());
            }
        }
    }

    ringd::task<void> retire() {
        while (!retiring_.empty()) {
            running_queue q = std::move(retiring_.front());
            retiring_.erase(retiring_.begin());
            if (q.watch >= 0) ::inotify_rm_watch(inotify_.get(), q.watch);
            co_await q.runner->join();
        }
    }

    // inotify events, read through the ring: wake the partner whose out/ changed.
    ringd::task<void> watch_directories() {
        alignas(inotify_event) char events[16 * 1024];
        for (;;) {
            auto ready = co_await ringd::async_poll(ctx_, inotify_, POLLIN);
            if (!ready) co_return;
            for (;;) {
                ssize_t n = ::read(inotify_.get(), events, sizeof events);
                if (n <= 0) break;
                for (char* p = events; p < events + n;) {
                    auto* e = reinterpret_cast<inotify_event*>(p);
                    if (e->mask & IN_Q_OVERFLOW) wake_all(); // events were lost: look everywhere
                    for (auto& [name, q] : queues_)
                        if (q.watch == e->wd) q.queue->wake();
                    p += sizeof(inotify_event) + e->len;
                }
            }
        }
    }

    ringd::task<void> rescan_periodically() {
        for (;;) {
            auto slept = co_await ringd::sleep_for(ctx_, config_.rescan_interval);
            if (!slept) co_return;
            wake_all();
        }
    }

    void wake_all() {
        for (auto& [name, q] : queues_) q.queue->wake();
    }

    ringd::daemon_context& daemon_;
    ringd::io_context& ctx_;
    ringd::logger& log_;
    xfer::config config_;                         // as last loaded successfully
    ringd::unique_fd inotify_;                    // one inotify instance for every out/ dir
    std::map<std::string, running_queue> queues_; // by partner name
    std::vector<running_queue> retiring_;         // removed or changed, being joined
    ringd::scope background_;                     // inotify reader, rescans, retirements
};

ringd::task<int> run_daemon(ringd::daemon_context& d, ringd::logger& log, xfer::config c) {
    send_queue_daemon queues(d, log, std::move(c)); // throws: inotify_init1 failed
    int code = co_await queues.run();
    co_return code;
}

} // namespace

int main(int argc, char** argv) {
    std::string config_path;
    auto args = ringd::cli::parse(
        {"xfersqd", "usage: xfersqd -c FILE\nSends the files queued in spool/out/<partner>/ to "
                    "each partner of FILE; run by xferrd.\n"},
        argc, argv, {ringd::cli::required(ringd::cli::value("config", 'c', "FILE", config_path))});
    if (!args) return args.error();
    auto params = xfer::family_child("xfersqd");
    ringd::logger log("xfersqd");
    auto c = xfer::load_config(config_path);
    if (!c) {
        log.log(ringd::log_level::err, c.error());
        return ringd::exit_code::config;
    }
    xfer::setup_family_logger(log, c->debug_socket());
    return ringd::daemon_run(std::move(params), [&](ringd::daemon_context& d) {
        return run_daemon(d, log, std::move(*c));
    });
}
