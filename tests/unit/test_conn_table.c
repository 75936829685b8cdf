/*
 * test_conn_table.c - unit tests for shim/conn_table.c: a connection's
 * request follows the bytes read from it, and survives being copied onto
 * other descriptors (dup2(conn, 0) in a fork-per-connection server such as
 * busybox httpd, then close(conn)): the copies name the same connection, the
 * first copy takes the entry over when the fd holding it goes, closing a copy
 * leaves the connection alone, and a copy whose holder cannot hand the entry
 * over stops being tracked rather than read an entry a new connection on
 * that fd number may take. A head that arrives over several reads keeps its
 * text in a head_store slot until it ends, the slot following the entry to
 * a copy, and given back when the head ends or the connection closes (or
 * when the fd, whose close found its entry busy, inherits another entry);
 * a late read on an entry whose head text moved away loses its stream.
 * Descriptor numbers up to 2^20 - 1 are tracked, high ones on pages mapped
 * only when one of their numbers gets state; 2^20 and up never are.
 *
 * A stress case runs the table from many threads at once, as the hooks
 * do (`make unit-tsan` runs it under ThreadSanitizer): threads serving
 * connections of their own, copying them onto other numbers and closing
 * the holder, while others look up every number's request (as a thread
 * does for the connection it last served, which another may be closing
 * and reopening): each server finds exactly its request, and a lookup
 * gives a request read on that number or none, never another number's,
 * and a read that began before its number was closed and reopened brings
 * its request to no connection.
 *
 * A line quoting a request line is named by that request only while every
 * open stream's requests are counted: streams the table cannot parse (lost,
 * joined and not yet open, not HTTP, TLS records no hooked library read)
 * are counted unseen while open (not those speaking HTTP/2, whose requests
 * have no HTTP/1 request line), and connections it cannot track at all
 * (a busy entry, a write still inside) for good; each case is checked
 * through the naming itself, and a loss racing the opening of a joined
 * stream is checked from two threads.
 *
 * Links conn_table.c and request_table.c with the pure sources; the shim's
 * state is defined here (no hooks, no libc interposition).
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <sched.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "conn_table.h"
#include "head_store.h"
#include "page_bytes.h"
#include "request_table.h"
#include "resident_return.h"
#include "shim_init.h"

#include "audit_off.h"
#include "default_shim.h"
#include "fork_code_off.h"

struct shim_state shim;
struct process_state process;
struct real_functions real;
/* Whose certain request conn_on_write's writes began to answer: always 0
 * here, as nothing sets a reader (thread_ctx.c is not linked). One per
 * thread: the stress tests write from several. */
static _Thread_local int32_t began;

/* conn_on_read as the read hooks call it: fd's holder and entry looked up
 * after the read. */
static enum conn_read hook_read(int fd, uint8_t generation, const void *buf,
				const struct iovec *iov, size_t n)
{
	int holder = conn_fd(fd);
	return conn_on_read(fd, holder, conn_entry(holder), generation, buf, iov, n);
}

/* conn_on_write as the write hooks call it, on fd's entry. */
static bool hook_wrote(int fd, int32_t *reader)
{
	return conn_on_write(conn_of(fd), reader);
}

static int setup(void **state)
{
	(void)state;
	default_shim();
	for (unsigned fd = 0; fd < FD_LIMIT; fd += CONN_CHUNK)
		if (conn_entry((int)fd))
			memset(conn_entry((int)fd), 0, CONN_CHUNK * sizeof(struct conn));
	fd_state_release();
	request_table_forget_all(); /* as at detach: the unseen-stream count too */
	request_table_release();
	return 0;
}

/* A request with X-Request-ID id arrives on fd. */
static void request_on(int fd, const char *id)
{
	char req[256];
	int n = snprintf(req, sizeof(req), "GET /%s HTTP/1.1\r\nX-Request-ID: %s\r\n\r\n", id, id);
	hook_read(fd, conn_generation(fd), req, NULL, (size_t)n);
}

/* The id fd's connection carries now; "" if none. */
static const char *id_on(int fd)
{
	static char out[REQUEST_ID_MAX + 1];
	size_t len = request_table_get(conn_request(fd), out);
	out[len] = '\0';
	return out;
}

/* Whether a line quoting a request line is named by the one counted request
 * with that line now: a probe request on fd 900, read, named, answered and
 * closed. */
static bool naming_on(void)
{
	static unsigned n;
	char req[128], line[128];
	n++;
	conn_open(900);
	int len = snprintf(req, sizeof(req), "GET /probe%u HTTP/1.1\r\nX-Request-ID: probe\r\n\r\n", n);
	hook_read(900, conn_generation(900), req, NULL, (size_t)len);
	len = snprintf(line, sizeof(line), "- \"GET /probe%u HTTP/1.1\" 200", n);
	bool named = request_named_by(line, (size_t)len) == conn_request(900) &&
		     conn_request(900) != 0;
	hook_wrote(900, &began);
	conn_forget(900);
	return named;
}

/* RECENT_REQUESTS requests end: an unseen stream that ended (or was seen
 * again) before them counts no more, as a request that ended before them
 * does not (a buffered log's lines come at most that late). */
static void recent_ends_pass(void)
{
	for (int i = 0; i < RECENT_REQUESTS; i++) {
		conn_open(901);
		request_on(901, "end");
		conn_forget(901);
	}
}

/* An unseen stream just ended (or was seen again): naming stays off until
 * RECENT_REQUESTS more requests end, and comes back then. A macro, so that
 * a failure names the test's line. */
#define assert_naming_back_after_recent_ends()                                      \
	do {                                                                         \
		assert_false(naming_on());                                           \
		recent_ends_pass();                                                  \
		assert_true(naming_on());                                            \
	} while (0)

static void test_request_follows_reads(void **state)
{
	(void)state;
	conn_open(5);
	assert_string_equal(id_on(5), "");
	request_on(5, "first");
	assert_string_equal(id_on(5), "first");
	hook_wrote(5, &began);
	request_on(5, "second");
	assert_string_equal(id_on(5), "second");
	conn_forget(5);
	assert_int_equal(fd_class(5) & FD_CONN, 0);
	assert_int_equal(conn_request(5), 0);
}

static void test_copy_names_the_same_connection(void **state)
{
	(void)state;
	conn_open(5);
	conn_copied(5, 0);
	assert_true(fd_class(0) & FD_CONN);
	assert_false(conn_named_once(5));
	assert_false(conn_named_once(0));
	request_on(0, "via-copy");
	assert_string_equal(id_on(5), "via-copy");
	assert_string_equal(id_on(0), "via-copy");
}

static void test_copy_takes_over_when_holder_closes(void **state)
{
	(void)state;
	conn_open(5);
	request_on(5, "kept");
	conn_copied(5, 0);
	conn_copied(0, 1); /* dup2(0, 1): a copy of a copy */
	conn_forget(5);    /* close(conn) */
	assert_int_equal(fd_class(5) & FD_CONN, 0);
	assert_string_equal(id_on(0), "kept");
	assert_string_equal(id_on(1), "kept");
	conn_forget(0);
	assert_true(conn_named_once(1));
	assert_string_equal(id_on(1), "kept");
	hook_wrote(1, &began);
	request_on(1, "next");
	assert_string_equal(id_on(1), "next");
	/* A new connection accepted on the old number is a stranger. */
	conn_open(5);
	assert_string_equal(id_on(5), "");
	assert_string_equal(id_on(1), "next");
}

/* A read on a copy whose hook looked its holder up before the holder
 * closed (the connection moving to the copy) and a new connection, with a
 * request, took the holder's number: the entry the hook looked up is the
 * stranger's, and conn_on_read, finding the move, says the read is stale,
 * so that ctx_after_io_on does not give the thread the stranger's request. */
static void test_holder_looked_up_before_a_move_names_no_stranger(void **state)
{
	(void)state;
	conn_open(40);
	request_on(40, "mine");
	conn_copied(40, 41);
	uint8_t generation = conn_generation(41);
	/* conn_read_done on 41, after its read: */
	int holder = conn_fd(41);
	struct conn *c = conn_holder_entry(holder);
	/* Meanwhile, on other threads: close(40), accept() gives 40 again,
	 * and a request is read on it. */
	conn_forget(40);
	conn_open(40);
	request_on(40, "stranger");
	/* The hook carries on with what it looked up: the entry it holds is
	 * the stranger's, so the read must say the hook hands it on to no one
	 * (conn_read_done then leaves the thread with no request). */
	char out[REQUEST_ID_MAX + 1];
	size_t len = request_table_get(conn_entry_request(c), out);
	out[len] = '\0';
	assert_string_equal(out, "stranger");
	assert_int_equal(conn_on_read(41, holder, c, generation, "x", NULL, 1), CONN_READ_STALE);
	assert_string_equal(id_on(40), "stranger");
}

static void test_closing_a_copy_leaves_the_connection(void **state)
{
	(void)state;
	conn_open(7);
	request_on(7, "stays");
	conn_copied(7, 8);
	conn_forget(8);
	assert_int_equal(fd_class(8) & FD_CONN, 0);
	assert_true(conn_named_once(7));
	assert_string_equal(id_on(7), "stays");
}

