#!/usr/bin/env python3
"""harness.py - integration harness for reqid: starts one bundled legacy
server (build/servers/NAME) under `scripts/reqid run`, drives concurrent HTTP
load at it, asks it to /quit, then checks every log line it wrote.

The oracle's rule is the shim's own principle: a wrong id is worse than no id.
Every line must parse in the configured format; lines about a request
("token=T" in the text) must carry that request's id or none; all other lines
must carry none (or the REQID_OUTSIDE sentinel); no line may be lost,
duplicated or reordered, and response bytes must reach the client unaltered.

Python 3 standard library only. It must never edit the shim or the servers,
never sleep to synchronise (the port comes through a pipe handshake), and
never hide a failing line: wrong ids are kept as examples in the report.

    python3 tests/integration/harness.py thread_pool
    python3 tests/integration/harness.py epoll_timers --requests 400 -c 48
    python3 tests/integration/harness.py thread_per_conn --format logfmt --field rid
    python3 tests/integration/harness.py fork_per_conn --no-shim   # debug servers
    python3 tests/integration/harness.py thread_pool --unix   # over a unix socket

With --unix (run(..., unix=True)) the server listens on a unix-domain stream
socket instead of TCP: the harness sets LEGACY_LISTEN_UNIX=<path> (a fresh
temporary directory, removed afterwards), the handshake reports port 0 and
every client connection goes to that path.
"""

import argparse
import collections
import json
import os
import random
import re
import select
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
REQID = ROOT / "scripts" / "reqid"
LIBREQID = ROOT / "build" / "libreqid.so"
SERVER_DIR = ROOT / "build" / "servers"
LOG_DIR = ROOT / "build" / "integration"

SERVERS = ("thread_per_conn", "thread_pool", "epoll_timers", "fork_per_conn")
UNIX_ENV = "LEGACY_LISTEN_UNIX"  # the servers listen on this unix socket path
EVIL_BODY = b"GET /req/fake HTTP/1.1\r\nX-Request-ID: evil\r\n\r\n"
GENERATED = object()  # expected id: one the shim generates
ID_CHARS_RE = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
GEN_RE = re.compile(r"^[0-9a-f]{32}$")
TOKEN_RE = re.compile(r"token=([A-Za-z0-9]+)")
# Every server line: "<ISO time> <LEVEL> [<server>] pid=N tid=N <text>"
LINE_RE = re.compile(
    r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z (INFO |DEBUG|ERROR) "
    r"\[(\w+)\] pid=\d+ tid=\d+ (.*)$")
# The three lines of one request, in the order a server writes them.
KINDS_PLAIN = ("start", "working", "done")
KINDS_NOW = ("got", "responding", "sent")
KINDS_TIMER = ("got", "timer", "sent")


class Failure(Exception):
    pass


def clean_env(**extra):
    """This environment without REQID_*, LD_* or LEGACY_* settings (a run is
    defined by its arguments, not by what the caller's shell exported),
    plus extra."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("REQID_", "LD_", "LEGACY_"))}
    env.update(extra)
    return env


def make_cert(tmp):
    """A self-signed certificate and key for 127.0.0.1 in directory tmp
    (openssl req), valid a day: (cert path, key path)."""
    cert, key = Path(tmp) / "cert.pem", Path(tmp) / "key.pem"
    r = subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes",
                        "-keyout", str(key), "-out", str(cert), "-days", "1",
                        "-subj", "/CN=127.0.0.1"], capture_output=True)
    if r.returncode != 0:
        raise Failure("openssl req failed: %s" % r.stderr.decode(errors="replace"))
    return cert, key


def run_groups(groups, errors=(Failure,)):
    """Runs each (name, check) in turn: check(failures) appends to a list
    what failed; one of errors raised ends its group as a failure. Prints
    each failure, then "N passed, M failed"; the exit status (1 if any
    failed)."""
    passed = failed = 0
    for name, check in groups:
        failures = []
        try:
            check(failures)
        except errors as e:
            failures.append("%s: %s" % (name, e))
        for f in failures:
            print("FAIL", f)
        passed, failed = passed + (not failures), failed + bool(failures)
    print("%d passed, %d failed" % (passed, failed))
    return 1 if failed else 0


# ---------------------------------------------------------------- load plan

class Req:
    __slots__ = ("token", "method", "path", "headers", "body", "close",
                 "expected", "kind", "delayed", "split", "response", "response_id", "error",
                 "pipelined")

    def raw(self, port):
        """The request's bytes; port None (a unix socket) gives Host: localhost."""
        host = "localhost" if port is None else "127.0.0.1:%d" % port
        lines = ["%s %s HTTP/1.1" % (self.method, self.path),
                 "Host: " + host, "User-Agent: reqid-harness/1"]
        lines += ["%s: %s" % h for h in self.headers]
        if self.body:
            lines += ["Content-Type: text/plain",
                      "Content-Length: %d" % len(self.body)]
        if self.close:
            lines.append("Connection: close")
        return ("\r\n".join(lines) + "\r\n\r\n").encode() + self.body

    def expected_response(self):
        body = b"ok " + self.token.encode() + b"\n"
        return (b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n" % len(body)
                + (b"Connection: close\r\n" if self.close else b"")
                + b"\r\n" + body)


