#!/usr/bin/env python3
"""nginx_ops.py - nginx under reqid with the traffic and the operations no
other test gives it: pipelined requests (a connection's requests in one
write), requests sent byte by byte, HTTP/1.0 with and without keep-alive,
chunked request bodies, `Expect: 100-continue`, request heads over 8 KiB,
gzip, a missing page (404 and an error-log line), and while the load runs:
configuration reloads (SIGHUP: new workers forked while requests arrive),
log rotation (rename, then SIGUSR1: every process reopens its logs), a
binary upgrade (SIGUSR2, then SIGWINCH and SIGQUIT to the old master), or
`reqid attach` / `reqid detach` cycles of an nginx started bare. The stop
is nginx's graceful one (SIGQUIT), or SIGTERM with --stop term.

Each configuration runs twice with the same requests: bare, then under the
shim. The truth never comes from the shim's output: nginx writes a second
access log outside the --log-path glob, buffered to 1 MiB so that it is
written only at a reopen or exit (unbuffered, its writes would be I/O next
to the shimmed lines), with "$pid $connection $connection_requests
$http_x_request_id $status". The shimmed access log (and its rotated
files) carries the same three serials; each of its lines is joined to its
truth line on them. Error-log lines about a request (the 404's open()
failure, `*CONN` and `request: "..."`) are joined on (pid, connection) and
their order among that connection's 404s.

Checks: every line with an id carries its own request's (precision must be
100%); the shimmed logs have as many lines as the truth; every response is
the bare one byte for byte (Date masked) with at most an `X-Request-ID`
header added last, carrying the request's own id (under `reqid run`: always
there); no request fails; nginx exits as it does bare.

    python3 tests/realservers/nginx_ops.py            # the suite (SUITE)
    python3 tests/realservers/nginx_ops.py [--configs default,gzip,...]
        [--ops none,hup,...] [--mode run|attach] [--requests N]
        [--connections C] [--workers W] [--seed S] [--stop quit|term]
        [--kinds get,pipe,...] [--generated SHARE] [--keep]

Python 3 standard library only; needs nginx (Debian's, built --with-threads).
"""

import argparse
import collections
import ctypes
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
import uuid
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
REQID = ROOT / "scripts" / "reqid"
INDEX = b"<!DOCTYPE html>\n<html><body>" + b"<p>one page for every request</p>\n" * 40 + \
    b"</body></html>\n"
MTIME = 1700000000
TIMEOUT = 30.0
KINDS = ("get", "pipe", "bytes", "http10", "http10ka", "chunked", "expect", "longhead",
         "longurl", "gzip", "missing", "head", "slowbig")
BIG = bytes(range(256)) * 4096  # 1 MiB: a slow reader makes nginx write it in many turns
# framing nginx and the shim's parser must agree on (a connection of one of
# these begins with it, plain GETs follow): Content-Length beside chunked,
# chunk trailers and extensions, bare LF line ends, a GET with a body, an
# absolute URI, HTTP/0.9, empty lines before a request, a 200 kB body, an
# obs-folded header (400), Content-Length twice (400), a body holding a
# whole request (a request line and another X-Request-ID)
EDGE_KINDS = ("te_cl", "trailer", "chunkext", "lfonly", "getbody", "absuri", "http09", "crlfs",
              "bigbody", "obsfold", "dupcl", "smuggle", "hugeurl", "hugehead")
POST_KINDS = ("chunked", "expect", "te_cl", "trailer", "chunkext", "bigbody", "dupcl", "smuggle")
CONFIGS = {
    # name: (main-level directives, http-level directives, shimmed access_log options)
    "default": ("", "sendfile on;", ""),
    "gzip": ("", "sendfile on; gzip on; gzip_types text/html; gzip_min_length 0;", ""),
    "aio": ("", "sendfile off; aio threads; output_buffers 1 8k;", ""),
    "buffered": ("", "sendfile on;", " buffer=32k flush=1s"),
    "nosendfile": ("", "sendfile off; tcp_nopush off;", ""),
    # nginx hands its workers and a new binary only the variables `env` names
    "keepenv": ("env LD_PRELOAD; env REQID_LOG_PATHS;", "sendfile on;", ""),
    # the page from an origin (this process, 0-15 ms a response) through
    # kept-alive upstream connections: access lines written from upstream
    # events
    "proxy": ("", "upstream origin { server 127.0.0.1:ORIGIN; keepalive 4; }", ""),
    # requests over 200 a second wait in a queue and go on from a timer
    "limitreq": ("", "limit_req_zone $binary_remote_addr zone=z:1m rate=200r/s;", ""),
}
LOCATIONS = {
    "proxy": "location = /index.html { proxy_pass http://origin; proxy_http_version 1.1; "
             "proxy_set_header Connection \"\"; }",
    "limitreq": "location = /index.html { limit_req zone=z burst=2000; }",
}
ATTACH_OPTIONS = []  # more `reqid attach` options (--attach-option)
OPS = ("none", "hup", "rotate", "upgrade", "attach", "attachhup", "stop")

NGINX_TRUTH_RE = re.compile(r"^(\d+) (\d+) (\d+) (\S+) (\d{3})$")
NGINX_ACCESS_RE = re.compile(r'^(\d+) (\d+) (\d+) "([^"]*)" (\d{3}) (\d+) "([^"]*)"$')
NGINX_ERROR_RE = re.compile(
    r"^\d{4}/\d\d/\d\d \d\d:\d\d:\d\d \[(\w+)\] (\d+)#\d+: (?:\*(\d+) )?(.*)$")
