/*
 * event_batch.c - the event-loop rules (see event_batch.h).
 *
 * Must stay async-signal-safe (TLS, libunwind's local unwinding, atomic
 * table reads, one mmap per thread) and never give an id that rests on less
 * than event_batch.h's steps.
 */
#include "event_batch.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "call_chain.h"
#include "conn_table.h"
#include "epoll_map.h"
#include "log_writer.h"
#include "shim_init.h"
#include "thread_ctx.h"

LOOP_PATH void batch_end(void)
{
	if (thread_ctx.batch.holding)
		ctx_release_batch();
	thread_ctx.batch.conn = 0;
	thread_ctx.batch.listener = 0;
}

LOOP_PATH void batch_ready_closing(void)
{
	/* Held lines stay until the batch ends, and the handler's I/O on
	 * other connections is still watched; no line gets A's id any more. */
	if (thread_ctx.batch.holding)
		thread_ctx.batch.ready_closed = true;
	else
		thread_ctx.batch.conn = 0;
}

#define FUNCTION_CACHE 64

/* A loop whose batches' first I/O came from outside the waiting function's
 * call UNPROVEN_RUN times in a row runs its handlers after its wait returned
 * (lighttpd, libevent): the batch rule proves nothing there. Unless nested
 * brackets are on (they need the waits' chains), its next REST_WAITS epoll
 * waits return whole batches and take no chains; then it is tried again. */
#define UNPROVEN_RUN 64
#define REST_WAITS 1024

/* The calling thread's copies of return addresses, mapped at its first
 * wait as an event loop (NULL if that failed: no proofs then): the callers
 * of the function that called the last wait (the same at nearly every
 * wait: they are copied only when they change), the chain of
 * the last connection I/O, which function return addresses are in, the
 * events its epoll waits fetched and have not handed out, and its last
 * walks of the stack. */
struct loop_frames {
	void *wait[CHAIN_MAX];
	uint8_t wait_count;    /* frames in wait (wait_depth may be 0 meanwhile) */
	uint64_t wait_walk;    /* the serial of the remembered walk (call_chain.h)
				  wait was last found in, at a wait that returns
				  to wait_return: a wait whose chain has the same
				  serial and return address has the same callers;
				  0: none */
	void *wait_return;
	void *io[CHAIN_MAX];
	uint8_t unproven;      /* batches in a row whose first I/O came from
				  outside the waiting function's call, up to
				  UNPROVEN_RUN */
	uint16_t resting;      /* epoll waits left that take no chains */
	const void *cached_ip[FUNCTION_CACHE]; /* return address -> its function */
	uintptr_t cached_function[FUNCTION_CACHE];
	struct epoll_queue queue;
	struct chain_memo memo;
};

