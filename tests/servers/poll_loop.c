/*
 * poll_loop.c - adversarial event-loop server for reqid
 * (test_event_loops.py case 8, poll): ONE thread, poll() over the listener
 * and every connection, rebuilt before each call, a handler pointer per
 * pollfd entry called for every entry with revents, from the function that
 * called poll(); timers after that function returned:
 *
 *     for (;;) { poll_once(); run_timers(); }
 *
 * poll() returns one ready descriptor at light load and several at once
 * under load: a rule for "exactly one ready" must hold for the first and
 * stay out of the way of the second (B's handler runs right after A's, from
 * the same call instruction, in the same activation).
 *
 * Lines: see evloop.h. /quit answers and exits 0.
 */
#define _GNU_SOURCE /* accept4 */
#include <poll.h>
#include <stddef.h>

#include "evloop.h"

#define MAX_CONNS 1024

typedef void (*poll_handler)(struct evc *c, short revents);

static int listen_fd = -1;
static struct evc *conns[MAX_CONNS];
static int nconns;

static void process_requests(struct evc *c)
{
	while (c->state == EVC_READ) {
		int rc = evc_take_request(c);

		if (rc == 0)
			return;
		if (rc < 0 || (rc = evc_answer_or_queue(c)) < 0) {
			evc_close(c);
			return;
		}
		if (rc > 0 && c->close_after) {
			evc_close(c);
			return;
		}
	}
}

static void conn_ready(struct evc *c, short revents)
{
	ssize_t n;

	if (c->state == EVC_WRITE) {
		if (revents & (POLLOUT | POLLERR | POLLHUP)) {
			int rc = evc_flush(c);

			if (rc < 0 || (rc > 0 && c->close_after))
				evc_close(c);
		}
		return;
	}
	if (c->state != EVC_READ)
		return;
	n = evc_read(c);
	if (n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK)) {
		evc_close(c);
		return;
	}
	if (n > 0)
		process_requests(c);
}

static void listener_ready(struct evc *c, short revents)
{
	int fd;

	(void)c;
	(void)revents;
	while ((fd = ev_accept(listen_fd)) >= 0) {
		struct evc *nc = nconns < MAX_CONNS ? evc_new(fd) : NULL;

		if (!nc) {
			lh_log("ERROR", "too many connections, dropping fd %d", fd);
			close(fd);
			continue;
		}
		conns[nconns++] = nc;
		evc_log_accepted(nc);
	}
}

/* Drops closed connections from the table; frees them. */
static void compact(void)
{
	int i, j = 0;

	for (i = 0; i < nconns; i++)
		if (conns[i]->state != EVC_DEAD)
			conns[j++] = conns[i];
	nconns = j;
	ev_reap();
}

static __attribute__((noinline)) void poll_once(void)
{
	static struct pollfd pfd[MAX_CONNS + 1];
	static poll_handler handler[MAX_CONNS + 1];
	static struct evc *owner[MAX_CONNS + 1];
	int i, n, count = 0;

	compact();
	pfd[count].fd = listen_fd;
	pfd[count].events = POLLIN;
	handler[count] = listener_ready;
	owner[count++] = NULL;
	for (i = 0; i < nconns; i++) {
		pfd[count].fd = conns[i]->fd;
		pfd[count].events = conns[i]->state == EVC_WRITE ? POLLOUT : POLLIN;
		handler[count] = conn_ready;
		owner[count++] = conns[i];
	}
	n = poll(pfd, (nfds_t)count, ev_timer_timeout(-1));
	if (n < 0 && errno != EINTR) {
		lh_log("ERROR", "poll failed: %s", strerror(errno));
		exit(1);
	}
	for (i = 0; i < count && n > 0; i++) {
		if (!pfd[i].revents)
			continue;
		n--;
		if (owner[i] && owner[i]->state == EVC_DEAD)
			continue;
		handler[i](owner[i], pfd[i].revents);
	}
}

static __attribute__((noinline)) void run_timers(void)
{
	struct evc *c;

	while ((c = ev_timer_pop_due(NULL)) != NULL) {
		int rc;

		if (c->state != EVC_WAIT)
			continue;
		rc = evc_timer_fired(c);
		if (rc < 0 || (rc > 0 && c->close_after))
			evc_close(c);
	}
}

int main(int argc, char **argv)
{
	int ready_fd = lh_begin(argc, argv, "poll_loop"), port;

	if (ready_fd < 0)
		return 2;
	listen_fd = ev_listen(&port);
	if (listen_fd < 0)
		return 1;
	lh_log("INFO", "listening on 127.0.0.1:%d (one thread, poll)", port);
	if (lh_report_port(ready_fd, port) < 0)
		return 1;
	for (;;) {
		poll_once();
		run_timers();
	}
}
