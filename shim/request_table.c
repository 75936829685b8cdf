/*
 * request_table.c - ring of request ids, request lines and traces with
 * per-slot seqlocks, and live counts of request lines by hash bucket, in two
 * tables hashed apart: a line is unique when its bucket in either table holds
 * it alone, so two different request lines sharing one bucket (a one in a
 * hundred chance per line with 320 counted requests) are still told apart
 * by the other table (127 times in 128); identical request lines share both.
 * The tables are interleaved and a line's second bucket is on the page of
 * its first: counting a request writes one page of them, not two (a fork
 * server's child copies every page it writes).
 *
 * A slot is 168 bytes: the serial, the line's buckets, lengths, the trace,
 * REQUEST_INLINE_TEXT bytes of text (the id, unless it is the trace-id,
 * then the request line) and its pins. Text that does not fit goes to the
 * long ring and the slot is marked long; tracestates have a ring of their
 * own. Both side rings are indexed by the slot and seqlocked by the serial.
 *
 * A serial is a sequence number from one atomic add, shifted, with the
 * slot's index in its low REQUEST_SLOT_BITS bits: no two writers ever share
 * one, serials grow, and a reader finds the slot whatever size the ring has
 * since grown to. The sequence number also picks the slot (modulo the
 * ring's size, skipping pinned ones), so the ring is walked round in order.
 * Readers check the serial before and after copying, in each ring they
 * read. The rings and the index are one mapping the first request makes
 * (map_once), never unmapped. Must never block, allocate otherwise, or
 * return an id, request line or trace under the wrong serial.
 */
#include "request_table.h"

#include <stdatomic.h>
#include <string.h>
#include <xxhash.h>

#include "fork_hot.h"
#include "map_once.h"
#include "page_bytes.h"
#include "seq_copy.h"
#include "short_copy.h"

#define REQUEST_TRACED 0x01
#define REQUEST_ID_IS_TRACE_ID 0x02 /* the id is the trace-id: not in text */
#define REQUEST_LONG 0x04	    /* the text is in the request's long slot */
#define REQUEST_TRACESTATE 0x08     /* it came with a tracestate (its ring's
				       pages are read only for those) */

/* All of a request slot but its text, copied out in one go. */
struct request_head {
	uint32_t buckets;
	uint8_t id_len;
	uint8_t line_len;
	uint8_t kind; /* REQUEST_ bits */
	struct trace_plan trace;
};

/* The pins right after the serial: a new request stores to the serial
 * (its read is an add of 0) before it reads the pins, so they are on a
 * page already written but when the serial ends a page. After the text,
 * the pins of a slot that crosses into a page no request wrote yet (slots
 * are 168 bytes; the ring is walked in order) were read there first: the
 * zero page mapped, a fault, then copied by the text's store, a second (a
 * fresh worker's first lap of the ring: two a page). */
struct request_slot {
	_Atomic uint64_t serial; /* 0: never written; SLOT_WRITING while being written */
	_Atomic uint32_t pins; /* connections whose unanswered request is here */
	struct request_head head;
	char text[REQUEST_INLINE_TEXT]; /* the id, unless it is the trace-id, then
					   the request line */
};

_Static_assert(sizeof(struct request_slot) == 168, "a request slot is 168 bytes");
/* Heads and texts are copied a word at a time (seq_copy.h). */
_Static_assert(offsetof(struct request_slot, head) % 8 == 0 &&
		       offsetof(struct request_head, trace) == 8 &&
		       sizeof(struct request_head) % 8 == 0 &&
		       offsetof(struct request_slot, text) % 8 == 0 && REQUEST_INLINE_TEXT % 8 == 0,
	       "request slot parts are whole words");

/* Every ring is seqlocked by the serial of the request that owns a slot;
 * SLOT_WRITING while it is being written. */
#define SLOT_WRITING UINT64_MAX
#define SLOT_MASK (REQUEST_SLOTS - 1)
/* A new request passes over pinned slots, as many as it finds while at
 * most half the slots are pinned (each is passed over once a lap: one a
 * request on average), and at most PINNED_SKIPS when more are (all
 * REQUEST_SLOTS slots, which can grow no more): then it takes one rather
 * than have no id. */
#define PINNED_SKIPS 64
_Static_assert(REQUEST_RING_START / 2 >= 2 * RECENT_REQUESTS,
	       "a request outlives the lines a buffered log writes late");

struct long_slot {
	_Atomic uint64_t serial;
	char text[REQUEST_ID_MAX + REQUEST_LINE_MAX]; /* as in a request slot */
};

/* Tracestates are rare and long: a ring of their own, smaller than the
 * request ring. */
struct tracestate_slot {
	_Atomic uint64_t serial;
	uint16_t len;
	char text[TRACESTATE_MAX];
};

/* How many counted requests have a request line in a bucket, and the last
 * one that started there (the one when the count is 1). */
struct line_bucket {
	_Atomic uint32_t count;
	_Atomic uint64_t serial;
};

