#!/usr/bin/env python3
"""demo.py - `make demo`: shows reqid on the bundled thread_per_conn server.
Starts it under scripts/reqid run, sends 40 concurrent requests (half with an
X-Request-ID), prints the first enriched log lines and a one-line summary.

It builds nothing (make does) and must never present a wrong id as fine: the
summary counts wrong ids with the same oracle as the integration tests.
"""

import random
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import harness  # noqa: E402

N = 40
SHOW = 12


def main():
    rng = random.Random()
    prefix = "".join(rng.choice("ABCDEFGHJKLMNPQRSTUVWXYZ") for _ in range(4))
    plan = []
    for i in range(N):
        token = "%s%02d" % (prefix, i)
        r = harness.make_request(rng, token, True, False)
        r.method, r.body, r.split = "GET", b"", None
        if i % 2 == 0:
            r.kind, r.headers, r.expected = "x-request-id", [("X-Request-ID", "cid-" + token)], "cid-" + token
        else:
            r.kind, r.headers, r.expected = "none", [], harness.GENERATED
        plan.append([r])
    reqs = [c[0] for c in plan]
    log = harness.LOG_DIR / "demo.log"
    srv = harness.Server("thread_per_conn", log)
    try:
        harness.Load(srv.port, N).run(plan)
        harness.send_quit(srv.port)
        rc = srv.wait(60)
    except BaseException:
        srv.kill()
        raise
    text = log.read_text()
    print("$ scripts/reqid run -- build/servers/thread_per_conn   (log: %s)" % log)
    for line in text.splitlines()[:SHOW]:
        print("  " + line)
    chk = harness.check_log(text, "thread_per_conn", reqs, harness.LineFormat())
    c = chk["counts"]
    bad = sum(1 for r in reqs if r.error or r.response is None)
    print("requests: %d, lines: %d, tagged: %d, wrong ids: %d" % (
        len(reqs), c["lines"], c["tagged"], c["wrong"]))
    for e in chk["examples"]:
        print("  wrong: " + e)
    if bad or rc != 0:
        print("(%d failed requests, server exit status %s)" % (bad, rc))
    return 0 if not (bad or rc or c["wrong"] or chk["problems"]) else 1


if __name__ == "__main__":
    sys.exit(main())
