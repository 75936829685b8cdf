#!/usr/bin/env python3
"""realistic.py - reqid against nginx, lighttpd and Apache httpd under realistic traffic:
every request asks for the SAME URL (a small static file), carries its own
X-Request-ID, and connections carry 1-20 keep-alive requests. The unique-URL
rows of run_real.py let the shim's "a held line names its request" rule fire;
these do not: they measure what the shim gets from I/O alone.

The truth never comes from the shim's output:

- nginx writes a second access log, the truth, at a path the --log-path glob
  does not match: "$pid $connection $connection_requests $http_x_request_id
  $status $remote_port". It is buffered (buffer=1m: written at exit, so
  invisible to the shim while the traffic runs): unbuffered, it would be a
  write to a non-log descriptor next to each shimmed line, which the shim
  may take for the event loop turning to other work (shim/hooks.h
  note_other_io), and the truth would change what it measures.
  The shimmed access log carries the same three serials in front of the
  combined format; each shimmed line is joined to its truth line on
  (pid, connection, connection_requests). Error-log lines about a request
  (open() of /missing failed, with `*CONN` and `request: "..."`) are joined
  on (pid, connection) and their order among that connection's 404s.
- lighttpd and Apache have one access log per request, so their serials in
  the shimmed log are the client's port (%{remote}p) and the request's place
  on its connection (%k, 0-based), and the truth is the client's own record
  of the X-Request-ID it sent as request k on the connection from that port
  (the client never uses a local port twice in a run).

Each row also cross-checks the join (request line, status, port, place on
the connection against what the client sent) and the X-Request-ID response
header the shim adds (must be exactly the request's id).

Rows: nginx with 1 and 2 workers at concurrency 1, 16 and 128 (one URL,
keep-alive); nginx with Connection: close (one request per connection);
nginx with a mix of URLs (80% /index.html, 10% /other.html, 10% /missing:
404 and an error-log line each); nginx with a buffered shimmed access log
(buffer=8k: one write() carries the lines of ~50 requests); nginx with
`ssl` on its listening socket (the client on HTTPS, certificate made by
openssl at run time), one URL and mixed; nginx behind a load balancer
speaking the PROXY protocol (`listen ... proxy_protocol`: each connection
begins with a PROXY line the client sends first), plain and with TLS; lighttpd at
concurrency 16 and 128 (lighttpd buffers its access log itself: 8 KiB, or
until the second changes); Apache httpd with its event MPM (two processes
of worker threads that take keep-alive connections in turn from a listener
thread) at concurrency 16 and 32 (at 128, and with this client at 64, it
closes some keep-alive connections before answering their next request,
shim or not), and with its prefork MPM at 16. Logs per row: "access.log"; "error.log", the
error-log lines about a request (404s); "error.log other", the error-log
lines about a connection and no request (info: "client closed keepalive
connection", written after its last request was answered and logged) and
the server's own: all must carry no id. Columns: lines in the log, joined to their request (or to "no
request"), tagged right, tagged wrong, untagged; precision = right /
tagged, recall = right / joined lines that belong to a request.

A row FAILS on: one wrong id; recall under the row's floor on an access
log or on the error log's request lines (99% for nginx; none where the
access log is buffered, nginx buffer= and lighttpd: a write() then carries
lines of many requests, and with one URL nothing names them, so they rightly
get no id); a malformed (non-JSON) line in a
shimmed log; a shimmed access-log line or error-log line that cannot be
joined; a shimmed access-log line count that differs from the truth's (lost
or duplicated lines) or from the requests answered; a request that failed
or got a wrong response or response header; a server that does not start
or stop cleanly.

    python3 tests/realservers/realistic.py [--rows nginx-w2-c128,...] [--seed N]
                                           [--keep] [--min-recall R]
(REQID_LIB=... picks the shim to test, as for scripts/reqid.)
"""

import argparse
import asyncio
import collections
import os
import random
import re
import shutil
import signal
import socket
import ssl
import sys
import tempfile
import time
import uuid
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "integration"))
import harness  # noqa: E402
import servers  # noqa: E402

# Recall floor for the access logs and the error log's request lines of a
# server that writes each line when its request ends (precision is always
# required to be exactly 100%).
REALISTIC_MIN_RECALL = 0.99

TIMEOUT = 30.0  # per network step of the client

INDEX_HTML = b"""<!DOCTYPE html>
<html>
<head>
<title>Welcome</title>
<style>
html { color-scheme: light dark; }
body { width: 35em; margin: 0 auto; font-family: Tahoma, Verdana, Arial, sans-serif; }
</style>
</head>
<body>
<h1>Welcome</h1>
<p>If you see this page, the web server is successfully installed and
working. Further configuration is required.</p>
<p><em>Thank you for using this web server.</em></p>
</body>
</html>
"""
OTHER_HTML = b"<!DOCTYPE html>\n<html><body><p>" + b"Another page. " * 60 + b"</p></body></html>\n"
FILES = {"/index.html": INDEX_HTML, "/other.html": OTHER_HTML}
USER_AGENTS = (
    "Mozilla/5.0 (X11; Linux x86_64; rv:109.0) Gecko/20100101 Firefox/115.0",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/120.0.0.0 Safari/537.36",
    "curl/7.88.1",
    "python-requests/2.31.0",
)


