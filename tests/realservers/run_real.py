#!/usr/bin/env python3
"""run_real.py - reqid against real servers: nginx (master + 2 workers,
epoll), the same nginx with a buffered access log (buffer=8k), lighttpd (one
event loop), busybox httpd (a process per connection, CGI shell script) and
python3 -m http.server (a thread per connection).

Each server runs under `scripts/reqid run --log-path '<tmp>/*.log'` with its
own configuration in a fresh temporary directory, gets 1000 requests at
concurrency 64 twice (once every request sends X-Request-ID: cid-<token>,
once none does and the ids are generated), with keep-alive where the server
has it, and is stopped with its own signal. Every request has a unique token
in its path; the oracle (oracle.py) matches every log line holding a token
to its request.

Fails a run on: a wrong id (precision < 100%), recall under 99% on any log
(--min-recall), a response without the X-Request-ID header or with a wrong
one, a malformed line, lost or duplicated lines where the server's count per
request is known, a wrong response, a server that does not start or stop
cleanly or leaves processes. Reports without failing: lines without a token
that carry an id ("unmatched tagged"; the oracle cannot say whose they are).

Prints a matrix server x mode x log, then runs the realistic-traffic rows
(realistic.py: nginx and lighttpd with one URL for every request, 1-20
keep-alive requests per connection, joined to a truth the server writes
itself), and ends with "N passed, M failed" over both.

    python3 tests/realservers/run_real.py [--servers nginx,busybox] [-n 1000] [-c 64]
                                          [--seed N] [--keep] [--min-recall 0.99]
                                          [--no-realistic | --realistic-only]
"""

import argparse
import io
import os
import random
import re
import shutil
import socket
import sys
import tempfile
import threading
import time
import unittest
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "integration"))
import harness  # noqa: E402
import oracle  # noqa: E402
import realistic  # noqa: E402
import servers  # noqa: E402

MODES = ("cid", "gen")
LETTERS = "ABCDEFGHJKLMNPQRSTUVWXYZ"


# ---------------------------------------------------------------- plan

class RReq(harness.Req):
    __slots__ = ("status", "status_got", "body_got", "hdr_ids", "head")


def make_plan(rng, srv, n, mode, prefix, p404=0.12):
    """Connections of 1 request, or 2-5 keep-alive requests where the server
    keeps connections; about p404 of the requests ask for a missing file."""
    conns, i = [], 0
    while i < n:
        if srv.keepalive and rng.random() >= 0.4:
            k = min(rng.randint(2, 5), n - i)
        else:
            k = 1
        last_close = rng.random() < 0.5
        conn = harness.Conn()
        for j in range(k):
            r = RReq()
            r.token = "%s%05d" % (prefix, i + j)
            r.status = 404 if rng.random() < p404 else 200
            r.method, r.body, r.path = "GET", b"", srv.path(r.token, r.status)
            if mode == "cid":
                r.headers, r.expected = [("X-Request-ID", "cid-" + r.token)], "cid-" + r.token
            else:
                r.headers, r.expected = [], harness.GENERATED
            r.kind, r.delayed = mode, False
            r.close = j == k - 1 and last_close
            # a fifth of the keep-alive requests reach the server in two segments
            r.split = rng.random() if rng.random() < 0.2 else None
            r.response = r.error = r.status_got = r.body_got = r.head = None
            r.hdr_ids = None
            conn.append(r)
        conns.append(conn)
        i += k
    return conns


# ---------------------------------------------------------------- client

