/*
 * test_request_table.c - unit tests for shim/request_table.c: ids, request
 * lines and traces stored and read back by serial, in the slot itself or in
 * the long ring, exactly or not at all (once the request slot or the long
 * slot is reused); and log lines naming requests by the request line they
 * quote (an access log line): named while the request counts, also after it
 * ended until RECENT_REQUESTS more have ended, never when two counted
 * requests have the same request line, never by a line that only shares a
 * prefix, and still when two different request lines share a bucket in one
 * of the two tables; and no id at all, never a wrong one, while the rings
 * cannot be mapped.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "request_table.h"

/* Stores a request with id, request line and trace (NULL: none). */
static uint64_t add_line(const char *id, size_t len, const char *line, size_t line_len,
			 const struct trace_plan *trace)
{
	return request_table_add(id, len, line, line_len, request_line_buckets(line, line_len),
				 trace, NULL, 0, NULL);
}

/* Stores a request with id and request line and makes it count. */
static uint64_t start(const char *id, const char *line, uint32_t *buckets)
{
	uint64_t serial = add_line(id, strlen(id), line, strlen(line), NULL);
	assert_int_not_equal(serial, 0);
	*buckets = request_line_buckets(line, strlen(line));
	request_line_started(*buckets, serial);
	return serial;
}

/* An access log line quoting line; returns its length. */
static size_t access_log(const char *line, char log[256])
{
	int n = snprintf(log, 256, "127.0.0.1 - - [21/Nov/2026] \"%s\" 200 13", line);
	assert_in_range(n, 1, 255);
	return (size_t)n;
}

/* The request an access log line quoting line names. */
static uint64_t named(const char *line)
{
	char log[256];
	return request_named_by(log, access_log(line, log));
}

/* Whether an access log line quoting line names request serial. */
static bool named_in(uint64_t serial, const char *line)
{
	char log[256];
	return request_named_in(serial, log, access_log(line, log));
}

/* An id of n bytes, all valid id characters, different for each tag. */
static void id_of(char *out, size_t n, unsigned tag)
{
	static const char chars[] = "0123456789abcdefghijklmnopqrstuvwxyz"
				    "ABCDEFGHIJKLMNOPQRSTUVWXYZ._:-";
	for (size_t i = 0; i < n; i++)
		out[i] = chars[(i + tag) % (sizeof(chars) - 1)];
	out[n] = '\0';
}

/* "GET /<path> HTTP/1.1" of exactly n bytes (n > 14), its path tag
 * repeated. */
static void line_of(char *out, size_t n, char tag)
{
	memcpy(out, "GET /", 5);
	memset(out + 5, tag, n - 14);
	memcpy(out + n - 9, " HTTP/1.1", 10);
}

/* The sequence number a serial carries: one more for each slot the ring
 * went past, taken or passed over. */
static uint64_t sequence(uint64_t serial)
{
	return serial >> REQUEST_SLOT_BITS;
}

/* The serial of the request the ring gives sequence number seq when it has
 * all REQUEST_SLOTS slots and none is pinned (see full_ring). */
static uint64_t serial_at(uint64_t seq)
{
	return seq << REQUEST_SLOT_BITS | (seq & (REQUEST_SLOTS - 1));
}

/* Stores n requests with no request line, pinning them; returns the first. */
static uint64_t pinned_run(unsigned n, uint32_t pins[])
{
	uint64_t first = 0;
	for (unsigned i = 0; i < n; i++) {
		uint64_t s = request_table_add("p", 1, NULL, 0, 0, NULL, NULL, 0, &pins[i]);
		assert_int_not_equal(s, 0);
		first = first ? first : s;
	}
	return first;
}

static void unpin_all(unsigned n, const uint32_t pins[])
{
	for (unsigned i = 0; i < n; i++)
		request_unpin(pins[i]);
}

/* Grows the ring to all REQUEST_SLOTS slots, pinning more than half of
 * each size's slots on the way, and leaves none pinned: serials then
 * follow serial_at, a slot is shared every REQUEST_SLOTS sequence numbers
 * and a long slot every REQUEST_LONG_SLOTS. */
static int full_ring(void **state)
{
	(void)state;
	static uint32_t pins[REQUEST_SLOTS / 4 + 1];
	pinned_run(REQUEST_SLOTS / 4 + 1, pins);
	unpin_all(REQUEST_SLOTS / 4 + 1, pins);
	return 0;
}

/* After serial last, stores requests with no request line up to sequence
 * number seq, and there a long one (its id REQUEST_ID_MAX bytes): it takes
 * the long slot of the requests a multiple of REQUEST_LONG_SLOTS earlier.
 * Returns its serial. */
static uint64_t long_request_at(uint64_t last, uint64_t seq)
{
	char id[REQUEST_ID_MAX + 1], out[REQUEST_ID_MAX];
	while (sequence(last) + 1 < seq)
		last = request_table_add("f", 1, NULL, 0, 0, NULL, NULL, 0, NULL);
	id_of(id, REQUEST_ID_MAX, 'L');
	uint64_t serial = request_table_add(id, REQUEST_ID_MAX, NULL, 0, 0, NULL, NULL, 0, NULL);
	assert_int_equal(serial, serial_at(seq));
	assert_int_equal(request_table_get(serial, out), REQUEST_ID_MAX);
	assert_memory_equal(out, id, REQUEST_ID_MAX);
	return serial;
}

/* The generator traces are read with: plans with a given span id and no
 * new trace-id make nothing with it. */
static struct id_generator gen;

/* Ids 0-9a-f, all of them in each, lowercase as trace_ctx_from_plan makes
 * them. */