def _case(rng, name):
    return rng.choice((name, name.lower(), name.upper()))


def _hex(rng, nbytes):
    while True:
        v = "%0*x" % (nbytes * 2, rng.getrandbits(nbytes * 8))
        if v.strip("0"):
            return v


# kind -> weight; what each sends and which id the shim must pick
ID_KINDS = (("x-request-id", 22), ("x-correlation-id", 18), ("traceparent", 18),
            ("invalid", 14), ("none", 18), ("invalid+corr", 5),
            ("x-trace-id+traceparent", 5))


def make_request(rng, token, close, delay_mix):
    r = Req()
    r.token, r.close, r.response, r.error = token, close, None, None
    r.response_id = None
    r.pipelined = False
    r.kind = rng.choices([k for k, _ in ID_KINDS], [w for _, w in ID_KINDS])[0]
    tp = "00-%s-%s-01" % (_hex(rng, 16), _hex(rng, 8))
    if r.kind == "x-request-id":
        r.headers = [(_case(rng, "X-Request-ID"), "cid-" + token)]
        r.expected = "cid-" + token
    elif r.kind == "x-correlation-id":
        r.headers = [(_case(rng, "X-Correlation-ID"), "corr-" + token)]
        r.expected = "corr-" + token
    elif r.kind == "traceparent":
        r.headers = [(_case(rng, "traceparent"), tp)]
        r.expected = tp[3:35]
    elif r.kind == "invalid":
        r.headers = [("X-Request-ID", 'bad id"' + token)]
        r.expected = GENERATED
    elif r.kind == "invalid+corr":  # invalid value falls back to the next header
        r.headers = [("X-Correlation-ID", "corr-" + token),
                     ("X-Request-ID", 'bad id"' + token)]
        r.expected = "corr-" + token
    elif r.kind == "x-trace-id+traceparent":  # precedence, not order
        r.headers = [("traceparent", tp), ("X-Trace-ID", "xt:" + token)]
        r.expected = "xt:" + token
    else:
        r.headers = []
        r.expected = GENERATED
    if rng.random() < 0.2:
        r.method, r.body = "POST", EVIL_BODY
    else:
        r.method, r.body = "GET", b""
    r.path = "/req/" + token
    r.delayed = delay_mix and rng.random() < 0.5
    if r.delayed:
        r.path += "?delay=%d" % rng.randint(1, 20)
    # a quarter of requests arrive in two segments, split anywhere
    r.split = rng.random() if rng.random() < 0.25 else None
    return r


class Conn(list):
    """The requests of one client connection, in order."""
    pipelined = False  # all requests sent at once, before any response


def make_plan(rng, n_requests, delay_mix, pipeline=0.0):
    """Connections: one request with Connection: close, or 2-5 keep-alive
    requests (the last one sometimes with Connection: close, else the client
    just closes). With pipeline > 0, that fraction of keep-alive connections
    send all their requests in one write (HTTP/1.1 pipelining)."""
    prefix = "".join(rng.choice("ABCDEFGHJKLMNPQRSTUVWXYZ") for _ in range(4))
    conns, i = [], 0
    while i < n_requests:
        k = 1 if rng.random() < 0.4 else rng.randint(2, 5)
        k = min(k, n_requests - i)
        last_close = k == 1 or rng.random() < 0.5
        conn = Conn(make_request(rng, "%s%05d" % (prefix, i + j),
                                 j == k - 1 and last_close, delay_mix)
                    for j in range(k))
        conn.pipelined = k > 1 and rng.random() < pipeline
        for r in conn:
            r.pipelined = conn.pipelined
        conns.append(conn)
        i += k
    return conns


# ---------------------------------------------------------------- client

ADDED_HEADER_RE = re.compile(rb"\r\nX-Request-ID: ([A-Za-z0-9._:-]{1,128})\r\n\r\n")


def split_added_header(resp):
    """The response without the X-Request-ID header the shim adds as the
    last header line, and that header's id (None when there is none)."""
    head_end = resp.find(b"\r\n\r\n")
    if head_end < 0:
        return resp, None
    m = ADDED_HEADER_RE.search(resp, 0, head_end + 4)
    if not m or m.end() != head_end + 4:
        return resp, None
    return resp[:m.start()] + resp[m.end() - 4:], m.group(1).decode()


