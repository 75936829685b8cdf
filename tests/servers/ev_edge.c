/*
 * ev_edge.c - adversarial event-loop server for reqid (test_event_loops.py
 * case 7): ONE thread, EDGE-triggered epoll (EPOLLIN | EPOLLOUT | EPOLLRDHUP
 * | EPOLLET, registered once, never modified, as nginx does), handlers that
 * drain reads until EAGAIN, and a libev-shaped run function that never
 * returns: it runs due timers, waits (epoll_pwait), and dispatches, over
 * and over,
 *
 *     void ev_run(void) {
 *         for (;;) {
 *             while ((c = due timer)) conn_timeout(c);  <- timer call site
 *             n = epoll_pwait(...);
 *             for (...) ec->io_cb(ec, events);          <- handler call site
 *         }
 *     }
 *
 * so the waiting function's activation is live forever: a timer for B runs
 * in it right after A's handler, before the next wait, while A is still
 * the last ready connection. Write readiness arrives on its own after every
 * response (edge-triggered EPOLLOUT), a wake-up for A with nothing to do.
 *
 * Lines: see evloop.h. /quit answers and exits 0.
 */
#define _GNU_SOURCE /* accept4 */
#include <stddef.h>
#include <sys/epoll.h>

#include "evloop.h"

#define MAX_EVENTS 64

struct econn {
	void (*io_cb)(struct econn *ec, unsigned events);
	struct evc *c;
};

static int ep = -1, listen_fd = -1;
static struct econn listener;

static void close_conn(struct evc *c)
{
	epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
	evc_close(c);
}

static void after_write(struct evc *c, int rc)
{
	/* nothing to re-arm: edge-triggered, both directions, for good */
	if (rc < 0 || (rc > 0 && c->close_after))
		close_conn(c);
}

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

static void conn_io(struct econn *ec, unsigned events)
{
	struct evc *c = ec->c;
	int eof = 0;

	if (c->state == EVC_DEAD)
		return;
	if ((events & EPOLLOUT) && c->state == EVC_WRITE)
		after_write(c, evc_flush(c));
	if (c->state == EVC_DEAD || !(events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)))
		return;
	evc_log_readable(c);
	for (;;) { /* edge-triggered: read until EAGAIN */
		ssize_t n = lh_fill(&c->lc);

		if (n > 0) {
			process_requests(c);
			if (c->state == EVC_DEAD)
				return;
			continue;
		}
		if (n == 0)
			eof = 1;
		else if (errno != EAGAIN && errno != EWOULDBLOCK)
			eof = 1;
		break;
	}
	if (eof)
		close_conn(c);
}

static void accept_io(struct econn *ec, unsigned events)
{
	int fd;

	(void)ec;
	(void)events;
	while ((fd = ev_accept(listen_fd)) >= 0) { /* edge-triggered: all of them */
		struct econn *nec = calloc(1, sizeof *nec);
		struct evc *c = evc_new(fd);
		struct epoll_event ev;

		if (!nec || !c) {
			lh_log("ERROR", "out of memory, dropping fd %d", fd);
			free(nec);
			free(c);
			close(fd);
			continue;
		}
		c->user = nec;
		nec->c = c;
		nec->io_cb = conn_io;
		evc_log_accepted(c);
		memset(&ev, 0, sizeof ev);
		ev.events = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET;
		ev.data.ptr = nec;
		epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev);
	}
}

static __attribute__((noinline)) void conn_timeout(struct evc *c)
{
	if (c->state == EVC_WAIT)
		after_write(c, evc_timer_fired(c));
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

static __attribute__((noinline, noreturn)) void ev_run(void)
{
	struct epoll_event events[MAX_EVENTS];
	struct evc *c;
	sigset_t sigmask;

	sigemptyset(&sigmask);
	for (;;) {
		int i, n;

		while ((c = ev_timer_pop_due(NULL)) != NULL)
			conn_timeout(c);
		reap();
		n = epoll_pwait(ep, events, MAX_EVENTS, ev_timer_timeout(-1), &sigmask);
		if (n < 0 && errno != EINTR) {
			lh_log("ERROR", "epoll_pwait failed: %s", strerror(errno));
			exit(1);
		}
		for (i = 0; i < n; i++) {
			struct econn *ec = events[i].data.ptr;

			ec->io_cb(ec, events[i].events);
		}
	}
}

int main(int argc, char **argv)
{
	int ready_fd = lh_begin(argc, argv, "ev_edge"), port;
	struct epoll_event ev;

	if (ready_fd < 0)
		return 2;
	listen_fd = ev_listen(&port);
	ep = epoll_create1(EPOLL_CLOEXEC);
	if (listen_fd < 0 || ep < 0) {
		lh_log("ERROR", "cannot set up: %s", strerror(errno));
		return 1;
	}
	listener.io_cb = accept_io;
	memset(&ev, 0, sizeof ev);
	ev.events = EPOLLIN | EPOLLET;
	ev.data.ptr = &listener;
	epoll_ctl(ep, EPOLL_CTL_ADD, listen_fd, &ev);
	lh_log("INFO", "listening on 127.0.0.1:%d (one thread, edge-triggered epoll)", port);
	if (lh_report_port(ready_fd, port) < 0)
		return 1;
	ev_run();
}
