"""servers.py - the real servers run_real.py drives: nginx, lighttpd, busybox
httpd and python3 -m http.server, each started under `scripts/reqid run
--log-path '<tmp>/*.log'` with its own configuration in a fresh temporary
directory (no global configuration is read), on 127.0.0.1 and a port picked
by binding port 0, and stopped with the signal it expects.

Python 3 standard library only. Readiness is a bounded poll for the port to
accept a TCP connection (no request is sent, so no log line is made); the
stop waits for the server and then for its whole process group to be gone.
"""

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
REQID = ROOT / "scripts" / "reqid"
LIBREQID = ROOT / "build" / "libreqid.so"

CGI_SCRIPT = """#!/bin/sh
# reqid realservers CGI: the token is the PATH_INFO after the script name
tok=${PATH_INFO#/}
echo "cgi pid=$$ token=$tok method=$REQUEST_METHOD" >&2
echo "Content-Type: text/plain"
echo ""
echo "ok $tok"
"""


class StartError(Exception):
    pass


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def server_python():
    """Debian's interpreter when there is one (a pyenv shim is a script)."""
    for p in ("/usr/bin/python3",):
        if os.access(p, os.X_OK):
            return p
    return sys.executable


class RealServer:
    """One kind of server. Subclasses say how to configure, run and stop it,
    which files are its logs and how many lines each request must leave."""

    name = "?"
    keepalive = True          # the server keeps connections open
    stop_signal = signal.SIGTERM
    binary = None             # checked with shutil.which
    apt = None                # Debian package that provides it
    reqid_options = ()        # reqid run options a user of this server would choose
    max_concurrency = None    # connections at once it can be offered, if fewer

    def __init__(self, tmp, port):
        self.tmp, self.port = Path(tmp), port
        self.root = self.tmp / "root"

    # -- the test's view --------------------------------------------------
    def path(self, token, status):
        """Request path for a token: a file that exists (200) or not (404)."""
        return "/req/" + token

    def prepare(self, reqs):
        """Writes the docroot (a file per 200 token) and the configuration."""
        (self.root / "req").mkdir(parents=True, exist_ok=True)
        for r in reqs:
            if r.status == 200 and r.path.startswith("/req/"):
                (self.root / "req" / r.token).write_bytes(b"ok %s\n" % r.token.encode())
        self.write_config()

    def write_config(self):
        """The configuration file, if any (it names the port)."""

    def argv(self):
        raise NotImplementedError

    def cwd(self):
        return str(self.tmp)

    def stdio(self):
        """(stdout file name, stderr file name) inside tmp."""
        return "console.out", "console.out"

    def sources(self):
        """[(label, file name, classifier)]: classifier(msg) -> bool picks
        the lines of that source when several share one file."""
        raise NotImplementedError

    def expected_count(self, label, req):
        """How many lines with this request's token the source must hold
        (None: not knowable)."""
        return None

    def exit_ok(self, rc):
        return rc == 0

    def version(self):
        return ""


class Nginx(RealServer):
    name = "nginx"
    stop_signal = signal.SIGQUIT  # graceful: workers finish, master removes the pid file
    binary, apt = "nginx", "nginx"

    def write_config(self):
        t = self.tmp
        for d in ("body", "proxy", "fastcgi", "uwsgi", "scgi"):
            (t / "temp" / d).mkdir(parents=True, exist_ok=True)
        user = "user root root;\n" if os.geteuid() == 0 else ""
        (t / "nginx.conf").write_text(f"""# reqid realservers test: nothing global is read
daemon off;
master_process on;
worker_processes 2;
pid {t}/nginx.pid;
error_log {t}/error.log info;
{user}events {{ worker_connections 1024; }}
http {{
    access_log {t}/access.log combined;
    client_body_temp_path {t}/temp/body;
    proxy_temp_path {t}/temp/proxy;
    fastcgi_temp_path {t}/temp/fastcgi;
    uwsgi_temp_path {t}/temp/uwsgi;
    scgi_temp_path {t}/temp/scgi;
    default_type text/plain;
    sendfile on;
    keepalive_requests 10000;
    server {{
        listen 127.0.0.1:{self.port};
        root {self.root};
        location /req/ {{ }}
    }}
}}
""")

    def argv(self):
        t = self.tmp
        return ["nginx", "-p", str(t), "-c", str(t / "nginx.conf"), "-e", str(t / "error.log")]

    def sources(self):
        return [("access.log", "access.log", None), ("error.log", "error.log", None)]

    def expected_count(self, label, req):
        if label == "access.log":
            return 1
        if label == "error.log":  # open() "..." failed (2: No such file or directory)
            return 1 if req.status == 404 else 0
        return None

    def exit_ok(self, rc):
        return rc == 0 and not (self.tmp / "nginx.pid").exists()


