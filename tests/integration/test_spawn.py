#!/usr/bin/env python3
"""test_spawn.py - programs started during a request continue its id.

tests/servers/spawner.c, under the shim, starts a shell for each request in
the way the request's path names: fork + execve, vfork + execv, clone
(CLONE_VM | CLONE_VFORK, from a fork child) + execv, fork + execvp, posix_spawn, posix_spawnp,
system() and popen(); the vfork and clone children close their copy of the
connection first, which must not end the parent's books on it (the shim
asks the kernel whether a hook runs in such a child only in a process that
made one: before its vfork and clone hooks, a process that never had, a
vfork child closing the connection took the child's id away: the child
line carried none). Each shell logs one
"child" line to the server's stderr (the log); popen's shell also prints a
line on its stdout (a pipe: data, not a log) that the server sends back as
the response body. The server logs a "parent" line before starting it, and
once at start-up runs system() outside any request.

For every method, requests with an X-Request-ID and without one:
  - the parent line and the child line carry exactly the request's id
    (the X-Request-ID value, or the same generated id on both);
  - the start-up child line carries none;
  - every response body is byte-exact (popen's output was not rewritten);
  - exact line counts, no other lines.
Also with REQID_RESPONSE_HEADER empty, so bodies are read unchanged.

Then a log file a parent opens and hands to the child it starts with vfork
(python3's subprocess, under `reqid run --log-path T/*.log`): the child's
stderr, T/child.log opened by python, is a log in the child (its line,
written to fd 2 with no dup on the way, comes out as JSON); its stdout, a
pipe python reads, is data (its bytes come back exactly). The vfork child shares the parent's tables, which do not know its
descriptors: the file's path tells it.
First, what a process pays to start: the library imports exactly the
names ALLOWED_IMPORTS lists (none of shim_init.h's LIBC_CALLS); the
environment a shimmed program starts with gains REQID_LOG_IDS (its log
file's identity) and keeps every variable as it was, small (the new array
on the library's page for it) and large (too large for that page: a
mapping); and the originals the shim leaves for their first use are found
there: by a library preloaded after the shim, whose constructor runs
before the shim's, and in a fork child of a parent that had called none of
them (fopen gives a FILE in each).
Exits non-zero on a failure.

    python3 tests/integration/test_spawn.py
"""

import http.client
import json
import os
import re
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SHIM = os.path.join(ROOT, "build", "libreqid.so")
SERVER = os.path.join(ROOT, "build", "servers", "spawner")
REQID = os.path.join(ROOT, "scripts", "reqid")
METHODS = ["fork-execve", "vfork-execv", "clone-vm-execv", "execvp", "posix_spawn",
           "posix_spawnp", "system", "popen"]
PER_METHOD = 4  # half with an X-Request-ID, half without
GENERATED = re.compile(r"^[0-9a-f]{32}$")


def get(port, path, headers):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    conn.request("GET", path, headers=headers)
    resp = conn.getresponse()
    body = resp.read()
    conn.close()
    return resp.status, body


POPEN_SCRIPT = """
import subprocess, sys
CHILD = "import os; os.write(2, b'to-log\\\\n'); os.write(1, b'to-pipe\\\\n')"
with open(sys.argv[1], "ab") as log:
    out = subprocess.run([sys.executable, "-c", CHILD], stderr=log,
                         stdout=subprocess.PIPE, check=True).stdout
with open(sys.argv[2], "wb") as data:
    data.write(out)
"""


def check_vfork_log_file(failures):
    with tempfile.TemporaryDirectory(prefix="reqid-spawn-") as tmp:
        log, data = os.path.join(tmp, "child.log"), os.path.join(tmp, "pipe.data")
        subprocess.run([REQID, "run", "--log-path", os.path.join(tmp, "*.log"), "--",
                        "/usr/bin/python3", "-c", POPEN_SCRIPT, log, data],
                       check=True, env=dict(os.environ, REQID_LIB=SHIM))
        with open(log, "rb") as f:
            got_log = f.read()
        with open(data, "rb") as f:
            got_data = f.read()
    if got_log != b'{"msg":"to-log"}\n' or got_data != b"to-pipe\n":
        failures.append("vfork child: child.log %r (want a JSON line), pipe %r (want it as written)"
                        % (got_log, got_data))
    else:
        print("spawn vfork log file: the child's stderr file (a log path) enriched, "
              "its stdout pipe untouched")


