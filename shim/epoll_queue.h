/*
 * epoll_queue.h - events an event loop's epoll_wait fetched but has not
 * handed out yet.
 *
 * The event-loop rule (event_batch.h) needs each epoll_wait to return one
 * event. Asking the kernel for one at a time costs a system call per event;
 * where that is safe (batch_fetch_max: a level-triggered instance one thread
 * waits on) the hook fetches as many as the caller asked for (up to
 * QUEUE_MAX + 1), returns the first and keeps the rest here, per thread, and
 * the thread's next epoll_wait on the same instance returns the next kept
 * event without entering the kernel: the program sees the batch it would
 * have seen, one event per call.
 *
 * A kept event must never be handed out once the kernel would no longer
 * report it as it was: an event is dropped when its descriptor was closed,
 * replaced, or registered, modified or deleted on any epoll instance since
 * it was fetched (epoll_map_stamp changed; after a modification the kernel
 * reports the descriptor again if it is still ready), and the whole queue
 * when its instance's number was closed. Events are kept only when every
 * one of them maps to its descriptor (epoll_map_lookup): otherwise the
 * whole batch goes to the caller at once, as without the shim. A fork
 * child starts with no kept events (they are its parent's). Never
 * allocates or blocks; a signal handler that waits while the thread is
 * inside the queue bypasses it.
 */
#ifndef REQID_EPOLL_QUEUE_H
#define REQID_EPOLL_QUEUE_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/epoll.h>

#define QUEUE_MAX 63

struct epoll_queue {
	bool busy;
	int epfd;
	uint32_t epfd_stamp;
	uint8_t next, count;
	struct {
		struct epoll_event ev;
		int fd;
		uint32_t stamp;
	} kept[QUEUE_MAX];
};

/* Moves the next kept event of epfd still valid to *ev: true if there was
 * one (the wait is answered without the kernel). */
bool epoll_queue_take(struct epoll_queue *q, int epfd, struct epoll_event *ev)
	__attribute__((visibility("hidden")));

/* How many events to ask the kernel for when the caller asked for max. */
int epoll_queue_fetch_max(int max) __attribute__((visibility("hidden")));

/* The kernel returned n events in ev: keeps all but the first and returns
 * 1, or returns n when they cannot all be kept. */
int epoll_queue_keep(struct epoll_queue *q, int epfd, const struct epoll_event *ev, int n)
	__attribute__((visibility("hidden")));

/* Drops every kept event (a fork child's copy). */
void epoll_queue_clear(struct epoll_queue *q) __attribute__((visibility("hidden")));

#endif
