#!/usr/bin/env python3
"""test_faults.py - what a logging program sees under faults, bare and under
libreqid.so: a full filesystem (write, writev, stdio fully/line/unbuffered),
the log file deleted or renamed while written, a log pipe whose reader exits
(SIGPIPE default and ignored), a non-blocking log pipe whose reader stops
for two seconds, a syslog daemon that stops reading /dev/log for two
seconds, every descriptor taken (RLIMIT_NOFILE), no memory left to map
(RLIMIT_AS), threads that cannot be made, a seccomp filter that kills at the legacy open
system call (the first accepted connection), the first accepted connection
of a process with threads, an EINTR storm (a timer every
100 us while the program serves requests on a keep-alive connection and
logs), a connection's descriptor closed and its number given to the next
connection while a thread is blocked reading it, and dup2/close of a log descriptor racing with writes from other
threads. Drives tests/integration/fault_writer.c, one scenario per run, and
compares its recorded return values, errno and ferror with the bare run's,
and the bytes that reach the log.

Where the shim cannot give what bare gives, the README's "Faults" section says
what the program sees instead, and this test asserts exactly that:
  - a line whose enriched output a full disk cuts short counts as not
    written: write() returns -1 with ENOSPC, or the count of the bytes before
    the line (those of an unfinished line the shim had already taken count
    as written, as in a stdio buffer); the torn line is ended with a newline
    before the next output to that descriptor, so the file stays a file of
    lines.

The disk-full scenarios mount a 256 KiB tmpfs in a mount namespace of their
own (`unshare -m`, as root); where that is not allowed they are skipped and
say so. Python 3 standard library only.

    python3 tests/integration/test_faults.py [-v] [unittest test names]
"""

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import unittest
from pathlib import Path

import harness

ROOT = Path(__file__).resolve().parents[2]
SRC = ROOT / "tests" / "integration"
OUT = ROOT / "build" / "integration"
LIB = (ROOT / "build" / "libreqid.so").resolve()
PROG = OUT / "fault_writer"
TIMEOUT = 60
LINE = b"a" * 199


def build():
    OUT.mkdir(parents=True, exist_ok=True)
    subprocess.run(["make", "-s", "-C", str(ROOT), "build/libreqid.so"], check=True,
                   timeout=120)
    subprocess.run(["cc", "-O2", "-g", "-Wall", "-Wextra", "-Werror", "-pthread", "-o", str(PROG),
                    str(SRC / "fault_writer.c")], check=True, timeout=60)


def can_mount():
    if os.geteuid() != 0 or not shutil.which("unshare"):
        return False
    with tempfile.TemporaryDirectory() as d:
        p = subprocess.run(["unshare", "-m", "mount", "-t", "tmpfs", "-o", "size=64k",
                            "tmpfs", d], capture_output=True, timeout=TIMEOUT)
        return p.returncode == 0


MOUNT_OK = None


class Run:
    """One run of fault_writer: its recorded observations (a dict), exit
    status, and the bytes of its log (the file, or fd 2)."""

    def __init__(self, scenario, shimmed, tmpfs=False, keep=None):
        with tempfile.TemporaryDirectory() as tmp:
            tmp = Path(tmp)
            results, logdir, stderr = tmp / "results", tmp / "logs", tmp / "stderr"
            logdir.mkdir()
            env = harness.clean_env()
            if shimmed:
                env.update(LD_PRELOAD=str(LIB), REQID_LOG_PATHS=str(logdir / "*.log*"))
            argv = [str(PROG), scenario, str(results), str(logdir)]
            if tmpfs:
                # The tmpfs exists only in this namespace: the log is copied
                # out before the namespace goes.
                script = ('mount -t tmpfs -o size=256k tmpfs "$1" && shift && '
                          'env "$@"; s=$?; cp "$LOGDIR"/*.log* "$OUTDIR"/ 2>/dev/null; exit $s')
                keep_dir = tmp / "kept"
                keep_dir.mkdir()
                env.update(LOGDIR=str(logdir), OUTDIR=str(keep_dir))
                # LD_PRELOAD reaches only the program, through env
                pre = env.pop("LD_PRELOAD", None)
                argv = (["unshare", "-m", "sh", "-c", script, "sh", str(logdir)]
                        + (["LD_PRELOAD=" + pre] if pre else []) + argv)
                logdir_after = keep_dir
            else:
                logdir_after = logdir
            with open(stderr, "wb") as err:
                p = subprocess.run(argv, env=env, stdout=subprocess.DEVNULL, stderr=err,
                                   timeout=TIMEOUT)
            self.status = p.returncode
            self.obs = {}
            if results.exists():
                for line in results.read_text().splitlines():
                    for pair in line.split():
                        k, _, v = pair.partition("=")
                        self.obs[k] = v
            self.stderr = stderr.read_bytes()
            self.files = {f.name: f.read_bytes() for f in logdir_after.iterdir()} \
                if logdir_after.exists() else {}


