/*
 * test_http_parser.c - unit tests for shim/http_parser.c: request and header
 * block counting, inbound id selection by header precedence (X-Request-ID,
 * X-Correlation-ID, X-Trace-ID, traceparent), body skipping (Content-Length,
 * chunked), pipelining and keep-alive, arbitrary input splits, not-HTTP
 * detection and desynchronisation; the inbound trace context (traceparent
 * and tracestate: validity, header lines combined and normalised, the
 * TRACESTATE_MAX limit, obs-fold, keep-alive), whole and split everywhere;
 * the parser's runs (16-byte scans, names matched many bytes at once): names
 * that match only in their first bytes, line ends and bad bytes at every
 * offset, any split of a browser's head reporting what one piece does; a
 * head in one read taken a line at a time: request lines, header names and
 * line ends at the edges of the blocks that line is looked at in, names the
 * matcher lists twice, captured values and framing, the state a header line
 * leaves the same whole and split.
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

#define TRACE "4bf92f3577b34da6a3ce929d0e0e4736"
#define TP "00-" TRACE "-00f067aa0ba902b7-01"

/* ---- harness ----------------------------------------------------------- */

static struct reqid_config g_cfg;
static struct header_matcher g_m;
static struct http_parser g_p;
static const char *g_headers_env;

static const char *lookup_env(const char *name)
{
	if (g_headers_env && strcmp(name, "REQID_HEADERS") == 0)
		return g_headers_env;
	return NULL;
}

static void init_with_headers(const char *headers)
{
	g_headers_env = headers;
	assert_int_equal(config_parse(&g_cfg, lookup_env), 0);
	header_matcher_init(&g_m, &g_cfg);
	memset(&g_p, 0xA5, sizeof g_p);
	http_parser_init(&g_p, &g_m);
}

static void init_default(void)
{
	init_with_headers(NULL);
}

/* The result struct is filled with junk first: the parser must reset it. */
static void feed(const char *buf, size_t len, struct http_feed_result *r)
{
	memset(r, 0x5A, sizeof *r);
	r->not_http = true;
	r->desync = true;
	http_parser_feed(&g_p, buf, len, r);
}

static void feed_str(const char *s, struct http_feed_result *r)
{
	feed(s, strlen(s), r);
}

static void expect_id(uint8_t id_len, const char *id, const char *want)
{
	if (want == NULL) {
		if (id_len != 0)
			fail_msg("expected no id, got \"%.*s\"", (int)id_len, id);
		return;
	}
	if (id_len != strlen(want) || memcmp(id, want, id_len) != 0)
		fail_msg("expected id \"%s\", got \"%.*s\" (len %u)", want, (int)id_len, id,
			 (unsigned)id_len);
}

static void expect_result(const struct http_feed_result *r, uint32_t started,
			  uint32_t completed, const char *want_id)
{
	assert_int_equal(r->requests_started, started);
	assert_int_equal(r->headers_completed, completed);
	assert_false(r->not_http);
	assert_false(r->desync);
	expect_id(r->id_len, r->id, want_id);
}

static void expect_nothing(const struct http_feed_result *r)
{
	assert_int_equal(r->requests_started, 0);
	assert_int_equal(r->headers_completed, 0);
	assert_false(r->not_http);
	assert_false(r->desync);
	assert_int_equal(r->id_len, 0);
}

/* Feeds one whole request to a fresh default parser; expects one request
 * and checks the id. */
static void one_request(const char *req, const char *want_id)
{
	struct http_feed_result r;
	init_default();
	feed_str(req, &r);
	expect_result(&r, 1, 1, want_id);
	assert_false(http_parser_stopped(&g_p));
}

struct totals {
	uint32_t started;
	uint32_t completed;
	uint32_t not_http_calls;
	uint32_t desync_calls;
	uint8_t id_len; /* from the last call that completed headers */
	char id[REQUEST_ID_MAX];
	/* the trace context from that call */
	bool trace_valid;
	struct traceparent trace;
	uint16_t tracestate_len;
	char tracestate[TRACESTATE_MAX];
};

/* REQID_HEADERS for the parsers feed_steps and feed_cut make (NULL: default). */
static const char *g_split_headers;

static void totals_add(struct totals *t, const struct http_feed_result *r)
{
	t->started += r->requests_started;
	t->completed += r->headers_completed;
	t->not_http_calls += r->not_http;
	t->desync_calls += r->desync;
	if (r->headers_completed) {
		t->id_len = r->id_len;
		memcpy(t->id, r->id, r->id_len);
		t->trace_valid = r->trace_valid;
		t->tracestate_len = r->tracestate_len;
		if (r->trace_valid)
			t->trace = r->trace;
		if (r->tracestate_len <= TRACESTATE_MAX)
			memcpy(t->tracestate, r->tracestate, r->tracestate_len);
	}
}

/* Feeds buf to a fresh parser in pieces of step bytes (0: one call). */
static void feed_steps(const char *buf, size_t len, size_t step, struct totals *t)
{
	memset(t, 0, sizeof *t);
	init_with_headers(g_split_headers);
	if (step == 0)
		step = len ? len : 1;
	for (size_t off = 0; off < len; off += step) {
		struct http_feed_result r;
		size_t n = len - off < step ? len - off : step;
		feed(buf + off, n, &r);
		totals_add(t, &r);
	}
}

/* Feeds buf to a fresh parser in two calls cut at cut. */
static void feed_cut(const char *buf, size_t len, size_t cut, struct totals *t)
{
	struct http_feed_result r;
	memset(t, 0, sizeof *t);
	init_with_headers(g_split_headers);
	feed(buf, cut, &r);
	totals_add(t, &r);
	feed(buf + cut, len - cut, &r);
	totals_add(t, &r);
}

static void expect_totals(const struct totals *t, uint32_t started, uint32_t completed,
			  const char *want_id)
{
	assert_int_equal(t->started, started);
	assert_int_equal(t->completed, completed);
	assert_int_equal(t->not_http_calls, 0);
	assert_int_equal(t->desync_calls, 0);
	expect_id(t->id_len, t->id, want_id);
}

/* Checks that every split (byte-wise, a few step sizes, every two-way cut)
 * gives the totals the whole buffer gives. */
static void expect_split_invariant(const char *buf, size_t len, uint32_t started,
				   uint32_t completed, const char *want_id)
{
	static const size_t steps[] = { 0, 1, 2, 3, 7, 13, 64 };
	struct totals t;
	for (size_t i = 0; i < sizeof steps / sizeof steps[0]; i++) {
		feed_steps(buf, len, steps[i], &t);
		if (t.started != started || t.completed != completed)
			print_error("step %zu\n", steps[i]);
		expect_totals(&t, started, completed, want_id);
	}
	size_t stride = len > 2000 ? 97 : 1;
	for (size_t cut = 0; cut <= len; cut += stride) {
		feed_cut(buf, len, cut, &t);
		if (t.started != started || t.completed != completed)
			print_error("cut at %zu\n", cut);
		expect_totals(&t, started, completed, want_id);
	}
}

/* ---- basic requests and id selection ----------------------------------- */

/* A parser joined between requests (attach): requests parse as on a new
 * connection, but bytes that are no request desynchronise it where a new
 * connection's would make it not HTTP. */
static void test_joined_stream(void **state)
{
	(void)state;
	struct http_feed_result r;
	init_default();
	http_parser_init_joined(&g_p, &g_m);
	feed_str("GET /a HTTP/1.1\r\nX-Request-ID: joined-1\r\n\r\n", &r);
	expect_result(&r, 1, 1, "joined-1");
	http_parser_init_joined(&g_p, &g_m);
	feed_str("HTTP/1.1 200 OK\r\n\r\n", &r);
	assert_true(r.desync);
	assert_false(r.not_http);
	assert_true(http_parser_stopped(&g_p));
	http_parser_init_joined(&g_p, &g_m);
	feed_str("\x16\x03\x01", &r);
	assert_true(r.desync);
	assert_false(r.not_http);
	/* The same bytes on a new connection: not HTTP. */
	http_parser_init(&g_p, &g_m);
	feed_str("\x16\x03\x01", &r);
	assert_true(r.not_http);
	assert_false(r.desync);
}

/* A connection entry keeps a parser's state alone between heads: its head
 * fields and text are whatever a former head left. A first line that fails
 * before it began keeps no request line (conn_table reads it to tell a
 * PROXY header or a request from bytes that are not HTTP). */
static void test_first_line_failing_at_once_keeps_no_line(void **state)
{
	(void)state;
	struct http_feed_result r;
	init_default();
	memcpy(g_p.request_line, "PROXY TCP4", 10);
	g_p.line_len = 10;
	feed("\x01\x02", 2, &r);
	assert_true(r.not_http);
	assert_int_equal(g_p.line_len, 0);
	/* Begun, the line is kept as far as it came. */
	init_default();
	g_p.line_len = 10;
	feed_str("GE\x01", &r);
	assert_true(r.not_http);
	assert_int_equal(g_p.line_len, 2);
	assert_memory_equal(g_p.request_line, "GE", 2);
}

static void test_simple_get(void **state)
{
	(void)state;
	one_request("GET / HTTP/1.1\r\nHost: example.com\r\nX-Request-ID: abc\r\n\r\n", "abc");
	one_request("GET /index.html?q=1 HTTP/1.0\r\nX-Request-ID: abc\r\n\r\n", "abc");
	one_request("POST /submit HTTP/1.1\r\nX-Request-ID: abc\r\nContent-Length: 0\r\n\r\n",
		    "abc");
	one_request("GET http://example.com/x HTTP/1.1\r\nX-Request-ID: a-b_c.d:e\r\n\r\n",
		    "a-b_c.d:e");
}

static void test_no_id_headers(void **state)
{
	(void)state;
	one_request("GET / HTTP/1.1\r\nHost: x\r\nAccept: */*\r\n\r\n", NULL);
	one_request("GET / HTTP/1.1\r\n\r\n", NULL);
	/* id header names inside values or as prefixes do not count */
	one_request("GET / HTTP/1.1\r\nX-Note: X-Request-ID: abc\r\n\r\n", NULL);
	one_request("GET / HTTP/1.1\r\nX-Request-IDs: abc\r\n\r\n", NULL);
	one_request("GET / HTTP/1.1\r\nX-Request-I: abc\r\n\r\n", NULL);
	one_request("GET / HTTP/1.1\r\nXX-Request-ID: abc\r\n\r\n", NULL);
	one_request("GET / HTTP/1.1\r\nRequest-ID: abc\r\n\r\n", NULL);
	one_request("GET / HTTP/1.1\r\ntraceparent2: " TP "\r\n\r\n", NULL);
}

static void test_header_name_case(void **state)
{
	(void)state;
	one_request("GET / HTTP/1.1\r\nx-REQUEST-id: abc\r\n\r\n", "abc");
	one_request("GET / HTTP/1.1\r\nx-request-id: abc\r\n\r\n", "abc");
	one_request("GET / HTTP/1.1\r\nX-REQUEST-ID: abc\r\n\r\n", "abc");
	one_request("GET / HTTP/1.1\r\nTRACEPARENT: " TP "\r\n\r\n", TRACE);
	/* the value's case is kept */
	one_request("GET / HTTP/1.1\r\nX-Request-ID: AbC\r\n\r\n", "AbC");
}

static void test_value_ows_trimmed(void **state)
{
	(void)state;
	one_request("GET / HTTP/1.1\r\nX-Request-ID:   abc  \r\n\r\n", "abc");
	one_request("GET / HTTP/1.1\r\nX-Request-ID:abc\r\n\r\n", "abc");
	one_request("GET / HTTP/1.1\r\nX-Request-ID:\t abc\t \r\n\r\n", "abc");
	one_request("GET / HTTP/1.1\nX-Request-ID:  abc \n\n", "abc");
	one_request("GET / HTTP/1.1\r\ntraceparent: \t" TP " \t\r\n\r\n", TRACE);
}

static void test_precedence(void **state)
{
	(void)state;
	one_request("GET / HTTP/1.1\r\nX-Correlation-ID: corr\r\nX-Request-ID: req\r\n\r\n",
		    "req");
	one_request("GET / HTTP/1.1\r\nX-Request-ID: req\r\nX-Correlation-ID: corr\r\n\r\n",
		    "req");
	one_request("GET / HTTP/1.1\r\nX-Trace-ID: trc\r\n\r\n", "trc");
	one_request("GET / HTTP/1.1\r\nX-Correlation-ID: corr\r\n\r\n", "corr");
	one_request("GET / HTTP/1.1\r\nX-Trace-ID: trc\r\nX-Correlation-ID: corr\r\n\r\n",
		    "corr");
	one_request("GET / HTTP/1.1\r\ntraceparent: " TP "\r\nX-Trace-ID: trc\r\n\r\n", "trc");
	one_request("GET / HTTP/1.1\r\nX-Trace-ID: trc\r\ntraceparent: " TP "\r\n\r\n", "trc");
	one_request("GET / HTTP/1.1\r\ntraceparent: " TP "\r\nX-Request-ID: req\r\n"
		    "X-Trace-ID: trc\r\nX-Correlation-ID: corr\r\n\r\n", "req");
}

static void test_traceparent(void **state)
{
	(void)state;
	one_request("GET / HTTP/1.1\r\ntraceparent: " TP "\r\n\r\n", TRACE);
	one_request("GET / HTTP/1.1\r\ntraceparent: cc-" TRACE "-00f067aa0ba902b7-01-extra\r\n\r\n",
		    TRACE);
	/* invalid traceparent values */
	one_request("GET / HTTP/1.1\r\ntraceparent: 00-4BF92F3577B34DA6A3CE929D0E0E4736"
		    "-00f067aa0ba902b7-01\r\n\r\n", NULL);
	one_request("GET / HTTP/1.1\r\ntraceparent: ff-" TRACE "-00f067aa0ba902b7-01\r\n\r\n",
		    NULL);
	one_request("GET / HTTP/1.1\r\ntraceparent: 00-00000000000000000000000000000000"
		    "-00f067aa0ba902b7-01\r\n\r\n", NULL);
	one_request("GET / HTTP/1.1\r\ntraceparent: " TP "-x\r\n\r\n", NULL);
	one_request("GET / HTTP/1.1\r\ntraceparent: garbage\r\n\r\n", NULL);
	one_request("GET / HTTP/1.1\r\ntraceparent: \r\n\r\n", NULL);
	/* an invalid traceparent does not hide a valid higher-precedence id */
	one_request("GET / HTTP/1.1\r\ntraceparent: garbage\r\nX-Trace-ID: trc\r\n\r\n", "trc");
}

static void test_two_traceparents(void **state)
{
	(void)state;
	one_request("GET / HTTP/1.1\r\ntraceparent: " TP "\r\ntraceparent: " TP "\r\n\r\n",
		    NULL);
	one_request("GET / HTTP/1.1\r\ntraceparent: " TP "\r\ntraceparent: garbage\r\n\r\n",
		    NULL);
	one_request("GET / HTTP/1.1\r\ntraceparent: garbage\r\ntraceparent: " TP "\r\n\r\n",
		    NULL);
	one_request("GET / HTTP/1.1\r\ntraceparent: " TP "\r\nX-Trace-ID: t\r\n"
		    "traceparent: " TP "\r\n\r\n", "t");
}

static void test_invalid_request_id_falls_back(void **state)
{
	(void)state;
	one_request("GET / HTTP/1.1\r\nX-Request-ID: a b\r\nX-Correlation-ID: corr\r\n\r\n",
		    "corr");
	one_request("GET / HTTP/1.1\r\nX-Request-ID: a\"b\r\nX-Trace-ID: trc\r\n\r\n", "trc");
	one_request("GET / HTTP/1.1\r\nX-Request-ID: a b\r\ntraceparent: " TP "\r\n\r\n", TRACE);
	one_request("GET / HTTP/1.1\r\nX-Request-ID: a b\r\n\r\n", NULL);
	one_request("GET / HTTP/1.1\r\nX-Request-ID: a\"b\r\n\r\n", NULL);
	one_request("GET / HTTP/1.1\r\nX-Request-ID: a=b\r\n\r\n", NULL);
	one_request("GET / HTTP/1.1\r\nX-Request-ID: a,b\r\n\r\n", NULL);
	one_request("GET / HTTP/1.1\r\nX-Request-ID: \xc3\xa9\r\n\r\n", NULL);
	one_request("GET / HTTP/1.1\r\nX-Request-ID: \r\n\r\n", NULL);
	one_request("GET / HTTP/1.1\r\nX-Request-ID:\r\nX-Correlation-ID: c\r\n\r\n", "c");
	one_request("GET / HTTP/1.1\r\nX-Request-ID: a\"b\r\nX-Correlation-ID: a b\r\n"
		    "X-Trace-ID: {x}\r\n\r\n", NULL);
}

