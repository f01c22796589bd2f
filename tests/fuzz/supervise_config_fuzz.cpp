// SPDX-License-Identifier: MIT
// libFuzzer: ringd-supervise's TOML configuration (tools/ringd-supervise/config.hpp). Any text
// gives a config or a one-line error naming the file; every duration of an accepted config fits
// a policy (no overflow on the way to nanoseconds).
#include "tools/ringd-supervise/config.hpp"

#include <cstddef>
#include <cstdint>
#include <string_view>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const std::string_view text(reinterpret_cast<const char*>(data), size);
    auto c = supervise::parse_config(text, "fuzz.toml");
    if (!c) {
        if (!c.error().starts_with("config fuzz.toml: ")) __builtin_trap();
        return 0;
    }
    using ringd::supervision::policy_duration;
    for (double s : {c->restart_delay_s, c->max_restart_delay_s, c->start_limit_interval_s,
                     c->stop_timeout_s, c->spawn_retry_interval_s})
        if (!policy_duration(s)) __builtin_trap();
    const auto p = c->policy();
    if (p.restart_delay < ringd::supervision::duration::zero() || p.start_limit_burst > 64)
        __builtin_trap();
    return 0;
}
