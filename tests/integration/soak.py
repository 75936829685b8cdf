#!/usr/bin/env python3
"""soak.py - nginx and the bundled thread-pool server under `reqid run`, each
for minutes at concurrency 512 (`make soak`; not part of `make test`).

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

The thread-pool server (tests/servers/thread_pool.c with 520 workers, one
per connection wrk keeps; its log a file the shim is given with
--log-path) writes three lines per request ("token=T start" and "working"
before the response, "done" after it) and one per connection a worker
picks up, which is no request's. Two requests in three ask for one of three
shared URLs, the rest for one of their own; X-Request-ID on half,
Connection: close on a quarter. Its truth is LEGACY_TRUTH, a file the shim
is not told about: the server's record of each request it took (its token,
the X-Request-ID it came with, whether the response went out). Checks:
  lost:    per token, as many start and working lines as requests, and as
           many done lines as answered requests;
  garbled: every line is one JSON object whose msg is one of the server's
           lines;
  wrong:   a line with a given id is a line of a request that came with it
           (that token, that kind, once); a generated id (32 hex) marks the
           start and working (and done, when answered) lines of one request
           and nothing else; a line of no request carries no id;
  untagged: lines of a request without an id (must be none).

Samples the server every 10 s (resident memory, descriptors, CPU per
request) and prints the slope of each from the first to the last minute.
Fails on any lost, garbled, wrong or untagged line, on fewer than
MIN_REQUESTS requests per server, on resident memory growing from the first
sample after warm-up to the last by more than RSS_GROWTH_KIB, on more
descriptors open once the load's connections are closed than before it
(beyond FD_SLACK; under load their count follows the connections open at
the instant), or on CPU per request growing by more than 20%.

    python3 tests/integration/soak.py [--seconds S] [--min-requests N]
                                      [--server nginx|thread_pool]
"""
import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests" / "bench"))
import benchlib  # noqa: E402
from benchlib import REQID  # noqa: E402

CONNS = 512
RSS_GROWTH_KIB = 2048
FD_SLACK = 16
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
    """nginx: (requests, {lost, garbled, wrong, generated ids given twice},
    (lines tagged right, lines tagged, lines))."""
    truth = {}
    for raw in (d / "truth" / "truth.log").read_bytes().split(b"\n")[:-1]:
        m = LINE.match(raw.decode())
        truth[m.group(1, 2, 3)] = (raw.decode(), m.group(4))
    seen = set()
    garbled = wrong = right = tagged = 0
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
        tagged += rid is not None
        if given and given != "-":
            wrong += rid != given
            right += rid == given
        elif rid is None or not GENERATED.match(rid):
            wrong += 1
        else:
            generated[rid] = generated.get(rid, 0) + 1
    lost = len(truth) - len(seen)
    dup = sum(c - 1 for c in generated.values() if c > 1)
    right += sum(1 for c in generated.values() if c == 1)
    return len(truth), {"lost": lost, "garbled": garbled, "wrong": wrong,
                        "generated ids given twice": dup}, (right, tagged, len(truth))


POOL_WORKERS = CONNS + 8

POOL_LUA = """
local n = 0
local prefix = tostring(math.random(1, 1000000000))
local shared = {"home", "cart", "search"}
request = function()
  n = n + 1
  local path = "/req/" .. shared[n % 3 + 1]
  if n % 3 == 0 then path = "/req/u" .. prefix .. "n" .. n end
  local headers = {}
  if n % 2 == 0 then headers["X-Request-ID"] = "soak-" .. prefix .. "-" .. n end
  if n % 4 == 1 then headers["Connection"] = "close" end
  return wrk.format("GET", path, headers)
end
"""

POOL_PREFIX = r"^\S+ (?:INFO|DEBUG) +\[thread_pool\] pid=\d+ tid=\d+ "
POOL_LINE = re.compile(POOL_PREFIX + r"token=([A-Za-z0-9]+) (start GET /req/\1 \(worker \d+\)|"
                       r'working, content-length=0|done "200 OK")$')
POOL_OTHER = re.compile(POOL_PREFIX + r"(worker \d+ picked up a connection \(fd \d+\)|"
                        r"listening on 127\.0\.0\.1:\d+ with \d+ workers)$")


