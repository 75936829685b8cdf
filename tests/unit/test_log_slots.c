/*
 * test_log_slots.c - the line slots (log_writer.c) from many threads at
 * once, as the hooks use them: threads write lines in two pieces (the text,
 * then its newline) to two log descriptors, some of them in a bracket that
 * holds their lines until they release them, and end; new threads take
 * their slots; meanwhile another thread flushes each descriptor over and
 * over, as close() does, draining the other threads' slots. Built plain,
 * under ASan and under ThreadSanitizer (make unit-tsan).
 *
 * The descriptors are memory (real.write and real.writev append under a
 * mutex, as the kernel makes a write one piece). Checks: every call returns
 * its full count; each descriptor's output is JSON objects, and the lines
 * of each thread, read in order, are its lines in the order it wrote them,
 * each once: a line a flush took unfinished comes out whole without its
 * newline (as a close or dup2 leaves it in the file it had), which follows
 * as an empty line of its own.
 */
#include <pthread.h>
#include <setjmp.h>
#include <stdatomic.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "line_format.h"
#include "log_writer.h"
#include "request_table.h"

#include "log_writer_stand_ins.h"

#define FDS 2
#define OUT_MAX (16 << 20)
#define ROUNDS 3
#define WRITERS 4
#define LINES 20000

static const int fd_of[FDS] = {7, 9};
static char *out[FDS];
static size_t out_len[FDS];
static pthread_mutex_t out_lock = PTHREAD_MUTEX_INITIALIZER;

static int slot_of(int fd)
{
	return fd == fd_of[0] ? 0 : fd == fd_of[1] ? 1 : -1;
}

static void put(int fd, const void *b, size_t n)
{
	int s = slot_of(fd);
	assert_true(s >= 0);
	assert_true(out_len[s] + n <= OUT_MAX);
	memcpy(out[s] + out_len[s], b, n);
	out_len[s] += n;
}

static ssize_t fake_write(int fd, const void *b, size_t n)
{
	pthread_mutex_lock(&out_lock);
	put(fd, b, n);
	pthread_mutex_unlock(&out_lock);
	return (ssize_t)n;
}

static ssize_t fake_writev(int fd, const struct iovec *iov, int iovcnt)
{
	ssize_t done = 0;
	pthread_mutex_lock(&out_lock);
	for (int i = 0; i < iovcnt; i++) {
		put(fd, iov[i].iov_base, iov[i].iov_len);
		done += (ssize_t)iov[i].iov_len;
	}
	pthread_mutex_unlock(&out_lock);
	return done;
}

static uint64_t request;
static _Atomic int writers_left;

static void write_piece(int fd, const char *b, size_t n)
{
	struct log_sink sink = {.fd = fd};
	struct iovec iov = {(void *)b, n};
	assert_int_equal(log_writev(&sink, &iov, 1), (ssize_t)n);
}

/* Writer w of round r: LINES lines "w<r>.<w> n<i>", to the descriptors
 * in turn; odd writers in a bracket, releasing every tenth line. */
static void *writer(void *arg)
{
	int w = (int)(intptr_t)arg;
	if (w % 2) {
		thread_ctx.mode = CTX_BRACKET;
		thread_ctx.request = request;
	}
	for (int i = 0; i < LINES; i++) {
		char text[64];
		int n = snprintf(text, sizeof(text), "w%d n%d", w, i);
		int fd = fd_of[i % FDS];
		write_piece(fd, text, (size_t)n);
		write_piece(fd, "\n", 1);
		if (w % 2 && i % 10 == 9)
			log_release_held(i % 20 == 19 ? request : 0);
	}
	log_flush_thread();
	writers_left--;
	return NULL;
}

static void *closer(void *arg)
{
	(void)arg;
	while (writers_left > 0)
		for (int s = 0; s < FDS; s++)
			log_flush_fd(fd_of[s]);
	return NULL;
}

/* Checks descriptor s's output: JSON objects, each of the writers' lines,
 * with no id or the request's, each on a line of its own (a line a flush
 * cut is ended there); each writer's lines in order, once; empty ones
 * besides (the newline of a line a flush cut, which comes out on its own:
 * as many as flushes cut lines, which the output does not show). */