def _recv_response(sock, buf):
    while b"\r\n\r\n" not in buf:
        data = sock.recv(65536)
        if not data:
            raise Failure("connection closed before response head (%r)" % buf[:80])
        buf += data
    head, rest = buf.split(b"\r\n\r\n", 1)
    m = re.search(rb"\r\ncontent-length:\s*(\d+)", head, re.I)
    if not m:
        raise Failure("response without Content-Length: %r" % head[:200])
    need = int(m.group(1))
    while len(rest) < need:
        data = sock.recv(65536)
        if not data:
            raise Failure("connection closed mid-body")
        rest += data
    return head + b"\r\n\r\n" + rest[:need], rest[need:]


def connect(port, timeout, unix_path=None):
    """A client socket to the server: TCP to 127.0.0.1:port, or the unix
    stream socket at unix_path when one is given (port is then ignored)."""
    if unix_path is None:
        return socket.create_connection(("127.0.0.1", port), timeout=timeout)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.settimeout(timeout)
        sock.connect(str(unix_path))
    except BaseException:
        sock.close()
        raise
    return sock


class Load:
    def __init__(self, port, concurrency, timeout=30.0, unix_path=None):
        self.port, self.concurrency, self.timeout = port, concurrency, timeout
        self.unix_path = unix_path
        self.host_port = None if unix_path is not None else port  # for Host:
        self.lock = threading.Lock()
        self.open_now = self.open_max = 0
        self.barrier = None

    def run_conn(self, item):
        index, reqs = item
        sock = connect(self.port, self.timeout, self.unix_path)
        with self.lock:
            self.open_now += 1
            self.open_max = max(self.open_max, self.open_now)
        try:
            if index < self.barrier.parties:
                # the first wave holds its connections open until all are
                # in, so the server really has `concurrency` at once
                try:
                    self.barrier.wait(self.timeout)
                except threading.BrokenBarrierError:
                    pass
            if self.unix_path is None:
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            buf = b""
            if getattr(reqs, "pipelined", False):
                sock.sendall(b"".join(r.raw(self.host_port) for r in reqs))
            for r in reqs:
                data = r.raw(self.host_port)
                if getattr(reqs, "pipelined", False):
                    pass
                elif r.split is not None:
                    cut = min(len(data) - 1, max(1, int(len(data) * r.split)))
                    sock.sendall(data[:cut])
                    sock.sendall(data[cut:])
                else:
                    sock.sendall(data)
                r.response, buf = _recv_response(sock, buf)
                if buf and not getattr(reqs, "pipelined", False):
                    raise Failure("extra bytes after response: %r" % buf[:80])
                plain, r.response_id = split_added_header(r.response)
                if plain != r.expected_response():
                    r.error = "response altered: %r" % r.response
            if reqs[-1].close:  # the server must close right after
                tail = sock.recv(65536)
                if tail:
                    reqs[-1].error = "bytes after Connection: close: %r" % tail[:80]
        except (OSError, Failure) as e:
            for r in reqs:
                if r.response is None and r.error is None:
                    r.error = "%s: %s" % (type(e).__name__, e)
        finally:
            sock.close()
            with self.lock:
                self.open_now -= 1

    def run(self, plan):
        self.barrier = threading.Barrier(max(1, min(self.concurrency, len(plan))))
        with ThreadPoolExecutor(max_workers=self.concurrency) as ex:
            list(ex.map(self.run_conn, enumerate(plan)))


def line_text(raw):
    """A line a program wrote as it came out: its text, whether or not the
    shim made it a record (stderr and stdout are log descriptors)."""
    line = raw.decode() if isinstance(raw, bytes) else raw
    return json.loads(line)["msg"] if line.startswith("{") else line.strip()


def announced_port(proc, name):
    """The port a server run with stderr=PIPE says it listens on, in its
    first line ("port N")."""
    first = line_text(proc.stderr.readline())
    if not first.startswith("port "):
        raise Failure("%s did not start: %r" % (name, first))
    return int(first.split()[1])


# The start of a raw-socket server for serve_python: ls listens on
# 127.0.0.1 and its port goes down argv[1]'s pipe; log(text) writes one
# line of the server's log (stderr).
PY_LISTENER = r"""
import os, socket, sys
ready = int(sys.argv[1])
ls = socket.socket(); ls.bind(("127.0.0.1", 0)); ls.listen(4)
os.write(ready, b"%d\n" % ls.getsockname()[1]); os.close(ready)
def log(text):
    os.write(2, text.encode() + b"\n")
"""


