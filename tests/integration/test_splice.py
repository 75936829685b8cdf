#!/usr/bin/env python3
"""test_splice.py - a connection's bytes moved by calls whose bytes the shim
does not parse (splice, recvmmsg, sendmmsg) or parses as readv's and writev's
(preadv2, pwritev2) never give a request another request's id, and responses
whose bodies go out by them keep their bytes and get their own X-Request-ID.

A small keep-alive server (python3, os.splice or the call through ctypes, one
connection at a time, its lines on stderr) is run under
LD_PRELOAD=$REQID_LIB (default build/libreqid.so), once for each call:
  in   it reads each request's head with recv, one byte at a time, and its
       body with the call (splice: socket -> pipe -> /dev/null; recvmmsg: two
       messages; preadv2: two buffers, offset -1). Each body is exactly as
       long as the next request's head, so a shim that does not see the
       body's bytes skips the next head as the rest of the body and takes
       the head after it for a request again: the skipped request's lines
       and response then carried the previous request's id (until
       2026-12-07, with recvmmsg and with preadv2: 2 of 4 requests, their 3
       lines and their responses; with this traffic, where heads differ in
       length, splice, recvmmsg and preadv2 alike: 11 or 12 of 12 lines
       counted wrong, as an id on two requests' lines is wrong on both).
  out  it reads the whole request with recv, sends the response's head with
       send and its body from a file with the call (splice: file -> pipe ->
       socket; sendmmsg: two messages; pwritev2: two buffers, offset -1). A
       shim that does not see the body takes the next response's head for
       the rest of that body and adds no X-Request-ID to it (until
       2026-12-07: every response after the first on a connection).
  whole  as out, but head and body go out together with the call (sendmmsg,
       pwritev2): the shim does not parse them, so the responses go without
       X-Request-ID (the response stream is lost at the first), never with
       another request's.
Traffic: one URL for every request, X-Request-ID on every other one (the
shim makes the others'), all on one keep-alive connection from the
server's first moment; the server logs which request each line is for
(the X-Tok it read: the ground truth). Checked, with precision and
recall printed for each call: every line naming a request's token
carries that request's id (its X-Request-ID, or the one its response
carries, or one no other request has) or none; every response is the
server's bytes, with at most one added
X-Request-ID, the request's own (in: none after the first body a call took
unseen, the stream is lost, and all of them with preadv2; out: all of them;
whole: none).
Then a program writes part of a line to its log (stdout), the rest of it
with splice or sendfile, and a line after: the file holds its bytes in its
order. And sendfile onto a full non-blocking log pipe fails at once, the
lines queued behind it kept.
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
import ctypes, os, re, socket, sys
mode, call, ready, body_file = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
libc = ctypes.CDLL(None, use_errno=True)
class iovec(ctypes.Structure):
    _fields_ = [("base", ctypes.c_void_p), ("len", ctypes.c_size_t)]
class msghdr(ctypes.Structure):
    _fields_ = [("name", ctypes.c_void_p), ("namelen", ctypes.c_uint32),
                ("iov", ctypes.POINTER(iovec)), ("iovlen", ctypes.c_size_t),
                ("control", ctypes.c_void_p), ("controllen", ctypes.c_size_t),
                ("flags", ctypes.c_int)]
class mmsghdr(ctypes.Structure):
    _fields_ = [("hdr", msghdr), ("len", ctypes.c_uint)]
def halves(buf, n):
    # two iovecs over the first n bytes of buf (a ctypes buffer)
    a = n // 2
    v = (iovec * 2)()
    v[0].base, v[0].len = ctypes.addressof(buf), a
    v[1].base, v[1].len = ctypes.addressof(buf) + a, n - a
    return v
def checked(r):
    if r < 0:
        raise OSError(ctypes.get_errno(), call)
    return r
def take(c, left):
    # bytes of the request body read from c with call
    if call == "splice":
        got = os.splice(c.fileno(), w, left)
        os.splice(r, null, got)
        return got
    buf = ctypes.create_string_buffer(left)
    v = halves(buf, left)
    if call == "preadv2":
        return checked(libc.preadv2(c.fileno(), v, 2, ctypes.c_long(-1), 0))
    m = (mmsghdr * 2)()
    for i in range(2):
        m[i].hdr.iov, m[i].hdr.iovlen = ctypes.pointer(v[i]), 1
    n = checked(libc.recvmmsg(c.fileno(), m, 2, 0x10000, None))  # MSG_WAITFORONE
    return sum(m[i].len for i in range(n))
def put(c, data):
    # bytes of data sent on c with call
    buf = ctypes.create_string_buffer(data, len(data))
    v = halves(buf, len(data))
    if call == "pwritev2":
        return checked(libc.pwritev2(c.fileno(), v, 2, ctypes.c_long(-1), 0))
    m = (mmsghdr * 2)()
    for i in range(2):
        m[i].hdr.iov, m[i].hdr.iovlen = ctypes.pointer(v[i]), 1
    n = checked(libc.sendmmsg(c.fileno(), m, 2, 0))
    return sum(m[i].len for i in range(n))
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
            left -= take(c, left)
        log("body token=%s" % tok)
        body = b"ok " + tok.encode()
        c.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))
    else:
        size = os.path.getsize(body_file)
        if mode == "whole":
            data = b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % size + open(body_file, "rb").read()
            sent = 0
            while sent < len(data):
                sent += put(c, data[sent:])
            log("done token=%s" % tok)
            continue
        c.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % size)
        if call == "splice":
            fd = os.open(body_file, os.O_RDONLY)
            left = size
            while left:
                got = os.splice(fd, w, left)
                while got:
                    got -= os.splice(r, c.fileno(), got)
                left = size - os.lseek(fd, 0, os.SEEK_CUR)
            os.close(fd)
        else:
            data = open(body_file, "rb").read()
            sent = 0
            while sent < size:
                sent += put(c, data[sent:])
    log("done token=%s" % tok)
"""


