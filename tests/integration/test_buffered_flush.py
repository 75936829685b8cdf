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
(a thread each), then the server exits, flushing what is left. A second
server gets four requests whose lines fill its buffer exactly: one write
then holds the first request's whole line and the second's text without
its newline (helper-67 found that write gave the first line the second
request's id). A third gets the first plan's requests on 8 keep-alive
connections that start as the server listens (the one URL throughout).
Every response must carry its request's id. Checked: every line arrives
once, in order (requests one after another; at once, CPython itself mixes
bytes, and only ids are checked); no line carries another request's id
(precision 100%, the principle); precision and recall are printed (recall:
none expected from buffer flushes), and so are lines that come as two
records (a line one thread's write left unfinished and another's ended:
README, Limits).

    python3 tests/integration/test_buffered_flush.py [--requests N]
"""
import argparse
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import threading
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
    protocol_version = "HTTP/1.1"  # keep-alive unless the client closes

    def do_GET(self):
        rid = self.headers.get("X-Request-ID", "-")
        n = int(rid[1:]) if rid[1:].isdigit() else 0
        size = self.headers.get("X-Len")
        if size:
            print(("request %s sized " % rid).ljust(int(size) - 1, "z"))
        else:
            for i in range(3):
                print("request %s line %d %s" % (rid, i, "x" * 40))
            if n % 200 == 7:
                print("request %s long %s" % (rid, "y" * 5000))
        body = b"ok\n"
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_SYNC(self):
        # Every request before this one has ended: its thread is gone,
        # and with it the line its write left unfinished (README, Limits).
        for t in threading.enumerate():
            if t is not threading.current_thread() and t is not threading.main_thread():
                t.join(10)
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

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


def request_bytes(rid, size, close):
    extra = "X-Len: %d\r\n" % size if size else ""
    return ("GET / HTTP/1.1\r\nHost: x\r\nX-Request-ID: %s\r\n%s%s\r\n"
            % (rid, extra, "Connection: close\r\n" if close else "")).encode()


def answered(rid, got):
    """Fails unless got is a 200 carrying rid in the header the shim adds."""
    if not got.startswith(b"HTTP/1.1 200") or harness.split_added_header(got)[1] != rid:
        raise harness.Failure("request %s answered %r" % (rid, got[:200]))


def request(port, rid, size=None):
    answered(rid, harness.exchange(port, request_bytes(rid, size, True)))


def keep_alive(port, plan, errors):
    """plan's requests one after another on one keep-alive connection."""
    try:
        with harness.connect(port, 30) as sock:
            rest = b""
            for rid, size in plan:
                sock.sendall(request_bytes(rid, size, False))
                got, rest = harness._recv_response(sock, rest)
                answered(rid, got)
    except (OSError, harness.Failure) as e:
        errors.append(e)


def run(tmp, plan, lib, connections=0, sync=False):
    """Runs the server under reqid for plan, a list of (id, line size or
    None), one request after another on connections of their own (with
    sync, each followed by a SYNC that answers once the threads of those
    before it have ended), or, with connections, dealt round to that many
    keep-alive connections that all start as soon as the server listens;
    returns its stdout."""
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
        port = harness.announced_port(proc, "server")
        if connections:
            errors = []
            clients = [threading.Thread(target=keep_alive,
                                        args=(port, plan[k::connections], errors))
                       for k in range(connections)]
            for c in clients:
                c.start()
            for c in clients:
                c.join()
            if errors:
                raise harness.Failure("keep-alive client: %s" % errors[0])
        for rid, size in plan if not connections else ():
            request(port, rid, size)
            if sync:
                harness.exchange(port, b"SYNC / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        harness.exchange(port, b"QUIT / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        rc = proc.wait(timeout=30)
        if rc != 0:
            raise harness.Failure("server exited %d: %r" % (rc, proc.stderr.read()[-400:]))
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        proc.stderr.close()
    return out.read_bytes()


def expected(plan):
    want = []
    for rid, size in plan:
        if size:
            want.append(("request %s sized " % rid).ljust(size - 1, "z"))
            continue
        want += ["request %s line %d %s" % (rid, i, "x" * 40) for i in range(3)]
        if int(rid[1:]) % 200 == 7:
            want.append("request %s long %s" % (rid, "y" * 5000))
    return want


def check(text, plan, exact):
    """(lines, tagged, wrong, split) of the server's stdout; with exact
    (requests one after another), fails on a lost, repeated or reordered
    line. Requests at once make CPython's print() lose and mix bytes (its
    buffer is not thread-safe; so without the shim): then only the ids are
    checked, a tagged record being wrong unless the first request it names
    is its id's. A line one thread's write left unfinished and another
    thread's ended comes as two records on one line (README, Limits): their
    texts are joined, and counted in split."""
    want = expected(plan)
    got, tagged, wrong, split = [], 0, [], 0
    decoder = json.JSONDecoder()
    for line in text.decode().splitlines():
        records, at = [], 0
        while at < len(line):
            record, at = decoder.raw_decode(line, at)
            records.append(record)
        split += len(records) - 1
        msg = "".join(r["msg"] for r in records)
        got.append(msg)
        for record in records:
            if "request_id" in record:
                tagged += 1
                named = re.search(r"request (\S+)", record["msg"])
                if not named or record["request_id"] != named.group(1):
                    wrong.append(line[:100])
    if exact and got != want:
        raise harness.Failure("lines lost, repeated or reordered: %d of %d" % (len(got), len(want)))
    return len(got), tagged, wrong, split


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--requests", type=int, default=400)
    ap.add_argument("--lib", help="library to test instead of build/libreqid.so")
    a = ap.parse_args()

    def one(name, plan, connections=0, sync=False):
        def check_plan(failures):
            with tempfile.TemporaryDirectory(prefix="reqid-flush-") as tmp:
                started = time.monotonic()
                lines, tagged, wrong, split = check(run(tmp, plan, a.lib, connections, sync),
                                                    plan, not connections)
                right = tagged - len(wrong)
                print("%s: %d lines, %d tagged, %d wrong, precision %s, recall %.1f%%, "
                      "%d split in two records (%.1f s)"
                      % (name, lines, tagged, len(wrong),
                         "%.1f%%" % (100.0 * right / tagged) if tagged else "-",
                         100.0 * right / lines, split, time.monotonic() - started))
                if wrong:
                    failures.append("%s: %d lines with another request's id, e.g. %s"
                                    % (name, len(wrong), wrong[0]))
        return (name, check_plan)

    many = [("r%d" % i, None) for i in range(1, a.requests + 1)]
    # From an empty buffer: r2's text fills it exactly, so one write holds
    # r1's line and r2's text, its newline going out with r3's line. r2's
    # thread ends before r3 begins (sync): its part of the line comes
    # first (were r3's write first, the rest would: README, Limits).
    exact = [("r1", 3000), ("r2", 5193), ("r3", 8191), ("r4", 50)]
    return harness.run_groups([
        one("print() to a file, short lines", many),
        one("print() to a file, a buffer filled exactly", exact, sync=True),
        one("print() to a file, 8 keep-alive connections from the first second", many, 8)])


if __name__ == "__main__":
    sys.exit(main())
