/*
 * ev_doorbell.c - adversarial event-loop server for reqid
 * (test_event_loops.py, an extra case for the epoll data -> fd map): ONE
 * thread, level-triggered epoll used as a doorbell. Every connection is
 * registered with the SAME epoll data (a pointer to the server), so an
 * event says only "some connection is ready"; the handler it calls then
 * tries a non-blocking read on every connection in turn and serves what it
 * finds:
 *
 *     n = epoll_pwait2(...);                data: &bell for all of them
 *     ring(&bell);                          <- handler call site
 *         for each connection: read (EAGAIN for most), serve
 *
 * A map from epoll data to fd holds, for &bell, whichever connection was
 * registered last (or any one of them): the event's "ready connection" is
 * not the one whose request is served, and every line is written from the
 * handler call site while the waiting function is live. Timers (delay=)
 * run after the waiting function returned.
 *
 * Lines: see evloop.h (no "readable" line: reads are tried blindly).
 * /quit answers and exits 0.
 */
#define _GNU_SOURCE /* accept4 */
#include <stddef.h>
#include <sys/epoll.h>

#include "evloop.h"

#define MAX_CONNS 1024
#define MAX_EVENTS 64

struct bell {
	void (*ring)(struct bell *b);
	int rings;
};

static int ep = -1, listen_fd = -1;
static struct evc *conns[MAX_CONNS];
static int nconns;
static struct bell bell, listener_bell;

static void set_interest(struct evc *c, int op, unsigned events)
{
	struct epoll_event ev;

	memset(&ev, 0, sizeof ev);
	ev.events = events;
	ev.data.ptr = &bell; /* the same for every connection */
	epoll_ctl(ep, op, c->fd, &ev);
}

static void close_conn(struct evc *c)
{
	epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
	evc_close(c);
}

static void after_write(struct evc *c, int rc)
{
	if (rc < 0) {
		close_conn(c);
	} else if (rc > 0) {
		if (c->close_after)
			close_conn(c);
		else
			set_interest(c, EPOLL_CTL_MOD, EPOLLIN);
	} else if (c->state == EVC_WRITE) {
		set_interest(c, EPOLL_CTL_MOD, EPOLLOUT);
	}
}

static void try_conn(struct evc *c)
{
	ssize_t n;

	if (c->state == EVC_WRITE) {
		after_write(c, evc_flush(c));
		return;
	}
	if (c->state != EVC_READ)
		return;
	n = lh_fill(&c->lc);
	if (n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK)) {
		close_conn(c);
		return;
	}
	while (n > 0 && c->state == EVC_READ) {
		int rc = evc_take_request(c);

		if (rc == 0)
			break;
		if (rc < 0) {
			close_conn(c);
			return;
		}
		after_write(c, evc_answer_or_queue(c));
	}
}

/* Somebody rang: try everybody. */
static void ring_all(struct bell *b)
{
	int i, count = nconns;

	b->rings++;
	for (i = 0; i < count; i++)
		if (conns[i]->state != EVC_DEAD)
			try_conn(conns[i]);
}

static void accept_all(struct bell *b)
{
	int fd;

	(void)b;
	while ((fd = ev_accept(listen_fd)) >= 0) {
		struct evc *c = nconns < MAX_CONNS ? evc_new(fd) : NULL;

		if (!c) {
			lh_log("ERROR", "too many connections, dropping fd %d", fd);
			close(fd);
			continue;
		}
		conns[nconns++] = c;
		evc_log_accepted(c);
		set_interest(c, EPOLL_CTL_ADD, EPOLLIN);
	}
}

static void compact(void)
{
	int i, j = 0;

	for (i = 0; i < nconns; i++)
		if (conns[i]->state != EVC_DEAD)
			conns[j++] = conns[i];
	nconns = j;
	ev_reap();
}

static int no_pwait2;

static __attribute__((noinline)) void bell_once(void)
{
	struct epoll_event events[MAX_EVENTS];
	int i, n, rung = 0, ms;

	compact();
	ms = ev_timer_timeout(-1);
	if (!no_pwait2) {
		struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000L };

		n = epoll_pwait2(ep, events, MAX_EVENTS, ms < 0 ? NULL : &ts, NULL);
		if (n < 0 && errno == ENOSYS)
			no_pwait2 = 1; /* an old kernel: epoll_wait from now on */
	}
	if (no_pwait2)
		n = epoll_wait(ep, events, MAX_EVENTS, ms);
	if (n < 0 && errno != EINTR) {
		lh_log("ERROR", "epoll_wait failed: %s", strerror(errno));
		exit(1);
	}
	for (i = 0; i < n; i++) {
		struct bell *b = events[i].data.ptr;

		if (b == &bell && rung++)
			continue; /* one sweep serves every ringing connection */
		b->ring(b);
	}
}

static __attribute__((noinline)) void run_timers(void)
{
	struct evc *c;

	while ((c = ev_timer_pop_due(NULL)) != NULL)
		if (c->state == EVC_WAIT)
			after_write(c, evc_timer_fired(c));
}

int main(int argc, char **argv)
{
	int ready_fd = lh_begin(argc, argv, "ev_doorbell"), port;
	struct epoll_event ev;

	if (ready_fd < 0)
		return 2;
	listen_fd = ev_listen(&port);
	ep = epoll_create1(EPOLL_CLOEXEC);
	if (listen_fd < 0 || ep < 0) {
		lh_log("ERROR", "cannot set up: %s", strerror(errno));
		return 1;
	}
	bell.ring = ring_all;
	listener_bell.ring = accept_all;
	memset(&ev, 0, sizeof ev);
	ev.events = EPOLLIN;
	ev.data.ptr = &listener_bell;
	epoll_ctl(ep, EPOLL_CTL_ADD, listen_fd, &ev);
	lh_log("INFO", "listening on 127.0.0.1:%d (one thread, epoll as a doorbell)", port);
	if (lh_report_port(ready_fd, port) < 0)
		return 1;
	for (;;) {
		bell_once();
		run_timers();
	}
}
