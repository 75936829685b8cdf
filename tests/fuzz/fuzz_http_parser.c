/*
 * fuzz_http_parser.c - libFuzzer target for the HTTP request-stream parser.
 *
 * The first input byte picks how the rest is cut into reads. Checks what
 * must hold for any bytes: feeding whole or in pieces reports the same
 * requests, header blocks and final id, also when the text of a parser
 * between heads is overwritten before each piece (a connection entry keeps
 * only the state then); every reported id is a valid one;
 * nothing reads or writes out of bounds (ASan; every call is given a buffer
 * of exactly its length, so a read past a piece's end is caught too). Never
 * prints on success. A PROXY protocol header found at their start is
 * whole within them, and the HTTP/2 preface is never taken for requests.
 *
 * The same bytes also go through a pausing parser (the one client_output.c
 * drives over what an application writes), fed the way the shim feeds it:
 * again and again from wherever each call stopped. Its last byte L chooses
 * the cuts: L & 7 cut points, read as 16-bit values from the 2 * (L & 7)
 * bytes before it (none: cuts every `cut` bytes, as above); bit 3 of L says
 * whether headers were "added" where a partial write ended at a stop. The
 * bytes of this spec stay part of the stream. Checks that
 *  - whole and in pieces it stops at the same absolute offsets with the same
 *    seen masks, and ends in the same state (stopped or not, and every
 *    field that carries meaning);
 *  - every stop is at a CR or LF right after an LF, is reported with fewer
 *    bytes consumed than offered, and never twice at one place; a call that
 *    does not stop consumes everything;
 *  - it reports the same requests, header blocks, final id and not_http /
 *    desync as the plain parser, and stops once per header block (once more
 *    if the stream ends at a stop);
 *  - http_parser_plan and http_parser_advance, as client_output.c uses
 *    them: a copy planned over all the bytes (in two iovecs) ends in the
 *    same state as the parser advanced over a prefix and then planned over
 *    the rest, and each plan reports exactly the
 *    stops still ahead (not the one headers were added at).
 * A failure prints which property broke to stderr and aborts.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>

#include "config.h"
#include "http_parser.h"
#include "request_id.h"

struct totals {
	uint32_t started, completed;
	bool not_http, desync;
	uint8_t last_id_len;
	char last_id[REQUEST_ID_MAX];
	/* The rest of the last head's report. */
	uint8_t last_line_len;
	char last_line[REQUEST_LINE_MAX];
	bool last_trace_valid, last_version_in_value;
	struct traceparent last_trace;
	uint16_t last_tracestate_len;
	char last_tracestate[TRACESTATE_MAX];
	uint32_t version_in_body; /* feeds that reported one */
	/* The parser's request line right after it reported not_http
	 * (conn_table's lost_not_raw reads it then): none if none began. */
	uint8_t failed_line_len;
	char failed_line[REQUEST_LINE_MAX];
};

static const char *no_env(const char *name)
{
	(void)name;
	return NULL;
}

static void violated(const char *what, size_t at)
{
	fprintf(stderr, "fuzz_http_parser: property violated: %s (offset %zu)\n", what, at);
	abort();
}

static void account(const struct http_feed_result *r, struct totals *t)
{
	t->started += r->requests_started;
	t->completed += r->headers_completed;
	t->not_http |= r->not_http;
	t->desync |= r->desync;
	if (r->headers_completed) {
		if (r->id_len && !request_id_is_valid(r->id, r->id_len))
			abort();
		t->last_id_len = r->id_len;
		memcpy(t->last_id, r->id, r->id_len);
		t->last_line_len = r->line_len;
		memcpy(t->last_line, r->line, r->line_len);
		t->last_trace_valid = r->trace_valid;
		if (r->trace_valid)
			t->last_trace = r->trace;
		t->last_tracestate_len = r->tracestate_len;
		memcpy(t->last_tracestate, r->tracestate, r->tracestate_len);
		t->last_version_in_value = r->version_in_value;
	}
	t->version_in_body += r->version_in_body;
	if (r->headers_completed > r->requests_started + 1)
		abort();
}

/* http_parser_feed on a copy of d[0, n) in a buffer of its own. */
static size_t feed_copy(struct http_parser *p, const uint8_t *d, size_t n,
			struct http_feed_result *r)
{
	char *own = malloc(n ? n : 1);
	if (!own)
		abort();
	memcpy(own, d, n);
	size_t used = http_parser_feed(p, own, n, r);
	free(own);
	return used;
}

