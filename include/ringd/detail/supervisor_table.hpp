// SPDX-License-Identifier: MIT
// ringd/detail/supervisor_table.hpp — the supervisor's persistent table as text: the format, and
// the parser that names the line of a fault. (detail/supervisor_files.hpp reads and writes the
// files, the table with write_file_atomically from atomic_file.hpp.)
//
// The table: a header line, then one block per service; every value is one token, "=" followed
// by the value with bytes outside 0x21..0x7e and '%' written as %XX, so any string round-trips:
//   ringd-supervise-table 1
//   service =web
//   argv =/srv/web/run =--port =8080
//   ...
//   wanted up
//   end
// (A block may also carry "process PID START =LOG"; the supervisor keeps processes in
// <table>.pids instead, one "=name PID START =LOG" line each, replaced without fsync, with a
// fifth word "starting" for a process that has not reported readiness yet.)
#pragma once

#include <ringd/result.hpp>
#include <ringd/service_spec.hpp>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <charconv>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace ringd::detail {

inline constexpr std::string_view supervisor_table_header = "ringd-supervise-table 1";

inline std::string supervisor_table_encode(std::string_view value) {
    static constexpr char hex[] = "0123456789ABCDEF";
    std::string out = "=";
    for (char c : value) {
        const auto b = static_cast<unsigned char>(c);
        if (b > 0x20 && b < 0x7f && b != '%') {
            out += c;
        } else {
            out += '%';
            out += hex[b >> 4];
            out += hex[b & 15];
        }
    }
    return out;
}

inline std::optional<std::string> supervisor_table_decode(std::string_view token) {
    if (token.empty() || token[0] != '=') return std::nullopt;
    std::string out;
    for (std::size_t i = 1; i < token.size(); ++i) {
        if (token[i] != '%') {
            out += token[i];
            continue;
        }
        if (i + 2 >= token.size()) return std::nullopt;
        unsigned v = 0;
        auto [end, ec] = std::from_chars(token.data() + i + 1, token.data() + i + 3, v, 16);
        if (ec != std::errc() || end != token.data() + i + 3) return std::nullopt;
        out += static_cast<char>(v);
        i += 2;
    }
    return out;
}

inline std::vector<std::string_view> supervisor_table_split(std::string_view line) {
    std::vector<std::string_view> out;
    while (!line.empty()) {
        const auto space = line.find(' ');
        if (space != 0) out.push_back(line.substr(0, space));
        if (space == std::string_view::npos) break;
        line.remove_prefix(space + 1);
    }
    return out;
}

inline std::string supervisor_table_format(const std::vector<table_entry>& entries) {
    using std::to_string;
    auto ms = [](supervision::duration d) {
        return to_string(std::chrono::duration_cast<std::chrono::milliseconds>(d).count());
    };
    std::string out(supervisor_table_header);
    out += '\n';
    for (const table_entry& e : entries) {
        const service_spec& s = e.spec;
        const supervision::service_policy& p = s.policy;
        out += "service " + supervisor_table_encode(s.name) + "\n";
        out += "origin " + supervisor_table_encode(s.origin) + "\n";
        out += "version " + to_string(s.version) + "\n";
        out += "argv";
        for (const std::string& a : s.argv) out += " " + supervisor_table_encode(a);
        out += "\nenv";
        for (const std::string& v : s.environment) out += " " + supervisor_table_encode(v);
        out += "\ncwd " + supervisor_table_encode(s.cwd) + "\n";
        out += "user " + supervisor_table_encode(s.user) + " " + supervisor_table_encode(s.group) +
               "\n";
        out += "priority " + to_string(s.priority) + "\n";
        // Only when set: a table without it stays readable by a supervisor that predates it.
        if (!s.stop_sequence.empty()) out += "stop_sequence " + s.stop_sequence + "\n";
        if (!s.listen.empty()) {
            out += "listen";
            for (const std::string& a : s.listen) out += " " + supervisor_table_encode(a);
            out += "\n";
        }
        // Only when not the default, for the same reason (absent: the default).
        if (p.no_restart_exit_codes != supervision::permanent_failure_exit_codes) {
            out += "no_restart_exit";
            for (int c = 0; c < 256; ++c)
                if (p.no_restart_exit_codes.contains(c)) out += " " + to_string(c);
            out += "\n";
        }
        // Whether a spawn waits for it (policy.needs_readiness): a word that a supervisor which
        // predates it ignores; without it, a service with a protocol waits.
        out += "readiness " + std::string(to_string(s.readiness)) + " " +
               to_string(s.notification_fd) + (p.needs_readiness ? " wait" : " nowait") + "\n";
        out += "policy " + std::string(supervision::to_string(p.restart)) + " " +
               ms(p.restart_delay) + " " + to_string(p.backoff_factor) + " " +
               ms(p.max_restart_delay) + " " + ms(p.stable_after) + " " +
               to_string(p.start_limit_burst) + " " + ms(p.start_limit_interval) + " " +
               to_string(p.stop_signal) + " " + ms(p.stop_timeout) + " " + ms(p.ready_timeout) +
               " " + ms(p.spawn_retry_interval) + "\n";
        out += std::string("wanted ") + (e.wanted_up ? "up" : "down") + "\n";
        if (e.pid > 0)
            out += "process " + to_string(e.pid) + " " + to_string(e.start_time) + " " +
                   supervisor_table_encode(e.log_path) + "\n";
        else if (!e.log_path.empty())
            out += "log " + supervisor_table_encode(e.log_path) + "\n";
        out += "end\n";
    }
    return out;
}

