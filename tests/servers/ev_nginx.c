/*
 * ev_nginx.c - adversarial event-loop server for reqid (test_event_loops.py
 * case 1), shaped like nginx: ONE thread, level-triggered epoll, and each
 * connection has a read and a write event whose handler is called through a
 * function pointer (ev->handler(ev)), from the function that called
 * epoll_wait (process_events). Timers are expired by another function,
 * after process_events has returned:
 *
 *     for (;;) { process_events(); expire_timers(); }
 *
 * and a timer calls the same read handler, through its own call
 * instruction, with ev->timedout set. So a delayed request B is answered
 * (its "fire" and "fsent" lines) right after some connection A's handler has
 * read or answered A's request: those lines are B's, never A's.
 *
 * The epoll data is the connection's pointer with an "instance" bit in its
 * lowest bit that flips whenever the struct is reused for a new connection
 * (nginx's stale-event check): the same struct is registered under two
 * data values over its life, and a value can come back for another fd.
 *
 * EVNGX_LAZY_LOG=1 adds an access line per request ("token=T access"),
 * written lazily the way some servers do: when the connection's next event
 * comes in (before the read that brings the next request, or finds EOF),
 * or right away when the connection closes after the response. The line
 * is T's, although the read right after it brings another request.
 *
 * Lines: see evloop.h, plus access. /quit answers and exits 0.
 */
#define _GNU_SOURCE /* accept4 */
#include <stddef.h>
#include <stdint.h>
#include <sys/epoll.h>

#include "evloop.h"

#define MAX_CONNS 2048
#define MAX_EVENTS 64

struct nconn;

struct event {
	void (*handler)(struct event *ev);
	struct nconn *nc;
	int timedout;
};

struct nconn {
	struct evc c;           /* c.fd == -1 while free */
	unsigned instance;
	int access_due;         /* EVNGX_LAZY_LOG: c.tok's access line is owed */
	struct event rev, wev;
	struct nconn *next_free;
};

static int ep = -1, listen_fd = -1, lazy_log;
static struct nconn listener;
static struct nconn *pool, *free_list;

static void *event_data(struct nconn *nc)
{
	return (void *)((uintptr_t)nc | nc->instance);
}

static void set_interest(struct nconn *nc, int op, unsigned events)
{
	struct epoll_event ee;

	memset(&ee, 0, sizeof ee);
	ee.events = events;
	ee.data.ptr = event_data(nc);
	epoll_ctl(ep, op, nc->c.fd, &ee);
}

static void close_conn(struct nconn *nc)
{
	epoll_ctl(ep, EPOLL_CTL_DEL, nc->c.fd, NULL);
	evc_close_fd(&nc->c);
	nc->next_free = free_list;
	free_list = nc;
}

static void log_access(struct nconn *nc)
{
	if (nc->access_due) {
		nc->access_due = 0;
		lh_log("INFO", "token=%s access status=200 bytes=%zu", nc->c.tok, nc->c.out_len);
	}
}

/* After a response is out: close, or read what the client sends next. */
static void response_done(struct nconn *nc)
{
	nc->access_due = lazy_log;
	if (nc->c.close_after) {
		log_access(nc);
		close_conn(nc);
		return;
	}
	set_interest(nc, EPOLL_CTL_MOD, EPOLLIN);
}

/* evc_respond's or evc_flush's result: wait for writability, or done. */
static void after_write(struct nconn *nc, int rc)
{
	if (rc < 0)
		close_conn(nc);
	else if (rc > 0)
		response_done(nc);
	else if (nc->c.state == EVC_WRITE)
		set_interest(nc, EPOLL_CTL_MOD, EPOLLOUT);
}

static void process_requests(struct nconn *nc)
{
	while (nc->c.state == EVC_READ) {
		int rc = evc_take_request(&nc->c);

		if (rc == 0)
			return;
		if (rc < 0) {
			close_conn(nc);
			return;
		}
		after_write(nc, evc_answer_or_queue(&nc->c));
	}
}

static void read_handler(struct event *ev)
{
	struct nconn *nc = ev->nc;
	ssize_t n;

	if (ev->timedout) { /* called by expire_timers */
		ev->timedout = 0;
		if (nc->c.state == EVC_WAIT)
			after_write(nc, evc_timer_fired(&nc->c));
		return;
	}
	if (nc->c.state != EVC_READ)
		return;
	log_access(nc); /* the previous request's, owed since its response */
	n = evc_read(&nc->c);
	if (n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK)) {
		close_conn(nc);
		return;
	}
	if (n > 0)
		process_requests(nc);
}

