#!/usr/bin/env python3
"""test_event_loops.py - adversarial event-loop servers under reqid: each
server in tests/servers/ (ev_*.c, poll_loop.c, select_loop.c, uv_server.c,
event_server.c) is shaped to break one attribution rule for event loops; this
script runs each under `scripts/reqid run`, drives keep-alive load at it,
asks it to /quit, and judges every log line.

Ground truth: a line with "token=T" belongs to request T (the handler of
T's connection wrote it, or a timer or callback that exists for T). A line
"conn=C <word>" with no token is about connection C between requests: it may
carry no id, or for "readable" (written just before a read) the id of C's
previous request or of the request that read brings in (the next "got" line
for C), for "closed" that of C's last request; "accepted" carries none. Any
other line carries none.
Every request sends X-Request-ID with a random id unrelated to its token,
and all requests share one path (/api/v1/items) but for their query, so the
shim cannot learn a request from the text of a line; the request line is
never logged verbatim.

A case FAILS on one wrong id (precision < 100%), a lost, duplicated,
reordered or malformed line, a bad response (or a wrong id in the response
header), a server error, or a server that did not exit 0 after /quit.
"Known limit" cases are shapes a call-site rule cannot tell apart (one call
instruction dispatches both A's handler and B's timer): their wrong ids are
counted and shown but do not fail the run; everything else still does.
Recall is reported (all request lines, then handler lines and
timer/deferred lines apart). Where the shim's event-loop rule applies (an
epoll loop whose handlers are called one per event, from the function that
waited, and whose timers run from elsewhere) the handler lines must reach
99%; elsewhere recall is reported only.

    python3 tests/integration/test_event_loops.py [--seed N] [--case KEY ...]
                                                  [--requests N] [--no-shim] [--list]
    REQID_LIB=/other/libreqid.so python3 tests/integration/test_event_loops.py

Ends with "N passed, M failed"; exits 1 if any case failed. Logs are kept
in build/integration/evloop_<case>.log; every wrong line shown names the
request whose id it got.
"""

import argparse
import collections
import copy
import random
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import harness  # noqa: E402

REQUESTS = 400

HANDLER_KINDS = {"got", "respond", "sent", "queue", "park", "nest", "nested", "wrote", "access"}
DEFERRED_KINDS = {"tick", "fire", "fsent", "deliver", "dsent", "wait", "wdone", "fwrote",
                  "fwdone"}

# request shape -> the kinds of its lines, in order (a regex over the words).
# "delay" is delay=0..3 (one timer; 0: a posted event, run with the timers
# right after the current round of handlers), "tick" delay=4..15: a first
# timer at half the delay logs "tick" without any I/O and sets the second.
SHAPES = {
    "plain": r"got respond sent",
    "delay": r"got queue fire fsent",
    "tick": r"got queue tick fire fsent",
}
SHAPES_BROADCAST = dict(SHAPES, park=r"got park (?:deliver dsent|fire fsent)")
SHAPES_NESTED = dict(SHAPES, nest=r"got (?:nest nested )?respond sent")
SHAPES_SWEEP = dict(SHAPES, delay=r"got queue (?:wait )?fire fsent",
                    tick=r"got queue (?:wait )?fire fsent")  # its own timing, no tick
SHAPES_UV = {"plain": r"got respond wrote wdone", "delay": r"got queue fire fwrote fwdone",
             "tick": r"got queue tick fire fwrote fwdone"}
SHAPES_LAZY = {k: v + " access" for k, v in SHAPES.items()}
QUIT_ID = "rq-quit-request"


class Case:
    def __init__(self, key, title, server, concurrency, mix, env=None, shapes=SHAPES,
                 known_limit=None, structure=(), delay_one=0.0, delay_zero=None,
                 min_handler_recall=0.0):
        self.key, self.title, self.server = key, title, server
        self.min_handler_recall = min_handler_recall
        self.delay_one = delay_one  # fraction of delayed requests with delay=1
        # and with delay=0 (posted; None: a quarter of the rest), else 1..15 ms
        self.delay_zero = (1 - delay_one) / 4 if delay_zero is None else delay_zero
        self.concurrency, self.mix = concurrency, mix
        self.env = env or {}
        self.shapes = shapes
        self.known_limit = known_limit  # why wrong ids are expected here, or None
        # (function, [what its disassembly must show]): the shape the case is
        # about; a compiler that inlines or merges calls would change it
        self.structure = structure


