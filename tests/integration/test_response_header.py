#!/usr/bin/env python3
"""test_response_header.py - the response header libreqid.so adds
(REQID_RESPONSE_HEADER, default X-Request-ID) under partial writes, for every
write call family: write, writev, send, sendto, sendmsg, and headers by
write() followed by the body by sendfile().

Drives build/servers/partial_writer (tests/servers/partial_writer.c): a
single-threaded poll() server that sets SO_SNDBUF to 4096 and O_NONBLOCK on
each connection and writes large responses, looping on partial writes and
EAGAIN, in the call family and the split into calls that the request's
target names (/[own/]FAMILY/SPLIT/TOKEN[?size=N]). It checks every return
value it sees and says "INCONSISTENT ..." on stderr (exit 3) when one does
not add up. Clients read slowly (SO_RCVBUF 8192, recv()s of 256-4096 bytes
with a pause after each), eight at once, 1-4 keep-alive requests per
connection, and often send their next request as soon as the previous
response starts arriving, so that the next response's header block meets a
full socket buffer.

The exact bytes the server writes for a target are modelled here
(expected_response: status line, headers with padding that varies with the
target, body of a pattern derived from the target, with fake response heads
inside). Runs, each on a fresh server (port through a pipe handshake, then a
probe connection; no sleeps to synchronise):
  bare   no shim: every response is exactly the model (this validates the
         model and the server), no X-Request-ID except the /own/ one
  shim   LD_PRELOAD=$REQID_LIB (default build/libreqid.so): exactly one X-Request-ID header in
         every response; for /own/ targets it is the application's and the
         response is exactly the model; otherwise the added line is the last
         header line, its value is the request's X-Request-ID when the
         request gave a valid one (exact string) and a fresh generated id (32
         lowercase hex, all distinct) when it gave none or an invalid one,
         and the response without that line is exactly the model
  off    REQID_RESPONSE_HEADER= (empty): exactly the model, nothing added
  other  REQID_RESPONSE_HEADER=X-Other: no X-Request-ID added (the /own/
         one stays the only one); exactly one X-Other line, last, with the
         id; otherwise exactly the model
  long   REQID_RESPONSE_HEADER=<63-character name>: as other; with 128-byte
         request ids the added line is the longest the shim can owe
For every response: status line, header syntax, one Content-Length equal to
the body's length, the body identical to the pattern, nothing after the
last response. For every run: no INCONSISTENT or ERROR line from the
server, partial writes and EAGAIN really happened, and the server exits 0
(SIGTERM, or a /quit request). shim and long add bursts of small responses
(at most BURST_BUDGET seconds) until the server has seen, at least
BURST_WANT times, a write that covered a header block's end return exactly
at that end (its stat cut_at_blank): with the shim, the kernel cut that
write at the insertion point, inside the added header (the shim then owes
the header's rest, sent first by the application's next call) or just after
it; none at all fails the run, as the owed-bytes path would be untested.
bare and shim also run the IOV_MAX case (IOVMAX_CUTS): one response per
connection, family iovmax (the first call a write() of the whole response,
every later one a writev() of IOV_MAX non-empty iovecs), its header block
padded (?pad=P) so that the kernel's first cut on a fresh connection whose
reader is paused (measured: first_write_size()) falls inside the added
X-Request-ID line: the shim owes the rest of that line when the writev of
1024 iovecs comes, and must send the owed bytes alone first (it used to
spin forever in conn_output; partial_writer's alarm ends it then, exit 4,
and the test's socket timeout gives up). Checked as every response, plus:
the server's iovmax line for it (the writev(IOV_MAX) calls happened and
every return adds up to the response's length), and in the shim run at
least one first call returned exactly at the insertion point (bytes owed).
Server logs: build/integration/response_header-RUN.log. A self-test of
the checker on corrupted copies of real responses proves that it can fail.

Prints one line per run and call family, one per run, "N passed, M failed"
last, and exits non-zero on any failure. Python 3 standard library only;
must never edit the shim or relax an expectation to make a run pass.

    python3 tests/integration/test_response_header.py [--seed N] [-v] [--runs bare,shim]
"""

import argparse
import os
import random
import re
import select
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import harness

ROOT = Path(__file__).resolve().parents[2]
LIB = Path(os.environ.get("REQID_LIB") or ROOT / "build" / "libreqid.so").resolve()
SERVER = ROOT / "build" / "servers" / "partial_writer"
LOG_DIR = ROOT / "build" / "integration"

FAMILIES = ("write", "writev", "send", "sendto", "sendmsg", "sendfile")  # plan and bursts
SPLITS = ("one", "status", "blank", "cr", "hb", "bytes")
DEFAULT_BODY = 200 * 1024
CLIENT_RCVBUF = 8192  # at 4096, loopback TCP stalls in 200 ms rounds for seconds on some
                      # response sizes, with or without the shim
