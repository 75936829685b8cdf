/*
 * thread_ctx.h - which request the calling thread is working on, and how
 * sure the shim is of it.
 *
 * The rule (README, "How lines get their id"):
 *   CERTAIN  the thread read a request's head and has not written to that
 *            connection since, and that request is still the connection's
 *            current one: its lines are that request's.
 *   BRACKET  the thread did I/O on a request's connection and may since have
 *            moved on (it wrote the response, or it runs an event loop where
 *            timers and other handlers run between I/O calls). Its lines are
 *            held until its next event: I/O on the same request tags them,
 *            anything else (I/O elsewhere, a wait, a sleep, accept, exit)
 *            releases them without an id. A thread that serves several
 *            connections at once holds nothing: only the event-loop rule
 *            (event_batch.h) and lines naming their request give ids there.
 *   NONE     no request: lines carry no id.
 * A thread that waits on several fds at once, or does I/O on a second
 * connection while the first is still open (a loop that polls sockets in
 * turn, with or without sleeps), multiplexes: it is an event loop, and never
 * CERTAIN again.
 * pthread_create copies the creator's context into the new thread; the new
 * thread loses it at its first I/O on anything but that connection or a log.
 *
 * The state is a few bytes of initial-exec TLS. Never allocates or blocks.
 */
#ifndef REQID_THREAD_CTX_H
#define REQID_THREAD_CTX_H

#include <stdbool.h>
#include <stdint.h>

#include "conn_table.h"

enum ctx_mode { CTX_NONE, CTX_CERTAIN, CTX_BRACKET };

enum ctx_watch {
	/* The thread waited on several fds at once, or did I/O on a connection
	 * while the one of its previous I/O was still open: an event loop. */
	WATCH_EVENT_LOOP = 1,
	/* The context came from the thread's creator: the thread's first I/O
	 * elsewhere (a job pipe, a file) shows it works on something else. */
	WATCH_INHERITED = 2,
	/* The thread serves several connections at once (epoll, a poll or
	 * select on two or more of them, I/O on a second one while the first
	 * is open): a timer or posted event for any of them may run between
	 * two I/O calls on one, so a bracket proves nothing there. */
	WATCH_CONNS = 4,
	/* The thread was inside a wait on several descriptors, running, or
	 * asleep in the middle of its work (a write, a mutex, a sleep) when
	 * attach had patched the GOT (attach_thread_unseen,
	 * note_unseen_threads), or its wait on several descriptors spanned
	 * the thread scan (ctx_wait_returned): it may be running the events
	 * of a wait the shim never saw return, serving several connections in
	 * turn with no wait in between. Its I/O makes it certain of nothing
	 * and its lines are held for no bracket (as WATCH_CONNS): they get no
	 * id. Its first hooked wait (ctx_wait_seen), not an accept (a loop's
	 * listener handler accepts inside the batch), ends that, unless
	 * WATCH_UNSEEN_BATCH; a fork child of it starts seen. A thread
	 * blocked then in a read, an accept or on a condition is taken for
	 * none (a worker of a pool waiting for work). */
	WATCH_UNSEEN = 8,
	/* With WATCH_UNSEEN: the events it serves next may be a batch the
	 * shim did not see, which only its next wait on several descriptors
	 * ends: a sleep, a lock or a one-descriptor poll a handler makes
	 * inside that batch does not. Set for every thread attach lists;
	 * without it (more than 256 threads) any hooked wait ends the mark. */
	WATCH_UNSEEN_BATCH = 16,
};

#define THREAD_SLOTS_MAX 4

/* event_batch_state.ready_ways */
enum {
	READY_READ = 1,      /* the event said readable (or hung up, or failed) */
	READY_WRITE = 2,     /* the event said writable (or hung up, or failed) */
	READY_UNCHECKED = 4, /* the batch's first I/O on it is not judged yet */
};

/* The event-loop rule's batch (event_batch.h). */
struct event_batch_state {
	uint32_t conn;           /* fd + 1 of the one ready connection; 0: none */
	uint32_t listener;       /* fd + 1 of a ready listening socket whose one
				    accepted connection becomes conn; ~0: taken */
	uint8_t wait_depth;      /* frames of the callers of the wait's caller */
	uint8_t depth;           /* outer frames shared with the handler call
				    (those callers until the handler call is known) */
	bool io_seen;            /* the batch's first connection I/O happened */
	bool moved;              /* this thread's I/O on conn carried bytes */
	bool resolve_held;       /* lines held before it await its end */
	bool spoiled;            /* the handler call did I/O on another
				    connection: its held lines get no id */
	bool holding;            /* a loop serving several connections holds
				    lines of this batch: they go out at its end */
	bool ready_closed;       /* the ready connection was closed */
	uintptr_t site;          /* the handler call; 0: unknown */
	struct loop_frames *frames; /* the wait's callers, the last I/O's chain */
	uint8_t io_depth;        /* frames of the last connection I/O's chain */
	uint8_t ready_ways;      /* READY_* bits: which way the event said the
				    ready connection can go */
	uint32_t io_conn;        /* fd + 1 of that I/O's connection; 0: none */
	uint64_t request;        /* the connection's request at the last I/O on it */
};

