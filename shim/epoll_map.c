/*
 * epoll_map.c - epoll data word -> fd (see epoll_map.h).
 *
 * Per fd, its registration: the data word and (epoll fd + 1, that number's
 * instance generation) packed in one word, written key-last so a reader
 * never takes half of one registration for another; and, for an epoll fd,
 * in a table of its own, its instance's generation, connections, waiter
 * and edges. These entries lie in pages of EPOLL_PAGE fds, each mapped
 * when an fd of it is first given one: memory follows the descriptor
 * numbers in use. An index, open
 * addressing with a bounded probe, points from (epfd, data) to fds: a slot
 * is one word, the fd and the high bits of the key's hash, only a hint
 * until the fd's registration confirms it, and a key (or the bits of one)
 * seen for two live fds is marked ambiguous for good: two keys that share
 * those bits cost their ids, never give a wrong fd. The index starts at
 * INDEX_MIN_BITS and is rebuilt, under the writer lock, into a table at
 * most half full of what it still points at when three quarters of its
 * slots are taken or a key finds no room in its probe window: a process
 * pays memory for the registrations it holds, not for a table sized for
 * the most any could (hashed keys touch every page of a table). A reader
 * of the table being replaced reads hints or zeroes, never an fd the
 * registration does not confirm; replaced tables are emptied, never
 * unmapped (a reader may still be in one), and one is kept to be the next
 * rebuild's of its size. Writers (epoll_ctl) share a spin lock that yields the processor
 * while another thread holds it; a writer that finds it held by its own
 * thread (a signal handler inside epoll_ctl) or still held after a long
 * while, or an index too full to place a key, switches lookups off for
 * the rest of the process: losing ids is allowed, a wrong fd is not. A
 * count moves before and after every change of what lookups answer from
 * (epoll_map_changes), so that an answer kept meanwhile (epoll_queue's
 * kept events) is known to stand while it has not moved. A
 * fork child starts with the lock free. The tables are mapped when the
 * process makes its first epoll instance; a process without one pays
 * nothing for them.
 *
 * Must never allocate (but for its tables' mappings), block or take a lock
 * a signal handler could wait on.
 */
#include "epoll_map.h"

#include <sched.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <xxhash.h>

#include "conn_table.h"
#include "fork_hot.h"
#include "map_once.h"
#include "raw_syscall.h"
#include "shim_init.h"

#define INDEX_MIN_BITS 10 /* 1,024 slots: 16 KiB */
#define INDEX_MAX_BITS 22 /* room for a registration on every fd below FD_LIMIT */
#define EPOLL_PAGE 1024u
/* Linear probing from three quarters full: a window of 64 places 12,288
 * keys in 16,384 slots (a window of 16 left over 100 of them no room). */
#define PROBE_MAX 64

struct registration {
	_Atomic uint64_t data;
	_Atomic uint64_t key;     /* gen << 22 | (epfd + 1), | COUNTED; 0: none */
};
#define COUNTED (1ull << 21)  /* a connection, counted in its instance's conns */
#define EPFD_OF(key) ((int)((key) & (COUNTED - 1)) - 1)
_Static_assert(FD_LIMIT < COUNTED, "epfd + 1 fits below COUNTED");

/* An index slot: its key's hash with the low SLOT_FD_BITS replaced by
 * fd + 1, or by AMBIGUOUS; 0: empty. A table of 2^bits slots puts a key at
 * the top bits of its hash, which the slot keeps: a rebuild places a slot
 * without its key. */
typedef _Atomic uint64_t index_slot;
#define SLOT_FD_BITS 21
#define SLOT_FD ((1ull << SLOT_FD_BITS) - 1)
#define AMBIGUOUS SLOT_FD
_Static_assert(FD_LIMIT < SLOT_FD, "fd + 1 fits in a slot below AMBIGUOUS");

/* What the map keeps for every fd. */
struct epoll_fd {
	struct registration registration; /* as a registered fd */
	_Atomic uint32_t stamp;      /* changes of the fd (epoll_map_stamp) */
	_Atomic uint32_t events;     /* as a registered fd: its registration's
					events mask (0: not known) */
};
_Static_assert(sizeof(struct epoll_fd) == 24, "an epoll map page is 24 KiB");

/* What it keeps for an epoll fd, in pages of their own: a server's
 * thousands of connections pay nothing for its few instances. */
