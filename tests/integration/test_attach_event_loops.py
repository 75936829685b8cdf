#!/usr/bin/env python3
"""test_attach_event_loops.py - `reqid attach` to event-loop servers whose
threads are already waiting: ev_threads (two threads on one epoll fd,
test_event_loops.py case 6) started bare, with CONNS keep-alive connections
it accepted before attach and that sent nothing yet. Its threads sit in
epoll waits they began before the GOT was patched, which the shim never
sees return (until its 20 ms idle timeout): right after attach every
pre-opened connection sends a delayed request, back to back from one
thread, so those waits return several ready connections each, served one after the other with no wait in between (a
thread that read request A, which it does not answer yet, then logs
"conn=B readable": A's id there is a wrong one). Then the rest of a random
plan (test_event_loops.make_plan) on new connections, /quit.

Stalled kinds: ev_nginx (one thread, epoll) or poll_loop (one thread,
poll: "poll-" kinds) with STALL_CONNS connections accepted before attach,
attached while a handler stalls in the middle of a batch of several ready
connections it fetched before attach: asleep in a write to a full pipe
("write"), on a mutex ("lock"), or running ("spin"). After attach the
thread reads the next connection's request (which it queues, unanswered)
and logs "conn=C readable" for the one after: that request's id there is a
wrong one (see stalled_run).

Each run judges every line written after attach with test_event_loops.judge
(precision 100%: no wrong id, no lost, duplicated or reordered line, every
response right). RUNS runs in one invocation, so that a rate shows; the
table gives lines, tagged, wrong per run and their totals.

    python3 tests/integration/test_attach_event_loops.py [--runs N] [--requests N] [--seed N]
        [--kinds waiting,c11,write,lock,spin,poll-write,poll-spin]

Ends with "N passed, M failed"; exits 1 if any run failed.
"""
import argparse
import collections
import copy
import os
import random
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import harness  # noqa: E402
import test_event_loops as tel  # noqa: E402

RUNS = 12
REQUESTS = 300
CONNS = 24          # connections accepted before attach, all sending at once after
ACCEPT_WAIT = 10.0  # seconds for the server to log every pre-opened connection


class PreopenedLoad(tel.Load):
    """tel.Load whose first len(socks) connections are the given sockets,
    opened before attach; the barrier starts them together."""

    def __init__(self, port, socks):
        super().__init__(port, len(socks))
        self.socks = socks

    def send_first(self, plan):
        """The first request of every pre-opened connection, back to back
        from one thread: within the server's idle timeout after attach."""
        heads = [conn[0].raw(self.port) for conn in plan[:len(self.socks)]]
        for sock, head in zip(self.socks, heads):
            sock.sendall(head)

    def run_conn(self, item):
        index, reqs = item
        if index >= len(self.socks):
            return super().run_conn(item)
        sock = self.socks[index]
        try:
            buf = b""
            for k, r in enumerate(reqs):
                data = b"" if k == 0 else r.raw(self.port)  # the first went out already
                cut = len(data) if r.split is None else min(len(data) - 1,
                                                            max(1, int(len(data) * r.split)))
                sock.sendall(data[:cut])
                sock.sendall(data[cut:])
                r.response, buf = harness._recv_response(sock, buf)
                if buf:
                    raise harness.Failure("extra bytes after response: %r" % buf[:80])
                plain, r.response_id = harness.split_added_header(r.response)
                if plain != r.expected_response():
                    r.error = "response altered: %r" % r.response
            if reqs[-1].close and sock.recv(65536):
                reqs[-1].error = "bytes after Connection: close"
        except (OSError, harness.Failure) as e:
            for r in reqs:
                if r.response is None and r.error is None:
                    r.error = "%s: %s" % (type(e).__name__, e)


def accepted_lines(log_path):
    try:
        return log_path.read_bytes().count(b" accepted fd=")
    except OSError:
        return 0


