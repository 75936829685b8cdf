#!/usr/bin/env python3
"""test_tls.py - request ids inside TLS: python3 http.server wrapped in ssl
(tests/integration/tls_service.py) under `scripts/reqid run`, driven over
keep-alive HTTPS connections.

The certificate is made at run time (`openssl req -x509`) in a temporary
directory, removed at the end with everything else the run wrote there;
no key is ever part of the tree. The service binds 127.0.0.1 port 0 and
reports its port through a pipe; it is killed at the end.

Load: CONNS connections, WORKERS at once, each 2-6 keep-alive requests
(http.client over ssl, certificate not verified). Most requests ask for the
same URL; each names itself in X-Test-Token. What each sends decides the id
the shim must use:
  xrid         a valid X-Request-ID: that value
  traceparent  a valid traceparent only: its trace id
  invalid      an X-Request-ID the shim must refuse: a generated id
  none         nothing: a generated id
a fifth of them are POSTs whose body is a fake request with its own
X-Request-ID. Half of the requests carry a valid X-Request-ID.

Checks, in the shim run:
  - every response is 200 with exactly the service's body;
  - every response carries exactly one X-Request-ID, the expected value, or
    for a generated id 32 lowercase hex digits, distinct for every request;
  - the service's stderr has exactly one "served token=T" line per request
    and no other line; a line's request_id must be its request's id (the
    response's for generated ones): precision must be 100%, recall (lines
    with their request's id) is reported and must be at least MIN_RECALL;
  - the ground-truth file (written by the handler itself, untouched by the
    shim) has exactly one line per request, with the X-Request-ID it sent.
A bare run (no shim) of the same service checks the model: bodies
identical, no X-Request-ID in any response, lines without ids. The
service runs on this interpreter and on Debian's /usr/bin/python3 when
that is another one (both load libssl privately, out of dlsym(RTLD_NEXT)'s
reach).

Exit status 0 when every run passes.

    python3 tests/integration/test_tls.py
"""

import http.client
import os
import random
import re
import select
import shutil
import ssl
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import harness  # noqa: E402
from harness import Failure, LineFormat, run_groups  # noqa: E402

SERVICE = Path(__file__).resolve().parent / "tls_service.py"
LOG_DIR = harness.LOG_DIR
CONNS = 60
WORKERS = 8
MIN_RECALL = 0.99
TIMEOUT = 30.0
GEN_RE = re.compile(r"^[0-9a-f]{32}$")
SERVED_RE = re.compile(r"^served token=(\w+)$")


def make_cert(tmp):
    cert, key = tmp / "cert.pem", tmp / "key.pem"
    r = subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes",
                        "-keyout", str(key), "-out", str(cert), "-days", "1",
                        "-subj", "/CN=127.0.0.1"], capture_output=True)
    if r.returncode != 0:
        raise Failure("openssl req failed: %s" % r.stderr.decode(errors="replace"))
    return cert, key


class Service:
    """tls_service.py under the shim (or bare), stderr to log_path."""

    def __init__(self, python, cert, key, truth, log_path, shim=True):
        self.log_path = Path(log_path)
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        log_fd = os.open(self.log_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_APPEND,
                         0o644)
        rfd, wfd = os.pipe()
        cmd = [python, str(SERVICE), "--cert", str(cert), "--key", str(key),
               "--truth", str(truth), "--ready-fd", str(wfd)]
        if shim:
            cmd = [str(harness.REQID), "run", "--"] + cmd
        env = {k: v for k, v in os.environ.items()
               if not k.startswith("REQID_") or k == "REQID_LIB"}
        try:
            self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=log_fd,
                                         stderr=log_fd, pass_fds=(wfd,), env=env,
                                         start_new_session=True)
        finally:
            os.close(wfd)
            os.close(log_fd)
        try:
            self.port = self._handshake(rfd)
        except Failure:
            self.kill()
            raise
        finally:
            os.close(rfd)

    def _handshake(self, rfd):
        data, deadline = b"", time.monotonic() + TIMEOUT
        while True:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([rfd], [], [], left)[0]:
                raise Failure("no port from the service within %.0f s" % TIMEOUT)
            chunk = os.read(rfd, 64)
            if not chunk:
                break
            data += chunk
        if not re.fullmatch(rb"\d+\n", data):
            raise Failure("bad handshake %r (exit %s; see %s)"
                          % (data, self.proc.poll(), self.log_path))
        return int(data)

    def kill(self):
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, 9)
        self.proc.wait()


class Req:
    def __init__(self, rng, token):
        self.token = token
        self.kind = rng.choices(("xrid", "traceparent", "invalid", "none"), (50, 20, 10, 20))[0]
        self.headers = {"X-Test-Token": token}
        tp = "00-%032x-%016x-01" % (rng.getrandbits(128) | 1, rng.getrandbits(64) | 1)
        if self.kind == "xrid":
            self.headers["X-Request-ID"] = "tls-" + token
            self.expected = "tls-" + token
        elif self.kind == "traceparent":
            self.headers["traceparent"] = tp
            self.expected = tp[3:35]
        elif self.kind == "invalid":
            self.headers["X-Request-ID"] = 'bad id"' + token
            self.expected = None  # generated
        else:
            self.expected = None
        self.path = "/same" if rng.random() < 0.7 else "/item/" + token
        if rng.random() < 0.2:
            self.method = "POST"
            self.body = b"GET /same HTTP/1.1\r\nX-Request-ID: evil-" + token.encode() + b"\r\n\r\n"
        else:
            self.method, self.body = "GET", None
        self.status = self.response_ids = self.response_body = self.error = None


