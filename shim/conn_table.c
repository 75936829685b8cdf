/*
 * conn_table.c - per-fd classification and per-connection request tracking.
 *
 * Decides, from the parser's reports, which request is current on each
 * connection: a request's id exists from the end of its header block until
 * the next request begins. Pipelining (a request arriving before any response
 * to the previous one) makes the connection unattributable, because the
 * syscall stream cannot show which pipelined request the application is
 * serving. Never blocks, never allocates.
 */
#include "conn_table.h"

#include <errno.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "audit_log.h"
#include "fork_hot.h"
#include "head_store.h"
#include "log_order.h"
#include "map_once.h"
#include "page_bytes.h"
#include "large_table.h"
#include "raw_syscall.h"
#include "request_table.h"
#include "resident_return.h"
#include "shim_init.h"

struct fd_state fd_states[FD_LOW] FORK_HOT_LAST;
/* The end of the page fd_states ends on, which holds nothing else
 * (layout.ld); NULL where that linker script is not used (unit tests). */
extern char reqid_fork_hot_end[] __attribute__((weak, visibility("hidden")));
struct fd_state *_Atomic fd_pages[FD_LIMIT / FD_PAGE];
/* A process with connections writes its first entry only (BSS_TAIL). */
void *_Atomic conn_chunks[FD_LIMIT / CONN_CHUNK] BSS_TAIL;
/* fd_state_end, as far as pages go. Read before it is written, at a
 * process's first page of descriptor states or of the epoll map (nginx's
 * first epoll_create): START_WRITTEN, on the page the loader writes; in
 * .bss the read mapped the zero page and the store then copied it. */
static _Atomic unsigned pages_end START_WRITTEN;
static _Atomic int highest_copy FORK_HOT; /* no copy has a higher fd: scans stop there */

_Static_assert(CONFIG_MAX_FD == FD_LIMIT - 1, "REQID_LOG_FDS takes every fd that can be tracked");

struct fd_state *fd_state_high(int fd)
{
	if ((unsigned)fd >= FD_LIMIT)
		return NULL;
	struct fd_state *page =
		atomic_load_explicit(&fd_pages[(unsigned)fd / FD_PAGE], memory_order_acquire);
	return page ? &page[(unsigned)fd % FD_PAGE] : NULL;
}

struct fd_state *fd_state_made_high(int fd)
{
	if ((unsigned)fd >= FD_LIMIT)
		return NULL;
	unsigned index = (unsigned)fd / FD_PAGE;
	fd_state_note_end((index + 1) * FD_PAGE); /* before the page is published */
	struct fd_state *page = map_once((void *_Atomic *)&fd_pages[index],
					 FD_PAGE * sizeof(struct fd_state));
	if (!page)
		return NULL;
	return &page[(unsigned)fd % FD_PAGE];
}

LOOP_PATH void fd_state_note_end(unsigned end)
{
	unsigned was = atomic_load_explicit(&pages_end, memory_order_relaxed);
	while (was < end && !atomic_compare_exchange_weak_explicit(&pages_end, &was, end,
								  memory_order_relaxed,
								  memory_order_relaxed))
		;
}

unsigned fd_state_end(void)
{
	unsigned end = atomic_load_explicit(&pages_end, memory_order_relaxed);
	return end > FD_LOW ? end : FD_LOW;
}

void fd_state_release(void)
{
	/* No page or chunk lies past fd_state_end (noted before either is
	 * published): the pointers past it are not read, whose pages would
	 * otherwise become resident only to say NULL. */
	unsigned end = fd_state_end();
	/* To the end of the flags' last page, so that it goes back too: a
	 * detach's scans of every descriptor read it, and a kernel that maps
	 * no shared zero page gives a page that is read a page of its own,
	 * which a release of the flags' bytes alone zeroes and keeps. */
	table_release(fd_states, reqid_fork_hot_end
					 ? (size_t)(reqid_fork_hot_end - (char *)fd_states)
					 : sizeof(fd_states));
	for (unsigned i = FD_LOW / FD_PAGE; i < (end + FD_PAGE - 1) / FD_PAGE; i++) {
		struct fd_state *page = atomic_load_explicit(&fd_pages[i], memory_order_acquire);
		if (page)
			table_release(page, FD_PAGE * sizeof(struct fd_state));
	}
	/* An entry a late loss marked after its connection closed keeps its
	 * blind flag, and one a late read gave a request after its close keeps
	 * its pin; the counts were zeroed first (request_table_release), and
	 * a conn_start on it must give back neither. Only entries on pages that
	 * hold data are read (present or swapped out, resident_pages_held): one
	 * on a page never touched is zero, and reading it would make its page
	 * resident (some kernels map no shared zero page), the whole chunk's
	 * entries for a program with a few connections. */
	enum { ENTRY_PAGES = (sizeof(((struct conn_chunk *)0)->entry) + PAGE_BYTES - 1) / PAGE_BYTES + 1 };
	_Static_assert(ENTRY_PAGES <= PAGES_HELD_MAX, "a chunk's entries span too many pages");
	uintptr_t pointers_page = 0; /* the page of conn_chunks last asked about */
	bool pointers_held = false;
	for (unsigned i = 0; i < (end + CONN_CHUNK - 1) / CONN_CHUNK; i++) {
		/* A chunk's pointer on a page of conn_chunks never written is
		 * NULL; reading it would make that page resident. */
		uintptr_t page = (uintptr_t)&conn_chunks[i] & ~(uintptr_t)(PAGE_BYTES - 1);
		if (page != pointers_page) {
			pointers_page = page;
			resident_pages_held((void *)page, 1, &pointers_held);
		}
		if (!pointers_held)
			continue;
		struct conn_chunk *chunk = atomic_load_explicit(&conn_chunks[i], memory_order_acquire);
		bool held[ENTRY_PAGES];
		if (!chunk)
			continue;
		uintptr_t first_page = (uintptr_t)chunk->entry / PAGE_BYTES;
		uintptr_t last_page = ((uintptr_t)chunk->entry + sizeof(chunk->entry) - 1) / PAGE_BYTES;
		resident_pages_held((void *)(first_page * PAGE_BYTES), last_page - first_page + 1, held);
		for (unsigned k = 0; k < CONN_CHUNK; k++) {
			struct conn *c = &chunk->entry[k];
			size_t blind_page = (uintptr_t)&c->blind / PAGE_BYTES - first_page;
			size_t pinned_page = (uintptr_t)&c->pinned / PAGE_BYTES - first_page;
			if (held[blind_page] &&
			    atomic_load_explicit(&c->blind, memory_order_relaxed))
				atomic_store_explicit(&c->blind, false, memory_order_relaxed);
			if (held[pinned_page] &&
			    atomic_load_explicit(&c->pinned, memory_order_relaxed))
				atomic_store_explicit(&c->pinned, 0, memory_order_relaxed);
		}
	}
}

/* busy of an entry a connection moves into (conn_forget's heir): not a
 * reader's lock, which is 1. The heir's fd closing meanwhile turns it into
 * BUSY_HEIR_CLOSED, and the mover finishes that close (heir_closed). */
#define BUSY_HEIR 2u
#define BUSY_HEIR_CLOSED 3u

static bool conn_trylock_as(struct conn *c, uint32_t value)
{
	uint32_t expected = 0;
	return atomic_compare_exchange_strong_explicit(&c->busy, &expected, value,
						       memory_order_seq_cst, memory_order_relaxed);
}

static bool conn_trylock(struct conn *c)
{
	return conn_trylock_as(c, 1);
}

static void conn_unlock(struct conn *c)
{
	atomic_store_explicit(&c->busy, 0, memory_order_release);
}

