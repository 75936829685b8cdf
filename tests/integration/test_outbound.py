#!/usr/bin/env python3
"""test_outbound.py - outbound W3C Trace Context injection by libreqid.so:
every HTTP/1.x request a shimmed program writes on a TCP connection it
connect()ed, while it serves an inbound request, gets

    traceparent: 00-<trace-id>-<parent-id>-<flags>\\r\\n
    tracestate: <normalised value>\\r\\n      (only with a valid inbound pair)
    X-Request-ID: <request id>\\r\\n

inserted just before the blank line that ends its header block, and nothing
else changes; outside a request nothing is inserted at all.

Drives build/servers/outbound_caller (tests/servers/outbound_caller.c), a
thread-per-connection legacy server that calls a downstream for each inbound
request "GET /<mode>/<k>" in the write pattern the mode names (one write,
one byte per write, awkward cuts, writev, sendmsg, send/sendto, POST and
chunked bodies holding fake heads, its own traceparent / X-Request-ID,
look-alike header names, pipelining, two interleaved connections, a
keep-alive connection opened at start-up and shared across requests, a
pooled one opened by the first request that needs it, a non-blocking socket
with a 4 KiB send buffer and a ~200 KiB body, the same request cut by the
kernel inside the inserted lines and continued by writev() of IOV_MAX (1024)
iovecs (iovmax), a thread the handler starts, a background thread outside
any request, a one-thread pool started by the first pooljob request and fed
jobs through a condition variable (pooljob), HTTP/1.0, IPv6, and calls made
after the response was written). Inbound requests carry every kind of id header
(KINDS: none, X-Request-ID plain, 32-hex, all-zero, uppercase, invalid, 128
bytes, X-Correlation-ID, valid traceparents with flags 00/01/0a, future
version, tracestate normalised, split over several lines, invalid or empty,
invalid traceparents: uppercase, version ff, zero trace-id or parent-id, two
headers), eight client connections at once, 1-3 requests per connection.
The nonblock requests' padding is chosen so that the kernel's first cut
(measured: first_write_size()) falls at planned offsets around the insertion
point: before it, on it, inside the inserted lines, just after them, inside
the final CRLF, in the body (NB_CUTS); the iovmax requests' inside the
inserted lines (IOVMAX_CUTS: the shim owes their rest when the writev of
1024 iovecs comes, and must send it alone first, not fail with EINVAL), and
the shim run fails unless at least one first write returned exactly at the
insertion point. The pooljob requests run before all others: the first
one (whose handler starts the worker) on a keep-alive connection that stays
open and idle while two more come at once on connections of their own, then
a fourth on the first connection; the worker's context came from its
creator and ended at its first wait, so every worker request must be
byte-identical to the application's and every worker line ("job=...") must
carry no ids (the handlers' own lines before their responses carry their
request's ids, as everywhere). The downstream is a capture server
in this script (raw sockets, unshimmed): it splits each connection's bytes
into requests by their own framing (Content-Length, chunked with trailers),
keeps each request's exact raw bytes and answers "HTTP/1.1 200
OK\\r\\nContent-Length: 2\\r\\n\\r\\nok".

The exact bytes the application writes for each outbound request are
modelled here (model()); the server logs the length and FNV-1a of every
request it sent, and both must agree. Runs, each on a fresh server (port
through a pipe handshake; no sleeps to synchronise):
  bare   no shim: every captured request is exactly the model (validates the
         model, the server and the capture server)
  shim   LD_PRELOAD=$REQID_LIB (default build/libreqid.so),
         REQID_FIELDS=request_id,trace_id,span_id. For every captured
         request: exactly the model with exactly the expected lines inserted
         at exactly the expected position (or byte-identical where nothing
         may be inserted: the start-up calls, the background thread, the
         application's own traceparent and X-Request-ID, calls after the
         response, the pooljob worker); trace-id per the rules (the inbound traceparent's, else
         an inbound X-Request-ID of 32 lowercase hex, not all zero, else a
         generated one, which is the generated request id when the request
         id was generated too); flags (inbound flags & 03; 01 from the
         X-Request-ID; 03 generated); the same trace-id in all outbound
         requests of one inbound request and in its log lines; parent-ids 16
         lowercase hex, non-zero, all distinct and none an inbound one;
         tracestate normalised; the request id as the response's
         X-Request-ID. Log lines are JSON with exactly the fields
         request_id, trace_id, span_id, msg (in that order) on every line of
         an inbound request logged before its response (the request's ids;
         one span_id per inbound request, 16 lowercase hex, non-zero), the
         same ids or none after it, and only msg on the server's other lines
         (lines the README's attribution rules let go without ids: after a
         poll() in nonblock and iovmax, a created thread's after its own I/O, see
         RECALL_EXEMPT; their start lines must still carry them).
For both: no INCONSISTENT or ERROR line (the server checks every write-like
call's return value: 0..asked, adding up to exactly its own bytes), exit
status 0, partial writes and EAGAIN really happened in the nonblock mode
(bare: a first write cut inside a head, too).
Logs: build/integration/outbound-RUN.log. A self-test of the checker on
corrupted copies of a correct insertion proves that it can fail.

Prints one line per run and mode, one per run for the logs, parent-ids and
the run itself, "N passed, M failed" last; exits non-zero on any failure.
Python 3 standard library only; must never edit the shim or relax an
expectation to make a run pass.

    python3 tests/integration/test_outbound.py [--seed N] [-v] [--runs bare,shim]
"""

import argparse
import json
import os
import random
import re
import select
import signal
import socket
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import harness

ROOT = Path(__file__).resolve().parents[2]
LIB = Path(os.environ.get("REQID_LIB") or ROOT / "build" / "libreqid.so").resolve()
SERVER = ROOT / "build" / "servers" / "outbound_caller"
LOG_DIR = ROOT / "build" / "integration"

TIMEOUT = 10.0      # seconds any one step may take
CONCURRENCY = 8     # inbound client connections at once
FIELDS = "request_id,trace_id,span_id"
RUNS = ("bare", "shim")

DOWN_RESPONSE = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
APP_TRACEPARENT = b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
FAKE_TP = b"traceparent: 00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01\r\n"
POST_TAIL = (b"\r\n\r\nGET / HTTP/1.1\r\nHost: fake\r\nX-Request-ID: fake\r\n" + FAKE_TP +
             b"\r\ntail")
NB_FAKE = b"\r\n\r\nGET /fake HTTP/1.1\r\nX-Request-ID: fake\r\n" + FAKE_TP + b"\r\n"
NB_ALPHABET = b"abcdefghijklmnopqrstuvwxyz0123456789"
PAD_CHARS = (b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
             b"abcdefghijklmnopqrstuvwxyzABCD")

ID_CHARS = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._:-"
GEN_RE = re.compile(r"^[0-9a-f]{32}$")
SPAN_RE = re.compile(r"^[0-9a-f]{16}$")
TP_LINE_RE = re.compile(rb"traceparent: 00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})\r\n")
OUT_RE = re.compile(r"\b(k|job|init)=([A-Za-z0-9]+) (post: )?out n=(\d+) mode=(\w+) "
                    r"len=(\d+) fnv=([0-9a-f]{8})")