static void test_busy_holder_drops_its_copies(void **state)
{
	(void)state;
	conn_open(10);
	request_on(10, "busy");
	conn_copied(10, 11);
	conn_copied(10, 12);
	atomic_store(&conn_entry(10)->busy, 1); /* another thread is inside */
	conn_forget(10);
	atomic_store(&conn_entry(10)->busy, 0);
	assert_int_equal(fd_class(11) & FD_CONN, 0);
	assert_int_equal(fd_class(12) & FD_CONN, 0);
	assert_int_equal(conn_request(11), 0);
	assert_int_equal(conn_request(12), 0);
}

/* The first copy's own entry is held by a late reader of the connection
 * that number had before: that copy is dropped, its entry left as it is,
 * and the next copy takes the connection over. */
static void test_busy_heir_entry_passes_the_connection_on(void **state)
{
	(void)state;
	conn_open(20);
	request_on(20, "moves");
	conn_copied(20, 21);
	conn_copied(20, 22);
	atomic_store(&conn_entry(21)->busy, 1);
	conn_forget(20);
	assert_int_equal(atomic_load(&conn_entry(21)->busy), 1);
	atomic_store(&conn_entry(21)->busy, 0);
	assert_int_equal(fd_class(21) & FD_CONN, 0);
	assert_int_equal(conn_request(21), 0);
	assert_true(conn_named_once(22));
	assert_string_equal(id_on(22), "moves");
	assert_int_equal(atomic_load(&conn_entry(22)->busy), 0);
}

static void test_lost_connection_stays_lost_in_copies(void **state)
{
	(void)state;
	conn_open(3);
	request_on(3, "gone");
	conn_copied(3, 4);
	conn_lose(4);
	assert_int_equal(conn_request(3), 0);
	assert_int_equal(conn_request(4), 0);
}


/* Adds as many requests as the ring can ever hold: every slot not pinned
 * is taken. */
static void lap_of_requests(void)
{
	for (unsigned i = 0; i < REQUEST_SLOTS; i++)
		assert_int_not_equal(request_table_add("other", 5, NULL, 0, 0, NULL, NULL, 0, NULL), 0);
}

/* A connection's request keeps its slot while unanswered, however many
 * requests come after; once its response begins, or the connection
 * closes, the ring takes the slot when it next comes round. */
static void test_request_pinned_until_answered(void **state)
{
	(void)state;
	char out[REQUEST_ID_MAX];
	conn_open(20);
	request_on(20, "pinned-1");
	lap_of_requests();
	assert_string_equal(id_on(20), "pinned-1");
	hook_wrote(20, &began);
	lap_of_requests();
	assert_string_equal(id_on(20), "");

	request_on(20, "pinned-2");
	uint64_t second = conn_request(20);
	lap_of_requests();
	assert_string_equal(id_on(20), "pinned-2");
	conn_forget(20);
	lap_of_requests();
	assert_int_equal(request_table_get(second, out), 0);

	/* A stream lost (a second request before the first was answered)
	 * keeps its request pinned until a response begins or the
	 * connection closes (here: closes, nothing was written). */
	conn_open(20);
	request_on(20, "lost");
	uint64_t lost = conn_request(20);
	request_on(20, "pipelined");
	lap_of_requests();
	assert_int_equal(request_table_get(lost, out), 4);
	conn_forget(20);
	lap_of_requests();
	assert_int_equal(request_table_get(lost, out), 0);

	/* A copy that takes the connection over takes its pin: the old
	 * number, opened again, gives back no pin of it. */
	conn_open(20);
	request_on(20, "moved");
	conn_copied(20, 30);
	conn_forget(20);
	conn_open(20);
	request_on(20, "new-on-20");
	hook_wrote(20, &began);
	conn_forget(20);
	lap_of_requests();
	assert_string_equal(id_on(30), "moved");
	conn_forget(30);
}

/* A request with X-Request-ID id and a traceparent, in two reads: up to two
 * bytes into the id (half 0), and the rest (half 1). */
static void half_request_on(int fd, const char *id, int half)
{
	char req[256];
	int n = snprintf(req, sizeof(req),
			 "GET /%s HTTP/1.1\r\nX-Request-ID: %s\r\ntraceparent: "
			 "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01\r\n\r\n", id, id);
	int cut = (int)(strstr(req, "X-Request-ID: ") - req) + 16;
	if (half == 0)
		hook_read(fd, conn_generation(fd), req, NULL, (size_t)cut);
	else
		hook_read(fd, conn_generation(fd), req + cut, NULL, (size_t)(n - cut));
}

/* Every head_store slot is free: the lowest one is the first claimed. */
static void expect_store_empty(void)
{
	uint32_t slot = head_store_claim();
	assert_int_equal(slot, 1);
	head_store_release(slot);
}

static void test_heads_over_two_reads(void **state)
{
	(void)state;
	static const int fds[] = { 5, 6, 300 };
	static const char *ids[] = { "alpha-1", "beta-22", "gamma-333" };
	for (int i = 0; i < 3; i++)
		conn_open(fds[i]);
	for (int i = 0; i < 3; i++)
		half_request_on(fds[i], ids[i], 0);
	for (int i = 0; i < 3; i++)
		assert_string_equal(id_on(fds[i]), "");
	for (int i = 2; i >= 0; i--)
		half_request_on(fds[i], ids[i], 1);
	for (int i = 0; i < 3; i++) {
		assert_string_equal(id_on(fds[i]), ids[i]);
		struct trace_ctx t;
		assert_true(request_table_trace(conn_request(fds[i]), &process.ids, &t));
		assert_memory_equal(t.trace_id, "4bf92f3577b34da6a3ce929d0e0e4736", 32);
	}
	expect_store_empty();
}

static void test_head_text_follows_the_heir(void **state)
{
	(void)state;
	conn_open(5);
	half_request_on(5, "moved", 0);
	conn_copied(5, 0);
	conn_forget(5);
	/* A new connection on the old number starts a head of its own. */
	conn_open(5);
	half_request_on(5, "stranger", 0);
	half_request_on(0, "moved", 1);
	assert_string_equal(id_on(0), "moved");
	half_request_on(5, "stranger", 1);
	assert_string_equal(id_on(5), "stranger");
	expect_store_empty();
}

static void test_closed_inside_a_head(void **state)
{
	(void)state;
	conn_open(5);
	half_request_on(5, "gone", 0);
	conn_forget(5);
	expect_store_empty();
	conn_open(5);
	half_request_on(5, "fresh", 0);
	half_request_on(5, "fresh", 1);
	assert_string_equal(id_on(5), "fresh");
	expect_store_empty();
}

/* A read that found fd 5's entry before close(5) moved its head to the copy
 * feeds the old entry after: its parser is inside a head whose text went
 * with the entry, so the old entry loses its stream instead of parsing on
 * with whatever text is at hand (another connection's). */
static void test_late_read_after_the_head_moved(void **state)
{
	(void)state;
	conn_open(5);
	half_request_on(5, "mine", 0);
	conn_copied(5, 9);
	conn_forget(5);
	conn_open(7);
	request_on(7, "other");
	half_request_on(5, "mine", 1); /* the late read, on the old entry */
	assert_int_equal(__atomic_load_n(&conn_entry(5)->request, __ATOMIC_RELAXED), 0);
	assert_true(atomic_load(&conn_entry(5)->lost));
	half_request_on(9, "mine", 1);
	assert_string_equal(id_on(9), "mine");
	expect_store_empty();
}

/* close(9) found fd 9's entry busy (a read inside it) and left its head
 * slot there; fd 9 then becomes a copy and inherits an entry: the slot it
 * kept goes back, not lost. */
static void test_heir_gives_back_a_kept_slot(void **state)
{
	(void)state;
	for (int round = 0; round < 3; round++) {
		conn_open(9);
		half_request_on(9, "left", 0);
		atomic_store(&conn_entry(9)->busy, 1);
		conn_forget(9);
		atomic_store(&conn_entry(9)->busy, 0);
		conn_open(5);
		half_request_on(5, "moved", 0);
		conn_copied(5, 9);
		conn_forget(5);
		half_request_on(9, "moved", 1);
		assert_string_equal(id_on(9), "moved");
		conn_forget(9);
		expect_store_empty();
	}
}

static const char client_hello[] = "\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03";

/* A new connection on fd whose first bytes were a ClientHello and whose
 * TLS library (a hooked one) then took it up. */
static void tls_opened(int fd)
{
	conn_open(fd);
	hook_read(fd, conn_generation(fd), client_hello, NULL, sizeof client_hello - 1);
	conn_tls_begin(fd);
}

/* The client's end of file ends a request that was answered (what the
 * server writes next, its note of the close, is no request's), not one
 * still unanswered (a client half-closes after its request), and a request
 * that arrives after it (pipelined before the close) is a request. */
