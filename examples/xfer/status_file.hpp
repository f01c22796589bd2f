// xfer/status_file.hpp — what the master knows about its children, as JSON in
// run_dir/xferrd.status.json (replaced atomically), for `xferctl status` and debug-dump.
#pragma once

#include "child_supervisor.hpp"
#include "config.hpp"

#include <nlohmann/json.hpp>

#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <ctime>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

namespace xfer {

// Seconds since the epoch for a steady-clock instant in the past.
inline std::int64_t to_epoch_seconds(std::chrono::steady_clock::time_point t) {
    auto ago = std::chrono::steady_clock::now() - t;
    return std::chrono::duration_cast<std::chrono::seconds>((std::chrono::system_clock::now() - ago).time_since_epoch()).count();
}

inline void write_status_file(const config& c, std::int64_t master_started,
                              const std::vector<std::unique_ptr<supervised_child>>& children) {
    nlohmann::json doc;
    doc["master"] = {{"name", "xferrd"}, {"pid", ::getpid()}, {"started", master_started}, {"config", c.path}};
    doc["processes"] = nlohmann::json::array();
    for (const auto& child : children) {
        bool up = child->state() == ringd::supervision::state::running;
        doc["processes"].push_back({{"name", child->spec().name},
                                    {"pid", child->pid()},
                                    {"state", std::string(ringd::supervision::to_string(child->state()))},
                                    {"up_since", up ? to_epoch_seconds(child->up_since()) : 0},
                                    {"restarts", child->restarts()},
                                    {"log", child->log_path()}});
    }
    std::string path = c.status_file();
    {
        std::ofstream out(path + ".tmp", std::ios::trunc);
        out << doc.dump(2) << "\n";
    }
    std::rename((path + ".tmp").c_str(), path.c_str());
}

} // namespace xfer
