#!/usr/bin/env python3
"""test_stdio.py - reqid on stdio output, end to end: every line a program
writes through stdio to a log descriptor carries the id of the calling
thread's request at the moment of the call (not when a fully buffered stream
is written out later, maybe by another thread), and what the program sees
does not change.

Servers (tests/servers/, under `scripts/reqid run`) log through the stdio
backends of legacy_http.h (LEGACY_LOG), each in the servers' three styles
(one call per line, a line in two calls, two pieces at once):

  stdio:stderr        fprintf / fprintf + fputc('\\n') / fputs + fputs on
                      stderr (unbuffered)
  stdio:stdout-full   printf / printf + puts / fwrite + fwrite on stdout with
                      a 64 KiB full buffer shared by all threads, written out
                      only when full and at exit
  stdio:stdout-line   the same on a line-buffered stdout
  stdio:putc          character by character with the inline putc_unlocked
                      under flockfile(stdout), stdout fully buffered (the
                      server binary must not call putc_unlocked: checked with
                      objdump)
  stdio:file          fopen(PATH, "a") + full buffering, the calls of
                      stdio:stderr on that FILE, REQID_LOG_PATHS=$T/*.log

thread_per_conn and thread_pool run every backend; precision must be 100%
and recall at least 99%. epoll_timers and fork_per_conn run
stdio:stdout-full: precision 100%, recall reported. Every run: every line
well-formed JSON and a line of the server, enriched once (a line with two
request_id members fails; its id is the front one, the one added last), no
request line lost, duplicated or out of order, the server's own lines
(listening, one per connection, shutting down) each there exactly as often
as they must be, each thread's lines in the order it wrote them, responses
unaltered, exit status 0.

Then tests/integration/stdio_semantics.c, built -O2 (inline putc family),
-O0 and -O2 -D_FORTIFY_SOURCE=2, runs its scenarios bare and under the shim:
the results files (return values, errno, ferror/feof, __fbufsize, __flbf,
whether __fpending is 0) must be identical, exit statuses equal, and each
shimmed output line, JSON-decoded, must be the bare line.

Python 3 standard library only. Never edits the shim or the servers, never
relaxes an expectation to make a run pass. Ends with "N passed, M failed";
exits non-zero on a failure.

    python3 tests/integration/test_stdio.py [--seed N] [--keep] [-n REQUESTS]
"""

import argparse
import collections
import json
import os
import random
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import harness  # noqa: E402

ROOT = harness.ROOT
OUT = ROOT / "build" / "integration"
SRC = Path(__file__).resolve().parent
REQUESTS = 500
CONCURRENCY = 48
MIN_RECALL = 0.99

BACKENDS = ("stdio:stderr", "stdio:stdout-full", "stdio:stdout-line", "stdio:putc",
            "stdio:file")
RUNS = ([(s, b, MIN_RECALL) for s in ("thread_per_conn", "thread_pool") for b in BACKENDS]
        + [("epoll_timers", "stdio:stdout-full", None),
           ("fork_per_conn", "stdio:stdout-full", None)])

# The server's own lines (no token): pattern -> how many (a function of the
# plan: connections, requests). A second group, when present, is the number
# of requests the line reports; they must add up to all requests.
OWN_LINES = {
    "thread_per_conn": [
        (r"listening on ", lambda nc: 1),
        (r"connection fd=\d+ closed after (\d+) requests$", lambda nc: nc),
        (r"shutting down, 0 connections still open$", lambda nc: 1)],
    "thread_pool": [
        (r"listening on ", lambda nc: 1),
        (r"worker \d+ picked up a connection \(fd \d+\)$", lambda nc: nc + 1),
        (r"shutting down, 0 connections still open$", lambda nc: 1)],
    "epoll_timers": [
        (r"listening on ", lambda nc: 1),
        (r"accepted a connection on fd \d+$", lambda nc: nc + 1)],
    "fork_per_conn": [
        (r"listening on ", lambda nc: 1),
        (r"child \d+ exiting after (\d+) requests$", lambda nc: nc),
        (r"(accept failed with EINTR|SIGUSR1 arrived outside accept|accept interrupted"
         r"|quit requested after)", lambda nc: 1),
        (r"all children reaped, shutting down$", lambda nc: 1)],
}
def pairs_no_dup(pairs):
    keys = [k for k, _ in pairs]
    if len(set(keys)) != len(keys):
        raise ValueError("duplicate members %s" % sorted(k for k in set(keys)
                                                         if keys.count(k) > 1))
    return dict(pairs)