def sends_id(tok):
    """Every other request carries X-Request-ID; the shim makes the others'."""
    return TOKENS.index(tok) % 2 == 0


def head(tok, length):
    """One URL for every request: the server tells them apart by X-Tok,
    which it logs (the ground truth)."""
    rid = "X-Request-ID: cid-%s\r\n" % tok if sends_id(tok) else ""
    return ("POST /r HTTP/1.1\r\nHost: x\r\nX-Tok: %s\r\n%sContent-Length: %s\r\n\r\n"
            % (tok, rid, length)).encode()


def read_response(sock, buf):
    """(head lines, body, rest) of one response with a Content-Length."""
    resp, rest = harness._recv_response(sock, buf)
    raw, body = resp.split(b"\r\n\r\n", 1)
    return raw.decode("latin-1").split("\r\n"), body, rest


def run(mode, call, tmp):
    body_file = Path(tmp) / "body.bin"
    # fake response heads in the body: a shim that took them for a response
    # would add a header inside the body
    body_file.write_bytes((b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello" * 3000)[:100000])
    rfd, wfd = os.pipe()
    env = harness.clean_env(LD_PRELOAD=str(LIB))
    label = "%s %s" % (mode, call)
    log_file = Path(tmp) / ("%s-%s.log" % (mode, call))
    err = open(log_file, "wb")
    proc = subprocess.Popen([PYTHON, "-c", SERVER, mode, call, str(wfd), str(body_file)], env=env,
                            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=err,
                            pass_fds=(wfd,))
    os.close(wfd)
    err.close()
    problems = []
    response_id = {}
    sent_ids = {"cid-" + t for t in TOKENS if sends_id(t)}
    try:
        with os.fdopen(rfd) as ready:
            port = int(ready.readline())
        sock = socket.create_connection(("127.0.0.1", port), timeout=20)
        buf = b""
        for i, tok in enumerate(TOKENS):
            if mode == "in":
                # the body as long as the next request's head
                after = TOKENS[(i + 1) % len(TOKENS)]
                h = head(tok, "%03d" % len(head(after, "000")))
                sock.sendall(h)
                sock.sendall(b"x" * len(head(after, "000")))
            else:
                sock.sendall(head(tok, 0))
            lines, body, buf = read_response(sock, buf)
            want = b"ok " + tok.encode() if mode == "in" else body_file.read_bytes()
            if body != want:
                problems.append("%s: %s's body is not the server's (%d bytes)" % (label, tok, len(body)))
            ids = [v for k, _, v in (x.partition(": ") for x in lines[1:]) if k == "X-Request-ID"]
            response_id[tok] = ids[0] if len(ids) == 1 else None
            own = ["cid-" + tok] if sends_id(tok) else ids[:1]
            if ids not in ([], own) or (not sends_id(tok) and ids and ids[0] in sent_ids):
                problems.append("%s: %s's response has X-Request-ID %r" % (label, tok, ids))
            if (mode == "out" or call == "preadv2") and (len(ids) != 1 or ids != own):
                problems.append("%s: %s's response has X-Request-ID %r, not its own" % (label, tok, ids))
            if mode == "whole" and ids:
                problems.append("%s: %s's response has X-Request-ID %r, in a head not parsed"
                                % (label, tok, ids))
            if len(lines) - 1 - len(ids) != 1:
                problems.append("%s: %s's response head %r" % (label, tok, lines))
        sock.close()
        if proc.wait(timeout=20) != 0:
            problems.append("%s: server exited with %s" % (label, proc.returncode))
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    # The server's lines name their request (token=, from the X-Tok it
    # read). An id is right on a request's line when no other request's
    # lines, X-Request-ID or response carry it, and it is that request's
    # X-Request-ID, or the one its response carries, or (neither known: a
    # response head the shim did not parse) the one id of all its lines;
    # anything else is wrong.
    fmt = harness.LineFormat("json")
    ids_of = {}
    tagged = []
    nlines = 0
    for line in log_file.read_text().splitlines():
        rid, msg = fmt.split(line)[:2]
        tok = msg.split("token=")[-1] if "token=" in msg else None
        nlines += 1
        if tok not in TOKENS:
            problems.append("%s: line without a token: %r" % (label, line))
        elif rid is not None:
            ids_of.setdefault(tok, set()).add(rid)
            tagged.append((tok, rid, line))
    right = wrong = 0
    for tok, rid, line in tagged:
        known = "cid-" + tok if sends_id(tok) else response_id.get(tok)
        others = (set().union(*(v for t, v in ids_of.items() if t != tok))
                  | (sent_ids - {"cid-" + tok})
                  | {v for t, v in response_id.items() if t != tok and v})
        if rid not in others and (rid == known or (known is None and len(ids_of[tok]) == 1)):
            right += 1
        else:
            wrong += 1
            problems.append("%s: wrong id %s on %r" % (label, rid, line))
    want_lines = (3 if mode == "in" else 2) * len(TOKENS)
    if nlines != want_lines:
        problems.append("%s: %d lines, expected %d" % (label, nlines, want_lines))
    print("%-14s lines %2d  right %2d  wrong %d  untagged %2d  precision %s  recall %.1f%%"
          % (label, nlines, right, wrong, nlines - right - wrong,
             "%.1f%%" % (100.0 * right / (right + wrong)) if right + wrong else "-",
             100.0 * right / nlines if nlines else 0.0))
    return problems


LOG_WRITER = r"""
import os, sys
call, src = sys.argv[1], sys.argv[2]
os.write(1, b"partial ")
if call == "splice":
    r, w = os.pipe()
    os.write(w, b"MOVED\n")
    n = os.splice(r, 1, 6)
else:
    n = os.sendfile(1, os.open(src, os.O_RDONLY), None, 6)
os.write(1, b"end\n")
sys.exit(0 if n == 6 else 3)
"""


def log_order(call, tmp):
    """Bytes a call puts on a log descriptor past the shim come after what
    the program wrote to it before: the unfinished line the shim held goes
    out first, as written (until 2026-12-07 the moved bytes went first and
    the held part joined the next line: "MOVED\n" then {"msg":"partial
    end"})."""
    src = Path(tmp) / "moved.txt"
    src.write_bytes(b"MOVED\n")
    out = Path(tmp) / ("log-%s.txt" % call)
    with open(out, "wb") as f:
        rc = subprocess.run([PYTHON, "-c", LOG_WRITER, call, str(src)],
                            env=harness.clean_env(LD_PRELOAD=str(LIB)), stdin=subprocess.DEVNULL,
                            stdout=f, timeout=30).returncode
    data = out.read_bytes()
    want = b'partial MOVED\n{"msg":"end"}\n'
    if rc != 0 or data != want:
        return ["log %s: rc %d, wrote %r, expected %r" % (call, rc, data, want)]
    return []


# Fills its stdout, a non-blocking pipe nobody reads yet, with lines longer
# than PIPE_BUF until one is taken in part (the shim queues the rest of its
# line: the program was told all of it went), then sendfile onto it.
LOG_FULL_WRITER = r"""
import os, sys
os.set_blocking(1, False)
src = os.open(sys.argv[1], os.O_RDONLY)
n = 0
while True:
    line = b"line %06d %s\n" % (n, b"x" * 5000)
    try:
        if os.write(1, line) < len(line):
            break
    except BlockingIOError:
        break
    n += 1
try:
    r = os.sendfile(1, src, None, 6)
except BlockingIOError:
    r = -1
os.write(2, b"%d %d\n" % (n, r))
"""


def log_full():
    """sendfile onto a log pipe that is full, non-blocking: the lines the
    shim queued behind it stay queued, and the call fails at once with
    EAGAIN as without the shim (until 2026-12-07 it waited a second, then
    dropped the queued rest of the last line: one line torn)."""
    env = harness.clean_env(LD_PRELOAD=str(LIB))
    with tempfile.NamedTemporaryFile() as src:
        src.write(b"MOVED\n")
        src.flush()
        p = subprocess.Popen([PYTHON, "-c", LOG_FULL_WRITER, src.name], env=env,
                             stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE)
        report = p.stderr.readline()
        out = p.stdout.read()
        p.wait(timeout=30)
    # stderr is a log: the report is its line, {"msg":"N R"}
    words = report[len(b'{"msg":"'):-len(b'"}\n')].split()
    written, r = (int(w) for w in words) if len(words) == 2 else (-1, 0)
    whole = sum(1 for line in out.split(b"\n") if line.endswith(b"x" * 5000 + b'"}'))
    if p.returncode != 0 or r != -1 or written < 1 or whole != written:
        return ["log full: rc %d, %r, %d whole lines" % (p.returncode, report, whole)]
    return []


def main():
    problems = []
    with tempfile.TemporaryDirectory(prefix="reqid-splice-") as tmp:
        for mode, calls in (("in", ("splice", "recvmmsg", "preadv2")),
                            ("out", ("splice", "sendmmsg", "pwritev2")), ("whole", ("sendmmsg", "pwritev2"))):
            for call in calls:
                problems += run(mode, call, tmp)
        for call in ("splice", "sendfile"):
            problems += log_order(call, tmp)
        problems += log_full()
    for p in problems:
        print("FAIL", p)
    print("test_splice: %s" % ("FAIL" if problems else "ok"))
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
