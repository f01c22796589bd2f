// SPDX-License-Identifier: MIT
// ringd-supervise/config.hpp — the TOML configuration, the directory scan (cssd: every executable
// in the listed directories is a service, the first of a name wins; init.d's K<nn>x files are not
// services but the stop order of S<mm>x) and the permission check that a script must pass before
// it is run. Errors name the file and the line.
#pragma once

#include <ringd/duration_text.hpp>
#include <ringd/log.hpp>
#include <ringd/read_file.hpp>
#include <ringd/result.hpp>
#include <ringd/start_order.hpp>
#include <ringd/supervisor.hpp>

#include <toml++/toml.h>

#include <dirent.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstring>
#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace supervise {

// What the config file says (every key has a default).
struct config {
    std::vector<std::string> directories;       // scanned for services, in this order
    std::vector<std::uint32_t> directory_lines; // the config's line naming each (for messages)
    double restart_delay_s = 5;                 // cssd: re-invoke 5 s after an exit
    double backoff_factor = 1;                  // 1: the delay stays fixed (cssd)
    double max_restart_delay_s = 60;
    unsigned start_limit_burst = 5;
    double start_limit_interval_s = 10;
    double stop_timeout_s = 10;
    double spawn_retry_interval_s = 5; // keepalive -t: retry a failed fork/exec
    // Exit statuses after which a service is not restarted (failed): sysexits' permanent ones.
    ringd::supervision::exit_code_set no_restart_exit_codes =
        ringd::supervision::permanent_failure_exit_codes;
    // Per service: the logs of this many earlier processes are kept beside the current one, as
    // long as they total at most keep_logs_bytes (the newest earlier one is always kept).
    std::size_t keep_logs = 5;
    std::uint64_t keep_logs_bytes = 64 << 20;
    std::string syslog_ident = "ringd-supervise";
    int syslog_facility = LOG_DAEMON;
    std::string syslog_facility_name = "daemon";
    // [services.NAME] listen = ["127.0.0.1:8080", ...]: addresses the supervisor binds once for
    // the directory service NAME and passes to every start of it (service_spec::listen).
    std::map<std::string, std::vector<std::string>> service_listen;

    // The default policy of every service (registered ones may override parts of it).
    [[nodiscard]] ringd::supervision::service_policy policy() const;
};

// Reads FILE. Errors: "config FILE: line N: ..." (syntax, unknown key, wrong type, bad value);
// the first fault when there are several.
[[nodiscard]] ringd::expected<config, std::string> load_config(const std::string& path);
// The same for TOML text already read; `path` only names it in errors.
[[nodiscard]] ringd::expected<config, std::string> parse_config(std::string_view text,
                                                                const std::string& path);

// Every fault of a config, not only the first (--check-config): the config holds the keys that
// were valid, the faults one "config FILE: line N: ..." each. A syntax error ends the reading.
struct config_read {
    config cfg;
    std::vector<std::string> faults;
};
[[nodiscard]] config_read read_config(std::string_view text, const std::string& path);
[[nodiscard]] config_read read_config_file(const std::string& path);

// Why a script may not run, or nothing: it must be a regular executable file, owned by root or
// by the supervisor's user, and not writable by group or others.
[[nodiscard]] ringd::expected<void, std::string> check_script(const std::string& path);

// One executable found by the scan.
struct found_script {
    std::string name;      // the file name: the service's name
    std::string path;      // directory/name
    std::string directory; // where it was found
    std::int64_t mtime_ns = 0;
    // From a kill entry K<nn>rest for this S<mm>rest: nn, and the entry's path; empty: none. ({}:
    // the scan's brace-initialisers that end before them stay free of
    // -Wmissing-field-initializers.)
    std::string stop_sequence{};
    std::string kill_path{};
};

// The outcome of scanning the directories: the services, and what was skipped or refused
// (one line each, to log).
//
// init.d(4): a file K<nn>rest (K, at least one digit) is a kill entry, never started. Every
// service S<mm>rest (same rest, in any of the directories) stops at nn: before the services
// without one, in ascending nn (service_spec::stop_sequence). A kill entry passes the same
// checks as a script (in init.d it is a script, run with 'stop'; one that others may write must
// not decide the order either): a refused one gives no order. Kill entries of the same rest: the
// first in kill order counts, the others are skipped. A kill entry without a service is skipped.
// "Kfoo" (no digit) is an ordinary service, as "Sfoo" is.
struct scan_result {
    std::vector<found_script> scripts;
    std::vector<std::string> refused; // "refuse DIR/x: ..." (err)
    std::vector<std::string> skipped; // "skip DIR/x: ..." (info)
};
[[nodiscard]] scan_result scan_directories(const std::vector<std::string>& directories);