static const char all_digits_trace_id[] = "0123456789abcdeffedcba9876543210";
static const char all_digits_span_id[] = "a1b2c3d4e5f60789";

/* A plan for a trace with the trace-id and span id given. */
static struct trace_plan given_plan(const char *trace_id, const char *span_id, uint8_t flags)
{
	struct trace_plan p = {.flags = flags};
	memcpy(p.trace_id, trace_id, 32);
	trace_plan_give_span(&p, span_id);
	return p;
}

/* The trace a given_plan stands for. */
static struct trace_ctx given_trace(const char *trace_id, const char *span_id, uint8_t flags)
{
	struct trace_ctx t = {.flags = flags};
	memcpy(t.trace_id, trace_id, 32);
	memcpy(t.span_id, span_id, 16);
	return t;
}

/* Adds a request whose id is id, pinned with pin not NULL. */
static uint64_t add_pinned(const char *id, uint32_t *pin)
{
	uint64_t s = request_table_add(id, strlen(id), NULL, 0, 0, NULL, NULL, 0, pin);
	assert_int_not_equal(s, 0);
	return s;
}

static uint64_t add(const char *id)
{
	return add_pinned(id, NULL);
}

/* Whether request serial still reads back with id. */
static bool kept(uint64_t serial, const char *id)
{
	char out[REQUEST_ID_MAX];
	size_t n = request_table_get(serial, out);
	return n == strlen(id) && memcmp(out, id, n) == 0;
}

#define SLOT(serial) ((serial) & (REQUEST_SLOTS - 1))

/* The ring starts with REQUEST_RING_START slots: a request is kept for a
 * whole lap, and the next request after it takes its slot. Runs first: a
 * ring only grows. */
static void test_ring_starts_small(void **state)
{
	(void)state;
	uint64_t first = add("first");
	assert_int_equal(SLOT(first), sequence(first) % REQUEST_RING_START);
	for (unsigned i = 1; i < REQUEST_RING_START; i++)
		assert_int_equal(SLOT(add("n")), (sequence(first) + i) % REQUEST_RING_START);
	assert_true(kept(first, "first"));
	uint64_t next = add("next");
	assert_int_equal(SLOT(next), SLOT(first));
	assert_int_equal(sequence(next), sequence(first) + REQUEST_RING_START);
	assert_false(kept(first, "first"));
	assert_true(kept(next, "next"));
}

/* In a fork child (request_table_after_fork) the next request takes slot
 * 0, the one on the page the child writes anyway, skipping sequence
 * numbers to it; the requests before stay. Pinned by a connection of the
 * parent's, slot 0 is passed over as any pinned slot is. */
static void test_fork_child_request_in_slot_zero(void **state)
{
	(void)state;
	uint64_t parent = add("parent");
	assert_int_not_equal(SLOT(parent), 0);
	request_table_after_fork();
	uint64_t child = add("child");
	assert_int_equal(SLOT(child), 0);
	assert_int_equal(sequence(child) % REQUEST_RING_START, 0);
	assert_true(sequence(child) > sequence(parent));
	assert_true(kept(parent, "parent"));
	assert_true(kept(child, "child"));
	assert_int_equal(sequence(add("next")), sequence(child) + 1);
	uint64_t lap = 0;
	for (unsigned i = 0; i < REQUEST_RING_START - 1; i++)
		lap = add("lap");
	assert_int_equal(SLOT(lap), 0);
	assert_false(kept(child, "child"));
	uint32_t pin = 0;
	request_table_after_fork();
	uint64_t pinned = request_table_add("pinned", 6, NULL, 0, 0, NULL, NULL, 0, &pin);
	request_table_after_fork();
	uint64_t passing = add("passing");
	assert_int_equal(SLOT(pinned), 0);
	assert_int_equal(SLOT(passing), 1);
	assert_int_equal(sequence(passing), sequence(pinned) + REQUEST_RING_START + 1);
	assert_true(kept(pinned, "pinned"));
	request_unpin(pin);
}

/* A pinned request keeps its slot lap after lap while the requests after
 * it pass over it; given back, it goes when the ring next comes round. */
static void test_pinned_request_kept(void **state)
{
	(void)state;
	uint32_t pin;
	uint64_t pinned = add_pinned("pinned", &pin), neighbour = add("neighbour");
	assert_int_equal(pin, SLOT(pinned) + 1);
	for (unsigned i = 0; i < 3 * REQUEST_RING_START; i++)
		assert_int_not_equal(SLOT(add("n")), SLOT(pinned));
	assert_true(kept(pinned, "pinned"));
	assert_false(kept(neighbour, "neighbour"));
	request_unpin(pin);
	request_unpin(0);
	for (unsigned i = 0; i < REQUEST_RING_START; i++)
		add("n");
	assert_false(kept(pinned, "pinned"));
}

/* Half the slots pinned: the ring keeps its size. One more: it doubles,
 * and so on up to REQUEST_SLOTS. Every pinned request is kept all along. */
static void test_ring_grows_while_half_pinned(void **state)
{
	(void)state;
	static uint32_t pins[REQUEST_SLOTS / 4 + 1];
	static uint64_t serials[REQUEST_SLOTS / 4 + 1];
	unsigned n = 0;
	for (unsigned size = REQUEST_RING_START; size <= REQUEST_SLOTS; size *= 2) {
		uint64_t high = 0; /* the highest slot taken at this size */
		for (; n < size / 2 && n < REQUEST_SLOTS / 4 + 1; n++) {
			serials[n] = add_pinned("pinned", &pins[n]);
			high = SLOT(serials[n]) > high ? SLOT(serials[n]) : high;
		}
		for (unsigned i = 0; i < 2 * size; i++) {
			uint64_t slot = SLOT(add("n"));
			high = slot > high ? slot : high;
		}
		assert_int_equal(high, size - 1);
		if (size < REQUEST_SLOTS) {
			serials[n] = add_pinned("pinned", &pins[n]);
			n++;
		}
	}
	for (unsigned i = 0; i < n; i++)
		assert_true(kept(serials[i], "pinned"));
	unpin_all(n, pins);
}