CONCURRENCY = 8
TIMEOUT = 5.0         # seconds any one step may take
SLOW = 3.0            # a connection or step slower than this gets a note
BURST_WANT = 3        # cuts at a header block's end wanted per burst run
BURST_BUDGET = 6.0    # seconds of bursts at most per run
BURST_MIN, BURST_MAX = 500, 6000  # burst body sizes
IOVMAX_RUNS = ("bare", "shim")
IOVMAX_BODY = 20000  # >= 1022: the rest after the header block fills 1024 iovecs
IOVMAX_ID_LEN = 40   # the request ids given in the IOV_MAX case
# where the kernel's first cut falls, in bytes after the insertion point,
# as fractions of the added line's length (strictly inside it)
IOVMAX_CUTS = (0.25, 0.5, 0.75)
MAX_PAD = 120 * 90
PAUSE = 0.05         # the IOV_MAX case's reader waits this long after the first bytes
IOVMAX_LINE_RE = re.compile(r"iovmax conn=\d+ target=(\S+) first=(-?\d+) blank=(\d+) "
                            r"maxv_calls=(\d+) maxv_sum=(\d+) believed=(\d+) total=(\d+)")
LONG_HEADER = "X-Other-Response-Header-Name-Sixty-Three-Characters-Long-abcdef"
assert len(LONG_HEADER) == 63

GEN_RE = re.compile(rb"^[0-9a-f]{32}$")
HEADER_LINE_RE = re.compile(rb"^([!#$%&'*+.^_`|~0-9A-Za-z-]+): (.*)$")
STATS_KEYS = ("responses", "calls", "partial", "eagain", "eintr", "cut_at_blank", "errors")
STATS_RE = re.compile(r"responses=(\d+) calls=(\d+) partial=(\d+) eagain=(\d+) eintr=(\d+) "
                      r"cut_at_blank=(\d+) errors=(\d+)")
FAKE_HEAD = (b"\r\n\r\nHTTP/1.1 200 OK\r\nX-Request-ID: fake\r\n"
             b"Content-Length: 0\r\n\r\n")
PAD_CHARS = (b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
             b"abcdefghijklmnopqrstuvwxyzABCD")
OWN_NAMES = (b"X-Request-ID", b"x-request-id", b"X-REQUEST-ID")
ID_CHARS = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._:-"

RUNS = (  # name, shim, REQID_RESPONSE_HEADER (None: unset), how to stop, bursts
    ("bare", False, None, "sigterm", False),
    ("shim", True, None, "sigterm", True),
    ("off", True, "", "quit", False),
    ("other", True, "X-Other", "quit", False),
    ("long", True, LONG_HEADER, "sigterm", True),
)


class Failure(Exception):
    pass


# -------------------------------------------------------------------- model

def fnv1a(data):
    h = 2166136261
    for b in data:
        h = ((h ^ b) * 16777619) & 0xffffffff
    return h


def body_len(target):
    m = re.search(r"\?size=(\d+)(?:&pad=\d+)?$", target)
    if m:
        return int(m.group(1))
    return DEFAULT_BODY + fnv1a(target.encode()) % 4099


_pattern_cache = {}
_pattern_lock = threading.Lock()


