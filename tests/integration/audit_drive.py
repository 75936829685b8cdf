#!/usr/bin/env python3
"""audit_drive.py - the command test_audit.py runs under `reqid audit`: it
starts a bundled server (inheriting the audit's environment, so the server
is audited), sends it a fixed sequence of keep-alive requests, some with
X-Request-ID and some without, stops it and exits with the server's status
(or with EXIT, when given).

    python3 audit_drive.py SERVER [EXIT]

The sequence, on two connections one after the other:
  a1 (id-a1), a2 (none), a3 (id-a3), a4 (none), a5 (none);  b1 (id-b1), b2 (id-b2)
Its own output: nothing; the server's log lines go where this script's
standard error goes (a file the shim took for a log in this script is one
in the server too).
"""
import os
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import harness  # noqa: E402

SEQUENCE = [[("a1", "id-a1"), ("a2", None), ("a3", "id-a3"), ("a4", None), ("a5", None)],
            [("b1", "id-b1"), ("b2", "id-b2")]]


def main(argv):
    server = harness.ROOT / "build" / "servers" / argv[0]
    r, w = os.pipe()
    proc = subprocess.Popen([str(server), "--ready-fd", str(w)], pass_fds=[w])
    os.close(w)
    port = int(os.read(r, 100).split()[0])
    os.close(r)
    for requests in SEQUENCE:
        sock = harness.connect(port, 10)
        buf = b""
        for token, rid in requests:
            head = "GET /req/%s HTTP/1.1\r\nHost: t\r\n" % token
            if rid:
                head += "X-Request-ID: %s\r\n" % rid
            sock.sendall((head + "\r\n").encode())
            _, buf = harness._recv_response(sock, buf)
        sock.close()
    harness.send_quit(port)
    rc = proc.wait(30)
    return int(argv[1]) if len(argv) > 1 else rc


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