def serve_python(code, lib, drive, closes, env=None):
    """Runs python3 -c code under LD_PRELOAD=lib (env: more variables), its
    stderr its log; code is given the write end of a pipe as argv[1] and
    writes its port there, one line. drive(port) is the traffic; once it
    returns, waits (10 s at most) until the log holds closes lines saying
    "connection closed", each a connection's last. Returns drive's result
    and the log's lines."""
    python = "/usr/bin/python3" if os.access("/usr/bin/python3", os.X_OK) else sys.executable
    with tempfile.TemporaryDirectory() as tmp:
        log_path = Path(tmp) / "server.log"
        r, w = os.pipe()
        env = dict(os.environ, LD_PRELOAD=str(lib), **(env or {}))
        with open(log_path, "wb") as log:
            proc = subprocess.Popen([python, "-c", code, str(w)], pass_fds=(w,), env=env,
                                    stderr=log)
        os.close(w)
        try:
            with os.fdopen(r) as ready:
                port = int(ready.readline())
            result = drive(port)
            deadline = time.monotonic() + 10
            while (log_path.read_bytes().count(b"connection closed") < closes
                   and time.monotonic() < deadline and proc.poll() is None):
                time.sleep(0.01)
        finally:
            proc.kill()
            proc.wait()
        return result, log_path.read_text().splitlines()


def exchange(port, request, timeout=30.0):
    """Sends request (bytes) on a new connection and returns all the
    server answered until it closed the connection."""
    with connect(port, timeout) as sock:
        sock.sendall(request)
        resp = b""
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                return resp
            resp += chunk


def recv_exactly(sock, n):
    """n bytes from sock, or fewer if it closes first."""
    data = b""
    while len(data) < n:
        got = sock.recv(n - len(data))
        if not got:
            break
        data += got
    return data


def send_quit(port, timeout=30.0, unix_path=None):
    host = b"127.0.0.1" if unix_path is None else b"localhost"
    with connect(port, timeout, unix_path) as s:
        s.sendall(b"GET /quit HTTP/1.1\r\nHost: " + host + b"\r\nConnection: close\r\n\r\n")
        resp, _ = _recv_response(s, b"")
    want = b"HTTP/1.1 200 OK\r\nContent-Length: 8\r\nConnection: close\r\n\r\nok quit\n"
    if split_added_header(resp)[0] != want:
        raise Failure("/quit answered %r" % resp)


# ---------------------------------------------------------------- server

class Server:
    """One server process under the shim (or bare with shim=False); stdout
    and stderr both go to log_path, opened with O_APPEND. With unix_path the
    server listens on that unix stream socket (LEGACY_LISTEN_UNIX) and its
    handshake must report port 0; the caller owns the path's directory.
    wrapper (argv words) goes in front of the command, e.g. a namespace
    helper that ends by exec'ing "$@"; it must keep the ready fd open.
    command (argv words) runs instead of the bundled server name; it must
    take --ready-fd N as they do."""

    def __init__(self, name, log_path, shim=True, reqid_args=(), env=None, unix_path=None,
                 wrapper=(), command=None):
        self.name, self.log_path = name, Path(log_path)
        self.unix_path = None if unix_path is None else str(unix_path)
        if self.unix_path is not None and len(os.fsencode(self.unix_path)) >= 108:
            raise Failure("unix socket path too long (sun_path holds 107 bytes): %s"
                          % self.unix_path)
        binary = SERVER_DIR / name
        if command is None and not binary.exists():
            raise Failure("%s missing: run `make servers`" % binary)
        if shim and not (REQID.exists() and LIBREQID.exists()):
            raise Failure("%s or %s missing: build the shim (or use --no-shim)"
                          % (REQID, LIBREQID))
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        log_fd = os.open(self.log_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_APPEND, 0o644)
        rfd, wfd = os.pipe()
        cmd = [str(w) for w in command or [binary]] + ["--ready-fd", str(wfd)]
        if shim:
            cmd = [str(REQID), "run", *reqid_args, "--"] + cmd
        cmd = [str(w) for w in wrapper] + cmd
        # runs are defined by their arguments: inherited REQID_* settings
        # (other than the library path) or LEGACY_LISTEN_UNIX would silently
        # change them
        full_env = {k: v for k, v in os.environ.items()
                    if (not k.startswith("REQID_") or k == "REQID_LIB") and k != UNIX_ENV}
        full_env.update(env or {})
        if self.unix_path is not None:
            full_env[UNIX_ENV] = self.unix_path
        self.cmd = cmd
        try:
            self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=log_fd,
                                         stderr=log_fd, pass_fds=(wfd,), env=full_env,
                                         start_new_session=True)
        finally:
            os.close(wfd)
            os.close(log_fd)
        try:
            self.port = self._handshake(rfd)
            if self.unix_path is not None and self.port != 0:
                raise Failure("%s reported port %d, expected 0 for a unix socket (%s=%s)"
                              % (name, self.port, UNIX_ENV, self.unix_path))
            if self.unix_path is None and self.port == 0:
                raise Failure("%s reported port 0 without %s" % (name, UNIX_ENV))
        except Failure:
            self.kill()
            raise
        finally:
            os.close(rfd)

    def _handshake(self, rfd, timeout=30.0):
        data, deadline = b"", time.monotonic() + timeout
        while True:  # blocks on the pipe until the server closes it
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([rfd], [], [], left)[0]:
                raise Failure("no port from %s within %.0f s" % (self.name, timeout))
            chunk = os.read(rfd, 64)
            if not chunk:
                break
            data += chunk
        if not re.fullmatch(rb"\d+\n", data):
            raise Failure("bad handshake from %s: %r (exit %s; see %s)"
                          % (self.name, data, self.proc.poll(), self.log_path))
        return int(data)

    def wait(self, timeout):
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise Failure("%s did not exit within %.0f s after /quit" % (self.name, timeout))

    def kill(self):
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, 9)  # our own session: server + its children
            except ProcessLookupError:
                pass
            self.proc.wait()