def pattern(target):
    """The body partial_writer.c's pattern() writes for target: xorshift32
    from the target's FNV-1a hash, with a fake response head every 8 KiB."""
    with _pattern_lock:
        cached = _pattern_cache.get(target)
    if cached is not None:
        return cached
    n = body_len(target)
    h = fnv1a(target.encode())
    x = h or 1
    words = []
    append = words.append
    for _ in range((n + 3) // 4):
        x ^= (x << 13) & 0xffffffff
        x ^= x >> 17
        x ^= (x << 5) & 0xffffffff
        append(x)
    out = bytearray(struct.pack("<%dI" % len(words), *words)[:n])
    off = 1000 + h % 1000
    while off + len(FAKE_HEAD) <= n:
        out[off:off + len(FAKE_HEAD)] = FAKE_HEAD
        off += 8192
    out = bytes(out)
    with _pattern_lock:
        _pattern_cache[target] = out
    return out


def expected_response(target, own, token, close):
    """Exactly what partial_writer writes for target (see its prepare())."""
    return expected_head(target, own, token, close) + pattern(target)


def expected_head(target, own, token, close):
    """The header block of expected_response, final CRLFCRLF included."""
    h = fnv1a(target.encode())
    lines = [b"HTTP/1.1 200 OK", b"Server: partial_writer",
             b"Content-Type: application/octet-stream"]
    if own:
        lines.append(OWN_NAMES[h % 3] + b": own-" + token.encode())
    lines.append(b"Content-Length: %d" % body_len(target))
    m = re.search(r"&pad=(\d+)$", target)
    pad, i = int(m.group(1)) if m else (h >> 8) % 9000, 0
    while pad > 0 and i < 120:
        n = min(pad, 90)
        pad -= n
        lines.append(b"X-Pad-%02d: %s" % (i, PAD_CHARS[:n]))
        i += 1
    if close:
        lines.append(b"Connection: close")
    return b"\r\n".join(lines) + b"\r\n\r\n"


# --------------------------------------------------------------------- plan

class Req:
    def __init__(self, family, split, own, token, size=None, pad=None):
        self.family, self.split, self.own, self.token = family, split, own, token
        self.target = "/%s%s/%s/%s%s%s" % ("own/" if own else "", family, split, token,
                                            "" if size is None else "?size=%d" % size,
                                            "" if pad is None else "&pad=%d" % pad)
        self.id_kind, self.given, self.id_header = "none", None, "X-Request-ID"
        self.close = self.early = self.burst = False
        self.response = self.error = None

    def raw(self, port):
        lines = ["GET %s HTTP/1.1" % self.target, "Host: 127.0.0.1:%d" % port,
                 "User-Agent: reqid-partial/1"]
        if self.id_kind == "given":
            lines.append("%s: %s" % (self.id_header, self.given))
        elif self.id_kind == "invalid":
            lines.append('%s: bad id "%s"' % (self.id_header, self.token))
        if self.close:
            lines.append("Connection: close")
        return ("\r\n".join(lines) + "\r\n\r\n").encode()

    def own_value(self):
        return b"own-" + self.token.encode()

    def expected(self):
        return expected_response(self.target, self.own, self.token, self.close)


def give_ids(rng, reqs, kinds):
    for j, r in enumerate(reqs):
        r.id_kind = kinds[j % len(kinds)]
        r.id_header = rng.choice(("X-Request-ID", "x-request-id", "X-REQUEST-ID"))
        if r.id_kind == "given":
            base = rng.choice(("cid-", "Req.", "trace:", "a_b-")) + r.token + "-"
            if rng.random() < 0.5:  # the longest id the shim accepts: 128 bytes
                r.given = base + "".join(rng.choice(ID_CHARS) for _ in range(128 - len(base)))
            else:
                r.given = base + "%d" % rng.randrange(10 ** 6)


def group(rng, reqs):
    """Connections of 1-4 requests; the last one sometimes with Connection:
    close; most others send the next request early."""
    rng.shuffle(reqs)
    conns = []
    while reqs:
        k = min(len(reqs), rng.choice((1, 2, 2, 3, 3, 4)))
        conn, reqs = reqs[:k], reqs[k:]
        conn[-1].close = rng.random() < 0.5
        for r in conn[:-1]:
            r.early = rng.random() < 0.75
        conns.append(conn)
    return conns


def make_plan(rng, prefix):
    """Every family x split x own once with the default body, plus small
    bodies (0, 1 and 3000 bytes) on random families and splits."""
    reqs, i = [], 0
    for fam in FAMILIES:
        for split in SPLITS:
            for own in (False, True):
                reqs.append(Req(fam, split, own, "%s%03d" % (prefix, i)))
                i += 1
    for size in (0, 1, 3000, 0, 1, 3000):
        reqs.append(Req(rng.choice(FAMILIES), rng.choice(SPLITS), rng.random() < 0.3,
                        "%s%03d" % (prefix, i), size))
        i += 1
    give_ids(rng, reqs, ["given", "none", "invalid", "given"])
    return group(rng, reqs)


def make_burst(rng, prefix, n_conns=8, per_conn=8):
    """Keep-alive connections of small responses, each next request sent as
    soon as the previous response starts to arrive: header blocks (up to 9
    KB of padding) written into a full socket buffer, where the kernel cuts
    writes anywhere."""
    conns = []
    for c in range(n_conns):
        conn = []
        for j in range(per_conn):
            split = rng.choice(("one", "status", "cr", "hb", "one", "hb", "blank", "bytes"))
            r = Req(rng.choice(FAMILIES), split, rng.random() < 0.1,
                    "%sb%02d%02d" % (prefix, c, j), rng.randrange(BURST_MIN, BURST_MAX))
            r.burst = True
            conn.append(r)
        give_ids(rng, conn, ["given", "none", "given", "none", "invalid"])
        conn[-1].close = True
        for r in conn[:-1]:
            r.early = True
        conns.append(conn)
    return conns


def first_write_size():
    """What the kernel takes in the first send() of 64 KiB on a fresh
    accepted non-blocking socket with SO_SNDBUF 4096 (as partial_writer
    sets it) to a client with SO_RCVBUF CLIENT_RCVBUF that does not read;
    8192 if it cannot be measured."""
    srv = socket.socket()
    try:
        srv.bind(("127.0.0.1", 0))
        srv.listen(1)
        with socket.socket() as c:
            c.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, CLIENT_RCVBUF)
            c.settimeout(TIMEOUT)
            c.connect(srv.getsockname())
            peer, _ = srv.accept()
            with peer:
                peer.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
                peer.setblocking(False)
                n = peer.send(b"x" * 65536)
            return n if 1000 < n < 60000 else 8192
    except OSError:
        return 8192
    finally:
        srv.close()


