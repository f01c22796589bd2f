// SPDX-License-Identifier: MIT
// ringd/log_level.hpp — syslog's priorities as a type, with their names. Shared by the logger
// (log.hpp) and the pure supervision state machine (supervision_state.hpp), which hands its
// processes' log messages to the logger unchanged.
#pragma once

#include <syslog.h>

#include <optional>
#include <string_view>

namespace ringd {

// syslog(3)'s priorities, most severe first; the numbers are syslog's own.
enum class log_level : int {
    emerg = LOG_EMERG,
    alert = LOG_ALERT,
    crit = LOG_CRIT,
    err = LOG_ERR,
    warning = LOG_WARNING,
    notice = LOG_NOTICE,
    info = LOG_INFO,
    debug = LOG_DEBUG,
};

// "emerg", "alert", ..., "debug"; "invalid" for a value outside the enum.
[[nodiscard]] constexpr std::string_view to_string(log_level level) noexcept {
    constexpr std::string_view names[] = {"emerg",   "alert",  "crit", "err",
                                          "warning", "notice", "info", "debug"};
    const int i = static_cast<int>(level);
    return i >= LOG_EMERG && i <= LOG_DEBUG ? names[i] : "invalid";
}

// "err" (or "error"), "warning" (or "warn"), "notice", ... → the level; nullopt for anything else.
[[nodiscard]] constexpr std::optional<log_level> parse_log_level(std::string_view name) noexcept {
    for (int l = LOG_EMERG; l <= LOG_DEBUG; ++l)
        if (name == to_string(static_cast<log_level>(l))) return static_cast<log_level>(l);
    if (name == "error") return log_level::err;
    if (name == "warn") return log_level::warning;
    return std::nullopt;
}

} // namespace ringd