# ---------------------------------------------------------------- rows

class Row:
    """One run: a server, its workers, the traffic. buffered: nginx writes
    the shimmed access log through a buffer (access_log ... buffer=8k)."""

    def __init__(self, server, workers, concurrency, kind, requests, buffered=False, tls=False,
                 proxy=False):
        self.server, self.workers, self.concurrency = server, workers, concurrency
        self.kind, self.requests, self.buffered, self.tls = kind, requests, buffered, tls
        self.proxy = proxy
        # buffered access logs: lines flushed in batches, no floor
        self.min_recall = 0.0 if buffered or server == "lighttpd" else REALISTIC_MIN_RECALL

    @property
    def label(self):
        return (self.server + ("-buf" if self.buffered else "") + ("-tls" if self.tls else "") +
                ("-proxy" if self.proxy else ""))

    @property
    def name(self):
        return "%s-w%d-c%d-%s" % (self.label, self.workers, self.concurrency, self.kind)


# kind: "keepalive" (one URL, 1-20 requests per connection), "close" (one
# URL, Connection: close, one request per connection), "mixed" (keep-alive;
# 80% /index.html, 10% /other.html, 10% /missing -> 404)
# lighttpd buffers its access log itself (8 KiB, or until the second
# changes), as nginx does with buffer=.
ROWS = [Row("nginx", w, c, "keepalive", 2000) for w in (1, 2) for c in (1, 16, 128)] + [
    Row("nginx", 2, 16, "close", 1000),
    Row("nginx", 2, 16, "mixed", 2000),
    Row("nginx", 2, 16, "keepalive", 2000, buffered=True),
    Row("nginx", 2, 16, "keepalive", 2000, tls=True),
    Row("nginx", 2, 16, "mixed", 2000, tls=True),
    Row("nginx", 2, 16, "keepalive", 2000, proxy=True),
    Row("nginx", 2, 16, "mixed", 2000, tls=True, proxy=True),
    Row("lighttpd", 1, 16, "keepalive", 2000),
    Row("lighttpd", 1, 128, "keepalive", 2000),
    Row("apache", 2, 16, "keepalive", 2000),
    Row("apache", 2, 32, "keepalive", 2000),
    Row("apache-prefork", 2, 16, "keepalive", 2000),
]


# ---------------------------------------------------------------- servers

class RealisticNginx(servers.RealServer):
    """nginx, master + `workers` workers. Everything lives in base/; the
    shimmed logs (and only they) in base/shimmed/, which is srv.tmp, so
    servers.Running runs it under --log-path 'base/shimmed/*.log'."""

    name = "nginx"
    stop_signal = signal.SIGQUIT
    binary, apt = "nginx", "nginx"

    def __init__(self, base, port, workers, buffered=False, tls=False, proxy=False):
        self.base = Path(base)
        super().__init__(self.base / "shimmed", port)
        self.root = self.base / "root"
        self.workers, self.buffered, self.tls, self.proxy = workers, buffered, tls, proxy
        if proxy:  # as its user would run it: the shim told the PROXY header comes first
            self.reqid_options = ("--proxy-protocol",)
        self.truth = self.base / "truth" / "access.log"

    def prepare(self, reqs=()):
        self.root.mkdir(parents=True, exist_ok=True)
        self.tmp.mkdir(parents=True, exist_ok=True)
        self.truth.parent.mkdir(parents=True, exist_ok=True)
        for path, data in FILES.items():
            (self.root / path.lstrip("/")).write_bytes(data)
        if self.tls:
            harness.make_cert(self.base)
        self.write_config()

    def write_config(self):
        t, b = self.tmp, self.base
        tls = (" ssl;\n        ssl_certificate %s;\n        ssl_certificate_key %s"
               % (b / "cert.pem", b / "key.pem")) if self.tls else ""
        for d in ("body", "proxy", "fastcgi", "uwsgi", "scgi"):
            (b / "temp" / d).mkdir(parents=True, exist_ok=True)
        user = "user root root;\n" if os.geteuid() == 0 else ""
        (b / "nginx.conf").write_text(f"""# reqid realistic test: nothing global is read
daemon off;
master_process on;
worker_processes {self.workers};
pid {t}/nginx.pid;
error_log {t}/error.log info;
{user}events {{ worker_connections 1024; }}
http {{
    log_format shimmed '$pid $connection $connection_requests $remote_addr - $remote_user '
                       '[$time_local] "$request" $status $body_bytes_sent '
                       '"$http_referer" "$http_user_agent"';
    log_format truth '$pid $connection $connection_requests $http_x_request_id $status '
                     '$remote_port';
    # the truth: outside the glob, buffered so it is written at exit only
    access_log {self.truth} truth buffer=1m;
    access_log {t}/access.log shimmed{" buffer=8k flush=1m" if self.buffered else ""};
    client_body_temp_path {b}/temp/body;
    proxy_temp_path {b}/temp/proxy;
    fastcgi_temp_path {b}/temp/fastcgi;
    uwsgi_temp_path {b}/temp/uwsgi;
    scgi_temp_path {b}/temp/scgi;
    types {{ text/html html; }}
    default_type application/octet-stream;
    sendfile on;
    keepalive_requests 1000;
    server {{
        listen 127.0.0.1:{self.port}{" proxy_protocol" if self.proxy else ""}{tls};
        root {self.root};
        location / {{ }}
    }}
}}
""")

    def argv(self):
        b = self.base
        return ["nginx", "-p", str(b), "-c", str(b / "nginx.conf"),
                "-e", str(self.tmp / "error.log")]

    def sources(self):
        return [("access.log", "access.log", None), ("error.log", "error.log", None)]

    def exit_ok(self, rc):
        return rc == 0 and not (self.tmp / "nginx.pid").exists()