def make_iovmax(prefix, name, first_write):
    """The IOV_MAX case: one request per IOVMAX_CUTS, its header block
    padded so that the kernel's first cut (first_write bytes) falls that
    far into the added X-Request-ID line. Returns (requests, problems)."""
    reqs, problems = [], []
    added = len(b"X-Request-ID: \r\n") + IOVMAX_ID_LEN
    for j, frac in enumerate(IOVMAX_CUTS):
        token = "%si%s%d" % (prefix, name[0], j)
        into = max(1, min(added - 1, round(added * frac)))
        # the insertion point (the final CRLF) with pad P: P bytes in lines
        # of at most 90, 12 more bytes per line ("X-Pad-NN: ", CRLF)
        blank0 = len(expected_head(Req("iovmax", "one", False, token, IOVMAX_BODY, 0).target,
                                   False, token, True)) - 2
        pad = min(range(MAX_PAD + 1), key=lambda p: abs(blank0 + p + 12 * -(-p // 90) -
                                                         (first_write - into)))
        r = Req("iovmax", "one", False, token, IOVMAX_BODY, pad)
        r.close, r.id_kind = True, "given"
        r.given = ("iovmax-%s-" % token).ljust(IOVMAX_ID_LEN, "x")
        blank = len(expected_head(r.target, False, token, True)) - 2
        if not 0 < first_write - blank < added:
            problems.append("IOV_MAX case: cannot put the first cut (%d bytes) inside the "
                            "added line with padding (%s: insertion point %d)"
                            % (first_write, r.target, blank))
        reqs.append(r)
    return reqs, problems


# ------------------------------------------------------------------- client

class SlowReader:
    """recv()s of 256-4096 bytes with a short pause after each."""

    def __init__(self, sock, rng):
        self.sock, self.rng, self.buf = sock, rng, b""

    def _more(self, limit=None):
        n = self.rng.choice((256, 512, 1024, 2048, 4096))
        if limit is not None:
            n = max(1, min(n, limit))
        data = self.sock.recv(n)
        time.sleep(0.0002)
        return data

    def until(self, mark, first=None, max_len=32768):
        """Bytes up to and including mark; first() runs once data came."""
        while mark not in self.buf:
            if len(self.buf) > max_len:
                raise Failure("no %r within %d bytes: %r" % (mark, max_len, self.buf[:200]))
            data = self._more()
            if not data:
                raise Failure("connection closed before end of headers (%d bytes: %r)"
                              % (len(self.buf), self.buf[:200]))
            self.buf += data
            if first:
                first()
                first = None
        if first:
            first()
        end = self.buf.index(mark) + len(mark)
        out, self.buf = self.buf[:end], self.buf[end:]
        return out

    def exactly(self, n):
        parts, have = [self.buf[:n]], len(self.buf[:n])
        self.buf = self.buf[n:]
        while have < n:
            data = self._more(n - have)
            if not data:
                raise Failure("connection closed mid-body (%d of %d bytes)" % (have, n))
            parts.append(data)
            have += len(data)
        return b"".join(parts)

    def rest(self):
        """Everything until the peer closes."""
        parts = [self.buf]
        self.buf = b""
        while True:
            data = self.sock.recv(65536)
            if not data:
                return b"".join(parts)
            parts.append(data)


def content_length(head):
    m = re.findall(rb"\r\ncontent-length:[ \t]*(\d+)[ \t]*\r\n", head, re.I)
    if len(m) != 1:
        raise Failure("response head without exactly one Content-Length: %r" % head[:400])
    return int(m[0])


def run_conn(conn, port, seed):
    """Runs one client connection; returns how long it took."""
    t0 = time.monotonic()
    rng = random.Random(seed)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, CLIENT_RCVBUF)
        sock.settimeout(TIMEOUT)
        sock.connect(("127.0.0.1", port))
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        reader = SlowReader(sock, rng)
        sent_ahead = False
        for i, r in enumerate(conn):
            if not sent_ahead:
                sock.sendall(r.raw(port))
            sent_ahead = False
            nxt = conn[i + 1] if r.early and i + 1 < len(conn) else None
            # the next request goes out once this response started to
            # arrive: the server has read this request, and reads the
            # next only when done writing this response
            head = reader.until(b"\r\n\r\n", first=nxt and (lambda: sock.sendall(nxt.raw(port))))
            sent_ahead = nxt is not None
            r.response = head + reader.exactly(content_length(head))
        if conn[-1].close:
            tail = reader.rest()
            if tail:
                conn[-1].error = "bytes after Connection: close: %r" % tail[:80]
        elif reader.buf:
            conn[-1].error = "bytes after the last response: %r" % reader.buf[:80]
    except (OSError, Failure) as e:
        for r in conn:
            if r.response is None and r.error is None:
                r.error = "%s: %s" % (type(e).__name__, e)
    finally:
        sock.close()
    return time.monotonic() - t0


def run_paused(r, port):
    """r alone on a fresh connection whose reader pauses (PAUSE) once the
    first bytes came: the server's first call meets a receiver that does
    not read. Then reads the whole response slowly; r.error on failure
    (a read blocked for TIMEOUT: the deadline)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, CLIENT_RCVBUF)
        sock.settimeout(TIMEOUT)
        sock.connect(("127.0.0.1", port))
        sock.sendall(r.raw(port))
        if not select.select([sock], [], [], TIMEOUT)[0]:
            raise Failure("no response within %.0f s" % TIMEOUT)
        time.sleep(PAUSE)
        reader = SlowReader(sock, random.Random(r.target))
        head = reader.until(b"\r\n\r\n")
        r.response = head + reader.exactly(content_length(head))
        tail = reader.rest()
        if tail:
            r.error = "bytes after Connection: close: %r" % tail[:80]
    except (OSError, Failure) as e:
        r.error = "%s: %s" % (type(e).__name__, e)
    finally:
        sock.close()


def check_iovmax_log(text, reqs, shim):
    """The server's iovmax lines for reqs. Returns (problems, info)."""
    lines = {m.group(1): m for m in IOVMAX_LINE_RE.finditer(text)}
    problems, owed, firsts, calls = [], 0, [], 0
    for r in reqs:
        m = lines.get(r.target)
        if not m:
            problems.append("%s: no iovmax line from the server (its writes did not finish)"
                            % r.target)
            continue
        first, blank, n, msum, believed, total = map(int, m.groups()[1:])
        firsts.append("%d/%d" % (first, blank))
        calls += n
        if n == 0:
            problems.append("%s: no writev() of IOV_MAX iovecs was made (first call returned "
                            "%d of %d)" % (r.target, first, total))
        if total != len(r.expected()) or believed != total or max(first, 0) + msum != total:
            problems.append("%s: returns do not add up: first call %d + writev(IOV_MAX) calls "
                            "%d = %d, believed %d, response %d bytes (model %d)"
                            % (r.target, first, msum, max(first, 0) + msum, believed, total,
                               len(r.expected())))
        owed += first == blank
    if shim and firsts and not owed:
        problems.append("no first call returned at the insertion point (first/insertion "
                        "point: %s): the kernel did not cut inside the added line, so no "
                        "bytes were owed at the writev of IOV_MAX iovecs" % " ".join(firsts))
    info = ("%d responses; first call returned at the insertion point (bytes owed) in %d; "
            "writev(IOV_MAX) calls %d; first/insertion point %s"
            % (len(reqs), owed, calls, " ".join(firsts) or "-"))
    return problems, info


