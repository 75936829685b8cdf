/*
 * event_batch.h - the event-loop rules: which lines of a thread serving
 * several connections at once are provably one request's.
 *
 * Such a thread runs the handlers of many connections in turn, and timers
 * and posted work in between; its last I/O says nothing about the next
 * line. The shim makes each epoll_wait of such a thread return at most one
 * event (the kernel keeps the rest ready for the next call), records the
 * return addresses of the callers of the function F that called the wait,
 * and judges lines by their own return-address chains (call_chain.h).
 *
 * The batch rule. When the one ready descriptor is a connection A (or a
 * listening socket from which the batch accepts exactly one connection A):
 *   1. The batch's first connection I/O must be on A, move bytes, and come
 *      from inside F (its chain ends with F's callers); the call F made
 *      that it comes from is the handler call. A loop that runs its
 *      handlers after F returned may run timers from that same later call
 *      (libevent), so no handler call is proven there; a thread whose
 *      batches' first I/O came from outside F many times in a row rests
 *      (event_batch.c: whole batches, no chains) for a while, unless nested
 *      brackets need its chains.
 *   2. A line written from inside that call, while the function that made
 *      it is live (the line's chain ends with the same outer frames and
 *      that call), gets the request current on A.
 *   3. A line written from inside F's call before the first I/O gets the
 *      request current on A both before and after that I/O, none if the
 *      I/O began a new one.
 *   4. In a single-threaded program the batch's lines are held to its end
 *      (the next wait); I/O on (or the close of) another connection from
 *      inside the handler call before then takes their id back. A
 *      multi-threaded program's proven lines go out at once, so that no
 *      other thread's later line overtakes them.
 *
 * Nested brackets (only with REQID_EVENT_BRACKETS). A line written after
 * I/O on A, and before the thread's next connection I/O, which is again on
 * A with the same request, gets A's request only if the line and both I/O
 * calls are inside one call made below the loop's own level (the line
 * shares more outer frames with the first I/O than with the last wait, and
 * the closing I/O shares them too) that went to the same function for the
 * line and the I/O. Timers and posted events run from the loop's own
 * frames never close one; a generic dispatcher below the loop's level that
 * runs another request's timer between the two I/O calls does (libevent),
 * which is why they are off by default.
 *
 * Anything else proves nothing and gets no id. What defeats the batch
 * rule, and so is documented in the README: the waiting function running
 * work for A and then for another request through the same call
 * instruction without a wait in between (one queue for ready events and
 * timers), when that work logs without touching another connection.
 *
 * Per-thread state lives in thread_ctx, chains in a page mapped per thread.
 * Never allocates otherwise, never blocks.
 */
#ifndef REQID_EVENT_BATCH_H
#define REQID_EVENT_BATCH_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/epoll.h>

#include "call_chain.h"
#include "epoll_queue.h"
#include "fork_hot.h"

/* How many events the calling thread's epoll wait on epfd asks the kernel
 * for when the program asked for max. While the rules can take call chains
 * (and max is a valid maxevents), each wait returns one event: first from
 * the thread's queue (*queue set), else from the kernel, asking for several
 * and keeping the rest on an instance no other thread waits on (*edge set
 * when it has edge-triggered or one-shot registrations, in a
 * single-threaded process started under the shim only), else for one.
 * Events another instance's edge queue holds go back to the kernel first. */
int batch_fetch_max(int epfd, int max, struct epoll_queue **queue, bool *edge)
	__attribute__((visibility("hidden")));

/* Gives fd's event on epfd back to the kernel, or finds that it is to be
 * dropped (epoll_rearm_fn). */
bool batch_rearm(int epfd, int fd) __attribute__((visibility("hidden")));

/* The program deleted fd's registration on epfd: the calling thread's
 * kept events of it go (epoll_queue_deleted). */
void batch_deleted(int epfd, int fd) __attribute__((visibility("hidden")));

