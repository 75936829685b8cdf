#!/usr/bin/env python3
"""bench_process.py - what the shim costs whole programs, as ratios to the
unshimmed (bare) run in the same session (part of `make bench`).

Rows (shim: LD_PRELOAD=build/libreqid.so, or `scripts/reqid run` for a
server whose log it enriches):
  fork             fork() + _exit(0) in the child + waitpid(), us per fork
                   (build/bench_process fork)
  spawn            posix_spawn of /usr/bin/env /bin/true from a bare parent,
                   env {PATH} vs {PATH, LD_PRELOAD}: us from spawn to exit
  thread           pthread_create() + pthread_join(), us per thread
  sleep 5          VmSize and VmRSS of a running `sleep 5` (/proc/PID/status),
                   MiB; the note says what the shim adds
  busybox httpd    req/s of a static file and of a CGI shell script under
                   wrk -t1 -c8 (its listen backlog is 9), one connection per
                   request, its -v log on stderr a log file; shimmed with
                   `scripts/reqid run`; and, when perf is installed, the page
                   faults per request of the server and its children (perf
                   stat, less a start and stop with no request)
  first second     nginx (a master and 2 workers), then tests/servers/
                   prefork.c (a parent and 2 workers blocking in accept()),
                   started while a client on 8 connections (Connection:
                   close) already knocks: the time from spawn to the first
                   connect and from there to the first response; requests
                   served, latency percentiles and failures of the requests
                   that started in the first 100 ms, the rest of the first
                   second, and the third second after the first connect.
                   The third second, the workers long up, is the steady
                   cost: the first second's ratio over the third's is what
                   the start costs beyond it. Then each server with one
                   worker and nothing knocking, its first request on the
                   first connect: the worker's CPU time (schedstat, which
                   the machine's other load hardly moves) and page faults
                   from its fork to that response, and per request over
                   the next 200
  10k connections  VmRSS of an nginx worker holding 10,000 idle keep-alive
                   connections, each after one answered request (half with
                   X-Request-ID), and after one more request on each; MiB,
                   the note says what the shim adds
  served           VmRSS of an nginx worker after 20,000 requests on 8
                   keep-alive connections (half with X-Request-ID): what a
                   process that has served many requests, few at a time,
                   holds; MiB, the note says what the shim adds
Bare and shimmed runs alternate, and which goes first alternates too (on a
small VM the order alone moves a run by some 5%); spawn alternates inside
one process, per spawn. A row gives the median of each side, the ratio
shim/bare and the p25-p75 spread of each side; fork, thread and spawn pool
every operation of every round, the others have one sample per run. Servers
run on CPU 0 and their clients on CPU 1 (taskset) when there are 2 CPUs.

Never fails on speed; fails only when a program cannot start or a server
serves errors.

    python3 tests/bench/bench_process.py [--quick] [--only fork,spawn,...]
"""
import argparse
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import benchlib
from benchlib import LIB, REQID, ROOT, alternated, header, pin, row

PROG = ROOT / "build" / "bench_process"

CGI = """#!/bin/sh
echo "Content-Type: text/plain"
echo "Connection: close"
echo "Content-Length: 12"
echo ""
echo "hello, cgi!"
"""

