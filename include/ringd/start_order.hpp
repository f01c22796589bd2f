// ringd/start_order.hpp — init.d-style order of services by name: `S<nn>name` by number, then the
// rest; names without the prefix after all prefixed ones, by name. Stop order is the exact reverse.
//
// Start order, for example: S01net, S2log, S10db, S10web, S99z, K10x, Sfoo, apache, s10x.
//   Numbers compare as numbers (S2 before S10), then the rest (db before web); "Sfoo" (no digit
//   after the S), "K10x" and "s10x" (only a capital S starts a sequence) are unprefixed names.
// Pure: no I/O; start_order()/stop_order() allocate (their result), the comparator does not.
#pragma once

#include <algorithm>
#include <concepts>
#include <iterator>
#include <ranges>
#include <string_view>
#include <vector>

namespace ringd::supervision {

// What a name sorts by.
struct start_key {
    bool sequenced = false;  // the name is S followed by at least one digit
    std::string_view number; // those digits without leading zeros ("" for 0); empty if !sequenced
    std::string_view rest;   // what follows the digits; the whole name if !sequenced
};
[[nodiscard]] constexpr start_key start_key_of(std::string_view name) noexcept;

// A strict total order on names: a starts before b. Sequenced names first, by number (any number
// of digits, compared as a number without overflow), then by the rest; then unsequenced names by
// name. Names that tie on both (S010a, S10a) fall back to the whole name, so the order is
// deterministic and its reverse is well defined.
[[nodiscard]] constexpr bool starts_before(std::string_view a, std::string_view b) noexcept;

// A name: anything that converts to std::string_view (std::string, std::string_view, const char*).
template <class S>
concept name_like = std::convertible_to<const S&, std::string_view>;

// A sortable range of names.
template <class R>
concept name_range = std::ranges::random_access_range<R> &&
    std::convertible_to<std::ranges::range_reference_t<R>, std::string_view>;

// Sorts in place, in start order / in stop order (the exact reverse).
template <name_range R>
void sort_start_order(R&& names);
template <name_range R>
void sort_stop_order(R&& names);

// The names in start order / in stop order.
template <name_like S>
[[nodiscard]] std::vector<S> start_order(std::vector<S> names);
template <name_like S>
[[nodiscard]] std::vector<S> stop_order(std::vector<S> names);

// =============================================================================================
// Implementation

constexpr start_key start_key_of(std::string_view name) noexcept {
    auto is_digit = [](char c) { return c >= '0' && c <= '9'; };
    if (name.size() < 2 || name[0] != 'S' || !is_digit(name[1])) return {false, {}, name};
    std::size_t end = 1;
    while (end < name.size() && is_digit(name[end])) ++end;
    std::size_t first = 1;
    while (first < end && name[first] == '0') ++first;
    return {true, name.substr(first, end - first), name.substr(end)};
}

constexpr bool starts_before(std::string_view a, std::string_view b) noexcept {
    const start_key ka = start_key_of(a);
    const start_key kb = start_key_of(b);
    if (ka.sequenced != kb.sequenced) return ka.sequenced;
    if (ka.sequenced) {
        // Without leading zeros, the shorter digit string is the smaller number.
        if (ka.number.size() != kb.number.size()) return ka.number.size() < kb.number.size();
        if (ka.number != kb.number) return ka.number < kb.number;
        if (ka.rest != kb.rest) return ka.rest < kb.rest;
    }
    return a < b;
}

template <name_range R>
void sort_start_order(R&& names) {
    std::ranges::sort(names, [](const auto& a, const auto& b) {
        return starts_before(std::string_view(a), std::string_view(b));
    });
}

template <name_range R>
void sort_stop_order(R&& names) {
    sort_start_order(names);
    std::ranges::reverse(names);
}

template <name_like S>
std::vector<S> start_order(std::vector<S> names) {
    sort_start_order(names);
    return names;
}

template <name_like S>
std::vector<S> stop_order(std::vector<S> names) {
    sort_stop_order(names);
    return names;
}

} // namespace ringd::supervision