def read_response(sock, buf):
    """One response from sock (buf: bytes already read). Returns
    (status, headers [(lower name, value)], body, head bytes, rest, closing).
    Tolerates bare LF line ends (a CGI's own header lines); the body is
    framed by Content-Length, chunked, or the end of the connection."""
    while True:
        m = re.search(rb"\n\r?\n", buf)
        if m:
            break
        data = sock.recv(65536)
        if not data:
            raise harness.Failure("connection closed before the response head (%r)" % buf[:120])
        buf += data
    head, rest = buf[:m.start()], buf[m.end():]
    lines = [ln.rstrip(b"\r") for ln in head.split(b"\n")]
    sm = re.match(rb"HTTP/1\.([01]) (\d{3})(?: |$)", lines[0])
    if not sm:
        raise harness.Failure("bad status line %r" % lines[0][:120])
    status = int(sm.group(2))
    headers = []
    for ln in lines[1:]:
        name, sep, value = ln.partition(b":")
        if not sep or not name or name != name.strip():
            raise harness.Failure("bad header line %r in %r" % (ln[:120], head[:300]))
        headers.append((name.decode("latin-1").lower(), value.strip().decode("latin-1")))
    hmap = {}
    for k, v in headers:
        hmap.setdefault(k, []).append(v)
    conn_tokens = {t.strip().lower() for v in hmap.get("connection", []) for t in v.split(",")}
    closing = "close" in conn_tokens or (sm.group(1) == b"0" and "keep-alive" not in conn_tokens)
    te = ",".join(hmap.get("transfer-encoding", [])).lower()
    if status in (204, 304) or 100 <= status < 200:
        body = b""
    elif "chunked" in te:
        body = b""
        while True:
            while b"\r\n" not in rest:
                data = sock.recv(65536)
                if not data:
                    raise harness.Failure("connection closed in a chunk size")
                rest += data
            size_line, rest = rest.split(b"\r\n", 1)
            size = int(size_line.split(b";")[0], 16)
            while len(rest) < size + 2:
                data = sock.recv(65536)
                if not data:
                    raise harness.Failure("connection closed in a chunk")
                rest += data
            if size == 0:
                # no trailers expected: the last chunk ends with an empty line
                rest = rest[2:]
                break
            body += rest[:size]
            rest = rest[size + 2:]
    elif "content-length" in hmap:
        vals = set(hmap["content-length"])
        if len(vals) != 1:
            raise harness.Failure("conflicting Content-Length %s" % sorted(vals))
        need = int(vals.pop())
        while len(rest) < need:
            data = sock.recv(65536)
            if not data:
                raise harness.Failure("connection closed mid-body (%d of %d bytes)"
                                      % (len(rest), need))
            rest += data
        body, rest = rest[:need], rest[need:]
    else:
        while True:  # body until the server closes
            data = sock.recv(65536)
            if not data:
                break
            rest += data
        body, rest, closing = rest, b"", True
    return status, headers, body, head, rest, closing