NGINX = """worker_processes {workers};
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

FULL = dict(loop_rounds=16, forks=200, threads=2000, spawns=400, mem_rounds=8,
            busybox_rounds=5, busybox_seconds=3, first_rounds=10, conn_rounds=3,
            conns=10000, served=20000)
QUICK = dict(loop_rounds=4, forks=100, threads=1000, spawns=100, mem_rounds=2,
             busybox_rounds=2, busybox_seconds=1, first_rounds=1, conn_rounds=1,
             conns=2000, served=5000)

NGINX_IDLE = """worker_processes 1;
daemon off;
pid {d}/nginx.pid;
error_log {d}/logs/error.log error;
worker_rlimit_nofile {files};
events {{ worker_connections {conns}; }}
http {{
  client_body_temp_path {d}/tmp; proxy_temp_path {d}/tmp; fastcgi_temp_path {d}/tmp;
  uwsgi_temp_path {d}/tmp; scgi_temp_path {d}/tmp;
  keepalive_timeout 600s;
  keepalive_requests 100000;
  server {{
    listen 127.0.0.1:{port} backlog=4096;
    root {d}/www;
    access_log {d}/logs/access.log combined;
  }}
}}
"""


def prog(args, env, tmp):
    """Runs build/bench_process with args and an output file; its lines."""
    out = Path(tmp) / "samples"
    subprocess.run([str(PROG)] + args + [str(out)], env=env, check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return out.read_text().split("\n")[:-1]


def shim_env(extra=None):
    env = benchlib.clean_env({"LD_PRELOAD": str(LIB)})
    env.update(extra or {})
    return env


BODY = b"<html><body>hello</body></html>\n"


# -- fork, thread, spawn -------------------------------------------------------

def loop_row(name, mode, n, rounds, tmp):
    def run(env):
        return lambda: [int(x) / 1000 for x in prog([mode, str(n)], env, tmp)]
    bare, shim = alternated(rounds, run(benchlib.clean_env()), run(shim_env()))
    row(name, bare, shim)


def spawn_row(n, tmp):
    lines = prog(["spawn", str(n), str(LIB)], benchlib.clean_env(), tmp)
    side = {"bare": [], "shim": []}
    for line in lines:
        which, ns = line.split()
        side[which].append(int(ns) / 1000)
    row("spawn env /bin/true to exit, us", side["bare"], side["shim"])


def bench_loops(p, tmp):
    header("processes and threads (%d alternated rounds of %d forks or %d threads; "
           "spawn: %d alternated pairs):" % (p["loop_rounds"], p["forks"], p["threads"], p["spawns"]))
    loop_row("fork + _exit + waitpid, us per fork", "fork", p["forks"], p["loop_rounds"], tmp)
    spawn_row(p["spawns"], tmp)
    loop_row("pthread_create + join, us per thread", "thread", p["threads"],
             p["loop_rounds"], tmp)


# -- memory ----------------------------------------------------------------------

def sleeping(pid):
    """True once pid is `sleep` asleep (its libraries loaded, its shim set up)."""
    try:
        comm = Path("/proc/%d/comm" % pid).read_text().strip()
        stat = Path("/proc/%d/stat" % pid).read_text()
    except OSError:
        return False
    return comm == "sleep" and stat[stat.rindex(")") + 2] == "S"


def sleep_memory(env):
    """(VmSize, VmRSS) in MiB of a `sleep 5` started with env."""
    proc = subprocess.Popen(["sleep", "5"], env=env)
    try:
        end = time.monotonic() + 5
        while not sleeping(proc.pid):
            if time.monotonic() > end or proc.poll() is not None:
                raise RuntimeError("sleep 5 did not start")
            time.sleep(0.005)
        status = Path("/proc/%d/status" % proc.pid).read_text()
    finally:
        proc.kill()
        proc.wait()
    kb = {l.split(":")[0]: int(l.split()[1]) for l in status.splitlines()
          if l.startswith(("VmSize:", "VmRSS:"))}
    return kb["VmSize"] / 1024, kb["VmRSS"] / 1024


def bench_memory(p, tmp):
    bare, shim = alternated(p["mem_rounds"], lambda: [sleep_memory(benchlib.clean_env())],
                            lambda: [sleep_memory(shim_env())])
    header("memory of a running `sleep 5`, MiB (%d runs each):" % p["mem_rounds"])
    for i, name in enumerate(("VmSize", "VmRSS")):
        b, s = [m[i] for m in bare], [m[i] for m in shim]
        added = benchlib.percentile(s, 50) - benchlib.percentile(b, 50)
        row("sleep 5 %s, MiB" % name, b, s, digits=2, note="shim adds %+.2f MiB" % added)


# -- busybox httpd -------------------------------------------------------------

def busybox_dir(tmp):
    d = Path(tmp) / "busybox"
    (d / "www" / "cgi-bin").mkdir(parents=True)
    (d / "www" / "index.html").write_text("<html><body>hello</body></html>\n")
    (d / "www" / "cgi-bin" / "x.sh").write_text(CGI)
    (d / "www" / "cgi-bin" / "x.sh").chmod(0o755)
    return d


def busybox_server(d, shimmed):
    """busybox httpd on CPU 0, under `perf stat` counting the page faults
    of it and its children when perf is installed. Addresses stay random:
    how many faults a process takes moves by a few with where libc lands
    (64 KiB at a time), and one fixed layout would favour one library build
    over another; the rounds' median evens it out."""
    port = benchlib.free_port()
    counted = ["perf", "stat", "-x,", "-e", "page-faults", "-o", str(d / "faults"), "--"]
    cmd = (counted if shutil.which("perf") else []) + pin(0)
    cmd += ([str(REQID), "run", "--"] if shimmed else [])
    cmd += ["busybox", "httpd", "-f", "-vv", "-p", "127.0.0.1:%d" % port, "-h", str(d / "www")]
    proc = benchlib.start(cmd, benchlib.clean_env(), d / "httpd.log")
    benchlib.wait_port(port, proc, "busybox httpd")
    return proc, port


