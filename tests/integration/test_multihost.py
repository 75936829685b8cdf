#!/usr/bin/env python3
"""test_multihost.py - one trace across two hosts: the W3C Trace Context that
reqid takes from (or makes for) a request on a front host travels with the
calls that request makes to a back host, so every log line of that request,
on both hosts, carries the same trace_id in a central syslog.

The test builds its own network out of namespaces (`ip netns`), named with its
pid so that parallel and leftover runs do not collide: a switch namespace
holding a bridge, and three hosts joined to it by veth pairs (created straight
inside the namespaces; the root namespace's network is not touched):

  10.77.0.1  front  the service under the shim; its stderr piped into
                    `logger --tcp -n 10.77.0.3 -P 514 -t front`
  10.77.0.2  back   the service it calls, under the shim; stderr piped into
                    `logger --tcp ... -t back`
  10.77.0.3  log    rsyslogd with its own configuration, pid file and work
                    directory: imtcp on 514 only (no imuxsock, no imklog),
                    every message into one file as
                    "<time> <sender ip> <HOSTNAME> <tag>: <message>"

Each host process runs in its own UTS namespace with the host's name, so the
syslog HOSTNAME field names the sender. Two scenarios (both run by default):

  py-front       front: tests/multihost/front_service.py (python3
                 ThreadingHTTPServer; GET /work/<k> logs, calls the back with
                 urllib, logs the answer); back: busybox httpd -f -vv with the
                 CGI tests/multihost/cgi_back.sh at /cgi-bin/work/<k>
  busybox-front  front: busybox httpd with the CGI tests/multihost/cgi_front.sh
                 at /cgi-bin/work/<k>, which logs and runs
                 `curl http://10.77.0.2:8080/work/<k>` (propagation through
                 exec: httpd -> sh -> curl); back:
                 tests/multihost/back_service.py (logs and answers)
  busybox-front-tls
                 the same busybox front calling over HTTPS (curl, which gives
                 OpenSSL a BIO of its own: the trace goes through SSL_write)
                 a back_service.py in ssl (certificate made by openssl at
                 run time, not checked)

Both services run as `env LD_PRELOAD=$REQID_LIB
REQID_FIELDS=request_id,trace_id,span_id CMD` inside `ip netns exec`, with
no tracing code of their own. A client (tests/multihost/client.py, not under
the shim) inside the front namespace sends N requests, one per k = 0..N-1, up
to C in flight; half carry a client traceparent
`00-<random 32 hex>-<random 16 hex>-01`, half nothing.

Handshakes, no fixed sleeps: ports are polled from inside the namespaces; at
the end each service is stopped (busybox once its children are gone), the
test writes an end marker into the logger's pipe after the service's last
byte and closes it, the logger sends the marker last on its TCP connection
and exits, and the test waits (up to 20 s) for both markers and every
expected line in the rsyslog file before stopping rsyslogd.

Oracle: a line belongs to request k when its text mentions `/work/<k>` or
`k=<k>` as a whole token (k=1 is not k=10). Each service's lines per request
are known (front 3, back 2), so lost and duplicated lines show. Required:

  - every line from front and back is a JSON object with a "msg";
  - every line of request k, on both hosts, carries one trace_id: the
    client's trace-id when it sent a traceparent, else the id the front
    generated (the request id, which the front returns in X-Request-ID);
    precision and recall 100% on every host;
  - every such line carries the front's request_id (X-Request-ID is
    propagated too);
  - no two requests share a trace_id;
  - every response is 200, carries the back's answer and an X-Request-ID;
  - lines arrive from the right sender address and HOSTNAME.

Lines that mention no request (start-up notices) are counted and listed as
"other"; they fail nothing. Prints a table per scenario and host, ends with
"N passed, M failed", exits non-zero on a failure. Prints "SKIP: ..." and
exits 0 when network namespaces cannot be made (not root, no CAP_SYS_ADMIN)
or a tool is missing. REQID_LIB names the library (default
<repo>/build/libreqid.so); a missing one fails at once.

    python3 tests/integration/test_multihost.py [--scenario py-front,busybox-front]
                                                [-n 60] [-c 16] [--seed N] [--keep]
"""

import argparse
import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import harness  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
MH = ROOT / "tests" / "multihost"
DEFAULT_LIB = ROOT / "build" / "libreqid.so"
FIELDS = "request_id,trace_id,span_id"

SUBNET = "10.77.0"
HOSTS = {  # role -> (address, HOSTNAME, syslog tag)
    "front": (SUBNET + ".1", "front-host", "front"),
    "back": (SUBNET + ".2", "back-host", "back"),
    "log": (SUBNET + ".3", "log-host", None),
}
PORT = 8080
SYSLOG_PORT = 514
FLUSH_WAIT = 20.0   # seconds rsyslog gets to write every message out
# logger cuts a line longer than --size (default 1024) into several messages
LOGGER_SIZE = 65536
STOP_WAIT = 10.0
READY_WAIT = 10.0
CLIENT_WAIT = 60.0

# minimal environment for everything started inside the namespaces: no
# proxies (urllib and curl would honour http_proxy), no inherited REQID_*
BASE_ENV = {"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
            "LANG": "C.UTF-8", "HOME": "/", "PYTHONDONTWRITEBYTECODE": "1"}
TOOLS = ("ip", "unshare", "rsyslogd", "logger", "busybox", "curl")

