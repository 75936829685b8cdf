#!/usr/bin/env python3
"""test_signal_reopen.py - a log reopened from a signal handler must never
hang the program (build/servers/signal_reopen, tests/servers/signal_reopen.c).

The handler dup2()s onto fd 2 while the program is inside localtime_r,
holding libc's time zone lock, and the shim holds a syslog message and a
line for fd 2. helper-76 found the shim's close path writing the held
syslog message from the handler: syslog() took that lock, and the program
hung in about half the runs. RUNS runs, each must end within TIMEOUT
seconds with "done reopened=1", its line for fd 2 written once.

    python3 tests/integration/test_signal_reopen.py [--runs N]
"""
import argparse
import os
import socket
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
LIB = ROOT / "build" / "libreqid.so"
SERVER = ROOT / "build" / "servers" / "signal_reopen"
TIMEOUT = 10


def one_run():
    """None if the run ended as it should, else what went wrong."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("REQID_", "LD_"))}
    # A zone with rules: localtime_r then holds its lock long enough.
    env.update(LD_PRELOAD=str(LIB), REQID_LOG_FDS="2", TZ="Europe/Berlin")
    proc = subprocess.Popen([str(SERVER)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    try:
        port = int(proc.stdout.readline())
        with socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT) as s:
            s.sendall(b"GET /x HTTP/1.1\r\nHost: x\r\nX-Request-ID: id-x\r\n\r\n")
            out, err = proc.communicate(timeout=TIMEOUT)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()
        return "hung (killed after %d s)" % TIMEOUT
    if proc.returncode != 0 or out != b"done reopened=1\n":
        return "exited %d, stdout %r" % (proc.returncode, out)
    if err.count(b"access /x") != 1 or not err.endswith(b"\n"):
        return "stderr %r" % err
    return None


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=int, default=10)
    a = ap.parse_args()
    problems = [p for p in (one_run() for _ in range(a.runs)) if p]
    print("signal reopen: %d runs, %d ended as they should" % (a.runs, a.runs - len(problems)))
    for p in problems[:5]:
        print("FAIL:", p)
    print("%d passed, %d failed" % (int(not problems), int(bool(problems))))
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
