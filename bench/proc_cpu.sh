# SPDX-License-Identifier: MIT
# proc_cpu.sh — sourced by the benchmark scripts: a process's CPU time, memory and descriptors
# from /proc.

# cpu_ticks PID: CPU time so far (user + system, all threads), in clock ticks (getconf CLK_TCK).
# Fields 14 and 15 of /proc/PID/stat; the command name (field 2) may hold spaces, so count from
# its closing ')'.
cpu_ticks() {
    local stat rest
    read -r stat <"/proc/$1/stat"
    rest=${stat##*) }
    local -a f
    read -r -a f <<<"$rest"
    echo $((f[11] + f[12]))
}

# rss_kb PID: resident memory now (VmRSS of /proc/PID/status), in KiB.
rss_kb() {
    awk '$1 == "VmRSS:" { print $2; exit }' "/proc/$1/status"
}

# fd_count PID: open descriptors now.
fd_count() {
    local -a fds=("/proc/$1/fd"/*)
    echo "${#fds[@]}"
}