/* Whether this process (or the one it was forked from) ever published a
 * chunk: until then the page of conn_chunks is one it never wrote. Read at
 * every connection, in a fork child too: FORK_HOT. */
static _Atomic bool chunk_published FORK_HOT;

/* fd's entry, its chunk mapped if it was not; NULL if mapping fails.
 * *mapped_now (if not NULL) tells whether its chunk had no entries before
 * this call: the entry is then all zeroes. A process's first connection
 * writes the chunk's pointer before map_once reads it: on a page never
 * written (a pre-forked worker's, a fresh process's) a read maps the zero
 * page, a fault, and the store then copies it, a second. */
static FORK_PATH struct conn *conn_entry_made(int fd, bool *mapped_now)
{
	void *_Atomic *slot = &conn_chunks[(unsigned)fd / CONN_CHUNK];
	if (unlikely(!atomic_load_explicit(&chunk_published, memory_order_relaxed))) {
		void *none = NULL; /* a store of what is there, NULL or not */
		atomic_compare_exchange_strong_explicit(slot, &none, NULL, memory_order_relaxed,
							memory_order_relaxed);
	}
	if (mapped_now)
		*mapped_now = !atomic_load_explicit(slot, memory_order_relaxed);
	struct conn_chunk *chunk = map_once(slot, sizeof(struct conn_chunk));
	if (!chunk)
		return NULL;
	if (unlikely(!atomic_load_explicit(&chunk_published, memory_order_relaxed)))
		atomic_store_explicit(&chunk_published, true, memory_order_relaxed);
	return &chunk->entry[(unsigned)fd % CONN_CHUNK];
}

void conn_lose(int fd)
{
	if (fd_class(fd) & FD_CONN)
		conn_mark_lost(conn_of(fd));
}

void conn_lose_to_h2(int fd)
{
	if (fd_class(fd) & FD_CONN)
		conn_mark_lost_not_http1(conn_of(fd));
}

/* Bytes of connection fd went by while another thread held c, fd's entry:
 * its stream is lost. If c moved meanwhile to a copy of fd (conn_forget,
 * its holder closed), the entry fd names now is marked too: the mover
 * passes on a loss it sees after moving, and this looks after marking. */
static void lose_on(int fd, struct conn *c)
{
	conn_mark_lost(c);
	uint32_t alias = atomic_load_explicit(&fd_state(fd)->alias, memory_order_seq_cst);
	struct conn *now = conn_entry(alias ? (int)alias - 1 : fd);
	if (now != c)
		conn_mark_lost(now);
}

/* conn_generation of connection fd, whose state exists (GCC cannot tell,
 * and warns of a load through NULL where it inlines fd_state's high path). */
static inline uint8_t generation_of(int fd)
{
	const struct fd_state *st = fd_state(fd);
	if (!st)
		__builtin_unreachable();
	return atomic_load_explicit(&st->generation, memory_order_relaxed);
}

/* Takes c, the entry of holder, which fd named when it was looked up
 * (conn_fd) while its generation was generation, for fd's bytes or end.
 * False if another thread holds c (lose_on); if fd was closed since (its
 * generation changed: the bytes are no connection's fd has now); or if
 * fd's connection moved to another entry between the look and the lock
 * (its holder closed and fd, a copy, took it over): then the entry fd
 * names now loses its stream, whose bytes would otherwise go to the entry
 * it left. */
static __attribute__((noinline, cold)) bool not_named(int fd, struct conn *c, bool locked,
						      uint8_t generation)
{
	if (!locked) {
		/* A late read of the connection fd had before it closed, whose
		 * entry another connection is moving into: nothing of either
		 * is lost. (A late read on a holder that is closing carries
		 * bytes of a connection that lives on: its loss is passed on.) */
		if ((atomic_load_explicit(&c->busy, memory_order_relaxed) | 1) == BUSY_HEIR_CLOSED &&
		    generation_of(fd) != generation)
			return false;
		lose_on(fd, c);
		return false;
	}
	conn_unlock(c);
	if (generation_of(fd) == generation)
		conn_mark_lost(conn_of(fd));
	return false;
}

static inline bool conn_lock_named(int fd, int holder, uint8_t generation, struct conn *c)
{
	bool locked = conn_trylock(c);
	if (likely(locked && generation_of(fd) == generation && conn_fd(fd) == holder))
		return true;
	return not_named(fd, c, locked, generation);
}

/* The connection's current request ends: its request line is no longer
 * live. A close on another thread (conn_forget) may end it while a read
 * starts the next: the exchange ends each line once, and acquires the
 * buckets stored before its line_live. */
static FORK_PATH __attribute__((noinline)) void end_request(struct conn *c)
{
	if (atomic_exchange_explicit(&c->line_live, false, memory_order_acq_rel))
		request_line_ended(atomic_load_explicit(&c->line_buckets, memory_order_relaxed));
}

/* c's current request no longer needs its slot pinned: its response began,
 * or it stops being current. Writes nothing when nothing is pinned (a fork
 * server's parent, closing a connection it handed to a child unread). */
static FORK_PATH void unpin_request(struct conn *c)
{
	if (atomic_load_explicit(&c->pinned, memory_order_relaxed))
		request_unpin(atomic_exchange_explicit(&c->pinned, 0, memory_order_relaxed));
}

/* Request serial, answered, had a request line a server may log rebuilt
 * (http_request_line_logging): its line as it came is hashed again, and
 * one with a query is also known by the line of its path (counted). Out
 * of line: few requests are such. */
static FORK_PATH __attribute__((noinline)) void answered_rebuilt(uint64_t serial, uint8_t logging,
							     uint32_t counted)
{
	log_order_answered(serial, request_table_line_buckets(serial),
			   logging == LINE_OR_PATH ? counted : 0);
}

/* Request serial, c's current, was answered: it takes its place in the
 * order the server writes its access lines in (log_order.h), known by its
 * request line's buckets (none: 0). */
static FORK_PATH void order_answered(struct conn *c, uint64_t serial)
{
	if (!atomic_load_explicit(&c->line_live, memory_order_acquire)) {
		log_order_answered(serial, 0, 0);
		return;
	}
	uint32_t counted = atomic_load_explicit(&c->line_buckets, memory_order_relaxed);
	uint8_t logging = atomic_load_explicit(&c->line_logging, memory_order_relaxed);
	if (likely(logging == LINE_AS_IS))
		log_order_answered(serial, counted, 0);
	else
		answered_rebuilt(serial, logging, counted);
}

static inline __attribute__((always_inline)) void set_request_in(struct conn *c, uint64_t serial)
{
	end_request(c);
	unpin_request(c);
	/* A response not ended by now (a pipelined request read first) ends
	 * no request the shim can tell: no place in the order. */
	atomic_store_explicit(&c->order_pending, false, memory_order_relaxed);
	uint64_t was = __atomic_load_n(&c->request, __ATOMIC_RELAXED);
	if (unlikely(shim.audit) && was && was != serial)
		audit_request_ended(was);
	__atomic_store_n(&c->request, serial, __ATOMIC_RELAXED);
	if (atomic_load_explicit(&c->certain_reader, memory_order_relaxed))
		atomic_store_explicit(&c->certain_reader, 0, memory_order_relaxed);
}

static FORK_PATH void set_request(struct conn *c, uint64_t serial)
{
	set_request_in(c, serial);
}

/* c (locked) no longer needs the text of a head. */
static void drop_head_text(struct conn *c)
{
	if (c->head_slot) {
		head_store_release(c->head_slot);
		c->head_slot = 0;
	}
}

