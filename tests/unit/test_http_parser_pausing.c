/*
 * test_http_parser_pausing.c - unit tests for the pausing mode of
 * shim/http_parser.c (http_parser_init_pausing, http_parser_added): where a
 * feed stops (the CR, or the LF, of each header block's blank line), that it
 * goes on from there without stopping again, that splits do not move the
 * stop (with the blank line at every offset of the parser's 16-byte
 * scans), that bodies never stop it, and the seen mask of each head
 * (traceparent, tracestate, the configured id header the shim sends).
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "http_parser.h"

#define TP "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"

/* ---- harness ----------------------------------------------------------- */

static struct reqid_config g_cfg;
static struct header_matcher g_m;
static struct http_parser g_p;
static const char *g_headers_env;
static const char *g_response_env;

static const char *lookup_env(const char *name)
{
	if (g_headers_env && strcmp(name, "REQID_HEADERS") == 0)
		return g_headers_env;
	if (g_response_env && strcmp(name, "REQID_RESPONSE_HEADER") == 0)
		return g_response_env;
	return NULL;
}

/* A pausing parser over a config with REQID_HEADERS=headers and
 * REQID_RESPONSE_HEADER=response (NULL: unset). */
static void init_cfg(const char *headers, const char *response)
{
	g_headers_env = headers;
	g_response_env = response;
	assert_int_equal(config_parse(&g_cfg, lookup_env), 0);
	header_matcher_init(&g_m, &g_cfg);
	memset(&g_p, 0xA5, sizeof g_p);
	http_parser_init_pausing(&g_p, &g_m);
}

static void init_default(void)
{
	init_cfg(NULL, NULL);
}

/* One feed into a result filled with junk first. */
static size_t feed(const char *buf, size_t len, struct http_feed_result *r)
{
	memset(r, 0x5A, sizeof *r);
	r->not_http = true;
	r->desync = true;
	r->at_head_end = true;
	return http_parser_feed(&g_p, buf, len, r);
}

#define MAX_PAUSES 16

/* What a writer driving a pausing parser saw over a whole stream. */
struct run {
	size_t pauses;
	size_t at[MAX_PAUSES];     /* absolute offsets of the stops */
	uint32_t seen[MAX_PAUSES]; /* the seen mask at each */
	uint32_t started;
	uint32_t completed;
	uint32_t not_http;
	uint32_t desync;
	uint8_t id_len; /* of the last call that completed a head */
	char id[REQUEST_ID_MAX];
};

/* Feeds buf[base, base+len) the way client_output does: again and again
 * from where each call stopped, until the piece is consumed. */
static void run_piece(struct run *run, const char *buf, size_t base, size_t len)
{
	size_t off = 0;
	bool paused_here = false;
	while (off < len) {
		struct http_feed_result r;
		size_t n = feed(buf + base + off, len - off, &r);
		assert_true(n <= len - off);
		run->started += r.requests_started;
		run->completed += r.headers_completed;
		run->not_http += r.not_http;
		run->desync += r.desync;
		if (r.headers_completed) {
			run->id_len = r.id_len;
			memcpy(run->id, r.id, r.id_len);
		}
		if (r.at_head_end) {
			/* a stop is never reported twice in a row at one place */
			if (paused_here && n == 0)
				fail_msg("paused again at %zu", base + off);
			assert_true(run->pauses < MAX_PAUSES);
			run->at[run->pauses] = base + off + n;
			run->seen[run->pauses] = r.seen;
			run->pauses++;
			paused_here = n == 0;
		} else {
			assert_int_equal(n, len - off);
			paused_here = false;
		}
		off += n;
	}
}

/* The stream cut at cuts[0..ncuts) (increasing) on a fresh parser. */
static void run_cuts(struct run *run, const char *buf, size_t len, const size_t *cuts,
		     size_t ncuts)
{
	memset(run, 0, sizeof *run);
	init_cfg(g_headers_env, g_response_env);
	size_t prev = 0;
	for (size_t i = 0; i <= ncuts; i++) {
		size_t end = i < ncuts ? cuts[i] : len;
		run_piece(run, buf, prev, end - prev);
		prev = end;
	}
}

