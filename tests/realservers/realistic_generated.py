#!/usr/bin/env python3
"""realistic_generated.py - realistic.py's rows (nginx, lighttpd, Apache
event and prefork, same URL, keep-alive) with half the requests sending no
X-Request-ID, so the shim makes their ids: realistic.py sends one on every
request, and only the client's own ids are checked there.

A request without one sends `X-Token: <uuid>` instead (nginx's truth log
then holds "-"; its own truth column is $http_x_request_id, so nginx rows
join those requests on their serials alone, as realistic.py does for every
request). Its id is the one its response's X-Request-ID header carries
(a made id: 32 lowercase hex, no two requests the same); the judge then runs
unchanged, with that id as the request's. A made id on another request's
line is a wrong id like any other.

    python3 tests/realservers/realistic_generated.py [--rows nginx-w2,apache] [--seed N]
        [--share 0.5] [--keep]
"""

import argparse
import random
import re
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import realistic  # noqa: E402

MADE_RE = re.compile(r"^[0-9a-f]{32}$")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rows", default="nginx-w2-c16-keepalive,nginx-w2-c16-mixed,"
                    "lighttpd-w1-c16,apache-w2-c16,apache-prefork")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--share", type=float, default=0.5)
    ap.add_argument("--keep", action="store_true")
    a = ap.parse_args(argv)
    rng = random.Random(a.seed)
    made_for = {}  # Req -> True when it sends no X-Request-ID

    plain_raw = realistic.Req.raw

    def raw(self, port, ua):
        data = plain_raw(self, port, ua)
        if self not in made_for:
            made_for[self] = rng.random() < a.share
        if made_for[self]:
            data = data.replace(b"\r\nX-Request-ID: ", b"\r\nX-Token: ")
        return data
    realistic.Req.raw = raw
    realistic.Req.__hash__ = object.__hash__

    def take_made_ids(judge):
        def wrapped(files, reqs):
            seen = set()
            for r in reqs:
                if made_for.get(r) and r.hdr_ids:
                    made = r.hdr_ids[0]
                    if MADE_RE.match(made) and made not in seen:
                        seen.add(made)
                        r.rid = made  # its id from now on, for the judge
            # nginx's truth names the client's X-Request-ID: a request
            # without one shows "-" there; give the truth its made id
            truth = files.get("truth")
            if truth is not None:
                files = dict(files)
                files["truth"] = fill_truth(truth, reqs)
            return judge(files, reqs)
        return wrapped

    def fill_truth(truth, reqs):
        by_port_pos = {(r.port, r.pos + 1): r for r in reqs if r.status is not None}
        out = []
        for line in truth.decode().splitlines():
            f = line.split(" ")
            if len(f) == 6 and f[3] == "-":
                r = by_port_pos.get((int(f[5]), int(f[2])))
                if r is not None:
                    f[3] = r.rid
            out.append(" ".join(f))
        return ("\n".join(out) + "\n").encode() if out else b""

    for name in list(realistic.JUDGES):
        realistic.JUDGES[name] = take_made_ids(realistic.JUDGES[name])
    argv2 = ["--rows", a.rows, "--seed", str(a.seed)] + (["--keep"] if a.keep else [])
    rc = realistic.main(argv2)
    made = sum(1 for v in made_for.values() if v)
    print("requests without an id of their own: %d of %d" % (made, len(made_for)))
    return rc


if __name__ == "__main__":
    sys.exit(main())
