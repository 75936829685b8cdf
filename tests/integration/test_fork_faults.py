#!/usr/bin/env python3
"""test_fork_faults.py - the page faults the shim adds to a fork-per-connection
server's request, counted, not timed.

On this project's VM a page fault costs 10-15 us, as much as a few thousand
instructions: the pages a fork child touches are laid out on purpose
(shim/fork_hot.h, shim/layout.ld), and a change that moves one (a table a
child writes per request, code of the child's path outside the FORK_PATH
window, constants outside RELRO) costs every CGI request and every fork
server's connection without any test failing for it, until now.

The bundled fork_per_conn server runs bare and under `reqid run`, each with
one address layout (setarch -R: where libc lands moves its share by a few
faults), and serves REQUESTS connections of one request each (its child
logs three lines and calls exit). Its minor faults and those of its reaped
children (/proc/PID/stat minflt and cminflt) are read before and after;
the shim's extra per request must stay within LIMIT. Measured on
2026-12-06: bare 47.3-47.9, +12.8 to +13.8 in nine runs (which children
drain a partial line moves it), so LIMIT leaves a page's room. Of those, the
child's code window, its page of per-process state, its connection's
entry, its request's slot, its line's index page, the shim's symbol table
(a lazy binding looks there first), the partial-line code and buffers
(two windows, two or three pages), the exit flag's page at exit, a page of
the loader's at exit; the parent's descriptor flags' page at its close.
The library of that morning added +20.9, with libunwind and liblzma
loaded at listen (their exit code ran in every child) and the ring of
answered requests, the seen bits and the constants each a page more.

    python3 tests/integration/test_fork_faults.py [--requests N]
"""
import argparse
import shutil
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import harness  # noqa: E402

LIMIT = 15.5


def faults(pid):
    """minflt + cminflt of pid (fields 10 and 11 of /proc/PID/stat)."""
    fields = Path("/proc/%d/stat" % pid).read_text().rsplit(")", 1)[1].split()
    return int(fields[7]) + int(fields[8])


def one_request(port, n):
    """Request n on a connection of its own; returns once the child closed it."""
    data = harness.exchange(port, b"GET /req/F%d HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n"
                            % n, 10)
    if not data.startswith(b"HTTP/1.1 200"):
        raise harness.Failure("request %d: bad response %r" % (n, data[:80]))


def per_request(shim, requests, tmp):
    """Faults per request of the server and its children."""
    server = harness.Server("fork_per_conn", Path(tmp) / ("shim.log" if shim else "bare.log"),
                            shim=shim, wrapper=("setarch", "-R"))
    try:
        # Warm up: the first requests map what every later one finds mapped.
        for n in range(20):
            one_request(server.port, n)
        before = faults(server.proc.pid)
        for n in range(20, 20 + requests):
            one_request(server.port, n)
        # The last child is reaped at the next accept: one more request,
        # counted in neither, brings the count level with the first.
        one_request(server.port, 20 + requests)
        after = faults(server.proc.pid)
        return (after - before) / requests
    finally:
        server.kill()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--requests", type=int, default=200)
    a = ap.parse_args()
    if not shutil.which("setarch"):
        print("test_fork_faults: setarch missing (util-linux); skipped")
        return 0
    tmp = tempfile.mkdtemp(prefix="reqid-forkfaults-")
    try:
        bare = per_request(False, a.requests, tmp)
        shim = per_request(True, a.requests, tmp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    extra = shim - bare
    ok = extra <= LIMIT
    print("fork_per_conn, page faults per request (server and children, setarch -R): "
          "bare %.2f, shimmed %.2f, shim adds %.2f (limit %.1f)  %s"
          % (bare, shim, extra, LIMIT, "ok" if ok else "OVER"))
    print("%d passed, %d failed" % (int(ok), int(not ok)))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
