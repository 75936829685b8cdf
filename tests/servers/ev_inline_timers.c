/*
 * ev_inline_timers.c - adversarial event-loop server for reqid
 * (test_event_loops.py case 2): ONE thread, level-triggered epoll with the
 * fd in the epoll data, a per-fd table of handler pointers, and timers run
 * from INSIDE the function that called epoll_wait, right after each
 * handler call, through their own call instruction:
 *
 *     n = epoll_wait(...);
 *     for (i = 0; i < n; i++) {
 *         fd_handler[fd](fd, events);              <- handler call site
 *         while ((c = due timer))
 *             fd_handler[c->fd](c->fd, TIMEDOUT);  <- timer call site
 *     }
 *
 * A timer calls the very same handler function, but from the other call
 * instruction, while the waiting function's activation is still live and
 * the one ready fd is some connection A: its lines belong to the timer's
 * request B. (test_event_loops.py checks with objdump that the compiler
 * kept the two call instructions apart.)
 *
 * Lines: see evloop.h. /quit answers and exits 0.
 */
#define _GNU_SOURCE /* accept4 */
#include <stddef.h>
#include <sys/epoll.h>

#include "evloop.h"

#define MAX_FDS 4096
#define MAX_EVENTS 64
#define EV_TIMEDOUT 0x40000000u /* not an epoll bit we ask for */

typedef void (*fd_handler_fn)(int fd, unsigned events);

static int ep = -1, listen_fd = -1;
static struct evc *conns[MAX_FDS];
static fd_handler_fn fd_handler[MAX_FDS];

static void set_interest(int fd, int op, unsigned events)
{
	struct epoll_event ev;

	memset(&ev, 0, sizeof ev);
	ev.events = events;
	ev.data.fd = fd;
	epoll_ctl(ep, op, fd, &ev);
}

static void close_conn(struct evc *c)
{
	int fd = c->fd;

	epoll_ctl(ep, EPOLL_CTL_DEL, fd, NULL);
	conns[fd] = NULL;
	fd_handler[fd] = NULL;
	evc_close(c);
}

static void after_write(struct evc *c, int rc);

static void process_requests(struct evc *c)
{
	while (c->state == EVC_READ) {
		int rc = evc_take_request(c);

		if (rc == 0)
			return;
		if (rc < 0) {
			close_conn(c);
			return;
		}
		after_write(c, evc_answer_or_queue(c));
	}
}

static void after_write(struct evc *c, int rc)
{
	if (rc < 0) {
		close_conn(c);
	} else if (rc > 0) {
		if (c->close_after) {
			close_conn(c);
			return;
		}
		set_interest(c->fd, EPOLL_CTL_MOD, EPOLLIN);
	} else if (c->state == EVC_WRITE) {
		set_interest(c->fd, EPOLL_CTL_MOD, EPOLLOUT);
	}
}

/* Every connection's handler, for epoll events and for its timer. */
static void conn_handler(int fd, unsigned events)
{
	struct evc *c = conns[fd];
	ssize_t n;

	if (!c)
		return;
	if (events & EV_TIMEDOUT) {
		if (c->state == EVC_WAIT)
			after_write(c, evc_timer_fired(c));
		return;
	}
	if (c->state == EVC_WRITE) {
		if (events & (EPOLLOUT | EPOLLERR | EPOLLHUP))
			after_write(c, evc_flush(c));
		return;
	}
	if (c->state != EVC_READ)
		return;
	n = evc_read(c);
	if (n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK)) {
		close_conn(c);
		return;
	}
	if (n > 0)
		process_requests(c);
}

static void accept_handler(int fd, unsigned events)
{
	int cfd;

	(void)fd;
	(void)events;
	while ((cfd = ev_accept(listen_fd)) >= 0) {
		struct evc *c;

		if (cfd >= MAX_FDS || !(c = evc_new(cfd))) {
			lh_log("ERROR", "too many connections, dropping fd %d", cfd);
			close(cfd);
			continue;
		}
		conns[cfd] = c;
		fd_handler[cfd] = conn_handler;
		set_interest(cfd, EPOLL_CTL_ADD, EPOLLIN);
		evc_log_accepted(c);
	}
}

static __attribute__((noinline)) void loop_once(void)
{
	struct epoll_event events[MAX_EVENTS];
	struct evc *c;
	int i, n;

	ev_reap();
	n = epoll_wait(ep, events, MAX_EVENTS, ev_timer_timeout(-1));
	if (n < 0 && errno != EINTR) {
		lh_log("ERROR", "epoll_wait failed: %s", strerror(errno));
		exit(1);
	}
	for (i = 0; i < n; i++) {
		int fd = events[i].data.fd;

		if (fd_handler[fd])
			fd_handler[fd](fd, events[i].events);
		/* timers right after each handler, from this function */
		while ((c = ev_timer_pop_due(NULL)) != NULL)
			if (fd_handler[c->fd])
				fd_handler[c->fd](c->fd, EV_TIMEDOUT);
	}
	if (n <= 0)
		while ((c = ev_timer_pop_due(NULL)) != NULL)
			if (fd_handler[c->fd])
				fd_handler[c->fd](c->fd, EV_TIMEDOUT);
}

int main(int argc, char **argv)
{
	int ready_fd = lh_begin(argc, argv, "ev_inline_timers"), port;

	if (ready_fd < 0)
		return 2;
	listen_fd = ev_listen(&port);
	ep = epoll_create1(EPOLL_CLOEXEC);
	if (listen_fd < 0 || ep < 0 || listen_fd >= MAX_FDS) {
		lh_log("ERROR", "cannot set up: %s", strerror(errno));
		return 1;
	}
	fd_handler[listen_fd] = accept_handler;
	set_interest(listen_fd, EPOLL_CTL_ADD, EPOLLIN);
	lh_log("INFO", "listening on 127.0.0.1:%d (one thread, epoll, timers inside the loop)",
	       port);
	if (lh_report_port(ready_fd, port) < 0)
		return 1;
	for (;;)
		loop_once();
}
