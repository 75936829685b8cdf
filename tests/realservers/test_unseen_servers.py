#!/usr/bin/env python3
"""test_unseen_servers.py - reqid against Debian servers no other test runs,
with the traffic users have: every request asks for the SAME URL, keep-alive
where the server keeps connections, 8-32 connections at once from the first
second, X-Request-ID on half the requests (the others get generated ids).

Servers (each skipped when its package is missing; none is in `make deps`,
so this is not part of `make test`): mini-httpd (a forked child per
connection), webfs (one select() loop), tinyproxy (a forward proxy, a thread
per connection), HAProxy (a reverse proxy, an event loop on 1 thread, and on
2: "haproxy-2t"; its log on stdout), Privoxy (a forward proxy, a thread per
client connection, keep-alive on both sides, upstream connections shared
between threads), gunicorn (Python WSGI, 2 pre-forked workers whose main
thread polls the keep-alive connections for a pool of 4 threads; the app
logs a line of its own) and h2o (an event loop on each of 2 threads). The
proxies forward to an origin in this process, not shimmed, that records the
headers each request reaches it with.

Each server runs twice with the same requests: bare (no LD_PRELOAD) and
under `scripts/reqid run`. The truth is a token per request, sent where the
server writes it into its own log line (the User-Agent for mini_httpd, which
logs no query; the query string for the others, or the path with --unique)
and never read by the shim: the truth never comes from the shim's output.
Checks (tests/realservers/oracle.py for lines):

- a line holding a token carries that request's id: its X-Request-ID, or one
  generated id shared by all its lines and its response header, no other
  request's (precision must be 100%);
- the shimmed logs hold as many lines as the bare ones, per token and in all
  (see judge() for the three loose cases);
- every response is the bare one (Date masked) with at most the
  `X-Request-ID` header added last, carrying the request's id;
- an origin request carries at most one X-Request-ID, the request's own, and
  a traceparent whose trace-id is that generated id, or none;
- no request fails, and the server exits as it does bare.

--mix makes 4 requests in 10 one of VARIANTS; --unique gives each request a
path of its own (/req/TOKEN), so that event loops' access lines name their
request (the one-URL runs measure what the shim gets from I/O alone).

    python3 tests/realservers/test_unseen_servers.py [--servers a,b] [--requests N]
        [--connections C] [--seed S] [--mix] [--unique] [--keep]
"""

import argparse
import collections
import http.server
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
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "integration"))
import harness  # noqa: E402
import oracle  # noqa: E402
import run_real  # noqa: E402

ROOT = HERE.parents[1]
REQID = ROOT / "scripts" / "reqid"
URL = "/index.html"
BODY = b"<html>one page for every request</html>\n"
LETTERS = "ABCDEFGHJKLMNPQRSTUVWXYZ"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# ---------------------------------------------------------------- origin

class Origin:
    """A threaded HTTP/1.1 origin (keep-alive) that records, per token in
    the query, the X-Request-ID and traceparent values a request came with."""

    def __init__(self):
        self.seen = collections.defaultdict(list)
        seen, lock = self.seen, threading.Lock()

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self):
                m = re.search(r"(?:[?&]t=|/req/|/missing/)([A-Za-z0-9]+)", self.path)
                with lock:
                    seen[m.group(1) if m else None].append(
                        (self.headers.get_all("X-Request-ID") or [],
                         self.headers.get_all("traceparent") or []))
                if self.headers.get("X-Delay"):
                    time.sleep(0.03)
                length = int(self.headers.get("Content-Length") or 0)
                if length:
                    self.rfile.read(length)
                if self.path.startswith(("/missing", "http://127.0.0.1:%d/missing"
                                         % self.server.server_address[1])):
                    code, body = 404, b"no such page\n"
                elif self.headers.get("If-Modified-Since") == IMS:
                    code, body = 304, b""
                else:
                    code, body = 200, BODY
                self.send_response(code)
                self.send_header("Content-Type", "text/html")
                if code != 304:
                    self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(body)

            do_HEAD = do_POST = do_GET

            def log_message(self, *args):
                pass

        class Httpd(http.server.ThreadingHTTPServer):
            request_queue_size = 128
            daemon_threads = True

            def handle_error(self, request, client_address):
                pass  # a proxy closing an idle connection to it

        self.httpd = Httpd(("127.0.0.1", 0), Handler)
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