class RealLoad(harness.Load):
    """harness.Load with a client for real servers: any response framing,
    servers that close a connection after a response (the rest of that
    connection's requests go on a new one), responses checked for status
    and body, and the X-Request-ID response headers kept."""

    def __init__(self, port, concurrency, timeout=30.0):
        super().__init__(port, concurrency, timeout)
        self.reconnects = 0  # new connections after the server closed one
        self.retries = 0     # connections reset before the server accepted them

    def _open(self):
        sock = harness.connect(self.port, self.timeout)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        with self.lock:
            self.open_now += 1
            self.open_max = max(self.open_max, self.open_now)
        return sock

    def _close(self, sock):
        sock.close()
        with self.lock:
            self.open_now -= 1

    def _exchange(self, sock, buf, r, split):
        data = r.raw(self.port)
        if split is not None:
            cut = min(len(data) - 1, max(1, int(len(data) * split)))
            sock.sendall(data[:cut])
            sock.sendall(data[cut:])
        else:
            sock.sendall(data)
        return read_response(sock, buf)

    def run_conn(self, item):
        index, reqs = item
        sock, buf = None, b""
        try:
            for pos, r in enumerate(reqs):
                fresh = sock is None
                if fresh:
                    sock, buf = self._open(), b""
                    if pos > 0:
                        with self.lock:
                            self.reconnects += 1
                    elif index < self.barrier.parties:
                        # the first wave holds its connections open until
                        # all are in: the server really has `concurrency`
                        try:
                            self.barrier.wait(self.timeout)
                        except threading.BrokenBarrierError:
                            pass
                # The first request on a new connection goes in one segment:
                # under a burst of connects a server with a small listen
                # backlog gets SYN cookies, and a cookie connection made by
                # the second segment loses the first one's bytes (seen as
                # " /req/T HTTP/1.1" without its "GET", also without reqid).
                split = None if fresh else r.split
                for attempt in range(6):
                    try:
                        status, headers, body, head, buf, closing = self._exchange(
                            sock, buf, r, split)
                        break
                    except (ConnectionResetError, BrokenPipeError, harness.Failure) as e:
                        # A server with a small listen backlog (python 5,
                        # busybox 9) overflows under a burst of connects; the
                        # kernel answers with SYN cookies and then resets
                        # the connection before the server ever accepted it.
                        # Only that case is retried: a fresh connection whose
                        # reset or EOF came before any response byte.
                        early = fresh and not buf and (
                            not isinstance(e, harness.Failure)
                            or str(e).startswith("connection closed before the response head (b'')"))
                        if not early or attempt == 5:
                            raise
                        with self.lock:
                            self.retries += 1
                        self._close(sock)
                        sock, buf = None, b""
                        sock = self._open()
                r.status_got, r.body_got, r.head = status, body, head
                r.hdr_ids = [v for k, v in headers if k == "x-request-id"]
                r.response = head
                if status != r.status:
                    r.error = "status %d, expected %d: %r" % (status, r.status, head[:200])
                elif status == 200 and body != b"ok %s\n" % r.token.encode():
                    r.error = "body %r, expected %r" % (body[:200], b"ok %s\n" % r.token.encode())
                if closing or r.close:
                    if not closing:
                        tail = sock.recv(65536)  # Connection: close sent: server must close
                        if tail:
                            r.error = "bytes after Connection: close: %r" % tail[:80]
                    elif buf:
                        r.error = "bytes after the last response: %r" % buf[:80]
                    self._close(sock)
                    sock = None
                elif buf:
                    r.error = "unasked bytes after the response: %r" % buf[:80]
        except (OSError, harness.Failure, ValueError) as e:
            for r in reqs:
                if r.status_got is None and r.error is None:
                    r.error = "%s: %s" % (type(e).__name__, e)
        finally:
            if sock is not None:
                self._close(sock)


# ---------------------------------------------------------------- one run

def run_one(name, mode, n, concurrency, seed, keep=False, reqid_args=()):
    rng = random.Random("%s/%s/%d" % (name, mode, seed))
    prefix = "".join(rng.choice(LETTERS) for _ in range(4))
    token_re = re.compile(re.escape(prefix) + r"\d{5}")
    tmp = Path(tempfile.mkdtemp(prefix="reqid-real-%s-%s-" % (name, mode)))
    srv = servers.SERVERS[name](tmp, servers.free_port())
    plan = make_plan(rng, srv, n, mode, prefix)
    reqs = [r for conn in plan for r in conn]
    res = {"server": name, "mode": mode, "tmp": str(tmp), "problems": [], "requests": len(reqs)}
    t0 = time.monotonic()
    running = None
    try:
        srv.prepare(reqs)
        running = servers.Running(srv, reqid_args)
        res["cmd"] = " ".join(running.cmd)
        concurrency = min(concurrency, srv.max_concurrency or concurrency)
        load = RealLoad(srv.port, concurrency)
        load.run(plan)
        res["max_open"], res["reconnects"] = load.open_max, load.reconnects
        res["retries"] = load.retries
        res["problems"] += running.stop()
    except (servers.StartError, OSError, harness.Failure) as e:
        res["problems"].append("%s: %s" % (type(e).__name__, e))
    finally:
        if running is not None and running.group_alive():
            running.kill()
    res["elapsed"] = time.monotonic() - t0
    if res.get("max_open", 0) < min(concurrency, len(plan)):
        res["problems"].append("only %s connections open at once, wanted %d"
                               % (res.get("max_open"), min(concurrency, len(plan))))
    bad = [r for r in reqs if r.error or r.status_got is None]
    for r in bad[:5]:
        res["problems"].append("request %s %s: %s" % (r.token, r.path, r.error or "no response"))
    if bad:
        res["problems"].append("%d/%d requests failed or got wrong responses"
                               % (len(bad), len(reqs)))
    files = {}
    for _, fname, _ in srv.sources():
        try:
            files[fname] = (tmp / fname).read_bytes()
        except OSError as e:
            res["problems"].append("cannot read %s: %s" % (fname, e))
    sources = list(srv.sources())
    try:  # the server's own stdout/stderr, when it is not one of the logs
        cons = (tmp / "console.out").read_bytes()
    except OSError:
        cons = b""
    if cons and "console.out" not in files:
        files["console.out"] = cons
        sources.append(("console", "console.out", None))
    chk = oracle.check_run(files, sources, reqs, token_re, srv.expected_count,
                           fmt="plain" if "--disable" in reqid_args else "json")
    problems = res["problems"] + chk["problems"]
    res.update(chk)
    res["problems"] = problems
    res["ok"] = not res["problems"]
    res["kept"] = keep or not res["ok"]
    if not res["kept"]:
        shutil.rmtree(tmp, ignore_errors=True)
    return res


