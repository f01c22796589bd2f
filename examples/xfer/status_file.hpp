// SPDX-License-Identifier: MIT
// xfer/status_file.hpp — what the master knows about its children, as JSON in
// run_dir/xferrd.status.json (replaced atomically), for `xferctl status` and debug-dump.
#pragma once

#include "config.hpp"

#include <ringd/atomic_file.hpp>
#include <ringd/supervisor.hpp>

#include <nlohmann/json.hpp>

#include <unistd.h>

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <string>
#include <vector>

namespace xfer {

// Seconds since the epoch of the instant `ago` before now.
inline std::int64_t epoch_seconds_ago(std::chrono::seconds ago) {
    return std::chrono::duration_cast<std::chrono::seconds>(
               (std::chrono::system_clock::now() - ago).time_since_epoch())
        .count();
}

// `children`: the supervisor's list(), in start order. Errors: the write's (the old file stays).
inline ringd::result<void> write_status_file(const config& c, std::int64_t master_started,
                                             const std::vector<ringd::service_status>& children) {
    nlohmann::json doc;
    doc["master"] = {
        {"name", "xferrd"}, {"pid", ::getpid()}, {"started", master_started}, {"config", c.path}};
    doc["processes"] = nlohmann::json::array();
    for (const auto& child : children) {
        bool up = child.state == ringd::supervision::state::running;
        doc["processes"].push_back(
            {{"name", child.name},
             {"pid", child.pid},
             {"state", std::string(ringd::supervision::to_string(child.state))},
             {"up_since", up ? epoch_seconds_ago(child.in_state) : 0},
             {"restarts", child.restarts},
             {"log", child.log_path}});
    }
    // Rewritten at every change of a child, and meaningless after a reboot: no fsync.
    return ringd::write_file_atomically(c.status_file(), doc.dump(2) + "\n", 0644,
                                        ringd::file_durability::survives_process_crash);
}

} // namespace xfer
