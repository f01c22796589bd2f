// SPDX-License-Identifier: MIT
// xferctl — the operator's tool for the xfer family.
//   xferctl -c FILE start | stop | reload | upgrade | status [--json] | debug-dump DIR
//   (xferctl --help)
// start/stop/reload/upgrade go through ringd's race-free control protocol (control.hpp) on the
// master's PID file; status shows what `ps -ef | grep xfer` and `lsof -p` would, in one table;
// debug-dump DIR writes a problem-report bundle.
#include "config.hpp"

#include <ringd/cli.hpp>
#include <ringd/control.hpp>
#include <ringd/duration_text.hpp>
#include <ringd/pidfile.hpp>
#include <ringd/program_path.hpp>

#include <nlohmann/json.hpp>

#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/un.h>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

namespace {

constexpr int exit_not_running = ringd::control_exit::not_running;
constexpr int exit_error = ringd::control_exit::error;

const ringd::cli::program prog{
    .name = "xferctl",
    .help = "usage: xferctl -c FILE COMMAND\n"
            "\n"
            "The operator's tool for the xfer daemon family (xferrd and its children).\n"
            "  -c, --config FILE  the family's configuration (as given to xferrd)\n"
            "  --json             status: one JSON document\n"
            "  -h, --help         this text; --version: the version\n"
            "commands:\n"
            "  start              start xferrd; returns once it is ready\n"
            "  stop               stop it; returns once it has exited\n"
            "  reload             SIGHUP; returns once the reload is acknowledged\n"
            "  upgrade            a new xferrd on the running one's sockets; the old one\n"
            "                     drains and exits (no connection refused)\n"
            "  status             every process of the family: PID, state, uptime, restarts, "
            "listening\n"
            "  debug-dump DIR     write a problem-report bundle to DIR\n"
            "exit: 0 done, 100 already done, 101 not running, 102 error, 1 bad usage\n",
    .usage_exit = 1,
    .operands = true};

int control(const xfer::config& c, ringd::control_action action) {
    ringd::control_params p;
    p.pid_file = c.pid_file();
    p.action = action;
    if (action == ringd::control_action::start) {
        std::error_code ec; // the guard and PID files live there
        std::filesystem::create_directories(c.run_dir, ec);
        p.command = {ringd::program_directory() + "/xferrd", "-c", c.path};
        p.timeout = std::chrono::seconds(30);
    } else if (action == ringd::control_action::upgrade) {
        // The xferrd installed beside xferctl (a new binary, or the same) on the running
        // master's sockets; the old master's children drain while the new ones serve.
        p.command = {ringd::program_directory() + "/xferrd", "-c", c.path};
        p.timeout = c.drain_timeout + std::chrono::seconds(30);
    } else if (action == ringd::control_action::stop) {
        p.timeout = c.drain_timeout + std::chrono::seconds(20);
    } else {
        p.timeout = std::chrono::seconds(10);
    }
    auto out = ringd::daemon_control(p);
    if (!out.daemon_output.empty()) std::fputs(out.daemon_output.c_str(), stderr);
    if (!out.message.empty())
        std::fprintf(stderr, "xferctl: %s\n", out.message.c_str());
    else
        std::printf("xferrd: %s%s\n", out.state.c_str(),
                    out.pid != 0 ? (" (PID " + std::to_string(out.pid) + ")").c_str() : "");
    return out.exit_code;
}

std::vector<std::string> listening(const xfer::config& c, const std::string& name, long pid) {
    std::ifstream in(c.listen_file(name));
    long owner = 0;
    std::vector<std::string> out;
    if (!(in >> owner) || owner != pid) return out; // from an earlier incarnation
    for (std::string line; in >> line;) out.push_back(line);
    return out;
}

// The family's state as JSON: the master from its PID file, the children from its status file.
nlohmann::json collect_status(const xfer::config& c) {
    nlohmann::json doc;
    auto probe = ringd::probe_pid_file(c.pid_file());
    bool running = probe && probe->state == ringd::pid_file_state::running;
    long long now = std::chrono::duration_cast<std::chrono::seconds>(
                        std::chrono::system_clock::now().time_since_epoch())
                        .count();
    doc["running"] = running;
    doc["pid_file"] = c.pid_file();
    doc["processes"] = nlohmann::json::array();
    if (!running) return doc;
    nlohmann::json file;
    try {
        std::ifstream in(c.status_file());
        file = nlohmann::json::parse(in);
    } catch (const std::exception&) {
        file = nlohmann::json::object();
    }
    long long master_started = file.contains("master") ? file["master"].value("started", 0LL) : 0;
    doc["processes"].push_back({{"name", "xferrd"},
                                {"pid", probe->pid},
                                {"state", "running"},
                                {"uptime_s", master_started ? now - master_started : 0},
                                {"restarts", 0},
                                {"listening", nlohmann::json::array()}});
    if (file.contains("processes")) {
        for (const auto& p : file["processes"]) {
            long pid = p.value("pid", 0L);
            long long since = p.value("up_since", 0LL);
            std::string state = p.value("state", "unknown");
            if (pid != 0 && ::kill(static_cast<pid_t>(pid), 0) != 0 && errno == ESRCH)
                state = "gone";
            doc["processes"].push_back({{"name", p.value("name", "?")},
                                        {"pid", pid},
                                        {"state", state},
                                        {"uptime_s", since ? now - since : 0},
                                        {"restarts", p.value("restarts", 0)},
                                        {"listening", listening(c, p.value("name", ""), pid)},
                                        {"log", p.value("log", "")}});
        }
    }
    return doc;
}

std::string status_text(const nlohmann::json& doc) {
    std::ostringstream out;
    if (!doc["running"].get<bool>()) {
        out << "xferrd: not running (" << doc["pid_file"].get<std::string>() << ")\n";
        return out.str();
    }
    char line[512];
    std::snprintf(line, sizeof line, "%-18s %8s  %-9s %8s %8s  %s\n", "PROCESS", "PID", "STATE",
                  "UPTIME", "RESTARTS", "LISTENING");
    out << line;
    for (const auto& p : doc["processes"]) {
        std::string addresses;
        for (const auto& a : p["listening"])
            addresses += (addresses.empty() ? "" : " ") + a.get<std::string>();
        std::string pid = p["pid"].get<long>() ? std::to_string(p["pid"].get<long>()) : "-";
        std::string up =
            p["state"] == "running"
                ? ringd::duration_text(std::chrono::seconds(p["uptime_s"].get<long long>()))
                : "-";
        std::snprintf(line, sizeof line, "%-18s %8s  %-9s %8s %8d  %s\n",
                      p["name"].get<std::string>().c_str(), pid.c_str(),
                      p["state"].get<std::string>().c_str(), up.c_str(), p["restarts"].get<int>(),
                      addresses.c_str());
        out << line;
    }
    return out.str();
}

int status(const xfer::config& c, bool json) {
    auto doc = collect_status(c);
    if (json)
        std::printf("%s\n", doc.dump(2).c_str());
    else
        std::fputs(status_text(doc).c_str(), stdout);
    return doc["running"].get<bool>() ? 0 : exit_not_running;
}

// Asks xferdebugd to write its records to `path`; its answer, or why there is none.
std::string request_records(const xfer::config& c, const std::string& path) {
    int fd = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return std::string("socket: ") + std::strerror(errno);
    sockaddr_un self{};
    self.sun_family = AF_UNIX; // autobind: an abstract address for the reply
    ::bind(fd, reinterpret_cast<sockaddr*>(&self), sizeof(sa_family_t));
    sockaddr_un to{};
    to.sun_family = AF_UNIX;
    std::strncpy(to.sun_path, c.debug_socket().c_str(), sizeof to.sun_path - 1);
    std::string request = "!dump " + path;
    std::string answer;
    if (::sendto(fd, request.data(), request.size(), 0, reinterpret_cast<sockaddr*>(&to),
                 sizeof to) < 0) {
        answer = "send to " + c.debug_socket() + ": " + std::strerror(errno);
    } else {
        pollfd p{fd, POLLIN, 0};
        char reply[512];
        ssize_t n = ::poll(&p, 1, 5000) == 1 ? ::recv(fd, reply, sizeof reply, 0) : -1;
        answer = n > 0 ? std::string(reply, static_cast<std::size_t>(n))
                       : "no answer from xferdebugd within 5 s";
    }
    ::close(fd);
    return answer;
}

int debug_dump(const xfer::config& c, const std::string& dir) {
    namespace fs = std::filesystem;
    std::error_code ec;
    fs::create_directories(dir, ec);
    if (ec) {
        std::fprintf(stderr, "xferctl: debug-dump %s: %s\n", dir.c_str(), ec.message().c_str());
        return exit_error;
    }
    std::string target = fs::absolute(dir).string();
    fs::copy_file(c.path, target + "/config.toml", fs::copy_options::overwrite_existing, ec);
    auto doc = collect_status(c);
    std::ofstream(target + "/status.json") << doc.dump(2) << "\n";
    std::ofstream(target + "/status.txt") << status_text(doc);
    for (const auto& p : doc["processes"]) {
        std::string log = p.value("log", "");
        if (!log.empty())
            fs::copy_file(log, target + "/" + fs::path(log).filename().string(),
                          fs::copy_options::overwrite_existing, ec);
    }
    std::string records = request_records(c, target + "/records.log");
    std::ofstream(target + "/records.status") << records << "\n";
    std::printf("xferctl: debug bundle in %s (records: %s)\n", target.c_str(), records.c_str());
    return records.starts_with("OK") ? 0 : exit_error;
}

} // namespace