SCENARIOS = {
    # name: (front kind, back kind, description, hosts that must tag every line)
    "cgi-chain": ("busybox", "busybox",
                  "busybox httpd + CGI --exec curl--> busybox httpd + CGI", ("front", "back")),
    "py-front": ("python", "busybox",
                 "python ThreadingHTTPServer --urllib--> busybox httpd + CGI", ("back",)),
    "busybox-front": ("busybox", "python",
                      "busybox httpd + CGI --exec curl--> python ThreadingHTTPServer", ("front",)),
    "busybox-front-tls": ("busybox", "python-tls",
                          "busybox httpd + CGI --exec curl over TLS--> python in ssl", ("front",)),
}
# A python host shares one sys.stderr buffer between its threads: a line one
# thread wrote may be flushed by another, and the shim leaves such lines
# without an id rather than guess (README, "Limits"). Its recall is reported;
# precision must still be 100%, and the back of py-front proves the front
# propagated every request's trace.
# The path prefix each kind of service serves requests under.
PATHS = {"python": "/work/", "python-tls": "/work/", "busybox": "/cgi-bin/work/"}
# lines each service writes per request, in order (for the report)
LINES = {
    ("front", "python"): ("front k=K start", "front k=K back said: ...",
                          '"GET /work/K HTTP/1.1" 200 -'),
    ("front", "busybox"): ("<peer>: url:/cgi-bin/work/K", "front handling k=K",
                           "front k=K back said: ..."),
    ("back", "busybox"): ("<peer>: url:/cgi-bin/work/K", "back handling k=K"),
    ("back", "python"): ("back k=K handling", '"GET /work/K HTTP/1.1" 200 -'),
    ("back", "python-tls"): ("back k=K handling", '"GET /work/K HTTP/1.1" 200 -'),
}
# a request's token: /work/<k> or k=<k>, whole (k=1 is not k=10)
TOKEN_RE = re.compile(r"(?:/work/|(?<![\w-])k=)(\d+)(?![\w.])")
HEX32 = re.compile(r"^[0-9a-f]{32}$")
HEX16 = re.compile(r"^[0-9a-f]{16}$")
MARKER = "reqid-multihost-end"

# one line per message: "<time> <sender ip> <HOSTNAME> <tag> <message>"
# (logger sends RFC 5424: the tag has no ':' and the message no leading space)
RSYSLOG_TEMPLATE = ("%timereported:::date-rfc3339% %fromhost-ip% %HOSTNAME% %syslogtag%"
                    "%msg:::sp-if-no-1st-sp%%msg:::drop-last-lf%\\n")
# processInternalMessages="on": rsyslogd's own messages go to this file; with
# the default ("off") rsyslogd sends them to /dev/log, the host's syslog socket.
RSYSLOG_CONF = """# written by test_multihost.py: no /etc config, no local socket, no kernel log
global(workDirectory="{work}" net.enableDNS="off" maxMessageSize="64k"
       processInternalMessages="on")
module(load="imtcp")
input(type="imtcp" address="{addr}" port="{port}")
template(name="multihost" type="string" string="{template}")
action(type="omfile" file="{out}" template="multihost")
"""


class Skip(Exception):
    pass


class Failure(Exception):
    pass


def server_python():
    """Debian's interpreter when there is one (a pyenv shim is a script)."""
    return "/usr/bin/python3" if os.access("/usr/bin/python3", os.X_OK) else sys.executable


def sh(*cmd, check=True):
    p = subprocess.run([str(c) for c in cmd], stdin=subprocess.DEVNULL,
                       capture_output=True, text=True, env=BASE_ENV)
    if check and p.returncode != 0:
        raise Failure("%s: exit %d: %s" % (" ".join(map(str, cmd)), p.returncode,
                                           (p.stderr or p.stdout).strip()))
    return p


def tail(path, n=600):
    try:
        return Path(path).read_text(errors="replace")[-n:].strip() or "(empty)"
    except OSError:
        return "(none)"


# ---------------------------------------------------------------- network

class Net:
    """Four namespaces: a switch with a bridge and three hosts, each joined
    to the bridge by a veth pair created directly inside the namespaces."""

    def __init__(self, tag):
        self.tag = tag
        self.ns = {r: "rqmh%s%s" % (tag, r[0]) for r in ("front", "back", "log", "switch")}
        self.made = []

    def up(self):
        for role, name in self.ns.items():
            if name in sh("ip", "netns", "list").stdout.split():
                sh("ip", "netns", "del", name)  # left by a dead run with our pid
            p = sh("ip", "netns", "add", name, check=False)
            if p.returncode != 0:
                err = p.stderr.strip()
                if not self.made and re.search(r"not permitted|permission denied", err, re.I):
                    raise Skip("cannot create a network namespace (%s): needs root "
                               "or CAP_SYS_ADMIN" % err)
                raise Failure("ip netns add %s: %s" % (name, err))
            self.made.append(name)
        sw = self.ns["switch"]
        sh("ip", "-n", sw, "link", "set", "lo", "up")
        sh("ip", "-n", sw, "link", "add", "br0", "type", "bridge")
        sh("ip", "-n", sw, "link", "set", "br0", "up")
        for role in ("front", "back", "log"):
            ns, addr = self.ns[role], HOSTS[role][0]
            host_if = "v%s%s" % (self.tag, role[0])
            sw_if = host_if + "s"
            sh("ip", "link", "add", host_if, "netns", ns, "type", "veth",
               "peer", "name", sw_if, "netns", sw)
            sh("ip", "-n", sw, "link", "set", sw_if, "master", "br0", "up")
            sh("ip", "-n", ns, "link", "set", "lo", "up")
            sh("ip", "-n", ns, "addr", "add", addr + "/24", "dev", host_if)
            sh("ip", "-n", ns, "link", "set", host_if, "up")

    def argv(self, role, argv, hostname=True):
        """argv run inside the role's namespace, in its own UTS namespace
        named after the host (ip, unshare and sh all exec: the pid is the
        program's)."""
        out = ["ip", "netns", "exec", self.ns[role]]
        if hostname:
            out += ["unshare", "--uts", "--", "sh", "-c", 'hostname "$0" && exec "$@"',
                    HOSTS[role][1]]
        return out + [str(a) for a in argv]

    def pids(self):
        out = []
        for name in self.made:
            p = sh("ip", "netns", "pids", name, check=False)
            out += [int(x) for x in p.stdout.split() if x.isdigit()]
        return out

    def down(self):
        problems = []
        for pid in self.pids():  # only our processes live in our namespaces
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        for name in reversed(self.made):
            p = sh("ip", "netns", "del", name, check=False)
            if p.returncode != 0:
                problems.append("ip netns del %s: %s" % (name, p.stderr.strip()))
        self.made = []
        # the veths lived only in our namespaces: none may show in the root one
        root = sh("ip", "-o", "link", "show", check=False).stdout
        left = sorted(set(re.findall(r"\bv%s[flb]s?\b" % self.tag, root)))
        if left:
            problems.append("interfaces %s left in the root namespace" % left)
        return problems