# ---------------------------------------------------------------- servers

class Server:
    name = "?"
    binary = apt = None
    log = "access.log"         # the server's log file in its directory
    stdout_is_log = False      # its lines go to stdout (console.out)
    token_in = "query"         # where the token goes: "query" or "ua"
    proxy = None               # "forward" or "reverse"
    stop_signal = signal.SIGTERM
    lines_per_request = 1      # lines with the token per request, None: varies
    varying_lines = False      # per request, unlike bare (webfs: whichever ends a connection)
    drops_lines = False        # the server drops a log line now and then, bare too

    def __init__(self, tmp, port, origin_port):
        self.tmp, self.port, self.origin_port = Path(tmp), port, origin_port
        self.root = self.tmp / "root"

    unique = False             # a path per request (/req/TOKEN) rather than one URL
    tokens = ()

    def prepare(self):
        pages = [self.root / URL.lstrip("/")]
        if self.unique:
            pages += [self.root / "req" / t for t in self.tokens]
        (self.root / "req").mkdir(parents=True, exist_ok=True)
        for page in pages:
            page.write_bytes(BODY)
            os.utime(page, (MTIME, MTIME))

    def target(self, token, missing=False):
        if self.unique:
            path, query = ("/missing/" if missing else "/req/") + token, ""
        else:
            path = "/missing.html" if missing else URL
            query = "?t=" + token if self.token_in == "query" else ""
        if self.proxy == "forward":
            return "http://127.0.0.1:%d%s%s" % (self.origin_port, path, query)
        return path + query

    def log_name(self):
        return "console.out" if self.stdout_is_log else self.log

    @classmethod
    def annotate(cls, data, token_re, fmt):
        """The log with lines that quote no token but are known to belong
        to one (by the server's own record) given it; as is by default."""
        return data


class MiniHttpd(Server):
    name, binary, apt = "mini-httpd", "mini_httpd", "mini-httpd"
    token_in = "ua"  # its log drops the query; it logs the User-Agent

    def argv(self):
        return ["mini_httpd", "-D", "-h", "127.0.0.1", "-p", str(self.port),
                "-d", str(self.root), "-l", str(self.tmp / self.log)]


class Webfs(Server):
    name, binary, apt = "webfs", "webfsd", "webfs"
    # webfsd logs a keep-alive connection's last request again when the
    # connection closes (bare too)
    lines_per_request, varying_lines = None, True

    def argv(self):
        return ["webfsd", "-F", "-4", "-i", "127.0.0.1", "-p", str(self.port), "-c", "64",
                "-r", str(self.root), "-L", str(self.tmp / self.log)]