class NginxBuffered(Nginx):
    """nginx whose access log is buffered in the worker (access_log ...
    buffer=8k): one write() carries the lines of many requests, written
    while the worker serves whichever request filled the buffer."""
    name = "nginx-buf"

    def write_config(self):
        super().write_config()
        conf = self.tmp / "nginx.conf"
        conf.write_text(conf.read_text().replace(
            "access.log combined;", "access.log combined buffer=8k flush=1m;"))

    def exit_ok(self, rc):
        return rc == 0 and not (self.tmp / "nginx.pid").exists()


def write_lighttpd_config(path, purpose, root, port, logdir, *extra):
    """A lighttpd configuration at path that reads nothing global: the
    document root, 127.0.0.1:port, the error and access logs in logdir,
    then the extra lines given."""
    lines = ["# reqid %s: nothing global is read" % purpose,
             'server.document-root = "%s"' % root,
             'server.bind = "127.0.0.1"',
             "server.port = %d" % port,
             'server.errorlog = "%s/error.log"' % logdir,
             'server.modules = ("mod_accesslog")',
             'accesslog.filename = "%s/access.log"' % logdir,
             *extra]
    Path(path).write_text("\n".join(lines) + "\n")


class Lighttpd(RealServer):
    name = "lighttpd"
    binary, apt = "lighttpd", "lighttpd"
    # lighttpd runs its connections' state machines from its main loop, after
    # the waiting function returned: its lines between reading a request and
    # answering it need nested brackets (README, "Event loops")
    reqid_options = ("--event-brackets",)

    def write_config(self):
        write_lighttpd_config(self.tmp / "lighttpd.conf", "realservers test", self.root,
                              self.port, self.tmp, 'mimetype.assign = ("" => "text/plain")',
                              "server.max-keep-alive-requests = 10000",
                              'debug.log-file-not-found = "enable"')

    def argv(self):
        return ["lighttpd", "-D", "-f", str(self.tmp / "lighttpd.conf")]

    def sources(self):
        return [("access.log", "access.log", None), ("error.log", "error.log", None)]

    def expected_count(self, label, req):
        if label == "access.log":
            return 1
        if label == "error.log":  # "Path : <docroot>/req/T" and "URI : /req/T"
            return 2 if req.status == 404 else 0
        return None


