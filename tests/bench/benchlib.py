"""benchlib.py - what the whole-program benchmarks (bench_process.py,
bench_servers.py) share: the alternation of bare and shimmed runs, the table
row (median of each side, their ratio, p25-p75 of each side), CPU pinning,
and starting, loading (wrk) and stopping a server on 127.0.0.1.

Python 3 standard library only.
"""
import os
import re
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
REQID = ROOT / "scripts" / "reqid"
LIB = ROOT / "build" / "libreqid.so"

NAME_WIDTH = 46


# -- statistics and the table ------------------------------------------------

def percentile(xs, q):
    """The q-th percentile (0-100) of xs, linearly interpolated."""
    s = sorted(xs)
    if len(s) == 1:
        return s[0]
    k = (len(s) - 1) * q / 100.0
    i = int(k)
    return s[i] if i + 1 >= len(s) else s[i] + (s[i + 1] - s[i]) * (k - i)


def alternated(rounds, bare, shim):
    """Calls bare() and shim() once per round, the shimmed run first in
    every other round (back-to-back runs are not alike: the order biases
    them by some 5% on a small VM). Each call returns a list of samples or
    one sample; returns (bare samples, shim samples)."""
    out = ([], [])
    for i in range(rounds):
        for side in ((0, 1) if i % 2 == 0 else (1, 0)):
            r = (bare, shim)[side]()
            out[side].extend(r if isinstance(r, list) else [r])
    return out


def header(title):
    print()
    print(title)
    print("%-*s %10s %10s %7s   %s" % (NAME_WIDTH, "  measurement", "bare", "shim", "ratio",
                                      "spread p25-p75: bare | shim"))


def fmt(x, digits):
    return "%.*f" % (digits, x)


def row(name, bare, shim, digits=1, note=""):
    """One table row: medians, shim/bare ratio, the spread of each side."""
    mb, ms = percentile(bare, 50), percentile(shim, 50)
    ratio = "%6.3fx" % (ms / mb) if mb else "     - "
    spread = "%s-%s | %s-%s" % (fmt(percentile(bare, 25), digits), fmt(percentile(bare, 75), digits),
                                fmt(percentile(shim, 25), digits), fmt(percentile(shim, 75), digits))
    print("  %-*s %10s %10s %7s   %s%s" % (NAME_WIDTH - 2, name, fmt(mb, digits), fmt(ms, digits),
                                         ratio, spread, ("   " + note) if note else ""))


# -- processes and servers -----------------------------------------------------

def pin(cpu):
    """taskset prefix for CPU cpu, when the machine has two CPUs to split."""
    if (os.cpu_count() or 1) >= 2 and shutil.which("taskset"):
        return ["taskset", "-c", str(cpu)]
    return []


def clean_env(extra=None):
    """This environment without LD_PRELOAD or REQID_* (but REQID_LIB), with
    the sbin directories the servers live in, plus extra."""
    env = {k: v for k, v in os.environ.items()
           if k != "LD_PRELOAD" and (not k.startswith("REQID_") or k == "REQID_LIB")}
    env["PATH"] = env.get("PATH", "/usr/bin:/bin") + ":/usr/sbin:/sbin"
    env.update(extra or {})
    return env


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port, proc, name, timeout=10.0):
    """Polls until port accepts a connection; fails if proc exits first."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if proc.poll() is not None:
            raise RuntimeError("%s exited with %s before listening" % (name, proc.returncode))
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.02)
    raise RuntimeError("%s did not listen on %d within %.0f s" % (name, port, timeout))


def perf_stop_faults(proc, counted, timeout=10.0):
    """Stops a server run as `perf stat -x, -e page-faults -o counted --
    SERVER`: SIGTERM to perf's child (the server; perf passes no signal
    on), then the page faults perf counted for it and all its children,
    those still finishing included."""
    return perf_stop_counts(proc, counted, ["page-faults"], timeout)["page-faults"]


def perf_stop_counts(proc, counted, events, timeout=10.0):
    """perf_stop_faults for a server run with `perf stat -x, -e E1,E2...`:
    {event: count} for each of events."""
    server = subprocess.run(["pgrep", "-P", str(proc.pid)], capture_output=True,
                            text=True).stdout.split()
    for pid in server[:1]:
        os.kill(int(pid), signal.SIGTERM)
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        for pid in server[:1]:
            os.kill(int(pid), signal.SIGKILL)
        proc.kill()
        proc.wait()
    text = Path(counted).read_text()
    counts = {}
    for event in events:
        m = re.search(r"^(\d+),+%s," % re.escape(event), text, re.M)
        if not m:
            raise RuntimeError("perf stat counted no %s: %r" % (event, text))
        counts[event] = int(m.group(1))
    return counts


def start(cmd, env, log, cwd=None):
    """Starts a server, its stdout and stderr appended to file log."""
    with open(log, "ab") as out:
        return subprocess.Popen(cmd, env=env, cwd=cwd, stdin=subprocess.DEVNULL,
                                stdout=out, stderr=out)


def stop(proc):
    if proc.poll() is None:
        proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=10)


def wrk(url, conns, seconds, script=None, allow_non2xx=False):
    """req/s of wrk (one thread, on CPU 1) against url; fails on errors
    (and on non-2xx responses unless allowed)."""
    cmd = pin(1) + ["wrk", "-t1", "-c%d" % conns, "-d%ds" % seconds]
    if script:
        cmd += ["-s", str(script)]
    out = subprocess.run(cmd + [url], capture_output=True, text=True, check=True).stdout
    if ("Non-2xx" in out and not allow_non2xx) or "Socket errors" in out:
        raise RuntimeError("wrk saw errors:\n" + out)
    return float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))


def missing(tools):
    """The tools of this list that are not installed."""
    return [t for t in tools if not shutil.which(t, path=clean_env()["PATH"])]