// The spec of a directory service under the config's defaults.
[[nodiscard]] ringd::service_spec spec_of(const found_script& script, const config& c);

inline constexpr std::string_view directory_origin_prefix = "directory ";

// ringd-supervise --check-config (nginx -t): what a start would refuse, found without starting
// anything: every fault of the config file ("config F: line N: ..."), every listed directory that
// cannot be read ("config F: line N: directory D: ..."), every script the scan refuses ("refuse
// D/x: ..."), and a table that cannot be trusted ("read table T: line N: ..."). `notes`: what a
// start skips without an error (a backup file, a name found twice, a K file without its S file).
struct config_check {
    std::vector<std::string> faults;
    std::vector<std::string> notes;
    std::size_t directory_services = 0; // found by the scan and accepted
    std::size_t table_services = 0;     // in the table (a start resumes them)
};
// config_path empty: the defaults (no directories); table_path empty: no table is read (-i).
[[nodiscard]] config_check check_configuration(const std::string& config_path,
                                               const std::string& table_path);

// What a duration may be, for error messages.
inline constexpr std::string_view duration_range =
    "out of range (0 for none, or 0.001 to 9223372036 seconds)";

// =============================================================================================
// Implementation

inline ringd::supervision::service_policy config::policy() const {
    // load_config and the options checked every value; one that is not valid is 0 here, never
    // an overflowed conversion.
    auto seconds = [](double s) {
        return ringd::supervision::policy_duration(s).value_or(ringd::supervision::duration{});
    };
    ringd::supervision::service_policy p;
    p.restart = ringd::supervision::restart_policy::always;
    p.restart_delay = seconds(restart_delay_s);
    p.backoff_factor = backoff_factor;
    p.max_restart_delay = seconds(max_restart_delay_s);
    p.start_limit_burst = start_limit_burst;
    p.start_limit_interval = seconds(start_limit_interval_s);
    p.stop_timeout = seconds(stop_timeout_s);
    p.spawn_retry_interval = seconds(spawn_retry_interval_s);
    p.no_restart_exit_codes = no_restart_exit_codes;
    return p;
}

inline config_read read_config_file(const std::string& path) {
    auto text = ringd::read_file(path);
    if (!text) return {{}, {"config " + path + ": " + text.error().message()}};
    return read_config(*text, path);
}

inline ringd::expected<config, std::string> load_config(const std::string& path) {
    config_read r = read_config_file(path);
    if (!r.faults.empty()) return ringd::unexpected<std::string>(std::move(r.faults.front()));
    return std::move(r.cfg);
}

namespace detail {
// [services.NAME] tables: per directory service settings (today: listen). Every fault is
// reported through fault_at(line, text).
template <class Fault>
void read_service_settings(const toml::node& node, config& c, Fault& fault_at) {
    const toml::table* services = node.as_table();
    if (services == nullptr)
        return fault_at(node.source().begin.line, "services must hold [services.NAME] tables");
    for (auto&& [key, settings] : *services) {
        const std::string name(key.str());
        const std::uint32_t line = settings.source().begin.line;
        if (auto ok = ringd::check_service_name(name); !ok) {
            fault_at(line, "[services." + name + "]: " + ok.error());
            continue;
        }
        const toml::table* table = settings.as_table();
        if (table == nullptr) {
            fault_at(line, "services." + name + " must be a table");
            continue;
        }
        for (auto&& [skey, value] : *table) {
            const std::string k(skey.str());
            const std::uint32_t at = value.source().begin.line;
            const toml::array* list = value.as_array();
            if (k != "listen") {
                fault_at(at, "unknown key 'services." + name + "." + k + "' (known: listen)");
                continue;
            }
            if (list == nullptr) {
                fault_at(at, "services." + name + ".listen must be a list of addresses");
                continue;
            }
            std::vector<std::string>& out = c.service_listen[name];
            for (auto&& item : *list) {
                const std::uint32_t item_at =
                    item.source().begin.line != 0 ? item.source().begin.line : at;
                auto address = item.value<std::string>();
                if (!item.is_string() || !address) {
                    fault_at(item_at, "services." + name + ".listen must hold address strings");
                    continue;
                }
                if (auto parsed = ringd::socket_address::parse(*address); !parsed) {
                    fault_at(item_at,
                             "services." + name + ".listen: '" + *address + "': " + parsed.error());
                    continue;
                }
                out.push_back(*address);
            }
        }
    }
}
} // namespace detail

