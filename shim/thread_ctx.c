/*
 * thread_ctx.c - the per-thread attribution state machine (see thread_ctx.h).
 *
 * Called at the entry and exit of connection I/O hooks and from wait hooks.
 * Must stay async-signal-safe: TLS only, plus log_writer for held lines.
 */
#include "thread_ctx.h"

#include "call_chain.h"
#include "event_batch.h"
#include "fork_hot.h"
#include "log_writer.h"
#include "raw_syscall.h"
#include "shim_init.h"
#include "thread_count.h"

#include <errno.h>
#include <stdint.h>
#include <sys/syscall.h>

__thread struct thread_ctx thread_ctx __attribute__((tls_model("initial-exec")));

static void release_held(uint64_t request)
{
	thread_ctx.held = false;
	thread_ctx.in_shim = true;
	log_release_held(request);
	thread_ctx.in_shim = false;
}

/* Every entry point returns at once when a signal handler runs it while the
 * interrupted code is writing lines: the context must not change under it. */

uint32_t ctx_generation FORK_HOT; /* read by every hook, in fork children too */

void ctx_start_afresh(void)
{
	thread_ctx.generation = ctx_generation;
	thread_ctx.request = 0;
	thread_ctx.left_request = 0;
	thread_ctx.mode = CTX_NONE;
	thread_ctx.last_conn = 0;
	/* It may be inside a wait, or the events of one, the shim did not see. */
	thread_ctx.watch = attach_thread_unseen(ctx_tid());
	thread_ctx.foreign_lines = false;
	/* Detach emptied the ring of its pins: this one is no longer held. */
	thread_ctx.held_pin = 0;
	thread_ctx.epoch++;
	batch_forget();
}

FORK_PATH void ctx_boundary(void)
{
	if (thread_ctx.in_shim)
		return;
	ctx_current();
	if (thread_ctx.held && !thread_ctx.batch.holding)
		release_held(0);
	/* A context already empty stays as it is, unwritten: a fork server's
	 * parent accepts with none, and its TLS page, copy-on-write after
	 * each fork, is copied at the first store. */
	if (thread_ctx.request == 0 && thread_ctx.mode == CTX_NONE && !thread_ctx.foreign_lines &&
	    !(thread_ctx.watch & WATCH_INHERITED))
		return;
	thread_ctx.left_request = thread_ctx.request;
	thread_ctx.request = 0;
	thread_ctx.mode = CTX_NONE;
	thread_ctx.foreign_lines = false;
	thread_ctx.watch &= (uint8_t)~WATCH_INHERITED;
	thread_ctx.epoch++;
}

LOOP_PATH void ctx_release_batch(void)
{
	thread_ctx.batch.holding = false;
	if (thread_ctx.held && !thread_ctx.in_shim)
		release_held(0);
}

bool ctx_serves_own_request(void)
{
	return thread_ctx.mode == CTX_CERTAIN && !(thread_ctx.watch & WATCH_INHERITED) &&
	       ctx_certain_request() != 0;
}

void ctx_lock_wait(void)
{
	if (thread_ctx.in_shim)
		return;
	ctx_current();
	if (ctx_serves_own_request())
		thread_ctx.foreign_lines = true;
	else
		ctx_boundary();
}