static void run_step(struct run *run, const char *buf, size_t len, size_t step)
{
	memset(run, 0, sizeof *run);
	init_cfg(g_headers_env, g_response_env);
	for (size_t off = 0; off < len; off += step)
		run_piece(run, buf, off, len - off < step ? len - off : step);
}

static void expect_run(const struct run *run, size_t npauses, const size_t *at,
		       uint32_t completed, const char *how, size_t arg)
{
	if (run->pauses != npauses)
		fail_msg("%s %zu: %zu pauses, want %zu", how, arg, run->pauses, npauses);
	for (size_t i = 0; i < npauses; i++)
		if (run->at[i] != at[i])
			fail_msg("%s %zu: pause %zu at %zu, want %zu", how, arg, i, run->at[i],
				 at[i]);
	assert_int_equal(run->completed, completed);
	assert_int_equal(run->started, completed);
	assert_int_equal(run->not_http, 0);
	assert_int_equal(run->desync, 0);
}

/* Whole, in steps, and cut in two at every byte boundary: the same stops at
 * the same absolute offsets, the same seen masks. */
static void expect_pauses(const char *buf, size_t len, size_t npauses, const size_t *at,
			  const uint32_t *seen, uint32_t completed)
{
	struct run run;
	run_cuts(&run, buf, len, NULL, 0);
	expect_run(&run, npauses, at, completed, "whole", len);
	for (size_t i = 0; seen && i < npauses; i++)
		assert_int_equal(run.seen[i], seen[i]);

	static const size_t steps[] = { 1, 2, 3, 5, 16 };
	for (size_t s = 0; s < sizeof steps / sizeof steps[0]; s++) {
		run_step(&run, buf, len, steps[s]);
		expect_run(&run, npauses, at, completed, "step", steps[s]);
		for (size_t i = 0; seen && i < npauses; i++)
			assert_int_equal(run.seen[i], seen[i]);
	}
	for (size_t cut = 0; cut <= len; cut++) {
		run_cuts(&run, buf, len, &cut, 1);
		expect_run(&run, npauses, at, completed, "cut at", cut);
		for (size_t i = 0; seen && i < npauses; i++)
			assert_int_equal(run.seen[i], seen[i]);
	}
	/* three pieces, every pair of cuts (short streams only) */
	if (len <= 120) {
		for (size_t a = 0; a <= len; a++)
			for (size_t b = a; b <= len; b++) {
				size_t cuts[2] = { a, b };
				run_cuts(&run, buf, len, cuts, 2);
				expect_run(&run, npauses, at, completed, "cuts at", a * 1000 + b);
			}
	}
}

/* The offset of the n-th (0-based) occurrence of needle in buf, plus add. */
static size_t offset_of(const char *buf, const char *needle, int n, size_t add)
{
	const char *p = buf;
	for (;;) {
		const char *q = strstr(p, needle);
		assert_non_null(q);
		if (n-- == 0)
			return (size_t)(q - buf) + add;
		p = q + 1;
	}
}

#define BIT(i) (1u << (i))

/* ---- where it stops ---------------------------------------------------- */

static const char simple[] = "GET / HTTP/1.1\r\nHost: x\r\n\r\n";

static void test_stops_at_blank_line_cr(void **state)
{
	(void)state;
	struct http_feed_result r;
	init_default();
	size_t n = feed(simple, sizeof simple - 1, &r);
	assert_int_equal(n, 25);
	assert_int_equal(simple[25], '\r');
	assert_int_equal(simple[26], '\n');
	assert_true(r.at_head_end);
	assert_int_equal(r.seen, 0);
	assert_int_equal(r.requests_started, 1);
	assert_int_equal(r.headers_completed, 0);
	assert_false(r.not_http);
	assert_false(r.desync);
	assert_int_equal(r.id_len, 0);

	/* the next feed goes on from the CR, to the end, without stopping */
	n = feed(simple + 25, 2, &r);
	assert_int_equal(n, 2);
	assert_false(r.at_head_end);
	assert_int_equal(r.requests_started, 0);
	assert_int_equal(r.headers_completed, 1);
	assert_false(r.not_http);
	assert_false(r.desync);
	assert_false(http_parser_stopped(&g_p));

	/* the CR alone, then the LF */
	init_default();
	assert_int_equal(feed(simple, sizeof simple - 1, &r), 25);
	assert_true(r.at_head_end);
	assert_int_equal(feed(simple + 25, 1, &r), 1);
	assert_false(r.at_head_end);
	assert_int_equal(r.headers_completed, 1);
	assert_int_equal(feed(simple + 26, 1, &r), 1);
	assert_false(r.at_head_end);
	assert_int_equal(r.headers_completed, 0);
	assert_int_equal(r.requests_started, 0);
}