class RealisticLighttpd(servers.RealServer):
    """lighttpd (one event loop); the shimmed access log starts with the
    client's port and the request's place on its connection."""

    name = "lighttpd"
    binary, apt = "lighttpd", "lighttpd"

    def __init__(self, base, port, workers=1, buffered=False, tls=False):
        # buffered and tls: nginx's (no lighttpd row has them)
        self.base = Path(base)
        super().__init__(self.base / "shimmed", port)
        self.root = self.base / "root"
        self.workers = 1

    def prepare(self, reqs=()):
        self.root.mkdir(parents=True, exist_ok=True)
        self.tmp.mkdir(parents=True, exist_ok=True)
        for path, data in FILES.items():
            (self.root / path.lstrip("/")).write_bytes(data)
        self.write_config()

    def write_config(self):
        fmt = r'%{remote}p %k %h %V %u %t \"%r\" %>s %b \"%{Referer}i\" \"%{User-Agent}i\"'
        servers.write_lighttpd_config(
            self.base / "lighttpd.conf", "realistic test", self.root, self.port, self.tmp,
            'accesslog.format = "%s"' % fmt,
            'mimetype.assign = (".html" => "text/html", "" => "application/octet-stream")',
            "server.max-keep-alive-requests = 1000")

    def argv(self):
        return ["lighttpd", "-D", "-f", str(self.base / "lighttpd.conf")]

    def sources(self):
        return [("access.log", "access.log", None), ("error.log", "error.log", None)]


class RealisticApache(servers.Apache):
    """Apache httpd (event MPM: worker threads take keep-alive connections in
    turn from a listener thread); its shimmed access log starts, as
    lighttpd's, with the client's port and the request's place on its
    connection (%k: keep-alive requests before it on the connection)."""

    def __init__(self, base, port, workers=2, buffered=False, tls=False):
        # buffered and tls: nginx's (no apache row has them)
        self.base = Path(base)
        super().__init__(self.base / "shimmed", port)
        self.root = self.base / "root"
        self.workers = workers

    def prepare(self, reqs=()):
        self.root.mkdir(parents=True, exist_ok=True)
        self.tmp.mkdir(parents=True, exist_ok=True)
        for path, data in FILES.items():
            (self.root / path.lstrip("/")).write_bytes(data)
        for d in (self.base, self.tmp, self.root):  # the children run as www-data
            d.chmod(0o755)
        self.write_config()

    def access_log(self):
        fmt = r'%{remote}p %k %h %l %u %t \"%r\" %>s %b \"%{Referer}i\" \"%{User-Agent}i\"'
        return f'LogFormat "{fmt}" reqid\nCustomLog {self.tmp}/access.log reqid\n'

    def sources(self):
        return [("access.log", "access.log", None), ("error.log", "error.log", None)]


class RealisticApachePrefork(RealisticApache):
    """Apache httpd with the prefork MPM: a process per connection."""
    name = "apache-prefork"
    mpm = "prefork"


SERVER_CLASSES = {"nginx": RealisticNginx, "lighttpd": RealisticLighttpd,
                  "apache": RealisticApache, "apache-prefork": RealisticApachePrefork}


# ---------------------------------------------------------------- traffic

class Req:
    __slots__ = ("rid", "path", "want", "close", "conn", "pos", "last", "port",
                 "status", "hdr_ids", "error")

    def __init__(self, rid, path, want, close):
        self.rid, self.path, self.want, self.close = rid, path, want, close
        self.conn = self.pos = self.port = self.status = self.hdr_ids = self.error = None
        self.last = False

    def raw(self, port, ua):
        head = ("GET %s HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nUser-Agent: %s\r\nAccept: */*\r\n"
                "X-Request-ID: %s\r\n" % (self.path, port, ua, self.rid))
        if self.close:
            head += "Connection: close\r\n"
        return (head + "\r\n").encode()


def make_plan(rng, kind, n):
    """[[Req, ...] per connection]; every request has its own UUID id."""
    conns, i = [], 0
    while i < n:
        k = 1 if kind == "close" else min(rng.randint(1, 20), n - i)
        conn = []
        for j in range(k):
            rid = str(uuid.UUID(int=rng.getrandbits(128), version=4))
            path, want = "/index.html", 200
            if kind == "mixed":
                x = rng.random()
                if x < 0.1:
                    path, want = "/missing", 404
                elif x < 0.2:
                    path = "/other.html"
            r = Req(rid, path, want, close=(kind == "close"))
            r.conn, r.pos, r.last = len(conns), j, j == k - 1
            conn.append(r)
        conns.append(conn)
        i += k
    return conns