def stopped_faults(d, proc):
    """Stops a server started by busybox_server: the page faults perf
    counted, or None without perf."""
    if not shutil.which("perf"):
        benchlib.stop(proc)
        return None
    return benchlib.perf_stop_faults(proc, d / "faults")


def busybox_run(d, path, shimmed, seconds):
    """req/s under wrk, and page faults per request: those of the run less
    those of a start and stop with no request (None without perf)."""
    idle = None
    if shutil.which("perf"):
        proc, _ = busybox_server(d, shimmed)
        idle = stopped_faults(d, proc)
    proc, port = busybox_server(d, shimmed)
    try:
        rate = benchlib.wrk("http://127.0.0.1:%d%s" % (port, path), 8, seconds)
    finally:
        faults = stopped_faults(d, proc)
    return rate, None if faults is None else (faults - idle) / (rate * seconds)


def bench_busybox(p, tmp):
    d = busybox_dir(tmp)
    n, secs = p["busybox_rounds"], p["busybox_seconds"]
    header("busybox httpd, wrk -t1 -c8, %d rounds of %d s alternated, req/s and page faults "
           "per request of its processes:" % (n, secs))
    for name, path in (("static file", "/index.html"), ("CGI shell script", "/cgi-bin/x.sh")):
        bare, shim = alternated(n, lambda: [busybox_run(d, path, False, secs)],
                                lambda: [busybox_run(d, path, True, secs)])
        row("busybox httpd %s, req/s" % name, [r for r, _ in bare], [r for r, _ in shim], digits=0)
        if bare[0][1] is not None:
            row("busybox httpd %s, page faults" % name, [f for _, f in bare],
                [f for _, f in shim], digits=1)


# -- a pre-forking server's first seconds -------------------------------------

PREFORK = ROOT / "build" / "servers" / "prefork"
FIRST_WINDOW_MS = 3000
# Spans of the requests' start, in ms after the first connect that succeeded:
# the first second in three parts, then the third second, when the workers
# have long been up: the steady cost the first second is judged against.
FIRST_SPANS = (("0-100 ms", 0, 100), ("100-500 ms", 100, 500), ("500-1000 ms", 500, 1000),
               ("first second", 0, 1000), ("third second", 2000, 3000))


def nginx_dir(tmp):
    d = Path(tmp) / "nginx"
    for sub in ("www", "tmp", "logs"):
        (d / sub).mkdir(parents=True, exist_ok=True)
    d.chmod(0o755)  # nginx's workers may run as another user
    (d / "www" / "index.html").write_bytes(BODY)
    return d


def nginx_start(d, port, shimmed, workers=2):
    """nginx, a master and its workers: (command, environment, path to GET)."""
    (d / "nginx.conf").write_text(NGINX.format(d=d, port=port, workers=workers))
    env = (shim_env({"REQID_LOG_PATHS": str(d / "logs" / "*.log")}) if shimmed
           else benchlib.clean_env())
    return (pin(0) + ["nginx", "-p", str(d), "-c", str(d / "nginx.conf"),
                      "-e", str(d / "logs" / "error.log")], env, "/index.html")


def prefork_start(d, port, shimmed, workers=2):
    """tests/servers/prefork.c, a parent and its workers blocking in
    accept(), its log on stderr (the console file): (command, environment,
    path)."""
    extra = {"LEGACY_PORT": str(port), "PREFORK_WORKERS": str(workers)}
    env = shim_env(extra) if shimmed else benchlib.clean_env(extra)
    return pin(0) + [str(PREFORK), "--ready-fd", "1"], env, "/req/first"


FIRST_SERVERS = (("nginx (master + 2 workers)", nginx_start, "nginx"),
                 ("prefork.c (parent + 2 workers in accept)", prefork_start, None))


