/*
 * test_tls_output.c - unit tests for conn_output_tls (shim/conn_output.c):
 * a program's write through a TLS library on a connection, with the
 * response header added, as the series of library writes it becomes.
 *
 * The library is a fake with OpenSSL's rules: a write either takes bytes
 * (all of them, or without partial writes at most `cap` in partial mode)
 * or fails taking none, and the call after a failed one must pass the same
 * buffer and length (else "bad write retry", a test failure). The program
 * is modelled too: without partial writes it repeats a failed call with
 * the same arguments, with them it goes on after the bytes it was told
 * went. Whatever the failures and cuts, the bytes the library took must be
 * the program's with exactly one header line added before the blank line
 * of each response head, and the program must be told exactly its own
 * bytes.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "conn_output.h"
#include "conn_table.h"
#include "request_table.h"
#include "shim_init.h"
#include "thread_ctx.h"

#include "audit_off.h"
#include "default_shim.h"
#include "fake_ssl.h"
#include "fork_code_off.h"

struct shim_state shim;
struct process_state process;
struct real_functions real;

/* thread_ctx.c's, which the test does not link: conn_output names the
 * thread inside a connection's write side by its tid. */
__thread struct thread_ctx thread_ctx __attribute__((tls_model("initial-exec")));

int32_t ctx_tid_fetch(void)
{
	thread_ctx.tid = (int32_t)gettid();
	return thread_ctx.tid;
}

static int setup(void **state)
{
	(void)state;
	default_shim();
	return 0;
}

/* A connection on fd whose current request has X-Request-ID id. */
static void tls_conn_with(int fd, const char *id)
{
	char req[256];
	int n = snprintf(req, sizeof(req), "GET / HTTP/1.1\r\nX-Request-ID: %s\r\n\r\n", id);
	conn_open(fd);
	conn_tls_begin(fd);
	conn_on_tls_read(fd, req, (size_t)n);
}

/* The program writes buf (n bytes) on fd through the fake library f,
 * partial or not, until all went; returns how many calls failed. */
static unsigned program_writes(int fd, struct fake_ssl *f, bool partial, const char *buf,
			       size_t n)
{
	struct tls_sender to = {fake_send, f, partial};
	size_t off = 0;
	unsigned failed = 0;
	while (off < n) {
		assert_true(failed < 200);
		ssize_t r = conn_output_tls(fd, &to, buf + off, n - off);
		if (r <= 0) {
			failed++;
			continue;
		}
		if (!partial)
			assert_int_equal(r, n - off);
		assert_true((size_t)r <= n - off);
		off += (size_t)r;
	}
	return failed;
}

static const char head[] = "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n";
static const char body[] = "hello";

/* What the library must have taken for one response to request id. */
static void expect_stream(const struct fake_ssl *f, const char *id)
{
	char want[512];
	int n = snprintf(want, sizeof(want),
			 "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nX-Request-ID: %s\r\n\r\nhello", id);
	assert_int_equal(f->out_len, n);
	assert_memory_equal(f->out, want, (size_t)n);
}

static void test_whole_writes(void **state)
{
	(void)state;
	struct fake_ssl f = {0};
	tls_conn_with(9, "tls-a");
	assert_int_equal(program_writes(9, &f, false, head, sizeof head - 1), 0);
	assert_int_equal(program_writes(9, &f, false, body, sizeof body - 1), 0);
	expect_stream(&f, "tls-a");
	conn_forget(9);
}

/* One write of the whole response, failing at every combination of the
 * first six library calls: the retries pass what the library expects. */
static void test_failed_sends_are_retried_as_they_were(void **state)
{
	(void)state;
	char resp[128];
	int n = snprintf(resp, sizeof(resp), "%s%s", head, body);
	for (uint64_t mask = 0; mask < 64; mask++) {
		struct fake_ssl f = {.fail_mask = mask};
		tls_conn_with(9, "tls-b");
		unsigned failed = program_writes(9, &f, false, resp, (size_t)n);
		assert_int_equal(failed, __builtin_popcountll(mask & ((1ull << f.calls) - 1)));
		expect_stream(&f, "tls-b");
		conn_forget(9);
	}
}

/* Partial writes: every cut, with and without failures. */
static void test_partial_writes(void **state)
{
	(void)state;
	char resp[128];
	int n = snprintf(resp, sizeof(resp), "%s%s", head, body);
	for (size_t cap = 1; cap <= (size_t)n + 30; cap++) {
		for (uint64_t mask = 0; mask < 64; mask += 21) {
			struct fake_ssl f = {.fail_mask = mask, .cap = cap};
			tls_conn_with(9, "tls-c");
			program_writes(9, &f, true, resp, (size_t)n);
			expect_stream(&f, "tls-c");
			conn_forget(9);
		}
	}
}

