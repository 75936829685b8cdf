#!/usr/bin/env python3
"""test_shared_log_buffer.py - an access log kept in one 4 KiB buffer that
every thread appends its line to and whichever thread finds no room
flushes, as Apache's `BufferedLogs On` does, gets no wrong id.

tests/servers/shared_log_buffer.c serves keep-alive connections, a thread
each; after each response it appends `"GET /req/x HTTP/1.1" 200 key=K
pad=...` (K a hash of the request's X-Request-ID) to the shared buffer,
writing the buffer out first when the line does not fit. Every request asks
for the one URL; three in ten lines carry 3,000 bytes of pad. So most
flushes hold several lines (a buffer's: the shim can tell) and some hold
one line alone, of the request before, written by the thread of the next:
helper-78 found Apache giving such lines that thread's request's id (22 of
3,000 lines with 10% long ones, 2026-12-06). Since then a descriptor that
got a write of two access lines is a buffer's for good: its lines get ids
only by naming, whoever writes them. (A buffer whose every flush holds one
line, all lines over 2 KiB, shows nothing of the kind: README, Limits.)
Checked: every request's line arrives once; no line carries another
request's id (precision 100%); every response carries its request's id.
Recall is printed, not required: a buffer's lines of one URL get none.
The shim learns that a descriptor is a buffer's from its first write of
two lines: a first flush that holds one long line alone, before that, may
still give it the flushing thread's id (README, Limits: without a warm-up,
2 runs of 20 had one such line, 2026-12-06). So the run begins with
WARM_UP requests of short lines on one connection, one after another,
whose flushes hold dozens. The library before fails it still (269 and 273
of 3,120 lines with another request's id).

It runs twice: as above, then with a server that first opens OTHER_LOGS
other logs (one for each of 70 virtual hosts) and keeps them open. Past
ORDER_PLACES (64, log_order.h) the access log gets no place in the order of
answers: the shim counts none of its lines, and knows only that some
descriptor without a place got a write of two lines. Its lines must still get no wrong id. The
library before gave 272 of 3,120 lines another request's id there.

Then twice more with the log rotated every ROTATE_EVERY lines: closed and
opened again on its number, and opened and put on its number by dup2. A
rotated log is written as the one before it, and its lines must get no
wrong id either: the library before started the mark of a buffer's lines
afresh at the reopen, and the first flush of one long line alone took the
flushing thread's id (1 to 5 of 3,120 lines in each of 3 runs; by dup2,
which keeps the number's place, none).

    python3 tests/integration/test_shared_log_buffer.py [--requests N] [--other-logs N]...
        [--rotate-by reopen|dup2]...
"""
import argparse
import http.client
import json
import sys
import tempfile
import threading
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import harness  # noqa: E402

CONNECTIONS = 8
WARM_UP = 120
OTHER_LOGS = 70  # past log_order.h's ORDER_PLACES (64)
ROTATE_EVERY = 250  # access lines between two rotations (past the warm-up's)


def key_of(rid):
    """FNV-1a of the id, as the server computes it."""
    h = 2166136261
    for b in rid.encode():
        h = ((h ^ b) * 16777619) & 0xFFFFFFFF
    return "%08x" % h


def short_line_names(n):
    """n ids whose lines the server pads with one byte, not 3,000."""
    names, k = [], 0
    while len(names) < n:
        name = "wu-%05d" % k
        key = int(key_of(name), 16)
        if key % 10 % 3 != 0 or key % 10 == 0:
            names.append(name)
        k += 1
    return names


def client(port, names, results):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    for name in names:
        conn.request("GET", "/req/x", headers={"X-Request-ID": name})
        resp = conn.getresponse()
        results[name] = (resp.status, resp.read(), resp.getheader("X-Request-ID"))
    conn.close()


def run(requests, other_logs, rotate_by=None):
    """One server, requests requests after the warm-up; its failures.
    rotate_by: the log is opened again on its number every ROTATE_EVERY
    lines, by "reopen" (close, open) or "dup2" (open, dup2, close)."""
    tmp = Path(tempfile.mkdtemp(prefix="reqid-sharedbuf-"))
    log = tmp / "access.log"
    env = {"LEGACY_LOG": "file:" + str(log), "OTHER_LOGS": str(other_logs)}
    if rotate_by:
        env.update(ROTATE_EVERY=str(ROTATE_EVERY), ROTATE_BY=rotate_by)
    server = harness.Server("shared_log_buffer", tmp / "console.log",
                            reqid_args=("--log-path", str(tmp / "*.log")), env=env)
    warm_up = short_line_names(WARM_UP)
    names = warm_up + ["rq-%05d" % n for n in range(requests)]
    results = {}
    try:
        client(server.port, warm_up, results)
        threads = [threading.Thread(target=client, args=(server.port, names[WARM_UP + i::CONNECTIONS],
                                                          results))
                   for i in range(CONNECTIONS)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        harness.send_quit(server.port)
        server.wait(30)
    finally:
        server.kill()
    failures = []
    for name in names:
        status, _, rid = results.get(name, (None, None, None))
        if status != 200 or rid != name:
            failures.append("%s: response %s with X-Request-ID %r" % (name, status, rid))
    by_key = {key_of(n): n for n in names}
    seen, tagged, wrong = {}, 0, 0
    for raw in log.read_bytes().split(b"\n")[:-1]:
        obj = json.loads(raw)
        if " key=" not in obj["msg"]:
            continue
        name = by_key.get(obj["msg"].split(" key=")[1].split()[0])
        seen[name] = seen.get(name, 0) + 1
        rid = obj.get("request_id")
        if rid is not None:
            tagged += 1
            if rid != name:
                wrong += 1
                if wrong <= 5:
                    failures.append("the line of %s has %r" % (name, rid))
    if wrong:
        failures.append("%d lines with another request's id" % wrong)
    lines = sum(seen.values())
    if set(seen) != set(names) or lines != len(names):
        failures.append("%d lines for %d requests (one each expected)" % (lines, len(names)))
    print("shared log buffer, %d other logs%s: %d requests, %d lines, %d tagged, %d wrong, "
          "precision %s, recall %.2f%%" % (other_logs,
                                           ", rotated by " + rotate_by if rotate_by else "",
                                           len(names), lines, tagged, wrong,
                             "%.2f%%" % (100.0 * (tagged - wrong) / tagged) if tagged else "-",
                             100.0 * (tagged - wrong) / max(lines, 1)))
    for f in failures[:20]:
        print("  FAIL: " + f)
    return failures


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--requests", type=int, default=3000)
    ap.add_argument("--other-logs", type=int, action="append",
                    help="other logs the server opens first (default: 0, then %d)" % OTHER_LOGS)
    ap.add_argument("--rotate-by", choices=("reopen", "dup2"), action="append",
                    help="only runs with no other log, rotated so (default: both, after "
                    "the runs without rotation)")
    a = ap.parse_args()
    runs = [(n, None) for n in a.other_logs or ([] if a.rotate_by else [0, OTHER_LOGS])]
    runs += [(0, how) for how in a.rotate_by or ([] if a.other_logs else ["reopen", "dup2"])]
    results = [bool(run(a.requests, n, how)) for n, how in runs]
    print("%d passed, %d failed" % (results.count(False), results.count(True)))
    return 1 if any(results) else 0


if __name__ == "__main__":
    sys.exit(main())