static _Atomic uint64_t next_sequence FORK_HOT;
/* The ring has REQUEST_RING_START << ring_doublings slots; they grow while
 * more than half are pinned (pinned_slots counts pins). */
static _Atomic uint32_t ring_doublings FORK_HOT;
static _Atomic int32_t pinned_slots FORK_HOT; /* below zero only for a pin
						  given back across a release */

/* Requests below this serial are forgotten (request_table_forget_all).
 * Read at every lookup, in a fork child too: FORK_HOT. */
static _Atomic uint64_t first_valid FORK_HOT;
/* The line index: pages of bucket pairs (two tables), each with the seen
 * bits of the lines whose buckets are there. A line's two buckets are on
 * one page: a bucket's number is its page << 7 | its pair on the page.
 * Which request lines this process has seen once, and which more than
 * once, for its whole life: a bit each in each bitmap, at a hash of the
 * line's buckets. A buffered log may write a request's line long after
 * RECENT_REQUESTS more ended (nginx's buffer=, lighttpd's), when a newer
 * request with the same line is the one counted: a line names a request
 * only if its bit in the second bitmap is clear (no other request ever had
 * that line; a collision only loses the name). A counted line writes one
 * page of the index: a fork child copies one. */
#define SEEN_PAGE_BITS_LOG 10 /* 1024 bits in each bitmap of a page */
#define SEEN_PAGE_WORDS ((1u << SEEN_PAGE_BITS_LOG) / 64)
#define LINE_PAGES 256
#define PAGE_PAIRS ((PAGE_BYTES - 2 * SEEN_PAGE_WORDS * 8) / (2 * sizeof(struct line_bucket)))
struct line_page {
	struct line_bucket pairs[PAGE_PAIRS][2];
	_Atomic uint64_t seen_once[SEEN_PAGE_WORDS], seen_twice[SEEN_PAGE_WORDS];
};
_Static_assert(sizeof(struct line_page) == PAGE_BYTES, "a page of the line index is a page");
_Static_assert(PAGE_PAIRS <= 128 && LINE_PAGES <= 256, "a bucket's number fits in 15 bits");

/* The rings and the line index, mapped by the first request added
 * (map_once): a process that never has one pays neither their address
 * space nor the page tables its span would take. The index first, on the
 * mapping's first page; every part is whole pages. NULL until then, and
 * for good if mapping fails: no request is added (no id), and every
 * lookup finds none. Read with every request and line, in a fork child
 * too: FORK_HOT. */
struct request_tables {
	struct line_page line_pages[LINE_PAGES];
	struct request_slot slots[REQUEST_SLOTS];
	struct long_slot long_slots[REQUEST_LONG_SLOTS];
	struct tracestate_slot tracestates[TRACESTATE_SLOTS];
};
_Static_assert(sizeof(struct line_page[LINE_PAGES]) % PAGE_BYTES == 0 &&
		       sizeof(struct request_slot[REQUEST_SLOTS]) % PAGE_BYTES == 0 &&
		       sizeof(struct long_slot[REQUEST_LONG_SLOTS]) % PAGE_BYTES == 0,
	       "each ring starts a page");
static struct request_tables *_Atomic tables FORK_HOT;

/* The tables, NULL if no request was ever added. Said to be page-aligned
 * (as mapped): the compiler then copies their words with no code for
 * misaligned ones, as for a static table. */
static FORK_PATH struct request_tables *tables_mapped(void)
{
	return __builtin_assume_aligned(atomic_load_explicit(&tables, memory_order_acquire),
					PAGE_BYTES);
}

/* The tables, mapped now if they were not; NULL if mapping fails. Out of
 * the fork child's window: a fork server's parent maps them as it accepts
 * its first connection (request_tables_ready), and its children inherit
 * them. */
static __attribute__((noinline, cold)) struct request_tables *tables_made(void)
{
	return __builtin_assume_aligned(map_once((void *_Atomic *)&tables, sizeof(struct request_tables)),
					PAGE_BYTES);
}

static FORK_PATH struct line_page *page_of(struct request_tables *t, uint32_t buckets)
{
	return &t->line_pages[(buckets >> 7) % LINE_PAGES];
}

static FORK_PATH uint32_t seen_bit(uint32_t buckets)
{
	return (buckets * 0x9e3779b1u) >> (32 - SEEN_PAGE_BITS_LOG);
}

/* request_streams_unseen; read with every quoted request line: FORK_HOT. */
static _Atomic uint32_t unseen_streams FORK_HOT;
static _Atomic uint32_t recent_next FORK_HOT;
/* buckets + 1; 0: empty. Written at the end of every request: FORK_HOT. */
static _Atomic uint32_t recent[RECENT_REQUESTS] FORK_HOT;

/* flatten: the hash is compiled into it, not called in another file's
 * window of code. */