STRICT = json.JSONDecoder(object_pairs_hook=pairs_no_dup)


def enriched_twice(res, text):
    """A line enriched twice ({"request_id":B,"request_id":A,"msg":...}, the
    shim taking its own output for the program's) is valid JSON to
    json.loads, which keeps the last member: count them here, as failures
    (FrontIdFormat scores them by their front id)."""
    n = 0
    for no, line in enumerate(text.split("\n"), 1):
        if '"request_id"' not in line or line.count('"request_id"') < 2:
            continue
        try:
            STRICT.decode(line)
        except ValueError as e:
            if "duplicate" in str(e):
                n += 1
                if n <= 3:
                    res["problems"].append("line %d enriched twice: %r" % (no, line[:220]))
    res["counts"]["twice"] = n
    if n:
        res["problems"].append("%d lines enriched twice (duplicate request_id members)" % n)


class FrontIdFormat(harness.LineFormat):
    """The json format, reading a line enriched twice the way the shim built
    it: the id in front (the one added last) is the line's id."""

    def __init__(self):
        super().__init__("json")
        self._pairs = json.JSONDecoder(object_pairs_hook=list)

    def split(self, line):
        pairs = self._pairs.decode(line)
        if not isinstance(pairs, list):
            raise ValueError("not a JSON object")
        keys = [k for k, _ in pairs]
        if set(keys) - {"request_id", "msg"} or keys.count("msg") != 1:
            raise ValueError("unexpected members %s" % keys)
        msg = dict(pairs)["msg"]
        ids = [v for k, v in pairs if k == "request_id"]
        if not isinstance(msg, str) or any(not isinstance(v, str) for v in ids):
            raise ValueError("msg or id is not a string")
        return (ids[0] if ids else None), msg


TS_RE = re.compile(r"^(\S+) \S+\s+\[\w+\] pid=(\d+) tid=(\d+) (.*)$")


def new_result(label, seed):
    return {"label": label, "seed": seed, "log": "", "ok": False, "problems": [],
            "notes": [], "examples": [], "counts": collections.Counter(),
            "precision": None, "recall": None}


# ---------------------------------------------------------------- building

def build():
    OUT.mkdir(parents=True, exist_ok=True)
    subprocess.run(["make", "-s", "-C", str(ROOT), "build/libreqid.so", "servers"], check=True,
                   timeout=180)
    flags = ["-g", "-Wall", "-Wextra", "-Werror", "-pthread"]
    progs = {}
    for name, opt in (("O2", ["-O2"]), ("O0", ["-O0"]),
                      ("fortify", ["-O2", "-U_FORTIFY_SOURCE", "-D_FORTIFY_SOURCE=2"])):
        prog = OUT / ("stdio_semantics_" + name)
        subprocess.run(["cc"] + opt + flags + ["-o", str(prog),
                                               str(SRC / "stdio_semantics.c")],
                       check=True, timeout=60)
        progs[name] = prog
    return progs


def called(binary):
    """Names of the functions binary calls through its PLT."""
    out = subprocess.run(["objdump", "-d", "--no-show-raw-insn", str(binary)],
                         stdout=subprocess.PIPE, check=True, timeout=60).stdout.decode()
    return collections.Counter(m.group(1) for m in re.finditer(r"call\s+\S+ <([^>@+]+)", out))


