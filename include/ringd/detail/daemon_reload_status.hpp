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

// A complete, consistent record, or nothing (empty file, torn read, foreign content).
inline std::optional<reload_record> parse_reload_record(std::string_view text) {
    if (text.size() != reload_record_size || text.back() != '\n') return std::nullopt;
    reload_record r;
    std::uint64_t tail_gen = 0;
    auto head_end = text.data() + 20;
    if (std::from_chars(text.data(), head_end, r.generation).ptr != head_end) return std::nullopt;
    auto tail = text.substr(reload_record_size - 21, 20);
    if (std::from_chars(tail.data(), tail.data() + 20, tail_gen).ptr != tail.data() + 20 ||
        tail_gen != r.generation)
        return std::nullopt;
    auto rest = text.substr(21, reload_record_size - 22 - 21);
    auto sp = rest.find(' ');
    if (std::from_chars(rest.data(), rest.data() + sp, r.pid).ec != std::errc{})
        return std::nullopt;
    rest.remove_prefix(sp + 1);
    while (!rest.empty() && rest.back() == ' ') rest.remove_suffix(1);
    sp = rest.find(' ');
    r.state = std::string(rest.substr(0, sp));
    if (sp != std::string_view::npos) r.reason = std::string(rest.substr(sp + 1));
    return r;
}

} // namespace ringd::detail
