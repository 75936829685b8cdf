/*
 * request_table.c - ring of request ids and request lines with per-slot
 * seqlocks, and live counts of request lines by hash bucket.
 *
 * Writers take a fresh serial with one atomic add, so no two writers ever
 * share a slot generation. Readers check the serial before and after copying.
 * Must never block, allocate or return an id under the wrong serial.
 */
#include "request_table.h"

#include <stdatomic.h>
#include <string.h>
#include <xxhash.h>

struct request_slot {
	_Atomic uint64_t serial; /* 0 while being written */
	uint8_t len;
	uint8_t line_len;
	uint16_t bucket;
	char id[REQUEST_ID_MAX];
	char line[REQUEST_LINE_MAX];
};

/* How many counted requests have a request line in a bucket, and the last
 * one that started there (the one when the count is 1). */
struct line_bucket {
	_Atomic uint32_t count;
	_Atomic uint64_t serial;
};

static struct request_slot slots[REQUEST_SLOTS];
static _Atomic uint64_t next_serial;
static struct line_bucket line_buckets[LINE_BUCKETS];
static _Atomic uint32_t recent_next;
static _Atomic uint32_t recent[RECENT_REQUESTS]; /* bucket + 1; 0: empty */

uint16_t request_line_bucket(const char *line, size_t len)
{
	return (uint16_t)(XXH3_64bits(line, len) % LINE_BUCKETS);
}

void request_line_started(uint16_t bucket, uint64_t serial)
{
	struct line_bucket *b = &line_buckets[bucket % LINE_BUCKETS];
	atomic_store_explicit(&b->serial, serial, memory_order_relaxed);
	atomic_fetch_add_explicit(&b->count, 1, memory_order_release);
}

void request_line_ended(uint16_t bucket)
{
	uint32_t i = atomic_fetch_add_explicit(&recent_next, 1, memory_order_relaxed) % RECENT_REQUESTS;
	uint32_t old = atomic_exchange_explicit(&recent[i], (uint32_t)(bucket % LINE_BUCKETS) + 1,
						memory_order_relaxed);
	if (old)
		atomic_fetch_sub_explicit(&line_buckets[old - 1].count, 1, memory_order_relaxed);
}

uint64_t request_table_add(const char *id, size_t len, const char *line, size_t line_len)
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
		memcpy(s->line, line, line_len);
		s->bucket = request_line_bucket(line, line_len);
		atomic_store_explicit(&s->serial, serial, memory_order_release);
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

bool request_named_in(uint64_t serial, const char *line, size_t len)
{
	struct request_slot *s = &slots[serial % REQUEST_SLOTS];
	char req_line[REQUEST_LINE_MAX];

	if (serial == 0 || atomic_load_explicit(&s->serial, memory_order_acquire) != serial)
		return false;
	size_t n = s->line_len;
	uint16_t bucket = s->bucket;
	memcpy(req_line, s->line, REQUEST_LINE_MAX);
	atomic_thread_fence(memory_order_acquire);
	if (atomic_load_explicit(&s->serial, memory_order_relaxed) != serial || n == 0 ||
	    n > REQUEST_LINE_MAX)
		return false;
	const struct line_bucket *b = &line_buckets[bucket];
	if (atomic_load_explicit(&b->count, memory_order_acquire) != 1 ||
	    atomic_load_explicit(&b->serial, memory_order_relaxed) != serial)
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
	const struct line_bucket *b = &line_buckets[request_line_bucket(line + at, n)];
	if (atomic_load_explicit(&b->count, memory_order_acquire) != 1)
		return 0;
	uint64_t serial = atomic_load_explicit(&b->serial, memory_order_relaxed);
	return request_named_in(serial, line, len) ? serial : 0;
}
