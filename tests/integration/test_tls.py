#!/usr/bin/env python3
"""test_tls.py - request ids inside TLS: python3 http.server wrapped in ssl
(tests/integration/tls_service.py) under `scripts/reqid run`, driven over
keep-alive HTTPS connections.

The certificate is made at run time (`openssl req -x509`) in a temporary
directory, removed at the end with everything else the run wrote there;
no key is ever part of the tree. The service binds 127.0.0.1 port 0 and
reports its port through a pipe; it is killed at the end.

Load: CONNS connections, WORKERS at once, each 2-6 keep-alive requests
(http.client over ssl, certificate not verified). Most requests ask for the
same URL; each names itself in X-Test-Token. What each sends decides the id
the shim must use:
  xrid         a valid X-Request-ID: that value
  traceparent  a valid traceparent only: its trace id
  invalid      an X-Request-ID the shim must refuse: a generated id
  none         nothing: a generated id
a fifth of them are POSTs whose body is a fake request with its own
X-Request-ID. Half of the requests carry a valid X-Request-ID.

Checks, in the shim run:
  - every response is 200 with exactly the service's body;
  - every response carries exactly one X-Request-ID, the expected value, or
    for a generated id 32 lowercase hex digits, distinct for every request;
  - the service's stderr has exactly one "served token=T" line per request
    and no other line; a line's request_id must be its request's id (the
    response's for generated ones): precision must be 100%, recall (lines
    with their request's id) is reported and must be at least MIN_RECALL;
  - the ground-truth file (written by the handler itself, untouched by the
    shim) has exactly one line per request, with the X-Request-ID it sent.
A bare run (no shim) of the same service checks the model: bodies
identical, no X-Request-ID in any response, lines without ids. The
service runs on this interpreter and on Debian's /usr/bin/python3 when
that is another one (both load libssl privately, out of dlsym(RTLD_NEXT)'s
reach).

Then nginx (tests/realservers/servers.py's configuration, its listening
socket with `ssl` and sndbuf=4096, certificate made the same way, under
`reqid run --log-path '<tmp>/*.log'`, stopped with SIGQUIT): 1-5
keep-alive requests per connection for files of 0 to 300 KB (a tenth
missing: 404), half with X-Request-ID, a third of the connections reading
slowly through an 8 KiB receive buffer, so that nginx's non-blocking
SSL_write calls fail with WANT_WRITE and are retried. Every response must
carry exactly the right X-Request-ID and a body identical to the file;
access.log must have exactly one line per request; every line with an id
(access.log and error.log) must name its request: precision 100%, recall
on access.log at least MIN_RECALL.

Then lighttpd with mod_openssl (the same traffic; tests/realservers'
configuration, --event-brackets), twice: with HTTP/2 offered by ALPN
(lighttpd's default) and refused. Each run also sends H2_TOKENS requests
with `curl --http2` (which offers h2): with h2 on they must come back as
HTTP/2 without X-Request-ID (an h2 connection is left alone) and their
access-log lines (and the preface's) without an id; with h2 refused they
are HTTP/1.1 requests like the others. Every X-Request-ID right, bodies
exact, every access-log line present, precision 100%, recall (access-log
lines of HTTP/1.1 requests with their id) at least MIN_RECALL. This
kernel has no kernel TLS (no "tls" in tcp_available_ulp): lighttpd's kTLS
is not exercised.

Then two servers whose TLS the shim does not see, under it, GETs of the
same plan: asyncio (asyncio_tls_service.py: TLS in memory BIOs, no socket
under the SSL calls) and node (node_tls_service.js: OpenSSL inside node;
skipped, said so, without node), and Go (go_tls_service.go, built by the
test: crypto/tls, system calls made by the Go runtime; skipped without
go): every response unchanged (no header added), one line per request,
none with an id (Go's lines come out as written: its writes bypass libc).

Then outbound HTTPS (the client side): the same service under the shim,
given --downstream, calls a TLS capture server in this script (unshimmed)
for most requests: python's http.client twice on the handler thread's
keep-alive connection (a GET, and a POST whose body holds a fake head), or
`curl -sk --http1.1` (an exec'ed program: its id comes through the
environment). A bare run gives each downstream request's exact bytes.
In the shim run every downstream request must be the bare one with
exactly two lines added at the end of its head, "traceparent:
00-T-P-F" and "X-Request-ID: I", where I is its inbound request's id
(the one its response carried), T the same for every call of one inbound
request, different for each, and the inbound traceparent's trace id when
one came, P never repeated, F the inbound flags (01) when a traceparent
came, else 03 (sampled, random trace id); bodies identical.

Exit status 0 when every run passes.

    python3 tests/integration/test_tls.py
"""

