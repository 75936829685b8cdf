"""oracle.py - judges the logs and responses of one real-server run.

Pure functions over texts and request objects; starts no process. The rule
is the project's: a wrong id is worse than no id.

- Every line must be a valid json-format line of the shim (harness.LineFormat).
- A line whose text contains a request's token is "matched" to that request.
  If it carries an id, the id must be that request's: the inbound one
  (X-Request-ID: cid-<token>), or for a request without one, a generated id
  (32 lowercase hex) that every line of that request carries and that no
  other request carries (in its lines or its response header); with a
  mismatch the majority id wins and the others are wrong.
- precision = correct / tagged, recall = correct / matched, per log.
- A line with two different tokens (two lines run together) or a token of
  no request is a problem; so is a line count that differs from the count
  the server is known to write for a request (lost or duplicated lines).
- Lines without a token that carry an id are listed as "unmatched tagged"
  for inspection, not counted as wrong.
- The response header X-Request-ID is checked against the same ids and
  reported as coverage (responses carrying the right id / responses); a
  generated id in the header is the request's own when no other response
  carries it, so lines of other requests carrying it are wrong. A request
  whose lines and response header carry two different generated ids is a
  problem (one of them is a wrong id).
"""

import collections
import re
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "integration"))
import harness  # noqa: E402

GEN_RE = harness.GEN_RE
ID_CHARS_RE = harness.ID_CHARS_RE
GENERATED = harness.GENERATED


def _lines(data):
    """(lines, problems) of one file's bytes."""
    problems = []
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        problems.append("not valid UTF-8 (%s)" % e)
        text = data.decode("utf-8", "replace")
    if text and not text.endswith("\n"):
        problems.append("does not end with a newline (partial last line)")
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    return lines, problems