FORK_PATH __attribute__((flatten)) uint32_t request_line_buckets(const char *line, size_t len)
{
	/* Lines are at most REQUEST_LINE_MAX bytes: said to the compiler, the
	 * hash's code for longer input is left out. */
	uint64_t h = XXH3_64bits(line, len < REQUEST_LINE_MAX ? len : REQUEST_LINE_MAX);
	uint32_t page = (uint32_t)(h % LINE_PAGES) << 7;
	/* pairs in [0, PAGE_PAIRS): the words of h's bits 8-39 and 32-63,
	 * multiplied, give their top bits' share */
	uint32_t first = page | (uint32_t)(((h >> 8) & 0xffffffffu) * PAGE_PAIRS >> 32);
	uint32_t second = page | (uint32_t)((h >> 32) * PAGE_PAIRS >> 32);
	return first | second << 16;
}

static FORK_PATH struct line_bucket *bucket_in(struct request_tables *t, int table,
						uint32_t buckets)
{
	uint32_t b = buckets >> (16 * table), pair = b & 127;
	return &page_of(t, b)->pairs[pair < PAGE_PAIRS ? pair : PAGE_PAIRS - 1][table];
}

FORK_PATH void request_line_started(uint32_t buckets, uint64_t serial)
{
	/* Each bit is set once in the process's life: a page is written only
	 * the first times (a fork child copies the pages it writes). */
	struct request_tables *t = tables_mapped();
	if (!t)
		return; /* serial was added: never so */
	uint32_t bit = seen_bit(buckets);
	uint64_t mask = 1ull << (bit % 64);
	struct line_page *page = page_of(t, buckets);
	_Atomic uint64_t *once = &page->seen_once[bit / 64], *twice = &page->seen_twice[bit / 64];
	struct line_bucket *b0 = bucket_in(t, 0, buckets), *b1 = bucket_in(t, 1, buckets);
	/* The page is written before its bits are read: one a fork child has
	 * not written yet costs it one fault, not a read's (the zero page)
	 * and then a write's. */
	atomic_store_explicit(&b0->serial, serial, memory_order_relaxed);
	atomic_store_explicit(&b1->serial, serial, memory_order_relaxed);
	if (!(atomic_load_explicit(once, memory_order_relaxed) & mask))
		atomic_fetch_or_explicit(once, mask, memory_order_relaxed);
	else if (!(atomic_load_explicit(twice, memory_order_relaxed) & mask))
		atomic_fetch_or_explicit(twice, mask, memory_order_relaxed);
	atomic_fetch_add_explicit(&b0->count, 1, memory_order_release);
	atomic_fetch_add_explicit(&b1->count, 1, memory_order_release);
}

/* In recent[]: the end of an unseen stream (request_streams_unseen), not
 * a request's buckets + 1 (which are below 2^31). */
#define RECENT_UNSEEN_END UINT32_MAX
_Static_assert(REQUEST_LINE_UNSEEN + 1 == RECENT_UNSEEN_END,
	       "a request line counted unseen ends as an unseen stream");

/* One unseen stream fewer; never below zero (a late end after detach
 * zeroed the count must not make the next unseen stream read as none). */
static FORK_PATH void unseen_less(void)
{
	uint32_t n = atomic_load_explicit(&unseen_streams, memory_order_relaxed);
	while (n && !atomic_compare_exchange_weak_explicit(&unseen_streams, &n, n - 1,
							   memory_order_release, memory_order_relaxed))
		;
}

/* Puts an end into the ring of recent ends, and ends for good the one it
 * takes the place of, RECENT_REQUESTS ends ago. */
static FORK_PATH void recent_end(uint32_t entry)
{
	uint32_t i = atomic_fetch_add_explicit(&recent_next, 1, memory_order_relaxed) % RECENT_REQUESTS;
	uint32_t old = atomic_exchange_explicit(&recent[i], entry, memory_order_relaxed);
	struct request_tables *t = tables_mapped(); /* an entry was counted in them */
	if (old == RECENT_UNSEEN_END)
		unseen_less();
	else if (old && t)
		for (int table = 0; table < 2; table++)
			atomic_fetch_sub_explicit(&bucket_in(t, table, old - 1)->count, 1,
						  memory_order_relaxed);
}

FORK_PATH void request_line_ended(uint32_t buckets)
{
	recent_end(buckets + 1);
}

/* Whether serial is the one request counted in one of its buckets, and no
 * other request this process saw had its line (seen_twice). */
static bool alone_in_a_bucket(struct request_tables *t, uint32_t buckets, uint64_t serial)
{
	uint32_t bit = seen_bit(buckets);
	if (atomic_load_explicit(&page_of(t, buckets)->seen_twice[bit / 64], memory_order_acquire) &
	    (1ull << (bit % 64)))
		return false;
	for (int table = 0; table < 2; table++) {
		const struct line_bucket *b = bucket_in(t, table, buckets);
		if (atomic_load_explicit(&b->count, memory_order_acquire) == 1 &&
		    atomic_load_explicit(&b->serial, memory_order_relaxed) == serial)
			return true;
	}
	return false;
}