# mix: shape -> probability (the rest are "plain")
CASES = [
    Case("nginx", "1 epoll, ev->handler; timers after the loop function", "ev_nginx", 48,
         {"delay": 0.4},
         min_handler_recall=0.99,
         structure=[("process_events", ["epoll_wait", "indirect>=2"]),
                    ("expire_timers", ["indirect>=1"])]),
    Case("lazy-access", "1b previous request's access line, then the next read", "ev_nginx",
         48, {"delay": 0.3}, env={"EVNGX_LAZY_LOG": "1"}, shapes=SHAPES_LAZY,
         structure=[("process_events", ["epoll_wait", "indirect>=2"])]),
    Case("inline-timers", "2 timers inside the loop function, another call", "ev_inline_timers",
         32, {"delay": 0.4},
         min_handler_recall=0.99,
         structure=[("loop_once", ["epoll_wait", "indirect>=2"])]),
    Case("queue", "3 one queue, one call site for events and timers", "ev_queue", 32,
         {"delay": 0.4}, known_limit="B's timer runs through the call instruction that ran A's "
         "handler, in the same activation of the waiting function",
         structure=[("dispatch_batch", ["epoll_wait", "indirect==1"])]),
    Case("queue-one", "3b one queue, one item per call (re-entered, no wait)", "ev_queue", 32,
         {"delay": 0.4}, env={"EVQ_ONE_PER_CALL": "1"},
         known_limit="B's timer runs in a later activation of the waiting function, same "
         "stack, same call instruction, no wait in between",
         structure=[("dispatch_one", ["epoll_wait", "indirect==1"])]),
    Case("broadcast", "4 A's handler delivers parked B (line, then write B)", "ev_broadcast", 32,
         {"park": 0.35, "delay": 0.1}, shapes=SHAPES_BROADCAST,
         structure=[("loop_once", ["epoll_wait", "indirect==1"])]),
    Case("broadcast-queued", "4b same, B's write after A's response", "ev_broadcast", 32,
         {"park": 0.35, "delay": 0.1}, env={"BCAST_QUEUED": "1"}, shapes=SHAPES_BROADCAST,
         structure=[("loop_once", ["epoll_wait", "indirect==1"])]),
    Case("nested", "5 handler runs a second epoll loop", "ev_nested", 24,
         {"nest": 0.2, "delay": 0.2}, shapes=SHAPES_NESTED,
         structure=[("outer_once", ["epoll_wait", "call conn_io"]),
                    ("inner_loop", ["epoll_wait", "call conn_io"])]),
    Case("threads", "6 two threads on one epoll fd", "ev_threads", 64, {"delay": 0.3},
         min_handler_recall=0.99,
         structure=[("worker", ["epoll_wait", "indirect==1", "call run_timers"])]),
    Case("edge", "7 edge-triggered, timers in the run function", "ev_edge", 48, {"delay": 0.3},
         min_handler_recall=0.99,
         structure=[("ev_run", ["epoll_pwait", "indirect==1", "call conn_timeout"])]),
    Case("poll", "8 poll()", "poll_loop", 16, {"delay": 0.3},
         structure=[("poll_once", ["poll", "indirect==1"])]),
    Case("select", "8 select()", "select_loop", 24, {"delay": 0.3},
         structure=[("select_once", ["select", "indirect==1"])]),
    Case("select-sweep", "8b select(), every client serviced each round", "select_loop", 24,
         {"delay": 0.4}, env={"SELECT_SWEEP": "1"}, shapes=SHAPES_SWEEP,
         structure=[("select_once", ["select", "call service"])]),
    # delay=1 often (and 0): the timer of the request read last in
    # uv__io_poll fires at the next iteration, after the write callbacks libuv
    # runs right after uv__io_poll and other timers (other requests' lines),
    # before any wait: a bracket rule closes on that request and gives it
    # those lines
    Case("libuv", "9 libuv: read cb, write cb, uv_timer", "uv_server", 48, {"delay": 0.4},
         shapes=SHAPES_UV, delay_one=0.5, min_handler_recall=0.99),
    # the real libevent 2.1: epoll_dispatch only marks events active; after it
    # returned, event_process_active runs the ready I/O callbacks, then the
    # expired evtimers (a "tick" logs with no I/O), then what the pass posted
    # with event_active (delay=0, often here): B's tick lands between A's read
    # and A's posted write on A, with no wait in between. Most such passes
    # also run another request's answering timer (I/O on another connection)
    # in between, so 10 meets the bare shape in a few runs out of a hundred;
    # 10b runs answering timers at a lower priority: it meets it nearly every run
    Case("libevent", "10 libevent: read cb, evtimer, event_active", "event_server", 48,
         {"delay": 0.6}, delay_one=0.2, delay_zero=0.35,
         structure=[("main", ["event_base_dispatch"])]),
    Case("libevent-prio", "10b libevent, answering timers at a lower priority",
         "event_server", 48, {"delay": 0.6}, env={"EVENT_SERVER_PRIO": "1"}, delay_one=0.2,
         delay_zero=0.35, structure=[("main", ["event_base_dispatch"])]),
    Case("doorbell", "+ same epoll data for every connection", "ev_doorbell", 32,
         {"delay": 0.3},
         structure=[("bell_once", ["epoll_pwait2", "indirect==1"])]),
]


