#!/usr/bin/env python3
"""test_rewritten_lines.py - a log line rebuilt from the path the server
chose must not carry the id of the request that asked for that path
(precision), in ordinary traffic with no attacker.

A format of the path the server serves rather than the one asked for
(nginx "$request_method $uri $server_protocol", lighttpd "%m %U %H") logs
a request for /d/7/ that nginx's index module answers with
/d/7/index.html as "GET /d/7/index.html HTTP/1.1", and a request for
/old/7 that a rewrite rule maps to /new/7 as "GET /new/7 HTTP/1.1": the
request lines of other requests, which the shim names lines by
(shim/request_table.c). When the log is buffered nothing else says whose a
line is; the shim names a line only if it comes at its request's place in
the order the process answered its requests (shim/log_order.c).

Traffic: 8 keep-alive connections, each asking in every round for a path
the server rewrites and for the path it rewrites to, in one order in even
rounds and the other in odd ones. Servers: nginx (two workers, access log
buffered with buffer=8k) with index and rewrite, lighttpd (its access log
is buffered) with mod_rewrite. The same traffic under the request line
as received ($request, %r) is the control: there every line names its own
request, and recall must stay high. The truth is the client's
(paired_traffic.py).

Exit status 0 when every row passes.
"""

import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import paired_traffic  # noqa: E402
import servers  # noqa: E402

CONNECTIONS = 8
ROUNDS = 100
CONTROL_RECALL = 0.95

NGINX_FORMATS = {
    "uri": '"$request_method $uri $server_protocol" $status',
    "request": '"$request" $status',
}
LIGHTTPD_FORMATS = {
    "uri": r'%{remote}p %k \"%m %U %H\" %s',
    "request": r'%{remote}p %k \"%r\" %s',
}


def make_docroot(root):
    for c in range(CONNECTIONS):
        for i in range(ROUNDS):
            d = root / "d" / ("%d-%d" % (c, i))
            d.mkdir(parents=True, exist_ok=True)
            (d / "index.html").write_bytes(b"index\n")
    (root / "new").mkdir(parents=True, exist_ok=True)
    for c in range(CONNECTIONS):
        for i in range(ROUNDS):
            (root / "new" / ("%d-%d" % (c, i))).write_bytes(b"new\n")


class RewritingNginx(paired_traffic.PairedNginx):
    def prepare(self):
        make_docroot(self.root)
        self.write_config()

    def write_config(self):
        super().write_config()
        conf = self.tmp / "nginx.conf"
        text = self.with_access_log(conf.read_text(), "rewritten", NGINX_FORMATS[self.fmt],
                                    " buffer=8k flush=1m")
        text = text.replace(
            "        location /req/ { }",
            "        index index.html;\n"
            "        rewrite ^/old/(.*)$ /new/$1 last;")
        conf.write_text(text)


class RewritingLighttpd(paired_traffic.PairedLighttpd):
    def prepare(self):
        make_docroot(self.root)
        self.write_lighttpd("rewritten-lines test", LIGHTTPD_FORMATS[self.fmt],
                            'server.modules += ("mod_rewrite")',
                            'url.rewrite-once = ("^/old/(.*)$" => "/new/$1")',
                            'index-file.names = ("index.html")')


def pair_requests(rewritten, target):
    """A connection's requests: in each round a path the server rewrites
    and the path it rewrites to, in turn first."""
    def requests(conn):
        for i in range(ROUNDS):
            name = "%d-%d" % (conn, i)
            pair = [("r-" + name, rewritten % name), ("t-" + name, target % name)]
            for rid, path in pair if i % 2 == 0 else reversed(pair):
                yield rid, "GET %s HTTP/1.1\r\nUser-Agent: a\r\n" % path, ""
    return requests


ROWS = [
    # server, format, what it rewrites, to what, recall floor
    (RewritingNginx, "uri", "/d/%s/", "/d/%s/index.html", None),
    (RewritingNginx, "uri", "/old/%s", "/new/%s", None),
    (RewritingLighttpd, "uri", "/old/%s", "/new/%s", None),
    (RewritingNginx, "request", "/d/%s/", "/d/%s/index.html", CONTROL_RECALL),
    (RewritingLighttpd, "request", "/old/%s", "/new/%s", CONTROL_RECALL),
]


def run_row(cls, fmt, rewritten, target, floor):
    with tempfile.TemporaryDirectory(prefix="reqid-rewritten-") as tmp:
        srv = cls(tmp, servers.free_port(), fmt)
        srv.prepare()
        label = "%s, %s, %s" % (cls.name, fmt, rewritten % "N")
        return paired_traffic.run_row(label, srv, pair_requests(rewritten, target),
                                      CONNECTIONS, floor)


def main():
    missing = servers.missing_binaries(["nginx", "lighttpd"])
    if missing:
        print("missing: " + ", ".join(missing))
        return 1
    ok = sum(run_row(*row) for row in ROWS)
    print("rewritten lines: %d passed, %d failed" % (ok, len(ROWS) - ok))
    return 0 if ok == len(ROWS) else 1


if __name__ == "__main__":
    sys.exit(main())