def check_inline(results, progs):
    """The putc backend and the -O2 test program must store through glibc's
    inline putc_unlocked: no call to it, __overflow called instead."""
    for label, binary, must in (
            [("objdump: %s inlines putc_unlocked" % s, harness.SERVER_DIR / s, ("__overflow",))
             for s in ("thread_per_conn", "thread_pool", "epoll_timers", "fork_per_conn")]
            + [("objdump: stdio_semantics -O2 inlines it", progs["O2"], ("__overflow",)),
               ("objdump: stdio_semantics -O0 calls it", progs["O0"], ()),
               ("objdump: stdio_semantics fortified calls __printf_chk", progs["fortify"],
                ("__printf_chk", "__fprintf_chk", "__dprintf_chk", "__vfprintf_chk"))]):
        res = new_result(label, 0)
        res["log"] = str(binary)
        try:
            calls = called(binary)
        except (OSError, subprocess.SubprocessError) as e:
            res["problems"].append("objdump failed: %s" % e)
            calls = collections.Counter()
        inline = ("putc_unlocked", "fputc_unlocked", "putchar_unlocked", "_IO_putc")
        if "-O0" in label:
            missing = [f for f in ("putc_unlocked", "fputc_unlocked", "putchar_unlocked")
                       if not calls[f]]
            if missing:
                res["problems"].append("-O0 build does not call %s" % missing)
        else:
            bad = {f: calls[f] for f in inline if calls[f]}
            if bad:
                res["problems"].append("calls %s: the inline path is not exercised" % bad)
        for f in must:
            if not calls[f]:
                res["problems"].append("never calls %s" % f)
        res["notes"].append("calls: " + ", ".join(
            "%s x%d" % (f, calls[f]) for f in sorted(set(inline + must + ("__overflow",)))
            if calls[f]))
        res["ok"] = not res["problems"]
        results.append(res)


# ---------------------------------------------------------------- servers

def own_lines(res, text, server, plan, fmt):
    """The server's own lines: how many of each, nothing else; and each
    thread's lines in the order it wrote them."""
    pats = [(re.compile(p), f(len(plan))) for p, f in OWN_LINES[server]]
    seen = collections.Counter()
    reported = 0
    last = {}
    order_bad = 0
    for no, line in enumerate(text.split("\n"), 1):
        if not line:
            continue
        try:
            _, msg = fmt.split(line)
        except ValueError:
            continue  # check_log reports it
        m = TS_RE.match(msg)
        if not m:
            continue
        key = (m.group(2), m.group(3))
        if key in last and m.group(1) < last[key]:
            order_bad += 1
            if order_bad <= 3:
                res["problems"].append("line %d: pid %s tid %s wrote it before its line at %s:"
                                       " %r" % (no, key[0], key[1], last[key], msg[:160]))
        last[key] = max(last.get(key, ""), m.group(1))
        rest = m.group(4)
        if harness.TOKEN_RE.search(rest):
            continue
        for i, (p, _) in enumerate(pats):
            pm = p.search(rest)
            if pm:
                seen[i] += 1
                if pm.groups() and pm.group(1).isdigit():
                    reported += int(pm.group(1))
                break
        else:
            res["counts"]["unexpected_own"] += 1
            res["problems"].append("line %d: unexpected line: %r" % (no, msg[:200]))
    if order_bad:
        res["problems"].append("%d lines out of their thread's order" % order_bad)
    for i, (p, want) in enumerate(pats):
        if seen[i] != want:
            res["problems"].append("server line /%s/ %d times, expected %d"
                                   % (p.pattern, seen[i], want))
            res["counts"]["own_lines_wrong"] += 1
        if p.groups and "requests" in p.pattern:
            n_reqs = sum(len(c) for c in plan)
            if reported != n_reqs:
                res["problems"].append("server lines report %d requests served, expected %d"
                                       % (reported, n_reqs))


