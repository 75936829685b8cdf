/*
 * event_batch.h - the event-loop rule: lines written by the handler of the
 * one ready connection of a wait get that connection's request.
 *
 * An event loop's thread hands out its work in batches: a wait returns
 * ready descriptors, and the function F that called the wait runs their
 * handlers; timers and deferred work run elsewhere (after F returned, or
 * from other calls in F). The shim makes each epoll_wait of an event-loop
 * thread return at most one event (the kernel keeps the rest ready for the
 * next call). poll and select loops take no part: their common shape, a
 * pass over every client after each wait, serves all of them from one call
 * instruction. When the one ready descriptor is a connection A:
 *
 *   1. At the wait it records the chain of return addresses of F's callers.
 *   2. The first I/O of the batch, if it is on A and is made from inside F
 *      (its chain ends with the same callers), names the call instruction
 *      in F it comes from: the handler call.
 *   3. A line written while F's activation is live and from inside a call
 *      made at that handler call (its chain ends with the handler call and
 *      the same callers) is A's: it gets the request then current on A.
 *      In a thread serving several connections it is held until the
 *      batch ends (elsewhere until the thread's next release); I/O on (or
 *      the close of) another connection from inside the same handler call
 *      before then takes the id back. A line written from inside that call before
 *      the first I/O gets the request current on A both before and after
 *      that I/O (none if the I/O began a new one).
 *
 * Anything else proves nothing and gets no id (a thread serving several
 * connections has no bracket rule: see thread_ctx.h): I/O on another
 * connection first, I/O on A from outside F, lines from other calls in F
 * or from frames F's caller made after F returned (timers, posted events),
 * chains that cannot be unwound whole. The batch ends at the thread's next
 * wait on several descriptors, or when A is closed. What defeats it, and
 * so is documented in the README: code that, inside the very function
 * that waited, runs work for another request through the same call
 * instruction as A's handler (one queue for ready events and timers, a
 * loop that services every client in turn) and logs there without I/O on
 * another connection.
 *
 * Per-thread state lives in thread_ctx. Never allocates or blocks.
 */
#ifndef REQID_EVENT_BATCH_H
#define REQID_EVENT_BATCH_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/epoll.h>

#include "call_chain.h"

/* The most events an event-loop thread's epoll_wait may return now. */
int batch_max_events(int max) __attribute__((visibility("hidden")));

/* A wait on several descriptors begins: the previous batch is over, and
 * the lines it held go out. */
void batch_end(void) __attribute__((visibility("hidden")));

/* The calling thread accepted connection fd from listen_fd: the batch of a
 * ready listening socket is the batch of the one connection it accepts. */
void batch_accepted(int listen_fd, int fd) __attribute__((visibility("hidden")));

/* The calling thread ends. */
void batch_thread_exit(void) __attribute__((visibility("hidden")));

/* The ready connection is being closed. */
void batch_ready_closing(void) __attribute__((visibility("hidden")));

/* epoll_wait on epfd returned n events; wait_return is the address the
 * wait returns to in the function that called it. */
void batch_after_epoll(int epfd, const struct epoll_event *ev, int n, void *wait_return)
	__attribute__((visibility("hidden")));

/* Before I/O on connection fd, whose chain is given (the thread has a
 * batch). Lines held before the batch's first I/O wait for its end
 * (batch_after_conn_io). */
void batch_before_conn_io(int fd, const struct call_chain *chain)
	__attribute__((visibility("hidden")));

/* After I/O on connection fd (the thread has a batch). */
void batch_after_conn_io(int fd) __attribute__((visibility("hidden")));

/* For a line written before the batch's first I/O: the call in the wait's
 * caller it is written from inside, or 0 if it is not (or no chain). */
uintptr_t batch_line_site(const struct call_chain *chain) __attribute__((visibility("hidden")));

/* The request a line written now belongs to by this rule, or 0. */
uint64_t batch_line_request(const struct call_chain *chain) __attribute__((visibility("hidden")));

/* Nested brackets: for a line (chain) written by a thread serving several
 * connections after its I/O on a connection, the number of outer frames
 * the line shares with that I/O, if that is more than it shares with the
 * thread's last wait (both are then inside one call made below the loop's
 * own level); else 0. The line's bracket closes on the next I/O on the
 * same connection and request only if that I/O shares those frames too. */
int batch_nested_depth(const struct call_chain *chain) __attribute__((visibility("hidden")));

/* A wait on several descriptors (one of them possibly a connection)
 * returned: its callers' chain is recorded. */
void batch_after_wait(void *wait_return) __attribute__((visibility("hidden")));

/* The chain of I/O on connection fd, the latest one, for nested brackets. */
void batch_note_conn_io(int fd, const struct call_chain *chain)
	__attribute__((visibility("hidden")));

#endif