def with_brackets(key, known_limit=None):
    """The case again with nested brackets on (reqid run --event-brackets:
    off by default, since a dispatcher that runs another request's timer
    between two I/O calls on one connection defeats them)."""
    base = next(c for c in CASES if c.key == key)
    c = copy.copy(base)
    c.key = key + "+brackets"
    c.title = base.title.split(" ", 1)[0] + "+ " + base.title.split(" ", 1)[1] + ", brackets"
    c.env = dict(base.env, REQID_EVENT_BRACKETS="1")
    c.known_limit = known_limit
    c.min_handler_recall = 0.0
    return c


CASES += [
    with_brackets("nested"),
    with_brackets("poll"),
    with_brackets("select"),
    with_brackets("select-sweep"),
    with_brackets("libevent", known_limit="a timer for B runs in the same dispatch pass as A's "
                  "read and A's posted answer, from the same dispatcher: between two I/O "
                  "calls on A inside one call below the loop's level"),
    with_brackets("libevent-prio", known_limit="as libevent+brackets, nearly every pass"),
]

EVIL_BODY = b"GET /api/v1/items?t=EVIL HTTP/1.1\r\nX-Request-ID: evil\r\n\r\n"
ID_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz0123456789"
CONN_RE = re.compile(r"\bconn=(\d+) (\w+)")
# a token-less "conn=C <word>" line may carry the id of C's previous request
# ("prev") and/or of the request it is about to read ("next")
CONN_LINE_IDS = {"readable": ("prev", "next"), "closed": ("prev",), "accepted": ()}
KIND_RE = re.compile(r"\s*(\w*)")


# ---------------------------------------------------------------- load plan

class Req:
    __slots__ = ("token", "rid", "shape", "method", "path", "body", "close", "split",
                 "response", "response_id", "error")

    def raw(self, port):
        lines = ["%s %s HTTP/1.1" % (self.method, self.path), "Host: 127.0.0.1:%d" % port,
                 "User-Agent: reqid-evloop/1", "X-Request-ID: " + self.rid]
        if self.body:
            lines += ["Content-Type: text/plain", "Content-Length: %d" % len(self.body)]
        if self.close:
            lines.append("Connection: close")
        return ("\r\n".join(lines) + "\r\n\r\n").encode() + self.body

    def expected_response(self):
        body = b"ok " + self.token.encode() + b"\n"
        return (b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n" % len(body)
                + (b"Connection: close\r\n" if self.close else b"") + b"\r\n" + body)