class Tinyproxy(Server):
    name, binary, apt = "tinyproxy", "tinyproxy", "tinyproxy"
    log, proxy = "tinyproxy.log", "forward"
    lines_per_request = 2  # its Request line, and its Closed line (annotate)

    def prepare(self):
        super().prepare()
        (self.tmp / "tinyproxy.conf").write_text(
            "Port %d\nListen 127.0.0.1\nTimeout 60\nLogFile \"%s\"\nLogLevel Info\n"
            "MaxClients 256\nAllow 127.0.0.1\n" % (self.port, self.tmp / self.log))

    def argv(self):
        return ["tinyproxy", "-d", "-c", str(self.tmp / "tinyproxy.conf")]

    REQUEST_FD = re.compile(r"Request \(file descriptor (\d+)\)")
    CLOSED_FD = re.compile(r"Closed connection between local client \(fd:(\d+)\)")

    @classmethod
    def annotate(cls, data, token_re, fmt):
        """tinyproxy serves one request per client connection and logs its
        end as "Closed connection between local client (fd:N) ...": that
        line is the request whose "Request (file descriptor N)" line came
        last (a descriptor is not reused while it is open)."""
        out, by_fd = [], {}
        for line in data.decode("utf-8", "surrogateescape").splitlines():
            try:
                rid, msg = fmt.split(line)
            except ValueError:
                out.append(line)
                continue
            m = cls.REQUEST_FD.search(msg)
            toks = token_re.findall(msg)
            if m and toks:
                by_fd[m.group(1)] = toks[0]
            m = cls.CLOSED_FD.search(msg)
            if m and m.group(1) in by_fd:
                msg += " [token %s]" % by_fd.pop(m.group(1))
                if fmt.fmt == "plain":
                    line = msg
                else:
                    obj = {"request_id": rid, "msg": msg} if rid is not None else {"msg": msg}
                    line = json.dumps(obj, ensure_ascii=False)
            out.append(line)
        return ("\n".join(out) + "\n").encode("utf-8", "surrogateescape") if out else b""


class Haproxy(Server):
    """One event loop thread, its log on stdout."""
    name, binary, apt = "haproxy", "haproxy", "haproxy"
    proxy, stdout_is_log = "reverse", True
    stop_signal = signal.SIGUSR1  # soft stop: finish, then exit 0
    threads = 1

    def prepare(self):
        super().prepare()
        (self.tmp / "haproxy.cfg").write_text(f"""global
    log stdout format raw local0
    nbthread {self.threads}
defaults
    mode http
    log global
    option httplog
    timeout connect 5s
    timeout client 30s
    timeout server 30s
frontend fe
    bind 127.0.0.1:{self.port}
    default_backend be
backend be
    server origin 127.0.0.1:{self.origin_port}
""")

    def argv(self):
        return ["haproxy", "-db", "-f", str(self.tmp / "haproxy.cfg")]


class Haproxy2(Haproxy):
    """Two event loop threads. A thread that finds the other writing to the
    log gives up after 200 tries and drops its line (src/fd.c
    fd_write_frag_line; bare too, in about 2 runs in 5 at 32 connections),
    so lines are compared with bare only in total, loosely."""
    name = "haproxy-2t"
    threads = 2
    drops_lines = True


class Privoxy(Server):
    """A forward proxy with a thread per client connection, keep-alive on
    both sides and its connections to the origin shared between them."""
    name, binary, apt = "privoxy", "privoxy", "privoxy"
    proxy, stdout_is_log = "forward", True  # --no-daemon: its log goes to stderr
    stop_signal = signal.SIGINT
    lines_per_request = 2  # "Request: ..." (debug 1) and its CLF line (debug 512)

    def prepare(self):
        super().prepare()
        (self.tmp / "privoxy.conf").write_text(
            "listen-address 127.0.0.1:%d\nconfdir %s\n"
            "debug 1\ndebug 512\nconnection-sharing 1\nkeep-alive-timeout 30\n"
            "default-server-timeout 30\nmax-client-connections 256\n"
            % (self.port, self.tmp))

    def argv(self):
        return ["privoxy", "--no-daemon", str(self.tmp / "privoxy.conf")]


GUNICORN_APP = """import logging
log = logging.getLogger("gunicorn.error")


def app(environ, start_response):
    log.info("app serving %s?%s", environ.get("PATH_INFO"), environ.get("QUERY_STRING"))
    body = open(PAGE, "rb").read()
    start_response("200 OK", [("Content-Type", "text/html"), ("Content-Length", str(len(body)))])
    return [] if environ["REQUEST_METHOD"] == "HEAD" else [body]
"""


