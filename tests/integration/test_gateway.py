#!/usr/bin/env python3
"""test_gateway.py - an application behind a gateway protocol (FastCGI,
uwsgi, SCGI) gets no made-up ids.

A front server (nginx's fastcgi_pass and uwsgi_pass, lighttpd's
mod_fastcgi) passes each HTTP request to the application in a binary or
netstring protocol, with the id the front server gave it among the request's
variables (HTTP_X_REQUEST_ID). Until 2026-12-06 the shim took such a stream
for "not HTTP" and gave the whole connection one generated id: helper-70
found php-cgi behind lighttpd tagging all 37,404 lines of its log with ids
found nowhere else, and uwsgi behind nginx putting a made-up X-Request-ID
into its HTTP responses (which nginx passed on to the client in place of the
client's own) whenever a 0x0a byte in the packet ended the "first line"
before its "HTTP/1.1" (paths of 10 bytes).

The application here is a thread-per-connection server run under `reqid
run`, speaking one protocol per run and reading like php-cgi (a FastCGI
record's 8-byte header alone, then its content; uwsgi's 4-byte header, then
the packet). Each request's handler writes one log line naming the request
(its token and the HTTP_X_REQUEST_ID it was given) and answers with a
response that names them too. The client sends REQUESTS requests per
protocol from the application's first second, on five URLs they all
share (6 to 10 bytes), each naming itself in a header (X-Tok), half with
an id among the variables; FastCGI also on 3 keep-alive
connections (FCGI_KEEP_CONN, as nginx's fastcgi_keep_conn) at once with the
others, several requests each.

Checked: every response is byte for byte what the application wrote (no
header added); every request has exactly its one log line, and no line
carries an id: precision 100% (nothing tagged), recall 0% by design (the
shim does not read ids from the protocols' variables; README, Limits).

    python3 tests/integration/test_gateway.py [--requests N]
"""
import argparse
import json
import os
import socket
import struct
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import harness  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
REQID = ROOT / "scripts" / "reqid"

APP = r'''
import socket, socketserver, struct, sys, threading

PROTO, LOG = sys.argv[1], sys.argv[2]
log = open(LOG, "a")

def recv_exact(sock, n):
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            raise EOFError
        data += chunk
    return data

def logged(env):
    tok = env.get("HTTP_X_TOK", "-")
    hdr = env.get("HTTP_X_REQUEST_ID", "-")
    log.write("tok=%s hdr=%s\n" % (tok, hdr))
    log.flush()
    return ("tok=%s hdr=%s\n" % (tok, hdr)).encode()

def fcgi_pairs(data):
    env, i = {}, 0
    def length():
        nonlocal i
        if data[i] < 128:
            i += 1
            return data[i - 1]
        i += 4
        return struct.unpack("!I", data[i - 4:i])[0] & 0x7fffffff
    while i < len(data):
        n = length()
        v = length()
        env[data[i:i + n].decode()] = data[i + n:i + n + v].decode()
        i += n + v
    return env

def fcgi_record(t, rid, content):
    return struct.pack("!BBHHBx", 1, t, rid, len(content), 0) + content

def serve_fastcgi(sock):
    while True:
        params, keep, rid = b"", False, 0
        while True:
            try:
                head = recv_exact(sock, 8)
            except EOFError:
                return
            _, kind, rid, clen, plen = struct.unpack("!BBHHBx", head)
            content = recv_exact(sock, clen)
            recv_exact(sock, plen)
            if kind == 1:
                keep = bool(content[2] & 1)
            elif kind == 4:
                params += content
            elif kind == 5 and clen == 0:
                break
        body = logged(fcgi_pairs(params))
        out = b"Status: 200 OK\r\nContent-Type: text/plain\r\n\r\n" + body
        sock.sendall(fcgi_record(6, rid, out) + fcgi_record(6, rid, b"") +
                     fcgi_record(3, rid, b"\0" * 8))
        if not keep:
            return

def serve_uwsgi(sock):
    _, size, _ = struct.unpack("<BHB", recv_exact(sock, 4))
    data, env, i = recv_exact(sock, size), {}, 0
    while i < len(data):
        n = struct.unpack("<H", data[i:i + 2])[0]
        name = data[i + 2:i + 2 + n].decode()
        i += 2 + n
        v = struct.unpack("<H", data[i:i + 2])[0]
        env[name] = data[i + 2:i + 2 + v].decode()
        i += 2 + v
    body = logged(env)
    sock.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: %d\r\n\r\n"
                 % len(body) + body)

def serve_scgi(sock):
    digits = b""
    while not digits.endswith(b":"):
        digits += recv_exact(sock, 1)
    data = recv_exact(sock, int(digits[:-1]) + 1)[:-1].split(b"\0")
    env = {data[k].decode(): data[k + 1].decode() for k in range(0, len(data) - 1, 2)}
    body = logged(env)
    sock.sendall(b"Status: 200 OK\r\nContent-Type: text/plain\r\n\r\n" + body)

SERVE = {"fastcgi": serve_fastcgi, "uwsgi": serve_uwsgi, "scgi": serve_scgi}

class Handler(socketserver.BaseRequestHandler):
    def handle(self):
        try:
            SERVE[PROTO](self.request)
        except (EOFError, ConnectionError):
            pass

class Server(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True

server = Server(("127.0.0.1", 0), Handler)
print("port %d" % server.server_address[1], file=sys.stderr, flush=True)
threading.Thread(target=server.serve_forever, daemon=True).start()
sys.stdin.read()  # until the test closes it
'''