import http.client
import os
import random
import re
import shutil
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "realservers"))
import harness  # noqa: E402
import servers  # noqa: E402
from harness import LineFormat, make_cert, run_groups  # noqa: E402

SERVICE = Path(__file__).resolve().parent / "tls_service.py"
LOG_DIR = harness.LOG_DIR
CONNS = 60
WORKERS = 8
MIN_RECALL = 0.99
TIMEOUT = 30.0
GEN_RE = re.compile(r"^[0-9a-f]{32}$")
SERVED_RE = re.compile(r"^served token=(\w+)$")


def service(python, cert, key, truth, log_path, shim=True):
    """tls_service.py under the shim (or bare), stderr to log_path."""
    return harness.Server("tls_service", log_path, shim=shim,
                          command=[python, SERVICE, "--cert", cert, "--key", key,
                                   "--truth", truth])


class Req:
    def __init__(self, rng, token):
        self.token = token
        self.kind = rng.choices(("xrid", "traceparent", "invalid", "none"), (50, 20, 10, 20))[0]
        self.headers = {"X-Test-Token": token}
        tp = "00-%032x-%016x-01" % (rng.getrandbits(128) | 1, rng.getrandbits(64) | 1)
        if self.kind == "xrid":
            self.headers["X-Request-ID"] = "tls-" + token
            self.expected = "tls-" + token
        elif self.kind == "traceparent":
            self.headers["traceparent"] = tp
            self.expected = tp[3:35]
        elif self.kind == "invalid":
            self.headers["X-Request-ID"] = 'bad id"' + token
            self.expected = None  # generated
        else:
            self.expected = None
        self.path = "/same" if rng.random() < 0.7 else "/item/" + token
        if rng.random() < 0.2:
            self.method = "POST"
            self.body = b"GET /same HTTP/1.1\r\nX-Request-ID: evil-" + token.encode() + b"\r\n\r\n"
        else:
            self.method, self.body = "GET", None
        self.status = self.response_ids = self.response_body = self.error = None


def make_plan(seed):
    rng = random.Random(seed)
    prefix = "".join(rng.choice("ABCDEFGHJKLMNPQRSTUVWXYZ") for _ in range(4))
    conns, n = [], 0
    for _ in range(CONNS):
        conn = []
        for _ in range(rng.randint(2, 6)):
            conn.append(Req(rng, "%s%05d" % (prefix, n)))
            n += 1
        conns.append(conn)
    return conns


def body_for(token):
    digits = "".join(c for c in token if c.isdigit())[-2:] or "0"
    return b"token %s\n" % token.encode() + b"x" * (int(digits) * 37)


def log_lines(path, label, failures, fmt=LineFormat("json")):
    """(line number, request id or None, message) of each line of a log;
    a line that does not parse is a failure."""
    for no, line in enumerate(path.read_text(errors="replace").splitlines(), 1):
        try:
            rid, msg = fmt.split(line)
        except ValueError as e:
            failures.append("%s:%d malformed (%s): %r" % (label, no, e, line[:200]))
            continue
        yield no, rid, msg


def drive(port, conns):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE

    def one(conn):
        c = http.client.HTTPSConnection("127.0.0.1", port, timeout=TIMEOUT, context=ctx)
        try:
            for r in conn:
                c.request(r.method, r.path, body=r.body, headers=r.headers)
                resp = c.getresponse()
                r.status = resp.status
                r.response_ids = resp.headers.get_all("X-Request-ID") or []
                r.response_body = resp.read()
        except (OSError, http.client.HTTPException) as e:
            for r in conn:
                if r.status is None:
                    r.error = repr(e)
        finally:
            c.close()

    with ThreadPoolExecutor(WORKERS) as pool:
        list(pool.map(one, conns))