/* Builds a new parser's state in out (joined: for a stream joined between
 * requests): a whole parser (a kilobyte) on the stack. */
static FORK_PATH __attribute__((noinline)) void parser_state_build(unsigned char *out, size_t n,
								   bool joined)
{
	struct http_parser p;
	if (joined)
		http_parser_init_joined(&p, &shim.matcher);
	else
		http_parser_init(&p, &shim.matcher);
	memcpy(out, &p, n);
}

/* A new parser's state in out (HTTP_PARSER_STATE_SIZE bytes), copied from
 * one built once: a fork server's parent accepts with a shallow stack, so a
 * fork does not make it copy a deeper stack page at every accept. */
static FORK_PATH void parser_start(unsigned char *out)
{
	/* On the page a fork child writes anyway (FORK_HOT): a pre-forked
	 * worker, whose parent never accepted, builds it at its first
	 * connection; elsewhere in .bss the read of made would map the zero
	 * page (a fault) and its store copy it (a second). */
	static _Alignas(struct http_parser) unsigned char built[HTTP_PARSER_STATE_SIZE] FORK_HOT;
	static _Atomic int made FORK_HOT; /* 0: not yet, 1: being built, 2: built */
	int m = atomic_load_explicit(&made, memory_order_acquire);
	if (m == 0 && atomic_compare_exchange_strong(&made, &m, 1)) {
		parser_state_build(built, sizeof(built), false);
		atomic_store_explicit(&made, 2, memory_order_release);
		m = 2;
	}
	if (m == 2)
		memcpy(out, built, sizeof(built));
	else
		parser_state_build(out, sizeof(built), false); /* another thread is building it */
}

/* Whether a write that began on c's last connection is still inside it: a
 * thread blocked in it when another thread closed the fd (conn_output holds
 * the write side for the whole call, out_busy naming the thread). Until
 * that write ends the entry is its; a thread that is gone (cancelled inside
 * the call; in a forked child, any of the parent's) holds nothing. */
static bool writer_inside(const struct conn *c)
{
	uint32_t tid = atomic_load_explicit(&c->out_busy, memory_order_acquire);
	if (tid == 0)
		return false;
	return !raw_thread_gone((pid_t)tid);
}

/* A connection no entry tracks (a lock or a mapping could not be had): its
 * requests go unseen and its end will not be seen either, so it is counted
 * for as long as the process (or this attach) lasts: no line is named by a
 * request line from then on, which costs recall only. */
static void stream_untracked(void)
{
	request_streams_unseen(1);
}

/* The process's first connection: from now on its fork children find the
 * request rings mapped (request_tables_ready), and, once it forks, the
 * library's code (accepted_fork_prepare). */
static __attribute__((noinline, cold)) void first_accepted(void)
{
	__atomic_store_n(&shim.accepted, true, __ATOMIC_RELAXED);
	request_tables_ready();
}

/* Whether fork_copies_code ran (a fork child inherits it). Read at every
 * fork, written at the first after an accept: START_WRITTEN, on the page
 * the loader writes (in .bss the read mapped the zero page and the store
 * copied it: two faults). */
static bool code_copied START_WRITTEN;

/* Before a fork of a process that accepted a connection, the first time:
 * its children find the library's code mapped (fork_copies_code). Not in
 * a process `reqid attach` loaded the library into: detach gives back the
 * library's pages that map its file, and the two copies would stay. Not in
 * a process with threads (fork servers have one): the descriptor
 * fork_copies_code holds for a moment would be one another thread's open
 * could not have, and one its close_range or dup2 could take, the byte
 * then written to its file and the descriptor closed under it. */
void accepted_fork_prepare(void)
{
	if (!__atomic_load_n(&shim.accepted, __ATOMIC_RELAXED) || code_copied)
		return;
	code_copied = true;
	if (!shim.loaded_by_attach &&
	    !atomic_load_explicit(&process.threaded, memory_order_relaxed))
		fork_copies_code();
}

/* Takes c (the entry of the fd whose state is st, locked: conn_trylock) for
 * a new connection on that fd, its request parser as parse_from built it,
 * and unlocks it. A write still inside the entry (writer_inside) leaves the
 * connection untracked: no id beats a response parsed from the last
 * connection's bytes. */
static FORK_PATH void conn_start(int fd, struct fd_state *st, struct conn *c, uint8_t join,
				 void (*parse_from)(unsigned char *))
{
	if (unlikely(writer_inside(c))) {
		conn_unlock(c);
		stream_untracked();
		return;
	}
	end_request(c);
	atomic_store_explicit(&st->alias, 0, memory_order_relaxed);
	atomic_store_explicit(&c->copies, 0, memory_order_relaxed);
	c->kind = CONN_HTTP;
	atomic_store_explicit(&c->lost, false, memory_order_relaxed);
	/* A stream joined mid-stream is unseen from the start; a count the
	 * entry holds (its last connection's end went unseen, or attach
	 * counted fd until its adoption) goes on without a gap in which a
	 * line could be named by the requests counted elsewhere. */
	if (join == JOIN_AWAIT_RESPONSE)
		conn_went_blind(c);
	else
		conn_sees_again(c);
	c->head_pending = false;
	atomic_store_explicit(&c->responded, false, memory_order_relaxed);
	atomic_store_explicit(&c->join, join, memory_order_relaxed);
	/* Only a TLS connection's writes touch its write side (its page
	 * stays unmapped for all others: here a read maps a page too). */
	if (atomic_load_explicit(&c->tls, memory_order_relaxed)) {
		*conn_tls(fd) = (struct conn_tls){0};
		atomic_store_explicit(&c->tls, false, memory_order_relaxed);
	}
	c->began = false;
	c->proxied = false;
	set_request(c, 0);
	drop_head_text(c);
	parse_from(c->parsing);
	http_response_init(&c->response, shim.config.response_header_len > 0);
	c->owed_len = 0;
	atomic_store_explicit(&c->out_busy, 0, memory_order_relaxed);
	conn_unlock(c);
	atomic_store_explicit(&st->flags, FD_CONN, memory_order_relaxed);
	/* Written once: a fork server's parent copies no page for it. */
	if (!__atomic_load_n(&shim.accepted, __ATOMIC_RELAXED))
		first_accepted();
}

/* Whether c, unlocked, is already what conn_start would make of it for a
 * connection accepted on the fd whose state is st. A fork server's parent accepts each
 * connection on the entry its last one left so (it hands the connection
 * to a child and closes it unread): conn_open then writes nothing to the
 * entry, whose page fork made copy-on-write. A thread that takes the
 * lock after this look acts as it would right after conn_start. */
static bool conn_is_fresh(const struct fd_state *st, const struct conn *c)
{
	if (atomic_load_explicit(&c->busy, memory_order_acquire) ||
	    atomic_load_explicit(&st->alias, memory_order_relaxed) ||
	    atomic_load_explicit(&c->copies, memory_order_relaxed) || c->kind != CONN_HTTP ||
	    atomic_load_explicit(&c->lost, memory_order_relaxed) || c->head_pending ||
	    atomic_load_explicit(&c->responded, memory_order_relaxed) ||
	    atomic_load_explicit(&c->join, memory_order_relaxed) != JOIN_NONE ||
	    __atomic_load_n(&c->request, __ATOMIC_RELAXED) ||
	    atomic_load_explicit(&c->line_live, memory_order_relaxed) || c->head_slot ||
	    atomic_load_explicit(&c->certain_reader, memory_order_relaxed) ||
	    atomic_load_explicit(&c->blind, memory_order_relaxed) || c->began || c->proxied ||
	    atomic_load_explicit(&c->tls, memory_order_relaxed) || c->owed_len ||
	    atomic_load_explicit(&c->out_busy, memory_order_relaxed))
		return false;
	struct http_response_parser response;
	http_response_init(&response, shim.config.response_header_len > 0);
	_Alignas(struct http_parser) unsigned char parsing[HTTP_PARSER_STATE_SIZE];
	parser_start(parsing);
	return memcmp(&c->response, &response, sizeof(response)) == 0 &&
	       memcmp(c->parsing, parsing, sizeof(parsing)) == 0;
}