NGINX_REQUEST_RE = re.compile(r', request: "([^"]*)"')
DATE_RE = re.compile(rb"\r\nDate: [^\r\n]*")
# whether nginx keeps a connection open depends on when it began to shut a
# worker down (reload, upgrade, stop): masked where the run has such
CONNECTION_RE = re.compile(rb"\r\nConnection: (close|keep-alive)")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def become_subreaper():
    """An upgraded nginx master is the old master's child; when the old one
    exits it comes to us, so its exit status can be read."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(36, 1, 0, 0, 0)  # PR_SET_CHILD_SUBREAPER


# ---------------------------------------------------------------- traffic

class Req:
    def __init__(self, rid, kind, conn, pos, cid=True):
        self.rid, self.kind, self.conn, self.pos = rid, kind, conn, pos
        # sends X-Request-ID: rid; else X-Token: rid (an id is made). A
        # folded header voids a request's inbound ids (README): one is made
        self.cid = cid and kind != "obsfold"
        self.sends_id = cid
        self.hdr = None     # the X-Request-ID of its shimmed response
        self.want = 404 if kind == "missing" else 200
        self.response = self.error = None
        self.status = None

    @property
    def own_id(self):
        """The id its lines must carry."""
        return self.rid if self.cid else self.hdr

    @property
    def method(self):
        if self.kind in POST_KINDS:
            return "POST"
        return "HEAD" if self.kind == "head" else "GET"

    @property
    def target(self):
        if self.kind == "missing":
            return "/missing.html"
        if self.kind in POST_KINDS:
            return "/post"
        if self.kind == "slowbig":
            return "/big.bin"
        if self.kind == "longurl":
            return "/index.html?q=" + "u" * 7000
        if self.kind == "hugeurl":  # a 60 kB request line and access line
            return "/index.html?q=" + "h" * 60000
        return "/index.html"

    @property
    def version(self):
        return "HTTP/1.0" if self.kind in ("http10", "http10ka") else "HTTP/1.1"

    @property
    def request_line(self):
        return "%s %s %s" % (self.method, self.target, self.version)

    def head(self, port, last):
        if self.kind == "http09":
            return b"GET /index.html\r\n"
        line = self.request_line
        if self.kind == "absuri":
            line = "GET http://127.0.0.1:%d/index.html HTTP/1.1" % port
        h = [line, ("X-Request-ID: " if self.sends_id else "X-Token: ") + self.rid,
             "Host: 127.0.0.1:%d" % port, "User-Agent: nginx-ops/1"]
        if self.kind == "longhead":
            h += ["X-Filler-%d: %s" % (i, "f" * 3000) for i in range(4)]
        if self.kind == "hugehead":  # 120 kB of headers, then the id header
            idh = h.pop(1)
            h += ["X-Filler-%d: %s" % (i, "g" * 40000) for i in range(3)] + [idh]
        if self.kind == "gzip":
            h.append("Accept-Encoding: gzip")
        if self.kind == "http10ka" and not last:
            h.append("Connection: keep-alive")
        if self.kind == "chunked":
            h.append("Transfer-Encoding: chunked")
        if self.kind == "expect":
            h += ["Content-Length: 300", "Expect: 100-continue"]
        if self.kind in ("te_cl", "trailer", "chunkext"):
            h.append("Transfer-Encoding: chunked")
        if self.kind == "te_cl":
            h.append("Content-Length: 4")
        if self.kind == "trailer":
            h.append("Trailer: X-Sum")
        if self.kind in ("getbody", "bigbody", "smuggle"):
            h.append("Content-Length: %d" % len(self.body()))
        if self.kind == "dupcl":
            h += ["Content-Length: 5", "Content-Length: 5"]
        if self.kind == "obsfold":
            h.append("X-Folded: first\r\n second")
        if last and self.version == "HTTP/1.1":
            h.append("Connection: close")
        text = "\r\n".join(h) + "\r\n\r\n"
        if self.kind == "lfonly":
            text = text.replace("\r\n", "\n")
        if self.kind == "crlfs":
            text = "\r\n\r\n" + text
        return text.encode()

    def body(self):
        if self.kind == "chunked":
            return b"a\r\n0123456789\r\n1f4\r\n" + b"c" * 500 + b"\r\n0\r\n\r\n"
        if self.kind == "te_cl":
            return b"5\r\nhello\r\n0\r\n\r\n"
        if self.kind == "trailer":
            return b"5\r\nhello\r\n0\r\nX-Sum: 5\r\n\r\n"
        if self.kind == "chunkext":
            return b"5;name=value\r\nhello\r\n3;x\r\nabc\r\n0;end\r\n\r\n"
        if self.kind == "getbody":
            return b"q=1&r=2"
        if self.kind == "bigbody":
            return b"b" * 200000
        if self.kind == "dupcl":
            return b"hello"
        if self.kind == "smuggle":
            return (b"GET /index.html HTTP/1.1\r\nHost: x\r\nX-Request-ID: smuggled-" +
                    self.rid.encode() + b"\r\n\r\n")
        if self.kind == "expect":
            return b"e" * 300
        return b""


def make_plan(rng, n, kinds, gen_share=0.0):
    """[[Req, ...] per connection]; pipelined connections carry 2-6
    requests in one write, the others 1-8 one after the other (an HTTP/1.0
    request without keep-alive ends its connection)."""
    conns, i = [], 0
    while i < n:
        kind = rng.choice(kinds)
        if kind in ("http10", "http09", "obsfold", "dupcl"):
            k = 1
        elif kind == "pipe":
            k = rng.randint(2, 6)
        else:
            k = rng.randint(1, 8)
        k = min(k, n - i)
        conn = []
        for j in range(k):
            rid = str(uuid.UUID(int=rng.getrandbits(128), version=4))
            # a pipelined connection carries plain GETs and 404s
            sub = rng.choice(("get", "missing", "head")) if kind == "pipe" else kind
            if kind in EDGE_KINDS and j > 0:
                sub = "get"
            if kind in ("http09", "obsfold", "dupcl"):
                k = 1  # the server closes the connection after it
            r = Req(rid, sub, len(conns), j, cid=rng.random() >= gen_share)
            r.pipelined = kind == "pipe"
            r.after_edge = kind in EDGE_KINDS and j > 0
            conn.append(r)
        conns.append(conn)
        i += k
    return conns


def read_response(sock, buf, head_only, simple=False, slow=False):
    """(status, raw response bytes, rest of buf, closing). simple: an
    HTTP/0.9 answer (the body alone, until the server closes)."""
    if simple:
        while True:
            data = sock.recv(65536)
            if not data:
                return 200, buf, b"", True
            buf += data
    while True:
        m = re.search(rb"\r\n\r\n", buf)
        if m:
            break
        data = sock.recv(65536)
        if not data:
            raise OSError("connection closed before the response head (%r)" % buf[:80])
        buf += data
    head, rest = buf[:m.end()], buf[m.end():]
    status = int(head[9:12])
    hl = head.lower()
    closing = b"\r\nconnection: close" in hl or (
        head.startswith(b"HTTP/1.0") and b"\r\nconnection: keep-alive" not in hl)
    cl = re.search(rb"\r\ncontent-length: (\d+)", hl)
    if head_only or status in (100, 204, 304):
        need = 0
    elif b"\r\ntransfer-encoding: chunked" in hl:
        body = b""
        while True:
            while b"\r\n" not in rest:
                data = sock.recv(65536)
                if not data:
                    raise OSError("connection closed in a chunk size")
                rest += data
            size_line, rest = rest.split(b"\r\n", 1)
            size = int(size_line.split(b";")[0], 16)
            while len(rest) < size + 2:
                data = sock.recv(65536)
                if not data:
                    raise OSError("connection closed in a chunk")
                rest += data
            body += size_line + b"\r\n" + rest[:size + 2]
            rest = rest[size + 2:]
            if size == 0:
                break
        return status, head + body, rest, closing
    elif cl:
        need = int(cl.group(1))
        if slow:
            while len(rest) < need:  # a client on a slow link: 16 KiB at a time
                time.sleep(0.002)
                data = sock.recv(16384)
                if not data:
                    raise OSError("connection closed mid-body")
                rest += data
    else:
        while True:
            data = sock.recv(65536)
            if not data:
                break
            rest += data
        return status, head + rest, b"", True
    while len(rest) < need:
        data = sock.recv(65536)
        if not data:
            raise OSError("connection closed mid-body")
        rest += data
    return status, head + rest[:need], rest[need:], closing


def open_conn(port, slow=False):
    sock = socket.socket()
    sock.settimeout(TIMEOUT)
    if slow:  # a small window: nginx's writes stop short, and it waits for room
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect(("127.0.0.1", port))
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


def exchange(sock, port, r, last, buf):
    """Sends r and reads its response; (closing, buf)."""
    data = r.head(port, last)
    if r.kind == "bytes":
        for b in range(len(data)):
            sock.send(data[b:b + 1])
    elif r.kind == "expect":
        sock.sendall(data)
        status, resp, buf, _ = read_response(sock, buf, False)
        if status != 100:
            r.error = "no 100 Continue: %r" % resp[:80]
        sock.sendall(r.body())
    elif r.kind == "bigbody":
        sock.sendall(data)
        sock.sendall(r.body())
    else:
        sock.sendall(data + r.body())
    r.status, r.response, buf, closing = read_response(sock, buf, r.method == "HEAD",
                                                       r.kind == "http09", r.kind == "slowbig")
    return closing, buf


class Retry(Exception):
    pass


def retryable(e, buf, fresh):
    """The server closed a keep-alive connection as the next request came
    (EOF or a reset before any byte of its response)."""
    return not buf and not fresh and (
        isinstance(e, (ConnectionResetError, BrokenPipeError))
        or "before the response head (b'')" in str(e))


def run_conn(port, conn, stats):
    """One client connection. A keep-alive connection the server closes
    before answering the next request (nginx closes idle ones when its
    workers shut down for a reload) is opened again and the request sent
    once more, as browsers do."""
    todo = list(conn)
    while todo:
        try:
            sock, buf = open_conn(port, todo[0].kind == "slowbig"), b""
        except OSError as e:  # the server stopped (op stop)
            for r in todo:
                r.error = "%s: %s" % (type(e).__name__, e)
            return
        fresh = True
        try:
            if todo[0].pipelined:
                sock.sendall(b"".join(r.head(port, r is conn[-1]) for r in todo))
                while todo:
                    r = todo[0]
                    try:
                        r.status, r.response, buf, _ = read_response(sock, buf,
                                                                     r.method == "HEAD")
                    except OSError as e:
                        if retryable(e, buf, fresh):
                            raise Retry()
                        raise
                    todo.pop(0)
                    fresh = False
                return
            while todo:
                r = todo[0]
                try:
                    closing, buf = exchange(sock, port, r, r is conn[-1], buf)
                except OSError as e:
                    if retryable(e, buf, fresh):
                        raise Retry()
                    raise
                todo.pop(0)
                fresh = False
                if closing and todo:
                    if r.kind not in ("http10", "http10ka"):
                        stats["closed by the server"] += 1
                    break
        except Retry:
            stats["retries"] += 1
        except OSError as e:
            for r in todo:
                if r.error is None:
                    r.error = "%s: %s" % (type(e).__name__, e)
            return
        finally:
            sock.close()


def drive(port, plan, connections):
    stats = collections.Counter()
    queue = collections.deque(plan)
    lock = threading.Lock()

    def worker():
        while True:
            with lock:
                if not queue:
                    return
                conn = queue.popleft()
            run_conn(port, conn, stats)

    threads = [threading.Thread(target=worker) for _ in range(connections)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return stats


# ---------------------------------------------------------------- nginx

class Origin:
    """The page behind nginx's proxy_pass: a threaded HTTP/1.1 server (not
    shimmed) answering each request after 0-15 ms."""

    def __init__(self, rng):
        import http.server
        lock = threading.Lock()
        self.seen = seen = collections.defaultdict(list)

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def answer(self, body):
                with lock:
                    seen[self.headers.get("X-Token") or self.headers.get("X-Request-ID")].append(
                        self.headers.get_all("X-Request-ID") or [])
                with lock:
                    delay = rng.random() * 0.015
                time.sleep(delay)  # the origin's own work, varied per request
                self.send_response(200)
                self.send_header("Content-Type", "text/html")
                self.send_header("Content-Length", str(len(INDEX)))
                self.send_header("Last-Modified", "Tue, 14 Nov 2023 22:13:20 GMT")
                self.end_headers()
                if body:
                    self.wfile.write(INDEX)

            def do_GET(self):
                # a GET may come with a body (kind getbody): read, as servers do
                length = int(self.headers.get("Content-Length") or 0)
                if length:
                    self.rfile.read(length)
                self.answer(True)

            def do_HEAD(self):
                self.answer(False)

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever)
        self.thread.start()

    def stop(self):
        self.server.shutdown()
        self.server.server_close()
        self.thread.join()


class Nginx:
    def __init__(self, base, config, workers, daemon=False, origin_port=0):
        self.base, self.config, self.workers = Path(base), config, workers
        self.origin_port = origin_port
        self.daemon = daemon
        self.shimmed = self.base / "shimmed"
        self.truth = self.base / "truth" / "access.log"
        self.port = free_port()
        for d in ("root", "shimmed", "truth", "temp/body", "temp/proxy", "temp/fastcgi",
                  "temp/uwsgi", "temp/scgi"):
            (self.base / d).mkdir(parents=True, exist_ok=True)
        index = self.base / "root" / "index.html"
        index.write_bytes(INDEX)
        (self.base / "root" / "big.bin").write_bytes(BIG)
        os.utime(self.base / "root" / "big.bin", (MTIME, MTIME))
        os.utime(index, (MTIME, MTIME))
        self.write_config()

    def write_config(self):
        b, t = self.base, self.shimmed
        main, http, logopts = CONFIGS[self.config]
        http = http.replace("ORIGIN", str(self.origin_port))
        location = LOCATIONS.get(self.config, "")
        user = "user root root;\n" if os.geteuid() == 0 else ""
        (b / "nginx.conf").write_text(f"""# reqid nginx_ops test: nothing global is read
