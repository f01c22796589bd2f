// SPDX-License-Identifier: MIT
// xfer/receiving_child.hpp — a receiving child of xferrd: xferrd_tcpip, xferrd_tcpip_tls or
// xferrd_unix. It takes its transport's listeners from the master (which holds them across the
// child's restarts) or binds them, accepts, and runs serve_connection() for
// each connection with the settings current when it was accepted. Every connection reads
// through the child's one buffer_ring (a connection waiting for a request holds no buffer), and
// at most max_connections are served at once: the next ones are told "ERR 503 too many
// connections" and closed, while the others go on. SIGHUP re-reads the
// configuration (new limits, certificates and addresses apply to new connections; transfers in
// progress keep theirs); SIGTERM stops accepting and lets transfers finish for drain_timeout.
#pragma once

#include "config.hpp"
#include "debug_sink.hpp"
#include "inbound.hpp"
#include "receiver.hpp"
#include "spool.hpp"

#include <ringd/accept_connections.hpp>
#include <ringd/atomic_file.hpp>
#include <ringd/buffer_ring.hpp>
#include <ringd/daemon.hpp>
#include <ringd/deadline.hpp>
#include <ringd/inherit_listeners.hpp>
#include <ringd/io_context.hpp>
#include <ringd/log.hpp>
#include <ringd/net.hpp>
#include <ringd/open_files_limit.hpp>
#include <ringd/process_title.hpp>
#include <ringd/scope.hpp>
#include <ringd/timer.hpp>
#include <ringd/tls.hpp>

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

#include <list>
#include <memory>
#include <string>
#include <vector>

