// SPDX-License-Identifier: MIT
// ringd/detail/daemon_reload_status.hpp — the reload-status record beside the PID file.
// The daemon writes it in place (its descriptor was opened before privileges were dropped, so no
// rename in a root-owned directory is needed); ringd-control --reload waits on it with inotify.
// One fixed-size record, the generation at both ends: a reader that catches a write half-way
// sees two different generations and reads again (writes and reads copy in ascending order).
//   "<gen:20> <pid> <state> <reason...>" padded with spaces, then " <gen:20>\n"; 512 bytes.
// state: running (no reload yet), reloading, ok, failed.
#pragma once

#include <charconv>
#include <cstdint>
#include <cstdio>
#include <optional>
#include <string>
#include <string_view>
#include <sys/types.h>

namespace ringd::detail {

inline constexpr std::size_t reload_record_size = 512;

// The sigqueue value (si_code SI_QUEUE) of the SIGTERM that `ringd-control --upgrade` sends to
// the daemon it replaces: a successor serves on its listening sockets now
// (daemon_context::handed_over()).
inline constexpr int handover_stop_value = 0x52554744; // "RUGD"

struct reload_record {
    std::uint64_t generation = 0; // reloads started since the daemon started
    pid_t pid = 0;                // the daemon that wrote it
    std::string state;            // running, reloading, ok, failed
    std::string reason;           // why it failed (empty otherwise)
};

inline std::string format_reload_record(const reload_record& r) {
    char head[64];
    std::snprintf(head, sizeof head, "%020llu %d ", static_cast<unsigned long long>(r.generation),
                  static_cast<int>(r.pid));
    std::string body = head + r.state;
    if (!r.reason.empty()) body += " " + r.reason;
    for (auto& c : body)
        if (c == '\n') c = ' ';
    constexpr std::size_t tail = 22; // " " + 20 digits + "\n"
    if (body.size() > reload_record_size - tail) body.resize(reload_record_size - tail);
    body.resize(reload_record_size - tail, ' ');
    char end[32];
    std::snprintf(end, sizeof end, " %020llu\n", static_cast<unsigned long long>(r.generation));
    return body + end;
}

// A complete, consistent record, or nothing (empty file, torn read, foreign content). Every
// field is checked in place: nothing is read outside `text`, whatever it holds.
inline std::optional<reload_record> parse_reload_record(std::string_view text) {
    constexpr std::size_t digits = 20;
    constexpr std::size_t tail_at = reload_record_size - digits - 1; // the tail's first digit
    // One line (the writer turns any newline of a reason into a space).
    if (text.size() != reload_record_size || text.find('\n') != reload_record_size - 1 ||
        text[digits] != ' ' || text[tail_at - 1] != ' ')
        return std::nullopt;
    // A number that fills [from, from + size) exactly.
    auto whole = [](std::string_view field, auto& out) {
        const char* end = field.data() + field.size();
        auto [ptr, ec] = std::from_chars(field.data(), end, out);
        return !field.empty() && ec == std::errc{} && ptr == end;
    };
    reload_record r;
    std::uint64_t tail_gen = 0;
    if (!whole(text.substr(0, digits), r.generation) ||
        !whole(text.substr(tail_at, digits), tail_gen) || tail_gen != r.generation)
        return std::nullopt;
    std::string_view rest = text.substr(digits + 1, tail_at - 1 - (digits + 1));
    auto sp = rest.find(' ');
    if (sp == std::string_view::npos || !whole(rest.substr(0, sp), r.pid) || r.pid <= 0)
        return std::nullopt;
    rest.remove_prefix(sp + 1);
    while (!rest.empty() && rest.back() == ' ') rest.remove_suffix(1);
    if (rest.empty() || rest.front() == ' ') return std::nullopt; // no state after the pid
    sp = rest.find(' ');
    r.state = std::string(rest.substr(0, sp));
    if (sp != std::string_view::npos) r.reason = std::string(rest.substr(sp + 1));
    return r;
}

} // namespace ringd::detail