class Apache(RealServer):
    """Apache httpd with its event MPM: two child processes, each a listener
    thread on epoll and worker threads that take keep-alive connections from
    it in turn (a worker serves one request, hands the connection back, and
    takes up whichever comes next)."""
    name = "apache"
    binary, apt = "apache2", "apache2"
    mpm = "event"
    stop_signal = signal.SIGWINCH  # graceful-stop: requests in progress finish
    MODULES = "/usr/lib/apache2/modules"
    # at 64 connections from this client its event MPM closed a few of them
    # (2 to 18 requests of 1000 failed, in 3 runs of 8) before answering
    # their next request, with the shim disabled (reqid run --disable) too
    max_concurrency = 32

    def prepare(self, reqs):
        super().prepare(reqs)
        # the children run as www-data when started as root
        for d in (self.tmp, self.root, self.root / "req"):
            d.chmod(0o755)

    def directives(self):
        """Its own configuration, nothing global read; LogLevel info: a 404
        writes "AH00128: File does not exist" to the error log."""
        t, m = self.tmp, self.MODULES
        user = "User www-data\nGroup www-data\n" if os.geteuid() == 0 else ""
        return f"""# reqid realservers test: nothing global is read
ServerRoot {t}
ServerName 127.0.0.1
PidFile {t}/httpd.pid
Listen 127.0.0.1:{self.port}
LoadModule mpm_{self.mpm}_module {m}/mod_mpm_{self.mpm}.so
LoadModule authz_core_module {m}/mod_authz_core.so
LoadModule mime_module {m}/mod_mime.so
TypesConfig /etc/mime.types
{user}ErrorLog {t}/error.log
LogLevel info
DocumentRoot {self.root}
<Directory {self.root}>
    Require all granted
</Directory>
KeepAlive On
MaxKeepAliveRequests 10000
StartServers 2
<IfModule mpm_event_module>
    # room for 128 connections at once (with 25 threads a process, the
    # default, it closed some of 128 at once, shim or not)
    ServerLimit 2
    ThreadsPerChild 64
    MaxRequestWorkers 128
</IfModule>
"""

    def access_log(self):
        fmt = r'%h %l %u %t \"%r\" %>s %b \"%{Referer}i\" \"%{User-Agent}i\"'
        return f'LogFormat "{fmt}" combined\nCustomLog {self.tmp}/access.log combined\n'


    def write_config(self):
        (self.tmp / "httpd.conf").write_text(self.directives() + self.access_log())

    def argv(self):
        return ["apache2", "-f", str(self.tmp / "httpd.conf"), "-DFOREGROUND"]

    def sources(self):
        return [("access.log", "access.log", None),
                ("error.log", "error.log", lambda m: "AH00128" in m),
                ("error.log other", "error.log", lambda m: "AH00128" not in m)]

    def expected_count(self, label, req):
        if label == "access.log":
            return 1
        if label == "error.log":
            return 1 if req.status == 404 else 0
        return None

    def exit_ok(self, rc):
        return rc == 0 and not (self.tmp / "httpd.pid").exists()


class ApachePrefork(Apache):
    """Apache httpd with its prefork MPM: one process per connection at a
    time, forked ahead of the load and while it arrives."""
    name = "apache-prefork"
    mpm = "prefork"


class Busybox(RealServer):
    name = "busybox"
    keepalive = False  # one request per connection, forked child per connection
    binary, apt = "busybox", "busybox"
    # busybox httpd listens with a backlog of 9 and forks per connection: a
    # burst of 64 connects overflowed it, the kernel's SYN retries passed the
    # client's 30 s when forks were slow, and its children gave up on
    # headers after 60 s (1 run in 3 failed so, with the previous release's
    # library too)
    max_concurrency = 16

    def path(self, token, status):
        return "/cgi-bin/req/" + token if status == 200 else "/req/" + token

    def prepare(self, reqs):
        super().prepare(reqs)
        cgi = self.root / "cgi-bin"
        cgi.mkdir(parents=True, exist_ok=True)
        (cgi / "req").write_text(CGI_SCRIPT)
        (cgi / "req").chmod(0o755)

    def argv(self):
        # -vv: "<peer>: url:<path>" per request, "response:NNN" for errors
        return ["busybox", "httpd", "-f", "-vv", "-p", "127.0.0.1:%d" % self.port,
                "-h", str(self.root)]

    def stdio(self):
        return "console.out", "stderr.log"

    def sources(self):
        return [("stderr httpd", "stderr.log", lambda m: not m.startswith("cgi ")),
                ("stderr cgi", "stderr.log", lambda m: m.startswith("cgi "))]

    def expected_count(self, label, req):
        if label == "stderr httpd":
            return 1
        if label == "stderr cgi":
            return 1 if req.status == 200 else 0
        return None

    def exit_ok(self, rc):
        return rc in (0, -signal.SIGTERM)  # default action of SIGTERM


