/*
 * test_http_response.c - unit tests for shim/http_response.c: where the
 * shim's response header goes (just before the blank line ending a final
 * response's header block), the header already present, framing
 * (Content-Length, chunked with extensions and trailers, HEAD, 1xx, 101
 * tunnels, 204, 304, body until close), arbitrary write splits (the same
 * points, and the same parser state, as one write; each write from a heap
 * buffer of exactly its size, so that ASan sees a read past it), ':', CR
 * and LF at every offset against the parser's 8- and 16-byte scans, header
 * names at every length and with every byte, Content-Length's name and
 * value in every form the parser reads at once or byte by byte, names
 * that are prefixes of the names of interest, obs-fold, every byte of the
 * status line, every kind of line the usual form of a head takes at once
 * or leaves to the states (against the same bytes written one at a time),
 * bytes the shim does not see (sendfile), not-HTTP and the points[] limit.
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

#include "http_response.h"

#define MAXP 64

/* ---- harness ----------------------------------------------------------- */

static struct http_response_parser g_p;

static void init_named(const char *name)
{
	memset(&g_p, 0xA5, sizeof g_p);
	if (name)
		http_response_set_header(name, strlen(name));
	http_response_init(&g_p, name != NULL);
}

static void init_default(void)
{
	init_named("X-Request-ID");
}

/* buf[0, n) in a heap buffer of exactly n bytes, so that ASan sees any
 * read past a write's end (the parser's 16-byte loads must not make one). */
static char *exact_copy(const char *buf, size_t n)
{
	char *copy = malloc(n ? n : 1);
	assert_non_null(copy);
	memcpy(copy, buf, n);
	return copy;
}

static size_t plan_max(const char *buf, size_t n, size_t points[], size_t max)
{
	char *copy = exact_copy(buf, n);
	size_t k = http_response_plan(&g_p, copy, n, points, max);
	free(copy);
	return k;
}

/* http_response_advance on g_p, from an exactly sized copy of buf. */
static void advance(const char *buf, size_t n)
{
	char *copy = exact_copy(buf, n);
	http_response_advance(&g_p, copy, n);
	free(copy);
}

/* http_response_plan on g_p, checking that it leaves g_p as it was and that
 * every point lies inside buf, at a blank line after a header line. */
static size_t plan(const char *buf, size_t n, size_t points[], size_t max)
{
	struct http_response_parser before;
	memcpy(&before, &g_p, sizeof before);
	size_t k = plan_max(buf, n, points, max);
	assert_memory_equal(&before, &g_p, sizeof before);
	assert_true(k <= max);
	for (size_t i = 0; i < k; i++) {
		assert_true(points[i] < n);
		assert_true(buf[points[i]] == '\r' || buf[points[i]] == '\n');
		if (i > 0)
			assert_true(points[i] > points[i - 1]);
	}
	return k;
}

/* One write: plan, then advance. Appends the points, as offsets from the
 * start of the stream (base is buf's offset), to out[*count]. */
static void write_piece(const char *buf, size_t n, size_t base, size_t out[], size_t *count)
{
	size_t pts[MAXP];
	size_t k = plan(buf, n, pts, MAXP);
	for (size_t i = 0; i < k; i++) {
		assert_true(*count < MAXP);
		out[(*count)++] = base + pts[i];
	}
	advance(buf, n);
}

static void fresh(bool head)
{
	init_default();
	http_response_expect_head(&g_p, head);
}

/* Writes buf to a fresh parser in pieces of step bytes (0: one write). */
static size_t write_steps(const char *buf, size_t len, size_t step, bool head, size_t out[])
{
	size_t count = 0;
	fresh(head);
	if (step == 0)
		step = len ? len : 1;
	for (size_t off = 0; off < len; off += step)
		write_piece(buf + off, len - off < step ? len - off : step, off, out, &count);
	return count;
}

/* Writes buf to a fresh parser in two writes cut at cut. */
static size_t write_cut(const char *buf, size_t len, size_t cut, bool head, size_t out[])
{
	size_t count = 0;
	fresh(head);
	write_piece(buf, cut, 0, out, &count);
	write_piece(buf + cut, len - cut, cut, out, &count);
	return count;
}

static void expect_same(const size_t got[], size_t ngot, const size_t want[], size_t nwant,
			const char *how, size_t arg)
{
	bool same = ngot == nwant;
	for (size_t i = 0; same && i < nwant; i++)
		same = got[i] == want[i];
	if (same)
		return;
	print_error("%s %zu: %zu points, want %zu\n", how, arg, ngot, nwant);
	for (size_t i = 0; i < ngot || i < nwant; i++)
		print_error("  [%zu] got %lld want %lld\n", i, i < ngot ? (long long)got[i] : -1LL,
			    i < nwant ? (long long)want[i] : -1LL);
	fail();
}

/* Every split of buf (one write, byte-wise, a few step sizes, every two-way
 * cut) gives exactly the points want[], as offsets in buf, leaves the
 * parser stopped or not as said, and leaves it exactly as one write does. */
static void expect_points(const char *buf, size_t len, bool head, const size_t want[],
			  size_t nwant, bool stopped)
{
	static const size_t steps[] = { 0, 1, 2, 3, 7, 8, 13, 16, 17, 64 };
	size_t got[MAXP];
	struct http_response_parser whole;
	for (size_t i = 0; i < sizeof steps / sizeof steps[0]; i++) {
		size_t n = write_steps(buf, len, steps[i], head, got);
		expect_same(got, n, want, nwant, "step", steps[i]);
		assert_int_equal(http_response_stopped(&g_p), stopped);
		if (i == 0)
			memcpy(&whole, &g_p, sizeof whole);
		else
			assert_memory_equal(&g_p, &whole, sizeof whole);
	}
	for (size_t cut = 0; cut <= len; cut++) {
		size_t n = write_cut(buf, len, cut, head, got);
		expect_same(got, n, want, nwant, "cut at", cut);
		assert_int_equal(http_response_stopped(&g_p), stopped);
		assert_memory_equal(&g_p, &whole, sizeof whole);
	}
}

/* Offset in s of the first blank line (CRLF or LF, after a line ended by
 * either) ending a header block. */
static size_t blank_line(const char *s)
{
	const char *crlf = strstr(s, "\n\r\n");
	const char *lf = strstr(s, "\n\n");
	size_t a = crlf ? (size_t)(crlf - s) + 1 : SIZE_MAX;
	size_t b = lf ? (size_t)(lf - s) + 1 : SIZE_MAX;
	assert_true(a != SIZE_MAX || b != SIZE_MAX);
	return a < b ? a : b;
}

struct part {
	const char *text;
	bool point; /* the header goes before this part's first blank line */
};

/* The parts written back to back as one stream: expect_points on it. */
static void expect_parts(const struct part parts[], size_t nparts, bool head, bool stopped)
{
	char buf[4096];
	size_t len = 0, want[MAXP], nwant = 0;
	for (size_t i = 0; i < nparts; i++) {
		size_t n = strlen(parts[i].text);
		assert_true(len + n <= sizeof buf);
		if (parts[i].point)
			want[nwant++] = len + blank_line(parts[i].text);
		memcpy(buf + len, parts[i].text, n);
		len += n;
	}
	expect_points(buf, len, head, want, nwant, stopped);
}

static void expect_one(const char *s, bool point)
{
	struct part p = { s, point };
	expect_parts(&p, 1, false, false);
}

/* A response that must get its point once the parser is where g_p is. */
static void expect_next_gets_point(void)
{
	static const char next[] = "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n";
	size_t pts[MAXP];
	assert_int_equal(plan(next, sizeof next - 1, pts, MAXP), 1);
	assert_int_equal(pts[0], sizeof next - 3);
	advance(next, sizeof next - 1);
	assert_false(http_response_stopped(&g_p));
}

/* Nothing more is ever reported. */
static void expect_dead(void)
{
	static const char next[] = "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n";
	size_t pts[MAXP];
	assert_true(http_response_stopped(&g_p));
	assert_int_equal(plan(next, sizeof next - 1, pts, MAXP), 0);
	advance(next, sizeof next - 1);
	assert_true(http_response_stopped(&g_p));
	assert_int_equal(plan(next, sizeof next - 1, pts, MAXP), 0);
}

/* ---- single responses -------------------------------------------------- */

