#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""ringd-supervise holds a service's listening socket (`ctl register --listen ADDR`, and
`[services.NAME] listen = [...]` for directory services): it binds the address once and passes
the socket to every start by the systemd protocol, so that while the service is down after a
kill -9 a client's connect is not refused: the kernel's backlog holds it until the next process
accepts, and the request is then answered.

The service is echod, which serves the sockets it is passed (LISTEN_FDS) when given no --listen.
The same kill of an echod that binds its own address (registered without --listen) refuses
connections in the restart window: that is what the test would see without the feature.

Environment: RINGD_SUPERVISE, ECHOD (paths). Bounded: every wait has a deadline; the supervisor
and its services are ended at exit whatever happens.
"""
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time

SUP = os.environ["RINGD_SUPERVISE"]
ECHOD = os.environ["ECHOD"]
failures = []


def check(what, ok, detail=""):
    print(("ok: " if ok else "FAIL: ") + what + (f" ({detail})" if detail else ""))
    if not ok:
        failures.append(what)


def wait_until(what, done, limit=20.0):
    end = time.monotonic() + limit
    while time.monotonic() < end:
        value = done()
        if value:
            return value
        time.sleep(0.02)
    raise RuntimeError("timed out waiting for " + what)


class Supervisor:
    def __init__(self, tmp, config_text):
        self.tmp = tmp
        self.control = os.path.join(tmp, "control.sock")
        config = os.path.join(tmp, "config.toml")
        with open(config, "w") as f:
            f.write(config_text)
        os.makedirs(os.path.join(tmp, "logs"))
        self.proc = subprocess.Popen(
            [SUP, "--foreground", "--config", config, "--state", os.path.join(tmp, "table"),
             "--log-dir", os.path.join(tmp, "logs"), "--control", self.control],
            stdout=open(os.path.join(tmp, "supervisor.out"), "w"), stderr=subprocess.STDOUT,
            start_new_session=True)
        wait_until("the control socket", lambda: os.path.exists(self.control))

    def ctl(self, *words):
        out = subprocess.run([SUP, "ctl", "--control", self.control, *words],
                             capture_output=True, text=True, timeout=20)
        return out.returncode, out.stdout + out.stderr

    def status(self, name):
        code, text = self.ctl("status", name, "--json")
        return json.loads(text) if code == 0 else None

    def running_pid(self, name, not_pid=0):
        def ready():
            st = self.status(name)
            if st and st.get("state") == "running" and st.get("pid", 0) not in (0, not_pid):
                return st["pid"]
            return None
        return wait_until(name + " running", ready)

    def end(self):
        if self.proc.poll() is None:
            try:
                self.ctl("shutdown")
                self.proc.wait(timeout=20)
            except Exception:
                pass
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()


def echo_once(port, line, limit=10.0):
    """connect + one line + its echo: 'ok', 'refused', 'reset' or 'unanswered'."""
    try:
        s = socket.create_connection(("127.0.0.1", port), timeout=limit)
    except ConnectionRefusedError:
        return "refused"
    try:
        s.sendall(line)
        got = b""
        while not got.endswith(b"\n"):
            chunk = s.recv(4096)
            if not chunk:
                return "unanswered"
            got += chunk
        return "ok" if got == line else "unanswered"
    except ConnectionResetError:
        return "reset"
    except socket.timeout:
        return "unanswered"
    finally:
        s.close()


def gone(pid):
    try:
        os.kill(pid, 0)
        return False
    except ProcessLookupError:
        return True


def kill_and_probe(sup, name, port, rounds):
    """kill -9 the service `rounds` times; once its process is gone (reaped), and before the
    restart delay has passed, one request. Outcomes.

    A connection that arrives in the instant between the kill and the end of the process can be
    taken by the dying process (io_uring runs a pending accept for it) and is reset: no server
    keeps what a killed process had accepted, so the probe waits until the process is gone."""
    outcomes = []
    for i in range(rounds):
        pid = sup.running_pid(name)
        os.kill(pid, signal.SIGKILL)
        wait_until(f"pid {pid} gone", lambda: gone(pid))
        outcomes.append(echo_once(port, b"after kill %d\n" % i))
        sup.running_pid(name, not_pid=pid)
    return outcomes


def listening_port(sup, name):
    st = wait_until(name + "'s socket", lambda: (sup.status(name) or {}).get("listening"))
    return int(st[0].rsplit(":", 1)[1])


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def bad_config(tmp):
    path = os.path.join(tmp, "bad.toml")
    with open(path, "w") as f:
        f.write('directories = []\n[services.web]\nlisten = ["nowhere"]\n')
    out = subprocess.run([SUP, "--foreground", "--config", path, "--control",
                          os.path.join(tmp, "bad.sock")],
                         capture_output=True, text=True, timeout=20)
    check("a bad [services.NAME] listen address stops the start, naming file, line and value",
          out.returncode != 0 and f"config {path}: line 3: services.web.listen: 'nowhere'"
          in out.stderr, out.stderr.strip())


def main():
    tmp = tempfile.mkdtemp(prefix="supervise-listen-")
    bad_config(tmp)
    services = os.path.join(tmp, "services")
    os.makedirs(services)
    # A directory service whose socket comes from [services.dir-echo] listen.
    script = os.path.join(services, "dir-echo")
    with open(script, "w") as f:
        f.write(f"#!/bin/sh\nexec {ECHOD} --foreground\n")
    os.chmod(script, 0o755)
    sup = Supervisor(tmp, f'directories = ["{services}"]\nrestart_delay_s = 1\nstart_limit_burst = 0\n'
                          f'[services.dir-echo]\nlisten = ["127.0.0.1:0"]\n')
    try:
        code, text = sup.ctl("register", "held", "--listen", "127.0.0.1:0", "--",
                             ECHOD, "--foreground")
        check("register --listen is accepted", code == 0, text.strip())
        port = listening_port(sup, "held")
        sup.running_pid("held")
        check("a held socket serves", echo_once(port, b"hello\n") == "ok")
        outcomes = kill_and_probe(sup, "held", port, 5)
        check("no connection refused, reset or unanswered across 5 kill -9 of a service "
              "whose socket the supervisor holds", outcomes == ["ok"] * 5, str(outcomes))

        dport = listening_port(sup, "dir-echo")
        outcomes = kill_and_probe(sup, "dir-echo", dport, 3)
        check("a directory service's [services.NAME] listen socket is held across kills",
              outcomes == ["ok"] * 3, str(outcomes))

        code, text = sup.ctl("register", "bad", "--listen", "nowhere", "--", "/bin/true")
        check("a bad --listen address is refused, naming it",
              code != 0 and "--listen 'nowhere'" in text, text.strip())

        # The baseline: echod binding its own address refuses connections while it is down.
        own = free_port()
        code, text = sup.ctl("register", "own", "--", ECHOD, "--foreground", "--listen",
                             f"127.0.0.1:{own}")
        check("register without --listen", code == 0, text.strip())
        sup.running_pid("own")
        wait_until("own's port", lambda: echo_once(own, b"x\n", 1) == "ok")
        outcomes = kill_and_probe(sup, "own", own, 3)
        check("without a held socket the restart window loses connections (the baseline)",
              any(o != "ok" for o in outcomes), str(outcomes))
    finally:
        sup.end()
        subprocess.run(["rm", "-rf", tmp])
    if failures:
        print(f"{len(failures)} failed")
        sys.exit(1)
    print("all passed")


if __name__ == "__main__":
    main()