def make_plan(rng, case, n_requests):
    """Connections of 1-10 keep-alive requests; the last one sometimes says
    Connection: close, else the client just closes."""
    prefix = "".join(rng.choice("ABCDEFGHJKLMNPQRSTUVWXYZ") for _ in range(3))
    rids, conns, i = set(), [], 0
    while i < n_requests:
        k = min(rng.randint(1, 10), n_requests - i)
        last_close = rng.random() < 0.5
        conn = []
        for j in range(k):
            r = Req()
            r.token = "%s%04d" % (prefix, i + j)
            while True:
                r.rid = "rq-" + "".join(rng.choice(ID_ALPHABET) for _ in range(16))
                if r.rid not in rids:
                    rids.add(r.rid)
                    break
            x, r.shape = rng.random(), "plain"
            for shape, p in case.mix.items():
                if x < p:
                    r.shape = shape
                    break
                x -= p
            params = ["v=2", "t=" + r.token]
            if r.shape == "delay":
                x = rng.random()
                delay = (1 if x < case.delay_one else
                         0 if x < case.delay_one + case.delay_zero else
                         rng.randint(1, 15))
                params.append("delay=%d" % delay)
                if delay >= 4:
                    r.shape = "tick"
            elif r.shape == "park":
                params.append("park=1")
            elif r.shape == "nest":
                params.append("nest=1")
            rng.shuffle(params)
            r.path = "/api/v1/items?" + "&".join(params)
            if rng.random() < 0.2:
                r.method, r.body = "POST", EVIL_BODY
            else:
                r.method, r.body = "GET", b""
            r.close = j == k - 1 and last_close
            r.split = rng.random() if rng.random() < 0.2 else None
            r.response = r.response_id = r.error = None
            conn.append(r)
        conns.append(conn)
        i += k
    return conns


# ---------------------------------------------------------------- client

class Load(harness.Load):
    """harness.Load, but a connection the server never accepts fails its
    requests, not the whole run."""

    def __init__(self, port, concurrency, timeout=20.0):
        super().__init__(port, concurrency, timeout)

    def run_conn(self, item):
        try:
            super().run_conn(item)
        except OSError as e:  # from connect: nothing was sent on it
            for r in item[1]:
                if r.error is None:
                    r.error = "connect: %s" % e


def send_quit(port, timeout=20.0):
    """/quit, with an id of its own (the line before its read may carry it)."""
    with harness.connect(port, timeout) as s:
        s.sendall(b"GET /quit HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Request-ID: " + QUIT_ID.encode()
                  + b"\r\nConnection: close\r\n\r\n")
        resp, _ = harness._recv_response(s, b"")
    plain, rid = harness.split_added_header(resp)
    want = b"HTTP/1.1 200 OK\r\nContent-Length: 8\r\nConnection: close\r\n\r\nok quit\n"
    if plain != want or rid not in (None, QUIT_ID):
        raise harness.Failure("/quit answered %r" % resp)


# ---------------------------------------------------------------- oracle

def kind_class(kind):
    if kind in HANDLER_KINDS:
        return "handler"
    if kind in DEFERRED_KINDS:
        return "deferred"
    return None


