#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# The command-line conventions every tool and example program shares (ringd/cli.hpp):
#   --version prints "NAME (ringd) VERSION" on stdout, exit 0 (VERSION: meson's project version);
#   --help and -h print the help, starting "usage: NAME", on stdout, nothing on stderr, exit 0;
#   an unknown option, a missing value, a flag given a value, a stray operand: one line on stderr
#   that names it and points to --help, nothing on stdout, the program's usage exit status;
#   --opt=value and --opt value are the same; -- ends the options (-- --help is no request for help).
# Usage: tools_cli_test.sh VERSION BINARY...
set -uo pipefail
version=$1
shift
failures=0
fail() {
    echo "FAIL: $*"
    failures=$((failures + 1))
}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# run ARGS...: runs $exe, sets rc, out (stdout) and err (stderr); bounded, never starts a daemon
# (every call below is a request for text or an error found before anything starts).
run() {
    timeout -s KILL 10 "$exe" "$@" >"$tmp/out" 2>"$tmp/err"
    rc=$?
    out=$(cat "$tmp/out")
    err=$(cat "$tmp/err")
}
# usage_error WHAT EXPECTED_MESSAGE ARGS...: exit $usage, exactly "NAME: MESSAGE (try NAME --help)".
usage_error() {
    local what=$1 message=$2
    shift 2
    run "$@"
    [ "$rc" -eq "$usage" ] || fail "$name $what ($*): exit $rc, expected $usage"
    [ "$err" = "$name: $message (try $name --help)" ] ||
        fail "$name $what ($*): stderr '$err', expected '$name: $message (try $name --help)'"
    [ -z "$out" ] || fail "$name $what ($*): printed '$out' on stdout"
}

for exe in "$@"; do
    name=$(basename "$exe")
    # Per program: its usage exit status, an option that takes a value, a value it refuses (given
    # both ways, the answer must be the same), and arguments that are complete without operands.
    nofile=/nonexistent/xfer.toml
    case $name in
    ringd-control) usage=1 opt=--timeout bad=x complete=(--timeout 1) ;;
    ringd-supervise) usage=1 opt=--log-level bad=loud complete=(--log-level info) ;;
    echod) usage=64 opt=--drain-timeout bad=x complete=(--drain-timeout 1) ;;
    xferrd | xfersqd | xferdebugd) usage=64 opt=--config bad=$nofile complete=(-c "$nofile") ;;
    xferctl) usage=1 opt=--config bad=$nofile complete=(-c "$nofile" status) ;;
    *)
        fail "$name: no conventions known for it (add it to tools_cli_test.sh)"
        continue
        ;;
    esac

    run --version
    [ "$rc" -eq 0 ] && [ "$out" = "$name (ringd) $version" ] && [ -z "$err" ] ||
        fail "$name --version: exit $rc, printed '$out' '$err'"
    for help in --help -h; do
        run $help
        [ "$rc" -eq 0 ] && [[ $out == "usage: $name"* ]] && [ -z "$err" ] ||
            fail "$name $help: exit $rc, printed '${out%%$'\n'*}' '$err'"
    done

    usage_error "an unknown option" "unknown option '--no-such-option'" --no-such-option
    usage_error "an unknown short option" "unknown option '-Z'" -Z
    usage_error "a missing value" "option $opt needs a value" "$opt"
    usage_error "an empty value" "option $opt needs a value" "$opt="
    usage_error "a flag given a value" "option --version takes no value" --version=1
    usage_error "a stray operand" "unexpected argument 'stray'" "${complete[@]}" stray
    [ "$name" = xferctl ] &&
        usage_error "an unknown command" "unknown command 'frob'" --config x frob

    run "$opt=$bad"
    local_rc=$rc local_err=$err
    run "$opt" "$bad"
    [ "$rc" -ne 0 ] && [ "$rc" -eq "$local_rc" ] && [ "$err" = "$local_err" ] ||
        fail "$name: '$opt=$bad' (exit $local_rc: $local_err) and '$opt $bad' (exit $rc: $err) differ"

    run -- --help
    [ "$rc" -ne 0 ] && [[ $out != "usage: "* ]] ||
        fail "$name -- --help: exit $rc, printed '$out': -- did not end the options"
done
if [ "$failures" -eq 0 ]; then
    echo "ok: $# programs share --version, --help/-h, usage errors, --opt=value and --"
fi
[ "$failures" -eq 0 ]