WHO_RE = re.compile(r"\b(k|job|init)=([A-Za-z0-9]+)")
STATS_RE = re.compile(r"outbound_caller: stats outbound=(\d+) partial=(\d+) eagain=(\d+) "
                      r"head_cut=(\d+) inconsistent=(\d+) errors=(\d+)")
STATS_KEYS = ("outbound", "partial", "eagain", "head_cut", "inconsistent", "errors")
ADDED_HEADER_RE = re.compile(rb"\r\nX-Request-ID: ([A-Za-z0-9._:-]{1,128})\r\n\r\n")


class Failure(Exception):
    pass


# -------------------------------------------------------------------- model

def pct(part, whole):
    return "%.2f%%" % (100.0 * part / whole) if whole else "n/a"


def fnv1a(data):
    h = 2166136261
    for b in data:
        h = ((h ^ b) * 16777619) & 0xffffffff
    return h


def head(method, mode, k, n, extra=b"", proto=b"HTTP/1.1"):
    return (b"%s /down/%s/%s/%d %s\r\nHost: downstream\r\nUser-Agent: outbound_caller/1\r\n"
            % (method, mode.encode(), k.encode(), n, proto) + extra + b"Accept: */*\r\n\r\n")


def get(mode, k, n, extra=b"", proto=b"HTTP/1.1"):
    return head(b"GET", mode, k, n, extra, proto)


def post(mode, k, n):
    body = b"field=1&k=" + k.encode() + POST_TAIL
    return head(b"POST", mode, k, n,
                b"Content-Type: text/plain\r\nContent-Length: %d\r\n" % len(body)) + body


def chunked(k, n, which):
    h = head(b"POST", "chunked", k, n, b"Transfer-Encoding: chunked\r\n")
    if which == 0:
        d1, d2 = b"\r\n\r\nGET / HTTP/1.1\r\nHost: fake\r\n\r\n", b"k=" + k.encode()
        return (h + b"%x;ext=1\r\n" % len(d1) + d1 + b"\r\n%x\r\n" % len(d2) + d2 +
                b"\r\n0\r\n\r\n")
    d3 = b"0\r\n\r\nPOST /x HTTP/1.1\r\n\r\n"
    return h + b"%x\r\n" % len(d3) + d3 + b"\r\n0\r\nX-Trailer: t\r\n\r\n"


def nonblock_extra(k):
    """The nonblock request's padding and Content-Length lines, body length."""
    h = fnv1a(k.encode())
    pad, body_len = h % 16000, 200 * 1024 + h % 4099
    m = re.search(r"p(\d{1,5})$", k)
    if m:
        pad = int(m.group(1))
    extra, i = b"", 0
    while pad > 0 and i < 250:
        n = min(pad, 90)
        pad -= n
        extra += b"X-Pad-%02d: %s\r\n" % (i, PAD_CHARS[:n])
        i += 1
    return extra + b"Content-Length: %d\r\n" % body_len, body_len


