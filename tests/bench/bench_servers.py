#!/usr/bin/env python3
"""bench_servers.py - what the shim costs a whole event-loop server (part of
`make bench`): nginx, one worker on CPU 0, serving one small static file to
wrk on CPU 1 (32 keep-alive connections, one URL, X-Request-ID on every
other request), its access log a shimmed log file.

Runs, alternated ROUNDS times in one session so machine noise moves them
alike: bare nginx; nginx under reqid with its defaults; nginx under reqid with
REQID_EVENT_STACKS=off (no one-event waits, no call chains: the cost of the
event-loop rule is the difference). Prints the median req/s of each and the
ratios to bare. Never fails on speed; fails only when a run cannot start or
serves errors.

    python3 tests/bench/bench_servers.py [--rounds N] [--seconds S]
"""
import argparse
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
REQID = ROOT / "scripts" / "reqid"

LUA = """
local n = 0
request = function()
  n = n + 1
  if n % 2 == 0 then
    return wrk.format("GET", "/index.html", {["X-Request-ID"] = "bench-" .. n})
  end
  return wrk.format("GET", "/index.html")
end
"""

CONFIG = """worker_processes 1;
daemon off;
pid {d}/nginx.pid;
error_log {d}/logs/error.log error;
events {{ worker_connections 1024; }}
http {{
  client_body_temp_path {d}/tmp; proxy_temp_path {d}/tmp; fastcgi_temp_path {d}/tmp;
  uwsgi_temp_path {d}/tmp; scgi_temp_path {d}/tmp;
  server {{
    listen 127.0.0.1:{port};
    root {d}/www;
    access_log {d}/logs/access.log combined;
  }}
}}
"""

VARIANTS = [
    ("bare", None, {}),
    ("reqid", [], {}),
    ("reqid, REQID_EVENT_STACKS=off", [], {"REQID_EVENT_STACKS": "off"}),
]


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port, proc, timeout=10.0):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if proc.poll() is not None:
            raise RuntimeError("nginx exited with %s" % proc.returncode)
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.02)
    raise RuntimeError("nginx did not listen on %d" % port)


def one_run(d, port, reqid_args, env_extra, seconds):
    (d / "logs").mkdir(exist_ok=True)
    for f in (d / "logs").iterdir():
        f.unlink()
    cmd = ["taskset", "-c", "0"]
    if reqid_args is not None:
        cmd += [str(REQID), "run", "--log-path", str(d / "logs" / "*.log")] + reqid_args + ["--"]
    cmd += ["nginx", "-p", str(d), "-c", str(d / "nginx.conf"), "-e", str(d / "logs/error.log")]
    env = dict(os.environ)
    env.pop("LD_PRELOAD", None)
    env.update(env_extra)
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_port(port, proc)
        out = subprocess.run(["taskset", "-c", "1", "wrk", "-t1", "-c32", "-d%ds" % seconds,
                              "-s", str(d / "bench.lua"), "http://127.0.0.1:%d/index.html" % port],
                             capture_output=True, text=True, check=True).stdout
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    if "Non-2xx" in out or "Socket errors" in out:
        raise RuntimeError("wrk saw errors:\n" + out)
    return float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--seconds", type=int, default=3)
    a = ap.parse_args()
    for tool in ("nginx", "wrk", "taskset"):
        if not shutil.which(tool):
            print("bench_servers: %s is not installed; skipped" % tool)
            return 0
    d = Path(tempfile.mkdtemp(prefix="reqid-bench-"))
    d.chmod(0o755)  # nginx's worker may run as another user
    try:
        port = free_port()
        (d / "www").mkdir()
        (d / "tmp").mkdir()
        (d / "www" / "index.html").write_text("<html><body>hello</body></html>\n")
        (d / "bench.lua").write_text(LUA)
        (d / "nginx.conf").write_text(CONFIG.format(d=d, port=port))
        rates = {name: [] for name, _, _ in VARIANTS}
        for _ in range(a.rounds):
            for name, args, env in VARIANTS:
                rates[name].append(one_run(d, port, args, env, a.seconds))
        bare = statistics.median(rates["bare"])
        print("nginx static file, wrk -c32 keep-alive, %d rounds of %d s, median req/s:"
              % (a.rounds, a.seconds))
        for name, _, _ in VARIANTS:
            m = statistics.median(rates[name])
            print("  %-32s %9.0f  %.3fx   (runs: %s)" % (
                name, m, m / bare, " ".join("%.0f" % r for r in rates[name])))
    finally:
        shutil.rmtree(d, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
