#!/usr/bin/env python3
"""test_buffered_flush.py - lines an interpreter buffered for earlier
requests, flushed by a thread serving a later one, get no id.

CPython's print() to a file (stdout under systemd, docker or a pipe, without
PYTHONUNBUFFERED) fills an 8 KiB buffer and writes it out when the next
print does not fit: from whichever thread prints then, which in a server of
a thread per connection (http.server's ThreadingHTTPServer, a WSGI server's
thread pool) has just read its own next request. The shim sees one write of
many lines, all but the last few of other requests, from a thread certain of
its request. Until 2026-12-06 it took such a write for the thread's own
lines (a message of several lines) and gave every line the thread's id:
helper-66 found gunicorn's gthread workers giving 1,486 of 1,486 tagged
print() lines a wrong id, one request's id to 136 lines.

The server here is ThreadingHTTPServer; its handler prints three lines that
name the request's own X-Request-ID and, for one request in 200, a line of
5,000 bytes. REQUESTS requests go one after another, a new connection each
(a thread each), then the server exits, flushing what is left. Checked:
every line arrives once, in order; no line carries another request's id
(precision 100%, the principle); and the lines that do carry one are
counted (recall: none expected from buffer flushes).

    python3 tests/integration/test_buffered_flush.py [--requests N]
"""
import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import harness  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
REQID = ROOT / "scripts" / "reqid"

SERVER = r'''
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

class Handler(BaseHTTPRequestHandler):
    def do_GET(self):
        rid = self.headers.get("X-Request-ID", "-")
        n = int(rid[1:]) if rid[1:].isdigit() else 0
        for i in range(3):
            print("request %s line %d %s" % (rid, i, "x" * 40))
        if n % 200 == 7:
            print("request %s long %s" % (rid, "y" * 5000))
        body = b"ok\n"
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_QUIT(self):
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()
        threading.Thread(target=self.server.shutdown).start()

    def log_message(self, *args):
        pass

server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
print("port %d" % server.server_address[1], file=sys.stderr, flush=True)
server.serve_forever()
server.server_close()
'''


def request(port, rid):
    s = socket.create_connection(("127.0.0.1", port), timeout=30)
    s.sendall(("GET / HTTP/1.1\r\nHost: x\r\nX-Request-ID: %s\r\n"
               "Connection: close\r\n\r\n" % rid).encode())
    got = b""
    while True:
        chunk = s.recv(65536)
        if not chunk:
            break
        got += chunk
    s.close()
    if not got.startswith(b"HTTP/1.0 200"):
        raise harness.Failure("request %s answered %r" % (rid, got[:40]))


def run(tmp, requests, lib):
    script = Path(tmp) / "server.py"
    script.write_text(SERVER)
    out = Path(tmp) / "stdout.log"
    env = dict(os.environ)
    env.pop("PYTHONUNBUFFERED", None)
    if lib:
        env["REQID_LIB"] = lib
    with open(out, "wb") as stdout:
        proc = subprocess.Popen([str(REQID), "run", "--", sys.executable, str(script)],
                                stdout=stdout, stderr=subprocess.PIPE, env=env,
                                start_new_session=True)
    try:
        first = proc.stderr.readline().decode()
        if first.startswith("{"):  # stderr is a log descriptor too
            first = json.loads(first)["msg"]
        if not first.startswith("port "):
            raise harness.Failure("server did not start: %r" % first)
        port = int(first.split()[1])
        for i in range(1, requests + 1):
            request(port, "r%d" % i)
        s = socket.create_connection(("127.0.0.1", port), timeout=30)
        s.sendall(b"QUIT / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        while s.recv(65536):
            pass
        s.close()
        rc = proc.wait(timeout=30)
        if rc != 0:
            raise harness.Failure("server exited %d: %r" % (rc, proc.stderr.read()[-400:]))
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        proc.stderr.close()
    return out.read_bytes()


def check(text, requests):
    """(lines, tagged, wrong) of the server's stdout; fails on a lost,
    repeated or reordered line."""
    want = []
    for n in range(1, requests + 1):
        want += ["request r%d line %d %s" % (n, i, "x" * 40) for i in range(3)]
        if n % 200 == 7:
            want.append("request r%d long %s" % (n, "y" * 5000))
    got, tagged, wrong = [], 0, []
    for line in text.decode().splitlines():
        record = json.loads(line)
        msg = record["msg"]
        got.append(msg)
        if "request_id" in record:
            tagged += 1
            if record["request_id"] != msg.split()[1]:
                wrong.append(line[:100])
    if got != want:
        raise harness.Failure("lines lost, repeated or reordered: %d of %d" % (len(got), len(want)))
    return len(got), tagged, wrong


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--requests", type=int, default=400)
    ap.add_argument("--lib", help="library to test instead of build/libreqid.so")
    a = ap.parse_args()

    def flushes(failures):
        with tempfile.TemporaryDirectory(prefix="reqid-flush-") as tmp:
            started = time.monotonic()
            lines, tagged, wrong = check(run(tmp, a.requests, a.lib), a.requests)
            print("threaded python server, print() to a file: %d lines, %d tagged, "
                  "%d wrong (%.1f s)" % (lines, tagged, len(wrong), time.monotonic() - started))
            if wrong:
                failures.append("%d lines with another request's id, e.g. %s"
                                % (len(wrong), wrong[0]))

    return harness.run_groups([("buffered flush", flushes)])


if __name__ == "__main__":
    sys.exit(main())
