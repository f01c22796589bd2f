// SPDX-License-Identifier: MIT
// ringd/start_order.hpp — init.d-style order of services by name: `S<nn>name` by number, then the
// rest; names without the prefix after all prefixed ones, by name. Stop order is the exact reverse.
// init.d(4)'s `K<nn>name` ("kill this job") entries say which services stop first, by number.
//
// Start order, for example: S01net, S2log, S10db, S10web, S99z, K10x, Sfoo, apache, s10x.
//   Numbers compare as numbers (S2 before S10), then the rest (db before web); "Sfoo" (no digit
//   after the S), "K10x" and "s10x" (only a capital S starts a sequence) are unprefixed names.
// Kill order (kills_before), for example: K2db, K10web, K10x, then the rest in reverse start order.
//   A K entry is not a service: it says when the service S<mm><same rest> stops (see
//   service_spec::stop_sequence in supervisor.hpp). "Kfoo" (no digit) is an ordinary name.
// Pure: no I/O; start_order()/stop_order() allocate (their result), the comparators do not.
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
    bool sequenced = false;  // the name is S (K for a kill_key) followed by at least one digit
    std::string_view number; // those digits without leading zeros ("" for 0); empty if !sequenced
    std::string_view rest;   // what follows the digits; the whole name if !sequenced
};
[[nodiscard]] constexpr start_key start_key_of(std::string_view name) noexcept;

// The same for init.d's K<digits>rest: sequenced when the name is a kill entry.
using kill_key = start_key;
[[nodiscard]] constexpr kill_key kill_key_of(std::string_view name) noexcept;
// K followed by at least one digit: "K20foo" yes; "Kfoo", "k20foo", "K" no.
[[nodiscard]] constexpr bool is_kill_entry(std::string_view name) noexcept;

// Compares two numbers written in decimal digits, of any length and with or without leading
// zeros, by value and without converting them (no overflow): <0, 0 or >0. "" is 0.
[[nodiscard]] constexpr int compare_numbers(std::string_view a, std::string_view b) noexcept;

// A strict total order on names: a starts before b. Sequenced names first, by number (any number
// of digits, compared as a number without overflow), then by the rest; then unsequenced names by
// name. Names that tie on both (S010a, S10a) fall back to the whole name, so the order is
// deterministic and its reverse is well defined.
[[nodiscard]] constexpr bool starts_before(std::string_view a, std::string_view b) noexcept;

// A strict total order for stopping (what init.d's rc runs, in turn, with 'stop'): a before b.
// Kill entries first, by number, then by the rest, then by the whole name; then every other name
// in reverse start order. Without kill entries it is the reverse of starts_before.
[[nodiscard]] constexpr bool kills_before(std::string_view a, std::string_view b) noexcept;

// A name: anything that converts to std::string_view (std::string, std::string_view, const char*).
template <class S>
concept name_like = std::convertible_to<const S&, std::string_view>;

// A sortable range of names.
template <class R>
concept name_range = std::ranges::random_access_range<R> &&
    std::convertible_to<std::ranges::range_reference_t<R>, std::string_view>;

// Sorts in place, in start order / in stop order (the exact reverse; K entries are names like any
// other here: sort with kills_before to put them first).
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

namespace detail {
// <letter><digits>rest: the key of start_key_of (S) and kill_key_of (K).
constexpr start_key sequence_key_of(std::string_view name, char letter) noexcept {
    auto is_digit = [](char c) { return c >= '0' && c <= '9'; };
    if (name.size() < 2 || name[0] != letter || !is_digit(name[1])) return {false, {}, name};
    std::size_t end = 1;
    while (end < name.size() && is_digit(name[end])) ++end;
    std::size_t first = 1;
    while (first < end && name[first] == '0') ++first;
    return {true, name.substr(first, end - first), name.substr(end)};
}

// Sequenced keys by number, then by rest: <0, 0 or >0.
constexpr int compare_sequenced(const start_key& a, const start_key& b) noexcept {
    if (const int c = compare_numbers(a.number, b.number); c != 0) return c;
    return a.rest.compare(b.rest);
}
} // namespace detail

constexpr start_key start_key_of(std::string_view name) noexcept {
    return detail::sequence_key_of(name, 'S');
}

constexpr kill_key kill_key_of(std::string_view name) noexcept {
    return detail::sequence_key_of(name, 'K');
}

constexpr bool is_kill_entry(std::string_view name) noexcept {
    return kill_key_of(name).sequenced;
}

constexpr int compare_numbers(std::string_view a, std::string_view b) noexcept {
    while (!a.empty() && a.front() == '0') a.remove_prefix(1);
    while (!b.empty() && b.front() == '0') b.remove_prefix(1);
    // Without leading zeros, the shorter digit string is the smaller number.
    if (a.size() != b.size()) return a.size() < b.size() ? -1 : 1;
    return a.compare(b);
}

constexpr bool starts_before(std::string_view a, std::string_view b) noexcept {
    const start_key ka = start_key_of(a);
    const start_key kb = start_key_of(b);
    if (ka.sequenced != kb.sequenced) return ka.sequenced;
    if (ka.sequenced)
        if (const int c = detail::compare_sequenced(ka, kb); c != 0) return c < 0;
    return a < b;
}

constexpr bool kills_before(std::string_view a, std::string_view b) noexcept {
    const kill_key ka = kill_key_of(a);
    const kill_key kb = kill_key_of(b);
    if (ka.sequenced != kb.sequenced) return ka.sequenced;
    if (!ka.sequenced) return starts_before(b, a);
    if (const int c = detail::compare_sequenced(ka, kb); c != 0) return c < 0;
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