# ------------------------------------------------------------------ checker

def first_difference(a, b):
    n = min(len(a), len(b))
    for i in range(0, n, 4096):
        if a[i:i + 4096] != b[i:i + 4096]:
            for j in range(i, min(n, i + 4096)):
                if a[j] != b[j]:
                    return j
    return n


def differs(what, got, want):
    at = first_difference(got, want)
    return ("%s: first difference at byte %d of %d (expected %d bytes): got %r, want %r"
            % (what, at, len(got), len(want), got[at:at + 48], want[at:at + 48]))


def check_response(r, raw, header_name):
    """Problems with raw as the answer to r when the shim adds header_name
    (bytes; None: no shim, or the header is disabled). Returns (problems,
    the id the shim added or None)."""
    problems = []
    end = raw.find(b"\r\n\r\n")
    if end < 0:
        return ["no end of headers: %r" % raw[:300]], None
    head, body = raw[:end], raw[end + 4:]
    lines = head.split(b"\r\n")
    if lines[0] != b"HTTP/1.1 200 OK":
        problems.append("status line %r" % lines[0])
    headers = []
    for line in lines[1:]:
        m = HEADER_LINE_RE.match(line)
        if m:
            headers.append((m.group(1).lower(), m.group(2)))
        else:
            problems.append("malformed header line %r" % line[:120])
    lengths = [v for n, v in headers if n == b"content-length"]
    want_len = body_len(r.target)
    if len(lengths) != 1 or lengths[0] != str(want_len).encode() or len(body) != want_len:
        problems.append("Content-Length %r, body %d bytes, expected %d"
                        % (lengths, len(body), want_len))
    if body != pattern(r.target):
        problems.append(differs("body not identical to the pattern", body, pattern(r.target)))

    rids = [v for n, v in headers if n == b"x-request-id"]
    want = r.expected()
    adds = header_name is not None and not (r.own and header_name.lower() == b"x-request-id")
    if header_name is None or header_name.lower() != b"x-request-id" or r.own:
        # nothing of X-Request-ID may be added: only the application's
        want_rids = [r.own_value()] if r.own else []
        if rids != want_rids:
            problems.append("X-Request-ID headers %r, expected %r" % (rids[:4], want_rids))
    if not adds:
        if raw != want:
            problems.append(differs("response altered", raw, want))
        return problems, None

    added = [v for n, v in headers if n == header_name.lower()]
    if len(added) != 1:
        problems.append("%d %s headers (%r), expected exactly one"
                        % (len(added), header_name.decode(), added[:4]))
        return problems, None
    added_id = added[0]
    if r.id_kind == "given":
        if added_id != r.given.encode():
            problems.append("%s: %r, expected the request's %r"
                            % (header_name.decode(), added_id, r.given))
    elif not GEN_RE.match(added_id):
        problems.append("%s: %r is not a generated id (request's id: %s)"
                        % (header_name.decode(), added_id, r.id_kind))
    line = header_name + b": " + added_id
    if not head.endswith(b"\r\n" + line):
        problems.append("%r is not the last header line" % line[:80])
    else:
        stripped = head[:len(head) - len(line) - 2] + raw[end:]
        if stripped != want:
            problems.append(differs("without the added line, not the application's bytes",
                                    stripped, want))
    return problems, added_id