static void test_stop_then_id_and_trace(void **state)
{
	(void)state;
	/* after the stop, the head is completed with its id and trace as a
	 * plain parser would report them */
	static const char req[] = "GET / HTTP/1.1\r\nX-Request-ID: abc\r\ntraceparent: " TP
				  "\r\ntracestate: a=1\r\n\r\n";
	struct http_feed_result r;
	init_default();
	size_t n = feed(req, sizeof req - 1, &r);
	assert_int_equal(n, sizeof req - 3);
	assert_true(r.at_head_end);
	assert_int_equal(r.headers_completed, 0);
	n = feed(req + n, sizeof req - 1 - n, &r);
	assert_int_equal(n, 2);
	assert_int_equal(r.headers_completed, 1);
	assert_int_equal(r.id_len, 3);
	assert_memory_equal(r.id, "abc", 3);
	assert_true(r.trace_valid);
	assert_memory_equal(r.trace.trace_id, "4bf92f3577b34da6a3ce929d0e0e4736", 32);
	assert_int_equal(r.tracestate_len, 3);
	assert_memory_equal(r.tracestate, "a=1", 3);
}

static void test_added_then_feed_from_cr(void **state)
{
	(void)state;
	/* The shim's order: the bytes before the blank line went out (the
	 * parser did not see the CR, so it did not stop), headers were added,
	 * http_parser_added; the rest, from the CR, does not stop. */
	struct http_feed_result r;
	init_default();
	assert_int_equal(feed(simple, 25, &r), 25);
	assert_false(r.at_head_end);
	assert_int_equal(r.requests_started, 1);
	http_parser_added(&g_p);
	assert_int_equal(feed(simple + 25, 2, &r), 2);
	assert_false(r.at_head_end);
	assert_int_equal(r.headers_completed, 1);

	/* after a stop too */
	init_default();
	assert_int_equal(feed(simple, sizeof simple - 1, &r), 25);
	assert_true(r.at_head_end);
	http_parser_added(&g_p);
	assert_int_equal(feed(simple + 25, 2, &r), 2);
	assert_false(r.at_head_end);
	assert_int_equal(r.headers_completed, 1);

	/* ... and the next request stops again */
	static const char next[] = "GET /2 HTTP/1.1\r\n\r\n";
	assert_int_equal(feed(next, sizeof next - 1, &r), 17);
	assert_true(r.at_head_end);
	assert_int_equal(r.requests_started, 1);
	assert_int_equal(feed(next + 17, 2, &r), 2);
	assert_false(r.at_head_end);
	assert_int_equal(r.headers_completed, 1);
}

static void test_split_same_offset(void **state)
{
	(void)state;
	const size_t at[] = { 25 };
	const uint32_t seen[] = { 0 };
	expect_pauses(simple, sizeof simple - 1, 1, at, seen, 1);

	static const char no_headers[] = "GET / HTTP/1.1\r\n\r\n";
	const size_t at2[] = { 16 };
	expect_pauses(no_headers, sizeof no_headers - 1, 1, at2, seen, 1);

	/* empty lines before the request line are not a head's end */
	static const char leading[] = "\r\n\r\nGET / HTTP/1.1\r\n\r\n";
	const size_t at3[] = { 20 };
	expect_pauses(leading, sizeof leading - 1, 1, at3, seen, 1);
}

