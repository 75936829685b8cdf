#!/usr/bin/env python3
"""test_forged_headers.py - a client forging another request's request line
in a header must not make the shim name that request (precision).

A log format that quotes a header the client chooses and not the request
line (ua="%{User-Agent}i") gives a client the power to write any text into
a log line, a request line included. The shim names a held line by the
quoted request line it finds in it (shim/log_output.c); a User-Agent of
"GET /v/3-7 HTTP/1.1" must not hand the line of an attacker's request the
id of the victim's request with that line. The parser marks a request with
" HTTP/1." after a visible byte in a header value, and such a request turns
naming off while it lives and for 256 ends after (shim/conn_table.c).

Traffic: 8 keep-alive connections, each alternating a victim request for a
path of its own (/v/<conn>-<i>) and an attacker request (/a) whose
User-Agent copies the victim request just answered on that connection,
each with an X-Request-ID the client records. Servers: lighttpd (buffered
access log: its lines are attributed by naming alone) and nginx (2 workers,
unbuffered: lines are attributed by the event-loop rules as well), each
with two formats: the header quoted alone, and the header quoted after the
request line (combined-like). The truth is the client's: every line starts
with the client's port and the request's place on its connection, which
the client maps to the X-Request-ID it sent.

A row fails on one wrong id, a line that is not JSON or not joined, or a
line count other than the requests sent. Recall is reported, not judged
(with the header alone quoted, lighttpd's lines rightly get no id).
Exit status 0 when every row passes.
"""

import json
import os
import socket
import sys
import tempfile
import threading
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import servers  # noqa: E402

CONNECTIONS = 8
ROUNDS = 100  # victim + attacker requests per connection and round


class ForgedLighttpd(servers.RealServer):
    name = "lighttpd"
    binary, apt = "lighttpd", "lighttpd"

    def __init__(self, tmp, port, fmt):
        super().__init__(tmp, port)
        self.fmt = fmt

    def prepare(self):
        (self.root / "v").mkdir(parents=True, exist_ok=True)
        (self.root / "a").write_bytes(b"a\n")
        self.write_config()

    def write_config(self):
        t = self.tmp
        fmt = {"alone": r'%{remote}p %k ua=\"%{User-Agent}i\" %s',
               "after": r'%{remote}p %k \"%r\" %s \"%{User-Agent}i\"'}[self.fmt]
        (t / "lighttpd.conf").write_text(f"""# reqid forged-header test: nothing global is read
server.document-root = "{self.root}"
server.bind = "127.0.0.1"
server.port = {self.port}
server.errorlog = "{t}/error.log"
server.modules = ("mod_accesslog")
accesslog.filename = "{t}/access.log"
accesslog.format = "{fmt}"
server.max-keep-alive-requests = 10000
""")

    def argv(self):
        return ["lighttpd", "-D", "-f", str(self.tmp / "lighttpd.conf")]

    def place(self, field):
        return int(field)  # %k: requests before this one on its connection

    def sources(self):
        return [("access.log", "access.log", None)]


class ForgedNginx(servers.Nginx):
    def __init__(self, tmp, port, fmt):
        super().__init__(tmp, port)
        self.fmt = fmt

    def prepare(self):
        (self.root / "v").mkdir(parents=True, exist_ok=True)
        (self.root / "a").write_bytes(b"a\n")
        self.write_config()

    def write_config(self):
        super().write_config()
        fmt = {"alone": "$remote_port $connection_requests ua=\"$http_user_agent\" $status",
               "after": "$remote_port $connection_requests \"$request\" $status "
                        "\"$http_user_agent\""}[self.fmt]
        conf = self.tmp / "nginx.conf"
        text = conf.read_text().replace(
            "    access_log %s/access.log combined;" % self.tmp,
            "    log_format forged '%s';\n    access_log %s/access.log forged;" % (fmt, self.tmp))
        conf.write_text(text)

    def place(self, field):
        return int(field) - 1  # $connection_requests counts from 1

    def sources(self):
        return [("access.log", "access.log", None)]


