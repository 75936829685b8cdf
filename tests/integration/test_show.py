#!/usr/bin/env python3
"""test_show.py - `reqid show ID FILE...` (scripts/reqid_show.py) on log
files written here by hand in the shapes the shim and log collectors write.

Every check runs `scripts/reqid show` and compares its exit status, stdout
and stderr with the exact expected text (--color=never unless the check is
about colour, TZ fixed):
  - three files merged in time order: json lines, json object lines (their
    own members shown, the shim's fields not), prefix lines holding nginx
    error and access log lines, logfmt lines holding python http.server
    lines; ties broken by file order then line number; lines without a time
    placed after the line before them (or first, time blank, before any
    timed line); other requests, ids that only start with ID ("req-77",
    "req-70") and lines without the fields left out;
  - rsyslog lines from two hosts (two files named "messages", told apart by
    their directories): @cee: and bare JSON, the id as trace_id on one host
    and request_id on the other; the host and tag kept; RFC 3164 timestamps;
  - a renamed field (--field rid), and the default field not matching it;
  - stdin as '-'; a missing file (exit 2, the others still printed); no
    match (exit 1); times with no zone read as local time (TZ=UTC+2), epoch
    "ts" and millisecond "time" members, a repeated request_id member,
    control characters escaped; colour on a terminal (a pty), NO_COLOR,
    --color=always.
The program must never print a line of another request. Exits non-zero on
a failure.

    python3 tests/integration/test_show.py
"""

import os
import pty
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
REQID = os.path.join(ROOT, "scripts", "reqid")
TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"