static void test_lf_only(void **state)
{
	(void)state;
	static const char lf[] = "GET / HTTP/1.1\nHost: x\n\n";
	struct http_feed_result r;
	init_default();
	assert_int_equal(feed(lf, sizeof lf - 1, &r), 23);
	assert_int_equal(lf[23], '\n');
	assert_true(r.at_head_end);
	assert_int_equal(feed(lf + 23, 1, &r), 1);
	assert_false(r.at_head_end);
	assert_int_equal(r.headers_completed, 1);
	const size_t at[] = { 23 };
	expect_pauses(lf, sizeof lf - 1, 1, at, NULL, 1);

	/* mixed endings: the blank line's first byte */
	static const char mixed1[] = "GET / HTTP/1.1\r\nHost: x\n\r\n";
	const size_t at1[] = { 24 };
	expect_pauses(mixed1, sizeof mixed1 - 1, 1, at1, NULL, 1);
	static const char mixed2[] = "GET / HTTP/1.1\nHost: x\r\n\n";
	const size_t at2[] = { 24 };
	expect_pauses(mixed2, sizeof mixed2 - 1, 1, at2, NULL, 1);
}

static void test_second_request_stops_again(void **state)
{
	(void)state;
	static const char two[] = "GET /1 HTTP/1.1\r\nHost: x\r\n\r\n"
				  "GET /2 HTTP/1.1\r\nX-Request-ID: b\r\n\r\n"
				  "HEAD /3 HTTP/1.0\n\n";
	const size_t at[] = {
		offset_of(two, "\r\n\r\n", 0, 2),
		offset_of(two, "\r\n\r\n", 1, 2),
		offset_of(two, "\n\n", 0, 1) /* the LF-only request */,
	};
	assert_int_equal(at[0], 26);
	expect_pauses(two, sizeof two - 1, 3, at, NULL, 3);

	/* one call per stop, in one buffer */
	struct http_feed_result r;
	init_default();
	size_t off = 0;
	for (int i = 0; i < 3; i++) {
		size_t n = feed(two + off, sizeof two - 1 - off, &r);
		assert_true(r.at_head_end);
		assert_int_equal(off + n, at[i]);
		assert_int_equal(r.requests_started, 1);
		assert_int_equal(r.headers_completed, i == 0 ? 0 : 1);
		off += n;
	}
	size_t n = feed(two + off, sizeof two - 1 - off, &r);
	assert_int_equal(off + n, sizeof two - 1);
	assert_false(r.at_head_end);
	assert_int_equal(r.headers_completed, 1);
}

/* ---- bodies ------------------------------------------------------------ */

static void test_content_length_body_never_stops(void **state)
{
	(void)state;
	static const char req[] = "POST /a HTTP/1.1\r\nContent-Length: 27\r\n\r\n"
				  "x\r\n\r\nGET / HTTP/1.1\r\n\r\n\r\n\r\n"
				  "GET /b HTTP/1.1\r\n\r\n";
	const size_t at[] = {
		offset_of(req, "\r\n\r\n", 0, 2),
		offset_of(req, "GET /b", 0, 17),
	};
	assert_int_equal(strlen("x\r\n\r\nGET / HTTP/1.1\r\n\r\n\r\n\r\n"), 27);
	expect_pauses(req, sizeof req - 1, 2, at, NULL, 2);

	/* the body alone in its own feeds */
	struct http_feed_result r;
	init_default();
	size_t n = feed(req, sizeof req - 1, &r);
	assert_int_equal(n, at[0]);
	assert_true(r.at_head_end);
	assert_int_equal(r.seen, BIT(M_CONTENT_LENGTH));
	n = feed(req + at[0], 2, &r);
	assert_int_equal(n, 2);
	const char *body = req + at[0] + 2;
	for (size_t i = 0; i < 27; i++) {
		assert_int_equal(feed(body + i, 1, &r), 1);
		assert_false(r.at_head_end);
	}
}