static void test_content_length_point(void **state)
{
	(void)state;
	static const char r[] = "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello";
	size_t pts[MAXP];
	init_default();
	assert_false(http_response_stopped(&g_p));
	assert_int_equal(plan(r, sizeof r - 1, pts, MAXP), 1);
	/* 17 bytes of status line, 19 of Content-Length: just before "\r\n\r\nhello"'s
	 * second CRLF */
	assert_int_equal(pts[0], 36);
	assert_memory_equal(r + pts[0], "\r\nhello", 7);
	advance(r, sizeof r - 1);
	assert_false(http_response_stopped(&g_p));
	expect_next_gets_point();

	expect_one(r, true);
	expect_one("HTTP/1.0 200 OK\r\nServer: x\r\nContent-Length: 0\r\n\r\n", true);
	expect_one("HTTP/1.1 404 Not Found\r\ncontent-length:  3 \t\r\nX-A: b\r\n\r\nno!", true);
	expect_one("HTTP/1.1 500 Internal Server Error\r\nCONTENT-LENGTH: 2\r\n\r\nxx", true);
}

static void test_header_already_present(void **state)
{
	(void)state;
	static const char *const have[] = {
		"HTTP/1.1 200 OK\r\nX-Request-ID: abc\r\nContent-Length: 0\r\n\r\n",
		"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nx-request-id:abc\r\n\r\n",
		"HTTP/1.1 200 OK\r\nX-REQUEST-ID: \t abc \t\r\nContent-Length: 0\r\n\r\n",
		"HTTP/1.1 200 OK\r\nx-ReQuEsT-iD:\r\nContent-Length: 0\r\n\r\n",
		"HTTP/1.1 200 OK\nX-Request-Id:  abc  \nContent-Length: 0\n\n",
	};
	for (size_t i = 0; i < sizeof have / sizeof have[0]; i++)
		expect_one(have[i], false);
	/* near misses are other headers */
	expect_one("HTTP/1.1 200 OK\r\nX-Request-IDs: abc\r\nContent-Length: 0\r\n\r\n", true);
	expect_one("HTTP/1.1 200 OK\r\nX-Request-I: abc\r\nContent-Length: 0\r\n\r\n", true);
	expect_one("HTTP/1.1 200 OK\r\nX-Request: abc\r\nContent-Length: 0\r\n\r\n", true);
	expect_one("HTTP/1.1 200 OK\r\nX-Other: X-Request-ID: abc\r\nContent-Length: 0\r\n\r\n",
		   true);
	/* only that response carries it: the next one still gets the header */
	static const struct part two[] = {
		{ "HTTP/1.1 200 OK\r\nX-Request-ID: abc\r\nContent-Length: 2\r\n\r\nok", false },
		{ "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", true },
	};
	expect_parts(two, 2, false, false);
	/* a header name given in lowercase */
	init_named("x-request-id");
	size_t pts[MAXP];
	static const char r[] = "HTTP/1.1 200 OK\r\nX-Request-ID: a\r\nContent-Length: 0\r\n\r\n";
	assert_int_equal(plan(r, sizeof r - 1, pts, MAXP), 0);
}

static void test_status_line_forms(void **state)
{
	(void)state;
	expect_one("HTTP/1.1 200\r\nContent-Length: 0\r\n\r\n", true);
	expect_one("HTTP/1.1 200 \r\nContent-Length: 0\r\n\r\n", true);
	expect_one("HTTP/1.1 200\nContent-Length: 0\n\n", true);
	expect_one("HTTP/1.0 299 Whatever it says\r\nContent-Length: 0\r\n\r\n", true);
	/* no header at all: the point is right after the status line */
	static const char bare[] = "HTTP/1.1 200 OK\r\n\r\n";
	size_t want = 17;
	expect_points(bare, sizeof bare - 1, false, &want, 1, true);
}

static void test_bare_lf(void **state)
{
	(void)state;
	static const struct part lf[] = {
		{ "HTTP/1.1 200 OK\nContent-Length: 2\n\nok", true },
		{ "HTTP/1.1 200 OK\nTransfer-Encoding: chunked\n\n2\nok\n0\n\n", true },
		{ "HTTP/1.1 200 OK\r\nContent-Length: 0\n\r\n", true },
		{ "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\n", true },
	};
	expect_parts(lf, 4, false, false);
	static const char r[] = "HTTP/1.1 200 OK\nContent-Length: 2\n\nok";
	size_t pts[MAXP];
	init_default();
	assert_int_equal(plan(r, sizeof r - 1, pts, MAXP), 1);
	assert_int_equal(pts[0], 34);
	assert_int_equal(r[pts[0]], '\n');
}

/* ---- splits ------------------------------------------------------------ */

static void test_every_two_way_split(void **state)
{
	(void)state;
	static const char r[] = "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n"
				"Content-Length: 12\r\n\r\nhello world\n";
	size_t whole[MAXP], got[MAXP];
	assert_int_equal(write_steps(r, sizeof r - 1, 0, false, whole), 1);
	assert_int_equal(whole[0], blank_line(r));
	for (size_t cut = 0; cut < sizeof r; cut++) {
		size_t first[MAXP], second[MAXP];
		init_default();
		size_t a = plan(r, cut, first, MAXP);
		advance(r, cut);
		size_t b = plan(r + cut, sizeof r - 1 - cut, second, MAXP);
		assert_int_equal(a + b, 1);
		assert_int_equal(a ? first[0] : cut + second[0], whole[0]);
		assert_int_equal(write_cut(r, sizeof r - 1, cut, false, got), 1);
		assert_int_equal(got[0], whole[0]);
	}
}

static void test_one_byte_at_a_time(void **state)
{
	(void)state;
	static const char r[] = "HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nabc"
				"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n";
	size_t pts[MAXP];
	size_t at = 0, count = 0;
	init_default();
	for (size_t i = 0; i < sizeof r - 1; i++) {
		size_t k = plan(r + i, 1, pts, MAXP);
		if (k) {
			assert_int_equal(k, 1);
			assert_int_equal(pts[0], 0);
			at = i;
			count++;
			if (count == 1)
				assert_int_equal(at, 36);
		}
		advance(r + i, 1);
	}
	assert_int_equal(count, 2);
	assert_int_equal(at, 41 + 45);
	assert_false(http_response_stopped(&g_p));
	expect_next_gets_point();
}

static void test_keep_alive_three(void **state)
{
	(void)state;
	static const struct part three[] = {
		{ "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nfirst", true },
		{ "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n", true },
		{ "HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: 6\r\n\r\n<p></p>", true },
	};
	/* "<p></p>" is 7 bytes: the last byte starts a fourth response, ">" is not HTTP */
	expect_parts(three, 3, false, true);
	static const struct part clean[] = {
		{ "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nfirst", true },
		{ "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n", true },
		{ "HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: 7\r\n\r\n<p></p>", true },
	};
	expect_parts(clean, 3, false, false);
	/* exact offsets */
	char buf[512];
	size_t len = 0;
	for (size_t i = 0; i < 3; i++) {
		memcpy(buf + len, clean[i].text, strlen(clean[i].text));
		len += strlen(clean[i].text);
	}
	size_t pts[MAXP];
	init_default();
	assert_int_equal(plan(buf, len, pts, MAXP), 3);
	assert_int_equal(pts[0], 36);
	assert_int_equal(pts[1], 43 + 43);
	assert_int_equal(pts[2], 43 + 45 + 61);
}

/* ---- framing ----------------------------------------------------------- */

static void test_body_looks_like_response(void **state)
{
	(void)state;
	static const struct part parts[] = {
		{ "HTTP/1.1 200 OK\r\nContent-Length: 19\r\n\r\nHTTP/1.1 200 OK\r\n\r\n", true },
		{ "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
		  "13\r\nHTTP/1.1 200 OK\r\n\r\n\r\n"
		  "26\r\nHTTP/1.1 200 OK\r\n\r\nHTTP/1.1 200 OK\r\n\r\n\r\n"
		  "0\r\n\r\n", true },
		{ "HTTP/1.1 200 OK\r\nContent-Length: 38\r\n\r\n"
		  "HTTP/1.1 200 OK\r\nX-Request-ID: x\r\n\r\n\r\n", true },
	};
	expect_parts(parts, 3, false, false);
}

static void test_chunked(void **state)
{
	(void)state;
	static const struct part parts[] = {
		{ "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
		  "5;name=value;q=\"a b\"\r\nhello\r\n"
		  "1A ; ext\r\nabcdefghijklmnopqrstuvwxyz\r\n"
		  "0;last=1\r\nX-Trailer: 1\r\nX-Other: HTTP/1.1 200 OK\r\n\r\n", true },
		{ "HTTP/1.1 201 Created\r\nContent-Length: 2\r\n\r\nok", true },
		{ "HTTP/1.1 200 OK\r\ntransfer-encoding:  gzip, CHUNKED \r\n\r\n"
		  "a\r\n0123456789\r\n0\r\n\r\n", true },
		{ "HTTP/1.1 200 OK\r\nContent-Length: 100\r\nTransfer-Encoding: chunked\r\n\r\n"
		  "0\r\n\r\n", true },
		{ "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", true },
	};
	expect_parts(parts, 5, false, false);
	/* a chunk that does not end with its line ending stops the parser */
	static const struct part bad[] = {
		{ "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabcd\r\n0\r\n\r\n", true },
		{ "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", false },
	};
	expect_parts(bad, 2, false, true);
}