FILES = {
    # json, one thread-per-connection server
    "app.log": [
        '{"msg":"2026-11-21T10:00:00.500Z INFO  listening on 127.0.0.1:8080"}',
        '{"request_id":"req-7","msg":"2026-11-21T10:00:01.100Z INFO  start GET /orders/42"}',
        '{"request_id":"req-77","msg":"2026-11-21T10:00:01.150Z INFO  start GET /orders/77"}',
        '{"request_id":"req-7","msg":"working on \\"/orders/42\\"\\t(no body)"}',
        '{"request_id":"req-7","level":"warn","time":"2026-11-21T10:00:01.400Z",'
        '"msg":"slow query","ms":250}',
        '{"request_id":"req-8","msg":"2026-11-21T10:00:01.450Z INFO  start GET /other"}',
        '{"request_id":"req-7","trace_id":"%s","msg":"2026-11-21T10:00:02.600Z INFO  done '
        'status=200"}' % TRACE,
    ],
    # prefix, nginx error and access log lines
    "proxy.log": [
        '{} 2026/11/21 10:00:00 [notice] 12#0: start worker processes',
        '{"request_id":"req-8"} 2026/11/21 10:00:01 [info] 12#0: *4 proxying GET /other',
        '{"request_id":"req-7"} 2026/11/21 10:00:01 [info] 12#0: *3 proxying GET /orders/42',
        '{"request_id":"req-7"} 127.0.0.1 - - [21/Nov/2026:10:00:02 +0000] '
        '"GET /orders/42 HTTP/1.1" 200 17 "-" "curl/8.5.0"',
    ],
    # logfmt, python http.server lines and a traceback
    "worker.log": [
        'request_id=req-7 worker picked up the job',
        'request_id=req-7 trace_id=%s 127.0.0.1 - - [21/Nov/2026 10:00:01] '
        '"GET /stock/42 HTTP/1.1" 200 -' % TRACE,
        'request_id=req-7 Traceback (most recent call last):',
        'request_id=req-7   File "worker.py", line 9, in handle',
        'retrying req-7 later',
        'request_id=req-70 127.0.0.1 - - [21/Nov/2026 10:00:02] "GET /stock/70 HTTP/1.1" 200 -',
    ],
    # rsyslog's files on two hosts: the front calls req-7 its request_id, the
    # back got it as the trace-id of a traceparent and made its own request_id
    "front/messages": [
        '2026-11-21T10:00:01.000100+00:00 front app[311]: '
        '@cee:{"request_id":"req-7","msg":"GET /orders/42"}',
        '2026-11-21T10:00:01.000400+00:00 front app[311]: '
        '{"request_id":"req-7","msg":"calling back"}',
        '2026-11-21T10:00:01.000500+00:00 front app[311]: '
        '@cee:{"request_id":"req-7.1","msg":"not this one"}',
        '2026-11-21T10:00:01.000900+00:00 front app[311]: request_id=req-7 got 200',
    ],
    "back/messages": [
        '2026-11-21T10:00:01.000200+00:00 back api[92]: '
        '@cee:{"request_id":"c0ffee","trace_id":"req-7","msg":"SELECT stock"}',
        '2026-11-21T10:00:01.000300+00:00 back api[92]: '
        '@cee:{"request_id":"c0ffee2","trace_id":"req-7x","msg":"other trace"}',
        '2026-11-21T10:00:01.000600+00:00 back api[92]: '
        '{"trace_id":"req-7","span_id":"00f067aa0ba902b7"} 3 rows',
        '2026-11-21T10:00:00.999999+00:00 back api[92]: '
        'trace_id=req-7 span_id=00f067aa0ba902b7 sent',
    ],
    # rsyslog's traditional format (RFC 3164: no year, so this file is
    # checked alone, its order the same whatever the current year)
    "legacy/messages": [
        'Nov 21 10:00:03 front app[311]: {"request_id":"req-7","msg":"second"}',
        'Nov 21 10:00:02 front app[311]: @cee:{"request_id":"req-7","msg":"first"}',
        'Nov 21 10:00:04 front app[311]: {"request_id":"req-8","msg":"other"}',
        'request_id=req-7 untimed, after the line before',
    ],
    # --field rid
    "rid.log": [
        '{"rid":"req-7","msg":"2026-11-21T10:00:01.000Z json with rid"}',
        '{"request_id":"req-7","msg":"2026-11-21T10:00:01.100Z not rid"}',
        '{"rid":"req-7"} 2026-11-21T10:00:01.200Z prefix with rid',
        'rid=req-7 2026-11-21T10:00:01.300Z logfmt with rid',
    ],
    # local time (the checks run it with TZ=UTC+2), epoch members, oddities
    "local.log": [
        'request_id=req-7 2026-11-21 10:00:01,123 INFO python logging, local time',
        '{"request_id":"req-7","ts":1795248001.5,"msg":"epoch seconds"}',
        '{"request_id":"req-7","time":1795248001300,"msg":"pino milliseconds"}',
        '{"request_id":"req-7","request_id":"app-1","msg":"the app\'s own request_id"}',
        '{"request_id":"req-7","msg":"bell\\u0007 clear\\u001b[2J two\\nlines"}',
    ],
    "utc.log": [
        '{"request_id":"req-7","msg":"2026-11-21T08:00:01.200Z in UTC"}',
    ],
}

MERGED = """\
                 worker.log  worker picked up the job
10:00:01.000000  proxy.log   2026/11/21 10:00:01 [info] 12#0: *3 proxying GET /orders/42
10:00:01.000000  worker.log  127.0.0.1 - - [21/Nov/2026 10:00:01] "GET /stock/42 HTTP/1.1" 200 -
10:00:01.000000  worker.log  Traceback (most recent call last):
10:00:01.000000  worker.log    File "worker.py", line 9, in handle
10:00:01.100000  app.log     2026-11-21T10:00:01.100Z INFO  start GET /orders/42
10:00:01.150000  app.log     working on "/orders/42"\t(no body)
10:00:01.400000  app.log     slow query {"level":"warn","time":"2026-11-21T10:00:01.400Z","ms":250}
10:00:02.000000  proxy.log   127.0.0.1 - - [21/Nov/2026:10:00:02 +0000] "GET /orders/42 HTTP/1.1" 200 17 "-" "curl/8.5.0"
10:00:02.600000  app.log     2026-11-21T10:00:02.600Z INFO  done status=200
"""

