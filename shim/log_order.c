/*
 * log_order.c - the ring of answered requests and the log descriptors'
 * places in it (log_order.h).
 *
 * Each ring entry is seqlocked by a tag for the lap of the ring its
 * position is in (order_tag; 0: never written; ORDER_WRITING set while
 * written). A reader that finds an entry being written or already reused
 * takes it for no request: it never takes one request's buckets for
 * another's. Places are found by probing from the
 * fd's number, claimed for an fd by one compare-and-swap (so an fd never
 * gets two), and kept for the process's life: a log descriptor closed and
 * its number reused by another log is counted afresh when that is opened.
 * Must never allocate, block or wait for another thread.
 */
#include "log_order.h"

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>

#include "fork_hot.h"
#include "map_once.h"

#define ORDER_WRITING (1u << 31)
#define ORDER_TAG_MASK (ORDER_WRITING - 1)

/* 16 bytes: 64 KiB for the ring, every page of which a server writes once
 * it has answered ORDER_RING requests. A request's path buckets, which few
 * have, are kept apart (order_paths), touched only once one had them. */
struct answered_entry {
	_Atomic uint32_t tag; /* order_tag of its position; ORDER_WRITING while written */
	_Atomic uint32_t buckets;
	_Atomic uint64_t serial;
};
_Static_assert(sizeof(struct answered_entry) == 16, "a ring entry is 16 bytes");

/* A log descriptor's place, used under busy: the answered requests from
 * base on that its lines have taken (bit i: base + i), base the oldest
 * none has. */
struct log_place {
	_Atomic int32_t fd;   /* fd + 1; -(fd + 1) while made (place_make); 0:
				 free; PLACE_RETIRED: none's for good
				 (log_order_log_opened) */
	_Atomic uint32_t busy;
	uint64_t base;
	uint64_t taken;
	int32_t quiet;        /* lines taken in order since the last that was
				 not, less one for each hole since (at most
				 ORDER_QUIET) */
	_Atomic bool flushed; /* its lines are a buffer's (log_order_line); read
				 and set without busy too, by a line that finds
				 the place busy */
};

#define PLACE_RETIRED INT32_MIN

/* Positions handed out; written by every answered request: FORK_HOT. */
static _Atomic uint64_t order_next FORK_HOT;
/* Whether any place was made: until then no line looks at the ring (a
 * place starts at order_next), and answers go in without an entry. Read
 * by every answered request: FORK_HOT. */
static _Atomic bool places_made FORK_HOT;
/* Whether any request was answered with path buckets: until then no entry
 * has them, and order_paths is neither written nor read (a first read of
 * a page of .bss costs a fault, and a page on a kernel that maps no
 * shared zero page). Read by every answered request: FORK_HOT. */
static _Atomic bool paths_made FORK_HOT;
static struct answered_entry order_ring[ORDER_RING] DETACH_ZEROED;
/* The path buckets of the entry of the same index, written under its
 * seqlock (0 over a reused entry's once paths_made). */
static _Atomic uint32_t order_paths[ORDER_RING] DETACH_ZEROED;
static struct log_place places[ORDER_PLACES] DETACH_ZEROED;
/* Whether a line on a descriptor that got no place (ORDER_PLACES were
 * made) showed its descriptor to be a buffer's. Which one is not known:
 * from then on every such descriptor's lines are taken to be. */
static _Atomic bool unplaced_flushed;

/* The tag of position p's entry: its lap of the ring, plus one, in 31
 * bits. Positions ORDER_RING * 2^31 (2^43) apart share a tag: a reader
 * would take an entry reused for another request for its own only if 2^43
 * requests were answered between its two reads of the tag (over 100 days
 * at a million a second, while one thread stalls between two loads), and
 * a writer would take an entry already written for a later position for
 * an older one (and overwrite it) only if it stalled while 2^42 were. The
 * tag wraps to 0, never written, after 2^43 positions: by then every
 * entry was written long before. */
static inline uint32_t order_tag(uint64_t p)
{
	return (uint32_t)(p / ORDER_RING + 1) & ORDER_TAG_MASK;
}

/* Whether tag was, a tag read from an entry, is of position p's lap or a
 * later one (modulo 2^31: a lap up to 2^30 later). */
static inline bool tag_not_older(uint32_t was, uint64_t p)
{
	return ((was - order_tag(p)) & ORDER_TAG_MASK) < (ORDER_WRITING >> 1);
}

/* In the fork child's window: a fork server's child answers its
 * connection's requests. A process no place was made in (a fork server
 * whose lines quote no request line, a CGI program) writes no entry: the
 * ring's page would cost each fork child a fault and a copy. */