def first_second_run(d, start, shimmed):
    """One cold start under load; a dict of what the client saw."""
    port = benchlib.free_port()
    cmd, env, path = start(d, port, shimmed)
    for f in (d / "logs").iterdir():
        f.unlink()
    out = d / "firstsec"
    client = subprocess.Popen(pin(1) + [str(PROG), "firstsec", str(port), str(FIRST_WINDOW_MS),
                                        "8", path, str(out)],
                              stdout=subprocess.PIPE, text=True)
    server = None
    try:
        if client.stdout.readline().strip() != "ready":
            raise RuntimeError("the first-second client did not start")
        spawned = time.monotonic_ns()
        server = benchlib.start(cmd, env, d / "console")
        if client.wait(timeout=60) != 0:
            raise RuntimeError("%s did not answer (exit %s)" % (cmd[-1], server.poll()))
    finally:
        if client.poll() is None:
            client.kill()
        client.wait()
        client.stdout.close()
        if server:
            benchlib.stop(server)
    return first_second_stats(out.read_text().split("\n")[:-1], spawned)


def first_second_stats(lines, spawned):
    """lines: "t0 NS", then "START_NS LATENCY_NS OK" per request. Per span
    of FIRST_SPANS: requests served, latency p50, p90, p99 (us) and slowest
    (ms) of those that started in it; failed requests in the whole window."""
    t0 = int(lines[0].split()[1])
    samples = [tuple(int(x) for x in l.split()) for l in lines[1:]]
    if not any(good for _, _, good in samples):
        raise RuntimeError("no request succeeded")
    r = dict(listen=(t0 - spawned) / 1e6,
             first=(min(s + lat for s, lat, good in samples if good) - t0) / 1e6,
             failed=sum(1 for _, _, good in samples if not good))
    for name, lo, hi in FIRST_SPANS:
        inside = [(lat / 1000, good) for s, lat, good in samples
                  if lo * 1000000 <= s - t0 < hi * 1000000]
        ok = [lat for lat, good in inside if good] or [0]
        r[name] = dict(served=sum(1 for _, good in inside if good),
                       p50=benchlib.percentile(ok, 50), p90=benchlib.percentile(ok, 90),
                       p99=benchlib.percentile(ok, 99), max=max(ok) / 1000)
    return r


def first_second_rows(bare, shim):
    def span_row(span, key, label, digits):
        row("%s: %s" % (span, label), [r[span][key] for r in bare],
            [r[span][key] for r in shim], digits)
    row("spawn to first connect, ms", [r["listen"] for r in bare], [r["listen"] for r in shim])
    row("first connect to first response, ms", [r["first"] for r in bare],
        [r["first"] for r in shim])
    for span, _, _ in FIRST_SPANS[:3]:
        span_row(span, "served", "requests served", 0)
        span_row(span, "p90", "latency p90, us", 0)
    for span in ("first second", "third second"):
        for key, label, digits in (("served", "requests served", 0), ("p50", "latency p50, us", 0),
                                   ("p90", "latency p90, us", 0), ("p99", "latency p99, us", 0),
                                   ("max", "slowest request, ms", 1)):
            span_row(span, key, label, digits)
    # Each run against its own third second: what the machine does to a run
    # (other load) moves both seconds alike, and the steady cost cancels.
    for key, label in (("served", "requests served"), ("p90", "latency p90")):
        row("first second / third second: " + label,
            [r["first second"][key] / r["third second"][key] for r in bare],
            [r["first second"][key] / r["third second"][key] for r in shim], 3,
            note="ratio: what the start costs beyond the steady cost")
    print("  failed requests, all runs, all %d ms: bare %d, shim %d"
          % (FIRST_WINDOW_MS, sum(r["failed"] for r in bare), sum(r["failed"] for r in shim)))


def get_once(port, path, sock=None):
    """One GET with Connection: close (on sock, when connected already);
    fails unless answered 200."""
    s = sock or socket.create_connection(("127.0.0.1", port))
    with s:
        s.sendall(("GET %s HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n"
                   % path).encode())
        answer = b"".join(iter(lambda: s.recv(65536), b""))
    if not answer.startswith(b"HTTP/1.1 200"):
        raise RuntimeError("answered %r" % answer[:40])


def cpu_and_faults(pid):
    """(us on a CPU, minor page faults) of process pid so far: schedstat's
    run time counts a process's own CPU however busy the machine is, where
    latency counts the waits too."""
    run_ns = int(Path("/proc/%d/schedstat" % pid).read_text().split()[0])
    stat = Path("/proc/%d/stat" % pid).read_text()
    return run_ns / 1000, int(stat[stat.rindex(")") + 2:].split()[7])