SYSLOG = """\
10:00:00.999999  back/messages   back api[92]: sent
10:00:01.000100  front/messages  front app[311]: GET /orders/42
10:00:01.000200  back/messages   back api[92]: SELECT stock
10:00:01.000400  front/messages  front app[311]: calling back
10:00:01.000600  back/messages   back api[92]: 3 rows
10:00:01.000900  front/messages  front app[311]: got 200
"""

RID = """\
10:00:01.000000  rid.log  2026-11-21T10:00:01.000Z json with rid
10:00:01.200000  rid.log  2026-11-21T10:00:01.200Z prefix with rid
10:00:01.300000  rid.log  2026-11-21T10:00:01.300Z logfmt with rid
"""

LOCAL = """\
10:00:01.123000  local.log  2026-11-21 10:00:01,123 INFO python logging, local time
10:00:01.200000  utc.log    2026-11-21T08:00:01.200Z in UTC
10:00:01.300000  local.log  pino milliseconds {"time":1795248001300}
10:00:01.300000  local.log  the app's own request_id {"request_id":"app-1"}
10:00:01.300000  local.log  bell\\x07 clear\\x1b[2J two\\nlines
10:00:01.500000  local.log  epoch seconds {"ts":1795248001.5}
"""


def only_source(expected, source, name):
    """The lines of source in expected output, shown as name with no wider
    source beside it."""
    width = max(len(line.split("  ")[1].rstrip()) for line in expected.splitlines()
                if len(line) > 17)
    tag = "  %s  " % source.ljust(width)
    return "".join(line.replace(tag, "  %s  " % name) for line in expected.splitlines(True)
                   if tag in line)


def show(tmp, args, stdin=b"", env=None):
    """(exit status, stdout, stderr) of `reqid show ARGS` run in tmp."""
    full_env = dict(os.environ, TZ="UTC")
    for name in ("NO_COLOR", "REQID_FIELD"):
        full_env.pop(name, None)
    full_env.update(env or {})
    p = subprocess.run([REQID, "show"] + args, cwd=tmp, input=stdin, capture_output=True,
                       env=full_env, timeout=30)
    return p.returncode, p.stdout.decode("utf-8", "surrogateescape"), p.stderr.decode()


def show_on_tty(tmp, args, env=None):
    """(exit status, stdout) of `reqid show ARGS` with stdout on a pty."""
    master, slave = pty.openpty()
    full_env = dict(os.environ, TZ="UTC")
    full_env.pop("NO_COLOR", None)
    full_env.update(env or {})
    p = subprocess.Popen([REQID, "show"] + args, cwd=tmp, stdin=subprocess.DEVNULL,
                         stdout=slave, stderr=subprocess.PIPE, env=full_env)
    os.close(slave)
    out = b""
    while True:
        try:
            chunk = os.read(master, 65536)
        except OSError:  # EIO: the other end is closed
            break
        if not chunk:
            break
        out += chunk
    os.close(master)
    return p.wait(timeout=30), out.decode().replace("\r\n", "\n")