static void test_head_response(void **state)
{
	(void)state;
	static const struct part parts[] = {
		{ "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n", true },
		{ "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", true },
		{ "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", true },
	};
	expect_parts(parts, 3, true, false);
	/* HEAD with chunked: no body either */
	static const struct part chunked[] = {
		{ "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", true },
		{ "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", true },
	};
	expect_parts(chunked, 2, true, false);
	/* not said to be HEAD: the next response's first 5 bytes are the body */
	static const struct part nohead[] = {
		{ "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n", true },
		{ "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", false },
	};
	expect_parts(nohead, 2, false, true);
	/* HEAD survives an interim response */
	static const struct part interim[] = {
		{ "HTTP/1.1 100 Continue\r\n\r\n", false },
		{ "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n", true },
		{ "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", true },
	};
	expect_parts(interim, 3, true, false);
	/* expect_head(false) undoes it */
	init_default();
	http_response_expect_head(&g_p, true);
	http_response_expect_head(&g_p, false);
	static const char r[] = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";
	advance(r, sizeof r - 1);
	expect_next_gets_point();
}

static void test_interim_responses(void **state)
{
	(void)state;
	static const struct part cont[] = {
		{ "HTTP/1.1 100 Continue\r\n\r\n", false },
		{ "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", true },
	};
	expect_parts(cont, 2, false, false);
	static const struct part hints[] = {
		{ "HTTP/1.1 103 Early Hints\r\nLink: </s.css>; rel=preload\r\n\r\n", false },
		{ "HTTP/1.1 102 Processing\nContent-Length: 4\n\n", false },
		{ "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", true },
	};
	expect_parts(hints, 3, false, false);
	/* exact: one point, in the 200 */
	static const char r[] = "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";
	size_t pts[MAXP];
	init_default();
	assert_int_equal(plan(r, sizeof r - 1, pts, MAXP), 1);
	assert_int_equal(pts[0], 25 + 36);
}

static void test_no_body_statuses(void **state)
{
	(void)state;
	static const struct part parts[] = {
		{ "HTTP/1.1 204 No Content\r\n\r\n", true },
		{ "HTTP/1.1 304 Not Modified\r\nContent-Length: 10\r\nETag: \"x\"\r\n\r\n", true },
		{ "HTTP/1.1 304 Not Modified\r\nTransfer-Encoding: chunked\r\n\r\n", true },
		{ "HTTP/1.1 204 No Content\r\nContent-Length: 7\r\n\r\n", true },
		{ "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", true },
	};
	expect_parts(parts, 5, false, false);
}

static void test_switching_protocols(void **state)
{
	(void)state;
	static const struct part parts[] = {
		{ "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
		  "Connection: Upgrade\r\n\r\n", false },
		{ "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", false },
		{ "\x81\x05hello", false },
	};
	expect_parts(parts, 3, false, true);
	static const char r[] = "HTTP/1.1 101 Switching Protocols\r\nUpgrade: h2c\r\n\r\n";
	init_default();
	advance(r, sizeof r - 1);
	expect_dead();
}

static void test_until_close(void **state)
{
	(void)state;
	static const struct part parts[] = {
		{ "HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\n", true },
		{ "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", false },
	};
	expect_parts(parts, 2, false, true);
	/* Transfer-Encoding that does not end in chunked: until close too */
	static const struct part gzip[] = {
		{ "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, gzip\r\n\r\n", true },
		{ "0\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", false },
	};
	expect_parts(gzip, 2, false, true);
	static const struct part notchunked[] = {
		{ "HTTP/1.1 200 OK\r\nTransfer-Encoding: xchunked\r\n\r\n", true },
		{ "0\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", false },
	};
	expect_parts(notchunked, 2, false, true);
	/* A Transfer-Encoding line frames the response whatever its
	 * Content-Length says, before or after it */
	static const struct part length_then_coding[] = {
		{ "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nTransfer-Encoding: gzip\r\n\r\nok", true },
		{ "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", false },
	};
	expect_parts(length_then_coding, 2, false, true);
	static const struct part coding_then_length[] = {
		{ "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\nContent-Length: 2\r\n\r\nok", true },
		{ "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", false },
	};
	expect_parts(coding_then_length, 2, false, true);
	static const struct part chunked_then_length[] = {
		{ "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 100000\r\n\r\n"
		  "2\r\nok\r\n0\r\n\r\n", true },
		{ "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", true },
	};
	expect_parts(chunked_then_length, 2, false, false);
	static const char r[] = "HTTP/1.1 200 OK\r\n\r\nbody";
	size_t pts[MAXP];
	init_default();
	assert_int_equal(plan(r, sizeof r - 1, pts, MAXP), 1);
	assert_int_equal(pts[0], 17);
	advance(r, sizeof r - 1);
	expect_dead();
}

/* ---- not HTTP ---------------------------------------------------------- */

static void expect_garbage(const char *buf, size_t len)
{
	size_t pts[MAXP];
	init_default();
	assert_int_equal(plan(buf, len, pts, MAXP), 0);
	advance(buf, len);
	expect_dead();
}

