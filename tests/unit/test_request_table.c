/*
 * test_request_table.c - unit tests for shim/request_table.c: ids stored
 * and read back by serial, and log lines naming requests by the request line
 * they quote (an access log line): named while the request counts, also
 * after it ended until RECENT_REQUESTS more have ended, never when two
 * counted requests have the same request line, and still when two different
 * request lines share a bucket in one of the two tables.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "request_table.h"

/* Stores a request with id and request line and makes it count. */
static uint64_t start(const char *id, const char *line, uint32_t *buckets)
{
	uint64_t serial = request_table_add(id, strlen(id), line, strlen(line), NULL, NULL, 0);
	assert_int_not_equal(serial, 0);
	*buckets = request_line_buckets(line, strlen(line));
	request_line_started(*buckets, serial);
	return serial;
}

/* The request an access log line quoting line names. */
static uint64_t named(const char *line)
{
	char log[256];
	int n = snprintf(log, sizeof(log), "127.0.0.1 - - [21/Nov/2026] \"%s\" 200 13", line);
	return request_named_by(log, (size_t)n);
}

static void test_ids_by_serial(void **state)
{
	(void)state;
	char out[REQUEST_ID_MAX];
	uint64_t a = request_table_add("abc", 3, NULL, 0, NULL, NULL, 0);
	uint64_t b = request_table_add("defg", 4, NULL, 0, NULL, NULL, 0);
	assert_int_equal(request_table_get(a, out), 3);
	assert_memory_equal(out, "abc", 3);
	assert_int_equal(request_table_get(b, out), 4);
	assert_memory_equal(out, "defg", 4);
	assert_int_equal(request_table_get(0, out), 0);
	assert_int_equal(request_table_get(b + 1, out), 0);
}

static void test_trace_and_tracestate(void **state)
{
	(void)state;
	struct trace_ctx t = {.flags = 3}, got;
	char ts[TRACESTATE_MAX];
	memcpy(t.trace_id, "4bf92f3577b34da6a3ce929d0e0e4736", 32);
	memcpy(t.span_id, "00f067aa0ba902b7", 16);
	uint64_t plain = request_table_add("p", 1, NULL, 0, NULL, NULL, 0);
	uint64_t traced = request_table_add("t", 1, NULL, 0, &t, "a=1,b=2", 7);
	assert_false(request_table_trace(plain, &got));
	assert_int_equal(request_table_tracestate(plain, ts), 0);
	assert_true(request_table_trace(traced, &got));
	assert_memory_equal(&got, &t, sizeof(t));
	assert_int_equal(request_table_tracestate(traced, ts), 7);
	assert_memory_equal(ts, "a=1,b=2", 7);
	/* A tracestate slot taken over by a newer request is not the old one's. */
	uint64_t later = traced;
	for (int i = 0; i < TRACESTATE_SLOTS; i++)
		later = request_table_add("n", 1, NULL, 0, &t, "c=3", 3);
	assert_int_equal(request_table_tracestate(later, ts), 3);
	assert_int_equal(request_table_tracestate(traced, ts), 0);
	assert_true(request_table_trace(traced, &got));
	/* Once the request's own slot is reused it has no trace at all. */
	for (int i = 0; i < REQUEST_SLOTS; i++)
		request_table_add("m", 1, NULL, 0, NULL, NULL, 0);
	assert_false(request_table_trace(traced, &got));
}

static void test_named_while_counted_and_after(void **state)
{
	(void)state;
	uint32_t buckets;
	uint64_t s = start("one", "GET /named/1 HTTP/1.1", &buckets);
	assert_int_equal(named("GET /named/1 HTTP/1.1"), s);
	assert_int_equal(named("GET /named/2 HTTP/1.1"), 0);
	request_line_ended(buckets);
	assert_int_equal(named("GET /named/1 HTTP/1.1"), s); /* a buffered log */
	/* RECENT_REQUESTS more requests end: it no longer counts. */
	for (int i = 0; i < RECENT_REQUESTS; i++) {
		char line[64];
		uint32_t other;
		snprintf(line, sizeof(line), "GET /filler/%d HTTP/1.1", i);
		start("filler", line, &other);
		request_line_ended(other);
	}
	assert_int_equal(named("GET /named/1 HTTP/1.1"), 0);
}

static void test_same_request_line_twice_names_none(void **state)
{
	(void)state;
	uint32_t b1, b2;
	start("first", "GET /same HTTP/1.1", &b1);
	start("second", "GET /same HTTP/1.1", &b2);
	assert_int_equal(named("GET /same HTTP/1.1"), 0);
	for (int i = 0; i < RECENT_REQUESTS + 2; i++) {
		uint32_t other;
		start("filler", "GET /filler HTTP/1.1", &other);
		request_line_ended(other);
	}
}

/* Two different request lines whose buckets collide in table t. */
static void colliding(int t, char a[64], char b[64])
{
	uint32_t want;
	snprintf(a, 64, "GET /collide/%d/base HTTP/1.1", t);
	want = request_line_buckets(a, strlen(a)) >> (16 * t) & 0xffff;
	for (int i = 0;; i++) {
		snprintf(b, 64, "GET /collide/%d/%d HTTP/1.1", t, i);
		uint32_t got = request_line_buckets(b, strlen(b));
		if ((got >> (16 * t) & 0xffff) == want &&
		    (got >> (16 * (1 - t)) & 0xffff) !=
			    (request_line_buckets(a, strlen(a)) >> (16 * (1 - t)) & 0xffff))
			return;
	}
}

static void test_bucket_collision_in_one_table(void **state)
{
	(void)state;
	for (int t = 0; t < 2; t++) {
		char a[64], b[64];
		uint32_t ba, bb;
		colliding(t, a, b);
		uint64_t sa = start("a", a, &ba), sb = start("b", b, &bb);
		assert_int_equal(named(a), sa);
		assert_int_equal(named(b), sb);
		request_line_ended(ba);
		request_line_ended(bb);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_ids_by_serial),
		cmocka_unit_test(test_trace_and_tracestate),
		cmocka_unit_test(test_named_while_counted_and_after),
		cmocka_unit_test(test_same_request_line_twice_names_none),
		cmocka_unit_test(test_bucket_collision_in_one_table),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