def check_run(name, python, tmp, seed, shim, failures):
    cert, key = make_cert(tmp)
    truth = tmp / ("truth-%s.log" % name)
    log = LOG_DIR / ("tls-%s.log" % name)
    conns = make_plan(seed)
    reqs = [r for conn in conns for r in conn]
    svc = service(python, cert, key, truth, log, shim=shim)
    try:
        drive(svc.port, conns)
    finally:
        svc.kill()

    # responses
    ids, generated = {}, set()
    for r in reqs:
        if r.error or r.status != 200:
            failures.append("%s: token %s: %s" % (name, r.token, r.error or r.status))
            continue
        if r.response_body != body_for(r.token):
            failures.append("%s: token %s: body differs (%d bytes)"
                            % (name, r.token, len(r.response_body)))
        if not shim:
            if r.response_ids:
                failures.append("%s: token %s: X-Request-ID without the shim" % (name, r.token))
            continue
        if len(r.response_ids) != 1:
            failures.append("%s: token %s: %d X-Request-ID headers"
                            % (name, r.token, len(r.response_ids)))
            continue
        got = r.response_ids[0]
        if r.expected is None:
            if not GEN_RE.match(got) or got in generated:
                failures.append("%s: token %s: generated id %r bad or repeated"
                                % (name, r.token, got))
            generated.add(got)
        elif got != r.expected:
            failures.append("%s: token %s (%s): response id %r, want %r"
                            % (name, r.token, r.kind, got, r.expected))
        ids[r.token] = r.expected or got

    # ground truth: the handler's own file
    want_truth = sorted("token=%s xrid=%s" % (r.token, r.headers.get("X-Request-ID", "-"))
                        for r in reqs)
    got_truth = sorted(truth.read_text().splitlines())
    if got_truth != want_truth:
        failures.append("%s: ground-truth file: %d lines, want %d (or they differ)"
                        % (name, len(got_truth), len(want_truth)))

    # the log
    fmt = LineFormat("json") if shim else LineFormat("plain")
    seen, tagged, right = {}, 0, 0
    for no, rid, msg in log_lines(log, "%s: %s" % (name, log), failures, fmt):
        m = SERVED_RE.match(msg)
        if not m:
            failures.append("%s: %s:%d unexpected line: %r" % (name, log, no, msg[:200]))
            continue
        token = m.group(1)
        seen[token] = seen.get(token, 0) + 1
        if rid is None:
            continue
        tagged += 1
        if shim and rid == ids.get(token):
            right += 1
        elif len(failures) < 40:
            failures.append("%s: %s:%d token %s has id %r, want %r"
                            % (name, log, no, token, rid, ids.get(token)))
    for r in reqs:
        if seen.get(r.token) != 1:
            failures.append("%s: token %s: %d log lines, want 1"
                            % (name, r.token, seen.get(r.token, 0)))
    lines = sum(seen.values())
    precision = right / tagged if tagged else 1.0
    recall = right / lines if lines else 0.0
    print("%s: %d requests on %d connections, %d lines, %d with an id: "
          "precision %.2f%%, recall %.2f%%"
          % (name, len(reqs), len(conns), lines, tagged, 100 * precision, 100 * recall))
    if shim and recall < MIN_RECALL:
        failures.append("%s: recall %.2f%% below %.0f%%" % (name, 100 * recall, 100 * MIN_RECALL))
    if not shim and tagged:
        failures.append("%s: %d lines with an id without the shim" % (name, tagged))


# ---------------------------------------------------------------- nginx

NGINX_CONNS = 50
NGINX_WORKERS = 8


class NginxTLS(servers.Nginx):
    """nginx with `ssl` on its listening socket and a 4 KiB send buffer
    (sndbuf=4096): its writes of large responses to slow readers stop
    halfway (SSL_write fails with WANT_WRITE and is retried when the socket
    can take more)."""
    name = "nginx-tls"

    def write_config(self):
        super().write_config()
        conf = self.tmp / "nginx.conf"
        conf.write_text(conf.read_text().replace(
            "listen 127.0.0.1:%d;" % self.port,
            "listen 127.0.0.1:%d ssl sndbuf=4096;\n"
            "        ssl_certificate %s;\n        ssl_certificate_key %s;"
            % (self.port, self.tmp / "cert.pem", self.tmp / "key.pem")))


