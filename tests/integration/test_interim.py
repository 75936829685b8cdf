#!/usr/bin/env python3
"""test_interim.py - interim responses (1xx) do not answer a request.
After a 101 Switching Protocols the bytes a client sends are the upgraded
protocol's (a tunnel, a websocket), never a request the server answers: a
request's text inside them (a tunnelled request with its own X-Request-ID)
must not give the server's lines its id, and responses carried back
through the tunnel keep their bytes. An upgrade the server declines (a
final response) leaves the connection HTTP: the next request on it gets
its id as on any keep-alive connection. After a 100 Continue the request
is still unanswered: a request whose head arrives with the body (a client
that pipelines) is pipelined, and must not take the lines and the response
of the request still being served, nor when the server wrote the 101 or
the 100 Continue by sendfile (unseen), or wrote the 100 Continue in two
pieces and read the body and the next head in between.

A small server (python3, one connection at a time, its lines on stderr) is
run under LD_PRELOAD=$REQID_LIB (default build/libreqid.so). A request with
"X-Accept: yes" is answered with 101, and from then on each read is a
tunnel's chunk: the server logs it under the token of the request that
opened the tunnel (the ground truth: the upgrade's lines are the upgrade
request's) and writes back a canned HTTP response. A request with "Expect:
100-continue" gets a 100 Continue, then the server reads its body ("X-Send:
file": the 101 or the 100 goes by sendfile; "X-Send: split": the 100's last
CRLF after the body and what came with it were read). Every
request is answered 200 with a length, keep-alive.
Traffic, on one URL: two tunnels, each an upgrade request with its
X-Request-ID and then two tunnelled requests, each with an X-Request-ID of
its own; a keep-alive connection whose first request asks for an upgrade
the server declines, and a second request after it; a connection whose
first request expects 100-continue and whose client sends the body when the
100 comes, then waits for the response before its second request; one
whose client sends the second request's head with the body; a tunnel
whose 101 goes by sendfile; a pipelining connection whose 100 Continue goes
by sendfile, and one whose 100 Continue's last CRLF comes after the body
and the next head were read. Until
2026-12-07 the tunnel's lines carried the tunnelled requests' ids (8 of 12
lines wrong, precision 33%); now they carry none (precision 100%, recall
4 of 12: the upgrade requests' own lines). And the pipelined request after
a 100 Continue took the lines of the request still served after its body
was read, and its response (2 of 5 lines wrong, the first response with
the second request's X-Request-ID); now the connection is lost there (no
id, no header). The declined upgrade's connection and the one that waits
for its response keep their ids (10 of 10 lines, all four responses with
their own X-Request-ID).
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
import re
CANNED = b"HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\ninside"
CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"
SWITCHING = b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: tunnel\r\nConnection: Upgrade\r\n\r\n"
def by_sendfile(c, data):
    fd = os.memfd_create("interim")
    os.write(fd, data)
    sent = 0
    while sent < len(data):
        sent += os.sendfile(c.fileno(), fd, sent, len(data) - sent)
    os.close(fd)
while True:
    c, _ = ls.accept()
    buf = b""
    while True:
        while b"\r\n\r\n" not in buf:
            got = c.recv(65536)
            if not got:
                break
            buf += got
        if b"\r\n\r\n" not in buf:
            break
        head, buf = buf.split(b"\r\n\r\n", 1)
        tok = re.search(rb"X-Tok: (\w+)", head).group(1).decode()
        log("start token=%s" % tok)
        if b"Expect: 100-continue" in head:
            if b"X-Send: file" in head:
                by_sendfile(c, CONTINUE)
            else:
                c.sendall(CONTINUE[:-2] if b"X-Send: split" in head else CONTINUE)
            n = int(re.search(rb"Content-Length: (\d+)", head).group(1))
            while len(buf) < n:
                buf += c.recv(65536)
            buf = buf[n:]
            if b"X-Send: split" in head:
                while b"\r\n\r\n" not in buf:
                    buf += c.recv(65536)
                c.sendall(b"\r\n")
            log("body read token=%s" % tok)
        if b"X-Accept: yes" not in head:
            body = b"ok " + tok.encode()
            c.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))
            log("done token=%s" % tok)
            continue
        if b"X-Send: file" in head:
            by_sendfile(c, SWITCHING)
        else:
            c.sendall(SWITCHING)
        log("switched token=%s" % tok)
        while True:
            chunk = buf or c.recv(65536)
            buf = b""
            if not chunk:
                break
            log("tunnel chunk token=%s" % tok)
            c.sendall(CANNED)
            log("tunnel relayed token=%s" % tok)
        break
    c.close()
    log("connection closed")
"""


def head(tok, rid, extra=""):
    return ("GET /one HTTP/1.1\r\nHost: t\r\nX-Tok: %s\r\nX-Request-ID: %s\r\n%s\r\n"
            % (tok, rid, extra)).encode()


def read_response(s):
    """One response from s, read to its last byte and not beyond (the next
    one may have come in the same segment)."""
    data = b""
    while not data.endswith(b"\r\n\r\n"):
        got = s.recv(1)
        if not got:
            raise AssertionError("connection closed mid-response: %r" % data)
        data += got
    n = 0
    for line in data.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.lower() == b"content-length":
            n = int(value)
    return data + harness.recv_exactly(s, n)