/* At REQUEST_SLOTS slots, all pinned, a new request passes over
 * PINNED_SKIPS (64) of them and takes the next one: one pinned request is
 * lost, the new one has its id. */
static void test_all_pinned_takes_one(void **state)
{
	(void)state;
	static uint32_t pins[REQUEST_SLOTS];
	full_ring(state);
	uint64_t first = pinned_run(REQUEST_SLOTS, pins);
	uint64_t last = serial_at(sequence(first) + REQUEST_SLOTS - 1);
	assert_true(kept(last, "p"));
	uint64_t taken = add("taken");
	assert_int_equal(sequence(taken), sequence(last) + 65);
	assert_true(kept(taken, "taken"));
	unsigned lost = 0;
	for (uint64_t q = sequence(first); q <= sequence(last); q++)
		lost += !kept(serial_at(q), "p");
	assert_int_equal(lost, 1);
	assert_false(kept(serial_at(sequence(last) + 65 - REQUEST_SLOTS), "p"));
	unpin_all(REQUEST_SLOTS, pins);
	assert_int_equal(SLOT(add("free")), SLOT(sequence(taken) + 1));
}

/* A long request does not take the long slot of a pinned long request:
 * it passes over the slot that shares it. */
static void test_long_slot_of_pinned_request_kept(void **state)
{
	(void)state;
	char id[REQUEST_ID_MAX + 1], out[REQUEST_ID_MAX];
	full_ring(state);
	id_of(id, REQUEST_ID_MAX, 'P');
	uint32_t pin;
	uint64_t pinned = request_table_add(id, REQUEST_ID_MAX, NULL, 0, 0, NULL, NULL, 0, &pin);
	uint64_t last = pinned;
	while (sequence(last) + 1 < sequence(pinned) + REQUEST_LONG_SLOTS)
		last = add("f");
	id_of(id, REQUEST_ID_MAX, 'N');
	uint64_t newer = request_table_add(id, REQUEST_ID_MAX, NULL, 0, 0, NULL, NULL, 0, NULL);
	assert_int_equal(sequence(newer), sequence(pinned) + REQUEST_LONG_SLOTS + 1);
	assert_int_equal(request_table_get(newer, out), REQUEST_ID_MAX);
	assert_memory_equal(out, id, REQUEST_ID_MAX);
	id_of(id, REQUEST_ID_MAX, 'P');
	assert_int_equal(request_table_get(pinned, out), REQUEST_ID_MAX);
	assert_memory_equal(out, id, REQUEST_ID_MAX);
	request_unpin(pin);
}

static void test_ids_by_serial(void **state)
{
	(void)state;
	char out[REQUEST_ID_MAX];
	uint64_t a = request_table_add("abc", 3, NULL, 0, 0, NULL, NULL, 0, NULL);
	uint64_t b = request_table_add("defg", 4, NULL, 0, 0, NULL, NULL, 0, NULL);
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
	struct trace_plan t = given_plan("4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7", 3);
	struct trace_ctx want = given_trace("4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7", 3);
	struct trace_ctx got;
	char ts[TRACESTATE_MAX];
	uint64_t plain = request_table_add("p", 1, NULL, 0, 0, NULL, NULL, 0, NULL);
	uint64_t traced = request_table_add("t", 1, NULL, 0, 0, &t, "a=1,b=2", 7, NULL);
	assert_false(request_table_trace(plain, &gen, &got));
	assert_int_equal(request_table_tracestate(plain, ts), 0);
	assert_true(request_table_trace(traced, &gen, &got));
	assert_memory_equal(&got, &want, sizeof(want));
	assert_int_equal(request_table_tracestate(traced, ts), 7);
	assert_memory_equal(ts, "a=1,b=2", 7);
	/* A tracestate slot taken over by a newer request is not the old one's. */
	uint64_t later = traced;
	for (int i = 0; i < TRACESTATE_SLOTS; i++)
		later = request_table_add("n", 1, NULL, 0, 0, &t, "c=3", 3, NULL);
	assert_int_equal(request_table_tracestate(later, ts), 3);
	assert_int_equal(request_table_tracestate(traced, ts), 0);
	assert_true(request_table_trace(traced, &gen, &got));
	/* Once the request's own slot is reused it has no trace at all. */
	for (unsigned i = 0; i < REQUEST_SLOTS; i++)
		request_table_add("m", 1, NULL, 0, 0, NULL, NULL, 0, NULL);
	assert_false(request_table_trace(traced, &gen, &got));
}

/* An id and request line that together fill the slot's text are kept in
 * the slot: a long request that takes the long slot of the same serial
 * leaves them alone. One byte more and they go to the long ring, and are
 * gone when it does. */