static void feed(struct http_parser *p, const uint8_t *d, size_t n, struct totals *t)
{
	struct http_feed_result r;
	/* A parser that does not pause consumes everything it is given. */
	if (feed_copy(p, d, n, &r) != n)
		violated("plain parser consumed less than offered", n);
	account(&r, t);
	if (r.not_http) {
		t->failed_line_len = p->line_len;
		memcpy(t->failed_line, p->request_line,
		       p->line_len < REQUEST_LINE_MAX ? p->line_len : REQUEST_LINE_MAX);
	}
}

/* ---- pausing mode -------------------------------------------------------- */

/* What a writer driving a pausing parser saw. */
struct pauses {
	size_t count;
	size_t *at;      /* absolute offsets of the stops */
	uint32_t *seen;  /* the seen mask reported at each */
	struct totals t;
};

static const uint8_t *g_data; /* the whole stream, for offset checks */

static void note_pause(struct pauses *ps, size_t at, uint32_t seen, size_t size)
{
	if (at >= size)
		violated("stop past the end of the stream", at);
	if (g_data[at] != '\r' && g_data[at] != '\n')
		violated("stop not at a CR or LF", at);
	if (at == 0 || g_data[at - 1] != '\n')
		violated("stop not right after an LF", at);
	if (ps->count && ps->at[ps->count - 1] >= at)
		violated("stop reported twice at one place (or going back)", at);
	ps->at[ps->count] = at;
	ps->seen[ps->count] = seen;
	ps->count++;
}

/* Feeds stream[base, base+len) as client_output does: from wherever each
 * call stopped until the piece is consumed. */
static void feed_pausing(struct http_parser *p, size_t base, size_t len, size_t size,
			 struct pauses *ps)
{
	size_t off = 0;
	while (off < len) {
		struct http_feed_result r;
		size_t n = feed_copy(p, g_data + base + off, len - off, &r);
		account(&r, &ps->t);
		if (r.at_head_end) {
			if (n >= len - off)
				violated("stop reported with all bytes consumed", base + off + n);
			note_pause(ps, base + off + n, r.seen, size);
		} else if (n != len - off) {
			violated("feed returned early without a stop", base + off + n);
		}
		off += n;
	}
}

static bool same_pauses(const struct pauses *a, size_t ai, const struct pauses *b, size_t bi,
			size_t shift)
{
	if (a->count - ai != b->count - bi)
		return false;
	for (size_t k = 0; k < b->count - bi; k++)
		if (a->at[ai + k] != b->at[bi + k] + shift || a->seen[ai + k] != b->seen[bi + k])
			return false;
	return true;
}

/* The fields that carry meaning are equal (the buffers up to their
 * lengths; struct padding and bytes past a length are not compared). */
static bool same_state(const struct http_parser *x, const struct http_parser *y)
{
#define EQ(f) (x->f == y->f)
	if (!(EQ(matcher) && EQ(state) && EQ(after_lf) && EQ(in_first_line) && EQ(chunked) &&
	      EQ(has_length) && EQ(id_tainted) && EQ(connect) && EQ(capture) && EQ(value_len) &&
	      EQ(value_overflow) && EQ(best_rank) && EQ(best_len) && EQ(line_len) &&
	      EQ(traceparent_count) && EQ(traceparent_valid) && EQ(pause_at_heads) &&
	      EQ(paused) && EQ(tracestate_overflow) && EQ(tracestate_line_empty) &&
	      EQ(tracestate_len) && EQ(token_len) && EQ(name_match) && EQ(seen) &&
	      EQ(remaining) && EQ(content_length) && EQ(version_seen)))
		return false;
#undef EQ
	size_t vl = x->value_len < sizeof(x->value) ? x->value_len : sizeof(x->value);
	size_t bl = x->best_len < sizeof(x->best) ? x->best_len : sizeof(x->best);
	size_t tl = x->tracestate_len < sizeof(x->tracestate) ? x->tracestate_len
							      : sizeof(x->tracestate);
	if (memcmp(x->value, y->value, vl) || memcmp(x->best, y->best, bl) ||
	    memcmp(x->request_line, y->request_line, x->line_len) ||
	    memcmp(x->tracestate, y->tracestate, tl))
		return false;
	if (x->traceparent_valid && memcmp(&x->traceparent, &y->traceparent, sizeof(x->traceparent)))
		return false;
	return true;
}

#define CUTS_MAX 7

static int cmp_size(const void *a, const void *b)
{
	size_t x = *(const size_t *)a, y = *(const size_t *)b;
	return x < y ? -1 : x > y;
}