daemon {"on" if self.daemon else "off"};
master_process on;
worker_processes {self.workers};
pid {t}/nginx.pid;
{main}
error_log {t}/error.log info;
{user}events {{ worker_connections 1024; }}
http {{
    log_format shimmed '$pid $connection $connection_requests "$request" $status '
                       '$body_bytes_sent "$http_user_agent"';
    log_format truth '$pid $connection $connection_requests $http_x_request_id$http_x_token $status';
    access_log {self.truth} truth buffer=1m;
    access_log {t}/access.log shimmed{logopts};
    client_body_temp_path {b}/temp/body;
    proxy_temp_path {b}/temp/proxy;
    fastcgi_temp_path {b}/temp/fastcgi;
    uwsgi_temp_path {b}/temp/uwsgi;
    scgi_temp_path {b}/temp/scgi;
    types {{ text/html html; }}
    default_type application/octet-stream;
    keepalive_requests 1000;
    large_client_header_buffers 4 64k;
    {http}
    server {{
        listen 127.0.0.1:{self.port};
        root {b}/root;
        location / {{ }}
        {location}
        location = /post {{ return 200 "posted\\n"; }}
    }}
}}
""")

    def argv(self):
        # nginx executes argv[0] for a binary upgrade: a full path
        return [shutil.which("nginx", path=os.environ.get("PATH", "") + ":/usr/sbin"), "-p", str(self.base), "-c", str(self.base / "nginx.conf"),
                "-e", str(self.shimmed / "error.log")]

    def master_pid(self):
        try:
            return int((self.shimmed / "nginx.pid").read_text())
        except (OSError, ValueError):
            return None


def env_clean():
    env = {k: v for k, v in os.environ.items() if not k.startswith("REQID_") or k == "REQID_LIB"}
    env.pop("LD_PRELOAD", None)
    env["PATH"] = env.get("PATH", "/usr/bin:/bin") + ":/usr/sbin:/sbin"
    return env


def wait_port(port, proc, timeout=20.0):
    deadline = time.monotonic() + timeout
    while True:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError("nginx exited with %s at start" % proc.returncode)
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1.0).close()
            return
        except OSError:
            if time.monotonic() > deadline:
                raise RuntimeError("nginx does not accept connections")
            time.sleep(0.02)  # bounded poll for the port


def reqid_cmd(srv, *args):
    r = subprocess.run([str(REQID), *args], env=env_clean(), capture_output=True, text=True,
                       timeout=60)
    return r.returncode, (r.stdout + r.stderr).strip()


def descendants(pid):
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        try:
            kids = open("/proc/%d/task/%d/children" % (p, p)).read().split()
        except OSError:
            kids = []
        for k in kids:
            out.append(int(k))
            todo.append(int(k))
    return out


def operate(srv, op, stop_event, notes, master_holder, mode, stop_sig):
    """Runs op over and over while the load runs."""
    n = 0
    while not stop_event.is_set():
        n += 1
        pid = master_holder[0]
        if op == "hup":
            os.kill(pid, signal.SIGHUP)
            stop_event.wait(0.7)
        elif op == "rotate":
            log = srv.shimmed / "access.log"
            try:
                os.rename(log, srv.shimmed / ("access.log.%d" % n))
            except OSError:
                pass
            os.kill(pid, signal.SIGUSR1)
            stop_event.wait(0.5)
        elif op == "upgrade":
            stop_event.wait(0.5)  # a master signalled as it starts may ignore USR2
            old = pid
            os.kill(old, signal.SIGUSR2)
            deadline = time.monotonic() + 10
            new = None
            while time.monotonic() < deadline:
                p = srv.master_pid()
                if p and p != old and (srv.shimmed / "nginx.pid.oldbin").exists():
                    new = p
                    break
                time.sleep(0.02)  # bounded poll for the new master's pid file
            if new is None:
                notes.append("upgrade %d: no new master within 10 s" % n)
                return
            stop_event.wait(0.3)
            os.kill(old, signal.SIGWINCH)
            stop_event.wait(0.3)
            os.kill(old, signal.SIGQUIT)
            master_holder[0] = new
            master_holder.append(old)  # masters to reap
            stop_event.wait(0.5)
            if n >= 3:
                return
        elif op == "stop":
            # the stop signal while the load runs: requests in flight are
            # answered or refused as bare, lines written out
            stop_event.wait(0.8)
            os.kill(pid, stop_sig)
            return
        elif op in ("attach", "attachhup"):
            # attached since before the load: detach, attach again, ...;
            # attachhup: a reload (new workers forked) right before each
            stop_event.wait(0.4)
            if op == "attachhup":
                os.kill(pid, signal.SIGHUP)
            rc, out = reqid_cmd(srv, "detach", str(pid))
            notes.append("detach %d: rc %d %s" % (n, rc, out[:200]))
            stop_event.wait(0.2)
            rc, out = reqid_cmd(srv, "attach", "--log-path", str(srv.shimmed / "*.log"),
                                *ATTACH_OPTIONS, str(pid))
            notes.append("attach %d: rc %d %s" % (n, rc, out[:200]))


# ---------------------------------------------------------------- judge

def lines_of(data):
    text = data.decode("utf-8", "surrogateescape")
    out = text.split("\n")
    if out and out[-1] == "":
        out.pop()
    return out, (not text or text.endswith("\n"))


def split_json(line):
    """(id or None, msg) of a shimmed json line, or of a bare one."""
    import json
    if not line.startswith("{"):
        return None, line
    obj = json.loads(line)
    return obj.get("request_id"), obj.get("msg", line)


def judge(srv, reqs, res):
    by_rid = {r.rid: r for r in reqs}
    by_id = {r.own_id: r for r in reqs if r.own_id}
    truth = {}
    conn_404 = collections.defaultdict(list)
    tl, ok = lines_of(srv.truth.read_bytes() if srv.truth.exists() else b"")
    for line in tl:
        m = NGINX_TRUTH_RE.match(line)
        if not m:
            res["problems"].append("truth line unparsed: %r" % line[:200])
            continue
        key = (int(m.group(1)), int(m.group(2)), int(m.group(3)))
        r = by_rid.get(m.group(4).strip("-"))
        if m.group(4).strip("-") == "" and key not in truth:
            truth[key] = None  # a request with no id header (HTTP/0.9)
            continue
        if r is None or key in truth:
            res["problems"].append("truth line of no request or twice: %r" % line[:200])
            continue
        truth[key] = r
        if m.group(5) == "404":
            conn_404[key[:2]].append((key[2], r))
    answered = sum(1 for r in reqs if r.response is not None)
    res["truth"] = len(truth)
    counts = collections.Counter()
    seen = set()
    access = sorted(srv.shimmed.glob("access.log*"))
    for path in access:
        lines, ended = lines_of(path.read_bytes())
        if not ended:
            res["problems"].append("%s: partial last line" % path.name)
        for no, line in enumerate(lines, 1):
            counts["access lines"] += 1
            try:
                rid, msg = split_json(line)
            except ValueError:
                counts["malformed"] += 1
                res["problems"].append("%s:%d malformed: %r" % (path.name, no, line[:200]))
                continue
            m = NGINX_ACCESS_RE.match(msg)
            key = m and (int(m.group(1)), int(m.group(2)), int(m.group(3)))
            r = truth.get(key) if m else None
            if m and key in truth and r is None and key not in seen:
                seen.add(key)
                counts["access lines of no known id"] += 1
                if rid is not None and rid in by_id:
                    counts["wrong"] += 1
                    res["problems"].append("WRONG %s:%d: id %s of another request on a "
                                           "request without one: %r" % (path.name, no, rid,
                                                                        line[:200]))
                continue
            if r is None or key in seen:
                counts["unjoined"] += 1
                res["problems"].append("%s:%d unjoined: %r" % (path.name, no, line[:200]))
                continue
            seen.add(key)
            if m.group(4) != r.request_line and r.kind not in EDGE_KINDS:
                res["problems"].append("%s:%d joined to %s %r but reads %r" % (
                    path.name, no, r.rid, r.request_line[:60], m.group(4)[:60]))
            score(counts, res, "access", rid, r.own_id, line, by_id, r)
    if counts["access lines"] != len(truth):
        res["problems"].append("access logs have %d lines, the truth %d"
                               % (counts["access lines"], len(truth)))
    nf_seen = collections.Counter()
    el, _ = lines_of((srv.shimmed / "error.log").read_bytes()
                     if (srv.shimmed / "error.log").exists() else b"")
    for no, line in enumerate(el, 1):
        try:
            rid, msg = split_json(line)
        except ValueError:
            counts["malformed"] += 1
            res["problems"].append("error.log:%d malformed: %r" % (no, line[:200]))
            continue
        m = NGINX_ERROR_RE.match(msg)
        rq = m and NGINX_REQUEST_RE.search(m.group(4))
        if m and m.group(3) and rq and "No such file" in m.group(4):
            ck = (int(m.group(2)), int(m.group(3)))
            k = nf_seen[ck]
            nf_seen[ck] += 1
            nf = sorted(conn_404.get(ck, ()), key=lambda x: x[0])
            if k >= len(nf) or rq.group(1) != nf[k][1].request_line:
                counts["unjoined"] += 1
                res["problems"].append("error.log:%d unjoined: %r" % (no, line[:200]))
                continue
            score(counts, res, "error404", rid, nf[k][1].own_id, line, by_id, nf[k][1])
        elif m and m.group(3) and rq:
            # another line about a request: which one is unknown; if it has
            # an id, it must be of a request on that connection
            counts["error other request lines"] += 1
            if rid is not None:
                ck = (int(m.group(2)), int(m.group(3)))
                on_conn = [r for k2, r in truth.items() if k2[:2] == ck and r is not None]
                if rid in {r.own_id for r in on_conn}:
                    pass
                elif rid not in by_id and (not on_conn or
                                           any(r.own_id is None for r in on_conn)):
                    # an id the shim made for a request whose response went
                    # without the header (attach, a stop), or whose line the
                    # truth log never got (a 400 logged after its lingering
                    # close, cut short by SIGTERM): no response carried it,
                    # so it is no other request's, but cannot be checked
                    counts["error unverifiable"] += 1
                else:
                    counts["wrong"] += 1
                    res["problems"].append("error.log:%d id %s of no request on its "
                                           "connection: %r" % (no, rid, line[:300]))
        else:
            counts["error other"] += 1
            if rid is not None:
                ck = m and m.group(3) and (int(m.group(2)), int(m.group(3)))
                on_conn = [r for k2, r in truth.items() if ck and k2[:2] == ck and r is not None]
                if rid not in by_id and (not on_conn or any(r.own_id is None for r in on_conn)):
                    counts["error unverifiable"] += 1
                elif rid not in {r.own_id for r in on_conn}:
                    counts["wrong"] += 1
                    res["problems"].append("error.log:%d id %s on a line of no request: %r"
                                           % (no, rid, line[:300]))
                else:
                    counts["error other tagged (own conn)"] += 1
    res["counts"] = counts
    res["answered"] = answered


def check_origin(seen, reqs, res):
    """What reached the origin: a request's X-Request-ID values are its
    own id (the client's, which nginx passes on, or the one the shim made
    for it), never another's."""
    for r in reqs:
        for ids in seen.get(r.rid, []):
            res.setdefault("counts", collections.Counter())["origin requests"] += 1
            if r.cid and ids == [r.rid]:
                continue
            if not r.cid and (ids == [] or ids == [r.hdr]):
                res["counts"]["origin requests tagged" if ids else "origin requests untagged"] += 1
                continue
            res["counts"]["wrong"] += 1
            res["problems"].append("WRONG origin: request %s (cid %s, response id %s) reached "
                                   "the origin with X-Request-ID %s" % (r.rid, r.cid, r.hdr, ids))