int main(int argc, char** argv) {
    std::string config_path;
    bool json = false;
    auto args = ringd::cli::parse(
        prog, argc, argv,
        {ringd::cli::required(ringd::cli::value("config", 'c', "FILE", config_path)),
         ringd::cli::flag("json", json)});
    if (!args) return args.error();
    const auto& words = args->operands;
    const std::string command = words.empty() ? "" : words[0];
    const std::size_t count = command == "debug-dump" ? 2 : 1;
    if (command != "start" && command != "stop" && command != "reload" && command != "upgrade" &&
        command != "status" && count == 1)
        return ringd::cli::usage_error(prog, command.empty() ? "a command is required"
                                                             : "unknown command '" + command + "'");
    if (words.size() != count)
        return ringd::cli::usage_error(prog, words.size() < count
                                                 ? "debug-dump needs a directory"
                                                 : "unexpected argument '" + words.back() + "'");
    std::error_code ec;
    auto absolute = std::filesystem::absolute(config_path, ec);
    auto c = xfer::load_config(absolute.string());
    if (!c) {
        std::fprintf(stderr, "xferctl: %s\n", c.error().c_str());
        return exit_error;
    }
    if (command == "start") return control(*c, ringd::control_action::start);
    if (command == "stop") return control(*c, ringd::control_action::stop);
    if (command == "reload") return control(*c, ringd::control_action::reload);
    if (command == "upgrade") return control(*c, ringd::control_action::upgrade);
    if (command == "status") return status(*c, json);
    return debug_dump(*c, words[1]);
}