# ---------------------------------------------------------------- oracle

class LineFormat:
    """Splits an output line into (id or None, original text)."""

    def __init__(self, fmt="json", field="request_id"):
        if fmt not in ("json", "prefix", "logfmt", "plain"):
            raise ValueError("unknown format %r" % fmt)
        self.fmt, self.field = fmt, field
        self._dec = json.JSONDecoder()

    def split(self, line):
        """Returns (id, msg); raises ValueError when the line is malformed."""
        if self.fmt == "plain":
            return None, line
        if self.fmt == "logfmt":
            lead = self.field + "="
            if line.startswith(lead):
                rid, sep, msg = line[len(lead):].partition(" ")
                if not sep or not rid:
                    raise ValueError("logfmt id without text")
                return rid, msg
            return None, line
        if self.fmt == "prefix":
            obj, end = self._dec.raw_decode(line)
            if not isinstance(obj, dict) or set(obj) - {self.field}:
                raise ValueError("prefix is not {} or {field: id}")
            if line[end:end + 1] != " ":
                raise ValueError("no space after prefix")
            rid = obj.get(self.field)
            if rid is not None and not isinstance(rid, str):
                raise ValueError("id is not a string")
            return rid, line[end + 1:]
        obj = json.loads(line)
        if not isinstance(obj, dict):
            raise ValueError("not a JSON object")
        if set(obj) - {self.field, "msg"} or not isinstance(obj.get("msg"), str):
            raise ValueError("unexpected members %s" % sorted(obj))
        rid = obj.get(self.field)
        if rid is not None and not isinstance(rid, str):
            raise ValueError("id is not a string")
        return rid, obj["msg"]


PREFIX_RE = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z (?:INFO |DEBUG|ERROR) "
                       r"\[\w+\] pid=\d+ tid=\d+ ")


def repair_split_writes(lines):
    """--no-shim only: without the shim, a line written as two write()s
    (prefix, then text + newline) can interleave with another thread's line.
    Re-join such pieces so the servers themselves can still be checked.
    Returns (lines, number repaired)."""
    out, orphans, repaired = [], [], 0
    for line in lines:
        while True:
            m = PREFIX_RE.match(line)
            if not (m and PREFIX_RE.match(line, m.end())):
                break
            orphans.append(line[:m.end()])
            line = line[m.end():]
        if orphans and not PREFIX_RE.match(line):
            line = orphans.pop(0) + line
            repaired += 1
        out.append(line)
    return out, repaired


def expected_kinds(server, req):
    if server == "epoll_timers":
        return KINDS_TIMER if req.delayed else KINDS_NOW
    return KINDS_PLAIN