# A python program's start: a connection to accept on a unix socket (argv[1]).
CONNECTION_PENDING = r"""
import ctypes, os, socket, struct, sys, threading
listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
listener.bind(sys.argv[1])
listener.listen(1)
client = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
client.connect(sys.argv[1])
"""

# Installs a seccomp filter that kills at system call 2 (open) and accepts
# the connection.
SECCOMP_ACCEPT = CONNECTION_PENDING + r"""
code = b"".join(struct.pack("=HBBI", *i) for i in (
    (0x20, 0, 0, 0),               # the system call's number
    (0x15, 0, 1, 2),               # open?
    (0x06, 0, 0, 0x80000000),      # SECCOMP_RET_KILL_PROCESS
    (0x06, 0, 0, 0x7fff0000)))     # SECCOMP_RET_ALLOW
insns = ctypes.create_string_buffer(code)
class Prog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]
prog = Prog(4, ctypes.addressof(insns))
libc = ctypes.CDLL(None)
if libc.prctl(38, 1, 0, 0, 0) or libc.prctl(22, 2, ctypes.byref(prog), 0, 0):
    sys.exit(4)  # PR_SET_NO_NEW_PRIVS, PR_SET_SECCOMP with SECCOMP_MODE_FILTER
conn, _ = listener.accept()
child = os.fork()
if child == 0:
    os._exit(0)
os.waitpid(child, 0)
os.write(2, b"accepted\n")
"""


# Accepts the connection, with a second thread running when argv[2] is
# "threaded", and prints the kB of anonymous pages in the library's code
# mapping (a line of its log, stdout) once accepted, and again once it
# forked a child (which exits at once).
ACCEPT_CODE_ANON = CONNECTION_PENDING + r"""
import warnings
warnings.simplefilter("ignore")  # a fork with a thread running
def code_anon():
    anon, code = 0, False
    for line in open("/proc/self/smaps"):
        words = line.split()
        if len(words) >= 5 and "-" in words[0] and ":" not in words[0]:
            code = line.rstrip().endswith("/libreqid.so") and words[1] == "r-xp"
        elif code and words[0] == "Anonymous:":
            anon += int(words[1])
    return anon
go = threading.Event()
thread = threading.Thread(target=go.wait)
if sys.argv[2] == "threaded":
    thread.start()
conn, _ = listener.accept()
accepted = code_anon()
child = os.fork()
if child == 0:
    os._exit(0)
os.waitpid(child, 0)
go.set()
if thread.is_alive():
    thread.join()
print(accepted, flush=True)
print(code_anon())
"""


def json_lines(data):
    """The complete lines of data, each parsed as JSON (None if it is not)."""
    out = []
    for raw in data.split(b"\n")[:-1]:
        try:
            out.append(json.loads(raw))
        except ValueError:
            out.append(None)
    return out


