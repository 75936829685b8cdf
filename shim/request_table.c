/*
 * request_table.c - ring of request ids and request lines with per-slot
 * seqlocks, and live counts of request lines by hash bucket, in two tables
 * hashed apart: a line is unique when its bucket in either table holds it
 * alone, so two different request lines sharing one bucket (a one in a
 * hundred chance per line with 320 counted requests) are still told apart
 * by the other table; identical request lines share both.
 *
 * Writers take a fresh serial with one atomic add, so no two writers ever
 * share a slot generation. Readers check the serial before and after copying.
 * Must never block, allocate or return an id under the wrong serial.
 */
#include "request_table.h"

#include <stdatomic.h>
#include <string.h>
#include <xxhash.h>

#include "fork_hot.h"

struct request_slot {
	_Atomic uint64_t serial; /* 0 while being written */
	uint8_t len;
	uint8_t line_len;
	bool traced;
	uint32_t buckets;
	struct trace_ctx trace;
	char id[REQUEST_ID_MAX];
	char line[REQUEST_LINE_MAX];
};

/* Tracestates are rare and long: a ring of their own, smaller than the
 * request ring, seqlocked the same way. */
#define TRACESTATE_WRITING UINT64_MAX

struct tracestate_slot {
	_Atomic uint64_t serial; /* request serial; TRACESTATE_WRITING while
				    being written */
	uint16_t len;
	char text[TRACESTATE_MAX];
};

/* How many counted requests have a request line in a bucket, and the last
 * one that started there (the one when the count is 1). */
struct line_bucket {
	_Atomic uint32_t count;
	_Atomic uint64_t serial;
};

static struct request_slot slots[REQUEST_SLOTS];
static struct tracestate_slot tracestates[TRACESTATE_SLOTS];
static _Atomic uint64_t next_serial FORK_HOT;
static struct line_bucket line_buckets[2][LINE_BUCKETS];
static _Atomic uint32_t recent_next FORK_HOT;
static _Atomic uint32_t recent[RECENT_REQUESTS]; /* buckets + 1; 0: empty */

uint32_t request_line_buckets(const char *line, size_t len)
{
	uint64_t h = XXH3_64bits(line, len);
	return (uint32_t)(h % LINE_BUCKETS) | (uint32_t)((h >> 32) % LINE_BUCKETS) << 16;
}

static struct line_bucket *bucket_in(int table, uint32_t buckets)
{
	return &line_buckets[table][(buckets >> (16 * table) & 0xffff) % LINE_BUCKETS];
}

void request_line_started(uint32_t buckets, uint64_t serial)
{
	for (int t = 0; t < 2; t++) {
		struct line_bucket *b = bucket_in(t, buckets);
		atomic_store_explicit(&b->serial, serial, memory_order_relaxed);
		atomic_fetch_add_explicit(&b->count, 1, memory_order_release);
	}
}

void request_line_ended(uint32_t buckets)
{
	uint32_t i = atomic_fetch_add_explicit(&recent_next, 1, memory_order_relaxed) % RECENT_REQUESTS;
	uint32_t old = atomic_exchange_explicit(&recent[i], buckets + 1, memory_order_relaxed);
	if (old)
		for (int t = 0; t < 2; t++)
			atomic_fetch_sub_explicit(&bucket_in(t, old - 1)->count, 1,
						  memory_order_relaxed);
}

/* Whether serial is the one request counted in one of its buckets. */
static bool alone_in_a_bucket(uint32_t buckets, uint64_t serial)
{
	for (int t = 0; t < 2; t++) {
		const struct line_bucket *b = bucket_in(t, buckets);
		if (atomic_load_explicit(&b->count, memory_order_acquire) == 1 &&
		    atomic_load_explicit(&b->serial, memory_order_relaxed) == serial)
			return true;
	}
	return false;
}

/* Stores the tracestate of serial, unless its slot's writer stalled. */
static void tracestate_add(uint64_t serial, const char *ts, size_t len)
{
	struct tracestate_slot *s = &tracestates[serial % TRACESTATE_SLOTS];
	uint64_t old = atomic_load_explicit(&s->serial, memory_order_relaxed);
	if (len > TRACESTATE_MAX || old >= serial ||
	    !atomic_compare_exchange_strong_explicit(&s->serial, &old, TRACESTATE_WRITING,
						     memory_order_acquire, memory_order_relaxed))
		return;
	atomic_thread_fence(memory_order_release);
	s->len = (uint16_t)len;
	memcpy(s->text, ts, len);
	atomic_store_explicit(&s->serial, serial, memory_order_release);
}