def check_log(text, server, requests, fmt, check_ids=True, outside=None,
              max_examples=12):
    """Checks every line of a run's log. Returns a dict of counts plus
    'problems' (strings, empty when the run is clean) and 'examples'."""
    by_token = {r.token: r for r in requests}
    res = collections.Counter()
    problems, examples = [], []
    token_lines = collections.defaultdict(list)  # token -> [(lineno, id, kind)]
    other_ids = []  # (lineno, id, msg) of non-token lines carrying an id

    if text and not text.endswith("\n"):
        problems.append("log does not end with a newline (partial last line)")
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    if not check_ids:
        lines, res["repaired"] = repair_split_writes(lines)
    res["lines"] = len(lines)
    for no, line in enumerate(lines, 1):
        try:
            rid, msg = fmt.split(line)
        except ValueError as e:
            res["malformed"] += 1
            if res["malformed"] <= 5:
                problems.append("line %d malformed (%s): %r" % (no, e, line[:200]))
            continue
        if rid == "" or (rid is not None and not ID_CHARS_RE.match(rid)):
            res["malformed"] += 1
            problems.append("line %d: id %r is not a valid id" % (no, rid))
            continue
        if rid is not None and outside is not None and rid == outside:
            rid, is_outside = None, True
        else:
            is_outside = False
        m = LINE_RE.match(msg)
        if not m or m.group(2) != server:
            res["malformed"] += 1
            if res["malformed"] <= 5:
                problems.append("line %d: text is not a %s log line: %r"
                                % (no, server, msg[:200]))
            continue
        if m.group(1) == "ERROR":
            problems.append("line %d: server error: %s" % (no, msg))
        tm = TOKEN_RE.search(msg)
        if not tm:
            res["untokened"] += 1
            if is_outside:
                res["outside"] += 1
            elif rid is not None:
                other_ids.append((no, rid, msg))
            continue
        tok = tm.group(1)
        if tok not in by_token:
            res["malformed"] += 1
            problems.append("line %d: unknown token %r: %r" % (no, tok, msg[:200]))
            continue
        km = re.match(r"\s*(\w*)", msg[tm.end():])
        token_lines[tok].append((no, rid, km.group(1)))
    res["token_lines"] = sum(len(v) for v in token_lines.values())

    # lost, duplicated, reordered lines
    for tok, r in by_token.items():
        got = [k for _, _, k in token_lines.get(tok, [])]
        want = list(expected_kinds(server, r))
        if got != want:
            if len(got) < len(want):
                res["lost_lines"] += len(want) - len(got)
            elif len(got) > len(want):
                res["extra_lines"] += len(got) - len(want)
            else:
                res["reordered"] += 1
            if len(problems) < 40:
                problems.append("token %s: lines %s, expected %s" % (tok, got, want))

    if not check_ids:
        res["requests"] = len(requests)
        return {"counts": res, "problems": problems, "examples": examples}

    # who carries which id
    owners = collections.defaultdict(set)
    for tok, ls in token_lines.items():
        for _, rid, _ in ls:
            if rid is not None:
                owners[rid].add(tok)
    supplied = {r.expected for r in requests if r.expected is not GENERATED}

    # Every response carries the request's id in the header the shim adds
    # (except on pipelined connections, which the shim cannot attribute);
    # for a generated id that header says which one the lines must carry.
    missing = [r for r in requests if getattr(r, "response", None) is not None
               and getattr(r, "response_id", None) is None
               and not getattr(r, "pipelined", False)]
    if missing:
        problems.append("%d responses without the X-Request-ID header (e.g. %s)"
                        % (len(missing), missing[0].token))
    for r in requests:
        rid = getattr(r, "response_id", None)
        if rid is not None and r.expected is not GENERATED and rid != r.expected:
            problems.append("request %s: response header id %r, expected %r"
                            % (r.token, rid, r.expected))

    def wrong(no, tok, rid, want, why):
        res["wrong"] += 1
        if len(examples) < max_examples:
            examples.append("line %d %s: got id %r, expected %s (%s): %s"
                            % (no, ("token " + tok) if tok else "(no token)", rid,
                               want, why, lines[no - 1][:220]))

    gen_ids = {}
    for tok, ls in token_lines.items():
        r = by_token[tok]
        tagged = [(no, rid) for no, rid, _ in ls if rid is not None]
        res["tagged"] += len(tagged)
        if r.expected is not GENERATED:
            for no, rid in tagged:
                if rid == r.expected:
                    res["correct"] += 1
                else:
                    wrong(no, tok, rid, repr(r.expected), r.kind)
            continue
        # generated: 32 lowercase hex, one per request, owned by it alone;
        # with a mismatch the majority wins and the minority is wrong
        counts = collections.Counter(rid for _, rid in tagged)
        best = max(counts, key=lambda k: (counts[k], -min(n for n, x in tagged if x == k)),
                   default=None)
        ok_best = (best is not None and GEN_RE.match(best) is not None
                   and owners[best] == {tok} and best not in supplied
                   and best == (getattr(r, "response_id", None) or best))
        if ok_best:
            gen_ids[tok] = best
        for no, rid in tagged:
            if ok_best and rid == best:
                res["correct"] += 1
            else:
                why = r.kind + "; generated"
                if owners[rid] != {tok}:
                    why += ", also on tokens %s" % sorted(owners[rid] - {tok})[:3]
                elif not GEN_RE.match(rid):
                    why += ", not 32 lowercase hex"
                else:
                    why += ", another id on this request's lines"
                wrong(no, tok, rid, "a fresh generated id" + (
                    " (%s)" % best if ok_best else ""), why)
    # epoll_timers: lines written by the handler of a ready event ("got",
    # and "responding"/"sent" of an immediate answer) and lines written
    # from a timer ("timer fired" and the "sent" after it)
    if server == "epoll_timers":
        for tok, ls in token_lines.items():
            r = by_token[tok]
            want = r.expected if r.expected is not GENERATED else gen_ids.get(tok)
            for i, (_, rid, _) in enumerate(ls):
                part = "timer" if r.delayed and i > 0 else "handler"
                res[part + "_lines"] += 1
                res[part + "_correct"] += rid is not None and rid == want
    for no, rid, msg in other_ids:
        res["tagged"] += 1
        wrong(no, None, rid, "no id", "line not about a request")
    evil = sum(1 for ls in token_lines.values() for _, rid, _ in ls if rid == "evil")
    evil += sum(1 for _, rid, _ in other_ids if rid == "evil")
    if evil:
        problems.append("%d lines carry the id 'evil' smuggled in a request body" % evil)
    res["requests"] = len(requests)
    res["generated_distinct"] = len(set(gen_ids.values()))
    return {"counts": res, "problems": problems, "examples": examples}