def checker_self_test(reqs):
    """Corrupts real responses of the shim run in ways the checker must
    catch. Returns (detected, total, misses)."""
    def pick(pred):
        for r in reqs:
            if r.response is not None and not r.error and pred(r):
                return r
        return None

    gen = pick(lambda r: not r.own and r.id_kind != "given" and body_len(r.target) > 9000
               and b"\r\nX-Pad-00: " in r.response)
    given = pick(lambda r: not r.own and r.id_kind == "given" and body_len(r.target) > 9000)
    own = pick(lambda r: r.own and body_len(r.target) > 9000)
    if not (gen and given and own):
        return 0, 1, ["no responses to corrupt"]
    name = b"X-Request-ID"

    def head_end(raw):
        return raw.index(b"\r\n\r\n")

    def last_line_start(raw):
        return raw.rindex(b"\r\n", 0, head_end(raw))

    def drop_line(raw):
        return raw[:last_line_start(raw)] + raw[head_end(raw):]

    def dup_line(raw):
        e, s = head_end(raw), last_line_start(raw)
        return raw[:e] + raw[s:e] + raw[e:]

    def first_line(raw):
        e, s = head_end(raw), last_line_start(raw)
        status_end = raw.index(b"\r\n")
        return raw[:status_end + 2] + raw[s + 2:e] + b"\r\n" + raw[status_end + 2:s] + raw[e:]

    def flip(raw, at):
        return raw[:at] + bytes([raw[at] ^ 1]) + raw[at + 1:]

    def into_body(raw):
        e, s = head_end(raw), last_line_start(raw)
        line, body = raw[s:e], raw[e + 4:]
        return raw[:s] + b"\r\n\r\n" + body[:1000] + line + body[1000:len(body) - len(line)]

    def pad_altered(raw):
        return raw.replace(b"X-Pad-00: ", b"X-Pad-00:  ", 1)

    cases = [
        ("body byte flipped", gen, lambda raw: flip(raw, len(raw) - 7000)),
        ("added header dropped", gen, drop_line),
        ("added header twice", given, dup_line),
        ("added header first, not last", gen, first_line),
        ("given id altered", given,
         lambda raw: raw.replace(given.given.encode(), given.given.encode()[:-1] +
                                 (b"Y" if given.given.endswith("X") else b"X"), 1)),
        ("one body byte lost", gen,
         lambda raw: raw[:len(raw) - 5000] + raw[len(raw) - 4999:] + b"\0"),
        ("header bytes moved into the body", gen, into_body),
        ("header added to an /own/ response", own,
         lambda raw: raw.replace(b"\r\n\r\n", b"\r\nX-Request-ID: " + b"0" * 32 + b"\r\n\r\n", 1)),
        ("generated id instead of the given one", given,
         lambda raw: raw.replace(given.given.encode(), b"a" * 32, 1)),
        ("an application header altered", gen, pad_altered),
    ]
    detected, misses = 0, []
    for what, r, corrupt in cases:
        bad = corrupt(r.response)
        problems, _ = check_response(r, bad, name)
        if problems and bad != r.response:
            detected += 1
        else:
            misses.append(what)
    for r in (gen, given, own):  # while the real ones pass
        problems, _ = check_response(r, r.response, name)
        if problems:
            misses.append("untouched %s fails: %s" % (r.target, problems[0]))
    return detected, len(cases), misses


# ------------------------------------------------------------------- server

class Server:
    def __init__(self, name, shim, response_header):
        LOG_DIR.mkdir(parents=True, exist_ok=True)
        self.log_path = LOG_DIR / ("response_header-%s.log" % name)
        env = harness.clean_env()
        if shim:
            env["LD_PRELOAD"] = str(LIB)
        if response_header is not None:
            env["REQID_RESPONSE_HEADER"] = response_header
        rfd, wfd = os.pipe()
        # a fresh file, read back through this descriptor: a concurrent run
        # of this test replaces the path, never this run's log
        try:
            os.unlink(self.log_path)
        except FileNotFoundError:
            pass
        log_fd = os.open(self.log_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND,
                         0o644)
        self.log_read_fd = os.open("/proc/self/fd/%d" % log_fd, os.O_RDONLY)
        try:
            self.proc = subprocess.Popen([str(SERVER), "0", str(wfd)], stdin=subprocess.DEVNULL,
                                         stdout=log_fd, stderr=log_fd, pass_fds=(wfd,),
                                         env=env, start_new_session=True)
        finally:
            os.close(wfd)
            os.close(log_fd)
        try:
            self.port = self._handshake(rfd)
            # the port accepts: one probe connection, closed at once
            socket.create_connection(("127.0.0.1", self.port), timeout=TIMEOUT).close()
        except BaseException:
            self.kill()
            os.close(self.log_read_fd)
            raise
        finally:
            os.close(rfd)

    def _handshake(self, rfd):
        data, deadline = b"", time.monotonic() + TIMEOUT
        while True:  # until the server closes its end of the pipe
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([rfd], [], [], left)[0]:
                raise Failure("no port from partial_writer within %.0f s" % TIMEOUT)
            chunk = os.read(rfd, 64)
            if not chunk:
                break
            data += chunk
        if not re.fullmatch(rb"[1-9]\d*\n", data):
            raise Failure("bad handshake %r (exit %s; see %s)"
                          % (data, self.proc.poll(), self.log_path))
        return int(data)

    def get(self, target):
        """The body of a one-request connection for target."""
        with socket.create_connection(("127.0.0.1", self.port), timeout=TIMEOUT) as s:
            s.sendall(b"GET " + target.encode() +
                      b" HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
            reader = SlowReader(s, random.Random(0))
            head = reader.until(b"\r\n\r\n")
            body = reader.exactly(content_length(head))
            if reader.rest():
                raise Failure("bytes after the answer to %s" % target)
        return body

    def stats(self):
        m = STATS_RE.fullmatch(self.get("/stats").decode("ascii", "replace").strip())
        if not m:
            raise Failure("bad /stats answer")
        return dict(zip(STATS_KEYS, map(int, m.groups())))

    def stop(self, how):
        """Ends the server with SIGTERM or /quit; returns its exit status."""
        if how == "quit":
            body = self.get("/quit")
            if body != b"ok quit\n":
                raise Failure("/quit answered %r" % body)
        else:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=TIMEOUT)
        except subprocess.TimeoutExpired:
            self.kill()
            raise Failure("partial_writer did not exit within %.0f s (%s)" % (TIMEOUT, how))

    def log_text(self):
        """What the server wrote on stdout and stderr."""
        chunks = []
        while True:
            chunk = os.pread(self.log_read_fd, 1 << 20, sum(map(len, chunks)))
            if not chunk:
                break
            chunks.append(chunk)
        os.close(self.log_read_fd)
        return b"".join(chunks).decode("utf-8", "replace")

    def kill(self):
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self.proc.wait()