def attach(srv, log_path):
    """reqid attach to the running server (no REQID_ settings of the test's
    own environment); the log's size then, where the attached part starts."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("REQID_") or k == "REQID_LIB"}
    r = subprocess.run([str(harness.REQID), "attach", str(srv.proc.pid)], env=env,
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=60)
    before = log_path.stat().st_size
    if r.returncode != 0:
        raise harness.Failure("reqid attach exited %d: %r" % (r.returncode, r.stdout[-300:]))
    return before


def quit_and_judge(srv, case, reqs, log_path, before, problems):
    """Stops the server and judges its lines written since before: the
    counts, with every problem appended to problems."""
    tel.send_quit(srv.port)
    rc = srv.wait(30.0)
    if rc != 0:
        problems.append("server exited with status %s" % rc)
    text = log_path.read_bytes()[before:].decode("utf-8")
    counts, judged, examples = tel.judge(text, case, reqs)
    problems += judged + ["wrong: " + e for e in examples]
    if counts["wrong"]:
        problems.append("%d lines carry a wrong id" % counts["wrong"])
    return counts


def failed_requests(reqs, problems):
    bad = [r for r in reqs if r.error or r.response is None]
    if bad:
        problems.append("%d/%d requests failed or got altered responses (e.g. %s: %s)"
                        % (len(bad), len(reqs), bad[0].token, bad[0].error or "no response"))


def c11_run(case, seed, n_requests, fifo):
    """ev_c11_threads with EVC11_START_AFTER: attached while it has one
    thread, its two threads started by thrd_create (no pthread_create hook
    sees them) once attach returned; then a plan on new connections."""
    plan = tel.make_plan(random.Random(seed), case, n_requests)
    reqs = [r for conn in plan for r in conn]
    log_path = harness.LOG_DIR / "attach_evloop_c11.log"
    problems, srv = [], None
    counts = collections.Counter()
    try:
        srv = harness.Server(case.server, log_path, shim=False,
                             env=dict(case.env, EVC11_START_AFTER=fifo))
        before = attach(srv, log_path)
        with open(fifo, "wb") as go:
            go.write(b"g")
        tel.Load(srv.port, case.concurrency).run(plan)
        counts = quit_and_judge(srv, case, reqs, log_path, before, problems)
    except (harness.Failure, OSError, subprocess.SubprocessError, UnicodeDecodeError) as e:
        problems.append("%s: %s" % (type(e).__name__, e))
    finally:
        if srv:
            srv.kill()
    failed_requests(reqs, problems)
    return counts, problems


STALL_CONNS = 10  # connections opened before attach in a stalled run
STALL_PAGE = 4096  # what one stall=1 writes to the full fifo


def main_thread_in(pid, calls, timeout=10.0):
    """Waits until the process's main thread sleeps in one of the system
    calls numbered calls (its /proc syscall file); whether it did."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            nr = Path("/proc/%d/syscall" % pid).read_text().split()[0]
        except (OSError, IndexError):
            return False
        if nr in calls:
            return True
        time.sleep(0.005)
    return False