# What the library may import: each is bound by the loader at every start
# (some 660 instructions a name; none for the C runtime's weak references,
# which the library, linked without the start files, no longer makes). The
# variables the hooks read often, which a program may have copied (a copy
# relocation: only the loader's binding finds that copy; err(), warn() and
# error()'s are asked of dlsym at their first use, loader_variable); the
# string routines (indirect: their resolvers pick the processor's version)
# on the hooks' hot paths; errno; what finds the originals (dlsym); the
# setjmp pthread_cleanup_push expands to (no wrapper may call it: the
# buffer names the caller's frame); sigaction when the original is missing.
ALLOWED_IMPORTS = {
    "stdout", "stderr", "environ", "__environ",
    "memcpy", "memmove", "memset", "memcmp", "memchr", "memrchr", "memmem", "strlen",
    "strcmp", "strncmp", "strchr",
    "__errno_location", "dlsym",
    "__sigsetjmp", "__sigaction",
}


def check_imports(failures):
    """The library imports exactly ALLOWED_IMPORTS: every other libc
    function it calls (shim_init.h's LIBC_CALLS, LINKED_CALLS among them,
    and syscall, made in shim_init.c) is found as the originals are, at
    its first use, or not looked up at all."""
    with open(os.path.join(ROOT, "shim", "shim_init.h"), encoding="utf-8") as f:
        header = f.read()
    names = []
    for start in ("#define LIBC_CALLS(X)", "#define LINKED_CALLS(X)"):
        block = header[header.index(start):]
        names += re.findall(r"\bX\((\w+),", block[:block.index("\n\n")])
    if len(names) < 45:
        failures.append("LIBC_CALLS: only %d names read" % len(names))
    symbols = subprocess.run(["readelf", "-W", "--dyn-syms", SHIM], stdout=subprocess.PIPE,
                             text=True, check=True).stdout
    imported = {line.split()[7].split("@")[0] for line in symbols.splitlines()
                if len(line.split()) >= 8 and line.split()[6] == "UND"}
    for name in names:
        if name in imported:
            failures.append("%s is in LIBC_CALLS but the library imports it" % name)
    if imported != ALLOWED_IMPORTS:
        failures.append("imports: %s more, %s fewer than ALLOWED_IMPORTS"
                        % (sorted(imported - ALLOWED_IMPORTS), sorted(ALLOWED_IMPORTS - imported)))
    else:
        print("spawn imports: exactly the %d allowed" % len(imported))


# A library preloaded after the shim (its constructor runs first), and a
# program: each calls hooked functions whose originals the shim finds at
# their first use (fopen, dup, fclose), the library before the shim's
# constructor ran, the program in a fork child whose parent called none.
EARLY_LIBRARY = r"""
#include <stdio.h>
#include <string.h>
#include <unistd.h>
__attribute__((constructor)) static void early(void)
{
	FILE *f = fopen("/dev/null", "r");
	const char *line = f ? "early fopen ok\n" : "early fopen NULL\n";
	if (write(2, line, strlen(line)) < 0 || (f && fclose(f) != 0))
		_exit(3);
}
"""
FORKING_PROGRAM = r"""
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>
int main(void)
{
	pid_t pid = fork();
	if (pid == 0) {
		FILE *f = fopen("/dev/null", "r");
		int fd = dup(0);
		const char *line = f && fd >= 0 ? "child fopen ok\n" : "child fopen NULL\n";
		_exit(write(2, line, strlen(line)) < 0 || !f || fclose(f) != 0);
	}
	int status;
	return waitpid(pid, &status, 0) != pid || status != 0;
}
"""


def check_originals_at_first_use(failures):
    """Originals left for their first use are found before the shim's
    constructor ran and in a fork child: fopen returns a FILE there (the
    hook passes NULL on when it finds no original)."""
    with tempfile.TemporaryDirectory(prefix="reqid-first-use-") as tmp:
        lib, prog = os.path.join(tmp, "libearly.so"), os.path.join(tmp, "forking")
        for src, out, flags in ((EARLY_LIBRARY, lib, ["-shared", "-fPIC"]),
                                (FORKING_PROGRAM, prog, [])):
            with open(out + ".c", "w", encoding="utf-8") as f:
                f.write(src)
            subprocess.run(["cc", "-O2"] + flags + ["-o", out, out + ".c"], check=True)
        runs = (("early", [prog], SHIM + " " + lib, "early fopen ok"),
                ("child", [prog], SHIM, "child fopen ok"))
        for name, argv, preload, want in runs:
            r = subprocess.run(argv, env=dict(os.environ, LD_PRELOAD=preload),
                               stderr=subprocess.PIPE, text=True, timeout=30)
            texts = [json.loads(l)["msg"] if l.startswith("{") else l
                     for l in r.stderr.splitlines()]
            if r.returncode != 0 or want not in texts:
                failures.append("%s: exit %d, stderr %r, want a line %r"
                                % (name, r.returncode, r.stderr, want))
            else:
                print("spawn first use: %s" % want)


ENV_DUMP = "import json, os, sys; open(sys.argv[1], 'w').write(json.dumps(dict(os.environ)))"