static void test_garbage(void **state)
{
	(void)state;
	static const char g1[] = "garbage\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n";
	expect_garbage(g1, sizeof g1 - 1);
	static const char *const bad[] = {
		"HTTP/2 200\r\n\r\n",
		"HTTP/1.1 20 OK\r\n\r\n",
		"HTTP/1.1 2000 OK\r\n\r\n",
		"HTTP/1.1  200 OK\r\n\r\n",
		"HTTP/1.x 200 OK\r\n\r\n",
		"HTTP/1.11 200 OK\r\n\r\n",
		"http/1.1 200 OK\r\n\r\n",
		"\r\nHTTP/1.1 200 OK\r\n\r\n",
		"HTTP/1.1 200 OK\r\nBad Header: x\r\n\r\n",
		"HTTP/1.1 200 OK\r\n folded: x\r\n\r\n",
		"HTTP/1.1 200 OK\r\nContent-Length: 5x\r\n\r\n",
		"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n",
		"HTTP/1.1 200 OK\r\nContent-Length: \r\n\r\n",
		"HTTP/1.1 200 OK\r\nContent-Length: 99999999999999999999\r\n\r\n",
		"HTTP/1.1 200 OK\rX: y\r\n\r\n",
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
		expect_garbage(bad[i], strlen(bad[i]));
	static const char bin[] = "\x16\x03\x01\x02\x00";
	expect_garbage(bin, sizeof bin - 1);
	/* after a good response */
	static const struct part parts[] = {
		{ "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", true },
		{ "junk", false },
		{ "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", false },
	};
	expect_parts(parts, 3, false, true);
}

/* ---- bytes the shim does not see --------------------------------------- */

static void test_skip_within_body(void **state)
{
	(void)state;
	static const char head[] = "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n";
	size_t pts[MAXP];
	init_default();
	assert_int_equal(plan(head, sizeof head - 1, pts, MAXP), 1);
	advance(head, sizeof head - 1);
	http_response_skip(&g_p, 10);
	assert_false(http_response_stopped(&g_p));
	expect_next_gets_point();

	/* part written, part sent unseen in two calls, skip(0) a no-op */
	init_default();
	advance(head, sizeof head - 1);
	advance("abc", 3);
	http_response_skip(&g_p, 0);
	http_response_skip(&g_p, 4);
	http_response_skip(&g_p, 3);
	assert_false(http_response_stopped(&g_p));
	expect_next_gets_point();

	/* unseen then seen */
	init_default();
	advance(head, sizeof head - 1);
	http_response_skip(&g_p, 6);
	advance("wxyz", 4);
	expect_next_gets_point();

	/* inside a chunk */
	static const char ch[] = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n400\r\n";
	init_default();
	advance(ch, sizeof ch - 1);
	http_response_skip(&g_p, 0x400);
	assert_false(http_response_stopped(&g_p));
	advance("\r\n0\r\n\r\n", 7);
	expect_next_gets_point();
}

static void test_skip_beyond_body(void **state)
{
	(void)state;
	static const char head[] = "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n";
	init_default();
	advance(head, sizeof head - 1);
	http_response_skip(&g_p, 11);
	expect_dead();

	init_default();
	advance(head, sizeof head - 1);
	advance("0123456", 7);
	http_response_skip(&g_p, 4);
	expect_dead();

	/* between responses, in headers, before anything */
	static const char full[] = "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n";
	init_default();
	advance(full, sizeof full - 1);
	http_response_skip(&g_p, 1);
	expect_dead();
	init_default();
	advance(full, 20);
	http_response_skip(&g_p, 1);
	expect_dead();
	init_default();
	http_response_skip(&g_p, 5);
	expect_dead();

	/* past a chunk's end */
	static const char ch[] = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n4\r\n";
	init_default();
	advance(ch, sizeof ch - 1);
	http_response_skip(&g_p, 5);
	expect_dead();
}

/* ---- runs: every position against the 8- and 16-byte blocks ----------- */

/* A header line of every name and value length up to 34 (its ':' and line
 * end at every offset from where a scan starts; expect_points cuts the
 * buffer everywhere, so at every offset from a buffer's end too), ended by
 * CRLF or LF: one point, after it. */
static void test_line_and_colon_at_every_offset(void **state)
{
	(void)state;
	static const char *const eols[] = { "\r\n", "\n" };
	static const char name_chars[] = "Abcdefghijklmnopqrstuvwxyz-0123456789";
	static const char value_chars[] = "v: ;,\t\"x/";
	char buf[256];
	for (size_t e = 0; e < 2; e++) {
		for (size_t name_len = 1; name_len <= 34; name_len++) {
			for (size_t value_len = 0; value_len <= 34; value_len++) {
				size_t len = (size_t)sprintf(buf, "HTTP/1.1 200 OK%s", eols[e]);
				for (size_t k = 0; k < name_len; k++)
					buf[len++] = name_chars[k % (sizeof name_chars - 1)];
				buf[len++] = ':';
				for (size_t k = 0; k < value_len; k++)
					buf[len++] = value_chars[k % (sizeof value_chars - 1)];
				len += (size_t)sprintf(buf + len, "%sContent-Length: 2%s%sok", eols[e],
						       eols[e], eols[e]);
				size_t want = len - 2 - strlen(eols[e]);
				expect_points(buf, len, false, &want, 1, false);
			}
		}
	}
}

/* The configured name at every length up to the limit (8-byte compares, the
 * last one overlapping): found in any case; any one byte different, one
 * byte more or one less, it is another header. '^' and '~' differ only in
 * 0x20, as a case does: they must not match each other. */
static void test_header_name_every_length(void **state)
{
	(void)state;
	static const char pattern[] = "X-ab^cd~ef_gh.ij!kl|mn`op'qr*st#uv$wx%yz&Q+";
	char name[RESPONSE_HEADER_NAME_MAX + 1], sent[RESPONSE_HEADER_NAME_MAX + 2];
	char buf[256];
	for (size_t len = 1; len <= RESPONSE_HEADER_NAME_MAX; len++) {
		for (size_t k = 0; k < len; k++)
			name[k] = pattern[k % (sizeof pattern - 1)];
		name[len] = 0;
		/* kinds: 0 the name in another case, 1 one byte longer, 2 one
		 * shorter, 3 + k byte k changed */
		for (size_t kind = 0; kind < 3 + len; kind++) {
			memcpy(sent, name, len + 1);
			size_t sent_len = len;
			if (kind == 0) {
				for (size_t k = 0; k < len; k++)
					if ((sent[k] | 0x20) >= 'a' && (sent[k] | 0x20) <= 'z')
						sent[k] ^= 0x20;
			} else if (kind == 1) {
				sent[sent_len++] = 'z';
			} else if (kind == 2) {
				if (len == 1)
					continue;
				sent_len--;
			} else {
				char *c = &sent[kind - 3];
				if (*c == '^' || *c == '~')
					*c ^= 0x20; /* the other one */
				else if ((*c | 0x20) >= 'a' && (*c | 0x20) <= 'z')
					*c = (char)((*c | 0x20) == 'z' ? 'a' : *c + 1);
				else
					*c = *c == '-' ? '_' : '-';
			}
			int n = snprintf(buf, sizeof buf,
					 "HTTP/1.1 200 OK\r\n%.*s: abc\r\nContent-Length: 0\r\n\r\n",
					 (int)sent_len, sent);
			bool point = kind != 0;
			size_t want = (size_t)n - 2, got[MAXP];
			for (size_t cut = 0; cut <= (size_t)n; cut++) {
				init_named(name);
				size_t count = 0;
				write_piece(buf, cut, 0, got, &count);
				write_piece(buf + cut, (size_t)n - cut, cut, got, &count);
				expect_same(got, count, &want, point, "name length", len);
				assert_false(http_response_stopped(&g_p));
			}
		}
	}
}

/* Content-Length and Transfer-Encoding are known by every byte of their
 * names, in any case, and by their lengths. */
static void test_framing_names_near_misses(void **state)
{
	(void)state;
	static const char *const names[] = { "Content-Length", "Transfer-Encoding" };
	char name[32], buf[256];
	for (size_t which = 0; which < 2; which++) {
		size_t len = strlen(names[which]);
		/* kinds: 0 as is, 1 case swapped, 2 one byte longer, 3 one
		 * shorter, 4 + k byte k changed */
		for (size_t kind = 0; kind < 4 + len; kind++) {
			memcpy(name, names[which], len + 1);
			size_t name_len = len;
			if (kind == 1) {
				for (size_t k = 0; k < len; k++)
					if (name[k] != '-')
						name[k] ^= 0x20;
			} else if (kind == 2) {
				name[name_len++] = 's';
			} else if (kind == 3) {
				name_len--;
			} else if (kind >= 4) {
				name[kind - 4] = name[kind - 4] == '-' ? '_' : 'q';
			}
			bool known = kind < 2;
			size_t want[2], nwant = 0;
			int n;
			if (which == 0) {
				/* a value that is no length: known, it stops the parser */
				n = snprintf(buf, sizeof buf, "HTTP/1.1 200 OK\r\n%.*s: 1x\r\n\r\n",
					     (int)name_len, name);
				if (!known)
					want[nwant++] = (size_t)n - 2;
			} else {
				/* known: chunked, then a second response; else the
				 * body runs until close */
				n = snprintf(buf, sizeof buf,
					     "HTTP/1.1 200 OK\r\n%.*s: chunked\r\n\r\n0\r\n\r\n"
					     "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n",
					     (int)name_len, name);
				want[nwant++] = blank_line(buf);
				if (known)
					want[nwant++] = (size_t)n - 2;
			}
			expect_points(buf, (size_t)n, false, want, nwant, which == 0 || !known);
		}
	}
}

/* Every token character at every offset of a header name is part of it;
 * every other byte there stops the parser. */
static void test_name_bytes_at_every_offset(void **state)
{
	(void)state;
	static const char tchars[] = "!#$%&'*+-.^_`|~09azAZ";
	static const char others[] = " \t\"(),/;<=>?@[\\]{}\x7f\x80\xff\x01";
	char buf[256];
	for (size_t pos = 0; pos < 34; pos++) {
		for (size_t t = 0; t < sizeof tchars - 1 + sizeof others - 1; t++) {
			bool tchar = t < sizeof tchars - 1;
			char c = tchar ? tchars[t] : others[t - (sizeof tchars - 1)];
			char name[40];
			memset(name, 'n', sizeof name);
			name[pos] = c;
			int n = snprintf(buf, sizeof buf,
					 "HTTP/1.1 200 OK\r\n%.34s: v\r\nContent-Length: 0\r\n\r\n", name);
			size_t want = (size_t)n - 2;
			expect_points(buf, (size_t)n, false, &want, tchar, !tchar);
		}
	}
}

/* "HTTP/1.x NNN" is checked whole when its 12 bytes are at hand: a wrong
 * byte anywhere in it stops the parser, as it does byte by byte. */
static void test_status_line_every_byte(void **state)
{
	(void)state;
	static const char r[] = "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n";
	static const char wrong[] = "x /.a:\r";
	char buf[sizeof r];
	for (size_t k = 0; k < 13; k++) {
		for (size_t w = 0; w < sizeof wrong - 1; w++) {
			memcpy(buf, r, sizeof r);
			if (buf[k] == wrong[w])
				continue;
			buf[k] = wrong[w];
			/* "HTTP/1.1 200x": a 4th status byte; "HTTP/1.1 200/": no
			 * space after the status */
			expect_points(buf, sizeof r - 1, false, NULL, 0, true);
		}
	}
}

/* Heads as nginx and Apache write them: a point just before the blank
 * line, byte by byte or in one piece. */
static void test_real_heads(void **state)
{
	(void)state;
	static const struct part parts[] = {
		{ "HTTP/1.1 200 OK\r\nServer: nginx/1.22.1\r\nDate: Mon, 06 May 2024 10:21:33 GMT\r\n"
		  "Content-Type: text/html\r\nContent-Length: 32\r\n"
		  "Last-Modified: Mon, 06 May 2024 09:00:00 GMT\r\nConnection: keep-alive\r\n"
		  "ETag: \"6638a2f0-20\"\r\nAccept-Ranges: bytes\r\n\r\n"
		  "<html><body>hello</body></html>\n", true },
		{ "HTTP/1.1 200 OK\r\nDate: Mon, 06 May 2024 10:21:33 GMT\r\n"
		  "Server: Apache/2.4.59 (Debian)\r\nLast-Modified: Mon, 06 May 2024 09:00:00 GMT\r\n"
		  "ETag: \"20-617c5d1e2a0c0\"\r\nAccept-Ranges: bytes\r\nContent-Length: 32\r\n"
		  "Cache-Control: max-age=3600\r\nExpires: Mon, 06 May 2024 11:21:33 GMT\r\n"
		  "Vary: Accept-Encoding\r\nX-Content-Type-Options: nosniff\r\n"
		  "Keep-Alive: timeout=5, max=100\r\nConnection: Keep-Alive\r\n"
		  "Content-Type: text/html; charset=UTF-8\r\n\r\n"
		  "<html><body>hello</body></html>\n", true },
		{ "HTTP/1.1 200 OK\r\nServer: nginx/1.22.1\r\nContent-Type: application/json\r\n"
		  "Transfer-Encoding: chunked\r\nConnection: keep-alive\r\n\r\n"
		  "1e\r\n{\"id\":2,\"name\":\"beta\",\"v\":7}\r\n\r\n0\r\n\r\n", true },
	};
	expect_parts(parts, 3, false, false);
}

/* ---- Content-Length read at once, names known at once ------------------ */

/* Token characters, as RFC 9110 has them. */
static bool is_tchar(unsigned char c)
{
	return (c >= '0' && c <= '9') || ((c | 0x20) >= 'a' && (c | 0x20) <= 'z') ||
	       (c && strchr("!#$%&'*+-.^_`|~", c));
}

/* "HTTP/1.1 200 OK\r\n", then lines (each with its line end), the blank
 * line, then tail: into buf; returns the length. */
static size_t head_with(char *buf, size_t size, const char *lines, const char *tail)
{
	int n = snprintf(buf, size, "HTTP/1.1 200 OK\r\n%s\r\n%s", lines, tail);
	assert_true(n > 0 && (size_t)n < size);
	return (size_t)n;
}

/* Content-Length's value in every form (a SP or none and digits, read at
 * once; anything else, byte by byte), whole or cut anywhere: after its
 * leading OWS at most 24 bytes (trailing OWS counted) of digits and then
 * OWS, else the parser stops at the line's end. The body it gives is
 * checked by the response after it. */
static void test_content_length_values(void **state)
{
	(void)state;
	static const struct {
		const char *value;
		bool good; /* a length of 2 */
	} cases[] = {
		{ "2", true },
		{ " 2", true },
		{ "\t2", true },
		{ "  2", true },
		{ " \t 2", true },
		{ " 2 ", true },
		{ " 2\t \t", true },
		{ " 02", true },
		{ "                              2", true },
		{ "", false },
		{ "   ", false },
		{ " 2 2", false },
		{ " 2\t2", false },
		{ " +2", false },
		{ " -2", false },
		{ " 2x", false },
		{ " 0x2", false },
		{ " 2,2", false },
		{ " \"2\"", false },
	};
	static const char next[] = "okHTTP/1.1 204 No Content\r\n\r\n";
	const size_t ncases = sizeof cases / sizeof cases[0];
	char generated[32], text[64], buf[256];
	for (size_t i = 0; i < ncases + 4; i++) {
		const char *value;
		bool good;
		if (i < ncases) {
			value = cases[i].value;
			good = cases[i].good;
		} else {
			/* after the leading SP, 24 bytes and then 25: leading
			 * zeros before the 2, or trailing OWS after it */
			size_t j = i - ncases, bytes = j % 2 ? 25 : 24;
			bool zeros = j >= 2;
			generated[0] = ' ';
			memset(generated + 1, zeros ? '0' : ' ', bytes);
			generated[zeros ? bytes : 1] = '2';
			generated[bytes + 1] = 0;
			value = generated;
			good = bytes == 24;
		}
		snprintf(text, sizeof text, "Content-Length:%s\r\n", value);
		size_t len = head_with(buf, sizeof buf, text, next);
		size_t want[2] = { blank_line(buf), len - 2 };
		if (good)
			expect_points(buf, len, false, want, 2, false);
		else
			expect_points(buf, len, false, NULL, 0, true);
	}
}

/* Lengths near the limits, whole or cut anywhere: 19 digits are read at
 * once; 20 and more byte by byte, where a number that may not fit (the
 * 19 digits before the last over UINT64_MAX / 10 - 1) stops the parser. */
static void test_content_length_limits(void **state)
{
	(void)state;
	static const struct {
		const char *value;
		uint64_t length; /* 0: the parser stops */
	} cases[] = {
		{ "1000000000000000000", 1000000000000000000u },
		{ "9999999999999999999", 9999999999999999999u },
		{ "10000000000000000000", 10000000000000000000u },
		{ "18446744073709551600", 18446744073709551600u },
		{ "18446744073709551610", 0 },
		{ "18446744073709551615", 0 },
		{ "99999999999999999999", 0 },
		{ "0018446744073709551600", 18446744073709551600u },
	};
	char line[64], buf[256];
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		snprintf(line, sizeof line, "Content-Length: %s\r\n", cases[i].value);
		size_t len = head_with(buf, sizeof buf, line, "");
		size_t want = len - 2;
		if (cases[i].length == 0) {
			expect_points(buf, len, false, NULL, 0, true);
			continue;
		}
		expect_points(buf, len, false, &want, 1, false);
		/* the body still to come */
		http_response_skip(&g_p, cases[i].length - 1);
		assert_false(http_response_stopped(&g_p));
		http_response_skip(&g_p, 1);
		expect_next_gets_point();
	}
}