static void test_id_length_limits(void **state)
{
	(void)state;
	char id128[129], id129[130], req[512];
	memset(id128, 'a', 128);
	id128[128] = '\0';
	memset(id129, 'b', 129);
	id129[129] = '\0';

	snprintf(req, sizeof req, "GET / HTTP/1.1\r\nX-Request-ID: %s\r\n\r\n", id128);
	one_request(req, id128);
	snprintf(req, sizeof req, "GET / HTTP/1.1\r\nX-Request-ID: %s\r\n\r\n", id129);
	one_request(req, NULL);
	snprintf(req, sizeof req,
		 "GET / HTTP/1.1\r\nX-Request-ID: %s\r\nX-Correlation-ID: ok\r\n\r\n", id129);
	one_request(req, "ok");
	/* a too-long id byte-wise */
	snprintf(req, sizeof req, "GET / HTTP/1.1\r\nX-Request-ID: %s\r\n\r\n", id129);
	expect_split_invariant(req, strlen(req), 1, 1, NULL);
}

static void test_id_128_with_trailing_ows(void **state)
{
	(void)state;
	/* OWS is not part of the value, so it does not count toward the
	 * 128-byte limit */
	char id128[129], req[512];
	memset(id128, 'a', 128);
	id128[128] = '\0';
	snprintf(req, sizeof req, "GET / HTTP/1.1\r\nX-Request-ID: %s \r\n\r\n", id128);
	one_request(req, id128);
	snprintf(req, sizeof req, "GET / HTTP/1.1\r\nX-Request-ID:   %s\t  \r\n\r\n", id128);
	one_request(req, id128);
	snprintf(req, sizeof req, "GET / HTTP/1.1\r\ntraceparent: cc-" TRACE
		 "-00f067aa0ba902b7-01-%s \r\n\r\n", "x");
	one_request(req, TRACE);
}

static void test_huge_values(void **state)
{
	(void)state;
	enum { BIG = 10000 };
	char *req = malloc(BIG + 256);
	assert_non_null(req);

	/* a huge non-id header is fine */
	int n = sprintf(req, "GET / HTTP/1.1\r\nCookie: ");
	memset(req + n, 'c', BIG);
	n += BIG;
	n += sprintf(req + n, "\r\nX-Request-ID: abc\r\n\r\n");
	one_request(req, "abc");
	expect_split_invariant(req, (size_t)n, 1, 1, "abc");

	/* a huge X-Request-ID is rejected */
	n = sprintf(req, "GET / HTTP/1.1\r\nX-Request-ID: ");
	memset(req + n, 'a', BIG);
	n += BIG;
	n += sprintf(req + n, "\r\n\r\n");
	one_request(req, NULL);
	struct totals t;
	feed_steps(req, (size_t)n, 1, &t);
	expect_totals(&t, 1, 1, NULL);

	/* ... and falls back */
	n = sprintf(req, "GET / HTTP/1.1\r\nX-Request-ID: ");
	memset(req + n, 'a', BIG);
	n += BIG;
	n += sprintf(req + n, "\r\nX-Correlation-ID: corr\r\n\r\n");
	one_request(req, "corr");
	free(req);
}

static void test_custom_headers(void **state)
{
	(void)state;
	struct http_feed_result r;
	init_with_headers("X-My-ID");
	feed_str("GET / HTTP/1.1\r\nX-Request-ID: std\r\ntraceparent: " TP "\r\n"
		 "X-My-ID: mine\r\n\r\n", &r);
	expect_result(&r, 1, 1, "mine");
	feed_str("GET / HTTP/1.1\r\nX-Request-ID: std\r\ntraceparent: " TP "\r\n\r\n", &r);
	expect_result(&r, 1, 1, NULL);

	init_with_headers("traceparent, X-Request-ID");
	feed_str("GET / HTTP/1.1\r\nX-Request-ID: std\r\ntraceparent: " TP "\r\n\r\n", &r);
	expect_result(&r, 1, 1, TRACE);
	feed_str("GET / HTTP/1.1\r\nX-Request-ID: std\r\ntraceparent: bad\r\n\r\n", &r);
	expect_result(&r, 1, 1, "std");
}

/* ---- line endings, splits ---------------------------------------------- */

static void test_line_endings(void **state)
{
	(void)state;
	one_request("GET / HTTP/1.1\nX-Request-ID: abc\n\n", "abc");
	one_request("GET / HTTP/1.1\r\nHost: x\nX-Request-ID: abc\r\n\n", "abc");
	one_request("GET / HTTP/1.1\nHost: x\r\nX-Request-ID: abc\n\r\n", "abc");
	const char *lf = "GET / HTTP/1.1\nHost: x\nX-Request-ID: abc\n\n";
	expect_split_invariant(lf, strlen(lf), 1, 1, "abc");
}

static void test_first_byte_starts_request(void **state)
{
	(void)state;
	struct http_feed_result r;
	init_default();
	feed_str("G", &r);
	expect_result(&r, 1, 0, NULL);
	feed_str("ET / HTTP/1.1\r\nX-Request-ID: abc\r\n", &r);
	expect_result(&r, 0, 0, NULL);
	/* The block ends with this CRLF; completion may be reported on the CR
	 * or on the LF, but exactly once, with the id. */
	struct http_feed_result r2;
	feed_str("\r", &r);
	feed_str("\n", &r2);
	assert_int_equal(r.requests_started + r2.requests_started, 0);
	assert_int_equal(r.headers_completed + r2.headers_completed, 1);
	assert_false(r.not_http || r.desync || r2.not_http || r2.desync);
	if (r.headers_completed)
		expect_id(r.id_len, r.id, "abc");
	else
		expect_id(r2.id_len, r2.id, "abc");
	feed_str("P", &r);
	expect_result(&r, 1, 0, NULL);
	feed_str("OST / HTTP/1.1\r\n\r\n", &r);
	expect_result(&r, 0, 1, NULL);
	/* an empty feed reports nothing */
	feed("", 0, &r);
	expect_nothing(&r);
}

static void test_bytewise_simple(void **state)
{
	(void)state;
	const char *req = "GET / HTTP/1.1\r\nHost: x\r\nX-Request-ID: abc\r\n\r\n";
	expect_split_invariant(req, strlen(req), 1, 1, "abc");
	const char *tp = "GET / HTTP/1.1\r\ntraceparent:  " TP " \r\n\r\n";
	expect_split_invariant(tp, strlen(tp), 1, 1, TRACE);
	const char *prec = "GET / HTTP/1.1\r\nX-Trace-ID: t\r\nX-Request-ID: r\r\n"
			   "X-Correlation-ID: c\r\n\r\n";
	expect_split_invariant(prec, strlen(prec), 1, 1, "r");
}

static const char composite[] =
	"GET /a HTTP/1.1\r\nHost: x\r\nX-Request-ID: first\r\n\r\n"
	"POST /b HTTP/1.1\r\nContent-Length: 18\r\nX-Correlation-ID: second\r\n\r\n"
	"GET / HTTP/1.1\r\n\r\n"
	"POST /c HTTP/1.1\r\nTransfer-Encoding: gzip, chunked\r\ntraceparent: " TP "\r\n\r\n"
	"12;ext=\"q\"\r\nGET / HTTP/1.1\r\n\r\n\r\n"
	"A\r\n0123456789\r\n"
	"0\r\nX-Trailer: GET / HTTP/1.1\r\n\r\n"
	"GET /d HTTP/1.0\nX-Trace-ID: fourth\n\n";

static void test_composite_stream_splits(void **state)
{
	(void)state;
	expect_split_invariant(composite, sizeof composite - 1, 4, 4, "fourth");
}

static void test_composite_stream_ids(void **state)
{
	(void)state;
	/* fed request by request, each gets its own id */
	static const char *const parts[] = {
		"GET /a HTTP/1.1\r\nHost: x\r\nX-Request-ID: first\r\n\r\n",
		"POST /b HTTP/1.1\r\nContent-Length: 18\r\nX-Correlation-ID: second\r\n\r\n",
		"GET / HTTP/1.1\r\n\r\n",
		"POST /c HTTP/1.1\r\nTransfer-Encoding: gzip, chunked\r\ntraceparent: " TP "\r\n\r\n",
		"12;ext=\"q\"\r\nGET / HTTP/1.1\r\n\r\n\r\nA\r\n0123456789\r\n"
		"0\r\nX-Trailer: GET / HTTP/1.1\r\n\r\n",
		"GET /d HTTP/1.0\nX-Trace-ID: fourth\n\n",
	};
	struct http_feed_result r;
	init_default();
	feed_str(parts[0], &r);
	expect_result(&r, 1, 1, "first");
	feed_str(parts[1], &r);
	expect_result(&r, 1, 1, "second");
	feed_str(parts[2], &r);
	expect_result(&r, 0, 0, NULL);
	feed_str(parts[3], &r);
	expect_result(&r, 1, 1, TRACE);
	feed_str(parts[4], &r);
	expect_result(&r, 0, 0, NULL);
	feed_str(parts[5], &r);
	expect_result(&r, 1, 1, "fourth");
}

/* ---- bodies ------------------------------------------------------------ */

static void test_content_length_body_skipped(void **state)
{
	(void)state;
	struct http_feed_result r;
	init_default();
	feed_str("POST / HTTP/1.1\r\nContent-Length: 18\r\nX-Request-ID: p\r\n\r\n"
		 "GET / HTTP/1.1\r\n\r\n", &r);
	expect_result(&r, 1, 1, "p");
	feed_str("GET /next HTTP/1.1\r\nX-Request-ID: n\r\n\r\n", &r);
	expect_result(&r, 1, 1, "n");

	/* header name case-insensitive, Content-Length 0 */
	init_default();
	feed_str("POST / HTTP/1.1\r\ncontent-length:  18 \r\n\r\nGET / HTTP/1.1\r\n\r\n"
		 "POST / HTTP/1.1\r\nCONTENT-LENGTH: 0\r\n\r\n"
		 "GET / HTTP/1.1\r\nX-Request-ID: z\r\n\r\n", &r);
	expect_result(&r, 3, 3, "z");
}

static void test_large_body_in_pieces(void **state)
{
	(void)state;
	struct http_feed_result r;
	init_default();
	feed_str("PUT /up HTTP/1.1\r\nContent-Length: 100000\r\nX-Request-ID: up\r\n\r\n", &r);
	expect_result(&r, 1, 1, "up");
	static const char pat[] = "GET / HTTP/1.1\r\nX-Request-ID: no\r\n\r\n";
	char chunk[1000];
	for (size_t i = 0; i < sizeof chunk; i++)
		chunk[i] = pat[i % (sizeof pat - 1)];
	for (int i = 0; i < 100; i++) {
		feed(chunk, sizeof chunk, &r);
		expect_result(&r, 0, 0, NULL);
	}
	feed_str("GET / HTTP/1.1\r\nX-Request-ID: after\r\n\r\n", &r);
	expect_result(&r, 1, 1, "after");
}

static void test_chunked_body_skipped(void **state)
{
	(void)state;
	struct http_feed_result r;
	init_default();
	feed_str("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nX-Request-ID: c1\r\n\r\n"
		 "12;name=value;other\r\nGET / HTTP/1.1\r\n\r\n\r\n"
		 "0005\r\nhello\r\n"
		 "18\r\nGET / HTTP/1.1\r\nX: y\r\n\r\n\r\n"
		 "0;last=1\r\nTrailer-One: a\r\nTrailer-Two: GET / HTTP/1.1\r\n\r\n"
		 "GET /next HTTP/1.1\r\nX-Request-ID: nxt\r\n\r\n", &r);
	expect_result(&r, 2, 2, "nxt");

	/* no trailers, bare LF */
	init_default();
	feed_str("POST / HTTP/1.1\nTransfer-Encoding: chunked\n\n"
		 "12\nGET / HTTP/1.1\r\n\r\n\n0\n\n"
		 "GET /next HTTP/1.1\nX-Request-ID: nxt\n\n", &r);
	expect_result(&r, 2, 2, "nxt");

	/* in separate calls */
	init_default();
	feed_str("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nX-Request-ID: c1\r\n\r\n", &r);
	expect_result(&r, 1, 1, "c1");
	feed_str("12\r\nGET / HTTP/1.1\r\n\r\n\r\n", &r);
	expect_result(&r, 0, 0, NULL);
	feed_str("0\r\n", &r);
	expect_result(&r, 0, 0, NULL);
	feed_str("X-T: GET / HTTP/1.1\r\n", &r);
	expect_result(&r, 0, 0, NULL);
	feed_str("\r\n", &r);
	expect_result(&r, 0, 0, NULL);
	feed_str("GET / HTTP/1.1\r\n\r\n", &r);
	expect_result(&r, 1, 1, NULL);
}

static void test_transfer_encoding_list(void **state)
{
	(void)state;
	struct http_feed_result r;
	init_default();
	feed_str("POST / HTTP/1.1\r\nTransfer-Encoding: gzip, chunked\r\n\r\n"
		 "12\r\nGET / HTTP/1.1\r\n\r\n\r\n0\r\n\r\n"
		 "GET / HTTP/1.1\r\nX-Request-ID: b\r\n\r\n", &r);
	expect_result(&r, 2, 2, "b");
}

static void test_chunked_overrides_content_length(void **state)
{
	(void)state;
	/* RFC 7230 3.3.3: Transfer-Encoding overrides Content-Length */
	struct http_feed_result r;
	init_default();
	feed_str("POST / HTTP/1.1\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n"
		 "12\r\nGET / HTTP/1.1\r\n\r\n\r\n0\r\n\r\n"
		 "GET / HTTP/1.1\r\nX-Request-ID: b\r\n\r\n", &r);
	expect_result(&r, 2, 2, "b");
}

static void test_long_future_traceparent(void **state)
{
	(void)state;
	/* a future-version traceparent longer than the id buffer is still
	 * valid: only the first 55 chars and the '-' after them matter */
	char req[600];
	char tail[300];
	memset(tail, 'z', sizeof tail - 1);
	tail[sizeof tail - 1] = '\0';
	snprintf(req, sizeof req, "GET / HTTP/1.1\r\ntraceparent: cc-" TRACE
		 "-00f067aa0ba902b7-01-%s\r\n\r\n", tail);
	one_request(req, TRACE);
}

static void test_transfer_encoding_case_insensitive(void **state)
{
	(void)state;
	/* RFC 7230 4: transfer-coding names are case-insensitive */
	struct http_feed_result r;
	init_default();
	feed_str("POST / HTTP/1.1\r\ntransfer-encoding: Chunked\r\n\r\n"
		 "12\r\nGET / HTTP/1.1\r\n\r\n\r\n0\r\n\r\n"
		 "GET / HTTP/1.1\r\nX-Request-ID: b\r\n\r\n", &r);
	expect_result(&r, 2, 2, "b");
}

/* ---- pipelining and keep-alive ----------------------------------------- */

static void test_request_line_kept(void **state)
{
	(void)state;
	struct http_feed_result r;
	static const char req[] = "POST /a/b?c=d HTTP/1.1\r\nX-Request-ID: k\r\nContent-Length: 3\r\n\r\nabc";
	init_default();
	feed_str(req, &r);
	assert_int_equal(r.line_len, strlen("POST /a/b?c=d HTTP/1.1"));
	assert_memory_equal(r.line, "POST /a/b?c=d HTTP/1.1", r.line_len);

	/* One byte per call: the same line, reported with the header end. */
	init_default();
	uint8_t got = 0;
	for (size_t i = 0; i < sizeof(req) - 1; i++) {
		feed(req + i, 1, &r);
		if (r.headers_completed) {
			got = r.line_len;
			assert_memory_equal(r.line, "POST /a/b?c=d HTTP/1.1", got);
		}
	}
	assert_int_equal(got, strlen("POST /a/b?c=d HTTP/1.1"));

	/* A long target: its first REQUEST_LINE_MAX bytes. */
	char longreq[400];
	char target[300];
	memset(target, 'x', sizeof(target) - 1);
	target[sizeof(target) - 1] = '\0';
	snprintf(longreq, sizeof(longreq), "GET /%s HTTP/1.0\r\n\r\n", target);
	init_default();
	feed_str(longreq, &r);
	assert_int_equal(r.line_len, REQUEST_LINE_MAX);
	assert_memory_equal(r.line, longreq, REQUEST_LINE_MAX);

	/* Pipelined: the last request's line, like its id. */
	init_default();
	feed_str("GET /1 HTTP/1.1\r\n\r\nHEAD /2 HTTP/1.0\r\n\r\n", &r);
	assert_int_equal(r.line_len, strlen("HEAD /2 HTTP/1.0"));
	assert_memory_equal(r.line, "HEAD /2 HTTP/1.0", r.line_len);
}

static void test_connect_tunnel(void **state)
{
	(void)state;
	struct http_feed_result r;
	init_default();
	feed_str("CONNECT example.com:443 HTTP/1.1\r\nHost: example.com\r\n"
		 "X-Request-ID: tun\r\n\r\n"
		 "GET /inner HTTP/1.1\r\nX-Request-ID: inner\r\n\r\n", &r);
	expect_result(&r, 1, 1, "tun");
	/* Tunnelled bytes, HTTP-looking or not, are never parsed. */
	feed_str("GET /more HTTP/1.1\r\n\r\n\x16\x03\x01", &r);
	expect_result(&r, 0, 0, NULL);
	assert_false(r.not_http);
	assert_false(r.desync);

	/* Only the method CONNECT, exactly. */
	init_default();
	feed_str("CONNEC /x HTTP/1.1\r\n\r\nGET /y HTTP/1.1\r\nX-Request-ID: y\r\n\r\n", &r);
	expect_result(&r, 2, 2, "y");
	init_default();
	feed_str("CONNECTS /x HTTP/1.1\r\n\r\nGET /y HTTP/1.1\r\nX-Request-ID: y\r\n\r\n", &r);
	expect_result(&r, 2, 2, "y");
	init_default();
	feed_str("connect /x HTTP/1.1\r\n\r\nGET /y HTTP/1.1\r\nX-Request-ID: y\r\n\r\n", &r);
	expect_result(&r, 2, 2, "y");
}