struct epoll_instance {
	_Atomic uint32_t generation; /* its instance's */
	_Atomic uint32_t conns;      /* connections registered */
	_Atomic int32_t waiter;      /* the one thread that waited on it,
					WAITERS_MANY, or 0 */
	_Atomic bool edges;          /* an edge-triggered or one-shot
					registration was made */
};

/* An index table: its slots' address (page-aligned) | log2 of their
 * number, read in one load; 0: none. */
typedef uintptr_t index_word;
#define INDEX_BITS_MASK ((uintptr_t)31)
/* A probe window of a large table fills from about a quarter full. */
_Static_assert(INDEX_MAX_BITS <= 31 && (1ull << INDEX_MAX_BITS) >= 4ull * FD_LIMIT,
	       "the index's size fits its word and holds every fd at a quarter load");
_Static_assert(INDEX_MAX_BITS <= 64 - SLOT_FD_BITS, "a slot keeps the bits of its home");

/* Which entries of EPOLL_PAGE fds a page of epoll_tables.pages holds. */
enum page_kind { FD_ENTRIES, INSTANCE_ENTRIES, KINDS };

/* The index first and each page's two kinds side by side: a process whose
 * fds stay under 254 * EPOLL_PAGE finds all it reads here on one page. */
struct epoll_tables {
	_Atomic index_word index; /* 0 until the first registration */
	/* Under the writer lock: */
	uint32_t index_used;  /* the index's slots that are not empty */
	index_word spare;     /* a replaced table, emptied: the next of its size */
	/* [i][FD_ENTRIES]: struct epoll_fd of fds i * EPOLL_PAGE on;
	 * [i][INSTANCE_ENTRIES]: their struct epoll_instance. NULL until mapped. */
	void *_Atomic pages[FD_LIMIT / EPOLL_PAGE][KINDS];
};
/* struct epoll_tables. Read at every close (epoll_map_tracks): FORK_HOT, on
 * the page every process and fork child writes, not on one a process that
 * never waits on epoll would map just to read this. */
static void *_Atomic tables FORK_HOT;
#define WAITERS_MANY (-1)
#define LOCK_YIELDS 100000
/* While a writer rebuilds the index (a scan of it: 50 ms at 2^19 slots),
 * a yield counts a tenth. */
#define REBUILD_PATIENCE 10

static _Atomic uint32_t writer_busy;
static _Atomic bool rebuilding; /* the writer holding the lock rebuilds the index */
static __thread bool writing __attribute__((tls_model("initial-exec")));
static _Atomic bool broken;
/* Moves before and after every change of what epoll_map_lookup answers
 * from (epoll_map_changes). */
static _Atomic uint32_t lookup_changes;

static void lookup_change(void)
{
	atomic_fetch_add_explicit(&lookup_changes, 1, memory_order_seq_cst);
}

/* Lookups stop for good (the top comment says when). */
static void break_lookups(void)
{
	atomic_store(&broken, true);
	lookup_change();
}

static bool in_range(int fd)
{
	return (unsigned)fd < FD_LIMIT;
}

/* fd's entry of size bytes in the pages of one kind, whose first pointer
 * column is (&epoll_tables.pages[0][kind]: the next page's is KINDS on),
 * NULL if fd is out of range or no fd of its page has one (every field of
 * it reads as 0 then). */
static void *page_entry_now(void *_Atomic const *column, int fd, size_t size)
{
	if (!in_range(fd))
		return NULL;
	char *page = atomic_load_explicit(&column[(unsigned)fd / EPOLL_PAGE * KINDS],
					  memory_order_acquire);
	return page ? page + (unsigned)fd % EPOLL_PAGE * size : NULL;
}

/* The same, its page mapped if it was not; NULL if fd is out of range or
 * the mapping failed. The page's end is noted first (fd_state_note_end),
 * so that any thread that finds a page finds it noted. */
static LOOP_PATH void *page_entry_mapped(void *_Atomic *column, int fd, size_t size)
{
	if (!in_range(fd))
		return NULL;
	unsigned index = (unsigned)fd / EPOLL_PAGE;
	fd_state_note_end((index + 1) * EPOLL_PAGE);
	char *page = map_once(&column[index * KINDS], EPOLL_PAGE * size);
	return page ? page + (unsigned)fd % EPOLL_PAGE * size : NULL;
}

/* page_entry_now, or page_entry_mapped when fd's page is not there (one
 * that is was noted before it was published, and the end only grows). */
static inline void *page_entry_made(void *_Atomic *column, int fd, size_t size)
{
	void *e = page_entry_now((void *_Atomic const *)column, fd, size);
	return e ? e : page_entry_mapped(column, fd, size);
}