/* Takes a side slot (long or tracestate) for request serial, keeping in
 * *old what it held; false if a newer request has it or its writer has not
 * finished (stalled a whole ring behind). */
static bool side_slot_claim(_Atomic uint64_t *slot_serial, uint64_t serial, uint64_t *old)
{
	*old = atomic_load_explicit(slot_serial, memory_order_relaxed);
	return *old < serial &&
	       atomic_compare_exchange_strong_explicit(slot_serial, old, SLOT_WRITING,
						       memory_order_acquire, memory_order_relaxed);
}

/* The ring's slot 0, kept apart from the rest on the FORK_HOT page, which
 * a fork child writes anyway (its pid, its ids): a fork child's first
 * request goes there (request_table_after_fork), and the child copies no
 * page of the ring for it (the ring's pages past the first are ones its
 * parent never wrote: a fault and a page each). t->slots[0] stays unused. */
static struct request_slot hot_slot FORK_HOT;
#define HOT_SLOT 0u

/* The slot of index i (a serial's low bits). */
static FORK_PATH struct request_slot *slot_at(struct request_tables *t, uint32_t i)
{
	return i == HOT_SLOT ? &hot_slot : &t->slots[i];
}

static FORK_PATH struct request_slot *slot_of(struct request_tables *t, uint64_t serial)
{
	return slot_at(t, (uint32_t)(serial & SLOT_MASK));
}

static struct long_slot *long_slot_of(struct request_tables *t, uint64_t serial)
{
	return &t->long_slots[serial % REQUEST_LONG_SLOTS];
}

/* The ring doubles, once, if more than half its slots are pinned
 * (pinned) and it can. Out of the fork child's window: a child pins one
 * request. */
static __attribute__((noinline, cold)) void ring_grow(int32_t pinned)
{
	uint32_t doublings = atomic_load_explicit(&ring_doublings, memory_order_relaxed);
	if ((REQUEST_RING_START << doublings) < REQUEST_SLOTS &&
	    pinned > (int32_t)(REQUEST_RING_START << doublings) / 2)
		atomic_compare_exchange_strong_explicit(&ring_doublings, &doublings, doublings + 1,
							memory_order_relaxed, memory_order_relaxed);
}

/* Pins slot s (index i), which its writer owns. Returns the token for
 * request_unpin. */
static FORK_PATH uint32_t pin_slot(struct request_slot *s, uint32_t i)
{
	atomic_fetch_add_explicit(&s->pins, 1, memory_order_relaxed);
	int32_t pinned = atomic_fetch_add_explicit(&pinned_slots, 1, memory_order_relaxed) + 1;
	if (__builtin_expect(pinned > (int32_t)REQUEST_RING_START / 2, 0))
		ring_grow(pinned);
	return i + 1;
}

/* A slot's pins one less, never below zero (request_table_release zeroes
 * them while connections may still hold pins): whether there was one. */
static FORK_PATH bool slot_unpinned(_Atomic uint32_t *pins)
{
	uint32_t v = atomic_load_explicit(pins, memory_order_relaxed);
	while (v && !atomic_compare_exchange_weak_explicit(pins, &v, v - 1, memory_order_relaxed,
							   memory_order_relaxed))
		;
	return v != 0;
}

FORK_PATH void request_unpin(uint32_t pinned)
{
	struct request_tables *t = tables_mapped(); /* a pin is in them */
	if (pinned && t && slot_unpinned(&slot_at(t, (pinned - 1) & SLOT_MASK)->pins))
		atomic_fetch_sub_explicit(&pinned_slots, 1, memory_order_relaxed);
}

void request_keep(uint64_t serial, uint32_t *pin)
{
	uint32_t i = (uint32_t)(serial & SLOT_MASK);
	struct request_tables *t = tables_mapped();
	/* Pinned, the slot still holds the serial the pin was taken for. */
	if (serial == 0 || serial == SLOT_WRITING || *pin == i + 1 || !t)
		return;
	struct request_slot *s = slot_of(t, serial);
	if (atomic_load_explicit(&s->serial, memory_order_acquire) != serial)
		return;
	uint32_t kept = pin_slot(s, i);
	/* A writer that took the slot before the pin was seen wins: the
	 * serial it stores shows that here, or, if it read the pins just
	 * before and stores just after this look, the lines kept for
	 * serial read its slot as reused: no id, never the new request's. */
	atomic_thread_fence(memory_order_seq_cst);
	if (atomic_load_explicit(&s->serial, memory_order_acquire) != serial) {
		request_unpin(kept);
		return;
	}
	request_unpin(*pin);
	*pin = kept;
}

/* Whether request serial (SLOT_WRITING, 0: none) is in its slot, pinned
 * (a pin made with the add is seen with its serial). */
