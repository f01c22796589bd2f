// SPDX-License-Identifier: MIT
// supervision_state_dot — prints docs/diagrams/supervision-state.dot, the supervision state
// diagram, by running the machine the supervisor runs (include/ringd/supervision_state.hpp).
// Nothing here restates the table: every arrow is a transition that service_machine::on() made
// while this program fed it every sequence of events up to a fixed length, under each restart
// policy, with and without readiness. So the picture cannot drift from the code: the
// doc_diagrams test regenerates it and fails when the committed copy differs.
//
// Depth 7 is enough: depth 9 draws the same arrows.
// An arrow is drawn for each (state, event, next state, logged reason) that changes the state;
// its label is the event, the exit status for `exited`, the reason the machine logged, and — when
// not every policy takes it — the policies that do. Events the machine calls unexpected (the
// process layer would have a bug) are not fed; events that change nothing are not drawn.
#include <ringd/supervision_state.hpp>

#include <cstdio>
#include <map>
#include <set>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

namespace sv = ringd::supervision;

namespace {

// The variants explored: each restart policy, with and without readiness.
struct variant {
    sv::restart_policy restart;
    bool readiness;
};

// The ends fed as `exited`: clean, a failure, the permanent failures (sysexits 64, 77, 78),
// and death by SIGKILL.
struct exit_case {
    sv::exit_status status;
    const char* label;
};
const exit_case exits[] = {
    {sv::exit_status::exited_with(0), "0"},   {sv::exit_status::exited_with(1), "1"},
    {sv::exit_status::exited_with(64), "64"}, {sv::exit_status::exited_with(77), "77"},
    {sv::exit_status::exited_with(78), "78"}, {sv::exit_status::killed_by(SIGKILL), "SIGKILL"},
};

sv::service_policy policy_of(const variant& v) {
    sv::service_policy p;
    p.restart = v.restart;
    p.needs_readiness = v.readiness;
    p.ready_timeout = v.readiness ? std::chrono::seconds(1) : sv::duration::zero();
    // A start limit reachable within the explored depth (a second start within the hour hits
    // it); the default (more than 5 within 10 s) behaves the same, only later.
    p.start_limit_burst = 1;
    p.start_limit_interval = std::chrono::hours(1);
    return p;
}

struct edge {
    sv::state from, to;
    std::string event;  // event name
    std::string status; // for `exited`: how the process ended, else ""
    std::string why;    // the reasons the machine logged, in order, or ""
    auto operator<=>(const edge&) const = default;
};

// edge → the variants under which it was seen (index into `variants`)
using edges = std::map<edge, std::set<std::size_t>>;

// Feeds every event sequence of up to `depth` more events to `m` and records the transitions.
void explore(const sv::service_machine& m, sv::time_point now, int depth, std::size_t v,
             edges& out) {
    if (depth == 0) return;
    std::vector<std::pair<sv::event, std::string>> feed = {
        {sv::start_requested{}, ""}, {sv::stop_requested{}, ""}, {sv::restart_requested{}, ""},
        {sv::spawned{4242}, ""},     {sv::spawn_failed{11}, ""}, {sv::ready{}, ""},
        {sv::timer_fired{}, ""},
    };
    for (const auto& x : exits) feed.emplace_back(sv::exited{x.status}, x.label);
    for (const auto& [e, status] : feed) {
        sv::time_point at = now + std::chrono::milliseconds(1);
        if (std::holds_alternative<sv::timer_fired>(e)) {
            if (!m.deadline()) continue; // no timer armed: nothing would fire
            at = std::max(at, *m.deadline());
        }
        sv::service_machine next = m;
        const sv::transition_result r = next.on(e, at);
        std::string why;
        bool unexpected = false;
        for (const sv::action& a : r.actions)
            if (const auto* log = std::get_if<sv::log_message>(&a)) {
                if (log->why == sv::reason::unexpected_event) unexpected = true;
                why += (why.empty() ? "" : ", ") + std::string(sv::to_string(log->why));
            }
        if (unexpected) continue; // the machine never asked for it
        if (r.changed())
            out[edge{r.previous, r.next, std::string(sv::event_name(e)), status, why}].insert(v);
        explore(next, at, depth - 1, v, out);
    }
}

std::string condition(const std::set<std::size_t>& seen, const std::vector<variant>& variants) {
    std::set<sv::restart_policy> restart;
    std::set<bool> readiness;
    for (std::size_t i : seen) {
        restart.insert(variants[i].restart);
        readiness.insert(variants[i].readiness);
    }
    std::string c;
    if (restart.size() < 3) {
        c += "restart=";
        const char* sep = "";
        for (auto p : restart) {
            c += sep + std::string(sv::to_string(p));
            sep = "|";
        }
    }
    if (readiness.size() < 2)
        c += std::string(c.empty() ? "" : ", ") +
             (*readiness.begin() ? "needs readiness" : "no readiness");
    return c;
}

} // namespace

int main() {
    std::vector<variant> variants;
    for (auto r :
         {sv::restart_policy::always, sv::restart_policy::on_failure, sv::restart_policy::never})
        for (bool ready : {false, true}) variants.push_back({r, ready});
    edges found;
    for (std::size_t v = 0; v < variants.size(); ++v)
        explore(sv::service_machine(policy_of(variants[v])), sv::time_point{}, 7, v, found);

    // One arrow per (from, to): a line per event that takes it, with the reasons logged and,
    // when not every policy takes it, the policies that do; exit statuses that take the arrow
    // alike share a line.
    using line_key = std::tuple<std::string, std::string, std::string>; // event, why, condition
    std::map<std::pair<sv::state, sv::state>, std::map<line_key, std::vector<std::string>>> arrows;
    for (const auto& [e, seen] : found) {
        auto& statuses = arrows[{e.from, e.to}][{e.event, e.why, condition(seen, variants)}];
        if (!e.status.empty()) statuses.push_back(e.status);
    }

    std::puts("// Generated by docs/diagrams/supervision_state_dot.cpp from the state machine in");
    std::puts("// include/ringd/supervision_state.hpp; do not edit (doc_diagrams checks it).");
    std::puts("digraph supervision_state {");
    std::puts("  rankdir=TB; nodesep=0.3; ranksep=0.6;");
    std::puts("  node [shape=box, style=\"rounded,filled\", fillcolor=\"#eef3fb\", "
              "fontname=\"Helvetica\"];");
    std::puts("  edge [fontname=\"Helvetica\", fontsize=9];");
    std::puts("  stopped [fillcolor=\"#e8e8e8\"]; failed [fillcolor=\"#f8dddd\"]; running "
              "[fillcolor=\"#ddf3dd\"];");
    for (const auto& [ends, lines] : arrows) {
        std::string label;
        for (const auto& [key, statuses] : lines) {
            const auto& [event, why, cond] = key;
            label += event;
            const char* sep = " ";
            for (const auto& s : statuses) {
                label += sep + s;
                sep = "|";
            }
            if (!why.empty()) label += " / " + why;
            if (!cond.empty()) label += " [" + cond + "]";
            label += "\\l";
        }
        std::printf("  %s -> %s [label=\"%s\"];\n", std::string(sv::to_string(ends.first)).c_str(),
                    std::string(sv::to_string(ends.second)).c_str(), label.c_str());
    }
    std::puts("}");
    return 0;
}