/* Expect and Upgrade are noted (a 100 Continue or a 101 may answer the
 * request first), in any case, their values never taken for an id; an id
 * header of the same name still gives its id. */
static void test_asked_interim(void **state)
{
	(void)state;
	struct http_feed_result r;
	init_default();
	feed_str("GET / HTTP/1.1\r\nUpgrade: websocket\r\nX-Request-ID: u\r\n\r\n", &r);
	expect_result(&r, 1, 1, "u");
	assert_true(http_parser_asked_interim(&g_p));
	feed_str("POST / HTTP/1.1\r\nEXPECT: 100-continue\r\nContent-Length: 0\r\n\r\n", &r);
	expect_result(&r, 1, 1, NULL);
	assert_true(http_parser_asked_interim(&g_p));
	feed_str("GET / HTTP/1.1\r\nUpgrade-Insecure-Requests: 1\r\nExpects: x\r\n\r\n", &r);
	expect_result(&r, 1, 1, NULL);
	assert_false(http_parser_asked_interim(&g_p));
	init_with_headers("upgrade,X-Request-ID");
	feed_str("GET / HTTP/1.1\r\nX-Request-ID: x\r\nUpgrade: up-1\r\n\r\n", &r);
	expect_result(&r, 1, 1, "up-1");
	assert_true(http_parser_asked_interim(&g_p));
}

/* A body's bytes, of a length or in chunks with their sizes, CRLFs and
 * trailer, down to a CR whose LF has not come, are inside a body; a head
 * and what follows a body are not. */
static void test_in_body(void **state)
{
	(void)state;
	struct http_feed_result r;
	init_default();
	assert_false(http_parser_in_body(&g_p));
	feed_str("POST / HTTP/1.1\r\nContent-Length: 4\r\n", &r);
	assert_false(http_parser_in_body(&g_p));
	feed_str("\r\n", &r);
	assert_true(http_parser_in_body(&g_p));
	feed_str("abc", &r);
	assert_true(http_parser_in_body(&g_p));
	feed_str("d", &r);
	assert_false(http_parser_in_body(&g_p));
	feed_str("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n", &r);
	const char *pieces[] = {"3", "\r", "\n", "ab", "c", "\r", "\n", "0", "\r\n", "X: 1", "\r\n", "\r"};
	for (size_t i = 0; i < sizeof(pieces) / sizeof(pieces[0]); i++) {
		assert_true(http_parser_in_body(&g_p));
		feed_str(pieces[i], &r);
	}
	feed_str("\n", &r);
	assert_false(http_parser_in_body(&g_p));
	feed_str("GET / HTTP/1.1\r\nContent-Length: 0\r\n\r\n", &r);
	assert_false(http_parser_in_body(&g_p));
}

static void test_pipelined(void **state)
{
	(void)state;
	struct http_feed_result r;
	init_default();
	feed_str("GET /1 HTTP/1.1\r\nX-Request-ID: a\r\n\r\n"
		 "GET /2 HTTP/1.1\r\nX-Request-ID: b\r\n\r\n"
		 "GET /3 HTTP/1.1\r\nX-Request-ID: c\r\n\r\n", &r);
	expect_result(&r, 3, 3, "c");

	/* the id is the last request's, even if it has none */
	init_default();
	feed_str("GET /1 HTTP/1.1\r\nX-Request-ID: a\r\n\r\n"
		 "GET /2 HTTP/1.1\r\nX-Request-ID: b\r\n\r\n"
		 "GET /3 HTTP/1.1\r\n\r\n", &r);
	expect_result(&r, 3, 3, NULL);

	/* third request only begun */
	init_default();
	feed_str("GET /1 HTTP/1.1\r\nX-Request-ID: a\r\n\r\n"
		 "GET /2 HTTP/1.1\r\nX-Request-ID: b\r\n\r\n"
		 "GET /3 HTTP/1.1\r\nX-Req", &r);
	expect_result(&r, 3, 2, "b");
	feed_str("uest-ID: c\r\n\r\n", &r);
	expect_result(&r, 0, 1, "c");
}

static void test_keep_alive_no_leak(void **state)
{
	(void)state;
	struct http_feed_result r;
	init_default();
	feed_str("GET /1 HTTP/1.1\r\nX-Request-ID: abc\r\n\r\n", &r);
	expect_result(&r, 1, 1, "abc");
	feed_str("GET /2 HTTP/1.1\r\nHost: x\r\n\r\n", &r);
	expect_result(&r, 1, 1, NULL);
	feed_str("GET /3 HTTP/1.1\r\nX-Correlation-ID: xyz\r\n\r\n", &r);
	expect_result(&r, 1, 1, "xyz");
	feed_str("GET /4 HTTP/1.1\r\ntraceparent: " TP "\r\n\r\n", &r);
	expect_result(&r, 1, 1, TRACE);
	feed_str("GET /5 HTTP/1.1\r\n\r\n", &r);
	expect_result(&r, 1, 1, NULL);
	/* a traceparent seen once in each of two requests is not "two" */
	feed_str("GET /6 HTTP/1.1\r\ntraceparent: " TP "\r\n\r\n", &r);
	expect_result(&r, 1, 1, TRACE);
	/* a longer id followed by a shorter one */
	feed_str("GET /7 HTTP/1.1\r\nX-Request-ID: longer-id-value\r\n\r\n", &r);
	expect_result(&r, 1, 1, "longer-id-value");
	feed_str("GET /8 HTTP/1.1\r\nX-Request-ID: s\r\n\r\n", &r);
	expect_result(&r, 1, 1, "s");
}

static void test_empty_lines_before_request(void **state)
{
	(void)state;
	struct http_feed_result r;
	init_default();
	feed_str("\r\n", &r);
	expect_result(&r, 0, 0, NULL);
	feed_str("\r\nGET / HTTP/1.1\r\nX-Request-ID: abc\r\n\r\n", &r);
	expect_result(&r, 1, 1, "abc");
	/* between keep-alive requests */
	feed_str("\r\nGET / HTTP/1.1\r\nX-Request-ID: def\r\n\r\n", &r);
	expect_result(&r, 1, 1, "def");

	one_request("\n\nGET / HTTP/1.1\nX-Request-ID: abc\n\n", "abc");
	one_request("\r\n\r\nGET / HTTP/1.1\r\nX-Request-ID: abc\r\n\r\n", "abc");
}

/* ---- obs-fold ---------------------------------------------------------- */

static void test_obs_fold(void **state)
{
	(void)state;
	struct http_feed_result r;
	init_default();
	feed_str("GET / HTTP/1.1\r\nX-Request-ID: abc\r\n continued\r\n\r\n", &r);
	expect_result(&r, 1, 1, NULL);
	/* the next request is unaffected */
	feed_str("GET / HTTP/1.1\r\nX-Request-ID: def\r\n\r\n", &r);
	expect_result(&r, 1, 1, "def");

	/* a fold on another header taints the whole request */
	one_request("GET / HTTP/1.1\r\nX-Other: a\r\n\tb\r\nX-Request-ID: abc\r\n\r\n", NULL);
	one_request("GET / HTTP/1.1\r\nX-Request-ID: abc\r\nX-Other: a\r\n  b\r\n\r\n", NULL);
}

/* ---- not HTTP ---------------------------------------------------------- */

static void expect_not_http(const char *buf, size_t len)
{
	struct http_feed_result r;
	init_default();
	feed(buf, len, &r);
	if (!r.not_http) {
		char shown[80];
		snprintf(shown, sizeof shown, "%.*s", (int)(len < 60 ? len : 60), buf);
		fail_msg("not reported as not HTTP: \"%s\"", shown);
	}
	assert_false(r.desync);
	assert_int_equal(r.headers_completed, 0);
	assert_int_equal(r.id_len, 0);
	assert_true(http_parser_stopped(&g_p));
	/* later calls report nothing */
	feed_str("GET / HTTP/1.1\r\nX-Request-ID: abc\r\n\r\n", &r);
	expect_nothing(&r);
	assert_true(http_parser_stopped(&g_p));
	feed_str("\r\n", &r);
	expect_nothing(&r);

	/* byte-wise: not_http reported in exactly one call, never desync */
	struct totals t;
	feed_steps(buf, len, 1, &t);
	assert_int_equal(t.not_http_calls, 1);
	assert_int_equal(t.desync_calls, 0);
	assert_int_equal(t.completed, 0);
	assert_true(http_parser_stopped(&g_p));
}

static void test_not_http(void **state)
{
	(void)state;
	static const char tls[] = "\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03";
	expect_not_http(tls, sizeof tls - 1);
	static const char ssh[] = "SSH-2.0-OpenSSH_9.6\r\n";
	expect_not_http(ssh, sizeof ssh - 1);
	expect_not_http("hello\n", 6);
	expect_not_http("\x00\x01\x02", 3);
	expect_not_http("GET / HTTP/2.0\r\n\r\n", 18);
	static const char pri[] = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
	expect_not_http(pri, sizeof pri - 1);
	static const char http09[] = "GET /\r\n";
	expect_not_http(http09, sizeof http09 - 1);
	static const char badver[] = "GET / FOO/1.1\r\n\r\n";
	expect_not_http(badver, sizeof badver - 1);
}

static void test_starts_tls(void **state)
{
	(void)state;
	static const char hello[] = "\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03";
	for (size_t n = 1; n < sizeof hello; n++)
		assert_true(http_starts_tls(hello, n));
	assert_false(http_starts_tls(hello, 0));
	assert_false(http_starts_tls("\x16\x02", 2)); /* no TLS version */
	assert_false(http_starts_tls("\x17\x03\x03", 3)); /* application data */
	assert_false(http_starts_tls("GET / HTTP/1.1\r\n", 16));
	assert_false(http_starts_tls("\r\nGET", 5));
}

/* The first bytes of the gateway protocols front servers pass requests to
 * applications in, each prefix of them: FastCGI's BEGIN_REQUEST (and
 * GET_VALUES), SCGI's netstring with CONTENT_LENGTH first, a uwsgi packet
 * as nginx's uwsgi_pass writes it. None of them from an HTTP request, TLS,
 * the HTTP/2 preface, a PROXY header or another protocol. */
static void test_starts_gateway(void **state)
{
	(void)state;
	static const char fastcgi[] = "\x01\x01\x00\x01\x00\x08\x00\x00\x00\x01\x00\x00\x00\x00\x00\x00"
				      "\x01\x04\x00\x01";
	static const char scgi[] = "70:CONTENT_LENGTH\0" "27\0SCGI\0" "1\0";
	static const char uwsgi[] = "\x00\x7a\x01\x00\x0c\x00QUERY_STRING\x03\x00q=1";
	static const struct {
		const char *bytes;
		size_t len;
	} yes[] = {
		{fastcgi, sizeof fastcgi - 1},
		{"\x01\x09\x00\x00\x00\x00\x00\x00", 8}, /* GET_VALUES */
		{scgi, sizeof scgi - 1},
		{uwsgi, sizeof uwsgi - 1},
	};
	for (size_t k = 0; k < sizeof yes / sizeof yes[0]; k++)
		for (size_t n = 1; n <= yes[k].len; n++)
			if (yes[k].bytes != scgi || n >= 3)
				assert_true(http_starts_gateway(yes[k].bytes, n));
	/* too few bytes to tell: an SCGI length's digits wait for more (the
	 * parser takes them as a method's start); 1-3 bytes that may begin a
	 * uwsgi header count as one (the parser fails at the first) */
	assert_false(http_starts_gateway(scgi, 2));
	assert_false(http_starts_gateway("\x05\x01\x00", 3)); /* SOCKS5's greeting */
	assert_false(http_starts_gateway("\x10", 1));         /* MQTT, a byte at a time */
	assert_false(http_starts_gateway("", 0));
	static const struct {
		const char *bytes;
		size_t len;
	} no[] = {
		{"GET / HTTP/1.1\r\n\r\n", 18},
		{"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03", 11}, /* TLS */
		{"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", 24},
		{"\r\n\r\n\0\r\nQUIT\n\x21\x11\x00\x0c", 16}, /* PROXY v2 */
		{"PING\r\n", 6},
		{"\x01\x05\x00\x01\x00\x10\x00\x00", 8}, /* FastCGI STDIN: no start */
		{"\x02\x01\x00\x01\x00\x08\x00\x00", 8}, /* FastCGI version 2 */
		{"70:QUERY_STRING\0", 16},                /* SCGI's first is CONTENT_LENGTH */
		{"123456789:CONTENT_LENGTH\0", 25},        /* no netstring length */
		{"12345678", 8},                            /* nor digits alone */
		{"\x30\x0c\x02\x01\x01\x60\x07\x02\x01\x03\x04\x00\x80\x00", 14}, /* LDAP bind */
		{"6191, 23\r\n", 10},                         /* ident */
		{"12 GET", 6},
		{"\x00\x7a\x01\x01\x0c\x00QUERY", 11},     /* modifier2 not 0 */
		{"\x00\x7a\x01\x00\x00\x00", 6},            /* a name of no bytes */
		{"\x00\x7a\x01\x00\x0c\x00query_string", 18}, /* not a CGI name */
		{"\x00\x7a\x01\x00\xff\x00QUERY", 11},     /* a name too long */
	};
	for (size_t k = 0; k < sizeof no / sizeof no[0]; k++)
		assert_false(http_starts_gateway(no[k].bytes, no[k].len));
}

/* The rest of a PROXY v2 signature after CR and LF bytes taken as empty
 * lines, at every split of "\r\n\r\n"; nothing else. */
static void test_proxy_v2_rest(void **state)
{
	(void)state;
	static const char sig[] = "\r\n\r\n\0\r\nQUIT\n\x21";
	for (size_t skipped = 1; skipped <= 4; skipped++)
		for (size_t n = 1; skipped + n <= sizeof sig - 1; n++)
			if (skipped + n > 4)
				assert_true(http_proxy_v2_rest(sig + skipped, n));
	assert_false(http_proxy_v2_rest("", 0));
	assert_false(http_proxy_v2_rest("\n", 1));
	assert_false(http_proxy_v2_rest("\0\r\nQUIX", 7));
	assert_false(http_proxy_v2_rest("\x01\x01", 2));
	assert_false(http_proxy_v2_rest("GET / HTTP/1.1\r\n", 16));
}

/* The HTTP/2 preface, from the bytes the parser fails at on: each of its
 * prefixes from "PRI * HTTP/2" on, and it whole with a frame after it. */
static void test_starts_h2(void **state)
{
	(void)state;
	static const char preface[] = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\0\0\0\4\0";
	for (size_t n = 12; n < sizeof preface; n++)
		assert_true(http_starts_h2(preface, n));
	assert_false(http_starts_h2(preface, 11));
	expect_not_http(preface, 14);
	assert_false(http_starts_h2("PRI * HTTP/2.0\r\n\r\nSX", 20));
	assert_false(http_starts_h2("PRI * HTTP/1.1\r\n\r\n", 18));
	assert_false(http_starts_h2("GET / HTTP/2.0\r\n\r\n", 18));
}

/* PROXY protocol headers (version 1 and 2) before a stream's first request:
 * their lengths once whole, SIZE_MAX while cut short, 0 for anything else,
 * and for too few bytes to tell from a request. */
static void test_proxy_header_len(void **state)
{
	(void)state;
	static const char v1[] = "PROXY TCP4 192.0.2.1 192.0.2.2 56324 443\r\nGET / HTTP/1.1\r\n";
	size_t v1_len = strlen("PROXY TCP4 192.0.2.1 192.0.2.2 56324 443\r\n");
	assert_int_equal(http_proxy_header_len(v1, sizeof v1 - 1), v1_len);
	assert_int_equal(http_proxy_header_len(v1, v1_len), v1_len);
	for (size_t n = 6; n < v1_len; n++)
		assert_int_equal(http_proxy_header_len(v1, n), SIZE_MAX);
	for (size_t n = 0; n < 6; n++)
		assert_int_equal(http_proxy_header_len(v1, n), 0);
	assert_int_equal(http_proxy_header_len("PROXY UNKNOWN\r\n", 15), 15);
	char longest[120];
	memset(longest, 'x', sizeof longest);
	memcpy(longest, "PROXY ", 6);
	memcpy(longest + 105, "\r\n", 2);
	assert_int_equal(http_proxy_header_len(longest, sizeof longest), 107);
	longest[105] = 'x';
	assert_int_equal(http_proxy_header_len(longest, sizeof longest), 0); /* too long */
	assert_int_equal(http_proxy_header_len("PROPFIND / HTTP/1.1\r\n", 21), 0);
	assert_int_equal(http_proxy_header_len("POST / HTTP/1.1\r\n", 17), 0);

	/* Version 2: signature, version 2 and a command, family, length 12
	 * (two IPv4 addresses and ports), then a request. */
	static const char v2[] = "\r\n\r\n\0\r\nQUIT\n\x21\x11\x00\x0c"
				 "\xc0\x00\x02\x01\xc0\x00\x02\x02\xdc\x04\x01\xbb"
				 "GET / HTTP/1.1\r\n";
	assert_int_equal(http_proxy_header_len(v2, sizeof v2 - 1), 28);
	assert_int_equal(http_proxy_header_len(v2, 28), 28);
	for (size_t n = 5; n < 28; n++)
		assert_int_equal(http_proxy_header_len(v2, n), SIZE_MAX);
	for (size_t n = 0; n < 5; n++)
		assert_int_equal(http_proxy_header_len(v2, n), 0);
	char v3[sizeof v2];
	memcpy(v3, v2, sizeof v2);
	v3[12] = 0x31; /* version 3: not one this knows */
	assert_int_equal(http_proxy_header_len(v3, sizeof v3 - 1), 0);
	assert_int_equal(http_proxy_header_len("\r\n\r\nGET / HTTP/1.1\r\n", 20), 0);
}