def check_run(files, sources, reqs, token_re, expected_count=None, max_examples=8,
              fmt="json"):
    """files: {name: bytes}; sources: [(label, name, classifier or None)];
    reqs: requests with .token .expected .status and, once answered,
    .status_got and .hdr_ids (values of X-Request-ID in the response);
    token_re: compiled regex matching a token of this run;
    expected_count(label, req) -> int or None; fmt: "json", or "plain" for
    a run without the shim.

    Returns {"rows": {label: Counter + precision/recall}, "problems": [...],
    "wrong_examples": [...], "unmatched_examples": {label: [...]},
    "header": Counter, "header_examples": [...]}."""
    by_token = {r.token: r for r in reqs}
    fmt = harness.LineFormat(fmt)
    rows = {label: collections.Counter() for label, _, _ in sources}
    problems, wrong_examples = [], []
    unmatched = {label: [] for label, _, _ in sources}
    matched = []       # (label, name, lineno, token, rid, raw)
    untok_tagged = []  # (label, name, lineno, rid, raw)

    for name in dict.fromkeys(n for _, n, _ in sources):
        srcs = [(label, cl) for label, n, cl in sources if n == name]
        lines, fproblems = _lines(files.get(name, b""))
        problems += ["%s: %s" % (name, p) for p in fproblems]
        for no, line in enumerate(lines, 1):
            try:
                rid, msg = fmt.split(line)
                if rid is not None and not ID_CHARS_RE.match(rid):
                    raise ValueError("id %r is not a valid id" % rid)
            except ValueError as e:
                label = srcs[0][0]
                rows[label]["lines"] += 1
                rows[label]["malformed"] += 1
                if rows[label]["malformed"] <= 3:
                    problems.append("%s line %d malformed (%s): %r" % (name, no, e, line[:240]))
                continue
            label = next((lb for lb, cl in srcs if cl is None or cl(msg)), srcs[0][0])
            row = rows[label]
            row["lines"] += 1
            toks = set(token_re.findall(msg))
            if len(toks) > 1:
                row["merged"] += 1
                problems.append("%s line %d has the tokens of %d requests (lines run "
                                "together?): %r" % (name, no, len(toks), line[:300]))
                continue
            if toks:
                tok = toks.pop()
                if tok not in by_token:
                    row["unknown_token"] += 1
                    problems.append("%s line %d: token %s of no request: %r"
                                    % (name, no, tok, line[:240]))
                    continue
                matched.append((label, name, no, tok, rid, line))
            elif rid is not None:
                untok_tagged.append((label, name, no, rid, line))

    # which id belongs to which request: inbound ids are known; a generated
    # id belongs to the request whose response header alone carries it, or
    # else to the request whose lines alone carry it (majority of its lines)
    log_owners, hdr_owners = collections.defaultdict(set), collections.defaultdict(set)
    for _, _, _, tok, rid, _ in matched:
        if rid is not None:
            log_owners[rid].add(tok)
    for r in reqs:
        for h in getattr(r, "hdr_ids", None) or ():
            hdr_owners[h].add(r.token)
    owners = collections.defaultdict(set)
    for d in (log_owners, hdr_owners):
        for rid, toks in d.items():
            owners[rid] |= toks
    supplied = {r.expected for r in reqs if r.expected is not GENERATED}
    token_id, disagree = {}, []
    seen = collections.defaultdict(collections.Counter)
    first = {}
    for i, (_, _, _, tok, rid, _) in enumerate(matched):
        if rid is not None:
            seen[tok][rid] += 1
            first.setdefault((tok, rid), i)
    for r in reqs:
        if r.expected is not GENERATED:
            token_id[r.token] = r.expected
            continue
        hs = list(getattr(r, "hdr_ids", None) or ())
        h = hs[0] if (len(hs) == 1 and GEN_RE.match(hs[0]) and hdr_owners[hs[0]] == {r.token}
                      and hs[0] not in supplied) else None
        counts = seen.get(r.token)
        best = max(counts, key=lambda k: (counts[k], -first[(r.token, k)])) if counts else None
        best_unique = (best is not None and GEN_RE.match(best) is not None
                       and log_owners[best] == {r.token} and hdr_owners[best] <= {r.token}
                       and best not in supplied)
        if h is not None and (best is None or best == h or not best_unique):
            token_id[r.token] = h
        elif best_unique:
            token_id[r.token] = best
            if h is not None:  # one of the two is a wrong id; which, we cannot tell
                disagree.append("token %s: its lines carry %s, its response header %s"
                                % (r.token, best, h))

    per_token = collections.defaultdict(collections.Counter)  # (label) -> token -> n
    for label, name, no, tok, rid, line in matched:
        row = rows[label]
        row["matched"] += 1
        per_token[label][tok] += 1
        if rid is None:
            continue
        row["tagged"] += 1
        want = token_id.get(tok)
        if rid == want:
            row["correct"] += 1
            continue
        row["wrong"] += 1
        r = by_token[tok]
        if r.expected is not GENERATED:
            why = "expected %r" % r.expected
        elif owners[rid] - {tok}:
            why = "generated id also on request(s) %s" % sorted(owners[rid] - {tok})[:3]
        elif not GEN_RE.match(rid):
            why = "generated id expected, this is not 32 lowercase hex"
        else:
            why = "another id than the other lines of this request (%s)" % want
        if len(wrong_examples) < max_examples:
            wrong_examples.append("%s line %d, token %s: id %r, %s: %s"
                                  % (name, no, tok, rid, why, line[:300]))

    id_owner = {}  # id -> the request it belongs to, as judged above
    for rid, toks in owners.items():
        if len(toks) == 1:
            id_owner[rid] = next(iter(toks))
    id_owner.update((rid, tok) for tok, rid in token_id.items())
    for label, name, no, rid, line in untok_tagged:
        rows[label]["untok_tagged"] += 1
        tok = id_owner.get(rid)
        if tok is None and rid.startswith("cid-") and rid[4:] in by_token:
            tok = rid[4:]
        if tok is None:
            rows[label]["untok_unknown_id"] += 1
        if len(unmatched[label]) < 3:
            unmatched[label].append("%s line %d (id of %s): %s" % (
                name, no, ("request " + tok) if tok else "no request", line[:240]))

    # lost and duplicated lines, where the server's count is known
    if expected_count is not None:
        for label, _, _ in sources:
            for r in reqs:
                if getattr(r, "status_got", None) is None:
                    continue  # failed requests are reported on their own
                want = expected_count(label, r)
                if want is None:
                    continue
                got = per_token[label].get(r.token, 0)
                if got < want:
                    rows[label]["lost"] += want - got
                elif got > want:
                    rows[label]["extra"] += got - want
                if got != want and sum(1 for p in problems if "lines for token" in p) < 6:
                    problems.append("%s: %d lines for token %s, expected %d"
                                    % (label, got, r.token, want))

    for label, row in rows.items():
        row_p = row["correct"] / row["tagged"] if row["tagged"] else None
        row_r = row["correct"] / row["matched"] if row["matched"] else None
        row["precision"], row["recall"] = row_p, row_r
        if row["wrong"]:
            problems.append("%s: %d lines carry a wrong id" % (label, row["wrong"]))
        for key, what in (("malformed", "malformed lines"), ("merged", "lines with two tokens"),
                          ("unknown_token", "lines with a token of no request"),
                          ("lost", "lost lines"), ("extra", "duplicated lines")):
            if row[key]:
                problems.append("%s: %d %s" % (label, row[key], what))

    # the id in the response header
    hdr = collections.Counter()
    hdr_examples = []
    hdr_count = collections.Counter(h for r in reqs for h in (getattr(r, "hdr_ids", None) or ()))
    for r in reqs:
        if getattr(r, "status_got", None) is None:
            continue
        hdr["responses"] += 1
        ids = list(getattr(r, "hdr_ids", None) or ())
        if not ids:
            hdr["missing"] += 1
            continue
        want = token_id.get(r.token)
        if len(ids) > 1:
            ok, why = False, "%d X-Request-ID headers" % len(ids)
        elif r.expected is not GENERATED:
            ok, why = ids[0] == r.expected, "expected %r" % r.expected
        elif not GEN_RE.match(ids[0]):
            ok, why = False, "generated id expected"
        elif hdr_count[ids[0]] > 1:
            ok, why = False, "the response of another request has it too"
        elif want != ids[0]:
            ok, why = False, "the request's log lines carry %s" % want
        else:
            ok, why = True, ""
        if ok:
            hdr["ok"] += 1
        else:
            hdr["wrong"] += 1
            if len(hdr_examples) < max_examples:
                hdr_examples.append("token %s: X-Request-ID %s: %s" % (r.token, ids, why))
    hdr["coverage"] = hdr["ok"] / hdr["responses"] if hdr["responses"] else None
    if disagree:
        problems.append("%d requests have one generated id in their lines and another in "
                        "their response header (one of them is wrong), e.g. %s"
                        % (len(disagree), disagree[0]))
    return {"rows": rows, "problems": problems, "wrong_examples": wrong_examples,
            "unmatched_examples": unmatched, "header": hdr, "header_examples": hdr_examples}
