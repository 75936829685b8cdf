#!/usr/bin/env python3
"""async_apps.py - an asyncio web application (aiohttp, plain HTTP) or a
Node.js http server (--app node: libuv) under reqid: one event loop, every handler a task that logs, awaits
(a timer: 0-10 ms, or nothing), and logs again, so a line is written by a
task resumed from the loop's timer or ready queue while other
connections' events are handled in the same turn: the case where an id
taken from the last connection read is another request's. aiohttp's own
access line (logging, on stderr) is written after the response, from the
task too.

The truth is a token per request, sent in an X-Token header the app and
the access log write into their lines (the request line is the same for
every request, so it names none). Half the requests send X-Request-ID:
cid-TOKEN, the others get an id the shim makes, read back from the
response header. Run twice, bare and under `scripts/reqid run`; checks: a
line with a token carries that request's id or none (precision must be
100%), the shimmed log has the bare run's lines per token, every response
is the bare one (Date masked) with at most X-Request-ID added last, no
request fails, the exit status is the bare one.

    python3 tests/realservers/async_apps.py [--app aiohttp|node] [--mode run|attach]
        [--requests N] [--connections C] [--seed S] [--keep]

Needs Debian's python3-aiohttp (a `make deps` package), or node.
"""

import argparse
import collections
import json
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
REQID = ROOT / "scripts" / "reqid"
PYTHON = "/usr/bin/python3"
TOKEN_RE = re.compile(r"token=([A-Z]{2}\d{5})|tok=([A-Z]{2}\d{5})")
DATE_RE = re.compile(rb"\r\nDate: [^\r\n]*")

APP = r'''
import asyncio, logging, os, random, sys
from aiohttp import web
logging.basicConfig(stream=sys.stderr, level=logging.INFO, format="%(name)s %(message)s")
log = logging.getLogger("app")

async def work(request):
    tok = request.headers.get("X-Token", "-")
    log.info("token=%s start %s", tok, request.path)
    delay = int(request.headers.get("X-Delay", "0"))
    if delay:
        await asyncio.sleep(delay / 1000.0)
    else:
        await asyncio.sleep(0)
    log.info("token=%s done", tok)
    return web.Response(text="ok %s\n" % tok)

app = web.Application()
app.router.add_get("/work", work)
web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), print=None,
            access_log_format='%a "%r" %s %b tok=%{X-Token}i')
'''


NODE_APP = r'''
const http = require("http");
const port = parseInt(process.argv[2]);
http.createServer((req, res) => {
  const tok = req.headers["x-token"] || "-";
  console.log("app token=" + tok + " start " + req.url);
  const delay = parseInt(req.headers["x-delay"] || "0");
  const finish = () => {
    console.log("app token=" + tok + " done");
    const body = "ok " + tok + "\n";
    res.writeHead(200, {"Content-Type": "text/plain", "Content-Length": body.length});
    res.end(body);
    res.on("finish", () => console.log("aiohttp.access " + req.method + " " + req.url +
                                       " 200 tok=" + tok));
  };
  if (delay) setTimeout(finish, delay); else setImmediate(finish);
}).listen(port, "127.0.0.1");
process.on("SIGINT", () => process.exit(0));
'''


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Req:
    def __init__(self, token, cid, delay):
        self.token, self.cid, self.delay = token, cid, delay
        self.response = self.error = self.hdr = None


def read_response(sock, buf):
    while b"\r\n\r\n" not in buf:
        d = sock.recv(65536)
        if not d:
            raise OSError("closed before the response head")
        buf += d
    end = buf.index(b"\r\n\r\n") + 4
    head, rest = buf[:end], buf[end:]
    n = int(re.search(rb"(?i)\r\ncontent-length: (\d+)", head).group(1))
    while len(rest) < n:
        d = sock.recv(65536)
        if not d:
            raise OSError("closed mid-body")
        rest += d
    return head + rest[:n], rest[n:]