class NReq:
    def __init__(self, rng, token):
        self.token = token
        self.size = rng.choice((0, 10, 700, 5000, 40000, 150000, 300000))
        self.missing = rng.random() < 0.1
        self.cid = rng.random() < 0.5
        self.slow = rng.random() < 0.3
        self.status = self.ids = self.body = self.error = None

    def raw(self, port):
        head = "GET /req/%s HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n" % (self.token, port)
        if self.cid:
            head += "X-Request-ID: tls-%s\r\n" % self.token
        return (head + "\r\n").encode()

    def content(self):
        unit = ("%s " % self.token).encode()
        return (unit * (self.size // len(unit) + 1))[:self.size]


def read_exactly(sock, buf, n, slow):
    while len(buf) < n:
        chunk = sock.recv(1024 if slow else 65536)
        if not chunk:
            raise OSError("connection closed")
        buf += chunk
        if slow:
            time.sleep(0.001)
    return buf


def read_response(sock, buf, slow):
    """(status, [(name, value)], body, rest of buf)."""
    while b"\r\n\r\n" not in buf:
        chunk = sock.recv(4096)
        if not chunk:
            raise OSError("connection closed inside a head")
        buf += chunk
    head, _, buf = buf.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = [tuple(s.strip() for s in l.split(":", 1)) for l in lines[1:]]
    length = [int(v) for k, v in headers if k.lower() == "content-length"]
    if len(length) != 1:
        raise OSError("no single Content-Length in %r" % head[:200])
    buf = read_exactly(sock, buf, length[0], slow)
    return status, headers, buf[:length[0]], buf[length[0]:]


def drive_nginx(port, conns):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE

    def one(conn):
        raw = socket.socket()
        raw.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8192)
        raw.settimeout(TIMEOUT)
        try:
            raw.connect(("127.0.0.1", port))
            with ctx.wrap_socket(raw) as s:
                buf = b""
                for r in conn:
                    s.sendall(r.raw(port))
                    r.status, headers, r.body, buf = read_response(s, buf, r.slow)
                    r.ids = [v for k, v in headers if k.lower() == "x-request-id"]
        except OSError as e:
            for r in conn:
                if r.status is None:
                    r.error = repr(e)
        finally:
            raw.close()

    with ThreadPoolExecutor(NGINX_WORKERS) as pool:
        list(pool.map(one, conns))


def check_nginx(tmp, seed, failures):
    if not shutil.which("nginx", path=os.environ.get("PATH", "") + ":/usr/sbin:/sbin"):
        failures.append("nginx missing (apt-get install -y nginx)")
        return
    rng = random.Random(seed)
    prefix = "".join(rng.choice("ABCDEFGHJKLMNPQRSTUVWXYZ") for _ in range(4))
    ntmp = tmp / "nginx"
    ntmp.mkdir()
    cert, key = make_cert(ntmp)
    conns, n = [], 0
    for _ in range(NGINX_CONNS):
        conns.append([NReq(rng, "%s%05d" % (prefix, n + j)) for j in range(rng.randint(1, 5))])
        n += len(conns[-1])
    reqs = [r for c in conns for r in c]
    srv = NginxTLS(ntmp, servers.free_port())
    (srv.root / "req").mkdir(parents=True)
    for r in reqs:
        if not r.missing:
            (srv.root / "req" / r.token).write_bytes(r.content())
    srv.write_config()
    running = servers.Running(srv)
    try:
        drive_nginx(srv.port, conns)
    finally:
        failures.extend("nginx: " + p for p in running.stop())
    for name in ("access.log", "error.log"):
        shutil.copy(ntmp / name, LOG_DIR / ("tls-nginx-" + name))

    ids, generated = {}, set()
    for r in reqs:
        want_status = 404 if r.missing else 200
        if r.error or r.status != want_status:
            failures.append("nginx: token %s: %s" % (r.token, r.error or r.status))
            continue
        if not r.missing and r.body != r.content():
            failures.append("nginx: token %s: body differs (%d bytes, want %d)"
                            % (r.token, len(r.body), r.size))
        if len(r.ids) != 1:
            failures.append("nginx: token %s: %d X-Request-ID headers" % (r.token, len(r.ids)))
            continue
        want = "tls-" + r.token if r.cid else None
        if want is None and (not GEN_RE.match(r.ids[0]) or r.ids[0] in generated):
            failures.append("nginx: token %s: generated id %r bad or repeated"
                            % (r.token, r.ids[0]))
        elif want is not None and r.ids[0] != want:
            failures.append("nginx: token %s: response id %r, want %r" % (r.token, r.ids[0], want))
        generated.add(r.ids[0])
        ids[r.token] = r.ids[0]

    token_re = re.compile(r"/req/(%s\d{5})\b" % prefix)
    lines = tagged = right = right_access = 0
    seen = {}
    for name in ("access.log", "error.log"):
        for no, rid, msg in log_lines(ntmp / name, "nginx: " + name, failures):
            m = token_re.search(msg)
            if name == "access.log":
                if not m:
                    failures.append("nginx: access.log:%d no token: %r" % (no, msg[:200]))
                    continue
                seen[m.group(1)] = seen.get(m.group(1), 0) + 1
                lines += 1
            if rid is None:
                continue
            tagged += 1
            if m and rid == ids.get(m.group(1)):
                right += 1
                right_access += name == "access.log"
            elif len(failures) < 40:
                failures.append("nginx: %s:%d id %r, want %r: %r"
                                % (name, no, rid, m and ids.get(m.group(1)), msg[:200]))
    for r in reqs:
        if seen.get(r.token) != 1:
            failures.append("nginx: token %s: %d access.log lines, want 1"
                            % (r.token, seen.get(r.token, 0)))
    precision = right / tagged if tagged else 1.0
    recall = right_access / lines if lines else 0.0
    print("nginx-tls: %d requests on %d connections, %d access.log lines, %d lines with an id: "
          "precision %.2f%%, recall %.2f%%"
          % (len(reqs), len(conns), lines, tagged, 100 * precision, 100 * recall))
    if recall < MIN_RECALL:
        failures.append("nginx: recall %.2f%% below %.0f%%" % (100 * recall, 100 * MIN_RECALL))


# ---------------------------------------------------------------- lighttpd

LIGHTTPD_CONNS = 40
H2_TOKENS = 6


class LighttpdTLS(servers.Lighttpd):
    """lighttpd with mod_openssl on its listening socket; HTTP/2 offered by
    ALPN (lighttpd's default) or refused (h2=False)."""

    def __init__(self, tmp, port, h2):
        super().__init__(tmp, port)
        self.h2 = h2
        self.name = "lighttpd-tls" + ("" if h2 else "-no-h2")

    def write_config(self):
        super().write_config()
        conf = self.tmp / "lighttpd.conf"
        conf.write_text(conf.read_text().replace(
            'server.modules = ("mod_accesslog")',
            'server.modules = ("mod_accesslog", "mod_openssl")') +
            'ssl.engine = "enable"\nssl.pemfile = "%s"\nssl.privkey = "%s"\n'
            'server.feature-flags = ("server.h2proto" => "%s")\n'
            % (self.tmp / "cert.pem", self.tmp / "key.pem", "enable" if self.h2 else "disable"))


def curl_h2(port, token):
    """(HTTP version, X-Request-ID values, body) of a curl request that offers
    h2 by ALPN."""
    r = subprocess.run(["curl", "-sk", "--http2", "-D", "-", "-o", "-", "-H",
                        "X-Request-ID: tls-" + token,
                        "https://127.0.0.1:%d/req/%s" % (port, token)],
                       capture_output=True, timeout=TIMEOUT)
    head, _, body = r.stdout.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    ids = [l.split(":", 1)[1].strip() for l in lines[1:] if l.lower().startswith("x-request-id:")]
    return lines[0].split(" ")[0], ids, body


def open_h2(port):
    """A TLS connection that chose h2 by ALPN and sent its preface and an
    empty SETTINGS frame, once the server read them (its SETTINGS came)."""
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    ctx.set_alpn_protocols(["h2"])
    sock = ctx.wrap_socket(socket.create_connection(("127.0.0.1", port), TIMEOUT))
    if sock.selected_alpn_protocol() != "h2":
        raise RuntimeError("ALPN chose %r" % sock.selected_alpn_protocol())
    sock.sendall(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + bytes([0, 0, 0, 4, 0, 0, 0, 0, 0]))
    sock.recv(9)
    return sock


def check_lighttpd(tmp, seed, h2, failures):
    name = "lighttpd-tls" + ("" if h2 else "-no-h2")
    if not shutil.which("lighttpd", path=os.environ.get("PATH", "") + ":/usr/sbin:/sbin"):
        failures.append("lighttpd missing (apt-get install -y lighttpd lighttpd-mod-openssl)")
        return
    rng = random.Random(seed)
    prefix = "".join(rng.choice("ABCDEFGHJKLMNPQRSTUVWXYZ") for _ in range(4))
    ltmp = tmp / name
    ltmp.mkdir()
    make_cert(ltmp)
    conns, n = [], 0
    for _ in range(LIGHTTPD_CONNS):
        conns.append([NReq(rng, "%s%05d" % (prefix, n + j)) for j in range(rng.randint(1, 5))])
        n += len(conns[-1])
    reqs = [r for c in conns for r in c]
    for r in reqs:
        r.missing = False  # no 404s: every error-log line is the server's own
    h2_tokens = ["%s%05d" % (prefix, n + j) for j in range(H2_TOKENS)]
    srv = LighttpdTLS(ltmp, servers.free_port(), h2)
    (srv.root / "req").mkdir(parents=True)
    for r in reqs:
        (srv.root / "req" / r.token).write_bytes(r.content())
    for t in h2_tokens:
        (srv.root / "req" / t).write_bytes(t.encode())
    srv.write_config()
    running = servers.Running(srv)
    h2_results = {}
    try:
        # An HTTP/2 connection open the whole time: its requests have no
        # HTTP/1 request line, so the access lines lighttpd's event loop
        # writes are still named by theirs.
        idle_h2 = open_h2(srv.port) if h2 else None
        drive_nginx(srv.port, conns)
        if idle_h2:
            idle_h2.close()
        for t in h2_tokens:
            h2_results[t] = curl_h2(srv.port, t)
        if not running.wait_connections_closed():
            failures.append("%s: connections still open 10 s after the clients closed theirs"
                            % name)
    finally:
        failures.extend("%s: %s" % (name, p) for p in running.stop())
    for f in ("access.log", "error.log"):
        shutil.copy(ltmp / f, LOG_DIR / ("tls-%s-%s" % (name, f)))

    ids = {}
    for r in reqs:
        if r.error or r.status != 200 or r.body != r.content() or len(r.ids) != 1:
            failures.append("%s: token %s: %s, %d X-Request-ID" % (name, r.token,
                            r.error or r.status, len(r.ids or [])))
            continue
        if r.cid and r.ids[0] != "tls-" + r.token:
            failures.append("%s: token %s: response id %r" % (name, r.token, r.ids[0]))
        ids[r.token] = r.ids[0]
    for t, (version, hdr_ids, body) in h2_results.items():
        want_version = "HTTP/2" if h2 else "HTTP/1.1"
        want_ids = [] if h2 else ["tls-" + t]
        if (version, hdr_ids, body) != (want_version, want_ids, t.encode()):
            failures.append("%s: curl --http2 token %s: %s, X-Request-ID %r, body %r; want %s, %r"
                            % (name, t, version, hdr_ids, body[:40], want_version, want_ids))
        if not h2:
            ids[t] = "tls-" + t

    token_re = re.compile(r"/req/(%s\d{5})\b" % prefix)
    lines = tagged = right = 0
    for f in ("access.log", "error.log"):
        for no, rid, msg in log_lines(ltmp / f, "%s: %s" % (name, f), failures):
            m = token_re.search(msg)
            if f == "access.log":
                lines += 1
            if rid is None:
                continue
            tagged += 1
            if f == "access.log" and m and rid == ids.get(m.group(1)):
                right += 1
            else:
                failures.append("%s: %s:%d id %r, want %r: %r"
                                % (name, f, no, rid, m and ids.get(m.group(1)), msg[:200]))
    # an h2 connection's own line too: lighttpd logs its preface ("PRI * HTTP/2.0"),
    # the idle one's included
    want_lines = len(reqs) + (len(h2_tokens) * 2 + 1 if h2 else len(h2_tokens))
    if lines != want_lines:
        failures.append("%s: access.log has %d lines, want %d" % (name, lines, want_lines))
    recall = right / len(ids) if ids else 0.0
    print("%s: %d requests on %d connections and %d by curl --http2 (%s), %d access.log lines, "
          "%d with an id: precision %.2f%%, recall %.2f%%"
          % (name, len(reqs), len(conns), len(h2_tokens), "h2" if h2 else "HTTP/1.1",
             lines, tagged, 100 * (right / tagged if tagged else 1.0), 100 * recall))
    if recall < MIN_RECALL:
        failures.append("%s: recall %.2f%% below %.0f%%" % (name, 100 * recall, 100 * MIN_RECALL))


# ---------------------------------------------------- TLS the shim cannot see

ASYNCIO_SERVICE = Path(__file__).resolve().parent / "asyncio_tls_service.py"
NODE_SERVICE = Path(__file__).resolve().parent / "node_tls_service.js"


def check_unseen(name, what, command, tmp, seed, failures, fmt=LineFormat("json")):
    """A server whose TLS the shim does not see (memory BIOs, OpenSSL inside
    the program, Go's own): it must add nothing, tag nothing, change nothing.
    command: argv before --cert C --key K; fmt: how its log lines come out
    (plain for a program whose writes do not go through libc)."""
    utmp = tmp / name
    utmp.mkdir()
    cert, key = make_cert(utmp)
    conns = make_plan(seed)
    reqs = [r for conn in conns for r in conn]
    for r in reqs:
        r.method, r.body = "GET", None
    log = LOG_DIR / ("tls-%s.log" % name)
    svc = harness.Server(name, log, command=command + ["--cert", cert, "--key", key])
    try:
        drive(svc.port, conns)
    finally:
        svc.kill()
    for r in reqs:
        if r.error or r.status != 200 or r.response_body != b"token %s\n" % r.token.encode():
            failures.append("%s: token %s: %s %r" % (name, r.token, r.error or r.status,
                                                     r.response_body))
        elif r.response_ids:
            failures.append("%s: token %s: X-Request-ID %r added" % (name, r.token,
                                                                   r.response_ids))
    served = []
    for no, rid, msg in log_lines(log, "%s: %s" % (name, log), failures, fmt):
        m = SERVED_RE.match(msg)
        if rid is not None or not m:
            failures.append("%s: %s:%d id %r: %r" % (name, log, no, rid, msg[:200]))
        else:
            served.append(m.group(1))
    if sorted(served) != sorted(r.token for r in reqs):
        failures.append("%s: %d lines, want one per request (%d)" % (name, len(served), len(reqs)))
    print("%s (%s): %d requests on %d connections answered unchanged, %d lines, none with an id"
          % (name, what, len(reqs), len(conns), len(served)))


GO_SERVICE = Path(__file__).resolve().parent / "go_tls_service.go"


def check_go(tmp, seed, failures):
    """Go's own TLS (crypto/tls, system calls not through libc), the
    program built here."""
    gtmp = tmp / "go-build"
    gtmp.mkdir()
    binary = gtmp / "go_tls_service"
    r = subprocess.run(["go", "build", "-o", str(binary), str(GO_SERVICE)], capture_output=True,
                       text=True, env=dict(os.environ, HOME=str(gtmp), GOCACHE=str(gtmp / "cache"),
                                           GOPATH=str(gtmp / "path")))
    if r.returncode != 0:
        failures.append("go-tls: go build failed: %s" % r.stderr[-500:])
        return
    # Go writes its lines with its own system calls: they stay as written
    check_unseen("go-tls", "Go's crypto/tls", [binary], tmp, seed, failures,
                 LineFormat("plain"))


# ---------------------------------------------------------------- outbound

DOWN_BODY = b"GET /fake HTTP/1.1\r\nX-Request-ID: fake\r\n\r\n"
TRACEPARENT_RE = re.compile(rb"^traceparent: 00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$")
HOST_RE = re.compile(rb"\r\nHost: 127\.0\.0\.1:\d+")


class Capture:
    """The downstream: a TLS server in this process (not under the shim)
    keeping each request's head and body by its path; answers 200 "ok",
    keep-alive."""

    def __init__(self, cert, key):
        self.ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.ctx.load_cert_chain(cert, key)
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.port = self.sock.getsockname()[1]
        self.got, self.errors = {}, []
        self.lock = threading.Lock()
        threading.Thread(target=self.accept_loop, daemon=True).start()

    def accept_loop(self):
        while True:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self.serve, args=(c,), daemon=True).start()

    def serve(self, c):
        buf = b""
        try:
            s = self.ctx.wrap_socket(c, server_side=True)
            while True:
                while b"\r\n\r\n" not in buf:
                    data = s.recv(65536)
                    if not data:
                        if buf:
                            raise OSError("closed inside a head")
                        return
                    buf += data
                head, _, buf = buf.partition(b"\r\n\r\n")
                m = re.search(rb"\r\ncontent-length: *(\d+)", head, re.I)
                n = int(m.group(1)) if m else 0
                while len(buf) < n:
                    data = s.recv(65536)
                    if not data:
                        raise OSError("closed inside a body")
                    buf += data
                body, buf = buf[:n], buf[n:]
                with self.lock:
                    self.got.setdefault(head.split(b" ")[1].decode(), []).append((head, body))
                s.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
        except (OSError, ssl.SSLError) as e:
            if buf or not isinstance(e, (ssl.SSLEOFError, ConnectionResetError)):
                self.errors.append(repr(e))
        finally:
            c.close()