# ---------------------------------------------------------------------- runs

def fresh(conns):
    for conn in conns:
        for r in conn:
            r.response, r.error = None, None
    return conns


def drive(conns, port, rng, notes):
    """Runs the connections, CONCURRENCY at a time; notes slow ones."""
    with ThreadPoolExecutor(max_workers=CONCURRENCY) as ex:
        futs = [ex.submit(run_conn, conn, port, rng.randrange(1 << 30)) for conn in conns]
        for conn, f in zip(conns, futs):
            took = f.result()
            if took > SLOW:
                notes.append("a connection took %.1f s: %s"
                             % (took, " ".join(r.target for r in conn)))


def one_run(name, shim, response_header, how, burst, plan, rng, prefix, first_write):
    """Runs plan (then bursts, then the IOV_MAX case) against a fresh
    server. Returns (results, run problems, notes, stats, bursts, elapsed,
    iovmax); results: [(req, problems, id)]; iovmax: None, or the IOV_MAX
    case's (problems, info)."""
    t0 = time.monotonic()
    problems, notes, stats, reqs, bursts = [], [], None, [], 0
    iov_reqs, iovmax, burst_cuts = [], None, None
    if name in IOVMAX_RUNS:
        iov_reqs, ps = make_iovmax(prefix, name, first_write)
        problems += ps
    srv = None
    fresh(plan)  # nothing from an earlier run counts
    try:
        srv = Server(name, shim, response_header)
        if time.monotonic() - t0 > SLOW:
            notes.append("server start took %.1f s" % (time.monotonic() - t0))
        drive(plan, srv.port, rng, notes)
        reqs = [r for conn in plan for r in conn]
        if burst:
            t_burst = time.monotonic()
            while True:
                st = srv.stats()
                if (st["cut_at_blank"] >= BURST_WANT
                        or time.monotonic() - t_burst > BURST_BUDGET):
                    burst_cuts = st["cut_at_blank"]
                    break
                conns = make_burst(rng, "%s%s%d" % (prefix, name[0], bursts))
                drive(conns, srv.port, rng, notes)
                reqs += [r for conn in conns for r in conn]
                bursts += 1
        # after the bursts: its cuts at the insertion point must not count
        # towards BURST_WANT
        for r in iov_reqs:
            run_paused(r, srv.port)
        reqs += iov_reqs
        t_stop = time.monotonic()
        rc = srv.stop(how)
        if time.monotonic() - t_stop > SLOW:
            notes.append("stopping the server took %.1f s" % (time.monotonic() - t_stop))
        if rc != 0:
            problems.append("server exited with status %s after %s" % (rc, how))
    except (Failure, OSError) as e:
        problems.append("%s: %s" % (type(e).__name__, e))
        if srv:
            srv.kill()
        if not reqs:
            reqs = [r for conn in plan for r in conn]
        reqs += [r for r in iov_reqs if r not in reqs]
    if srv:
        text = srv.log_text()
        if iov_reqs:
            iovmax = check_iovmax_log(text, iov_reqs, shim)
        for line in text.splitlines():
            if "INCONSISTENT" in line or "ERROR" in line:
                problems.append("server: %s" % line[:400])
        m = re.search(r"partial_writer: stats " + STATS_RE.pattern, text)
        if not m:
            problems.append("no stats line from the server (log %s)" % srv.log_path)
        else:
            stats = dict(zip(STATS_KEYS, map(int, m.groups())))
            if stats["partial"] == 0 or stats["eagain"] == 0:
                problems.append("partial writes not exercised (partial=%d eagain=%d)"
                                % (stats["partial"], stats["eagain"]))
            if burst and (stats["cut_at_blank"] if burst_cuts is None else burst_cuts) == 0:
                problems.append("no write was cut at a header block's end in %.0f s of "
                                "bursts: the shim's owed header bytes were not exercised"
                                % BURST_BUDGET)
    if not shim:
        header_name = None
    elif response_header is None:
        header_name = b"X-Request-ID"
    else:
        header_name = response_header.encode() or None
    results = []
    for r in reqs:
        if r.error or r.response is None:
            results.append((r, [r.error or "no response"], None))
            continue
        ps, added = check_response(r, r.response, header_name)
        results.append((r, ps, added))
    gen = [a for r, ps, a in results if a is not None and r.id_kind != "given"]
    dup = len(gen) - len(set(gen))
    if dup:
        problems.append("%d generated ids repeated across responses" % dup)
    if iov_reqs and iovmax is None:
        iovmax = (["the server did not start"], "")
    return results, problems, notes, stats, bursts, time.monotonic() - t0, iovmax