LOOP_PATH void ctx_before_conn_io_noting(int fd)
{
	if (thread_ctx.in_shim)
		return;
	ctx_current();
	/* An event loop's connection I/O: its chain serves the batch rule and
	 * nested brackets (event_batch.h); not needed for more I/O on a
	 * batch's connection once its handler call is known. */
	const struct event_batch_state *b = &thread_ctx.batch;
	if (likely(!b->conn && !b->wait_depth && !thread_ctx.held))
		return; /* no batch, no loop, no line held: nothing to note */
	bool on_batch = b->conn && b->site && !b->ready_closed &&
			(uint32_t)conn_fd(fd) + 1 == b->conn;
	bool loop = unlikely(b->wait_depth != 0) && (thread_ctx.watch & WATCH_CONNS) &&
		    shim.config.event_brackets;
	CALL_CHAIN(chain);
	chain.count = 0;
	bool taken = !on_batch && (loop || unlikely(b->conn != 0));
	if (taken)
		call_chain_take(&chain, batch_chain_memo());
	if (unlikely(b->conn)) {
		batch_before_conn_io(fd, &chain);
		/* Held lines wait for what this I/O brings, or for the end of
		 * the batch: until then, I/O on another connection from the
		 * handler call may still take their id back. */
		if (b->resolve_held || b->holding) {
			if (loop && taken)
				batch_note_conn_io(fd, &chain);
			return;
		}
	}
	uint64_t r = thread_ctx.request;
	bool same = thread_ctx.mode == CTX_BRACKET && r != 0 && conn_request(fd) == r;
	if (loop && taken) {
		if (thread_ctx.held && same)
			log_resolve_nested(&chain, r);
		batch_note_conn_io(fd, &chain);
	}
	if (thread_ctx.held)
		release_held(same ? r : 0);
}

void ctx_wait_on_conn(int fd)
{
	/* Waiting on the connection alone is part of serving it: held lines
	 * are bracketed by it, as by I/O on it. */
	ctx_before_conn_io(fd);
}

/* The thread now serves an event loop (conns: its connections). */
static inline void mark_event_loop(bool conns)
{
	thread_ctx.epoch++;
	thread_ctx.watch |= (uint8_t)(WATCH_EVENT_LOOP | (conns ? WATCH_CONNS : 0));
	if (thread_ctx.mode == CTX_CERTAIN)
		thread_ctx.mode = CTX_BRACKET;
}

/* ctx_after_io_on's work. Only with apart may the context be from an
 * earlier attach, an event-loop batch be open or the tid not yet be
 * fetched: the calls those take are compiled in there alone, so the usual
 * case calls nothing and keeps no registers. */
static inline __attribute__((always_inline)) void after_conn_io(int fd, int holder, struct conn *c,
								bool wrote, bool moved, bool apart)
{
	if (apart)
		ctx_current();
	uint32_t conn = (uint32_t)holder + 1;
	/* Its own I/O on a second open connection, not its creator's: it
	 * serves both at once, unless it answered the first one's request in
	 * full and handed the connection to an epoll instance for another
	 * thread to watch (a pool whose keep-alive connections go back to a
	 * listener between requests, as Apache's event MPM: it serves them in
	 * turn). A thread that waits on epoll, poll or select itself is the
	 * watcher: a loop, however few connections it had so far. */
	bool in_turn = thread_ctx.handed_off == HANDOFF_PARKED &&
		       !(thread_ctx.watch & WATCH_EVENT_LOOP);
	if (thread_ctx.last_conn != 0 && thread_ctx.last_conn != conn &&
	    !(thread_ctx.watch & WATCH_INHERITED) && !in_turn)
		mark_event_loop(true);
	if (thread_ctx.last_conn != conn || (moved && !wrote))
		thread_ctx.handed_off = HANDOFF_NONE;
	thread_ctx.last_conn = conn;
	thread_ctx.left_request = 0;
	thread_ctx.foreign_lines = false;
	thread_ctx.watch &= (uint8_t)~WATCH_INHERITED;
	thread_ctx.epoch++;
	if (apart && unlikely(thread_ctx.batch.conn))
		batch_after_conn_io(fd, wrote, moved);
	uint64_t r = c ? conn_entry_request(c) : 0;
	if (r == 0) {
		thread_ctx.request = 0;
		thread_ctx.mode = CTX_NONE;
		return;
	}
	thread_ctx.request = r;
	bool certain = !wrote && !(thread_ctx.watch & (WATCH_EVENT_LOOP | WATCH_UNSEEN)) &&
		       !atomic_load_explicit(&c->responded, memory_order_relaxed);
	thread_ctx.mode = certain ? CTX_CERTAIN : CTX_BRACKET;
	if (certain) {
		int32_t tid = apart ? ctx_tid() : thread_ctx.tid;
		if (atomic_load_explicit(&c->certain_reader, memory_order_relaxed) != tid)
			atomic_store_explicit(&c->certain_reader, tid, memory_order_relaxed);
	}
}

