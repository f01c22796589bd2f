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

# ocf_monitor, ocf_start, ocf_stop, ocf_reload: the OCF actions over `control`.
ocf_monitor() {
    control check >/dev/null 2>&1
    case $? in
    0) return $OCF_SUCCESS ;;
    101 | 103) return $OCF_NOT_RUNNING ;; # 103: a stale PID file was found and cleaned
    *)
        log err "check failed: $(control check 2>&1)"
        return $OCF_ERR_GENERIC
        ;;
    esac
}

ocf_start() {
    out=$(control start 2>&1)
    rc=$?
    case $rc in
    0 | 100) return $OCF_SUCCESS ;; # started and ready, or already running
    1)
        log err "start: bad usage: $out"
        return $OCF_ERR_ARGS
        ;;
    *)
        log err "start failed (exit $rc): $out"
        return $OCF_ERR_GENERIC
        ;;
    esac
}

# The daemon re-reads its configuration (SIGHUP); returns once it has acknowledged, with its
# reason when it refused (the old settings stay).
ocf_reload() {
    out=$(control reload 2>&1)
    rc=$?
    case $rc in
    0) return $OCF_SUCCESS ;;
    101 | 103)
        log err "reload: not running"
        return $OCF_NOT_RUNNING
        ;;
    *)
        log err "reload failed (exit $rc): $out"
        return $OCF_ERR_GENERIC
        ;;
    esac
}

ocf_stop() {
    out=$(control stop 2>&1)
    rc=$?
    case $rc in
    0 | 100 | 101 | 103) return $OCF_SUCCESS ;; # stopped, or was not running
    *)
        log err "stop failed (exit $rc): $out"
        return $OCF_ERR_GENERIC
        ;;
    esac
}

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