static struct epoll_fd *entry_now(const struct epoll_tables *t, int fd)
{
	return page_entry_now(&t->pages[0][FD_ENTRIES], fd, sizeof(struct epoll_fd));
}

static struct epoll_fd *entry_made(struct epoll_tables *t, int fd)
{
	return page_entry_made(&t->pages[0][FD_ENTRIES], fd, sizeof(struct epoll_fd));
}

/* epfd's instance entry, as entry_now and entry_made. */
static struct epoll_instance *instance_now(const struct epoll_tables *t, int epfd)
{
	return page_entry_now(&t->pages[0][INSTANCE_ENTRIES], epfd,
			      sizeof(struct epoll_instance));
}

static struct epoll_instance *instance_made(struct epoll_tables *t, int epfd)
{
	return page_entry_made(&t->pages[0][INSTANCE_ENTRIES], epfd,
			       sizeof(struct epoll_instance));
}

/* The tables, NULL before the first epoll instance. */
static struct epoll_tables *tables_now(void)
{
	return atomic_load_explicit(&tables, memory_order_acquire);
}

/* The tables, mapped if they were not; NULL if mapping fails. */
static struct epoll_tables *tables_made(void)
{
	return map_once(&tables, sizeof(struct epoll_tables));
}

static LOOP_PATH uint64_t key_of(const struct epoll_tables *t, int epfd)
{
	const struct epoll_instance *e = instance_now(t, epfd);
	uint64_t gen = e ? atomic_load_explicit(&e->generation, memory_order_relaxed) : 0;
	return gen << 22 | (uint64_t)(epfd + 1);
}

/* (epfd, data)'s hash, its low SLOT_FD_BITS zero: what its slots hold
 * but the fd. */
static uint64_t hash_of(int epfd, uint64_t data)
{
	uint64_t words[2] = {data, (uint64_t)epfd};
	return XXH3_64bits(words, sizeof words) & ~SLOT_FD;
}

static index_slot *index_slots(index_word w)
{
	return (index_slot *)(w & ~INDEX_BITS_MASK);
}

static unsigned index_mask(index_word w)
{
	return (1u << (w & INDEX_BITS_MASK)) - 1;
}

/* Where a key of hash h (or a slot holding it) starts its probe in
 * table w. */
static unsigned home_in(index_word w, uint64_t h)
{
	return (unsigned)(h >> (64 - (w & INDEX_BITS_MASK)));
}

/* Whether fd's registration is (epfd's current instance, data). */
static LOOP_PATH bool registered(const struct epoll_tables *t, int fd, int epfd, uint64_t data)
{
	const struct epoll_fd *e = entry_now(t, fd);
	if (!e)
		return false;
	const struct registration *r = &e->registration;
	uint64_t key = atomic_load_explicit(&r->key, memory_order_acquire);
	uint64_t d = atomic_load_explicit(&r->data, memory_order_acquire);
	return key != 0 && (key & ~COUNTED) == key_of(t, epfd) && d == data &&
	       atomic_load_explicit(&r->key, memory_order_acquire) == key;
}

/* registered, and fd's events mask read around it, as
 * epoll_map_registration reads it: *events is the mask, or 0 (not known)
 * when it was 0 or changed meanwhile. Whether fd is registered is
 * answered exactly as registered answers it, whatever the mask. */
static LOOP_PATH bool registered_with_events(const struct epoll_tables *t, int fd, int epfd,
					     uint64_t data, uint32_t *events)
{
	const struct epoll_fd *e = entry_now(t, fd);
	uint32_t mask = e ? atomic_load_explicit(&e->events, memory_order_acquire) : 0;
	if (!registered(t, fd, epfd, data))
		return false;
	*events = atomic_load_explicit(&e->events, memory_order_acquire) == mask ? mask : 0;
	return true;
}

/* Whether slot v (neither empty nor AMBIGUOUS) still points at its fd:
 * the fd's registration, on its instance's current generation, hashes to
 * the slot's bits. */
static LOOP_PATH bool slot_confirmed(const struct epoll_tables *t, uint64_t v)
{
	const struct epoll_fd *e = entry_now(t, (int)(v & SLOT_FD) - 1);
	if (!e)
		return false;
	const struct registration *r = &e->registration;
	uint64_t key = atomic_load_explicit(&r->key, memory_order_acquire);
	uint64_t d = atomic_load_explicit(&r->data, memory_order_acquire);
	int epfd = EPFD_OF(key);
	return key != 0 && (key & ~COUNTED) == key_of(t, epfd) &&
	       hash_of(epfd, d) == (v & ~SLOT_FD) &&
	       atomic_load_explicit(&r->key, memory_order_acquire) == key;
}