/* A Content-Length line at every offset from the scans' blocks and from
 * the ends of writes, with 1 to 25 digits (leading zeros: the length is
 * 2), after ':' or ": ", ended by CRLF or LF: 25 digits are one byte too
 * many. */
static void test_content_length_at_every_offset(void **state)
{
	(void)state;
	static const char *const eols[] = { "\r\n", "\n" };
	static const char zeros[] = "000000000000000000000000";
	char buf[256];
	for (size_t e = 0; e < 2; e++) {
		const char *eol = eols[e];
		for (int pad = 0; pad < 34; pad++) {
			for (int digits = 1; digits <= 25; digits++) {
				for (int sp = 0; sp < 2; sp++) {
					int n = snprintf(buf, sizeof buf,
							 "HTTP/1.1 200 OK%sX-Pad:%.*s%sContent-Length:%s"
							 "%.*s2%s%sokHTTP/1.1 204 No Content%s%s",
							 eol, pad, "pppppppppppppppppppppppppppppppppp",
							 eol, sp ? " " : "", digits - 1, zeros, eol, eol,
							 eol, eol);
					size_t len = (size_t)n;
					size_t want[2] = { blank_line(buf), len - strlen(eol) };
					if (digits <= 24)
						expect_points(buf, len, false, want, 2, false);
					else
						expect_points(buf, len, false, NULL, 0, true);
				}
			}
		}
	}
}

/* ASCII case folding, as HTTP names have it. */
static unsigned char lower(unsigned char c)
{
	return c >= 'A' && c <= 'Z' ? (unsigned char)(c | 0x20) : c;
}

/* Every byte at every position of "Content-Length": its other case keeps
 * it Content-Length (3 body bytes, then the next response); any other
 * token character, or ':' ending the name early, makes it another header
 * (no length: the body runs until close); any other byte stops the parser
 * (a CR or LF first is a blank line, then no framing). CR is 0x0d, which
 * setting 0x20 would make '-'. */
static void test_content_length_every_byte(void **state)
{
	(void)state;
	static const char name[] = "Content-Length";
	static const char rest[] = ": 3\r\n\r\nabcHTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n";
	char buf[128];
	const size_t status_len = 17, name_len = sizeof name - 1;
	const size_t len = status_len + name_len + sizeof rest - 1;
	const size_t head_end = status_len + name_len + 5;
	memcpy(buf, "HTTP/1.1 200 OK\r\n", status_len);
	memcpy(buf + status_len + name_len, rest, sizeof rest - 1);
	for (size_t k = 0; k < name_len; k++) {
		for (unsigned b = 0; b < 256; b++) {
			memcpy(buf + status_len, name, name_len);
			buf[status_len + k] = (char)b;
			size_t want[2] = { head_end, len - 2 };
			if (lower((unsigned char)b) == lower((unsigned char)name[k]))
				expect_points(buf, len, false, want, 2, false);
			else if (k == 0 && (b == '\r' || b == '\n'))
				expect_points(buf, len, false, (size_t[]){ status_len }, 1, true);
			else if ((b == ':' && k > 0) || is_tchar((unsigned char)b))
				expect_points(buf, len, false, want, 1, true);
			else
				expect_points(buf, len, false, NULL, 0, true);
		}
	}
}