class Faults(unittest.TestCase):
    def needs_mount(self):
        global MOUNT_OK
        if MOUNT_OK is None:
            MOUNT_OK = can_mount()
        if not MOUNT_OK:
            print("test_faults: skipped %s: cannot mount a tmpfs in a mount namespace "
                  "(needs root)" % self.id().split(".")[-1])
            self.skipTest("no tmpfs")

    def full_disk(self, scenario):
        self.needs_mount()
        bare = Run(scenario, False, tmpfs=True)
        shim = Run(scenario, True, tmpfs=True)
        for r in (bare, shim):
            self.assertEqual(r.status, 0, r.obs)
            self.assertEqual(r.obs.get("filled"), "yes")
            self.assertEqual(r.obs.get("after"), "ok")
            self.assertEqual(r.obs.get("close"), "0")
        # bare: the kernel's short count, then ENOSPC; its "after" is glued
        # to the torn line
        self.assertIn(bare.obs["first_failure"], ("short", "ENOSPC"))
        if bare.obs["first_failure"] == "short":
            self.assertEqual(bare.obs["then"], "ENOSPC")
        self.assertTrue(bare.files["app.log"].endswith(b"after\n"))
        # Under the shim a line the disk cuts short counts none of its bytes
        # but those of an unfinished line the shim had already taken: write()
        # gets ENOSPC at once; writev() a count of its first piece (120
        # bytes, taken before the second completed the line), then ENOSPC,
        # and those 120 bytes begin the next line.
        taken = b""
        if scenario == "full_write":
            self.assertEqual(shim.obs["first_failure"], "ENOSPC", shim.obs)
            self.assertNotIn("then", shim.obs)
        else:
            self.assertEqual((shim.obs["first_failure"], shim.obs["count"], shim.obs["then"]),
                             ("short", "120", "ENOSPC"), shim.obs)
            taken = LINE[:120]
        data = shim.files["app.log"]
        last = b'{"msg":"' + taken + b'after"}\n'
        self.assertTrue(data.endswith(last), data[-300:])
        lines = json_lines(data)
        torn = [i for i, v in enumerate(lines) if v is None]
        # exactly one torn line, a prefix of a whole one, ended by a newline
        self.assertEqual(len(torn), 1, "torn lines at %s" % torn[:5])
        whole = b'{"msg":"' + LINE + b'"}'
        raw = data.split(b"\n")[torn[0]]
        self.assertTrue(whole.startswith(raw) and len(raw) < len(whole), raw[-40:])
        self.assertEqual(torn[0], len(lines) - 2, "the torn line is the one before 'after'")
        for v in lines[:-2]:
            self.assertEqual(v, {"msg": LINE.decode()})
        self.assertEqual(lines[-1], {"msg": (taken + b"after").decode()})

    def test_full_two_lines(self):
        # room for line 1 (enriched or not) and part of line 2: the count
        # covers line 1 exactly, so the program's retry writes it once
        self.needs_mount()
        bare = Run("full_two_lines", False, tmpfs=True)
        shim = Run("full_two_lines", True, tmpfs=True)
        self.assertEqual(bare.obs["rest"], "written")
        self.assertEqual((shim.obs["first"], shim.obs["count"], shim.obs["rest"]),
                         ("short", "264", "written"), shim.obs)
        lines = json_lines(shim.files["app.log"])
        msgs = [v["msg"] for v in lines if v is not None]
        self.assertEqual(msgs.count("a" * 263), 1)
        self.assertEqual(msgs.count("b" * 100), 1)
        self.assertEqual(lines.count(None), 1)  # the torn one
        self.assertEqual(bare.files["app.log"].count(b"a" * 263 + b"\n"), 1)

    def test_full_then_fork(self):
        # the torn line is ended once, by whichever process writes first
        self.needs_mount()
        shim = Run("full_fork", True, tmpfs=True)
        self.assertEqual(shim.obs, {"child": "0", "parent": "ok", "done": "1"})
        data = shim.files["app.log"]
        self.assertTrue(data.endswith(b'\n{"msg":"child line"}\n{"msg":"parent line"}\n'),
                        data[-80:])
        self.assertNotIn(b"\n\n", data)
        self.assertEqual(json_lines(data).count(None), 1)

    def test_full_then_stdio(self):
        self.needs_mount()
        bare = Run("full_then_stdio", False, tmpfs=True)
        shim = Run("full_then_stdio", True, tmpfs=True)
        self.assertEqual(shim.obs, bare.obs)
        self.assertEqual(shim.obs, {"fprintf": "10", "write": "ok", "done": "1"})
        data = shim.files["app.log"]
        self.assertTrue(data.endswith(b'\n{"msg":"via stdio"}\n{"msg":"via write"}\n'),
                        data[-80:])
        self.assertNotIn(b"\n\n", data)
        self.assertEqual(json_lines(data).count(None), 1)

    def test_full_fwrite_line_buffered(self):
        self.needs_mount()
        bare = Run("full_fwrite_line", False, tmpfs=True)
        shim = Run("full_fwrite_line", True, tmpfs=True)
        self.assertEqual(bare.obs, {"fwrite": "6", "errno": "ENOSPC", "ferror": "1", "done": "1"})
        self.assertEqual(shim.obs, bare.obs)

    def test_many_unfinished_lines(self):
        # more unfinished lines than the shim keeps per thread: the one it
        # cannot keep goes out as a line of its own, and its rest too
        bare, shim = Run("many_unfinished", False), Run("many_unfinished", True)
        self.assertEqual(shim.obs, bare.obs)
        for i in range(6):
            name = "f%d.log" % i
            self.assertEqual(bare.files[name], b"start of line, rest of line\n")
            lines = json_lines(shim.files[name])
            self.assertNotIn(None, lines, shim.files[name])
            self.assertEqual("".join(v["msg"] for v in lines), "start of line, rest of line")


    def test_full_write(self):
        self.full_disk("full_write")

    def test_full_writev(self):
        self.full_disk("full_writev")

    def full_stdio(self, scenario):
        self.needs_mount()
        bare = Run(scenario, False, tmpfs=True)
        shim = Run(scenario, True, tmpfs=True)
        self.assertEqual(bare.status, 0, bare.obs)
        self.assertEqual(bare.obs.get("first_failure"), "EOF")
        self.assertEqual(bare.obs.get("errno"), "ENOSPC")
        self.assertEqual(bare.obs.get("ferror"), "1")
        # the same calls fail the same way (at a later line under the shim:
        # its lines are longer)
        self.assertEqual(shim.obs, bare.obs)
        self.assertEqual(shim.status, 0)

    def test_full_stdio_buffered(self):
        self.full_stdio("full_stdio_full")

    def test_full_stdio_line_buffered(self):
        self.full_stdio("full_stdio_line")

    def test_full_stdio_unbuffered(self):
        self.full_stdio("full_stdio_none")

    def test_deleted(self):
        bare, shim = Run("deleted", False), Run("deleted", True)
        self.assertEqual(shim.obs, bare.obs)
        self.assertEqual(set(shim.obs.values()) - {"1"}, {"ok"})

    def test_renamed(self):
        bare, shim = Run("renamed", False), Run("renamed", True)
        self.assertEqual(shim.obs, bare.obs)
        self.assertEqual(bare.files["app.log.1"], b"one\ntwo\nthree\n")
        self.assertEqual(shim.files["app.log.1"],
                         b'{"msg":"one"}\n{"msg":"two"}\n{"msg":"three"}\n')

    def test_pipe_reader_exits_sigpipe(self):
        bare, shim = Run("pipe_default", False), Run("pipe_default", True)
        self.assertEqual(bare.status, -signal.SIGPIPE)
        self.assertEqual(shim.status, -signal.SIGPIPE)
        self.assertEqual(shim.obs, bare.obs)
        self.assertEqual(shim.obs, {"first": "ok"})

    def test_pipe_reader_exits_ignored(self):
        bare, shim = Run("pipe_ignored", False), Run("pipe_ignored", True)
        self.assertEqual(shim.status, 0)
        self.assertEqual(shim.obs, bare.obs)
        self.assertEqual(shim.obs, {"first": "ok", "second": "EPIPE", "done": "1"})

    def test_pipe_paused(self):
        # A non-blocking log pipe full for two seconds: every try fails at
        # once with EAGAIN, as bare; once the reader drains it, every line
        # arrives once, whole and in order.
        bare, shim = Run("pipe_paused", False), Run("pipe_paused", True)
        self.assertEqual(shim.obs, bare.obs)
        self.assertEqual(shim.obs, {"filled": "yes", "paused_all_again": "yes",
                                    "longest_write_under_100ms": "yes", "lines": "3000",
                                    "done": "1"})
        want = [b"line %05d of a paused reader" % i for i in range(3000)]
        self.assertEqual(bare.files["pipe.out"], b"".join(w + b"\n" for w in want))
        self.assertEqual([j and j.get("msg", "").encode() for j in json_lines(shim.files["pipe.out"])],
                         want)
        self.assertTrue(shim.files["pipe.out"].endswith(b"\n"))

    def test_syslog_paused(self):
        # The syslog daemon stops reading /dev/log for two seconds (rsyslog
        # does when its queue is full, its disk full): syslog() blocks until
        # it reads again, bare and shimmed alike, and every message arrives
        # once, in order.
        bare, shim = Run("syslog_paused", False), Run("syslog_paused", True)
        if "skipped" in bare.obs:
            print("test_faults: skipped test_syslog_paused: cannot mount a tmpfs on /dev "
                  "in a mount namespace (needs root)")
            self.skipTest("no mount namespace")
        self.assertEqual(shim.obs, bare.obs)
        self.assertEqual(shim.obs, {"messages": "3000", "blocked": "yes", "done": "1"})
        head = rb"<14>[A-Z][a-z]{2} [ \d]\d \d\d:\d\d:\d\d fault_writer: "
        for r, body in ((bare, b"%s"), (shim, b'@cee:{"msg":"%s"}')):
            lines = r.files["syslog.out"].split(b"\n")
            self.assertEqual(lines.pop(), b"")
            self.assertEqual(len(lines), 3000)
            for i, line in enumerate(lines):
                self.assertRegex(line, b"^" + head + re.escape(
                    body % (b"message %05d of a paused daemon" % i)) + b"$")

    def test_nofile(self):
        bare, shim = Run("nofile", False), Run("nofile", True)
        self.assertEqual(shim.obs, bare.obs)
        self.assertEqual(shim.obs, {"open": "EMFILE", "opened_to_limit": "yes",
                                    "dup": "EMFILE", "write": "ok", "done": "1"})
        self.assertEqual(shim.stderr, b'{"msg":"full table"}\n')

    def test_seccomp_without_legacy_open(self):
        # A seccomp filter that kills at the legacy open system call, which
        # glibc never makes (a list of the calls a program makes has openat
        # only): the process accepts its first connection and logs. Until
        # 2026-12-07 the shim opened /proc/self/mem there by open
        # (fork_copies_code, since at its first fork after that): SIGSYS.
        with tempfile.TemporaryDirectory() as tmp:
            p = subprocess.run([sys.executable, "-c", SECCOMP_ACCEPT, str(Path(tmp) / "s")],
                               env=harness.clean_env(LD_PRELOAD=str(LIB)),
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, timeout=TIMEOUT)
        self.assertEqual((p.returncode, p.stderr), (0, b'{"msg":"accepted"}\n'))

    def test_threaded_first_accept(self):
        # A process that accepted a connection, as it first forks (not
        # before: a worker that never forks never pays it), gives the
        # library's code mapping an anonymous page (fork_copies_code,
        # through a descriptor of /proc/self/mem held for a moment), except
        # in a process with
        # threads: there another thread's open could get a number it could
        # not without the shim, and its close_range or dup2 could take the
        # shim's number, the byte then going to its file and the descriptor
        # closed under it (until 2026-12-07: 4 kB in both).
        got = {}
        for mode in ("single", "threaded"):
            with tempfile.TemporaryDirectory() as tmp:
                p = subprocess.run([sys.executable, "-c", ACCEPT_CODE_ANON, str(Path(tmp) / "s"),
                                    mode],
                                   env=harness.clean_env(LD_PRELOAD=str(LIB)),
                                   stdout=subprocess.PIPE, timeout=TIMEOUT)
            got[mode] = (p.returncode, p.stdout)
        self.assertEqual(got, {"single": (0, b'{"msg":"0"}\n{"msg":"4"}\n'),
                               "threaded": (0, b'{"msg":"0"}\n{"msg":"0"}\n')})

    def test_no_memory(self):
        bare, shim = Run("no_memory", False), Run("no_memory", True)
        self.assertEqual(shim.status, 0)
        self.assertEqual(shim.obs, bare.obs)
        self.assertEqual(shim.obs["mmap"], "fails")
        big = b"b" * 19999
        self.assertEqual(bare.stderr, big + b"\npieces\nshort line\nthrend\n")
        # Lossless and in order: each line whole, enriched or (where the
        # shim had no memory for it) as it came.
        lines = shim.stderr.split(b"\n")
        self.assertEqual(lines[-1], b"")
        got = []
        for raw in lines[:-1]:
            try:
                got.append(json.loads(raw)["msg"].encode())
            except ValueError:
                got.append(raw)
        # the line a thread left unfinished when it ended is ended there,
        # as one kept in memory would be
        self.assertEqual(got, [big, b"pieces", b"short line", b"thr", b"end"])

    def test_eintr_storm(self):
        bare, shim = Run("eintr", False), Run("eintr", True)
        self.assertEqual(bare.obs, {"bad": "0", "interrupted": "many", "done": "1"})
        self.assertEqual(shim.obs, bare.obs)
        want = ["handled r-%d" % i for i in range(2000)]
        self.assertEqual(bare.stderr.decode().splitlines(), want)
        # every line whole, in order, with its own request's id
        got = [json.loads(raw) for raw in shim.stderr.split(b"\n")[:-1]]
        self.assertEqual(got, [{"request_id": "r-%d" % i, "msg": m} for i, m in enumerate(want)])

    def test_reused_descriptor_under_a_blocked_read(self):
        # The blocked read returns the old connection's request after its
        # number went to the new connection: that request reaches neither
        # the new connection's lines and response nor the reader's line.
        bare, shim = Run("reused_fd", False), Run("reused_fd", True)
        self.assertEqual(bare.obs, {"same_fd": "200", "answered": "200", "headed": "0",
                                    "done": "1"})
        self.assertEqual(shim.obs, dict(bare.obs, headed="200"))
        want = []
        for i in range(200):
            want += ["stale read of %d bytes, round %d" % (len("old-%d" % i) + 47, i),
                     "serving round %d" % i]
        self.assertEqual(bare.stderr.decode().splitlines(), want)
        got = [json.loads(raw) for raw in shim.stderr.split(b"\n")[:-1]]
        expect = [{"msg": m} if m.startswith("stale") else
                  {"request_id": "new-%s" % m.split()[-1], "msg": m} for m in want]
        # The program's own record of each line's request (its round) is
        # the truth: precision over the tagged lines, recall over the new
        # requests' lines.
        tagged = [g for g in got if "request_id" in g]
        right = sum(1 for g, e in zip(got, expect) if "request_id" in g and g == e)
        owed = sum(1 for e in expect if "request_id" in e)
        sys.stderr.write("reused_fd: precision %.2f%% (%d of %d tagged lines right), "
                         "recall %.2f%% (%d of %d request lines)\n"
                         % (100.0 * right / max(len(tagged), 1), right, len(tagged),
                            100.0 * right / max(owed, 1), right, owed))
        self.assertEqual(got, expect)

    def test_thread_fail(self):
        bare, shim = Run("thread_fail", False), Run("thread_fail", True)
        self.assertEqual(bare.obs, {"failed": "1000", "code": "EAGAIN", "then": "0", "done": "1"})
        self.assertEqual(shim.obs, bare.obs)
        self.assertEqual(bare.stderr, b"from the thread\n")
        self.assertEqual(shim.stderr, b'{"msg":"from the thread"}\n')

    def test_dup2_race(self):
        for shimmed in (False, True):
            r = Run("dup2_race", shimmed)
            self.assertEqual(r.status, 0, r.obs)
            self.assertEqual((r.obs["other"], r.obs["total"]), ("0", "20000"), r.obs)
            written = int(r.obs["ok"])
            lines = (r.files["a.log"] + r.files["b.log"]).split(b"\n")
            self.assertEqual(lines[-1], b"")
            # A line another thread writes while dup2 switches the number
            # may go out as it came (the shim's table and the kernel's
            # change at different instants): whole, never torn or merged.
            msgs = [json.loads(raw)["msg"].encode() if raw.startswith(b"{") else raw
                    for raw in lines[:-1]]
            # every line that write() reported written is there once, whole
            self.assertEqual(len(msgs), written)
            self.assertEqual(len(set(msgs)), written)
            for m in msgs:
                self.assertRegex(m, rb"^t[0-3] n\d+$")


def main():
    build()
    argv = [a for a in sys.argv if a != "-v"]
    verbosity = 2 if "-v" in sys.argv else 1
    prog = unittest.main(argv=argv, exit=False, verbosity=verbosity)
    result = prog.result
    failed = len(result.failures) + len(result.errors)
    print("test_faults: %d passed, %d failed, %d skipped"
          % (result.testsRun - failed - len(result.skipped), failed, len(result.skipped)))
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