def variables(n, with_id):
    """The CGI variables of request n: one of five URLs all requests share,
    6 to 10 bytes (10: the one whose 0x0a length byte broke the old check),
    and a header naming n (X-Tok)."""
    path = "/a" + "p" * (n % 5) + "?q=1"
    env = [("QUERY_STRING", "q=1"), ("REQUEST_METHOD", "GET"),
           ("REQUEST_URI", path), ("SERVER_PROTOCOL", "HTTP/1.1"),
           ("GATEWAY_INTERFACE", "CGI/1.1"), ("HTTP_X_TOK", "%03d" % (n % 1000))]
    if with_id:
        env.append(("HTTP_X_REQUEST_ID", "t-%d" % n))
    return env


def answer(n, with_id):
    return ("tok=%03d hdr=%s\n" % (n % 1000, "t-%d" % n if with_id else "-")).encode()


def fcgi_record(kind, rid, content):
    return struct.pack("!BBHHBx", 1, kind, rid, len(content), 0) + content


def fcgi_request(n, with_id, keep):
    def length(x):
        return bytes([x]) if x < 128 else struct.pack("!I", x | 0x80000000)
    params = b"".join(length(len(k)) + length(len(v)) + k.encode() + v.encode()
                      for k, v in variables(n, with_id))
    return (fcgi_record(1, 1, struct.pack("!HB5x", 1, 1 if keep else 0)) +
            fcgi_record(4, 1, params) + fcgi_record(4, 1, b"") + fcgi_record(5, 1, b""))


def fcgi_response(body):
    out = b"Status: 200 OK\r\nContent-Type: text/plain\r\n\r\n" + body
    return fcgi_record(6, 1, out) + fcgi_record(6, 1, b"") + fcgi_record(3, 1, b"\0" * 8)


def uwsgi_request(n, with_id):
    data = b"".join(struct.pack("<H", len(k)) + k.encode() + struct.pack("<H", len(v)) + v.encode()
                    for k, v in variables(n, with_id))
    return struct.pack("<BHB", 0, len(data), 0) + data


def uwsgi_response(body):
    return (b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: %d\r\n\r\n"
            % len(body) + body)


