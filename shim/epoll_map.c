/*
 * epoll_map.c - epoll data word -> fd (see epoll_map.h).
 *
 * Per fd, its registration: the data word and (epoll fd + 1, that number's
 * instance generation) packed in one word, written key-last so a reader
 * never takes half of one registration for another; and, for an epoll fd,
 * its instance's generation, connections, waiter and edges. These entries
 * lie in pages of EPOLL_PAGE fds, each mapped when an fd of it is first
 * given one: memory follows the descriptor numbers in use. An index, open
 * addressing with a bounded probe, points from (epfd, data) to fds; a slot
 * is only a hint until the fd's registration confirms it, and a key seen
 * for two live fds is marked ambiguous for good. The index starts at
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
#include "shim_init.h"

#define INDEX_MIN_BITS 10 /* 1,024 slots: 16 KiB */
#define INDEX_MAX_BITS 22 /* room for a registration on every fd below FD_LIMIT */
#define EPOLL_PAGE 1024u
#define PROBE_MAX 16
#define AMBIGUOUS UINT32_MAX

struct registration {
	_Atomic uint64_t data;
	_Atomic uint64_t key;     /* gen << 22 | (epfd + 1), | COUNTED; 0: none */
};
#define COUNTED (1ull << 21)  /* a connection, counted in its instance's conns */
#define EPFD_OF(key) ((int)((key) & (COUNTED - 1)) - 1)
_Static_assert(FD_LIMIT < COUNTED, "epfd + 1 fits below COUNTED");

struct index_slot {
	_Atomic uint64_t data;
	_Atomic uint32_t epfd;
	_Atomic uint32_t fd;      /* fd + 1; 0: empty; AMBIGUOUS */
};

/* What the map keeps for one fd. */
struct epoll_fd {
	struct registration registration; /* as a registered fd */
	_Atomic uint32_t stamp;      /* changes of the fd (epoll_map_stamp) */
	_Atomic uint32_t generation; /* as an epoll fd: its instance's */
	_Atomic uint32_t conns;      /* as an epoll fd: connections registered */
	_Atomic int32_t waiter;      /* as an epoll fd: the one thread that
					waited on it, WAITERS_MANY, or 0 */
	_Atomic bool edges;          /* as an epoll fd: an edge-triggered or
					one-shot registration was made */
	_Atomic uint32_t events;     /* as a registered fd: its registration's
					events mask (0: not known) */
};
_Static_assert(sizeof(struct epoll_fd) == 40, "an epoll map page is 40 KiB");

/* An index table: its slots' address (page-aligned) | log2 of their
 * number, read in one load; 0: none. */
typedef uintptr_t index_word;
#define INDEX_BITS_MASK ((uintptr_t)31)
/* A probe window of a large table fills from about a quarter full. */
_Static_assert(INDEX_MAX_BITS <= 31 && (1ull << INDEX_MAX_BITS) >= 4ull * FD_LIMIT,
	       "the index's size fits its word and holds every fd at a quarter load");

