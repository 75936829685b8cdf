#!/usr/bin/env python3
"""bench_servers.py - what the shim costs a whole event-loop server (part of
`make bench`): nginx, then lighttpd, one worker on CPU 0, serving one small
static file to wrk on CPU 1 (32 keep-alive connections, one URL,
X-Request-ID on every other request), its access log a shimmed log file.

Runs, alternated ROUNDS times in one session so machine noise moves them
alike, the order rotated every round (which run goes first biases it by some
5% on a small VM):
  nginx: bare; under reqid with its defaults; under reqid with
    REQID_EVENT_STACKS=off (no one-event waits, no call chains: the cost of
    the event-loop rule is the difference); and, to calibrate, without the
    shim but with build/bench_spin.so preloaded, which spins 1 us in every
    writev (one a response): what a microsecond of work per request costs
    the whole server on this machine.
  lighttpd: bare; under reqid with its defaults; under reqid
    --event-brackets (what a lighttpd user would choose: README, "Event
    loops").
Prints per variant the median req/s, bare and shimmed, the ratio and the
p25-p75 spread of each; then the CPU time a request took in the server
process that serves (nginx's worker; /proc/PID/schedstat, which counts
nanoseconds run) and in wrk (its rusage, whose total is as exact): far
steadier than req/s on a shared machine, and where the shim's cost shows
whole. A shimmed server that answers later leaves wrk asleep more often,
so more of its responses wake wrk, which costs the server's kernel and
wrk both: the two rows together show that too.

Then (not with --quick) each server's instructions per request: one server
process (nginx with master_process off) under valgrind's callgrind, bare,
shimmed and shimmed with REQID_EVENT_STACKS=off, the same traffic; the
counts are zeroed once it serves and dumped after wrk stopped, so they
cover exactly the requests its access log gained in between. Prints the
user-space instructions per request of each, the event-loop rule's part
(shimmed less stacks off) split by where it runs (the server's own code:
the loop pass it runs once per event rather than once per batch; libc; the
shim), and the shim's functions that cost the most per request.
Deterministic where req/s is not.

Never fails on speed; fails only when a run cannot start or serves errors.

    python3 tests/bench/bench_servers.py [--quick] [--rounds N] [--seconds S]
                                         [--servers nginx,lighttpd]
"""
import argparse
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import benchlib
from benchlib import REQID, ROOT, header, pin, row

SPIN = ROOT / "build" / "bench_spin.so"

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

NGINX = """worker_processes 1;
daemon off;
master_process {master};
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

LIGHTTPD = """server.document-root = "{d}/www"
server.bind = "127.0.0.1"
server.port = {port}
server.errorlog = "{d}/logs/error.log"
server.modules = ("mod_accesslog")
accesslog.filename = "{d}/logs/access.log"
mimetype.assign = (".html" => "text/html")
server.max-keep-alive-requests = 1000000
"""

# name: (configuration file, its template, argv, [(variant, reqid args or None, env)])
SERVERS = {
    "nginx": ("nginx.conf", NGINX,
              lambda d: ["nginx", "-p", str(d), "-c", str(d / "nginx.conf"),
                         "-e", str(d / "logs" / "error.log")],
              [("bare", None, {}),
               ("reqid", [], {}),
               ("reqid, REQID_EVENT_STACKS=off", [], {"REQID_EVENT_STACKS": "off"}),
               ("+1 us a writev, no shim", None,
                {"LD_PRELOAD": str(SPIN), "BENCH_SPIN_NS": "1000"})]),
    "lighttpd": ("lighttpd.conf", LIGHTTPD,
                 lambda d: ["lighttpd", "-D", "-f", str(d / "lighttpd.conf")],
                 [("bare", None, {}),
                  ("reqid", [], {}),
                  ("reqid --event-brackets", ["--event-brackets"], {})]),
}


def server_dir(tmp, name, port, master="on", where=None):
    d = Path(tmp) / (where or name)
    for sub in ("www", "tmp", "logs"):
        (d / sub).mkdir(parents=True)
    d.chmod(0o755)
    (d / "www" / "index.html").write_text("<html><body>hello</body></html>\n")
    (d / "bench.lua").write_text(LUA)
    conf, template = SERVERS[name][:2]
    (d / conf).write_text(template.format(d=d, port=port, master=master))
    return d


def serving_process(name, proc):
    """The pid of the process that serves: nginx's one worker (the master's
    child; `reqid run` and taskset exec, so proc is the master), lighttpd
    itself."""
    if name != "nginx":
        return proc.pid
    end = time.monotonic() + 10
    while True:  # the master listens before it starts the worker
        children = subprocess.run(["pgrep", "-P", str(proc.pid)], capture_output=True,
                                  text=True).stdout.split()
        if len(children) == 1:
            return int(children[0])
        if len(children) > 1 or time.monotonic() > end:
            raise RuntimeError("nginx master %d has workers %s, not one" % (proc.pid, children))
        time.sleep(0.02)


def run_ns(pid):
    """Nanoseconds process pid (one thread) has run, by the scheduler's count."""
    with open("/proc/%d/schedstat" % pid) as f:
        return int(f.read().split()[0])