LOOP_PATH void conn_open(int fd)
{
	struct fd_state *st = fd_state_made(fd);
	bool mapped_now = false;
	struct conn *c = st ? conn_entry_made(fd, &mapped_now) : NULL;
	if (!c) {
		stream_untracked();
		return;
	}
	/* An entry of a chunk mapped just now is zeroes, never fresh: looking
	 * would read its page (the zero page, a fault) before the lock's
	 * store copies it (a second). */
	if (!mapped_now && conn_is_fresh(st, c)) {
		if (atomic_load_explicit(&st->flags, memory_order_relaxed) != FD_CONN)
			atomic_store_explicit(&st->flags, FD_CONN, memory_order_relaxed);
		if (!__atomic_load_n(&shim.accepted, __ATOMIC_RELAXED))
			first_accepted();
		return;
	}
	if (conn_trylock(c))
		conn_start(fd, st, c, JOIN_NONE, parser_start);
	else
		stream_untracked();
}

static void joined_parser_start(unsigned char *out)
{
	parser_state_build(out, HTTP_PARSER_STATE_SIZE, true);
}

void conn_join(int fd, bool from_start)
{
	struct fd_state *st = fd_state_made(fd);
	struct conn *c = st ? conn_entry_made(fd, NULL) : NULL;
	if (c && conn_trylock(c))
		conn_start(fd, st, c, from_start ? JOIN_NONE : JOIN_AWAIT_RESPONSE,
			   joined_parser_start);
	else
		stream_untracked();
}

void conn_unseen_until_adopted(int fd)
{
	struct conn *c = conn_entry_made(fd, NULL);
	if (c)
		conn_went_blind(c);
	else
		stream_untracked();
}

void conn_adoption_dropped(int fd)
{
	struct conn *c = conn_entry(fd);
	if (c && !(fd_class(fd) & FD_CONN))
		conn_sees_again(c);
}

/* The requests of c, an open connection, are seen again unless its stream
 * is lost: a loss marked while this runs either shows in the second look
 * or finds blind already cleared and counts itself (conn_sees_again). */
static void stream_seen_again(struct conn *c)
{
	if (atomic_load_explicit(&c->lost, memory_order_seq_cst))
		return;
	conn_sees_again(c);
	if (atomic_load_explicit(&c->lost, memory_order_seq_cst))
		conn_went_blind(c);
}

/* Bytes were read from joined connection c: they open its stream if a
 * response ended with nothing queued and no write came since; else they
 * go unparsed, and the next response must end first. */
static bool join_opens(struct conn *c)
{
	uint8_t was = JOIN_AWAIT_REQUEST;
	if (atomic_compare_exchange_strong(&c->join, &was, JOIN_OPEN)) {
		stream_seen_again(c);
		return true;
	}
	if (was != JOIN_OPEN)
		atomic_store_explicit(&c->join, JOIN_AWAIT_RESPONSE, memory_order_relaxed);
	return was == JOIN_OPEN;
}

/* os, a copy of the connection whose holder is named (fd + 1), stops
 * being one unless its alias changed meanwhile (it closed, or another
 * close turned it): untracked, and a late read on it goes nowhere. True
 * if it was dropped. */
static inline bool drop_copy(struct fd_state *os, uint32_t named)
{
	if (!atomic_compare_exchange_strong(&os->alias, &named, 0))
		return false;
	atomic_fetch_and_explicit(&os->flags, (uint8_t)~FD_CONN, memory_order_relaxed);
	atomic_fetch_add_explicit(&os->generation, 1, memory_order_relaxed);
	return true;
}

/* The copy whose entry h is took c's connection over, but closed before
 * its alias could be cleared: h goes back to a closed connection's entry
 * (c keeps its pin, request line, head text and count), unlocked. */
static __attribute__((noinline, cold)) void heir_gone(struct conn *c, struct conn *h,
						      bool copied_blind)
{
	/* A loss marked on h since the copy (lose_on marks c, then h)
	 * counted again: c keeps the loss, h's count goes to c or goes. */
	if (atomic_exchange_explicit(&h->blind, false, memory_order_seq_cst) && !copied_blind &&
	    atomic_exchange_explicit(&c->blind, true, memory_order_seq_cst))
		request_streams_unseen(-1);
	atomic_store_explicit(&c->pinned, atomic_exchange_explicit(&h->pinned, 0,
								   memory_order_relaxed),
			      memory_order_relaxed);
	atomic_store_explicit(&h->line_live, false, memory_order_relaxed);
	__atomic_store_n(&h->request, 0, __ATOMIC_RELAXED);
	h->head_slot = 0;
	atomic_store_explicit(&h->out_busy, 0, memory_order_relaxed);
	atomic_store_explicit(&h->copies, 0, memory_order_relaxed);
	conn_unlock(h);
}

/* Heir took the connection over, and its fd closed while the copies were
 * turned to it (BUSY_HEIR_CLOSED): its close, left to this thread, ends the
 * connection; the copies stay open, untracked. */
static __attribute__((noinline, cold)) void heir_closed(int heir)
{
	struct conn *h = conn_entry(heir);
	bool dropped = false;
	int last = atomic_load_explicit(&highest_copy, memory_order_relaxed);
	for (int other = 0; other <= last; other++) {
		struct fd_state *os = fd_state(other);
		if (!os) {
			other |= FD_PAGE - 1;
			continue;
		}
		dropped |= drop_copy(os, (uint32_t)heir + 1);
	}
	if (dropped)
		stream_untracked();
	set_request(h, 0);
	conn_sees_again(h);
	drop_head_text(h);
	atomic_store_explicit(&h->copies, 0, memory_order_relaxed);
	conn_unlock(h);
}

