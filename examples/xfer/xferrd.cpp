// xferrd — the xfer master receive daemon, and (with --child) its receiving children.
//   xferrd -c FILE [--foreground]              the master (detaches unless --foreground)
//   xferrd --child tcpip|tcpip_tls|unix -c FILE  a receiving child (started by the master)
#include "master.hpp"
#include "receiving_child.hpp"

#include <ringd/daemon.hpp>
#include <ringd/process_title.hpp>
#include <ringd/version.hpp>

#include <climits>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <memory>
#include <string>

namespace {

int usage(const std::string& why) {
    std::fprintf(stderr, "xferrd: %s\nusage: xferrd -c FILE [--foreground]\n", why.c_str());
    return ringd::exit_code::usage;
}

std::string programs_dir() {
    std::error_code ec;
    auto self = std::filesystem::read_symlink("/proc/self/exe", ec);
    return ec ? std::string(".") : self.parent_path().string();
}

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
    std::string dir = programs_dir();
    return ringd::daemon_run(std::move(*start), [&](ringd::daemon_context& d) {
        auto master = std::make_shared<xfer::family_master>(d, *c, log, dir);
        return run_family(std::move(master));
    });
}

} // namespace

int main(int argc, char** argv) {
    (void)ringd::init_process_title(argc, argv);
    std::string config_path, child;
    bool foreground = false;
    for (int i = 1; i < argc; ++i) {
        std::string arg = argv[i];
        if (arg == "--foreground") {
            foreground = true;
        } else if ((arg == "-c" || arg == "--config" || arg == "--child") && i + 1 < argc) {
            (arg == "--child" ? child : config_path) = argv[++i];
        } else if (arg == "--version") {
            ringd::print_version("xferrd");
            return 0;
        } else if (arg == "-h" || arg == "--help") {
            std::printf("usage: xferrd -c FILE [--foreground]\n");
            return 0;
        } else {
            return usage("unknown argument '" + arg + "'");
        }
    }
    if (config_path.empty()) return usage("-c FILE is required");
    char resolved[PATH_MAX];
    if (::realpath(config_path.c_str(), resolved) == nullptr) {
        std::fprintf(stderr, "xferrd: open %s: %s\n", config_path.c_str(), std::strerror(errno));
        return ringd::exit_code::config;
    }
    config_path = resolved; // children and reloads run with cwd "/"
    if (child.empty()) return run_master(config_path, foreground);
    if (child == "tcpip") return xfer::run_receiving_child(xfer::transport::tcpip, config_path);
    if (child == "tcpip_tls")
        return xfer::run_receiving_child(xfer::transport::tcpip_tls, config_path);
    if (child == "unix")
        return xfer::run_receiving_child(xfer::transport::unix_socket, config_path);
    return usage("--child: unknown transport '" + child + "'");
}