def outbound_plan(seed):
    conns = make_plan(seed)
    rng = random.Random(seed)
    for r in (r for conn in conns for r in conn):
        r.call = rng.choices((None, "python", "curl"), (40, 52, 8))[0]
        if r.call:
            r.headers["X-Test-Call"] = r.call
    return conns


def outbound_run(python, tmp, cert, key, seed, shim):
    """(requests, capture) of one run of the service calling a capture."""
    name = "outbound-" + ("shim" if shim else "bare")
    conns = outbound_plan(seed)
    cap = Capture(cert, key)
    svc = harness.Server("tls_service", LOG_DIR / ("tls-%s.log" % name), shim=shim,
                         command=[python, SERVICE, "--cert", cert, "--key", key, "--truth",
                                  tmp / ("truth-%s.log" % name), "--downstream", str(cap.port)])
    try:
        drive(svc.port, conns)
    finally:
        svc.kill()
        cap.sock.close()
    return [r for conn in conns for r in conn], cap


def check_outbound(python, tmp, seed, failures):
    if not shutil.which("curl"):
        failures.append("curl missing (apt-get install -y curl)")
        return
    otmp = tmp / "outbound"
    otmp.mkdir()
    cert, key = make_cert(otmp)
    runs = {shim: outbound_run(python, otmp, cert, key, seed, shim) for shim in (False, True)}
    want_paths = {}
    for r in runs[False][0]:
        if r.call:
            want_paths["/down/%s/1" % r.token] = r
        if r.call == "python":
            want_paths["/down/%s/2" % r.token] = r
    bare = {}
    for shim, (reqs, cap) in runs.items():
        name = "outbound-" + ("shim" if shim else "bare")
        failures.extend("%s: capture: %s" % (name, e) for e in cap.errors[:5])
        failures.extend("%s: token %s: %s" % (name, r.token, r.error or r.status)
                        for r in reqs if r.error or r.status != 200)
        if set(cap.got) != set(want_paths) or any(len(v) != 1 for v in cap.got.values()):
            failures.append("%s: %d downstream paths (%d requests), want %d, one each"
                            % (name, len(cap.got), sum(map(len, cap.got.values())),
                               len(want_paths)))
            return
        for path, [(head, body)] in sorted(cap.got.items()):
            if body != (DOWN_BODY if path.endswith("/2") else b""):
                failures.append("%s: %s: body %r" % (name, path, body[:80]))
            if not shim:
                if re.search(rb"\r\n(traceparent|tracestate|x-request-id):", head, re.I):
                    failures.append("bare: %s carries trace headers: %r" % (path, head))
                bare[path] = HOST_RE.sub(b"\r\nHost: -", head)
    reqs, cap = runs[True]
    by_token = {r.token: r for r in reqs}
    traces, parents, added = {}, set(), 0
    for path, [(head, body)] in sorted(cap.got.items()):
        r = by_token[path.split("/")[2]]
        lines = HOST_RE.sub(b"\r\nHost: -", head).split(b"\r\n")
        want_id = (r.response_ids or [None])[0]
        m = TRACEPARENT_RE.match(lines[-2]) if len(lines) > 2 else None
        if (not m or lines[-1] != b"X-Request-ID: " + (want_id or "?").encode() or
                b"\r\n".join(lines[:-2]) != bare[path]):
            failures.append("shim: %s (token %s, %s, id %s): %r, bare %r"
                            % (path, r.token, r.call, want_id, head, bare[path]))
            continue
        added += 1
        trace, parent, flags = m.group(1).decode(), m.group(2), m.group(3)
        if r.kind == "traceparent" and (trace, flags) != (r.expected, b"01"):
            failures.append("shim: %s: trace id %s flags %s, the inbound one is %s, 01"
                            % (path, trace, flags.decode(), r.expected))
        elif r.kind != "traceparent" and flags != b"03":
            failures.append("shim: %s: flags %s for a new trace, want 03 (sampled, random)"
                            % (path, flags.decode()))
        if traces.setdefault(r.token, trace) != trace:
            failures.append("shim: %s: trace id %s, another call of its request had %s"
                            % (path, trace, traces[r.token]))
        if parent in parents:
            failures.append("shim: %s: parent id %s repeated" % (path, parent.decode()))
        parents.add(parent)
    if len(set(traces.values())) != len(traces):
        failures.append("shim: two inbound requests share a trace id downstream")
    calls = [r.call for r in reqs if r.call]
    print("outbound-tls: %d downstream requests over TLS (%d inbound requests calling with "
          "http.client, %d with curl), %d with exactly their request's traceparent and "
          "X-Request-ID and otherwise the bare bytes"
          % (len(cap.got), calls.count("python"), calls.count("curl"), added))