inline ringd::expected<config, std::string> parse_config(std::string_view text,
                                                         const std::string& path) {
    config_read r = read_config(text, path);
    if (!r.faults.empty()) return ringd::unexpected<std::string>(std::move(r.faults.front()));
    return std::move(r.cfg);
}

inline config_read read_config(std::string_view text, const std::string& path) {
    config_read r;
    // By line (the table iterates by key): reported in the file's order.
    std::multimap<std::uint32_t, std::string> faults;
    auto fault_at = [&](std::uint32_t line, const std::string& why) {
        faults.emplace(line, "config " + path + ": line " + std::to_string(line) + ": " + why);
    };
    toml::table table;
    try {
        table = toml::parse(text, path);
    } catch (const toml::parse_error& e) {
        if (e.source().begin.line == 0) // it never got to a line: the file itself
            r.faults.push_back("config " + path + ": " + std::string(e.description()));
        else
            fault_at(e.source().begin.line, std::string(e.description()));
        for (auto& f : faults) r.faults.push_back(std::move(f.second));
        return r; // toml++ stops at the first syntax error: nothing more can be read
    }
    config& c = r.cfg;
    for (auto&& [key, node] : table) {
        const std::uint32_t line = node.source().begin.line;
        const std::string k(key.str());
        // An integer or float.
        auto number = [&]() -> std::optional<double> {
            if (const auto* i = node.as_integer()) return static_cast<double>(i->get());
            if (const auto* f = node.as_floating_point()) return f->get();
            return std::nullopt;
        };
        // A number of seconds that a policy duration can hold (supervision::policy_duration).
        auto seconds = [&](double& out) {
            const std::optional<double> v = number();
            if (!v)
                fault_at(line, k + " must be a number of seconds");
            else if (!ringd::supervision::policy_duration(*v))
                fault_at(line,
                         k + " = " + ringd::seconds_text(*v) + ": " + std::string(duration_range));
            else
                out = *v;
        };
        // The line of a list's item (toml++ knows it for most), else the key's.
        auto item_line = [&](const toml::node& item) {
            return item.source().begin.line != 0 ? item.source().begin.line : line;
        };
        if (k == "directories") {
            const toml::array* list = node.as_array();
            if (list == nullptr) {
                fault_at(line, "directories must be a list of paths");
                continue;
            }
            for (auto&& item : *list) {
                auto dir = item.value<std::string>();
                if (!dir || dir->empty() || (*dir)[0] != '/') {
                    fault_at(item_line(item), "directories must hold absolute paths");
                    continue;
                }
                c.directories.push_back(*dir);
                c.directory_lines.push_back(item_line(item));
            }
        } else if (k == "restart_delay_s") {
            seconds(c.restart_delay_s);
        } else if (k == "max_restart_delay_s") {
            seconds(c.max_restart_delay_s);
        } else if (k == "start_limit_interval_s") {
            seconds(c.start_limit_interval_s);
        } else if (k == "stop_timeout_s") {
            seconds(c.stop_timeout_s);
        } else if (k == "spawn_retry_interval_s") {
            seconds(c.spawn_retry_interval_s);
        } else if (k == "backoff_factor") {
            const std::optional<double> v = number();
            if (!v || !std::isfinite(*v) || *v < 1)
                fault_at(line, "backoff_factor must be a finite number of at least 1");
            else
                c.backoff_factor = *v;
        } else if (k == "start_limit_burst") {
            // Checked as an integer before it is read as one: 1E41 is a float, out of range.
            const auto* v = node.as_integer();
            if (v == nullptr || v->get() < 0 ||
                v->get() > ringd::supervision::max_start_limit_burst)
                fault_at(line, "start_limit_burst must be an integer in 0.." +
                                   std::to_string(ringd::supervision::max_start_limit_burst) +
                                   " (0: no limit)");
            else
                c.start_limit_burst = static_cast<unsigned>(v->get());
        } else if (k == "no_restart_exit_codes") {
            const toml::array* list = node.as_array();
            if (list == nullptr) {
                fault_at(line, "no_restart_exit_codes must be a list of exit statuses");
                continue;
            }
            ringd::supervision::exit_code_set codes;
            bool valid = true;
            for (auto&& item : *list) {
                const auto* code = item.as_integer();
                if (code == nullptr || code->get() < 0 || code->get() > 255) {
                    fault_at(item_line(item),
                             "no_restart_exit_codes must hold exit statuses in 0..255");
                    valid = false;
                    continue;
                }
                codes.add(static_cast<int>(code->get()));
            }
            if (valid) c.no_restart_exit_codes = codes;
        } else if (k == "keep_logs") {
            const auto* v = node.as_integer();
            if (v == nullptr || v->get() < 1 || v->get() > 1000)
                fault_at(line, "keep_logs must be an integer in 1..1000");
            else
                c.keep_logs = static_cast<std::size_t>(v->get());
        } else if (k == "keep_logs_bytes") {
            const auto* v = node.as_integer();
            if (v == nullptr || v->get() < 0)
                fault_at(line, "keep_logs_bytes must be a number of bytes (an integer >= 0)");
            else
                c.keep_logs_bytes = static_cast<std::uint64_t>(v->get());
        } else if (k == "syslog_ident") {
            auto v = node.value<std::string>();
            if (!node.is_string() || !v || v->empty())
                fault_at(line, "syslog_ident must be a non-empty string");
            else
                c.syslog_ident = *v;
        } else if (k == "syslog_facility") {
            auto v = node.value<std::string>();
            auto f = v ? ringd::parse_syslog_facility(*v) : std::nullopt;
            if (!node.is_string() || !f) {
                fault_at(line, "syslog_facility must be daemon, user, local0..local7, ...");
            } else {
                c.syslog_facility = *f;
                c.syslog_facility_name = *v;
            }
        } else if (k == "services") {
            detail::read_service_settings(node, c, fault_at);
        } else {
            fault_at(line, "unknown key '" + k +
                               "' (known: directories, restart_delay_s, "
                               "backoff_factor, max_restart_delay_s, start_limit_burst, "
                               "start_limit_interval_s, stop_timeout_s, spawn_retry_interval_s, "
                               "no_restart_exit_codes, keep_logs, keep_logs_bytes, "
                               "syslog_ident, syslog_facility, services)");
        }
    }
    for (auto& f : faults) r.faults.push_back(std::move(f.second));
    return r;
}

