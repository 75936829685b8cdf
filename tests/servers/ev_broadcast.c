/*
 * ev_broadcast.c - adversarial event-loop server for reqid
 * (test_event_loops.py case 4): ONE thread, level-triggered epoll,
 * handlers through a per-connection function pointer, and requests that
 * wait for OTHER requests. A request with park=1 ("token=B park") registers
 * a waiter callback and stays unanswered; the next request to arrive on any
 * other connection, A, publishes: A's handler, after reading A, calls each
 * waiter's callback, which logs "token=B deliver" BEFORE any I/O on B (and
 * after I/O on A), then writes B's response and logs "token=B dsent". Those
 * lines are B's (a callback that exists for B), although A's handler wrote
 * them while A was the one ready connection. A parked request nobody
 * delivers is answered by a fallback timer ("fire", "fsent"), run after the
 * waiting function returned.
 *
 * Publishing happens before A's own answer for every other request A and
 * after it for the rest, so B's lines come both between A's read and A's
 * write and after A's last I/O.
 *
 * BCAST_QUEUED=1: the callbacks only log "token=B deliver" and build B's
 * response; the responses are written after A's own (a server that answers
 * the publisher first and flushes subscribers later). Then "token=B
 * deliver" sits between A's read and A's write with no I/O on B in between:
 * a rule that gives a line the id of the connection whose I/O brackets it
 * gives it A's id.
 *
 * Lines: see evloop.h, plus park, deliver, dsent. /quit answers and exits 0.
 */
#define _GNU_SOURCE /* accept4 */
#include <stddef.h>
#include <sys/epoll.h>

#include "evloop.h"

#define MAX_EVENTS 64
#define PARK_FALLBACK_MS 25

struct bconn;

struct waiter {
	void (*cb)(struct waiter *w);
	struct bconn *bc;
	struct waiter *prev, *next;
	int linked;
};

struct bconn {
	void (*on_event)(struct bconn *bc, unsigned events);
	struct evc *c;
	struct waiter w;
	struct bconn *next_flush;
	int queued_flush;
};

static int ep = -1, listen_fd = -1, queued_mode;
static struct bconn listener;
static struct waiter parked; /* list head */
static struct bconn *flush_list;
static unsigned long published;

static void set_interest(struct bconn *bc, int op, unsigned events)
{
	struct epoll_event ev;

	memset(&ev, 0, sizeof ev);
	ev.events = events;
	ev.data.ptr = bc;
	epoll_ctl(ep, op, bc->c->fd, &ev);
}

static void unlink_waiter(struct waiter *w)
{
	if (!w->linked)
		return;
	w->prev->next = w->next;
	w->next->prev = w->prev;
	w->linked = 0;
}

static void close_conn(struct bconn *bc)
{
	unlink_waiter(&bc->w);
	epoll_ctl(ep, EPOLL_CTL_DEL, bc->c->fd, NULL);
	evc_close(bc->c);
}

static void after_write(struct bconn *bc, int rc)
{
	if (rc < 0) {
		close_conn(bc);
	} else if (rc > 0) {
		if (bc->c->close_after)
			close_conn(bc);
		else
			set_interest(bc, EPOLL_CTL_MOD, EPOLLIN);
	} else if (bc->c->state == EVC_WRITE) {
		set_interest(bc, EPOLL_CTL_MOD, EPOLLOUT);
	}
}

/* A waiter's callback: B's request is delivered by someone else's. */
static void deliver_cb(struct waiter *w)
{
	struct bconn *bc = w->bc;

	if (bc->c->state != EVC_WAIT)
		return;
	if (bc->c->timer)
		ev_timer_cancel(bc->c);
	if (!queued_mode) {
		after_write(bc, evc_respond(bc->c, "deliver", "dsent"));
		return;
	}
	lh_log_v("INFO", "token=%s deliver", bc->c->tok);
	evc_prepare(bc->c, "dsent");
	bc->next_flush = flush_list;
	bc->queued_flush = 1;
	flush_list = bc;
}

/* Runs every parked request's callback but self's. */
static void publish(struct bconn *self)
{
	struct waiter *w;

	while ((w = parked.next) != &parked) {
		unlink_waiter(w);
		if (w->bc != self)
			w->cb(w);
	}
}

static void flush_queued(void)
{
	while (flush_list) {
		struct bconn *bc = flush_list;

		flush_list = bc->next_flush;
		bc->queued_flush = 0;
		if (bc->c->state == EVC_WRITE)
			after_write(bc, evc_flush(bc->c));
	}
}

