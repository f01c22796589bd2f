#!/usr/bin/env bash
# Every tool and example program answers --version with "NAME (ringd) VERSION" on stdout and
# exit 0, VERSION being meson's project version. Usage: tools_version_test.sh VERSION BINARY...
set -uo pipefail
version=$1
shift
failures=0
for exe in "$@"; do
    name=$(basename "$exe")
    out=$("$exe" --version 2>&1)
    rc=$?
    if [ "$rc" -eq 0 ] && [ "$out" = "$name (ringd) $version" ]; then
        echo "ok: $out"
    else
        echo "FAIL: $exe --version: exit $rc, printed '$out'"
        failures=$((failures + 1))
    fi
done
[ "$failures" -eq 0 ]
