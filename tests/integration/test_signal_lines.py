#!/usr/bin/env python3
"""test_signal_lines.py - a line a signal handler writes gets no id
(build/servers/sigchld_reaper, tests/servers/sigchld_reaper.c).

The server's SIGCHLD handler logs "reaped pid=N" for the previous
request's child while the thread already serves the next request (it runs
at the same point every time: no timing). Before the shim ran handlers
through its trampoline every such line but the last carried the next
request's id. For each way of installing the handler (signal, sigaction
with SA_SIGINFO, sysv_signal, on a sigaltstack, nested under another
handler, left by siglongjmp): REQUESTS request lines, each with its own
id; REQUESTS reaped lines (and as many "nested" ones), none with an id.
Attached (`reqid attach --join-open` to the server started bare, its
handler installed before): the reaped lines while attached have no id, the
requests after the join theirs; after `reqid detach` sigaction names the
program's handler again (the server says so at its end).
And tests/integration/signal_semantics.c prints, under the shim, byte for
byte what it prints bare: old actions (handler, flags, mask), signal() and
sysv_signal() return values, SA_RESETHAND, SIG_IGN, errno, SA_SIGINFO
arguments, nesting, siglongjmp, sigaltstack, sigset's old handler
installed again and SIG_HOLD; and again with tests/integration/
signal_chain.c (a sigaction-chaining library) preloaded after the shim,
which must see the program's calls as it does bare.

    python3 tests/integration/test_signal_lines.py
"""
import json
import socket
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import harness  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
LIB = ROOT / "build" / "libreqid.so"
SERVER = ROOT / "build" / "servers" / "sigchld_reaper"
REQID = ROOT / "scripts" / "reqid"
SEMANTICS_SRC = ROOT / "tests" / "integration" / "signal_semantics.c"
SEMANTICS = ROOT / "build" / "signal_semantics"
CHAIN_SRC = ROOT / "tests" / "integration" / "signal_chain.c"
CHAIN = ROOT / "build" / "signal_chain.so"
MODES = ("plain", "info", "sysv", "altstack", "nested", "longjmp")
REQUESTS = 40
TIMEOUT = 20


def ask(s, i):
    s.sendall(b"GET /r%d HTTP/1.1\r\nHost: x\r\nX-Request-ID: id-%d\r\n\r\n" % (i, i))
    answer = b""
    while not answer.endswith(b"\r\n\r\n"):
        got = s.recv(4096)
        if not got:
            raise ConnectionError("connection closed after %d answers" % i)
        answer += got


def serve(mode, env, between=None):
    """Runs the server, REQUESTS requests on one connection; between(pid,
    i) before request i. (stdout, stderr) or what went wrong."""
    proc = subprocess.Popen([str(SERVER), mode], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            env=env)
    try:
        port = int(proc.stdout.readline())
        with socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT) as s:
            for i in range(REQUESTS):
                problem = between(proc.pid, i) if between else None
                if problem:
                    proc.kill()
                    proc.communicate()
                    return problem
                ask(s, i)
        out, err = proc.communicate(timeout=TIMEOUT)
    except (subprocess.TimeoutExpired, ConnectionError) as e:
        proc.kill()
        proc.communicate()
        return "hung or closed: %s" % e
    if proc.returncode != 0 or out != b"done own handler=1\n":
        return "exited %d, stdout %r" % (proc.returncode, out)
    return out, err


def one_mode(mode):
    """None if the mode's lines are as they should be, else what is wrong."""
    env = harness.clean_env()
    env.update(LD_PRELOAD=str(LIB), REQID_LOG_FDS="2")
    got = serve(mode, env)
    if isinstance(got, str):
        return got
    out, err = got
    lines = [json.loads(l) for l in err.decode().splitlines()]
    requests = [l for l in lines if l["msg"].startswith("request ")]
    want = [{"request_id": "id-%d" % i, "msg": "request /r%d" % i} for i in range(REQUESTS)]
    if requests != want:
        return "request lines %r" % [r for r in requests if r not in want][:3]
    reaped = [l for l in lines if l["msg"].startswith("reaped pid=")]
    nested = [l for l in lines if l["msg"] == "nested"]
    tagged = [l for l in reaped + nested if "request_id" in l]
    if len(reaped) != REQUESTS or tagged:
        return "%d reaped lines, %d with an id: %r" % (len(reaped), len(tagged), tagged[:3])
    if len(nested) != (REQUESTS if mode == "nested" else 0):
        return "%d nested lines" % len(nested)
    if len(lines) != len(requests) + len(reaped) + len(nested):
        return "other lines: %r" % lines
    # Every line belongs to a request: a request line to its own, a reaped
    # or nested line to the one whose child it reaped (never the request
    # the interrupted thread serves, whose id the shim would have).
    tagged = [l for l in lines if "request_id" in l]
    right = [l for l in tagged if l["msg"] == "request /r%s" % l["request_id"][3:]]
    print("%-9s lines %d, tagged %d, wrong %d, precision %s, recall %d/%d"
          % (mode, len(lines), len(tagged), len(tagged) - len(right),
             "%.0f%%" % (100.0 * len(right) / len(tagged)) if tagged else "-",
             len(right), len(lines)))
    return None