namespace xfer {

enum class transport { tcpip, tcpip_tls, unix_socket };

[[nodiscard]] inline std::string process_name(transport t) {
    switch (t) {
    case transport::tcpip:
        return "xferrd_tcpip";
    case transport::tcpip_tls:
        return "xferrd_tcpip_tls";
    case transport::unix_socket:
        return "xferrd_unix";
    }
    return "xferrd_?";
}

// Whether `c` configures transport `t` (its table is present).
[[nodiscard]] inline bool configured(const config& c, transport t) {
    switch (t) {
    case transport::tcpip:
        return c.tcpip.has_value();
    case transport::tcpip_tls:
        return c.tcpip_tls.has_value();
    case transport::unix_socket:
        return c.unix_socket.has_value();
    }
    return false;
}

// The child's main: returns the exit code.
int run_receiving_child(transport kind, const std::string& config_path);

// =============================================================================================

namespace detail {

// What a connection keeps for its whole life, whatever reloads happen meanwhile.
struct receiver_settings {
    receive_limits limits;
    std::size_t max_connections = 0; // served at once; the next ones get 503
    std::optional<ringd::tls_context> tls;
};

// Connections beyond max_connections that are being told 503 (over TLS that takes a handshake);
// beyond this many as well, a connection is closed without a word.
inline constexpr std::size_t max_refusals = 64;

// The child's receive buffers: 128 × 32 KiB (4 MiB of address space, backed as used). One
// connection may hold 16 of them (512 KiB) before its reads pause; a waiting one holds none.
inline ringd::buffer_ring::options pool_options() {
    ringd::buffer_ring::options o;
    o.count = 128;
    o.size = 32 * 1024;
    return o;
}

inline std::vector<std::string> addresses_of(const config& c, transport t) {
    switch (t) {
    case transport::tcpip:
        return c.tcpip->listen;
    case transport::tcpip_tls:
        return c.tcpip_tls->listen;
    case transport::unix_socket:
        return {c.unix_socket->path};
    }
    return {};
}

// Throws std::system_error for a bad certificate or key (naming the file).
inline std::shared_ptr<const receiver_settings> settings_from(const config& c, transport t) {
    auto s = std::make_shared<receiver_settings>();
    s->limits.max_file_size = c.max_file_size;
    s->limits.idle_timeout = c.idle_timeout;
    s->limits.min_rate = c.min_rate;
    s->max_connections = c.max_connections;
    if (t == transport::tcpip_tls) s->tls.emplace(server_tls(*c.tcpip_tls));
    return s;
}

// Throws std::runtime_error for an address that does not parse.
inline std::vector<ringd::socket_address> parse_all(const std::vector<std::string>& addresses) {
    std::vector<ringd::socket_address> out;
    for (const auto& text : addresses) {
        auto a = ringd::socket_address::parse(text);
        if (!a) throw std::runtime_error(a.error());
        out.push_back(*a);
    }
    return out;
}

// Throws std::system_error ("bind 0.0.0.0:3305: Address already in use") or std::runtime_error
// for an address that does not parse.
inline std::vector<ringd::listener> bind_all(const std::vector<std::string>& addresses) {
    std::vector<ringd::listener> out;
    for (const auto& a : parse_all(addresses)) out.push_back(ringd::listener::bind(a));
    return out;
}

// The child's first listeners: the socket the master holds for each address and passed on
// (LISTEN_FDS), so that a restarted child takes over the same socket and its backlog (no
// connection refused while it was down); an address without one is bound here.
inline std::vector<ringd::listener> inherit_all(const std::vector<std::string>& addresses) {
    return ringd::inherit_or_bind(parse_all(addresses));
}

// run_dir/<name>.listen: our pid, then one bound address per line; replaced atomically.
// Errors: the write's (the old file stays).
inline ringd::result<void> publish_listeners(const config& c, const std::string& name,
                                             const std::vector<ringd::listener>& ls) {
    std::string text = std::to_string(::getpid()) + "\n";
    for (const auto& l : ls) text += l.address().to_string() + "\n";
    return ringd::write_file_atomically(c.listen_file(name), text, 0644,
                                        ringd::file_durability::survives_process_crash);
}

inline std::string peer_name(ringd::borrowed_fd fd) {
    auto address = ringd::socket_address::peer_of(fd);
    if (address && address->family() != AF_UNIX) return address->to_string();
    if (auto cred = ringd::peer_credentials(fd))
        return "unix peer pid " + std::to_string(cred->pid);
    return "unknown peer";
}

class receiving_child {
public:
    receiving_child(ringd::daemon_context& d, transport kind, config c, spool files,
                    ringd::logger& log)
        : daemon_(d), ctx_(d.io()), kind_(kind), name_(process_name(kind)), config_(std::move(c)),
          files_(std::move(files)), log_(log), pool_(d.io(), pool_options()) {}

    // Binds and serves until the stop request (SIGTERM/SIGINT). Setup errors throw: daemon_run
    // gives the exit code (75 address in use, 77 no permission, 1 otherwise); the master
    // restarts all but 77 with backoff.
    ringd::task<int> run() {
        settings_ = settings_from(config_, kind_);
        listener_sets_.push_back(inherit_all(addresses_of(config_, kind_)));
        publish(config_);
        for (const auto& l : listener_sets_.back())
            log_.logf(ringd::log_level::notice, "listening on %s", l.address().to_string().c_str());
        start_accepting(listener_sets_.back());
        daemon_.on_reload([this] { return reload(); });
        daemon_.ready();

        co_await daemon_.stopped();
        log_.logf(ringd::log_level::notice, "stopping: %zu connections open", connections_.size());
        // Stop accepting without losing a connection: what the ring took from the kernel is
        // still served; the rest wait in the backlog of the socket the master holds, for the
        // next child (a restart, or the children of an upgraded master).
        for (auto* stream : streams_) stream->stop_accepting();
        co_await acceptors_->join();
        listener_sets_.clear(); // a UNIX socket path goes away with its listener
        refusals_.request_stop();
        co_await refusals_.join();
        // Transfers in progress may finish until the drain timeout; then they are cancelled
        // (a cancelled upload leaves nothing in the spool).
        const std::size_t open = connections_.size();
        if (!co_await ringd::join_within(ctx_, connections_, config_.drain_timeout))
            log_.logf(ringd::log_level::warning,
                      "drain timeout: cancelled the transfers still running (of %zu)", open);
        std::remove(config_.listen_file(name_).c_str());
        log_.log(ringd::log_level::notice, "stopped");
        co_return ringd::exit_code::ok;
    }