def report_run(name, results, problems, notes, stats, bursts, elapsed, iovmax, verbose):
    """Prints one line per call family (iovmax: the IOV_MAX case), one for
    the IOV_MAX case's server lines and one for the run; returns (passed,
    failed) counts."""
    passed = failed = 0
    families = FAMILIES + (("iovmax",) if any(r.family == "iovmax" for r, _, _ in results)
                           else ())
    for fam in families:
        rs = [(r, ps, a) for r, ps, a in results if r.family == fam]
        bad = [(r, ps) for r, ps, a in rs if ps]
        splits = sorted({r.split for r, _, _ in rs}, key=SPLITS.index)
        count = lambda pred: sum(1 for r, _, _ in rs if pred(r))  # noqa: E731
        print("%s/%s: %s  responses %d (burst %d; own %d, id given %d, generated %d; "
              "keep-alive %d, next request early %d)  splits %s  %.1f MB" % (
                  name, fam, "FAIL" if bad else "PASS", len(rs), count(lambda r: r.burst),
                  count(lambda r: r.own), count(lambda r: not r.own and r.id_kind == "given"),
                  count(lambda r: not r.own and r.id_kind != "given"),
                  count(lambda r: not r.close), count(lambda r: r.early), ",".join(splits),
                  sum(len(r.response or b"") for r, _, _ in rs) / 1e6))
        for r, ps in bad[:6]:
            for p in ps[:3]:
                print("  problem: %s (%s id, %s%s): %s"
                      % (r.target, r.id_kind, "close" if r.close else "keep-alive",
                         ", sent early" if r.early else "", p))
        if len(bad) > 6:
            print("  problem: ... %d more failing responses" % (len(bad) - 6))
        if verbose:
            for r, ps, a in rs:
                print("  %s %s id=%s -> %s" % ("FAIL" if ps else "ok  ", r.target, r.id_kind,
                                                a.decode() if a else "-"))
        passed, failed = passed + (not bad), failed + bool(bad)
    if iovmax is not None:
        ps, info = iovmax
        print("%s/iovmax-writes: %s  %s" % (name, "FAIL" if ps else "PASS", info))
        for p in ps[:10]:
            print("  problem: %s" % p)
        passed, failed = passed + (not ps), failed + bool(ps)
    st = ("responses %(responses)d calls %(calls)d partial %(partial)d eagain %(eagain)d "
          "cut_at_blank %(cut_at_blank)d" % stats) if stats else "no stats"
    print("%s: %s  (%.1f s, %d burst rounds; server: %s)"
          % (name, "FAIL" if problems else "PASS", elapsed, bursts, st))
    for n in notes[:10]:
        print("  note: %s" % n)
    for p in problems[:20]:
        print("  problem: %s" % p)
    passed, failed = passed + (not problems), failed + bool(problems)
    return passed, failed


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seed", type=int, default=None)
    ap.add_argument("-v", "--verbose", action="store_true")
    ap.add_argument("--runs", default=",".join(r[0] for r in RUNS),
                    help="comma-separated subset of %s" % ",".join(r[0] for r in RUNS))
    a = ap.parse_args(argv)
    t_all = time.monotonic()
    for path, what in ((LIB, "run `make`"), (SERVER, "run `make servers`")):
        if not path.exists():
            print("%s missing: %s\n0 passed, 1 failed" % (path, what))
            return 1
    wanted = set(a.runs.split(","))
    unknown = wanted - {r[0] for r in RUNS}
    if unknown:
        ap.error("unknown runs: %s" % ",".join(sorted(unknown)))
    seed = random.randrange(1 << 30) if a.seed is None else a.seed
    print("seed %d (rerun with --seed %d)" % (seed, seed))
    rng = random.Random(seed)
    prefix = "".join(rng.choice("ABCDEFGHJKLMNPQRSTUVWXYZ") for _ in range(4))
    plan = make_plan(rng, prefix)
    first_write = first_write_size()
    print("library %s; first write on a fresh connection %d bytes" % (LIB, first_write))
    passed = failed = 0
    for name, shim, header, how, burst in RUNS:
        if name not in wanted:
            continue
        results, problems, notes, stats, bursts, elapsed, iovmax = one_run(
            name, shim, header, how, burst, plan, random.Random(rng.randrange(1 << 30)), prefix,
            first_write)
        p, f = report_run(name, results, problems, notes, stats, bursts, elapsed, iovmax,
                          a.verbose)
        passed, failed = passed + p, failed + f
        if name == "shim":
            det, total, misses = checker_self_test([r for r, _, _ in results])
            ok = det == total and not misses
            print("checker self-test: %s  (%d/%d corruptions of real responses detected)"
                  % ("PASS" if ok else "FAIL", det, total))
            for m in misses:
                print("  problem: not detected: %s" % m)
            passed, failed = passed + ok, failed + (not ok)
    print("total %.1f s" % (time.monotonic() - t_all))
    print("%d passed, %d failed" % (passed, failed))
    return 1 if failed or passed == 0 else 0


if __name__ == "__main__":
    sys.exit(main())
