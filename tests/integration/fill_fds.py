#!/usr/bin/env python3
"""fill_fds.py - runs a command with every descriptor from 3 below N taken
(copies of /dev/null, kept open across exec), so that what the command
opens next (its listening socket, the connections it accepts) is numbered
N and up: run_all.py's high-descriptor runs. Raises the soft
RLIMIT_NOFILE to the hard limit first. Never closes or replaces a
descriptor that is already open, but for the harness's ready pipe
(`--ready-fd K`, which the server closes after its handshake, freeing K):
it moves to N, the argument says so, and K is taken like the others.

    fill_fds.py N CMD ARGS...
"""
import fcntl
import os
import resource
import sys


def main():
    first_free = int(sys.argv[1])
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard <= first_free + 1024:
        sys.exit("fill_fds: RLIMIT_NOFILE's hard limit %d leaves no room above %d"
                 % (hard, first_free))
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    args = sys.argv[2:]
    if "--ready-fd" in args:
        k = args.index("--ready-fd") + 1
        ready = int(args[k])
        args[k] = str(fcntl.fcntl(ready, fcntl.F_DUPFD, first_free))
        os.close(ready)
    null = os.open(os.devnull, os.O_RDONLY)
    for fd in range(3, first_free):
        try:
            os.fstat(fd)
        except OSError:
            os.dup2(null, fd, inheritable=True)
    if null >= first_free:
        os.close(null)
    else:
        os.set_inheritable(null, True)  # one of the taken numbers itself
    os.execvp(args[0], args)


if __name__ == "__main__":
    main()