struct epoll_tables {
	struct epoll_fd *_Atomic pages[FD_LIMIT / EPOLL_PAGE]; /* NULL until mapped */
	_Atomic index_word index; /* 0 until the first registration */
	/* Under the writer lock: */
	uint32_t index_used;  /* the index's slots that are not empty */
	index_word spare;     /* a replaced table, emptied: the next of its size */
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

static bool in_range(int fd)
{
	return (unsigned)fd < FD_LIMIT;
}

/* fd's entry, NULL if fd is out of range or no fd of its page has one
 * (every field of it reads as 0 then). */
static struct epoll_fd *entry_now(const struct epoll_tables *t, int fd)
{
	if (!in_range(fd))
		return NULL;
	struct epoll_fd *page =
		atomic_load_explicit(&t->pages[(unsigned)fd / EPOLL_PAGE], memory_order_acquire);
	return page ? &page[(unsigned)fd % EPOLL_PAGE] : NULL;
}

/* fd's entry, its page mapped if it was not; NULL if fd is out of range or
 * the mapping failed. */
static struct epoll_fd *entry_made(struct epoll_tables *t, int fd)
{
	if (!in_range(fd))
		return NULL;
	unsigned index = (unsigned)fd / EPOLL_PAGE;
	struct epoll_fd *page = map_once((void *_Atomic *)&t->pages[index],
					 EPOLL_PAGE * sizeof(struct epoll_fd));
	if (!page)
		return NULL;
	fd_state_note_end((index + 1) * EPOLL_PAGE);
	return &page[(unsigned)fd % EPOLL_PAGE];
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

static uint64_t key_of(const struct epoll_tables *t, int epfd)
{
	const struct epoll_fd *e = entry_now(t, epfd);
	uint64_t gen = e ? atomic_load_explicit(&e->generation, memory_order_relaxed) : 0;
	return gen << 22 | (uint64_t)(epfd + 1);
}

static unsigned home_of(int epfd, uint64_t data)
{
	uint64_t words[2] = {data, (uint64_t)epfd};
	return (unsigned)XXH3_64bits(words, sizeof words);
}

static struct index_slot *index_slots(index_word w)
{
	return (struct index_slot *)(w & ~INDEX_BITS_MASK);
}

static unsigned index_mask(index_word w)
{
	return (1u << (w & INDEX_BITS_MASK)) - 1;
}

/* Whether fd's registration is (epfd's current instance, data). */
static bool registered(const struct epoll_tables *t, int fd, int epfd, uint64_t data)
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

static bool writer_lock(void)
{
	if (writing) {
		atomic_store(&broken, true);
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
		sched_yield();
	}
	atomic_store(&broken, true);
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

uint32_t epoll_map_stamp(int fd)
{
	const struct epoll_tables *t = tables_now();
	const struct epoll_fd *e = t ? entry_now(t, fd) : NULL;
	return e ? atomic_load_explicit(&e->stamp, memory_order_acquire) : 0;
}

void epoll_map_changed(int fd)
{
	struct epoll_tables *t = tables_now();
	struct epoll_fd *e = t ? entry_made(t, fd) : NULL;
	if (e)
		atomic_fetch_add_explicit(&e->stamp, 1, memory_order_release);
}

bool epoll_map_one_waiter(int epfd, int32_t tid)
{
	struct epoll_tables *t = tables_now();
	struct epoll_fd *e = t ? entry_made(t, epfd) : NULL;
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

void epoll_map_edge_registered(int epfd)
{
	struct epoll_tables *t = tables_made();
	struct epoll_fd *e = t ? entry_made(t, epfd) : NULL;
	if (e && !atomic_load_explicit(&e->edges, memory_order_relaxed))
		atomic_store_explicit(&e->edges, true, memory_order_release);
}

bool epoll_map_has_edges(int epfd)
{
	const struct epoll_tables *t = tables_now();
	/* Without the tables nothing was seen registered: no events are kept
	 * then anyway (they cannot be named). */
	if (!t || !in_range(epfd))
		return true;
	const struct epoll_fd *e = entry_now(t, epfd);
	return e && atomic_load_explicit(&e->edges, memory_order_acquire);
}

void epoll_map_new_instance(int epfd)
{
	struct epoll_tables *t = tables_made();
	struct epoll_fd *e = t ? entry_made(t, epfd) : NULL;
	if (e) {
		atomic_store_explicit(&e->edges, false, memory_order_relaxed);
		atomic_store_explicit(&e->waiter, 0, memory_order_relaxed);
		atomic_fetch_add_explicit(&e->stamp, 1, memory_order_release);
		atomic_fetch_add_explicit(&e->generation, 1, memory_order_relaxed);
		atomic_store_explicit(&e->conns, 0, memory_order_relaxed);
	}
}

/* A registration with key ends: its connection leaves its instance's
 * count, if that instance still lives. */
static void uncount(struct epoll_tables *t, uint64_t key)
{
	int epfd = EPFD_OF(key);
	struct epoll_fd *e = (key & COUNTED) ? entry_now(t, epfd) : NULL;
	if (e && (key & ~COUNTED) == key_of(t, epfd) &&
	    atomic_load_explicit(&e->conns, memory_order_relaxed) > 0)
		atomic_fetch_sub_explicit(&e->conns, 1, memory_order_relaxed);
}

unsigned epoll_map_connections(int epfd)
{
	const struct epoll_tables *t = tables_now();
	const struct epoll_fd *e = t ? entry_now(t, epfd) : NULL;
	return e ? atomic_load_explicit(&e->conns, memory_order_relaxed) : 0;
}

/* Points the index table w at fd for (epfd, data); under the writer lock.
 * False if its probe window has no slot to spare. */
static bool index_place(struct epoll_tables *t, index_word w, int epfd, int fd, uint64_t data)
{
	struct index_slot *slots = index_slots(w), *free_slot = NULL;
	unsigned mask = index_mask(w), home = home_of(epfd, data);
	for (unsigned k = 0; k < PROBE_MAX; k++) {
		struct index_slot *s = &slots[(home + k) & mask];
		uint32_t f = atomic_load_explicit(&s->fd, memory_order_relaxed);
		uint64_t d = atomic_load_explicit(&s->data, memory_order_relaxed);
		uint32_t e = atomic_load_explicit(&s->epfd, memory_order_relaxed);
		if (f == 0) {
			if (!free_slot) {
				free_slot = s;
				t->index_used++;
			}
			break;
		}
		bool same_key = d == data && e == (uint32_t)epfd;
		if (same_key) {
			if (f == AMBIGUOUS || f == (uint32_t)fd + 1)
				return true;
			if (registered(t, (int)f - 1, epfd, data)) {
				atomic_store_explicit(&s->fd, AMBIGUOUS, memory_order_release);
				return true;
			}
			atomic_store_explicit(&s->fd, (uint32_t)fd + 1, memory_order_release);
			return true;
		}
		if (!free_slot && f != AMBIGUOUS && !registered(t, (int)f - 1, (int)e, d))
			free_slot = s; /* stale: its fd moved on */
	}
	if (!free_slot)
		return false;
	atomic_store_explicit(&free_slot->fd, 0, memory_order_release);
	atomic_store_explicit(&free_slot->data, data, memory_order_relaxed);
	atomic_store_explicit(&free_slot->epfd, (uint32_t)epfd, memory_order_relaxed);
	atomic_store_explicit(&free_slot->fd, (uint32_t)fd + 1, memory_order_release);
	return true;
}

/* Whether slot s of the index still says something: it points at an fd
 * whose registration confirms it, or marks its key ambiguous. */
static bool slot_kept(const struct epoll_tables *t, const struct index_slot *s)
{
	uint32_t f = atomic_load_explicit(&s->fd, memory_order_relaxed);
	return f == AMBIGUOUS ||
	       (f != 0 && registered(t, (int)f - 1,
				     (int)atomic_load_explicit(&s->epfd, memory_order_relaxed),
				     atomic_load_explicit(&s->data, memory_order_relaxed)));
}

/* Copies slot s into the new table slots (not yet published; its keys are
 * those of the old, each once); false if its probe window is full. */
static bool slot_copy(struct index_slot *slots, unsigned mask, const struct index_slot *s)
{
	uint64_t data = atomic_load_explicit(&s->data, memory_order_relaxed);
	uint32_t epfd = atomic_load_explicit(&s->epfd, memory_order_relaxed);
	unsigned home = home_of((int)epfd, data);
	for (unsigned k = 0; k < PROBE_MAX; k++) {
		struct index_slot *n = &slots[(home + k) & mask];
		if (atomic_load_explicit(&n->fd, memory_order_relaxed) == 0) {
			atomic_store_explicit(&n->data, data, memory_order_relaxed);
			atomic_store_explicit(&n->epfd, epfd, memory_order_relaxed);
			atomic_store_explicit(&n->fd, atomic_load_explicit(&s->fd, memory_order_relaxed),
					      memory_order_relaxed);
			return true;
		}
	}
	return false;
}

/* A table of 2^bits slots for the index, zeroes: the spare if it has that
 * size, else a new mapping; NULL if mapping fails. */
static struct index_slot *index_table(struct epoll_tables *t, unsigned bits)
{
	if (t->spare && (t->spare & INDEX_BITS_MASK) == bits) {
		struct index_slot *slots = index_slots(t->spare); /* emptied when replaced */
		t->spare = 0;
		return slots;
	}
	int saved = errno;
	void *slots = mmap(NULL, sizeof(struct index_slot) << bits, PROT_READ | PROT_WRITE,
			   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	errno = saved;
	return slots == MAP_FAILED ? NULL : slots;
}

/* Empties table w (table_release) and keeps it as the spare. */
static void index_retire(struct epoll_tables *t, index_word w)
{
	table_release(index_slots(w), sizeof(struct index_slot) << (w & INDEX_BITS_MASK));
	t->spare = w;
}

/* Copies the kept slots of table old (0: none) into slots, 2^bits of them;
 * false if a probe window there is full. */
static bool index_copy(const struct epoll_tables *t, index_word old, struct index_slot *slots,
		       unsigned bits, uint32_t *used)
{
	*used = 0;
	for (unsigned i = 0; old && i <= index_mask(old); i++) {
		const struct index_slot *s = &index_slots(old)[i];
		if (!slot_kept(t, s))
			continue;
		if (!slot_copy(slots, (1u << bits) - 1, s))
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
static bool index_rebuild(struct epoll_tables *t, unsigned grow_bits)
{
	index_word old = atomic_load_explicit(&t->index, memory_order_relaxed);
	atomic_store_explicit(&rebuilding, true, memory_order_relaxed);
	unsigned kept = 0;
	if (old)
		for (unsigned i = 0; i <= index_mask(old); i++)
			kept += slot_kept(t, &index_slots(old)[i]);
	unsigned bits = grow_bits < INDEX_MIN_BITS ? INDEX_MIN_BITS : grow_bits;
	while (bits <= INDEX_MAX_BITS && 2ull * (kept + 1) > 1ull << bits)
		bits++;
	bool done = false;
	for (; bits <= INDEX_MAX_BITS && !done; bits++) {
		struct index_slot *slots = index_table(t, bits);
		uint32_t used;
		if (!slots)
			break;
		if (!index_copy(t, old, slots, bits, &used)) {
			index_retire(t, (index_word)slots | bits);
			continue;
		}
		atomic_store_explicit(&t->index, (index_word)slots | bits, memory_order_release);
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
		atomic_store(&broken, true);
		return;
	}
	for (int tries = 0;; tries++) {
		w = atomic_load_explicit(&t->index, memory_order_relaxed);
		if (index_place(t, w, epfd, fd, data))
			return;
		if (tries == 2 || !index_rebuild(t, (unsigned)(w & INDEX_BITS_MASK) + 1))
			break;
	}
	atomic_store(&broken, true);
}

/* Records fd's registration on epfd with data and events; under the writer
 * lock. */
static void registration_put(struct epoll_tables *t, int epfd, int fd, uint64_t data,
			     uint32_t events, bool conn)
{
	struct epoll_fd *e = entry_made(t, fd), *instance = entry_made(t, epfd);
	if (!e || !instance) {
		atomic_store(&broken, true); /* a registration it cannot record */
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

void epoll_map_set(int epfd, int fd, uint64_t data, uint32_t events)
{
	struct epoll_tables *t;
	if (!in_range(fd) || !in_range(epfd) || atomic_load(&broken) || !(t = tables_made()))
		return;
	if (!writer_lock())
		return;
	registration_put(t, epfd, fd, data, events, fd_class(fd) & FD_CONN);
	writer_unlock();
}

bool epoll_map_registration(int epfd, int fd, struct epoll_event *out)
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
	struct epoll_fd *e = entry_now(t, epfd);
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
	struct epoll_fd *e = entry_made(t, fd), *instance = entry_made(t, epfd);
	if (e && instance && atomic_load_explicit(&instance->stamp, memory_order_acquire) == epfd_stamp &&
	    atomic_load_explicit(&e->stamp, memory_order_acquire) == fd_stamp &&
	    atomic_load_explicit(&e->registration.key, memory_order_relaxed) == 0) {
		if (events & (EPOLLET | EPOLLONESHOT))
			atomic_store_explicit(&instance->edges, true, memory_order_release);
		registration_put(t, epfd, fd, data, events, conn);
	}
	writer_unlock();
}

void epoll_map_delete(int epfd, int fd)
{
	struct epoll_tables *t = tables_now();
	struct epoll_fd *e = t && in_range(epfd) ? entry_now(t, fd) : NULL;
	if (!e)
		return;
	uint64_t key = atomic_exchange_explicit(&e->registration.key, 0, memory_order_acq_rel);
	if ((key & ~COUNTED) == key_of(t, epfd))
		uncount(t, key);
	else if (key)
		atomic_store_explicit(&e->registration.key, key, memory_order_release);
}

void epoll_map_release(void)
{
	struct epoll_tables *t = tables_now();
	if (!t)
		return;
	/* The pages stay mapped, zeroes: what an entry never given reads as. */
	for (unsigned i = 0; i < FD_LIMIT / EPOLL_PAGE; i++) {
		struct epoll_fd *page = atomic_load_explicit(&t->pages[i], memory_order_acquire);
		if (page)
			table_release(page, EPOLL_PAGE * sizeof(struct epoll_fd));
	}
	index_word w = atomic_load_explicit(&t->index, memory_order_acquire);
	if (w)
		table_release(index_slots(w), sizeof(struct index_slot) << (w & INDEX_BITS_MASK));
	t->index_used = 0;
}

FORK_PATH bool epoll_map_tracks(int fd)
{
	const struct epoll_tables *t = tables_now();
	const struct epoll_fd *e = t ? entry_now(t, fd) : NULL;
	return e && (atomic_load_explicit(&e->registration.key, memory_order_relaxed) ||
		     atomic_load_explicit(&e->generation, memory_order_relaxed));
}

void epoll_map_forget(int fd)
{
	struct epoll_tables *t = tables_now();
	struct epoll_fd *e = t ? entry_now(t, fd) : NULL;
	if (!e)
		return;
	atomic_fetch_add_explicit(&e->stamp, 1, memory_order_release);
	if (atomic_load_explicit(&e->registration.key, memory_order_relaxed))
		uncount(t, atomic_exchange_explicit(&e->registration.key, 0, memory_order_acq_rel));
}

int epoll_map_lookup(int epfd, uint64_t data)
{
	const struct epoll_tables *t = tables_now();
	if (!t || !in_range(epfd) || atomic_load_explicit(&broken, memory_order_relaxed))
		return -1;
	index_word w = atomic_load_explicit(&t->index, memory_order_acquire);
	if (!w)
		return -1;
	const struct index_slot *slots = index_slots(w);
	unsigned mask = index_mask(w), home = home_of(epfd, data);
	int found = -1;
	for (unsigned k = 0; k < PROBE_MAX; k++) {
		const struct index_slot *s = &slots[(home + k) & mask];
		uint32_t f = atomic_load_explicit(&s->fd, memory_order_acquire);
		if (f == 0)
			break;
		if (atomic_load_explicit(&s->data, memory_order_relaxed) != data ||
		    atomic_load_explicit(&s->epfd, memory_order_relaxed) != (uint32_t)epfd)
			continue;
		if (f == AMBIGUOUS)
			return -1;
		if (registered(t, (int)f - 1, epfd, data)) {
			if (found >= 0 && found != (int)f - 1)
				return -1;
			found = (int)f - 1;
		}
	}
	return found;
}

unsigned epoll_map_index_slots(void)
{
	const struct epoll_tables *t = tables_now();
	index_word w = t ? atomic_load_explicit(&t->index, memory_order_acquire) : 0;
	return w ? index_mask(w) + 1 : 0;
}