class Load:
    """asyncio client: `concurrency` connections at once, requests one at a
    time on each (no pipelining), the first wave held until all its
    connections are open so the server really has `concurrency`. Every
    connection gets a local port not used before in this run (bind before
    connect; a port seen before is put aside and another one taken). With
    tls, each connection is HTTPS (the certificate is not checked)."""

    def __init__(self, port, concurrency, rng, tls=False, proxy=False):
        self.port, self.concurrency, self.proxy = port, concurrency, proxy
        self.ssl = None
        if tls:
            self.ssl = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
            self.ssl.check_hostname = False
            self.ssl.verify_mode = ssl.CERT_NONE
        self.ua = [rng.choice(USER_AGENTS) for _ in range(64)]
        self.used_ports = set()
        self.open_now = self.open_max = 0
        self.port_retries = 0

    def _socket(self):
        aside = []
        try:
            while True:
                s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                try:
                    s.setblocking(False)
                    s.bind(("127.0.0.1", 0))
                    p = s.getsockname()[1]
                except OSError:
                    s.close()
                    raise
                if p not in self.used_ports:
                    self.used_ports.add(p)
                    return s, p
                self.port_retries += 1
                aside.append(s)
        finally:
            for a in aside:
                a.close()

    async def _response(self, reader):
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), TIMEOUT)
        lines = head[:-4].split(b"\r\n")
        m = re.match(rb"HTTP/1\.1 (\d{3}) ", lines[0])
        if not m:
            raise harness.Failure("bad status line %r" % lines[0][:100])
        headers = []
        for ln in lines[1:]:
            name, sep, value = ln.partition(b":")
            if not sep:
                raise harness.Failure("bad header line %r" % ln[:100])
            headers.append((name.strip().lower().decode("latin-1"),
                            value.strip().decode("latin-1")))
        cls = [v for k, v in headers if k == "content-length"]
        if len(cls) != 1:
            raise harness.Failure("response without one Content-Length: %r" % head[:300])
        body = await asyncio.wait_for(reader.readexactly(int(cls[0])), TIMEOUT)
        conn_hdr = ",".join(v for k, v in headers if k == "connection").lower()
        return int(m.group(1)), headers, body, "close" in conn_hdr

    async def _conn(self, reqs, barrier):
        loop = asyncio.get_running_loop()
        sock, lport = self._socket()
        writer = None
        waiting = barrier
        try:
            await asyncio.wait_for(loop.sock_connect(sock, ("127.0.0.1", self.port)), TIMEOUT)
            if self.proxy:  # as a load balancer speaking the PROXY protocol would
                await loop.sock_sendall(sock, b"PROXY TCP4 192.0.2.%d 127.0.0.1 %d %d\r\n"
                                        % (1 + lport % 250, lport, self.port))
            reader, writer = await asyncio.open_connection(
                sock=sock, ssl=self.ssl, server_hostname="127.0.0.1" if self.ssl else None)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self.open_now += 1
            self.open_max = max(self.open_max, self.open_now)
            if barrier is not None:
                waiting = None
                try:
                    await asyncio.wait_for(barrier.wait(), TIMEOUT)
                except (asyncio.TimeoutError, asyncio.BrokenBarrierError):
                    pass
            ua = self.ua[reqs[0].conn % len(self.ua)]
            for r in reqs:
                r.port = lport
                writer.write(r.raw(self.port, ua))
                await writer.drain()
                status, headers, body, closing = await self._response(reader)
                r.status = status
                r.hdr_ids = [v for k, v in headers if k == "x-request-id"]
                if status != r.want:
                    r.error = "status %d, expected %d" % (status, r.want)
                elif status == 200 and body != FILES[r.path]:
                    r.error = "body of %d bytes is not %s" % (len(body), r.path)
                if r.close:
                    tail = await asyncio.wait_for(reader.read(), TIMEOUT)
                    if tail:
                        r.error = "bytes after Connection: close: %r" % tail[:80]
                elif closing:
                    raise harness.Failure("server closed a keep-alive connection after %s"
                                          % r.rid)
            if not reqs[-1].close and self.ssl is None:
                # the client goes away as a browser does (its FIN), then waits
                # for the server's close: the server is done with every
                # connection before it is stopped (lighttpd exits 1 when a
                # connection is still open at SIGTERM). A TLS connection
                # (nginx only) has no half-close: it is just closed.
                writer.write_eof()
                tail = await asyncio.wait_for(reader.read(), TIMEOUT)
                if tail:
                    reqs[-1].error = "bytes after the last response: %r" % tail[:80]
        except (OSError, EOFError, asyncio.TimeoutError, asyncio.IncompleteReadError,
                asyncio.LimitOverrunError, harness.Failure, ValueError) as e:
            for r in reqs:
                if r.status is None and r.error is None:
                    r.error = "%s: %s" % (type(e).__name__, e)
            if waiting is not None:  # the first wave goes on without this one
                await waiting.abort()
        finally:
            if writer is not None:
                self.open_now -= 1
                writer.close()
                try:
                    await writer.wait_closed()
                except OSError:
                    pass
            else:
                sock.close()

    async def _run(self, plan):
        queue = collections.deque(plan)
        first = min(self.concurrency, len(plan))
        barrier = asyncio.Barrier(first) if first > 1 else None

        async def worker(i):
            wave = barrier
            while queue:
                conn = queue.popleft()
                await self._conn(conn, wave)
                wave = None

        await asyncio.gather(*(worker(i) for i in range(first)))

    def run(self, plan):
        asyncio.run(self._run(plan))


