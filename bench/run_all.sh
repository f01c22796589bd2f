#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# run_all.sh — the whole accept benchmark, as `./run bench` runs it:
#   1. raw_uring, ringd, epoll and asio against accept_load in interleaved rounds (run_accept.sh),
#      server pinned to one core and the load client to another: medians, ratios, the issue's
#      targets for ringd; then the same without pinning (the scheduler places both)
#   2. a plot of conn/s and µs of server CPU per accept (gnuplot, PNG)
#   3. the Google Benchmark microbenchmarks (BUILD_DIR/bench/micro_*): ringd vs raw per case
#   4. multi-core scaling: every server with --threads 1 and 2, interleaved
# Prints each table, and writes them with the machine, the load average and the command into
# docs/bench/accept.md between its "results" markers; the hand-written notes around the markers
# are kept (a missing file is created with the markers only).
#
# usage: bench/run_all.sh BUILD_DIR
# environment:
#   ROUNDS (9), DURATION (2 s), CONNECTIONS (64)   the main comparison (1 server thread, pinned)
#   UNPINNED_ROUNDS (5; 0 skips it)               the same, unpinned
#   SCALING_ROUNDS (3), SCALING_CLIENT_THREADS (2) the scaling run
#   MICRO_REPETITIONS (7), MICRO_MIN_TIME (0.15 s) Google Benchmark, pinned to the last core
#   PRIORITY (-15; 0 = leave alone)   as root, run at this nice level (with autogroups: the
#       nice value of the session's group, restored at the end), so that builds running beside
#       it on a shared machine take less of the CPU from the benchmark; the load average is
#       recorded with every round either way
#   MAX_LOAD (nproc), LOAD_WAIT (0 s)   before each part, wait up to LOAD_WAIT seconds for the
#       1-minute load average to fall below MAX_LOAD
#   DOC (docs/bench/accept.md), PLOT (docs/bench/accept.png), SKIP (comma list of parts to
#   skip: accept, micro, scaling)
# Takes about 4 minutes with the defaults.
set -euo pipefail

prog=run_all.sh
die() {
    echo "$prog: $*" >&2
    exit 1
}