struct thread_ctx {
	uint64_t request;        /* serial; 0 when mode is CTX_NONE */
	uint64_t left_request;   /* the request whose context a boundary ended,
				    until the thread's next connection I/O:
				    whose lines naming another request may be
				    (log_writer.c, format_named) */
	uint32_t last_conn;      /* fd + 1 of the connection of the thread's last
				    I/O, until that fd is closed; 0: none */
	uint8_t mode;
	uint8_t watch;           /* WATCH_* bits: why I/O on other fds matters */
	bool in_shim;            /* re-entry guard: the shim is writing lines */
	bool held;               /* log_writer holds lines for this thread */
	bool foreign_lines;      /* after a lock wait: what it writes to logs may
				    be other threads' lines (see ctx_lock_wait) */
	uint8_t signal_depth;    /* signal handlers entered through the shim's
				    trampolines and not left (hook_signal.c;
				    stops at 255; signal_frames.h) */
	uint8_t slot_count;      /* line slots this thread owns */
	bool in_ssl;             /* inside a TLS library call (hook_ssl.c) */
	uint8_t handed_off;      /* enum handoff: last_conn answered and parked */
	uint32_t held_seq;       /* order of the thread's held lines across fds */
	uint32_t epoch;          /* changes whenever the context may have changed */
	uint16_t slots[THREAD_SLOTS_MAX];
	int32_t tid;
	uint32_t generation;     /* ctx_generation when the context was last
				    current (ctx_current) */
	uint32_t ssl_io_conn;    /* fd + 1 of the connection whose socket the
				    current TLS library call did I/O on; 0:
				    none yet, UINT32_MAX: more than one */
	int32_t creator;         /* tid of the thread that created this one
				    (pthread_create), 0 if not known */
	uint32_t held_pin;       /* the request_keep pin of the request the
				    thread's held lines were last held under */
	uint16_t slot_home;      /* 1 + the line slot its claims try first
				    (log_writer.c, claim_slot); 0: none yet */
	uintptr_t signal_frame;  /* while signal_depth > 0: the frame of the
				    outermost trampoline on the stack the
				    innermost handler runs on (signal_frames.h) */
	struct event_batch_state batch;
};

extern __thread struct thread_ctx thread_ctx
	__attribute__((tls_model("initial-exec"), visibility("hidden")));

/* Counts the attaches of this process after its first (`reqid attach`,
 * detach, attach again; attach.c): a thread's context from before the
 * last one describes what the shim no longer knows. */
extern uint32_t ctx_generation __attribute__((visibility("hidden")));

/* The thread's context is from an earlier attach: it starts afresh. */
void ctx_start_afresh(void) __attribute__((visibility("hidden")));

/* Fetches the calling thread's kernel tid into its context (ctx_tid). */
int32_t ctx_tid_fetch(void) __attribute__((visibility("hidden")));

/* The calling thread's kernel tid (cached; reset in fork children). */
static inline int32_t ctx_tid(void)
{
	int32_t tid = thread_ctx.tid;
	return __builtin_expect(tid != 0, 1) ? tid : ctx_tid_fetch();
}

/* How far the thread is done with last_conn: a worker that answered a
 * request in full and gave the connection to an epoll instance that it
 * never waits on itself serves connections in turn, not at once
 * (ctx_after_io_on). */
enum handoff {
	HANDOFF_NONE,
	HANDOFF_ANSWERED, /* its last write there carried the program's bytes
			     and ended the response (nothing owed), on a
			     stream not lost; no bytes were read there since */
	HANDOFF_PARKED,   /* then it added or modified the connection's epoll
			     registration */
};

/* The thread wrote to the connection whose entry is holder's; response_ended:
 * the write carried the program's bytes and left a followed response
 * complete. */
static inline void ctx_note_written(int holder, bool response_ended)
{
	if (thread_ctx.last_conn == (uint32_t)holder + 1)
		thread_ctx.handed_off = response_ended ? HANDOFF_ANSWERED : HANDOFF_NONE;
}

/* The thread registered the connection whose entry is holder's with an
 * epoll instance (EPOLL_CTL_ADD or MOD). */
static inline void ctx_note_parked(int holder)
{
	if (thread_ctx.last_conn == (uint32_t)holder + 1 &&
	    thread_ctx.handed_off == HANDOFF_ANSWERED)
		thread_ctx.handed_off = HANDOFF_PARKED;
}

/* Before the context is read or changed. */
static inline void ctx_current(void)
{
	if (__builtin_expect(thread_ctx.generation != ctx_generation, 0))
		ctx_start_afresh();
}

/* The thread is about to wait through a hook (epoll, poll, select, a
 * condition, a semaphore, a sleep; several: on several descriptors, or on
 * an epoll instance): any wait it began before attach is over
 * (WATCH_UNSEEN), and the unseen batch of one on several descriptors too
 * if this one is on several (WATCH_UNSEEN_BATCH). After the wait's own
 * boundary. */