def run_server(server, backend, seed, tmp, min_recall, requests, concurrency, shim=True):
    label = "%s %s" % (server, backend)
    res = new_result(label, seed)
    t0 = time.monotonic()
    rng = random.Random(seed)
    T = Path(tempfile.mkdtemp(prefix="%s-%s-" % (server, backend.split(":")[1]), dir=tmp))
    out = T / "server.out"  # stdout and stderr
    env = {"LEGACY_LOG": backend}
    log = out
    if backend == "stdio:file":
        log = T / "app.log"
        env = {"LEGACY_LOG": "stdio:file:%s" % log, "REQID_LOG_PATHS": "%s/*.log" % T}
    res["log"] = str(log)
    plan = harness.make_plan(rng, requests, server == "epoll_timers")
    reqs = [r for conn in plan for r in conn]
    res["counts"]["connections"] = len(plan)
    res["counts"]["keepalive_conns"] = sum(1 for c in plan if len(c) > 1)
    srv = None
    try:
        srv = harness.Server(server, out, env=env, shim=shim)
        load = harness.Load(srv.port, concurrency)
        load.run(plan)
        res["max_open"] = load.open_max
        harness.send_quit(srv.port)
        rc = srv.wait(30.0)
        if rc != 0:
            res["problems"].append("server exited with status %s" % rc)
    except (harness.Failure, OSError) as e:
        res["problems"].append("%s: %s" % (type(e).__name__, e))
        if srv:
            srv.kill()
    bad = [r for r in reqs if r.error or r.response is None]
    for r in bad[:5]:
        res["problems"].append("request %s: %s" % (r.token, r.error or "no response"))
    if bad:
        res["problems"].append("%d/%d requests failed or got altered responses"
                               % (len(bad), len(reqs)))
    if res.get("max_open", 0) < min(concurrency, len(plan)):
        res["problems"].append("only %s connections open at once" % res.get("max_open"))
    try:
        text = log.read_bytes().decode("utf-8")
    except (OSError, UnicodeDecodeError) as e:
        res["problems"].append("cannot read the log: %s" % e)
        res["elapsed"] = time.monotonic() - t0
        return res
    fmt = FrontIdFormat() if shim else harness.LineFormat("plain")
    chk = harness.check_log(text, server, reqs, fmt, check_ids=shim)
    c = chk["counts"]
    res["counts"].update(c)
    res["problems"] += chk["problems"]
    res["examples"] = chk["examples"]
    for key, what in (("malformed", "malformed lines"), ("lost_lines", "lost lines"),
                      ("extra_lines", "duplicated lines"), ("reordered", "reordered requests")):
        if c[key]:
            res["problems"].append("%d %s" % (c[key], what))
    own_lines(res, text, server, plan, fmt)
    enriched_twice(res, text)
    if backend == "stdio:file":
        other = out.read_text(errors="replace")
        if other:
            res["problems"].append("stdout/stderr not empty in file mode: %r" % other[:200])
    if server == "fork_per_conn" and "accept failed with EINTR" not in text:
        res["notes"].append("the parent's accept() did not fail with EINTR this run")
    if not shim:
        res["elapsed"] = time.monotonic() - t0
        res["ok"] = not res["problems"]
        return res
    if c["tagged"]:
        res["precision"] = c["correct"] / c["tagged"]
    if c["token_lines"]:
        res["recall"] = c["correct"] / c["token_lines"]
    if c["wrong"]:
        res["problems"].append("%d lines carry a wrong id (precision %s)"
                               % (c["wrong"], harness.pct(res["precision"])))
    if min_recall is not None:
        rec = res["recall"] or 0.0
        if rec < min_recall:
            res["problems"].append("recall %s below %.0f%%" % (harness.pct(rec),
                                                               100 * min_recall))
    else:
        res["notes"].append("recall %s (reported, not gated)" % harness.pct(res["recall"]))
    res["elapsed"] = time.monotonic() - t0
    res["ok"] = not res["problems"]
    return res


# ---------------------------------------------------------------- semantics