def score(counts, res, label, rid, want, line, by_rid, r):
    if want is None and not r.cid:
        # its id was made by the shim and its response never came (the
        # server stopped): only another request's id is known to be wrong
        counts[label + " unverifiable"] += 1
        if rid is not None and rid in by_rid:
            counts["wrong"] += 1
            res["problems"].append("WRONG %s: id %s of another request on %s's line: %r"
                                   % (label, rid, r.rid, line[:200]))
        return
    counts[label + " owned"] += 1
    if rid is None:
        counts[label + " untagged"] += 1
        counts["untagged " + r.kind + (" pipelined" if r.pipelined else "")] += 1
    elif rid == want:
        counts[label + " right"] += 1
    else:
        counts["wrong"] += 1
        o = by_rid.get(rid)
        res["problems"].append("WRONG %s: id %s (%s), its own %s (%s conn %d pos %d%s): %r" % (
            label, rid, ("%s conn %d pos %d" % (o.kind, o.conn, o.pos)) if o else "no request",
            want, r.kind, r.conn, r.pos, " pipelined" if r.pipelined else "", line[:200]))


def compare_responses(bare, shim, res, mode, mask_connection, stopped=False):
    diffs = 0
    hdr = collections.Counter()
    made = set()
    for b, s in zip(bare, shim):
        if stopped and s.response is None:
            continue
        if s.error or s.response is None:
            res["problems"].append("request %s (%s) failed: %s" % (s.rid, s.kind, s.error))
            continue
        if b.response is None:
            continue
        resp = s.response
        added = None
        head_end = resp.find(b"\r\n\r\n")
        last_hdr = resp.rfind(b"\r\n", 0, head_end)
        if s.kind == "http09":
            pass  # a body alone: nothing may be added
        elif resp[last_hdr:head_end].startswith(b"\r\nX-Request-ID: "):
            added = resp[last_hdr + 16:head_end].decode("latin-1")
            resp = resp[:last_hdr] + resp[head_end:]
        if added is None and s.kind == "http09":
            hdr["http09"] += 1
        elif added is None:
            hdr["absent"] += 1
            hdr["absent " + s.kind + (" pipelined" if s.pipelined else "") +
                (" after an edge" if s.after_edge else "")] += 1
        elif added == s.rid if s.cid else (re.match(r"^[0-9a-f]{32}$", added) and
                                           added not in made):
            hdr["right"] += 1
            if not s.cid:
                made.add(added)
                s.hdr = added
        else:
            hdr["wrong"] += 1
            res["problems"].append("WRONG response header %s for %s (%s)" % (added, s.rid, s.kind))
        if b" 502 Bad Gateway\r\n" in (b.response[:40] + resp[:40]):
            hdr["origin failed (502), not compared"] += 1
            continue
        norm_s, norm_b = DATE_RE.sub(b"", resp), DATE_RE.sub(b"", b.response)
        if mask_connection:
            norm_s, norm_b = CONNECTION_RE.sub(b"", norm_s), CONNECTION_RE.sub(b"", norm_b)
        if norm_s != norm_b:
            diffs += 1
            if diffs <= 3:
                res["problems"].append("response to %s (%s) differs: bare %r shimmed %r" % (
                    s.rid, s.kind, b.response[:300], s.response[:300]))
    if diffs:
        res["problems"].append("%d responses differ from bare" % diffs)
    # documented to go without (README "How requests and ids are found"):
    # pipelined connections, and a body nginx discards after its response
    # ends attribution on its connection
    owed = sum(v for k, v in hdr.items() if k.startswith("absent ") and not k.endswith(
        ("pipelined", "after an edge")) and k not in ("absent expect", "absent chunked"))
    if mode == "run" and owed:
        res["problems"].append("%d responses without X-Request-ID under reqid run" % owed)
    res["headers"] = hdr


