#!/usr/bin/env python3
"""audit_real.py - the command test_audit.py runs under `reqid audit` for a
Debian server: it configures the server in DIR (tests/realservers/servers.py),
starts it inheriting the audit's environment (so it and every process it
starts are audited), sends it REQUESTS requests one after the other, each
on a connection of its own with an X-Request-ID, checks each answer, stops
the server with its signal and exits with 0 if the server stopped as it
should, 1 if not.

    python3 audit_real.py SERVER DIR REQUESTS

SERVER is one of:
  nginx-nobody  nginx whose master runs as root and whose two workers run
                as nobody:nogroup (`user nobody nogroup;`), its error log
                at warn (the master logs nothing); DIR and the docroot are
                made readable to the workers
  busybox       busybox httpd: a forked child per connection, each request
                a CGI shell script it execs, which logs to stderr
Its own output: nothing but errors; the server's output goes to files in DIR.
It must never send the server anything but the requests it counts (it tells
the server is ready by a bare connect, which makes no request), so that the
audit's counts are exact.
"""
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests" / "realservers"))
sys.path.insert(0, str(ROOT / "tests" / "integration"))
import harness  # noqa: E402
import servers  # noqa: E402


class NginxNobody(servers.Nginx):
    name = "nginx-nobody"

    def write_config(self):
        super().write_config()
        conf = self.tmp / "nginx.conf"
        # warn: the master writes no line before it starts the workers (nor
        # after), so the workers' lines are all there is
        text = conf.read_text().replace("user root root;\n", "").replace(
            "error.log info;", "error.log warn;")
        conf.write_text("user nobody nogroup;\n" + text)


KINDS = {"nginx-nobody": NginxNobody, "busybox": servers.Busybox}


class Req:
    def __init__(self, token):
        self.token, self.status = token, 200
        self.path = None


def request(port, path, rid):
    return harness.exchange(port, ("GET %s HTTP/1.1\r\nHost: t\r\nX-Request-ID: %s\r\n"
                                   "Connection: close\r\n\r\n" % (path, rid)).encode())


def main(argv):
    kind, tmp, n = KINDS[argv[0]], Path(argv[1]), int(argv[2])
    srv = kind(tmp, servers.free_port())
    reqs = [Req("t%d" % i) for i in range(1, n + 1)]
    for r in reqs:
        r.path = srv.path(r.token, 200)
    srv.prepare(reqs)
    if kind is NginxNobody:  # the workers must read the docroot and temp dirs
        for p in [tmp] + list(tmp.rglob("*")):
            p.chmod(0o755 if p.is_dir() else 0o644)
    # Started as a CI script starts a service: a shell that sends its
    # output to files (the shell, shimmed, opens them; the server inherits
    # them as its logs)
    out_name, err_name = srv.stdio()
    env = dict(os.environ, PATH=os.environ.get("PATH", "/usr/bin:/bin") + ":/usr/sbin:/sbin")
    proc = subprocess.Popen(["sh", "-c", 'exec "$0" "$@" >>"%s" 2>>"%s"' % (
        tmp / out_name, tmp / err_name)] + srv.argv(), cwd=srv.cwd(), env=env,
        stdin=subprocess.DEVNULL, start_new_session=True)
    deadline = time.monotonic() + 20
    while True:  # ready: the port accepts (a bounded poll; no request sent)
        if proc.poll() is not None:
            print("%s exited with %s before accepting" % (srv.name, proc.returncode),
                  file=sys.stderr)
            return 1
        try:
            socket.create_connection(("127.0.0.1", srv.port), timeout=1).close()
            break
        except OSError:
            if time.monotonic() > deadline:
                proc.kill()
                return 1
            time.sleep(0.02)
    bad = []
    for r in reqs:
        resp = request(srv.port, r.path, "id-" + r.token)
        if not resp.startswith(b"HTTP/1.") or b" 200 " not in resp.split(b"\r\n", 1)[0]:
            bad.append((r.token, resp[:80]))
    os.killpg(proc.pid, srv.stop_signal)
    rc = proc.wait(30)
    if bad or not srv.exit_ok(rc):
        print("%s: exit %s, bad answers %s" % (srv.name, rc, bad), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