// Parses a table; the error names the line: "line 7: 'policy' needs 11 values".
inline expected<std::vector<table_entry>, std::string>
supervisor_table_parse(std::string_view text) {
    std::vector<table_entry> entries;
    std::optional<table_entry> current;
    int number = 0;
    auto fail = [&](const std::string& why) {
        return unexpected<std::string>("line " + std::to_string(number) + ": " + why);
    };
    bool header = false;
    while (!text.empty()) {
        ++number;
        const auto nl = text.find('\n');
        const std::string_view line = text.substr(0, nl);
        text.remove_prefix(nl == std::string_view::npos ? text.size() : nl + 1);
        if (!header) {
            if (line != supervisor_table_header)
                return fail("not a ringd-supervise table (expected '" +
                            std::string(supervisor_table_header) + "')");
            header = true;
            continue;
        }
        const auto words = supervisor_table_split(line);
        if (words.empty()) {
            if (line.empty()) continue;
            return fail("a line of only spaces");
        }
        const std::string_view key = words[0];
        auto text_at = [&](std::size_t i) -> std::optional<std::string> {
            return i < words.size() ? supervisor_table_decode(words[i]) : std::nullopt;
        };
        auto integer_at = [&](std::size_t i, auto& out) {
            if (i >= words.size()) return false;
            auto [end, ec] =
                std::from_chars(words[i].data(), words[i].data() + words[i].size(), out);
            return ec == std::errc() && end == words[i].data() + words[i].size();
        };
        if (key == "service") {
            if (current) return fail("'service' inside the block of '" + current->spec.name + "'");
            auto name = text_at(1);
            if (!name || words.size() != 2) return fail("'service' needs one name");
            current.emplace();
            current->spec.name = *name;
            continue;
        }
        if (!current) return fail("'" + std::string(key) + "' outside a service block");
        service_spec& s = current->spec;
        if (key == "end") {
            entries.push_back(std::move(*current));
            current.reset();
        } else if (key == "origin") {
            auto v = text_at(1);
            if (!v) return fail("bad origin");
            s.origin = *v;
        } else if (key == "version") {
            if (!integer_at(1, s.version)) return fail("bad version");
        } else if (key == "argv" || key == "env" || key == "listen") {
            auto& list = key == "argv" ? s.argv : key == "env" ? s.environment : s.listen;
            for (std::size_t i = 1; i < words.size(); ++i) {
                auto v = text_at(i);
                if (!v) return fail("bad value in '" + std::string(key) + "'");
                list.push_back(*v);
            }
        } else if (key == "cwd") {
            auto v = text_at(1);
            if (!v) return fail("bad cwd");
            s.cwd = *v;
        } else if (key == "user") {
            auto u = text_at(1);
            auto g = text_at(2);
            if (!u || !g) return fail("'user' needs a user and a group");
            s.user = *u;
            s.group = *g;
        } else if (key == "priority") {
            if (!integer_at(1, s.priority)) return fail("bad priority");
        } else if (key == "stop_sequence") {
            if (words.size() != 2 || words[1].find_first_not_of("0123456789") != std::string::npos)
                return fail("bad stop_sequence");
            s.stop_sequence = std::string(words[1]);
        } else if (key == "readiness") {
            auto kind = words.size() > 1 ? parse_readiness(words[1]) : std::nullopt;
            if (!kind || !integer_at(2, s.notification_fd) || words.size() > 4 ||
                (words.size() == 4 && words[3] != "wait" && words[3] != "nowait"))
                return fail("bad readiness");
            s.readiness = *kind;
            s.policy.needs_readiness =
                words.size() == 4 ? words[3] == "wait" : *kind != readiness_protocol::none;
        } else if (key == "policy") {
            if (words.size() != 12) return fail("'policy' needs 11 values");
            supervision::service_policy& p = s.policy;
            auto restart = parse_restart_policy(words[1]);
            if (!restart) return fail("bad restart policy '" + std::string(words[1]) + "'");
            p.restart = *restart;
            // Milliseconds, except the burst (value 5 here, 0..max_start_limit_burst) and the
            // stop signal (value 7, 1..64); every value in range of what it becomes.
            static constexpr const char* names[9] = {
                "restart delay",     "max restart delay",    "stable after",
                "start limit burst", "start limit interval", "stop signal",
                "stop timeout",      "ready timeout",        "spawn retry interval"};
            long long v[9] = {};
            const std::size_t at[9] = {2, 4, 5, 6, 7, 8, 9, 10, 11};
            for (int i = 0; i < 9; ++i) {
                const long long high = i == 3   ? supervision::max_start_limit_burst
                                       : i == 5 ? 64
                                                : supervision::max_policy_duration_ms;
                const long long low = i == 5 ? 1 : 0;
                if (!integer_at(at[i], v[i]) || v[i] < low || v[i] > high)
                    return fail("'policy': " + std::string(names[i]) + " '" +
                                std::string(words[at[i]]) + "' is not an integer in " +
                                std::to_string(low) + ".." + std::to_string(high));
            }
            std::string factor(words[3]);
            char* end = nullptr;
            p.backoff_factor = std::strtod(factor.c_str(), &end);
            if (end == factor.c_str() || *end != '\0' || !std::isfinite(p.backoff_factor) ||
                p.backoff_factor < 1)
                return fail("bad backoff factor '" + factor + "' (a finite number, at least 1)");
            using std::chrono::milliseconds;
            p.restart_delay = milliseconds(v[0]);
            p.max_restart_delay = milliseconds(v[1]);
            p.stable_after = milliseconds(v[2]);
            p.start_limit_burst = static_cast<unsigned>(v[3]);
            p.start_limit_interval = milliseconds(v[4]);
            p.stop_signal = static_cast<int>(v[5]);
            p.stop_timeout = milliseconds(v[6]);
            p.ready_timeout = milliseconds(v[7]);
            p.spawn_retry_interval = milliseconds(v[8]);
        } else if (key == "wanted") {
            if (words.size() != 2 || (words[1] != "up" && words[1] != "down"))
                return fail("'wanted' is up or down");
            current->wanted_up = words[1] == "up";
        } else if (key == "no_restart_exit") {
            supervision::exit_code_set codes;
            for (std::size_t i = 1; i < words.size(); ++i) {
                int code = -1;
                if (!integer_at(i, code) || code < 0 || code > 255)
                    return fail("'no_restart_exit': '" + std::string(words[i]) +
                                "' is not an exit status in 0..255");
                codes.add(code);
            }
            s.policy.no_restart_exit_codes = codes;
        } else if (key == "process") {
            auto log = text_at(3);
            if (!integer_at(1, current->pid) || current->pid <= 0 ||
                !integer_at(2, current->start_time) || !log)
                return fail("'process' needs a pid, a start time and a log path");
            current->log_path = *log;
        } else if (key == "log") {
            auto log = text_at(1);
            if (!log) return fail("bad log path");
            current->log_path = *log;
        } else {
            return fail("unknown key '" + std::string(key) + "'");
        }
    }
    if (!header)
        return fail("empty file (expected '" + std::string(supervisor_table_header) + "')");
    if (current) return fail("the block of '" + current->spec.name + "' has no 'end'");
    return entries;
}