# ---------------------------------------------------------------- processes

class Procs:
    """Every process the test starts, each in its own session, so it and its
    children can be killed by its process group id."""

    def __init__(self):
        self.all = []

    def start(self, argv, **kw):
        kw.setdefault("stdin", subprocess.DEVNULL)
        p = subprocess.Popen(argv, env=kw.pop("env", BASE_ENV), start_new_session=True, **kw)
        self.all.append(p)
        return p

    def kill_all(self):
        for p in reversed(self.all):
            if p.poll() is None:
                try:
                    os.killpg(p.pid, signal.SIGKILL)
                except (ProcessLookupError, PermissionError):
                    pass
            try:
                p.wait(5)
            except subprocess.TimeoutExpired:
                pass


def group_members(pgid):
    """Live (not zombie) processes of a process group other than its leader."""
    out = []
    for d in os.listdir("/proc"):
        if not d.isdigit() or int(d) == pgid:
            continue
        try:
            stat = open("/proc/%s/stat" % d).read()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2:].split()
        if int(fields[2]) == pgid and fields[0] != "Z":
            out.append(int(d))
    return out


class Host:
    """One service under the shim with its stderr piped into logger."""

    def __init__(self, role, kind, net, procs, tmp, lib, back_kind):
        self.role, self.kind, self.tmp = role, kind, tmp
        self.back_tls = back_kind.endswith("-tls")
        self.back_url = "%s://%s:%d%s" % ("https" if self.back_tls else "http",
                                          HOSTS["back"][0], PORT, PATHS[back_kind])
        self.proc = self.logger = None
        self.wfd = None
        addr_log = HOSTS["log"][0]
        rfd, self.wfd = os.pipe()
        try:
            try:
                with open(tmp / ("%s-logger.err" % role), "wb") as err:
                    self.logger = procs.start(
                        net.argv(role, ["logger", "--tcp", "-n", addr_log, "-P", SYSLOG_PORT,
                                        "-t", HOSTS[role][2], "--size", LOGGER_SIZE]),
                        stdin=rfd, stdout=err, stderr=err)
            finally:
                os.close(rfd)
            with open(tmp / ("%s.stdout" % role), "wb") as out:
                self.proc = procs.start(
                    net.argv(role, ["env", "LD_PRELOAD=%s" % lib, "REQID_FIELDS=" + FIELDS]
                             + self.command()),
                    stdout=out, stderr=self.wfd, cwd=str(tmp))
        except BaseException:
            self.close()
            raise

    def command(self):
        if self.kind == "python":
            if self.role == "front":
                return [server_python(), MH / "front_service.py", "--port", PORT,
                        "--back", self.back_url]
            return [server_python(), MH / "back_service.py", "--port", PORT]
        if self.kind == "python-tls":
            cert, key = harness.make_cert(self.tmp)
            return [server_python(), MH / "back_service.py", "--port", PORT,
                    "--cert", cert, "--key", key]
        root = self.tmp / ("%s-root" % self.role)
        (root / "cgi-bin").mkdir(parents=True, exist_ok=True)
        script = root / "cgi-bin" / "work"
        shutil.copyfile(MH / ("cgi_%s.sh" % self.role), script)
        script.chmod(0o755)
        return ["env", "BACK_URL=" + self.back_url] + (["BACK_INSECURE=1"] if self.back_tls else []) + [
                "busybox", "httpd", "-f", "-vv", "-p", PORT, "-h", root]

    def path(self, k):
        return "%s%d" % (PATHS[self.kind], k)

    def stop(self, nonce):
        """Stops the service once its requests are done, then sends the end
        marker through the logger after the service's last byte; waits for
        the logger to exit. Returns a list of problems."""
        problems = []
        if self.proc.poll() is not None:
            problems.append("%s %s had exited with %s before the stop: %s"
                            % (self.role, self.kind, self.proc.returncode,
                               tail(self.tmp / ("%s.stdout" % self.role))))
        else:
            deadline = time.monotonic() + STOP_WAIT
            while group_members(self.proc.pid):  # busybox: children still finishing
                if time.monotonic() > deadline:
                    problems.append("%s: children %s still running %.0f s after the last "
                                    "response" % (self.role, group_members(self.proc.pid),
                                                  STOP_WAIT))
                    break
                time.sleep(0.02)  # waiting for exited children to be reaped
            self.proc.send_signal(signal.SIGTERM)
            try:
                rc = self.proc.wait(STOP_WAIT)
                if rc not in (0, -signal.SIGTERM):
                    problems.append("%s %s exited with %s on SIGTERM" % (self.role, self.kind, rc))
            except subprocess.TimeoutExpired:
                problems.append("%s %s did not exit on SIGTERM" % (self.role, self.kind))
                os.killpg(self.proc.pid, signal.SIGKILL)
        deadline = time.monotonic() + STOP_WAIT
        while group_members(self.proc.pid):
            if time.monotonic() > deadline:
                problems.append("%s: processes %s left after the service exited"
                                % (self.role, group_members(self.proc.pid)))
                os.killpg(self.proc.pid, signal.SIGKILL)
                break
            time.sleep(0.02)
        # every writer but us is gone: the marker is the last line on the pipe
        try:
            os.write(self.wfd, ("%s %s %s\n" % (MARKER, nonce, self.role)).encode())
        except OSError as e:
            problems.append("%s: cannot write the end marker to logger: %s" % (self.role, e))
        self.close()
        try:
            rc = self.logger.wait(STOP_WAIT)
            if rc != 0:
                problems.append("%s logger exited with %s: %s" % (
                    self.role, rc, tail(self.tmp / ("%s-logger.err" % self.role))))
        except subprocess.TimeoutExpired:
            problems.append("%s logger did not exit at EOF within %.0f s" % (self.role, STOP_WAIT))
        return problems

    def close(self):
        if self.wfd is not None:
            os.close(self.wfd)
            self.wfd = None


