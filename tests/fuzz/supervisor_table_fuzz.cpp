// SPDX-License-Identifier: MIT
// libFuzzer: the supervisor's table and <table>.pids parsers (detail/supervisor_table.hpp).
// Whatever the bytes, they answer entries or an error naming a line; and a table they accept
// formats back into one that parses to the same text (nothing accepted is lost on rewrite).
#include <ringd/supervisor.hpp>

#include <cstddef>
#include <cstdint>
#include <string_view>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const std::string_view text(reinterpret_cast<const char*>(data), size);
    (void)ringd::detail::supervisor_pids_parse(text);
    auto parsed = ringd::detail::supervisor_table_parse(text);
    if (!parsed) {
        if (!parsed.error().starts_with("line ")) __builtin_trap(); // the error names the line
        return 0;
    }
    const std::string once = ringd::detail::supervisor_table_format(*parsed);
    auto again = ringd::detail::supervisor_table_parse(once);
    if (!again || ringd::detail::supervisor_table_format(*again) != once) __builtin_trap();
    return 0;
}