static void test_chunked_body_never_stops(void **state)
{
	(void)state;
	static const char req[] = "POST /a HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"
				  "4\r\n\r\n\r\n\r\n"
				  "16;x=y\r\nGET / HTTP/1.1\r\n\r\n\r\n\r\n\r\n"
				  "0\r\nX-Trailer: 1\r\n\r\n"
				  "GET /b HTTP/1.1\r\nX-Request-ID: b\r\n\r\n";
	const size_t at[] = {
		offset_of(req, "\r\n\r\n", 0, 2),
		offset_of(req, "X-Request-ID: b", 0, 17),
	};
	assert_int_equal(strlen("GET / HTTP/1.1\r\n\r\n\r\n\r\n"), 0x16);
	init_default(); /* for g_m.sent_id */
	const uint32_t seen[] = { BIT(M_TRANSFER_ENCODING), BIT(M_FIRST_ID) | BIT(g_m.sent_id) };
	expect_pauses(req, sizeof req - 1, 2, at, seen, 2);

	/* no trailers, LF-only chunk lines */
	static const char lf[] = "POST /a HTTP/1.1\nTransfer-Encoding: chunked\n\n"
				 "3\n\n\n\n\n0\n\nGET /b HTTP/1.1\n\n";
	const size_t at2[] = {
		offset_of(lf, "\n\n", 0, 1),
		offset_of(lf, "GET /b", 0, 16),
	};
	expect_pauses(lf, sizeof lf - 1, 2, at2, NULL, 2);
}

static void test_connect_then_tunnel(void **state)
{
	(void)state;
	/* a CONNECT head stops like any other; the tunnel never does */
	static const char req[] = "CONNECT h:443 HTTP/1.1\r\nHost: h\r\n\r\n"
				  "GET / HTTP/1.1\r\n\r\n\x16\x03\x01";
	const size_t at[] = { offset_of(req, "\r\n\r\n", 0, 2) };
	expect_pauses(req, sizeof req - 1, 1, at, NULL, 1);
}

/* ---- the seen mask ----------------------------------------------------- */

/* The seen mask at the one stop of a request with these header lines. */
static uint32_t seen_for(const char *headers)
{
	char req[1024];
	snprintf(req, sizeof req, "GET / HTTP/1.1\r\n%s\r\n", headers);
	struct http_feed_result r;
	init_cfg(g_headers_env, g_response_env);
	size_t n = feed(req, strlen(req), &r);
	assert_true(r.at_head_end);
	assert_int_equal(n, strlen(req) - 2);
	uint32_t seen = r.seen;
	/* byte by byte: the same mask */
	init_cfg(g_headers_env, g_response_env);
	size_t stops = 0;
	for (size_t i = 0; i < strlen(req);) {
		n = feed(req + i, 1, &r);
		if (r.at_head_end) {
			assert_int_equal(r.seen, seen);
			stops++;
		}
		i += n;
	}
	assert_int_equal(stops, 1);
	return seen;
}

static void test_seen_default_config(void **state)
{
	(void)state;
	g_headers_env = NULL;
	g_response_env = NULL;
	init_default();
	/* default: x-request-id, x-correlation-id, x-trace-id, traceparent;
	 * the sent header X-Request-ID is the last entry */
	assert_int_equal(g_m.sent_id, M_FIRST_ID + 4);
	assert_int_equal(g_m.count, M_FIRST_ID + 5);
	assert_string_equal(g_m.name[g_m.sent_id], "x-request-id");
	assert_int_equal(g_m.len[g_m.sent_id], 12);
	const uint32_t tp = BIT(M_TRACEPARENT) | BIT(M_FIRST_ID + 3);
	const uint32_t rid = BIT(M_FIRST_ID) | BIT(g_m.sent_id);

	assert_int_equal(seen_for("Host: x\r\n"), 0);
	assert_int_equal(seen_for(""), 0);
	assert_int_equal(seen_for("traceparent: " TP "\r\n"), tp);
	assert_int_equal(seen_for("TraceParent: " TP "\r\n"), tp);
	assert_int_equal(seen_for("TRACEPARENT: " TP "\r\n"), tp);
	/* present is present, valid or not */
	assert_int_equal(seen_for("traceparent: garbage\r\n"), tp);
	assert_int_equal(seen_for("traceparent:\r\n"), tp);
	assert_int_equal(seen_for("tracestate: a=1\r\n"), BIT(M_TRACESTATE));
	assert_int_equal(seen_for("TRACESTATE: a=1\r\ntraceparent: " TP "\r\n"),
			 tp | BIT(M_TRACESTATE));
	assert_int_equal(seen_for("X-Request-ID: a\r\n"), rid);
	assert_int_equal(seen_for("x-request-id: a\r\n"), rid);
	assert_int_equal(seen_for("X-REQUEST-ID: not valid id\r\n"), rid);
	assert_int_equal(seen_for("X-Correlation-ID: c\r\n"), BIT(M_FIRST_ID + 1));
	assert_int_equal(seen_for("X-Trace-ID: t\r\n"), BIT(M_FIRST_ID + 2));
	assert_int_equal(seen_for("Content-Length: 0\r\n"), BIT(M_CONTENT_LENGTH));
	assert_int_equal(seen_for("Transfer-Encoding: identity\r\n"), BIT(M_TRANSFER_ENCODING));
	/* look-alike names are not seen */
	assert_int_equal(seen_for("traceparent2: " TP "\r\n"), 0);
	assert_int_equal(seen_for("trace-parent: " TP "\r\n"), 0);
	assert_int_equal(seen_for("xtraceparent: " TP "\r\n"), 0);
	assert_int_equal(seen_for("X-Request-IDs: a\r\n"), 0);
	assert_int_equal(seen_for("X-Request-I: a\r\n"), 0);
	/* everything at once */
	assert_int_equal(seen_for("Host: x\r\nX-Request-ID: a\r\ntraceparent: " TP "\r\n"
				  "tracestate: a=1\r\nContent-Length: 0\r\n"),
			 tp | rid | BIT(M_TRACESTATE) | BIT(M_CONTENT_LENGTH));
}