static FORK_PATH __attribute__((noinline)) void
after_conn_io_apart(int fd, int holder, struct conn *c, bool wrote, bool moved)
{
	after_conn_io(fd, holder, c, wrote, moved, true);
}

FORK_PATH void ctx_after_io_on(int fd, int holder, struct conn *c, bool wrote, bool moved)
{
	if (thread_ctx.in_shim)
		return;
	if (unlikely(thread_ctx.generation != ctx_generation || thread_ctx.batch.conn ||
		     thread_ctx.tid == 0))
		after_conn_io_apart(fd, holder, c, wrote, moved);
	else
		after_conn_io(fd, holder, c, wrote, moved, false);
}

void ctx_response_began(int fd, int32_t reader)
{
	if (reader != ctx_tid() && reader != thread_ctx.creator &&
	    thread_ctx.request != conn_request(fd) &&
	    !__atomic_load_n(&shim.parks_requests, __ATOMIC_RELAXED))
		__atomic_store_n(&shim.parks_requests, true, __ATOMIC_RELAXED);
}

void ctx_wait_spanned_attach(void)
{
	/* Only a thread that waited on several descriptors (marked a loop as
	 * the wait began, in the generation before): a one-descriptor poll is
	 * a read that waits. After detach nothing is marked. */
	if (thread_ctx.in_shim || !(thread_ctx.watch & WATCH_EVENT_LOOP) ||
	    !__atomic_load_n(&shim.active, __ATOMIC_ACQUIRE))
		return;
	int saved = errno;
	ctx_current();
	thread_ctx.watch |= (uint8_t)(WATCH_UNSEEN | WATCH_UNSEEN_BATCH);
	errno = saved;
}

LOOP_PATH void ctx_mark_event_loop(bool conns)
{
	/* A context from before this attach starts afresh first: else the
	 * wait's own boundary would, dropping the mark (a thread's first wait
	 * after attach, taken for no loop's, its next reads for certain). */
	ctx_current();
	mark_event_loop(conns);
}

FORK_PATH void ctx_conn_closing(int fd)
{
	if (thread_ctx.in_shim)
		return;
	ctx_before_conn_io(fd);
	if (thread_ctx.batch.conn == (uint32_t)conn_fd(fd) + 1)
		batch_ready_closing();
	if (thread_ctx.request != 0 && thread_ctx.request == conn_request(fd))
		ctx_boundary();
	if (thread_ctx.last_conn == (uint32_t)conn_fd(fd) + 1)
		thread_ctx.last_conn = 0;
}

void ctx_inherit(uint64_t request, uint32_t last_conn, uint8_t mode, uint32_t generation,
		 int32_t creator)
{
	thread_ctx.creator = creator;
	thread_ctx.generation = generation;
	thread_ctx.epoch++;
	thread_ctx.request = request;
	thread_ctx.last_conn = last_conn;
	thread_ctx.mode = mode;
	if (mode != CTX_NONE)
		thread_ctx.watch = WATCH_INHERITED;
}

/* ctx_certain_request's look at connection fd, the thread's last: still
 * its request, and not answered yet (by another thread: this one would
 * have left CTX_CERTAIN writing to it). Only with high may fd be at or
 * above FD_LOW (its state out of line: the call compiled in there alone). */