FORK_PATH void conn_forget(int fd)
{
	struct fd_state *st = fd_state(fd);
	if (!st || !(atomic_load_explicit(&st->flags, memory_order_relaxed) & FD_CONN))
		return;
	/* A fork server's parent closing the connection its child serves
	 * writes the low descriptors' flags on the per-process page, which
	 * the fork made copy-on-write: a fault. Its next fork's prepare
	 * handler writes that page anyway (the id counter it reserves from):
	 * only with both writes gone does the parent take no fault more than
	 * without the shim (busybox httpd, perf: 2.0 a request, 1.0 bare,
	 * 2.0 without these stores, 1.0 without both). */
	atomic_fetch_add_explicit(&st->generation, 1, memory_order_seq_cst);
	atomic_fetch_and_explicit(&st->flags, (uint8_t)~FD_CONN, memory_order_relaxed);
	uint32_t alias = atomic_exchange_explicit(&st->alias, 0, memory_order_seq_cst);
	struct conn *c = conn_entry(fd);
	/* fd, a copy, may be the heir of a close on another thread: that
	 * thread, which holds c, then finishes this close. */
	uint32_t moving_in = BUSY_HEIR;
	bool left_to_mover = atomic_load_explicit(&c->busy, memory_order_seq_cst) == BUSY_HEIR &&
			     atomic_compare_exchange_strong(&c->busy, &moving_in, BUSY_HEIR_CLOSED);
	if (alias) {
		/* A copy goes; the connection stays with the others. */
		atomic_fetch_sub_explicit(&conn_entry((int)alias - 1)->copies, 1,
					  memory_order_relaxed);
		return;
	}
	if (left_to_mover)
		return;
	if (atomic_load_explicit(&c->copies, memory_order_relaxed) == 0) {
		/* Stores only what changes: a fork server's parent closes each
		 * connection it handed to a child unread, with no request, and
		 * would copy the entry's page for stores of what is there. */
		uint64_t request = __atomic_load_n(&c->request, __ATOMIC_RELAXED);
		/* A response that ends with its connection (no length) ends
		 * here. */
		if (request && atomic_load_explicit(&c->order_pending, memory_order_relaxed))
			order_answered(c, request);
		if (request || atomic_load_explicit(&c->line_live, memory_order_relaxed) ||
		    atomic_load_explicit(&c->pinned, memory_order_relaxed))
			set_request(c, 0);
		conn_sees_again(c);
		/* Else the fd's next conn_open frees it. */
		if (__atomic_load_n(&c->head_slot, __ATOMIC_RELAXED) && conn_trylock(c)) {
			drop_head_text(c);
			conn_unlock(c);
		}
		return;
	}
	/* The fd holding the entry goes while copies remain: the first copy
	 * found takes the entry over and the others follow it. If the entry
	 * is busy the copies stop being tracked instead: no id beats an id
	 * read from an entry a new connection on fd may take. A copy's alias
	 * changes only from fd's (a compare-exchange): a copy closed on another
	 * thread meanwhile is not made to name an entry again. */
	bool moving = conn_trylock(c);
	bool dropped = false, copied_blind = false;
	int heir = -1;
	int last = atomic_load_explicit(&highest_copy, memory_order_seq_cst);
	for (int other = 0; other <= last; other++) {
		struct fd_state *os = fd_state(other);
		if (!os) { /* a page never mapped: no copy on it */
			other |= FD_PAGE - 1;
			continue;
		}
		uint32_t named = (uint32_t)fd + 1;
		if (atomic_load_explicit(&os->alias, memory_order_seq_cst) != named)
			continue;
		/* The heir's own entry is a closed connection's, which a late
		 * reader of that connection may hold: then this copy is not
		 * the heir (it is dropped), as no entry is written under its
		 * holder. */
		if (!moving || (heir < 0 && !conn_trylock_as(conn_entry(other), BUSY_HEIR))) {
			dropped |= drop_copy(os, named);
		} else if (heir < 0) {
			struct conn *h = conn_entry(other);
			/* Still a copy once its entry is held: a close of it
			 * from now on sees the lock and leaves its end to this
			 * thread, and no connection accepted on its number
			 * takes the entry meanwhile. */
			if (atomic_load_explicit(&os->alias, memory_order_seq_cst) != named) {
				conn_unlock(h);
				continue;
			}
			/* A head slot the heir's entry kept (closed while busy)
			 * goes back first, so does a pin a late read left it,
			 * and its count if a late loss marked it blind. */
			if (h->head_slot)
				head_store_release(h->head_slot);
			unpin_request(h);
			conn_sees_again(h);
			bool heir_tls = atomic_load_explicit(&h->tls, memory_order_relaxed);
			_Static_assert(offsetof(struct conn, busy) == 0, "busy comes first");
			memcpy((char *)h + sizeof(h->busy), (char *)c + sizeof(c->busy),
			       sizeof(*c) - sizeof(c->busy));
			/* Only bytes there are: a fork child's close(conn) after
			 * its dup2(conn, 0) comes here, and a call of libc's
			 * memcpy, even for none, cost it a page of libc's code. */
			if (c->owed_len)
				memcpy(conn_owed(other), conn_owed(fd), c->owed_len);
			if (atomic_load_explicit(&c->tls, memory_order_relaxed))
				*conn_tls(other) = *conn_tls(fd);
			else if (heir_tls)
				*conn_tls(other) = (struct conn_tls){0};
			/* The pin goes to the heir, unless a write on a copy
			 * (answered, which takes no lock) gave it back since
			 * the copy: exactly one side owns it, and nothing
			 * reaches the heir's entry before its alias changes. */
			atomic_store_explicit(&h->pinned,
					      atomic_exchange_explicit(&c->pinned, 0,
								       memory_order_relaxed),
					      memory_order_relaxed);
			atomic_store_explicit(&h->copies, 0, memory_order_relaxed);
			/* Before the alias changes: a loss marked on h after it
			 * (lose_on) counts on its own. */
			copied_blind = atomic_load_explicit(&h->blind, memory_order_relaxed);
			if (!atomic_compare_exchange_strong(&os->alias, &named, 0)) {
				heir_gone(c, h, copied_blind); /* it closed meanwhile */
				continue;
			}
			heir = other;
		} else {
			atomic_fetch_add_explicit(&conn_entry(heir)->copies, 1, memory_order_relaxed);
			if (!atomic_compare_exchange_strong(&os->alias, &named, (uint32_t)heir + 1))
				atomic_fetch_sub_explicit(&conn_entry(heir)->copies, 1,
							  memory_order_relaxed);
		}
	}
	atomic_store_explicit(&c->copies, 0, memory_order_relaxed);
	if (dropped) /* the copies stay open, untracked */
		stream_untracked();
	if (!moving || heir < 0) {
		set_request(c, 0);
		conn_sees_again(c);
		if (moving) {
			drop_head_text(c);
			conn_unlock(c);
		}
		return;
	}
	/* Moved to heir, which counts for it if it is blind. A reader of a
	 * copy that found c locked meanwhile marked c lost (lose_on): that
	 * loss, and the count it made, go to the heir. */
	struct conn *h = conn_entry(heir);
	if (atomic_exchange_explicit(&c->blind, false, memory_order_seq_cst) && !copied_blind &&
	    atomic_exchange_explicit(&h->blind, true, memory_order_seq_cst))
		request_streams_unseen(-1);
	if (atomic_load_explicit(&c->lost, memory_order_seq_cst))
		conn_mark_lost(h);
	atomic_store_explicit(&c->line_live, false, memory_order_relaxed);
	__atomic_store_n(&c->request, 0, __ATOMIC_RELAXED);
	c->head_slot = 0;
	conn_unlock(c);
	uint32_t held = BUSY_HEIR;
	if (!atomic_compare_exchange_strong(&h->busy, &held, 0))
		heir_closed(heir);
}

/* A copy made while its holder closed on another thread: unless that
 * close's scan turned it already, it names no entry (its holder's number
 * may carry a new connection). */
static __attribute__((noinline, cold)) void copy_stale(struct fd_state *cs, int holder)
{
	if (drop_copy(cs, (uint32_t)holder + 1))
		stream_untracked();
}

FORK_PATH void conn_copied(int fd, int copy)
{
	if (!(fd_class(fd) & FD_CONN))
		return;
	int holder = conn_fd(fd);
	const struct fd_state *hs = fd_state(holder);
	uint8_t generation = atomic_load_explicit(&hs->generation, memory_order_relaxed);
	struct fd_state *cs = fd_state_made(copy);
	if (!cs || !conn_entry_made(copy, NULL)) /* it may inherit the entry */
		return;
	int high = atomic_load_explicit(&highest_copy, memory_order_relaxed);
	while (copy > high &&
	       !atomic_compare_exchange_weak_explicit(&highest_copy, &high, copy,
						      memory_order_seq_cst, memory_order_relaxed))
		;
	atomic_fetch_add_explicit(&conn_entry(holder)->copies, 1, memory_order_relaxed);
	atomic_store_explicit(&cs->flags, FD_CONN, memory_order_relaxed);
	atomic_store_explicit(&cs->alias, (uint32_t)holder + 1, memory_order_seq_cst);
	/* The holder's close bumps its generation before it scans for copies:
	 * either that scan sees this alias, or this sees the bump. */
	if (unlikely(atomic_load_explicit(&hs->generation, memory_order_seq_cst) != generation))
		copy_stale(cs, holder);
}