WORKER_LATER = 200


def worker_start_run(d, start, shimmed):
    """A server with one worker, started with nothing knocking; its first
    request sent on the first connect that succeeds (the worker's first
    accept, as under load): the worker's CPU and page faults from its fork
    to that response, and per request over the next WORKER_LATER."""
    port = benchlib.free_port()
    cmd, env, path = start(d, port, shimmed, workers=1)
    server = benchlib.start(cmd, env, d / "console")
    try:
        end = time.monotonic() + 10
        while True:
            try:
                first = socket.create_connection(("127.0.0.1", port))
                break
            except OSError:
                if server.poll() is not None or time.monotonic() > end:
                    raise RuntimeError("%s did not listen" % cmd[-1])
                time.sleep(0.0005)
        get_once(port, path, first)
        worker = int(Path("/proc/%d/task/%d/children" % (server.pid, server.pid))
                     .read_text().split()[0])
        cpu0, faults0 = cpu_and_faults(worker)
        for _ in range(WORKER_LATER):
            get_once(port, path)
        cpu1, faults1 = cpu_and_faults(worker)
    finally:
        benchlib.stop(server)
    return dict(cpu_first=cpu0, faults_first=faults0, cpu_later=(cpu1 - cpu0) / WORKER_LATER,
                faults_later=(faults1 - faults0) / WORKER_LATER)


def worker_start_rows(bare, shim):
    for key, label, digits in (("cpu_first", "one worker: CPU fork to 1st response, us", 0),
                               ("faults_first", "one worker: faults fork to 1st response", 0),
                               ("cpu_later", "one worker: CPU per later request, us", 0),
                               ("faults_later", "one worker: faults per later request", 1)):
        row(label, [r[key] for r in bare], [r[key] for r in shim], digits)


def bench_first_second(p, tmp):
    d = nginx_dir(tmp)
    n = p["first_rounds"]
    for title, start, needs in FIRST_SERVERS:
        if needs and benchlib.missing([needs]):
            print("\n%s: %s not installed; skipped" % (title, needs))
            continue
        bare, shim = alternated(n, lambda: [first_second_run(d, start, False)],
                                lambda: [first_second_run(d, start, True)])
        header("%s started under load from 8 connections (Connection: close), its first "
               "%d ms (%d runs each; spans by a request's start after the first connect):"
               % (title, FIRST_WINDOW_MS, n))
        first_second_rows(bare, shim)
        bare, shim = alternated(n, lambda: [worker_start_run(d, start, False)],
                                lambda: [worker_start_run(d, start, True)])
        worker_start_rows(bare, shim)


# -- memory at 10,000 open connections ------------------------------------------

def request_all(socks, n):
    """Sends request n on every socket (X-Request-ID on every other one) and
    reads each whole answer (the file's size is known: headers end the
    answer's head, then len(BODY) bytes)."""
    import selectors
    sel = selectors.DefaultSelector()
    got = {}
    for i, s in enumerate(socks):
        rid = "X-Request-ID: idle-%d-%d\r\n" % (n, i) if i % 2 else ""
        s.sendall(("GET /index.html HTTP/1.1\r\nHost: x\r\n%s\r\n" % rid).encode())
        sel.register(s, selectors.EVENT_READ, i)
        got[i] = b""
    left = len(socks)
    while left:
        for key, _ in sel.select(timeout=30) or [(None, None)]:
            if key is None:
                raise RuntimeError("nginx stopped answering (%d left)" % left)
            i = key.data
            chunk = key.fileobj.recv(65536)
            if not chunk:
                raise RuntimeError("nginx closed a keep-alive connection")
            got[i] += chunk
            head, sep, body = got[i].partition(b"\r\n\r\n")
            if sep and len(body) >= len(BODY):
                if not head.startswith(b"HTTP/1.1 200"):
                    raise RuntimeError("nginx answered %r" % head[:40])
                sel.unregister(key.fileobj)
                left -= 1
    sel.close()


def worker_rss(master):
    """VmRSS in MiB of master's one child."""
    kids = Path("/proc/%d/task/%d/children" % (master, master)).read_text().split()
    status = Path("/proc/%s/status" % kids[0]).read_text()
    return int(next(l for l in status.splitlines() if l.startswith("VmRSS:")).split()[1]) / 1024