uint64_t request_table_add(const char *id, size_t len, const char *line, size_t line_len,
			   const struct trace_ctx *trace, const char *ts, size_t ts_len)
{
	/* A writer owns a slot from the moment it swaps the old serial for 0
	 * until it stores its own; a slot another writer still owns (a writer a
	 * whole ring behind, preempted) is skipped for the next serial. */
	for (int attempt = 0; attempt < 8; attempt++) {
		uint64_t serial = atomic_fetch_add_explicit(&next_serial, 1, memory_order_relaxed) + 1;
		struct request_slot *s = &slots[serial % REQUEST_SLOTS];
		uint64_t old = atomic_load_explicit(&s->serial, memory_order_relaxed);
		if (old == 0 && serial > REQUEST_SLOTS)
			continue;
		if (!atomic_compare_exchange_strong_explicit(&s->serial, &old, 0,
							     memory_order_acquire,
							     memory_order_relaxed))
			continue;
		atomic_thread_fence(memory_order_release);
		s->len = (uint8_t)len;
		memcpy(s->id, id, len);
		s->line_len = (uint8_t)line_len;
		if (line_len) {
			memcpy(s->line, line, line_len);
			s->buckets = request_line_buckets(line, line_len);
		}
		s->traced = trace != NULL;
		if (trace)
			s->trace = *trace;
		atomic_store_explicit(&s->serial, serial, memory_order_release);
		if (ts_len)
			tracestate_add(serial, ts, ts_len);
		return serial;
	}
	return 0; /* no id rather than a torn one */
}

size_t request_table_get(uint64_t serial, char out[REQUEST_ID_MAX])
{
	struct request_slot *s = &slots[serial % REQUEST_SLOTS];

	if (serial == 0 || atomic_load_explicit(&s->serial, memory_order_acquire) != serial)
		return 0;
	size_t len = s->len;
	memcpy(out, s->id, REQUEST_ID_MAX);
	atomic_thread_fence(memory_order_acquire);
	if (atomic_load_explicit(&s->serial, memory_order_relaxed) != serial)
		return 0;
	return len;
}

bool request_table_trace(uint64_t serial, struct trace_ctx *out)
{
	struct request_slot *s = &slots[serial % REQUEST_SLOTS];

	if (serial == 0 || atomic_load_explicit(&s->serial, memory_order_acquire) != serial)
		return false;
	bool traced = s->traced;
	*out = s->trace;
	atomic_thread_fence(memory_order_acquire);
	return traced && atomic_load_explicit(&s->serial, memory_order_relaxed) == serial;
}

size_t request_table_tracestate(uint64_t serial, char out[TRACESTATE_MAX])
{
	struct tracestate_slot *s = &tracestates[serial % TRACESTATE_SLOTS];

	if (serial == 0 || atomic_load_explicit(&s->serial, memory_order_acquire) != serial)
		return 0;
	size_t len = s->len;
	memcpy(out, s->text, TRACESTATE_MAX);
	atomic_thread_fence(memory_order_acquire);
	if (atomic_load_explicit(&s->serial, memory_order_relaxed) != serial || len > TRACESTATE_MAX)
		return 0;
	return len;
}

bool request_named_in(uint64_t serial, const char *line, size_t len)
{
	struct request_slot *s = &slots[serial % REQUEST_SLOTS];
	char req_line[REQUEST_LINE_MAX];

	if (serial == 0 || atomic_load_explicit(&s->serial, memory_order_acquire) != serial)
		return false;
	size_t n = s->line_len;
	uint32_t buckets = s->buckets;
	memcpy(req_line, s->line, REQUEST_LINE_MAX);
	atomic_thread_fence(memory_order_acquire);
	if (atomic_load_explicit(&s->serial, memory_order_relaxed) != serial || n == 0 ||
	    n > REQUEST_LINE_MAX)
		return false;
	if (!alone_in_a_bucket(buckets, serial))
		return false;
	return memmem(line, len, req_line, n) != NULL;
}

uint64_t request_named_by(const char *line, size_t len)
{
	size_t at, n;
	if (!http_find_request_line(line, len, &at, &n))
		return 0;
	if (n > REQUEST_LINE_MAX)
		n = REQUEST_LINE_MAX;
	uint32_t buckets = request_line_buckets(line + at, n);
	for (int t = 0; t < 2; t++) {
		const struct line_bucket *b = bucket_in(t, buckets);
		if (atomic_load_explicit(&b->count, memory_order_acquire) != 1)
			continue;
		uint64_t serial = atomic_load_explicit(&b->serial, memory_order_relaxed);
		if (request_named_in(serial, line, len))
			return serial;
	}
	return 0;
}