inline ringd::expected<void, std::string> check_script(const std::string& path) {
    struct stat st {};
    if (::stat(path.c_str(), &st) != 0)
        return ringd::unexpected<std::string>(path + ": " + std::strerror(errno));
    if (!S_ISREG(st.st_mode)) return ringd::unexpected<std::string>(path + ": not a regular file");
    const uid_t me = ::geteuid();
    if (st.st_uid != 0 && st.st_uid != me)
        return ringd::unexpected<std::string>(path + ": owned by uid " + std::to_string(st.st_uid) +
                                              "; it must belong to root or to uid " +
                                              std::to_string(me) + " (the supervisor's user)");
    if ((st.st_mode & (S_IWGRP | S_IWOTH)) != 0) {
        char mode[8];
        std::snprintf(mode, sizeof mode, "%04o", static_cast<unsigned>(st.st_mode & 07777));
        return ringd::unexpected<std::string>(
            path + ": writable by " + ((st.st_mode & S_IWOTH) != 0 ? "others" : "its group") +
            " (mode " + mode + "); a script run by the supervisor must not be");
    }
    if ((st.st_mode & 0111) == 0) return ringd::unexpected<std::string>(path + ": not executable");
    return {};
}

inline scan_result scan_directories(const std::vector<std::string>& directories) {
    scan_result out;
    std::map<std::string, std::string> taken;               // name → where it was found first
    std::vector<std::pair<std::string, std::string>> kills; // kill entries: name, path
    for (const std::string& dir : directories) {
        DIR* d = ::opendir(dir.c_str());
        if (d == nullptr) {
            out.refused.push_back("scan " + dir + ": " + std::strerror(errno));
            continue;
        }
        std::vector<std::string> names;
        while (dirent* e = ::readdir(d))
            if (e->d_name[0] != '.') names.emplace_back(e->d_name);
        ::closedir(d);
        std::sort(names.begin(), names.end());
        for (const std::string& name : names) {
            const std::string path = dir + "/" + name;
            struct stat st {};
            if (::stat(path.c_str(), &st) != 0 || !S_ISREG(st.st_mode) || (st.st_mode & 0111) == 0)
                continue; // not an executable file: not a service
            if (name.ends_with("~") || name.find(".dpkg-") != std::string::npos) {
                out.skipped.push_back("skip " + path + ": a backup file");
                continue;
            }
            if (auto ok = ringd::check_service_name(name); !ok) {
                out.refused.push_back("refuse " + path + ": " + ok.error());
                continue;
            }
            if (auto first = taken.find(name); first != taken.end()) {
                out.skipped.push_back("skip " + path + ": " + name + " is already provided by " +
                                      first->second);
                continue;
            }
            taken.emplace(name, path);
            if (auto ok = check_script(path); !ok) {
                out.refused.push_back("refuse " + ok.error());
                continue;
            }
            if (ringd::supervision::is_kill_entry(name)) {
                kills.emplace_back(name, path);
                continue;
            }
            out.scripts.push_back({name, path, dir,
                                   static_cast<std::int64_t>(st.st_mtim.tv_sec) * 1'000'000'000 +
                                       st.st_mtim.tv_nsec});
        }
    }
    std::sort(kills.begin(), kills.end(), [](const auto& a, const auto& b) {
        return ringd::supervision::kills_before(a.first, b.first);
    });
    for (const auto& [name, path] : kills) {
        const auto kill = ringd::supervision::kill_key_of(name);
        std::string why = "kill entry without a start entry S.." + std::string(kill.rest);
        bool used = false;
        for (found_script& s : out.scripts) {
            const auto start = ringd::supervision::start_key_of(s.name);
            if (!start.sequenced || start.rest != kill.rest) continue;
            if (!s.kill_path.empty()) {
                why = s.name + " already stops by " + s.kill_path;
                continue;
            }
            s.stop_sequence = kill.number.empty() ? "0" : std::string(kill.number);
            s.kill_path = path;
            used = true;
        }
        if (!used) out.skipped.push_back("skip " + path + ": " + why);
    }
    return out;
}

