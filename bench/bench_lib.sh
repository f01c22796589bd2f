# SPDX-License-Identifier: MIT
# bench_lib.sh — sourced by the benchmark scripts (run_accept.sh, run_echo.sh, run_all.sh): one
# benchmark server's life, as bench_server_common.hpp defines it (a "listening on ADDR:PORT" line
# first, one final line after SIGTERM, exit 0); pinning; the machine description that goes with
# every result; and the results section of a document.
#
# The sourcing script defines die() and a private directory $tmp, calls server_init once before
# starting servers, and server_cleanup from its EXIT trap.

server_pid=
server_out=

server_init() {
    mkfifo "$tmp/server_out"
}

# server_start LABEL CMD...: starts CMD (its stdout through a fifo, stderr into $tmp/server_err)
# and waits for its "listening on" line; sets server_pid and server_port.
server_start() {
    local label=$1 line
    shift
    # exec in the caller's wrappers (taskset) keeps the pid the server's.
    "$@" >"$tmp/server_out" 2>"$tmp/server_err" &
    server_pid=$!
    exec {server_out}<"$tmp/server_out"
    if ! read -r -t 10 -u "$server_out" line || [[ ! $line =~ ^listening\ on\ .*:([0-9]+)$ ]]; then
        die "$label did not report 'listening on': ${line:-}$(cat "$tmp/server_err")"
    fi
    server_port=${BASH_REMATCH[1]}
}

# server_stop LABEL REGEX: SIGTERM; the final line must match REGEX, whose groups are left in
# server_final (server_final[1] is the first); the server must exit 0.
server_stop() {
    local label=$1 pattern=$2 line rc=0
    kill -TERM "$server_pid"
    if ! read -r -t 10 -u "$server_out" line || [[ ! $line =~ $pattern ]]; then
        die "$label: no final line matching '$pattern' after SIGTERM: ${line:-}$(cat "$tmp/server_err")"
    fi
    server_final=("${BASH_REMATCH[@]}")
    wait "$server_pid" || rc=$?
    server_pid=
    exec {server_out}<&-
    ((rc == 0)) || die "$label exited with $rc after SIGTERM: $(cat "$tmp/server_err")"
}

server_cleanup() {
    if [[ -n $server_pid ]] && kill -0 "$server_pid" 2>/dev/null; then
        kill -TERM "$server_pid" 2>/dev/null || true
        wait "$server_pid" 2>/dev/null || true
    fi
}

# machine_description BUILD_DIR: "CPU, cores (MHz, virtual machine); kernel; OS; compiler;
# liburing" for the result documents.
machine_description() {
    local cpu_model cpu_mhz cpu_virt os kernel cxx liburing
    cpu_model=$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)
    cpu_mhz=$(awk -F': ' '/^cpu MHz/ { printf "%.0f MHz", $2; exit }' /proc/cpuinfo)
    cpu_virt=$(grep -qw hypervisor /proc/cpuinfo && echo ", virtual machine" || true)
    os=$(. /etc/os-release 2>/dev/null && echo "${PRETTY_NAME:-Linux}" || echo Linux)
    kernel=$(uname -srm)
    cxx=$(sed -n 's/^C++ compiler for the host machine: [^ ]* (\([^"]*\) ".*/\1/p' \
        "$1/meson-logs/meson-log.txt" 2>/dev/null | tail -1)
    cxx="${cxx:-C++ compiler unknown}, -O2"
    liburing=$(dpkg-query -W -f='${Version}' liburing-dev 2>/dev/null || echo "?")
    echo "$cpu_model, $(nproc) cores ($cpu_mhz$cpu_virt); $kernel; $os; $cxx; liburing $liburing"
}