/* The thread is about to wait elsewhere than on an epoll instance, or a
 * second thread is about to start: the events of an edge queue it holds go
 * back to the kernel (epoll_queue_give_back). Keeps errno. */
void batch_give_back(void) __attribute__((visibility("hidden")));

/* A wait on several descriptors begins: the previous batch is over, and
 * the lines it held go out. */
void batch_end(void) __attribute__((visibility("hidden")));

/* The calling thread accepted connection fd from listen_fd: the batch of a
 * ready listening socket is the batch of the one connection it accepts. */
void batch_accepted(int listen_fd, int fd) __attribute__((visibility("hidden")));

/* The calling thread's remembered walks of its stack (call_chain.h), NULL
 * before its first wait as an event loop. */
struct chain_memo *batch_chain_memo(void) __attribute__((visibility("hidden")));

/* The calling thread ends. */
void batch_thread_exit(void) __attribute__((visibility("hidden")));

/* A wait of the calling thread returned after detach (it sat in it
 * meanwhile): its copies of return addresses and its kept events go, as
 * at its end, unless it is inside the shim otherwise (writing lines, in a
 * signal handler entered through it, or a chain it interrupted holds a
 * lend of remembered frames); a later attach maps them afresh.
 * Detach cannot give back another thread's pages while it may be reading
 * them; the thread, back in its wait's hook for the last time, can. */
void batch_wait_after_detach(void) __attribute__((visibility("hidden")));

/* The ready connection is being closed. */
void batch_ready_closing(void) __attribute__((visibility("hidden")));

/* epoll_wait on epfd returned n events; fd is the descriptor of the first
 * when known (epoll_queue_take), else -1 (it is looked up); wait_return is
 * the address the wait returns to in the function that called it. */
void batch_after_epoll(int epfd, const struct epoll_event *ev, int n, int fd, void *wait_return)
	__attribute__((visibility("hidden")));

/* Before I/O on connection fd, whose chain is given (the thread has a
 * batch). Lines held before the batch's first I/O wait for its end
 * (batch_after_conn_io). */
void batch_before_conn_io(int fd, const struct call_chain *chain)
	__attribute__((visibility("hidden")));

/* After I/O on connection fd (the thread has a batch): a write if wrote;
 * moved: it carried bytes. A batch whose I/O on its connection moved nothing (another thread
 * took what woke it) proves nothing. */
void batch_after_conn_io(int fd, bool wrote, bool moved) __attribute__((visibility("hidden")));

/* In a fork child: the parent's batch, wait and held lines are not its. */
void batch_forget(void) __attribute__((visibility("hidden"))) FORK_PATH;

/* For a line written before the batch's first I/O: the call in the wait's
 * caller it is written from inside, or 0 if it is not (or no chain). */
uintptr_t batch_line_site(const struct call_chain *chain) __attribute__((visibility("hidden")));

/* The request a line written now belongs to by this rule, or 0. */
uint64_t batch_line_request(const struct call_chain *chain) __attribute__((visibility("hidden")));

/* Nested brackets: for a line (chain) written by a thread serving several
 * connections after its I/O on a connection, the number of outer frames
 * the line shares with that I/O, if that is more than it shares with the
 * thread's last wait (both are then inside one call made below the loop's
 * own level) and that call went to the same function for both; else 0.
 * *key identifies those frames and that function: the line's bracket
 * closes on the next I/O on the same connection and request only if that
 * I/O has the same key at the same depth (batch_nested_key). */
int batch_nested_depth(const struct call_chain *chain, uint64_t *key)
	__attribute__((visibility("hidden")));
uint64_t batch_nested_key(const struct call_chain *chain, int depth)
	__attribute__((visibility("hidden")));

/* A wait on several descriptors (one of them possibly a connection)
 * returned: its callers' chain is recorded. */
void batch_after_wait(void *wait_return) __attribute__((visibility("hidden")));

/* The chain of I/O on connection fd, the latest one, for nested brackets. */
void batch_note_conn_io(int fd, const struct call_chain *chain)
	__attribute__((visibility("hidden")));

#endif