static void check_output(int s, int writers)
{
	static const char id[] = "\"request_id\":\"req-slots\",";
	int next[ROUNDS * WRITERS];
	for (int w = 0; w < writers; w++)
		next[w] = s; /* a writer's lines on descriptor s: s, s + FDS, ... */
	for (const char *p = out[s], *end = out[s] + out_len[s]; p < end;) {
		assert_int_equal(*p++, '{');
		if ((size_t)(end - p) > sizeof(id) - 1 && memcmp(p, id, sizeof(id) - 1) == 0)
			p += sizeof(id) - 1;
		assert_true(end - p > 7 && memcmp(p, "\"msg\":\"", 7) == 0);
		p += 7;
		const char *q = memchr(p, '"', (size_t)(end - p));
		assert_non_null(q);
		char msg[64];
		assert_true((size_t)(q - p) < sizeof(msg));
		memcpy(msg, p, (size_t)(q - p));
		msg[q - p] = '\0';
		assert_true(end - q >= 2 && q[1] == '}');
		p = q + 2;
		assert_true(p < end && *p == '\n');
		p++;
		if (msg[0] == '\0')
			continue;
		int w, n;
		if (sscanf(msg, "w%d n%d", &w, &n) != 2 || w < 0 || w >= writers)
			fail_msg("not a line of the writers: %s", msg);
		assert_int_equal(n, next[w]);
		next[w] += FDS;
	}
	for (int w = 0; w < writers; w++)
		assert_int_equal(next[w], s + FDS * ((LINES - s + FDS - 1) / FDS));
}

static void test_slots_shared_with_closing_threads(void **state)
{
	(void)state;
	stand_in_configure();
	real.write = fake_write;
	real.writev = fake_writev;
	struct trace_plan plan;
	memset(&plan, 0, sizeof(plan));
	request = request_table_add("req-slots", 9, NULL, 0, 0, &plan, NULL, 0, NULL);
	for (int s = 0; s < FDS; s++)
		out[s] = malloc(OUT_MAX);

	for (int r = 0; r < ROUNDS; r++) {
		pthread_t th[WRITERS], closing;
		writers_left = WRITERS;
		for (int w = 0; w < WRITERS; w++)
			assert_int_equal(
				pthread_create(&th[w], NULL, writer, (void *)(intptr_t)(r * WRITERS + w)),
				0);
		assert_int_equal(pthread_create(&closing, NULL, closer, NULL), 0);
		for (int w = 0; w < WRITERS; w++)
			pthread_join(th[w], NULL);
		pthread_join(closing, NULL);
	}
	log_flush_all();
	for (int s = 0; s < FDS; s++) {
		check_output(s, ROUNDS * WRITERS);
		free(out[s]);
	}
}

/* The shim set up afresh, its writes to fd_of[0] captured in out[0]. */
static void capture_first_fd(void)
{
	stand_in_configure();
	real.write = fake_write;
	real.writev = fake_writev;
	out[0] = malloc(OUT_MAX);
	out_len[0] = 0;
}

/* A line held in a bracket under request r, released with r's id after
 * other threads of the process started two rings of requests: it still
 * gets r's id (its slot was kept for it), and the slot is let go then. */
static void test_held_line_keeps_its_request(void **state)
{
	(void)state;
	capture_first_fd();
	struct trace_plan plan;
	memset(&plan, 0, sizeof(plan));
	atomic_store(&process.threaded, true);
	uint64_t r = request_table_add("req-kept", 8, NULL, 0, 0, &plan, NULL, 0, NULL);
	thread_ctx.mode = CTX_BRACKET;
	thread_ctx.request = r;
	write_piece(fd_of[0], "late line\n", 10);
	assert_int_equal(out_len[0], 0);
	for (unsigned i = 0; i < 2 * REQUEST_RING_START + 1; i++)
		assert_true(request_table_add("other", 5, NULL, 0, 0, &plan, NULL, 0, NULL) != 0);
	thread_ctx.held = false; /* as thread_ctx.c's release_held does */
	log_release_held(r);
	static const char want[] = "{\"request_id\":\"req-kept\",\"msg\":\"late line\"}\n";
	assert_int_equal(out_len[0], sizeof(want) - 1);
	assert_memory_equal(out[0], want, sizeof(want) - 1);
	assert_int_equal(thread_ctx.held_pin, 0);
	/* Let go of: the ring comes round over r's slot again. */
	for (unsigned i = 0; i < 2 * REQUEST_RING_START + 1; i++)
		request_table_add("other", 5, NULL, 0, 0, &plan, NULL, 0, NULL);
	char id[REQUEST_ID_MAX];
	assert_int_equal(request_table_get(r, id), 0);
	thread_ctx.mode = CTX_NONE;
	thread_ctx.request = 0;
	atomic_store(&process.threaded, false);
	log_flush_thread();
	free(out[0]);
}

/* A line a signal handler writes gets no id, and is held for none, whether
 * the interrupted thread is certain of its request or in a bracket; the
 * thread's own next line gets the id again, and so does one written after
 * a handler left by a jump (its trampoline is forgotten). */
