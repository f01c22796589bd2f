# SPDX-License-Identifier: MIT
# bash completion for ringd's tools (ringd-control, ringd-supervise, and the xfer example's xferrd
# and xferctl). The options come from the program's own --help, so they follow it; values that
# are files, levels, signals, transports and commands are completed from what the tools accept.
_ringd_tool() {
    local cur=${COMP_WORDS[COMP_CWORD]} prev=${COMP_WORDS[COMP_CWORD - 1]} cmd=${COMP_WORDS[0]}
    # The options that take a value: the word after one is no subcommand.
    local values=" -c --config --pid-file --guard-file --reload-status --state --log-dir --control
        --log-level --signal --child --timeout --syslog-ident --syslog-facility -t "
    local i word subcommand=
    for ((i = 1; i < COMP_CWORD; i++)); do
        word=${COMP_WORDS[i]}
        [ "$word" = -- ] && return 0 # a daemon's command line follows: not ours to complete
        [[ $values == *" ${COMP_WORDS[i - 1]} "* && $i -gt 1 ]] && continue
        [[ $word != -* && -z $subcommand ]] && subcommand=$word
    done
    case $prev in
    -c | --config | --pid-file | --guard-file | --reload-status | --state | --log-dir | --control)
        mapfile -t COMPREPLY < <(compgen -f -- "$cur")
        return 0
        ;;
    --log-level)
        mapfile -t COMPREPLY < <(compgen -W "err warning notice info" -- "$cur")
        return 0
        ;;
    --signal | --stop-signal)
        mapfile -t COMPREPLY < <(compgen -W "HUP INT QUIT TERM KILL USR1 USR2" -- "$cur")
        return 0
        ;;
    --child)
        mapfile -t COMPREPLY < <(compgen -W "tcpip tcpip_tls unix" -- "$cur")
        return 0
        ;;
    esac
    local words=
    if [[ $cur == -* ]]; then
        local help=--help
        [ "${cmd##*/}" = ringd-supervise ] && [ "$subcommand" = ctl ] && help="ctl --help"
        # shellcheck disable=SC2086 # $help is one or two words
        words=$("$cmd" $help 2>/dev/null | grep -oE -- '--[a-z][a-z-]*' | sort -u)
    elif [ -z "$subcommand" ] || [ "$subcommand" = "$cur" ]; then
        case ${cmd##*/} in
        xferctl) words="start stop reload upgrade status debug-dump" ;;
        ringd-supervise) words="ctl" ;;
        esac
    elif [ "${cmd##*/}" = ringd-supervise ] && [ "$subcommand" = ctl ]; then
        words="register unregister list status start stop restart shutdown"
    fi
    mapfile -t COMPREPLY < <(compgen -W "$words" -- "$cur")
}
complete -F _ringd_tool ringd-control ringd-supervise xferrd xferctl