def scgi_request(n, with_id):
    env = [("CONTENT_LENGTH", "0"), ("SCGI", "1")] + variables(n, with_id)
    headers = b"".join(k.encode() + b"\0" + v.encode() + b"\0" for k, v in env)
    return b"%d:" % len(headers) + headers + b","


def scgi_response(body):
    return b"Status: 200 OK\r\nContent-Type: text/plain\r\n\r\n" + body


def drive(proto, port, requests):
    """Sends the requests; returns the failures (a response not exactly the
    application's)."""
    failures = []
    plan = list(range(requests))

    def keep_alive(numbers):
        with harness.connect(port, 30) as sock:
            for n in numbers:
                want = fcgi_response(answer(n, n % 2 == 0))
                sock.sendall(fcgi_request(n, n % 2 == 0, True))
                got = harness.recv_exactly(sock, len(want))
                if got != want:
                    failures.append("fastcgi keep-alive %d: %r" % (n, got))

    kept = []
    if proto == "fastcgi":
        # a third on 3 keep-alive connections, at once with the rest, a
        # connection each
        numbers, plan = plan[:requests // 3], plan[requests // 3:]
        kept = [threading.Thread(target=keep_alive, args=(numbers[k::3],)) for k in range(3)]
        for t in kept:
            t.start()
    make = {"fastcgi": lambda n, i: fcgi_request(n, i, False), "uwsgi": uwsgi_request,
            "scgi": scgi_request}[proto]
    reply = {"fastcgi": fcgi_response, "uwsgi": uwsgi_response, "scgi": scgi_response}[proto]
    for n in plan:
        got = harness.exchange(port, make(n, n % 2 == 0))
        if got != reply(answer(n, n % 2 == 0)):
            failures.append("%s %d: %r" % (proto, n, got))
    for t in kept:
        t.join()
    return failures


def run(proto, tmp, requests):
    """Runs the application for proto under reqid; returns (failures,
    lines, tagged)."""
    script = Path(tmp) / "app.py"
    script.write_text(APP)
    log = Path(tmp) / ("%s.log" % proto)
    proc = subprocess.Popen([str(REQID), "run", "--log-path", str(Path(tmp) / "*.log"), "--",
                             sys.executable, str(script), proto, str(log)],
                            stdin=subprocess.PIPE, stderr=subprocess.PIPE,
                            stdout=subprocess.DEVNULL, env=dict(os.environ),
                            start_new_session=True)
    try:
        port = harness.announced_port(proc, "%s application" % proto)
        failures = drive(proto, port, requests)
    finally:
        proc.stdin.close()
        proc.wait(timeout=30)
    lines = log.read_text().splitlines()
    want = sorted("tok=%03d hdr=%s" % (n % 1000, "t-%d" % n if n % 2 == 0 else "-")
                  for n in range(requests))
    msgs, tagged = [], []
    for line in lines:
        obj = json.loads(line)
        msgs.append(obj["msg"])
        if "request_id" in obj:
            tagged.append(line)
    if sorted(msgs) != want:
        failures.append("%s: the log's lines are not one per request" % proto)
    for line in tagged[:3]:
        failures.append("%s: a line with an id: %s" % (proto, line))
    return failures, len(lines), len(tagged)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--requests", type=int, default=120)
    a = ap.parse_args()
    failures = []
    print("%-8s %8s %6s %7s %6s %9s %6s" % ("protocol", "requests", "lines", "tagged", "wrong",
                                             "precision", "recall"))
    for proto in ("fastcgi", "uwsgi", "scgi"):
        with tempfile.TemporaryDirectory(prefix="reqid-gateway-") as tmp:
            f, lines, tagged = run(proto, tmp, a.requests)
        failures += f
        # every tagged line is wrong here: the right id is the front server's
        print("%-8s %8d %6d %7d %6d %9s %6s" % (proto, a.requests, lines, tagged, tagged,
                                                "100%" if tagged == 0 else "0%", "0%"))
    for f in failures:
        print("FAIL", f)
    print("test_gateway: %s" % ("FAILED" if failures else "passed"))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