class PyHttp(RealServer):
    name = "python"
    binary = None

    def __init__(self, tmp, port):
        super().__init__(tmp, port)
        self.python = server_python()

    # http.server listens with a backlog of 5 (socketserver's default): 64
    # clients connecting at once overflow it, and a connection the kernel
    # dropped the handshake of waits out SYN-ACK retries (up to 31 s, the
    # load's timeout), with or without the shim (the shim only makes its
    # accept loop a little slower). The stock module runs with that one
    # setting raised, as a server's listen backlog is configured.
    BACKLOG = ("import runpy, socketserver; socketserver.TCPServer.request_queue_size = 128; "
               "runpy.run_module('http.server', run_name='__main__', alter_sys=True)")

    def argv(self):
        argv = [self.python, "-c", self.BACKLOG, "--bind", "127.0.0.1"]
        if self._has_protocol():
            argv += ["--protocol", "HTTP/1.1"]  # keep-alive (3.11+)
        return argv + [str(self.port)]

    def _has_protocol(self):
        out = subprocess.run([self.python, "-c", "import sys; print(sys.version_info >= (3, 11))"],
                             capture_output=True, text=True)
        return out.stdout.strip() == "True"

    def cwd(self):
        return str(self.root)

    def stdio(self):
        return "console.out", "stderr.log"

    def sources(self):
        return [("stderr", "stderr.log", None)]

    def expected_count(self, label, req):
        if label == "stderr":  # "GET /req/T HTTP/1.1" 200 -
            return 1
        return None

    def exit_ok(self, rc):
        return rc in (0, -signal.SIGTERM)


SERVERS = {"nginx": Nginx, "nginx-buf": NginxBuffered, "lighttpd": Lighttpd,
           "apache": Apache, "apache-prefork": ApachePrefork, "busybox": Busybox,
           "python": PyHttp}


def missing_binaries(names):
    out = []
    for n in names:
        cls = SERVERS[n]
        if cls.binary and not shutil.which(cls.binary, path=os.environ.get("PATH", "") +
                                           ":/usr/sbin:/sbin"):
            out.append("%s (apt-get install -y %s)" % (cls.binary, cls.apt))
    return out