# ---------------------------------------------------------------- judge

NGINX_ACCESS_RE = re.compile(
    r'^(\d+) (\d+) (\d+) (\S+) - (\S+) \[([^\]]+)\] "([^"]*)" (\d{3}) (\d+) "([^"]*)" "([^"]*)"$')
NGINX_TRUTH_RE = re.compile(r"^(\d+) (\d+) (\d+) (\S+) (\d{3}) (\d+)$")
NGINX_ERROR_RE = re.compile(
    r"^\d{4}/\d\d/\d\d \d\d:\d\d:\d\d \[(\w+)\] (\d+)#\d+: (?:\*(\d+) )?(.*)$")
NGINX_REQUEST_RE = re.compile(r', request: "([^"]*)"')
NGINX_NOTFOUND_RE = re.compile(r'^open\(\) "[^"]*" failed \(2: No such file or directory\)')
PORT_PLACE_ACCESS_RE = re.compile(
    r'^(\d+) (\d+) (\S+) (\S+) (\S+) \[([^\]]+)\] "([^"]*)" (\d{3}) (\S+) "([^"]*)" "([^"]*)"$')

# owned: joined lines that belong to a request (the others must carry no id)
ROW_KEYS = ("lines", "joined", "owned", "right", "wrong", "untagged", "unjoined", "malformed")


def split_lines(data, name, problems):
    """Lines of one file's bytes; a missing last newline or bad UTF-8 is a
    problem."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        problems.append("%s: not valid UTF-8 (%s)" % (name, e))
        text = data.decode("utf-8", "replace")
    if text and not text.endswith("\n"):
        problems.append("%s: does not end with a newline (partial last line)" % name)
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    return lines


def parse_shimmed(data, name, row, problems):
    """[(lineno, id or None, msg)] of a shimmed log; malformed lines are
    counted (row["malformed"]) and reported, not returned."""
    fmt = harness.LineFormat("json")
    out = []
    for no, line in enumerate(split_lines(data, name, problems), 1):
        row["lines"] += 1
        try:
            rid, msg = fmt.split(line)
            if rid is not None and not harness.ID_CHARS_RE.match(rid):
                raise ValueError("id %r is not a valid id" % rid)
        except ValueError as e:
            row["malformed"] += 1
            if row["malformed"] <= 3:
                problems.append("%s line %d malformed (%s): %r" % (name, no, e, line[:200]))
            continue
        out.append((no, rid, msg))
    return out


class Judge:
    def __init__(self, reqs):
        self.reqs = [r for r in reqs if r.status is not None]
        self.by_rid = {r.rid: r for r in reqs}
        self.rows = collections.OrderedDict()
        self.problems = []
        self.examples = collections.defaultdict(list)  # label -> wrong / unjoined lines
        self.tagged_at = collections.defaultdict(collections.Counter)  # label -> place

    def row(self, label):
        if label not in self.rows:
            self.rows[label] = collections.Counter({k: 0 for k in ROW_KEYS})
        return self.rows[label]

    def note(self, label, kind, text, limit=4):
        ex = self.examples[label]
        if sum(1 for k, _ in ex if k == kind) < limit:
            ex.append((kind, text))

    def score(self, label, no, rid, want, line, req=None):
        """A joined line: want is the id it must carry (None: it must carry
        none)."""
        row = self.row(label)
        row["joined"] += 1
        if want is not None:
            row["owned"] += 1
        if rid is None:
            row["untagged"] += 1
        elif rid == want:
            row["right"] += 1
            if req is not None:
                place = ("only" if req.pos == 0 and req.last else "first" if req.pos == 0
                         else "last" if req.last else "middle")
                self.tagged_at[label][place] += 1
        else:
            row["wrong"] += 1
            owner = self.by_rid.get(rid)
            whose = ("request %d of client connection %d" % (owner.pos, owner.conn)
                     if owner is not None else "no request")
            self.note(label, "wrong", "line %d has id %r (of %s), its own is %r: %s"
                      % (no, rid, whose, want, line[:240]))

    def unjoined(self, label, no, why, line):
        self.row(label)["unjoined"] += 1
        self.note(label, "unjoined", "line %d: %s: %s" % (no, why, line[:240]))

    def check_headers(self):
        """The X-Request-ID response header: exactly the request's id."""
        bad = 0
        for r in self.reqs:
            if r.hdr_ids != [r.rid]:
                bad += 1
                if bad <= 3:
                    self.problems.append("response to %s has X-Request-ID %s" % (r.rid, r.hdr_ids))
        if bad:
            self.problems.append("%d of %d responses without exactly their X-Request-ID"
                                 % (bad, len(self.reqs)))

    def finish(self):
        for label, row in self.rows.items():
            tagged = row["right"] + row["wrong"]
            row["precision"] = row["right"] / tagged if tagged else None
            row["recall"] = row["right"] / row["owned"] if row["owned"] else None
            for key, what in (("wrong", "lines with a wrong id"),
                              ("unjoined", "lines that cannot be joined to a request"),
                              ("malformed", "malformed lines")):
                if row[key]:
                    self.problems.append("%s: %d %s" % (label, row[key], what))
        return {"rows": self.rows, "problems": self.problems, "examples": self.examples,
                "tagged_at": self.tagged_at}