inline config_check check_configuration(const std::string& config_path,
                                        const std::string& table_path) {
    config_check out;
    config_read r;
    if (!config_path.empty()) r = read_config_file(config_path);
    out.faults = std::move(r.faults);
    // A directory that cannot be read contributes no service to the scan either: leaving it out
    // changes nothing but lets its fault name the config line.
    std::vector<std::string> readable;
    for (std::size_t i = 0; i < r.cfg.directories.size(); ++i) {
        const std::string& dir = r.cfg.directories[i];
        DIR* d = ::opendir(dir.c_str());
        if (d == nullptr) {
            out.faults.push_back("config " + config_path + ": line " +
                                 std::to_string(r.cfg.directory_lines[i]) + ": directory " + dir +
                                 ": " + std::strerror(errno));
            continue;
        }
        ::closedir(d);
        readable.push_back(dir);
    }
    scan_result scan = scan_directories(readable);
    out.faults.insert(out.faults.end(), scan.refused.begin(), scan.refused.end());
    out.notes = std::move(scan.skipped);
    out.directory_services = scan.scripts.size();
    if (!table_path.empty()) {
        auto table = ringd::supervisor::read_table(table_path);
        if (table)
            out.table_services = table->size();
        else
            out.faults.push_back(table.error());
    }
    return out;
}

inline ringd::service_spec spec_of(const found_script& script, const config& c) {
    ringd::service_spec s;
    s.name = script.name;
    s.argv = {script.path};
    s.policy = c.policy();
    s.origin = std::string(directory_origin_prefix) + script.directory;
    s.version = script.mtime_ns;
    s.stop_sequence = script.stop_sequence;
    if (auto it = c.service_listen.find(script.name); it != c.service_listen.end())
        s.listen = it->second;
    return s;
}

} // namespace supervise