# pin_commands: server_cmd and client_cmd, the prefixes that pin the server and the load client
# to $server_cpus and $client_cpus (taskset -c LIST; empty: no prefix).
pin_commands() {
    server_cmd=()
    client_cmd=()
    [[ -n $server_cpus ]] && server_cmd=(taskset -c "$server_cpus")
    [[ -n $client_cpus ]] && client_cmd=(taskset -c "$client_cpus")
    if ((${#server_cmd[@]} + ${#client_cmd[@]})); then
        command -v taskset >/dev/null || die "--server-cpus/--client-cpus need taskset (util-linux)"
    fi
    return 0
}

# write_results DOC SECTION TITLE: puts the file SECTION (which starts with a "<!-- results:begin"
# line and ends with "<!-- results:end -->") into DOC in place of its results section, keeping
# the hand-written notes around it; a DOC without the markers becomes "# TITLE" and SECTION.
write_results() {
    local doc=$1 section=$2 title=$3
    mkdir -p "$(dirname "$doc")"
    if [[ -f $doc ]] && grep -q '^<!-- results:begin' "$doc" && grep -q '^<!-- results:end' "$doc"; then
        awk -v section="$section" '
            /^<!-- results:begin/ { while ((getline line < section) > 0) print line; skipping = 1; next }
            /^<!-- results:end/ { skipping = 0; next }
            !skipping' "$doc" >"$doc.new.$$"
        mv "$doc.new.$$" "$doc"
    else
        { echo "# $title"; echo; cat "$section"; } >"$doc"
    fi
}

# paired_ratio TSV A B [COLUMN]: the median over rounds of server A's figure in COLUMN (default
# 13, CPU per accept in run_accept.sh's TSV) divided by server B's in the same round (A and B
# ran back to back, so a drift in the machine's state cancels out), with quartiles. Rounds are
# column 1, servers column 2; only numbered rounds count.
paired_ratio() {
    awk -F'\t' -v a="$2" -v b="$3" -v col="${4:-13}" "$(<"$repo/bench/stats.awk")"$'\n''
    NR > 1 && $1 ~ /^[0-9]+$/ && $2 == a { x[$1] = $col }
    NR > 1 && $1 ~ /^[0-9]+$/ && $2 == b { y[$1] = $col }
    END {
        n = 0
        for (r in x) if ((r in y) && y[r] > 0) v[++n] = x[r] / y[r]
        sort_numbers(v, n)
        if (n == 0) { print "n/a"; exit }
        q = int((n + 3) / 4)
        printf "%.3f (quartiles %.3f–%.3f)", n % 2 ? v[(n + 1) / 2] : (v[n / 2] + v[n / 2 + 1]) / 2,
            v[q], v[n + 1 - q]
    }' "$1"
}

# raise_priority NICE: as root and unless NICE is 0, runs the rest of the script (and what it
# starts) at that nice value, so that builds beside it on a shared machine take less of the CPU
# from the benchmark; sets priority_note for the results. With autogroups (the default) a nice
# value only counts among the processes of one session, so it is the session's scheduling group
# that gets it; restore_priority (call it from the EXIT trap) gives the group its old value back.
priority_note="run at normal priority"
restore_nice=
raise_priority() {
    local priority=$1 old_nice
    [[ $priority != 0 && $(id -u) == 0 ]] || return 0
    if [[ $(cat /proc/sys/kernel/sched_autogroup_enabled 2>/dev/null) == 1 && -w /proc/self/autogroup ]]; then
        old_nice=$(sed -n 's/.* nice \(-\{0,1\}[0-9]*\)$/\1/p' /proc/self/autogroup)
        if echo "$priority" >/proc/self/autogroup 2>/dev/null; then
            restore_nice=${old_nice:-0}
            priority_note="run with its session's scheduling group at nice $priority (autogroup)"
        fi
    elif renice -n "$priority" -p $$ >/dev/null 2>&1; then
        priority_note="run at nice $priority"
    fi
    return 0
}
restore_priority() {
    [[ -n $restore_nice ]] && echo "$restore_nice" >/proc/self/autogroup 2>/dev/null
    return 0
}