# scenario name -> (argv after SCENARIO RESULTS, stdout, stderr, exit status)
# stdout/stderr: "file" (a file of its own), "same" (stderr on stdout's open
# file, O_APPEND), "full" (/dev/full)
def scenarios(tmpdir):
    path = str(tmpdir / "app.log")
    return [
        ("bytes, default buffering", ["bytes", "full"], "file", 0),
        ("bytes, 64 KiB full buffer", ["bytes", "big"], "file", 0),
        ("bytes, line buffered", ["bytes", "line"], "file", 0),
        ("bytes, unbuffered stdout", ["bytes", "none"], "file", 0),
        ("fopen'ed log file, full", ["file", path, "full"], "file", 0),
        ("fopen'ed log file, line", ["file", path, "line"], "file", 0),
        ("wide stdout", ["wide", "full"], "file", 0),
        ("wide stdout, line buffered", ["wide", "line"], "file", 0),
        ("wide stderr", ["wide", "stderr"], "file", 0),
        ("/dev/full", ["full"], "full", 0),
        ("read-only log stream", ["readonly", path], "file", 0),
        ("err/warn/error/perror", ["messages"], "same", 0),
        ("err()", ["exit", "err"], "same", 3),
        ("errx()", ["exit", "errx"], "same", 4),
        ("error(5, ...)", ["exit", "error"], "same", 5),
        ("error_at_line(6, ...)", ["exit", "error_at_line"], "same", 6),
    ]