static void test_end_of_file_ends_an_answered_request(void **state)
{
	(void)state;
	conn_open(5);
	conn_on_eof(5);
	assert_int_equal(conn_request(5), 0);
	request_on(5, "asked");
	conn_on_eof(5);
	assert_string_equal(id_on(5), "asked");
	hook_wrote(5, &began);
	assert_string_equal(id_on(5), "asked");
	conn_on_eof(5);
	assert_int_equal(conn_request(5), 0);
	request_on(5, "after");
	assert_string_equal(id_on(5), "after");
	conn_forget(5);
	tls_opened(6);
	static const char req[] = "GET /a HTTP/1.1\r\nX-Request-ID: tls-eof\r\n\r\n";
	conn_on_tls_read(6, req, sizeof req - 1);
	hook_wrote(6, &began); /* a record: says nothing of the response */
	conn_on_eof(6);
	assert_string_equal(id_on(6), "tls-eof");
	conn_on_tls_write(6);
	conn_on_eof(6);
	assert_int_equal(conn_request(6), 0);
	conn_forget(6);
}

/* A connection whose first bytes are a ClientHello gets no id from its
 * records; the plaintext read through the TLS library gives its requests. */
static void test_tls_records_are_not_requests(void **state)
{
	(void)state;
	conn_open(5);
	hook_read(5, conn_generation(5), client_hello, NULL, sizeof client_hello - 1);
	assert_true(conn_is_tls(5));
	assert_int_equal(conn_request(5), 0);
	request_on(5, "raw"); /* through the socket: a record, not a request */
	assert_string_equal(id_on(5), "");
	conn_tls_begin(5);
	static const char req[] = "GET /a HTTP/1.1\r\nX-Request-ID: tls-1\r\n\r\n";
	conn_on_tls_read(5, req, sizeof req - 1);
	assert_string_equal(id_on(5), "tls-1");
	hook_wrote(5, &began); /* a record: no response began */
	static const char req2[] = "GET /b HTTP/1.1\r\nX-Request-ID: tls-2\r\n\r\n";
	conn_on_tls_read(5, req2, sizeof req2 - 1);
	assert_int_equal(conn_request(5), 0); /* pipelined: unattributable */
	conn_forget(5);
	conn_open(5);
	assert_false(conn_is_tls(5));
	hook_read(5, conn_generation(5), client_hello, NULL, sizeof client_hello - 1);
	conn_tls_begin(5);
	conn_on_tls_read(5, req, sizeof req - 1);
	conn_on_tls_write(5);
	conn_on_tls_read(5, req2, sizeof req2 - 1);
	assert_string_equal(id_on(5), "tls-2");
	conn_forget(5);
}

/* A handshake the first read did not know (its id generated for a non-HTTP
 * connection) starts over at the first TLS call; a connection that gave
 * plain requests before is lost. */
static void test_tls_begin_after_the_socket_gave_bytes(void **state)
{
	(void)state;
	conn_open(6);
	static const char v2_hello[] = "\x80\x2e\x01\x03\x01";
	hook_read(6, conn_generation(6), v2_hello, NULL, sizeof v2_hello - 1);
	assert_int_not_equal(conn_request(6), 0); /* one generated id */
	conn_tls_begin(6);
	assert_int_equal(conn_request(6), 0);
	static const char req[] = "GET /a HTTP/1.1\r\nX-Request-ID: tls-3\r\n\r\n";
	conn_on_tls_read(6, req, sizeof req - 1);
	assert_string_equal(id_on(6), "tls-3");
	conn_forget(6);
	conn_open(7);
	request_on(7, "plain-1");
	assert_string_equal(id_on(7), "plain-1");
	conn_tls_begin(7);
	conn_on_tls_read(7, req, sizeof req - 1);
	assert_int_equal(conn_request(7), 0);
	conn_forget(7);
}

/* HTTP/2 (or anything else that is not HTTP/1) inside TLS: no id at all,
 * not one for the whole connection. */
static void test_tls_not_http_is_lost(void **state)
{
	(void)state;
	tls_opened(8);
	static const char preface[] = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
	conn_on_tls_read(8, preface, sizeof preface - 1);
	assert_int_equal(conn_request(8), 0);
	request_on(8, "later");
	assert_int_equal(conn_request(8), 0);
	/* Its requests have no HTTP/1 request line: lines are still named
	 * by the requests counted (so too when ALPN chose h2). */
	assert_true(naming_on());
	conn_lose_to_h2(8);
	assert_true(naming_on());
	conn_forget(8);
	/* The preface in clear (prior knowledge): the same, no id for it. */
	conn_open(8);
	hook_read(8, conn_generation(8), preface, NULL, sizeof preface - 1);
	assert_int_equal(conn_request(8), 0);
	assert_true(naming_on());
	conn_forget(8);
	/* Anything else inside TLS that does not parse (a request line
	 * with two spaces, which some servers take) may carry requests the
	 * shim does not see: no line is named while it is open. */
	tls_opened(9);
	static const char odd[] = "GET  /a HTTP/1.1\r\n\r\n";
	conn_on_tls_read(9, odd, sizeof odd - 1);
	assert_int_equal(conn_request(9), 0);
	assert_false(naming_on());
	conn_forget(9);
	assert_naming_back_after_recent_ends();
}

static bool page_mapped(int fd)
{
	return atomic_load(&fd_pages[(unsigned)fd / FD_PAGE]) != NULL;
}

static void test_high_descriptors(void **state)
{
	(void)state;
	const int top = (int)FD_LIMIT - 1;
	/* Looking at a number maps nothing. */
	assert_int_equal(fd_class(300000), 0);
	assert_int_equal(conn_request(300000), 0);
	assert_false(page_mapped(300000));
	conn_forget(300000);
	assert_false(page_mapped(300000));
	conn_open(top);
	conn_open(70000);
	request_on(top, "top");
	request_on(70000, "high");
	assert_string_equal(id_on(top), "top");
	assert_string_equal(id_on(70000), "high");
	assert_true(page_mapped(70000));
	assert_false(page_mapped(300000));
	assert_int_equal(fd_state_end(), FD_LIMIT);
	/* 2^20 is past the table: never a connection. */
	conn_open((int)FD_LIMIT);
	assert_int_equal(fd_class((int)FD_LIMIT), 0);
	assert_int_equal(conn_request((int)FD_LIMIT), 0);
	conn_forget(top);
	assert_int_equal(fd_class(top), 0);
	assert_int_equal(conn_request(top), 0);
	assert_string_equal(id_on(70000), "high");
}

static void test_copies_across_high_pages(void **state)
{
	(void)state;
	/* A connection on a high number copied onto 0 and onto a number on
	 * another high page; the holder closes: the first copy found (0)
	 * takes the entry over, the scan crossing pages never mapped. */
	conn_open(600000);
	request_on(600000, "far");
	conn_copied(600000, 0);
	conn_copied(600000, 900000);
	assert_false(page_mapped(700000));
	conn_forget(600000);
	assert_int_equal(fd_class(600000), 0);
	assert_string_equal(id_on(0), "far");
	assert_string_equal(id_on(900000), "far");
	assert_false(conn_named_once(0));
	conn_forget(0);
	assert_true(conn_named_once(900000));
	assert_string_equal(id_on(900000), "far");
	hook_wrote(900000, &began);
	request_on(900000, "next");
	assert_string_equal(id_on(900000), "next");
	conn_forget(900000);
	assert_int_equal(conn_request(900000), 0);
}

/* A thread blocked in a read on fd while another closed fd and accepted a
 * new connection on the number: the read returns the old connection's
 * bytes, which the new connection never sees, whole or cut. */
static void test_read_begun_before_close_goes_nowhere(void **state)
{
	(void)state;
	static const char stale[] = "GET /old HTTP/1.1\r\nX-Request-ID: stale\r\n\r\n";
	static const char cut[] = "GET /old HTTP/1.1\r\nX-Req";
	conn_open(5);
	request_on(5, "first");
	uint8_t before = conn_generation(5);
	conn_forget(5);
	assert_int_not_equal(conn_generation(5), before);
	conn_open(5);
	assert_int_equal(hook_read(5, before, stale, NULL, sizeof stale - 1), CONN_READ_STALE);
	assert_string_equal(id_on(5), "");
	assert_int_equal(hook_read(5, before, cut, NULL, sizeof cut - 1), CONN_READ_STALE);
	request_on(5, "fresh");
	assert_string_equal(id_on(5), "fresh");
	/* Closed and not reopened: the late bytes change nothing either. */
	before = conn_generation(5);
	conn_forget(5);
	assert_int_equal(hook_read(5, before, stale, NULL, sizeof stale - 1), CONN_READ_STALE);
	assert_int_equal(conn_request(5), 0);
	conn_open(5);
	request_on(5, "again");
	assert_string_equal(id_on(5), "again");
	conn_forget(5);
}

static void *note_own_tid(void *arg)
{
	*(pid_t *)arg = gettid();
	return NULL;
}

/* A thread still inside a write on the fd's last connection (conn_output
 * holds the entry's write side, naming the thread) when a new connection
 * is accepted on the number: the new one goes untracked until the entry is
 * free. A holder that no longer exists (cancelled inside the write) holds
 * nothing. */