def drive(port, adds):
    """The traffic; returns {token: expected id} and the problems seen in
    the responses (adds: the shim adds X-Request-ID to them)."""
    expected, problems = {}, []
    added = (lambda rid: rid) if adds else (lambda rid: None)
    for tok, send in (("TUNA", ""), ("TUNB", ""), ("TUNFILE", "X-Send: file\r\n")):
        rid = "up-" + tok
        expected[tok] = rid
        with socket.create_connection(("127.0.0.1", port)) as s:
            s.sendall(head(tok, rid, "X-Accept: yes\r\nUpgrade: tunnel\r\nConnection: Upgrade\r\n"
                           + send))
            got = read_response(s)
            want = b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: tunnel\r\nConnection: Upgrade\r\n\r\n"
            if got != want:
                problems.append("%s: 101 changed: %r" % (tok, got))
            for k in range(2):
                s.sendall(head("INNER%d" % k, "evil-%s-%d" % (tok, k)))
                got = read_response(s)
                if got != b"HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\ninside":
                    problems.append("%s: tunnelled response changed: %r" % (tok, got))
    with socket.create_connection(("127.0.0.1", port)) as s:
        for tok, extra in (("DECLA", "Upgrade: h2c\r\nConnection: Upgrade\r\n"), ("DECLB", "")):
            expected[tok] = "keep-" + tok
            s.sendall(head(tok, expected[tok], extra))
            check_ok(s, tok, added(expected[tok]), problems)
    expect = "Expect: 100-continue\r\nContent-Length: 4\r\n"
    with socket.create_connection(("127.0.0.1", port)) as s:
        for tok in ("WAITA", "WAITB"):
            expected[tok] = "keep-" + tok
            s.sendall(head(tok, expected[tok], expect))
            if read_response(s) != b"HTTP/1.1 100 Continue\r\n\r\n":
                problems.append("%s: no 100 Continue" % tok)
            s.sendall(b"body")
            check_ok(s, tok, added(expected[tok]), problems)
    for name, send in (("PIPE", ""), ("FILE", "X-Send: file\r\n"),
                       ("SPLIT", "X-Send: split\r\n")):
        first, second = name + "A", name + "B"
        with socket.create_connection(("127.0.0.1", port)) as s:
            expected[first], expected[second] = "keep-" + first, "keep-" + second
            s.sendall(head(first, expected[first], expect + send))
            # The split 100 Continue's last CRLF comes after the body.
            cont = b"HTTP/1.1 100 Continue\r\n" if send.endswith("split\r\n") else None
            got = harness.recv_exactly(s, len(cont)) if cont else read_response(s)
            if got != (cont or b"HTTP/1.1 100 Continue\r\n\r\n"):
                problems.append("%s: no 100 Continue: %r" % (first, got))
            s.sendall(b"body" + head(second, expected[second]))
            if cont and harness.recv_exactly(s, 2) != b"\r\n":
                problems.append("%s: 100 Continue not ended" % first)
            for tok in (first, second):
                # The first with no header: the stream is lost at the
                # second's head.
                check_ok(s, tok, None, problems)
    return expected, problems


def check_ok(s, tok, rid, problems):
    """Reads the server's answer to tok from s: its bytes, with X-Request-ID:
    rid added (none if rid is None)."""
    got = read_response(s)
    body = b"ok " + tok.encode()
    added = b"X-Request-ID: %s\r\n" % rid.encode() if rid else b""
    want = b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n%s\r\n%s" % (len(body), added, body)
    if got != want:
        problems.append("%s: response %r, want %r" % (tok, got, want))


def run(adds):
    # The server's last line of each of the 8 connections: every line
    # before it is written.
    (expected, problems), lines = harness.serve_python(
        SERVER, LIB, lambda port: drive(port, adds), 8,
        None if adds else {"REQID_RESPONSE_HEADER": ""})
    return expected, problems, lines


# Per mode (the header added or not) and traffic: lines, and how many of
# them carry their own request's id. Without the header the shim cannot see
# a 100 Continue or a 101: a request that asks for one (Expect, Upgrade)
# ends the ids of its connection at the next request's head.
WANT = {
    True: {"tunnel": (18, 6), "declined": (4, 4), "continue": (21, 9)},
    False: {"tunnel": (18, 6), "declined": (4, 2), "continue": (21, 6)},
}


def check(adds):
    expected, problems, lines = run(adds)
    counts = {"tunnel": [0, 0, 0], "declined": [0, 0, 0], "continue": [0, 0, 0]}
    # each: lines, right, wrong
    for obj in (json.loads(l) for l in lines):
        msg = obj.get("msg", "")
        if "token=" not in msg:
            if "request_id" in obj:
                problems.append("line of no request with an id: %r" % obj)
            continue
        tok = msg.rsplit("token=", 1)[1]
        row = counts["tunnel" if tok.startswith("TUN")
                     else "declined" if tok.startswith("DECL") else "continue"]
        row[0] += 1
        rid = obj.get("request_id")
        if rid is None:
            continue
        if rid == expected[tok]:
            row[1] += 1
        else:
            row[2] += 1
            problems.append("line %r carries %s, not %s's" % (msg, rid, tok))
    mode = "header" if adds else "no header"
    for name, (n, right, wrong) in counts.items():
        tagged = right + wrong
        print("%-9s %-9s lines %2d right %2d wrong %2d precision %s recall %d/%d"
              % (mode, name, n, right, wrong,
                 "%.0f%%" % (100.0 * right / tagged) if tagged else "-", right, n))
        if (n, right) != WANT[adds][name]:
            problems.append("%s, %s: %d lines, %d right; want %d, %d"
                            % ((mode, name, n, right) + WANT[adds][name]))
    return problems


def main():
    problems = check(True) + check(False)
    for p in problems:
        print("FAIL:", p)
    print("test_interim: %s" % ("FAIL" if problems else "ok"))
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
