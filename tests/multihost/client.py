#!/usr/bin/env python3
"""client.py - run by tests/integration/test_multihost.py inside a network
namespace (`ip netns exec NS python3 client.py ...`), never under the shim.

    client.py wait HOST PORT SECONDS
        exits 0 as soon as a TCP connection to HOST:PORT succeeds (nothing is
        sent), 1 when SECONDS pass first.

    client.py load HOST PORT CONCURRENCY < plan.json > results.json
        plan: [{"k": 5, "path": "/work/5", "traceparent": "00-..." or null}];
        sends every request at once up to CONCURRENCY in flight, one
        connection each, and prints {"max_in_flight": N, "results": {k:
        {"status", "body", "x_request_id": [...], "error", "attempts"}}}.

Python 3 standard library only.
"""

import http.client
import json
import socket
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor


def wait(host, port, seconds):
    deadline = time.monotonic() + seconds
    while True:
        try:
            socket.create_connection((host, port), timeout=1.0).close()
            return 0
        except OSError:
            if time.monotonic() > deadline:
                return 1
        time.sleep(0.02)  # polling a port with a bounded deadline


def load(host, port, concurrency, plan):
    lock = threading.Lock()
    state = {"now": 0, "max": 0}
    barrier = threading.Barrier(min(concurrency, len(plan)))

    def one(index, item):
        res = {"status": None, "body": None, "x_request_id": [], "error": None, "attempts": 0}
        headers = {"Connection": "close"}
        if item.get("traceparent"):
            headers["traceparent"] = item["traceparent"]
        if index < barrier.parties:
            # the first wave starts together: the front really has
            # `concurrency` requests in flight at once
            try:
                barrier.wait(20)
            except threading.BrokenBarrierError:
                pass
        with lock:
            state["now"] += 1
            state["max"] = max(state["max"], state["now"])
        try:
            for attempt in range(4):
                res["attempts"] = attempt + 1
                conn = http.client.HTTPConnection(host, port, timeout=20)
                try:
                    conn.request("GET", item["path"], headers=headers)
                    resp = conn.getresponse()
                    res["status"] = resp.status
                    res["body"] = resp.read().decode("utf-8", "replace")
                    res["x_request_id"] = resp.headers.get_all("X-Request-ID") or []
                    res["error"] = None
                    break
                except (ConnectionResetError, http.client.RemoteDisconnected) as e:
                    # reset before any response byte: the server never saw it
                    res["error"] = "%s: %s (attempt %d)" % (type(e).__name__, e, attempt + 1)
                finally:
                    conn.close()
        except (OSError, http.client.HTTPException) as e:
            res["error"] = "%s: %s" % (type(e).__name__, e)
        finally:
            with lock:
                state["now"] -= 1
        return item["k"], res

    with ThreadPoolExecutor(concurrency) as ex:
        results = dict(ex.map(lambda a: one(*a), enumerate(plan)))
    return {"max_in_flight": state["max"], "results": results}


def main(argv):
    if len(argv) == 4 and argv[0] == "wait":
        return wait(argv[1], int(argv[2]), float(argv[3]))
    if len(argv) == 4 and argv[0] == "load":
        plan = json.load(sys.stdin)
        json.dump(load(argv[1], int(argv[2]), int(argv[3]), plan), sys.stdout)
        return 0
    sys.stderr.write(__doc__)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