static LOOP_PATH bool writer_lock(void)
{
	if (writing) {
		break_lookups();
		return false;
	}
	STATE_MADE(MADE_EPOLL_LOCK); /* before the lock: a fork in between frees it */
	for (unsigned yields = 0, tries = 0; tries < LOCK_YIELDS; yields++) {
		uint32_t expected = 0;
		if (atomic_compare_exchange_weak_explicit(&writer_busy, &expected, 1,
							  memory_order_acquire,
							  memory_order_relaxed)) {
			writing = true;
			return true;
		}
		if (!atomic_load_explicit(&rebuilding, memory_order_relaxed) ||
		    yields % REBUILD_PATIENCE == 0)
			tries++;
		raw_sched_yield();
	}
	break_lookups();
	return false;
}

static void writer_unlock(void)
{
	writing = false;
	atomic_store_explicit(&writer_busy, 0, memory_order_release);
}

void epoll_map_after_fork(void)
{
	if (STATE_WAS_MADE(MADE_EPOLL_LOCK) &&
	    atomic_load_explicit(&writer_busy, memory_order_relaxed)) {
		atomic_store_explicit(&writer_busy, 0, memory_order_relaxed);
		atomic_store_explicit(&rebuilding, false, memory_order_relaxed);
	}
	writing = false;
}

LOOP_PATH uint32_t epoll_map_stamp(int fd)
{
	const struct epoll_tables *t = tables_now();
	const struct epoll_fd *e = t ? entry_now(t, fd) : NULL;
	return e ? atomic_load_explicit(&e->stamp, memory_order_acquire) : 0;
}

LOOP_PATH uint32_t epoll_map_changes(void)
{
	return atomic_load_explicit(&lookup_changes, memory_order_acquire);
}

LOOP_PATH void epoll_map_changed(int fd)
{
	struct epoll_tables *t = tables_now();
	struct epoll_fd *e = t ? entry_made(t, fd) : NULL;
	if (e)
		atomic_fetch_add_explicit(&e->stamp, 1, memory_order_release);
}

LOOP_PATH bool epoll_map_one_waiter(int epfd, int32_t tid)
{
	struct epoll_tables *t = tables_now();
	struct epoll_instance *e = t ? instance_made(t, epfd) : NULL;
	if (!e)
		return false;
	int32_t w = atomic_load_explicit(&e->waiter, memory_order_relaxed);
	if (w == tid)
		return true;
	if (w == 0 && atomic_compare_exchange_strong(&e->waiter, &w, tid))
		return true;
	if (w != WAITERS_MANY)
		atomic_store_explicit(&e->waiter, WAITERS_MANY, memory_order_relaxed);
	return false;
}

LOOP_PATH void epoll_map_edge_registered(int epfd)
{
	struct epoll_tables *t = tables_made();
	struct epoll_instance *e = t ? instance_made(t, epfd) : NULL;
	if (e && !atomic_load_explicit(&e->edges, memory_order_relaxed))
		atomic_store_explicit(&e->edges, true, memory_order_release);
}

LOOP_PATH bool epoll_map_has_edges(int epfd)
{
	const struct epoll_tables *t = tables_now();
	/* Without the tables nothing was seen registered: no events are kept
	 * then anyway (they cannot be named). */
	if (!t || !in_range(epfd))
		return true;
	const struct epoll_instance *e = instance_now(t, epfd);
	return e && atomic_load_explicit(&e->edges, memory_order_acquire);
}

LOOP_PATH void epoll_map_new_instance(int epfd)
{
	struct epoll_tables *t = tables_made();
	struct epoll_fd *e = t ? entry_made(t, epfd) : NULL;
	struct epoll_instance *i = t ? instance_made(t, epfd) : NULL;
	if (!e || !i) {
		if (t && in_range(epfd))
			break_lookups(); /* an instance it cannot tell apart */
		return;
	}
	atomic_store_explicit(&i->edges, false, memory_order_relaxed);
	atomic_store_explicit(&i->waiter, 0, memory_order_relaxed);
	atomic_fetch_add_explicit(&e->stamp, 1, memory_order_release);
	lookup_change();
	atomic_fetch_add_explicit(&i->generation, 1, memory_order_relaxed);
	lookup_change();
	atomic_store_explicit(&i->conns, 0, memory_order_relaxed);
}