/* Names that are a prefix of a name of interest, or go on past one, in
 * either case, whole or cut anywhere: other headers, whose values are not
 * read ("1x" would stop the parser as a length; "chunked" would make the
 * next response a chunk size). */
static void test_prefixes_of_known_names(void **state)
{
	(void)state;
	static const char *const names[] = { "Content-Length", "transfer-encoding", "X-Request-ID" };
	static const char next[] = "okHTTP/1.1 204 No Content\r\n\r\n";
	char line[64], buf[256];
	for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
		size_t name_len = strlen(names[i]);
		for (size_t len = 1; len <= name_len + 1; len++) {
			if (len == name_len)
				continue;
			snprintf(line, sizeof line, "%.*s%s: 1x chunked\r\nContent-Length: 2\r\n",
				 (int)(len < name_len ? len : name_len), names[i],
				 len > name_len ? "s" : "");
			size_t n = head_with(buf, sizeof buf, line, next);
			size_t want[2] = { blank_line(buf), n - 2 };
			expect_points(buf, n, false, want, 2, false);
		}
	}
}

/* A header line that begins with SP or HTAB (obs-fold) stops the parser,
 * after any kind of header; so does a CR not followed by LF. */
static void test_obs_fold_and_lone_cr(void **state)
{
	(void)state;
	static const char *const bad[] = {
		"Server: x\r\n folded\r\nContent-Length: 0\r\n",
		"Server: x\r\n\tfolded\r\nContent-Length: 0\r\n",
		"Content-Length: 5\r\n 6\r\n",
		"Content-Length: 0\r\n\t\r\n",
		"X-Request-ID: a\r\n b\r\nContent-Length: 0\r\n",
		"Transfer-Encoding: gzip,\r\n chunked\r\n",
		"Server: x\rContent-Length: 0\r\n",
		"Content-Length: 0\rServer: x\r\n",
		"Content-Length: 0 \rServer: x\r\n",
	};
	char buf[256];
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		size_t n = head_with(buf, sizeof buf, bad[i], "");
		expect_points(buf, n, false, NULL, 0, true);
	}
}

/* Transfer-Encoding's value at every length, so that its last coding falls
 * at every offset, and past the 24 bytes kept of it: chunked only when it
 * is the last coding (then "0" ends the body and the next response gets
 * its point), else the body runs until close. */
static void test_transfer_encoding_at_every_length(void **state)
{
	(void)state;
	static const char fill[] = "gzipgzipgzipgzipgzipgzipgzipgzipgzipgzip";
	static const char next[] = "0\r\n\r\nHTTP/1.1 204 No Content\r\n\r\n";
	char line[128], buf[256];
	for (int k = 0; k <= 40; k++) {
		/* kinds: "<k>, chunked", "<k> ,\tCHUNKED ", "chunked<k>",
		 * "<k>chunked" */
		for (int kind = 0; kind < 4; kind++) {
			static const char *const forms[] = { "%.*s, chunked", "%.*s ,\tCHUNKED ",
							     "chunked%.*s", "%.*schunked" };
			int m = snprintf(line, sizeof line, "Transfer-Encoding: ");
			m += snprintf(line + m, sizeof line - (size_t)m, forms[kind], k, fill);
			snprintf(line + m, sizeof line - (size_t)m, "\r\n");
			size_t n = head_with(buf, sizeof buf, line, next);
			size_t want[2] = { blank_line(buf), n - 2 };
			if (kind < 2 || k == 0) /* chunked */
				expect_points(buf, n, false, want, 2, false);
			else
				expect_points(buf, n, false, want, 1, true);
		}
	}
}

/* Every byte in the status line's version digit, SP, status digits and the
 * byte after them, read whole or byte by byte: a digit there is part of the
 * status (1xx are interim, 101 a tunnel, 2xx and up get the point); else
 * the parser stops; after the status only SP may come before the reason. */
static void test_status_digits_every_byte(void **state)
{
	(void)state;
	static const char r[] = "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n";
	char buf[sizeof r];
	for (size_t k = 7; k <= 12; k++) {
		for (unsigned b = 0; b < 256; b++) {
			memcpy(buf, r, sizeof r);
			buf[k] = (char)b;
			size_t want = sizeof r - 3;
			bool digit = b >= '0' && b <= '9';
			if (k == 8 || k == 12) {
				expect_points(buf, sizeof r - 1, false, &want, b == ' ', b != ' ');
				continue;
			}
			if (!digit) {
				expect_points(buf, sizeof r - 1, false, NULL, 0, true);
				continue;
			}
			unsigned status = k < 9 ? 200 : (unsigned)(buf[9] - '0') * 100 +
							       (unsigned)(buf[10] - '0') * 10 +
							       (unsigned)(buf[11] - '0');
			expect_points(buf, sizeof r - 1, false, &want, status >= 200, status == 101);
			assert_int_equal(g_p.status, status);
		}
	}
}

/* A name longer than token_len counts (65535), whole or cut, and the name
 * of the added header being Content-Length itself: the header is there
 * whenever the length is. */
static void test_long_name_and_length_as_header(void **state)
{
	(void)state;
	size_t name_len = 70000, len = 0;
	char *buf = malloc(name_len + 128);
	assert_non_null(buf);
	len += (size_t)sprintf(buf, "HTTP/1.1 200 OK\r\n");
	memset(buf + len, 'n', name_len);
	len += name_len;
	len += (size_t)sprintf(buf + len, ": v\r\nContent-Length: 0\r\n\r\n");
	size_t want = len - 2, got[MAXP];
	assert_int_equal(write_steps(buf, len, 0, false, got), 1);
	assert_int_equal(got[0], want);
	struct http_response_parser whole = g_p;
	static const size_t cuts[] = { 1, 17, 18, 33, 17 + 65535, 17 + 65536, 17 + 69999, 17 + 70000 };
	for (size_t i = 0; i < sizeof cuts / sizeof cuts[0]; i++) {
		assert_int_equal(write_cut(buf, len, cuts[i], false, got), 1);
		assert_int_equal(got[0], want);
		assert_memory_equal(&g_p, &whole, sizeof whole);
	}
	assert_int_equal(write_steps(buf, len, 4096, false, got), 1);
	assert_memory_equal(&g_p, &whole, sizeof whole);
	free(buf);

	static const char r[] = "HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok"
				"HTTP/1.1 200 OK\r\nServer: x\r\n\r\n";
	size_t pts[MAXP];
	init_named("Content-Length");
	assert_int_equal(plan(r, sizeof r - 1, pts, MAXP), 1);
	assert_int_equal(pts[0], sizeof r - 3);
}

/* ---- heads in the usual form, taken at once ---------------------------- */

/* buf written one byte at a time is taken by the states alone (no write is
 * then long enough for a line to be taken at once); whole, and cut
 * anywhere, it must give the same points and leave the same state. */
static void expect_as_bytewise(const char *buf, size_t len, bool head)
{
	size_t want[MAXP];
	size_t nwant = write_steps(buf, len, 1, head, want);
	expect_points(buf, len, head, want, nwant, http_response_stopped(&g_p));
}

/* The status line, the lines, the blank line and tail into buf; returns
 * the length. */
static size_t response_of(char *buf, size_t size, const char *status, const char *lines,
			  const char *tail)
{
	int n = snprintf(buf, size, "%s%s\r\n%s", status, lines, tail);
	assert_true(n > 0 && (size_t)n < size);
	return (size_t)n;
}

/* Every kind of header line, the usual ones taken at once and those left
 * to the states (a name with a digit or another token character, names of
 * 16, 17, 32, 33, 64 and 65 letters, Transfer-Encoding in each form and
 * names like it, the added header and names of its length, Content-Length
 * in each form read at once or not, values with HTAB or other bytes from
 * 0x08 to 0x0f, long values, bare LF, lone CR, obs-fold, no name, SP before
 * ':'), as the first, a middle and the last line, with 0 to 20 bytes after
 * the head so that the last lines fall in and out of the write's last 17
 * bytes (where the usual form is not tried), and again as the second
 * response of the write. */