static bool pinned_in_slot(struct request_tables *t, uint64_t serial)
{
	const struct request_slot *s = slot_of(t, serial);
	return serial != SLOT_WRITING && serial != 0 &&
	       atomic_load_explicit(&s->serial, memory_order_acquire) == serial &&
	       atomic_load_explicit(&s->pins, memory_order_relaxed) != 0;
}

/* Stores the tracestate of serial, unless its slot's writer stalled. Not
 * inlined: out of the fork child's window (few requests bring one). */
static __attribute__((noinline)) void tracestate_add(struct request_tables *t, uint64_t serial,
						     const char *ts, size_t len)
{
	struct tracestate_slot *s = &t->tracestates[serial % TRACESTATE_SLOTS];
	uint64_t old;
	if (len > TRACESTATE_MAX || !side_slot_claim(&s->serial, serial, &old))
		return;
	atomic_thread_fence(memory_order_release);
	uint16_t len16 = (uint16_t)len;
	seq_store(&s->len, &len16, sizeof(len16));
	seq_store(s->text, ts, len);
	atomic_store_explicit(&s->serial, serial, memory_order_release);
}

/* The bytes of text before the request line: the id, unless it is the
 * trace-id. */
static size_t id_text_len(const struct request_head *h)
{
	return h->kind & REQUEST_ID_IS_TRACE_ID ? 0 : h->id_len;
}

/* The head of a new request's slot but its trace (the slot takes that
 * straight from the plan): lengths, the request line's buckets, whether
 * it has a trace and whether the text goes to the long ring. */
static void request_head_make(struct request_head *h, const char *id, size_t len,
			      size_t line_len, uint32_t buckets, const struct trace_plan *trace)
{
	h->id_len = (uint8_t)len;
	h->line_len = (uint8_t)line_len;
	h->buckets = line_len ? buckets : 0;
	h->kind = 0;
	if (trace) {
		h->kind = REQUEST_TRACED;
		if (!trace->new_trace_id && len == sizeof(trace->trace_id) &&
		    memcmp(id, trace->trace_id, len) == 0)
			h->kind |= REQUEST_ID_IS_TRACE_ID;
	}
	if (id_text_len(h) + line_len > REQUEST_INLINE_TEXT)
		h->kind |= REQUEST_LONG;
}

/* Asks the cache for the slot after serial's, the one the next request
 * most likely takes, to be written: a slot is written once a lap of the
 * ring, so it is never in the cache when its request comes, and the locked
 * additions on its serial and pins then wait for it (under nginx, some 60%
 * of request_table_add's time was the first read of pins). Fetched now,
 * while the rest of this request runs, it no longer is the next request's
 * wait. After the ring's last slot this fetches one past it (in the
 * array, as the ring only grows to REQUEST_SLOTS) instead of the first,
 * which is the hot slot, in the cache anyway. A hint: no fault, no
 * change. Inlined: a function of nothing but prefetches has no effect the
 * compiler keeps, and its call is dropped. */
static inline __attribute__((always_inline)) void prefetch_next_slot(struct request_tables *t,
								      uint64_t serial)
{
	const char *s = (const char *)&t->slots[(serial + 1) & SLOT_MASK];
	_Static_assert(sizeof(struct request_slot) <= 3 * 64, "four prefetches cover a slot");
	__builtin_prefetch(s, 1);
	__builtin_prefetch(s + 64, 1);
	__builtin_prefetch(s + 128, 1);
	__builtin_prefetch(s + sizeof(struct request_slot) - 1, 1);
}