def judge(text, case, reqs, check_ids=True, max_examples=8):
    by_token = {r.token: r for r in reqs}
    owner_of_id = {r.rid: r.token for r in reqs}
    c = collections.Counter()
    problems, examples = [], []
    kinds = collections.defaultdict(list)
    conn_last = {}  # conn serial -> token of its last "got" line so far
    fmt = harness.LineFormat("json" if check_ids else "plain")
    # conn serial -> [(line number, token)] of its "got" lines, for "next"
    got_lines = collections.defaultdict(list)
    got_re = re.compile(r"token=([A-Za-z0-9]+) got conn=(\d+) ")

    if text and not text.endswith("\n"):
        problems.append("log does not end with a newline")
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    if not check_ids:
        lines, c["repaired"] = harness.repair_split_writes(lines)
    c["lines"] = len(lines)
    for no, line in enumerate(lines, 1):
        gm = got_re.search(line)
        if gm:
            got_lines[gm.group(2)].append((no, gm.group(1)))

    def next_request(conn, no):
        for n, tok in got_lines.get(conn, ()):
            if n > no:
                return tok
        return None

    def wrong(no, tok, rid, want, line):
        c["wrong"] += 1
        if len(examples) < max_examples:
            whose = owner_of_id.get(rid)
            examples.append("line %d %s: id %r (%s), expected %s: %s" % (
                no, "token " + tok if tok else "(no token)", rid,
                ("request " + whose) if whose else "no request of this run", want, line[:200]))

    for no, line in enumerate(lines, 1):
        try:
            rid, msg = fmt.split(line)
        except ValueError as e:
            c["malformed"] += 1
            if c["malformed"] <= 5:
                problems.append("line %d malformed (%s): %r" % (no, e, line[:200]))
            continue
        m = harness.LINE_RE.match(msg)
        if not m or m.group(2) != case.server:
            c["malformed"] += 1
            if c["malformed"] <= 5:
                problems.append("line %d: not a %s line: %r" % (no, case.server, msg[:200]))
            continue
        if m.group(1) == "ERROR":
            problems.append("line %d: server error: %s" % (no, msg[:200]))
        body = m.group(3)
        tm = harness.TOKEN_RE.search(body)
        if tm:
            tok = tm.group(1)
            r = by_token.get(tok)
            kind = KIND_RE.match(body, tm.end()).group(1)
            cls = kind_class(kind)
            if r is None or cls is None:
                c["malformed"] += 1
                problems.append("line %d: unknown token or line kind: %r" % (no, msg[:200]))
                continue
            kinds[tok].append(kind)
            if kind == "got":
                cm = re.search(r"\bconn=(\d+)", body)
                if cm:
                    conn_last[cm.group(1)] = tok
            c["token_lines"] += 1
            c[cls + "_lines"] += 1
            if rid is None:
                continue
            c["tagged"] += 1
            if rid == r.rid:
                c["correct"] += 1
                c[cls + "_correct"] += 1
            else:
                wrong(no, tok, rid, repr(r.rid), line)
            continue
        cm = CONN_RE.match(body)
        if cm and cm.group(2) not in CONN_LINE_IDS:
            c["malformed"] += 1
            problems.append("line %d: unknown connection line: %r" % (no, msg[:200]))
            continue
        c["conn_lines" if cm else "other_lines"] += 1
        if rid is None:
            continue
        c["tagged"] += 1
        allowed = {}
        if cm:
            conn = cm.group(1)
            for which in CONN_LINE_IDS[cm.group(2)]:
                tok = conn_last.get(conn) if which == "prev" else next_request(conn, no)
                if tok is not None:
                    allowed[by_token[tok].rid] = "%s request %s" % (which, tok)
                elif which == "next" and conn_last.get(conn) is None:
                    allowed[QUIT_ID] = "/quit, its only request"  # the quit connection
        if rid in allowed:
            c["conn_correct"] += 1
        else:
            wrong(no, None, rid, " or ".join(
                ["%r (conn's %s)" % kv for kv in allowed.items()] + ["none"]), line)

    for r in reqs:
        got = " ".join(kinds.get(r.token, []))
        if not re.fullmatch(case.shapes[r.shape], got):
            want = case.shapes[r.shape]
            n_got, n_want = len(got.split()), len(re.sub(r"\(\?:[^)]*\)\??", "X", want).split())
            c["lost_lines" if n_got < n_want else "extra_lines" if n_got > n_want
              else "reordered"] += 1
            if len(problems) < 30:
                problems.append("token %s (%s): lines %r, expected /%s/" % (
                    r.token, r.shape, got, want))
    for key, what in (("lost_lines", "requests with lost lines"),
                      ("extra_lines", "requests with duplicated lines"),
                      ("reordered", "requests with reordered or unexpected lines"),
                      ("malformed", "malformed lines")):
        if c[key]:
            problems.append("%d %s" % (c[key], what))
    return c, problems, examples