static void test_seen_response_header(void **state)
{
	(void)state;
	g_headers_env = NULL;
	g_response_env = "X-Corr";
	init_cfg(g_headers_env, g_response_env);
	assert_int_equal(g_m.sent_id, M_FIRST_ID + 4);
	assert_string_equal(g_m.name[g_m.sent_id], "x-corr");
	assert_int_equal(g_m.len[g_m.sent_id], 6);
	assert_int_equal(seen_for("X-Corr: a\r\n"), BIT(g_m.sent_id));
	assert_int_equal(seen_for("x-CORR: a\r\n"), BIT(g_m.sent_id));
	/* X-Request-ID is now only an id header */
	assert_int_equal(seen_for("X-Request-ID: a\r\n"), BIT(M_FIRST_ID));
	/* a longer name with the same prefix is another header */
	assert_int_equal(seen_for("X-Correlation-ID: c\r\n"), BIT(M_FIRST_ID + 1));
	assert_int_equal(seen_for("X-Cor: a\r\n"), 0);
	assert_int_equal(seen_for("X-Corr2: a\r\n"), 0);
	assert_int_equal(seen_for("X-Corr: a\r\ntraceparent: " TP "\r\n"),
			 BIT(g_m.sent_id) | BIT(M_TRACEPARENT) | BIT(M_FIRST_ID + 3));

	/* the sent header is never taken as the inbound id */
	struct http_feed_result r;
	static const char req[] = "GET / HTTP/1.1\r\nX-Corr: abc\r\n\r\n";
	init_cfg(g_headers_env, g_response_env);
	size_t n = feed(req, sizeof req - 1, &r);
	assert_true(r.at_head_end);
	n = feed(req + n, sizeof req - 1 - n, &r);
	assert_int_equal(r.headers_completed, 1);
	assert_int_equal(r.id_len, 0);

	/* with custom id headers too: the sent entry comes after them */
	g_headers_env = "X-My-ID";
	init_cfg(g_headers_env, g_response_env);
	assert_int_equal(g_m.sent_id, M_FIRST_ID + 1);
	assert_string_equal(g_m.name[g_m.sent_id], "x-corr");
	assert_int_equal(seen_for("X-Corr: a\r\nX-My-ID: b\r\n"),
			 BIT(M_FIRST_ID) | BIT(g_m.sent_id));
	assert_int_equal(seen_for("X-Request-ID: a\r\n"), 0);
	/* traceparent is always looked for, listed or not */
	assert_int_equal(seen_for("traceparent: " TP "\r\n"), BIT(M_TRACEPARENT));

	/* an id header that is also the sent one */
	g_headers_env = "X-Corr";
	init_cfg(g_headers_env, g_response_env);
	assert_int_equal(seen_for("x-corr: a\r\n"), BIT(M_FIRST_ID) | BIT(g_m.sent_id));

	/* none sent: nothing is the sent header */
	g_headers_env = NULL;
	g_response_env = "";
	init_cfg(g_headers_env, g_response_env);
	assert_int_equal(g_m.len[g_m.sent_id], 0);
	assert_int_equal(seen_for("X-Request-ID: a\r\n"), BIT(M_FIRST_ID));

	g_headers_env = NULL;
	g_response_env = NULL;
}