static void test_method_length(void **state)
{
	(void)state;
	char req[128];
	/* 32 chars: still a method */
	snprintf(req, sizeof req, "%s / HTTP/1.1\r\nX-Request-ID: abc\r\n\r\n",
		 "ABCDEFGHIJKLMNOPQRSTUVWXYZABCDEF");
	one_request(req, "abc");
	/* 33 chars: not HTTP */
	snprintf(req, sizeof req, "%s / HTTP/1.1\r\nX-Request-ID: abc\r\n\r\n",
		 "ABCDEFGHIJKLMNOPQRSTUVWXYZABCDEFG");
	expect_not_http(req, strlen(req));
	/* a long method without a space, e.g. a binary or text protocol */
	char longm[200];
	memset(longm, 'A', sizeof longm);
	expect_not_http(longm, sizeof longm);
}

static void test_desync_after_request(void **state)
{
	(void)state;
	struct http_feed_result r;
	init_default();
	feed_str("GET / HTTP/1.1\r\n\r\n", &r);
	expect_result(&r, 1, 1, NULL);
	assert_false(http_parser_stopped(&g_p));
	feed("\x00\x01garbage", 9, &r);
	assert_true(r.desync);
	assert_false(r.not_http);
	assert_int_equal(r.headers_completed, 0);
	assert_int_equal(r.id_len, 0);
	assert_true(http_parser_stopped(&g_p));
	feed_str("GET / HTTP/1.1\r\nX-Request-ID: abc\r\n\r\n", &r);
	expect_nothing(&r);

	/* in one buffer */
	init_default();
	static const char both[] = "GET / HTTP/1.1\r\nX-Request-ID: a\r\n\r\n\x00\x01garbage";
	feed(both, sizeof both - 1, &r);
	assert_int_equal(r.requests_started, 1);
	assert_int_equal(r.headers_completed, 1);
	assert_true(r.desync);
	assert_false(r.not_http);
	assert_true(http_parser_stopped(&g_p));

	/* garbage in place of a second request line (HTTP/2.0 version) */
	init_default();
	feed_str("GET / HTTP/1.1\r\n\r\n", &r);
	feed_str("GET / HTTP/2.0\r\n\r\n", &r);
	assert_true(r.desync);
	assert_false(r.not_http);
	assert_int_equal(r.headers_completed, 0);
	assert_true(http_parser_stopped(&g_p));
}

static void test_stopped_initially_false(void **state)
{
	(void)state;
	init_default();
	assert_false(http_parser_stopped(&g_p));
	struct http_feed_result r;
	feed("", 0, &r);
	expect_nothing(&r);
	assert_false(http_parser_stopped(&g_p));
}

/* ---- inbound trace context (traceparent, tracestate) ------------------- */

#define PARENT "00f067aa0ba902b7"
#define TS_EX "congo=t61rcWkgMzE,rojo=00f067aa0ba902b7"

struct want_trace {
	bool valid;
	uint8_t version;
	const char *trace_id;   /* 32 chars */
	const char *parent_id;  /* 16 chars */
	uint8_t flags;
	const char *tracestate; /* NULL: tracestate_len 0 */
};

static const struct want_trace no_trace = { false, 0, NULL, NULL, 0, NULL };
static const struct want_trace tp_plain = { true, 0, TRACE, PARENT, 0x01, NULL };

static struct want_trace with_ts(struct want_trace w, const char *tracestate)
{
	w.tracestate = tracestate;
	return w;
}

static void check_trace(bool valid, const struct traceparent *tp, uint16_t ts_len,
			const char *ts, const struct want_trace *w, const char *where, size_t at)
{
	if (valid != w->valid)
		fail_msg("%s %zu: trace_valid %d, want %d", where, at, valid, w->valid);
	size_t want_len = w->tracestate ? strlen(w->tracestate) : 0;
	if (ts_len != want_len || (want_len && memcmp(ts, w->tracestate, want_len) != 0))
		fail_msg("%s %zu: tracestate \"%.*s\" (len %u), want \"%s\"", where, at,
			 ts_len <= TRACESTATE_MAX ? (int)ts_len : 0, ts, (unsigned)ts_len,
			 w->tracestate ? w->tracestate : "");
	if (!w->valid)
		return;
	assert_int_equal(tp->version, w->version);
	assert_memory_equal(tp->trace_id, w->trace_id, 32);
	assert_memory_equal(tp->parent_id, w->parent_id, 16);
	assert_int_equal(tp->flags, w->flags);
}

/* One request on a parser configured with REQID_HEADERS=headers (NULL:
 * default): fed whole, then in steps, then cut in two at every byte
 * boundary; every way gives the same id and trace context. */
static void trace_request_n(const char *headers, const char *req, size_t len,
			    const struct want_trace *w, const char *want_id)
{
	struct http_feed_result r;
	init_with_headers(headers);
	feed(req, len, &r);
	expect_result(&r, 1, 1, want_id);
	check_trace(r.trace_valid, &r.trace, r.tracestate_len, r.tracestate, w, "whole", len);
	assert_false(http_parser_stopped(&g_p));

	static const size_t steps[] = { 1, 2, 3, 7, 13, 64 };
	struct totals t;
	g_split_headers = headers;
	for (size_t i = 0; i < sizeof steps / sizeof steps[0]; i++) {
		feed_steps(req, len, steps[i], &t);
		expect_totals(&t, 1, 1, want_id);
		check_trace(t.trace_valid, &t.trace, t.tracestate_len, t.tracestate, w, "step",
			    steps[i]);
	}
	size_t stride = len > 3000 ? 61 : 1;
	for (size_t cut = 0; cut <= len; cut += stride) {
		feed_cut(req, len, cut, &t);
		expect_totals(&t, 1, 1, want_id);
		check_trace(t.trace_valid, &t.trace, t.tracestate_len, t.tracestate, w, "cut at",
			    cut);
	}
	g_split_headers = NULL;
}

static void trace_request(const char *req, const struct want_trace *w, const char *want_id)
{
	trace_request_n(NULL, req, strlen(req), w, want_id);
}

/* Writes a valid tracestate list of exactly len bytes (len >= 6) with keys
 * <key>000, <key>001, ... and no OWS; returns buf. */
static char *make_tracestate(char *buf, size_t len, char key)
{
	size_t o = 0, member = 0;
	while (len - o >= 101 + 6) {
		o += (size_t)sprintf(buf + o, "%c%03zu=", key, member++);
		memset(buf + o, 'v', 95);
		o += 95;
		buf[o++] = ',';
	}
	size_t rest = len - o;
	assert_true(rest >= 6);
	o += (size_t)sprintf(buf + o, "%c%03zu=", key, member);
	memset(buf + o, 'w', rest - 5);
	o += rest - 5;
	buf[o] = '\0';
	assert_int_equal(strlen(buf), len);
	return buf;
}

static void test_trace_valid_fields(void **state)
{
	(void)state;
	trace_request("GET / HTTP/1.1\r\ntraceparent: " TP "\r\n\r\n", &tp_plain, TRACE);
	trace_request("GET / HTTP/1.1\r\nHost: x\r\ntraceparent: 00-" TRACE "-" PARENT
		      "-00\r\nAccept: */*\r\n\r\n",
		      &(struct want_trace){ true, 0, TRACE, PARENT, 0x00, NULL }, TRACE);
	/* flags are carried as they came (unknown bits too) */
	trace_request("GET / HTTP/1.1\r\ntraceparent: 00-0af7651916cd43dd8448eb211c80319c"
		      "-b7ad6b7169203331-ff\r\n\r\n",
		      &(struct want_trace){ true, 0, "0af7651916cd43dd8448eb211c80319c",
					    "b7ad6b7169203331", 0xff, NULL },
		      "0af7651916cd43dd8448eb211c80319c");
	/* with a tracestate, before or after the traceparent */
	struct want_trace w = with_ts(tp_plain, TS_EX);
	trace_request("GET / HTTP/1.1\r\ntraceparent: " TP "\r\ntracestate: " TS_EX "\r\n\r\n",
		      &w, TRACE);
	trace_request("GET / HTTP/1.1\r\ntracestate: " TS_EX "\r\ntraceparent: " TP "\r\n\r\n",
		      &w, TRACE);
	/* LF-only line endings */
	trace_request("GET / HTTP/1.1\ntracestate: " TS_EX "\ntraceparent: " TP "\n\n", &w,
		      TRACE);
	/* an id header of higher precedence stays the id; the trace is kept */
	trace_request("GET / HTTP/1.1\r\ntraceparent: " TP "\r\nX-Request-ID: rid\r\n"
		      "tracestate: a=1\r\n\r\n", &(struct want_trace){ true, 0, TRACE, PARENT,
								     0x01, "a=1" }, "rid");
}

static void test_trace_header_name_case(void **state)
{
	(void)state;
	static const char *const accepted[] = {
		"traceparent", "TraceParent", "TRACEPARENT", "tRACEpARENT",
	};
	static const char *const state_names[] = { "tracestate", "TraceState", "TRACESTATE" };
	char req[512];
	for (size_t i = 0; i < sizeof accepted / sizeof accepted[0]; i++) {
		for (size_t j = 0; j < sizeof state_names / sizeof state_names[0]; j++) {
			snprintf(req, sizeof req, "GET / HTTP/1.1\r\n%s: " TP "\r\n%s: a=1\r\n\r\n",
				 accepted[i], state_names[j]);
			struct want_trace w = with_ts(tp_plain, "a=1");
			trace_request(req, &w, TRACE);
		}
	}
	static const char *const ignored[] = {
		"trace-parent", "traceparent2", "xtraceparent", "traceparen", "Traceparent-X",
		"t", "tracestate", "x-traceparent",
	};
	for (size_t i = 0; i < sizeof ignored / sizeof ignored[0]; i++) {
		snprintf(req, sizeof req, "GET / HTTP/1.1\r\n%s: " TP "\r\ntracestate: a=1\r\n\r\n",
			 ignored[i]);
		trace_request(req, &no_trace, NULL);
	}
	/* a look-alike tracestate name is not a tracestate */
	static const char *const not_state[] = { "trace-state", "tracestate2", "xtracestate" };
	for (size_t i = 0; i < sizeof not_state / sizeof not_state[0]; i++) {
		snprintf(req, sizeof req, "GET / HTTP/1.1\r\ntraceparent: " TP "\r\n%s: a=1\r\n\r\n",
			 not_state[i]);
		trace_request(req, &tp_plain, TRACE);
	}
}

static void test_trace_ows(void **state)
{
	(void)state;
	trace_request("GET / HTTP/1.1\r\ntraceparent:" TP "\r\n\r\n", &tp_plain, TRACE);
	trace_request("GET / HTTP/1.1\r\ntraceparent:   " TP "   \r\n\r\n", &tp_plain, TRACE);
	trace_request("GET / HTTP/1.1\r\ntraceparent:\t \t" TP "\t \t\r\n\r\n", &tp_plain, TRACE);
	trace_request("GET / HTTP/1.1\ntraceparent: \t" TP " \n\n", &tp_plain, TRACE);
	struct want_trace w = with_ts(tp_plain, "a=1,b=2");
	trace_request("GET / HTTP/1.1\r\ntraceparent: " TP "\r\ntracestate:\t a=1 \t,  b=2 \t\r\n"
		      "\r\n", &w, TRACE);
	trace_request("GET / HTTP/1.1\r\ntraceparent: " TP "\r\ntracestate:a=1,b=2\r\n\r\n", &w,
		      TRACE);
	/* whitespace inside the traceparent value is not OWS */
	trace_request("GET / HTTP/1.1\r\ntraceparent: 00-" TRACE " -" PARENT "-01\r\n\r\n",
		      &no_trace, NULL);
}

static void test_trace_two_traceparents(void **state)
{
	(void)state;
	/* even identical, even in different case, even apart: none is used, and
	 * the tracestate goes with it */
	trace_request("GET / HTTP/1.1\r\ntraceparent: " TP "\r\ntraceparent: " TP "\r\n\r\n",
		      &no_trace, NULL);
	trace_request("GET / HTTP/1.1\r\ntraceparent: " TP "\r\ntracestate: a=1\r\n"
		      "traceparent: " TP "\r\n\r\n", &no_trace, NULL);
	trace_request("GET / HTTP/1.1\r\nTRACEPARENT: " TP "\r\nHost: x\r\ntraceparent: " TP
		      "\r\ntracestate: " TS_EX "\r\n\r\n", &no_trace, NULL);
	trace_request("GET / HTTP/1.1\r\ntraceparent: " TP "\r\ntraceparent: garbage\r\n"
		      "tracestate: a=1\r\n\r\n", &no_trace, NULL);
	trace_request("GET / HTTP/1.1\r\ntraceparent: garbage\r\ntraceparent: " TP "\r\n"
		      "tracestate: a=1\r\n\r\n", &no_trace, NULL);
	trace_request("GET / HTTP/1.1\r\ntraceparent: \r\ntraceparent: " TP "\r\n\r\n",
		      &no_trace, NULL);
	/* three */
	trace_request("GET / HTTP/1.1\r\ntraceparent: " TP "\r\ntraceparent: " TP "\r\n"
		      "traceparent: " TP "\r\n\r\n", &no_trace, NULL);
	/* the id falls to the next header */
	trace_request("GET / HTTP/1.1\r\ntraceparent: " TP "\r\nX-Trace-ID: t\r\n"
		      "traceparent: " TP "\r\n\r\n", &no_trace, "t");
}

static void test_trace_invalid_drops_tracestate(void **state)
{
	(void)state;
	static const char *const bad[] = {
		"garbage",
		"",
		"00-4BF92F3577B34DA6A3CE929D0E0E4736-" PARENT "-01",
		"00-" TRACE "-00F067AA0BA902B7-01",
		"00-" TRACE "-" PARENT "-0A",
		"ff-" TRACE "-" PARENT "-01",
		"00-00000000000000000000000000000000-" PARENT "-01",
		"00-" TRACE "-0000000000000000-01",
		"00-" TRACE "-" PARENT "-01-",
		"00-" TRACE "-" PARENT "-1",
		"00-" TRACE "-" PARENT,
		"cc-" TRACE "-" PARENT "-01x",
		"0-" TRACE "-" PARENT "-01",
	};
	char req[512];
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		snprintf(req, sizeof req, "GET / HTTP/1.1\r\ntraceparent: %s\r\ntracestate: "
			 TS_EX "\r\n\r\n", bad[i]);
		trace_request(req, &no_trace, NULL);
		snprintf(req, sizeof req, "GET / HTTP/1.1\r\ntracestate: a=1\r\ntraceparent: %s\r\n"
			 "X-Request-ID: r\r\n\r\n", bad[i]);
		trace_request(req, &no_trace, "r");
	}
}

static void test_tracestate_multiple_lines(void **state)
{
	(void)state;
	struct want_trace w = with_ts(tp_plain, "a=1,b=2,c=3");
	trace_request("GET / HTTP/1.1\r\ntraceparent: " TP "\r\ntracestate: a=1 , b=2\r\n"
		      "tracestate: c=3\r\n\r\n", &w, TRACE);
	trace_request("GET / HTTP/1.1\r\ntracestate: a=1 , b=2\r\nHost: x\r\n"
		      "tracestate: c=3\r\ntraceparent: " TP "\r\n\r\n", &w, TRACE);
	trace_request("GET / HTTP/1.1\r\ntracestate: a=1 , b=2\r\ntraceparent: " TP "\r\n"
		      "TraceState: c=3\r\n\r\n", &w, TRACE);
	trace_request("GET / HTTP/1.1\r\ntraceparent: " TP "\r\ntracestate: a=1\r\n"
		      "tracestate: b=2\r\ntracestate: c=3\r\n\r\n", &w, TRACE);
	/* empty lines and empty members in between vanish */
	trace_request("GET / HTTP/1.1\r\ntraceparent: " TP "\r\ntracestate: a=1,\r\n"
		      "tracestate:\r\ntracestate: ,b=2,,\r\ntracestate:   \r\ntracestate: c=3\r\n"
		      "\r\n", &w, TRACE);
	/* the first line empty */
	trace_request("GET / HTTP/1.1\r\ntraceparent: " TP "\r\ntracestate:\r\n"
		      "tracestate: a=1,b=2,c=3\r\n\r\n", &w, TRACE);
	/* order is the lines' order, not sorted */
	struct want_trace w2 = with_ts(tp_plain, "c=3,a=1,b=2");
	trace_request("GET / HTTP/1.1\r\ntraceparent: " TP "\r\ntracestate: c=3\r\n"
		      "X-Other: y\r\ntracestate: a=1 , b=2\r\n\r\n", &w2, TRACE);
}