# ---------------------------------------------------------------- one run

def run(server, requests=200, concurrency=32, fmt="json", field="request_id",
        outside=None, shim=True, label=None, seed=None, min_recall=0.99, min_handler_recall=0.0,
        quit_timeout=60.0, extra_env=None, pipeline=0.0, unix=False, wrapper=(),
        before_quit=None):
    """Runs one server under load and checks it. Returns a result dict with
    'ok', 'counts', 'precision', 'recall', 'problems', 'examples'. With
    unix=True the server listens on a unix stream socket in a fresh
    temporary directory, removed when the run ends. wrapper goes in front
    of the command (Server). before_quit(log_path), if given, runs after
    the load and before /quit (it may raise Failure)."""
    if server not in SERVERS:
        raise ValueError("unknown server %r" % server)
    seed = random.randrange(1 << 30) if seed is None else seed
    rng = random.Random(seed)
    label = label or server
    reqid_args, env = [], {}
    if fmt != "json":
        reqid_args += ["--format", fmt]
    if field != "request_id":
        reqid_args += ["--field", field]
    if outside is not None:
        env["REQID_OUTSIDE"] = outside
    env.update(extra_env or {})
    log_path = LOG_DIR / ("%s.log" % re.sub(r"[^\w.-]+", "_", label))
    plan = make_plan(rng, requests, server == "epoll_timers", pipeline)
    reqs = [r for conn in plan for r in conn]
    result = {"label": label, "server": server, "seed": seed, "log": str(log_path),
              "ok": False, "problems": [], "notes": [], "examples": [], "counts": collections.Counter(),
              "precision": None, "recall": None}
    t0 = time.monotonic()
    srv = None
    unix_dir = tempfile.mkdtemp(prefix="reqid-unix-") if unix else None
    unix_path = os.path.join(unix_dir, "server.sock") if unix else None
    result["unix"] = unix_path
    try:
        srv = Server(server, log_path, shim=shim, reqid_args=reqid_args, env=env,
                     unix_path=unix_path, wrapper=wrapper)
        result["cmd"] = ("%s=%s " % (UNIX_ENV, unix_path) if unix else "") + " ".join(srv.cmd)
        load = Load(srv.port, concurrency, unix_path=unix_path)
        load.run(plan)
        result["max_open"] = load.open_max
        if before_quit:
            before_quit(log_path)
        send_quit(srv.port, unix_path=unix_path)
        rc = srv.wait(quit_timeout)
        if rc != 0:
            result["problems"].append("server exited with status %s" % rc)
    except (Failure, OSError) as e:
        result["problems"].append("%s: %s" % (type(e).__name__, e))
        if srv:
            srv.kill()
    finally:
        if unix_dir is not None:
            shutil.rmtree(unix_dir, ignore_errors=True)
    result["elapsed"] = time.monotonic() - t0
    bad_resp = [r for r in reqs if r.error or r.response is None]
    for r in bad_resp[:5]:
        result["problems"].append("request %s: %s" % (r.token, r.error or "no response"))
    if bad_resp:
        result["problems"].append("%d/%d requests failed or got altered responses"
                                  % (len(bad_resp), len(reqs)))
    try:
        text = log_path.read_bytes().decode("utf-8")
    except (OSError, UnicodeDecodeError) as e:
        result["problems"].append("cannot read log: %s" % e)
        return result
    if server == "fork_per_conn":
        # the parent must see EINTR from an accept() that SIGUSR1 interrupted;
        # a signal landing just before accept() is the server's own race
        if "SIGUSR1 arrived outside accept" in text:
            result["notes"].append("SIGUSR1 reached the parent before accept(): "
                                   "the EINTR path was not exercised this run")
        elif "accept failed with EINTR" not in text:
            result["problems"].append("fork_per_conn: accept() in the parent did not fail with "
                                      "EINTR on SIGUSR1 (see its 'quit requested' line)")
    lf = LineFormat("plain" if not shim else fmt, field)
    chk = check_log(text, server, reqs, lf, check_ids=shim, outside=outside)
    c = chk["counts"]
    c["bad_responses"] = len(bad_resp)
    result["counts"] = c
    result["problems"] += chk["problems"]
    result["examples"] = chk["examples"]
    for key, what in (("malformed", "malformed lines"), ("lost_lines", "lost lines"),
                      ("extra_lines", "duplicated lines"), ("reordered", "reordered requests")):
        if c[key]:
            result["problems"].append("%d %s" % (c[key], what))
    if shim:
        if c["tagged"]:
            result["precision"] = c["correct"] / c["tagged"]
        if c["token_lines"]:
            result["recall"] = c["correct"] / c["token_lines"]
        if c["wrong"]:
            result["problems"].append("%d lines carry a wrong id (precision %.2f%%)"
                                      % (c["wrong"], 100 * (result["precision"] or 0)))
        rec = result["recall"] or 0.0
        if rec < min_recall or rec == 0:
            result["problems"].append("recall %.2f%% below %.0f%%"
                                      % (100 * rec, 100 * min_recall))
        if c["handler_lines"]:
            result["handler_recall"] = c["handler_correct"] / c["handler_lines"]
            if result["handler_recall"] < min_handler_recall:
                result["problems"].append("handler-line recall %.2f%% below %.0f%%" % (
                    100 * result["handler_recall"], 100 * min_handler_recall))
        if c["timer_lines"]:
            result["timer_recall"] = c["timer_correct"] / c["timer_lines"]
    result["ok"] = not result["problems"]
    return result