static void test_usual_form_line_kinds(void **state)
{
	(void)state;
	static const char *const lines[] = {
		"Server: nginx/1.22.1\r\n",
		"Content-Length: 5\r\n",
		"content-length:7\r\n",
		"CONTENT-LENGTH:  5\r\n",
		"Content-Length: 5 \r\n",
		"Content-Length:\t5\r\n",
		"Content-Length: \r\n",
		"Content-Length: 5x\r\n",
		"Content-Length: 1234567890123456789\r\n",
		"Content-Length: 12345678901234567890\r\n",
		"Content-Length: 5\n",
		"Content-Lengtx: 5\r\n",
		"Content-Type: text/html\r\n",
		"X-B3-TraceId: 1\r\n",
		"X_Under: x\r\n",
		"Abcdefghijklmnop: x\r\n",
		"Abcdefghijklmnopq: x\r\n",
		"Abcdefghijklmnopqrstuvwxyzabcdef: x\r\n",
		"Abcdefghijklmnopqrstuvwxyzabcdefg: x\r\n",
		"Abcdefghijklmnopqrstuvwxyzabcdefghijklmnopqrstuvwxyzabcdefghijkl: x\r\n",
		"Abcdefghijklmnopqrstuvwxyzabcdefghijklmnopqrstuvwxyzabcdefghijklm: x\r\n",
		"Abcdefghijklmnopqrstuvwxyz0: x\r\n",
		"Strict-Transport-Security: max-age=31536000\r\n",
		"X-Content-Type-Options:nosniff\n",
		"Transfer-Encoding: chunked\r\n",
		"TRANSFER-ENCODING: gzip, chunked\r\n",
		"transfer-encoding:chunked, gzip\n",
		"Transfer-Encoding:\tchunked\r\n",
		"Transfer-Encoding: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaa, chunked\r\n",
		"Transfer-Encodinx: chunked\r\n",
		"Xransfer-Encoding: chunked\r\n",
		"Transfer-Encodings: chunked\r\n",
		"Transfer_Encoding: chunked\r\n",
		"X-Request-ID: abc\r\n",
		"Xyzxyzxyzxyz: abc\r\n",
		"Date: Wed, 02 Dec 2026 15:40:00 GMT and a value past 32 bytes\r\n",
		"Name: a\tb\r\n",
		"Name: a\x0b" "b\r\n",
		"Name: a\x0e\r\n",
		"Name: value\n",
		"Name: a\rb\r\n",
		"Name:\r\n",
		": no name\r\n",
		" folded\r\n",
		"Name : x\r\n",
		"-: dash\r\n",
	};
	static const char filler[] = "ETag: \"6569b8f0-6\"\r\n";
	static const char body[] = "0123456789abcdefghij";
	char head[256], buf[512];
	for (size_t k = 0; k < sizeof lines / sizeof lines[0]; k++) {
		for (int at = 0; at < 3; at++) {
			snprintf(head, sizeof head, "%s%s%s", at == 0 ? "" : filler, lines[k],
				 at == 1 ? filler : "");
			for (size_t tail = 0; tail <= 20; tail++) {
				char rest[32];
				snprintf(rest, sizeof rest, "%.*s", (int)tail, body);
				size_t n = response_of(buf, sizeof buf, "HTTP/1.1 200 OK\r\n", head,
						       rest);
				expect_as_bytewise(buf, n, false);
			}
			/* the second response of the write */
			size_t n = response_of(buf, sizeof buf,
					       "HTTP/1.1 204 No Content\r\n\r\nHTTP/1.1 200 OK\r\n",
					       head, "ok");
			expect_as_bytewise(buf, n, false);
		}
	}
}

/* Status lines in the usual form and not: the reason phrase's end in the
 * first 16 bytes or after them, at every length, with HTAB or another byte
 * from 0x08 to 0x0f in it, bare LF, no reason; interim, 101, 204 and 304
 * responses; versions and digits that are no status line. */
static void test_usual_form_status_lines(void **state)
{
	(void)state;
	static const char *const statuses[] = {
		"HTTP/1.1 200 OK\r\n",
		"HTTP/1.0 200 OK\r\n",
		"HTTP/1.1 200 \r\n",
		"HTTP/1.1 200\r\n",
		"HTTP/1.1 200 OK\n",
		"HTTP/1.1 200 O\tK\r\n",
		"HTTP/1.1 200 \x08\r\n",
		"HTTP/1.1 200 OK\r\r\n",
		"HTTP/1.1 404 Not Found\r\n",
		"HTTP/1.1 500 Internal Server Error, and more of it\r\n",
		"HTTP/1.1 100 Continue\r\n",
		"HTTP/1.1 101 Switching Protocols\r\n",
		"HTTP/1.1 204 No Content\r\n",
		"HTTP/1.1 304 Not Modified\r\n",
		"HTTP/1.1 099 Low\r\n",
		"HTTP/1.9 999 High\r\n",
		"HTTP/2.0 200 OK\r\n",
		"HTTP/1.x 200 OK\r\n",
		"HTTP/1.1 2x0 OK\r\n",
		"HTTP/1.1 200x OK\r\n",
		"http/1.1 200 OK\r\n",
	};
	static const char *const heads[] = {
		"",
		"Content-Length: 2\r\n",
		"Server: x\r\nContent-Length: 2\r\nETag: \"1\"\r\n",
	};
	char status[64], buf[256];
	for (size_t k = 0; k < sizeof statuses / sizeof statuses[0]; k++) {
		for (size_t h = 0; h < sizeof heads / sizeof heads[0]; h++) {
			size_t n = response_of(buf, sizeof buf, statuses[k], heads[h],
					       "okHTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n");
			expect_as_bytewise(buf, n, false);
			expect_as_bytewise(buf, n, true);
		}
	}
	/* reason phrases of every length, their end on every side of the
	 * first 16 bytes */
	for (size_t len = 0; len <= 20; len++) {
		snprintf(status, sizeof status, "HTTP/1.1 200 %.*s\r\n", (int)len,
			 "abcdefghijklmnopqrstuvwxyz");
		size_t n = response_of(buf, sizeof buf, status, "Content-Length: 1\r\n", "x");
		expect_as_bytewise(buf, n, false);
	}
}

/* The added header's name in several kinds (letters and '-' only, other
 * token characters, Content-Length's and Transfer-Encoding's, longer than
 * 16 bytes, none), against head lines of its length with the same first
 * letter in another case and with another: whole, the same points and
 * state as the bytes written one at a time. */
static void test_usual_form_added_names(void **state)
{
	(void)state;
	static const char *const names[] = {
		"X-Request-ID", "x-request-id", "Content-Type", "Content-Length", "Server",
		"abcdefghijklmnop", "x", "X-Correlation^Request~Id", "X-Correlation-Request-Identifier",
		"Transfer-Encoding",
	};
	static const char head[] = "Server: a\r\nContent-Type: b\r\nX-Request-ID: c\r\n"
				   "xontent-type: d\r\nContent-Length: 2\r\nAbcdefghijklmnop: e\r\n"
				   "Abcdefghijklmnoq: f\r\nX: g\r\nY: h\r\n"
				   "x-correlation-request-identifier: i\r\n"
				   "Y-Correlation-Request-Identifier: j\r\n"
				   "Transfer-Encoding: gzip\r\n";
	char buf[512];
	size_t n = response_of(buf, sizeof buf, "HTTP/1.1 200 OK\r\n", head, "ok");
	for (size_t k = 0; k < sizeof names / sizeof names[0]; k++) {
		init_named(names[k]);
		size_t want[MAXP], got[MAXP];
		size_t nwant = 0;
		for (size_t i = 0; i < n; i++) {
			size_t pts[MAXP];
			size_t c = plan(buf + i, 1, pts, MAXP);
			if (c)
				want[nwant++] = i;
			advance(buf + i, 1);
		}
		struct http_response_parser bytewise;
		memcpy(&bytewise, &g_p, sizeof bytewise);
		init_named(names[k]);
		size_t ngot = plan(buf, n, got, MAXP);
		advance(buf, n);
		expect_same(got, ngot, want, nwant, "added header name", k);
		assert_memory_equal(&g_p, &bytewise, sizeof bytewise);
	}
	/* no header to add: never a point */
	init_named(NULL);
	size_t pts[MAXP];
	assert_int_equal(plan(buf, n, pts, MAXP), 0);
}

/* The blank line and the body in the same write: the body whole, cut, or
 * followed by the next response; no body for HEAD, 1xx, 204 and 304; a
 * body until close without a length. */