def check_log_ids_added(failures):
    """A program started without REQID_LOG_IDS gets it, naming its log (a
    file on stdout and stderr), and every other variable stays as given:
    with 3 variables more and with 600 (an array larger than a page)."""
    for count in (3, 600):
        env = {"PATH": "/usr/bin:/bin", "LD_PRELOAD": SHIM, "LC_ALL": "C.UTF-8"}
        env.update(("V%d" % i, "value-%d" % i) for i in range(count))
        with tempfile.TemporaryDirectory(prefix="reqid-spawn-") as tmp:
            log, dump = os.path.join(tmp, "out.log"), os.path.join(tmp, "env.json")
            with open(log, "wb") as f:
                subprocess.run([sys.executable, "-c", ENV_DUMP, dump], env=env, stdout=f,
                               stderr=f, check=True, timeout=30)
            st = os.stat(log)
            with open(dump, encoding="utf-8") as f:
                got = json.load(f)
        want = dict(env, REQID_LOG_IDS="%x:%x" % (st.st_dev, st.st_ino))
        if got != want:
            failures.append("%d variables: environment %r, want %r"
                            % (count, sorted(set(got.items()) ^ set(want.items())), want))
        else:
            print("spawn start environment: %d variables kept, REQID_LOG_IDS added" % count)


def main():
    failures = []
    check_log_ids_added(failures)
    check_imports(failures)
    check_originals_at_first_use(failures)
    check_vfork_log_file(failures)
    with tempfile.TemporaryDirectory(prefix="reqid-spawn-") as tmp:
        log_path = os.path.join(tmp, "stderr.log")
        env = dict(os.environ, LD_PRELOAD=SHIM, REQID_LOG_FDS="2", REQID_RESPONSE_HEADER="")
        with open(log_path, "wb") as log:
            server = subprocess.Popen([SERVER], stdout=subprocess.PIPE, stderr=log, env=env)
        try:
            port = int(server.stdout.readline())  # the handshake: it listens
            expected = {}  # token -> (method, X-Request-ID or None)
            for method in METHODS:
                for i in range(PER_METHOD):
                    token = "%s-%d" % (method, i)
                    cid = "cid-%s-%d" % (method, i) if i % 2 == 0 else None
                    headers = {"X-Request-ID": cid} if cid else {}
                    status, body = get(port, "/%s/%s" % (method, token), headers)
                    want = ("out token=%s\n" % token if method == "popen"
                            else "ran %s\n" % method).encode()
                    if status != 200 or body != want:
                        failures.append("%s: status %d body %r, want %r"
                                        % (token, status, body, want))
                    expected[token] = (method, cid)
            get(port, "/quit", {})
            if server.wait(timeout=10) != 0:
                failures.append("server exit status %d" % server.returncode)
        finally:
            if server.poll() is None:
                server.kill()
                server.wait()
        with open(log_path, encoding="utf-8") as f:
            lines = f.read().splitlines()

    seen = {}  # (role, token) -> id or None
    line_re = re.compile(r"^(parent|child) how=(\S+) token=(\S+)$")
    for text in lines:
        try:
            record = json.loads(text)
        except ValueError:
            failures.append("not JSON: %r" % text)
            continue
        m = line_re.match(record.get("msg", ""))
        if not m or set(record) - {"msg", "request_id"}:
            failures.append("unexpected line: %r" % text)
            continue
        key = (m.group(1), m.group(3))
        if key in seen:
            failures.append("line twice: %r" % text)
        seen[key] = record.get("request_id")

    if ("child", "none") not in seen:
        failures.append("start-up child line missing")
    elif seen[("child", "none")] is not None:
        failures.append("start-up child line has id %r" % seen[("child", "none")])
    generated = set()
    rows = []
    for method in METHODS:
        right = 0
        for i in range(PER_METHOD):
            token = "%s-%d" % (method, i)
            cid = expected[token][1]
            parent, child = seen.get(("parent", token)), seen.get(("child", token))
            if ("parent", token) not in seen or ("child", token) not in seen:
                failures.append("%s: line missing" % token)
                continue
            if cid is not None:
                ok = parent == cid and child == cid
            else:
                ok = (parent is not None and GENERATED.match(parent) is not None
                      and child == parent and parent not in generated)
                generated.add(parent)
            if ok:
                right += 1
            else:
                failures.append("%s: parent id %r, child id %r, want %r"
                                % (token, parent, child, cid or "one generated id"))
        rows.append((method, right))
    want_lines = 1 + 2 * len(METHODS) * PER_METHOD
    if len(lines) != want_lines:
        failures.append("%d log lines, want %d" % (len(lines), want_lines))

    for method, right in rows:
        print("spawn %-14s %d/%d requests: parent and child lines carry the request's id"
              % (method, right, PER_METHOD))
    for f in failures:
        print("FAIL: " + f)
    print("%d passed, %d failed" % (0 if failures else 1, 1 if failures else 0))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