/* A request with a traceparent and the tracestate lines given. */
static size_t build_ts_request(char *req, size_t size, const char *const *lines, size_t n,
			       const char *between)
{
	size_t o = (size_t)snprintf(req, size, "GET / HTTP/1.1\r\ntraceparent: " TP "\r\n");
	for (size_t i = 0; i < n; i++) {
		if (i && between)
			o += (size_t)snprintf(req + o, size - o, "%s\r\n", between);
		o += (size_t)snprintf(req + o, size - o, "tracestate:%s\r\n", lines[i]);
	}
	o += (size_t)snprintf(req + o, size - o, "\r\n");
	assert_true(o < size);
	return o;
}

static void test_tracestate_too_long(void **state)
{
	(void)state;
	enum { SIZE = 12000 };
	char *req = malloc(SIZE), *a = malloc(6000), *b = malloc(6000);
	char *joined = malloc(SIZE);
	assert_non_null(req);
	assert_non_null(a);
	assert_non_null(b);
	assert_non_null(joined);
	struct want_trace keep = tp_plain;
	const char *one[1], *two[2];
	size_t n;

	/* one line: exactly TRACESTATE_MAX bytes kept, one more dropped (the
	 * traceparent stays valid) */
	one[0] = make_tracestate(a, TRACESTATE_MAX, 'k');
	n = build_ts_request(req, SIZE, one, 1, NULL);
	keep.tracestate = a;
	trace_request_n(NULL, req, n, &keep, TRACE);
	one[0] = make_tracestate(a, TRACESTATE_MAX + 1, 'k');
	n = build_ts_request(req, SIZE, one, 1, NULL);
	trace_request_n(NULL, req, n, &tp_plain, TRACE);
	one[0] = make_tracestate(a, 5000, 'k');
	n = build_ts_request(req, SIZE, one, 1, NULL);
	trace_request_n(NULL, req, n, &tp_plain, TRACE);

	/* two lines: 300 + ',' + 211 = 512 kept; 300 + ',' + 212 dropped */
	two[0] = make_tracestate(a, 300, 'k');
	two[1] = make_tracestate(b, 211, 'm');
	snprintf(joined, SIZE, "%s,%s", a, b);
	keep.tracestate = joined;
	n = build_ts_request(req, SIZE, two, 2, NULL);
	trace_request_n(NULL, req, n, &keep, TRACE);
	n = build_ts_request(req, SIZE, two, 2, "X-Between: 1");
	trace_request_n(NULL, req, n, &keep, TRACE);
	two[1] = make_tracestate(b, 212, 'm');
	n = build_ts_request(req, SIZE, two, 2, NULL);
	trace_request_n(NULL, req, n, &tp_plain, TRACE);
	n = build_ts_request(req, SIZE, two, 2, "X-Between: 1");
	trace_request_n(NULL, req, n, &tp_plain, TRACE);

	/* a full first line: an empty second line adds nothing (no joining
	 * ','), any other makes it too long */
	two[0] = make_tracestate(a, TRACESTATE_MAX, 'k');
	two[1] = "";
	keep.tracestate = a;
	n = build_ts_request(req, SIZE, two, 2, NULL);
	trace_request_n(NULL, req, n, &keep, TRACE);
	two[1] = "m=1";
	n = build_ts_request(req, SIZE, two, 2, NULL);
	trace_request_n(NULL, req, n, &tp_plain, TRACE);

	/* each line short, together too long */
	two[0] = make_tracestate(a, 400, 'k');
	two[1] = make_tracestate(b, 400, 'm');
	n = build_ts_request(req, SIZE, two, 2, "Host: x");
	trace_request_n(NULL, req, n, &tp_plain, TRACE);

	free(req);
	free(a);
	free(b);
	free(joined);
}

static void test_tracestate_invalid_member(void **state)
{
	(void)state;
	static const char *const bad[] = {
		"a=1,B=2", "a=1,b", "a=1,=2", "a=1,b=", "a=1,b=2=3", "1a@Z=x", "@a=1,b=2",
		"a=1 2,b=\x01", "a=1,b=\xc3\xa9",
	};
	char req[1024];
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		snprintf(req, sizeof req, "GET / HTTP/1.1\r\ntraceparent: " TP "\r\n"
			 "tracestate: %s\r\n\r\n", bad[i]);
		trace_request(req, &tp_plain, TRACE);
	}
	/* one bad line drops the other lines too */
	trace_request("GET / HTTP/1.1\r\ntraceparent: " TP "\r\ntracestate: a=1\r\n"
		      "tracestate: B=2\r\ntracestate: c=3\r\n\r\n", &tp_plain, TRACE);
	/* a key repeated in a line or across lines keeps its first member, the
	 * rest of the list is carried */
	struct want_trace first = with_ts(tp_plain, "a=1,b=2,c@x@y=4");
	trace_request("GET / HTTP/1.1\r\ntraceparent: " TP "\r\ntracestate: a=1,b=2\r\n"
		      "tracestate: a=3,c@x@y=4\r\n\r\n", &first, TRACE);
	trace_request("GET / HTTP/1.1\r\ntraceparent: " TP "\r\ntracestate: a=1,b=2,a=1\r\n"
		      "tracestate: c@x@y=4,b=5\r\n\r\n", &first, TRACE);

	/* 32 members kept, 33 (split over two lines) dropped */
	char list[400], want[400];
	size_t o = 0;
	for (int i = 0; i < 32; i++)
		o += (size_t)sprintf(list + o, "%sk%d=%d", i ? (i == 16 ? "\r\ntracestate: " : ",")
							 : "", i, i);
	o = 0;
	for (int i = 0; i < 32; i++)
		o += (size_t)sprintf(want + o, "%sk%d=%d", i ? "," : "", i, i);
	snprintf(req, sizeof req, "GET / HTTP/1.1\r\ntraceparent: " TP "\r\ntracestate: %s\r\n\r\n",
		 list);
	struct want_trace w = with_ts(tp_plain, want);
	trace_request(req, &w, TRACE);
	snprintf(req, sizeof req, "GET / HTTP/1.1\r\ntraceparent: " TP "\r\ntracestate: %s\r\n"
		 "tracestate: k32=32\r\n\r\n", list);
	trace_request(req, &tp_plain, TRACE);
}

static void test_tracestate_empty(void **state)
{
	(void)state;
	static const char *const empty[] = {
		"tracestate:", "tracestate: ", "tracestate:   \t ", "tracestate: ,", "tracestate: , ,,",
		"tracestate:\r\ntracestate:",
	};
	char req[256];
	for (size_t i = 0; i < sizeof empty / sizeof empty[0]; i++) {
		snprintf(req, sizeof req, "GET / HTTP/1.1\r\ntraceparent: " TP "\r\n%s\r\n\r\n",
			 empty[i]);
		trace_request(req, &tp_plain, TRACE);
	}
}

static void test_tracestate_without_traceparent(void **state)
{
	(void)state;
	trace_request("GET / HTTP/1.1\r\ntracestate: a=1\r\n\r\n", &no_trace, NULL);
	trace_request("GET / HTTP/1.1\r\ntracestate: " TS_EX "\r\ntracestate: b=2\r\n"
		      "X-Request-ID: r\r\n\r\n", &no_trace, "r");
	trace_request("GET / HTTP/1.1\r\nHost: x\r\n\r\n", &no_trace, NULL);
	trace_request("GET / HTTP/1.1\r\n\r\n", &no_trace, NULL);
}

static void test_trace_obs_fold(void **state)
{
	(void)state;
	/* a continuation line anywhere in the head: no trace, no id */
	static const char *const folded[] = {
		/* right after the request line */
		"GET / HTTP/1.1\r\n x\r\ntraceparent: " TP "\r\n\r\n",
		/* on another header, before */
		"GET / HTTP/1.1\r\nX-A: 1\r\n\t2\r\ntraceparent: " TP "\r\ntracestate: a=1\r\n\r\n",
		/* on the traceparent itself */
		"GET / HTTP/1.1\r\ntraceparent: " TP "\r\n  x\r\ntracestate: a=1\r\n\r\n",
		"GET / HTTP/1.1\r\ntraceparent:\r\n " TP "\r\n\r\n",
		/* on the tracestate */
		"GET / HTTP/1.1\r\ntraceparent: " TP "\r\ntracestate: a=1\r\n b=2\r\n\r\n",
		/* on another header, after */
		"GET / HTTP/1.1\r\ntraceparent: " TP "\r\nX-Request-ID: r\r\nX-A: 1\r\n 2\r\n\r\n",
		/* LF-only */
		"GET / HTTP/1.1\ntraceparent: " TP "\nX-A: 1\n\t2\n\n",
	};
	for (size_t i = 0; i < sizeof folded / sizeof folded[0]; i++)
		trace_request(folded[i], &no_trace, NULL);
}

static void test_trace_future_version_long(void **state)
{
	(void)state;
	char req[1200], tail[800];
	const struct want_trace cc = { true, 0xcc, TRACE, PARENT, 0x01, NULL };
	const struct want_trace cc_ts = { true, 0xcc, TRACE, PARENT, 0x01, "a=1" };
	/* a future version with nothing after the flags */
	trace_request("GET / HTTP/1.1\r\ntraceparent: cc-" TRACE "-" PARENT "-01\r\n\r\n", &cc,
		      TRACE);
	/* value lengths around the 128-byte capture buffer and far past it */
	static const size_t lens[] = { 56, 127, 128, 129, 130, 200, 700 };
	for (size_t i = 0; i < sizeof lens / sizeof lens[0]; i++) {
		size_t extra = lens[i] - 55; /* '-' then extra-1 bytes */
		tail[0] = '-';
		for (size_t k = 1; k < extra; k++)
			tail[k] = (char)('a' + k % 26);
		tail[extra] = '\0';
		snprintf(req, sizeof req, "GET / HTTP/1.1\r\ntraceparent: cc-" TRACE "-" PARENT
			 "-01%s\r\ntracestate: a=1\r\n\r\n", tail);
		trace_request(req, &cc_ts, TRACE);
		/* ... not valid unless '-' follows the flags */
		tail[0] = 'x';
		snprintf(req, sizeof req, "GET / HTTP/1.1\r\ntraceparent: cc-" TRACE "-" PARENT
			 "-01%s\r\ntracestate: a=1\r\n\r\n", tail);
		trace_request(req, &no_trace, NULL);
		/* ... and version 00 is exactly 55 bytes */
		tail[0] = '-';
		snprintf(req, sizeof req, "GET / HTTP/1.1\r\ntraceparent: 00-" TRACE "-" PARENT
			 "-01%s\r\ntracestate: a=1\r\n\r\n", tail);
		trace_request(req, &no_trace, NULL);
	}
}

static void test_trace_not_an_id_header(void **state)
{
	(void)state;
	/* REQID_HEADERS without traceparent: the trace is still used, but the
	 * trace-id does not become the request id */
	const char *req = "GET / HTTP/1.1\r\ntraceparent: " TP "\r\ntracestate: a=1\r\n\r\n";
	struct want_trace w = with_ts(tp_plain, "a=1");
	trace_request_n("X-My-ID", req, strlen(req), &w, NULL);
	req = "GET / HTTP/1.1\r\ntraceparent: " TP "\r\nX-My-ID: mine\r\n\r\n";
	trace_request_n("X-My-ID", req, strlen(req), &tp_plain, "mine");
	req = "GET / HTTP/1.1\r\nX-Request-ID: std\r\ntraceparent: " TP "\r\n\r\n";
	trace_request_n("X-My-ID", req, strlen(req), &tp_plain, NULL);
	/* listed after another header: that one wins when present */
	req = "GET / HTTP/1.1\r\ntraceparent: " TP "\r\nX-Request-ID: std\r\n\r\n";
	trace_request_n("X-Request-ID, traceparent", req, strlen(req), &tp_plain, "std");
	req = "GET / HTTP/1.1\r\ntraceparent: " TP "\r\n\r\n";
	trace_request_n("X-Request-ID, traceparent", req, strlen(req), &tp_plain, TRACE);
	/* listed first */
	req = "GET / HTTP/1.1\r\nX-Request-ID: std\r\ntraceparent: " TP "\r\n\r\n";
	trace_request_n("traceparent,X-Request-ID", req, strlen(req), &tp_plain, TRACE);
	/* two of them: no trace, the id falls through */
	req = "GET / HTTP/1.1\r\nX-Request-ID: std\r\ntraceparent: " TP "\r\ntraceparent: " TP
	      "\r\n\r\n";
	trace_request_n("traceparent,X-Request-ID", req, strlen(req), &no_trace, "std");
}

static void expect_feed_trace(const char *req, uint32_t started, uint32_t completed,
			      const char *want_id, const struct want_trace *w)
{
	struct http_feed_result r;
	feed_str(req, &r);
	expect_result(&r, started, completed, want_id);
	check_trace(r.trace_valid, &r.trace, r.tracestate_len, r.tracestate, w, "keep-alive",
		    completed);
}

static void test_trace_keep_alive(void **state)
{
	(void)state;
	const struct want_trace other = { true, 0, "0af7651916cd43dd8448eb211c80319c",
					  "b7ad6b7169203331", 0x00, NULL };
	struct want_trace first = with_ts(tp_plain, TS_EX);
	init_default();
	expect_feed_trace("GET /1 HTTP/1.1\r\ntraceparent: " TP "\r\ntracestate: " TS_EX
			  "\r\n\r\n", 1, 1, TRACE, &first);
	expect_feed_trace("GET /2 HTTP/1.1\r\nHost: x\r\n\r\n", 1, 1, NULL, &no_trace);
	expect_feed_trace("GET /3 HTTP/1.1\r\ntraceparent: 00-0af7651916cd43dd8448eb211c80319c"
			  "-b7ad6b7169203331-00\r\n\r\n", 1, 1,
			  "0af7651916cd43dd8448eb211c80319c", &other);
	expect_feed_trace("GET /4 HTTP/1.1\r\ntracestate: z=9\r\n\r\n", 1, 1, NULL, &no_trace);
	/* one traceparent in each of two requests is not two */
	expect_feed_trace("GET /5 HTTP/1.1\r\ntraceparent: " TP "\r\n\r\n", 1, 1, TRACE,
			  &tp_plain);
	expect_feed_trace("GET /6 HTTP/1.1\r\ntraceparent: " TP "\r\n\r\n", 1, 1, TRACE,
			  &tp_plain);
	/* a tracestate does not carry over to a later traceparent */
	expect_feed_trace("GET /7 HTTP/1.1\r\ntracestate: a=1\r\n\r\n", 1, 1, NULL, &no_trace);
	expect_feed_trace("GET /8 HTTP/1.1\r\ntraceparent: " TP "\r\n\r\n", 1, 1, TRACE,
			  &tp_plain);
	/* nor does a fold, a doubled traceparent or an overflowed tracestate */
	expect_feed_trace("GET /9 HTTP/1.1\r\ntraceparent: " TP "\r\nX: 1\r\n 2\r\n\r\n", 1, 1,
			  NULL, &no_trace);
	expect_feed_trace("GET /10 HTTP/1.1\r\ntraceparent: " TP "\r\n\r\n", 1, 1, TRACE,
			  &tp_plain);
	expect_feed_trace("GET /11 HTTP/1.1\r\ntraceparent: " TP "\r\ntraceparent: " TP
			  "\r\n\r\n", 1, 1, NULL, &no_trace);
	expect_feed_trace("GET /12 HTTP/1.1\r\ntraceparent: " TP "\r\n\r\n", 1, 1, TRACE,
			  &tp_plain);
	char big[700], req[1000];
	snprintf(req, sizeof req, "GET /13 HTTP/1.1\r\ntraceparent: " TP "\r\ntracestate: %s\r\n"
		 "\r\n", make_tracestate(big, 600, 'k'));
	expect_feed_trace(req, 1, 1, TRACE, &tp_plain);
	struct want_trace small = with_ts(tp_plain, "b=2");
	expect_feed_trace("GET /14 HTTP/1.1\r\ntraceparent: " TP "\r\ntracestate: b=2\r\n\r\n", 1,
			  1, TRACE, &small);
	/* a body between requests */
	expect_feed_trace("POST /15 HTTP/1.1\r\nContent-Length: 5\r\ntraceparent: " TP
			  "\r\ntracestate: c=3\r\n\r\nhello", 1, 1, TRACE,
			  &(struct want_trace){ true, 0, TRACE, PARENT, 1, "c=3" });
	expect_feed_trace("GET /16 HTTP/1.1\r\n\r\n", 1, 1, NULL, &no_trace);

	/* pipelined in one buffer: the last request's trace context */
	init_default();
	expect_feed_trace("GET /1 HTTP/1.1\r\ntraceparent: " TP "\r\ntracestate: a=1\r\n\r\n"
			  "GET /2 HTTP/1.1\r\n\r\n", 2, 2, NULL, &no_trace);
	init_default();
	expect_feed_trace("GET /1 HTTP/1.1\r\ntraceparent: " TP "\r\ntracestate: a=1\r\n\r\n"
			  "GET /2 HTTP/1.1\r\ntraceparent: 00-0af7651916cd43dd8448eb211c80319c"
			  "-b7ad6b7169203331-00\r\n\r\n", 2, 2,
			  "0af7651916cd43dd8448eb211c80319c", &other);
}