class Gunicorn(Server):
    """Python WSGI, 2 pre-forked workers of 4 threads each (gthread): a
    worker's main thread polls the keep-alive connections and hands each
    ready one to a thread of its pool. Its error log has the app's line."""
    name, binary, apt = "gunicorn", "gunicorn", "gunicorn"
    log = "all.log"
    # the app's "app serving t=..." and the access line
    lines_per_request = 2

    def prepare(self):
        super().prepare()
        (self.tmp / "unseen_app.py").write_text(
            GUNICORN_APP.replace("PAGE", repr(str(self.root / URL.lstrip("/")))))

    def argv(self):
        return ["gunicorn", "--chdir", str(self.tmp), "--worker-class", "gthread",
                "--workers", "2", "--threads", "4", "--keep-alive", "30",
                "--bind", "127.0.0.1:%d" % self.port, "--log-level", "info",
                "--access-logfile", str(self.tmp / self.log),
                "--error-logfile", str(self.tmp / self.log), "unseen_app:app"]


class H2o(Server):
    """An event loop on each of 2 threads."""
    name, binary, apt = "h2o", "h2o", "h2o"

    def prepare(self):
        super().prepare()
        user = "user: root\n" if os.geteuid() == 0 else ""
        (self.tmp / "h2o.conf").write_text(
            "%slisten:\n  host: 127.0.0.1\n  port: %d\nnum-threads: 2\n"
            "access-log: %s\nerror-log: %s\npid-file: %s\nhosts:\n  default:\n"
            "    paths:\n      /:\n        file.dir: %s\n"
            % (user, self.port, self.tmp / self.log, self.tmp / "error.log",
               self.tmp / "h2o.pid", self.root))

    def argv(self):
        return ["h2o", "-c", str(self.tmp / "h2o.conf")]


SERVERS = {c.name: c for c in (MiniHttpd, Webfs, Tinyproxy, Haproxy, Haproxy2, Privoxy, Gunicorn,
                                H2o)}


# ---------------------------------------------------------------- a run

class Req(run_real.RReq):
    __slots__ = ("raw_response", "with_cid")


VARIANTS = ("missing", "head", "cond", "close", "split", "post", "badid", "abort", "slow")
MTIME = 1700000000  # the page's, so Last-Modified and ETag match bare
IMS = "Tue, 14 Nov 2023 22:13:20 GMT"


def make_requests(rng, n, prefix, mix):
    """n requests; with mix, about 4 in 10 are one of VARIANTS: a missing
    page, HEAD, a conditional GET (304), Connection: close, a head sent in
    two parts, a POST with a body, an X-Request-ID the shim must refuse, a
    client that closes its connection right after sending (its response
    delayed 30 ms at the origin), one whose response the origin delays."""
    reqs = []
    for i in range(n):
        r = Req()
        r.token = "%s%05d" % (prefix, i)
        r.kind = rng.choice(VARIANTS) if mix and rng.random() < 0.4 else "get"
        r.with_cid = rng.random() < 0.5 and r.kind != "badid"
        r.expected = "cid-" + r.token if r.with_cid else harness.GENERATED
        r.status = 200
        r.error = r.status_got = r.raw_response = None
        r.hdr_ids = None
        reqs.append(r)
    return reqs


def request_parts(srv, r):
    """The request's bytes, in the parts it is sent in."""
    target = srv.target(r.token, r.kind == "missing")
    method = {"head": "HEAD", "post": "POST"}.get(r.kind, "GET")
    lines = ["%s %s HTTP/1.1" % (method, target), "Host: 127.0.0.1:%d" % (
        srv.origin_port if srv.proxy == "forward" else srv.port),
        "User-Agent: ua-" + r.token]
    if r.with_cid:
        lines.append("X-Request-ID: cid-" + r.token)
    if r.kind == "badid":
        lines.append("X-Request-ID: bad id " + r.token)
    if r.kind == "cond":
        lines.append("If-Modified-Since: " + IMS)
    if r.kind in ("close", "abort"):
        lines.append("Connection: close")
    if r.kind in ("slow", "abort"):
        lines.append("X-Delay: 30")
    body = b""
    if r.kind == "post":
        body = ("a=%s&b=%s" % (r.token, "x" * 100)).encode()
        lines += ["Content-Type: application/x-www-form-urlencoded",
                  "Content-Length: %d" % len(body)]
    data = ("\r\n".join(lines) + "\r\n\r\n").encode() + body
    if r.kind == "split":
        cut = data.index(b"User-Agent") + 5
        return [data[:cut], data[cut:]]
    return [data]


