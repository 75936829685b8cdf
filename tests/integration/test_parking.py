#!/usr/bin/env python3
"""test_parking.py - a pool that parks requests (build/servers/parking_pool,
tests/servers/parking_pool.c): a worker reads a request, leaves it
unanswered for another thread to finish, as Varnish's waiting list does,
and runs another request's task meanwhile (a downstream fetch and its log
line) with no call of its own in between. helper-75 found Varnish sending
the parked request's X-Request-ID and traceparent downstream for other
requests, and its log lines carrying them.

The shim cannot see the first such hand-over (README, "Limits"): the test
shows it one (a request parked, then answered by the other worker), then
checks, byte for byte, that the parking worker's fetch for another
request goes downstream without any id, and that no log line carries an
id that is not its own request's.

    python3 tests/integration/test_parking.py
"""
import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
LIB = ROOT / "build" / "libreqid.so"
SERVER = ROOT / "build" / "servers" / "parking_pool"
OK = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"


class Downstream:
    """Records each request head it gets and answers it."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.port = self.sock.getsockname()[1]
        self.heads = []
        threading.Thread(target=self.serve, daemon=True).start()

    def serve(self):
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            buf = b""
            while b"\r\n\r\n" not in buf:
                chunk = conn.recv(4096)
                if not chunk:
                    break
                buf += chunk
            self.heads.append(buf)
            conn.sendall(OK)
            conn.close()


def send(port, path, rid):
    s = socket.create_connection(("127.0.0.1", port), timeout=20)
    s.sendall(b"GET %s HTTP/1.1\r\nHost: x\r\nX-Request-ID: %s\r\n\r\n" % (path, rid))
    return s


def response_of(s):
    data = b""
    while True:
        chunk = s.recv(4096)
        if not chunk:
            break
        data += chunk
    s.close()
    return data


def run(shimmed):
    down = Downstream()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("REQID_", "LD_"))}
    if shimmed:
        env.update(LD_PRELOAD=str(LIB), REQID_LOG_FDS="2")
    with tempfile.TemporaryDirectory() as tmp:
        err_path = Path(tmp) / "stderr"
        with open(err_path, "wb") as err:
            proc = subprocess.Popen([str(SERVER), str(down.port)], stdin=subprocess.PIPE,
                                    stdout=subprocess.PIPE, stderr=err, env=env)
            park_port, serve_port = map(int, proc.stdout.readline().split())

            def command(cmd, reply):
                proc.stdin.write(cmd + b"\n")
                proc.stdin.flush()
                got = proc.stdout.readline().strip()
                if got != reply:
                    raise AssertionError("%s: %r" % (cmd, got))

            # The hand-over the shim learns from: z parked, answered by Q.
            z = send(park_port, b"/park/z", b"id-z")
            command(b"park", b"parked")
            command(b"release", b"released")
            responses = {"z": response_of(z)}
            # a parked by P; P then fetches for b, which Q read.
            a = send(park_port, b"/park/a", b"id-a")
            command(b"park", b"parked")
            b = send(serve_port, b"/fetch/b", b"id-b")
            command(b"fetch", b"fetched")
            responses["b"] = response_of(b)
            command(b"release", b"released")
            responses["a"] = response_of(a)
            proc.stdin.close()
            rc = proc.wait(timeout=20)
        log = err_path.read_bytes()
    down.sock.close()
    return rc, responses, down.heads, log


def main():
    failures = []
    rc, responses, heads, log = run(True)
    if rc != 0:
        failures.append("server exited %d" % rc)
    # The fetch for b goes downstream as the program wrote it: P was
    # certain of nothing it may give (b is Q's request, a is parked).
    want = b"GET /down/fetch/b HTTP/1.1\r\nHost: downstream\r\n\r\n"
    if heads != [want]:
        failures.append("downstream got %r, want %r" % (heads, [want]))
    for k in ("z", "a", "b"):
        resp = responses[k]
        if not resp.endswith(b"\r\n\r\nok") or (b"X-Request-ID: id-%s\r\n" % k.encode()) not in resp:
            failures.append("response %s: %r" % (k, resp))
    # Each log line: its request's id or none.
    owner = {"fetch /fetch/b": "id-b", "answer /fetch/b": "id-b", "parked /park/z": "id-z",
             "parked /park/a": "id-a"}
    lines = log.decode().splitlines()
    if sorted(json.loads(l)["msg"] for l in lines) != sorted(owner):
        failures.append("log lines: %r" % lines)
    tagged = wrong = 0
    for l in lines:
        obj = json.loads(l)
        rid = obj.get("request_id")
        if rid is not None:
            tagged += 1
            if rid != owner[obj["msg"]]:
                wrong += 1
                failures.append("%r carries %s, not %s" % (obj["msg"], rid, owner[obj["msg"]]))
    print("parking pool: downstream %d request(s), %d without ids; log %d lines, %d tagged, %d "
          "wrong, precision %s, recall %.1f%%"
          % (len(heads), sum(b"X-Request-ID" not in h and b"traceparent" not in h for h in heads),
             len(lines), tagged, wrong,
             "%.1f%%" % (100.0 * (tagged - wrong) / tagged) if tagged else "-",
             100.0 * (tagged - wrong) / len(lines) if lines else 0.0))
    for f in failures:
        print("FAIL:", f)
    print("%d passed, %d failed" % (int(not failures), int(bool(failures))))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
