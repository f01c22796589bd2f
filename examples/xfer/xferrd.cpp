// SPDX-License-Identifier: MIT
// xferrd — the xfer master receive daemon, and (with --child) its receiving children.
//   xferrd -c FILE [--foreground]              the master (detaches unless --foreground)
//   xferrd --child tcpip|tcpip_tls|unix -c FILE  a receiving child (started by the master)
#include "master.hpp"
#include "receiving_child.hpp"

#include <ringd/cli.hpp>
#include <ringd/daemon.hpp>
#include <ringd/process_title.hpp>
#include <ringd/program_path.hpp>

#include <climits>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <memory>
#include <string>

namespace {

const ringd::cli::program prog{
    "xferrd",
    "usage: xferrd -c FILE [--foreground | --check-config]\n"
    "       xferrd --child tcpip|tcpip_tls|unix -c FILE\n"
    "\n"
    "The xfer master receive daemon: one supervised receiving child per transport in FILE,\n"
    "beside xfersqd and xferdebugd. SIGHUP re-reads FILE; SIGTERM drains and stops.\n"
    "  -c, --config FILE  the configuration (TOML)\n"
    "  --foreground       do not detach (systemd Type=notify, s6, containers)\n"
    "  --check-config     report what is wrong in FILE (each fault with its place) and start\n"
    "                     nothing; exit 0 when it is fine, 78 otherwise\n"
    "  --child TRANSPORT  be a receiving child (the master starts these)\n"
    "  -h, --help         this text; --version: the version\n"
    "exit: 0 done, 64 bad usage, 73 already running, 75 temporary failure, 78 configuration\n"};

// The master object lives in this frame for as long as the daemon runs.
ringd::task<int> run_family(std::shared_ptr<xfer::family_master> master) {
    int code = co_await master->run();
    co_return code;
}

int run_master(const std::string& config_path, bool foreground) {
    ringd::logger log("xferrd");
    auto c = xfer::load_config(config_path);
    if (!c) {
        log.log(ringd::log_level::err, c.error());
        return ringd::exit_code::config;
    }
    for (const auto& dir : {c->run_dir, c->log_dir}) {
        std::error_code ec;
        std::filesystem::create_directories(dir, ec);
        if (ec) {
            log.logf(ringd::log_level::err, "mkdir %s: %s", dir.c_str(), ec.message().c_str());
            return ringd::exit_code::config;
        }
    }
    xfer::setup_family_logger(log, c->debug_socket());
    ringd::daemon_params params;
    params.program = "xferrd";
    params.pid_file = c->pid_file();
    params.flags.foreground = foreground;
    params.stderr_path = c->log_dir + "/xferrd.log";
    params.stop_timeout = std::chrono::duration_cast<std::chrono::seconds>(c->drain_timeout) +
                          std::chrono::seconds(10);
    auto start = ringd::daemon_init(params);
    if (!start) {
        std::fprintf(stderr, "%s\n", start.error().message.c_str());
        return start.error().exit_code;
    }
    // The transports' sockets, still as root (ports below 1024), before detaching: inherited
    // from the master this one replaces (xferctl upgrade), or bound.
    xfer::held_sockets held;
    try {
        held = xfer::hold_transport_sockets(*c);
    } catch (const std::system_error& e) {
        std::fprintf(stderr, "xferrd: %s\n", e.what());
        return ringd::exit_code_for(e.code());
    } catch (const std::exception& e) {
        std::fprintf(stderr, "xferrd: %s\n", e.what());
        return ringd::exit_code::config;
    }
    std::string dir = ringd::program_directory();
    return ringd::daemon_run(std::move(*start), [&](ringd::daemon_context& d) {
        auto master = std::make_shared<xfer::family_master>(d, *c, log, dir, held);
        return run_family(std::move(master));
    });
}

// --check-config: everything a start would find wrong in the configuration, without starting:
// the file itself (every key, with file and line), every listening address, every partner
// address, the TLS certificate and key, and each TLS partner's CA file. Each fault on its own
// line; exit 0 or 78.
int check_config(const std::string& path) {
    auto c = xfer::load_config(path);
    if (!c) {
        std::fprintf(stderr, "xferrd: %s\n", c.error().c_str());
        return ringd::exit_code::config;
    }
    int faults = 0;
    auto address = [&](const std::string& where, const std::string& text) {
        if (auto a = ringd::socket_address::parse(text); !a) {
            std::fprintf(stderr, "xferrd: %s: %s: %s\n", path.c_str(), where.c_str(),
                         a.error().c_str());
            ++faults;
        }
    };
    if (c->tcpip)
        for (const auto& l : c->tcpip->listen) address("tcpip.listen", l);
    if (c->tcpip_tls) {
        for (const auto& l : c->tcpip_tls->listen) address("tcpip_tls.listen", l);
        try {
            (void)xfer::detail::settings_from(*c, xfer::transport::tcpip_tls); // loads cert and key
        } catch (const std::exception& e) {
            std::fprintf(stderr, "xferrd: %s: tcpip_tls: %s\n", path.c_str(), e.what());
            ++faults;
        }
    }
    for (const auto& p : c->partners) {
        address("partner " + p.name + ": address", p.address);
        if (!p.tls) continue;
        try {
            (void)xfer::partner_tls(p); // loads its CA file
        } catch (const std::exception& e) {
            std::fprintf(stderr, "xferrd: %s: partner %s: %s\n", path.c_str(), p.name.c_str(),
                         e.what());
            ++faults;
        }
    }
    if (faults != 0) return ringd::exit_code::config;
    std::printf("xferrd: %s: configuration OK\n", path.c_str());
    return 0;
}

} // namespace

int main(int argc, char** argv) {
    (void)ringd::init_process_title(argc, argv);
    std::string config_path, child;
    bool foreground = false;
    bool check_only = false;
    auto args = ringd::cli::parse(
        prog, argc, argv,
        {ringd::cli::required(ringd::cli::value("config", 'c', "FILE", config_path)),
         ringd::cli::flag("foreground", foreground), ringd::cli::flag("check-config", check_only),
         ringd::cli::value("child", 0, "TRANSPORT", child)});
    if (!args) return args.error();
    char resolved[PATH_MAX];
    if (::realpath(config_path.c_str(), resolved) == nullptr) {
        std::fprintf(stderr, "xferrd: open %s: %s\n", config_path.c_str(), std::strerror(errno));
        return ringd::exit_code::config;
    }
    config_path = resolved; // children and reloads run with cwd "/"
    if (check_only) return check_config(config_path);
    if (child.empty()) return run_master(config_path, foreground);
    if (child == "tcpip") return xfer::run_receiving_child(xfer::transport::tcpip, config_path);
    if (child == "tcpip_tls")
        return xfer::run_receiving_child(xfer::transport::tcpip_tls, config_path);
    if (child == "unix")
        return xfer::run_receiving_child(xfer::transport::unix_socket, config_path);
    return ringd::cli::usage_error(prog, "--child: unknown transport '" + child + "'");
}