static void park(struct bconn *bc)
{
	struct waiter *w = &bc->w;

	lh_log_2w("INFO", "token=%s park", bc->c->tok);
	bc->c->state = EVC_WAIT;
	w->next = &parked;
	w->prev = parked.prev;
	parked.prev->next = w;
	parked.prev = w;
	w->linked = 1;
	ev_timer_add(bc->c, PARK_FALLBACK_MS);
}

/* One request of A, just read ("got" logged). */
static void handle_request(struct bconn *bc)
{
	int before = queued_mode || (published++ & 1);

	if (before)
		publish(bc);
	if (bc->c->park)
		park(bc);
	else
		after_write(bc, evc_answer_or_queue(bc->c));
	if (!before)
		publish(bc);
	flush_queued();
}

static void conn_event(struct bconn *bc, unsigned events)
{
	struct evc *c = bc->c;
	ssize_t n;

	if (c->state == EVC_DEAD)
		return;
	if (c->state == EVC_WRITE) {
		if ((events & (EPOLLOUT | EPOLLERR | EPOLLHUP)) && !bc->queued_flush)
			after_write(bc, evc_flush(c));
		return;
	}
	if (c->state != EVC_READ)
		return;
	n = evc_read(c);
	if (n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK)) {
		close_conn(bc);
		return;
	}
	while (n > 0 && c->state == EVC_READ) {
		int rc = evc_take_request(c);

		if (rc == 0)
			break;
		if (rc < 0) {
			close_conn(bc);
			return;
		}
		handle_request(bc);
	}
}

static void accept_event(struct bconn *bc, unsigned events)
{
	int fd;

	(void)bc;
	(void)events;
	while ((fd = ev_accept(listen_fd)) >= 0) {
		struct bconn *nb = calloc(1, sizeof *nb);
		struct evc *c = evc_new(fd);

		if (!nb || !c) {
			lh_log("ERROR", "out of memory, dropping fd %d", fd);
			free(nb);
			free(c);
			close(fd);
			continue;
		}
		c->user = nb;
		nb->c = c;
		nb->on_event = conn_event;
		nb->w.cb = deliver_cb;
		nb->w.bc = nb;
		set_interest(nb, EPOLL_CTL_ADD, EPOLLIN);
		evc_log_accepted(c);
	}
}

static void reap(void)
{
	struct evc *c;

	while ((c = ev_dead_list) != NULL) {
		ev_dead_list = c->next_dead;
		free(c->user);
		free(c);
	}
}

static __attribute__((noinline)) void loop_once(void)
{
	struct epoll_event events[MAX_EVENTS];
	int i, n;

	reap();
	n = epoll_wait(ep, events, MAX_EVENTS, ev_timer_timeout(-1));
	if (n < 0 && errno != EINTR) {
		lh_log("ERROR", "epoll_wait failed: %s", strerror(errno));
		exit(1);
	}
	for (i = 0; i < n; i++) {
		struct bconn *bc = events[i].data.ptr;

		bc->on_event(bc, events[i].events);
	}
}

/* Delayed requests, and parked ones nobody delivered. */
static __attribute__((noinline)) void expire_timers(void)
{
	struct evc *c;

	while ((c = ev_timer_pop_due(NULL)) != NULL) {
		struct bconn *bc = c->user;

		unlink_waiter(&bc->w);
		if (c->state == EVC_WAIT)
			after_write(bc, evc_timer_fired(c));
	}
}

int main(int argc, char **argv)
{
	int ready_fd = lh_begin(argc, argv, "ev_broadcast"), port;
	const char *q = getenv("BCAST_QUEUED");
	struct evc lc;

	if (ready_fd < 0)
		return 2;
	queued_mode = q && strcmp(q, "1") == 0;
	parked.next = parked.prev = &parked;
	listen_fd = ev_listen(&port);
	ep = epoll_create1(EPOLL_CLOEXEC);
	if (listen_fd < 0 || ep < 0) {
		lh_log("ERROR", "cannot set up: %s", strerror(errno));
		return 1;
	}
	memset(&lc, 0, offsetof(struct evc, lc));
	lc.fd = listen_fd;
	listener.c = &lc;
	listener.on_event = accept_event;
	set_interest(&listener, EPOLL_CTL_ADD, EPOLLIN);
	lh_log("INFO", "listening on 127.0.0.1:%d (one thread, epoll, park/publish%s)", port,
	       queued_mode ? ", subscribers flushed after the publisher" : "");
	if (lh_report_port(ready_fd, port) < 0)
		return 1;
	for (;;) {
		loop_once();
		expire_timers();
	}
}