def check_pool_logs(d):
    """The thread-pool server: (requests, {lost, garbled, wrong, untagged},
    (request lines tagged right, lines tagged, request lines))."""
    expected = Counter()     # (kind, token, given id) -> lines
    anonymous = Counter()    # (token, answered) -> requests without an id
    want = Counter()         # (kind, token) -> lines
    requests = 0
    for raw in (d / "truth.log").read_bytes().split(b"\n")[:-1]:
        tok, given, outcome = raw.decode().split(" ")
        requests += 1
        kinds = ("start", "working") + (("done",) if outcome == "answered" else ())
        for kind in kinds:
            want[kind, tok] += 1
            if given != "-":
                expected[kind, tok, given] += 1
        if given == "-":
            anonymous[tok, outcome == "answered"] += 1
    got = Counter()
    groups = {}
    lines_of = Counter()     # (kind, token) -> lines, tagged or not
    garbled = stray = untagged = 0
    untagged_done = Counter()  # token -> done lines without an id
    for raw in (d / "server.log").read_bytes().split(b"\n")[:-1]:
        try:
            obj = json.loads(raw)
            msg = obj["msg"]
        except (ValueError, KeyError, TypeError):
            garbled += 1
            continue
        rid = obj.get("request_id")
        m = POOL_LINE.match(msg)
        if not m:
            if POOL_OTHER.match(msg):
                stray += rid is not None
            else:
                garbled += 1
            continue
        kind, tok = m.group(2).split(" ", 1)[0].rstrip(","), m.group(1)
        lines_of[kind, tok] += 1
        if rid is None:
            untagged += 1
            if kind == "done":
                untagged_done[tok] += 1
        elif GENERATED.match(rid):
            groups.setdefault(rid, []).append((kind, tok))
        else:
            got[kind, tok, rid] += 1
    wrong = sum((got - expected).values())
    generated = Counter()
    for rid, lines in groups.items():
        kinds = sorted(k for k, _ in lines)
        if len({t for _, t in lines}) == 1 and kinds in (["start", "working"],
                                                         ["done", "start", "working"]):
            generated[lines[0][1], "done" in kinds] += 1
        else:
            wrong += len(lines)
    # A request whose done line went out untagged (counted there) leaves a
    # group of start and working only: not a wrong id.
    for (tok, answered), n in list(generated.items()):
        if not answered:
            moved = min(n, untagged_done[tok], anonymous[tok, True] - generated[tok, True])
            if moved > 0:
                generated[tok, False] -= moved
                generated[tok, True] += moved
                untagged_done[tok] -= moved
    wrong += sum((generated - anonymous).values())
    lost = sum((want - lines_of).values())
    garbled += sum((lines_of - want).values())
    lines = sum(lines_of.values())
    tally = (lines - untagged - wrong, lines - untagged + stray, lines)
    return requests, {"lost": lost, "garbled": garbled, "wrong": wrong + stray,
                      "untagged": untagged}, tally


def soak_nginx(tmp, seconds, samples):
    """Runs nginx under the shim with wrk for seconds; (requests, req/s,
    idle descriptors before and after, faults, precision and recall tally)."""
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
    try:
        benchlib.wait_port(port, proc, "nginx")
        master = int((d / "nginx.pid").read_text())
        driven = drive(port, "/index.html", d / "soak.lua", seconds, samples,
                       lambda: worker_pids(master), d / "truth" / "truth.log")
    finally:
        benchlib.stop(proc)
    requests, faults, tally = check_logs(d)
    return (requests,) + driven + (faults, tally)


def soak_thread_pool(tmp, seconds, samples):
    """The same for the bundled thread-pool server."""
    d = Path(tmp) / "thread_pool"
    d.mkdir()
    (d / "soak.lua").write_text(POOL_LUA)
    rfd, wfd = os.pipe()
    env = benchlib.clean_env({"LEGACY_LOG": "file:%s" % (d / "server.log"),
                              "LEGACY_TRUTH": str(d / "truth.log"),
                              "LEGACY_WORKERS": str(POOL_WORKERS)})
    cmd = [str(REQID), "run", "--log-path", str(d / "server.log"), "--",
           str(ROOT / "build" / "servers" / "thread_pool"), "--ready-fd", str(wfd)]
    with open(d / "console", "ab") as out:
        proc = subprocess.Popen(cmd, env=env, stdin=subprocess.DEVNULL, stdout=out,
                                stderr=out, pass_fds=(wfd,))
    os.close(wfd)
    try:
        with os.fdopen(rfd) as ready:
            port = int(ready.readline() or 0)
        if not port:
            sys.exit("soak: the thread-pool server did not start (see %s)" % (d / "console"))
        driven = drive(port, "/req/home", d / "soak.lua", seconds, samples,
                       lambda: [proc.pid], d / "truth.log")
    finally:
        benchlib.stop(proc)
    requests, faults, tally = check_pool_logs(d)
    return (requests,) + driven + (faults, tally)