(($# == 1)) || die "usage: bench/run_all.sh BUILD_DIR"

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
source "$repo/bench/bench_lib.sh"
build_dir=$(cd "$1" 2>/dev/null && pwd) || die "no build directory '$1'"
bench_dir=$build_dir/bench
rounds=${ROUNDS:-9}
unpinned_rounds=${UNPINNED_ROUNDS:-5}
duration=${DURATION:-2}
connections=${CONNECTIONS:-64}
scaling_rounds=${SCALING_ROUNDS:-3}
scaling_client_threads=${SCALING_CLIENT_THREADS:-2}
micro_reps=${MICRO_REPETITIONS:-7}
micro_min_time=${MICRO_MIN_TIME:-0.15}
max_load=${MAX_LOAD:-$(nproc)}
load_wait=${LOAD_WAIT:-0}
doc=${DOC:-$repo/docs/bench/accept.md}
plot=${PLOT:-$repo/docs/bench/accept.png}
skip=,${SKIP:-},

for tool in awk jq; do
    command -v "$tool" >/dev/null || die "$tool is missing (apt-get install $tool)"
done
servers=(raw_uring ringd epoll asio)
for s in "${servers[@]}" load; do
    [[ -x $bench_dir/accept_$s ]] || die "no $bench_dir/accept_$s (meson setup -Dbenchmarks=true?)"
done
# The server on the last core, the client on the first: each has a core of its own, as when
# the clients are elsewhere; unpinned, the scheduler sometimes stacks both on one core.
pin=()
pin_micro=()
if (($(nproc) >= 2)); then
    pin=(--server-cpus "$(($(nproc) - 1))" --client-cpus 0)
    command -v taskset >/dev/null && pin_micro=(taskset -c "$(($(nproc) - 1))")
fi

out=$(mktemp -d)
cleanup() {
    rm -rf "$out"
    restore_priority
}
trap cleanup EXIT

# Priority (bench_lib.sh): as root, the session's scheduling group at PRIORITY for the run.
raise_priority "${PRIORITY:--15}"

loadavg() { cut -d' ' -f1 /proc/loadavg; }

# Waits (at most LOAD_WAIT seconds) for the load average to fall below MAX_LOAD.
wait_for_quiet() {
    local waited=0
    while ((waited < load_wait)) &&
        awk -v l="$(loadavg)" -v m="$max_load" 'BEGIN { exit !(l > m) }'; do
        ((waited == 0)) && echo "$prog: load average $(loadavg) > $max_load; waiting up to" \
            "${load_wait}s for it to fall" >&2
        sleep 5
        waited=$((waited + 5))
    done
}

# ---- the machine ----
started=$(date -u '+%Y-%m-%d %H:%M UTC')
machine=$(machine_description "$build_dir")
echo "machine: $machine; $priority_note" >&2

# load_range TSV: "min–max" of the load1 column.
load_range() {
    awk -F'\t' 'NR > 1 { if (min == "" || $14 + 0 < min) min = $14 + 0; if ($14 + 0 > max) max = $14 + 0 }
        END { printf "%s–%s", min, max }' "$1"
}

# medians TSV "SERVER...": per server, in that order:
#   server conn_per_s cpu_us_per_accept min_cpu max_cpu min_rate max_rate rounds
medians() {
    awk -F'\t' -v order="$2" "$(<"$repo/bench/stats.awk")"$'\n''
    NR > 1 { rate[$2] = rate[$2] " " $9; cpu[$2] = cpu[$2] " " $13; n[$2]++ }
    END {
        ns = split(order, name, " ")
        for (i = 1; i <= ns; i++) {
            s = name[i]
            printf "%s %.0f %.3f %.3f %.3f %.0f %.0f %d\n", s, median(rate[s]), median(cpu[s]),
                lo(cpu[s]), hi(cpu[s]), lo(rate[s]), hi(rate[s]), n[s]
        }
    }' "$1"
}

# paired_ratio TSV A B: in bench_lib.sh (column 13 is the CPU per accept).

# comparison_table MEDIANS TSV: the markdown table of one comparison, then the paired ratios.
comparison_table() {
    awk '
    { s[NR] = $1; rate[$1] = $2; cpu[$1] = $3; lo[$1] = $4; hi[$1] = $5; n[$1] = $8 }
    END {
        print "| server | conn/s | CPU µs/accept (min–max) | vs raw_uring | vs epoll | vs asio | rounds |"
        print "|---|---:|---:|---:|---:|---:|---:|"
        for (i = 1; i <= NR; i++) {
            k = s[i]
            printf "| %s | %.0f | **%.2f** (%.2f–%.2f) | %.3f | %.3f | %.3f | %d |\n", k, rate[k],
                cpu[k], lo[k], hi[k], cpu[k] / cpu["raw_uring"], cpu[k] / cpu["epoll"],
                cpu[k] / cpu["asio"], n[k]
        }
    }' "$1"
    echo
    echo "Paired per round (median over rounds of the ratio within a round):" \
        "ringd/raw_uring $(paired_ratio "$2" ringd raw_uring)," \
        "ringd/epoll $(paired_ratio "$2" ringd epoll)," \
        "ringd/asio $(paired_ratio "$2" ringd asio);" \
        "raw_uring/epoll $(paired_ratio "$2" raw_uring epoll)," \
        "raw_uring/asio $(paired_ratio "$2" raw_uring asio)."
}

# targets_table TSV MEDIANS: the issue's targets for ringd, judged on the paired ratios (the
# estimator that drift between rounds does not move), with the ratio of medians beside them and
# raw liburing's own paired ratio for comparison.
targets_table() {
    echo "| target (server CPU per accept) | ringd, paired (quartiles) | met | ratio of medians | raw_uring, paired |"
    echo "|---|---:|---|---:|---:|"
    local base limit paired value
    for target in raw_uring:1.03 epoll:0.90 asio:0.70; do
        base=${target%%:*} limit=${target#*:}
        paired=$(paired_ratio "$1" ringd "$base")
        value=${paired%% *}
        awk -v b="$base" -v lim="$limit" -v p="$paired" -v v="$value" \
            -v raw="$(if [[ $base == raw_uring ]]; then echo 1; else paired_ratio "$1" raw_uring "$base" | cut -d' ' -f1; fi)" '
            $1 == "ringd" { r = $3 } $1 == b { c = $3 }
            END {
                printf "| ringd ≤ %s × %s | %s | %s | %.3f | %s |\n", lim, b, p,
                    (v + 0 <= lim + 0 ? "yes" : "**no**"), r / c, raw
            }' "$2"
    done
}

md=$out/results.md
: >"$md"

# comparison NAME ROUNDS HEADING [run_accept.sh flags...]: one interleaved run of every server,
# its table and targets appended to the results (under HEADING) and printed; NAME.tsv and
# NAME.medians stay in $out for the plot.
comparison() {
    local name=$1 n=$2 heading=$3
    shift 3
    wait_for_quiet
    local before after table targets
    before=$(loadavg)
    echo "== $heading: ${servers[*]}, $n rounds of ${duration}s" >&2
    BUILD_DIR=$build_dir ROUNDS=$n DURATION=$duration CONNECTIONS=$connections \
        "$repo/bench/run_accept.sh" "$@" --tsv "$out/$name.tsv" "${servers[@]}" >/dev/null
    after=$(loadavg)
    medians "$out/$name.tsv" "${servers[*]}" >"$out/$name.medians"
    table=$(comparison_table "$out/$name.medians" "$out/$name.tsv")
    targets=$(targets_table "$out/$name.tsv" "$out/$name.medians")
    {
        echo "### $heading"
        echo
        echo "$n interleaved rounds of ${duration} s ($(printf '%s, ' "${servers[@]}")${servers[0]}, ...);"
        echo "medians over rounds. Load average (1 min) before: $before, during the rounds:" \
            "$(load_range "$out/$name.tsv"), after: $after."
        echo
        echo "$table"
        echo
        echo "$targets"
        echo
    } >>"$md"
    printf '%s\n\n%s\n\n' "$table" "$targets"
}

# ---- 1. the comparison, pinned and unpinned, and the plot ----
if [[ $skip != *,accept,* ]]; then
    comparison pinned "$rounds" \
        "Accept and close: 1 server thread${pin[*]:+ on CPU ${pin[1]}}, 1 client thread${pin[*]:+ on CPU ${pin[3]}}, $connections connects in flight" \
        "${pin[@]}"
    if ((unpinned_rounds > 0)); then
        comparison unpinned "$unpinned_rounds" \
            "The same, not pinned (the scheduler places server and client)"
    fi

    # The plot: one bar per server and placement, whiskers from the fastest to the slowest round.
    if command -v gnuplot >/dev/null; then
        if [[ -f $out/unpinned.medians ]]; then
            cp "$out/unpinned.medians" "$out/second"
        else
            awk '{ print $1, "NaN NaN NaN NaN NaN NaN 0" }' "$out/pinned.medians" >"$out/second"
        fi
        paste -d' ' <(awk '{ print NR, $0 }' "$out/pinned.medians") "$out/second" >"$out/plot.dat"
        # Columns: 1 index, 2 server, 3 rate, 4 cpu, 5 cpu_lo, 6 cpu_hi, 7 rate_lo, 8 rate_hi,
        # 9 rounds, then the same (10..17) unpinned.
        mkdir -p "$(dirname "$plot")"
        gnuplot <<EOF || echo "$prog: gnuplot failed; no plot" >&2
set terminal pngcairo size 1200,480 font ",11" noenhanced
set output "$plot"
set multiplot layout 1,2 title "accept and close on loopback, 1 server thread: $(nproc) cores, $started. Bars: medians; whiskers: slowest to fastest round"
set style data histograms
set style histogram errorbars gap 2 lw 1
set style fill solid 0.7 border -1
set grid ytics
set yrange [0:*]
set key below
set title "connections per second (client-bound)"
plot "$out/plot.dat" using 3:7:8:xtic(2) title "server and client pinned" lc rgb "#4477aa", \
     "" using 11:15:16 title "not pinned" lc rgb "#88ccee"
set title "µs of server CPU per accept (lower is better)"
plot "$out/plot.dat" using 4:5:6:xtic(2) title "server and client pinned" lc rgb "#cc6677", \
     "" using 12:13:14 title "not pinned" lc rgb "#ddaa99"
unset multiplot
EOF
        echo "![conn/s and µs of server CPU per accept]($(basename "$plot"))" >>"$md"
        echo >>"$md"
    else
        echo "$prog: gnuplot is not installed (apt-get install gnuplot-nox): no plot" >&2
    fi
fi

# ---- 2. microbenchmarks ----
if [[ $skip != *,micro,* ]]; then
    micros=()
    for b in "$bench_dir"/micro_*; do [[ -f $b && -x $b ]] && micros+=("$b"); done
    if ((${#micros[@]} == 0)); then
        echo "$prog: no microbenchmarks in $bench_dir (libbenchmark-dev missing?)" >&2
    else
        wait_for_quiet
        load_before=$(loadavg)
        echo "== microbenchmarks: ${micros[*]##*/}" >&2
        for b in "${micros[@]}"; do
            "${pin_micro[@]}" "$b" --benchmark_repetitions="$micro_reps" \
                --benchmark_min_time="$micro_min_time" \
                --benchmark_enable_random_interleaving=true \
                --benchmark_report_aggregates_only=true --benchmark_format=json \
                >"$out/${b##*/}.json" 2>/dev/null || die "${b##*/} failed"
        done
        load_after=$(loadavg)
        # Pairs CASE/raw[/ARG] with CASE/ringd[/ARG]; medians of CPU time per operation.
        micro_table=$(jq -rs --argjson reps "$micro_reps" '
            [ .[].benchmarks[]
              | select(.aggregate_name == "median" or ($reps == 1 and .run_type == "iteration"))
              | (.run_name | split("/")) as $p
              | { case: $p[0], arg: ($p[2] // "0" | tonumber), impl: $p[1],
                  key: ([$p[0]] + $p[2:] | join("/")),
                  ns: (.time_per_op * 1e9), enters: .enters_per_op } ]
            | group_by([.case, .arg])[]
            | (map(select(.impl == "raw"))[0]) as $raw
            | (map(select(.impl == "ringd"))[0]) as $ringd
            | select($raw != null and $ringd != null)
            | "| \(.[0].key) | \($raw.ns * 10 | round / 10) | \($ringd.ns * 10 | round / 10) | " +
              "\(($ringd.ns - $raw.ns) * 10 | round / 10) | " +
              "**\(($ringd.ns / $raw.ns) * 100 | round / 100)** | " +
              (if $ringd.enters == null then "" else
                 "\($raw.enters * 1000 | round / 1000) / \($ringd.enters * 1000 | round / 1000)" end) + " |"
            ' "$out"/micro_*.json)
        micro_header="| case | raw ns/op | ringd ns/op | ringd − raw (ns) | ringd/raw | io_uring_enter per op (raw / ringd) |
|---|---:|---:|---:|---:|---:|"
        {
            echo "### Microbenchmarks (Google Benchmark)"
            echo
            echo "CPU time per operation, median of $micro_reps repetitions (randomly interleaved)," \
                "--benchmark_min_time=$micro_min_time${pin_micro[*]:+, on CPU ${pin_micro[2]}}. Load average before: $load_before, after:" \
                "$load_after. Each ringd case runs next to its raw-liburing counterpart in the same" \
                "binary; bench/micro_*.cpp says what each side does."
            echo
            echo "$micro_header"
            echo "$micro_table"
            echo
        } >>"$md"
        echo "$micro_header"
        echo "$micro_table"
        echo
    fi
fi

# ---- 3. multi-core scaling ----
if [[ $skip != *,scaling,* ]]; then
    wait_for_quiet
    load_before=$(loadavg)
    specs=()
    for s in "${servers[@]}"; do specs+=("$s:1" "$s:2"); done
    echo "== scaling: ${specs[*]}, $scaling_rounds rounds, $scaling_client_threads client threads" >&2
    BUILD_DIR=$build_dir ROUNDS=$scaling_rounds DURATION=$duration CONNECTIONS=$connections \
        "$repo/bench/run_accept.sh" --client-threads "$scaling_client_threads" \
        --tsv "$out/scaling.tsv" "${specs[@]}" >/dev/null
    load_after=$(loadavg)
    scaling_table=$(medians "$out/scaling.tsv" "${specs[*]}" | awk '
    { split($1, p, ":"); s[NR] = p[1]; t[NR] = p[2]; rate[$1] = $2; cpu[$1] = $3 }
    END {
        print "| server | threads | conn/s | conn/s vs 1 thread | CPU µs/accept | CPU vs 1 thread |"
        print "|---|---:|---:|---:|---:|---:|"
        for (i = 1; i <= NR; i++) {
            k = s[i] ":" t[i]; one = s[i] ":1"
            printf "| %s | %d | %.0f | %.2f | %.2f | %.2f |\n", s[i], t[i], rate[k],
                rate[k] / rate[one], cpu[k], cpu[k] / cpu[one]
        }
    }')
    {
        echo "### Multi-core: N threads, each with its own ring and SO_REUSEPORT listener"
        echo
        echo "$scaling_rounds interleaved rounds of ${duration} s per server and thread count," \
            "not pinned; $scaling_client_threads client threads (so that only the server side" \
            "changes); medians. Load average before: $load_before, during:" \
            "$(load_range "$out/scaling.tsv"), after: $load_after."
        echo
        echo "$scaling_table"
        echo
    } >>"$md"
    echo "$scaling_table"
fi

# ---- the document ----
{
    echo "<!-- results:begin — written by bench/run_all.sh; edits between the markers are lost -->"
    echo "## Results"
    echo
    echo "Taken $started on: $machine."
    echo
    echo "Command: \`./run bench\` (that is \`bench/run_all.sh build\` after building with" \
        "\`-Dbenchmarks=true\`); ROUNDS=$rounds UNPINNED_ROUNDS=$unpinned_rounds" \
        "DURATION=$duration CONNECTIONS=$connections SCALING_ROUNDS=$scaling_rounds" \
        "MICRO_REPETITIONS=$micro_reps; $priority_note."
    echo "Server CPU = utime + stime of the server process (/proc/PID/stat) over the run, divided by"
    echo "the connections it accepted; conn/s is the load client's rate."
    echo
    cat "$md"
    echo "<!-- results:end -->"
} >"$out/section.md"

write_results "$doc" "$out/section.md" "Accept hot path: benchmarks"
echo "$prog: wrote $doc and $plot" >&2