def read_head_only(sock, buf):
    """The response to a HEAD: (status, headers, b"", head, rest, closing)."""
    while b"\r\n\r\n" not in buf:
        data = sock.recv(65536)
        if not data:
            raise harness.Failure("connection closed before the response head (%r)" % buf[:120])
        buf += data
    head, rest = buf.split(b"\r\n\r\n", 1)
    lines = head.split(b"\r\n")
    sm = re.match(rb"HTTP/1\.[01] (\d{3})(?: |$)", lines[0])
    if not sm:
        raise harness.Failure("bad status line %r" % lines[0][:120])
    status = int(sm.group(1))
    headers = [(k.decode("latin-1").strip().lower(), v.decode("latin-1").strip())
               for k, _, v in (ln.partition(b":") for ln in lines[1:])]
    conn = ",".join(v for k, v in headers if k == "connection").lower()
    closing = "close" in conn or (lines[0].startswith(b"HTTP/1.0") and "keep-alive" not in conn)
    return status, headers, b"", head + b"\r", rest, closing


class Aborted(Exception):
    """The client gave up on its request (it closes the connection)."""


def drive(srv, reqs, connections, timeout=30.0):
    """connections client threads take the requests in order from one
    queue, each on its own keep-alive connection (a new one after the server
    closes it). Returns the most connections open at once."""
    it = iter(reqs)
    lock = threading.Lock()
    opened = [0, 0]

    def client():
        sock, buf = None, b""
        while True:
            with lock:
                r = next(it, None)
            if r is None:
                break
            try:
                for attempt in (0, 1):
                    reused = sock is not None
                    if sock is None:
                        sock = socket.create_connection(("127.0.0.1", srv.port),
                                                        timeout=timeout)
                        buf = b""
                        with lock:
                            opened[0] += 1
                            opened[1] = max(opened[1], opened[0])
                    try:
                        parts = request_parts(srv, r)
                        for k, part in enumerate(parts):
                            if k:
                                time.sleep(0.005)  # the head arrives in two reads
                            sock.sendall(part)
                        if r.kind == "abort":
                            time.sleep(0.005)
                            raise Aborted()
                        status, headers, body, head, buf, closing = (
                            read_head_only if r.kind == "head" else run_real.read_response)(
                            sock, buf)
                        break
                    except (OSError, harness.Failure):
                        # a server that closes a keep-alive connection
                        # without saying so (tinyproxy): the request goes
                        # again on a new one, as clients do
                        if not reused or buf:
                            raise
                        sock.close()
                        sock = None
                        with lock:
                            opened[0] -= 1
                r.status_got = status
                r.hdr_ids = [v for k, v in headers if k == "x-request-id"]
                r.raw_response = (head, body)
                if r.kind == "get" and (status != 200 or body != BODY):
                    r.error = "status %d, body %r" % (status, body[:80])
            except Aborted:
                closing = True
            except (OSError, harness.Failure) as e:
                r.error = "%s: %s" % (type(e).__name__, e)
                closing = True
            if closing:
                sock.close() if sock else None
                sock = None
                with lock:
                    opened[0] -= 1
        if sock is not None:
            sock.close()
            with lock:
                opened[0] -= 1

    threads = [threading.Thread(target=client) for _ in range(connections)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return opened[1]


def start(srv, shimmed):
    out = os.open(srv.tmp / "console.out", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("REQID_", "LD_PRELOAD"))}
    env["PATH"] = env.get("PATH", "/usr/bin:/bin") + ":/usr/sbin:/sbin"
    cmd = list(srv.argv())
    if shimmed:
        cmd = [str(REQID), "run", "--log-path", str(srv.tmp / "*.log"), "--"] + cmd
    try:
        proc = subprocess.Popen(cmd, cwd=str(srv.tmp), env=env, stdin=subprocess.DEVNULL,
                                stdout=out, stderr=out, start_new_session=True)
    finally:
        os.close(out)
    deadline = time.monotonic() + 20
    while True:
        if proc.poll() is not None:
            raise RuntimeError("%s exited with %s: %s" % (srv.name, proc.returncode,
                               (srv.tmp / "console.out").read_text(errors="replace")[-400:]))
        try:
            socket.create_connection(("127.0.0.1", srv.port), timeout=1.0).close()
            return proc
        except OSError:
            if time.monotonic() > deadline:
                proc.kill()
                raise RuntimeError("%s did not listen on %d" % (srv.name, srv.port))
            time.sleep(0.01)  # polling the port with a bounded deadline


