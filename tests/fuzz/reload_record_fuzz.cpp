// SPDX-License-Identifier: MIT
// libFuzzer: the reload-status record's parser (detail/daemon_reload_status.hpp). Any bytes give
// a record or nothing, reading only inside them; a record it accepts has a pid and a state, and
// formats back into a record that parses the same.
#include <ringd/detail/daemon_reload_status.hpp>

#include <cstddef>
#include <cstdint>
#include <string_view>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const std::string_view text(reinterpret_cast<const char*>(data), size);
    auto r = ringd::detail::parse_reload_record(text);
    if (!r) return 0;
    if (r->pid <= 0 || r->state.empty()) __builtin_trap();
    auto back = ringd::detail::parse_reload_record(ringd::detail::format_reload_record(*r));
    if (!back || back->generation != r->generation || back->pid != r->pid ||
        back->state != r->state)
        __builtin_trap();
    return 0;
}
