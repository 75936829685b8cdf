#!/usr/bin/env python3
"""lighttpd_cgi_pipes.py - lighttpd under reqid as its users run it with
CGI: mod_cgi scripts (a shell process per request, its stderr lines in
lighttpd's error log) on keep-alive connections, some pipelined, and the
access log written through a pipe to a logger process lighttpd starts
(`accesslog.filename = "|cat >> FILE"`) or to a file. The logger inherits
the shim and must take no id of its own; a CGI's line must carry the id of
the request it was started for, never another's.

The truth is a token per request, in its query string (`?t=TOKEN`), which
lighttpd writes into its access line and the CGI into its own stderr line
(`cgi token=TOKEN`); half the requests send `X-Request-ID: cid-TOKEN`, the
others get a generated id, which must be the one in their response header.
The run is made twice, bare and under `reqid run --event-brackets
--log-path DIR/*.log` (the options servers.py uses for lighttpd): the
shimmed logs must hold the bare run's lines per token, every response must
be the bare one (Date masked) with at most `X-Request-ID` added last, no
request may fail, and lighttpd must exit as it does bare (SIGTERM: 0; with
--stop int: SIGINT, its graceful stop).

With --mode attach lighttpd starts bare and is `reqid attach`ed before the
load, then detached and attached again every 0.4 s while it runs: attach
and detach walk the whole process tree, the CGI children in the middle of
their fork or exec included. Found 2026-12-08 (h165): 1-3 of 2000
requests (seeds 1-3) answered 500 because a CGI child died of the
injection: "Inconsistency detected by ld.so: dl-tls.c: 611:
_dl_allocate_tls_init: Assertion ... failed" (a child stopped in the
loader's start-up, libc mapped but not initialised, given a thread) and
"malloc assertion failure in sysmalloc"; `reqid attach`/`detach` exit 1
on most cycles ("no libc.so.6 mapped", "cannot write below the stack of
thread N: No such process", "the setup of pthread_create crashed in the
target (SIGSEGV at 0x262b6)"). Fixed the same day (h166,
inject/borrow_point.c): a thread is borrowed only outside malloc and the
loader, after the loader's start-up, and a descendant still starting up or
in its exec is skipped; seeds 1-6: 0 failed requests, every attach and
detach exit 0. Under `reqid run` it passed before and after.

    python3 tests/realservers/lighttpd_cgi_pipes.py [--requests N]
        [--connections C] [--log pipe|file] [--mode run|attach] [--seed S] [--keep]

Python 3 standard library only; needs lighttpd (a `make deps` package).
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
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
REQID = ROOT / "scripts" / "reqid"
TIMEOUT = 30.0
TOKEN_RE = re.compile(r"(?:t=|token=)([A-Z]{2}\d{5})")
DATE_RE = re.compile(rb"\r\nDate: [^\r\n]*")
CGI = """#!/bin/sh
tok=${QUERY_STRING#t=}
echo "cgi token=$tok method=$REQUEST_METHOD" >&2
printf 'Content-Type: text/plain\\r\\n\\r\\nok %s\\n' "$tok"
"""


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Req:
    def __init__(self, token, kind, cid, pipelined):
        self.token, self.kind, self.cid, self.pipelined = token, kind, cid, pipelined
        self.response = self.error = None

    def raw(self, port, last):
        path = "/cgi.sh" if self.kind == "cgi" else "/static.txt"
        h = ["GET %s?t=%s HTTP/1.1" % (path, self.token), "Host: 127.0.0.1:%d" % port]
        if self.cid:
            h.append("X-Request-ID: cid-" + self.token)
        if last:
            h.append("Connection: close")
        return ("\r\n".join(h) + "\r\n\r\n").encode()


def make_plan(rng, n, prefix):
    conns, i = [], 0
    while i < n:
        pipelined = rng.random() < 0.2
        k = min(rng.randint(2, 5) if pipelined else rng.randint(1, 6), n - i)
        conns.append([Req("%s%05d" % (prefix, i + j), rng.choice(("cgi", "cgi", "static")),
                          rng.random() < 0.5, pipelined) for j in range(k)])
        i += k
    return conns


def read_response(sock, buf):
    while b"\r\n\r\n" not in buf:
        data = sock.recv(65536)
        if not data:
            raise OSError("closed before the response head (%r)" % buf[:60])
        buf += data
    end = buf.index(b"\r\n\r\n") + 4
    head, rest = buf[:end], buf[end:]
    m = re.search(rb"\r\ncontent-length: (\d+)", head.lower())
    if m:
        need = int(m.group(1))
        while len(rest) < need:
            data = sock.recv(65536)
            if not data:
                raise OSError("closed mid-body")
            rest += data
        return head + rest[:need], rest[need:]
    if b"\r\ntransfer-encoding: chunked" in head.lower():
        body = b""
        while True:
            while b"\r\n0\r\n\r\n" not in rest:
                data = sock.recv(65536)
                if not data:
                    raise OSError("closed in chunks")
                rest += data
            cut = rest.index(b"\r\n0\r\n\r\n") + 7
            return head + rest[:cut], rest[cut:]
    while True:
        data = sock.recv(65536)
        if not data:
            return head + rest, b""
        rest += data


def run_conn(port, conn):
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT) as sock:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            buf = b""
            if conn[0].pipelined:
                sock.sendall(b"".join(r.raw(port, r is conn[-1]) for r in conn))
                for r in conn:
                    r.response, buf = read_response(sock, buf)
                return
            for r in conn:
                sock.sendall(r.raw(port, r is conn[-1]))
                r.response, buf = read_response(sock, buf)
    except OSError as e:
        for r in conn:
            if r.response is None:
                r.error = "%s: %s" % (type(e).__name__, e)


def drive(port, plan, connections):
    queue, lock = collections.deque(plan), threading.Lock()

    def worker():
        while True:
            with lock:
                if not queue:
                    return
                conn = queue.popleft()
            run_conn(port, conn)

    threads = [threading.Thread(target=worker) for _ in range(connections)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()


def write_config(base, port, log):
    t = base / "logs"
    access = ('"|/bin/cat >> %s/access.log"' % t) if log == "pipe" else '"%s/access.log"' % t
    (base / "lighttpd.conf").write_text("\n".join([
        "# reqid lighttpd_cgi_pipes: nothing global is read",
        'server.document-root = "%s/root"' % base,
        'server.bind = "127.0.0.1"',
        "server.port = %d" % port,
        'server.errorlog = "%s/error.log"' % t,
        'server.modules = ("mod_accesslog", "mod_cgi")',
        "accesslog.filename = %s" % access,
        'accesslog.format = "%h %{remote}p \\"%r\\" %>s %b"',
        'cgi.assign = (".sh" => "/bin/sh")',
        'mimetype.assign = ("" => "text/plain")',
        "server.max-keep-alive-requests = 10000",
        'etag.use-inode = "disable"',
    ]) + "\n")


def one_run(plan, shimmed, connections, log, stop_sig, mode="run"):
    base = Path(tempfile.mkdtemp(prefix="reqid-lighttpd-cgi-%s-" % ("shim" if shimmed else "bare")))
    (base / "logs").mkdir()
    (base / "root").mkdir()
    (base / "root" / "cgi.sh").write_text(CGI)
    (base / "root" / "static.txt").write_text("static\n")
    os.utime(base / "root" / "static.txt", (1700000000, 1700000000))  # same ETag bare
    port = free_port()
    write_config(base, port, log)
    cmd = ["lighttpd", "-D", "-f", str(base / "lighttpd.conf")]
    reqid_opts = ["--event-brackets", "--log-path", str(base / "logs" / "*.log")]
    if shimmed and mode == "run":
        cmd = [str(REQID), "run"] + reqid_opts + ["--"] + cmd
    env = {k: v for k, v in os.environ.items() if not k.startswith("REQID_") and k != "LD_PRELOAD"}
    env["PATH"] = env.get("PATH", "/usr/bin:/bin") + ":/usr/sbin:/sbin"
    res = {"base": base, "problems": []}
    with open(base / "logs" / "console.out", "wb") as out:
        proc = subprocess.Popen(cmd, env=env, stdin=subprocess.DEVNULL, stdout=out, stderr=out,
                                start_new_session=True)
    try:
        deadline = time.monotonic() + 20
        while True:
            if proc.poll() is not None:
                raise RuntimeError("lighttpd exited %s at start" % proc.returncode)
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise RuntimeError("lighttpd does not listen")
                time.sleep(0.02)  # bounded poll for the port
        stop = threading.Event()
        cycles = None
        if shimmed and mode == "attach":
            def call(what, *opts):
                r = subprocess.run([str(REQID), what, *opts, str(proc.pid)], env=env,
                                   capture_output=True, text=True, timeout=60)
                if r.returncode:
                    res["problems"].append("%s: %s" % (what, (r.stdout + r.stderr).strip()))

            call("attach", *reqid_opts)

            def cycle():  # detached and attached again while the load runs
                while not stop.wait(0.3):
                    call("detach")
                    if stop.wait(0.1):
                        break
                    call("attach", *reqid_opts)
            cycles = threading.Thread(target=cycle)
            cycles.start()
        drive(port, plan, connections)
        stop.set()
        if cycles:
            cycles.join()
        time.sleep(0.2)  # lighttpd reads its clients' ends before the stop
        proc.send_signal(stop_sig)
        res["exit"] = proc.wait(20)
    except (RuntimeError, OSError, subprocess.TimeoutExpired) as e:
        res["problems"].append("%s: %s" % (type(e).__name__, e))
    finally:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except OSError:
            pass
    # the logger (cat) ends when lighttpd closes the pipe: wait for it
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        alive = False
        for d in os.listdir("/proc"):
            if d.isdigit():
                try:
                    st = open("/proc/%s/stat" % d).read()
                except OSError:
                    continue
                f = st[st.rindex(")") + 2:].split()
                if int(f[3]) == proc.pid and f[0] != "Z":  # its session
                    alive = True
        if not alive:
            break
        time.sleep(0.02)  # bounded wait for the logger to drain
    return res


def parse(path):
    """[(id, msg)] of a log, bare or json."""
    out = []
    if not path.exists():
        return out
    for line in path.read_text(errors="surrogateescape").splitlines():
        if line.startswith("{"):
            try:
                obj = json.loads(line)
                out.append((obj.get("request_id"), obj.get("msg", line)))
                continue
            except ValueError:
                pass
        out.append((None, line))
    return out


def judge(bare, shim, reqs, res):
    by_token = {r.token: r for r in reqs}
    counts = collections.Counter()
    for r in reqs:
        if r.error or r.response is None:
            res["problems"].append("request %s (%s) failed: %s" % (r.token, r.kind, r.error))
            continue
        head = r.response[:r.response.index(b"\r\n\r\n")]
        ids = re.findall(rb"\r\nX-Request-ID: ([^\r\n]*)", head)
        r.hdr = ids[-1].decode() if ids else None
        if r.cid and r.hdr not in (None, "cid-" + r.token):
            counts["wrong"] += 1
            res["problems"].append("WRONG response header %s for %s" % (r.hdr, r.token))
        counts["header " + ("present" if r.hdr else "absent") + (" pipelined" if r.pipelined
                                                                 else "")] += 1
    for name in ("access.log", "error.log", "console.out"):
        lines_b = parse(bare["base"] / "logs" / name)
        lines_s = parse(shim["base"] / "logs" / name)
        per_b = collections.Counter(t for _, m in lines_b for t in TOKEN_RE.findall(m)[:1])
        per_s = collections.Counter(t for _, m in lines_s for t in TOKEN_RE.findall(m)[:1])
        if per_b != per_s:
            diff = {t: (per_b[t], per_s[t]) for t in set(per_b) | set(per_s) if per_b[t] != per_s[t]}
            res["problems"].append("%s: lines per token differ from bare (bare, shimmed): %s"
                                   % (name, dict(list(diff.items())[:6])))
        for rid, msg in lines_s:
            toks = TOKEN_RE.findall(msg)
            counts[name + " lines"] += 1
            if not toks:
                if rid is not None:
                    counts[name + " tagged without token"] += 1
                    res["problems"].append("%s: id %s on a line of no request: %r"
                                           % (name, rid, msg[:200]))
                continue
            r = by_token.get(toks[0])
            want = ("cid-" + r.token) if r.cid else getattr(r, "hdr", None)
            counts[name + " owned"] += 1
            if rid is None:
                counts[name + " untagged"] += 1
            elif rid == want or (want is None and not r.cid and re.match(r"^[0-9a-f]{32}$", rid)
                                 and r.pipelined):
                counts[name + " right"] += 1
            else:
                counts["wrong"] += 1
                o = next((x for x in reqs if "cid-" + x.token == rid or
                          getattr(x, "hdr", None) == rid), None)
                res["problems"].append("WRONG %s: id %s (of %s), its own %s (%s%s): %r" % (
                    name, rid, o.token if o else "no request", want, r.kind,
                    " pipelined" if r.pipelined else "", msg[:200]))
    res["counts"] = counts


def compare(reqs_b, reqs_s, res):
    diffs = 0
    for b, s in zip(reqs_b, reqs_s):
        if b.response is None or s.response is None:
            continue
        resp = s.response
        end = resp.index(b"\r\n\r\n")
        last = resp.rfind(b"\r\n", 0, end)
        if resp[last:end].startswith(b"\r\nX-Request-ID: "):
            resp = resp[:last] + resp[end:]
        if DATE_RE.sub(b"", resp) != DATE_RE.sub(b"", b.response):
            diffs += 1
            if diffs <= 3:
                res["problems"].append("response to %s differs: bare %r shimmed %r"
                                       % (s.token, b.response[:300], s.response[:300]))
    if diffs:
        res["problems"].append("%d responses differ from bare" % diffs)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--requests", type=int, default=600)
    ap.add_argument("--connections", type=int, default=12)
    ap.add_argument("--log", choices=("pipe", "file"), default="pipe")
    ap.add_argument("--stop", choices=("term", "int"), default="term")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--mode", choices=("run", "attach"), default="run",
                    help="attach: started bare, attached, detached and attached again under load")
    ap.add_argument("--keep", action="store_true")
    a = ap.parse_args(argv)
    if not shutil.which("lighttpd", path=os.environ.get("PATH", "") + ":/usr/sbin"):
        print("SKIP: lighttpd missing (apt-get install -y lighttpd)")
        return 0
    import copy
    rng = random.Random(a.seed)
    plan_b = make_plan(rng, a.requests, "LC")
    plan_s = copy.deepcopy(plan_b)
    stop_sig = signal.SIGINT if a.stop == "int" else signal.SIGTERM
    bare = one_run(plan_b, False, a.connections, a.log, stop_sig)
    shim = one_run(plan_s, True, a.connections, a.log, stop_sig, a.mode)
    reqs_b = [r for c in plan_b for r in c]
    reqs_s = [r for c in plan_s for r in c]
    res = {"problems": bare["problems"] + shim["problems"]}
    judge(bare, shim, reqs_s, res)
    compare(reqs_b, reqs_s, res)
    if bare.get("exit") != shim.get("exit"):
        res["problems"].append("exit status bare %s, shimmed %s" % (bare.get("exit"),
                                                                  shim.get("exit")))
    c = res["counts"]
    for name in ("access.log", "error.log", "console.out"):
        owned = c[name + " owned"]
        print("%-10s lines %5d owned %5d right %5d untagged %5d recall %s" % (
            name, c[name + " lines"], owned, c[name + " right"], c[name + " untagged"],
            "%.2f%%" % (100.0 * c[name + " right"] / owned) if owned else "n/a"))
    print("wrong ids: %d; headers: %s; exit bare %s shimmed %s" % (
        c["wrong"], {k: v for k, v in c.items() if k.startswith("header")},
        bare.get("exit"), shim.get("exit")))
    for p in res["problems"][:15]:
        print("   " + p)
    ok = not res["problems"]
    for r in (bare, shim):
        if ok and not a.keep:
            shutil.rmtree(r["base"], ignore_errors=True)
        else:
            print("   kept " + str(r["base"]))
    print("PASS" if ok else "FAIL")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
