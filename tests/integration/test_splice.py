#!/usr/bin/env python3
"""test_splice.py - a connection's bytes moved by splice(), which the shim
does not see, never give a request another request's id, and responses whose
bodies go out by splice keep their bytes and get their own X-Request-ID.

A small keep-alive server (python3, os.splice, one connection at a time, its
lines on stderr) is run under LD_PRELOAD=$REQID_LIB (default build/libreqid.so):
  in   it reads each request's head with recv, one byte at a time, and its
       body with splice (socket -> pipe -> /dev/null). Each body is exactly
       as long as the next request's head, so a shim that does not see the
       spliced bytes skips the next head as the rest of the body and takes
       the head after it for a request again: the skipped request's lines
       and response then carried the previous request's id (until
       2026-12-07: 1 of 3 requests, its 3 lines and its response).
  out  it reads the whole request with recv, sends the response's head with
       send and its body from a file with splice (file -> pipe -> socket).
       A shim that does not see the spliced body takes the next response's
       head for the rest of that body and adds no X-Request-ID to it (until
       2026-12-07: every response after the first on a connection).
Checked: every line naming a request's token carries that request's id or
none; every response is the server's bytes, with at most one added
X-Request-ID, the request's own (in: none after the first spliced body, the
stream is lost; out: all of them).
"""

import os
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import harness  # noqa: E402

LIB = Path(os.environ.get("REQID_LIB") or harness.LIBREQID).resolve()
PYTHON = "/usr/bin/python3" if os.access("/usr/bin/python3", os.X_OK) else sys.executable
TOKENS = ("TAAAAAAAX", "TBBBBBBBX", "TCCCCCCCX", "TDDDDDDDX")

SERVER = r"""
import os, re, socket, sys
mode, ready, body_file = sys.argv[1], int(sys.argv[2]), sys.argv[3]
ls = socket.socket(); ls.bind(("127.0.0.1", 0)); ls.listen(4)
os.write(ready, b"%d\n" % ls.getsockname()[1]); os.close(ready)
r, w = os.pipe()
null = os.open("/dev/null", os.O_WRONLY)
def log(text):
    os.write(2, text.encode() + b"\n")
c, _ = ls.accept()
while True:
    head = b""
    while not head.endswith(b"\r\n\r\n"):
        b = c.recv(1) if mode == "in" else c.recv(65536)
        if not b:
            sys.exit(0)
        head += b
    tok = re.search(rb"X-Tok: (\w+)", head).group(1).decode()
    n = int(re.search(rb"Content-Length: (\d+)", head).group(1))
    log("start token=%s" % tok)
    if mode == "in":
        left = n
        while left:
            got = os.splice(c.fileno(), w, left)
            os.splice(r, null, got)
            left -= got
        log("body token=%s" % tok)
        body = b"ok " + tok.encode()
        c.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))
    else:
        size = os.path.getsize(body_file)
        c.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % size)
        fd = os.open(body_file, os.O_RDONLY)
        left = size
        while left:
            got = os.splice(fd, w, left)
            while got:
                got -= os.splice(r, c.fileno(), got)
            left = size - os.lseek(fd, 0, os.SEEK_CUR)
        os.close(fd)
    log("done token=%s" % tok)
"""


def head(tok, length):
    return ("POST /r/%s HTTP/1.1\r\nHost: x\r\nX-Tok: %s\r\nX-Request-ID: cid-%s\r\n"
            "Content-Length: %s\r\n\r\n" % (tok, tok, tok, length)).encode()


def read_response(sock, buf):
    """(head lines, body, rest) of one response with a Content-Length."""
    resp, rest = harness._recv_response(sock, buf)
    raw, body = resp.split(b"\r\n\r\n", 1)
    return raw.decode("latin-1").split("\r\n"), body, rest


def run(mode, tmp):
    body_file = Path(tmp) / "body.bin"
    # fake response heads in the body: a shim that took them for a response
    # would add a header inside the body
    body_file.write_bytes((b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello" * 3000)[:100000])
    rfd, wfd = os.pipe()
    env = harness.clean_env(LD_PRELOAD=str(LIB))
    err = open(Path(tmp) / ("%s.log" % mode), "wb")
    proc = subprocess.Popen([PYTHON, "-c", SERVER, mode, str(wfd), str(body_file)], env=env,
                            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=err,
                            pass_fds=(wfd,))
    os.close(wfd)
    err.close()
    problems = []
    try:
        with os.fdopen(rfd) as ready:
            port = int(ready.readline())
        sock = socket.create_connection(("127.0.0.1", port), timeout=20)
        buf = b""
        for tok in TOKENS:
            if mode == "in":
                h = head(tok, "%03d" % len(head(tok, "000")))
                sock.sendall(h)
                sock.sendall(b"x" * len(h))
            else:
                sock.sendall(head(tok, 0))
            lines, body, buf = read_response(sock, buf)
            want = b"ok " + tok.encode() if mode == "in" else body_file.read_bytes()
            if body != want:
                problems.append("%s: %s's body is not the server's (%d bytes)" % (mode, tok, len(body)))
            ids = [v for k, _, v in (x.partition(": ") for x in lines[1:]) if k == "X-Request-ID"]
            if ids not in ([], ["cid-" + tok]):
                problems.append("%s: %s's response has X-Request-ID %r" % (mode, tok, ids))
            if mode == "out" and ids != ["cid-" + tok]:
                problems.append("out: %s's response has X-Request-ID %r, not its own" % (tok, ids))
            if len(lines) - 1 - len(ids) != 1:
                problems.append("%s: %s's response head %r" % (mode, tok, lines))
        sock.close()
        if proc.wait(timeout=20) != 0:
            problems.append("%s: server exited with %s" % (mode, proc.returncode))
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    fmt = harness.LineFormat("json")
    text = (Path(tmp) / ("%s.log" % mode)).read_text()
    nlines = 0
    for line in text.splitlines():
        rid, msg = fmt.split(line)[:2]
        tok = msg.split("token=")[-1] if "token=" in msg else None
        nlines += 1
        if tok not in TOKENS:
            problems.append("%s: line without a token: %r" % (mode, line))
        elif rid not in (None, "cid-" + tok):
            problems.append("%s: wrong id %s on %r" % (mode, rid, line))
    want_lines = (3 if mode == "in" else 2) * len(TOKENS)
    if nlines != want_lines:
        problems.append("%s: %d lines, expected %d" % (mode, nlines, want_lines))
    return problems


def main():
    problems = []
    with tempfile.TemporaryDirectory(prefix="reqid-splice-") as tmp:
        for mode in ("in", "out"):
            problems += run(mode, tmp)
    for p in problems:
        print("FAIL", p)
    print("test_splice: %s" % ("FAIL" if problems else "ok"))
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