FORK_PATH void log_order_answered(uint64_t serial, uint32_t buckets, uint32_t path)
{
	uint64_t p = atomic_fetch_add_explicit(&order_next, 1, memory_order_seq_cst);
	/* A place made meanwhile reads order_next after it says so (both
	 * sequentially consistent): either it starts after p, or this sees
	 * it and writes p's entry. */
	if (!atomic_load_explicit(&places_made, memory_order_seq_cst))
		return;
	struct answered_entry *e = &order_ring[p % ORDER_RING];
	uint32_t was = atomic_load_explicit(&e->tag, memory_order_relaxed);
	/* A writer a whole ring behind still in it, or one ahead already:
	 * the entry stays unreadable for position p. */
	/* Acquire: the writer before, whose tag this one replaces, set
	 * paths_made before it released the entry; this one then sees it
	 * and clears the path that writer may have left. */
	if ((was & ORDER_WRITING) || tag_not_older(was, p) ||
	    !atomic_compare_exchange_strong_explicit(&e->tag, &was, order_tag(p) | ORDER_WRITING,
						     memory_order_acquire, memory_order_relaxed))
		return;
	atomic_thread_fence(memory_order_release);
	atomic_store_explicit(&e->serial, serial, memory_order_relaxed);
	atomic_store_explicit(&e->buckets, buckets, memory_order_relaxed);
	if (path != 0 && !atomic_load_explicit(&paths_made, memory_order_relaxed))
		atomic_store_explicit(&paths_made, true, memory_order_relaxed);
	if (atomic_load_explicit(&paths_made, memory_order_relaxed))
		atomic_store_explicit(&order_paths[p % ORDER_RING], path, memory_order_relaxed);
	atomic_store_explicit(&e->tag, order_tag(p), memory_order_release);
}

/* Whether the entry at position p is request serial's whose line a log
 * line quoting a line with buckets may be; false if it is another's, or
 * being written, or holds another position. */
static bool entry_quoted(uint64_t p, uint32_t buckets, uint64_t *serial)
{
	const struct answered_entry *e = &order_ring[p % ORDER_RING];
	uint32_t tag = order_tag(p);
	if (atomic_load_explicit(&e->tag, memory_order_acquire) != tag)
		return false;
	*serial = atomic_load_explicit(&e->serial, memory_order_relaxed);
	uint32_t b = atomic_load_explicit(&e->buckets, memory_order_relaxed);
	/* Without paths_made seen, a path written meanwhile is missed: the
	 * line is taken for no request, never for another's. */
	uint32_t path = 0;
	if (b != buckets && atomic_load_explicit(&paths_made, memory_order_relaxed))
		path = atomic_load_explicit(&order_paths[p % ORDER_RING], memory_order_relaxed);
	atomic_thread_fence(memory_order_acquire);
	return atomic_load_explicit(&e->tag, memory_order_relaxed) == tag &&
	       (b == buckets || (path != 0 && path == buckets));
}

/* Whether this thread took pl (busy); false if another has it. */
static bool place_try(struct log_place *pl)
{
	uint32_t idle = 0;
	return atomic_compare_exchange_strong_explicit(&pl->busy, &idle, 1, memory_order_acquire,
						       memory_order_relaxed);
}

/* fd's place, or NULL. */
static struct log_place *place_find(int fd)
{
	unsigned start = (unsigned)fd % ORDER_PLACES;
	for (unsigned i = 0; i < ORDER_PLACES; i++) {
		struct log_place *pl = &places[(start + i) % ORDER_PLACES];
		int32_t holder = atomic_load_explicit(&pl->fd, memory_order_acquire);
		if (holder == fd + 1)
			return pl;
		if (holder == 0)
			break;
	}
	return NULL;
}

/* Counts fd's lines from the ring's end: when the program opened fd
 * before it answered any request (none of its lines can be missing), its
 * first line taken in order is enough (the first may be another virtual
 * host's log's request, rebuilt); otherwise ORDER_QUIET of them. Leaves
 * the flushed mark as it is: a place made is unshown already, a line may
 * mark it while it is made, and a file opened again on the number keeps
 * it (log_order_log_opened). */
static void place_start(struct log_place *pl, bool opened)
{
	if (!atomic_load_explicit(&places_made, memory_order_seq_cst))
		atomic_store_explicit(&places_made, true, memory_order_seq_cst);
	pl->base = atomic_load_explicit(&order_next, memory_order_seq_cst);
	pl->taken = 0;
	pl->quiet = opened && pl->base == 0 ? ORDER_QUIET - 1 : 0;
}