    // After run(): waits for the listener retirements that reloads started.
    ringd::task<void> join_cleanup() {
        for (auto& a : retired_acceptors_) a->request_stop();
        co_await cleanup_.join();
    }

private:
    void start_accepting(const std::vector<ringd::listener>& ls) {
        acceptors_ = std::make_unique<ringd::scope>();
        for (const auto& l : ls) acceptors_->spawn(accept_loop(l));
    }

    // All or nothing: a bad file, certificate or address keeps everything as it was (the error
    // is the reason daemon_run reports).
    ringd::expected<void, std::string> reload() {
        // Draining: nothing new may start.
        if (daemon_.stop_requested()) return ringd::unexpected<std::string>("stopping");
        auto fresh = load_config(config_.path);
        if (!fresh) return ringd::unexpected<std::string>(fresh.error());
        if (!configured(*fresh, kind_)) return {}; // the master is about to stop us
        try {
            auto settings = settings_from(*fresh, kind_);
            if (addresses_of(*fresh, kind_) != addresses_of(config_, kind_)) {
                auto ls = bind_all(addresses_of(*fresh, kind_));
                // Old acceptors end (their connections go on); the new ones take over.
                retired_acceptors_.push_back(std::move(acceptors_));
                retired_acceptors_.back()->request_stop();
                listener_sets_.push_back(std::move(ls));
                start_accepting(listener_sets_.back());
                publish(*fresh);
                for (const auto& l : listener_sets_.back())
                    log_.logf(ringd::log_level::notice, "listening on %s",
                              l.address().to_string().c_str());
                cleanup_.spawn(retire_old_listeners());
            }
            settings_ = std::move(settings);
            config_ = std::move(*fresh);
            log_.log(ringd::log_level::notice, "reloaded");
            return {};
        } catch (const std::exception& e) {
            return ringd::unexpected<std::string>(e.what());
        }
    }

    // Joins the acceptors retired by a reload and closes their listeners.
    // The addresses we listen on, for xferctl and the tests (run_dir/<name>.listen).
    void publish(const config& c) {
        if (auto w = publish_listeners(c, name_, listener_sets_.back()); !w)
            log_.logf(ringd::log_level::err, "write %s: %s", c.listen_file(name_).c_str(),
                      w.error().message().c_str());
    }

    ringd::task<void> retire_old_listeners() {
        while (!retired_acceptors_.empty()) {
            co_await retired_acceptors_.front()->join();
            retired_acceptors_.erase(retired_acceptors_.begin());
            listener_sets_.pop_front();
        }
    }

    ringd::task<void> accept_loop(const ringd::listener& l) {
        ringd::accept_stream stream(ctx_, l);
        streams_.push_back(&stream);
        struct unlist {
            std::vector<ringd::accept_stream*>& all;
            ringd::accept_stream* one;
            ~unlist() { std::erase(all, one); }
        } unlist_at_end{streams_, &stream};
        auto serve_one = [this](ringd::unique_fd fd) { return serve(std::move(fd), settings_); };
        auto refuse = [this](ringd::unique_fd fd) {
            if (refusals_.size() >= max_refusals) return; // fd closes: the client sees the end
            log_.logf(ringd::log_level::warning, "refuse %s: %zu connections open",
                      peer_name(fd).c_str(), connections_.size());
            refusals_.spawn(serve(std::move(fd), settings_, true));
        };
        // The limit of the settings in force: a reload applies to the next connection.
        auto max_open = [this] { return settings_->max_connections; };
        auto ended =
            co_await ringd::accept_connections(stream, connections_, max_open, serve_one, refuse);
        if (!ended)
            log_.logf(ringd::log_level::err, "accept on %s: %s", l.address().to_string().c_str(),
                      ended.error().message().c_str());
    }