static void test_inline_up_to_the_last_byte(void **state)
{
	(void)state;
	char fits_line[REQUEST_INLINE_TEXT], over_line[REQUEST_INLINE_TEXT], out[REQUEST_ID_MAX];
	uint32_t fits_buckets, over_buckets;
	line_of(fits_line, REQUEST_INLINE_TEXT - 5, 'i');
	line_of(over_line, REQUEST_INLINE_TEXT - 4, 'o');
	uint64_t fits = start("req-1", fits_line, &fits_buckets);
	uint64_t over = start("req-2", over_line, &over_buckets);
	assert_int_equal(request_table_get(fits, out), 5);
	assert_memory_equal(out, "req-1", 5);
	assert_true(named_in(fits, fits_line));
	assert_int_equal(named(fits_line), fits);
	assert_int_equal(request_table_get(over, out), 5);
	assert_memory_equal(out, "req-2", 5);
	assert_true(named_in(over, over_line));
	assert_int_equal(named(over_line), over);

	uint64_t last = long_request_at(over, sequence(fits) + REQUEST_LONG_SLOTS);
	assert_int_equal(request_table_get(fits, out), 5);
	assert_memory_equal(out, "req-1", 5);
	assert_true(named_in(fits, fits_line));
	assert_int_equal(request_table_get(over, out), 5);
	long_request_at(last, sequence(over) + REQUEST_LONG_SLOTS);
	assert_int_equal(request_table_get(over, out), 0);
	assert_false(named_in(over, over_line));
	assert_int_equal(named(over_line), 0);
	assert_int_equal(request_table_get(fits, out), 5);
	request_line_ended(fits_buckets);
	request_line_ended(over_buckets);
}

/* Ids from REQUEST_INLINE_TEXT bytes (the longest a slot holds alone) to
 * REQUEST_ID_MAX come back whole, alone or with a request line. */
static void test_long_ids(void **state)
{
	(void)state;
	static const size_t lengths[] = {REQUEST_INLINE_TEXT, REQUEST_INLINE_TEXT + 1, 100,
					 REQUEST_ID_MAX};
	char id[REQUEST_ID_MAX + 1], out[REQUEST_ID_MAX], line[REQUEST_LINE_MAX + 1];
	for (size_t i = 0; i < sizeof(lengths) / sizeof(lengths[0]); i++) {
		id_of(id, lengths[i], (unsigned)i);
		uint64_t alone = request_table_add(id, lengths[i], NULL, 0, 0, NULL, NULL, 0, NULL);
		assert_int_equal(request_table_get(alone, out), lengths[i]);
		assert_memory_equal(out, id, lengths[i]);
		assert_false(named_in(alone, "GET / HTTP/1.1"));

		uint32_t buckets;
		line_of(line, REQUEST_LINE_MAX - 1, (char)('a' + i));
		uint64_t with_line = start(id, line, &buckets);
		memset(out, 0, sizeof(out));
		assert_int_equal(request_table_get(with_line, out), lengths[i]);
		assert_memory_equal(out, id, lengths[i]);
		assert_true(named_in(with_line, line));
		assert_int_equal(named(line), with_line);
		request_line_ended(buckets);
	}
}

/* A request line too long for the slot is compared whole: a log line that
 * quotes another request line with the same first REQUEST_LINE_MAX - 2
 * bytes does not name it. A quoted request line of REQUEST_LINE_MAX bytes
 * or more names nothing, not the request whose line is its first bytes
 * (the parser keeps no more: conn_table.c keeps no line it may have cut). */
static void test_long_line_compared_whole(void **state)
{
	(void)state;
	char line[REQUEST_LINE_MAX + 1], other[REQUEST_LINE_MAX + 1], longer[128];
	char out[REQUEST_ID_MAX];
	uint32_t buckets;
	line_of(line, REQUEST_LINE_MAX - 1, 'w');
	memcpy(other, line, sizeof(other));
	other[REQUEST_LINE_MAX - 2] = '0'; /* HTTP/1.0 */
	uint64_t s = start("short", line, &buckets);
	assert_int_equal(request_table_get(s, out), 5);
	assert_memory_equal(out, "short", 5);
	assert_true(named_in(s, line));
	assert_int_equal(named(line), s);
	assert_false(named_in(s, other));
	assert_int_equal(named(other), 0);
	char prefix[REQUEST_LINE_MAX];
	memcpy(prefix, line, REQUEST_LINE_MAX - 2);
	prefix[REQUEST_LINE_MAX - 2] = '\0';
	assert_false(named_in(s, prefix));
	request_line_ended(buckets);

	line_of(longer, sizeof(longer) - 1, 'k');
	memcpy(line, longer, REQUEST_LINE_MAX);
	line[REQUEST_LINE_MAX] = '\0';
	uint64_t kept = start("kept", line, &buckets);
	assert_int_equal(named(longer), 0);
	assert_int_equal(named(line), 0);
	assert_true(kept != 0);
	request_line_ended(buckets);
}

/* Once a newer long request takes its long slot, nothing of a long request
 * is read: no id, no trace, no request line. A request whose id is its
 * trace-id is never long: the whole text is for its request line. */