def judge_nginx(files, reqs):
    """files: {"access.log", "error.log" (shimmed), "truth"} -> bytes."""
    j = Judge(reqs)
    j.check_headers()
    answered = len(j.reqs)

    # the truth: (pid, connection, n) -> request, checked against the client
    truth = {}
    conn_reqs = collections.defaultdict(list)  # (pid, conn) -> [(n, req)]
    seen_rid = set()
    tlines = split_lines(files.get("truth", b""), "truth", j.problems)
    for no, line in enumerate(tlines, 1):
        m = NGINX_TRUTH_RE.match(line)
        if not m:
            j.problems.append("truth line %d unparsed: %r" % (no, line[:200]))
            continue
        pid, conn, n, rid, status, rport = m.groups()
        key = (int(pid), int(conn), int(n))
        r = j.by_rid.get(rid)
        why = None
        if key in truth:
            why = "key %s twice" % (key,)
        elif r is None:
            why = "X-Request-ID %r of no request" % rid
        elif rid in seen_rid:
            why = "X-Request-ID %r twice" % rid
        elif r.status is None or int(status) != r.status:
            why = "status %s, the client got %s" % (status, r.status)
        elif int(rport) != r.port or key[2] != r.pos + 1:
            why = ("port %s request %d, the client sent it from port %s as request %d"
                   % (rport, key[2], r.port, r.pos + 1))
        if why:
            j.problems.append("truth line %d: %s: %r" % (no, why, line[:200]))
            continue
        truth[key] = r
        seen_rid.add(rid)
        conn_reqs[key[:2]].append((key[2], r))
    if len(tlines) != answered or len(truth) != answered:
        j.problems.append("truth log has %d lines (%d good) for %d answered requests"
                          % (len(tlines), len(truth), answered))

    # the shimmed access log
    label = "access.log"
    row = j.row(label)
    lines = parse_shimmed(files.get("access.log", b""), label, row, j.problems)
    joined = set()
    for no, rid, msg in lines:
        m = NGINX_ACCESS_RE.match(msg)
        if not m:
            j.unjoined(label, no, "not the shimmed format", msg)
            continue
        key = (int(m.group(1)), int(m.group(2)), int(m.group(3)))
        r = truth.get(key)
        if r is None:
            j.unjoined(label, no, "no truth line for %s" % (key,), msg)
            continue
        if key in joined:
            j.unjoined(label, no, "a second line for %s" % (key,), msg)
            continue
        if m.group(7) != "GET %s HTTP/1.1" % r.path or int(m.group(8)) != r.status:
            j.unjoined(label, no, "joined to %s %s (status %s): request line or status differs"
                       % (r.rid, r.path, r.status), msg)
            continue
        joined.add(key)
        j.score(label, no, rid, r.rid, msg, r)
    if row["lines"] != len(tlines):
        j.problems.append("access.log has %d lines, the truth %d (lines lost or duplicated)"
                          % (row["lines"], len(tlines)))

    # the shimmed error log: request lines (row "error.log") and the others
    rlabel, olabel = "error.log", "error.log other"
    rrow, orow = j.row(rlabel), j.row(olabel)
    scratch = collections.Counter()
    lines = parse_shimmed(files.get("error.log", b""), "error.log", scratch, j.problems)
    orow["lines"] += scratch["malformed"]
    orow["malformed"] += scratch["malformed"]
    next404 = collections.Counter()  # (pid, conn) -> its 404 lines so far
    for no, rid, msg in lines:
        m = NGINX_ERROR_RE.match(msg)
        if not m:
            orow["lines"] += 1
            j.unjoined(olabel, no, "not an nginx error-log line", msg)
            continue
        level, pid, conn, text = m.groups()
        rq = NGINX_REQUEST_RE.search(text)
        if conn is not None and rq is not None:
            # about a request: the k-th such line of a connection is its k-th 404
            rrow["lines"] += 1
            ck = (int(pid), int(conn))
            if not NGINX_NOTFOUND_RE.match(text):
                j.unjoined(rlabel, no, "a request line of an unexpected kind", msg)
                continue
            nf = sorted(((n, r) for n, r in conn_reqs.get(ck, ()) if r.status == 404),
                        key=lambda x: x[0])
            k = next404[ck]
            next404[ck] += 1
            if k >= len(nf):
                j.unjoined(rlabel, no, "more 404 lines than 404s on connection %s" % (ck,), msg)
                continue
            r = nf[k][1]
            if rq.group(1) != "GET %s HTTP/1.1" % r.path:
                j.unjoined(rlabel, no, "joined to %s %s: request differs" % (r.rid, r.path), msg)
                continue
            j.score(rlabel, no, rid, r.rid, msg, r)
            continue
        orow["lines"] += 1
        # about a connection and no request (info: "client closed keepalive
        # connection", written after the last request's response and access
        # line), or the server's own: no id
        j.score(olabel, no, rid, None, msg)
    n404 = sum(1 for r in truth.values() if r.status == 404)
    if rrow["lines"] != n404:
        j.problems.append("error.log has %d request lines for %d 404s" % (rrow["lines"], n404))
    if not n404 and not rrow["lines"]:
        del j.rows[rlabel]
    return j.finish()