static inline void ctx_wait_seen(bool several)
{
	ctx_current();
	if (__builtin_expect(thread_ctx.watch & WATCH_UNSEEN, 0) &&
	    (several || !(thread_ctx.watch & WATCH_UNSEEN_BATCH)))
		thread_ctx.watch &= (uint8_t)~(WATCH_UNSEEN | WATCH_UNSEEN_BATCH);
}

/* ctx_wait_returned's work, when an attach came while the thread waited. */
void ctx_wait_spanned_attach(void) __attribute__((visibility("hidden")));

/* A wait on descriptors (epoll, poll, select) returned. One on several
 * that began before the last attach's thread scan was over (the hooks
 * passed through while the GOT was patched, and the scan may have found
 * the thread in a read just before) returns a batch the shim did not see
 * begin: the thread waits for its next wait on several descriptors
 * (WATCH_UNSEEN_BATCH), as one the scan found in such a wait does. */
static inline void ctx_wait_returned(void)
{
	if (__builtin_expect(thread_ctx.generation != ctx_generation, 0))
		ctx_wait_spanned_attach();
}

/* A boundary: the thread stops working on whatever it was (wait, sleep,
 * accept, thread exit; for an event loop or an inherited context also I/O
 * on a descriptor that is neither a connection nor a log). Held lines go
 * out without an id, unless they wait for the end of an event-loop batch
 * (event_batch.h). */
void ctx_boundary(void) __attribute__((visibility("hidden")));

/* An event-loop batch that held lines ends: they go out. */
void ctx_release_batch(void) __attribute__((visibility("hidden")));

/* ctx_before_conn_io's work, when there may be some. */
void ctx_before_conn_io_noting(int fd) __attribute__((visibility("hidden")));

/* After I/O on connection fd (the conn table already updated), whose entry
 * is holder's (conn_fd), c (NULL: fd names no connection now); moved: it
 * carried bytes. The socket hooks look both up once for the call. */
void ctx_after_io_on(int fd, int holder, struct conn *c, bool wrote, bool moved)
	__attribute__((visibility("hidden")));

/* ctx_after_io_on, fd's entry looked up here: after I/O through a TLS
 * library, whose connection may have been closed since. */
static inline void ctx_after_conn_io(int fd, bool wrote, bool moved)
{
	int holder = conn_fd(fd);
	ctx_after_io_on(fd, holder, fd_class(fd) & FD_CONN ? conn_entry(holder) : NULL, wrote,
			moved);
}

/* Connection fd is being closed. */
void ctx_conn_closing(int fd) __attribute__((visibility("hidden")));

/* The request whose id a line written now gets at once: the thread's, if it
 * is CERTAIN and the request is still current on its connection; for a
 * thread with no request in a program exec'ed for one (and serving no
 * connections), that one; else 0. */
uint64_t ctx_certain_request(void) __attribute__((visibility("hidden")));

/* The thread blocks waiting on connection fd alone. */
void ctx_wait_on_conn(int fd) __attribute__((visibility("hidden")));

/* A new thread starts with its creator's context, taken in generation
 * (ctx_generation then); creator is that thread's tid. */
void ctx_inherit(uint64_t request, uint32_t last_conn, uint8_t mode, uint32_t generation,
		 int32_t creator) __attribute__((visibility("hidden")));

/* The calling thread's write on connection fd began the response to its
 * request, which thread reader had read and been certain of. If this
 * thread did not have the request from reader (reader created it, or it
 * did I/O on fd first), the program parks requests:
 * reader left this one for others to finish (Varnish's waiting list) and
 * may run other requests' tasks meanwhile, with no call of its own
 * between them, while it seems certain of it. No thread is certain of a
 * request from then on (shim.parks_requests). */
void ctx_response_began(int fd, int32_t reader) __attribute__((visibility("hidden")));

/* Whether the thread is certain of a request it read itself (not one it
 * got from its creator) that is still unanswered: waits do not end that. */
bool ctx_serves_own_request(void) __attribute__((visibility("hidden")));

/* The thread is about to wait on a lock (a semaphore). A thread serving its
 * own request (ctx_serves_own_request) stays certain of it, but until its
 * next I/O on a connection its log writes get no id: an interpreter's
 * shared log buffer is flushed by whichever thread gets its lock, with
 * other threads' lines in it. Any other thread meets a boundary. */
void ctx_lock_wait(void) __attribute__((visibility("hidden")));

/* The thread waited on several descriptors at once; conns: it serves
 * several connections (WATCH_CONNS). */
void ctx_mark_event_loop(bool conns) __attribute__((visibility("hidden")));

/* Before I/O on connection fd: held lines get the id if fd still carries the
 * request they were held under. Inline what a thread with no batch, no
 * loop and no line held does: nothing. */
static inline void ctx_before_conn_io(int fd)
{
	if (__builtin_expect(thread_ctx.generation == ctx_generation && !thread_ctx.held &&
				     !thread_ctx.batch.conn && !thread_ctx.batch.wait_depth, 1))
		return;
	ctx_before_conn_io_noting(fd);
}

#endif