def read_response(f):
    length = 0
    while True:
        line = f.readline()
        if not line:
            raise OSError("connection closed mid-response")
        if line.lower().startswith(b"content-length:"):
            length = int(line.split(b":", 1)[1])
        if line == b"\r\n":
            break
    f.read(length)


def client(port, conn, truth, errors):
    """One keep-alive connection: victim, attacker, victim, ... Records
    (its port, place) -> (X-Request-ID, attacker?)."""
    try:
        s = socket.create_connection(("127.0.0.1", port))
        local_port = s.getsockname()[1]
        f = s.makefile("rb")
        place = 0
        for i in range(ROUNDS):
            victim = "GET /v/%d-%d HTTP/1.1" % (conn, i)
            for attacker in (False, True):
                rid = "%s-%d-%d" % ("a" if attacker else "v", conn, i)
                line = "GET /a HTTP/1.1" if attacker else victim
                ua = victim if attacker else "victim/1.0"
                s.sendall(("%s\r\nHost: 127.0.0.1\r\nUser-Agent: %s\r\nX-Request-ID: %s\r\n\r\n"
                           % (line, ua, rid)).encode())
                read_response(f)
                truth[(local_port, place)] = rid
                place += 1
        s.close()
    except OSError as e:
        errors.append("connection %d: %r" % (conn, e))


def run_row(cls, fmt):
    label = "%s, header %s" % (cls.name, "quoted alone" if fmt == "alone"
                               else "quoted after the request line")
    problems = []
    with tempfile.TemporaryDirectory(prefix="reqid-forged-") as tmp:
        srv = cls(tmp, servers.free_port(), fmt)
        srv.prepare()
        running = servers.Running(srv)
        truth, errors = {}, []
        try:
            threads = [threading.Thread(target=client, args=(srv.port, c, truth, errors))
                       for c in range(CONNECTIONS)]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
        finally:
            problems += running.stop()
        problems += errors
        right = wrong = untagged = 0
        lines = (srv.tmp / "access.log").read_text(errors="replace").splitlines()
        for text in lines:
            try:
                obj = json.loads(text)
                port, place = obj["msg"].split(" ", 2)[:2]
                want = truth[(int(port), srv.place(place))]
            except (ValueError, KeyError, TypeError) as e:
                problems.append("line not JSON or not joined (%r): %r" % (e, text[:200]))
                continue
            got = obj.get("request_id")
            if got is None:
                untagged += 1
            elif got == want:
                right += 1
            else:
                wrong += 1
                if wrong <= 3:
                    problems.append("wrong id %s on the line of %s: %r" % (got, want, text[:200]))
        if wrong > 3:
            problems.append("%d wrong ids in all" % wrong)
        if len(lines) != len(truth):
            problems.append("%d lines for %d requests" % (len(lines), len(truth)))
    tagged = right + wrong
    print("%-48s lines %5d  right %5d  wrong %3d  untagged %5d  precision %s  recall %.1f%%"
          % (label, len(lines), right, wrong, untagged,
             "%.1f%%" % (100.0 * right / tagged) if tagged else "-",
             100.0 * right / len(lines) if lines else 0.0))
    for p in problems:
        print("  FAIL: " + p)
    return not problems


def main():
    missing = servers.missing_binaries(["nginx", "lighttpd"])
    if missing:
        print("missing: " + ", ".join(missing))
        return 1
    ok = 0
    rows = [(ForgedLighttpd, "alone"), (ForgedLighttpd, "after"),
            (ForgedNginx, "alone"), (ForgedNginx, "after")]
    for cls, fmt in rows:
        ok += run_row(cls, fmt)
    print("forged headers: %d passed, %d failed" % (ok, len(rows) - ok))
    return 0 if ok == len(rows) else 1


if __name__ == "__main__":
    sys.exit(main())