static void test_seen_per_request(void **state)
{
	(void)state;
	g_headers_env = NULL;
	g_response_env = NULL;
	init_default();
	static const char reqs[] = "GET /1 HTTP/1.1\r\ntraceparent: " TP "\r\nX-Request-ID: a\r\n\r\n"
				   "GET /2 HTTP/1.1\r\ntracestate: a=1\r\n\r\n"
				   "GET /3 HTTP/1.1\r\n\r\n";
	const size_t at[] = {
		offset_of(reqs, "\r\n\r\n", 0, 2),
		offset_of(reqs, "\r\n\r\n", 1, 2),
		offset_of(reqs, "\r\n\r\n", 2, 2),
	};
	const uint32_t seen[] = {
		BIT(M_TRACEPARENT) | BIT(M_FIRST_ID + 3) | BIT(M_FIRST_ID) | BIT(g_m.sent_id),
		BIT(M_TRACESTATE),
		0,
	};
	expect_pauses(reqs, sizeof reqs - 1, 3, at, seen, 3);
}

/* ---- not HTTP, desync -------------------------------------------------- */

static void test_not_http_never_stops(void **state)
{
	(void)state;
	static const char *const bad[] = {
		"hello world\r\n\r\n",
		"SSH-2.0-OpenSSH_9.6\r\n\r\n",
		"GET / HTTP/2.0\r\n\r\n",
		"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
		"\x16\x03\x01\x02\x00\r\n\r\n",
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		size_t len = strlen(bad[i]);
		struct http_feed_result r;
		init_default();
		assert_int_equal(feed(bad[i], len, &r), len);
		assert_true(r.not_http);
		assert_false(r.at_head_end);
		assert_true(http_parser_stopped(&g_p));
		/* later requests are not parsed: no stop */
		static const char get[] = "GET / HTTP/1.1\r\n\r\n";
		assert_int_equal(feed(get, sizeof get - 1, &r), sizeof get - 1);
		assert_false(r.at_head_end);
		assert_false(r.not_http);
		assert_int_equal(r.requests_started, 0);

		/* byte-wise */
		struct run run;
		run_step(&run, bad[i], len, 1);
		assert_int_equal(run.pauses, 0);
		assert_int_equal(run.not_http, 1);
		assert_true(http_parser_stopped(&g_p));
	}
}

static void test_desync_never_stops(void **state)
{
	(void)state;
	static const char s[] = "GET / HTTP/1.1\r\n\r\n\x00garbage\r\n\r\nGET / HTTP/1.1\r\n\r\n";
	struct run run;
	memset(&run, 0, sizeof run);
	init_default();
	run_piece(&run, s, 0, sizeof s - 1);
	assert_int_equal(run.pauses, 1);
	assert_int_equal(run.at[0], 16);
	assert_int_equal(run.desync, 1);
	assert_true(http_parser_stopped(&g_p));
}

/* ---- a plain parser never stops ---------------------------------------- */

static void test_plain_parser_never_stops(void **state)
{
	(void)state;
	struct http_parser plain;
	struct http_feed_result r;
	g_headers_env = NULL;
	g_response_env = NULL;
	init_default();
	http_parser_init(&plain, &g_m);
	static const char two[] = "GET /1 HTTP/1.1\r\nHost: x\r\n\r\nGET /2 HTTP/1.1\n\n";
	memset(&r, 0x5A, sizeof r);
	assert_int_equal(http_parser_feed(&plain, two, sizeof two - 1, &r), sizeof two - 1);
	assert_false(r.at_head_end);
	assert_int_equal(r.headers_completed, 2);
}