def main():
    if not shutil.which("openssl"):
        raise SystemExit("openssl missing (Debian package openssl)")
    if not (harness.REQID.exists() and harness.LIBREQID.exists()):
        raise SystemExit("build the shim first: make")
    pythons = [sys.executable]
    debian = "/usr/bin/python3"
    if os.access(debian, os.X_OK) and os.path.realpath(debian) != os.path.realpath(sys.executable):
        pythons.append(debian)
    tmp = Path(tempfile.mkdtemp(prefix="reqid-tls-"))
    try:
        groups = [("bare", lambda f: check_run("bare", pythons[0], tmp, 1, False, f))]
        for i, python in enumerate(pythons):
            name = "shim-%s" % ("this-python" if i == 0 else "debian-python")
            groups.append((name, lambda f, n=name, p=python, s=i + 2:
                           check_run(n, p, tmp, s, True, f)))
        groups.append(("nginx-tls", lambda f: check_nginx(tmp, 7, f)))
        groups.append(("lighttpd-tls", lambda f: check_lighttpd(tmp, 13, True, f)))
        groups.append(("lighttpd-tls-no-h2", lambda f: check_lighttpd(tmp, 17, False, f)))
        groups.append(("asyncio-tls", lambda f: check_unseen(
            "asyncio-tls", "memory BIOs", [pythons[0], ASYNCIO_SERVICE], tmp, 19, f)))
        if shutil.which("go"):
            groups.append(("go-tls", lambda f: check_go(tmp, 29, f)))
        else:
            print("go-tls: skipped: no go on PATH (apt-get install -y golang-go)")
        node = shutil.which("node")
        if node:
            groups.append(("node-tls", lambda f: check_unseen(
                "node-tls", "node's own OpenSSL", [node, NODE_SERVICE], tmp, 23, f)))
        else:
            print("node-tls: skipped: no node on PATH")
        groups.append(("outbound-tls", lambda f: check_outbound(pythons[0], tmp, 11, f)))
        return run_groups(groups)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