def counted_wrk(url, conns, seconds, script):
    """wrk as benchlib.wrk runs it: (req/s, requests, wrk's CPU seconds)."""
    cmd = pin(1) + ["wrk", "-t1", "-c%d" % conns, "-d%ds" % seconds, "-s", str(script), url]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if "Non-2xx" in out or "Socket errors" in out:
        raise RuntimeError("wrk saw errors:\n" + out)
    cpu = (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)
    return (float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)),
            int(re.search(r"^\s*(\d+) requests in", out, re.M).group(1)), cpu)


def one_run(name, d, port, reqid_args, env_extra, seconds):
    """One fresh server under wrk: (req/s, the serving process's CPU us a
    request, wrk's CPU us a request)."""
    for f in (d / "logs").iterdir():
        f.unlink()
    cmd = pin(0)
    if reqid_args is not None:
        cmd += [str(REQID), "run", "--log-path", str(d / "logs" / "*.log")] + reqid_args + ["--"]
    cmd += SERVERS[name][2](d)
    proc = benchlib.start(cmd, benchlib.clean_env(env_extra), d / "console")
    try:
        benchlib.wait_port(port, proc, name)
        server = serving_process(name, proc)
        ran = run_ns(server)
        rate, requests, wrk_cpu = counted_wrk("http://127.0.0.1:%d/index.html" % port, 32,
                                              seconds, d / "bench.lua")
        # wrk has exited: every request it counted was answered
        server_us = (run_ns(server) - ran) / 1e3 / requests
        return rate, server_us, wrk_cpu * 1e6 / requests
    finally:
        benchlib.stop(proc)


def bench_server(name, tmp, rounds, seconds):
    port = benchlib.free_port()
    d = server_dir(tmp, name, port)
    variants = SERVERS[name][3]
    runs = {v: [] for v, _, _ in variants}
    for i in range(rounds):
        k = i % len(variants)
        for v, args, env in variants[k:] + variants[:k]:
            runs[v].append(one_run(name, d, port, args, env, seconds))
    for column, title, digits in (
            (0, "%s static file, wrk -t1 -c32 keep-alive, %d rounds of %d s rotated, req/s:"
             % (name, rounds, seconds), 0),
            (1, "the same runs, CPU us a request in %s's serving process (schedstat):" % name, 2),
            (2, "the same runs, CPU us a request in wrk (rusage):", 2)):
        header(title)
        for v, _, _ in variants[1:]:
            row("%s %s" % (name, v), [r[column] for r in runs["bare"]],
                [r[column] for r in runs[v]], digits=digits)


def log_lines(path):
    with open(path, "rb") as f:
        return f.read().count(b"\n")


def counted_run(name, d, port, shimmed, seconds, out, env_extra=None):
    """Callgrind's count of one server process over `seconds` of wrk:
    (instructions, requests, callgrind's dump file)."""
    access = d / "logs" / "access.log"
    for f in (d / "logs").iterdir():
        f.unlink()
    cmd = [str(REQID), "run", "--log-path", str(d / "logs" / "*.log"), "--"] if shimmed else []
    cmd += ["valgrind", "--tool=callgrind", "--callgrind-out-file=%s" % out] + SERVERS[name][2](d)
    proc = benchlib.start(cmd, benchlib.clean_env(env_extra or {}), d / "console")
    try:
        benchlib.wait_port(port, proc, "%s under callgrind" % name, timeout=60)
        url = "http://127.0.0.1:%d/index.html" % port
        benchlib.wrk(url, 8, 1, d / "bench.lua")  # past its first requests
        subprocess.run(["callgrind_control", "-z", str(proc.pid)], check=True,
                       capture_output=True)
        before = log_lines(access)
        benchlib.wrk(url, 8, seconds, d / "bench.lua")
        # wrk has stopped; the last lines come as their responses go
        requests, settled = log_lines(access) - before, False
        while not settled:
            time.sleep(0.5)
            n = log_lines(access) - before
            settled, requests = n == requests, n
        subprocess.run(["callgrind_control", "-d", str(proc.pid)], check=True,
                       capture_output=True)
    finally:
        benchlib.stop(proc)
    dump = Path(str(out) + ".1")
    total = int(re.search(r"^summary: (\d+)", dump.read_text(), re.M).group(1))
    return total, requests, dump