/* The buckets of request line (len bytes) without its query, which starts
 * at path_end: "GET /a?b HTTP/1.1" counts as "GET /a HTTP/1.1". */
static FORK_PATH __attribute__((noinline)) uint32_t path_line_buckets(const char *line, size_t len,
							     size_t path_end)
{
	char path_line[REQUEST_LINE_MAX];
	const char *version = memrchr(line, ' ', len);
	size_t tail = version && version > line + path_end ? (size_t)(line + len - version) : 0;
	memcpy(path_line, line, path_end);
	memcpy(path_line + path_end, version, tail);
	return request_line_buckets(path_line, path_end + tail);
}

/* Makes a new request current on c, counting its request line as live:
 * r is what the parser saw (NULL: a connection that is not HTTP). */
static FORK_PATH void start_request(struct conn *c, const struct http_feed_result *r)
{
	char generated[GENERATED_ID_LEN];
	const char *id = r ? r->id : NULL;
	size_t len = r ? r->id_len : 0;
	/* A request line the parser cut (REQUEST_LINE_MAX bytes: it keeps
	 * no more) is not kept: its first bytes may be another's, or what a
	 * header quotes without the version that would give it away. */
	size_t line_len = r && r->line_len < REQUEST_LINE_MAX ? r->line_len : 0;
	if (len == 0) {
		id_generate(&process.ids, generated);
		id = generated;
		len = sizeof(generated);
	}
	struct trace_plan trace;
	bool inbound = r && r->trace_valid;
	trace_plan_start(&trace, inbound ? &r->trace : NULL, id, len, id == generated, &process.ids);
	if (shim.traced_fields)
		trace_plan_fill(&trace, &process.ids);
	/* A request line a server may log as another one names no request
	 * while it lives, nor for RECENT_REQUESTS ends after: counted as an
	 * unseen stream, not by its buckets. So does a request with
	 * "HTTP/1." in a header value (version_in_value): a line quoting that
	 * header may quote what looks like another request's line. One with a
	 * query counts as the line a format of the path alone logs: a line
	 * quoting that is no other request's, and it names none itself. */
	size_t path_end = 0;
	enum line_logging logging = !line_len ? LINE_AS_IS
				    : r->version_in_value
					    ? LINE_REWRITTEN
					    : http_request_line_logging(r->line, line_len, &path_end);
	uint32_t buckets = !line_len ? 0
			   : logging == LINE_OR_PATH ? path_line_buckets(r->line, line_len, path_end)
						     : request_line_buckets(r->line, line_len);
	uint32_t pin;
	uint64_t serial = request_table_add(id, len, r ? r->line : NULL, line_len, buckets, &trace,
					    inbound ? r->tracestate : NULL,
					    inbound ? r->tracestate_len : 0, &pin);
	if (unlikely(shim.audit) && serial)
		audit_request_started(serial, id, len);
	set_request_in(c, serial); /* every request: compiled in */
	/* An exchange: a pin a close on another thread left behind (stored
	 * after its set_request) goes back here, not never. */
	uint16_t left = atomic_exchange_explicit(&c->pinned, (uint16_t)pin, memory_order_relaxed);
	if (unlikely(left))
		request_unpin(left);
	if (serial && line_len) {
		bool counted = logging != LINE_REWRITTEN;
		atomic_store_explicit(&c->line_buckets, counted ? buckets : REQUEST_LINE_UNSEEN,
				      memory_order_relaxed);
		atomic_store_explicit(&c->line_logging, (uint8_t)logging, memory_order_relaxed);
		if (likely(counted))
			request_line_started(buckets, serial);
		else
			request_streams_unseen(1);
		atomic_store_explicit(&c->line_live, true, memory_order_release);
	}
}

static void lose_stream(struct conn *c)
{
	c->kind = CONN_DONE;
	c->head_pending = false;
	conn_mark_lost(c);
	end_request(c);
}

/* lose_stream for a connection that speaks HTTP/2. */
static void lose_stream_not_http1(struct conn *c)
{
	c->kind = CONN_DONE;
	c->head_pending = false;
	conn_mark_lost_not_http1(c);
	end_request(c);
}

FORK_PATH void conn_write_shut(int fd)
{
	if (!(fd_class(fd) & FD_CONN))
		return;
	struct conn *c = conn_of(fd);
	if (!conn_trylock(c)) {
		lose_on(fd, c);
		return;
	}
	if (c->head_pending) {
		lose_stream(c); /* a head half read: never answered */
	} else if (c->kind == CONN_HTTP) {
		c->kind = CONN_DONE;
	}
	conn_unlock(c);
}

/* Whether the program answered c's current request with 101 Switching
 * Protocols: the bytes its client sends after are the upgraded protocol's
 * (a tunnel, a websocket), never a request it answers, though they may
 * spell one, X-Request-ID and all. Read without the write side's lock, as
 * response_ended does: the client sends them after it read the 101. */
static inline bool switched_protocols(const struct conn *c)
{
	return c->response.status == 101 && c->response.state == R_UNTIL_CLOSE;
}

/* Applies what the parser p saw in one read to the connection's state (h2:
 * the read began the HTTP/2 preface). */
static void apply(struct conn *c, const struct http_feed_result *r, const struct http_parser *p,
		  bool h2)
{
	if (r->not_http && h2) {
		lose_stream_not_http1(c);
		return;
	}
	if (r->not_http && atomic_load_explicit(&c->tls, memory_order_relaxed)) {
		lose_stream(c); /* another protocol inside TLS */
		return;
	}
	if (r->not_http) {
		/* Not parsed from here on: a request may yet come (after a
		 * PROXY protocol line, say) that no count includes. */
		c->kind = CONN_RAW;
		c->head_pending = false;
		conn_went_blind(c);
		start_request(c, NULL);
		return;
	}
	if (r->desync) {
		lose_stream(c);
		return;
	}
	if (r->requests_started) {
		/* Answered by interim responses only (100 Continue, 103), or
		 * maybe (its responses not followed): a request read now
		 * was pipelined behind it (its body and the next head in one
		 * read, after a 100 Continue). Read without the write side's
		 * lock: a final response begun meanwhile is seen or not, and
		 * not seen loses the stream, never gives an id. */
		bool current_unanswered =
			(__atomic_load_n(&c->request, __ATOMIC_RELAXED) != 0 || c->head_pending) &&
			(!atomic_load_explicit(&c->responded, memory_order_relaxed) ||
			 http_response_only_interim(&c->response));
		if (current_unanswered || r->requests_started > 1 || switched_protocols(c)) {
			lose_stream(c);
			return;
		}
		c->head_pending = true;
		atomic_store_explicit(&c->responded, false, memory_order_relaxed);
		set_request_in(c, 0); /* every request: compiled in */
	}
	if (r->headers_completed && c->head_pending) {
		/* Exactly one request began and it is the one whose head ended. */
		c->head_pending = false;
		start_request(c, r);
		http_response_expect_head(&c->response,
					  r->line_len >= 5 && memcmp(r->line, "HEAD ", 5) == 0);
		/* A 100 Continue or a 101 for this request may go unseen. */
		if (unlikely(http_parser_asked_interim(p)))
			http_response_assume_interim(&c->response);
	}
}