# ---------------------------------------------------------------- one run

def one_run(config, op, mode, shimmed, plan, workers, connections, stop_sig, keep):
    base = Path(tempfile.mkdtemp(prefix="reqid-nginx-ops-%s-%s-%s-" % (
        config, op, "shim" if shimmed else "bare")))
    # nginx changes its binary (SIGUSR2) only once its parent is no longer
    # the one it started from: a daemon, whose master is then our child
    # (we are a subreaper)
    origin = Origin(random.Random(config + op)) if config == "proxy" else None
    srv = Nginx(base, config, workers, daemon=(op == "upgrade"),
                origin_port=origin.port if origin else 0)
    res = {"problems": [], "notes": [], "tmp": str(base)}
    cmd = srv.argv()
    if shimmed and mode == "run":
        cmd = [str(REQID), "run", "--log-path", str(srv.shimmed / "*.log"), "--"] + cmd
    out = open(base / "console.out", "wb")
    proc = subprocess.Popen(cmd, env=env_clean(), stdin=subprocess.DEVNULL, stdout=out,
                            stderr=out, start_new_session=True)
    out.close()
    masters = [proc.pid]
    stop_event = threading.Event()
    try:
        if srv.daemon:
            if proc.wait(20) != 0:
                raise RuntimeError("nginx -g 'daemon on' exited %s" % proc.returncode)
            wait_port(srv.port, None)
            masters = [srv.master_pid()]
        else:
            wait_port(srv.port, proc)
        if shimmed and mode == "attach":  # attached before the load; op attach: cycles
            rc, text = reqid_cmd(srv, "attach", "--log-path", str(srv.shimmed / "*.log"),
                                 *ATTACH_OPTIONS,
                                 str(proc.pid))
            if rc:
                res["problems"].append("attach: %s" % text)
        ops = None
        do_op = op if op not in ("attach", "attachhup") or (shimmed and mode == "attach") else (
            "hup" if op == "attachhup" else "none")
        if do_op != "none":
            ops = threading.Thread(target=operate, args=(srv, do_op, stop_event, res["notes"],
                                                         masters, mode, stop_sig))
            ops.start()
        t0 = time.monotonic()
        res["client"] = drive(srv.port, plan, connections)
        res["elapsed"] = time.monotonic() - t0
        stop_event.set()
        if ops:
            ops.join()
        # graceful stop of the current master; the old ones (upgrade) are reaped
        cur = masters[0]
        time.sleep(0.3 if op in ("hup", "upgrade") else 0)  # old workers finish
        try:
            os.kill(cur, stop_sig)
        except ProcessLookupError:
            pass
        deadline = time.monotonic() + 30
        statuses = {}
        for pid in [cur] + masters[1:]:
            while True:
                try:
                    wpid, st = os.waitpid(pid, os.WNOHANG)
                except ChildProcessError:
                    statuses[pid] = "not our child"
                    break
                if wpid:
                    statuses[pid] = os.waitstatus_to_exitcode(st)
                    break
                if time.monotonic() > deadline:
                    statuses[pid] = "still running"
                    os.killpg(proc.pid, signal.SIGKILL)
                    break
                time.sleep(0.02)  # bounded wait for the master's exit
        if proc.pid not in statuses and not srv.daemon:
            statuses[proc.pid] = proc.wait(10)
        res["exit"] = statuses
        res["current_master"] = cur
        for pid, st in statuses.items():
            if st != 0:
                res["problems"].append("master %d exit %s" % (pid, st))
    except (RuntimeError, OSError) as e:
        res["problems"].append("%s: %s" % (type(e).__name__, e))
        stop_event.set()
    finally:
        for pid in [proc.pid] + [m for m in masters if m]:
            for kill in (os.killpg, os.kill):
                try:
                    kill(pid, signal.SIGKILL)
                except OSError:
                    pass
        # grandchildren reparented to us (subreaper)
        while True:
            try:
                if os.waitpid(-1, os.WNOHANG) == (0, 0):
                    break
            except ChildProcessError:
                break
    if origin:
        origin.stop()
        res["origin_seen"] = origin.seen
    res["console"] = (base / "console.out").read_bytes()[-2000:]
    res["srv"] = srv
    return res