/* A registration with key ends: its connection leaves its instance's
 * count, if that instance still lives. */
static LOOP_PATH void uncount(struct epoll_tables *t, uint64_t key)
{
	int epfd = EPFD_OF(key);
	struct epoll_instance *e = (key & COUNTED) ? instance_now(t, epfd) : NULL;
	if (e && (key & ~COUNTED) == key_of(t, epfd) &&
	    atomic_load_explicit(&e->conns, memory_order_relaxed) > 0)
		atomic_fetch_sub_explicit(&e->conns, 1, memory_order_relaxed);
}

LOOP_PATH unsigned epoll_map_connections(int epfd)
{
	const struct epoll_tables *t = tables_now();
	const struct epoll_instance *e = t ? instance_now(t, epfd) : NULL;
	return e ? atomic_load_explicit(&e->conns, memory_order_relaxed) : 0;
}

/* Points the index table w at fd for (epfd, data); under the writer lock.
 * False if its probe window has no slot to spare. */
static bool index_place(struct epoll_tables *t, index_word w, int epfd, int fd, uint64_t data)
{
	index_slot *slots = index_slots(w), *free_slot = NULL;
	uint64_t h = hash_of(epfd, data);
	unsigned mask = index_mask(w), home = home_in(w, h);
	for (unsigned k = 0; k < PROBE_MAX; k++) {
		index_slot *s = &slots[(home + k) & mask];
		uint64_t v = atomic_load_explicit(s, memory_order_relaxed);
		if (v == 0) {
			if (!free_slot) {
				free_slot = s;
				t->index_used++;
			}
			break;
		}
		uint64_t f = v & SLOT_FD;
		if ((v & ~SLOT_FD) == h) {
			if (f == AMBIGUOUS || f == (uint64_t)fd + 1)
				return true;
			/* Its fd still hashes here: it holds this key, or
			 * another with the same bits, which has no slot of
			 * its own to tell the two apart. */
			atomic_store_explicit(s, h | (slot_confirmed(t, v) ? AMBIGUOUS
									   : (uint64_t)fd + 1),
					      memory_order_release);
			return true;
		}
		if (!free_slot && f != AMBIGUOUS && !slot_confirmed(t, v))
			free_slot = s; /* stale: its fd moved on */
	}
	if (!free_slot)
		return false;
	atomic_store_explicit(free_slot, h | ((uint64_t)fd + 1), memory_order_release);
	return true;
}

/* Whether slot v of the index still says something: it points at an fd
 * whose registration confirms it, or marks its key ambiguous. */
static bool slot_kept(const struct epoll_tables *t, uint64_t v)
{
	return v != 0 && ((v & SLOT_FD) == AMBIGUOUS || slot_confirmed(t, v));
}

/* Copies slot value v into the new table w (not yet published; its keys
 * are those of the old, each once); false if its probe window is full. */
static bool slot_copy(index_word w, uint64_t v)
{
	index_slot *slots = index_slots(w);
	unsigned mask = index_mask(w), home = home_in(w, v);
	for (unsigned k = 0; k < PROBE_MAX; k++) {
		index_slot *n = &slots[(home + k) & mask];
		if (atomic_load_explicit(n, memory_order_relaxed) == 0) {
			atomic_store_explicit(n, v, memory_order_relaxed);
			return true;
		}
	}
	return false;
}

/* A table of 2^bits slots for the index, zeroes: the spare if it has that
 * size, else a new mapping; NULL if mapping fails. */
