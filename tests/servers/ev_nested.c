/*
 * ev_nested.c - adversarial event-loop server for reqid
 * (test_event_loops.py case 5): ONE thread, two epoll instances. Every
 * connection is registered in both; the main loop waits on the first. A
 * request with nest=1 on connection A makes A's handler ("token=A nest")
 * run a second, inner event loop on the second epoll fd, which serves OTHER
 * connections' requests (whole: read, lines, response) through the same
 * handler function, until it has served 16 events or a 1 ms wait comes back
 * empty; then A's handler logs "token=A nested" and answers A.
 *
 * So while the inner loop serves B, the outer waiting function is live and
 * B's lines are written from inside the outer loop's call of A's handler;
 * and after the inner loop returns, A's handler writes A's lines again
 * although the last wait returned B. Timers (delay=) run after the outer
 * waiting function returned.
 *
 * The epoll data is the connection's pointer. A nest=1 request served by
 * the inner loop is answered at once (no loop inside the inner one).
 *
 * Lines: see evloop.h, plus nest, nested. /quit answers and exits 0.
 */
#define _GNU_SOURCE /* accept4 */
#include <stddef.h>
#include <sys/epoll.h>

#include "evloop.h"

#define MAX_EVENTS 64
#define INNER_MAX_EVENTS 16

static int ep_outer = -1, ep_inner = -1, listen_fd = -1, depth;
static struct evc listener_tag; /* its address is the listener's epoll data */

static void conn_io(struct evc *c, unsigned events);

static void set_interest(struct evc *c, int op, unsigned events)
{
	struct epoll_event ev;

	memset(&ev, 0, sizeof ev);
	ev.events = events;
	ev.data.ptr = c;
	epoll_ctl(ep_outer, op, c->fd, &ev);
	ev.events = EPOLLIN; /* the inner loop only reads */
	if (op != EPOLL_CTL_MOD)
		epoll_ctl(ep_inner, op, c->fd, &ev);
}

static void close_conn(struct evc *c)
{
	epoll_ctl(ep_outer, EPOLL_CTL_DEL, c->fd, NULL);
	epoll_ctl(ep_inner, EPOLL_CTL_DEL, c->fd, NULL);
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

/* The inner loop: serves other connections, then returns to A's handler. */
static __attribute__((noinline)) int inner_loop(struct evc *self)
{
	struct epoll_event events[MAX_EVENTS];
	int served = 0;

	while (served < INNER_MAX_EVENTS) {
		int i, n = epoll_wait(ep_inner, events, MAX_EVENTS, 1);

		if (n <= 0)
			break;
		for (i = 0; i < n; i++) {
			struct evc *c = events[i].data.ptr;

			if (c == self || c->state != EVC_READ)
				continue;
			conn_io(c, events[i].events);
			served++;
		}
	}
	return served;
}

static void handle_request(struct evc *c)
{
	int served;

	if (!c->nest || depth > 0) {
		after_write(c, evc_answer_or_queue(c));
		return;
	}
	lh_log_v("INFO", "token=%s nest", c->tok);
	c->state = EVC_WAIT; /* not readable by the inner loop meanwhile */
	depth++;
	served = inner_loop(c);
	depth--;
	c->state = EVC_READ;
	lh_log_2w("INFO", "token=%s nested served=%d", c->tok, served);
	after_write(c, evc_respond(c, "respond", "sent"));
}

static void accept_all(void)
{
	int fd;

	while ((fd = ev_accept(listen_fd)) >= 0) {
		struct evc *c = evc_new(fd);

		if (!c) {
			lh_log("ERROR", "out of memory, dropping fd %d", fd);
			close(fd);
			continue;
		}
		set_interest(c, EPOLL_CTL_ADD, EPOLLIN);
		evc_log_accepted(c);
	}
}

/* Every connection's handler, for both loops. */
static void conn_io(struct evc *c, unsigned events)
{
	ssize_t n;

	if (c == &listener_tag) {
		accept_all();
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
	while (n > 0 && c->state == EVC_READ) {
		int rc = evc_take_request(c);

		if (rc == 0)
			break;
		if (rc < 0) {
			close_conn(c);
			return;
		}
		handle_request(c);
	}
}

static __attribute__((noinline)) void outer_once(void)
{
	struct epoll_event events[MAX_EVENTS];
	int i, n;

	ev_reap();
	n = epoll_wait(ep_outer, events, MAX_EVENTS, ev_timer_timeout(-1));
	if (n < 0 && errno != EINTR) {
		lh_log("ERROR", "epoll_wait failed: %s", strerror(errno));
		exit(1);
	}
	for (i = 0; i < n; i++) {
		struct evc *c = events[i].data.ptr;

		if (c->state != EVC_DEAD)
			conn_io(c, events[i].events);
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
	int ready_fd = lh_begin(argc, argv, "ev_nested"), port;
	struct epoll_event ev;

	if (ready_fd < 0)
		return 2;
	listen_fd = ev_listen(&port);
	ep_outer = epoll_create1(EPOLL_CLOEXEC);
	ep_inner = epoll_create1(EPOLL_CLOEXEC);
	if (listen_fd < 0 || ep_outer < 0 || ep_inner < 0) {
		lh_log("ERROR", "cannot set up: %s", strerror(errno));
		return 1;
	}
	listener_tag.state = EVC_READ;
	memset(&ev, 0, sizeof ev);
	ev.events = EPOLLIN;
	ev.data.ptr = &listener_tag;
	epoll_ctl(ep_outer, EPOLL_CTL_ADD, listen_fd, &ev);
	lh_log("INFO", "listening on 127.0.0.1:%d (one thread, epoll, nested loop)", port);
	if (lh_report_port(ready_fd, port) < 0)
		return 1;
	for (;;) {
		outer_once();
		run_timers();
	}
}
