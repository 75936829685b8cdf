#!/usr/bin/env python3
"""soak.py - nginx under `reqid run` for minutes at concurrency 512 (`make
soak`; not part of `make test`).

nginx (2 workers, its own config in a temp dir, 127.0.0.1) serves wrk's
traffic: one URL and mixed URLs (a third of the requests ask for a missing
page, 404), keep-alive and close (a quarter of the requests ask to close),
X-Request-ID on half of them, unique per request. nginx writes two access
logs of the same format: access.log, which the shim enriches, and truth.log,
which it does not touch (the ground truth: nginx's own record of each
request, keyed by worker pid, connection number and request number on it).

Checks, for every request nginx logged:
  lost:    its line is in access.log, once;
  garbled: that line is one JSON object whose msg is nginx's line, byte for
           byte;
  wrong:   its request_id is the X-Request-ID it came with, or, without one,
           a generated id (32 hex) no other line has.
Samples the workers every 10 s (resident memory, descriptors, CPU per
request) and prints the slope of each from the first to the last minute.
Fails on any lost, garbled or wrong line, on fewer than MIN_REQUESTS
requests, on a worker's descriptors or resident memory growing from the
first sample after warm-up to the last by more than the bounds below, or on
CPU per request growing by more than 20%.

    python3 tests/integration/soak.py [--seconds S] [--min-requests N]
"""
import argparse
import json
import os
import re
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests" / "bench"))
import benchlib  # noqa: E402
from benchlib import REQID  # noqa: E402

CONNS = 512
RSS_GROWTH_KIB = 2048
SAMPLE_SECONDS = 10

FORMAT = '$pid $connection $connection_requests "$http_x_request_id" $status "$request"'

NGINX = """worker_processes 2;
daemon off;
pid {d}/nginx.pid;
error_log {d}/logs/error.log error;
events {{ worker_connections 4096; }}
http {{
  client_body_temp_path {d}/tmp; proxy_temp_path {d}/tmp; fastcgi_temp_path {d}/tmp;
  uwsgi_temp_path {d}/tmp; scgi_temp_path {d}/tmp;
  log_format soak '{fmt}';
  keepalive_requests 1000000;
  server {{
    listen 127.0.0.1:{port} backlog=4096;
    root {d}/www;
    access_log {d}/logs/access.log soak;
    access_log {d}/truth/truth.log soak;
  }}
}}
"""

LUA = """
local n = 0
local prefix = tostring(math.random(1, 1000000000))
request = function()
  n = n + 1
  local path = "/index.html"
  if n % 3 == 0 then path = "/missing/" .. (n % 97) .. ".html" end
  local headers = {}
  if n % 2 == 0 then headers["X-Request-ID"] = "soak-" .. prefix .. "-" .. n end
  if n % 4 == 1 then headers["Connection"] = "close" end
  return wrk.format("GET", path, headers)
end
"""

LINE = re.compile(r'^(\d+) (\d+) (\d+) "([^"]*)" (\d+) "([^"]*)"$')
GENERATED = re.compile(r"^[0-9a-f]{32}$")


def worker_pids(master):
    try:
        with open("/proc/%d/task/%d/children" % (master, master)) as f:
            return [int(p) for p in f.read().split()]
    except OSError:
        return []


def sample(pids):
    """(resident KiB, descriptors, CPU seconds) summed over pids."""
    rss = fds = 0
    cpu = 0.0
    tick = os.sysconf("SC_CLK_TCK")
    for pid in pids:
        try:
            with open("/proc/%d/status" % pid) as f:
                rss += int(re.search(r"VmRSS:\s+(\d+)", f.read()).group(1))
            fds += len(os.listdir("/proc/%d/fd" % pid))
            with open("/proc/%d/stat" % pid) as f:
                fields = f.read().rsplit(")", 1)[1].split()
            cpu += (int(fields[11]) + int(fields[12])) / tick
        except (OSError, AttributeError):
            pass
    return rss, fds, cpu


def count_lines(path, state):
    """Lines of path so far, reading only what was added since the last call."""
    try:
        with open(path, "rb") as f:
            f.seek(state[0])
            data = f.read()
    except OSError:
        return state[1]
    state[0] += len(data)
    state[1] += data.count(b"\n")
    return state[1]


def slope(points):
    """Least-squares slope of (minute, value) points."""
    n = len(points)
    if n < 2:
        return 0.0
    mx = sum(x for x, _ in points) / n
    my = sum(y for _, y in points) / n
    den = sum((x - mx) ** 2 for x, _ in points)
    return sum((x - mx) * (y - my) for x, y in points) / den if den else 0.0