/* Keeps the text of p (c's parser) in c's head_store slot while p is inside
 * a head; false if no slot could be had. */
static bool keep_head_text(struct conn *c, const struct http_parser *p)
{
	if (!http_parser_in_head(p)) {
		drop_head_text(c);
		return true;
	}
	if (!c->head_slot && !(c->head_slot = head_store_claim()))
		return false;
	memcpy(head_store_text(c->head_slot), (const char *)p + HTTP_PARSER_STATE_SIZE,
	       HTTP_PARSER_TEXT_SIZE);
	return true;
}

/* Whether the first line p failed on, in the n bytes read now at buf (the
 * byte it failed on among them), begins a gateway protocol's stream: from
 * buf when the line began there (line_here), else from the line's bytes
 * kept so far followed by buf's (an SCGI length's digits read before its
 * ':', once more with those of this read). */
static bool gateway_stream(const struct http_parser *p, const void *buf, size_t n,
			   bool line_here)
{
	enum { PART = 24 };
	if (line_here)
		return http_starts_gateway(buf, n);
	char joined[2 * PART];
	size_t k = p->line_len < PART ? p->line_len : PART, m = n < PART ? n : PART;
	memcpy(joined, p->request_line, k);
	memcpy(joined + k, buf, m);
	return http_starts_gateway(joined, k + m);
}

/* Whether the stream of c, whose first line p failed to parse, is lost
 * rather than not HTTP: that line is a PROXY header (read in pieces, or a
 * second one; a version 2 signature whose first CR and LF bytes the parser
 * skipped as empty lines), or names an HTTP version (the n bytes at buf, read now, begin
 * it if line_here): a request line the parser does not take ("HTTP/1.01",
 * two spaces) that the program may serve, with more requests after it; or
 * the stream is a gateway protocol's (FastCGI, SCGI, uwsgi): requests a
 * front server passes on, each with the id the front server gave it. No id
 * then, never one for the whole connection, which would be all of theirs,
 * and none of them the front server's. Out of the fork child's code. */
static __attribute__((noinline, cold)) bool lost_not_raw(struct conn *c,
							const struct http_parser *p,
							const void *buf, size_t n, bool line_here)
{
	if ((p->line_len < 6 || memcmp(p->request_line, "PROXY ", 6) != 0) &&
	    !http_first_line_names_version(p->request_line, p->line_len) &&
	    !(line_here && http_first_line_names_version(buf, n)) &&
	    !(line_here && !c->proxied && http_proxy_v2_rest(buf, n)) &&
	    !gateway_stream(p, buf, n, line_here))
		return false;
	lose_stream(c);
	return true;
}

bool conn_responses_followed(const struct conn *c)
{
	return shim.config.response_header_len > 0 &&
	       atomic_load_explicit(&c->join, memory_order_relaxed) == JOIN_NONE;
}

/* Bytes of c's current request's body are read now: if that request was
 * answered whole before (responses followed), its server may not have read
 * the body at all: one that ignored it reads these bytes as its next
 * request (a keep-alive BaseHTTPRequestHandler whose do_POST never reads
 * it), one that discards them (nginx) as nothing, and the shim cannot tell
 * which. Loses the stream then, and says so. Out of the fork child's code:
 * bodies read in pieces only come here. */
static __attribute__((noinline, cold)) bool body_read_after_answer(struct conn *c)
{
	if (!conn_answered_whole(c) || !conn_responses_followed(c))
		return false;
	lose_stream(c);
	return true;
}

static FORK_PATH void feed(struct conn *c, const void *buf, size_t n)
{
	/* Between requests (the usual read) the parser is at S_START. */
	const struct http_parser *was = (const struct http_parser *)c->parsing;
	if (unlikely(was->state != S_START) && http_parser_in_body(was) && body_read_after_answer(c))
		return;
	struct http_parser p;
	memcpy(&p, c->parsing, sizeof(c->parsing));
	p.matcher = &shim.matcher;
	/* Outside a head the first line, if it fails, begins in buf. */
	bool line_here = !http_parser_in_head(&p);
	if (c->head_slot) {
		memcpy((char *)&p + HTTP_PARSER_STATE_SIZE, head_store_text(c->head_slot),
		       HTTP_PARSER_TEXT_SIZE);
	} else if (!line_here) {
		/* Inside a head whose text went with the entry (a read that
		 * found the entry before its fd closed): the stream is lost. */
		lose_stream(c);
		return;
	}
	struct http_feed_result r;
	http_parser_feed(&p, buf, n, &r);
	memcpy(c->parsing, &p, sizeof(c->parsing));
	/* A body holding "HTTP/1.": a format that logs bodies may quote it as
	 * a request line, on a line written once it was read. An unseen
	 * stream that ends at once: no line is named by its request line
	 * for RECENT_REQUESTS ends. */
	if (unlikely(r.version_in_body)) {
		request_streams_unseen(1);
		request_streams_unseen(-1);
	}
	if (!keep_head_text(c, &p)) {
		lose_stream(c);
		return;
	}
	bool h2 = r.not_http && line_here && http_starts_h2(buf, n);
	if (unlikely(r.not_http) && !h2 && lost_not_raw(c, &p, buf, n, line_here))
		return;
	apply(c, &r, &p, h2);
}

/* Feeds the n bytes read from c (locked) after the first skip to its
 * parser, unless its stream is not parsed (not HTTP, lost, or joined and
 * not yet open). */
static FORK_PATH void parse_read(struct conn *c, const void *buf, const struct iovec *iov, size_t n,
				 size_t skip)
{
	uint8_t join = atomic_load_explicit(&c->join, memory_order_acquire);
	if (c->kind != CONN_HTTP || (join != JOIN_NONE && !join_opens(c)))
		return;
	if (iov == NULL) {
		feed(c, (const char *)buf + skip, n - skip);
		return;
	}
	for (size_t left = n; left > 0 && c->kind == CONN_HTTP; iov++) {
		size_t part = iov->iov_len < left ? iov->iov_len : left;
		left -= part;
		if (skip >= part) {
			skip -= part;
			continue;
		}
		feed(c, (const char *)iov->iov_base + skip, part - skip);
		skip = 0;
	}
}

/* The bytes read (buf, or iov, n in all) from offset at (< n) on, as far
 * as they lie together: *len of them. */
static const char *bytes_from(const void *buf, const struct iovec *iov, size_t n, size_t at,
			      size_t *len)
{
	if (iov == NULL) {
		*len = n - at;
		return (const char *)buf + at;
	}
	for (size_t left = n;; iov++) {
		size_t part = iov->iov_len < left ? iov->iov_len : left;
		if (at < part) {
			*len = part - at;
			return (const char *)iov->iov_base + at;
		}
		at -= part;
		left -= part;
	}
}

/* Whether the first bytes of a stream (first, len of them) may begin a
 * PROXY protocol header: "PR", or a CR and a NUL where a version 2
 * header has them. Requests begin with neither. */
static inline bool may_be_proxied(const char *first, size_t len)
{
	return len >= 2 && ((first[0] == 'P' && first[1] == 'R') ||
			    (first[0] == '\r' && len >= 5 && first[4] == '\0'));
}

/* The first read of c (locked), which may_be_proxied. A PROXY protocol
 * header a load balancer put before the stream is skipped, if the program
 * reads one (REQID_PROXY_PROTOCOL), and what comes after it read as a
 * stream's first bytes; unlocks c. A header that does not end in this read,
 * or one the program was not said to read (it may answer it as a bad
 * request, and the request after it is then none it serves) loses the
 * stream. Out of the fork child's code: taken only behind a load balancer. */