def stop(srv, proc):
    """(exit status, problems)"""
    problems = []
    time.sleep(0.3)  # the server reads its clients' ends (webfsd logs then)
    proc.send_signal(srv.stop_signal)
    try:
        rc = proc.wait(20)
    except subprocess.TimeoutExpired:
        problems.append("%s did not exit within 20 s of %s" % (srv.name, srv.stop_signal.name))
        os.killpg(proc.pid, signal.SIGKILL)
        rc = proc.wait()
    try:
        os.killpg(proc.pid, signal.SIGKILL)  # a forked child left behind
        problems.append("processes of %s left after it exited" % srv.name)
    except ProcessLookupError:
        pass
    return rc, problems


DATE_RE = re.compile(rb"(?im)^(date|expires):[^\r\n]*")


def one_run(cls, reqs, connections, shimmed, keep, unique):
    tmp = Path(tempfile.mkdtemp(prefix="reqid-unseen-%s-%s-" % (cls.name, "shim" if shimmed
                                                                   else "bare")))
    origin = Origin()
    srv = cls(tmp, free_port(), origin.port)
    srv.unique, srv.tokens = unique, [r.token for r in reqs]
    srv.prepare()
    for r in reqs:
        r.error = r.status_got = r.raw_response = r.hdr_ids = None
    proc = start(srv, shimmed)
    t0 = time.monotonic()
    most = drive(srv, reqs, connections)
    elapsed = time.monotonic() - t0
    rc, problems = stop(srv, proc)
    origin.close()
    data = (tmp / srv.log_name()).read_bytes() if (tmp / srv.log_name()).exists() else b""
    res = {"tmp": tmp, "rc": rc, "problems": problems, "log": data, "most_open": most,
           "elapsed": elapsed, "origin": dict(origin.seen),
           "responses": [r.raw_response for r in reqs],
           "errors": [(r.token, r.error) for r in reqs if r.error]}
    if not keep:
        shutil.rmtree(tmp, ignore_errors=True)
    return res


def strip_added(head, want):
    """The bare-comparable head: Date masked, the X-Request-ID the shim
    added last removed. (head, problem or None)"""
    lines = head.rstrip(b"\r").split(b"\r\n")
    problem = None
    if lines and lines[-1].lower().startswith(b"x-request-id:"):
        if want is not None and lines[-1].split(b":", 1)[1].strip().decode() != want:
            problem = "X-Request-ID %r, the request's id is %r" % (lines[-1], want)
        lines = lines[:-1]
    return DATE_RE.sub(b"\\1: -", b"\r\n".join(lines)), problem