static void test_write_inside_leaves_next_connection_untracked(void **state)
{
	(void)state;
	conn_open(6);
	request_on(6, "old");
	struct conn *c = conn_entry(6);
	atomic_store(&c->out_busy, (uint32_t)gettid());
	conn_forget(6);
	conn_open(6);
	assert_int_equal(fd_class(6), 0);
	assert_int_equal(conn_request(6), 0);
	atomic_store(&c->out_busy, 0); /* the write ends */
	conn_open(6);
	assert_int_equal(fd_class(6), FD_CONN);
	request_on(6, "new");
	assert_string_equal(id_on(6), "new");
	conn_forget(6);

	pthread_t gone;
	pid_t gone_tid = 0;
	assert_int_equal(pthread_create(&gone, NULL, note_own_tid, &gone_tid), 0);
	assert_int_equal(pthread_join(gone, NULL), 0);
	/* The kernel's thread outlives the join by a moment. */
	for (unsigned i = 0; i < 100000 && syscall(SYS_tgkill, getpid(), gone_tid, 0) == 0; i++)
		sched_yield();
	atomic_store(&c->out_busy, (uint32_t)gone_tid);
	conn_open(6);
	assert_int_equal(fd_class(6), FD_CONN);
	assert_int_equal(atomic_load(&c->out_busy), 0);
	request_on(6, "after");
	assert_string_equal(id_on(6), "after");
	conn_forget(6);
}

/* A lost stream is unseen while it is open, in whichever of its copies. */
static void test_lost_stream_keeps_lines_unnamed(void **state)
{
	(void)state;
	assert_true(naming_on());
	conn_open(5);
	conn_lose(5);
	assert_false(naming_on());
	conn_forget(5);
	assert_naming_back_after_recent_ends();
	conn_open(5);
	conn_copied(5, 0);
	conn_lose(0);
	conn_forget(5); /* 0 inherits the entry, and the count with it */
	assert_false(naming_on());
	conn_forget(0);
	assert_naming_back_after_recent_ends();
}

/* Attach and detach pause naming while the GOT changes and resume it at
 * once; a resume more than the pauses (a late one, after detach zeroed the
 * count) leaves no debt for the next unseen stream to pay off. */
static void test_naming_paused(void **state)
{
	(void)state;
	request_naming_paused(true);
	assert_false(naming_on());
	request_naming_paused(false);
	assert_true(naming_on());
	request_naming_paused(false);
	conn_open(5);
	conn_lose(5);
	assert_false(naming_on());
	conn_forget(5);
}

/* A buffered access log writes the lines of an unseen stream's requests
 * after the stream closed (a connection attach never adopted, whose request
 * the program read before attach): a request line read next on a followed
 * connection names none of them until RECENT_REQUESTS more requests have
 * ended, as a request that ended does. Its line, seen twice, never names
 * again: a buffered log may still hold the first one's. */
static void test_closed_unseen_stream_counts_a_while(void **state)
{
	(void)state;
	static const char req[] = "GET /buffered HTTP/1.1\r\n\r\n";
	static const char line[] = "192.0.2.1 \"GET /buffered HTTP/1.1\" 200";
	static const char later[] = "GET /buffered-later HTTP/1.1\r\n\r\n";
	static const char later_line[] = "192.0.2.1 \"GET /buffered-later HTTP/1.1\" 200";
	conn_unseen_until_adopted(5);
	conn_adoption_dropped(5); /* closed */
	conn_open(6);
	hook_read(6, conn_generation(6), req, NULL, sizeof req - 1);
	assert_int_not_equal(conn_request(6), 0);
	assert_int_equal(request_named_by(line, sizeof line - 1), 0);
	conn_forget(6);
	recent_ends_pass();
	conn_open(6);
	hook_read(6, conn_generation(6), later, NULL, sizeof later - 1);
	assert_int_equal(request_named_by(later_line, sizeof later_line - 1), conn_request(6));
	conn_forget(6);
	conn_open(6);
	hook_read(6, conn_generation(6), req, NULL, sizeof req - 1);
	assert_int_equal(request_named_by(line, sizeof line - 1), 0);
	conn_forget(6);
}

/* A buffered log may write a request's line after RECENT_REQUESTS more
 * ended (nginx's buffer=64k holds more lines than that), when a newer
 * request with the same line is the one counted: no line names a request
 * whose line another request of the process had before. */
static void test_a_line_seen_before_names_nothing(void **state)
{
	(void)state;
	static const char req[] = "GET /twice HTTP/1.1\r\n\r\n";
	static const char line[] = "192.0.2.1 \"GET /twice HTTP/1.1\" 200";
	conn_open(6);
	hook_read(6, conn_generation(6), req, NULL, sizeof req - 1);
	assert_int_equal(request_named_by(line, sizeof line - 1), conn_request(6));
	hook_wrote(6, &began);
	conn_forget(6);
	recent_ends_pass();
	assert_int_equal(request_named_by(line, sizeof line - 1), 0);
	conn_open(7);
	hook_read(7, conn_generation(7), req, NULL, sizeof req - 1);
	assert_int_not_equal(conn_request(7), 0);
	assert_int_equal(request_named_by(line, sizeof line - 1), 0);
	assert_false(request_named_in(conn_request(7), line, sizeof line - 1));
	conn_forget(7);
}

/* An heir whose own entry a late loss marked (a reader that found it
 * locked after its connection closed) gives that count back as it takes
 * the connection over. */
static void test_heir_gives_back_a_late_count(void **state)
{
	(void)state;
	conn_open(30);
	conn_forget(30);
	conn_mark_lost(conn_entry(30)); /* late: 30 was closed */
	assert_false(naming_on());
	conn_open(31);
	request_on(31, "held");
	conn_copied(31, 30);
	conn_forget(31);
	assert_string_equal(id_on(30), "held");
	conn_forget(30);
	assert_naming_back_after_recent_ends();
}

/* Copies dropped because their holder's entry was busy, and a connection
 * left untracked because a write was still inside its entry, stay open with
 * their requests unseen and their ends unseen too: no line is named again
 * (until the state is released, as at detach). */
static void test_untracked_connections_keep_lines_unnamed(void **state)
{
	(void)state;
	conn_open(10);
	conn_copied(10, 11);
	atomic_store(&conn_entry(10)->busy, 1);
	conn_forget(10);
	atomic_store(&conn_entry(10)->busy, 0);
	assert_false(naming_on());
	conn_forget(11);
	assert_false(naming_on());
	request_table_forget_all();
	request_table_release();
	assert_true(naming_on());

	conn_open(6);
	atomic_store(&conn_entry(6)->out_busy, (uint32_t)gettid());
	conn_forget(6);
	conn_open(6);
	atomic_store(&conn_entry(6)->out_busy, 0);
	assert_int_equal(fd_class(6), 0);
	assert_false(naming_on());
	request_table_forget_all();
	request_table_release();
	conn_open(7);
	request_on(7, "x");
	conn_forget(7);
	atomic_store(&conn_entry(7)->busy, 1); /* a late reader of that one */
	conn_open(7);
	atomic_store(&conn_entry(7)->busy, 0);
	assert_int_equal(fd_class(7), 0);
	assert_false(naming_on());
}

/* A connection whose first bytes are not HTTP (another protocol, or a
 * PROXY protocol header cut short) is not parsed: a request on it is
 * unseen, and the same request line read on another connection names
 * nothing. */
static void test_not_http_keeps_lines_unnamed(void **state)
{
	(void)state;
	conn_open(50);
	static const char proxied[] = "PROXY\r\nGET /same HTTP/1.1\r\n\r\n";
	hook_read(50, conn_generation(50), proxied, NULL, sizeof proxied - 1);
	conn_open(51);
	static const char req[] = "GET /same HTTP/1.1\r\n\r\n";
	hook_read(51, conn_generation(51), req, NULL, sizeof req - 1);
	static const char line[] = "192.0.2.1 \"GET /same HTTP/1.1\" 200";
	assert_int_equal(request_named_by(line, sizeof line - 1), 0);
	conn_forget(51);
	conn_forget(50);
	assert_naming_back_after_recent_ends();
}

/* A first line the parser fails on that names an HTTP version (gunicorn
 * and nginx serve "HTTP/1.01"; two spaces after the method) is HTTP it
 * cannot follow: the stream is lost, with no id, not one id for the whole
 * connection (every request on it would share it). Another protocol keeps
 * one id for its connection. */
static void test_unparsed_http_is_lost_not_raw(void **state)
{
	(void)state;
	static const char *const odd[] = {
		"GET /x HTTP/1.01\r\nX-Request-ID: a-1\r\n\r\n",
		"GET /x HTTP/01.1\r\nX-Request-ID: a-1\r\n\r\n",
		"GET  /x HTTP/1.1\r\nX-Request-ID: a-1\r\n\r\n",
		"GET\t/x http/1.1\r\nX-Request-ID: a-1\r\n\r\n",
	};
	for (size_t i = 0; i < sizeof odd / sizeof odd[0]; i++) {
		conn_open(54);
		hook_read(54, conn_generation(54), odd[i], NULL, strlen(odd[i]));
		assert_int_equal(conn_request(54), 0);
		request_on(54, "b-2");
		assert_int_equal(conn_request(54), 0);
		conn_forget(54);
	}
	conn_open(55);
	static const char other[] = "PING\r\n";
	hook_read(55, conn_generation(55), other, NULL, sizeof other - 1);
	assert_int_not_equal(conn_request(55), 0);
	conn_forget(55);
	assert_naming_back_after_recent_ends();
}

