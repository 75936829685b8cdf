#!/usr/bin/env python3
"""tls_service.py - the HTTPS server tests/integration/test_tls.py drives: a
plain python3 http.server (ThreadingHTTPServer, HTTP/1.1 keep-alive) whose
listening socket is wrapped in ssl, with no tracing code at all.

Each request names itself in an X-Test-Token header (the URL is often the
same for many requests). For each, the handler writes one line to stderr
(the log descriptor the shim enriches): "served token=T", and one line to
the ground-truth file given by --truth, a file the shim does not touch (its
path is no log path, its fd no log fd): "token=T xrid=V" where V is the
X-Request-ID the handler itself read from the request ("-" if none). It
answers 200 with the body "token T\\n" and 37 times as many 'x' as the
token's last two digits say (bodies of many sizes); a POST's body is read
first. After binding 127.0.0.1 port 0 it writes its port and
a newline to the descriptor --ready-fd and closes it.

With --downstream PORT, a request with "X-Test-Call: python" first calls
https://127.0.0.1:PORT/down/T/1 (GET) and /down/T/2 (POST, a body that
holds a fake request head) on the handler thread's own keep-alive
http.client connection; one with "X-Test-Call: curl" runs
`curl -sk --http1.1` for /down/T/1. Certificates are not checked.

    python3 tls_service.py --cert C --key K --truth FILE --ready-fd N
                           [--downstream PORT]
"""

import argparse
import http.client
import os
import ssl
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def body_for(token):
    digits = "".join(c for c in token if c.isdigit())[-2:] or "0"
    return b"token %s\n" % token.encode() + b"x" * (int(digits) * 37)


DOWN_BODY = b"GET /fake HTTP/1.1\r\nX-Request-ID: fake\r\n\r\n"


class Downstream:
    """The calls a handler makes, each thread on its own connection."""
    port = None
    local = threading.local()

    @classmethod
    def call(cls, how, token):
        url = "/down/%s/" % token
        if how == "curl":
            subprocess.run(["curl", "-sk", "--http1.1", "-o", "/dev/null",
                            "https://127.0.0.1:%d%s1" % (cls.port, url)], check=True)
            return
        conn = getattr(cls.local, "conn", None)
        if conn is None:
            conn = cls.local.conn = http.client.HTTPSConnection(
                "127.0.0.1", cls.port, context=ssl._create_unverified_context())
        conn.request("GET", url + "1")
        conn.getresponse().read()
        conn.request("POST", url + "2", body=DOWN_BODY)
        conn.getresponse().read()


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    truth_fd = -1

    def serve(self):
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            self.rfile.read(length)
        token = self.headers.get("X-Test-Token", "?")
        if self.headers.get("X-Test-Call"):
            Downstream.call(self.headers["X-Test-Call"], token)
        os.write(self.truth_fd, b"token=%s xrid=%s\n"
                 % (token.encode(), (self.headers.get("X-Request-ID") or "-").encode()))
        sys.stderr.write("served token=%s\n" % token)
        sys.stderr.flush()
        body = body_for(token)
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = serve

    def log_message(self, fmt, *args):
        pass  # the one line per request is the handler's own


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--cert", required=True)
    ap.add_argument("--key", required=True)
    ap.add_argument("--truth", required=True)
    ap.add_argument("--ready-fd", type=int, required=True)
    ap.add_argument("--downstream", type=int)
    args = ap.parse_args()
    Downstream.port = args.downstream
    Handler.truth_fd = os.open(args.truth, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(args.cert, args.key)
    server.socket = ctx.wrap_socket(server.socket, server_side=True)
    os.write(args.ready_fd, b"%d\n" % server.server_address[1])
    os.close(args.ready_fd)
    server.serve_forever()


if __name__ == "__main__":
    main()