static void test_traceparent_ows_past_capture(void **state)
{
	(void)state;
	/* "00-...-01", then spaces filling the 128-byte capture buffer, then a
	 * non-space byte: the value is not 55 bytes, so it is invalid. */
	char req[400], pad[100];
	memset(pad, ' ', 80);
	pad[80] = '\0';
	snprintf(req, sizeof req, "GET / HTTP/1.1\r\ntraceparent: " TP "%sjunk\r\n\r\n", pad);
	trace_request(req, &no_trace, NULL);
}

static void test_tracestate_ows_not_counted(void **state)
{
	(void)state;
	/* A 512-byte tracestate value written the usual way, "name: value":
	 * the OWS is not part of the value. */
	char ts[600], req[1000];
	snprintf(req, sizeof req, "GET / HTTP/1.1\r\ntraceparent: " TP "\r\ntracestate: %s\r\n\r\n",
		 make_tracestate(ts, TRACESTATE_MAX, 'k'));
	struct want_trace w = with_ts(tp_plain, ts);
	trace_request(req, &w, TRACE);
}

/* ---- runs: name prefixes, block boundaries, any split ------------------ */

/* The parser takes its input in runs (16-byte blocks, names matched many
 * bytes at once); these feed heads whose lines, names and bad bytes fall at
 * every offset, and check that every split gives what one piece gives. */

/* What the parser reported over a stream fed in given pieces, and the
 * parser it left. */
struct run {
	uint32_t started, completed, not_http, desync;
	struct http_feed_result last; /* of the last call that completed a head */
	struct http_parser end;
};

/* Feeds buf to a fresh parser cut at cuts[0..ncuts) (increasing), each
 * piece from a buffer of its own size (so that ASan sees a read past it). */
static void run_cuts(const char *buf, size_t len, const size_t *cuts, size_t ncuts,
		     struct run *run)
{
	memset(run, 0, sizeof *run);
	init_with_headers(g_split_headers);
	for (size_t i = 0, prev = 0; i <= ncuts; i++) {
		size_t to = i < ncuts ? cuts[i] : len;
		struct http_feed_result r;
		/* Between heads a parser is its state alone: as a connection
		 * entry keeps it, with the text left to whatever was there. */
		if (i > 0 && !http_parser_in_head(&g_p))
			memset((char *)&g_p + HTTP_PARSER_STATE_SIZE, 0xA5, HTTP_PARSER_TEXT_SIZE);
		char *piece = malloc(to > prev ? to - prev : 1);
		assert_non_null(piece);
		memcpy(piece, buf + prev, to - prev);
		feed(piece, to - prev, &r);
		free(piece);
		run->started += r.requests_started;
		run->completed += r.headers_completed;
		run->not_http += r.not_http;
		run->desync += r.desync;
		if (r.headers_completed)
			run->last = r;
		prev = to;
	}
	run->end = g_p;
}

/* Everything that carries meaning is the same in both runs. */
static void expect_same_run(const struct run *a, const struct run *b, const char *how,
			    size_t arg)
{
	const struct http_feed_result *x = &a->last, *y = &b->last;
	const struct http_parser *p = &a->end, *q = &b->end;
	if (a->started != b->started || a->completed != b->completed ||
	    a->not_http != b->not_http || a->desync != b->desync)
		fail_msg("%s %zu: reports %u/%u/%u/%u, whole %u/%u/%u/%u", how, arg, b->started,
			 b->completed, b->not_http, b->desync, a->started, a->completed,
			 a->not_http, a->desync);
	if (a->completed &&
	    (x->id_len != y->id_len || memcmp(x->id, y->id, x->id_len) != 0 ||
	     x->line_len != y->line_len || memcmp(x->line, y->line, x->line_len) != 0 ||
	     x->trace_valid != y->trace_valid ||
	     (x->trace_valid && memcmp(&x->trace, &y->trace, sizeof x->trace) != 0) ||
	     x->tracestate_len != y->tracestate_len ||
	     memcmp(x->tracestate, y->tracestate, x->tracestate_len) != 0))
		fail_msg("%s %zu: the last head's report differs from whole", how, arg);
	if (p->state != q->state || p->after_lf != q->after_lf || p->token_len != q->token_len ||
	    p->remaining != q->remaining || p->version_seen != q->version_seen)
		fail_msg("%s %zu: the parser's state differs from whole", how, arg);
	/* The rest is the parser's only inside a head (run_cuts). */
	if (http_parser_in_head(p) &&
	    (p->name_match != q->name_match || p->seen != q->seen || p->capture != q->capture ||
	     p->value_len != q->value_len || p->value_overflow != q->value_overflow ||
	     p->line_len != q->line_len || p->tracestate_len != q->tracestate_len ||
	     p->best_len != q->best_len))
		fail_msg("%s %zu: the parser's head differs from whole", how, arg);
	if (http_parser_in_head(p) &&
	    (memcmp(p->value, q->value, p->value_len) != 0 ||
	     memcmp(p->request_line, q->request_line, p->line_len) != 0 ||
	     memcmp(p->tracestate, q->tracestate, p->tracestate_len) != 0 ||
	     memcmp(p->best, q->best, p->best_len) != 0))
		fail_msg("%s %zu: the parser's text differs from whole", how, arg);
}

/* Every split the same as one piece: steps of 1..17 and 64 bytes, every cut
 * in two, and (if three) three pieces with the middle one 1..17 bytes long.
 * Returns the whole run. */
static void expect_splits_same(const char *buf, size_t len, bool three, struct run *whole)
{
	struct run run;
	size_t cuts[2048];
	run_cuts(buf, len, NULL, 0, whole);
	for (size_t step = 1; step <= 64; step = step == 17 ? 64 : step + 1) {
		size_t n = 0;
		for (size_t at = step; at < len && n < sizeof cuts / sizeof cuts[0]; at += step)
			cuts[n++] = at;
		run_cuts(buf, len, cuts, n, &run);
		expect_same_run(whole, &run, "step", step);
	}
	for (size_t a = 0; a <= len; a++) {
		run_cuts(buf, len, &a, 1, &run);
		expect_same_run(whole, &run, "cut at", a);
		for (size_t mid = 1; three && mid <= 17 && a + mid <= len; mid++) {
			size_t two[2] = { a, a + mid };
			run_cuts(buf, len, two, 2, &run);
			expect_same_run(whole, &run, "cuts at", a * 100 + mid);
		}
	}
}

/* One request, every split (three pieces too if three); its id is want_id
 * (NULL: none). */
static void expect_request(const char *req, size_t len, bool three, const char *want_id)
{
	struct run whole;
	expect_splits_same(req, len, three, &whole);
	assert_int_equal(whole.started, 1);
	assert_int_equal(whole.completed, 1);
	assert_int_equal(whole.not_http + whole.desync, 0);
	expect_id(whole.last.id_len, whole.last.id, want_id);
}

static void test_name_matches_only_in_first_bytes(void **state)
{
	(void)state;
	char req[256];
	/* Names that a configured one begins with, that begin with one, or
	 * that differ in their last byte or case. */
	static const struct {
		const char *headers; /* REQID_HEADERS (NULL: default) */
		const char *name;
		const char *want_id;
	} cases[] = {
		{ NULL, "X-Request-ID", "v" },
		{ NULL, "x-REQUEST-id", "v" },
		{ NULL, "X-Request-I", NULL },
		{ NULL, "X-Request-IDx", NULL },
		{ NULL, "X-Request-IE", NULL },
		{ NULL, "X-Request-ID-", NULL },
		{ NULL, "X", NULL },
		{ NULL, "X-", NULL },
		{ NULL, "Content-Type", NULL },
		{ NULL, "Transfer-Encodin", NULL },
		{ NULL, "Transfer-Encodingg", NULL },
		{ NULL, "Traceparen", NULL },
		{ NULL, "TracestateX", NULL },
		{ NULL, "X-Correlation-I", NULL },
		{ NULL, "X-Correlation-ID", "v" },
		{ NULL, "X-Correlation-IDs", NULL },
		/* around the 16-byte block: 16 and 17 bytes, one a prefix of
		 * the other */
		{ "x-correlation-id2, x-correlation-id", "X-Correlation-ID2", "v" },
		{ "x-correlation-id2, x-correlation-id", "X-Correlation-ID", "v" },
		{ "x-correlation-id2, x-correlation-id", "X-Correlation-ID3", NULL },
		{ "x-correlation-id2, x-correlation-id", "X-Correlation-ID23", NULL },
		{ "x-correlation-id2, x-correlation-id", "X-Correlation-I", NULL },
		/* token characters other than letters, digits and '-' */
		{ "x_id.v!", "X_ID.V!", "v" },
		{ "x_id.v!", "X_ID.V", NULL },
		{ "x_id.v!", "X_ID.V!~", NULL },
		{ "x_id.v!", "X-ID.V!", NULL },
		/* the longest configurable name (63 bytes) and near misses */
		{ "a23456789b123456789c123456789d123456789e123456789f123456789g12",
		  "A23456789B123456789C123456789D123456789E123456789F123456789G12", "v" },
		{ "a23456789b123456789c123456789d123456789e123456789f123456789g12",
		  "A23456789B123456789C123456789D123456789E123456789F123456789G1", NULL },
		{ "a23456789b123456789c123456789d123456789e123456789f123456789g12",
		  "A23456789B123456789C123456789D123456789E123456789F123456789G13", NULL },
		{ "a23456789b123456789c123456789d123456789e123456789f123456789g12",
		  "A23456789B123456789C123456789D123456789E123456789F123456789G123", NULL },
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		g_split_headers = cases[i].headers;
		int n = snprintf(req, sizeof req, "GET / HTTP/1.1\r\nHost: h\r\n%s: v\r\n\r\n",
				 cases[i].name);
		expect_request(req, (size_t)n, true, cases[i].want_id);
		/* the name as the head's last bytes, cut anywhere */
		struct run whole;
		n = snprintf(req, sizeof req, "GET / HTTP/1.1\r\n%s", cases[i].name);
		expect_splits_same(req, (size_t)n, true, &whole);
	}
	g_split_headers = NULL;
}

static void test_line_ends_at_every_offset(void **state)
{
	(void)state;
	char req[256], id[64];
	/* Empty lines before the request move every later byte; the id's
	 * length moves its line's end through two 16-byte blocks. */
	for (size_t pad = 0; pad <= 16; pad += 3) {
		for (size_t v = 0; v <= 33; v++) {
			for (size_t k = 0; k < v; k++)
				id[k] = (char)('a' + k % 26);
			id[v] = '\0';
			int n = snprintf(req, sizeof req,
					 "%.*sGET / HTTP/1.1\r\nHost: h\r\nX-Request-ID: %s\r\n\r\n",
					 (int)pad, "\n\n\n\n\n\n\n\n\n\n\n\n\n\n\n\n", id);
			expect_request(req, (size_t)n, false, v ? id : NULL);
			n = snprintf(req, sizeof req, "GET / HTTP/1.1\nX-Request-ID:%s\nHost: %s\n\n",
				     id, id);
			expect_request(req, (size_t)n, false, v ? id : NULL);
		}
	}
	/* the request target's end, with the line kept */
	for (size_t t = 1; t <= 33; t++) {
		char target[40];
		struct http_feed_result r;
		memset(target, 'p', t);
		target[0] = '/';
		target[t] = '\0';
		int n = snprintf(req, sizeof req, "GET %s HTTP/1.1\r\nX-Request-ID: r\r\n\r\n", target);
		expect_request(req, (size_t)n, false, "r");
		init_default();
		feed(req, (size_t)n, &r);
		assert_int_equal(r.line_len, t + 13);
		assert_memory_equal(r.line, req, t + 13);
	}
}

static void test_bad_bytes_at_every_offset(void **state)
{
	(void)state;
	static const char head[] = "GET /abcdefghijklmnopqrstuvwxyz0123 HTTP/1.1\r\n"
				   "X-Forwarded-For-Someone: value value value value\r\n"
				   "X-Request-ID: abcdefghijklmnopqrstuvwxyz\r\n\r\n";
	char req[sizeof head];
	/* Each byte in turn made one the parser gives up at wherever it lies
	 * (in the request line: not HTTP; later: desynchronised), or one it
	 * takes where it lies (a space or 0x7f in a value). */
	static const char bad[] = { '@', '\x01', '\x7f', ' ', '\r', '\0' };
	for (size_t i = 0; i < sizeof head - 1; i++) {
		for (size_t b = 0; b < sizeof bad; b++) {
			struct run whole;
			memcpy(req, head, sizeof head);
			req[i] = bad[b];
			expect_splits_same(req, sizeof head - 1, false, &whole);
			assert_true(whole.started <= 1 && whole.completed <= 1);
			if (whole.not_http)
				assert_true(i < 46);
		}
	}
}

/* A browser's head: every split reports what one piece does. */
static void test_browser_head_any_split(void **state)
{
	(void)state;
	static const char head[] =
		"GET /products/widgets?page=2&sort=price HTTP/1.1\r\n"
		"Host: shop.example.com\r\n"
		"Connection: keep-alive\r\n"
		"User-Agent: Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36\r\n"
		"Accept: text/html,application/xhtml+xml,*/*;q=0.8\r\n"
		"Accept-Language: en-US,en;q=0.9\r\n"
		"Cookie: session=8f14e45fceea167a5a36dedd4bea2543; theme=dark\r\n"
		"traceparent: " TP "\r\n"
		"tracestate: congo=t61rcWkgMzE,  rojo=00f067aa0ba902b7 \r\n"
		"tracestate: \tx=1\r\n"
		"X-Correlation-ID: corr-1\r\n"
		"Content-Length: 4\r\n"
		"\r\nbody";
	struct run whole;
	expect_splits_same(head, sizeof head - 1, true, &whole);
	assert_int_equal(whole.started, 1);
	assert_int_equal(whole.completed, 1);
	expect_id(whole.last.id_len, whole.last.id, "corr-1");
	assert_true(whole.last.trace_valid);
	static const char ts[] = "congo=t61rcWkgMzE,rojo=00f067aa0ba902b7,x=1";
	assert_int_equal(whole.last.tracestate_len, sizeof ts - 1);
	assert_memory_equal(whole.last.tracestate, ts, sizeof ts - 1);
	assert_false(http_parser_stopped(&whole.end));
}


/* ---- whole lines: a head in one read (take_lines) ------------------------ */

/* A head read in one piece is taken a line at a time, each line looked at
 * from its first 16-byte blocks, other lines left to the steps that take
 * the same bytes in pieces. These put each of those checks' edges inside
 * one read; expect_splits_same compares it with every split. */

/* "<method> <target> HTTP/1.1" and a head after it, whole: *whole is the run
 * of the whole buffer (all of its splits report the same). */
static void whole_request_line(const char *method, const char *target, const char *version,
			       const char *eol, struct run *whole)
{
	char req[256];
	int n = snprintf(req, sizeof req, "%s %s %s%sX-Request-ID: r\r\n\r\n", method, target,
			 version, eol);
	assert_true(n > 0 && (size_t)n < sizeof req);
	expect_splits_same(req, (size_t)n, false, whole);
}

/* Where http_find_request_line finds the quoted request line in line:
 * its offset, or -1 (none), its length in *n. */
static long found_at(const char *line, size_t *n)
{
	size_t at = 0;
	*n = 0;
	return http_find_request_line(line, strlen(line), &at, n) ? (long)at : -1;
}

/* The quotes around the quoted request line: one that closes a field, one
 * at the line's end, one opening a one-byte field ("-") or a field of one
 * byte and a space, none of which opens it; a one-byte method, which
 * does; bytes the json format escapes around it. */