# ---------------------------------------------------------------- structure

def check_structure(case):
    """The disassembly of the server still has the shape the case is about
    (the right function calls the wait; handlers and timers through the
    intended call instructions). Returns problems; [] when objdump is missing."""
    if not case.structure or not shutil.which("objdump"):
        return []
    binary = harness.SERVER_DIR / case.server
    try:
        out = subprocess.run(["objdump", "-d", "--no-show-raw-insn", str(binary)],
                             capture_output=True, text=True, timeout=30).stdout
    except (OSError, subprocess.SubprocessError) as e:
        return ["objdump failed: %s" % e]
    problems = []
    for fn, wants in case.structure:
        m = re.search(r"^[0-9a-f]+ <%s(?:\.[\w.]+)?>:\n(.*?)(?:\n\n|\Z)" % re.escape(fn), out,
                      re.M | re.S)
        if not m:
            problems.append("%s: function %s not found (inlined?)" % (case.server, fn))
            continue
        calls = re.findall(r"\bcall\s+(.*)$", m.group(1), re.M)
        indirect = sum(1 for x in calls if x.startswith("*"))
        for w in wants:
            if w.startswith("indirect"):
                op, n = re.match(r"indirect(>=|==)(\d+)", w).groups()
                ok = indirect >= int(n) if op == ">=" else indirect == int(n)
            elif w.startswith("call "):
                ok = any(re.search(r"<%s(?:\.[\w.]+)?>" % re.escape(w[5:]), x) for x in calls)
            else:
                ok = any(("<%s@plt>" % w) in x for x in calls)
            if not ok:
                problems.append("%s: %s does not show %r (%d indirect calls): the compiler "
                                "changed the shape this case tests" % (case.server, fn, w,
                                                                       indirect))
    return problems


# ---------------------------------------------------------------- one case

def run_case(case, n_requests, seed, shim=True):
    rng = random.Random(seed)
    plan = make_plan(rng, case, n_requests)
    reqs = [r for conn in plan for r in conn]
    log_path = harness.LOG_DIR / ("evloop_%s.log" % case.key)
    res = {"case": case, "seed": seed, "log": log_path, "problems": check_structure(case),
           "examples": [], "counts": collections.Counter(), "requests": len(reqs)}
    t0 = time.monotonic()
    srv = None
    try:
        srv = harness.Server(case.server, log_path, shim=shim, env=case.env)
        load = Load(srv.port, case.concurrency)
        load.run(plan)
        res["max_open"] = load.open_max
        send_quit(srv.port)
        rc = srv.wait(30.0)
        if rc != 0:
            res["problems"].append("server exited with status %s" % rc)
    except (harness.Failure, OSError) as e:
        res["problems"].append("%s: %s" % (type(e).__name__, e))
        if srv and srv.proc.poll() is not None:  # it died on its own: say how
            res["problems"].append("server exited with status %s" % srv.proc.returncode)
    finally:
        if srv:
            srv.kill()  # only if still running: every server started here is stopped
    res["elapsed"] = time.monotonic() - t0
    bad = [r for r in reqs if r.error or r.response is None]
    for r in bad[:3]:
        res["problems"].append("request %s: %s" % (r.token, r.error or "no response"))
    if bad:
        res["problems"].append("%d/%d requests failed or got altered responses"
                               % (len(bad), len(reqs)))
    if shim:
        noid = [r for r in reqs if r.response is not None and r.response_id is None]
        badid = [r for r in reqs if r.response_id is not None and r.response_id != r.rid]
        if noid:
            res["notes"] = ["%d responses without the X-Request-ID header" % len(noid)]
        if badid:
            res["problems"].append("%d responses carry another request's id (e.g. %s: %r)"
                                   % (len(badid), badid[0].token, badid[0].response_id))
    try:
        text = log_path.read_bytes().decode("utf-8")
    except (OSError, UnicodeDecodeError) as e:
        res["problems"].append("cannot read log: %s" % e)
        return res
    c, problems, examples = judge(text, case, reqs, check_ids=shim)
    res["counts"], res["examples"] = c, examples
    res["problems"] += problems
    if c["wrong"] and not case.known_limit:
        res["problems"].append("%d lines carry a wrong id" % c["wrong"])
    handler = ratio(c["handler_correct"], c["handler_lines"])
    if shim and handler is not None and handler < case.min_handler_recall:
        res["problems"].append("handler-line recall %.1f%% under %.0f%%"
                               % (100 * handler, 100 * case.min_handler_recall))
    return res