static void test_long_slot_taken(void **state)
{
	(void)state;
	struct trace_plan t = given_plan(all_digits_trace_id, all_digits_span_id, TRACE_FLAG_SAMPLED);
	struct trace_ctx want = given_trace(all_digits_trace_id, all_digits_span_id,
					    TRACE_FLAG_SAMPLED);
	struct trace_ctx got;
	char id[REQUEST_ID_MAX + 1], line[REQUEST_LINE_MAX + 1], out[REQUEST_ID_MAX];
	char inline_line[REQUEST_LINE_MAX + 1];
	_Static_assert(REQUEST_INLINE_TEXT >= REQUEST_LINE_MAX, "a trace-id id is never long");
	id_of(id, 100, 'q');
	line_of(line, 40, 'l');
	line_of(inline_line, REQUEST_LINE_MAX - 1, 't');
	uint64_t with_long_id = add_line(id, 100, line, 40, &t);
	uint32_t long_id_buckets = request_line_buckets(line, 40);
	request_line_started(long_id_buckets, with_long_id);
	uint64_t with_inline_line = add_line(all_digits_trace_id, 32, inline_line,
					     REQUEST_LINE_MAX - 1, &t);
	uint32_t inline_buckets = request_line_buckets(inline_line, REQUEST_LINE_MAX - 1);
	request_line_started(inline_buckets, with_inline_line);

	/* Newer requests that are not long leave the long ring alone, up to
	 * the one before the first that shares with_long_id's long slot. */
	uint64_t last = with_inline_line;
	while (sequence(last) + 1 < sequence(with_long_id) + REQUEST_LONG_SLOTS)
		last = request_table_add("f", 1, NULL, 0, 0, NULL, NULL, 0, NULL);
	assert_int_equal(request_table_get(with_long_id, out), 100);
	assert_memory_equal(out, id, 100);
	assert_true(request_table_trace(with_long_id, &gen, &got));
	assert_memory_equal(&got, &want, sizeof(want));
	assert_true(named_in(with_long_id, line));

	last = long_request_at(last, sequence(with_long_id) + REQUEST_LONG_SLOTS);
	assert_int_equal(request_table_get(with_long_id, out), 0);
	assert_false(request_table_trace(with_long_id, &gen, &got));
	assert_false(named_in(with_long_id, line));
	assert_int_equal(named(line), 0);

	long_request_at(last, sequence(with_inline_line) + REQUEST_LONG_SLOTS);
	assert_int_equal(request_table_get(with_inline_line, out), 32);
	assert_memory_equal(out, all_digits_trace_id, 32);
	assert_true(request_table_trace(with_inline_line, &gen, &got));
	assert_memory_equal(&got, &want, sizeof(want));
	assert_true(named_in(with_inline_line, inline_line));
	assert_int_equal(named(inline_line), with_inline_line);
	request_line_ended(long_id_buckets);
	request_line_ended(inline_buckets);
}

/* Traces come back as they were stored, flags too; an id that is the
 * trace-id comes back as it was, one that only differs from it in case too
 * (it is kept as text). */
static void test_trace_round_trip(void **state)
{
	(void)state;
	static const uint8_t flags[] = {0x00, 0x01, 0x02, 0x03, 0x80, 0xa5, 0xff};
	struct trace_ctx got;
	char out[REQUEST_ID_MAX];
	for (size_t i = 0; i < sizeof(flags); i++) {
		struct trace_plan t = given_plan(all_digits_trace_id, all_digits_span_id, flags[i]);
		uint64_t s = add_line("id", 2, "GET / HTTP/1.1", 14, &t);
		memset(&got, 0, sizeof(got));
		assert_true(request_table_trace(s, &gen, &got));
		assert_memory_equal(got.trace_id, all_digits_trace_id, 32);
		assert_memory_equal(got.span_id, all_digits_span_id, 16);
		assert_int_equal(got.flags, flags[i]);
		assert_int_equal(request_table_get(s, out), 2);
		assert_memory_equal(out, "id", 2);
	}

	uint8_t both = TRACE_FLAG_SAMPLED | TRACE_FLAG_RANDOM;
	struct trace_plan t = given_plan(all_digits_trace_id, all_digits_span_id, both);
	struct trace_ctx want = given_trace(all_digits_trace_id, all_digits_span_id, both);
	uint64_t same = request_table_add(all_digits_trace_id, 32, NULL, 0, 0, &t, NULL, 0, NULL);
	assert_int_equal(request_table_get(same, out), 32);
	assert_memory_equal(out, all_digits_trace_id, 32);
	assert_true(request_table_trace(same, &gen, &got));
	assert_memory_equal(&got, &want, sizeof(want));
	static const char upper[] = "0123456789ABCDEFFEDCBA9876543210";
	uint64_t differs = request_table_add(upper, 32, NULL, 0, 0, &t, NULL, 0, NULL);
	assert_int_equal(request_table_get(differs, out), 32);
	assert_memory_equal(out, upper, 32);
	assert_true(request_table_trace(differs, &gen, &got));
	assert_memory_equal(&got, &want, sizeof(want));
}

/* A trace whose trace-id and span id are new is made when read: the same
 * at every read, and the same in a fork child, whose generator keeps the
 * key and moves its counter away. */
static void test_new_trace_made_when_read(void **state)
{
	(void)state;
	static const uint8_t key[16] = {7, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15};
	struct id_generator own;
	id_generator_seed(&own, key);
	struct trace_plan t;
	trace_plan_start(&t, NULL, "not-a-trace-id", 14, false, &own);
	uint64_t s = request_table_add("not-a-trace-id", 14, NULL, 0, 0, &t, NULL, 0, NULL);
	struct trace_ctx first, again, in_child, want;
	assert_true(request_table_trace(s, &own, &first));
	assert_true(request_table_trace(s, &own, &again));
	assert_memory_equal(&first, &again, sizeof(first));
	struct id_generator child = own;
	id_generator_after_fork(&child, 4242);
	assert_true(request_table_trace(s, &child, &in_child));
	assert_memory_equal(&first, &in_child, sizeof(first));
	struct id_generator fresh;
	id_generator_seed(&fresh, key);
	struct trace_plan same;
	trace_plan_start(&same, NULL, "not-a-trace-id", 14, false, &fresh);
	trace_ctx_from_plan(&want, &same, &fresh);
	assert_memory_equal(&first, &want, sizeof(first));
	char out[REQUEST_ID_MAX];
	assert_int_equal(request_table_get(s, out), 14);
	assert_memory_equal(out, "not-a-trace-id", 14);
}