def drive(port, path, script, seconds, samples, pids, truth):
    """wrk's load for seconds, sampling pids() every SAMPLE_SECONDS; (req/s,
    descriptors idle before the load, and once its connections closed)."""
    stop = threading.Event()
    state = [0, 0]
    idle_before = sample(pids())[1]

    def sampler():
        t0 = time.monotonic()
        while not stop.wait(SAMPLE_SECONDS):
            rss, fds, cpu = sample(pids())
            samples.append(((time.monotonic() - t0) / 60, rss, fds, cpu,
                            count_lines(truth, state)))

    th = threading.Thread(target=sampler)
    th.start()
    try:
        rate = benchlib.wrk("http://127.0.0.1:%d%s" % (port, path), CONNS, seconds, script,
                            allow_non2xx=True)
    finally:
        stop.set()
        th.join()
    # the server closes the connections wrk left as it reads their ends
    deadline = time.monotonic() + 10
    while True:
        idle_after = sample(pids())[1]
        if idle_after <= idle_before + FD_SLACK or time.monotonic() > deadline:
            return rate, idle_before, idle_after
        time.sleep(0.1)


def report(name, seconds, result, samples, min_requests):
    """Prints one server's figures; returns its failures."""
    requests, rate, idle_before, idle_after, faults, (right, tagged, lines) = result
    print("soak: %s under reqid, %d s, %d connections: %d requests (%.0f/s)"
          % (name, seconds, CONNS, requests, rate))
    print("  " + ", ".join("%s %d" % kv for kv in faults.items()))
    print("  precision %.2f%% (%d of %d tagged lines right), recall %.2f%% (%d of %d request lines)"
          % (100.0 * right / max(tagged, 1), right, tagged, 100.0 * right / max(lines, 1),
             right, lines))
    print("  descriptors when idle: %d before the load, %d after" % (idle_before, idle_after))
    # slopes from the second sample on (the first includes warm-up)
    steady = samples[1:]
    failures = []
    if any(faults.values()):
        failures.append("%s: lost, garbled, wrong or untagged lines" % name)
    if requests < min_requests:
        failures.append("%s: only %d requests (at least %d)" % (name, requests, min_requests))
    if len(steady) < 2:
        return failures + ["%s: too short to sample" % name]
    per_req = []
    for a, b in zip(steady, steady[1:]):
        if b[4] > a[4]:
            per_req.append((b[0], (b[3] - a[3]) / (b[4] - a[4]) * 1e6))
    print("  resident memory: %d -> %d KiB, slope %.1f KiB/min"
          % (steady[0][1], steady[-1][1], slope([(s[0], s[1]) for s in steady])))
    print("  descriptors under load: %d -> %d, slope %.2f/min"
          % (steady[0][2], steady[-1][2], slope([(s[0], s[2]) for s in steady])))
    if per_req:
        print("  CPU per request: %.1f -> %.1f us, slope %.2f us/min"
              % (per_req[0][1], per_req[-1][1], slope(per_req)))
    if steady[-1][1] - steady[0][1] > RSS_GROWTH_KIB:
        failures.append("%s: resident memory grew by %d KiB" % (name, steady[-1][1] - steady[0][1]))
    if idle_after > idle_before + FD_SLACK:
        failures.append("%s: %d descriptors when idle after the load, %d before"
                        % (name, idle_after, idle_before))
    if len(per_req) >= 2 and per_req[-1][1] > 1.2 * per_req[0][1]:
        failures.append("%s: CPU per request grew by more than 20%%" % name)
    return failures


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seconds", type=int, default=300)
    ap.add_argument("--min-requests", type=int, default=1_000_000)
    ap.add_argument("--server", choices=("nginx", "thread_pool"), action="append")
    args = ap.parse_args()
    missing = benchlib.missing(["nginx", "wrk"])
    if missing:
        sys.exit("soak: missing %s (make deps installs them)" % " ".join(missing))
    runs = {"nginx": soak_nginx, "thread_pool": soak_thread_pool}
    failures = []
    for name in args.server or list(runs):
        samples = []
        with tempfile.TemporaryDirectory() as tmp:
            result = runs[name](tmp, args.seconds, samples)
        failures += report(name, args.seconds, result, samples, args.min_requests)
    print("soak: %s" % ("FAIL: " + "; ".join(failures) if failures else "PASS"))
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