FORK_PATH uint64_t
request_table_add(const char *id, size_t len, const char *line, size_t line_len,
		  uint32_t buckets, const struct trace_plan *trace, const char *ts,
		  size_t ts_len, uint32_t *pin)
{
	struct request_tables *t = tables_mapped();
	if (__builtin_expect(!t, 0) && !(t = tables_made())) {
		if (pin)
			*pin = 0;
		return 0; /* no room for the rings: no id */
	}
	t = __builtin_assume_aligned(t, PAGE_BYTES); /* either way */
	struct request_head h;
	request_head_make(&h, id, len, line_len, buckets, trace);
	if (ts_len)
		h.kind |= REQUEST_TRACESTATE;
	bool long_text = h.kind & REQUEST_LONG;
	size_t id_text = id_text_len(&h);

	/* A writer owns a slot from the moment it swaps the old serial for
	 * SLOT_WRITING until it stores its own; a slot another writer still
	 * owns (a writer a whole ring behind, preempted) is passed over, and so
	 * is one a newer request holds (this writer is the one that stalled: a
	 * request just added may not be pinned yet, or read yet), a pinned
	 * one, or one whose long slot a pinned long request holds (for a long
	 * request). A long request takes its long slot first, and gives it back
	 * untouched if it cannot have the request slot. A request added pinned
	 * is pinned before its serial is stored: a writer that reads the
	 * serial (acquire) sees the pin. */
	uint32_t may_pass = atomic_load_explicit(&pinned_slots, memory_order_relaxed) > (int32_t)REQUEST_SLOTS / 2
				    ? PINNED_SKIPS
				    : REQUEST_SLOTS;
	for (uint32_t passed = 0, failed = 0; failed < 8;) {
		uint64_t sequence = atomic_fetch_add_explicit(&next_sequence, 1, memory_order_relaxed) + 1;
		uint32_t size = REQUEST_RING_START
				<< atomic_load_explicit(&ring_doublings, memory_order_relaxed);
		uint64_t serial = sequence << REQUEST_SLOT_BITS | (sequence & (size - 1));
		struct request_slot *s = slot_of(t, serial);
		struct long_slot *l = long_slot_of(t, serial);
		/* Read with a store of what is there (adding 0): a page of the
		 * ring no process touched yet costs one fault for this and the
		 * store below, not two (a read maps the zero page, the store
		 * then copies it): every child of a fork server starts at the
		 * serial its parent left, in a page the parent never wrote. */
		uint64_t old = atomic_fetch_add_explicit(&s->serial, 0, memory_order_acquire), long_old = 0;
		if (old == SLOT_WRITING || old > serial) { /* being written, or by a newer request */
			failed++;
			continue;
		}
		if (passed < may_pass &&
		    (atomic_load_explicit(&s->pins, memory_order_relaxed) ||
		     (__builtin_expect(long_text, 0) &&
		      pinned_in_slot(t, atomic_load_explicit(&l->serial, memory_order_relaxed))))) {
			passed++;
			continue;
		}
		if (__builtin_expect(long_text, 0) && !side_slot_claim(&l->serial, serial, &long_old)) {
			failed++;
			continue;
		}
		if (!atomic_compare_exchange_strong_explicit(&s->serial, &old, SLOT_WRITING,
							     memory_order_acquire,
							     memory_order_relaxed)) {
			if (long_text)
				atomic_store_explicit(&l->serial, long_old, memory_order_release);
			failed++;
			continue;
		}
		atomic_thread_fence(memory_order_release);
		/* A slot's trace is read only for a request that has one
		 * (REQUEST_TRACED). */
		seq_store(&s->head, &h, offsetof(struct request_head, trace));
		if (trace)
			seq_store(&s->head.trace, trace, sizeof(*trace));
		/* The text, put together here and stored in whole words. */
		char text[sizeof(l->text) + 8] __attribute__((aligned(8)));
		size_t n = id_text + line_len, words = (n + 7) & ~(size_t)7;
		copy_bytes(text, id, id_text);
		copy_bytes(text + id_text, line, line_len);
		memset(text + n, 0, 8); /* the last word's tail */
		seq_store(long_text ? l->text : s->text, text, words);
		if (pin)
			*pin = pin_slot(s, (uint32_t)(serial & SLOT_MASK));
		if (long_text)
			atomic_store_explicit(&l->serial, serial, memory_order_release);
		atomic_store_explicit(&s->serial, serial, memory_order_release);
		if (ts_len)
			tracestate_add(t, serial, ts, ts_len);
		prefetch_next_slot(t, serial);
		return serial;
	}
	if (pin)
		*pin = 0;
	return 0; /* no id rather than a torn one */
}

/* Whether a slot whose serial word is slot holds request serial, one not
 * forgotten (request_table_forget_all), as its reader begins. */
static bool slot_holds(const _Atomic uint64_t *slot, uint64_t serial)
{
	return serial != 0 && atomic_load_explicit(slot, memory_order_acquire) == serial &&
	       serial >= atomic_load_explicit(&first_valid, memory_order_relaxed);
}

/* What request_copy copies besides the head's first word. */
enum request_part {
	COPY_LINE = 1,  /* the id and the request line after it */
	COPY_TRACE = 2, /* the trace */
};

/* Copies the head of request serial (its trace only with COPY_TRACE, or
 * when the id is the trace-id) and, with COPY_LINE, the start of its
 * slot's text into text, in whole words; false if the slot holds another
 * request's. */
static FORK_PATH bool
request_copy(struct request_tables *t, uint64_t serial, struct request_head *h,
	     char text[REQUEST_INLINE_TEXT], unsigned parts)
{
	if (!t)
		return false;
	const struct request_slot *s = slot_of(t, serial);

	if (!slot_holds(&s->serial, serial))
		return false;
	seq_load(h, &s->head, offsetof(struct request_head, trace));
	if ((parts & COPY_TRACE) || (h->kind & REQUEST_ID_IS_TRACE_ID))
		seq_load(&h->trace, &s->head.trace, sizeof(h->trace));
	if (parts & COPY_LINE) {
		/* h may be torn here (then thrown away below): n stays in bounds */
		size_t n = id_text_len(h) + h->line_len;
		seq_load(text, s->text, n < REQUEST_INLINE_TEXT ? (n + 7) & ~(size_t)7
								: REQUEST_INLINE_TEXT);
	}
	atomic_thread_fence(memory_order_acquire);
	return atomic_load_explicit(&s->serial, memory_order_relaxed) == serial;
}