inline constexpr std::string_view supervisor_pids_header = "ringd-supervise-pids 1";

// The processes of the services, one line each: "=name pid start_time =log", and " starting"
// when the process has not reported readiness (only then: a supervisor that predates the word
// reads every other line).
inline std::string supervisor_pids_format(const std::vector<table_entry>& entries) {
    std::string out(supervisor_pids_header);
    out += '\n';
    for (const table_entry& e : entries)
        out += supervisor_table_encode(e.spec.name) + " " + std::to_string(e.pid) + " " +
               std::to_string(e.start_time) + " " + supervisor_table_encode(e.log_path) +
               (e.ready ? "\n" : " starting\n");
    return out;
}

// Entries with only a name, pid, start time, log path and readiness.
inline expected<std::vector<table_entry>, std::string>
supervisor_pids_parse(std::string_view text) {
    std::vector<table_entry> out;
    int number = 0;
    while (!text.empty()) {
        ++number;
        const auto nl = text.find('\n');
        const std::string_view line = text.substr(0, nl);
        text.remove_prefix(nl == std::string_view::npos ? text.size() : nl + 1);
        if (number == 1) {
            if (line != supervisor_pids_header)
                return unexpected<std::string>("line 1: expected '" +
                                               std::string(supervisor_pids_header) + "'");
            continue;
        }
        if (line.empty()) continue;
        const auto words = supervisor_table_split(line);
        table_entry e;
        const bool shape = words.size() == 4 || (words.size() == 5 && words[4] == "starting");
        auto name = shape ? supervisor_table_decode(words[0]) : std::nullopt;
        auto log = shape ? supervisor_table_decode(words[3]) : std::nullopt;
        auto number_at = [&](std::size_t i, auto& v) {
            auto [end, ec] = std::from_chars(words[i].data(), words[i].data() + words[i].size(), v);
            return ec == std::errc() && end == words[i].data() + words[i].size();
        };
        if (!name || !log || !number_at(1, e.pid) || e.pid < 0 || !number_at(2, e.start_time))
            return unexpected<std::string>("line " + std::to_string(number) +
                                           ": expected '=name pid start_time =log [starting]'");
        e.spec.name = *name;
        e.ready = words.size() == 4;
        e.log_path = *log;
        out.push_back(std::move(e));
    }
    return out;
}

} // namespace ringd::detail