static void test_usual_form_bodies(void **state)
{
	(void)state;
	static const char *const cases[] = {
		"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello",
		"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhel",
		"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhelloHTTP/1.1 200 OK\r\n"
		"Content-Length: 0\r\n\r\n",
		"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\nHTTP/1.1 404 Not Found\r\n"
		"Content-Length: 1\r\n\r\nx",
		"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nx",
		"HTTP/1.1 204 No Content\r\nContent-Length: 5\r\n\r\n",
		"HTTP/1.1 304 Not Modified\r\nContent-Length: 5\r\n\r\n",
		"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\nframes",
		"HTTP/1.1 200 OK\r\nServer: x\r\n\r\nuntil close",
		"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 2\r\n\r\nokHTTP/1.1 "
		"200 OK\r\n\r\n",
	};
	for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
		expect_as_bytewise(cases[k], strlen(cases[k]), false);
		expect_as_bytewise(cases[k], strlen(cases[k]), true);
	}
}

/* ---- configuration and limits ------------------------------------------ */

static const char stream3[] =
	"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
	"HTTP/1.1 100 Continue\r\n\r\n"
	"HTTP/1.1 204 No Content\r\n\r\n"
	"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1;x\r\na\r\n0\r\nT: 1\r\n\r\n";

static void test_null_header_name(void **state)
{
	(void)state;
	size_t pts[MAXP];
	init_named(NULL);
	assert_int_equal(plan(stream3, sizeof stream3 - 1, pts, MAXP), 0);
	for (size_t i = 0; i < sizeof stream3 - 1; i++) {
		assert_int_equal(plan(stream3 + i, 1, pts, MAXP), 0);
		advance(stream3 + i, 1);
	}
	/* framing is still followed */
	assert_false(http_response_stopped(&g_p));
	static const char r[] = "HTTP/1.1 200 OK\r\n\r\n";
	assert_int_equal(plan(r, sizeof r - 1, pts, MAXP), 0);
	advance(r, sizeof r - 1);
	assert_true(http_response_stopped(&g_p));
}

static void test_max_points(void **state)
{
	(void)state;
	size_t pts[MAXP];
	init_default();
	assert_int_equal(plan(stream3, sizeof stream3 - 1, pts, MAXP), 3);
	size_t all[3] = { pts[0], pts[1], pts[2] };
	for (size_t max = 0; max < 3; max++) {
		for (size_t i = 0; i < MAXP; i++)
			pts[i] = (size_t)-7;
		assert_int_equal(plan_max(stream3, sizeof stream3 - 1, pts, max),
				 max);
		for (size_t i = 0; i < max; i++)
			assert_int_equal(pts[i], all[i]);
		assert_int_equal(pts[max], (size_t)-7);
	}
	/* max 0 may take NULL */
	assert_int_equal(plan_max(stream3, sizeof stream3 - 1, NULL, 0), 0);
	/* the count does not affect the parser */
	advance(stream3, sizeof stream3 - 1);
	assert_false(http_response_stopped(&g_p));
	expect_next_gets_point();
}

/* http_response_between: true exactly where a write ending there ends a
 * final response, never before the first response, inside one, after a
 * 1xx, in a body, in a chunked body or its trailer, or once stopped. */
static void test_between_responses(void **state)
{
	(void)state;
	static const char *const parts[] = {
		"HTTP/1.1 100 Continue\r\n\r\n",
		"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n", "hel", "lo",
		"HTTP/1.1 204 No Content\r\n\r\n",
		"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", "3\r\nabc\r\n",
		"0\r\n", "X-Trailer: 1\r\n", "\r\n",
		"HTTP/1.1 304 Not Modified\r\nContent-Length: 9\r\n\r\n",
	};
	static const bool between[] = {false, false, false, true, true, false, false,
				       false, false, true, true};
	init_default();
	assert_false(http_response_between(&g_p));
	for (size_t i = 0; i < sizeof parts / sizeof parts[0]; i++) {
		advance(parts[i], strlen(parts[i]));
		if (http_response_between(&g_p) != between[i])
			fail_msg("after part %zu (%s): between %d", i, parts[i], !between[i]);
	}
	/* A HEAD request's response has no body even with a length. */
	http_response_expect_head(&g_p, true);
	advance("HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\n", 38);
	assert_true(http_response_between(&g_p));
	/* Part of a status line; a body until close; bytes that are no
	 * response. */
	advance("HTTP/1.1 2", 10);
	assert_false(http_response_between(&g_p));
	init_default();
	advance("HTTP/1.0 200 OK\r\n\r\nbody", 23);
	assert_false(http_response_between(&g_p));
	init_default();
	advance("GET / HTTP/1.1\r\n\r\n", 18);
	assert_true(http_response_stopped(&g_p));
	assert_false(http_response_between(&g_p));
}

/* A request that asked for interim responses is unanswered while the last
 * response seen is one (whole or in part), or while only unseen bytes went
 * after the assumption that one would come; a final response ends that. */
static void test_only_interim(void **state)
{
	(void)state;
	init_default();
	assert_false(http_response_only_interim(&g_p));
	advance("HTTP/1.1 100 Continue\r\n", 23);
	assert_true(http_response_only_interim(&g_p));
	advance("\r\nHTTP/1.1 103 Early Hints\r\n\r\n", 30);
	assert_true(http_response_only_interim(&g_p));
	advance("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", 40);
	assert_false(http_response_only_interim(&g_p));
	http_response_assume_interim(&g_p);
	assert_true(http_response_only_interim(&g_p));
	http_response_skip(&g_p, 25); /* a 100 Continue by sendfile */
	assert_true(http_response_stopped(&g_p));
	assert_true(http_response_only_interim(&g_p));
	/* A 101 is a tunnel: what follows is never a response. */
	init_default();
	advance("HTTP/1.1 101 Switching Protocols\r\n\r\nGET / HTTP/1.1\r\n\r\n", 54);
	assert_true(http_response_only_interim(&g_p));
	/* A response being written is left alone. */
	init_default();
	advance("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhel", 41);
	struct http_response_parser before = g_p;
	http_response_assume_interim(&g_p);
	assert_memory_equal(&before, &g_p, sizeof before);
	assert_false(http_response_only_interim(&g_p));
}

static void test_empty_writes(void **state)
{
	(void)state;
	size_t pts[MAXP];
	init_default();
	assert_int_equal(plan("", 0, pts, MAXP), 0);
	advance("", 0);
	assert_false(http_response_stopped(&g_p));
	static const char r[] = "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n";
	advance(r, sizeof r - 1);
	assert_int_equal(plan("", 0, pts, MAXP), 0);
	assert_int_equal(plan("\r\n", 2, pts, MAXP), 1);
	assert_int_equal(pts[0], 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_content_length_point),
		cmocka_unit_test(test_header_already_present),
		cmocka_unit_test(test_status_line_forms),
		cmocka_unit_test(test_bare_lf),
		cmocka_unit_test(test_every_two_way_split),
		cmocka_unit_test(test_one_byte_at_a_time),
		cmocka_unit_test(test_keep_alive_three),
		cmocka_unit_test(test_body_looks_like_response),
		cmocka_unit_test(test_chunked),
		cmocka_unit_test(test_head_response),
		cmocka_unit_test(test_interim_responses),
		cmocka_unit_test(test_no_body_statuses),
		cmocka_unit_test(test_switching_protocols),
		cmocka_unit_test(test_until_close),
		cmocka_unit_test(test_garbage),
		cmocka_unit_test(test_skip_within_body),
		cmocka_unit_test(test_skip_beyond_body),
		cmocka_unit_test(test_line_and_colon_at_every_offset),
		cmocka_unit_test(test_header_name_every_length),
		cmocka_unit_test(test_framing_names_near_misses),
		cmocka_unit_test(test_name_bytes_at_every_offset),
		cmocka_unit_test(test_status_line_every_byte),
		cmocka_unit_test(test_real_heads),
		cmocka_unit_test(test_content_length_values),
		cmocka_unit_test(test_content_length_limits),
		cmocka_unit_test(test_content_length_at_every_offset),
		cmocka_unit_test(test_content_length_every_byte),
		cmocka_unit_test(test_prefixes_of_known_names),
		cmocka_unit_test(test_obs_fold_and_lone_cr),
		cmocka_unit_test(test_transfer_encoding_at_every_length),
		cmocka_unit_test(test_status_digits_every_byte),
		cmocka_unit_test(test_long_name_and_length_as_header),
		cmocka_unit_test(test_usual_form_line_kinds),
		cmocka_unit_test(test_usual_form_status_lines),
		cmocka_unit_test(test_usual_form_added_names),
		cmocka_unit_test(test_usual_form_bodies),
		cmocka_unit_test(test_null_header_name),
		cmocka_unit_test(test_max_points),
		cmocka_unit_test(test_empty_writes),
		cmocka_unit_test(test_between_responses),
		cmocka_unit_test(test_only_interim),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