static __attribute__((noinline)) enum conn_read proxied_start(struct conn *c, const void *buf,
							      const struct iovec *iov, size_t n)
{
	size_t len;
	const char *first = bytes_from(buf, iov, n, 0, &len);
	size_t skip = http_proxy_header_len(first, len);
	if (skip != 0 && !shim.config.proxy_protocol)
		skip = SIZE_MAX;
	if (skip == n) { /* the header alone: the stream starts next */
		c->proxied = true;
		conn_unlock(c);
		return CONN_READ_PARSED;
	}
	c->began = true;
	if (skip == SIZE_MAX) {
		lose_stream(c);
	} else {
		first = bytes_from(buf, iov, n, skip, &len);
		if (skip && http_starts_tls(first, len)) {
			atomic_store_explicit(&c->tls, true, memory_order_relaxed);
			conn_unlock(c);
			return CONN_READ_TLS;
		}
		parse_read(c, buf, iov, n, skip);
	}
	conn_unlock(c);
	return CONN_READ_PARSED;
}

FORK_PATH enum conn_read conn_on_read(int fd, int holder, struct conn *c, uint8_t generation,
				      const void *buf, const struct iovec *iov, size_t n)
{
	if (conn_generation(fd) != generation)
		return CONN_READ_STALE;
	if (atomic_load_explicit(&c->tls, memory_order_relaxed))
		return CONN_READ_TLS;
	if (n == 0)
		return CONN_READ_PARSED;
	/* The generation is looked at again under the lock, which a new
	 * connection on fd takes to start (conn_start): fd may have been
	 * closed since the look above. */
	/* Lost to the stream, or fd's since: either way c may no longer be
	 * the entry fd names (its holder closed, the connection moved to fd,
	 * and a new connection took holder's number and entry), so the hook
	 * hands no entry on for the thread's request. */
	if (!conn_lock_named(fd, holder, generation, c))
		return CONN_READ_STALE;
	if (!c->began && atomic_load_explicit(&c->join, memory_order_relaxed) == JOIN_NONE) {
		/* The first bytes the socket gave: a TLS handshake makes them
		 * records, not requests. */
		size_t len;
		const char *first = bytes_from(buf, iov, n, 0, &len);
		if (unlikely(may_be_proxied(first, len)) && !c->proxied)
			return proxied_start(c, buf, iov, n);
		if (http_starts_tls(first, len)) {
			c->began = true;
			atomic_store_explicit(&c->tls, true, memory_order_relaxed);
			conn_unlock(c);
			return CONN_READ_TLS;
		}
	}
	c->began = true;
	/* The usual read: one buffer of a connection followed from its start,
	 * fed as parse_read feeds it, without the call. */
	if (iov == NULL && c->kind == CONN_HTTP &&
	    atomic_load_explicit(&c->join, memory_order_acquire) == JOIN_NONE)
		feed(c, buf, n);
	else
		parse_read(c, buf, iov, n, 0);
	conn_unlock(c);
	return CONN_READ_PARSED;
}

LOOP_PATH void conn_on_eof(int fd)
{
	uint8_t generation = generation_of(fd);
	int holder = conn_fd(fd);
	struct conn *c = conn_holder_entry(holder);
	if (__atomic_load_n(&c->request, __ATOMIC_RELAXED) == 0 ||
	    !atomic_load_explicit(&c->responded, memory_order_relaxed))
		return;
	if (!conn_lock_named(fd, holder, generation, c))
		return;
	if (__atomic_load_n(&c->request, __ATOMIC_RELAXED) != 0 &&
	    atomic_load_explicit(&c->responded, memory_order_relaxed))
		set_request(c, 0);
	conn_unlock(c);
}

void conn_tls_unseen(int fd)
{
	if (fd_class(fd) & FD_CONN)
		conn_went_blind(conn_of(fd));
}

void conn_tls_begin(int fd)
{
	struct conn *c = conn_of(fd);
	if (likely(atomic_load_explicit(&c->tls, memory_order_relaxed))) {
		if (unlikely(atomic_load_explicit(&c->blind, memory_order_relaxed)) &&
		    !atomic_load_explicit(&c->lost, memory_order_relaxed) && conn_trylock(c)) {
			/* Its records were moved outside a TLS call first
			 * (conn_tls_unseen): a hooked library moves them now. */
			if (c->kind == CONN_HTTP &&
			    atomic_load_explicit(&c->join, memory_order_relaxed) == JOIN_NONE)
				stream_seen_again(c);
			conn_unlock(c);
		}
		return;
	}
	if (!conn_trylock(c)) {
		lose_on(fd, c);
		atomic_store_explicit(&c->tls, true, memory_order_relaxed);
		return;
	}
	if (atomic_load_explicit(&c->join, memory_order_relaxed) != JOIN_NONE ||
	    (c->kind == CONN_HTTP && c->began)) {
		lose_stream(c);
	} else if (c->kind == CONN_RAW) {
		/* Its first bytes were a handshake the check above did not know:
		 * the id it got for them is no request's. */
		stream_seen_again(c);
		c->kind = CONN_HTTP;
		c->head_pending = false;
		atomic_store_explicit(&c->responded, false, memory_order_relaxed);
		set_request(c, 0);
		drop_head_text(c);
		parser_start(c->parsing);
	}
	c->began = true;
	atomic_store_explicit(&c->tls, true, memory_order_relaxed);
	conn_unlock(c);
}

void conn_on_tls_read(int fd, const void *buf, size_t n)
{
	uint8_t generation = generation_of(fd);
	int holder = conn_fd(fd);
	struct conn *c = conn_holder_entry(holder);
	if (n == 0)
		return;
	if (!conn_lock_named(fd, holder, generation, c))
		return;
	parse_read(c, buf, NULL, n, 0);
	conn_unlock(c);
}

/* Whether c's response has been written whole (or cannot be followed, or
 * responses are not followed at all). Read without the write side's lock,
 * after the write that may have ended it: another thread writing the same
 * connection at once has stopped the parser. */
static FORK_PATH bool response_ended(const struct conn *c)
{
	return shim.config.response_header_len == 0 || conn_response_over(c);
}

/* A write of the program went to connection c: a response to its
 * current request began, so its slot may be reused once the ring comes
 * round to it; once the response has ended (or is not followed), the
 * request takes its place in the order the server writes its access lines
 * in (log_order.h): a server logs a request after its response. */
static inline __attribute__((always_inline)) int32_t answered_in(struct conn *c)
{
	uint64_t request = __atomic_load_n(&c->request, __ATOMIC_RELAXED);
	int32_t reader = 0;
	if (request != 0 && !atomic_load_explicit(&c->responded, memory_order_relaxed)) {
		reader = atomic_load_explicit(&c->certain_reader, memory_order_relaxed);
		atomic_store_explicit(&c->responded, true, memory_order_relaxed);
		atomic_store_explicit(&c->order_pending, true, memory_order_relaxed);
		unpin_request(c);
		if (unlikely(shim.audit))
			audit_request_answered(request);
	}
	if (atomic_load_explicit(&c->order_pending, memory_order_relaxed) && response_ended(c) &&
	    atomic_exchange_explicit(&c->order_pending, false, memory_order_relaxed))
		order_answered(c, request);
	return reader;
}

static FORK_PATH int32_t answered(struct conn *c)
{
	return answered_in(c);
}

int32_t conn_on_tls_write(int fd)
{
	return answered(conn_of(fd));
}

FORK_PATH bool conn_on_write(struct conn *c, int32_t *began)
{
	*began = 0;
	if (atomic_load_explicit(&c->tls, memory_order_relaxed))
		return true;
	*began = answered_in(c); /* every response's write: compiled in */
	return false;
}