def self_costs(dump):
    """callgrind_annotate's table of self costs: {(object, function): Ir}.
    The shim's hot sections (layout.ld) have no object name: "shim". The
    functions on the stack when the counts were dumped (main and what
    called it) are listed with the program's whole total: left out."""
    text = subprocess.run(["callgrind_annotate", "--auto=no", "--threshold=100", str(dump)],
                          capture_output=True, text=True, check=True).stdout
    total = re.search(r"^\s*([\d,]+) \(100.0%\)\s+PROGRAM TOTALS", text, re.M).group(1)
    cost = {}
    for m in re.finditer(r"^\s*([\d,]+) \(\s*[\d.]+%\)\s+(\S+)(?: \[(.*)\])?$", text, re.M):
        if m.group(1) == total:
            continue
        obj = m.group(3) or "???"
        obj = "shim" if "libreqid" in obj or obj == "???" else Path(obj).name
        key = (obj, m.group(2).split(":")[-1])
        cost[key] = cost.get(key, 0) + int(m.group(1).replace(",", ""))
    return cost


def by_object(dump, requests):
    """Instructions per request by object (self costs)."""
    objects = {}
    for (obj, _), c in self_costs(dump).items():
        objects[obj] = objects.get(obj, 0) + c / requests
    return objects


def shim_functions(dump, requests, top=12):
    """The shim's functions that cost the most instructions per request
    (a function may have parts in its hot section and in .text)."""
    cost = {}
    for (obj, name), c in self_costs(dump).items():
        if obj == "shim":
            cost[name] = cost.get(name, 0) + c / requests
    return sorted(((c, name) for name, c in cost.items()), reverse=True)[:top]


def server_instructions(name, tmp, seconds):
    """Instructions per request of a server bare and shimmed (see the top)."""
    port = benchlib.free_port()
    d = server_dir(tmp, name, port, master="off", where="%s-callgrind" % name)
    counts, dumps = {}, {}
    for run, shimmed, env in (("bare", False, None), ("shim", True, None),
                              ("stacks off", True, {"REQID_EVENT_STACKS": "off"})):
        total, requests, dump = counted_run(name, d, port, shimmed, seconds,
                                            d / ("%s.cg" % run.replace(" ", "_")), env)
        if requests < 100:
            raise RuntimeError("%s under callgrind served %d requests" % (name, requests))
        counts[run], dumps[run] = (total / requests, requests), dump
    print("\n%s under callgrind, user-space instructions per request "
          "(one process, wrk -c8, %d s each):" % (name, seconds))
    bare, shim, off = counts["bare"][0], counts["shim"][0], counts["stacks off"][0]
    print("  bare %.0f (%d requests), shimmed %.0f (%d requests): the shim adds %.0f (%+.0f%%)"
          % (bare, counts["bare"][1], shim, counts["shim"][1], shim - bare, 100 * (shim - bare) / bare))
    on_objects = by_object(dumps["shim"], counts["shim"][1])
    off_objects = by_object(dumps["stacks off"], counts["stacks off"][1])
    parts = ", ".join("%s %+.0f" % (obj, on_objects.get(obj, 0) - off_objects.get(obj, 0))
                      for obj in sorted(set(on_objects) | set(off_objects))
                      if abs(on_objects.get(obj, 0) - off_objects.get(obj, 0)) >= 1)
    print("  with REQID_EVENT_STACKS=off %.0f (%d requests): the event-loop rule adds %.0f (%s)"
          % (off, counts["stacks off"][1], shim - off, parts))
    print("  the shim's functions, instructions per request (self cost):")
    for cost, function in shim_functions(dumps["shim"], counts["shim"][1]):
        print("    %6.0f  %s" % (cost, function))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="2 rounds of 1 s (bench-quick)")
    ap.add_argument("--rounds", type=int, default=None, help="default 5 (--quick: 2)")
    ap.add_argument("--seconds", type=int, default=None, help="default 3 (--quick: 1)")
    ap.add_argument("--servers", default=",".join(SERVERS))
    a = ap.parse_args()
    rounds = a.rounds or (2 if a.quick else 5)
    seconds = a.seconds or (1 if a.quick else 3)
    tmp = tempfile.mkdtemp(prefix="reqid-bench-")
    Path(tmp).chmod(0o755)  # nginx's worker may run as another user
    try:
        for name in a.servers.split(","):
            missing = benchlib.missing([name, "wrk"])
            if missing:
                print("bench_servers: %s not installed; %s skipped" % (", ".join(missing), name))
                continue
            bench_server(name, tmp, rounds, seconds)
        for name in a.servers.split(","):
            if not a.quick and \
                    not benchlib.missing([name, "wrk", "valgrind", "callgrind_control"]):
                server_instructions(name, tmp, 3)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
