#!/usr/bin/env python3
"""test_write_shut.py - a request read after the server shut down its side
of the connection is never served: it must not give its id to any line.

A server that answers a request with an error and "Connection: close"
shuts its write side down (shutdown(SHUT_WR)) and drains what the client
still sends before it closes (a lingering close), and may write that
request's log line only then: nginx writes its access log line after the
lingering close. A client that sends its next request on the same
connection before it sees the close (or ignores it) has that request read
and discarded. Until 2026-12-07 the shim took it for the connection's next
request, and the lines written after the drain got its id: nginx's access
line of a 400 named by a later request on the same URL (2 of 2 lines
wrong in helper-122's runs); here the server's line after the drain.
Since then nothing read after the shutdown begins a request, and that line
has no id (the drain's reads end the request's hold on the thread).

A small server (python3, one connection at a time, its lines on stderr) is
run under LD_PRELOAD=$REQID_LIB (default build/libreqid.so). A request with
"X-Close: yes" is answered 400 with "Connection: close", then the server
shuts down its write side, reads until the client's end, logs "drained",
closes and logs "connection closed", both with the request's token. Other requests
are answered 200, keep-alive, and log "done". Traffic, on one URL: a
connection whose first request is answered with the close and whose client
then sends a second request with an X-Request-ID of its own; and a
keep-alive connection with two requests, the control (both lines their
own id; the lines after a close have none).
"""

import json
import os
import socket
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import harness  # noqa: E402

LIB = Path(os.environ.get("REQID_LIB") or harness.LIBREQID).resolve()

SERVER = harness.PY_LISTENER + r"""
while True:
    c, _ = ls.accept()
    f = c.makefile("rb")
    close = False
    for line in f:
        if line.startswith(b"X-Tok: "):
            tok = line[7:].strip().decode()
        close = close or line == b"X-Close: yes\r\n"
        if line != b"\r\n":
            continue
        if close:
            c.sendall(b"HTTP/1.1 400 Bad Request\r\nConnection: close\r\nContent-Length: 0\r\n\r\n")
            c.shutdown(socket.SHUT_WR)
            while c.recv(65536):
                pass
            log("drained token=%s" % tok)
            break
        c.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
        log("done token=%s" % tok)
    f.close()
    c.close()
    log("connection closed token=%s" % tok)
"""


def head(tok, extra=""):
    return ("GET /one HTTP/1.1\r\nHost: t\r\nX-Tok: %s\r\nX-Request-ID: id-%s\r\n%s\r\n"
            % (tok, tok, extra)).encode()


def drive(port):
    with socket.create_connection(("127.0.0.1", port)) as s:
        s.sendall(head("CLOSED", "X-Close: yes\r\n"))
        harness._recv_response(s, b"")
        s.sendall(head("LATE"))
        s.shutdown(socket.SHUT_WR)
        while s.recv(65536):
            pass
    with socket.create_connection(("127.0.0.1", port)) as s:
        for tok in ("KEEPA", "KEEPB"):
            s.sendall(head(tok))
            harness._recv_response(s, b"")


def main():
    _, lines = harness.serve_python(SERVER, LIB, drive, 2)
    records = [json.loads(line) for line in lines]
    got = {r["msg"]: r.get("request_id") for r in records}
    want = {"drained token=CLOSED": None, "connection closed token=CLOSED": None,
            "done token=KEEPA": "id-KEEPA", "done token=KEEPB": "id-KEEPB",
            "connection closed token=KEEPB": None}
    bad = {m: (got.get(m), w) for m, w in want.items() if got.get(m) != w}
    wrong = sum(1 for r in records if r.get("request_id") == "id-LATE")
    print("lines %d, with the unserved request's id %d, not as wanted %d"
          % (len(records), wrong, len(bad)))
    # Ground truth from the server's own words: a line naming a token
    # belongs to that request, but for a connection's last line, which
    # belongs to none.
    owners = [None if r["msg"].startswith("connection closed") else
              "id-" + r["msg"].rsplit("token=", 1)[1] for r in records]
    tagged = [(r, o) for r, o in zip(records, owners) if "request_id" in r]
    right = sum(1 for r, o in tagged if r["request_id"] == o)
    print("tagged %d, wrong %d, precision %s, recall %d/%d"
          % (len(tagged), len(tagged) - right,
             "%.0f%%" % (100.0 * right / len(tagged)) if tagged else "-",
             right, sum(1 for o in owners if o)))
    for m, (g, w) in sorted(bad.items()):
        print("  %s: %s, want %s" % (m, g, w))
    print("test_write_shut: %s" % ("FAIL" if bad or wrong else "ok"))
    return 1 if bad or wrong else 0


if __name__ == "__main__":
    sys.exit(main())
