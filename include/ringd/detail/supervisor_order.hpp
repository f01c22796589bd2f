// SPDX-License-Identifier: MIT
// ringd/detail/supervisor_order.hpp — the order in which the supervisor starts and stops groups
// of services: the start key (priority, then the number of an S<nn> prefix), the stop key
// (init.d's K<nn> first, then the reverse of the start order), and the step that lets the next
// group go once no busy service has a lesser key. Pure functions of a service_spec.
#pragma once

#include <ringd/service_spec.hpp>
#include <ringd/start_order.hpp>

#include <optional>
#include <string_view>

namespace ringd::detail {

// What orders services: priority, then the number of an S<nn> prefix; names without one last.
struct supervisor_group_key {
    int priority = 0;
    bool unsequenced = true;
    std::string_view number; // without leading zeros

    friend bool operator<(const supervisor_group_key& a, const supervisor_group_key& b) noexcept {
        if (a.priority != b.priority) return a.priority < b.priority;
        if (a.unsequenced != b.unsequenced) return !a.unsequenced;
        if (a.number.size() != b.number.size()) return a.number.size() < b.number.size();
        return a.number < b.number;
    }
    friend bool operator==(const supervisor_group_key& a, const supervisor_group_key& b) noexcept {
        return !(a < b) && !(b < a);
    }
};

inline supervisor_group_key supervisor_group_of(const service_spec& spec) noexcept {
    const supervision::start_key k = supervision::start_key_of(spec.name);
    return {spec.priority, !k.sequenced, k.number};
}

// What orders the shutdown: a < b when a's group stops first. A stop_sequence first, by number;
// then the others in reverse start order.
struct supervisor_stop_key {
    std::string_view sequence; // the spec's stop_sequence; empty: none
    supervisor_group_key start;

    friend bool operator<(const supervisor_stop_key& a, const supervisor_stop_key& b) noexcept {
        if (a.sequence.empty() != b.sequence.empty()) return b.sequence.empty();
        if (!a.sequence.empty()) return supervision::compare_numbers(a.sequence, b.sequence) < 0;
        return b.start < a.start;
    }
    friend bool operator==(const supervisor_stop_key& a, const supervisor_stop_key& b) noexcept {
        return !(a < b) && !(b < a);
    }
};

inline supervisor_stop_key supervisor_stop_group_of(const service_spec& spec) noexcept {
    return {spec.stop_sequence, supervisor_group_of(spec)};
}

// One step of an ordered start or stop, as often as it goes: the least key among the `waiting`
// services is the next group; it goes (`go`, each of its services) once no `busy` service has a
// lesser key. `go` answers false when it is out of time: the rest waits for the next call.
template <class Services, class KeyOf, class Waiting, class Busy, class Go>
void supervisor_advance_groups(Services& services, KeyOf key_of, Waiting waiting, Busy busy,
                               Go go) {
    for (;;) {
        std::optional<decltype(key_of(services.begin()->second->spec))> next;
        for (auto& [name, s] : services) {
            if (!waiting(*s)) continue;
            const auto k = key_of(s->spec);
            if (!next || k < *next) next = k;
        }
        if (!next) return;
        for (auto& [name, s] : services)
            if (!waiting(*s) && busy(*s) && key_of(s->spec) < *next) return;
        for (auto& [name, s] : services)
            if (waiting(*s) && key_of(s->spec) == *next && !go(*s)) return; // out of time
    }
}

} // namespace ringd::detail