/* A request whose slot a newer request has taken gives nothing, while the
 * newer one gives its own; a long request too, its long slot untouched. */
static void test_request_slot_reused(void **state)
{
	(void)state;
	struct trace_plan t = given_plan(all_digits_trace_id, all_digits_span_id, TRACE_FLAG_SAMPLED);
	struct trace_ctx got;
	char id[REQUEST_ID_MAX + 1], out[REQUEST_ID_MAX];
	uint32_t short_buckets, long_buckets;
	id_of(id, REQUEST_ID_MAX, 'r');
	uint64_t short_one = add_line("old", 3, "GET /old HTTP/1.1", 17, &t);
	short_buckets = request_line_buckets("GET /old HTTP/1.1", 17);
	request_line_started(short_buckets, short_one);
	uint64_t long_one = add_line(id, REQUEST_ID_MAX, "GET /old/long HTTP/1.1", 22, &t);
	long_buckets = request_line_buckets("GET /old/long HTTP/1.1", 22);
	request_line_started(long_buckets, long_one);
	assert_true(named_in(short_one, "GET /old HTTP/1.1"));
	assert_true(named_in(long_one, "GET /old/long HTTP/1.1"));

	uint64_t newer = 0;
	for (unsigned i = 0; i < REQUEST_SLOTS; i++)
		newer = request_table_add("new", 3, NULL, 0, 0, NULL, NULL, 0, NULL);
	assert_int_equal(newer, serial_at(sequence(long_one) + REQUEST_SLOTS));
	assert_int_equal(request_table_get(short_one, out), 0);
	assert_false(request_table_trace(short_one, &gen, &got));
	assert_false(named_in(short_one, "GET /old HTTP/1.1"));
	assert_int_equal(named("GET /old HTTP/1.1"), 0);
	assert_int_equal(request_table_get(long_one, out), 0);
	assert_false(request_table_trace(long_one, &gen, &got));
	assert_false(named_in(long_one, "GET /old/long HTTP/1.1"));
	assert_int_equal(request_table_get(serial_at(sequence(short_one) + REQUEST_SLOTS), out), 3);
	assert_memory_equal(out, "new", 3);
	assert_int_equal(request_table_get(newer, out), 3);
	assert_memory_equal(out, "new", 3);
	assert_false(request_table_trace(newer, &gen, &got));
	request_line_ended(short_buckets);
	request_line_ended(long_buckets);
}

/* Writers storing requests of every shape while readers read them back:
 * a reader gets a request's own id and trace or nothing, never a torn one
 * or another request's. */
#define STRESS_WRITERS 2
#define STRESS_READERS 2
#define STRESS_REQUESTS 60000 /* per writer: the rings wrap several times */
#define STRESS_ISSUED (1 << 18)
#define STRESS_READS_AFTER 1000 /* by each reader once the writers are done */

/* By sequence % STRESS_ISSUED: sequence << 20 | writer << 19 | request. */
static _Atomic uint64_t stress_issued[STRESS_ISSUED];
static _Atomic uint64_t stress_newest;
static _Atomic bool stress_done;
static _Atomic unsigned stress_pinned_lost; /* pinned requests not read back */

/* The id and trace writer w gives its request i (the trace's plan in
 * plan, itself in t): ids of 20 to 128 bytes (every seventh the trace-id),
 * request lines of 15 to 96 bytes. */
static size_t stress_request(unsigned w, unsigned i, char id[REQUEST_ID_MAX + 1],
			     char line[REQUEST_LINE_MAX + 1], struct trace_plan *plan,
			     struct trace_ctx *t)
{
	static const char hex[] = "0123456789abcdef";
	*t = given_trace(all_digits_trace_id, all_digits_span_id, (uint8_t)i);
	for (int k = 0; k < 8; k++)
		t->trace_id[k] = hex[(i >> (4 * k)) & 15];
	t->span_id[0] = hex[w];
	*plan = given_plan(t->trace_id, t->span_id, t->flags);
	line_of(line, 15 + i % 82, (char)('a' + i % 26));
	if (i % 7 == 0) {
		memcpy(id, t->trace_id, 32);
		return 32;
	}
	size_t len = 20 + i % 109;
	char prefix[16];
	int prefix_len = snprintf(prefix, sizeof(prefix), "w%u-%u-", w, i);
	id_of(id, len, i);
	memcpy(id, prefix, (size_t)prefix_len);
	return len;
}

static void *stress_writer(void *arg)
{
	unsigned w = (unsigned)(uintptr_t)arg;
	char id[REQUEST_ID_MAX + 1], line[REQUEST_LINE_MAX + 1];
	struct trace_plan plan;
	struct trace_ctx t;
	for (unsigned i = 0; i < STRESS_REQUESTS; i++) {
		size_t len = stress_request(w, i, id, line, &plan, &t);
		/* Every fourth is pinned, as a connection's current request is,
		 * and must read back whole however the other threads run. */
		uint32_t pin = 0;
		uint64_t serial = request_table_add(id, len, line, strlen(line),
						    request_line_buckets(line, strlen(line)), &plan,
						    NULL, 0, i % 4 ? NULL : &pin);
		atomic_store(&stress_issued[sequence(serial) % STRESS_ISSUED],
			     sequence(serial) << 20 | w << 19 | i);
		atomic_store(&stress_newest, sequence(serial));
		if (i % 4 == 0) {
			char got[REQUEST_ID_MAX];
			if (request_table_get(serial, got) != len || memcmp(got, id, len) != 0)
				atomic_fetch_add(&stress_pinned_lost, 1);
			request_unpin(pin);
		}
	}
	return NULL;
}

