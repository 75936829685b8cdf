#!/usr/bin/env python3
"""test_forged_headers.py - a client forging another request's request line
in what a server logs must not make the shim name that request (precision).

A log format that quotes a header the client chooses and not the request
line (ua="%{User-Agent}i") gives a client the power to write any text into
a log line, a request line included. The shim names a held line by the
quoted request line it finds in it (shim/log_output.c); a User-Agent of
"GET /v/3-7 HTTP/1.1" must not hand the line of an attacker's request the
id of the victim's request with that line. The parser marks a request with
" HTTP/1." after a visible byte in a header value, and such a request turns
naming off while it lives and for 256 ends after (shim/conn_table.c).

Traffic: 8 keep-alive connections, each alternating a victim request for a
path of its own (/v/<conn>-<i>) and an attacker request whose logged text
copies the victim request just answered on that connection, each with an
X-Request-ID the client records. The attacks: a User-Agent holding the
victim's line; two User-Agent headers the server joins with ", " into it
(the victim's target ends in ','); a path the server normalises into the
victim's (/v/./<conn>-<i>) or a query a format of the path alone drops; a
body holding the victim's line, which nginx logs with $request_body behind
proxy_pass. Servers: lighttpd (buffered access log: its lines are
attributed by naming alone) and nginx (2 workers, unbuffered: lines are
attributed by the event-loop rules as well). The truth is the client's
(paired_traffic.py).

A row fails on one wrong id, a line that is not JSON or not joined, or a
line count other than the requests sent. Recall is reported, not judged
(where only the attacker's text is quoted, lines rightly get no id).
Exit status 0 when every row passes.
"""

import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import paired_traffic  # noqa: E402
import servers  # noqa: E402

CONNECTIONS = 8
ROUNDS = 100  # victim + attacker requests per connection and round

# Formats: the client's port and the request's place on its connection,
# then what the attack puts in front of the shim.
LIGHTTPD_FORMATS = {
    "ua": r'%{remote}p %k ua=\"%{User-Agent}i\" %s',
    "ua after line": r'%{remote}p %k \"%r\" %s \"%{User-Agent}i\"',
    "path": r'%{remote}p %k \"%m %U %H\" %s',
}
NGINX_FORMATS = {
    "ua": 'ua="$http_user_agent" $status',
    "ua after line": '"$request" $status "$http_user_agent"',
    "path": '"$request_method $uri $server_protocol" $status',
    "body": 'body="$request_body" $status',
}


def victim_path(conn, i, attack):
    # the target lighttpd's join of two headers ends ("GET /v/x," ", "
    # "HTTP/1.1"): the victim's ends in ','
    return "/v/%d-%d%s" % (conn, i, "," if attack == "joined" else "")


def attacker_request(attack, victim, path):
    """The attacker's request head (and body) for a victim request line."""
    if attack == "ua":
        return "GET /a HTTP/1.1\r\nUser-Agent: %s\r\n" % victim, ""
    if attack == "joined":
        return ("GET /a HTTP/1.1\r\nUser-Agent: GET %s\r\nUser-Agent:HTTP/1.1\r\n"
                % path[:-1]), ""
    if attack == "dot segment":
        return "GET %s HTTP/1.1\r\nUser-Agent: a\r\n" % path.replace("/v/", "/v/./"), ""
    if attack == "query":
        return "GET %s?q HTTP/1.1\r\nUser-Agent: a\r\n" % path, ""
    if attack == "body":
        return ("POST /p HTTP/1.1\r\nUser-Agent: a\r\nContent-Length: %d\r\n" % len(victim),
                victim)
    raise ValueError(attack)


class ForgedLighttpd(paired_traffic.PairedLighttpd):
    def prepare(self):
        (self.root / "v").mkdir(parents=True, exist_ok=True)
        (self.root / "a").write_bytes(b"a\n")
        self.write_config()

    def write_config(self):
        self.write_lighttpd("forged-header test", LIGHTTPD_FORMATS[self.fmt])


class ForgedNginx(paired_traffic.PairedNginx):
    def __init__(self, tmp, port, fmt):
        super().__init__(tmp, port, fmt)
        self.upstream = servers.free_port()

    def prepare(self):
        (self.root / "v").mkdir(parents=True, exist_ok=True)
        (self.root / "a").write_bytes(b"a\n")
        self.write_config()

    def write_config(self):
        super().write_config()
        conf = self.tmp / "nginx.conf"
        text = self.with_access_log(conf.read_text(), "forged", NGINX_FORMATS[self.fmt])
        # /p goes to a second server block (its own lines are not logged):
        # $request_body holds a body nginx read to pass on
        text = text.replace(
            "        location /req/ { }",
            "        location /req/ { }\n"
            "        location /p { proxy_pass http://127.0.0.1:%d/; "
            "client_body_buffer_size 64k; }" % self.upstream)
        assert text.endswith("    }\n}\n")
        text = text[:-2] + (
            "    server {\n        listen 127.0.0.1:%d;\n        access_log off;\n"
            "        location / { return 200 \"ok\\n\"; }\n    }\n}\n" % self.upstream)
        conf.write_text(text)


def attack_requests(attack):
    """A connection's requests: victim, attacker, victim, ..."""
    def requests(conn):
        for i in range(ROUNDS):
            path = victim_path(conn, i, attack)
            victim = "GET %s HTTP/1.1" % path
            yield "v-%d-%d" % (conn, i), "%s\r\nUser-Agent: victim/1.0\r\n" % victim, ""
            head, body = attacker_request(attack, victim, path)
            yield "a-%d-%d" % (conn, i), head, body
    return requests


def run_row(cls, fmt, attack):
    with tempfile.TemporaryDirectory(prefix="reqid-forged-") as tmp:
        srv = cls(tmp, servers.free_port(), fmt)
        srv.prepare()
        return paired_traffic.run_row("%s, %s, %s" % (cls.name, fmt, attack), srv,
                                      attack_requests(attack), CONNECTIONS)


ROWS = [
    (ForgedLighttpd, "ua", "ua"),
    (ForgedLighttpd, "ua after line", "ua"),
    (ForgedLighttpd, "ua", "joined"),
    (ForgedLighttpd, "path", "dot segment"),
    (ForgedLighttpd, "path", "query"),
    (ForgedNginx, "ua", "ua"),
    (ForgedNginx, "ua after line", "ua"),
    (ForgedNginx, "path", "dot segment"),
    (ForgedNginx, "body", "body"),
]


def main():
    missing = servers.missing_binaries(["nginx", "lighttpd"])
    if missing:
        print("missing: " + ", ".join(missing))
        return 1
    ok = sum(run_row(cls, fmt, attack) for cls, fmt, attack in ROWS)
    print("forged headers: %d passed, %d failed" % (ok, len(ROWS) - ok))
    return 0 if ok == len(ROWS) else 1


if __name__ == "__main__":
    sys.exit(main())