static void write_handler(struct event *ev)
{
	struct nconn *nc = ev->nc;

	if (nc->c.state == EVC_WRITE)
		after_write(nc, evc_flush(&nc->c));
}

static void accept_handler(struct event *ev)
{
	int fd;

	(void)ev;
	while ((fd = ev_accept(listen_fd)) >= 0) {
		struct nconn *nc = free_list;

		if (!nc) {
			lh_log("ERROR", "out of connections, dropping fd %d", fd);
			close(fd);
			continue;
		}
		free_list = nc->next_free;
		nc->instance ^= 1; /* events still queued for the old owner are stale */
		evc_init(&nc->c, fd);
		nc->access_due = 0;
		nc->rev.handler = read_handler;
		nc->rev.timedout = 0;
		nc->wev.handler = write_handler;
		set_interest(nc, EPOLL_CTL_ADD, EPOLLIN);
		evc_log_accepted(&nc->c);
	}
}

/* nginx's ngx_epoll_process_events: waits, then calls each ready event's
 * handler (read and write events, two call instructions). */
static __attribute__((noinline)) void process_events(int timeout)
{
	struct epoll_event events[MAX_EVENTS];
	int i, n = epoll_wait(ep, events, MAX_EVENTS, timeout);

	if (n < 0 && errno != EINTR) {
		lh_log("ERROR", "epoll_wait failed: %s", strerror(errno));
		exit(1);
	}
	for (i = 0; i < n; i++) {
		uintptr_t p = (uintptr_t)events[i].data.ptr;
		struct nconn *nc = (struct nconn *)(p & ~(uintptr_t)1);
		unsigned revents = events[i].events;

		if (nc != &listener && (nc->c.fd == -1 || nc->instance != (p & 1)))
			continue; /* stale: closed, or reused for another connection */
		if ((revents & (EPOLLIN | EPOLLERR | EPOLLHUP)) && nc->rev.handler)
			nc->rev.handler(&nc->rev);
		if (nc != &listener && (nc->c.fd == -1 || nc->instance != (p & 1)))
			continue;
		if ((revents & EPOLLOUT) && nc->wev.handler)
			nc->wev.handler(&nc->wev);
	}
}

/* nginx's ngx_event_expire_timers: a timed-out event's own handler. */
static __attribute__((noinline)) void expire_timers(void)
{
	struct evc *c;

	while ((c = ev_timer_pop_due(NULL)) != NULL) {
		struct event *ev = &((struct nconn *)c->user)->rev;

		ev->timedout = 1;
		ev->handler(ev);
	}
}

int main(int argc, char **argv)
{
	int ready_fd = lh_begin(argc, argv, "ev_nginx"), port, i;
	const char *lazy = getenv("EVNGX_LAZY_LOG");

	if (ready_fd < 0)
		return 2;
	lazy_log = lazy && strcmp(lazy, "1") == 0;
	pool = calloc(MAX_CONNS, sizeof *pool);
	listen_fd = ev_listen(&port);
	ep = epoll_create1(EPOLL_CLOEXEC);
	if (!pool || listen_fd < 0 || ep < 0) {
		lh_log("ERROR", "cannot set up: %s", strerror(errno));
		return 1;
	}
	for (i = MAX_CONNS - 1; i >= 0; i--) {
		pool[i].c.fd = -1;
		pool[i].c.user = &pool[i];
		pool[i].rev.nc = pool[i].wev.nc = &pool[i];
		pool[i].next_free = free_list;
		free_list = &pool[i];
	}
	listener.c.fd = listen_fd;
	listener.rev.nc = &listener;
	listener.rev.handler = accept_handler;
	set_interest(&listener, EPOLL_CTL_ADD, EPOLLIN);
	lh_log("INFO", "listening on 127.0.0.1:%d (one thread, epoll, ev->handler%s)", port,
	       lazy_log ? ", lazy access lines" : "");
	if (lh_report_port(ready_fd, port) < 0)
		return 1;
	for (;;) {
		process_events(ev_timer_timeout(-1));
		expire_timers();
	}
}