static void test_handler_line_has_no_id(void **state)
{
	(void)state;
	capture_first_fd();
	struct trace_plan plan;
	memset(&plan, 0, sizeof(plan));
	uint64_t r = request_table_add("req-own", 7, NULL, 0, 0, &plan, NULL, 0, NULL);
	thread_ctx.request = r;
	/* as a trampoline that called this function would have left it */
	thread_ctx.signal_frame = (uintptr_t)__builtin_frame_address(0);
	thread_ctx.signal_depth = 1;
	thread_ctx.mode = CTX_CERTAIN;
	write_piece(fd_of[0], "reaped 1\n", 9);
	thread_ctx.mode = CTX_BRACKET;
	write_piece(fd_of[0], "reaped 2\n", 9);
	assert_false(thread_ctx.held);
	thread_ctx.signal_depth = 0;
	thread_ctx.mode = CTX_CERTAIN;
	write_piece(fd_of[0], "own line\n", 9);
	/* A handler left by a jump: its frame lies below the stack now. */
	thread_ctx.signal_frame = (uintptr_t)__builtin_frame_address(0) - 65536;
	thread_ctx.signal_depth = 1;
	write_piece(fd_of[0], "after jump\n", 11);
	assert_int_equal(thread_ctx.signal_depth, 0);
	static const char want[] = "{\"msg\":\"reaped 1\"}\n{\"msg\":\"reaped 2\"}\n"
				   "{\"request_id\":\"req-own\",\"msg\":\"own line\"}\n"
				   "{\"request_id\":\"req-own\",\"msg\":\"after jump\"}\n";
	assert_int_equal(out_len[0], sizeof(want) - 1);
	assert_memory_equal(out[0], want, sizeof(want) - 1);
	thread_ctx.mode = CTX_NONE;
	thread_ctx.request = 0;
	log_flush_thread();
	free(out[0]);
}

/* Descriptors LOOP_FD.. of test_loop_keeps_empty_slots, captured apart. */
#define LOOP_FD 20
#define LOOP_FDS (THREAD_SLOTS_MAX + 1)
static char loop_out[LOOP_FDS][256];
static size_t loop_len[LOOP_FDS];

static void loop_put(int fd, const void *b, size_t n)
{
	assert_true(fd >= LOOP_FD && fd < LOOP_FD + LOOP_FDS);
	assert_true(loop_len[fd - LOOP_FD] + n <= sizeof(loop_out[0]));
	memcpy(loop_out[fd - LOOP_FD] + loop_len[fd - LOOP_FD], b, n);
	loop_len[fd - LOOP_FD] += n;
}

static ssize_t loop_write(int fd, const void *b, size_t n)
{
	loop_put(fd, b, n);
	return (ssize_t)n;
}

static ssize_t loop_writev(int fd, const struct iovec *iov, int iovcnt)
{
	ssize_t done = 0;
	for (int i = 0; i < iovcnt; i++) {
		loop_put(fd, iov[i].iov_base, iov[i].iov_len);
		done += (ssize_t)iov[i].iov_len;
	}
	return done;
}

/* A thread serving several connections keeps its slots when they empty
 * (an event loop holds its access line in the same slot every batch);
 * with THREAD_SLOTS_MAX kept, a line begun on one more descriptor still
 * gets a slot (an empty one goes back for it), so that it comes out
 * whole, not as two lines. Twice round the descriptors. */
static void test_loop_keeps_empty_slots(void **state)
{
	(void)state;
	stand_in_configure();
	real.write = loop_write;
	real.writev = loop_writev;
	thread_ctx.watch = WATCH_CONNS;
	for (int round = 0; round < 2; round++) {
		for (int fd = LOOP_FD; fd < LOOP_FD + LOOP_FDS; fd++) {
			write_piece(fd, "line", 4);
			write_piece(fd, "\n", 1);
		}
		assert_int_equal(thread_ctx.slot_count, THREAD_SLOTS_MAX);
	}
	static const char want[] = "{\"msg\":\"line\"}\n{\"msg\":\"line\"}\n";
	for (int s = 0; s < LOOP_FDS; s++) {
		assert_int_equal(loop_len[s], sizeof(want) - 1);
		assert_memory_equal(loop_out[s], want, sizeof(want) - 1);
	}
	log_flush_thread();
	assert_int_equal(thread_ctx.slot_count, 0);
	thread_ctx.watch = 0;
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_slots_shared_with_closing_threads),
		cmocka_unit_test(test_held_line_keeps_its_request),
		cmocka_unit_test(test_loop_keeps_empty_slots),
		cmocka_unit_test(test_handler_line_has_no_id),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