    // [serve]
    ringd::task<void> serve(ringd::unique_fd fd, std::shared_ptr<const receiver_settings> settings,
                            bool refuse = false) {
        std::string peer = peer_name(fd);
        // One short reply per request: without this, Nagle holds a reply until the previous
        // one is acknowledged (delayed ACK: up to 40 ms per file). Fails harmlessly on UNIX.
        int on = 1;
        ::setsockopt(fd.get(), IPPROTO_TCP, TCP_NODELAY, &on, sizeof on);
        receive_context rc{ctx_, files_, log_};
        if (settings->tls) {
            tls_inbound stream(ctx_, std::move(fd), *settings->tls, pool_);
            co_await serve_or_refuse(rc, stream, settings->limits, std::move(peer), refuse);
        } else {
            plain_inbound stream(ctx_, std::move(fd), pool_);
            co_await serve_or_refuse(rc, stream, settings->limits, std::move(peer), refuse);
        }
    }
    // [/serve]

    template <inbound_stream Stream>
    static ringd::task<void> serve_or_refuse(receive_context rc, Stream& stream,
                                             receive_limits limits, std::string peer, bool refuse) {
        if (refuse)
            co_await refuse_connection(rc, stream, limits, std::move(peer));
        else
            co_await serve_connection(rc, stream, limits, std::move(peer));
    }

    ringd::daemon_context& daemon_;
    ringd::io_context& ctx_;
    transport kind_;
    std::string name_; // xferrd_tcpip, ...
    config config_;    // as last loaded successfully
    spool files_;      // where files land
    ringd::logger& log_;
    ringd::buffer_ring pool_;                               // every connection's receive buffers
    std::shared_ptr<const receiver_settings> settings_;     // for connections accepted from now on
    std::list<std::vector<ringd::listener>> listener_sets_; // current last; older ones retiring
    std::unique_ptr<ringd::scope> acceptors_;    // accept loops on the current listeners (a set: a
                                                 // reload retires it whole, see retired_acceptors_)
    std::vector<ringd::accept_stream*> streams_; // the accept loops' streams, for the stop
    std::vector<std::unique_ptr<ringd::scope>> retired_acceptors_; // stopping after a reload
    ringd::scope connections_;                                     // one task per connection
    ringd::scope refusals_; // connections beyond max_connections, being told 503
    ringd::scope cleanup_;  // retire_old_listeners
};

inline ringd::task<int> receiving_child_main(ringd::daemon_context& d, transport kind, config c,
                                             ringd::logger& log) {
    auto files = spool::open(c.spool); // throws: the spool cannot be opened
    receiving_child child(d, kind, std::move(c), std::move(files), log);
    int code = co_await child.run();
    co_await child.join_cleanup();
    co_return code;
}

} // namespace detail

inline int run_receiving_child(transport kind, const std::string& config_path) {
    std::string name = process_name(kind);
    auto params = family_child(name);
    (void)ringd::set_process_title(name);
    ringd::logger log(name);
    auto c = load_config(config_path);
    if (!c) {
        log.log(ringd::log_level::err, c.error());
        return ringd::exit_code::config;
    }
    setup_family_logger(log, c->debug_socket());
    if (!configured(*c, kind)) {
        log.logf(ringd::log_level::err, "start: %s: no [%s] table", config_path.c_str(),
                 name.c_str() + 7);
        return ringd::exit_code::config;
    }
    // Room for every connection plus the files they write: raise the soft limit on descriptors
    // as far as the hard one allows.
    const auto wanted = static_cast<rlim_t>(2 * c->max_connections + detail::max_refusals + 64);
    if (auto limit = ringd::raise_open_files_limit(wanted); limit && *limit < wanted)
        log.logf(ringd::log_level::warning,
                 "start: max_connections = %zu needs %llu descriptors, the limit is %llu",
                 c->max_connections, static_cast<unsigned long long>(wanted),
                 static_cast<unsigned long long>(*limit));
    return ringd::daemon_run(std::move(params), [&](ringd::daemon_context& d) {
        return detail::receiving_child_main(d, kind, std::move(*c), log);
    });
}

} // namespace xfer
