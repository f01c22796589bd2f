#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# supervise_scale.sh — ringd-supervise under load (issue 11, item 8): N services registered over
# the control socket, then all N killed at once, then SIGTERM. Prints one line per phase:
#   register: N registrations answered in S s (all running after S s; supervisor CPU per one)
#   exit:     N processes killed at once; all running again after S s; ctl answered in at most
#             S s; supervisor CPU per exit and respawn (the polls of the bench included)
#   sigterm:  supervisor exited S s after SIGTERM (first ctl refusal/exit S s)
# Usage: bench/supervise_scale.sh [BUILD_DIR] [N]   (defaults: build, 10000)
# RINGD_SUPERVISE=path overrides the binary (e.g. an older build, to compare); PHASE_TIMEOUT
# (default 900 s) bounds each phase ("> T" is reported when it runs out). Needs python3 (any).
set -euo pipefail
build=${1:-build}
n=${2:-10000}
bin=${RINGD_SUPERVISE:-$build/tools/ringd-supervise/ringd-supervise}
limit=${PHASE_TIMEOUT:-900}
[ -x "$bin" ] || { echo "supervise_scale: no binary at $bin (build it, or set RINGD_SUPERVISE)" >&2; exit 2; }
bin=$(realpath "$bin")
ulimit -n 19500 # one pidfd per service, and the control connections (hard limit here: 20,000)

dir=$(mktemp -d /tmp/supervise-scale-XXXXXX)
sup=0
cleanup() {
    [ "$sup" -gt 0 ] && kill -KILL "$sup" 2>/dev/null
    # The services lead their own process groups: end what is left of them.
    pkill -KILL -f "^/bin/sleep 86399$" 2>/dev/null || true
    rm -rf "$dir"
}
trap cleanup EXIT

cat >"$dir/config.toml" <<TOML
directories = []
restart_delay_s = 1
backoff_factor = 1
start_limit_burst = 0
TOML
"$bin" --foreground --config "$dir/config.toml" --state "$dir/table" --log-dir "$dir/logs" \
    --control "$dir/control.sock" --log-level err >"$dir/supervisor.out" 2>&1 &
sup=$!

python3 -u - "$dir/control.sock" "$n" "$sup" "$limit" <<'PY'
import json, os, signal, socket, sys, threading, time

path, n, sup, limit = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4])

def ask(words, timeout=limit):
    """One ctl request: (status, text)."""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(timeout)
    s.connect(path)
    s.sendall(b"".join(w.encode() + b"\0" for w in words))
    s.shutdown(socket.SHUT_WR)
    chunks = []
    while True:
        c = s.recv(1 << 16)
        if not c:
            break
        chunks.append(c)
    s.close()
    reply = b"".join(chunks).decode(errors="replace")
    head, _, text = reply.partition("\n")
    return (int(head) if head.isdigit() else -1), text

def cpu():
    """The supervisor's CPU time so far (user + system), in seconds."""
    with open("/proc/%d/stat" % sup) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

def running():
    st, text = ask(["list", "--json"])
    if st != 0:
        return -1, []
    entries = json.loads(text)
    return sum(1 for e in entries if e["state"] == "running"), entries

deadline = time.monotonic() + 10
while not os.path.exists(path):
    if time.monotonic() > deadline:
        sys.exit("supervise_scale: the supervisor did not start")
    time.sleep(0.05)

# ---- registrations: 8 clients at once (the server serves 16) ----
c0 = cpu()
t0 = time.monotonic()
todo = list(range(n))
lock = threading.Lock()
failures = []
def client():
    while True:
        with lock:
            if not todo or time.monotonic() - t0 > limit:
                return
            i = todo.pop()
        for _ in range(100):
            st, text = ask(["register", "s%05d" % i, "--", "/bin/sleep", "86399"])
            if st == 0:
                break
            if "busy" not in text:
                failures.append(text.strip())
                break
            time.sleep(0.01)
threads = [threading.Thread(target=client) for _ in range(8)]
for t in threads: t.start()
for t in threads: t.join()
answered = time.monotonic() - t0
if failures:
    print("register: %d failed, first: %s" % (len(failures), failures[0]))
if todo:
    print("register: > %.0f s (%d of %d not registered)" % (limit, len(todo), n))
    sys.exit(1)
while running()[0] < n:
    if time.monotonic() - t0 > limit:
        print("register: all running: > %.0f s" % limit); sys.exit(1)
    time.sleep(0.5)
print("register: %d registrations answered in %.1f s (all running after %.1f s; "
      "supervisor CPU %.2f ms per registration)"
      % (n, answered, time.monotonic() - t0, (cpu() - c0) * 1000 / n))

# ---- all N processes killed at once ----
_, entries = running()
pids = [e["pid"] for e in entries]
waits = []
stop_probe = threading.Event()
def probe():
    while not stop_probe.is_set():
        t = time.monotonic()
        try:
            ask(["status", "s00000"], timeout=limit)
        except Exception:
            pass
        waits.append((time.monotonic() - t, t - t1))
        stop_probe.wait(0.1)
c1 = cpu()
t1 = time.monotonic()
for p in pids:
    try: os.kill(p, signal.SIGKILL)
    except ProcessLookupError: pass
prober = threading.Thread(target=probe); prober.start()
time.sleep(0.5)
back = None
while time.monotonic() - t1 < limit:
    up, entries = running()
    # Restarted: running, once more (a pid alone may have been recycled).
    if up == n and all(e["restarts"] >= 1 for e in entries):
        back = time.monotonic() - t1
        break
    time.sleep(2) # a list of every service costs the supervisor O(n): not too often
stop_probe.set(); prober.join()
waits.sort()
print("exit: %d processes killed at once; all running again after %s; ctl answered in "
      "%.2f s median, %.2f s p90, %.2f s at most (asked %.1f s into the phase); supervisor CPU "
      "%.2f ms per exit and respawn"
      % (n, "%.1f s" % back if back is not None else "> %.0f s" % limit,
         waits[len(waits) // 2][0], waits[len(waits) * 9 // 10][0], waits[-1][0], waits[-1][1],
         (cpu() - c1) * 1000 / n))

# ---- SIGTERM: every service stops, then the supervisor exits ----
t2 = time.monotonic()
os.kill(sup, signal.SIGTERM)
first = None
while time.monotonic() - t2 < limit:
    try:
        os.kill(sup, 0)
        with open("/proc/%d/stat" % sup) as f:
            if f.read().split(") ")[1][0] == "Z":
                break
    except (ProcessLookupError, FileNotFoundError):
        break
    if first is None:
        try:
            st, text = ask(["register", "late", "--", "/bin/true"], timeout=5)
            if "shutting down" in text:
                first = time.monotonic() - t2
        except Exception:
            pass
    time.sleep(0.05)
else:
    print("sigterm: still running > %.0f s after SIGTERM" % limit); sys.exit(1)
print("sigterm: supervisor exited %.1f s after SIGTERM (it said 'shutting down' after %s)"
      % (time.monotonic() - t2, "%.2f s" % first if first is not None else "-"))
PY
wait "$sup" 2>/dev/null || true
sup=0