static index_slot *index_table(struct epoll_tables *t, unsigned bits)
{
	if (t->spare && (t->spare & INDEX_BITS_MASK) == bits) {
		index_slot *slots = index_slots(t->spare); /* emptied when replaced */
		t->spare = 0;
		return slots;
	}
	int saved = errno;
	void *slots = mmap(NULL, sizeof(index_slot) << bits, PROT_READ | PROT_WRITE,
			   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	errno = saved;
	return slots == MAP_FAILED ? NULL : slots;
}

/* Empties table w (table_release) and keeps it as the spare. */
static void index_retire(struct epoll_tables *t, index_word w)
{
	table_release(index_slots(w), sizeof(index_slot) << (w & INDEX_BITS_MASK));
	t->spare = w;
}

/* Copies the kept slots of table old (0: none) into the new table w;
 * false if a probe window there is full. */
static bool index_copy(const struct epoll_tables *t, index_word old, index_word w, uint32_t *used)
{
	*used = 0;
	for (unsigned i = 0; old && i <= index_mask(old); i++) {
		uint64_t v = atomic_load_explicit(&index_slots(old)[i], memory_order_relaxed);
		if (!slot_kept(t, v))
			continue;
		if (!slot_copy(w, v))
			return false;
		++*used;
	}
	return true;
}

/* Replaces the index with a table at most half full of the old one's kept
 * slots, at least 2^grow_bits large (the old one's size, or one more when a
 * key found no room), larger again while a probe window there fills; under
 * the writer lock. False if it cannot (a mapping failed, or the largest
 * table would not hold them). */
static LOOP_PATH bool index_rebuild(struct epoll_tables *t, unsigned grow_bits)
{
	index_word old = atomic_load_explicit(&t->index, memory_order_relaxed);
	atomic_store_explicit(&rebuilding, true, memory_order_relaxed);
	unsigned kept = 0;
	if (old)
		for (unsigned i = 0; i <= index_mask(old); i++)
			kept += slot_kept(t, atomic_load_explicit(&index_slots(old)[i],
								 memory_order_relaxed));
	unsigned bits = grow_bits < INDEX_MIN_BITS ? INDEX_MIN_BITS : grow_bits;
	while (bits <= INDEX_MAX_BITS && 2ull * (kept + 1) > 1ull << bits)
		bits++;
	bool done = false;
	for (; bits <= INDEX_MAX_BITS && !done; bits++) {
		index_slot *slots = index_table(t, bits);
		uint32_t used;
		if (!slots)
			break;
		index_word w = (index_word)slots | bits;
		if (!index_copy(t, old, w, &used)) {
			index_retire(t, w);
			continue;
		}
		atomic_store_explicit(&t->index, w, memory_order_release);
		t->index_used = used;
		if (old)
			index_retire(t, old);
		done = true;
	}
	atomic_store_explicit(&rebuilding, false, memory_order_relaxed);
	return done;
}

/* Points the index at fd for (epfd, data), rebuilding it first when it is
 * three quarters full and again with twice the slots when the key's probe
 * window is full; under the writer lock. A key it cannot place switches
 * lookups off. */
static void index_put(struct epoll_tables *t, int epfd, int fd, uint64_t data)
{
	index_word w = atomic_load_explicit(&t->index, memory_order_relaxed);
	if ((!w || 4ull * (t->index_used + 1) > 3ull << (w & INDEX_BITS_MASK)) &&
	    !index_rebuild(t, w & INDEX_BITS_MASK) && !w) {
		break_lookups();
		return;
	}
	for (int tries = 0;; tries++) {
		w = atomic_load_explicit(&t->index, memory_order_relaxed);
		if (index_place(t, w, epfd, fd, data))
			return;
		if (tries == 2 || !index_rebuild(t, (unsigned)(w & INDEX_BITS_MASK) + 1))
			break;
	}
	break_lookups();
}

/* Records fd's registration on epfd with data and events; under the writer
 * lock. */
static LOOP_PATH void registration_put(struct epoll_tables *t, int epfd, int fd, uint64_t data,
				       uint32_t events, bool conn)
{
	struct epoll_fd *e = entry_made(t, fd);
	struct epoll_instance *instance = instance_made(t, epfd);
	if (!e || !instance) {
		break_lookups(); /* a registration it cannot record */
		return;
	}
	struct registration *r = &e->registration;
	uint64_t old = atomic_load_explicit(&r->key, memory_order_relaxed);
	uint64_t key = key_of(t, epfd);
	if ((old & ~COUNTED) == key) {
		key = old; /* EPOLL_CTL_MOD: counted as before */
	} else {
		uncount(t, old);
		if (conn) {
			key |= COUNTED;
			atomic_fetch_add_explicit(&instance->conns, 1, memory_order_relaxed);
		}
	}
	atomic_store_explicit(&r->key, 0, memory_order_release);
	atomic_store_explicit(&r->data, data, memory_order_release);
	atomic_store_explicit(&e->events, events, memory_order_release);
	atomic_store_explicit(&r->key, key, memory_order_release);
	index_put(t, epfd, fd, data);
}

LOOP_PATH void epoll_map_set(int epfd, int fd, uint64_t data, uint32_t events)
{
	struct epoll_tables *t;
	if (!in_range(fd) || !in_range(epfd) || atomic_load(&broken) || !(t = tables_made()))
		return;
	if (!writer_lock())
		return;
	lookup_change();
	registration_put(t, epfd, fd, data, events, fd_class(fd) & FD_CONN);
	lookup_change();
	writer_unlock();
}

LOOP_PATH bool epoll_map_registration(int epfd, int fd, struct epoll_event *out)
{
	const struct epoll_tables *t = tables_now();
	const struct epoll_fd *e = t && in_range(fd) && in_range(epfd) ? entry_now(t, fd) : NULL;
	if (!e)
		return false;
	uint64_t data = atomic_load_explicit(&e->registration.data, memory_order_acquire);
	uint32_t events = atomic_load_explicit(&e->events, memory_order_acquire);
	if (events == 0 || !registered(t, fd, epfd, data) ||
	    atomic_load_explicit(&e->events, memory_order_acquire) != events)
		return false;
	out->events = events;
	out->data.u64 = data;
	return true;
}

bool epoll_map_adopt_instance(int epfd, bool shared)
{
	struct epoll_tables *t = tables_made();
	if (!t || !in_range(epfd))
		return t != NULL;
	epoll_map_new_instance(epfd);
	struct epoll_instance *e = instance_now(t, epfd);
	if (shared && e)
		atomic_store_explicit(&e->waiter, WAITERS_MANY, memory_order_relaxed);
	return true;
}

void epoll_map_import(int epfd, uint32_t epfd_stamp, int fd, uint32_t fd_stamp, uint64_t data,
		      uint32_t events, bool conn)
{
	struct epoll_tables *t = tables_now();
	if (!t || !in_range(fd) || !in_range(epfd) || atomic_load(&broken) || !writer_lock())
		return;
	/* epoll_ctl stamps fd after its registration changed, then takes
	 * this lock to record it: a stamp still the same means no hooked call
	 * changed the registration since /proc showed it. */
	struct epoll_fd *e = entry_made(t, fd), *epfd_entry = entry_made(t, epfd);
	struct epoll_instance *instance = instance_made(t, epfd);
	if (e && epfd_entry && instance &&
	    atomic_load_explicit(&epfd_entry->stamp, memory_order_acquire) == epfd_stamp &&
	    atomic_load_explicit(&e->stamp, memory_order_acquire) == fd_stamp &&
	    atomic_load_explicit(&e->registration.key, memory_order_relaxed) == 0) {
		if (events & (EPOLLET | EPOLLONESHOT))
			atomic_store_explicit(&instance->edges, true, memory_order_release);
		lookup_change();
		registration_put(t, epfd, fd, data, events, conn);
		lookup_change();
	}
	writer_unlock();
}

void epoll_map_delete(int epfd, int fd)
{
	struct epoll_tables *t = tables_now();
	struct epoll_fd *e = t && in_range(epfd) ? entry_now(t, fd) : NULL;
	if (!e)
		return;
	lookup_change();
	uint64_t key = atomic_exchange_explicit(&e->registration.key, 0, memory_order_acq_rel);
	if ((key & ~COUNTED) == key_of(t, epfd))
		uncount(t, key);
	else if (key)
		atomic_store_explicit(&e->registration.key, key, memory_order_release);
	lookup_change();
}

void epoll_map_release(void)
{
	struct epoll_tables *t = tables_now();
	if (!t)
		return;
	/* The pages stay mapped, zeroes: what an entry never given reads as.
	 * None lies past fd_state_end (noted before it is published): the
	 * pointers past it are not read, whose pages would otherwise become
	 * resident only to say NULL. */
	unsigned pages = (fd_state_end() + EPOLL_PAGE - 1) / EPOLL_PAGE;
	lookup_change();
	for (unsigned i = 0; i < pages && i < FD_LIMIT / EPOLL_PAGE; i++) {
		struct epoll_fd *page =
			atomic_load_explicit(&t->pages[i][FD_ENTRIES], memory_order_acquire);
		if (page)
			table_release(page, EPOLL_PAGE * sizeof(struct epoll_fd));
		struct epoll_instance *instances =
			atomic_load_explicit(&t->pages[i][INSTANCE_ENTRIES], memory_order_acquire);
		if (instances)
			table_release(instances, EPOLL_PAGE * sizeof(struct epoll_instance));
	}
	index_word w = atomic_load_explicit(&t->index, memory_order_acquire);
	if (w)
		table_release(index_slots(w), sizeof(index_slot) << (w & INDEX_BITS_MASK));
	t->index_used = 0;
	lookup_change();
}

FORK_PATH bool epoll_map_tracks(int fd)
{
	const struct epoll_tables *t = tables_now();
	if (!t)
		return false;
	const struct epoll_fd *e = entry_now(t, fd);
	const struct epoll_instance *i = instance_now(t, fd);
	return (e && atomic_load_explicit(&e->registration.key, memory_order_relaxed)) ||
	       (i && atomic_load_explicit(&i->generation, memory_order_relaxed));
}

/* Number epfd stops naming its instance (closed, or replaced by dup2, dup3):
 * the registrations made under it are void, as for a new instance, so that
 * another instance it comes to name (dup2 or F_DUPFD onto it) is not
 * answered for with the old one's. */
static void instance_ends(struct epoll_tables *t, int epfd)
{
	struct epoll_instance *i = instance_now(t, epfd);
	if (i && atomic_load_explicit(&i->generation, memory_order_relaxed))
		epoll_map_new_instance(epfd);
}

LOOP_PATH void epoll_map_forget(int fd)
{
	struct epoll_tables *t = tables_now();
	struct epoll_fd *e = t ? entry_now(t, fd) : NULL;
	if (!e)
		return;
	atomic_fetch_add_explicit(&e->stamp, 1, memory_order_release);
	if (atomic_load_explicit(&e->registration.key, memory_order_relaxed)) {
		lookup_change();
		uncount(t, atomic_exchange_explicit(&e->registration.key, 0, memory_order_acq_rel));
		lookup_change();
	}
	instance_ends(t, fd);
}

/* epoll_map_lookup, and with events non-NULL the found fd's events mask
 * too (registered_with_events): inlined into both, so that the lookup
 * alone reads no mask. */
static inline __attribute__((always_inline)) int lookup(int epfd, uint64_t data, uint64_t h,
							uint32_t *events)
{
	const struct epoll_tables *t = tables_now();
	if (!t || !in_range(epfd) || atomic_load_explicit(&broken, memory_order_relaxed))
		return -1;
	index_word w = atomic_load_explicit(&t->index, memory_order_acquire);
	if (!w)
		return -1;
	const index_slot *slots = index_slots(w);
	unsigned mask = index_mask(w), home = home_in(w, h);
	int found = -1;
	for (unsigned k = 0; k < PROBE_MAX; k++) {
		uint64_t v = atomic_load_explicit(&slots[(home + k) & mask], memory_order_acquire);
		if (v == 0)
			break;
		if ((v & ~SLOT_FD) != h)
			continue;
		int f = (int)(v & SLOT_FD);
		if ((uint64_t)f == AMBIGUOUS)
			return -1;
		if (events ? registered_with_events(t, f - 1, epfd, data, events)
			   : registered(t, f - 1, epfd, data)) {
			if (found >= 0 && found != f - 1)
				return -1;
			found = f - 1;
		}
	}
	return found;
}

LOOP_PATH int epoll_map_lookup(int epfd, uint64_t data)
{
	return lookup(epfd, data, hash_of(epfd, data), NULL);
}

/* epoll_map_lookup_events for (epfd, data) of hash h. */
static inline __attribute__((always_inline)) int lookup_events(int epfd, uint64_t data,
							       uint64_t h, uint32_t *events)
{
	*events = 0;
	int fd = lookup(epfd, data, h, events);
	if (fd < 0)
		*events = 0; /* a mask read for an fd that was not the answer */
	return fd;
}

LOOP_PATH int epoll_map_lookup_events(int epfd, uint64_t data, uint32_t *events)
{
	return lookup_events(epfd, data, hash_of(epfd, data), events);
}

LOOP_PATH uint64_t epoll_map_prefetch(int epfd, uint64_t data)
{
	uint64_t h = hash_of(epfd, data);
	const struct epoll_tables *t = tables_now();
	index_word w = t ? atomic_load_explicit(&t->index, memory_order_relaxed) : 0;
	if (w)
		__builtin_prefetch(&index_slots(w)[home_in(w, h)]);
	return h;
}

LOOP_PATH int epoll_map_lookup_hashed(int epfd, uint64_t data, uint64_t hash, uint32_t *events)
{
	return events ? lookup_events(epfd, data, hash, events) : lookup(epfd, data, hash, NULL);
}

unsigned epoll_map_index_slots(void)
{
	const struct epoll_tables *t = tables_now();
	index_word w = t ? atomic_load_explicit(&t->index, memory_order_acquire) : 0;
	return w ? index_mask(w) + 1 : 0;
}