/* Whether the long slot of request serial holds its text. */
static bool long_slot_holds(struct request_tables *t, uint64_t serial)
{
	return atomic_load_explicit(&long_slot_of(t, serial)->serial, memory_order_acquire) == serial;
}

/* Whether request serial, whose head is h, is still whole: its long slot (if
 * it is long) not yet taken by a newer request. */
static bool request_whole(struct request_tables *t, uint64_t serial, const struct request_head *h)
{
	return !(h->kind & REQUEST_LONG) || long_slot_holds(t, serial);
}

/* Copies n bytes from offset of the text in the long slot of request
 * serial; false if the slot holds another request's. */
static bool long_text_copy(struct request_tables *t, uint64_t serial, size_t offset, size_t n,
			   char *out)
{
	const struct long_slot *l = long_slot_of(t, serial);

	if (!long_slot_holds(t, serial))
		return false;
	seq_load(out, l->text + offset, n);
	atomic_thread_fence(memory_order_acquire);
	return atomic_load_explicit(&l->serial, memory_order_relaxed) == serial;
}

/* request_table_get of an id that is the trace-id or in a long slot. */
static FORK_PATH __attribute__((noinline)) size_t id_apart(struct request_tables *t,
							   uint64_t serial,
							   char out[REQUEST_ID_MAX])
{
	struct request_head h;

	if (!request_copy(t, serial, &h, NULL, 0) || !request_whole(t, serial, &h))
		return 0;
	if (h.kind & REQUEST_ID_IS_TRACE_ID) {
		memcpy(out, h.trace.trace_id, sizeof(h.trace.trace_id));
		return h.id_len;
	}
	if (h.kind & REQUEST_LONG && !long_text_copy(t, serial, 0, h.id_len, out))
		return 0;
	return h.id_len;
}

FORK_PATH size_t request_table_get(uint64_t serial, char out[REQUEST_ID_MAX])
{
	struct request_tables *t = tables_mapped();
	struct request_head h;

	/* Every line and every response header asks: an id in the slot's
	 * text is copied here, with no more than that compiled in; a trace-id
	 * or a long slot's id apart. */
	if (!t)
		return 0;
	const struct request_slot *s = slot_of(t, serial);
	if (!slot_holds(&s->serial, serial))
		return 0;
	seq_load(&h, &s->head, offsetof(struct request_head, trace));
	if (h.kind & (REQUEST_ID_IS_TRACE_ID | REQUEST_LONG))
		return id_apart(t, serial, out);
	/* h may be torn here (then thrown away below): n stays in bounds */
	size_t n = h.id_len;
	seq_load(out, s->text, n < REQUEST_INLINE_TEXT ? (n + 7) & ~(size_t)7 : REQUEST_INLINE_TEXT);
	atomic_thread_fence(memory_order_acquire);
	return atomic_load_explicit(&s->serial, memory_order_relaxed) == serial ? h.id_len : 0;
}

FORK_PATH bool
request_table_trace(uint64_t serial, const struct id_generator *gen, struct trace_ctx *out)
{
	struct request_tables *t = tables_mapped();
	struct request_head h;

	if (!request_copy(t, serial, &h, NULL, COPY_TRACE) || !(h.kind & REQUEST_TRACED) ||
	    !request_whole(t, serial, &h))
		return false;
	trace_ctx_from_plan(out, &h.trace, gen);
	return true;
}

FORK_PATH size_t request_table_tracestate(uint64_t serial, char out[TRACESTATE_MAX])
{
	struct request_tables *t = tables_mapped();
	struct request_head h;

	/* A request stored without one reads nothing there: a CGI program's
	 * environment costs no fault on a page of that ring. */
	if (!request_copy(t, serial, &h, NULL, 0) || !(h.kind & REQUEST_TRACESTATE))
		return 0;
	struct tracestate_slot *s = &t->tracestates[serial % TRACESTATE_SLOTS];
	if (!slot_holds(&s->serial, serial))
		return 0;
	uint16_t len;
	seq_load(&len, &s->len, sizeof(len));
	seq_load(out, s->text, len < TRACESTATE_MAX ? len : TRACESTATE_MAX);
	atomic_thread_fence(memory_order_acquire);
	if (atomic_load_explicit(&s->serial, memory_order_relaxed) != serial || len > TRACESTATE_MAX)
		return 0;
	return len;
}

void request_naming_paused(bool paused)
{
	if (paused)
		atomic_fetch_add_explicit(&unseen_streams, 1, memory_order_seq_cst);
	else
		unseen_less();
}

void request_streams_unseen(int delta)
{
	if (delta > 0)
		atomic_fetch_add_explicit(&unseen_streams, (uint32_t)delta, memory_order_release);
	for (; delta < 0; delta++)
		recent_end(RECENT_UNSEEN_END);
}