/* A place for fd, which had none when place_find looked: a free one,
 * claimed (its fd -(fd + 1)), started, and taken (busy, *made true), or
 * the one another thread claimed for fd meanwhile (*made false, not
 * taken: it may be unstarted); NULL if none is free. A claim, not a busy
 * place, is what keeps others off: a thread that passed over a free place
 * busy as it was made would make fd a second one, and a line marking one
 * of the two as a buffer's would be lost to the other. */
static struct log_place *place_make(int fd, bool opened, bool *made)
{
	unsigned start = (unsigned)fd % ORDER_PLACES;
	*made = false;
	for (unsigned i = 0; i < ORDER_PLACES; i++) {
		struct log_place *pl = &places[(start + i) % ORDER_PLACES];
		/* Read first: a line on a descriptor past ORDER_PLACES comes
		 * here each time, and a compare-and-swap that fails still
		 * takes the cache line from the threads reading it. */
		int32_t holder = atomic_load_explicit(&pl->fd, memory_order_acquire);
		if (holder == 0 &&
		    atomic_compare_exchange_strong_explicit(&pl->fd, &holder, -(fd + 1),
							    memory_order_acquire, memory_order_acquire)) {
			/* No other thread takes a place whose fd it does not
			 * see as its own (place_find). */
			atomic_store_explicit(&pl->busy, 1, memory_order_relaxed);
			place_start(pl, opened);
			atomic_store_explicit(&pl->fd, fd + 1, memory_order_release);
			*made = true;
			return pl;
		}
		if (holder == fd + 1 || holder == -(fd + 1))
			return pl;
	}
	return NULL;
}

static void place_give(struct log_place *pl)
{
	atomic_store_explicit(&pl->busy, 0, memory_order_release);
}

/* A place for the file the program opened on fd, its count started
 * afresh: one fd had (another file's, closed) starts again; if a thread is
 * counting a line of that file in it, it is retired (its fd PLACE_RETIRED:
 * no fd's, and no longer free) and another made, rather than leave the
 * new file the old one's count and trust. A retired place is not made
 * again: one lost each time, which only a line of a closed file, counted
 * as the program opens another on its number, costs. Either way the mark
 * of a buffer's lines stays as the number had it: a program rotating its
 * log opens the new file on the old one's number and goes on writing it
 * as it did, its buffer's flushes too; a fresh, unshown mark let the first
 * flush of one line alone take the flushing thread's id (the shared buffer
 * of test_shared_log_buffer.py closed and opened again every 250 lines:
 * 1 to 5 of 3,120 lines wrong in each of 3 runs). A dup2 onto the number
 * (hook_fd.c) leaves the place as it is, count and trust with the mark:
 * the lines the program writes to that number go on. */
void log_order_log_opened(int fd)
{
	bool made;
	if (fd < 0)
		return;
	struct log_place *pl = place_find(fd);
	if (pl && place_try(pl)) {
		place_start(pl, true);
		place_give(pl);
		return;
	}
	bool flushed = pl && atomic_load_explicit(&pl->flushed, memory_order_relaxed);
	int32_t holder = fd + 1;
	if (pl && !atomic_compare_exchange_strong_explicit(&pl->fd, &holder, PLACE_RETIRED,
							   memory_order_relaxed, memory_order_relaxed))
		return; /* retired by another open of fd meanwhile, which made one */
	if ((pl = place_make(fd, true, &made)) && made) {
		if (flushed)
			atomic_store_explicit(&pl->flushed, true, memory_order_relaxed);
		place_give(pl);
	}
}

/* The set bits of v. Not __builtin_popcountll: without -mpopcnt that
 * calls libgcc's __popcountdi2, which the link puts after all of the
 * library's .text, in a window a server would map for it alone. */
static inline unsigned bits_set(uint64_t v)
{
	v -= (v >> 1) & 0x5555555555555555ull;
	v = (v & 0x3333333333333333ull) + ((v >> 2) & 0x3333333333333333ull);
	v = (v + (v >> 4)) & 0x0f0f0f0f0f0f0f0full;
	return (unsigned)((v * 0x0101010101010101ull) >> 56);
}

/* Moves pl's base by n requests, none of which a line is taken for now;
 * each of them no line was taken for is a hole. */