def run_prog(prog, args, where, shim, d):
    """Returns (exit status, results text, {stream name: bytes})."""
    res = d / "results"
    files = {}
    if where == "full":
        fds = [os.open("/dev/full", os.O_WRONLY), os.open("/dev/full", os.O_WRONLY)]
    else:
        files["stdout"] = d / "stdout"
        fds = [os.open(files["stdout"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_APPEND,
                       0o644)]
        if where == "same":
            fds.append(os.dup(fds[0]))
        else:
            files["stderr"] = d / "stderr"
            fds.append(os.open(files["stderr"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC
                               | os.O_APPEND, 0o644))
    argv = [str(prog), args[0], str(res)] + args[1:]
    env = harness.clean_env(REQID_LOG_PATHS="%s/*.log" % d.parent)
    if shim:
        argv = [str(harness.REQID), "run", "--"] + argv
    app = d.parent / "app.log"
    if args[0] == "readonly":
        app.write_bytes(b"")
    elif app.exists():
        app.unlink()
    try:
        p = subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=fds[0], stderr=fds[1],
                           env=env, timeout=30)
    finally:
        for fd in fds:
            os.close(fd)
    out = {k: v.read_bytes() for k, v in files.items()}
    if args[0] == "file":
        out["app.log"] = app.read_bytes()
    try:
        text = res.read_text()
    except OSError:
        text = ""
    return p.returncode, text, out


def decode_shimmed(data):
    """Shimmed output -> the bytes of the lines it stands for; raises
    ValueError on a line that is not {"msg": ...}."""
    if data and not data.endswith(b"\n"):
        raise ValueError("does not end with a newline: %r" % data[-80:])
    lines = []
    for no, line in enumerate(data.split(b"\n")[:-1] if data else [], 1):
        try:
            obj = STRICT.decode(line.decode("utf-8"))
        except (UnicodeDecodeError, ValueError) as e:
            raise ValueError("line %d is not JSON (%s): %r" % (no, e, line[:160]))
        if not isinstance(obj, dict) or set(obj) != {"msg"} or not isinstance(obj["msg"], str):
            raise ValueError("line %d is not {\"msg\": ...}: %r" % (no, line[:160]))
        lines.append(obj["msg"].encode("utf-8", "surrogateescape"))
    return lines


def compare_outputs(res, bare, shim):
    for name in sorted(set(bare) | set(shim)):
        b, s = bare.get(name, b""), shim.get(name, b"")
        b_lines = b.split(b"\n")
        b_end = b_lines.pop() if b_lines else b""
        if b_end:
            res["problems"].append("%s: bare output ends without a newline: %r" % (name, b_end))
            continue
        try:
            s_lines = decode_shimmed(s)
        except ValueError as e:
            res["problems"].append("%s: %s" % (name, e))
            continue
        res["counts"]["lines"] += len(b_lines)
        if s_lines != b_lines:
            for i in range(max(len(s_lines), len(b_lines))):
                bl = b_lines[i] if i < len(b_lines) else None
                sl = s_lines[i] if i < len(s_lines) else None
                if bl != sl:
                    res["problems"].append("%s line %d: bare %r, shim msg %r (%d vs %d lines)"
                                           % (name, i + 1, bl and bl[:160], sl and sl[:160],
                                              len(b_lines), len(s_lines)))
                    break


def compare_results(res, bare, shim, partial):
    """partial collects the differences of "partial_pending" lines (whether
    bytes are waiting after a call that left a line unfinished): a case of
    their own."""
    b = [x for x in bare.splitlines() if ".partial_pending=" not in x]
    s = [x for x in shim.splitlines() if ".partial_pending=" not in x]
    bp = [x for x in bare.splitlines() if ".partial_pending=" in x]
    sp = [x for x in shim.splitlines() if ".partial_pending=" in x]
    partial["results"] += len(bp)
    for x, y in zip(bp, sp):
        # Documented (README, Limits): an unfinished line waits in the shim,
        # not in the stream's buffer, so __fpending may see nothing where
        # the bare run sees its bytes. Only that difference is allowed.
        if x != y and not (x.endswith("=>0") and y == x[:-3] + "=0"):
            partial["diffs"].append((res["label"], x, y))
    if len(bp) != len(sp):
        partial["diffs"].append((res["label"], "%d results" % len(bp), "%d" % len(sp)))
    res["counts"]["results"] = len(b)
    if not b:
        res["problems"].append("bare run recorded nothing: %r" % bare[-200:])
    diffs = [(i, x, y) for i, (x, y) in enumerate(zip(b, s), 1) if x != y]
    for i, x, y in diffs[:6]:
        res["problems"].append("result %d: bare %r, shim %r" % (i, x, y))
    if len(diffs) > 6:
        res["problems"].append("... %d differing results in all" % len(diffs))
    if len(b) != len(s):
        res["problems"].append("bare recorded %d results, shim %d" % (len(b), len(s)))


def run_semantics(results, progs, tmp):
    d0 = Path(tempfile.mkdtemp(prefix="sem-", dir=tmp))
    partial = {"results": 0, "diffs": []}
    for build_name, prog in progs.items():
        for label, args, where, status in scenarios(d0):
            res = new_result("semantics %s: %s" % (build_name, label), 0)
            t0 = time.monotonic()
            runs = {}
            for mode in ("bare", "shim"):
                d = d0 / mode
                shutil.rmtree(d, ignore_errors=True)
                d.mkdir()
                try:
                    runs[mode] = run_prog(prog, args, where, mode == "shim", d)
                except (OSError, subprocess.SubprocessError) as e:
                    res["problems"].append("%s run: %s" % (mode, e))
            res["log"] = " ".join(args)
            if len(runs) == 2:
                (brc, btext, bout), (src, stext, sout) = runs["bare"], runs["shim"]
                if brc != status:
                    res["problems"].append("bare exit status %s, expected %s" % (brc, status))
                if src != brc:
                    res["problems"].append("exit status: bare %s, shim %s" % (brc, src))
                compare_results(res, btext, stext, partial)
                compare_outputs(res, bout, sout)
            res["elapsed"] = time.monotonic() - t0
            res["ok"] = not res["problems"]
            results.append(res)
    res = new_result("semantics: __fpending after an unfinished line (held by the shim)", 0)
    res["counts"]["results"] = partial["results"]
    by_scenario = collections.Counter(label for label, _, _ in partial["diffs"])
    for label, x, y in partial["diffs"][:8]:
        res["problems"].append("%s: bare %r, shim %r" % (label, x, y))
    if partial["diffs"]:
        res["problems"].append("%d differences in all, in: %s" % (
            len(partial["diffs"]), "; ".join("%s (%d)" % kv for kv in sorted(by_scenario.items()))))
    res["ok"] = not res["problems"]
    results.append(res)


# ---------------------------------------------------------------- main

def report(res):
    print()
    c = res["counts"]
    print("%s: %s  (seed %d, %.1f s, log %s)" % (res["label"], "PASS" if res["ok"] else "FAIL",
                                                 res["seed"], res.get("elapsed", 0), res["log"]))
    if "token_lines" in c:
        print("  requests %d  lines %d  token lines %d  tagged %d  correct %d  wrong %d"
              "  precision %s  recall %s" % (c["requests"], c["lines"], c["token_lines"],
                                            c["tagged"], c["correct"], c["wrong"],
                                            harness.pct(res["precision"]),
                                            harness.pct(res["recall"])))
    for n in res["notes"]:
        print("  note: %s" % n)
    for p in res["problems"][:25]:
        print("  problem: %s" % p)
    if len(res["problems"]) > 25:
        print("  ... %d problems in all" % len(res["problems"]))
    for e in res["examples"][:8]:
        print("  wrong: %s" % e)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seed", type=int, default=None, help="seed for every run")
    ap.add_argument("-n", "--requests", type=int, default=REQUESTS)
    ap.add_argument("-c", "--concurrency", type=int, default=CONCURRENCY)
    ap.add_argument("--keep", action="store_true", help="keep the temporary directory")
    ap.add_argument("--no-shim", action="store_true",
                    help="debug: servers only, run bare; ids not checked, lines still are")
    a = ap.parse_args()
    if a.requests < 200 or a.concurrency < 32:
        ap.error("at least 200 requests at concurrency 32")
    t0 = time.monotonic()
    try:
        progs = build()
    except (OSError, subprocess.SubprocessError) as e:
        print("build failed: %s\n0 passed, 1 failed" % e)
        return 1
    tmp = Path(tempfile.mkdtemp(prefix="reqid-stdio-"))
    seeds = random.Random(a.seed)
    results = []
    head = "%-34s %8s %6s %6s %6s %6s %9s %8s  %s" % (
        "run", "requests", "lines", "tagged", "wrong", "twice", "precision", "recall", "result")
    try:
        check_inline(results, progs)
        for r in results:
            print("%-58s %s" % (r["label"], "PASS" if r["ok"] else "FAIL"))
        print()
        print(head)
        print("-" * len(head))
        for server, backend, min_recall in RUNS:
            seed = a.seed if a.seed is not None else seeds.randrange(1 << 30)
            res = run_server(server, backend, seed, tmp, min_recall, a.requests, a.concurrency,
                             shim=not a.no_shim)
            results.append(res)
            c = res["counts"]
            print("%-34s %8d %6d %6d %6d %6d %9s %8s  %s" % (
                res["label"], c["requests"], c["lines"], c["tagged"], c["wrong"], c["twice"],
                harness.pct(res["precision"]), harness.pct(res["recall"]),
                "PASS" if res["ok"] else "FAIL"), flush=True)
        print()
        if a.no_shim:
            return finish(results, t0)
        n_before = len(results)
        run_semantics(results, progs, tmp)
        sem = results[n_before:]
        for r in sem:
            print("%-58s %5d results %4d lines  %s" % (
                r["label"], r["counts"]["results"], r["counts"]["lines"],
                "PASS" if r["ok"] else "FAIL"))
    finally:
        if a.keep:
            print("kept %s" % tmp)
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    return finish(results, t0)


def finish(results, t0):
    failed = [r for r in results if not r["ok"]]
    for r in results:
        for n in r["notes"] if r["ok"] and "objdump" not in r["label"] else []:
            print("note (%s): %s" % (r["label"], n))
    for r in failed:
        report(r)
    print()
    print("total %.1f s" % (time.monotonic() - t0))
    print("%d passed, %d failed" % (len(results) - len(failed), len(failed)))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