def wait_port(net, procs, from_role, addr, port, what, watch=()):
    """Polls addr:port from inside from_role's namespace (client.py wait)."""
    p = procs.start(net.argv(from_role, [server_python(), MH / "client.py", "wait", addr, port,
                                         READY_WAIT], hostname=False),
                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    rc = p.wait(READY_WAIT + 10)
    for w, label in watch:
        if w.poll() is not None:
            raise Failure("%s exited with %s while starting" % (label, w.returncode))
    if rc != 0:
        raise Failure("%s (%s:%d) not reachable from %s within %.0f s"
                      % (what, addr, port, from_role, READY_WAIT))


def unix_sockets(pid):
    """Unix sockets a process holds (none for an rsyslogd with imtcp only:
    no /dev/log listener, no client of the host's /dev/log)."""
    try:
        table = open("/proc/%d/net/unix" % pid).read().split("\n")[1:]
        links = [os.readlink("/proc/%d/fd/%s" % (pid, fd))
                 for fd in os.listdir("/proc/%d/fd" % pid)]
    except OSError:
        return []
    inodes = {m.group(1) for m in (re.match(r"socket:\[(\d+)\]$", x) for x in links) if m}
    return [row.strip() for row in table if row.split()[6:7] and row.split()[6] in inodes]


# ---------------------------------------------------------------- aggregated log

def parse_aggregated(text):
    """Entries of the rsyslog file: time, sender ip, HOSTNAME, tag, the
    syslog message, and the JSON object the shim made of the line (None when
    the line holds none)."""
    out = []
    for raw in text.split("\n"):
        if not raw:
            continue
        parts = raw.split(" ", 4)
        while len(parts) < 5:
            parts.append("")
        ts, ip, hostname, tag, msg = parts
        tag = re.sub(r"\[\d+\]$", "", tag.rstrip(":"))
        obj = None
        i = raw.find("{")
        if i >= 0:
            try:
                obj = json.loads(raw[i:])
            except ValueError:
                obj = None
            if not isinstance(obj, dict) or not isinstance(obj.get("msg"), str):
                obj = None
        out.append({"raw": raw, "ip": ip, "hostname": hostname, "tag": tag, "msg": msg,
                    "obj": obj, "marker": msg.startswith(MARKER + " ")})
    return out


def line_requests(e):
    text = e["obj"]["msg"] if e["obj"] else e["msg"]
    return {int(m.group(1)) for m in TOKEN_RE.finditer(text)}


def complete(entries, nonce, n, per_req):
    """Both end markers and every expected request line are in."""
    markers = {e["msg"].split()[-1] for e in entries if e["marker"] and nonce in e["msg"]}
    if markers != {"front", "back"}:
        return False
    counts = {}
    for e in entries:
        if e["tag"] in per_req:
            for k in line_requests(e):
                counts[e["tag"], k] = counts.get((e["tag"], k), 0) + 1
    return all(counts.get((h, k), 0) >= per_req[h] for h in per_req for k in range(n))


# ---------------------------------------------------------------- one scenario

def run_scenario(name, index, lib, n, conc, seed, keep):
    front_kind, back_kind, desc, full = SCENARIOS[name]
    rng = random.Random("%s/%d" % (name, seed))
    res = {"name": name, "desc": desc, "seed": seed, "problems": [], "notes": [],
           "examples": [], "hosts": {}, "ok": False}
    t0 = time.monotonic()
    tmp = Path(tempfile.mkdtemp(prefix="reqid-multihost-%s-" % name))
    res["tmp"] = str(tmp)
    net = Net("%d%d" % (os.getpid(), index))
    procs = Procs()
    hosts = {}
    nonce = "%016x" % rng.getrandbits(64)
    agg_path = tmp / "aggregated.log"
    per_req = {"front": len(LINES["front", front_kind]), "back": len(LINES["back", back_kind])}
    plan = []
    with_tp = set(rng.sample(range(n), n // 2))
    for k in range(n):
        tp = None
        if k in with_tp:
            tp = "00-%032x-%016x-01" % (rng.getrandbits(128) | 1, rng.getrandbits(64) | 1)
        plan.append({"k": k, "traceparent": tp})
    client = {}
    rsyslog = None
    try:
        net.up()
        # the log host
        work = tmp / "rsyslog-work"
        work.mkdir()
        conf = tmp / "rsyslog.conf"
        conf.write_text(RSYSLOG_CONF.format(work=work, addr=HOSTS["log"][0], port=SYSLOG_PORT,
                                            out=agg_path, template=RSYSLOG_TEMPLATE))
        with open(tmp / "rsyslogd.out", "wb") as out:
            rsyslog = procs.start(net.argv("log", ["rsyslogd", "-n", "-f", conf,
                                                   "-i", tmp / "rsyslogd.pid"]),
                                  stdout=out, stderr=out)
        for role in ("front", "back"):  # also proves the bridge carries both hosts
            wait_port(net, procs, role, HOSTS["log"][0], SYSLOG_PORT, "rsyslogd imtcp",
                      [(rsyslog, "rsyslogd")])
        unix = unix_sockets(rsyslog.pid)
        if unix or "/dev/log" in tail(tmp / "rsyslogd.out", 10000):
            res["problems"].append("rsyslogd holds unix sockets %s or mentions /dev/log: %s"
                                   % (unix, tail(tmp / "rsyslogd.out")))
        # back first, then the front that calls it
        for role, kind in (("back", back_kind), ("front", front_kind)):
            h = hosts[role] = Host(role, kind, net, procs, tmp, lib, back_kind)
            wait_port(net, procs, "front", HOSTS[role][0], PORT, "%s service" % role,
                      [(h.proc, "%s %s" % (role, kind)), (h.logger, "%s logger" % role)])
        for item in plan:
            item["path"] = hosts["front"].path(item["k"])
        # the load, from inside the front namespace, not under the shim
        cl = procs.start(net.argv("front", [server_python(), MH / "client.py", "load",
                                            HOSTS["front"][0], PORT, conc], hostname=False),
                         stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE)
        try:
            out, err = cl.communicate(json.dumps(plan).encode(), timeout=CLIENT_WAIT)
        except subprocess.TimeoutExpired:
            raise Failure("client did not finish within %.0f s" % CLIENT_WAIT)
        if cl.returncode != 0:
            raise Failure("client exited with %s: %s" % (cl.returncode, err.decode()[-600:]))
        loaded = json.loads(out)
        client = {int(k): v for k, v in loaded["results"].items()}
        res["max_in_flight"] = loaded["max_in_flight"]
        # stop in call order, so the back's lines are all out before its marker
        for role in ("front", "back"):
            res["problems"] += hosts[role].stop(nonce)
        deadline = time.monotonic() + FLUSH_WAIT
        while True:
            entries = parse_aggregated(agg_path.read_text(errors="replace")
                                       if agg_path.exists() else "")
            if complete(entries, nonce, n, per_req):
                break
            if rsyslog.poll() is not None:
                res["problems"].append("rsyslogd exited with %s: %s"
                                       % (rsyslog.returncode, tail(tmp / "rsyslogd.out")))
                break
            if time.monotonic() > deadline:
                res["problems"].append("the rsyslog file was still incomplete %.0f s after "
                                       "the loggers exited" % FLUSH_WAIT)
                break
            time.sleep(0.05)  # polling the file rsyslog writes, bounded by the deadline
        rsyslog.send_signal(signal.SIGTERM)
        try:
            rc = rsyslog.wait(STOP_WAIT)
            if rc != 0:
                res["problems"].append("rsyslogd exited with %s: %s"
                                       % (rc, tail(tmp / "rsyslogd.out")))
        except subprocess.TimeoutExpired:
            res["problems"].append("rsyslogd did not exit on SIGTERM")
    except (Failure, OSError, ValueError) as e:
        res["problems"].append("%s: %s" % (type(e).__name__, e))
    except Skip:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    finally:
        for h in hosts.values():
            h.close()
        procs.kill_all()
        res["problems"] += net.down()
    res["elapsed"] = time.monotonic() - t0
    entries = parse_aggregated(agg_path.read_text(errors="replace")
                               if agg_path.exists() else "")
    check(res, entries, plan, client, nonce, per_req, front_kind, back_kind, full)
    for role in ("front", "back"):
        for what in ("%s-logger.err", "%s.stdout"):
            t = tail(tmp / (what % role))
            if t not in ("(empty)", "(none)"):
                res["notes"].append("%s: %s" % (what % role, t))
    res["ok"] = not res["problems"]
    if keep or not res["ok"]:
        res["kept"] = True
    else:
        shutil.rmtree(tmp, ignore_errors=True)
    return res


# ---------------------------------------------------------------- oracle

def check(res, entries, plan, client, nonce, per_req, front_kind, back_kind, full):
    """full: the hosts whose every request line must carry its trace."""
    problems, examples = res["problems"], res["examples"]
    n = len(plan)
    # what each request's lines must carry
    want_tid, want_rid = {}, {}
    stats = {"responses_ok": 0, "xrid": 0, "retried": 0, "xrid_is_tp": 0}
    for item in plan:
        k = item["k"]
        r = client.get(k)
        if r is None:
            continue
        ok = r["status"] == 200 and "back k=%d ok" % k in (r["body"] or "")
        stats["responses_ok"] += ok
        stats["retried"] += r.get("attempts", 1) > 1
        if not ok and len([p for p in problems if p.startswith("request ")]) < 5:
            problems.append("request k=%d: status %s body %r error %s"
                            % (k, r["status"], (r["body"] or "")[:120], r["error"]))
        xrid = r["x_request_id"][0] if len(r["x_request_id"]) == 1 else None
        stats["xrid"] += xrid is not None
        tp = item["traceparent"]
        if tp:
            want_tid[k] = tp[3:35]
            # the request id may come from the traceparent (today's default
            # REQID_HEADERS) or be generated: either way it is the front's
            stats["xrid_is_tp"] += xrid == tp[3:35]
        elif xrid is not None and HEX32.match(xrid):
            want_tid[k] = xrid
        want_rid[k] = xrid
    if client:
        if stats["responses_ok"] != n:
            problems.append("%d/%d responses are not 200 with the back's answer"
                            % (n - stats["responses_ok"], n))
        if stats["xrid"] != n:
            problems.append("%d/%d responses without exactly one X-Request-ID header"
                            % (n - stats["xrid"], n))
    res["stats"] = stats

    markers = {e["msg"].split()[-1] for e in entries if e["marker"] and nonce in e["msg"]}
    own = [e for e in entries if e["tag"] == "rsyslogd"]
    res["log_host_lines"] = len(own)
    if not any(e["msg"].endswith("] start") for e in own):
        problems.append("rsyslogd's own start message is not in its file (sent to /dev/log?)")
    for role in ("front", "back"):
        if role not in markers:
            problems.append("the end marker of %s never reached the rsyslog file" % role)

    per_k = {}          # k -> [entry] (both hosts)
    tid_owner = {}      # trace_id -> set of k
    for role in ("front", "back"):
        kind = front_kind if role == "front" else back_kind
        addr, hostname, tag = HOSTS[role]
        mine = [e for e in entries if e["tag"] == tag and not e["marker"]]
        h = res["hosts"][role] = {
            "kind": kind, "addr": addr, "lines": len(mine), "malformed": 0, "req_lines": 0,
            "tagged": 0, "correct": 0, "wrong": 0, "rid_ok": 0, "span": 0,
            "other": 0, "other_tagged": 0, "ambiguous": 0, "lost": 0, "extra": 0,
            "rid_wrong": 0,
            "unattributable": 0}
        wrong_addr = [e for e in mine if e["ip"] != addr or e["hostname"] != hostname]
        if wrong_addr:
            problems.append("%d %s lines from a wrong sender, e.g. %r"
                            % (len(wrong_addr), role, wrong_addr[0]["raw"][:200]))
        counts = {}
        for e in mine:
            obj = e["obj"]
            if obj is None:
                h["malformed"] += 1
                if h["malformed"] <= 3:
                    examples.append("%s line without a JSON object: %r" % (role, e["raw"][:200]))
            ks = line_requests(e) & set(range(n))
            if len(ks) > 1:
                h["ambiguous"] += 1
                problems.append("%s line names requests %s: %r"
                                % (role, sorted(ks), e["raw"][:200]))
                continue
            if not ks:
                h["other"] += 1
                h["other_tagged"] += bool(obj and obj.get("trace_id"))
                if h["other"] <= 3:
                    res["notes"].append("%s line about no request: %r" % (role, e["raw"][:200]))
                continue
            k = ks.pop()
            counts[k] = counts.get(k, 0) + 1
            per_k.setdefault(k, []).append((role, e))
            h["req_lines"] += 1
            tid = obj.get("trace_id") if obj else None
            rid = obj.get("request_id") if obj else None
            span = obj.get("span_id") if obj else None
            if span is not None:
                h["span"] += 1
                if not (isinstance(span, str) and HEX16.match(span) and span.strip("0")):
                    problems.append("%s line with a malformed span_id: %r" % (role, e["raw"][:200]))
            if rid is not None and rid == want_rid.get(k):
                h["rid_ok"] += 1
            elif rid is not None:
                h["rid_wrong"] += 1
            if tid is None:
                continue
            h["tagged"] += 1
            tid_owner.setdefault(tid, set()).add(k)
            if tid == want_tid.get(k):
                h["correct"] += 1
            else:
                h["wrong"] += 1
                if h["wrong"] <= 3:
                    examples.append("%s k=%d: trace_id %s, expected %s: %r"
                                    % (role, k, tid, want_tid.get(k), e["raw"][:220]))
        for k in range(n):
            got = counts.get(k, 0)
            if got < per_req[role]:
                h["lost"] += per_req[role] - got
            elif got > per_req[role]:
                h["extra"] += got - per_req[role]
        h["precision"] = h["correct"] / h["tagged"] if h["tagged"] else None
        h["recall"] = h["correct"] / h["req_lines"] if h["req_lines"] else None
        label = "%s (%s, %s)" % (role, kind, addr)
        if not mine:
            problems.append("no line from %s reached the log host" % label)
        if h["malformed"]:
            problems.append("%d %s lines are not JSON objects with a msg" % (h["malformed"], label))
        if h["lost"] or h["extra"]:
            problems.append("%s: %d request lines missing, %d extra (want %d per request: %s)"
                            % (label, h["lost"], h["extra"], per_req[role],
                               " | ".join(LINES[role, kind])))
        if h["wrong"]:
            problems.append("%s: %d lines carry a wrong trace_id (precision %s)"
                            % (label, h["wrong"], pct(h["precision"])))
        if role in full and h["req_lines"] and h["correct"] != h["req_lines"]:
            problems.append("%s: %d/%d request lines carry their request's trace_id "
                            "(recall %s, want 100%%)"
                            % (label, h["correct"], h["req_lines"], pct(h["recall"])))
        if h["rid_wrong"] or (role in full and h["req_lines"] and h["rid_ok"] != h["req_lines"]):
            problems.append("%s: %d/%d request lines carry the front's request_id, %d another"
                            % (label, h["rid_ok"], h["req_lines"], h["rid_wrong"]))
    # per request, across both hosts
    one_trace, kept_tp = 0, 0
    for item in plan:
        k = item["k"]
        lines = per_k.get(k, [])
        tids = {(e["obj"] or {}).get("trace_id") for _, e in lines}
        untagged_full = any((e["obj"] or {}).get("trace_id") is None
                            for role, e in lines if role in full)
        tids.discard(None)
        roles = {role for role, _ in lines}
        if lines and roles == {"front", "back"} and len(tids) == 1 and not untagged_full:
            one_trace += 1
            if item["traceparent"] and tids == {item["traceparent"][3:35]}:
                kept_tp += 1
    shared = {t: ks for t, ks in tid_owner.items() if len(ks) > 1}
    if shared:
        t, ks = next(iter(shared.items()))
        problems.append("%d trace_ids are shared by several requests, e.g. %s by k=%s"
                        % (len(shared), t, sorted(ks)))
    n_tp = sum(1 for item in plan if item["traceparent"])
    if one_trace != n:
        problems.append("%d/%d requests have one trace_id on every line on both hosts "
                        "(every line of %s)" % (one_trace, n, " and ".join(full)))
    if kept_tp != n_tp:
        problems.append("%d/%d requests with a client traceparent kept its trace-id on "
                        "both hosts" % (kept_tp, n_tp))
    res.update(one_trace=one_trace, kept_tp=kept_tp, n_tp=n_tp, shared=len(shared),
               unattributable=0, requests=n)


# ---------------------------------------------------------------- oracle self-test

def synthetic(scenario, n, seed, mutate=None):
    """The plan, client results and rsyslog file a shim that keeps the
    contract would give, changed by mutate(lines) -> lines, where lines are
    [role, k, {"request_id", "trace_id", "span_id", "msg"}]."""
    front_kind, back_kind, _, _ = SCENARIOS[scenario]
    rng = random.Random(seed)
    plan, client, lines = [], {}, []
    for k in range(n):
        tp = None
        if k % 2:
            tp = "00-%032x-%016x-01" % (rng.getrandbits(128) | 1, rng.getrandbits(64) | 1)
        plan.append({"k": k, "traceparent": tp, "path": "/work/%d" % k})
        rid = tp[3:35] if tp else "%032x" % rng.getrandbits(128)
        client[k] = {"status": 200, "body": "front k=%d: back k=%d ok\n" % (k, k),
                     "x_request_id": [rid], "error": None, "attempts": 1}
        for role, kind in (("front", front_kind), ("back", back_kind)):
            span = "%016x" % (rng.getrandbits(64) | 1)
            for text in LINES[role, kind]:
                msg = (text.replace("K", str(k)).replace("<peer>", "10.77.0.1:4%04d" % k)
                       .replace("...", "back k=%d ok" % k))
                lines.append([role, k, {"request_id": rid, "trace_id": rid, "span_id": span,
                                        "msg": msg}])
    if mutate:
        lines = mutate(lines)
    nonce = "%016x" % rng.getrandbits(64)
    out = ["2026-11-21T07:00:00+00:00 127.0.0.1 log-host rsyslogd: "
           "[origin software=\"rsyslogd\"] start"]
    for role, _, obj in lines:
        addr, hostname, tag = HOSTS[role]
        out.append("2026-11-21T07:00:01+00:00 %s %s %s %s" % (addr, hostname, tag, json.dumps(obj)))
    for role in ("front", "back"):
        addr, hostname, tag = HOSTS[role]
        out.append("2026-11-21T07:00:02+00:00 %s %s %s %s %s %s"
                   % (addr, hostname, tag, MARKER, nonce, role))
    per_req = {"front": len(LINES["front", front_kind]), "back": len(LINES["back", back_kind])}
    return plan, client, "\n".join(out) + "\n", nonce, per_req


def self_test(verbose=True):
    """The oracle passes the contract's output and catches each way of
    breaking it (k=1 vs k=10 included). Needs no root and no network."""
    def drop_field(f, role=None):
        def m(lines):
            for r, _, o in lines:
                if role in (None, r):
                    o.pop(f, None)
            return lines
        return m

    def set_tid(role, k, value, which=0):
        def m(lines):
            mine = [o for r, kk, o in lines if r == role and kk == k]
            mine[which]["trace_id"] = value
            return lines
        return m

    def retag_k(src, dst):  # a line of src that says dst's token: must count as dst's
        def m(lines):
            for r, k, o in lines:
                if r == "back" and k == src and "k=%d" % src in o["msg"]:
                    o["msg"] = o["msg"].replace("k=%d" % src, "k=%d" % dst)
                    break
            return lines
        return m

    cases = [
        ("contract kept", None, []),
        ("old library: no trace_id", drop_field("trace_id"),
         ["carry their request's trace_id", "one trace_id on every line"]),
        ("back gets its own request_id", lambda ls: [
            [r, k, dict(o, request_id="b%031x" % k) if r == "back" else o] for r, k, o in ls],
         ["carry the front's request_id"]),
        ("one back line with another trace_id", set_tid("back", 3, "f" * 32),
         ["wrong trace_id", "one trace_id on every line"]),
        ("client traceparent replaced on both hosts", lambda ls: [
            [r, k, dict(o, trace_id="e" * 31 + "1") if k == 1 else o] for r, k, o in ls],
         ["wrong trace_id", "kept its trace-id"]),
        ("line of k=1 says k=10", retag_k(1, 10),
         ["wrong trace_id", "request lines missing, 1 extra"]),
        ("a back line lost", lambda ls: [x for x in ls if not (x[0] == "back" and x[1] == 5
                                                               and "k=5" in x[2]["msg"])],
         ["request lines missing"]),
        ("two requests share a trace_id", lambda ls: [
            [r, k, dict(o, trace_id=[o2 for r2, k2, o2 in ls if k2 == 0][0]["trace_id"])
             if k == 2 else o] for r, k, o in ls],
         ["shared by several requests"]),
        ("malformed span_id", lambda ls: [[r, k, dict(o, span_id="0" * 16)] for r, k, o in ls],
         ["malformed span_id"]),
        ("a line that is not JSON", lambda ls: ls + [["front", 0, {"msg": None}]],
         ["not JSON objects"]),
    ]
    failures = 0
    for scenario in SCENARIOS:
        for label, mutate, want in cases:
            plan, client, text, nonce, per_req = synthetic(scenario, 12, 7, mutate)
            res = {"problems": [], "notes": [], "examples": [], "hosts": {}}
            front_kind, back_kind, _, full = SCENARIOS[scenario]
            check(res, parse_aggregated(text), plan, client, nonce, per_req,
                  front_kind, back_kind, full)
            got = res["problems"]
            if want:
                ok = all(any(w in p for p in got) for w in want)
            else:
                ok = not got and res["one_trace"] == 12 and res["kept_tp"] == 6
            failures += not ok
            if verbose or not ok:
                print("  self-test %-14s %-42s %s%s" % (scenario, label, "ok" if ok else "FAILED",
                                                      "" if ok else ": %s" % got))
    print("oracle self-test (%d synthetic cases): %s"
          % (len(cases) * len(SCENARIOS), "ok" if not failures else "%d FAILED" % failures))
    return failures == 0


# ---------------------------------------------------------------- report

def pct(v):
    return "n/a" if v is None else "%.2f%%" % (100 * v)


def report(res, out=sys.stdout):
    out.write("%s: %s  (%s; seed %d, %.1f s%s)\n" % (
        res["name"], "PASS" if res["ok"] else "FAIL", res["desc"], res["seed"],
        res.get("elapsed", 0), ", kept %s" % res["tmp"] if res.get("kept") else ""))
    st = res.get("stats", {})
    out.write("  requests %d (%d with a client traceparent), max in flight %s, responses ok %s, "
              "with X-Request-ID %s (= client trace-id: %s), retried %s\n" % (
                  res.get("requests", 0), res.get("n_tp", 0), res.get("max_in_flight", "?"),
                  st.get("responses_ok", "?"), st.get("xrid", "?"), st.get("xrid_is_tp", "?"),
                  st.get("retried", "?")))
    if res["hosts"]:
        out.write("  %-6s %-8s %-10s %6s %8s %7s %8s %7s %6s %9s %8s %7s %8s %s\n" % (
            "host", "service", "from", "lines", "req.lines", "per.req", "trace_id",
            "correct", "wrong", "precision", "recall", "req_id", "span_id", "other (tagged)"))
        for role in ("front", "back"):
            h = res["hosts"].get(role)
            if not h:
                continue
            per = "-%d+%d" % (h["lost"], h["extra"]) if h["lost"] or h["extra"] else "exact"
            out.write("  %-6s %-8s %-10s %6d %8d %7s %8d %7d %6d %9s %8s %7d %8d %d (%d)\n" % (
                role, h["kind"], h["addr"], h["lines"], h["req_lines"], per, h["tagged"],
                h["correct"], h["wrong"], pct(h["precision"]), pct(h["recall"]), h["rid_ok"],
                h["span"], h["other"], h["other_tagged"]))
        out.write("  requests with one trace_id on all their lines on both hosts: %d/%d; "
                  "client traceparent kept: %d/%d; trace_ids shared by 2+ requests: %d; "
                  "lines excluded as unattributable: %d\n" % (
                      res.get("one_trace", 0), res.get("requests", 0), res.get("kept_tp", 0),
                      res.get("n_tp", 0), res.get("shared", 0), res.get("unattributable", 0)))
    if "log_host_lines" in res:
        out.write("  log host 10.77.0.3: %d lines of rsyslogd's own\n" % res["log_host_lines"])
    for x in res["notes"]:
        out.write("  note: %s\n" % x)
    for p in res["problems"]:
        out.write("  problem: %s\n" % p)
    for e in res["examples"][:8]:
        out.write("  example: %s\n" % e)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--scenario", default=",".join(SCENARIOS),
                    help="comma-separated, of: %s" % ", ".join(SCENARIOS))
    ap.add_argument("-n", "--requests", type=int, default=60)
    ap.add_argument("-c", "--concurrency", type=int, default=16)
    ap.add_argument("--seed", type=int, default=None)
    ap.add_argument("--keep", action="store_true", help="keep the temporary directories")
    ap.add_argument("--self-test", action="store_true",
                    help="only check the oracle on synthetic logs (no root needed)")
    a = ap.parse_args(argv)
    if a.self_test:
        return 0 if self_test() else 1
    names = [s for s in a.scenario.split(",") if s]
    bad = [s for s in names if s not in SCENARIOS]
    if bad or not names:
        ap.error("unknown scenario %s (have: %s)" % (",".join(bad), ", ".join(SCENARIOS)))
    if a.requests < 2 or a.concurrency < 1:
        ap.error("need -n >= 2 and -c >= 1")
    lib = Path(os.environ.get("REQID_LIB") or DEFAULT_LIB).resolve()
    if not lib.is_file():
        print("FAIL: the shim library %s does not exist (run make, or set REQID_LIB to a "
              "built libreqid.so)" % lib)
        return 2
    probe = subprocess.run(["true"], env=dict(BASE_ENV, LD_PRELOAD=str(lib)),
                           capture_output=True, text=True)
    if "LD_PRELOAD" in probe.stderr or probe.returncode != 0:
        print("FAIL: the shim library %s cannot be preloaded: %s" % (lib, probe.stderr.strip()))
        return 2
    missing = [t for t in TOOLS if not shutil.which(t, path=BASE_ENV["PATH"])]
    if missing:
        print("SKIP: test_multihost needs %s (Debian: iproute2, util-linux, rsyslog, busybox, "
              "curl)" % ", ".join(missing))
        return 0
    seed = random.randrange(1 << 30) if a.seed is None else a.seed
    print("test_multihost: library %s, %d requests per scenario, concurrency %d, seed %d"
          % (lib, a.requests, a.concurrency, seed))
    if not self_test(verbose=False):
        print("0 passed, 1 failed (the oracle itself)")
        return 1
    # a SIGTERM or SIGHUP still runs the cleanup in finally
    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, lambda s, f: sys.exit(128 + s))
    passed = failed = 0
    for i, name in enumerate(names):
        try:
            res = run_scenario(name, i, lib, a.requests, a.concurrency, seed, a.keep)
        except Skip as e:
            print("SKIP: %s" % e)
            return 0
        report(res)
        passed += res["ok"]
        failed += not res["ok"]
    print("%d passed, %d failed" % (passed, failed))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
