/*
 * ev_queue.c - adversarial event-loop server for reqid (test_event_loops.py
 * case 3, a KNOWN LIMIT of a call-site rule): ONE thread, epoll, and a
 * dispatcher that puts ready events and expired timers on one queue and
 * runs every item through the SAME call instruction:
 *
 *     n = epoll_wait(...);
 *     push each ready event's item; push each due timer's item;
 *     while ((it = pop())) it->cb(it);          <- one call site for all
 *
 * So a timer for request B runs from the call site that just ran connection
 * A's handler, inside the same activation of the waiting function: nothing
 * on the stack tells B's line from A's. A shim that attributes by call site
 * gives B's lines A's id here; the test reports how many.
 *
 * With EVQ_ONE_PER_CALL=1 the dispatcher runs ONE item per call and waits
 * only when the queue is empty:
 *
 *     void dispatch_one(void) { if (empty) { wait; push... } pop()->cb(); }
 *     for (;;) dispatch_one();
 *
 * so B's timer runs in a LATER activation of the waiting function, at the
 * same stack depth, with the same return addresses, and no wait in
 * between: "the waiting function's activation is still live" cannot be told
 * from a new one by looking at the stack.
 *
 * Lines: see evloop.h. /quit answers and exits 0.
 */
#define _GNU_SOURCE /* accept4 */
#include <stddef.h>
#include <sys/epoll.h>

#include "evloop.h"

#define MAX_EVENTS 64

struct item {
	void (*cb)(struct item *it);
	struct qconn *qc;      /* NULL for the listener */
	unsigned events;
	int queued;
	struct item *next;
};

struct qconn {
	struct evc *c;
	struct item io, timer;
};

static int ep = -1, listen_fd = -1;
static struct item listen_item;
static struct item *q_head, *q_tail;

static void push(struct item *it)
{
	if (it->queued)
		return;
	it->queued = 1;
	it->next = NULL;
	if (q_tail)
		q_tail->next = it;
	else
		q_head = it;
	q_tail = it;
}

static struct item *pop(void)
{
	struct item *it = q_head;

	if (it) {
		q_head = it->next;
		if (!q_head)
			q_tail = NULL;
		it->queued = 0;
	}
	return it;
}

static void set_interest(struct qconn *qc, int op, unsigned events)
{
	struct epoll_event ev;

	memset(&ev, 0, sizeof ev);
	ev.events = events;
	ev.data.ptr = &qc->io;
	epoll_ctl(ep, op, qc->c->fd, &ev);
}

static void close_conn(struct qconn *qc)
{
	epoll_ctl(ep, EPOLL_CTL_DEL, qc->c->fd, NULL);
	evc_close(qc->c);
}

static void after_write(struct qconn *qc, int rc)
{
	if (rc < 0) {
		close_conn(qc);
	} else if (rc > 0) {
		if (qc->c->close_after)
			close_conn(qc);
		else
			set_interest(qc, EPOLL_CTL_MOD, EPOLLIN);
	} else if (qc->c->state == EVC_WRITE) {
		set_interest(qc, EPOLL_CTL_MOD, EPOLLOUT);
	}
}

static void io_cb(struct item *it)
{
	struct qconn *qc = it->qc;
	struct evc *c = qc->c;
	ssize_t n;

	if (c->state == EVC_DEAD)
		return;
	if (c->state == EVC_WRITE) {
		if (it->events & (EPOLLOUT | EPOLLERR | EPOLLHUP))
			after_write(qc, evc_flush(c));
		return;
	}
	if (c->state != EVC_READ)
		return;
	n = evc_read(c);
	if (n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK)) {
		close_conn(qc);
		return;
	}
	while (n > 0 && c->state == EVC_READ) {
		int rc = evc_take_request(c);

		if (rc == 0)
			break;
		if (rc < 0) {
			close_conn(qc);
			return;
		}
		after_write(qc, evc_answer_or_queue(c));
	}
}

static void timer_cb(struct item *it)
{
	struct qconn *qc = it->qc;

	if (qc->c->state == EVC_WAIT)
		after_write(qc, evc_timer_fired(qc->c));
}

static void accept_cb(struct item *it)
{
	int fd;

	(void)it;
	while ((fd = ev_accept(listen_fd)) >= 0) {
		struct qconn *qc = calloc(1, sizeof *qc);
		struct evc *c = evc_new(fd);

		if (!qc || !c) {
			lh_log("ERROR", "out of memory, dropping fd %d", fd);
			free(qc);
			free(c);
			close(fd);
			continue;
		}
		c->user = qc;
		qc->c = c;
		qc->io.cb = io_cb;
		qc->io.qc = qc;
		qc->timer.cb = timer_cb;
		qc->timer.qc = qc;
		set_interest(qc, EPOLL_CTL_ADD, EPOLLIN);
		evc_log_accepted(c);
	}
}

/* Frees closed connections: only when nothing queued can point at them. */
static void reap(void)
{
	struct evc *c;

	while ((c = ev_dead_list) != NULL) {
		ev_dead_list = c->next_dead;
		free(c->user);
		free(c);
	}
}

/* Inlined: epoll_wait must be called by the dispatcher itself. */
static inline __attribute__((always_inline)) void wait_and_queue(void)
{
	struct epoll_event events[MAX_EVENTS];
	struct evc *c;
	int i, n;

	reap();
	n = epoll_wait(ep, events, MAX_EVENTS, ev_timer_timeout(-1));
	if (n < 0 && errno != EINTR) {
		lh_log("ERROR", "epoll_wait failed: %s", strerror(errno));
		exit(1);
	}
	for (i = 0; i < n; i++) {
		struct item *it = events[i].data.ptr;

		it->events = events[i].events;
		push(it);
	}
	while ((c = ev_timer_pop_due(NULL)) != NULL)
		push(&((struct qconn *)c->user)->timer);
}

/* The whole batch from one activation, one call instruction. */
static __attribute__((noinline)) void dispatch_batch(void)
{
	struct item *it;

	wait_and_queue();
	while ((it = pop()) != NULL)
		it->cb(it);
}

static volatile unsigned long dispatched;

/* One item per activation; waits only when the queue is empty. The count
 * after the call keeps it a call (not a jump that would leave this frame). */
static __attribute__((noinline)) void dispatch_one(void)
{
	struct item *it;

	if (!q_head)
		wait_and_queue();
	if ((it = pop()) != NULL) {
		it->cb(it);
		dispatched++;
	}
}

int main(int argc, char **argv)
{
	int ready_fd = lh_begin(argc, argv, "ev_queue"), port;
	const char *mode = getenv("EVQ_ONE_PER_CALL");
	int one = mode && strcmp(mode, "1") == 0;
	struct epoll_event ev;

	if (ready_fd < 0)
		return 2;
	listen_fd = ev_listen(&port);
	ep = epoll_create1(EPOLL_CLOEXEC);
	if (listen_fd < 0 || ep < 0) {
		lh_log("ERROR", "cannot set up: %s", strerror(errno));
		return 1;
	}
	listen_item.cb = accept_cb;
	memset(&ev, 0, sizeof ev);
	ev.events = EPOLLIN;
	ev.data.ptr = &listen_item;
	epoll_ctl(ep, EPOLL_CTL_ADD, listen_fd, &ev);
	lh_log("INFO", "listening on 127.0.0.1:%d (one thread, epoll, one queue, %s)", port,
	       one ? "one item per call" : "whole batch per call");
	if (lh_report_port(ready_fd, port) < 0)
		return 1;
	if (one)
		for (;;)
			dispatch_one();
	for (;;)
		dispatch_batch();
}