ATTACH_AT, DETACH_AT = 3, 8


def attached():
    """None if lines written while attached are as they should be."""
    env = harness.clean_env()
    env["REQID_LIB"] = str(LIB)

    def between(pid, i):
        if i not in (ATTACH_AT, DETACH_AT):
            return None
        args = ["attach", "--field", "request_id", "--join-open"] if i == ATTACH_AT else ["detach"]
        p = subprocess.run([str(REQID)] + args + [str(pid)], capture_output=True, text=True,
                           timeout=60, env=env)
        return None if p.returncode == 0 else "%s: exit %d %s" % (args[0], p.returncode, p.stderr)

    got = serve("plain", env, between)
    if isinstance(got, str):
        return got
    lines = got[1].decode().splitlines()
    # The first request after attach is the one the shim joins the
    # connection at: its line has no id. Lines before the attach and after
    # the detach are the program's own bytes.
    want = []
    for i in range(REQUESTS):
        if i > 0:
            want.append('{"msg":"reaped pid=' if ATTACH_AT <= i < DETACH_AT else "reaped pid=")
        if ATTACH_AT < i < DETACH_AT:
            want.append('{"request_id":"id-%d","msg":"request /r%d"}' % (i, i))
        elif i == ATTACH_AT:
            want.append('{"msg":"request /r%d"}' % i)
        else:
            want.append("request /r%d" % i)
    want.append("reaped pid=")
    if len(lines) != len(want) or any(not l.startswith(w) for l, w in zip(lines, want)):
        return "lines %r" % [l for l, w in zip(lines, want) if not l.startswith(w)][:4]
    return None


def semantics(chain=False):
    """None if the program sees the same under the shim as bare; chain: with
    signal_chain.c preloaded (after the shim, when shimmed), whose sigaction
    must see the program's calls either way."""
    subprocess.run(["cc", "-O2", "-Wall", "-Wextra", "-Werror", "-o", str(SEMANTICS),
                    str(SEMANTICS_SRC)], check=True, timeout=60)
    subprocess.run(["cc", "-O2", "-Wall", "-Wextra", "-Werror", "-shared", "-fPIC", "-o",
                    str(CHAIN), str(CHAIN_SRC)], check=True, timeout=60)
    env = harness.clean_env()
    if chain:
        env["LD_PRELOAD"] = str(CHAIN)
    bare = subprocess.run([str(SEMANTICS)], capture_output=True, timeout=TIMEOUT, env=env)
    env = harness.clean_env()
    env.update(LD_PRELOAD=str(LIB) + (":" + str(CHAIN) if chain else ""), REQID_LOG_FDS="2")
    shim = subprocess.run([str(SEMANTICS)], capture_output=True, timeout=TIMEOUT, env=env)
    if chain and b"chain: reached\n" not in bare.stdout:
        return "bare run: the chaining library saw no call %r" % bare.stdout[-200:]
    if bare.returncode != 0 or not bare.stdout.endswith(b"all done\n"):
        return "bare run: exit %d %r" % (bare.returncode, bare.stdout[-200:])
    if (shim.returncode, shim.stdout) != (0, bare.stdout):
        diff = [(a, b) for a, b in zip(bare.stdout.splitlines(), shim.stdout.splitlines()) if a != b]
        return "under the shim: exit %d, first differences %r" % (shim.returncode, diff[:3])
    return None


def main():
    checks = [(mode, lambda m=mode: one_mode(m)) for mode in MODES]
    checks += [("attached", attached), ("semantics", semantics),
               ("chained", lambda: semantics(chain=True))]
    failed = 0
    for name, check in checks:
        problem = check()
        print("%-9s %s" % (name, problem or "ok"))
        failed += problem is not None
    print("%d passed, %d failed" % (len(checks) - failed, failed))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