def make_plan(seed):
    rng = random.Random(seed)
    prefix = "".join(rng.choice("ABCDEFGHJKLMNPQRSTUVWXYZ") for _ in range(4))
    conns, n = [], 0
    for _ in range(CONNS):
        conn = []
        for _ in range(rng.randint(2, 6)):
            conn.append(Req(rng, "%s%05d" % (prefix, n)))
            n += 1
        conns.append(conn)
    return conns


def body_for(token):
    digits = "".join(c for c in token if c.isdigit())[-2:] or "0"
    return b"token %s\n" % token.encode() + b"x" * (int(digits) * 37)


def drive(port, conns):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE

    def one(conn):
        c = http.client.HTTPSConnection("127.0.0.1", port, timeout=TIMEOUT, context=ctx)
        try:
            for r in conn:
                c.request(r.method, r.path, body=r.body, headers=r.headers)
                resp = c.getresponse()
                r.status = resp.status
                r.response_ids = resp.headers.get_all("X-Request-ID") or []
                r.response_body = resp.read()
        except (OSError, http.client.HTTPException) as e:
            for r in conn:
                if r.status is None:
                    r.error = repr(e)
        finally:
            c.close()

    with ThreadPoolExecutor(WORKERS) as pool:
        list(pool.map(one, conns))


def check_run(name, python, tmp, seed, shim, failures):
    cert, key = make_cert(tmp)
    truth = tmp / ("truth-%s.log" % name)
    log = LOG_DIR / ("tls-%s.log" % name)
    conns = make_plan(seed)
    reqs = [r for conn in conns for r in conn]
    svc = Service(python, cert, key, truth, log, shim=shim)
    try:
        drive(svc.port, conns)
    finally:
        svc.kill()

    # responses
    ids, generated = {}, set()
    for r in reqs:
        if r.error or r.status != 200:
            failures.append("%s: token %s: %s" % (name, r.token, r.error or r.status))
            continue
        if r.response_body != body_for(r.token):
            failures.append("%s: token %s: body differs (%d bytes)"
                            % (name, r.token, len(r.response_body)))
        if not shim:
            if r.response_ids:
                failures.append("%s: token %s: X-Request-ID without the shim" % (name, r.token))
            continue
        if len(r.response_ids) != 1:
            failures.append("%s: token %s: %d X-Request-ID headers"
                            % (name, r.token, len(r.response_ids)))
            continue
        got = r.response_ids[0]
        if r.expected is None:
            if not GEN_RE.match(got) or got in generated:
                failures.append("%s: token %s: generated id %r bad or repeated"
                                % (name, r.token, got))
            generated.add(got)
        elif got != r.expected:
            failures.append("%s: token %s (%s): response id %r, want %r"
                            % (name, r.token, r.kind, got, r.expected))
        ids[r.token] = r.expected or got

    # ground truth: the handler's own file
    want_truth = sorted("token=%s xrid=%s" % (r.token, r.headers.get("X-Request-ID", "-"))
                        for r in reqs)
    got_truth = sorted(truth.read_text().splitlines())
    if got_truth != want_truth:
        failures.append("%s: ground-truth file: %d lines, want %d (or they differ)"
                        % (name, len(got_truth), len(want_truth)))

    # the log
    fmt = LineFormat("json") if shim else LineFormat("plain")
    seen, tagged, right = {}, 0, 0
    for no, line in enumerate(log.read_text(errors="replace").splitlines(), 1):
        try:
            rid, msg = fmt.split(line)
        except ValueError as e:
            failures.append("%s: %s:%d malformed (%s): %r" % (name, log, no, e, line[:200]))
            continue
        m = SERVED_RE.match(msg)
        if not m:
            failures.append("%s: %s:%d unexpected line: %r" % (name, log, no, line[:200]))
            continue
        token = m.group(1)
        seen[token] = seen.get(token, 0) + 1
        if rid is None:
            continue
        tagged += 1
        if shim and rid == ids.get(token):
            right += 1
        elif len(failures) < 40:
            failures.append("%s: %s:%d token %s has id %r, want %r"
                            % (name, log, no, token, rid, ids.get(token)))
    for r in reqs:
        if seen.get(r.token) != 1:
            failures.append("%s: token %s: %d log lines, want 1"
                            % (name, r.token, seen.get(r.token, 0)))
    lines = sum(seen.values())
    precision = right / tagged if tagged else 1.0
    recall = right / lines if lines else 0.0
    print("%s: %d requests on %d connections, %d lines, %d with an id: "
          "precision %.2f%%, recall %.2f%%"
          % (name, len(reqs), len(conns), lines, tagged, 100 * precision, 100 * recall))
    if shim and recall < MIN_RECALL:
        failures.append("%s: recall %.2f%% below %.0f%%" % (name, 100 * recall, 100 * MIN_RECALL))
    if not shim and tagged:
        failures.append("%s: %d lines with an id without the shim" % (name, tagged))


def main():
    if not shutil.which("openssl"):
        raise SystemExit("openssl missing (Debian package openssl)")
    if not (harness.REQID.exists() and harness.LIBREQID.exists()):
        raise SystemExit("build the shim first: make")
    pythons = [sys.executable]
    debian = "/usr/bin/python3"
    if os.access(debian, os.X_OK) and os.path.realpath(debian) != os.path.realpath(sys.executable):
        pythons.append(debian)
    tmp = Path(tempfile.mkdtemp(prefix="reqid-tls-"))
    try:
        groups = [("bare", lambda f: check_run("bare", pythons[0], tmp, 1, False, f))]
        for i, python in enumerate(pythons):
            name = "shim-%s" % ("this-python" if i == 0 else "debian-python")
            groups.append((name, lambda f, n=name, p=python, s=i + 2:
                           check_run(n, p, tmp, s, True, f)))
        return run_groups(groups)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