static int reset_env(void **state)
{
	(void)state;
	g_headers_env = NULL;
	g_response_env = NULL;
	return 0;
}

/* The parser scans lines 16 bytes at a time: a blank line at every offset
 * from the start of the stream and of its block, after a CR or an LF,
 * stops it at the same place however the stream is cut. */
static void test_stop_at_every_offset(void **state)
{
	(void)state;
	char req[128], value[40];
	init_default(); /* for g_m.sent_id */
	for (size_t v = 0; v <= 33; v++) {
		memset(value, 'v', v);
		value[v] = '\0';
		int n = snprintf(req, sizeof req, "GET / HTTP/1.1\r\nX-Request-ID: r\r\nX-A: %s\r\n\r\n",
				 value);
		const size_t at[] = { (size_t)n - 2 };
		const uint32_t seen[] = { BIT(M_FIRST_ID) | BIT(g_m.sent_id) };
		expect_pauses(req, (size_t)n, 1, at, seen, 1);
		n = snprintf(req, sizeof req, "GET / HTTP/1.1\nX-A:%s\n\n", value);
		const size_t at_lf[] = { (size_t)n - 1 };
		expect_pauses(req, (size_t)n, 1, at_lf, NULL, 1);
	}
}

#define TEST(name) cmocka_unit_test_setup(name, reset_env)

/* http_parser_plan over iovecs: the offsets from the start of iov[0], at
 * most max of them, and the parser left untouched; http_parser_advance
 * then moves it over a prefix, through the stop inside it. */
static void test_plan_and_advance(void **state)
{
	(void)state;
	init_default();
	static const char one[] = "GET /a HTTP/1.1\r\nHost: x\r\n";
	static const char two[] = "\r\nGET /b HTTP/1.1\r\nX-Request-ID: r\r\n\r\n";
	struct iovec iov[2] = {{(void *)one, sizeof one - 1}, {(void *)two, sizeof two - 1}};
	size_t at[4];
	uint32_t seen[4];
	struct http_parser before = g_p, after;

	assert_int_equal(http_parser_plan(&g_p, iov, 2, at, seen, 4, &after), 2);
	assert_memory_equal(&g_p, &before, sizeof g_p);
	assert_int_equal(at[0], sizeof one - 1);
	assert_int_equal(seen[0], 0);
	assert_int_equal(at[1], sizeof one - 1 + sizeof two - 3);
	assert_int_equal(seen[1], 1u << M_FIRST_ID | 1u << g_m.sent_id); /* an id header too */
	assert_false(http_parser_stopped(&after));

	/* at most max stored; the parser still goes past everything */
	struct http_parser after1;
	assert_int_equal(http_parser_plan(&g_p, iov, 2, at, seen, 1, &after1), 1);
	assert_int_equal(at[0], sizeof one - 1);

	/* the first head and the next request line went: what is left plans
	 * to the second head only, at its offset in the rest */
	size_t prefix = sizeof one - 1 + 20;
	http_parser_advance(&g_p, iov, 2, prefix);
	struct iovec rest = {(void *)(two + 20), sizeof two - 1 - 20};
	assert_int_equal(http_parser_plan(&g_p, &rest, 1, at, seen, 4, &after1), 1);
	assert_int_equal(at[0], sizeof one - 1 + sizeof two - 3 - prefix);
	assert_int_equal(seen[0], 1u << M_FIRST_ID | 1u << g_m.sent_id);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		TEST(test_stops_at_blank_line_cr),
		TEST(test_stop_then_id_and_trace),
		TEST(test_added_then_feed_from_cr),
		TEST(test_split_same_offset),
		TEST(test_lf_only),
		TEST(test_second_request_stops_again),
		TEST(test_content_length_body_never_stops),
		TEST(test_chunked_body_never_stops),
		TEST(test_connect_then_tunnel),
		TEST(test_seen_default_config),
		TEST(test_seen_response_header),
		TEST(test_seen_per_request),
		TEST(test_not_http_never_stops),
		TEST(test_desync_never_stops),
		TEST(test_plain_parser_never_stops),
		TEST(test_plan_and_advance),
		TEST(test_stop_at_every_offset),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
