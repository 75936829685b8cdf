/*
 * event_batch.c - the event-loop rule (see event_batch.h).
 *
 * Must stay async-signal-safe (TLS, libunwind's local unwinding, atomic
 * table reads), never hold a line back, and never give an id that rests on
 * less than the three steps of event_batch.h.
 */
#include "event_batch.h"

#include "call_chain.h"
#include "conn_table.h"
#include "epoll_map.h"
#include "log_writer.h"
#include "shim_init.h"
#include "thread_ctx.h"

int batch_max_events(int max)
{
	return max > 1 && shim.active && shim.config.event_stacks ? 1 : max;
}

void batch_end(void)
{
	if (thread_ctx.batch.holding)
		ctx_release_batch();
	thread_ctx.batch.conn = 0;
}

void batch_ready_closing(void)
{
	/* Held lines stay until the batch ends, and the handler's I/O on
	 * other connections is still watched; no line gets A's id any more. */
	if (thread_ctx.batch.holding)
		thread_ctx.batch.ready_closed = true;
	else
		thread_ctx.batch.conn = 0;
}

/* Starts a batch on connection fd if the chain of the wait's callers can
 * be had whole. */
static void batch_begin(int fd, void *wait_return)
{
	struct event_batch_state *b = &thread_ctx.batch;
	batch_end();
	if (!shim.config.event_stacks || !(fd_class(fd) & FD_CONN))
		return;
	struct call_chain chain;
	call_chain_take(&chain);
	for (int i = 0; i < chain.count; i++) {
		if (chain.frames[i] != wait_return)
			continue;
		int depth = chain.count - i - 1;
		if (depth < 1 || depth > CHAIN_MAX)
			return;
		b->depth = (uint8_t)depth;
		b->callers = call_chain_outer_hash(&chain, depth);
		b->site = 0;
		b->io_seen = false;
		b->resolve_held = false;
		b->spoiled = false;
		b->ready_closed = false;
		b->request = conn_request(fd);
		b->conn = (uint32_t)conn_fd(fd) + 1;
		return;
	}
}

void batch_after_epoll(int epfd, const struct epoll_event *ev, int n, void *wait_return)
{
	batch_end();
	if (n != 1 || thread_ctx.in_shim)
		return;
	int fd = epoll_map_lookup(epfd, ev[0].data.u64);
	if (fd >= 0)
		batch_begin(fd, wait_return);
}

/* Whether chain ends with the batch's callers and, inside them, a call at
 * site (any site when site is 0); sets *at to that call. */
static bool inside_wait_caller(const struct call_chain *chain, uintptr_t site, uintptr_t *at)
{
	const struct event_batch_state *b = &thread_ctx.batch;
	int n = chain->count;
	if (n < b->depth + 1)
		return false;
	*at = (uintptr_t)chain->frames[n - b->depth - 1];
	return (site == 0 || *at == site) && call_chain_outer_hash(chain, b->depth) == b->callers;
}

void batch_before_conn_io(int fd)
{
	struct event_batch_state *b = &thread_ctx.batch;
	if (thread_ctx.in_shim)
		return;
	bool on_ready = !b->ready_closed && (uint32_t)conn_fd(fd) + 1 == b->conn;
	struct call_chain chain;
	uintptr_t at;
	if (b->io_seen) {
		if (on_ready || b->site == 0)
			return;
		/* I/O on (or the close of) another connection: if it comes from
		 * inside the handler call, that call serves more than the ready
		 * connection, and what it wrote proves nothing. */
		call_chain_take(&chain);
		if (chain.count == 0 || inside_wait_caller(&chain, b->site, &at)) {
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
	call_chain_take(&chain);
	if (inside_wait_caller(&chain, 0, &at)) {
		b->site = at;
		b->resolve_held = thread_ctx.held;
		b->request = conn_request(fd);
	} else {
		b->conn = 0; /* not from inside F: F has returned */
	}
}

void batch_after_conn_io(int fd)
{
	struct event_batch_state *b = &thread_ctx.batch;
	if ((uint32_t)conn_fd(fd) + 1 != b->conn)
		return;
	uint64_t before = b->request;
	b->request = conn_request(fd);
	if (b->resolve_held) {
		/* The batch's first I/O: lines written before it from inside
		 * the same handler call are the request's that was current on
		 * the connection both before and after it. One the I/O began or
		 * ended (a read of the next request) leaves them none: they may
		 * be about either. */
		b->resolve_held = false;
		bool same = b->request == before && conn_of(fd)->kind == CONN_HTTP;
		log_resolve_batch(b->site, same ? b->request : 0);
	}
}

uintptr_t batch_line_site(void)
{
	struct call_chain chain;
	uintptr_t at;
	call_chain_take(&chain);
	return inside_wait_caller(&chain, 0, &at) ? at : 0;
}

uint64_t batch_line_request(void)
{
	const struct event_batch_state *b = &thread_ctx.batch;
	if (b->conn == 0 || b->site == 0 || b->ready_closed)
		return 0;
	int fd = (int)b->conn - 1;
	uint64_t r = b->request;
	if (r == 0 || conn_request(fd) != r || conn_of(fd)->kind != CONN_HTTP)
		return 0;
	struct call_chain chain;
	uintptr_t at;
	call_chain_take(&chain);
	return inside_wait_caller(&chain, b->site, &at) ? r : 0;
}