def main():
    with tempfile.TemporaryDirectory(prefix="reqid-show-") as tmp:
        for name, lines in FILES.items():
            path = os.path.join(tmp, name)
            os.makedirs(os.path.dirname(path), exist_ok=True)
            with open(path, "w") as f:
                f.write("".join(line + "\n" for line in lines))
        with open(os.path.join(tmp, "app.log"), "rb") as f:
            app = f.read()
        plus2 = {"TZ": "<+02>-2"}
        req8_proxy = "2026/11/21 10:00:01 [info] 12#0: *4 proxying GET /other\n"
        req8_app = "2026-11-21T10:00:01.450Z INFO  start GET /other\n"

        checks = [
            # name, result, (exit status, stdout, stderr)
            ("three files merged",
             show(tmp, ["--color=never", "req-7", "app.log", "proxy.log", "worker.log"]),
             (0, MERGED, "")),
            ("rsyslog lines from two hosts, trace_id and request_id",
             show(tmp, ["--color=never", "req-7", "front/messages", "back/messages"]),
             (0, SYSLOG, "")),
            ("rsyslog's traditional format",
             show(tmp, ["--color=never", "req-7", "legacy/messages"]),
             (0, "10:00:02.000000  messages  front app[311]: first\n"
                 "10:00:03.000000  messages  front app[311]: second\n"
                 "10:00:04.000000  messages  untimed, after the line before\n", "")),
            ("--field rid", show(tmp, ["--color=never", "--field", "rid", "req-7", "rid.log"]),
             (0, RID, "")),
            ("request_id only where the field is rid",
             show(tmp, ["--color=never", "req-7", "rid.log"]),
             (0, "10:00:01.100000  rid.log  2026-11-21T10:00:01.100Z not rid\n", "")),
            ("stdin as -", show(tmp, ["--color=never", "req-7", "-"], stdin=app),
             (0, only_source(MERGED, "app.log", "stdin"), "")),
            ("a missing file", show(tmp, ["--color=never", "req-7", "missing.log", "app.log"]),
             (2, only_source(MERGED, "app.log", "app.log"),
              "reqid show: missing.log: No such file or directory\n")),
            ("no match", show(tmp, ["req-9", "app.log", "proxy.log"]), (1, "", "")),
            ("an id that only starts others", show(tmp, ["req", "app.log", "worker.log"]),
             (1, "", "")),
            ("the trace_id of json and logfmt lines",
             show(tmp, ["--color=never", TRACE, "app.log", "worker.log"]),
             (0, "10:00:01.000000  worker.log  127.0.0.1 - - [21/Nov/2026 10:00:01] "
                 "\"GET /stock/42 HTTP/1.1\" 200 -\n"
                 "10:00:02.600000  app.log     2026-11-21T10:00:02.600Z INFO  done "
                 "status=200\n", "")),
            ("local time, epoch members, control characters",
             show(tmp, ["--color=never", "req-7", "local.log", "utc.log"], env=plus2),
             (0, LOCAL, "")),
            ("--color=always", show(tmp, ["--color=always", "req-8", "app.log", "proxy.log"]),
             (0, "10:00:01.000000  \x1b[33mproxy.log\x1b[0m  " + req8_proxy
              + "10:00:01.450000  \x1b[36mapp.log\x1b[0m    " + req8_app, "")),
            ("--color=auto off a terminal", show(tmp, ["req-8", "proxy.log"]),
             (0, "10:00:01.000000  proxy.log  " + req8_proxy, "")),
            ("a usage error", show(tmp, ["--field", "a b", "req-7", "app.log"])[0], 2),
            ("on a terminal: header and colour",
             show_on_tty(tmp, ["req-8", "app.log", "proxy.log"]),
             (0, "request req-8: 2 lines from 2 files\n"
              + "10:00:01.000000  \x1b[33mproxy.log\x1b[0m  " + req8_proxy
              + "10:00:01.450000  \x1b[36mapp.log\x1b[0m    " + req8_app)),
            ("on a terminal with NO_COLOR",
             show_on_tty(tmp, ["req-8", "proxy.log"], env={"NO_COLOR": "1"}),
             (0, "request req-8: 1 line from 1 file\n"
              + "10:00:01.000000  proxy.log  " + req8_proxy)),
        ]

    failures = 0
    for name, got, want in checks:
        if got == want:
            print("show %s: ok" % name)
        else:
            failures += 1
            print("FAIL: show %s:\n  got  %r\n  want %r" % (name, got, want))
    print("%d passed, %d failed" % (len(checks) - failures, failures))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