/* What a reader saw: cmocka's assertions belong to the test's thread. */
struct stress_reads {
	uint64_t whole; /* ids and traces read back exactly */
	uint64_t wrong; /* ids or traces read back otherwise */
};

static void stress_count(struct stress_reads *reads, bool whole)
{
	reads->whole += whole;
	reads->wrong += !whole;
}

/* Reads one of the requests whose slots the writers are taking now. */
static void stress_read(struct stress_reads *reads, uint64_t *random)
{
	char id[REQUEST_ID_MAX + 1], line[REQUEST_LINE_MAX + 1], out[REQUEST_ID_MAX];
	struct trace_plan plan;
	struct trace_ctx t, got;
	*random ^= *random << 13, *random ^= *random >> 7, *random ^= *random << 17;
	uint64_t ring = *random & 1 ? REQUEST_SLOTS : REQUEST_LONG_SLOTS;
	uint64_t seq = atomic_load(&stress_newest) + (*random >> 1) % 8 - ring;
	uint64_t issued = atomic_load(&stress_issued[seq % STRESS_ISSUED]);
	if (issued >> 20 != seq)
		return;
	uint64_t serial = serial_at(seq);
	size_t len = stress_request(issued >> 19 & 1, issued & 0x7ffff, id, line, &plan, &t);
	size_t got_len = request_table_get(serial, out);
	if (got_len)
		stress_count(reads, got_len == len && memcmp(out, id, len) == 0);
	if (request_table_trace(serial, &gen, &got))
		stress_count(reads, memcmp(&got, &t, sizeof(t)) == 0);
}

static void *stress_reader(void *arg)
{
	uint64_t random = 88172645463325252u;
	while (!atomic_load(&stress_done))
		stress_read(arg, &random);
	/* Then, however few reads the writers left it time for, a few that
	 * find most requests whole: none newer takes their slots. */
	for (int i = 0; i < STRESS_READS_AFTER; i++)
		stress_read(arg, &random);
	return NULL;
}

/* Detach forgets every request and empties the ring; a later attach adds
 * requests into slots that read as zeroes however many came before, and
 * finds them, in a ring of REQUEST_RING_START slots again, none pinned
 * (a pin given back late, after the release, takes no count below zero). */
static void test_ring_after_release(void **state)
{
	(void)state;
	char out[REQUEST_ID_MAX];
	uint64_t before = 0;
	uint32_t late;
	for (unsigned i = 0; i < REQUEST_SLOTS + 4; i++)
		request_table_add("before", 6, NULL, 0, 0, NULL, NULL, 0, NULL);
	before = request_table_add("before", 6, NULL, 0, 0, NULL, NULL, 0, &late);
	request_table_forget_all();
	request_table_release();
	request_unpin(late);
	assert_int_equal(request_table_get(before, out), 0);
	for (unsigned i = 0; i < 2 * REQUEST_SLOTS; i++) {
		uint64_t after = request_table_add("after", 5, NULL, 0, 0, NULL, NULL, 0, NULL);
		assert_int_equal(sequence(after), sequence(before) + 1 + i);
		assert_int_equal(after & (REQUEST_SLOTS - 1), sequence(after) % REQUEST_RING_START);
		assert_int_equal(request_table_get(after, out), 5);
		assert_memory_equal(out, "after", 5);
	}
}

