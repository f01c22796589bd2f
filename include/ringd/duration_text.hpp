// SPDX-License-Identifier: MIT
// ringd/duration_text.hpp — durations as people read them: in a column of a status table, the
// two largest units, as `ps -o etime` and `systemctl status` keep it short (ringd-supervise's
// `ctl list`/`ctl status` and xferctl's `status` write their "since"/"uptime" with it); and in
// a message, a number of seconds as it was given ("restart_delay_s = 1e+30: out of range").
#pragma once

#include <chrono>
#include <cstdio>
#include <string>

namespace ringd {

// "3d04h", "2h05m", "4m07s", "12s" (a negative span, from a clock set back: "-5s").
[[nodiscard]] inline std::string duration_text(std::chrono::seconds d) {
    const long long s = d.count();
    char text[48];
    if (s >= 86400)
        std::snprintf(text, sizeof text, "%lldd%02lldh", s / 86400, s % 86400 / 3600);
    else if (s >= 3600)
        std::snprintf(text, sizeof text, "%lldh%02lldm", s / 3600, s % 3600 / 60);
    else if (s >= 60)
        std::snprintf(text, sizeof text, "%lldm%02llds", s / 60, s % 60);
    else
        std::snprintf(text, sizeof text, "%llds", s);
    return text;
}

// A number of seconds as a message quotes it, without the unit: "5", "0.25", "0.0004", "1e+30"
// (printf's %g: six significant digits, exponent form only for very large or small values).
[[nodiscard]] inline std::string seconds_text(double seconds) {
    char text[32];
    std::snprintf(text, sizeof text, "%g", seconds);
    return text;
}

} // namespace ringd