def judge(cls, reqs, bare, shim, token_re, mix):
    # a server that leaves helpers of its own behind (h2o) does so bare too
    problems = [p for p in shim["problems"] if p not in bare["problems"]]
    if shim["rc"] != bare["rc"]:
        problems.append("exit status %s, bare %s" % (shim["rc"], bare["rc"]))
    for tok, err in shim["errors"][:5]:
        problems.append("request %s failed: %s" % (tok, err))
    if shim["errors"] or bare["errors"]:
        problems.append("failed requests: %d shimmed, %d bare"
                        % (len(shim["errors"]), len(bare["errors"])))
    shim_log = cls.annotate(shim["log"], token_re, harness.LineFormat("json"))
    bare_log = cls.annotate(bare["log"], token_re, harness.LineFormat("plain"))
    chk = oracle.check_run({"log": shim_log}, [("log", "log", None)], reqs, token_re,
                           (lambda label, r: None if mix or cls.drops_lines
                            else cls.lines_per_request))
    problems += chk["problems"] + chk["wrong_examples"]
    row = chk["rows"]["log"]
    # lines and bytes against bare
    fmt = harness.LineFormat("json")
    bare_lines = bare_log.decode(errors="replace").splitlines()
    shim_lines = []
    for ln in shim_log.decode(errors="replace").splitlines():
        try:
            shim_lines.append(fmt.split(ln)[1])
        except ValueError:  # malformed: the oracle reports it
            shim_lines.append(ln)
    per_bare = collections.Counter(t for ln in bare_lines for t in set(token_re.findall(ln)))
    per_shim = collections.Counter(t for ln in shim_lines for t in set(token_re.findall(ln)))
    # two HAProxy threads drop a log line now and then, bare or not: their
    # totals may differ by 1%; where the last request of a connection is
    # logged twice (webfs), only the totals compare
    # what a server logs for a request its client gave up on depends on
    # when it saw the client go: those are compared in total, loosely
    aborted = {r.token for r in reqs if r.kind == "abort"}
    more = len(shim_lines) - len(bare_lines)
    slack = len(aborted) + (len(reqs) // 100 if cls.drops_lines else 0)
    if abs(more) > slack:
        problems.append("%d log lines, bare %d" % (len(shim_lines), len(bare_lines)))
    diff = [] if cls.varying_lines or cls.drops_lines else [
        t for t in per_bare.keys() | per_shim.keys()
        if per_shim[t] != per_bare[t] and t not in aborted]
    if diff:
        problems.append("%d tokens with another line count than bare, e.g. %s: %d vs bare %d"
                        % (len(diff), diff[0], per_shim[diff[0]], per_bare[diff[0]]))
    # responses
    # each request's id: its X-Request-ID, or the generated one in its
    # response header, or (a client that gave up) on its lines
    line_ids = collections.defaultdict(collections.Counter)
    for ln in shim_log.decode(errors="replace").splitlines():
        try:
            rid, msg = fmt.split(ln)
        except ValueError:
            continue
        toks = set(token_re.findall(msg))
        if rid is not None and len(toks) == 1:
            line_ids[toks.pop()][rid] += 1
    token_id = {}
    for r in reqs:
        ids = r.hdr_ids or []
        token_id[r.token] = r.expected if r.with_cid else (
            ids[0] if len(ids) == 1 else
            line_ids[r.token].most_common(1)[0][0] if line_ids[r.token] else None)
    id_owner = {v: k for k, v in token_id.items() if v is not None}
    changed = 0
    for r, b, s in zip(reqs, bare["responses"], shim["responses"]):
        if b is None or s is None:
            continue
        sh, why = strip_added(s[0], token_id[r.token])
        bh, _ = strip_added(b[0], None)
        if why or sh != bh or s[1] != b[1]:
            changed += 1
            if changed <= 3:
                problems.append("response to %s differs from bare: %s %r vs %r"
                                % (r.token, why or "", s[0][:300], b[0][:300]))
    # outbound requests at the origin
    outbound = collections.Counter()
    traces = collections.Counter()
    if cls.proxy:
        for r in reqs:
            for xids, tps in shim["origin"].get(r.token, []):
                outbound["requests"] += 1
                want = (r.expected if r.with_cid else "bad id " + r.token
                        if r.kind == "badid" else token_id[r.token])
                # an id the shim added for a request whose id nothing else
                # shows must at least be no other request's
                bad = len(xids) > 1 or len(tps) > 1 or (xids and (
                    xids[0] != want if want is not None
                    else id_owner.get(xids[0], r.token) != r.token))
                if tps:
                    outbound["traceparent"] += 1
                    trace = tps[0].split("-")[1] if tps[0].count("-") == 3 else None
                    traces[trace] += 1
                    expect = want or (xids[0] if xids else None)
                    if not r.with_cid and r.kind != "badid" and expect and trace != expect:
                        bad = True
                if xids and not r.with_cid and r.kind != "badid":
                    outbound["id_added"] += 1
                if bad:
                    outbound["wrong"] += 1
                    if outbound["wrong"] <= 3:
                        problems.append("origin request of %s (id %s) came with X-Request-ID %s"
                                        " traceparent %s" % (r.token, want, xids, tps))
        shared = [t for t, n in traces.items() if n > 1]
        if shared:
            problems.append("%d trace-ids on several origin requests, e.g. %s"
                            % (len(shared), shared[0]))
    hdr = chk["header"]
    return {"row": row, "problems": problems, "header": hdr, "outbound": outbound,
            "bare_lines": len(bare_lines), "most_open": shim["most_open"],
            "elapsed": (bare["elapsed"], shim["elapsed"])}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--servers", default=",".join(SERVERS))
    ap.add_argument("--requests", type=int, default=2000)
    ap.add_argument("--connections", type=int, default=16)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--mix", action="store_true",
                    help="4 requests in 10 a missing page, HEAD, 304, close, split, POST or a "
                         "refused X-Request-ID")
    ap.add_argument("--unique", action="store_true",
                    help="a path per request (/req/TOKEN), so that access-log lines name "
                         "their request")
    ap.add_argument("--keep", action="store_true", help="keep the temporary directories")
    args = ap.parse_args(argv)
    failed = 0
    print("%-11s %5s %6s %6s %5s %9s %7s %8s %9s  %s" % (
        "server", "lines", "tagged", "right", "wrong", "precision", "recall", "resp hdr",
        "outbound", "result"))
    for name in args.servers.split(","):
        cls = SERVERS[name]
        if not shutil.which(cls.binary, path=os.environ.get("PATH", "") + ":/usr/sbin:/sbin"):
            print("%-11s skipped: no %s (apt-get install -y %s)" % (name, cls.binary, cls.apt))
            continue
        rng = random.Random("%s/%d" % (name, args.seed))
        prefix = "".join(rng.choice(LETTERS) for _ in range(4))
        token_re = re.compile(re.escape(prefix) + r"\d{5}")
        reqs = make_requests(rng, args.requests, prefix, args.mix)
        bare = one_run(cls, reqs, args.connections, False, args.keep, args.unique)
        shim = one_run(cls, reqs, args.connections, True, args.keep, args.unique)
        res = judge(cls, reqs, bare, shim, token_re, args.mix)
        row, hdr, ob = res["row"], res["header"], res["outbound"]
        ok = not res["problems"]
        failed += not ok
        print("%-11s %5d %6d %6d %5d %9s %7s %8s %9s  %s" % (
            name, row["lines"], row["tagged"], row["correct"], row["wrong"],
            run_real.pct(row["precision"]), run_real.pct(row["recall"]),
            "%d/%d" % (hdr["ok"], hdr["responses"]),
            "%d/%d" % (ob["id_added"], ob["requests"]) if cls.proxy else "-",
            "ok" if ok else "FAIL"))
        print("            bare lines %d, connections at once %d, %.1f s bare, "
              "%.1f s shimmed%s" % (res["bare_lines"], res["most_open"], *res["elapsed"],
                 ("; kept %s %s" % (bare["tmp"], shim["tmp"])) if args.keep else ""))
        for p in res["problems"]:
            print("    " + p)
    print("%d failed" % failed)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