/* A stream's bytes, read in two: the first `first` of them, then the rest. */
struct split_stream {
	const char *bytes;
	size_t len, first;
};

/* Opens fd as a new connection and reads s on it. */
static void read_split(int fd, const struct split_stream *s)
{
	conn_open(fd);
	hook_read(fd, conn_generation(fd), s->bytes, NULL, s->first);
	if (s->first < s->len)
		hook_read(fd, conn_generation(fd), s->bytes + s->first, NULL, s->len - s->first);
}

/* A gateway protocol's stream (FastCGI, SCGI, uwsgi: a front server
 * passing on requests it gave ids of its own) is lost, with no id: one
 * made up for the connection would be none of its requests' ids. Its
 * first bytes may come alone (php-cgi reads a record's header, 8 bytes,
 * first) or with the rest. */
static void test_gateway_protocol_is_lost_not_raw(void **state)
{
	(void)state;
	static const char fastcgi[] = "\x01\x01\x00\x01\x00\x08\x00\x00\x00\x01\x00\x00\x00\x00\x00\x00"
				      "\x01\x04\x00\x01\x00\x16\x02\x00\x11\x04HTTP_X_REQUEST_IDt-42";
	static const char scgi[] = "40:CONTENT_LENGTH\0" "0\0SCGI\0" "1\0REQUEST_METHOD\0GET\0,";
	static const char uwsgi[] = "\x00\x2a\x00\x00\x0e\x00REQUEST_METHOD\x03\x00GET\x0b\x00REQUEST_URI\x06\x00/same1";
	static const struct split_stream streams[] = {
		{fastcgi, sizeof fastcgi - 1, 8},
		{fastcgi, sizeof fastcgi - 1, sizeof fastcgi - 1},
		{scgi, sizeof scgi - 1, sizeof scgi - 1},
		{scgi, sizeof scgi - 1, 1}, /* its length's digits apart */
		{scgi, sizeof scgi - 1, 2},
		{uwsgi, sizeof uwsgi - 1, 1}, /* its header in pieces */
		{uwsgi, sizeof uwsgi - 1, 2},
		{uwsgi, sizeof uwsgi - 1, 3},
		{uwsgi, sizeof uwsgi - 1, 4},
		{uwsgi, sizeof uwsgi - 1, sizeof uwsgi - 1},
	};
	/* A PROXY v2 header whose first CR and LF bytes came alone: the
	 * parser skipped them as empty lines and failed at its NUL; the
	 * client's own request follows it on the same read. */
	static const char proxy_v2[] = "\r\n\r\n\0\r\nQUIT\n\x21\x11\x00\x0c"
				       "\x7f\x00\x00\x01\x7f\x00\x00\x01\x30\x39\x00\x50"
				       "GET /same1 HTTP/1.1\r\nX-Request-ID: c-1\r\n\r\n";
	for (size_t first = 1; first <= 4; first++) {
		read_split(56, &(struct split_stream){proxy_v2, sizeof proxy_v2 - 1, first});
		assert_int_equal(conn_request(56), 0);
		request_on(56, "b-2");
		assert_int_equal(conn_request(56), 0);
		conn_forget(56);
	}
	for (size_t k = 0; k < sizeof streams / sizeof streams[0]; k++) {
		read_split(56, &streams[k]);
		assert_int_equal(conn_request(56), 0);
		request_on(56, "b-2");
		assert_int_equal(conn_request(56), 0);
		conn_forget(56);
	}
	/* Other protocols keep one id for their connection, whatever their
	 * reads: an LDAP bind (its first byte a digit), ident's query. */
	static const char ldap[] = "\x30\x0c\x02\x01\x01\x60\x07\x02\x01\x03\x04\x00\x80\x00";
	static const char ident[] = "6191, 23\r\n";
	static const struct split_stream others[] = {
		{ldap, sizeof ldap - 1, sizeof ldap - 1},
		{ldap, sizeof ldap - 1, 1},
		{ident, sizeof ident - 1, sizeof ident - 1},
		{ident, sizeof ident - 1, 2},
	};
	for (size_t k = 0; k < sizeof others / sizeof others[0]; k++) {
		read_split(57, &others[k]);
		assert_int_not_equal(conn_request(57), 0);
		conn_forget(57);
	}
	assert_naming_back_after_recent_ends();
}

/* A request line a server may log as another request's (gunicorn
 * upper-cases "get"; lighttpd logs "GET http://host/same" as "GET /same",
 * a format of the path alone "/x/../same" and "/%73ame" so too)
 * names no request while it lives, nor for RECENT_REQUESTS ends after: the
 * victim's line would name the victim for the attacker's logged line. */
static void test_request_line_logged_otherwise_keeps_lines_unnamed(void **state)
{
	(void)state;
	static const char *const forms[] = {
		"get /same%zu HTTP/1.1\r\n\r\n",
		"GET http://host/same%zu HTTP/1.1\r\n\r\n",
		"GET /same%zu#part HTTP/1.1\r\n\r\n",
		"GET /x/../same%zu HTTP/1.1\r\n\r\n",
		"GET /%%73ame%zu HTTP/1.1\r\n\r\n",
	};
	/* each form against a victim of its own: a line seen twice names
	 * nothing for good */
	for (size_t i = 0; i < sizeof forms / sizeof forms[0]; i++) {
		char line[64], victim[96], form[64];
		snprintf(line, sizeof line, "192.0.2.1 \"GET /same%zu HTTP/1.1\" 200", i);
		snprintf(victim, sizeof victim, "GET /same%zu HTTP/1.1\r\nX-Request-ID: victim\r\n\r\n",
			 i);
		snprintf(form, sizeof form, forms[i], i);
		conn_open(52);
		hook_read(52, conn_generation(52), victim, NULL, strlen(victim));
		assert_int_equal(request_named_by(line, strlen(line)), conn_request(52));
		conn_open(53);
		hook_read(53, conn_generation(53), form, NULL, strlen(form));
		assert_int_not_equal(conn_request(53), 0);
		assert_int_equal(request_named_by(line, strlen(line)), 0);
		hook_wrote(53, &began);
		conn_forget(53);
		assert_int_equal(request_named_by(line, strlen(line)), 0);
		hook_wrote(52, &began);
		conn_forget(52);
		assert_naming_back_after_recent_ends();
	}
}

/* A request whose header value holds a request line (a forged
 * User-Agent): a server that logs that header quotes it, and the line would
 * name the request that really has that line. No line names a request
 * while such a request lives, nor for RECENT_REQUESTS ends after, whether
 * its head comes in one read or byte by byte; a header with a '/' but no
 * "HTTP/" (curl/8.0, text/html) changes nothing. */
static void test_request_line_in_a_header_keeps_lines_unnamed(void **state)
{
	(void)state;
	static const char line[] = "ua=\"GET /same HTTP/1.1\" 200";
	static const char victim[] = "GET /same HTTP/1.1\r\nX-Request-ID: victim\r\n\r\n";
	static const char plain[] =
		"GET /other HTTP/1.1\r\nUser-Agent: curl/8.0\r\nAccept: text/html\r\n\r\n";
	static const char forged[] =
		"GET /other HTTP/1.1\r\nUser-Agent: GET /same HTTP/1.1\r\n\r\n";
	conn_open(52);
	hook_read(52, conn_generation(52), victim, NULL, sizeof victim - 1);
	conn_open(53);
	hook_read(53, conn_generation(53), plain, NULL, sizeof plain - 1);
	assert_int_equal(request_named_by(line, sizeof line - 1), conn_request(52));
	hook_wrote(53, &began);
	conn_forget(53);
	for (int bytewise = 0; bytewise < 2; bytewise++) {
		conn_open(53);
		if (bytewise)
			for (size_t i = 0; i < sizeof forged - 1; i++)
				hook_read(53, conn_generation(53), forged + i, NULL, 1);
		else
			hook_read(53, conn_generation(53), forged, NULL, sizeof forged - 1);
		assert_int_not_equal(conn_request(53), 0);
		assert_int_equal(request_named_by(line, sizeof line - 1), 0);
		hook_wrote(53, &began);
		conn_forget(53);
		assert_int_equal(request_named_by(line, sizeof line - 1), 0);
		assert_naming_back_after_recent_ends();
		assert_int_equal(request_named_by(line, sizeof line - 1), conn_request(52));
	}
	hook_wrote(52, &began);
	conn_forget(52);
}

/* Behind a load balancer speaking the PROXY protocol (REQID_PROXY_PROTOCOL)
 * the header comes first: skipped, the requests after it are the
 * connection's (their ids, their request lines named), in one read with it
 * or after it, over an iovec, before a TLS handshake too; one header only
 * (a second is the client's, and the server's bad request); a header cut
 * short in the first read loses the stream, and so does any header when
 * the program is not said to read one (it may answer the header as a bad
 * request, and the request after it is then none it serves). */