static struct loop_frames *loop_frames(void)
{
	if (!thread_ctx.batch.frames) {
		void *p = mmap(NULL, sizeof(struct loop_frames), PROT_READ | PROT_WRITE,
			       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		if (p != MAP_FAILED)
			thread_ctx.batch.frames = p;
	}
	return thread_ctx.batch.frames;
}

/* No wait recorded: no chain to compare lines and I/O with. */
static void forget_wait(void)
{
	thread_ctx.batch.wait_depth = 0;
	thread_ctx.batch.io_conn = 0;
}

static long read_info(void *info, char *buf, size_t room)
{
	return syscall(SYS_read, *(int *)info, buf, room);
}

/* The inode of the file the kernel still registers under number fd on
 * epfd (after fd was closed, one lives on while another copy of its file
 * does, here or in another process), from /proc/self/fdinfo/EPFD: 0 if it
 * lists none or cannot be read. Plain reads, as any program makes, not
 * kcmp(KCMP_EPOLL_TFD), which a sandbox's seccomp filter may answer with
 * SIGSYS. */
static uint64_t registered_inode(int epfd, int fd)
{
	char path[40], buf[2048];
	snprintf(path, sizeof(path), "/proc/self/fdinfo/%d", epfd);
	int info = (int)syscall(SYS_openat, AT_FDCWD, path, O_RDONLY | O_CLOEXEC);
	if (info < 0)
		return 0;
	uint64_t ino = epoll_fdinfo_find(read_info, &info, buf, sizeof(buf), fd);
	syscall(SYS_close, info);
	return ino;
}

/* Whether a descriptor of this process names the socket or pipe with inode
 * ino (its /proc/self/fd link reads "socket:[INO]" or "pipe:[INO]"). */
static bool process_holds(uint64_t ino)
{
	char want[2][40], link[64];
	int lens[2] = {snprintf(want[0], sizeof(want[0]), "socket:[%llu]", (unsigned long long)ino),
		       snprintf(want[1], sizeof(want[1]), "pipe:[%llu]", (unsigned long long)ino)};
	int dir = (int)syscall(SYS_openat, AT_FDCWD, "/proc/self/fd",
			       O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dir < 0)
		return false;
	bool held = false;
	_Alignas(8) char entries[1024];
	long got;
	while (!held && (got = syscall(SYS_getdents64, dir, entries, sizeof(entries))) > 0) {
		for (long at = 0; at < got && !held;) {
			const struct dirent64 *e = (const struct dirent64 *)(entries + at);
			at += e->d_reclen;
			long n = syscall(SYS_readlinkat, dir, e->d_name, link, sizeof(link));
			for (int k = 0; k < 2 && !held; k++)
				held = n == lens[k] && memcmp(link, want[k], (size_t)n) == 0;
		}
	}
	syscall(SYS_close, dir);
	return held;
}

bool batch_rearm(int epfd, int fd)
{
	struct epoll_event registration;
	int (*ctl)(int, int, int, struct epoll_event *) = REAL(epoll_ctl);
	if (!epoll_map_registration(epfd, fd, &registration)) {
		uint64_t ino = registered_inode(epfd, fd);
		return ino == 0 || !process_holds(ino);
	}
	return ctl && ctl(epfd, EPOLL_CTL_MOD, fd, &registration) == 0;
}

void batch_deleted(int epfd, int fd)
{
	if (unlikely(thread_ctx.batch.frames != NULL))
		epoll_queue_deleted(&thread_ctx.batch.frames->queue, epfd, fd);
}

void batch_give_back(void)
{
	if (unlikely(thread_ctx.batch.frames != NULL)) {
		int saved = errno;
		epoll_queue_give_back(&thread_ctx.batch.frames->queue, batch_rearm);
		errno = saved;
	}
}

/* Whether chains can be taken, the first chain made ready now if not, as
 * batch_after_wait would once this wait returned: a wait that begins
 * before then returns whole batches, which prove nothing. A thread that
 * thrd_create started (no pthread_create hook readies chains before it)
 * made its first wait while its sibling's first wait had not returned
 * yet, and served its first whole batch with no id (ev_c11_threads: its
 * first 8 events, 21 handler lines, in one run of 400). */
static LOOP_PATH bool chains_ready_to_wait(void)
{
	if (likely(call_chain_ready()))
		return true;
	call_chain_load_if_wanted(false);
	return call_chain_ready();
}

LOOP_PATH int batch_fetch_max(int epfd, int max, struct epoll_queue **queue, bool *edge)
{
	*queue = NULL;
	*edge = false;
	/* A max the kernel would refuse (EINVAL) stays as it is. */
	bool valid = max > 0 && (size_t)max <= INT_MAX / sizeof(struct epoll_event);
	struct loop_frames *f;
	ctx_current(); /* events kept during an earlier attach go */
	if (!valid || !shim.active || !shim.config.event_stacks || thread_ctx.in_shim ||
	    !chains_ready_to_wait() || !(f = loop_frames()))
		return max;
	/* Events the thread keeps are handed out first, whatever this wait
	 * asks for: they come before anything the kernel has now. Those of
	 * another instance that the kernel reports once go back to it: this
	 * thread is to wait elsewhere. */
	*queue = &f->queue;
	if (f->queue.epfd != epfd)
		epoll_queue_give_back(&f->queue, batch_rearm);
	/* Events kept from this instance answer the wait (this thread was
	 * its one waiter when it kept them). Only if every one of them has
	 * gone stale does it ask the kernel: for one, which is always safe. */
	else if (f->queue.count != 0)
		return 1;
	/* A loop the rule proves nothing in, resting: the whole batch. */
	if (f->resting != 0) {
		*queue = NULL;
		return max;
	}
	/* New events are kept only on an instance that only this thread waits
	 * on (a kept event would wait for it while another is idle). A
	 * level-triggered one is reported again by the kernel while it holds,
	 * so dropping one is harmless. One reported once (edge-triggered or
	 * one-shot) must be handed out or given back (epoll_queue.h), which
	 * only a single-threaded process can do without racing another
	 * thread's epoll_ctl, and only one started under the shim: detach
	 * would leave a kept event behind. Elsewhere one event at a time. */
	if (!epoll_map_one_waiter(epfd, ctx_tid()))
		return 1;
	if (epoll_map_has_edges(epfd)) {
		if (atomic_load_explicit(&process.threaded, memory_order_relaxed) || shim.attached)
			return 1;
		*edge = true;
	}
	return epoll_queue_fetch_max(max);
}

void batch_forget(void)
{
	struct event_batch_state *b = &thread_ctx.batch;
	if (b->frames)
		epoll_queue_clear(&b->frames->queue);
	b->conn = 0;
	b->listener = 0;
	b->holding = false;
	forget_wait();
}

LOOP_PATH struct chain_memo *batch_chain_memo(void)
{
	return thread_ctx.batch.frames ? &thread_ctx.batch.frames->memo : NULL;
}

void batch_thread_exit(void)
{
	batch_give_back();
	/* no longer reachable before it goes: a signal handler running
	 * meanwhile finds no page (and no wait) */
	batch_forget();
	struct loop_frames *f = thread_ctx.batch.frames;
	thread_ctx.batch.frames = NULL;
	atomic_signal_fence(memory_order_seq_cst);
	if (f)
		munmap(f, sizeof(struct loop_frames));
}

void batch_wait_after_detach(void)
{
	if (shim.loaded_by_attach && !__atomic_load_n(&shim.attached, __ATOMIC_ACQUIRE) &&
	    !thread_ctx.in_shim && thread_ctx.signal_depth == 0 && !call_chain_lender)
		batch_thread_exit();
}

/* How many outer frames (counted from the thread's first) chain shares
 * with the saved chain of depth frames. */
static int shared_outer(const struct call_chain *chain, void *const *saved, int depth)
{
	int shared = 0;
	while (shared < depth && shared < chain->count &&
	       chain->frames[chain->count - 1 - shared] == saved[depth - 1 - shared])
		shared++;
	return shared;
}

/* Whether chain ends with the first depth of the wait's callers (the
 * thread's copy) and has a frame inside them: shared_outer's answer of
 * depth, with a frame to spare, by one comparison of the frames. */
static LOOP_PATH bool below_wait_callers(const struct call_chain *chain, int depth)
{
	return chain->count > depth &&
	       memcmp(chain->frames + chain->count - depth, thread_ctx.batch.frames->wait,
		      (size_t)depth * sizeof(void *)) == 0;
}

/* The wait's callers in f were found in chain (at depth, the wait
 * returning to wait_return): noted, so that a wait taken again from the
 * same remembered walk need not look (batch_after_wait). Checked again
 * after: a wait of a signal handler that ran meanwhile may have put its
 * own callers there. */
static void note_wait_walk(struct loop_frames *f, const struct call_chain *chain, int depth,
			   void *wait_return)
{
	if (chain->walk == 0)
		return;
	f->wait_return = wait_return;
	f->wait_walk = chain->walk;
	atomic_signal_fence(memory_order_seq_cst);
	if (f->wait_count != depth || chain->count <= depth ||
	    memcmp(f->wait, chain->frames + chain->count - depth, (size_t)depth * sizeof(void *)) != 0)
		f->wait_walk = 0;
}

LOOP_PATH void batch_after_wait(void *wait_return)
{
	struct event_batch_state *b = &thread_ctx.batch;
	forget_wait();
	struct loop_frames *f;
	if (thread_ctx.in_shim || !shim.config.event_stacks || !(f = loop_frames()))
		return;
	/* The first chain of a process that listened, and libunwind once a
	 * walk needs it: now, while the process has one thread
	 * (call_chain_wanted). A process threaded before its first wait by a
	 * thread no pthread_create hook saw (C11 thrd_create) gets the first
	 * chain here too (libunwind never: call_chain_load_if_wanted). */
	if ((!atomic_load_explicit(&process.threaded, memory_order_relaxed) || !call_chain_ready()) &&
	    !atomic_load_explicit(&call_chain_settled, memory_order_relaxed))
		call_chain_load_if_wanted(false);
	CALL_CHAIN(chain);
	call_chain_take(&chain, &f->memo);
	if (chain.walk != 0 && chain.walk == f->wait_walk && wait_return == f->wait_return) {
		b->wait_depth = f->wait_count;
		return;
	}
	f->wait_walk = 0;
	atomic_signal_fence(memory_order_seq_cst);
	for (int i = 0; i < chain.count; i++) {
		if (chain.frames[i] != wait_return)
			continue;
		int depth = chain.count - i - 1;
		size_t size = (size_t)depth * sizeof(void *);
		if (depth != f->wait_count || memcmp(f->wait, chain.frames + i + 1, size) != 0) {
			/* Emptied while they change, so that a signal
			 * handler's wait meanwhile copies its own. */
			f->wait_count = 0;
			atomic_signal_fence(memory_order_seq_cst);
			memcpy(f->wait, chain.frames + i + 1, size);
			atomic_signal_fence(memory_order_seq_cst);
			f->wait_count = (uint8_t)depth;
		}
		b->wait_depth = (uint8_t)depth;
		note_wait_walk(f, &chain, depth, wait_return);
		return;
	}
}

/* Starts a batch on ready descriptor fd, the previous one ended and the
 * wait's callers recorded: on fd itself if it is a connection, else on the
 * one connection the batch will accept from it, if it accepts one. */
static void batch_begin(int fd, uint32_t events)
{
	struct event_batch_state *b = &thread_ctx.batch;
	if (b->wait_depth < 1)
		return;
	uint32_t both = EPOLLERR | EPOLLHUP;
	b->ready_ways = (uint8_t)((events & (EPOLLIN | EPOLLPRI | EPOLLRDHUP | both) ? READY_READ : 0) |
				  (events & (EPOLLOUT | both) ? READY_WRITE : 0));
	b->depth = b->wait_depth;
	b->site = 0;
	b->io_seen = false;
	b->moved = false;
	b->resolve_held = false;
	b->spoiled = false;
	b->ready_closed = false;
	if (fd_class(fd) & FD_CONN) {
		b->request = conn_request(fd);
		b->conn = (uint32_t)conn_fd(fd) + 1;
	} else {
		b->listener = (uint32_t)fd + 1;
	}
}

LOOP_PATH void batch_accepted(int listen_fd, int fd)
{
	struct event_batch_state *b = &thread_ctx.batch;
	if (b->listener == 0)
		return;
	if (b->listener == (uint32_t)listen_fd + 1 && b->conn == 0 && !b->io_seen &&
	    (unsigned)fd < FD_LIMIT) {
		b->request = 0;
		b->conn = (uint32_t)fd + 1;
		b->ready_ways = READY_READ; /* its handler reads what it was opened for */
		b->listener = (uint32_t)-1; /* one connection taken */
		return;
	}
	/* A second connection, or one from another socket: no batch. */
	b->listener = 0;
	batch_end();
}

LOOP_PATH void batch_after_epoll(int epfd, const struct epoll_event *ev, int n, int fd,
				 void *wait_return)
{
	ctx_wait_returned();
	batch_end();
	if (n <= 0) {
		forget_wait(); /* nothing woke it: no chain needed */
		return;
	}
	struct loop_frames *f = thread_ctx.batch.frames;
	if (f && f->resting != 0) {
		f->resting--;
		forget_wait(); /* no batch: no chain needed */
		return;
	}
	batch_after_wait(wait_return);
	if (n != 1 || thread_ctx.in_shim)
		return;
	if (fd < 0)
		fd = epoll_map_lookup(epfd, ev[0].data.u64);
	if (fd >= 0)
		batch_begin(fd, ev[0].events);
}

/* The function return address ip is in, through the thread's cache. */
static uintptr_t function_of(const void *ip)
{
	struct loop_frames *f = thread_ctx.batch.frames;
	unsigned i = (unsigned)(((uintptr_t)ip >> 4) ^ ((uintptr_t)ip >> 12)) % FUNCTION_CACHE;
	if (f->cached_ip[i] != ip) {
		bool final;
		uintptr_t function = call_chain_function(ip, &final);
		if (!final)
			return function;
		f->cached_function[i] = function;
		f->cached_ip[i] = ip;
	}
	return f->cached_function[i];
}

/* Inside the deepest call a chain of count frames shares (depth outer
 * frames), the function that call went to. */
static uintptr_t callee(void *const *frames, int count, int depth)
{
	return function_of(frames[count - 1 - depth]);
}

/* Whether chain ends with the batch's callers (the wait's, still in the
 * thread's copy: a wait since would have ended the batch) and, inside
 * them, a call at site (any site when site is 0); sets *at to that call. */
static LOOP_PATH bool inside_wait_caller(const struct call_chain *chain, uintptr_t site,
					 uintptr_t *at)
{
	const struct event_batch_state *b = &thread_ctx.batch;
	if (!below_wait_callers(chain, b->depth))
		return false;
	*at = (uintptr_t)chain->frames[chain->count - 1 - b->depth];
	return site == 0 || *at == site;
}

LOOP_PATH void batch_before_conn_io(int fd, const struct call_chain *chain)
{
	struct event_batch_state *b = &thread_ctx.batch;
	bool on_ready = !b->ready_closed && (uint32_t)conn_fd(fd) + 1 == b->conn;
	uintptr_t at;
	if (b->io_seen) {
		if (on_ready || b->site == 0)
			return;
		/* I/O on (or the close of) another connection: if it comes from
		 * inside the handler call, that call serves more than the ready
		 * connection, and what it wrote proves nothing. */
		if (chain->count == 0 || inside_wait_caller(chain, b->site, &at)) {
			b->spoiled = true;
			b->conn = 0;
		}
		return;
	}
	b->io_seen = true;
	if (!on_ready) {
		b->conn = 0; /* the batch began with I/O elsewhere: no handler call known */
		return;
	}
	/* The handler call: a call the waiting function made (this I/O's chain
	 * shares all its callers with the wait's). A loop that runs its
	 * handlers after the waiting function returned may run timers from the
	 * same call (libevent): no handler call is proven there. */
	struct loop_frames *f = b->frames;
	if (!below_wait_callers(chain, b->wait_depth)) {
		b->conn = 0;
		if (f->unproven < UNPROVEN_RUN)
			f->unproven++;
		if (f->unproven == UNPROVEN_RUN && !shim.config.event_brackets)
			f->resting = REST_WAITS;
		return;
	}
	f->unproven = 0;
	/* b->depth is already the depth of this chain's outer frames:
	 * batch_begin took them from the wait's chain, which every frame of
	 * them matched, and a wait since would have ended the batch. */
	b->site = (uintptr_t)chain->frames[chain->count - 1 - b->wait_depth];
	b->resolve_held = thread_ctx.held;
	b->request = conn_request(fd);
	b->ready_ways |= READY_UNCHECKED;
}

void batch_note_conn_io(int fd, const struct call_chain *chain)
{
	struct event_batch_state *b = &thread_ctx.batch;
	if (chain->count == 0 || b->wait_depth == 0) {
		b->io_conn = 0;
		return;
	}
	memcpy(b->frames->io, chain->frames, (size_t)chain->count * sizeof(void *));
	b->io_depth = (uint8_t)chain->count;
	b->io_conn = (uint32_t)conn_fd(fd) + 1;
}

/* The lines held before the batch's first I/O get request (0: none), and
 * go out now unless the batch keeps its lines to its end (before another
 * thread's later lines). */
static void resolve_held(struct event_batch_state *b, uint64_t request)
{
	b->resolve_held = false;
	log_resolve_batch(b->site, request);
	if (!b->holding)
		ctx_release_batch();
}

LOOP_PATH void batch_after_conn_io(int fd, bool wrote, bool moved)
{
	struct event_batch_state *b = &thread_ctx.batch;
	if ((uint32_t)conn_fd(fd) + 1 != b->conn)
		return;
	if (b->ready_ways & READY_UNCHECKED) {
		/* The batch's first I/O must go the way the event said the
		 * connection can: a handler reads what made it readable. A
		 * write first after a readable event is some other call's (a
		 * timer answering a request another thread read): it proves no
		 * handler call. */
		b->ready_ways &= (uint8_t)~READY_UNCHECKED;
		if (!(b->ready_ways & (wrote ? READY_WRITE : READY_READ))) {
			if (b->resolve_held)
				resolve_held(b, 0);
			b->conn = 0;
			b->site = 0;
			return;
		}
	}
	uint64_t before = b->request;
	/* Only this thread's reads move it on to a new request: after a write,
	 * another thread sharing the connection may already have read the
	 * next one. */
	if (!wrote)
		b->request = conn_request(fd);
	b->moved |= moved;
	if (b->resolve_held) {
		/* The batch's first I/O: lines written before it from inside
		 * the same handler call are the request's that was current on
		 * the connection both before and after it. One the I/O began or
		 * ended (a read of the next request) leaves them none: they may
		 * be about either. */
		bool same = b->moved && b->request == before && conn_of(fd)->kind == CONN_HTTP;
		resolve_held(b, same ? b->request : 0);
	}
}

uintptr_t batch_line_site(const struct call_chain *chain)
{
	uintptr_t at;
	return inside_wait_caller(chain, 0, &at) ? at : 0;
}

LOOP_PATH uint64_t batch_line_request(const struct call_chain *chain)
{
	const struct event_batch_state *b = &thread_ctx.batch;
	if (b->conn == 0 || b->site == 0 || b->ready_closed)
		return 0;
	int fd = (int)b->conn - 1;
	uint64_t r = b->request;
	if (r == 0 || !b->moved || conn_request(fd) != r || conn_of(fd)->kind != CONN_HTTP)
		return 0;
	uintptr_t at;
	return inside_wait_caller(chain, b->site, &at) ? r : 0;
}

int batch_nested_depth(const struct call_chain *chain, uint64_t *key)
{
	const struct event_batch_state *b = &thread_ctx.batch;
	if (b->wait_depth == 0 || b->io_conn == 0 || b->io_conn != thread_ctx.last_conn)
		return 0;
	int with_io = shared_outer(chain, b->frames->io, b->io_depth);
	int with_wait = shared_outer(chain, b->frames->wait, b->wait_depth);
	if (with_io <= with_wait || with_io >= chain->count || with_io >= b->io_depth)
		return 0;
	/* In that call, the line and the I/O run in one function: not a second
	 * callback the same dispatch called for another request. */
	uintptr_t fn = callee(chain->frames, chain->count, with_io);
	if (fn == 0 || fn != callee(b->frames->io, b->io_depth, with_io))
		return 0;
	*key = batch_nested_key(chain, with_io);
	return with_io;
}

uint64_t batch_nested_key(const struct call_chain *chain, int depth)
{
	if (chain->count <= depth)
		return 0;
	return call_chain_outer_hash(chain, depth) ^ callee(chain->frames, chain->count, depth);
}