def log_has(log_path, needle, timeout=10.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if needle in log_path.read_bytes():
            return True
        time.sleep(0.005)
    return False


STALLS = {"write": 1, "lock": 2, "spin": 3}
# what /proc/PID/syscall begins with while S's handler stalls that way
STALLED_IN = {1: {"1"}, 2: {"202"}, 3: {"running"}}


def stalled_run(case, seed, n_requests, how, tmp):
    """ev_nginx (one thread, epoll) or poll_loop (one thread, poll) attached
    while a handler stalls in the middle of a batch: asleep in write() to a
    full pipe (how 1), on a mutex (how 2), or running (how 3, until
    SIGUSR1).
    STALL_CONNS connections accepted before attach; Z's first request
    stalls (stall=1) while S's and the others' arrive, so that the next
    wait returns S, B1, B2 ... together; S's handler stalls (stall=how)
    after its read, attach comes then; after it S queues its timer and the
    thread serves B1 (read, queue), B2 ... from the batch the shim never
    saw: B2's "readable" line with B1's id is a wrong one."""
    rng = random.Random(seed)
    plan = tel.make_plan(rng, case, n_requests)
    while len(plan) < STALL_CONNS:
        plan += tel.make_plan(rng, case, STALL_CONNS)
    for k, conn in enumerate(plan[:STALL_CONNS]):
        r = conn[0]
        r.split, r.method, r.body = None, "GET", b""
        if k == 0:
            r.shape, r.path = "plain", "/api/v1/items?v=2&t=%s&stall=1" % r.token
        else:
            r.shape = "tick"
            r.path = "/api/v1/items?v=2&t=%s&delay=%d%s" % (
                r.token, rng.randint(4, 9), "&stall=%d" % how if k == 1 else "")
    reqs = [r for conn in plan for r in conn]
    stalled_case = copy.copy(case)
    stalled_case.shapes = dict(case.shapes, **{"before attach": "", "stalled": "queue tick fire fsent"})
    log_path = harness.LOG_DIR / "attach_evloop_stalled.log"
    fifo, lock_fifo = os.path.join(tmp, "stall"), os.path.join(tmp, "stall-lock")
    for path in (fifo, lock_fifo):
        if os.path.exists(path):
            os.unlink(path)
        os.mkfifo(path)
    env = dict(case.env, EV_STALL_FIFO=fifo)
    if how == 2:
        env["EV_STALL_LOCK_FIFO"] = lock_fifo
    problems, socks, srv, drain = [], [], None, None
    counts = collections.Counter()
    try:
        srv = harness.Server(case.server, log_path, shim=False, env=env)
        for _ in range(STALL_CONNS):
            socks.append(harness.connect(srv.port, 20.0))
        deadline = time.monotonic() + ACCEPT_WAIT
        while accepted_lines(log_path) < STALL_CONNS and time.monotonic() < deadline:
            time.sleep(0.01)
        if accepted_lines(log_path) < STALL_CONNS:
            raise harness.Failure("the server logged %d of %d connections"
                                  % (accepted_lines(log_path), STALL_CONNS))
        load = PreopenedLoad(srv.port, socks)
        load.send_first(plan)  # Z first: it stalls while the others arrive
        drain = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)
        got = 0
        deadline = time.monotonic() + 10.0
        while got < STALL_PAGE and time.monotonic() < deadline:  # Z goes on
            try:
                got += len(os.read(drain, STALL_PAGE - got))
            except BlockingIOError:
                time.sleep(0.001)
        s_token = plan[1][0].token
        if not log_has(log_path, ("token=%s got" % s_token).encode()):
            raise harness.Failure("S's request was not read")
        if not main_thread_in(srv.proc.pid, STALLED_IN[how]):
            raise harness.Failure("S's handler is not stalled (%s)" % sorted(STALLED_IN[how]))
        before = attach(srv, log_path)  # no line comes while S's handler sleeps
        # what is judged: Z's lines all came before attach, S's first
        plan[0][0].shape, plan[1][0].shape = "before attach", "stalled"
        if how == 1:
            while True:
                try:
                    if not os.read(drain, 65536):
                        break
                except BlockingIOError:
                    break
        elif how == 2:
            with open(lock_fifo, "wb") as go:
                go.write(b"g")
        else:
            os.kill(srv.proc.pid, signal.SIGUSR1)
        load.run(plan)
        counts = quit_and_judge(srv, stalled_case, reqs, log_path, before, problems)
    except (harness.Failure, OSError, subprocess.SubprocessError, UnicodeDecodeError) as e:
        problems.append("%s: %s" % (type(e).__name__, e))
    finally:
        if drain is not None:
            os.close(drain)
        for s in socks:
            s.close()
        if srv:
            srv.kill()
    failed_requests(reqs, problems)
    return counts, problems