static void test_proxy_header_before_requests(void **state)
{
	(void)state;
	shim.config.proxy_protocol = true;
	static const char v1[] = "PROXY TCP4 192.0.2.1 192.0.2.2 56324 80\r\n";
	static const char req[] = "GET /lb HTTP/1.1\r\nX-Request-ID: behind-lb\r\n\r\n";
	char both[256];
	int len = snprintf(both, sizeof(both), "%s%s", v1, req);
	conn_open(5);
	hook_read(5, conn_generation(5), both, NULL, (size_t)len);
	assert_string_equal(id_on(5), "behind-lb");
	assert_true(naming_on());
	static const char line[] = "- \"GET /lb HTTP/1.1\" 200";
	assert_int_equal(request_named_by(line, sizeof line - 1), conn_request(5));
	hook_wrote(5, &began);
	request_on(5, "second");
	assert_string_equal(id_on(5), "second");
	conn_forget(5);

	conn_open(5); /* the header alone first */
	hook_read(5, conn_generation(5), v1, NULL, sizeof v1 - 1);
	assert_int_equal(conn_request(5), 0);
	hook_read(5, conn_generation(5), req, NULL, sizeof req - 1);
	assert_string_equal(id_on(5), "behind-lb");
	conn_forget(5);

	conn_open(5); /* over an iovec, the header split between entries */
	struct iovec parts[3] = {{NULL, 0}, {both, 10}, {both + 10, (size_t)len - 10}};
	hook_read(5, conn_generation(5), NULL, parts, (size_t)len);
	assert_int_equal(conn_request(5), 0); /* cut short in the first entry: lost */
	assert_false(naming_on());
	conn_forget(5);
	parts[1].iov_base = both; /* the header and the request's first bytes */
	parts[1].iov_len = sizeof v1 - 1 + 3;
	parts[2].iov_base = both + sizeof v1 - 1 + 3;
	parts[2].iov_len = (size_t)len - (sizeof v1 - 1 + 3);
	conn_open(5);
	hook_read(5, conn_generation(5), NULL, parts, (size_t)len);
	assert_string_equal(id_on(5), "behind-lb");
	conn_forget(5);

	conn_open(6); /* then TLS */
	char hello[128];
	memcpy(hello, v1, sizeof v1 - 1);
	memcpy(hello + sizeof v1 - 1, client_hello, sizeof client_hello - 1);
	assert_int_equal(hook_read(6, conn_generation(6), hello,
				      NULL, sizeof v1 - 1 + sizeof client_hello - 1),
			 CONN_READ_TLS);
	assert_true(conn_is_tls(6));
	conn_forget(6);
	assert_naming_back_after_recent_ends();

	conn_open(5); /* a second header, after the first came alone: lost */
	hook_read(5, conn_generation(5), v1, NULL, sizeof v1 - 1);
	hook_read(5, conn_generation(5), both, NULL, (size_t)len);
	assert_int_equal(conn_request(5), 0);
	conn_forget(5);
	assert_naming_back_after_recent_ends();
	conn_open(5); /* a header read a byte at a time: lost, not one id for all */
	for (int i = 0; i < len; i++)
		hook_read(5, conn_generation(5), both + i, NULL, 1);
	assert_int_equal(conn_request(5), 0);
	assert_int_equal(conn_entry(5)->kind, CONN_DONE);
	conn_forget(5);

	shim.config.proxy_protocol = false;
	conn_open(5);
	hook_read(5, conn_generation(5), both, NULL, (size_t)len);
	assert_int_equal(conn_request(5), 0);
	assert_false(naming_on());
	conn_forget(5);
	conn_open(5);
	hook_read(5, conn_generation(5), v1, NULL, sizeof v1 - 1);
	hook_read(5, conn_generation(5), req, NULL, sizeof req - 1);
	assert_int_equal(conn_request(5), 0);
	conn_forget(5);
	assert_naming_back_after_recent_ends();
}

/* TLS records moved outside a hooked library's call (conn_tls_unseen, from
 * the socket hooks) may be decrypted by a library the shim does not hook:
 * lines stay unnamed until a hooked call on the connection, or its close.
 * Records a hooked call moves (the first read inside SSL_accept) do not
 * blind it. */
static void test_tls_records_unseen_until_read(void **state)
{
	(void)state;
	conn_open(5);
	assert_int_equal(hook_read(5, conn_generation(5), client_hello, NULL,
				      sizeof client_hello - 1),
			 CONN_READ_TLS);
	assert_true(naming_on()); /* inside a hooked call: nothing more */
	conn_tls_unseen(5);
	assert_false(naming_on());
	conn_tls_begin(5);
	assert_naming_back_after_recent_ends();
	conn_tls_unseen(5);
	assert_false(naming_on());
	conn_forget(5);
	assert_naming_back_after_recent_ends();
	conn_open(5);
	assert_false(conn_is_tls(5)); /* the entry of a TLS connection with no request */
	request_on(5, "plain");
	assert_string_equal(id_on(5), "plain");
	conn_forget(5);
	conn_open(6);
	static const char v2_hello[] = "\x80\x2e\x01\x03\x01";
	hook_read(6, conn_generation(6), v2_hello, NULL, sizeof v2_hello - 1);
	assert_false(naming_on()); /* not HTTP */
	conn_tls_begin(6); /* the handshake the first read did not know */
	assert_naming_back_after_recent_ends();
	conn_forget(6);
}

/* A joined connection's stream opens as another thread marks it lost: the
 * stream must end up counted (the opener clears its count, then looks at
 * lost again). One thread opens, the other marks as soon as it sees the
 * stream open; a round is wrong if the stream is lost and uncounted. */
#ifdef __SANITIZE_THREAD__
#define RACE_ROUNDS 5000
#else
#define RACE_ROUNDS 200000
#endif
static _Atomic long race_round;
static _Atomic long race_marked;

static void *race_loser(void *arg)
{
	struct conn *c = arg;
	for (long i = 1; i <= RACE_ROUNDS; i++) {
		while (atomic_load(&race_round) != i)
			;
		while (atomic_load_explicit(&c->join, memory_order_relaxed) != JOIN_OPEN)
			;
		conn_mark_lost(c);
		atomic_store(&race_marked, i);
	}
	return NULL;
}

static void test_loss_racing_a_joined_stream_opening(void **state)
{
	(void)state;
	static const char req[] = "GET / HTTP/1.1\r\n\r\n";
	pthread_t loser;
	conn_join(40, false);
	assert_int_equal(pthread_create(&loser, NULL, race_loser, conn_entry(40)), 0);
	long wrong = 0;
	for (long i = 1; i <= RACE_ROUNDS; i++) {
		conn_join(40, false);
		atomic_store(&conn_entry(40)->join, JOIN_AWAIT_REQUEST); /* a response ended */
		atomic_store(&race_round, i);
		hook_read(40, conn_generation(40), req, NULL, sizeof req - 1);
		while (atomic_load(&race_marked) != i)
			;
		struct conn *c = conn_entry(40);
		wrong += atomic_load(&c->lost) && !atomic_load(&c->blind);
		conn_forget(40);
	}
	assert_int_equal(pthread_join(loser, NULL), 0);
	assert_int_equal(wrong, 0);
	recent_ends_pass();
	assert_true(naming_on());
}

/* A loss marked after the connection closed (a reader that found the entry
 * locked) leaves the entry blind; detach zeroes the count and every flag,
 * so the entry's next connection takes the count below zero nowhere. */
static void test_detach_forgets_late_counts(void **state)
{
	(void)state;
	conn_open(30);
	conn_forget(30);
	conn_mark_lost(conn_entry(30));
	request_table_forget_all(); /* detach, in its order */
	request_table_release();
	fd_state_release();
	conn_open(30);
	assert_true(naming_on());
	conn_open(5);
	conn_lose(5);
	assert_false(naming_on());
	conn_forget(5);
	conn_forget(30);
	assert_naming_back_after_recent_ends();
}

/* Detach reads a chunk's entries only on pages that hold data: present
 * or swapped out (mincore would call a swapped page empty, and its flags
 * would outlive detach). A page never touched holds none. */