# ---------------------------------------------------------------- report

def pct(v):
    return "n/a" if v is None else "%.2f%%" % (100 * v)


HEAD = "%-9s %-4s %-13s %6s %7s %6s %5s %9s %8s %6s %7s  %s" % (
    "server", "mode", "log", "lines", "matched", "tagged", "wrong", "precision", "recall",
    "untok+", "resphdr", "result")


def rows_of(res):
    out = []
    hdr = res.get("header", {})
    for label, row in res.get("rows", {}).items():
        out.append("%-9s %-4s %-13s %6d %7d %6d %5d %9s %8s %6d %7s  %s" % (
            res["server"], res["mode"], label, row["lines"], row["matched"], row["tagged"],
            row["wrong"], pct(row["precision"]), pct(row["recall"]), row["untok_tagged"],
            pct(hdr.get("coverage")), "PASS" if res["ok"] else "FAIL"))
    if not res.get("rows"):
        out.append("%-9s %-4s %-13s %s  FAIL" % (res["server"], res["mode"], "-", "no logs"))
    return out


def details(res, out):
    hdr = res.get("header", {})
    out.write("%s/%s: %s  %d requests, %.1f s, max open %s, reconnects %s, retried resets %s, "
              "response header ok %d / missing %d / wrong %d of %d  (%s)\n" % (
                  res["server"], res["mode"], "PASS" if res["ok"] else "FAIL", res["requests"],
                  res["elapsed"], res.get("max_open", "?"), res.get("reconnects", "?"),
                  res.get("retries", "?"),
                  hdr.get("ok", 0), hdr.get("missing", 0), hdr.get("wrong", 0),
                  hdr.get("responses", 0), res["tmp"] if res.get("kept") else "removed"))
    for p in res["problems"][:20]:
        out.write("  problem: %s\n" % p)
    for e in res.get("wrong_examples", []):
        out.write("  wrong: %s\n" % e)
    for e in res.get("header_examples", [])[:4]:
        out.write("  response header: %s\n" % e)
    for label, ex in res.get("unmatched_examples", {}).items():
        row = res["rows"][label]
        if row["untok_tagged"]:
            out.write("  unmatched tagged in %s: %d (%d with an id of no request), e.g.\n"
                      % (label, row["untok_tagged"], row["untok_unknown_id"]))
            for e in ex:
                out.write("    %s\n" % e)


