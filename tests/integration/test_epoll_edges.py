#!/usr/bin/env python3
"""test_epoll_edges.py - edge-triggered epoll loops under the shim: an event
the kernel reported once must reach the program wherever it looks next
(tests/servers/epoll_edges.c: polling the epoll fd, with poll or with
_FORTIFY_SOURCE's __poll_chk, a nested instance, threads taking turns, a
descriptor moved to another number), and must not reach it once the program
deleted or closed its descriptor between two waits (a loop that frees a
connection's object there would use it after free), also while a forked
helper holds a copy of the file (the kernel then keeps the registration), nor be
taken for an event of another instance that had the loop's epoll number
before (replaced by dup2, dup3, F_DUPFD or a new instance on it). Each runs bare and
under the shim; both must exit 0 well within the program's own timeouts,
so a hang fails the run.

    python3 tests/integration/test_epoll_edges.py
"""
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PROG = ROOT / "build" / "servers" / "epoll_edges"
LIB = Path(os.environ.get("REQID_LIB", ROOT / "build" / "libreqid.so"))
MODES = ["poll-epfd", "poll-epfd-fortified", "nested", "leader-follower", "moved",
         "closed-deleted", "closed", "closed-forked",
         "replaced-dup2", "replaced-dup3", "replaced-dupfd", "replaced-create"]


def run(mode, shimmed):
    env = {k: v for k, v in os.environ.items() if k != "LD_PRELOAD"}
    if shimmed:
        env["LD_PRELOAD"] = str(LIB)
    p = subprocess.run([str(PROG), mode], env=env, capture_output=True, text=True,
                       timeout=30)
    return p.returncode, (p.stdout + p.stderr).strip()


def main():
    failed = 0
    for mode in MODES:
        for shimmed in (False, True):
            rc, out = run(mode, shimmed)
            ok = rc == 0
            failed += not ok
            print("%-20s %-5s %s%s" % (mode, "shim" if shimmed else "bare",
                                       "pass" if ok else "FAIL (exit %d)" % rc,
                                       "" if ok else ": " + out))
    print("%d passed, %d failed" % (2 * len(MODES) - failed, failed))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