static void test_pages_held_are_present_or_swapped(void **state)
{
	(void)state;
	char *pages = mmap(NULL, 3 * PAGE_BYTES, PROT_READ | PROT_WRITE,
			   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	assert_true(pages != MAP_FAILED);
	pages[PAGE_BYTES] = 1;
	bool held[PAGES_HELD_MAX + 1];
	errno = EINTR;
	resident_pages_held(pages, 3, held);
	assert_int_equal(errno, EINTR);
	assert_false(held[0]);
	assert_true(held[1]);
	assert_false(held[2]);
	/* More than it can look at: every page counts as held. */
	resident_pages_held(pages, PAGES_HELD_MAX + 1, held);
	for (unsigned i = 0; i <= PAGES_HELD_MAX; i++)
		assert_true(held[i]);
	munmap(pages, 3 * PAGE_BYTES);
}

/* Attach: a connection marked for adoption may have had a request read past
 * the shim, whose line comes later; it is unseen until adopted, and then
 * unseen for good if joined mid-stream, seen if followed from its start,
 * and counted no more once closed or found not to be a connection. */
static void test_unadopted_connections_keep_lines_unnamed(void **state)
{
	(void)state;
	conn_unseen_until_adopted(12);
	assert_false(naming_on());
	conn_join(12, true);
	assert_naming_back_after_recent_ends();
	conn_forget(12);

	conn_unseen_until_adopted(12);
	conn_join(12, false);
	assert_false(naming_on());
	conn_adoption_dropped(12); /* a connection now: its count stays */
	assert_false(naming_on());
	conn_forget(12);
	assert_naming_back_after_recent_ends();

	conn_unseen_until_adopted(13);
	conn_adoption_dropped(13);
	assert_naming_back_after_recent_ends();
	conn_adoption_dropped(13); /* twice: no count taken twice */
	recent_ends_pass();
	assert_true(naming_on());
	conn_unseen_until_adopted(14);
	assert_false(naming_on());
	conn_open(14); /* its number taken by an accept the shim saw */
	assert_naming_back_after_recent_ends();
	conn_forget(14);
}

/* busybox httpd's dup2(conn, 0); close(conn) while a thread reads the copy:
 * a read that finds the entry held by the close moving it to the copy
 * loses the stream in whichever entry the copy ends with, so the copy
 * never keeps the request before the one read: its id is the new one or
 * none. */
#ifdef __SANITIZE_THREAD__ /* each round is a hand-off between threads: slow there */
#define MOVE_ROUNDS 2000
#else
#define MOVE_ROUNDS 100000
#endif
static _Atomic long move_round, move_read;

static void *move_reader(void *arg)
{
	(void)arg;
	char req[128];
	for (long i = 1; i <= MOVE_ROUNDS; i++) {
		while (atomic_load(&move_round) != i)
			;
		int len = snprintf(req, sizeof(req), "GET / HTTP/1.1\r\nX-Request-ID: new-%ld\r\n\r\n", i);
		hook_read(11, conn_generation(11), req, NULL, (size_t)len);
		atomic_store(&move_read, i);
	}
	return NULL;
}

static void test_read_while_the_holder_moves(void **state)
{
	(void)state;
	pthread_t reader;
	assert_int_equal(pthread_create(&reader, NULL, move_reader, NULL), 0);
	long kept_old = 0, lost = 0;
	char old[32], new[32];
	for (long i = 1; i <= MOVE_ROUNDS; i++) {
		snprintf(old, sizeof(old), "old-%ld", i);
		snprintf(new, sizeof(new), "new-%ld", i);
		conn_open(10);
		request_on(10, old);
		hook_wrote(10, &began);
		conn_copied(10, 11);
		atomic_store(&move_round, i);
		conn_forget(10);
		while (atomic_load(&move_read) != i)
			;
		const char *id = id_on(11);
		kept_old += strcmp(id, old) == 0;
		lost += *id == '\0';
		if (*id && strcmp(id, new) != 0 && strcmp(id, old) != 0)
			fail_msg("round %ld: id %s", i, id);
		conn_forget(11);
	}
	assert_int_equal(pthread_join(reader, NULL), 0);
	printf("read while the holder moves: %ld of %d lost, %ld kept the old id\n", lost,
	       MOVE_ROUNDS, kept_old);
	assert_int_equal(kept_old, 0);
}

/* The holder of a connection with two copies closes while another thread
 * closes one of the copies and accepts a new connection on its number:
 * whichever copy the connection moves to, the copy left open never takes
 * the new connection's request, and the new connection never the old
 * one's (a copy closed mid-move must not become the entry the other names). */
#ifdef __SANITIZE_THREAD__
#define HEIR_ROUNDS 2000
#else
#define HEIR_ROUNDS 20000
#endif
static _Atomic long heir_round, heir_closed_round;

static void *heir_closer(void *arg)
{
	(void)arg;
	char id[32];
	for (long i = 1; i <= HEIR_ROUNDS; i++) {
		while (atomic_load(&heir_round) != i)
			;
		int fd = i % 2 ? 41 : 42;
		conn_forget(fd);
		conn_open(fd);
		snprintf(id, sizeof(id), "x-%ld", i);
		request_on(fd, id);
		atomic_store(&heir_closed_round, i);
	}
	return NULL;
}

static void test_copy_closes_while_the_holder_moves(void **state)
{
	(void)state;
	pthread_t closer;
	assert_int_equal(pthread_create(&closer, NULL, heir_closer, NULL), 0);
	long kept = 0;
	char old[32], new[32], got[REQUEST_ID_MAX + 1];
	for (long i = 1; i <= HEIR_ROUNDS; i++) {
		int reopened = i % 2 ? 41 : 42, other = i % 2 ? 42 : 41;
		snprintf(old, sizeof(old), "h-%ld", i);
		snprintf(new, sizeof(new), "x-%ld", i);
		conn_open(40);
		request_on(40, old);
		conn_copied(40, 41);
		conn_copied(40, 42);
		atomic_store(&heir_round, i);
		conn_forget(40);
		while (atomic_load(&heir_closed_round) != i)
			;
		size_t len = request_table_get(conn_request(other), got);
		got[len] = '\0';
		if (len && strcmp(got, old) != 0)
			fail_msg("round %ld: the copy left open has %s", i, got);
		kept += len != 0;
		len = request_table_get(conn_request(reopened), got);
		got[len] = '\0';
		if (len && strcmp(got, new) != 0)
			fail_msg("round %ld: the new connection has %s", i, got);
		conn_forget(41);
		conn_forget(42);
	}
	assert_int_equal(pthread_join(closer, NULL), 0);
	printf("copy closed while the holder moves: %ld of %d kept the request\n", kept,
	       HEIR_ROUNDS);
}

#define STRESS_OWNERS 4
#define STRESS_ROUNDS 3000 /* per owner */
#define STRESS_SHARED 2    /* numbers closed and reopened under their server */

/* Owner o serves numbers 100 + o and 200000 + o (a high page), copies each
 * every fourth request onto 300 + o or 400000 + o and closes the holder.
 * Numbers 50 and 100000 are opened, read and closed by a server of their
 * own at full speed. */
static const int shared_fds[STRESS_SHARED] = {50, 100000};
static _Atomic bool stress_done;
static _Atomic unsigned stress_wrong;

/* The id a request on fd carries: f<fd>-<who>-<n>. */
static void stress_request(int fd, const char *who, unsigned n)
{
	char id[64];
	snprintf(id, sizeof(id), "f%d-%s-%u", fd, who, n);
	request_on(fd, id);
}

/* Whether id names a request on fd. */
static bool stress_id_of(int fd, const char *id)
{
	char prefix[16];
	int len = snprintf(prefix, sizeof(prefix), "f%d-", fd);
	return strncmp(id, prefix, (size_t)len) == 0;
}

static const char *stress_id(int fd, char out[REQUEST_ID_MAX + 1])
{
	size_t len = request_table_get(conn_request(fd), out);
	out[len] = '\0';
	return out;
}

static void *stress_owner(void *arg)
{
	unsigned o = (unsigned)(uintptr_t)arg;
	const int fds[2] = {100 + (int)o, 200000 + (int)o}, copies[2] = {300 + (int)o, 400000 + (int)o};
	char who[8], got[REQUEST_ID_MAX + 1], want[64];
	snprintf(who, sizeof(who), "o%u", o);
	for (unsigned n = 0; n < STRESS_ROUNDS; n++) {
		int fd = fds[n % 2], copy = copies[n % 2];
		conn_open(fd);
		stress_request(fd, who, n);
		snprintf(want, sizeof(want), "f%d-%s-%u", fd, who, n);
		if (strcmp(stress_id(fd, got), want) != 0)
			atomic_fetch_add(&stress_wrong, 1);
		if (n % 4 == 3) { /* dup2(fd, copy); close(fd): the copy serves on */
			conn_copied(fd, copy);
			conn_forget(fd);
			if (strcmp(stress_id(copy, got), want) != 0)
				atomic_fetch_add(&stress_wrong, 1);
			hook_wrote(copy, &began);
			conn_forget(copy);
		} else {
			hook_wrote(fd, &began);
			conn_forget(fd);
		}
	}
	return NULL;
}

/* Opens, reads, answers and closes numbers 50 and 100000 in turn, a
 * request each time while the owners run, STRESS_ROUNDS at most: with the
 * owners' that is fewer than the request ring holds, so no request is
 * forgotten before its server looks it up. */
static void *stress_churner(void *arg)
{
	(void)arg;
	char got[REQUEST_ID_MAX + 1], want[64];
	for (unsigned n = 0; n < STRESS_ROUNDS && !atomic_load(&stress_done); n++) {
		int fd = shared_fds[n % STRESS_SHARED];
		conn_open(fd);
		stress_request(fd, "c", n);
		snprintf(want, sizeof(want), "f%d-c-%u", fd, n);
		if (strcmp(stress_id(fd, got), want) != 0)
			atomic_fetch_add(&stress_wrong, 1);
		hook_wrote(fd, &began);
		conn_forget(fd);
	}
	return NULL;
}

static void *stress_looker(void *arg)
{
	(void)arg;
	char got[REQUEST_ID_MAX + 1];
	const int all[] = {50, 100000, 100, 101, 102, 103, 200000, 200001, 200002, 200003,
			   300, 301, 302, 303, 400000, 400001, 400002, 400003};
	for (unsigned n = 0; !atomic_load(&stress_done); n++) {
		int fd = all[n % (sizeof(all) / sizeof(all[0]))];
		const char *id = stress_id(fd, got);
		if (*id && !stress_id_of(fd, id) && !stress_id_of(fd - 200, id) &&
		    !stress_id_of(fd - 200000, id))
			atomic_fetch_add(&stress_wrong, 1); /* another number's request */
	}
	return NULL;
}

static void test_stress_many_threads(void **state)
{
	(void)state;
	pthread_t owners[STRESS_OWNERS], others[3];
	void *(*const roles[3])(void *) = {stress_churner, stress_looker, stress_looker};
	for (unsigned i = 0; i < 3; i++)
		assert_int_equal(pthread_create(&others[i], NULL, roles[i], NULL), 0);
	for (unsigned o = 0; o < STRESS_OWNERS; o++)
		assert_int_equal(pthread_create(&owners[o], NULL, stress_owner, (void *)(uintptr_t)o), 0);
	for (unsigned o = 0; o < STRESS_OWNERS; o++)
		pthread_join(owners[o], NULL);
	atomic_store(&stress_done, true);
	for (unsigned i = 0; i < 3; i++)
		pthread_join(others[i], NULL);
	assert_int_equal(atomic_load(&stress_wrong), 0);
	/* Every owner's numbers are closed: no request on them, no copy left. */
	for (unsigned o = 0; o < STRESS_OWNERS; o++) {
		const int fds[4] = {100 + (int)o, 200000 + (int)o, 300 + (int)o, 400000 + (int)o};
		for (int k = 0; k < 4; k++) {
			assert_int_equal(fd_class(fds[k]), 0);
			assert_int_equal(conn_request(fds[k]), 0);
		}
	}
}

/* The reopener's closes of number 50, and their count when the stale reader
 * took 50's generation (STALE_NONE: it holds none). */
#define STALE_NONE UINT_MAX
static _Atomic unsigned stale_closes, stale_mark = STALE_NONE, stale_reads;
#define STALE_ROUNDS 5000

/* The reopener, 50 just opened, waits for the stale reader to take 50's
 * generation, and while it has closed 50 200 times since. */
static void stale_reader_keeps_up(void)
{
	unsigned mark;
	while ((mark = atomic_load(&stale_mark)) == STALE_NONE ||
	       atomic_load(&stale_closes) - mark >= 200)
		sched_yield();
}

/* Opens number 50, reads a request, answers it and closes it, STALE_ROUNDS
 * times, each server finding exactly its request. */
static void *stale_reopener(void *arg)
{
	(void)arg;
	char got[REQUEST_ID_MAX + 1], want[64];
	for (unsigned n = 0; n < STALE_ROUNDS; n++) {
		conn_open(shared_fds[0]);
		stale_reader_keeps_up();
		stress_request(shared_fds[0], "r", n);
		snprintf(want, sizeof(want), "f%d-r-%u", shared_fds[0], n);
		if (strcmp(stress_id(shared_fds[0], got), want) != 0)
			atomic_fetch_add(&stress_wrong, 1);
		hook_wrote(shared_fds[0], &began);
		conn_forget(shared_fds[0]);
		atomic_fetch_add(&stale_closes, 1);
	}
	atomic_store(&stress_done, true);
	return NULL;
}

/* A thread whose read on number 50 began before the reopener closed it
 * (once at least, and fewer than 200 times: the generation is a byte) and
 * returns a request once 50 is a connection again, while the reopener
 * serves it: the bytes must reach none of the connections. */
static void *stress_stale_reader(void *arg)
{
	(void)arg;
	char req[128];
	for (unsigned n = 0; !atomic_load(&stress_done); n++) {
		/* The read begins: its generation, taken with no close counted
		 * meanwhile (else it could be a later connection's, even the
		 * one being served when the wait below ends at once). */
		unsigned closes;
		uint8_t generation;
		do {
			closes = atomic_load(&stale_closes);
			generation = conn_generation(shared_fds[0]);
		} while (atomic_load(&stale_closes) != closes);
		atomic_store(&stale_mark, closes);
		while ((atomic_load(&stale_closes) < closes + 2 || !(fd_class(shared_fds[0]) & FD_CONN)) &&
		       !atomic_load(&stress_done))
			;
		if (atomic_load(&stress_done))
			break;
		atomic_fetch_add(&stale_reads, 1);
		int len = snprintf(req, sizeof(req), "GET / HTTP/1.1\r\nX-Request-ID: stale-%u\r\n\r\n", n);
		hook_read(shared_fds[0], generation, req, NULL, (size_t)len);
		atomic_store(&stale_mark, STALE_NONE);
	}
	return NULL;
}

static void test_stress_stale_reads(void **state)
{
	(void)state;
	atomic_store(&stress_done, false);
	atomic_store(&stress_wrong, 0);
	pthread_t threads[2];
	void *(*const roles[2])(void *) = {stale_reopener, stress_stale_reader};
	for (unsigned i = 0; i < 2; i++)
		assert_int_equal(pthread_create(&threads[i], NULL, roles[i], NULL), 0);
	for (unsigned i = 0; i < 2; i++)
		pthread_join(threads[i], NULL);
	assert_int_equal(atomic_load(&stress_wrong), 0);
	assert_true(atomic_load(&stale_reads) >= STALE_ROUNDS / 250);
	assert_int_equal(fd_class(shared_fds[0]), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup(test_request_follows_reads, setup),
		cmocka_unit_test_setup(test_request_pinned_until_answered, setup),
		cmocka_unit_test_setup(test_copy_names_the_same_connection, setup),
		cmocka_unit_test_setup(test_copy_takes_over_when_holder_closes, setup),
		cmocka_unit_test_setup(test_holder_looked_up_before_a_move_names_no_stranger, setup),
		cmocka_unit_test_setup(test_closing_a_copy_leaves_the_connection, setup),
		cmocka_unit_test_setup(test_busy_holder_drops_its_copies, setup),
		cmocka_unit_test_setup(test_busy_heir_entry_passes_the_connection_on, setup),
		cmocka_unit_test_setup(test_lost_connection_stays_lost_in_copies, setup),
		cmocka_unit_test_setup(test_heads_over_two_reads, setup),
		cmocka_unit_test_setup(test_head_text_follows_the_heir, setup),
		cmocka_unit_test_setup(test_closed_inside_a_head, setup),
		cmocka_unit_test_setup(test_late_read_after_the_head_moved, setup),
		cmocka_unit_test_setup(test_heir_gives_back_a_kept_slot, setup),
		cmocka_unit_test_setup(test_end_of_file_ends_an_answered_request, setup),
		cmocka_unit_test_setup(test_tls_records_are_not_requests, setup),
		cmocka_unit_test_setup(test_tls_begin_after_the_socket_gave_bytes, setup),
		cmocka_unit_test_setup(test_tls_not_http_is_lost, setup),
		cmocka_unit_test_setup(test_high_descriptors, setup),
		cmocka_unit_test_setup(test_copies_across_high_pages, setup),
		cmocka_unit_test_setup(test_read_begun_before_close_goes_nowhere, setup),
		cmocka_unit_test_setup(test_write_inside_leaves_next_connection_untracked, setup),
		cmocka_unit_test_setup(test_lost_stream_keeps_lines_unnamed, setup),
		cmocka_unit_test_setup(test_closed_unseen_stream_counts_a_while, setup),
		cmocka_unit_test_setup(test_a_line_seen_before_names_nothing, setup),
		cmocka_unit_test_setup(test_naming_paused, setup),
		cmocka_unit_test_setup(test_heir_gives_back_a_late_count, setup),
		cmocka_unit_test_setup(test_untracked_connections_keep_lines_unnamed, setup),
		cmocka_unit_test_setup(test_not_http_keeps_lines_unnamed, setup),
		cmocka_unit_test_setup(test_unparsed_http_is_lost_not_raw, setup),
		cmocka_unit_test_setup(test_gateway_protocol_is_lost_not_raw, setup),
		cmocka_unit_test_setup(test_request_line_logged_otherwise_keeps_lines_unnamed, setup),
		cmocka_unit_test_setup(test_request_line_in_a_header_keeps_lines_unnamed, setup),
		cmocka_unit_test_setup(test_proxy_header_before_requests, setup),
		cmocka_unit_test_setup(test_tls_records_unseen_until_read, setup),
		cmocka_unit_test_setup(test_loss_racing_a_joined_stream_opening, setup),
		cmocka_unit_test_setup(test_detach_forgets_late_counts, setup),
		cmocka_unit_test(test_pages_held_are_present_or_swapped),
		cmocka_unit_test_setup(test_unadopted_connections_keep_lines_unnamed, setup),
		cmocka_unit_test_setup(test_read_while_the_holder_moves, setup),
		cmocka_unit_test_setup(test_copy_closes_while_the_holder_moves, setup),
		cmocka_unit_test_setup(test_stress_many_threads, setup),
		cmocka_unit_test_setup(test_stress_stale_reads, setup),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