static LOOP_PATH void place_slide(struct log_place *pl, uint64_t n)
{
	uint64_t taken = n >= 64 ? pl->taken : pl->taken & ((1ull << n) - 1);
	uint64_t holes = n - bits_set(taken);
	if (holes) {
		/* As many lines in order as holes before trust comes back:
		 * lines rebuilt into later requests' lines come in order
		 * once their own requests are holes. */
		if (pl->quiet > 0)
			pl->quiet = 0;
		pl->quiet = holes > ORDER_RING ? -ORDER_RING
			    : pl->quiet - (int32_t)holes < -ORDER_RING ? -ORDER_RING
								    : pl->quiet - (int32_t)holes;
	}
	pl->taken = n >= 64 ? 0 : pl->taken >> n;
	pl->base += n;
}

/* Whether fd's lines are a buffer's, buffer saying this line shows so,
 * noted on pl (held or not: the mark only ever goes from unshown to shown
 * while fd stays open). */
static bool place_flushed(struct log_place *pl, bool buffer)
{
	if (buffer)
		atomic_store_explicit(&pl->flushed, true, memory_order_relaxed);
	return atomic_load_explicit(&pl->flushed, memory_order_relaxed);
}

/* log_order_line's first line on fd (>= 0), which had no place: the
 * place made for it, taken; NULL if another thread is making it (then
 * marked as place_flushed marks a busy one) or there was none to make (then
 * unplaced_flushed). *flushed as log_order_line's. Out of line: once a
 * descriptor, but for those past ORDER_PLACES. */
static __attribute__((noinline, cold)) struct log_place *place_new(int fd, bool buffer,
								  bool *flushed)
{
	bool made;
	struct log_place *pl = place_make(fd, false, &made);
	if (pl && made)
		return pl;
	if (pl) {
		*flushed = place_flushed(pl, buffer);
		return NULL;
	}
	if (buffer)
		atomic_store_explicit(&unplaced_flushed, true, memory_order_relaxed);
	*flushed = atomic_load_explicit(&unplaced_flushed, memory_order_relaxed);
	return NULL;
}

LOOP_PATH uint64_t log_order_line(int fd, uint32_t buckets, bool buffer, bool *flushed)
{
	*flushed = false;
	struct log_place *pl = fd >= 0 ? place_find(fd) : NULL;
	if (pl && !place_try(pl)) {
		/* Another thread counts a line of fd's (a line its bracket
		 * held, released while the program flushes its buffer): this
		 * one is placed at no request, and is still a buffer's if
		 * fd's lines were shown to be. */
		*flushed = place_flushed(pl, buffer);
		return 0;
	}
	if (!pl && (fd < 0 || !(pl = place_new(fd, buffer, flushed))))
		return 0;
	*flushed = place_flushed(pl, buffer);
	uint64_t head = atomic_load_explicit(&order_next, memory_order_acquire);
	if (head - pl->base > ORDER_RING) /* its requests were overwritten */
		place_slide(pl, head - ORDER_RING - pl->base);
	uint64_t placed = 0, serial = 0, i;
	bool found = false;
	for (i = 0; i < ORDER_SEARCH && pl->base + i < head; i++)
		if ((i >= 64 || !(pl->taken >> i & 1)) && entry_quoted(pl->base + i, buckets, &serial)) {
			found = true;
			break;
		}
	if (found && i == 0 && pl->taken == 0) {
		/* In order: the oldest request no line was taken for, and
		 * none after it was. */
		if (pl->quiet < ORDER_QUIET)
			pl->quiet++;
		else if (buckets != 0) /* 0: a line no request is named by */
			placed = serial;
	} else if (pl->quiet > 0) {
		pl->quiet = 0;
	}
	if (found) {
		/* Requests ORDER_HOLE_AGE or more before the one taken go
		 * untaken for good (holes). */
		if (i >= ORDER_HOLE_AGE) {
			place_slide(pl, i - ORDER_HOLE_AGE + 1);
			i = ORDER_HOLE_AGE - 1;
		}
		pl->taken |= 1ull << i;
		/* place_slide by one over a request a line was taken for: no
		 * hole, so only the base and the bits move. */
		while (pl->taken & 1) {
			pl->taken >>= 1;
			pl->base++;
		}
	}
	place_give(pl);
	return placed;
}

void log_order_release(void)
{
	table_release(order_ring, sizeof(order_ring));
	table_release(order_paths, sizeof(order_paths));
	table_release(places, sizeof(places));
	atomic_store_explicit(&places_made, false, memory_order_relaxed);
	atomic_store_explicit(&paths_made, false, memory_order_relaxed);
	atomic_store_explicit(&unplaced_flushed, false, memory_order_relaxed);
	atomic_store_explicit(&order_next, 0, memory_order_relaxed);
}