def ratio(num, den):
    return None if not den else num / den


def pct(v):
    return "-" if v is None else "%.1f%%" % (100 * v)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seed", type=int, default=None, help="seed for every case")
    ap.add_argument("--case", action="append", default=[], metavar="KEY",
                    help="run only these cases (see --list)")
    ap.add_argument("--requests", type=int, default=REQUESTS)
    ap.add_argument("--no-shim", action="store_true",
                    help="debug the servers: run them bare, ids not checked")
    ap.add_argument("--list", action="store_true", help="list the cases and exit")
    a = ap.parse_args()
    if a.list:
        for case in CASES:
            print("%-17s %-12s %s%s" % (case.key, case.server, case.title,
                                        "  [known limit]" if case.known_limit else ""))
        return 0
    cases = [cs for cs in CASES if not a.case or cs.key in a.case]
    unknown = set(a.case) - {cs.key for cs in CASES}
    if unknown:
        ap.error("unknown case(s): %s (see --list)" % ", ".join(sorted(unknown)))

    t0 = time.monotonic()
    head = "%-58s %5s %6s %6s %5s %9s %7s %8s %8s  %s" % (
        "case", "reqs", "lines", "tagged", "wrong", "precision", "recall", "handler",
        "deferred", "result")
    print(head)
    print("-" * len(head))
    results = []
    for case in cases:
        seed = a.seed if a.seed is not None else random.randrange(1 << 30)
        res = run_case(case, a.requests, seed, shim=not a.no_shim)
        c = res["counts"]
        res["precision"] = ratio(c["correct"] + c["conn_correct"], c["tagged"])
        res["recall"] = ratio(c["correct"], c["token_lines"])
        res["ok"] = not res["problems"]
        if not res["ok"]:
            verdict = "FAIL"
        elif case.known_limit:
            verdict = "limit"
        else:
            verdict = "pass"
        results.append(res)
        title = case.title + (" [known limit]" if case.known_limit else "")
        print("%-58s %5d %6d %6d %5d %9s %7s %8s %8s  %s" % (
            title[:58], res["requests"], c["lines"], c["tagged"], c["wrong"],
            pct(res["precision"]),
            pct(res["recall"]), pct(ratio(c["handler_correct"], c["handler_lines"])),
            pct(ratio(c["deferred_correct"], c["deferred_lines"])), verdict), flush=True)

    print()
    for res in results:
        case, c = res["case"], res["counts"]
        show = not res["ok"] or (case.known_limit and c["wrong"]) or res.get("notes")
        if not show:
            continue
        print("%s (%s, seed %d, %.1f s, log %s):" % (case.key, case.server, res["seed"],
                                                     res["elapsed"], res["log"]))
        if case.known_limit and c["wrong"]:
            print("  known limit: %s" % case.known_limit)
        for n in res.get("notes", []):
            print("  note: %s" % n)
        for p in res["problems"]:
            print("  problem: %s" % p)
        for e in res["examples"]:
            print("  wrong: %s" % e)
    limits = [r for r in results if r["case"].known_limit]
    if limits:
        print("known limits: %s" % ", ".join(
            "%s %d wrong of %d tagged" % (r["case"].key, r["counts"]["wrong"],
                                          r["counts"]["tagged"]) for r in limits))
    failed = [r for r in results if not r["ok"]]
    print("total %.1f s" % (time.monotonic() - t0))
    print("%d passed, %d failed" % (len(results) - len(failed), len(failed)))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