static void test_find_quoted_request_line(void **state)
{
	(void)state;
	size_t n;
	static const char nginx[] = "127.0.0.1 - - [07/Dec/2026:14:04:01 +0000] "
				    "\"GET /index.html HTTP/1.1\" 200 32 \"-\" \"-\"";
	assert_int_equal(found_at(nginx, &n), 44);
	assert_int_equal(n, 24);
	assert_int_equal(found_at("no quote GET / HTTP/1.1x", &n), -1);
	assert_int_equal(found_at("no quote at all", &n), -1);
	assert_int_equal(found_at("\"", &n), -1);
	assert_int_equal(found_at("\"G", &n), -1);
	assert_int_equal(found_at("\"GE", &n), -1);
	assert_int_equal(found_at("\"G ", &n), -1);
	assert_int_equal(found_at("\"X / HTTP/1.1\"", &n), 1);
	assert_int_equal(n, 12);
	assert_int_equal(found_at("a \"- b\" \"X / HTTP/1.0\" \"x y\" \"", &n), 9);
	assert_int_equal(n, 12);
	assert_int_equal(found_at("\"-\"\"-\"\"GET /a HTTP/1.1\"\"-\"", &n), 7);
	assert_int_equal(n, 15);
	assert_int_equal(found_at("\"GET /a HTTP/1.1\" \"", &n), 1);
	assert_int_equal(n, 15);
	/* "- / HTTP/1.1": '-' is a token character, a one-byte method */
	assert_int_equal(found_at("ip \"- / HTTP/1.1\" 400", &n), 4);
	assert_int_equal(n, 12);
	assert_int_equal(found_at("t\\x \x01\t\xc3\xa9 \xff \"PUT /\xc3\xa9\\ HTTP/1.1\" \"\\\"\" \x7f", &n),
			 12);
	assert_int_equal(n, 17);
	/* two of them, or one beside a bare one: none */
	assert_int_equal(found_at("\"X / HTTP/1.1\" \"Y / HTTP/1.1\"", &n), -1);
	assert_int_equal(found_at("[GET / HTTP/1.1] \"X / HTTP/1.1\"", &n), -1);
	/* one more quote at every place outside it, in a line longer than a
	 * block */
	char line[80];
	for (size_t q = 0; q + 1 < sizeof(line); q++) {
		memset(line, 'a', sizeof(line) - 1);
		line[sizeof(line) - 1] = '\0';
		memcpy(line + 2, "\"GET /x HTTP/1.1\"", 17);
		if (q < 2 || q > 18)
			line[q] = '"';
		assert_int_equal(found_at(line, &n), 3);
		assert_int_equal(n, 15);
	}
}

static void test_whole_request_line_edges(void **state)
{
	(void)state;
	char method[40], target[48];
	struct run whole;
	/* Methods ending before, at and past the first block's end; up to 32
	 * bytes they are methods. A target that looks like the version is
	 * still only a target: the line has no version (a 16-byte method puts
	 * the space before it at the block's end). */
	for (size_t m = 1; m <= 34; m++) {
		memset(method, 'A' + (int)(m % 26), m);
		method[m] = '\0';
		whole_request_line(method, "/", "HTTP/1.1", "\r\n", &whole);
		assert_int_equal(whole.completed, m <= 32 ? 1 : 0);
		assert_int_equal(whole.not_http, m <= 32 ? 0 : 1);
		whole_request_line(method, "HTTP/1.1", "", "\r\n", &whole);
		assert_int_equal(whole.completed, 0);
		assert_int_equal(whole.not_http, 1);
	}
	/* Methods of other token bytes, and CONNECT's near misses. */
	static const char *const methods[] = { "M-SEARCH", "GET!", "_X~", "get", "CONNEC",
					       "CONNECTX", "XCONNECT" };
	for (size_t i = 0; i < sizeof methods / sizeof methods[0]; i++) {
		whole_request_line(methods[i], "/", "HTTP/1.1", "\r\n", &whole);
		assert_int_equal(whole.completed, 1);
		assert_false(whole.end.connect);
	}
	whole_request_line("CONNECT", "example.com:443", "HTTP/1.1", "\r\n", &whole);
	assert_true(whole.end.connect);
	/* Targets ending in the first block and past it, after methods that
	 * end early or late in it. */
	static const char *const short_long[] = { "GET", "ABCDEFGHIJKLMN", "ABCDEFGHIJKLMNO" };
	for (size_t k = 0; k < 3; k++) {
		for (size_t t = 1; t <= 40; t++) {
			memset(target, 'p', t);
			target[0] = '/';
			target[t] = '\0';
			whole_request_line(short_long[k], target, "HTTP/1.1", "\r\n", &whole);
			assert_int_equal(whole.completed, 1);
			expect_id(whole.last.id_len, whole.last.id, "r");
			assert_int_equal(whole.last.line_len, strlen(short_long[k]) + t + 10);
		}
		/* no target: two spaces */
		whole_request_line(short_long[k], "", "HTTP/1.1", "\r\n", &whole);
		assert_int_equal(whole.not_http, 1);
	}
	/* Versions and line ends: the line is taken whole only as
	 * "HTTP/1.d" and CRLF or LF; anything else as the steps take it. */
	static const struct {
		const char *version, *eol;
		uint32_t completed;
	} ends[] = {
		{ "HTTP/1.1", "\r\n", 1 }, { "HTTP/1.0", "\n", 1 }, { "HTTP/1.9", "\r\n", 1 },
		{ "HTTP/2.0", "\r\n", 0 }, { "HTTP/1.x", "\r\n", 0 }, { "HTTP/1.1 ", "\r\n", 0 },
		{ "HTTP/1.", "\r\n", 0 }, { "HTTP/1.1", "\rx", 0 }, { "HTTP/1.1", "\r\r\n", 0 },
		{ "http/1.1", "\r\n", 0 },
	};
	for (size_t i = 0; i < sizeof ends / sizeof ends[0]; i++) {
		whole_request_line("GET", "/", ends[i].version, ends[i].eol, &whole);
		assert_int_equal(whole.completed, ends[i].completed);
	}
	/* A request line longer than REQUEST_LINE_MAX keeps its first bytes. */
	memset(target, 'q', 44);
	target[0] = '/';
	target[44] = '\0';
	char line_target[100];
	snprintf(line_target, sizeof line_target, "%s%s", target, target);
	whole_request_line("GET", line_target, "HTTP/1.1", "\r\n", &whole);
	assert_int_equal(whole.last.line_len, REQUEST_LINE_MAX);
	/* The request line alone, and the buffer just long enough for it. */
	static const char *const alone[] = { "GET / HTTP/1.1\r\n", "GET / HTTP/1.1\r\n\r\n",
					     "GET /a HTTP/1.1\r\n", "GET / HTTP/1.1\r" };
	for (size_t i = 0; i < sizeof alone / sizeof alone[0]; i++)
		expect_splits_same(alone[i], strlen(alone[i]), true, &whole);
}

/* A head of "GET / HTTP/1.1", a header named name with value v, then an id
 * header: all splits the same; *whole is the whole run. */
static void whole_named_line(const char *name, const char *v, struct run *whole)
{
	char req[512];
	int n = snprintf(req, sizeof req, "GET / HTTP/1.1\r\n%s:%s\r\nX-Request-ID: r\r\n\r\n",
			 name, v);
	assert_true(n > 0 && (size_t)n < sizeof req);
	expect_splits_same(req, (size_t)n, false, whole);
}

static void test_whole_header_name_edges(void **state)
{
	(void)state;
	char name[80];
	struct run whole;
	/* Names ending in the first block, in the second and past both; some
	 * that entries begin like ('x', 't', 'c'), most not. */
	static const char firsts[] = "qxtcX";
	for (size_t f = 0; f < sizeof firsts - 1; f++) {
		for (size_t n = 1; n <= 70; n++) {
			memset(name, 'a' + (int)(n % 26), n);
			name[0] = firsts[f];
			name[n] = '\0';
			whole_named_line(name, " v", &whole);
			assert_int_equal(whole.completed, 1);
			expect_id(whole.last.id_len, whole.last.id, "r");
		}
	}
	/* Other token bytes anywhere in a name, and bytes that are not token
	 * bytes (the stream is lost there). */
	static const char other[] = "!#$%&'*+.^_`|~";
	static const char bad[] = " @\x01\x7f\"(";
	for (size_t at = 0; at < 40; at++) {
		memset(name, 'n', 40);
		name[40] = '\0';
		for (size_t k = 0; k < sizeof other - 1; k++) {
			name[at] = other[k];
			whole_named_line(name, "v", &whole);
			assert_int_equal(whole.completed, 1);
		}
		for (size_t k = 0; k < sizeof bad - 1; k++) {
			name[at] = bad[k];
			whole_named_line(name, "v", &whole);
			if (at == 0 && bad[k] == ' ') {
				/* a continuation line: no id is used */
				assert_int_equal(whole.completed, 1);
				expect_id(whole.last.id_len, whole.last.id, NULL);
				continue;
			}
			assert_int_equal(whole.completed, 0);
			assert_int_equal(whole.desync, 1);
		}
	}
	/* No name at all. */
	whole_named_line("", "v", &whole);
	assert_int_equal(whole.desync, 1);
	/* Names that id headers begin with, or that begin with one, in any
	 * case, 16 and 17 bytes long as well: only the whole name counts. */
	static const struct {
		const char *name;
		const char *want_id;
	} ids[] = {
		{ "X-REQUEST-ID", "v" },      { "x-request-id", "v" },
		{ "X-Request-I", "r" },       { "X-Request-IDx", "r" },
		{ "X-Correlation-ID", "r" }, /* ranks below X-Request-ID */
		{ "X-Correlation-IDs", "r" }, { "X-Trace-ID", "r" },
		{ "Content-Lengt", "r" },     { "Transfer-Encodin", "r" },
	};
	for (size_t i = 0; i < sizeof ids / sizeof ids[0]; i++) {
		char req[256];
		int n = snprintf(req, sizeof req, "GET / HTTP/1.1\r\nX-Request-ID: r\r\n%s: v\r\n\r\n",
				 ids[i].name);
		if (strcasecmp(ids[i].name, "X-Request-ID") == 0)
			n = snprintf(req, sizeof req, "GET / HTTP/1.1\r\n%s: v\r\n\r\n",
				     ids[i].name);
		expect_request(req, (size_t)n, false, ids[i].want_id);
	}
}

/* The id header the shim sends is also an id header it reads (the same name
 * twice in the matcher): a whole head notes both, as the steps do. */
static void test_whole_twin_names(void **state)
{
	(void)state;
	static const char head[] = "GET / HTTP/1.1\r\nx-REQUEST-id: t\r\n\r\n";
	struct http_feed_result r;
	struct http_parser split;
	uint32_t both = 0;
	init_default();
	for (uint8_t e = 0; e < g_m.count; e++)
		if (g_m.len[e] == 12 && memcmp(g_m.name[e], "x-request-id", 12) == 0)
			both |= 1u << e;
	assert_int_equal(__builtin_popcount(both), 2);
	/* Pausing before the blank line reports what the head has. */
	for (size_t cut = 0; cut <= sizeof head - 1; cut++) {
		http_parser_init_pausing(&g_p, &g_m);
		size_t at = 0, stops = 0;
		const size_t ends[2] = { cut, sizeof head - 1 };
		for (size_t piece = 0; piece < 2; piece++) {
			while (at < ends[piece]) {
				memset(&r, 0, sizeof r);
				at += http_parser_feed(&g_p, head + at, ends[piece] - at, &r);
				if (r.at_head_end) {
					assert_int_equal(r.seen, both);
					assert_int_equal(at, sizeof head - 3);
					stops++;
					break;
				}
			}
		}
		assert_int_equal(stops, 1);
		if (cut == 0)
			split = g_p;
		else
			assert_int_equal(g_p.seen, split.seen);
	}
	expect_request(head, sizeof head - 1, true, "t");
}

static void test_whole_line_end_edges(void **state)
{
	(void)state;
	char v[80];
	struct run whole;
	/* Bytes 0x08 to 0x0f other than CR and LF are value bytes (one
	 * compare finds them with CR and LF): at every offset around the
	 * 32-byte steps of the search for a line's end. */
	static const char near[] = "\x08\t\x0b\x0c\x0e\x0f";
	for (size_t len = 1; len <= 70; len += 3) {
		for (size_t at = 0; at < len; at++) {
			for (size_t k = 0; k < sizeof near - 1; k++) {
				memset(v, 'v', len);
				v[at] = near[k];
				v[len] = '\0';
				whole_named_line("Accept", v, &whole);
				assert_int_equal(whole.completed, 1);
				expect_id(whole.last.id_len, whole.last.id, "r");
			}
			/* a CR without its LF loses the stream */
			memset(v, 'v', len);
			v[at] = '\r';
			v[len] = '\0';
			whole_named_line("Accept", v, &whole);
			assert_int_equal(whole.completed, 0);
			assert_int_equal(whole.desync, 1);
		}
	}
	/* Heads whose last lines are short, near the buffer's end, ended by
	 * CRLF or LF, and heads cut anywhere. */
	char req[256];
	for (size_t k = 0; k <= 20; k++) {
		memset(v, 'w', k);
		v[k] = '\0';
		int n = snprintf(req, sizeof req, "GET / HTTP/1.1\r\nX-Request-ID: r\r\nA:%s\r\nb:\n\r\n", v);
		expect_request(req, (size_t)n, true, "r");
		for (int cut = 16; cut < n; cut++)
			expect_splits_same(req, (size_t)cut, false, &whole);
	}
}

static void test_whole_captured_values(void **state)
{
	(void)state;
	char id[160], v[200], req[320];
	struct run whole;
	/* OWS around an id, and ids around the 128 bytes an id may have,
	 * with and without OWS after them. */
	static const char *const ows[] = { "", " ", "\t", "  \t", " \t " };
	for (size_t len = 1; len <= 132; len += len < 120 ? 17 : 1) {
		for (size_t k = 0; k < len; k++)
			id[k] = (char)('a' + k % 26);
		id[len] = '\0';
		for (size_t a = 0; a < sizeof ows / sizeof ows[0]; a++) {
			for (size_t b = 0; b < sizeof ows / sizeof ows[0]; b++) {
				snprintf(v, sizeof v, "%s%s%s", ows[a], id, ows[b]);
				int n = snprintf(req, sizeof req,
						 "GET / HTTP/1.1\r\nX-Request-ID:%s\r\n\r\n", v);
				expect_splits_same(req, (size_t)n, false, &whole);
				expect_id(whole.last.id_len, whole.last.id, len <= 128 ? id : NULL);
			}
		}
	}
	/* Lengths, chunked framing and their errors, whole. */
	static const struct {
		const char *head;
		uint32_t completed, desync;
	} framing[] = {
		{ "POST / HTTP/1.1\r\nContent-Length: 5\r\n\r\nGET /GET /x HTTP/1.1\r\n\r\n", 2, 0 },
		{ "POST / HTTP/1.1\r\nContent-Length:  5 \t\r\n\r\nhello", 1, 0 },
		{ "POST / HTTP/1.1\r\nContent-Length: 5x\r\n\r\nhello", 0, 1 },
		{ "POST / HTTP/1.1\r\nContent-Length: 5\r\ncontent-length: 6\r\n\r\nhello", 0, 1 },
		{ "POST / HTTP/1.1\r\nContent-Length: 5\r\ncontent-length: 5\r\n\r\nhello", 1, 0 },
		{ "POST / HTTP/1.1\r\nContent-Length:\r\n\r\n", 0, 1 },
		{ "POST / HTTP/1.1\r\nTransfer-Encoding: gzip, chunked\r\n\r\n"
		  "5\r\nGET /\r\n0\r\n\r\n", 1, 0 },
	};
	for (size_t i = 0; i < sizeof framing / sizeof framing[0]; i++) {
		expect_splits_same(framing[i].head, strlen(framing[i].head), false, &whole);
		assert_int_equal(whole.completed, framing[i].completed);
		assert_int_equal(whole.desync, framing[i].desync);
	}
	/* A Content-Length value longer than the value buffer. */
	memset(v, '1', 150);
	v[150] = '\0';
	int n = snprintf(req, sizeof req, "POST / HTTP/1.1\r\nContent-Length: %s\r\n\r\n", v);
	expect_splits_same(req, (size_t)n, false, &whole);
	assert_int_equal(whole.desync, 1);
}

/* A header line leaves the same state however it was read: what its name
 * and value leave behind is cleared at its end. */
static void test_whole_line_state_cleared(void **state)
{
	(void)state;
	static const char *const heads[] = {
		"GET / HTTP/1.1\r\nX-Request-ID: abc\r\n",
		"GET / HTTP/1.1\r\nX-Request-ID: abc\r\nHost: h\r\n",
		"GET / HTTP/1.1\r\ntracestate: a=1 \r\n",
		"GET / HTTP/1.1\r\nContent-Length: 3\r\nX-Correlation-IDs: x\r\n",
	};
	for (size_t i = 0; i < sizeof heads / sizeof heads[0]; i++) {
		struct run whole;
		expect_splits_same(heads[i], strlen(heads[i]), true, &whole);
		assert_int_equal(whole.end.name_match, 0);
		assert_int_equal(whole.end.token_len, 0);
		assert_int_equal(whole.end.value_len, 0);
		assert_false(whole.end.value_overflow);
		assert_true(whole.end.tracestate_line_empty);
		assert_int_equal(whole.end.capture, RANK_NONE);
		assert_true(http_parser_in_head(&whole.end));
	}
}

/* Inside a head from a request line's first byte until the blank line's CR
 * reported it; never in a body, a chunk's lines or between requests. */
static void test_in_head(void **state)
{
	(void)state;
	static const struct {
		const char *bytes;
		bool in_head;
	} after[] = {
		{ "", false },
		{ "\r\n", false },
		{ "G", true },
		{ "GET / HTTP/1.1\r", true },
		{ "GET / HTTP/1.1\r\n", true },
		{ "GET / HTTP/1.1\r\nHost: x", true },
		{ "GET / HTTP/1.1\r\nHost: x\r", true },
		{ "GET / HTTP/1.1\r\nHost: x\r\n\r", false },
		{ "GET / HTTP/1.1\r\nHost: x\r\n\r\n", false },
		{ "POST / HTTP/1.1\r\nContent-Length: 5\r\n\r\nab", false },
		{ "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n5\r", false },
		{ "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r", false },
		{ "GET / HTTP/1.1\r\n\r\nGET /", true },
	};
	for (size_t i = 0; i < sizeof after / sizeof after[0]; i++) {
		struct http_feed_result r;
		init_default();
		feed_str(after[i].bytes, &r);
		if (http_parser_in_head(&g_p) != after[i].in_head)
			fail_msg("after %zu: in_head %d", i, !after[i].in_head);
	}
}