def run_case(config, op, mode, requests, connections, workers, seed, kinds, stop_name, keep,
             gen_share=0.0):
    rng = random.Random("%s/%s/%d" % (config, op, seed))
    stop_sig = signal.SIGQUIT if stop_name == "quit" else signal.SIGTERM
    plan_b = make_plan(rng, requests, kinds, gen_share)
    # the same requests twice (ids, kinds, connections)
    import copy
    plan_s = copy.deepcopy(plan_b)
    bare = one_run(config, {"attach": "none", "attachhup": "hup"}.get(op, op), mode, False, plan_b,
                   workers,
                   connections, stop_sig, keep)
    shim = one_run(config, op, mode, True, plan_s, workers, connections, stop_sig, keep)
    reqs_b = [r for c in plan_b for r in c]
    reqs_s = [r for c in plan_s for r in c]
    if op == "stop":  # requests after the stop fail, bare too: counted, not judged
        for r in [r for r in reqs_b if r.error] + [r for r in reqs_s if r.error]:
            r.error, r.response = None, None
        bare["notes"].append("answered bare %d shimmed %d" % (
            sum(1 for r in reqs_b if r.response), sum(1 for r in reqs_s if r.response)))
    for r in reqs_b:
        if r.error or (r.response is None and op != "stop"):
            bare["problems"].append("bare request %s (%s) failed: %s" % (r.rid, r.kind, r.error))
    compare_responses(reqs_b, reqs_s, shim, mode,
                      op in ("hup", "upgrade", "attach", "attachhup", "stop"),
                      stopped=op == "stop")
    judge(shim["srv"], reqs_s, shim)
    if shim.get("origin_seen") is not None:
        check_origin(shim["origin_seen"], reqs_s, shim)
    if bare.get("exit") and shim.get("exit"):
        if sorted(bare["exit"].values(), key=str) != sorted(shim["exit"].values(), key=str):
            shim["problems"].append("exit statuses differ: bare %s shimmed %s"
                                    % (bare["exit"], shim["exit"]))
    c = shim.get("counts", collections.Counter())
    tagged = c["access right"] + c["error404 right"] + c["wrong"]
    owned = c["access owned"] + c["error404 owned"]
    print("%-10s %-8s %-6s req %5d truth %5d lines %5d right %5d+%d wrong %d untagged %d+%d "
          "recall %s hdr %s bare-problems %d problems %d  %s" % (
              config, op, mode, len(reqs_s), shim.get("truth", 0), c["access lines"],
              c["access right"], c["error404 right"], c["wrong"], c["access untagged"],
              c["error404 untagged"],
              "%.2f%%" % (100.0 * (c["access right"] + c["error404 right"]) / owned)
              if owned else "n/a", dict(shim.get("headers", {})), len(bare["problems"]),
              len(shim["problems"]), shim["tmp"]), flush=True)
    print("   client: bare %s shimmed %s" % (dict(bare.get("client", {})),
                                          dict(shim.get("client", {}))))
    if c["origin requests"]:
        print("   origin: %d requests, of those without a client id %d got the shim's, %d none"
              % (c["origin requests"], c["origin requests tagged"],
                 c["origin requests untagged"]))
    print("   untagged by kind: %s" % {k: v for k, v in c.items() if k.startswith("untagged ")})
    for p in bare["problems"][:5]:
        print("   bare: " + p)
    for p in shim["problems"][:12]:
        print("   " + p)
    for n in bare["notes"] + shim["notes"]:
        if " rc 0 " not in n + " ":
            print("   note: " + n)
    ok = not shim["problems"] and not bare["problems"]
    for r in (bare, shim):
        if ok and not keep:
            shutil.rmtree(r["tmp"], ignore_errors=True)
    return ok, c["wrong"]