def nginx_holding(d, n, shimmed, measure):
    """measure(sockets, master pid) on an nginx worker holding n keep-alive
    connections."""
    import resource
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard < n + 100:
        raise RuntimeError("RLIMIT_NOFILE's hard limit %d is below %d" % (hard, n + 100))
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    port = benchlib.free_port()
    (d / "nginx.conf").write_text(NGINX_IDLE.format(d=d, port=port, files=n + 100, conns=2 * n))
    env = (shim_env({"REQID_LOG_PATHS": str(d / "logs" / "*.log")}) if shimmed
           else benchlib.clean_env())
    server = benchlib.start(pin(0) + ["nginx", "-p", str(d), "-c", str(d / "nginx.conf"),
                                      "-e", str(d / "logs" / "error.log")], env, d / "console")
    socks = []
    try:
        benchlib.wait_port(port, server, "nginx")
        for _ in range(n):
            socks.append(socket.create_connection(("127.0.0.1", port)))
        return measure(socks, server.pid)
    finally:
        for s in socks:
            s.close()
        benchlib.stop(server)
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def idle_connections_run(d, n, shimmed):
    """(RSS after one request on each of n connections, after a second)."""
    def measure(socks, master):
        request_all(socks, 1)
        first = worker_rss(master)
        request_all(socks, 2)
        return [(first, worker_rss(master))]
    return nginx_holding(d, n, shimmed, measure)


def served_run(d, n, requests, shimmed):
    """RSS after requests requests, n at a time on n connections."""
    def measure(socks, master):
        for k in range(requests // n):
            request_all(socks, k)
        return [worker_rss(master)]
    return nginx_holding(d, n, shimmed, measure)


def bench_served(p, tmp):
    d = nginx_dir(tmp)
    n, requests = 8, p["served"]
    bare, shim = alternated(p["conn_rounds"], lambda: served_run(d, n, requests, False),
                            lambda: served_run(d, n, requests, True))
    header("nginx worker after %d requests on %d keep-alive connections, VmRSS MiB "
           "(%d runs each):" % (requests, n, p["conn_rounds"]))
    added = benchlib.percentile(shim, 50) - benchlib.percentile(bare, 50)
    row("%d requests on %d connections" % (requests, n), bare, shim, digits=2,
        note="shim adds %+.2f MiB" % added)


def bench_idle_connections(p, tmp):
    d = nginx_dir(tmp)
    n = p["conns"]
    bare, shim = alternated(p["conn_rounds"], lambda: idle_connections_run(d, n, False),
                            lambda: idle_connections_run(d, n, True))
    header("nginx worker holding %d idle keep-alive connections, VmRSS MiB "
           "(%d runs each):" % (n, p["conn_rounds"]))
    for i, name in enumerate(("after one request each", "after a second request each")):
        b, s = [m[i] for m in bare], [m[i] for m in shim]
        added = benchlib.percentile(s, 50) - benchlib.percentile(b, 50)
        row("%d connections, %s" % (n, name), b, s, digits=2,
            note="shim adds %+.2f MiB" % added)


# -- main ------------------------------------------------------------------------

BENCHES = {"loops": bench_loops, "memory": bench_memory, "busybox": bench_busybox,
           "firstsec": bench_first_second, "conns": bench_idle_connections,
           "served": bench_served}
NEEDS = {"busybox": ["busybox", "wrk"], "conns": ["nginx"],
         "served": ["nginx"]}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="fewer, shorter rounds (bench-quick)")
    ap.add_argument("--only", default=",".join(BENCHES),
                    help="comma-separated, of: " + ", ".join(BENCHES))
    a = ap.parse_args()
    for f in (PROG, LIB, PREFORK):
        if not f.exists():
            sys.exit("bench_process: %s is missing (make %s)" % (f, f.relative_to(ROOT)))
    p = QUICK if a.quick else FULL
    started = time.monotonic()
    print("bench_process: whole programs bare vs shimmed; ratio = shim/bare "
          "(req/s: below 1 is slower; times and sizes: above 1 costs more)")
    with tempfile.TemporaryDirectory(prefix="reqid-bench-") as tmp:
        os.chmod(tmp, 0o755)
        for name in a.only.split(","):
            missing = benchlib.missing(NEEDS.get(name, []))
            if missing:
                print("\n%s: %s not installed; skipped" % (name, ", ".join(missing)))
                continue
            BENCHES[name](p, tmp)
    print("\nbench_process: %.0f s" % (time.monotonic() - started))
    return 0


if __name__ == "__main__":
    sys.exit(main())