def judge_by_client_port(files, reqs):
    """lighttpd and apache: files: {"access.log", "error.log"} (shimmed) ->
    bytes; the truth is the client's (port, place on the connection) ->
    X-Request-ID."""
    j = Judge(reqs)
    j.check_headers()
    by_key = {(r.port, r.pos): r for r in j.reqs}
    if len(by_key) != len(j.reqs):
        j.problems.append("the client used a local port for two connections")
    label = "access.log"
    row = j.row(label)
    joined = set()
    for no, rid, msg in parse_shimmed(files.get("access.log", b""), label, row, j.problems):
        m = PORT_PLACE_ACCESS_RE.match(msg)
        if not m:
            j.unjoined(label, no, "not the shimmed format", msg)
            continue
        key = (int(m.group(1)), int(m.group(2)))
        r = by_key.get(key)
        if r is None:
            j.unjoined(label, no, "no request sent from port %d as request %d" % key, msg)
            continue
        if key in joined:
            j.unjoined(label, no, "a second line for %s" % (key,), msg)
            continue
        if m.group(7) != "GET %s HTTP/1.1" % r.path or int(m.group(8)) != r.status:
            j.unjoined(label, no, "joined to %s %s (status %s): request line or status differs"
                       % (r.rid, r.path, r.status), msg)
            continue
        joined.add(key)
        j.score(label, no, rid, r.rid, msg, r)
    if row["lines"] != len(j.reqs):
        j.problems.append("access.log has %d lines for %d answered requests"
                          % (row["lines"], len(j.reqs)))
    # the error log: this traffic makes no request lines (no 404s); every
    # line is the server's own and must carry no id
    olabel = "error.log other"
    orow = j.row(olabel)
    scratch = collections.Counter()
    for no, rid, msg in parse_shimmed(files.get("error.log", b""), olabel, scratch, j.problems):
        j.score(olabel, no, rid, None, msg)
    orow["lines"], orow["malformed"] = scratch["lines"], scratch["malformed"]
    return j.finish()


JUDGES = {"nginx": judge_nginx, "lighttpd": judge_by_client_port,
          "apache": judge_by_client_port, "apache-prefork": judge_by_client_port}


# ---------------------------------------------------------------- one row

def run_row(row, seed, keep=False, min_recall=None):
    min_recall = row.min_recall if min_recall is None else min_recall
    rng = random.Random("%s/%d" % (row.name, seed))
    plan = make_plan(rng, row.kind, row.requests)
    reqs = [r for conn in plan for r in conn]
    base = Path(tempfile.mkdtemp(prefix="reqid-realistic-%s-" % row.name))
    srv = SERVER_CLASSES[row.server](base, servers.free_port(), row.workers, row.buffered,
                                     row.tls, *([row.proxy] if row.proxy else []))
    res = {"row": row, "tmp": str(base), "problems": [], "requests": len(reqs),
           "connections": len(plan)}
    t0 = time.monotonic()
    running = None
    load = Load(srv.port, row.concurrency, rng, row.tls, row.proxy)
    try:
        srv.prepare()
        running = servers.Running(srv)  # returns as soon as the port accepts
        load.port = srv.port
        load.run(plan)
        res["problems"] += running.stop()
    except (servers.StartError, OSError, harness.Failure) as e:
        res["problems"].append("%s: %s" % (type(e).__name__, e))
    finally:
        if running is not None and running.proc is not None and running.group_alive():
            running.kill()
    res["elapsed"] = time.monotonic() - t0
    res["max_open"], res["port_retries"] = load.open_max, load.port_retries
    if load.open_max < min(row.concurrency, len(plan)):
        res["problems"].append("only %d connections open at once, wanted %d"
                               % (load.open_max, min(row.concurrency, len(plan))))
    with open(base / "client.tsv", "w") as f:  # what the client sent and got
        f.write("id\tconnection\tplace\tport\tpath\tstatus\tresponse ids\terror\n")
        for r in reqs:
            f.write("%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n" % (
                r.rid, r.conn, r.pos, r.port, r.path, r.status,
                ",".join(r.hdr_ids or ()), r.error or ""))
    bad = [r for r in reqs if r.error or r.status is None]
    for r in bad[:5]:
        res["problems"].append("request %s %s: %s" % (r.rid, r.path, r.error or "no response"))
    if bad:
        res["problems"].append("%d/%d requests failed or got wrong responses"
                               % (len(bad), len(reqs)))
    files = {}
    for name in ("access.log", "error.log"):
        try:
            files[name] = (srv.tmp / name).read_bytes()
        except OSError as e:
            res["problems"].append("cannot read %s: %s" % (name, e))
    if row.server == "nginx":
        try:
            files["truth"] = srv.truth.read_bytes()
        except OSError as e:
            res["problems"].append("cannot read the truth log: %s" % e)
    try:  # the server's stdout/stderr: logs too (fds 1 and 2)
        cons = (srv.tmp / "console.out").read_bytes()
    except OSError:
        cons = b""
    chk = JUDGES[row.server](files, reqs)
    if cons:
        crow = collections.Counter()
        for no, rid, msg in parse_shimmed(cons, "console.out", crow, chk["problems"]):
            if rid is not None:
                chk["problems"].append("console.out line %d carries id %r: %r"
                                       % (no, rid, msg[:200]))
        if crow["malformed"]:
            chk["problems"].append("console.out: %d malformed lines" % crow["malformed"])
    own = res["problems"]
    res.update(chk)
    res["problems"] = own + chk["problems"]
    for label, r in res["rows"].items():
        floor = label in ("access.log", "error.log")
        if floor and r["recall"] is not None and r["recall"] < min_recall:
            res["problems"].append("%s: recall %.2f%% under %.2f%%"
                                   % (label, 100 * r["recall"], 100 * min_recall))
    res["ok"] = not res["problems"]
    res["kept"] = keep or not res["ok"]
    if not res["kept"]:
        shutil.rmtree(base, ignore_errors=True)
    return res