static void test_concurrent_readers_get_whole_requests(void **state)
{
	(void)state;
	pthread_t writers[STRESS_WRITERS], readers[STRESS_READERS];
	struct stress_reads reads[STRESS_READERS] = {0};
	for (int r = 0; r < STRESS_READERS; r++)
		assert_int_equal(pthread_create(&readers[r], NULL, stress_reader, &reads[r]), 0);
	for (uintptr_t w = 0; w < STRESS_WRITERS; w++)
		assert_int_equal(pthread_create(&writers[w], NULL, stress_writer, (void *)w), 0);
	for (int w = 0; w < STRESS_WRITERS; w++)
		pthread_join(writers[w], NULL);
	atomic_store(&stress_done, true);
	for (int r = 0; r < STRESS_READERS; r++) {
		pthread_join(readers[r], NULL);
		assert_int_equal(reads[r].wrong, 0);
		assert_true(reads[r].whole > 0);
	}
	assert_int_equal(atomic_load(&stress_pinned_lost), 0);
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

/* A line quoting two request lines (its own, and a client's header made to
 * look like another request's) names neither, whichever comes first; one
 * shaped like a request line but not one (no version) does not count. */
static void test_two_quoted_request_lines_name_none(void **state)
{
	(void)state;
	uint32_t b1, b2;
	uint64_t victim = start("victim", "GET /victim HTTP/1.1", &b1);
	uint64_t own = start("own", "GET /own HTTP/1.1", &b2);
	char log[256];
	strcpy(log, "ua=\"GET /victim HTTP/1.1\" req=\"GET /own HTTP/1.1\" 200");
	assert_int_equal(request_named_by(log, strlen(log)), 0);
	strcpy(log, "\"GET /own HTTP/1.1\"\"GET /victim HTTP/1.1\"");
	assert_int_equal(request_named_by(log, strlen(log)), 0);
	strcpy(log, "ua=\"GET /victim\" req=\"GET /own HTTP/1.1\" 200");
	assert_int_equal(request_named_by(log, strlen(log)), own);
	strcpy(log, "ua=\"GET /victim HTTP/1.1\" path=/own 200");
	assert_int_equal(request_named_by(log, strlen(log)), victim);
}

/* A format that writes its own request line bare and quotes a header. */
static void test_bare_request_line_beside_a_quoted_one_names_none(void **state)
{
	(void)state;
	uint32_t b1, b2;
	uint64_t victim = start("victim2", "GET /victim2 HTTP/1.1", &b1);
	start("own2", "GET /own2 HTTP/1.1", &b2);
	char log[256];
	strcpy(log, "ua=\"GET /victim2 HTTP/1.1\" req=[GET /own2 HTTP/1.1] 200");
	assert_int_equal(request_named_by(log, strlen(log)), 0);
	strcpy(log, "GET /own2 HTTP/1.1 ua=\"GET /victim2 HTTP/1.1\"");
	assert_int_equal(request_named_by(log, strlen(log)), 0);
	strcpy(log, "ua=\"GET /victim2 HTTP/1.1\" PROPFIND /own2 HTTP/1.0");
	assert_int_equal(request_named_by(log, strlen(log)), 0);
	/* Not request lines: a protocol field, a version inside a target, a
	 * method too long, a version that ends the line early. */
	strcpy(log, "\"GET /victim2 HTTP/1.1\" HTTP/1.1 200");
	assert_int_equal(request_named_by(log, strlen(log)), victim);
	strcpy(log, "\"GET /victim2 HTTP/1.1\" x /a?v=HTTP/1.1 200");
	assert_int_equal(request_named_by(log, strlen(log)), victim);
	strcpy(log, "\"GET /victim2 HTTP/1.1\" "
		    "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA /own2 HTTP/1.1");
	assert_int_equal(request_named_by(log, strlen(log)), victim);
	strcpy(log, "\"GET /victim2 HTTP/1.1\" GET /own2 HTTP/1.");
	assert_int_equal(request_named_by(log, strlen(log)), victim);
	strcpy(log, "\"GET /victim2 HTTP/1.1\" -/own2 HTTP/1.1");
	assert_int_equal(request_named_by(log, strlen(log)), victim);
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

/* The rings are mapped by the first request: while the process may map
 * no more (its address space limit), a request gets no serial and no pin,
 * and nothing is found; once it may, requests are stored. Runs first, the
 * rings unmapped. */
static void test_no_rings_no_id(void **state)
{
	(void)state;
	struct rlimit was;
	assert_int_equal(getrlimit(RLIMIT_AS, &was), 0);
	unsigned long pages;
	FILE *statm = fopen("/proc/self/statm", "r");
	assert_non_null(statm);
	assert_int_equal(fscanf(statm, "%lu", &pages), 1);
	fclose(statm);
	/* 1 MiB more than the process has now: the rings take 5 MiB. */
	struct rlimit tight = {pages * (unsigned long)sysconf(_SC_PAGESIZE) + (1u << 20), was.rlim_max};
	assert_int_equal(setrlimit(RLIMIT_AS, &tight), 0);
	uint32_t pin = 7;
	const char *line = "GET /unmapped HTTP/1.1";
	uint32_t buckets = request_line_buckets(line, strlen(line));
	uint64_t serial = request_table_add("abc", 3, line, strlen(line), buckets, NULL, NULL, 0, &pin);
	char out[REQUEST_ID_MAX];
	size_t got = request_table_get(serial_at(1), out);
	uint64_t by_line = named(line);
	request_tables_ready();
	uint64_t after_ready = request_table_add("abc", 3, NULL, 0, 0, NULL, NULL, 0, NULL);
	assert_int_equal(setrlimit(RLIMIT_AS, &was), 0);
	assert_int_equal(serial, 0);
	assert_int_equal(pin, 0);
	assert_int_equal(got, 0);
	assert_int_equal(by_line, 0);
	assert_int_equal(after_ready, 0);
	uint64_t stored = request_table_add("abc", 3, NULL, 0, 0, NULL, NULL, 0, NULL);
	assert_int_not_equal(stored, 0);
	assert_int_equal(request_table_get(stored, out), 3);
	assert_memory_equal(out, "abc", 3);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_no_rings_no_id),
		cmocka_unit_test(test_ring_starts_small),
		cmocka_unit_test(test_fork_child_request_in_slot_zero),
		cmocka_unit_test(test_pinned_request_kept),
		cmocka_unit_test(test_ring_grows_while_half_pinned),
		cmocka_unit_test(test_all_pinned_takes_one),
		cmocka_unit_test(test_long_slot_of_pinned_request_kept),
		cmocka_unit_test(test_ids_by_serial),
		cmocka_unit_test_setup(test_trace_and_tracestate, full_ring),
		cmocka_unit_test_setup(test_inline_up_to_the_last_byte, full_ring),
		cmocka_unit_test(test_long_ids),
		cmocka_unit_test(test_long_line_compared_whole),
		cmocka_unit_test_setup(test_long_slot_taken, full_ring),
		cmocka_unit_test(test_trace_round_trip),
		cmocka_unit_test(test_new_trace_made_when_read),
		cmocka_unit_test_setup(test_request_slot_reused, full_ring),
		cmocka_unit_test_setup(test_concurrent_readers_get_whole_requests, full_ring),
		cmocka_unit_test(test_named_while_counted_and_after),
		cmocka_unit_test(test_two_quoted_request_lines_name_none),
		cmocka_unit_test(test_bare_request_line_beside_a_quoted_one_names_none),
		cmocka_unit_test(test_same_request_line_twice_names_none),
		cmocka_unit_test(test_bucket_collision_in_one_table),
		cmocka_unit_test(test_ring_after_release),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