/* Request lines a server logs as they came, and those it may log as
 * another request's. */
/* How a server may log a request line: as it came, or a format of the
 * path alone without its query (counted so), or rewritten (decoded,
 * normalised, upper-cased, absolute form dropped: counted as unseen). */
static void test_request_line_logging(void **state)
{
	(void)state;
	static const struct {
		const char *line;
		enum line_logging logging;
		size_t path_end;
	} cases[] = {
		{"GET /x HTTP/1.1", LINE_AS_IS, 0},
		{"OPTIONS * HTTP/1.1", LINE_AS_IS, 0},
		{"VERSION-CONTROL /x HTTP/1.1", LINE_AS_IS, 0},
		{"GET /.well/x. HTTP/1.1", LINE_AS_IS, 0},
		{"GET /a/..b/c... HTTP/1.1", LINE_AS_IS, 0},
		{"GET / HTTP/1.0", LINE_AS_IS, 0},
		{"POST /a?b=c HTTP/1.0", LINE_OR_PATH, 7},
		{"GET /a?%41//./# HTTP/1.1", LINE_OR_PATH, 6},
		{"GET /?x HTTP/1.1", LINE_OR_PATH, 5},
		{"get /x HTTP/1.1", LINE_REWRITTEN, 0},
		{"Get /x HTTP/1.1", LINE_REWRITTEN, 0},
		{"GET http://h/x HTTP/1.1", LINE_REWRITTEN, 0},
		{"GET HTTP://h/x HTTP/1.1", LINE_REWRITTEN, 0},
		{"CONNECT h:443 HTTP/1.1", LINE_REWRITTEN, 0},
		{"GET /x#f HTTP/1.1", LINE_REWRITTEN, 0},
		{"GET *x HTTP/1.1", LINE_REWRITTEN, 0},
		{"M-SEARCH2 /%76 HTTP/1.1", LINE_REWRITTEN, 0},
		{"GET /v/./x HTTP/1.1", LINE_REWRITTEN, 0},
		{"GET /v/../x HTTP/1.1", LINE_REWRITTEN, 0},
		{"GET /v/. HTTP/1.1", LINE_REWRITTEN, 0},
		{"GET /v/.. HTTP/1.1", LINE_REWRITTEN, 0},
		{"GET /v/.?q HTTP/1.1", LINE_REWRITTEN, 0},
		{"GET //v/x HTTP/1.1", LINE_REWRITTEN, 0},
		{"GET /v//x?q HTTP/1.1", LINE_REWRITTEN, 0},
		{"GET /v\\x HTTP/1.1", LINE_REWRITTEN, 0},
		{"GET /v/.", LINE_REWRITTEN, 0},
		/* paths a block of 16 bytes holds, or two */
		{"GET /abcdefghijklmnopqrstuvwxyz/./x HTTP/1.1", LINE_REWRITTEN, 0},
		{"GET /abcdefghijklmn//x HTTP/1.1", LINE_REWRITTEN, 0},
		{"GET /abcdefghijklm/..?x HTTP/1.1", LINE_REWRITTEN, 0},
		{"GET /abcdefghijklmnopqrstuvw%41 HTTP/1.1", LINE_REWRITTEN, 0},
		{"GET /abcdefghijklmnopqrstuvwxyz/.well-known/x HTTP/1.1", LINE_AS_IS, 0},
		{"GET /abcdefghijklmnopqrstuvwxyz/a/b HTTP/1.1", LINE_AS_IS, 0},
		{"GET /abcdefghijklmnopqrstuvwxyz?q=//./%# HTTP/1.1", LINE_OR_PATH, 31},
		{"GET /abcdefghijklmno?q HTTP/1.1", LINE_OR_PATH, 20},
		{"GET", LINE_REWRITTEN, 0},
		{"GET ", LINE_REWRITTEN, 0},
		{"", LINE_REWRITTEN, 0},
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		size_t path_end = 0;
		enum line_logging got = http_request_line_logging(cases[i].line,
								  strlen(cases[i].line), &path_end);
		if (got != cases[i].logging || (got == LINE_OR_PATH && path_end != cases[i].path_end))
			fail_msg("%s: %d (path to %zu)", cases[i].line, (int)got, path_end);
	}
}

/* The rule one byte at a time, as the function's tail takes it: what the
 * blocks of 16 must agree with. */
static enum line_logging logging_bytewise(const char *line, size_t len, size_t *path_end)
{
	size_t i = 0;
	while (i < len && line[i] != ' ')
		if (line[i++] >= 'a' && line[i - 1] <= 'z')
			return LINE_REWRITTEN;
	if (len - i < 3 || (line[i + 1] != '/' && (line[i + 1] != '*' || line[i + 2] != ' ')))
		return LINE_REWRITTEN;
	size_t k = i + 1;
	for (; k < len && line[k] != ' ' && line[k] != '?'; k++) {
		if (line[k] == '%' || line[k] == '\\' || line[k] == '#')
			return LINE_REWRITTEN;
		if (line[k] == '/' && k + 1 < len) {
			size_t d = k + 1;
			if (line[d] == '/')
				return LINE_REWRITTEN;
			if (line[d] == '.') {
				size_t e = d + 1 < len && line[d + 1] == '.' ? d + 2 : d + 1;
				if (e == len || line[e] == '/' || line[e] == ' ' || line[e] == '?')
					return LINE_REWRITTEN;
			}
		}
	}
	if (k == len || line[k] == ' ')
		return LINE_AS_IS;
	*path_end = k;
	return LINE_OR_PATH;
}

/* Random lines from the bytes the rule looks at, each length to 95, in a
 * buffer of exactly that size (ASan: no byte past it is read). */
static void test_request_line_logging_random(void **state)
{
	(void)state;
	static const char alphabet[] = "//..%?# \\aGT";
	uint64_t x = 0x9e3779b97f4a7c15ull;
	for (int round = 0; round < 200000; round++) {
		size_t n = (size_t)(round % 96);
		char *line = malloc(n ? n : 1);
		assert_non_null(line);
		memcpy(line, "GET /", n < 5 ? n : 5);
		for (size_t k = 5; k < n; k++) {
			x ^= x << 13, x ^= x >> 7, x ^= x << 17;
			line[k] = alphabet[x % (sizeof(alphabet) - 1)];
		}
		size_t want_end = 0, got_end = 0;
		enum line_logging want = logging_bytewise(line, n, &want_end);
		enum line_logging got = http_request_line_logging(line, n, &got_end);
		if (got != want || (got == LINE_OR_PATH && got_end != want_end))
			fail_msg("%.*s: %d (%zu), want %d (%zu)", (int)n, line, (int)got, got_end,
				 (int)want, want_end);
		free(line);
	}
}

/* A first line that names an HTTP version, in any case, to its LF. */
static void test_first_line_names_version(void **state)
{
	(void)state;
	static const char *const named[] = {"GET /x HTTP/1.01\r\n", "GET  /x http/1.1", "X HtTp/"};
	static const char *const not_named[] = {"PING\r\nGET / HTTP/1.1\r\n", "GET /x HTTP", "", "HTTP"};
	for (size_t i = 0; i < sizeof named / sizeof named[0]; i++)
		assert_true(http_first_line_names_version(named[i], strlen(named[i])));
	for (size_t i = 0; i < sizeof not_named / sizeof not_named[0]; i++)
		assert_false(http_first_line_names_version(not_named[i], strlen(not_named[i])));
}

/* "HTTP/1." anywhere in a header value (a request line a log may quote
 * from it, or the end of one a server joins from a repeated header):
 * reported with the head, whole, byte by byte and in pieces that cut it
 * apart. A '/' without it, "HTTP" in a name, a lower-case "http/", another
 * version (WinHTTP/5.1, HTTP/2) or one cut across two headers report
 * nothing, nor does the request line's own; each request starts afresh. */
static void test_version_in_header_value(void **state)
{
	(void)state;
	static const struct {
		const char *head;
		bool found;
	} cases[] = {
		{"GET / HTTP/1.1\r\nUser-Agent: GET /x HTTP/1.1\r\n\r\n", true},
		{"GET / HTTP/1.1\r\nReferer: x\r\nX-Note: a\"GET /x HTTP/1.0\"\r\n\r\n", true},
		{"GET / HTTP/1.1\r\nVia: HTTP/1.1 gw\r\n\r\n", true},
		{"GET / HTTP/1.1\r\nUser-Agent: curl/8.0\r\nAccept: */*\r\n\r\n", false},
		{"GET / HTTP/1.1\r\nX-HTTP: /a\r\nX: http/1.1\r\n\r\n", false},
		{"GET / HTTP/1.1\r\nUser-Agent: WinHTTP/5.1 x\r\nUpgrade: a HTTP/2.0\r\n\r\n", false},
		{"GET /HTTP/ HTTP/1.1\r\nHost: h\r\n\r\n", false},
		{"GET / HTTP/1.1\r\nX: a\t HTTP/1.1\r\n\r\n", true},
		/* a value that is only the version's end: with a repeated header
		 * a server joins ("GET /x," ", " "HTTP/1.1") it ends a line */
		{"GET / HTTP/1.1\r\nUser-Agent: GET /x,\r\nUser-Agent:HTTP/1.1\r\n\r\n", true},
		{"GET / HTTP/1.1\r\nCookie: a=GET /x;\r\nCookie: HTTP/1.0\r\n\r\n", true},
		{"GET / HTTP/1.1\r\nX: HHTTP/1.\r\n\r\n", true},
		{"GET / HTTP/1.1\r\nX: HTTP/1\r\nY: .1\r\n\r\n", false},
	};
	for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
		const char *h = cases[c].head;
		size_t n = strlen(h);
		for (size_t cut = 1; cut <= n; cut++) {
			init_default();
			struct http_feed_result r;
			bool reported = false, completed = false;
			for (size_t off = 0; off < n; off += cut) {
				feed(h + off, n - off < cut ? n - off : cut, &r);
				if (r.headers_completed) {
					completed = true;
					reported = r.version_in_value;
				}
			}
			assert_true(completed);
			if (reported != cases[c].found)
				fail_msg("case %zu cut %zu: reported %d", c, cut, reported);
		}
	}
	/* The next request on the connection starts afresh. */
	init_default();
	struct http_feed_result r;
	feed_str("GET / HTTP/1.1\r\nX: HTTP/1.1\r\n\r\nGET / HTTP/1.1\r\nX: y\r\n\r\n", &r);
	assert_int_equal(r.headers_completed, 2);
	assert_false(r.version_in_value);
}

/* "HTTP/1." in a request body (a format that logs bodies may quote it as a
 * request line): reported once a body (a call reports whether any body in
 * its bytes did), at every cut of the stream, across
 * chunk boundaries (the body as the server decodes it); nothing for other
 * bytes, for the head's own, or for the next request. */
static void test_version_in_body(void **state)
{
	(void)state;
	static const struct {
		const char *stream;
		unsigned reports;
	} cases[] = {
		{"POST /p HTTP/1.1\r\nContent-Length: 17\r\n\r\nGET /v/1 HTTP/1.1", 1},
		{"POST /p HTTP/1.1\r\nContent-Length: 40\r\n\r\nHTTP/1.1 HTTP/1.0 HHTTP/1. and HTTP/1.x", 1},
		{"POST /p HTTP/1.1\r\nContent-Length: 24\r\n\r\nHTTP/2 http/1.1 HTTP/ 1.",
		 0},
		{"POST /p HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"
		 "5\r\nxHTTP\r\n3\r\n/1.\r\n0\r\n\r\n", 1},
		{"POST /p HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"
		 "4\r\nHTTP\r\n0\r\n\r\nPOST /q HTTP/1.1\r\nContent-Length: 3\r\n\r\n/1.", 0},
		{"POST /p HTTP/1.1\r\nContent-Length: 7\r\n\r\nHTTP/1.POST /q HTTP/1.1\r\n"
		 "Content-Length: 7\r\n\r\nHTTP/1.", 2},
		{"GET /p HTTP/1.1\r\nX: y\r\n\r\nGET /q HTTP/1.1\r\n\r\n", 0},
	};
	for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
		const char *h = cases[c].stream;
		size_t n = strlen(h);
		for (size_t cut = 1; cut <= n; cut++) {
			init_default();
			struct http_feed_result r;
			unsigned reports = 0;
			for (size_t off = 0; off < n; off += cut) {
				feed(h + off, n - off < cut ? n - off : cut, &r);
				reports += r.version_in_body;
			}
			/* once a body: byte by byte, each body's; in larger
			 * pieces, once for the bodies a piece ends. */
			if (cut == 1 ? reports != cases[c].reports
				     : (reports > 0) != (cases[c].reports > 0) ||
					       reports > cases[c].reports)
				fail_msg("case %zu cut %zu: %u reports", c, cut, reports);
		}
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_first_line_failing_at_once_keeps_no_line),
		cmocka_unit_test(test_simple_get),
		cmocka_unit_test(test_joined_stream),
		cmocka_unit_test(test_no_id_headers),
		cmocka_unit_test(test_header_name_case),
		cmocka_unit_test(test_value_ows_trimmed),
		cmocka_unit_test(test_precedence),
		cmocka_unit_test(test_traceparent),
		cmocka_unit_test(test_two_traceparents),
		cmocka_unit_test(test_invalid_request_id_falls_back),
		cmocka_unit_test(test_id_length_limits),
		cmocka_unit_test(test_id_128_with_trailing_ows),
		cmocka_unit_test(test_huge_values),
		cmocka_unit_test(test_custom_headers),
		cmocka_unit_test(test_line_endings),
		cmocka_unit_test(test_first_byte_starts_request),
		cmocka_unit_test(test_bytewise_simple),
		cmocka_unit_test(test_composite_stream_splits),
		cmocka_unit_test(test_composite_stream_ids),
		cmocka_unit_test(test_content_length_body_skipped),
		cmocka_unit_test(test_large_body_in_pieces),
		cmocka_unit_test(test_chunked_body_skipped),
		cmocka_unit_test(test_transfer_encoding_list),
		cmocka_unit_test(test_transfer_encoding_case_insensitive),
		cmocka_unit_test(test_chunked_overrides_content_length),
		cmocka_unit_test(test_long_future_traceparent),
		cmocka_unit_test(test_pipelined),
		cmocka_unit_test(test_connect_tunnel),
		cmocka_unit_test(test_asked_interim),
		cmocka_unit_test(test_in_body),
		cmocka_unit_test(test_request_line_kept),
		cmocka_unit_test(test_keep_alive_no_leak),
		cmocka_unit_test(test_empty_lines_before_request),
		cmocka_unit_test(test_obs_fold),
		cmocka_unit_test(test_not_http),
		cmocka_unit_test(test_method_length),
		cmocka_unit_test(test_desync_after_request),
		cmocka_unit_test(test_stopped_initially_false),
		cmocka_unit_test(test_trace_valid_fields),
		cmocka_unit_test(test_trace_header_name_case),
		cmocka_unit_test(test_trace_ows),
		cmocka_unit_test(test_trace_two_traceparents),
		cmocka_unit_test(test_trace_invalid_drops_tracestate),
		cmocka_unit_test(test_tracestate_multiple_lines),
		cmocka_unit_test(test_tracestate_too_long),
		cmocka_unit_test(test_tracestate_invalid_member),
		cmocka_unit_test(test_tracestate_empty),
		cmocka_unit_test(test_tracestate_without_traceparent),
		cmocka_unit_test(test_trace_obs_fold),
		cmocka_unit_test(test_trace_future_version_long),
		cmocka_unit_test(test_trace_not_an_id_header),
		cmocka_unit_test(test_trace_keep_alive),
		cmocka_unit_test(test_traceparent_ows_past_capture),
		cmocka_unit_test(test_tracestate_ows_not_counted),
		cmocka_unit_test(test_name_matches_only_in_first_bytes),
		cmocka_unit_test(test_line_ends_at_every_offset),
		cmocka_unit_test(test_bad_bytes_at_every_offset),
		cmocka_unit_test(test_browser_head_any_split),
		cmocka_unit_test(test_find_quoted_request_line),
		cmocka_unit_test(test_whole_request_line_edges),
		cmocka_unit_test(test_whole_header_name_edges),
		cmocka_unit_test(test_whole_twin_names),
		cmocka_unit_test(test_whole_line_end_edges),
		cmocka_unit_test(test_whole_captured_values),
		cmocka_unit_test(test_whole_line_state_cleared),
		cmocka_unit_test(test_in_head),
		cmocka_unit_test(test_starts_tls),
		cmocka_unit_test(test_starts_gateway),
		cmocka_unit_test(test_starts_h2),
		cmocka_unit_test(test_proxy_v2_rest),
		cmocka_unit_test(test_proxy_header_len),
		cmocka_unit_test(test_request_line_logging),
		cmocka_unit_test(test_request_line_logging_random),
		cmocka_unit_test(test_first_line_names_version),
		cmocka_unit_test(test_version_in_header_value),
		cmocka_unit_test(test_version_in_body),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