def self_test():
    sys.path.insert(0, str(HERE))
    import test_real_oracle
    import test_realistic
    suite = unittest.TestSuite(unittest.defaultTestLoader.loadTestsFromModule(m)
                               for m in (test_real_oracle, test_realistic))
    out = io.StringIO()
    ok = unittest.TextTestRunner(stream=out, verbosity=0).run(suite).wasSuccessful()
    return ok, out.getvalue()


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--servers", default=",".join(servers.SERVERS),
                    help="comma-separated subset of %s" % ",".join(servers.SERVERS))
    ap.add_argument("--modes", default=",".join(MODES))
    ap.add_argument("-n", "--requests", type=int, default=1000, help="per server and mode")
    ap.add_argument("-c", "--concurrency", type=int, default=64)
    ap.add_argument("--seed", type=int, default=None)
    ap.add_argument("--keep", action="store_true", help="keep every run's temp dir")
    ap.add_argument("--disable", action="store_true",
                    help="debug: run the servers with `reqid run --disable` (no ids)")
    ap.add_argument("--min-recall", type=float, default=0.99,
                    help="fail a log whose recall is lower (0: report only)")
    ap.add_argument("--no-realistic", action="store_true",
                    help="skip the realistic-traffic rows (realistic.py)")
    ap.add_argument("--realistic-only", action="store_true",
                    help="run only the realistic-traffic rows")
    ap.add_argument("--realistic-rows", default="",
                    help="realistic rows by name prefix (see realistic.py --help)")
    ap.add_argument("--realistic-min-recall", type=float, default=None,
                    help="recall floor of the realistic rows (default: "
                    "realistic.REALISTIC_MIN_RECALL = %g)" % realistic.REALISTIC_MIN_RECALL)
    a = ap.parse_args(argv)
    if a.no_realistic and a.realistic_only:
        ap.error("--no-realistic and --realistic-only exclude each other")
    names = [s for s in a.servers.split(",") if s]
    modes = [m for m in a.modes.split(",") if m]
    for s in names:
        if s not in servers.SERVERS:
            ap.error("unknown server %r" % s)
    for m in modes:
        if m not in MODES:
            ap.error("unknown mode %r" % m)
    seed = a.seed if a.seed is not None else random.randrange(1 << 30)
    t0 = time.monotonic()

    ok, text = self_test()
    if not ok:
        print(text)
        print("oracle self-test failed\n0 passed, 1 failed")
        return 1
    try:
        real_rows = [] if (a.no_realistic or a.disable) else realistic.select_rows(
            a.realistic_rows, servers_wanted=set(names))
    except ValueError as e:
        ap.error(str(e))
    if a.realistic_only:
        names = []
    missing = servers.missing_binaries(sorted(set(names) | {r.server for r in real_rows}))
    lib = Path(os.environ.get("REQID_LIB", servers.LIBREQID))
    if not (servers.REQID.exists() and lib.exists()):
        missing.append("%s (make build/libreqid.so)" % lib)
    if missing:
        print("missing: " + ", ".join(missing))
        print("0 passed, %d failed" % (len(names) * len(modes) + len(real_rows)))
        return 1

    results = []
    if names:
        print("seed %d, %d requests per server and mode, concurrency %d"
              % (seed, a.requests, a.concurrency))
        print(HEAD)
        print("-" * len(HEAD))
    for name in names:
        for mode in modes:
            res = run_one(name, mode, a.requests, a.concurrency, seed, keep=a.keep,
                          reqid_args=["--disable"] if a.disable else [])
            hdr = res.get("header", {})
            if not a.disable and (hdr.get("missing") or hdr.get("wrong")):
                res["problems"].append("response header: %d missing, %d wrong"
                                       % (hdr.get("missing", 0), hdr.get("wrong", 0)))
                res["ok"] = False
            for label, row in res.get("rows", {}).items():
                if (not a.disable and row["recall"] is not None
                        and row["recall"] < a.min_recall):
                    res["problems"].append("%s: recall %.2f%% under %.2f%%"
                                           % (label, 100 * row["recall"], 100 * a.min_recall))
                    res["ok"] = False
            results.append(res)
            for line in rows_of(res):
                print(line, flush=True)
    if names:
        print()
        for res in results:
            details(res, sys.stdout)
        print()
    if real_rows:
        sys.stdout.flush()
        results += realistic.run_suite(real_rows, seed, keep=a.keep,
                                       min_recall=a.realistic_min_recall)
        print()
    failed = [r for r in results if not r["ok"]]
    print("total %.1f s" % (time.monotonic() - t0))
    print("%d passed, %d failed" % (len(results) - len(failed), len(failed)))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
