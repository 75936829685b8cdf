/*
 * select_loop.c - adversarial event-loop server for reqid
 * (test_event_loops.py case 8, select): ONE thread, select() over the
 * listener and every connection (write interest for those with a response
 * pending), a handler per descriptor called for each ready one, highest
 * descriptor first, from the function that called select(); timers after
 * that function returned:
 *
 *     for (;;) { select_once(); run_timers(); }
 *
 * SELECT_SWEEP=1 is the old-school shape instead (a KNOWN LIMIT of a
 * call-site rule): after select() the same function services EVERY client
 * through one call instruction, ready or not,
 *
 *     for (i = 0; i < nclients; i++) service(client[i], &rset, &wset);
 *
 * and service() reads a ready client, answers a delayed request whose time
 * has come ("fire", "fsent"), and logs once that a delayed request is still
 * waiting ("token=B wait", no I/O at all). With one ready client A, B's
 * lines come from the call instruction that served A, in the same
 * activation.
 *
 * Lines: see evloop.h, plus wait. /quit answers and exits 0.
 */
#define _GNU_SOURCE /* accept4 */
#include <stddef.h>
#include <sys/select.h>

#include "evloop.h"

#define MAX_CONNS 900 /* fds stay below FD_SETSIZE */

typedef void (*sel_handler)(struct evc *c, int readable, int writable);

static int listen_fd = -1, sweep;
static struct evc *conns[MAX_CONNS];
static int nconns;
static sel_handler handler_of[FD_SETSIZE];
static struct evc *owner_of[FD_SETSIZE];

static void close_conn(struct evc *c)
{
	handler_of[c->fd] = NULL;
	owner_of[c->fd] = NULL;
	evc_close(c);
}

static void after_write(struct evc *c, int rc)
{
	if (rc < 0 || (rc > 0 && c->close_after))
		close_conn(c);
}

/* After "got": SELECT_SWEEP keeps its own due times, the other mode uses
 * the timer list. */
static void answer_or_queue(struct evc *c)
{
	if (sweep && c->delay >= 0 && c->delay <= 10000) {
		c->due_ms = ev_now_ms() + c->delay;
		c->mark = 0;
		lh_log_2w("INFO", "token=%s queue delay=%ldms", c->tok, c->delay);
		c->state = EVC_WAIT;
		return;
	}
	after_write(c, evc_answer_or_queue(c));
}

static void conn_read(struct evc *c)
{
	ssize_t n = evc_read(c);

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
		answer_or_queue(c);
	}
}

static void conn_ready(struct evc *c, int readable, int writable)
{
	if (c->state == EVC_WRITE && writable)
		after_write(c, evc_flush(c));
	else if (c->state == EVC_READ && readable)
		conn_read(c);
}

static void listener_ready(struct evc *c, int readable, int writable)
{
	int fd;

	(void)c;
	(void)readable;
	(void)writable;
	while ((fd = ev_accept(listen_fd)) >= 0) {
		struct evc *nc = (nconns < MAX_CONNS && fd < FD_SETSIZE) ? evc_new(fd) : NULL;

		if (!nc) {
			lh_log("ERROR", "too many connections, dropping fd %d", fd);
			close(fd);
			continue;
		}
		conns[nconns++] = nc;
		handler_of[fd] = conn_ready;
		owner_of[fd] = nc;
		evc_log_accepted(nc);
	}
}

/* SELECT_SWEEP: one client's turn, ready or not; never inlined, so that
 * everything it does hangs off the one call instruction in select_once. */
static __attribute__((noinline)) void service(struct evc *c, fd_set *r, fd_set *w)
{
	if (c->state == EVC_DEAD)
		return;
	if (c->state == EVC_WAIT) {
		if (ev_now_ms() >= c->due_ms) {
			after_write(c, evc_respond(c, "fire", "fsent"));
		} else if (!c->mark) {
			c->mark = 1;
			lh_log_v("INFO", "token=%s wait", c->tok);
		}
		return;
	}
	conn_ready(c, FD_ISSET(c->fd, r), FD_ISSET(c->fd, w));
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

/* select()'s timeout: the timer list, or SELECT_SWEEP's due times. */
static int next_timeout(void)
{
	long long now = ev_now_ms(), next = -1;
	int i;

	if (!sweep)
		return ev_timer_timeout(-1);
	for (i = 0; i < nconns; i++)
		if (conns[i]->state == EVC_WAIT && (next < 0 || conns[i]->due_ms < next))
			next = conns[i]->due_ms;
	return next < 0 ? -1 : (next <= now ? 0 : (int)(next - now));
}

static __attribute__((noinline)) void select_once(void)
{
	fd_set r, w;
	struct timeval tv, *tvp = NULL;
	int i, n, fd, maxfd = listen_fd, ms;

	compact();
	FD_ZERO(&r);
	FD_ZERO(&w);
	FD_SET(listen_fd, &r);
	for (i = 0; i < nconns; i++) {
		fd = conns[i]->fd;
		FD_SET(fd, conns[i]->state == EVC_WRITE ? &w : &r);
		if (fd > maxfd)
			maxfd = fd;
	}
	ms = next_timeout();
	if (ms >= 0) {
		tv.tv_sec = ms / 1000;
		tv.tv_usec = (ms % 1000) * 1000;
		tvp = &tv;
	}
	n = select(maxfd + 1, &r, &w, NULL, tvp);
	if (n < 0) {
		if (errno == EINTR)
			return;
		lh_log("ERROR", "select failed: %s", strerror(errno));
		exit(1);
	}
	if (sweep) {
		int count = nconns; /* clients accepted during the sweep wait */

		if (FD_ISSET(listen_fd, &r))
			listener_ready(NULL, 1, 0);
		for (i = 0; i < count; i++)
			service(conns[i], &r, &w);
		return;
	}
	for (fd = maxfd; fd >= 0 && n > 0; fd--) {
		int rd = FD_ISSET(fd, &r), wr = FD_ISSET(fd, &w);

		if (!rd && !wr)
			continue;
		n -= rd + wr;
		if (handler_of[fd])
			handler_of[fd](owner_of[fd], rd, wr);
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
	int ready_fd = lh_begin(argc, argv, "select_loop"), port;
	const char *s = getenv("SELECT_SWEEP");

	if (ready_fd < 0)
		return 2;
	sweep = s && strcmp(s, "1") == 0;
	listen_fd = ev_listen(&port);
	if (listen_fd < 0 || listen_fd >= FD_SETSIZE)
		return 1;
	handler_of[listen_fd] = listener_ready;
	lh_log("INFO", "listening on 127.0.0.1:%d (one thread, select%s)", port,
	       sweep ? ", every client serviced each round" : "");
	if (lh_report_port(ready_fd, port) < 0)
		return 1;
	for (;;) {
		select_once();
		if (!sweep)
			run_timers();
	}
}