/* The head in pieces cut anywhere, the blank line alone among them. */
static void test_head_in_pieces(void **state)
{
	(void)state;
	size_t hn = sizeof head - 1;
	for (size_t cut = 1; cut < hn; cut++) {
		struct fake_ssl f = {0};
		tls_conn_with(9, "tls-d");
		program_writes(9, &f, false, head, cut);
		program_writes(9, &f, false, head + cut, hn - cut);
		program_writes(9, &f, false, body, sizeof body - 1);
		expect_stream(&f, "tls-d");
		conn_forget(9);
	}
}

/* Without a request there is no header to add. */
static void test_no_request_no_header(void **state)
{
	(void)state;
	struct fake_ssl f = {0};
	conn_open(9);
	conn_tls_begin(9);
	program_writes(9, &f, false, head, sizeof head - 1);
	assert_int_equal(f.out_len, sizeof head - 1);
	assert_memory_equal(f.out, head, sizeof head - 1);
	conn_forget(9);
}

/* A response is done (an end of file may end its request) only once it
 * was written whole: a client that goes away halfway leaves the request
 * going, its server's notes about it still its own. */
static void test_response_done_only_when_whole(void **state)
{
	(void)state;
	tls_conn_with(9, "half");
	struct fake_ssl f = {0};
	program_writes(9, &f, false, head, sizeof head - 1);
	assert_false(conn_output_response_done(9));
	program_writes(9, &f, false, body, 2);
	assert_false(conn_output_response_done(9));
	program_writes(9, &f, false, body + 2, sizeof body - 3);
	assert_true(conn_output_response_done(9));
	conn_forget(9);
}

/* A TLS object freed after its socket was closed (by a garbage collector,
 * say): its descriptor is now another connection's, whose write failed on
 * its added header and will be retried. That connection's owed header and
 * retry must stay as they were. */
static void test_stale_free_leaves_new_connection_alone(void **state)
{
	(void)state;
	struct fake_ssl old = {0};
	tls_conn_with(9, "tls-old");
	program_writes(9, &old, false, head, sizeof head - 1);
	conn_forget(9); /* closed; the object lives on */

	struct fake_ssl f = {.fail_mask = 1u << 1}; /* the header's send */
	struct tls_sender to = {fake_send, &f, false};
	tls_conn_with(9, "tls-e");
	assert_true(conn_output_tls(9, &to, head, sizeof head - 1) <= 0);
	conn_output_tls_end(9, &old); /* the stale object freed */
	program_writes(9, &f, false, head, sizeof head - 1);
	program_writes(9, &f, false, body, sizeof body - 1);
	expect_stream(&f, "tls-e");
	conn_output_tls_end(9, &f);
	conn_forget(9);
}

/* The connection moves to its copy (dup2(9, 10), close(9)) between a
 * failed send and its retry, at each failing call of the first six but
 * the added header's own (call 1: its retry would come from the copy's
 * owed bytes, at another address than the library was given): the copy's
 * writes retry as the original's would have. Then a plain connection on
 * the copy's number: the last TLS object's end leaves it alone. */
static void test_moved_connection_keeps_its_retry(void **state)
{
	(void)state;
	for (unsigned k = 0; k < 6; k++) {
		if (k == 1)
			continue;
		struct fake_ssl f = {.fail_mask = 1ull << k};
		struct tls_sender to = {fake_send, &f, false};
		tls_conn_with(9, "tls-m");
		ssize_t r = conn_output_tls(9, &to, head, sizeof head - 1);
		conn_copied(9, 10);
		conn_forget(9);
		if (r <= 0)
			r = 0;
		program_writes(10, &f, false, head + r, sizeof head - 1 - (size_t)r);
		program_writes(10, &f, false, body, sizeof body - 1);
		expect_stream(&f, "tls-m");
		conn_forget(10);

		conn_open(10);
		conn_output_tls_end(10, &f);
		conn_forget(10);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup(test_whole_writes, setup),
		cmocka_unit_test_setup(test_failed_sends_are_retried_as_they_were, setup),
		cmocka_unit_test_setup(test_partial_writes, setup),
		cmocka_unit_test_setup(test_head_in_pieces, setup),
		cmocka_unit_test_setup(test_no_request_no_header, setup),
		cmocka_unit_test_setup(test_stale_free_leaves_new_connection_alone, setup),
		cmocka_unit_test_setup(test_response_done_only_when_whole, setup),
		cmocka_unit_test_setup(test_moved_connection_keeps_its_retry, setup),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