def nonblock(k, mode="nonblock"):
    h = fnv1a(k.encode())
    extra, body_len = nonblock_extra(k)
    cycle = bytes(NB_ALPHABET[(i * 7 + h) % 36] for i in range(36))
    body = bytearray((cycle * (body_len // 36 + 1))[:body_len])
    at = 1000
    while at + len(NB_FAKE) <= body_len:
        body[at:at + len(NB_FAKE)] = NB_FAKE
        at += 8192
    return head(b"POST", mode, k, 0, extra) + bytes(body)


def nonblock_head_len(k, mode="nonblock"):
    return len(head(b"POST", mode, k, 0, nonblock_extra(k)[0]))


def model(mode, k):
    """The application's bytes of each outbound request of mode for k, by n."""
    kb = k.encode()
    if mode == "bytewise":
        return [get(mode, k, 0), post(mode, k, 1)]
    if mode == "split":
        return [get(mode, k, n) for n in range(4)]
    if mode in ("writev", "sendmsg", "pipeline"):
        return [get(mode, k, 0), post(mode, k, 1)]
    if mode == "send":
        return [get(mode, k, 0), get(mode, k, 1), post(mode, k, 2)]
    if mode == "post":
        return [post(mode, k, 0), post(mode, k, 1), get(mode, k, 2)]
    if mode == "chunked":
        return [chunked(k, 0, 0), chunked(k, 1, 1), get(mode, k, 2)]
    if mode == "own":
        return [get(mode, k, 0, b"TraceParent: " + APP_TRACEPARENT + b"\r\nx-REQUEST-id: app-" +
                    kb + b"\r\n")]
    if mode == "ownid":
        return [get(mode, k, 0, b"x-Request-Id: app-" + kb + b"\r\n")]
    if mode == "owntp":
        return [get(mode, k, 0, b"TRACEPARENT: " + APP_TRACEPARENT + b"\r\n")]
    if mode == "lookalike":
        return [get(mode, k, 0, b"X-Request-IDs: no\r\ntraceparent-x: no\r\nX-traceparent: no\r\n"
                    b"X-Note: traceparent: " + APP_TRACEPARENT + b"\r\n"
                    b"X-Note2: X-Request-ID: fake\r\n")]
    if mode == "interleave":
        return [get(mode, k, 0), get(mode, k, 1)]
    if mode in ("nonblock", "iovmax"):
        return [nonblock(k, mode)]
    if mode == "http10":
        return [get(mode, k, 0, proto=b"HTTP/1.0")]
    return [get(mode, k, 0)]  # one keepalive thread bg pooljob v6 after afterka startup


# what the shim inserts into each mode's requests: (traceparent+tracestate, X-Request-ID)
INSERTS = {"own": (False, False), "ownid": (True, False), "owntp": (False, True),
           "after": (False, False), "afterka": (False, False), "bg": (False, False),
           "pooljob": (False, False), "startup": (False, False)}
MODES = ("one", "bytewise", "split", "writev", "sendmsg", "send", "post", "chunked", "own",
         "ownid", "owntp", "lookalike", "pipeline", "interleave", "keepalive", "nonblock",
         "pool", "thread", "bg", "http10", "v6", "after", "afterka", "iovmax", "pooljob")
# inbound requests per mode (3 unless named); "one" gets one of every id kind
PER_MODE = {"keepalive": 8, "nonblock": 12, "pool": 5, "iovmax": 3, "pooljob": 4}
STARTUP = (("startup", "0"), ("startup", "ka"))
# Modes where the shim's attribution rules (README, "How lines get their id")
# let lines before the response go without ids: poll() is a wait (nonblock);
# a created thread's lines after its own I/O (thread). Their "start" lines
# must still carry them, and any id on any line must be the right one.
RECALL_EXEMPT = ("nonblock", "thread", "iovmax")

# ------------------------------------------------------------ inbound ids

GEN, NEW, RID = "generated", "new", "rid"

KINDS = ("none", "xrid", "xrid-hex", "xrid-hex-zero", "xrid-hex-upper", "xrid-invalid",
         "xrid-long", "xcorr", "tp",
         "tp-00", "tp-0a", "tp-ts", "tp-ts-multi", "tp-ts-split", "tp-ts-invalid",
         "tp-ts-empty", "tp+xrid", "tp+xrid-hex", "tp-future", "tp-upper", "tp-ff-version",
         "tp-zero+xrid-hex", "tp-two", "tp-upper+xrid", "tp-zero-parent")


def hex_id(rng, nbytes, letter=False):
    while True:
        v = "%0*x" % (nbytes * 2, rng.getrandbits(nbytes * 8))
        if v.strip("0") and (not letter or re.search("[a-f]", v)):
            return v


def make_ids(kind, k, rng):
    """The inbound id headers of kind, and what the shim must make of them:
    rid (GEN: generated), tid (a value; RID: the generated request id; NEW:
    a fresh generated one), flags, ts (normalised tracestate or None),
    forbid (values the trace-id must not take), pids (inbound parent-ids)."""
    T, P, H = hex_id(rng, 16, True), hex_id(rng, 8), hex_id(rng, 16, True)
    T2, P2 = hex_id(rng, 16), hex_id(rng, 8)

    def tp(flags="01"):
        return "00-%s-%s-%s" % (T, P, flags)
    e = dict(rid=GEN, tid=RID, flags="03", ts=None, forbid={T, H, "0" * 32}, pids={P, P2})
    if kind == "none":
        h = []
    elif kind == "xrid":
        h = [("X-Request-ID", "cid-" + k)]
        e.update(rid="cid-" + k, tid=NEW)
    elif kind == "xrid-hex":
        h = [("x-request-id", H)]
        e.update(rid=H, tid=H, flags="01")
    elif kind == "xrid-hex-zero":
        h = [("X-Request-ID", "0" * 32)]
        e.update(rid="0" * 32, tid=NEW)
    elif kind == "xrid-hex-upper":
        h = [("X-Request-ID", H.upper())]
        e.update(rid=H.upper(), tid=NEW)
    elif kind == "xrid-invalid":
        h = [("X-Request-ID", 'bad id "%s"' % k)]
    elif kind == "xrid-long":  # the longest valid request id: 128 bytes
        v = "L-" + "".join(rng.choice(ID_CHARS) for _ in range(126))
        h = [("X-Request-ID", v)]
        e.update(rid=v, tid=NEW)
    elif kind == "xcorr":  # the request id from the next header in REQID_HEADERS
        h = [("X-Correlation-ID", "corr-" + k)]
        e.update(rid="corr-" + k, tid=NEW)
    elif kind in ("tp", "tp-00", "tp-0a"):
        flags = {"tp": "01", "tp-00": "00", "tp-0a": "0a"}[kind]
        h = [("traceparent", tp(flags))]
        e.update(rid=T, tid=T, flags="%02x" % (int(flags, 16) & 3))
    elif kind == "tp-ts":
        h = [("traceparent", tp()), ("tracestate", " a=1 , b=2")]
        e.update(rid=T, tid=T, flags="01", ts="a=1,b=2")
    elif kind == "tp-ts-multi":
        h = [("TraceParent", tp()), ("tracestate", "a=1"), ("TraceState", "b=x y ,c=3")]
        e.update(rid=T, tid=T, flags="01", ts="a=1,b=x y,c=3")
    elif kind == "tp-ts-split":  # field lines of one name, apart (RFC 9110 5.3)
        h = [("tracestate", "a=1,, b=2"), ("traceparent", tp()), ("tracestate", "c=3")]
        e.update(rid=T, tid=T, flags="01", ts="a=1,b=2,c=3")
    elif kind == "tp-ts-invalid":
        h = [("traceparent", tp()), ("tracestate", "a=1,B=2")]
        e.update(rid=T, tid=T, flags="01")
    elif kind == "tp-ts-empty":
        h = [("traceparent", tp()), ("tracestate", " , ")]
        e.update(rid=T, tid=T, flags="01")
    elif kind == "tp+xrid":
        h = [("X-Request-ID", "cid-" + k), ("traceparent", tp()),
             ("tracestate", "congo=t61rcWkgMzE")]
        e.update(rid="cid-" + k, tid=T, flags="01", ts="congo=t61rcWkgMzE")
    elif kind == "tp+xrid-hex":
        h = [("traceparent", tp()), ("X-Request-ID", H)]
        e.update(rid=H, tid=T, flags="01")
    elif kind == "tp-future":
        h = [("traceparent", "cc-%s-%s-01-what-ever" % (T, P))]
        e.update(rid=T, tid=T, flags="01")
    elif kind == "tp-upper":
        h = [("traceparent", "00-%s-%s-01" % (T.upper(), P)), ("tracestate", "a=1")]
    elif kind == "tp-ff-version":
        h = [("traceparent", "ff-%s-%s-01" % (T, P)), ("tracestate", "a=1")]
    elif kind == "tp-zero+xrid-hex":
        h = [("traceparent", "00-%s-%s-01" % ("0" * 32, P)), ("X-Request-ID", H)]
        e.update(rid=H, tid=H, flags="01")
    elif kind == "tp-two":  # two valid traceparent headers: invalid together
        h = [("traceparent", tp()), ("traceparent", "00-%s-%s-01" % (T2, P2)),
             ("tracestate", "a=1")]
        e["forbid"] |= {T2}
    elif kind == "tp-upper+xrid":
        h = [("X-Request-ID", "cid-" + k), ("traceparent", "00-%s-%s-01" % (T.upper(), P))]
        e.update(rid="cid-" + k, tid=NEW)
    elif kind == "tp-zero-parent":
        h = [("traceparent", "00-%s-%s-01" % (T, "0" * 16)), ("tracestate", "a=1")]
    else:
        raise ValueError(kind)
    if e["tid"] not in (NEW, RID):
        e["forbid"] = e["forbid"] - {e["tid"]}
    return h, e


class Inbound:
    def __init__(self, mode, k, kind, rng):
        self.mode, self.k, self.kind = mode, k, kind
        self.headers, self.exp = make_ids(kind, k, rng)
        self.close = False
        self.response = self.resp_id = self.error = None

    def rename(self, k):
        old, self.k = self.k, k
        self.headers = [(n, v.replace(old, k)) for n, v in self.headers]
        self.exp["rid"] = self.exp["rid"].replace(old, k)

    def raw(self, port):
        lines = ["GET /%s/%s HTTP/1.1" % (self.mode, self.k), "Host: 127.0.0.1:%d" % port]
        lines += ["%s: %s" % h for h in self.headers]
        if self.close:
            lines.append("Connection: close")
        return ("\r\n".join(lines) + "\r\n\r\n").encode()

    def expected_response(self):
        body = b"ok " + self.k.encode() + b"\n"
        return (b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n" % len(body) +
                (b"Connection: close\r\n" if self.close else b"") + b"\r\n" + body)


def first_write_size():
    """What the kernel takes in the first send() on a fresh non-blocking
    socket with SO_SNDBUF 4096 to a receiver with SO_RCVBUF 8192 (as in the
    nonblock mode); 8192 if it cannot be measured."""
    srv = socket.socket()
    try:
        srv.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8192)
        srv.bind(("127.0.0.1", 0))
        srv.listen(1)
        with socket.socket() as c:
            c.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
            c.settimeout(TIMEOUT)
            c.connect(srv.getsockname())
            peer, _ = srv.accept()
            c.setblocking(False)
            n = c.send(b"x" * 65536)
            peer.close()
            return n if 1000 < n < 60000 else 8192
    except OSError:
        return 8192
    finally:
        srv.close()


def inserted_len(exp):
    """Bytes the shim inserts for exp: traceparent, tracestate, X-Request-ID."""
    rid = 32 if exp["rid"] == GEN else len(exp["rid"])
    return 70 + (14 + len(exp["ts"]) if exp["ts"] else 0) + 16 + rid


def nonblock_k(base, head_len, mode="nonblock"):
    """base + "p<pad>", pad 1000-9999 chosen so that the nonblock (or
    iovmax) request's head is head_len bytes long (or as close above as the
    padding lines allow)."""
    lo, hi = 1000, 9999
    while lo < hi:
        mid = (lo + hi) // 2
        if nonblock_head_len("%sp%04d" % (base, mid), mode) < head_len:
            lo = mid + 1
        else:
            hi = mid
    return "%sp%04d" % (base, lo)


# where the kernel's first cut of a nonblock request falls, relative to the
# insertion point (L: the inserted lines' length); None: padding from k's hash
NB_CUTS = (-40, 0, 1, 16, 69, 70, "L-1", "L", "L+1", "L+2", 3000, None)
# the same for iovmax: always inside the inserted lines (bytes owed)
IOVMAX_CUTS = (16, 72, "L-1")
CUTS = {"nonblock": NB_CUTS, "iovmax": IOVMAX_CUTS}


def make_plan(rng, prefix, v6, first_write):
    """Inbound connections: the pooljob ones first (see run_pooljob), then
    every other request in keep-alive connections of 1-3, shuffled."""
    reqs, pooljob, i = [], [], 0
    for mi, mode in enumerate(MODES):
        if mode == "v6" and not v6:
            continue
        count = len(KINDS) if mode == "one" else PER_MODE.get(mode, 3)
        for j in range(count):
            kind = KINDS[j] if mode == "one" else KINDS[(mi * 3 + j * 7) % len(KINDS)]
            if mode == "pooljob":
                pooljob.append(Inbound(mode, "%s%03d" % (prefix, i), kind, rng))
            elif mode not in CUTS or CUTS[mode][j] is None:
                reqs.append(Inbound(mode, "%s%03d" % (prefix, i), kind, rng))
            else:
                # the head's length can step by 13 bytes where a padding line
                # begins: letters added to k fill such a gap
                base = "%s%03d" % (prefix, i)
                r = Inbound(mode, base + "p0000", kind, rng)
                for fill in range(14):
                    r.rename(base + "z" * fill + "p0000")
                    cut = CUTS[mode][j]
                    if isinstance(cut, str):
                        cut = inserted_len(r.exp) + int(cut[1:] or 0)
                    k = nonblock_k(base + "z" * fill, first_write - cut + 2, mode)
                    if nonblock_head_len(k, mode) == first_write - cut + 2:
                        break
                r.rename(k)
                reqs.append(r)
            i += 1
    rng.shuffle(reqs)
    conns = []
    if pooljob:  # the first and last on one keep-alive connection, the others alone
        conns = [[pooljob[0], pooljob[-1]]] + [[r] for r in pooljob[1:-1]]
        pooljob[-1].close = rng.random() < 0.5
    while reqs:  # keep-alive inbound connections of 1-3 requests
        n = min(len(reqs), rng.choice((1, 1, 2, 3)))
        conn, reqs = reqs[:n], reqs[n:]
        conn[-1].close = rng.random() < 0.5
        conns.append(conn)
    return conns


# ----------------------------------------------------------- capture server

class ParseError(Exception):
    pass


def request_len(buf):
    """Length of the first whole request in buf by its own framing, None
    when more bytes are needed; ParseError when it is not HTTP/1.x."""
    end = buf.find(b"\r\n\r\n")
    if end < 0:
        if len(buf) > 1 << 16:
            raise ParseError("no end of headers in %d bytes" % len(buf))
        return None
    lines = buf[:end].split(b"\r\n")
    if not re.fullmatch(rb"[A-Z]+ /\S* HTTP/1\.[01]", lines[0]):
        raise ParseError("bad request line %r" % lines[0][:120])
    length, is_chunked = None, False
    for line in lines[1:]:
        name, sep, value = line.partition(b":")
        if not sep or not re.fullmatch(rb"[!#$%&'*+.^_`|~0-9A-Za-z-]+", name):
            raise ParseError("malformed header line %r" % line[:120])
        value = value.strip(b" \t")
        if name.lower() == b"content-length":
            if length is not None or not value.isdigit():
                raise ParseError("bad or repeated Content-Length %r" % value)
            length = int(value)
        elif name.lower() == b"transfer-encoding":
            is_chunked = value.lower().endswith(b"chunked")
    pos = end + 4
    if not is_chunked:
        pos += length or 0
        return pos if len(buf) >= pos else None
    while True:
        eol = buf.find(b"\r\n", pos)
        if eol < 0:
            return None
        size_text = buf[pos:eol].split(b";")[0].strip()
        if not re.fullmatch(rb"[0-9a-fA-F]+", size_text):
            raise ParseError("bad chunk size line %r" % buf[pos:eol][:80])
        size, pos = int(size_text, 16), eol + 2
        if size == 0:
            while True:  # trailer lines up to the blank line
                eol = buf.find(b"\r\n", pos)
                if eol < 0:
                    return None
                if eol == pos:
                    return pos + 2
                pos = eol + 2
        if len(buf) < pos + size + 2:
            return None
        if buf[pos + size:pos + size + 2] != b"\r\n":
            raise ParseError("chunk data not followed by CRLF")
        pos += size + 2


class Capture:
    """The downstream: records every request's raw bytes by target."""

    def __init__(self, family, host):
        self.sock = socket.socket(family, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        # a small window, so that the nonblock mode's sender meets a full buffer
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8192)
        self.sock.bind((host, 0))
        self.sock.listen(128)
        self.port = self.sock.getsockname()[1]
        self.lock = threading.Lock()
        self.records, self.errors, self.serial = [], [], 0
        threading.Thread(target=self._accept_loop, daemon=True).start()

    def reset(self):
        with self.lock:
            self.records, self.errors = [], []

    def snapshot(self):
        with self.lock:
            return list(self.records), list(self.errors)

    def _accept_loop(self):
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            with self.lock:
                self.serial += 1
                serial = self.serial
            threading.Thread(target=self._serve, args=(conn, serial), daemon=True).start()

    def _serve(self, conn, serial):
        buf, index, small = b"", 0, False
        conn.settimeout(60)
        try:
            while True:
                try:
                    n = request_len(buf)
                except ParseError as e:
                    with self.lock:
                        self.errors.append("connection %d, request %d: %s (after %r)"
                                           % (serial, index, e, buf[:200]))
                    return
                if n is None:
                    # the nonblock mode's big body is read in small bites
                    data = conn.recv(2048 if small else 65536)
                    if not data:
                        if buf:
                            with self.lock:
                                self.errors.append("connection %d: EOF inside a request: %r"
                                                   % (serial, buf[:200]))
                        return
                    buf += data
                    small = small or buf.startswith((b"POST /down/nonblock/",
                                                     b"POST /down/iovmax/"))
                    continue
                raw, buf = buf[:n], buf[n:]
                target = raw.split(b" ", 2)[1].decode("ascii", "replace")
                with self.lock:
                    self.records.append((target, raw, serial, index))
                index += 1
                conn.sendall(DOWN_RESPONSE)
        except OSError as e:
            with self.lock:
                self.errors.append("connection %d: %s" % (serial, e))
        finally:
            conn.close()

    def close(self):
        self.sock.close()


# ------------------------------------------------------------------ client

def read_response(sock, buf):
    while b"\r\n\r\n" not in buf:
        data = sock.recv(65536)
        if not data:
            raise Failure("connection closed before the response head (%r)" % buf[:80])
        buf += data
    end = buf.index(b"\r\n\r\n") + 4
    m = re.search(rb"\r\ncontent-length:[ \t]*(\d+)", buf[:end], re.I)
    if not m:
        raise Failure("response without Content-Length: %r" % buf[:200])
    need = end + int(m.group(1))
    while len(buf) < need:
        data = sock.recv(65536)
        if not data:
            raise Failure("connection closed mid-body")
        buf += data
    return buf[:need], buf[need:]


def split_added_header(resp):
    """The response without a last header line X-Request-ID, and its id."""
    end = resp.find(b"\r\n\r\n")
    m = ADDED_HEADER_RE.search(resp, 0, end + 4) if end >= 0 else None
    if not m or m.end() != end + 4:
        return resp, None
    return resp[:m.start()] + resp[m.end() - 4:], m.group(1).decode()


def run_conn(conn, port, after_first=None):
    """The requests of conn on one connection; after_first() runs once the
    first response is in, the connection open and idle."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT) as s:
            buf = b""
            for i, r in enumerate(conn):
                s.sendall(r.raw(port))
                r.response, buf = read_response(s, buf)
                if buf:
                    raise Failure("bytes after a response: %r" % buf[:80])
                plain, r.resp_id = split_added_header(r.response)
                if plain != r.expected_response():
                    r.error = "inbound response altered: %r" % r.response[:300]
                if i == 0 and after_first:
                    after_first()
            if conn[-1].close and s.recv(65536):
                conn[-1].error = "bytes after Connection: close"
    except (OSError, Failure) as e:
        for r in conn:
            if r.response is None and r.error is None:
                r.error = "%s: %s" % (type(e).__name__, e)


def run_pooljob(conns, port):
    """The pooljob connections: the first one's first request (its handler
    starts the worker), then, while that connection stays open and idle,
    the other connections at once, then the first one's second request."""
    def others():
        with ThreadPoolExecutor(max_workers=max(1, len(conns) - 1)) as ex:
            list(ex.map(lambda c: run_conn(c, port), conns[1:]))
    run_conn(conns[0], port, after_first=others)


class Phase:
    """One run of the server; what it produced."""

    def __init__(self, name, shim, plan, cap4, cap6):
        self.name, self.shim, self.plan = name, shim, plan
        self.problems, self.rc, self.log = [], None, ""
        t0 = time.monotonic()
        cap4.reset()
        if cap6:
            cap6.reset()
        LOG_DIR.mkdir(parents=True, exist_ok=True)
        self.log_path = LOG_DIR / ("outbound-%s.log" % name)
        try:
            os.unlink(self.log_path)
        except FileNotFoundError:
            pass
        log_fd = os.open(self.log_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND, 0o644)
        log_read_fd = os.open("/proc/self/fd/%d" % log_fd, os.O_RDONLY)
        env = harness.clean_env()
        if shim:
            env.update(LD_PRELOAD=str(LIB), REQID_FIELDS=FIELDS)
        rfd, wfd = os.pipe()
        cmd = [str(SERVER), "0", "127.0.0.1:%d" % cap4.port, "--ready-fd", str(wfd)]
        if cap6:
            cmd += ["--down6", str(cap6.port)]
        try:
            proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=log_fd, stderr=log_fd,
                                    pass_fds=(wfd,), env=env, start_new_session=True)
        finally:
            os.close(wfd)
            os.close(log_fd)
        try:
            port = self._handshake(rfd, proc)
            pooljob = [c for c in plan if c[0].mode == "pooljob"]
            if pooljob:
                run_pooljob(pooljob, port)
            with ThreadPoolExecutor(max_workers=CONCURRENCY) as ex:
                list(ex.map(lambda c: run_conn(c, port), [c for c in plan if c not in pooljob]))
            with socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT) as s:
                s.sendall(b"GET /quit HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
                resp, _ = read_response(s, b"")
            if split_added_header(resp)[0] != (b"HTTP/1.1 200 OK\r\nContent-Length: 8\r\n"
                                               b"Connection: close\r\n\r\nok quit\n"):
                self.problems.append("/quit answered %r" % resp)
            self.rc = proc.wait(timeout=30)
        except (Failure, OSError, subprocess.TimeoutExpired) as e:
            self.problems.append("%s: %s" % (type(e).__name__, e))
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            proc.wait()
        finally:
            os.close(rfd)
        chunks = []
        while True:
            chunk = os.pread(log_read_fd, 1 << 20, sum(map(len, chunks)))
            if not chunk:
                break
            chunks.append(chunk)
        os.close(log_read_fd)
        self.log = b"".join(chunks).decode("utf-8", "replace")
        r4, e4 = cap4.snapshot()
        r6, e6 = cap6.snapshot() if cap6 else ([], [])
        self.records = [(t, raw, "v4", s, i) for t, raw, s, i in r4] + \
                       [(t, raw, "v6", s, i) for t, raw, s, i in r6]
        self.problems += ["downstream: " + e for e in e4 + e6]
        self.elapsed = time.monotonic() - t0

    @staticmethod
    def _handshake(rfd, proc):
        data, deadline = b"", time.monotonic() + TIMEOUT
        while True:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([rfd], [], [], left)[0]:
                raise Failure("no port from outbound_caller within %.0f s" % TIMEOUT)
            chunk = os.read(rfd, 64)
            if not chunk:
                break
            data += chunk
        if not re.fullmatch(rb"[1-9]\d*\n", data):
            raise Failure("bad handshake %r (exit %s)" % (data, proc.poll()))
        return int(data)


# ------------------------------------------------------------------ checker

def differs(what, got, want):
    n = min(len(got), len(want))
    at = next((i for i in range(n) if got[i] != want[i]), n)
    return ("%s: first difference at byte %d (got %d bytes, expected %d): got %r, want %r"
            % (what, at, len(got), len(want), got[max(0, at - 16):at + 48],
               want[max(0, at - 16):at + 48]))


class Want:
    """What the shim must insert into one outbound request: tp (traceparent
    and tracestate lines), tid (exact trace-id, or None: a new generated one
    not in forbid), flags, ts (bytes or None), rid (X-Request-ID value, or
    None: no such line)."""

    def __init__(self, tp, tid, flags, ts, rid, forbid=()):
        self.tp, self.tid, self.flags, self.ts, self.rid = tp, tid, flags, ts, rid
        self.forbid = set(forbid)

    def inserts(self):
        return self.tp or self.rid is not None


def check_outbound(app, raw, want):
    """Problems with raw, the bytes the downstream got for a request whose
    application bytes are app. Returns (problems, (tid, pid, flags) or None)."""
    if raw is None:
        return ["not received by the downstream"], None
    if not want.inserts():
        if raw != app:
            return [differs("not byte-identical to the application's bytes", raw, app)], None
        return [], None
    if raw == app:
        return ["nothing inserted: the application's bytes arrived unchanged"], None
    blank = app.index(b"\r\n\r\n") + 2  # the insertion point
    tail = app[blank:]
    if len(raw) <= len(app) or raw[:blank] != app[:blank] or not raw.endswith(tail):
        if len(raw) > len(app) and raw[:blank] == app[:blank]:
            return [differs("after the insertion point, not the application's bytes",
                            raw[len(raw) - len(tail):], tail)], None
        return [differs("not the application's bytes up to the insertion point",
                        raw[:blank], app[:blank])], None
    mid = raw[blank:len(raw) - len(tail)]
    problems, found = [], None
    expect = b""
    if want.tp:
        m = TP_LINE_RE.match(mid)
        if not m:
            return ["inserted %r: no well-formed traceparent line first" % mid[:300]], None
        tid, pid, flags = (g.decode() for g in m.groups())
        found = (tid, pid, flags)
        if want.tid is not None and tid != want.tid:
            problems.append("trace-id %s, expected %s" % (tid, want.tid))
        if want.tid is None:
            if set(tid) == {"0"}:
                problems.append("trace-id all zero")
            elif tid in want.forbid:
                problems.append("trace-id %s taken from an inbound value that does not "
                                "qualify" % tid)
        if set(pid) == {"0"}:
            problems.append("parent-id all zero")
        if flags != want.flags:
            problems.append("flags %s, expected %s" % (flags, want.flags))
        expect += b"traceparent: 00-%s-%s-%s\r\n" % (
            (want.tid or tid).encode(), pid.encode(), want.flags.encode())
        if want.ts is not None:
            expect += b"tracestate: " + want.ts + b"\r\n"
    if want.rid is not None:
        expect += b"X-Request-ID: " + want.rid + b"\r\n"
    if mid != expect:
        problems.append("inserted %r, expected exactly %r" % (mid[:400], expect[:400]))
    return problems, found


def self_test():
    """The checker on corrupted copies of a correct insertion. Returns
    (detected, total, misses)."""
    tid, pid = "4bf92f3577b34da6a3ce929d0e0e4736", "a2fb4a1d1a96d312"
    app = post("post", "SELF001", 0)
    blank = app.index(b"\r\n\r\n") + 2
    tp = b"traceparent: 00-%s-%s-01\r\n" % (tid.encode(), pid.encode())
    ts = b"tracestate: a=1,b=2\r\n"
    rid = b"X-Request-ID: cid-1\r\n"
    want = Want(True, tid, "01", b"a=1,b=2", b"cid-1")
    good = app[:blank] + tp + ts + rid + app[blank:]
    ins = lambda lines: app[:blank] + lines + app[blank:]  # noqa: E731
    body_at = app.index(b"\r\n\r\n") + 10
    cases = [
        ("nothing inserted", app),
        ("X-Request-ID line dropped", ins(tp + ts)),
        ("tracestate dropped", ins(tp + rid)),
        ("lines in another order", ins(rid + tp + ts)),
        ("traceparent twice", ins(tp + tp + ts + rid)),
        ("wrong flags", ins(tp.replace(b"-01\r\n", b"-03\r\n") + ts + rid)),
        ("uppercase trace-id", ins(tp.replace(tid.encode(), tid.upper().encode()) + ts + rid)),
        ("tracestate not normalised", ins(tp + b"tracestate: a=1, b=2\r\n" + rid)),
        ("inserted after the blank line", app[:blank + 2] + tp + ts + rid + app[blank + 2:]),
        ("inserted after the request line", app[:app.index(b"\r\n") + 2] + tp + ts + rid +
         app[app.index(b"\r\n") + 2:]),
        ("body byte flipped", good[:len(good) - 3] + b"X" + good[len(good) - 2:]),
        ("body byte lost", good[:body_at] + good[body_at + 1:]),
        ("header name case changed", ins(tp + ts + rid.replace(b"X-Request-ID", b"x-request-id"))),
        ("extra space", ins(tp.replace(b": ", b":  ") + ts + rid)),
    ]
    detected, misses = 0, []
    if check_outbound(app, good, want)[0]:
        misses.append("a correct insertion fails: %s" % check_outbound(app, good, want)[0])
    for what, bad in cases:
        if check_outbound(app, bad, want)[0]:
            detected += 1
        else:
            misses.append(what)
    none = Want(False, None, "03", None, None)
    total = len(cases) + 1
    if check_outbound(app, good, none)[0]:
        detected += 1
    else:
        misses.append("an insertion where none may be")
    return detected, total, misses


def expectations(r, shim):
    """Per inbound request: (rid, tid or None, problems). rid/tid: the exact
    values the shim must use (tid None: new, checked for consistency)."""
    e, problems = r.exp, []
    rid = e["rid"]
    if rid == GEN:
        rid = r.resp_id
        if shim and (rid is None or not GEN_RE.match(rid)):
            problems.append("no generated request id in the inbound response (X-Request-ID: %r)"
                            % rid)
            rid = None
        elif shim and rid in e["forbid"]:
            problems.append("generated request id %s is an inbound value that does not "
                            "qualify" % rid)
    elif shim and r.resp_id != rid:
        problems.append("inbound response's X-Request-ID %r, expected %r" % (r.resp_id, rid))
    tid = {RID: rid, NEW: None}.get(e["tid"], e["tid"])
    return rid, tid, problems


class Report:
    def __init__(self):
        self.passed = self.failed = 0

    def row(self, label, problems, info, verbose=False, limit=6):
        ok = not problems
        print("%s: %s  %s" % (label, "PASS" if ok else "FAIL", info))
        for p in problems[:limit if not verbose else len(problems)]:
            print("  problem: %s" % p)
        if len(problems) > limit and not verbose:
            print("  problem: ... %d more" % (len(problems) - limit))
        self.passed += ok
        self.failed += not ok


def check_phase(ph, rep, verbose):
    shim = ph.shim
    inbound = [r for conn in ph.plan for r in conn]
    by_k = {r.k: r for r in inbound}
    captured = {}
    for target, raw, fam, serial, index in ph.records:
        captured.setdefault(target, []).append((raw, fam))

    # the server's own account: its lines, stats, out lines
    run_problems = list(ph.problems)
    if ph.rc != 0:
        run_problems.append("server exited with status %s (see %s)" % (ph.rc, ph.log_path))
    lines = [ln for ln in ph.log.split("\n") if ln]
    for ln in lines:
        if "INCONSISTENT" in ln or "ERROR" in ln:
            run_problems.append("server: %s" % ln[:400])
    stats = None
    m = STATS_RE.search(ph.log)
    if not m:
        run_problems.append("no stats line from the server (log %s)" % ph.log_path)
    else:
        stats = dict(zip(STATS_KEYS, map(int, m.groups())))
        if stats["partial"] == 0 or stats["eagain"] == 0:
            run_problems.append("nonblock: partial writes or EAGAIN not exercised (partial=%d "
                                "eagain=%d)" % (stats["partial"], stats["eagain"]))
        if not shim and stats["head_cut"] == 0:
            run_problems.append("nonblock: no write was cut inside a request head (NB_CUTS "
                                "did not take effect)")
    msgs = []
    for ln in lines:
        if shim:
            try:
                pairs = json.loads(ln, object_pairs_hook=lambda p: p)
            except ValueError:
                pairs = None
            if not isinstance(pairs, list) or not pairs or pairs[-1][0] != "msg":
                run_problems.append("log line is not a JSON object ending in msg: %r" % ln[:200])
                continue
            msgs.append((pairs, pairs[-1][1]))
        else:
            msgs.append(([("msg", ln)], ln))
    outs = {}
    for pairs, msg in msgs:
        mo = OUT_RE.search(msg)
        if mo:
            who, k, _, n, mode, length, fnv = mo.groups()
            outs.setdefault("/down/%s/%s/%s" % (mode, k, n), []).append((int(length), fnv))

    # every outbound request the model expects, with what must be inserted
    expected = []  # (label row, inbound or None, n, target, app, want)
    ids = {}
    for mode, k in STARTUP:
        expected.append(("startup", None, 0, "/down/%s/%s/0" % (mode, k), model(mode, k)[0],
                         Want(False, None, "", None, None)))
    for r in inbound:
        rid, tid, ps = expectations(r, shim)
        ids[r.k] = (rid, tid, ps)
        tp_ins, rid_ins = INSERTS.get(r.mode, (True, True)) if shim else (False, False)
        e = r.exp
        for n, app in enumerate(model(r.mode, r.k)):
            want = Want(tp_ins, tid, e["flags"], e["ts"] and e["ts"].encode(),
                        rid.encode() if rid_ins and rid else (b"?" if rid_ins else None),
                        e["forbid"])
            expected.append((r.mode, r, n, "/down/%s/%s/%d" % (r.mode, r.k, n), app, want))
    known = {t for _, _, _, t, _, _ in expected}
    for target in sorted(set(captured) - known):
        run_problems.append("unexpected request at the downstream: %s" % target)
    for target in sorted(set(outs) - known):
        run_problems.append("server logged an unexpected request: %s" % target)

    rows = {}
    tids_seen = {}   # k -> set of trace-ids seen (outbound and logs)
    pids = []        # (pid, target)
    for label, r, n, target, app, want in expected:
        row = rows.setdefault(label, dict(problems=[], out=0, inserted=0, identical=0,
                                          inbound=set()))
        row["out"] += 1
        if r is not None:
            row["inbound"].add(r.k)
        who = "%s (%s)" % (target, r.kind if r else "start-up")
        if r is not None and r.error:
            row["problems"].append("%s: inbound: %s" % (who, r.error))
        if r is not None and ids[r.k][2] and n == 0:
            row["problems"] += ["%s: %s" % (who, p) for p in ids[r.k][2]]
        logged = outs.get(target, [])
        if len(logged) != 1:
            row["problems"].append("%s: the server logged it %d times" % (who, len(logged)))
        elif logged[0] != (len(app), "%08x" % fnv1a(app)):
            row["problems"].append("%s: the model is wrong: the server sent %d bytes fnv %s, "
                                   "the model has %d bytes fnv %08x"
                                   % (who, logged[0][0], logged[0][1], len(app), fnv1a(app)))
        got = captured.get(target, [])
        if len(got) > 1:
            row["problems"].append("%s: received %d times" % (who, len(got)))
        raw, fam = got[0] if got else (None, None)
        if r is not None and r.mode == "v6" and fam not in (None, "v6"):
            row["problems"].append("%s: came over %s" % (who, fam))
        if want.rid == b"?":
            row["problems"].append("%s: no request id to expect" % who)
            continue
        ps, found = check_outbound(app, raw, want)
        row["problems"] += ["%s: %s" % (who, p) for p in ps]
        if not ps:
            row["inserted" if want.inserts() else "identical"] += 1
        if found:
            tids_seen.setdefault(r.k, set()).add(found[0])
            pids.append((found[1], target, r))

    # where the kernel cut the nonblock requests' first writes
    firsts = re.findall(r"nonblock first write returned (\d+) of \d+ \(head (\d+)\)", ph.log)
    if "nonblock" in rows:
        rows["nonblock"]["extra"] = "  first writes cut inside the head %d, at %s" % (
            sum(1 for r, h in firsts if int(r) < int(h)),
            ",".join(sorted({r for r, _ in firsts}, key=int)))
    # iovmax: the first write returned at the insertion point (the rest of
    # the inserted lines owed), then writev(IOV_MAX)
    ifirsts = re.findall(r"iovmax first write returned (\d+) of \d+ \(head (\d+)\)", ph.log)
    icalls = [int(n) for n in re.findall(r"iovmax writev\(IOV_MAX\) calls (\d+)", ph.log)]
    if "iovmax" in rows:
        owed = sum(1 for r, h in ifirsts if int(r) == int(h) - 2)
        rows["iovmax"]["extra"] = ("  first writes returned at the insertion point %d (of %d), "
                                   "writev(IOV_MAX) calls %d"
                                   % (owed, len(ifirsts), sum(icalls)))
        if shim and ifirsts and not owed:
            rows["iovmax"]["problems"].append(
                "no first write returned at the insertion point (at %s, heads %s): the kernel "
                "did not cut inside the inserted lines, so nothing was owed at the writev of "
                "IOV_MAX iovecs" % (",".join(r for r, _ in ifirsts),
                                     ",".join(h for _, h in ifirsts)))
        if ifirsts and (len(icalls) != len(ifirsts) or 0 in icalls):
            rows["iovmax"]["problems"].append("not every iovmax request wrote by writev(IOV_MAX) "
                                              "after its first write (calls %s)" % icalls)
    for label in ["startup"] + [m for m in MODES if m in rows]:
        row = rows[label]
        rep.row("%s/%s" % (ph.name, label), row["problems"],
                "outbound %d (inserted ok %d, identical ok %d)  inbound %d%s"
                % (row["out"], row["inserted"], row["identical"], len(row["inbound"]),
                   row.get("extra", "")), verbose)

    # parent-ids: distinct, none an inbound one
    if shim:
        pid_problems = []
        seen = {}
        for pid, target, r in pids:
            if pid in seen:
                pid_problems.append("parent-id %s in %s and %s" % (pid, seen[pid], target))
            seen[pid] = target
            if pid in r.exp["pids"]:
                pid_problems.append("parent-id %s of %s is the inbound one" % (pid, target))
        want_tp = sum(1 for _, r, _, _, _, w in expected if r is not None and w.tp)
        if len(pids) < want_tp:
            pid_problems.insert(0, "%d traceparent lines to check, %d expected"
                                % (len(pids), want_tp))
        rep.row("%s/parent-ids" % ph.name, pid_problems, "%d parent-ids, %d distinct"
                % (len(pids), len(seen)), verbose)
        if want_tp and not pids:
            untouched = sum(1 for _, r, _, t, app, w in expected if r is not None and w.inserts()
                            and [raw for raw, _ in captured.get(t, [])] == [app])
            wanted = sum(1 for _, r, _, _, _, w in expected if r is not None and w.inserts())
            if untouched == wanted:
                run_problems.insert(0, "none of the %d outbound requests that must get trace "
                                    "context got anything inserted: %s does not inject it"
                                    % (wanted, LIB))

    # log lines
    if shim:
        log_problems, tagged, untagged, wrong, spans = [], 0, 0, 0, {}
        want_keys = FIELDS.split(",") + ["msg"]
        bad_keys = {}  # tuple of keys -> (count, example)
        for pairs, msg in msgs:
            keys = [k for k, _ in pairs]
            vals = dict(pairs)
            mw = WHO_RE.search(msg)
            r = by_k.get(mw.group(2)) if mw and mw.group(1) == "k" else None
            if r is None:
                if keys != ["msg"]:
                    log_problems.append("ids on a line outside any request: %r %r"
                                        % (vals.get("request_id"), msg[:160]))
                continue
            if keys == ["msg"]:
                if " post: " in msg or (r.mode in RECALL_EXEMPT and
                                        not msg.endswith(" start GET /%s/%s" % (r.mode, r.k))):
                    untagged += 1
                else:
                    log_problems.append("no ids on a line of %s (%s, mode %s) before its "
                                        "response: %r" % (r.k, r.kind, r.mode, msg[:160]))
                continue
            if keys != want_keys:
                n, ex = bad_keys.get(tuple(keys), (0, msg))
                bad_keys[tuple(keys)] = (n + 1, ex)
            tagged += 1
            rid, tid, _ = ids[r.k]
            line_wrong = False
            if "request_id" in vals and rid is not None and vals["request_id"] != rid:
                line_wrong = True
                log_problems.append("request_id %r on a line of %s (%s), expected %r: %r"
                                    % (vals["request_id"], r.k, r.kind, rid, msg[:120]))
            t = vals.get("trace_id")
            if t is None:
                pass
            elif not GEN_RE.match(t) or set(t) == {"0"}:
                line_wrong = True
                log_problems.append("trace_id %r on a line of %s" % (t, r.k))
            else:
                if tid is not None and t != tid:
                    line_wrong = True
                    log_problems.append("trace_id %s on a line of %s (%s), expected %s"
                                        % (t, r.k, r.kind, tid))
                tids_seen.setdefault(r.k, set()).add(t)
            wrong += line_wrong
            sp = vals.get("span_id")
            if sp is not None:
                if not SPAN_RE.match(sp) or set(sp) == {"0"}:
                    log_problems.append("span_id %r on a line of %s" % (sp, r.k))
                spans.setdefault(r.k, set()).add(sp)
        for keys, (n, ex) in bad_keys.items():
            log_problems.insert(0, "%d lines of requests with fields %s, expected %s; e.g. %r"
                                % (n, list(keys), want_keys, ex[:160]))
        for k, ts in sorted(tids_seen.items()):
            if len(ts) > 1:
                log_problems.append("inbound %s (%s): several trace-ids in its outbound "
                                    "requests and log lines: %s" % (k, by_k[k].kind, sorted(ts)))
            elif ids[k][1] is None and ts & by_k[k].exp["forbid"]:
                log_problems.append("inbound %s (%s): trace-id %s is an inbound value that "
                                    "does not qualify" % (k, by_k[k].kind, list(ts)[0]))
        for k, ss in sorted(spans.items()):
            if len(ss) > 1:
                log_problems.append("inbound %s: several span_ids %s" % (k, sorted(ss)))
        right = tagged - wrong
        rep.row("%s/logs" % ph.name, log_problems,
                "%d lines, %d of requests with ids, %d without (after the response, or "
                "after a wait in %s); precision %s, recall %s"
                % (len(msgs), tagged, untagged, "/".join(RECALL_EXEMPT),
                   pct(right, tagged), pct(right, tagged + untagged)), verbose)

    st = ("outbound %(outbound)d partial %(partial)d eagain %(eagain)d head_cut %(head_cut)d"
          % stats) if stats else "no stats"
    rep.row(ph.name, run_problems, "(%.1f s; %d inbound requests, %d captured; server: %s)"
            % (ph.elapsed, len(inbound), len(ph.records), st), verbose, limit=20)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seed", type=int, default=None)
    ap.add_argument("-v", "--verbose", action="store_true")
    ap.add_argument("--runs", default=",".join(RUNS))
    a = ap.parse_args(argv)
    t_all = time.monotonic()
    runs = a.runs.split(",")
    if set(runs) - set(RUNS):
        ap.error("unknown runs: %s" % ",".join(sorted(set(runs) - set(RUNS))))
    for path, what in ((LIB, "run `make` or set REQID_LIB"), (SERVER, "run `make servers`")):
        if not path.exists() and (path != LIB or "shim" in runs):
            print("%s missing: %s\n0 passed, 1 failed" % (path, what))
            return 1
    seed = random.randrange(1 << 30) if a.seed is None else a.seed
    print("seed %d (rerun with --seed %d); library %s" % (seed, seed, LIB))
    rng = random.Random(seed)
    rep = Report()
    det, total, misses = self_test()
    rep.row("checker self-test", ["not detected: %s" % m for m in misses],
            "(%d/%d corruptions detected)" % (det, total))
    first_write = first_write_size()
    cap4 = Capture(socket.AF_INET, "127.0.0.1")
    try:
        cap6 = Capture(socket.AF_INET6, "::1")
    except OSError as e:
        cap6 = None
        print("note: no IPv6 loopback (%s): mode v6 left out" % e)
    try:
        for name in runs:
            prefix = "".join(rng.choice("ABCDEFGHJKLMNPQRSTUVWXYZ") for _ in range(4))
            plan = make_plan(rng, prefix, cap6 is not None, first_write)
            ph = Phase(name, name == "shim", plan, cap4, cap6)
            check_phase(ph, rep, a.verbose)
    finally:
        cap4.close()
        if cap6:
            cap6.close()
    print("total %.1f s" % (time.monotonic() - t_all))
    print("%d passed, %d failed" % (rep.passed, rep.failed))
    return 1 if rep.failed or rep.passed == 0 else 0


if __name__ == "__main__":
    sys.exit(main())
