#!/usr/bin/env python3
"""make bench: what libreqid.so costs, as ratios to the unshimmed run.

For each loop in build/bench_io (see bench_io.c) it reports
  - wall time per call, unshimmed and shimmed, and their ratio (median of 5
    runs each, alternated, the shimmed one first every other time: the
    order alone biases a run by some 5% on a small VM; machine noise moves
    both sides alike, so read the ratio);
  - extra instructions per call under the shim, counted by valgrind's
    callgrind inside the loop function only (deterministic);
  - heap allocations: the same loop at two lengths must allocate the same
    number of blocks, i.e. none per line or per request.
It never fails on times; it flags instruction counts over the issue's targets.

    python3 tests/bench/bench.py [--quick]

--quick (make bench-quick): 3 timed runs each of a tenth of the calls, and
no heap check; the callgrind counts are the same.
"""
import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BENCH = os.path.join(ROOT, "build", "bench_io")
LIB = os.path.join(ROOT, "build", "libreqid.so")

# The request loop's client is a TCP connection the bench itself connect()s:
# an outbound connection to the shim, whose requests it parses. The first
# request row switches that off (REQID_PROPAGATE=0) to count the server side
# alone; the second counts both sides.
LOOPS = [
    # mode, label, calls for timing, calls for callgrind, calls per iteration, target, env
    ("nonlog", "write() on a non-log fd", 2_000_000, 20_000, 1, 15, {}),
    ("line", "enriched 100-byte line", 300_000, 20_000, 1, 450, {}),
    ("request", "HTTP request: read, log line, write", 20_000, 2_000, 1, 3000,
     {"REQID_PROPAGATE": "0"}),
    ("request", "the same, client side parsed too", 20_000, 2_000, 1, None, {}),
    # reqid audit's mode: a record per line (a stack unwound, one write) to
    # a directory of the run's own (AUDIT_DIR is replaced by it).
    ("line", "enriched line, under reqid audit", 100_000, 2_000, 1, None,
     {"REQID_AUDIT_DIR": "AUDIT_DIR"}),
]


def env_for(shimmed, extra=None, tmp=None):
    env = dict(os.environ)
    env.pop("LD_PRELOAD", None)
    if shimmed:
        env["LD_PRELOAD"] = LIB
        env.update({k: tmp if v == "AUDIT_DIR" else v for k, v in (extra or {}).items()})
    return env


def run_timed(mode, n, shimmed, extra=None):
    with tempfile.TemporaryDirectory() as tmp:
        result = os.path.join(tmp, "result")
        p = subprocess.run([BENCH, mode, str(n), result], stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL, env=env_for(shimmed, extra, tmp))
        if p.returncode != 0:
            sys.exit(f"bench_io {mode} failed")
        with open(result) as f:
            return float(f.read().split()[2])


def callgrind(mode, n, shimmed, extra=None):
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "cg.out")
        cmd = ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}",
               f"--toggle-collect=loop_{mode}", BENCH, mode, str(n), os.devnull]
        subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                       env=env_for(shimmed, extra, tmp), check=True)
        with open(out) as f:
            m = re.search(r"^summary: (\d+)", f.read(), re.M)
        return int(m.group(1))


def heap_blocks(mode, n):
    with tempfile.TemporaryDirectory() as tmp:
        log = os.path.join(tmp, "memcheck.log")
        cmd = ["valgrind", "--tool=memcheck", f"--log-file={log}", BENCH, mode, str(n),
               os.devnull]
        subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                       env=env_for(True), check=True)
        with open(log) as f:
            report = f.read()
    m = re.search(r"total heap usage: ([\d,]+) allocs", report)
    return int(m.group(1).replace(",", ""))


def timed_medians(mode, n, runs, env):
    """Median ns per call, unshimmed and shimmed, of runs alternated runs."""
    base, shim = [], []
    for i in range(runs):
        if i % 2:
            shim.append(run_timed(mode, n, True, env))
        base.append(run_timed(mode, n, False))
        if not i % 2:
            shim.append(run_timed(mode, n, True, env))
    return statistics.median(base), statistics.median(shim)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true",
                    help="fewer, shorter timed runs and no heap check (bench-quick)")
    args = ap.parse_args()
    runs, scale = (3, 10) if args.quick else (5, 1)
    print(f"{'loop':38} {'unshimmed':>10} {'shimmed':>10} {'ratio':>7} "
          f"{'extra instr/call':>17} {'target':>7}")
    over = []
    for mode, label, n_time, n_cg, per_iter, target, env in LOOPS:
        base, shim = timed_medians(mode, n_time // scale, runs, env)
        extra = (callgrind(mode, n_cg, True, env) - callgrind(mode, n_cg, False)) / (n_cg * per_iter)
        flag = ""
        if target is not None and extra > target:
            flag = "  OVER TARGET"
            over.append(label)
        print(f"{label:38} {base:8.1f}ns {shim:8.1f}ns {shim / base:6.2f}x "
              f"{extra:17.1f} {('<= ' + str(target)) if target else '-':>7}{flag}")
    for mode, small, large in () if args.quick else (("line", 100, 5000), ("request", 50, 1000)):
        a, b = heap_blocks(mode, small), heap_blocks(mode, large)
        verdict = "none per iteration" if a == b else f"{(b - a) / (large - small):.2f} per iteration"
        print(f"heap blocks, {mode:8} loop: {a} at N={small}, {b} at N={large}: {verdict}")
        if a != b:
            over.append(f"heap allocations in the {mode} loop")
    if over:
        print("over target: " + "; ".join(over))


if __name__ == "__main__":
    main()