/* Request serial's head into *h and its request line (h->line_len bytes,
 * in text or long_line); NULL if it has none or is no longer stored. */
static FORK_PATH const char *request_line_copy(struct request_tables *t, uint64_t serial,
						struct request_head *h,
						char text[REQUEST_INLINE_TEXT],
						char long_line[REQUEST_LINE_MAX])
{
	if (!request_copy(t, serial, h, text, COPY_LINE) || h->line_len == 0)
		return NULL;
	if (!(h->kind & REQUEST_LONG))
		return text + id_text_len(h);
	return long_text_copy(t, serial, id_text_len(h), h->line_len, long_line) ? long_line
										     : NULL;
}

FORK_PATH uint32_t request_table_line_buckets(uint64_t serial)
{
	struct request_head h;
	char text[REQUEST_INLINE_TEXT], long_line[REQUEST_LINE_MAX];
	const char *line = request_line_copy(tables_mapped(), serial, &h, text, long_line);
	return line ? request_line_buckets(line, h.line_len) : 0;
}

LOOP_PATH bool request_line_is(uint64_t serial, uint32_t buckets)
{
	struct request_head h;
	char text[REQUEST_INLINE_TEXT];
	if (!request_copy(tables_mapped(), serial, &h, text, 0) || h.line_len == 0)
		return true;
	return buckets != 0 && (buckets == h.buckets || buckets == request_table_line_buckets(serial));
}

LOOP_PATH bool request_named_in(uint64_t serial, const char *line, size_t len)
{
	struct request_head h;
	char text[REQUEST_INLINE_TEXT], long_line[REQUEST_LINE_MAX];

	if (atomic_load_explicit(&unseen_streams, memory_order_acquire))
		return false;
	struct request_tables *t = tables_mapped();
	const char *req_line = request_line_copy(t, serial, &h, text, long_line);
	return req_line && alone_in_a_bucket(t, h.buckets, serial) &&
	       memmem(line, len, req_line, h.line_len) != NULL;
}

LOOP_PATH bool request_line_quoted(const char *line, size_t len, uint32_t *buckets)
{
	size_t at, n;
	if (!http_find_request_line(line, len, &at, &n))
		return false;
	/* no request keeps a line this long */
	*buckets = n < REQUEST_LINE_MAX ? request_line_buckets(line + at, n) : 0;
	return true;
}

uint64_t request_named_by(const char *line, size_t len)
{
	uint32_t buckets;
	if (atomic_load_explicit(&unseen_streams, memory_order_acquire) ||
	    !request_line_quoted(line, len, &buckets) || buckets == 0)
		return 0;
	return request_named_with(line, len, buckets);
}

LOOP_PATH uint64_t request_named_with(const char *line, size_t len, uint32_t buckets)
{
	struct request_tables *t = tables_mapped();
	if (atomic_load_explicit(&unseen_streams, memory_order_acquire) || !t)
		return 0;
	for (int table = 0; table < 2; table++) {
		const struct line_bucket *b = bucket_in(t, table, buckets);
		if (atomic_load_explicit(&b->count, memory_order_acquire) != 1)
			continue;
		uint64_t serial = atomic_load_explicit(&b->serial, memory_order_relaxed);
		if (request_named_in(serial, line, len))
			return serial;
	}
	return 0;
}

void request_tables_ready(void)
{
	if (!tables_mapped())
		tables_made();
}

FORK_PATH void request_table_after_fork(void)
{
	/* The next sequence number is the next that picks HOT_SLOT: the
	 * numbers skipped name no request (serials only grow). */
	uint32_t size = REQUEST_RING_START << atomic_load_explicit(&ring_doublings, memory_order_relaxed);
	uint64_t next = atomic_load_explicit(&next_sequence, memory_order_relaxed) + 1;
	next += (HOT_SLOT - next) & (size - 1);
	atomic_store_explicit(&next_sequence, next - 1, memory_order_relaxed);
}

void request_table_forget_all(void)
{
	atomic_store_explicit(&first_valid, (atomic_load(&next_sequence) + 1) << REQUEST_SLOT_BITS,
			      memory_order_relaxed);
}

void request_table_release(void)
{
	/* Kept mapped: a hook in flight may still be reading them. */
	struct request_tables *t = tables_mapped();
	if (t)
		table_release(t, sizeof(*t));
	atomic_store_explicit(&hot_slot.serial, 0, memory_order_relaxed);
	atomic_store_explicit(&hot_slot.pins, 0, memory_order_relaxed);
	for (int i = 0; i < RECENT_REQUESTS; i++)
		if (atomic_load_explicit(&recent[i], memory_order_relaxed))
			atomic_store_explicit(&recent[i], 0, memory_order_relaxed);
	atomic_store_explicit(&unseen_streams, 0, memory_order_relaxed);
	atomic_store_explicit(&pinned_slots, 0, memory_order_relaxed);
	atomic_store_explicit(&ring_doublings, 0, memory_order_relaxed);
}