static void check_pausing(const struct header_matcher *m, const uint8_t *data, size_t size,
			  unsigned cut, const struct totals *plain)
{
	g_data = data;
	/* Stops are at most one per byte. */
	size_t *at = malloc(4 * (size + 1) * sizeof(size_t));
	uint32_t *seen = malloc(4 * (size + 1) * sizeof(uint32_t));
	if (!at || !seen)
		abort();
	struct pauses whole = {0, at, seen, {0}};
	struct pauses pieces = {0, at + (size + 1), seen + (size + 1), {0}};
	struct pauses planned = {0, at + 2 * (size + 1), seen + 2 * (size + 1), {0}};

	/* The cut points the fuzzer chose (see the top of the file). */
	size_t cuts[CUTS_MAX + 1], ncuts = 0;
	bool add_at_stops = false;
	if (size >= 1) {
		uint8_t last = data[size - 1];
		size_t k = last & 7;
		add_at_stops = last & 8;
		if (2 * k + 1 > size)
			k = (size - 1) / 2;
		for (size_t i = 0; i < k; i++) {
			const uint8_t *q = data + size - 1 - 2 * (k - i);
			cuts[ncuts++] = ((size_t)q[0] << 8 | q[1]) % (size + 1);
		}
		qsort(cuts, ncuts, sizeof(cuts[0]), cmp_size);
	}

	/* Whole, then in pieces. */
	struct http_parser pw, pp;
	http_parser_init_pausing(&pw, m);
	http_parser_init_pausing(&pp, m);
	feed_pausing(&pw, 0, size, size, &whole);
	if (ncuts) {
		size_t prev = 0;
		for (size_t i = 0; i <= ncuts; i++) {
			size_t to = i < ncuts ? cuts[i] : size;
			feed_pausing(&pp, prev, to - prev, size, &pieces);
			prev = to;
		}
	} else {
		for (size_t off = 0; off < size; off += cut)
			feed_pausing(&pp, off, size - off < cut ? size - off : cut, size, &pieces);
	}
	if (!same_pauses(&whole, 0, &pieces, 0, 0))
		violated("stops (offsets or seen masks) differ whole vs in pieces",
			 whole.count < pieces.count ? whole.count : pieces.count);
	if (http_parser_stopped(&pw) != http_parser_stopped(&pp) || !same_state(&pw, &pp))
		violated("final state differs whole vs in pieces", size);
	if (whole.t.started != pieces.t.started || whole.t.completed != pieces.t.completed ||
	    whole.t.not_http != pieces.t.not_http || whole.t.desync != pieces.t.desync ||
	    whole.t.last_id_len != pieces.t.last_id_len ||
	    memcmp(whole.t.last_id, pieces.t.last_id, whole.t.last_id_len))
		violated("reports differ whole vs in pieces (pausing)", size);

	/* Pausing changes where calls end, nothing that is reported. */
	if (whole.t.started != plain->started || whole.t.completed != plain->completed ||
	    whole.t.not_http != plain->not_http || whole.t.desync != plain->desync ||
	    (plain->completed && (whole.t.last_id_len != plain->last_id_len ||
				  memcmp(whole.t.last_id, plain->last_id, plain->last_id_len))))
		violated("pausing parser reports differ from the plain parser", size);
	if (whole.count != whole.t.completed + (pw.paused ? 1u : 0u))
		violated("not one stop per header block", size);

	/* plan/advance: partial writes ending at the cut points (or one point
	 * from `cut`); each write planned over two iovecs. */
	size_t takes[CUTS_MAX + 1], ntakes = 0;
	if (ncuts)
		for (size_t i = 0; i < ncuts; i++)
			takes[ntakes++] = cuts[i];
	else
		takes[ntakes++] = size * cut / 18;
	takes[ntakes++] = size;

	struct http_parser cl, after, after_all;
	http_parser_init_pausing(&cl, m);
	size_t done = 0, next_stop = 0;
	bool added_here = false;
	for (size_t w = 0; w < ntakes; w++) {
		size_t rest = size - done, split = rest * cut / 18;
		struct iovec iov[2] = {
			{(void *)(data + done), split},
			{(void *)(data + done + split), rest - split},
		};
		planned.count = http_parser_plan(&cl, iov, 2, planned.at, planned.seen, size + 1,
						 &after);
		if (w == 0)
			after_all = after;
		/* The stops still ahead: at or past `done`, except the one
		 * headers were just added at. */
		while (next_stop < whole.count && whole.at[next_stop] < done)
			next_stop++;
		size_t from = next_stop;
		if (added_here && from < whole.count && whole.at[from] == done)
			from++;
		if (!same_pauses(&whole, from, &planned, 0, done))
			violated("plan reports other stops than the whole feed", done);
		if (w == 0 && !same_state(&after, &pw))
			violated("plan over iovecs ends in another state than the whole feed", size);
		size_t to = takes[w];
		if (to < done)
			continue; /* sorted, so only equal: an empty write */
		added_here = false;
		if (to == size) {
			cl = after;
		} else {
			http_parser_advance(&cl, iov, 2, to - done);
			/* Stopped exactly at a stop: the headers may have gone out. */
			bool at_stop = false;
			for (size_t i = next_stop; i < whole.count && whole.at[i] <= to; i++)
				at_stop |= whole.at[i] == to;
			if (at_stop && add_at_stops) {
				http_parser_added(&cl);
				added_here = true;
			}
		}
		done = to;
	}
	if (http_parser_stopped(&cl) != http_parser_stopped(&after_all) ||
	    !same_state(&cl, &after_all))
		violated("plan/advance: prefix then rest ends in another state than all at once",
			 size);
	free(at);
	free(seen);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct reqid_config cfg;
	static struct header_matcher m;
	static bool ready;
	if (!ready) {
		config_parse(&cfg, no_env);
		header_matcher_init(&m, &cfg);
		ready = true;
	}
	if (size == 0)
		return 0;
	unsigned cut = data[0] % 17 + 1;
	data++;
	size--;

	struct http_parser whole, pieces;
	struct totals a = {0}, b = {0};
	http_parser_init(&whole, &m);
	http_parser_init(&pieces, &m);
	feed(&whole, data, size, &a);
	for (size_t off = 0; off < size; off += cut) {
		/* Between heads the state alone goes on (a connection entry
		 * keeps no more): the rest, the head's fields and text, is
		 * overwritten with bytes that vary along it. */
		if (!http_parser_in_head(&pieces)) {
			unsigned char *text = (unsigned char *)&pieces + HTTP_PARSER_STATE_SIZE;
			for (size_t k = 0; k < HTTP_PARSER_TEXT_SIZE; k++)
				text[k] = (unsigned char)(data[off] * (k + 1) + (k >> 3));
		}
		feed(&pieces, data + off, size - off < cut ? size - off : cut, &b);
	}

	if (a.started != b.started || a.completed != b.completed || a.not_http != b.not_http ||
	    a.desync != b.desync)
		abort();
	/* "HTTP/" in a header value of the last head is found whole or in
	 * pieces alike, and so is a value's partial "HTTP" at the end. */
	if (whole.version_seen != pieces.version_seen)
		abort();
	/* What is reported with the last header block is the same either
	 * way: its id, request line, trace and tracestate. */
	if (a.completed && (a.last_id_len != b.last_id_len ||
			    memcmp(a.last_id, b.last_id, a.last_id_len) != 0 ||
			    a.last_line_len != b.last_line_len ||
			    memcmp(a.last_line, b.last_line, a.last_line_len) != 0 ||
			    a.last_trace_valid != b.last_trace_valid ||
			    (a.last_trace_valid &&
			     memcmp(&a.last_trace, &b.last_trace, sizeof(a.last_trace)) != 0) ||
			    a.last_tracestate_len != b.last_tracestate_len ||
			    memcmp(a.last_tracestate, b.last_tracestate, a.last_tracestate_len) != 0 ||
			    a.last_version_in_value != b.last_version_in_value))
		abort();
	if ((a.version_in_body > 0) != (b.version_in_body > 0))
		abort();
	if (a.not_http && (a.failed_line_len != b.failed_line_len ||
			   a.failed_line_len > REQUEST_LINE_MAX ||
			   memcmp(a.failed_line, b.failed_line, a.failed_line_len) != 0))
		abort();
	if (a.completed > a.started)
		abort();

	check_pausing(&m, data, size, cut, &a);

	/* A PROXY header's length: none, cut short, or within the bytes and
	 * the same over any longer stream of them; the h2 preface likewise. */
	size_t proxy = http_proxy_header_len((const char *)data, size);
	if (proxy != 0 && proxy != SIZE_MAX &&
	    (proxy > size || http_proxy_header_len((const char *)data, proxy) != proxy))
		abort();
	if (http_starts_h2((const char *)data, size) && !a.not_http)
		abort();
	/* No stream a gateway protocol begins holds a whole request head. */
	if (http_starts_gateway((const char *)data, size) && a.completed > 0)
		abort();
	/* A request line found in the bytes as a log line lies within them,
	 * quoted, and is found again in the quoted part alone. */
	size_t at, len;
	if (http_find_request_line((const char *)data, size, &at, &len)) {
		if (at == 0 || len > size - at - 1 || data[at - 1] != '"' || data[at + len] != '"')
			abort();
		size_t at2, len2;
		if (!http_find_request_line((const char *)data + at - 1, len + 2, &at2, &len2) ||
		    at2 != 1 || len2 != len)
			abort();
	}
	return 0;
}