class Running:
    """A started server: its process (the server itself: reqid execs it),
    in its own session so the whole tree can be checked and cleaned up."""

    def __init__(self, srv, reqid_args=(), env=None, ready_timeout=20.0, attempts=3):
        self.srv = srv
        self.proc = None
        last = None
        for _ in range(attempts):
            try:
                self._start(reqid_args, env, ready_timeout)
                return
            except StartError as e:
                last = e
                self.kill()
                # a port taken between our probe and the server's bind: new port
                srv.port = free_port()
                srv.write_config()
        raise last

    def _start(self, reqid_args, env, ready_timeout):
        srv = self.srv
        t = srv.tmp
        for f in set(srv.stdio()) | {n for _, n, _ in srv.sources()}:
            (t / f).unlink(missing_ok=True)
        full_env = {k: v for k, v in os.environ.items()
                    if not k.startswith("REQID_") or k == "REQID_LIB"}
        full_env["PATH"] = full_env.get("PATH", "/usr/bin:/bin") + ":/usr/sbin:/sbin"
        full_env.update(env or {})
        self.cmd = [str(REQID), "run", "--log-path", str(t / "*.log"), *srv.reqid_options,
                    *reqid_args, "--", *srv.argv()]
        out_name, err_name = srv.stdio()
        fds = {}
        for n in (out_name, err_name):
            if n not in fds:
                fds[n] = os.open(t / n, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        try:
            self.proc = subprocess.Popen(self.cmd, cwd=srv.cwd(), env=full_env,
                                         stdin=subprocess.DEVNULL, stdout=fds[out_name],
                                         stderr=fds[err_name], start_new_session=True)
        finally:
            for fd in fds.values():
                os.close(fd)
        deadline = time.monotonic() + ready_timeout
        while True:
            rc = self.proc.poll()
            if rc is not None:
                raise StartError("%s exited with %s before accepting connections: %s"
                                 % (srv.name, rc, self.console_tail()))
            try:
                socket.create_connection(("127.0.0.1", srv.port), timeout=1.0).close()
                return
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise StartError("%s did not accept connections on port %d within %.0f s: %s"
                                 % (srv.name, srv.port, ready_timeout, self.console_tail()))
            time.sleep(0.02)  # polling the port with a bounded deadline

    def console_tail(self):
        texts = []
        for n in sorted(set(self.srv.stdio())):
            try:
                texts.append((self.srv.tmp / n).read_text(errors="replace")[-600:])
            except OSError:
                pass
        return " | ".join(t.strip() for t in texts if t.strip()) or "(no output)"

    def group_alive(self):
        """Live (not zombie) processes left in the server's process group."""
        left = []
        for d in os.listdir("/proc"):
            if not d.isdigit():
                continue
            try:
                stat = open("/proc/%s/stat" % d).read()
            except OSError:
                continue
            fields = stat[stat.rindex(")") + 2:].split()
            if int(fields[2]) == self.proc.pid and fields[0] != "Z":
                left.append(int(d))
        return left

    def _accepted_connections(self):
        """TCP connections on the server's port (not the listening socket)
        that its processes hold."""
        accepted = set()
        for table in ("/proc/net/tcp", "/proc/net/tcp6"):
            try:
                rows = open(table).read().splitlines()[1:]
            except OSError:
                continue
            for row in rows:
                f = row.split()  # local address, remote, state (0A: LISTEN), ..., inode
                if int(f[1].rsplit(":", 1)[1], 16) == self.srv.port and f[3] != "0A":
                    accepted.add(f[9])
        held = []
        for pid in self.group_alive():
            try:
                fds = os.listdir("/proc/%d/fd" % pid)
            except OSError:
                continue
            for fd in fds:
                try:
                    link = os.readlink("/proc/%d/fd/%s" % (pid, fd))
                except OSError:
                    continue
                if link.startswith("socket:[") and link[8:-1] in accepted:
                    held.append((pid, int(fd)))
        return held

    def wait_connections_closed(self, timeout=10.0):
        """Waits until the server holds no connection accepted on its port
        once its clients closed theirs: a server stopped before it read
        their end may exit with them open (lighttpd then exits 1). Whether
        it got there."""
        deadline = time.monotonic() + timeout
        while self._accepted_connections():
            if time.monotonic() > deadline:
                return False
            time.sleep(0.01)
        return True

    def stop(self, timeout=20.0):
        """Stops the server with its signal; returns a list of problems."""
        problems = []
        if self.proc is None:
            return ["not started"]
        if self.proc.poll() is not None:
            problems.append("%s had already exited with %s before the stop: %s"
                            % (self.srv.name, self.proc.returncode, self.console_tail()))
        else:
            # The clients are done: a server stopped before it read their
            # ends may exit with connections open, and lighttpd then exits
            # 1 (seen on a loaded machine, bare and shimmed alike).
            self.wait_connections_closed(timeout=5.0)
            self.proc.send_signal(self.srv.stop_signal)
            try:
                rc = self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                problems.append("%s did not exit within %.0f s of %s"
                                % (self.srv.name, timeout, self.srv.stop_signal.name))
                self.kill()
                return problems
            if not self.srv.exit_ok(rc):
                problems.append("%s exited with status %s after %s (pid file left: %s): %s"
                                % (self.srv.name, rc, self.srv.stop_signal.name,
                                   (self.srv.tmp / "nginx.pid").exists(), self.console_tail()))
        deadline = time.monotonic() + 10.0
        while self.group_alive():
            if time.monotonic() > deadline:
                problems.append("processes %s of %s still running after it exited; killed"
                                % (self.group_alive(), self.srv.name))
                self.kill()
                break
            time.sleep(0.02)  # waiting for exited children to be reaped
        return problems

    def kill(self):
        if self.proc is None:
            return
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:
            pass