# The suite (no --configs/--ops given): (config, op, mode, workers, stop).
# Every row mixes all traffic kinds and framing edges, 30% of requests
# without an id of their own.
SUITE = [
    ("default", "none", "run", 2, "quit"),
    ("gzip", "hup", "run", 4, "quit"),
    ("aio", "rotate", "run", 2, "term"),
    ("buffered", "stop", "run", 2, "term"),
    ("proxy", "none", "run", 2, "quit"),
    ("limitreq", "hup", "run", 2, "quit"),
    ("keepenv", "upgrade", "run", 2, "quit"),
    ("default", "attach", "attach", 2, "quit"),
    ("proxy", "hup", "attach", 2, "quit"),
]


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--configs", help="comma-separated, of %s" % ",".join(CONFIGS))
    ap.add_argument("--ops", help="comma-separated, of %s" % ",".join(OPS))
    ap.add_argument("--mode", choices=("run", "attach"), default="run")
    ap.add_argument("--requests", type=int, default=1500)
    ap.add_argument("--connections", type=int, default=16)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--kinds", default=",".join(KINDS + EDGE_KINDS))
    ap.add_argument("--stop", choices=("quit", "term"), default="quit")
    ap.add_argument("--generated", type=float, default=0.3,
                    help="share of requests without X-Request-ID (the shim makes their ids)")
    ap.add_argument("--attach-option", action="append", default=[],
                    help="an option for `reqid attach` (repeat), e.g. --join-open")
    ap.add_argument("--keep", action="store_true")
    a = ap.parse_args(argv)
    ATTACH_OPTIONS.extend(a.attach_option)
    if not shutil.which("nginx", path=os.environ.get("PATH", "") + ":/usr/sbin"):
        print("SKIP: nginx missing (apt-get install -y nginx)")
        return 0
    become_subreaper()
    if a.configs or a.ops:
        rows = [(config, op, a.mode, a.workers, a.stop)
                for config in (a.configs or "default").split(",")
                for op in (a.ops or "none").split(",")]
    else:
        rows = SUITE
    fails = wrong = 0
    for config, op, mode, workers, stop in rows:
        ok, w = run_case(config, op, mode, a.requests, a.connections, workers, a.seed,
                         a.kinds.split(","), stop, a.keep, a.generated)
        fails += not ok
        wrong += w
    print("%s: %d of %d cases failed, %d wrong ids" % ("FAIL" if fails else "PASS", fails,
                                                       len(rows), wrong))
    return 1 if fails else 0


if __name__ == "__main__":
    sys.exit(main())