def pct(v):
    return "n/a" if v is None else "%.2f%%" % (100 * v)


def report(res, out=sys.stdout):
    c = res["counts"]
    out.write("%s: %s  (seed %d, %.1f s, log %s%s)\n" % (
        res["label"], "PASS" if res["ok"] else "FAIL", res["seed"],
        res.get("elapsed", 0), res["log"],
        ", unix socket %s" % res["unix"] if res.get("unix") else ""))
    out.write("  requests %d  lines %d  token lines %d  tagged %d  correct %d  wrong %d"
              "  outside %d  precision %s  recall %s  max open conns %s\n" % (
                  c["requests"], c["lines"], c["token_lines"], c["tagged"], c["correct"],
                  c["wrong"], c["outside"], pct(res["precision"]), pct(res["recall"]),
                  res.get("max_open", "?")))
    if c["repaired"]:
        out.write("  note: re-joined %d lines whose two write()s interleaved (expected "
                  "without the shim)\n" % c["repaired"])
    for n in res.get("notes", []):
        out.write("  note: %s\n" % n)
    for p in res["problems"]:
        out.write("  problem: %s\n" % p)
    for e in res["examples"]:
        out.write("  wrong: %s\n" % e)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("server", choices=SERVERS)
    ap.add_argument("-n", "--requests", type=int, default=200)
    ap.add_argument("-c", "--concurrency", type=int, default=32)
    ap.add_argument("--format", default="json", choices=("json", "prefix", "logfmt"))
    ap.add_argument("--field", default="request_id")
    ap.add_argument("--outside", default=None,
                    help="set REQID_OUTSIDE to this sentinel")
    ap.add_argument("--min-recall", type=float, default=None,
                    help="default 0.99, or just > 0 for epoll_timers")
    ap.add_argument("--seed", type=int, default=None)
    ap.add_argument("--pipeline", type=float, default=0.0, metavar="FRACTION",
                    help="pipeline this fraction of keep-alive connections "
                         "(not part of run_all)")
    ap.add_argument("--label", default=None,
                    help="run name, also names the log: build/integration/LABEL.log")
    ap.add_argument("--env", action="append", default=[], metavar="K=V",
                    help="extra environment for the server (e.g. REQID_HEADERS=...);"
                         " inherited REQID_* variables are dropped")
    ap.add_argument("--no-shim", action="store_true",
                    help="debug: run the server bare and skip id checks")
    ap.add_argument("--unix", action="store_true",
                    help="serve over a unix-domain stream socket (%s) instead of TCP"
                         % UNIX_ENV)
    a = ap.parse_args(argv)
    min_recall = a.min_recall
    if min_recall is None:
        min_recall = 0.0 if a.server == "epoll_timers" else 0.99
    extra_env = dict(kv.split("=", 1) for kv in a.env)
    res = run(a.server, a.requests, a.concurrency, a.format, a.field, a.outside,
              shim=not a.no_shim, seed=a.seed, min_recall=min_recall, extra_env=extra_env,
              label=a.label, pipeline=a.pipeline, unix=a.unix)
    report(res)
    return 0 if res["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