static inline __attribute__((always_inline)) uint64_t certain_on(int fd, bool high)
{
	if (!high && (unsigned)fd >= FD_LOW)
		__builtin_unreachable();
	if (!(fd_class(fd) & FD_CONN))
		return 0;
	const struct conn *c = conn_of(fd);
	uint64_t r = thread_ctx.request;
	return conn_entry_request(c) == r &&
		       !atomic_load_explicit(&c->responded, memory_order_relaxed) ? r : 0;
}

static FORK_PATH __attribute__((noinline)) uint64_t certain_on_high(int fd)
{
	return certain_on(fd, true);
}

FORK_PATH uint64_t ctx_certain_request(void)
{
	if (thread_ctx.mode == CTX_NONE && shim.exec_request &&
	    !__atomic_load_n(&shim.accepted, __ATOMIC_RELAXED))
		return shim.exec_request;
	if (thread_ctx.mode != CTX_CERTAIN || __atomic_load_n(&shim.parks_requests, __ATOMIC_RELAXED))
		return 0;
	int fd = (int)thread_ctx.last_conn - 1;
	return (unsigned)fd < FD_LOW ? certain_on(fd, false) : certain_on_high(fd);
}

/* A thread the hooks did not see start runs: the process is threaded. */
static inline void mark_threaded(void)
{
	if (!atomic_load_explicit(&process.threaded, memory_order_relaxed))
		atomic_store_explicit(&process.threaded, true, memory_order_relaxed);
}

/* Identities for threads whose tid a child sharing their memory fetched
 * (tid_in_child): negative, so that none is a kernel tid, nor -1
 * (epoll_map's many waiters), nor 0 (none). */
static _Atomic uint32_t stand_ins;

/* ctx_tid_fetch in a process whose pid is not the shim's: a vfork child
 * (or a raw clone's sharing memory), run on the TLS of the thread that
 * made it, which has not fetched its tid. What it caches is that thread's
 * identity when the child is gone: never the child's own tid, which the
 * kernel hands out again once the child exits, maybe to a new thread of
 * the process (two threads taken for one: a stdio stream's bytes taken for
 * the wrong thread's, its request's id on another's line). If the process
 * has one thread, that is the thread, its first: its tid is the pid. Else
 * it is threaded, and the thread gets a stand-in no other thread has. A
 * raw fork's child the shim did not see, with memory of its own, gets the
 * same, and a look at a process not its own if the parent is gone: in a
 * child no table of the process's is changed anyway (own_process).
 * Outside FORK_PATH's window: a child of a thread that fetched, or of a
 * fork child (whose tid after_fork_child caches), never comes here. */
static __attribute__((noinline, cold)) int32_t tid_in_child(void)
{
	int32_t tid;
	if (thread_count_of(process.pid) == 1) {
		tid = process.pid;
	} else {
		mark_threaded();
		tid = -2 - (int32_t)(atomic_fetch_add_explicit(&stand_ins, 1, memory_order_relaxed) %
				     (INT32_MAX - 2));
	}
	thread_ctx.tid = tid;
	return tid;
}

/* A thread other than the process's first that no pthread_create hook saw
 * start (C11 thrd_create and glibc's own threads call libc's internal
 * pthread_create) makes the process threaded here, at its first need of
 * its tid: what a single-threaded process may do (an event loop's batch
 * holding its lines to the batch's end, the epoll lookup memo) is wrong
 * beside another thread. In a library attach loaded too (threads started
 * by thrd_create after attach): the injector's thread, none of the
 * program's, has its tid cached before it runs any of the shim's code
 * that asks (change_take). A child sharing
 * the memory of a thread that had not fetched its tid is not the thread
 * (tid_in_child). */
FORK_PATH int32_t ctx_tid_fetch(void)
{
	int32_t tid = (int32_t)raw_syscall3(SYS_gettid, 0, 0, 0);
	if (unlikely(tid != process.pid) && process.pid != 0) {
		if (raw_getpid() != process.pid)
			return tid_in_child();
		mark_threaded();
	}
	thread_ctx.tid = tid;
	return tid;
}