def check_logs(d):
    """(requests, lost, garbled, wrong, duplicated generated ids)."""
    truth = {}
    for raw in (d / "truth" / "truth.log").read_bytes().split(b"\n")[:-1]:
        m = LINE.match(raw.decode())
        truth[m.group(1, 2, 3)] = (raw.decode(), m.group(4))
    seen = set()
    garbled = wrong = 0
    generated = {}
    for raw in (d / "logs" / "access.log").read_bytes().split(b"\n")[:-1]:
        try:
            obj = json.loads(raw)
            msg = obj["msg"]
            m = LINE.match(msg)
            key = m.group(1, 2, 3)
        except (ValueError, KeyError, TypeError, AttributeError):
            garbled += 1
            continue
        if key not in truth or truth[key][0] != msg or key in seen:
            garbled += 1
            continue
        seen.add(key)
        given = truth[key][1]
        rid = obj.get("request_id")
        if given and given != "-":
            wrong += rid != given
        elif rid is None or not GENERATED.match(rid):
            wrong += 1
        else:
            generated[rid] = generated.get(rid, 0) + 1
    lost = len(truth) - len(seen)
    dup = sum(c - 1 for c in generated.values() if c > 1)
    return len(truth), lost, garbled, wrong, dup


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seconds", type=int, default=300)
    ap.add_argument("--min-requests", type=int, default=1_000_000)
    args = ap.parse_args()
    missing = benchlib.missing(["nginx", "wrk"])
    if missing:
        sys.exit("soak: missing %s (make deps installs them)" % " ".join(missing))
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp) / "nginx"
        for sub in ("www", "tmp", "logs", "truth"):
            (d / sub).mkdir(parents=True)
        d.chmod(0o755)
        (d / "www" / "index.html").write_text("<html><body>hello</body></html>\n")
        (d / "soak.lua").write_text(LUA)
        port = benchlib.free_port()
        (d / "nginx.conf").write_text(NGINX.format(d=d, port=port, fmt=FORMAT))
        cmd = [str(REQID), "run", "--log-path", str(d / "logs" / "*.log"), "--",
               "nginx", "-p", str(d), "-c", str(d / "nginx.conf"), "-e",
               str(d / "logs" / "error.log")]
        proc = benchlib.start(cmd, benchlib.clean_env(), d / "console")
        samples = []
        try:
            benchlib.wait_port(port, proc, "nginx")
            master = int((d / "nginx.pid").read_text())
            stop = threading.Event()
            state = [0, 0]

            def sampler():
                t0 = time.monotonic()
                while not stop.wait(SAMPLE_SECONDS):
                    pids = worker_pids(master)
                    rss, fds, cpu = sample(pids)
                    samples.append(((time.monotonic() - t0) / 60, rss, fds, cpu,
                                    count_lines(d / "truth" / "truth.log", state)))

            th = threading.Thread(target=sampler)
            th.start()
            try:
                rate = benchlib.wrk("http://127.0.0.1:%d/index.html" % port, CONNS,
                                    args.seconds, d / "soak.lua", allow_non2xx=True)
            finally:
                stop.set()
                th.join()
        finally:
            benchlib.stop(proc)
        requests, lost, garbled, wrong, dup = check_logs(d)
    print("soak: nginx under reqid, %d s, %d connections: %d requests (%.0f/s)"
          % (args.seconds, CONNS, requests, rate))
    print("  lost %d, garbled %d, wrong %d, generated ids given twice %d" % (lost, garbled, wrong, dup))
    # slopes from the second sample on (the first includes warm-up)
    steady = samples[1:]
    per_req = []
    for a, b in zip(steady, steady[1:]):
        if b[4] > a[4]:
            per_req.append((b[0], (b[3] - a[3]) / (b[4] - a[4]) * 1e6))
    print("  workers' resident memory: %d -> %d KiB, slope %.1f KiB/min"
          % (steady[0][1], steady[-1][1], slope([(s[0], s[1]) for s in steady])))
    print("  workers' descriptors: %d -> %d, slope %.2f/min"
          % (steady[0][2], steady[-1][2], slope([(s[0], s[2]) for s in steady])))
    if per_req:
        print("  CPU per request: %.1f -> %.1f us, slope %.2f us/min"
              % (per_req[0][1], per_req[-1][1], slope(per_req)))
    failures = []
    if lost or garbled or wrong or dup:
        failures.append("lost, garbled or wrong lines")
    if requests < args.min_requests:
        failures.append("only %d requests (at least %d)" % (requests, args.min_requests))
    if steady[-1][1] - steady[0][1] > RSS_GROWTH_KIB:
        failures.append("resident memory grew by %d KiB" % (steady[-1][1] - steady[0][1]))
    if steady[-1][2] > steady[0][2] + 16:
        failures.append("descriptors grew from %d to %d" % (steady[0][2], steady[-1][2]))
    if len(per_req) >= 2 and per_req[-1][1] > 1.2 * per_req[0][1]:
        failures.append("CPU per request grew by more than 20%")
    print("soak: %s" % ("FAIL: " + "; ".join(failures) if failures else "PASS"))
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
