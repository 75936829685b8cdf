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
    the event-loop rule is the difference).
  lighttpd: bare; under reqid with its defaults; under reqid
    --event-brackets (what a lighttpd user would choose: README, "Event
    loops").
Prints per variant the median req/s, bare and shimmed, the ratio and the
p25-p75 spread of each. Never fails on speed; fails only when a run cannot
start or serves errors.

    python3 tests/bench/bench_servers.py [--quick] [--rounds N] [--seconds S]
                                         [--servers nginx,lighttpd]
"""
import argparse
import shutil
import sys
import tempfile
from pathlib import Path

import benchlib
from benchlib import REQID, header, pin, row

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
               ("reqid, REQID_EVENT_STACKS=off", [], {"REQID_EVENT_STACKS": "off"})]),
    "lighttpd": ("lighttpd.conf", LIGHTTPD,
                 lambda d: ["lighttpd", "-D", "-f", str(d / "lighttpd.conf")],
                 [("bare", None, {}),
                  ("reqid", [], {}),
                  ("reqid --event-brackets", ["--event-brackets"], {})]),
}


def server_dir(tmp, name, port):
    d = Path(tmp) / name
    for sub in ("www", "tmp", "logs"):
        (d / sub).mkdir(parents=True)
    d.chmod(0o755)
    (d / "www" / "index.html").write_text("<html><body>hello</body></html>\n")
    (d / "bench.lua").write_text(LUA)
    conf, template = SERVERS[name][:2]
    (d / conf).write_text(template.format(d=d, port=port))
    return d


def one_run(name, d, port, reqid_args, env_extra, seconds):
    """req/s of one fresh server under wrk."""
    for f in (d / "logs").iterdir():
        f.unlink()
    cmd = pin(0)
    if reqid_args is not None:
        cmd += [str(REQID), "run", "--log-path", str(d / "logs" / "*.log")] + reqid_args + ["--"]
    cmd += SERVERS[name][2](d)
    proc = benchlib.start(cmd, benchlib.clean_env(env_extra), d / "console")
    try:
        benchlib.wait_port(port, proc, name)
        return benchlib.wrk("http://127.0.0.1:%d/index.html" % port, 32, seconds,
                            d / "bench.lua")
    finally:
        benchlib.stop(proc)


def bench_server(name, tmp, rounds, seconds):
    port = benchlib.free_port()
    d = server_dir(tmp, name, port)
    variants = SERVERS[name][3]
    rates = {v: [] for v, _, _ in variants}
    for i in range(rounds):
        k = i % len(variants)
        for v, args, env in variants[k:] + variants[:k]:
            rates[v].append(one_run(name, d, port, args, env, seconds))
    header("%s static file, wrk -t1 -c32 keep-alive, %d rounds of %d s rotated, req/s:"
           % (name, rounds, seconds))
    for v, _, _ in variants[1:]:
        row("%s %s, req/s" % (name, v), rates["bare"], rates[v], digits=0)


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
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
