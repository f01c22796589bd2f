# SPDX-License-Identifier: MIT
# ringd-ocf.sh — sourced by ringd's OCF resource agents (daemon, xfer): OCF's exit codes, logging,
# and the mapping from the exit codes of ringd-control (libucw's: 0 done, 100 already done, 101
# not running, 102 error, 103 stale PID file cleaned, 1 usage) to OCF's. Each agent defines
# `control ACTION...`, which runs its control tool (ringd-control, xferctl) with --start/--stop/
# --check/--reload semantics and that tool's exit code.

# OCF exit codes (ra-api-1), written out so that the agent runs without the resource-agents
# shell library too.
OCF_SUCCESS=0
OCF_ERR_GENERIC=1
OCF_ERR_ARGS=2
OCF_ERR_UNIMPLEMENTED=3
OCF_ERR_INSTALLED=5
OCF_ERR_CONFIGURED=6
OCF_NOT_RUNNING=7

log() {
    # To the cluster's log where the resource-agents library is there, else stderr.
    if command -v ocf_log >/dev/null 2>&1; then ocf_log "$@"; else echo "daemon: $*" >&2; fi
}

# ocf_action ACTION OK NOT_RUNNING: runs `control ACTION`. Its exit codes listed in OK are
# OCF_SUCCESS, those in NOT_RUNNING OCF_NOT_RUNNING, 1 (bad usage) OCF_ERR_ARGS, any other an
# error, logged with the tool's output.
ocf_action() {
    out=$(control "$1" 2>&1)
    rc=$?
    case " $2 " in *" $rc "*) return $OCF_SUCCESS ;; esac
    case " $3 " in *" $rc "*) return $OCF_NOT_RUNNING ;; esac
    log err "$1 failed (exit $rc): $out"
    [ $rc -eq 1 ] && return $OCF_ERR_ARGS
    return $OCF_ERR_GENERIC
}

# The OCF actions. 100 is "already done" (start: running, stop: not running), 101 "not running",
# 103 "a stale PID file was found and cleaned" (not running either).
ocf_monitor() { ocf_action check "0" "101 103"; }
ocf_start() { ocf_action start "0 100" ""; }
ocf_stop() { ocf_action stop "0 100 101 103" ""; }
# The daemon re-reads its configuration (SIGHUP); returns once it has acknowledged, with its
# reason when it refused (the old settings stay).
ocf_reload() { ocf_action reload "0" "101 103"; }

# ocf_main ACTION: runs the action; the agent defines meta_data and `validate ACTION` (which
# answers OCF_ERR_INSTALLED when its tool is missing: a probe then answers not running).
ocf_main() {
    case ${1:-} in
    meta-data)
        meta_data
        exit $OCF_SUCCESS
        ;;
    usage | help)
        echo "usage: $0 {start|stop|monitor|reload|validate-all|meta-data}"
        exit $OCF_SUCCESS
        ;;
    esac
    validate "${1:-}"
    status=$?
    case ${1:-} in
    validate-all) exit $status ;;
    monitor | status)
        # A probe on a node without the tools: not running here.
        [ $status -eq $OCF_ERR_INSTALLED ] && exit $OCF_NOT_RUNNING
        [ $status -eq $OCF_SUCCESS ] || exit $status
        ocf_monitor
        exit $?
        ;;
    start | stop | reload)
        [ $status -eq $OCF_SUCCESS ] || exit $status
        "ocf_$1"
        exit $?
        ;;
    *)
        echo "usage: $0 {start|stop|monitor|reload|validate-all|meta-data}" >&2
        exit $OCF_ERR_UNIMPLEMENTED
        ;;
    esac
}