def drive(port, plan, connections):
    queue, lock = collections.deque(plan), threading.Lock()

    def worker():
        while True:
            with lock:
                if not queue:
                    return
                conn = queue.popleft()
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=30) as s:
                    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                    buf = b""
                    for r in conn:
                        h = "GET /work HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Token: %s\r\n" % r.token
                        if r.cid:
                            h += "X-Request-ID: cid-%s\r\n" % r.token
                        if r.delay:
                            h += "X-Delay: %d\r\n" % r.delay
                        s.sendall((h + "\r\n").encode())
                        r.response, buf = read_response(s, buf)
            except OSError as e:
                for r in conn:
                    if r.response is None:
                        r.error = str(e)

    threads = [threading.Thread(target=worker) for _ in range(connections)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()


def one_run(plan, shimmed, connections, base, mode="run", app="aiohttp"):
    (base / "logs").mkdir(parents=True)
    (base / "app.py").write_text(APP)
    (base / "app.js").write_text(NODE_APP)
    port = free_port()
    cmd = [PYTHON, str(base / "app.py"), str(port)]
    if app == "node":
        cmd = [shutil.which("node") or "node", str(base / "app.js"), str(port)]
    if shimmed and mode == "run":
        cmd = [str(REQID), "run", "--"] + cmd
    env = {k: v for k, v in os.environ.items() if not k.startswith("REQID_") and k != "LD_PRELOAD"}
    with open(base / "logs" / "app.log", "wb") as err:
        proc = subprocess.Popen(cmd, env=env, stdin=subprocess.DEVNULL, stdout=err, stderr=err,
                                start_new_session=True)
    import time
    deadline = time.monotonic() + 20
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("the app did not start: %s"
                                   % (base / "logs" / "app.log").read_text()[-500:])
            time.sleep(0.05)  # bounded poll for the port
    stop = threading.Event()
    cycles = None
    if shimmed and mode == "attach":
        # attached before the load, then detached and attached again while it runs
        def attach(what):
            r = subprocess.run([str(REQID), what, str(proc.pid)], env=env, capture_output=True,
                               text=True, timeout=60)
            if r.returncode:
                print("   %s: %s" % (what, (r.stdout + r.stderr).strip()))

        attach("attach")

        def cycle():
            while not stop.wait(0.3):
                attach("detach")
                if stop.wait(0.1):
                    break
                attach("attach")
        cycles = threading.Thread(target=cycle)
        cycles.start()
    drive(port, plan, connections)
    stop.set()
    if cycles:
        cycles.join()
    proc.send_signal(signal.SIGINT)
    try:
        return proc.wait(20)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        return "killed"


def parse(path):
    out = []
    for line in path.read_text(errors="surrogateescape").splitlines():
        rid, msg = None, line
        if line.startswith("{"):
            try:
                obj = json.loads(line)
                rid, msg = obj.get("request_id"), obj.get("msg", line)
            except ValueError:
                pass
        out.append((rid, msg))
    return out


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--requests", type=int, default=2000)
    ap.add_argument("--connections", type=int, default=32)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--app", choices=("aiohttp", "node"), default="aiohttp")
    ap.add_argument("--mode", choices=("run", "attach"), default="run",
                    help="attach: started bare, `reqid attach`ed, detached and attached again "
                         "every 0.4 s under the load")
    ap.add_argument("--keep", action="store_true")
    a = ap.parse_args(argv)
    if a.app == "node" and not shutil.which("node"):
        print("SKIP: node missing")
        return 0
    if a.app == "aiohttp" and subprocess.run([PYTHON, "-c", "import aiohttp"],
                                             capture_output=True).returncode:
        print("SKIP: python3-aiohttp missing (apt-get install -y python3-aiohttp)")
        return 0
    import copy
    rng = random.Random(a.seed)
    plan, i = [], 0
    while i < a.requests:
        k = min(rng.randint(1, 10), a.requests - i)
        plan.append([Req("AH%05d" % (i + j), rng.random() < 0.5,
                         rng.choice((0, 0, 1, 3, 10))) for j in range(k)])
        i += k
    runs = {}
    for shimmed in (False, True):
        p = copy.deepcopy(plan)
        base = Path(tempfile.mkdtemp(prefix="reqid-async-%s-%s-" % (a.app, "shim" if shimmed else "bare")))
        rc = one_run(p, shimmed, a.connections, base, a.mode, a.app)
        runs[shimmed] = ([r for c in p for r in c], base, rc)
    problems, counts = [], collections.Counter()
    reqs, base, rc = runs[True]
    bare_reqs, bare_base, bare_rc = runs[False]
    by_token = {r.token: r for r in reqs}
    made = set()
    for b, r in zip(bare_reqs, reqs):
        if r.error or r.response is None or b.response is None:
            problems.append("request %s failed: shimmed %s bare %s" % (r.token, r.error, b.error))
            continue
        resp = r.response
        end = resp.index(b"\r\n\r\n")
        last = resp.rfind(b"\r\n", 0, end)
        if resp[last:end].startswith(b"\r\nX-Request-ID: "):
            r.hdr = resp[last + 16:end].decode()
            resp = resp[:last] + resp[end:]
            if r.cid and r.hdr != "cid-" + r.token or not r.cid and (
                    not re.match(r"^[0-9a-f]{32}$", r.hdr) or r.hdr in made):
                counts["wrong"] += 1
                problems.append("WRONG response header %s for %s" % (r.hdr, r.token))
            made.add(r.hdr)
        else:
            counts["header absent"] += 1
        if DATE_RE.sub(b"", resp) != DATE_RE.sub(b"", b.response):
            counts["responses differ"] += 1
            if counts["responses differ"] <= 3:
                problems.append("response to %s differs: bare %r shimmed %r"
                                % (r.token, b.response[:200], r.response[:200]))
    lines = parse(base / "logs" / "app.log")
    bare_lines = parse(bare_base / "logs" / "app.log")

    def per_token(ls):
        return collections.Counter((m.group(1) or m.group(2)) for _, msg in ls
                                   for m in [TOKEN_RE.search(msg)] if m)
    if per_token(lines) != per_token(bare_lines):
        problems.append("lines per token differ from bare")
    for rid, msg in lines:
        m = TOKEN_RE.search(msg)
        kind = "access" if msg.startswith("aiohttp.access") else "app"
        counts[kind + " lines"] += 1
        if not m:
            if rid is not None:
                counts["wrong"] += 1
                problems.append("id %s on a line of no request: %r" % (rid, msg[:200]))
            continue
        r = by_token[m.group(1) or m.group(2)]
        want = "cid-" + r.token if r.cid else r.hdr
        known = {"cid-" + x.token for x in reqs if x.cid} | {x.hdr for x in reqs if x.hdr}
        if want is None and rid is not None and rid not in known:
            # made by the shim for a response that went out without the
            # header (attach mode: detached meanwhile): cannot be checked
            counts[kind + " unverifiable"] += 1
        elif rid is None:
            counts[kind + " untagged"] += 1
        elif rid == want:
            counts[kind + " right"] += 1
        else:
            counts["wrong"] += 1
            counts[kind + " wrong"] += 1
            if counts[kind + " wrong"] <= 6:
                o = next((x for x in reqs if rid in ("cid-" + x.token, x.hdr)), None)
                problems.append("WRONG %s line: id %s (of %s), its own %s: %r" % (
                    kind, rid, o.token if o else "no request", want, msg[:160]))
    if rc != bare_rc:
        problems.append("exit status bare %s shimmed %s" % (bare_rc, rc))
    for kind in ("app", "access"):
        n = counts[kind + " lines"]
        print("%-7s lines %5d right %5d untagged %5d wrong %5d recall %s" % (
            kind, n, counts[kind + " right"], counts[kind + " untagged"], counts[kind + " wrong"],
            "%.2f%%" % (100.0 * counts[kind + " right"] / n) if n else "n/a"))
    print("requests %d, headers absent %d, wrong ids %d, exit bare %s shimmed %s" % (
        len(reqs), counts["header absent"], counts["wrong"], bare_rc, rc))
    for p in problems[:14]:
        print("   " + p)
    ok = not problems
    for b in (base, bare_base):
        if ok and not a.keep:
            shutil.rmtree(b, ignore_errors=True)
        else:
            print("   kept %s" % b)
    print("PASS" if ok else "FAIL")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