# ---------------------------------------------------------------- report

def pct(v):
    return "n/a" if v is None else "%.2f%%" % (100 * v)


HEAD = "%-9s %3s %4s %-9s %-15s %6s %6s %6s %5s %8s %9s %8s  %s" % (
    "server", "wrk", "conc", "traffic", "log", "lines", "joined", "right", "wrong", "untagged",
    "precision", "recall", "result")


def rows_of(res):
    row = res["row"]
    out = []
    for label, r in res.get("rows", {}).items():
        out.append("%-9s %3d %4d %-9s %-15s %6d %6d %6d %5d %8d %9s %8s  %s" % (
            row.label, row.workers, row.concurrency, row.kind, label, r["lines"], r["joined"],
            r["right"], r["wrong"], r["untagged"], pct(r["precision"]), pct(r["recall"]),
            "PASS" if res["ok"] else "FAIL"))
    if not res.get("rows"):
        out.append("%-9s %3d %4d %-9s %-15s  FAIL" % (row.label, row.workers, row.concurrency,
                                                     row.kind, "-"))
    return out


def details(res, out):
    out.write("%s: %s  %d requests on %d connections, %.1f s, max open %d, %s\n" % (
        res["row"].name, "PASS" if res["ok"] else "FAIL", res["requests"], res["connections"],
        res["elapsed"], res["max_open"], res["tmp"] if res.get("kept") else "removed"))
    for p in res["problems"][:20]:
        out.write("  problem: %s\n" % p)
    for label, ex in res.get("examples", {}).items():
        for kind, text in ex:
            out.write("  %s %s: %s\n" % (label, kind, text))
    for label, places in res.get("tagged_at", {}).items():
        if places:
            out.write("  %s: right ids by the request's place on its connection: %s\n" % (
                label, ", ".join("%s %d" % kv for kv in sorted(places.items()))))


def select_rows(spec=None, servers_wanted=None):
    rows = ROWS
    if servers_wanted is not None:
        rows = [r for r in rows if r.server in servers_wanted]
    if spec:
        names = [s for s in spec.split(",") if s]
        def hit(r, n):
            return r.name == n or r.name.startswith(n + "-")
        unknown = [n for n in names if not any(hit(r, n) for r in ROWS)]
        if unknown:
            raise ValueError("unknown rows %s (rows: %s)"
                             % (unknown, ", ".join(r.name for r in ROWS)))
        rows = [r for r in rows if any(hit(r, n) for n in names)]
    return rows


def run_suite(rows, seed, keep=False, min_recall=None, out=sys.stdout):
    """Runs rows, prints the table and the details; returns the results.
    min_recall: one floor for every row instead of each row's own."""
    floor = ("each row's own (%.0f%%, none for buffered access logs)"
             % (100 * REALISTIC_MIN_RECALL) if min_recall is None else "%.2f%%" % (100 * min_recall))
    out.write("realistic traffic: one URL, own X-Request-ID per request, seed %d, "
              "recall floor %s\n" % (seed, floor))
    out.write(HEAD + "\n" + "-" * len(HEAD) + "\n")
    results = []
    for row in rows:
        res = run_row(row, seed, keep=keep, min_recall=min_recall)
        results.append(res)
        for line in rows_of(res):
            out.write(line + "\n")
        out.flush()
    out.write("\n")
    for res in results:
        details(res, out)
    return results


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rows", default="",
                    help="comma-separated row name prefixes, e.g. nginx-w2,lighttpd")
    ap.add_argument("--seed", type=int, default=None)
    ap.add_argument("--keep", action="store_true", help="keep every row's temp dir")
    ap.add_argument("--min-recall", type=float, default=None,
                    help="one recall floor for every row (default: each row's own)")
    a = ap.parse_args(argv)
    try:
        rows = select_rows(a.rows)
    except ValueError as e:
        ap.error(str(e))
    lib = Path(os.environ.get("REQID_LIB", servers.LIBREQID))
    missing = servers.missing_binaries(sorted({r.server for r in rows}))
    if not lib.exists():
        missing.append("%s (make build/libreqid.so)" % lib)
    if missing:
        print("missing: " + ", ".join(missing))
        print("0 passed, %d failed" % len(rows))
        return 1
    seed = a.seed if a.seed is not None else random.randrange(1 << 30)
    t0 = time.monotonic()
    results = run_suite(rows, seed, keep=a.keep, min_recall=a.min_recall)
    failed = [r for r in results if not r["ok"]]
    print("\ntotal %.1f s" % (time.monotonic() - t0))
    print("%d passed, %d failed" % (len(results) - len(failed), len(failed)))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