def one_run(case, seed, n_requests):
    rng = random.Random(seed)
    plan = tel.make_plan(rng, case, n_requests)
    while len(plan) < CONNS:
        plan += tel.make_plan(rng, case, CONNS)
    # the pre-opened connections' first requests: delayed (queued, answered
    # by a timer), so the thread that read one moves to the next ready
    # connection without writing
    for conn in plan[:CONNS]:
        r = conn[0]
        r.shape, r.split, r.method, r.body = "tick", None, "GET", b""
        r.path = "/api/v1/items?v=2&t=%s&delay=%d" % (r.token, rng.randint(4, 9))
    reqs = [r for conn in plan for r in conn]
    log_path = harness.LOG_DIR / "attach_evloop_threads.log"
    problems, socks, srv = [], [], None
    counts = collections.Counter()
    try:
        srv = harness.Server(case.server, log_path, shim=False, env=case.env)
        for _ in range(CONNS):
            socks.append(harness.connect(srv.port, 20.0))
        deadline = time.monotonic() + ACCEPT_WAIT
        while accepted_lines(log_path) < CONNS and time.monotonic() < deadline:
            time.sleep(0.01)
        if accepted_lines(log_path) < CONNS:
            raise harness.Failure("the server logged %d of %d connections"
                                  % (accepted_lines(log_path), CONNS))
        before = attach(srv, log_path)
        load = PreopenedLoad(srv.port, socks)
        load.send_first(plan)
        load.run(plan)
        counts = quit_and_judge(srv, case, reqs, log_path, before, problems)
    except (harness.Failure, OSError, subprocess.SubprocessError, UnicodeDecodeError) as e:
        problems.append("%s: %s" % (type(e).__name__, e))
    finally:
        for s in socks:
            s.close()
        if srv:
            srv.kill()
    failed_requests(reqs, problems)
    wrong_header = [r for r in reqs if r.response_id not in (None, r.rid)]
    if wrong_header:
        problems.append("%d responses carry another request's id" % len(wrong_header))
    return counts, problems


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=int, default=RUNS)
    ap.add_argument("--requests", type=int, default=REQUESTS)
    ap.add_argument("--seed", type=int, default=None, help="seed of the first run")
    ap.add_argument("--kinds", default="waiting,c11,write,lock,spin,poll-write,poll-spin",
                    help="which kinds of run, comma-separated")
    a = ap.parse_args()
    case = next(c for c in tel.CASES if c.key == "threads")
    nginx_case = next(c for c in tel.CASES if c.key == "nginx")
    poll_case = next(c for c in tel.CASES if c.key == "poll")
    first = a.seed if a.seed is not None else random.randrange(1 << 30)
    total = collections.Counter()
    failed = 0
    print("%-7s %-4s %-11s %6s %6s %5s %7s  %s" % ("kind", "run", "seed", "lines", "tagged",
                                                   "wrong", "recall", "result"))
    with tempfile.TemporaryDirectory(prefix="reqid-attach-c11-") as tmp:
        # built as ev_threads, so that its lines name the server the case expects
        subprocess.run(["cc", "-O2", "-g", "-Wall", "-Wextra", "-Werror", "-pthread", "-o",
                        os.path.join(tmp, case.server),
                        str(harness.ROOT / "tests" / "servers" / "ev_c11_threads.c")], check=True)
        runs = [(kind, i) for kind in a.kinds.split(",") for i in range(a.runs)]
        for kind, i in runs:
            seed = first + i
            if kind == "waiting":
                c, problems = one_run(case, seed, a.requests)
            elif kind.split("-")[-1] in STALLS:
                loop = poll_case if kind.startswith("poll-") else nginx_case
                c, problems = stalled_run(loop, seed, a.requests, STALLS[kind.split("-")[-1]],
                                          tmp)
            else:
                fifo = os.path.join(tmp, "go%d" % i)
                os.mkfifo(fifo)
                server_dir, harness.SERVER_DIR = harness.SERVER_DIR, Path(tmp)
                try:
                    c, problems = c11_run(case, seed, a.requests, fifo)
                finally:
                    harness.SERVER_DIR = server_dir
            for k in ("lines", "tagged", "wrong", "token_lines", "correct"):
                total[k] += c[k]
            failed += bool(problems)
            recall = ("%.1f%%" % (100.0 * c["correct"] / c["token_lines"])
                      if c["token_lines"] else "-")
            print("%-7s %-4d %-11d %6d %6d %5d %7s  %s" % (
                kind, i, seed, c["lines"], c["tagged"], c["wrong"], recall,
                "FAIL" if problems else "pass"), flush=True)
            for p in problems[:12]:
                print("     problem: %s" % p)
    print("total: %d runs, %d lines, %d tagged, %d wrong, %d of %d request lines with their id;"
          " precision %s, recall %s"
          % (len(runs), total["lines"], total["tagged"], total["wrong"], total["correct"],
             total["token_lines"],
             "%.2f%%" % (100.0 * (total["tagged"] - total["wrong"]) / total["tagged"])
             if total["tagged"] else "-",
             "%.2f%%" % (100.0 * total["correct"] / total["token_lines"])
             if total["token_lines"] else "-"))
    print("%d passed, %d failed" % (len(runs) - failed, failed))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
