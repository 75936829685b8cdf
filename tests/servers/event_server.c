/*
 * event_server.c - adversarial event-loop server for reqid
 * (test_event_loops.py case 10): the real libevent 2.1, ONE thread,
 * event_base_dispatch. libevent calls epoll_wait in epoll_dispatch, which
 * only marks the ready events active and returns; event_base_loop then
 * moves the expired timers onto the same active queue (timeout_process)
 * and event_process_active runs them all, I/O callbacks first, then timer
 * callbacks and events made active with event_active() during the pass,
 * through the same function, after the waiting function returned. So a
 * timer of request B (its "tick" logs without any I/O) runs right after
 * connection A's read callback, with no wait in between, and a posted
 * event of A's (delay=0, event_active) may run after B's timer and write
 * on A: B's line sits between two I/O calls on A.
 *
 * Connections come from an evconnlistener on the evloop.h listening socket
 * (it accepts every pending connection in one callback). Per connection:
 * a read event (EV_PERSIST for serials with bit 1 set, else one-shot and
 * added again by its callback: libevent calls the two kinds through
 * different closures), a write event (only when a response did not fit in
 * the socket) and an evtimer.
 *
 * Lines (evloop.h's):
 *   conn=C accepted fd=N       the listener callback
 *   conn=C readable            in the read callback, before each read
 *   token=T got / queue        the read callback                          handler
 *   token=T respond / sent     the read callback (sent: or the write cb)  handler
 *   token=T tick               first evtimer callback (delay >= 4), no I/O deferred
 *   token=T fire / fsent       evtimer callback, around the write         deferred
 *   conn=C closed ...          when the connection is closed
 * delay=0 is posted with event_active(timer, EV_TIMEOUT): it runs in the
 * same pass of event_process_active, after the callbacks already queued;
 * delay=1..3 is one evtimer; from 4 on, a tick at delay/2, then the rest.
 * /quit answers (written directly) and exits 0.
 *
 * EVENT_SERVER_PRIO=1 (case 10b): two priorities (event_base_priority_init).
 * Reads, writes, ticks and posted events run at 0; the timers that answer
 * (and the listener, at libevent's default) at 1, which libevent runs only
 * in a pass with nothing at 0. A pass is then A's read callback, the ticks
 * that are due (lines, no I/O) and A's posted answer (I/O on A), with no
 * other connection's I/O in between: the shape above, every few passes.
 *
 * Built with -levent (its own rule in the Makefile).
 */
#define _GNU_SOURCE /* accept4 in evloop.h */
#include <stddef.h>
#include <event2/event.h>
#include <event2/listener.h>

#include "evloop.h"

struct econn {
	struct event *rev, *wev, *timer;
	int persist;        /* rev is EV_PERSIST */
	struct evc c;
};

static struct event_base *base;
static int prio; /* EVENT_SERVER_PRIO=1: two priorities (see main) */

static void on_read(evutil_socket_t fd, short what, void *arg);

static void close_conn(struct econn *e)
{
	event_free(e->rev);
	event_free(e->wev);
	event_free(e->timer);
	close(e->c.fd);
	lh_log("DEBUG", "conn=%u closed after %d requests", e->c.serial, e->c.nreq);
	free(e);
}

/* Sets e's timer for ms (the tick's when `tick`, else the answer's). */
static void arm_timer(struct econn *e, long ms, int tick)
{
	struct timeval tv = { ms / 1000, (ms % 1000) * 1000 };

	if (prio)
		event_priority_set(e->timer, tick ? 0 : 1);
	evtimer_add(e->timer, &tv);
}

static int process(struct econn *e);

/* A response is all out (its `after` line logged by evc_flush): close, or
 * take the next request already buffered. Returns -1 when e was freed. */
static int response_done(struct econn *e)
{
	if (e->c.close_after) {
		close_conn(e);
		return -1;
	}
	return process(e);
}

/* evc_flush's or evc_respond's result: 1 out, 0 socket full (wait for
 * writability), -1 error. Returns -1 when e was freed. */
static int after_write(struct econn *e, int rc)
{
	if (rc > 0)
		return response_done(e);
	if (rc == 0) {
		event_add(e->wev, NULL);
		return 0;
	}
	close_conn(e);
	return -1;
}

static void on_write(evutil_socket_t fd, short what, void *arg)
{
	struct econn *e = arg;

	(void)fd;
	(void)what;
	after_write(e, evc_flush(&e->c));
}

static void on_timer(evutil_socket_t fd, short what, void *arg)
{
	struct econn *e = arg;

	(void)fd;
	(void)what;
	if (e->c.state != EVC_WAIT)
		return;
	if (!e->c.mark && e->c.delay >= 4) { /* the tick: no I/O, timer again */
		e->c.mark = 1;
		lh_log("INFO", "token=%s tick", e->c.tok);
		arm_timer(e, e->c.delay - e->c.delay / 2, 0);
		return;
	}
	after_write(e, evc_respond(&e->c, "fire", "fsent"));
}

/* Every whole request buffered, one at a time: answered now, or queued on
 * the timer (then the next waits for its response). Returns -1 when e was
 * freed. */
static int process(struct econn *e)
{
	while (e->c.state == EVC_READ) {
		int rc = evc_take_request(&e->c);

		if (rc == 0)
			return 0;
		if (rc < 0) { /* a 400 was written (or tried) */
			close_conn(e);
			return -1;
		}
		if (e->c.delay >= 0 && e->c.delay <= 10000) {
			lh_log_2w("INFO", "token=%s queue delay=%ldms", e->c.tok, e->c.delay);
			e->c.state = EVC_WAIT;
			e->c.mark = 0;
			if (e->c.delay == 0) {
				if (prio)
					event_priority_set(e->timer, 0);
				event_active(e->timer, EV_TIMEOUT, 1);
			} else {
				arm_timer(e, e->c.delay >= 4 ? e->c.delay / 2 : e->c.delay,
					  e->c.delay >= 4);
			}
			return 0;
		}
		rc = evc_respond(&e->c, "respond", "sent");
		if (rc <= 0)
			return after_write(e, rc);
		if (e->c.close_after) {
			close_conn(e);
			return -1;
		}
	}
	return 0;
}

static void on_read(evutil_socket_t fd, short what, void *arg)
{
	struct econn *e = arg;
	ssize_t n;

	(void)fd;
	(void)what;
	n = evc_read(&e->c);
	if (n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK)) {
		close_conn(e);
		return;
	}
	if (n > 0 && process(e) < 0)
		return;
	if (!e->persist)
		event_add(e->rev, NULL);
}

static void on_accept(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *sa,
		      int salen, void *arg)
{
	struct econn *e = calloc(1, sizeof *e);

	(void)l;
	(void)sa;
	(void)salen;
	(void)arg;
	if (!e) {
		close(fd);
		return;
	}
	evc_init(&e->c, fd);
	e->persist = (e->c.serial & 2) != 0;
	e->rev = event_new(base, fd, EV_READ | (e->persist ? EV_PERSIST : 0), on_read, e);
	e->wev = event_new(base, fd, EV_WRITE, on_write, e);
	e->timer = evtimer_new(base, on_timer, e);
	if (prio) {
		event_priority_set(e->rev, 0);
		event_priority_set(e->wev, 0);
	}
	if (!e->rev || !e->wev || !e->timer) {
		lh_log("ERROR", "conn=%u event_new failed", e->c.serial);
		exit(1);
	}
	evc_log_accepted(&e->c);
	event_add(e->rev, NULL);
}

int main(int argc, char **argv)
{
	int ready_fd = lh_begin(argc, argv, "event_server"), port, listen_fd;
	const char *p = getenv("EVENT_SERVER_PRIO");
	struct evconnlistener *listener;

	if (ready_fd < 0)
		return 2;
	prio = p && strcmp(p, "1") == 0;
	listen_fd = ev_listen(&port);
	base = event_base_new();
	if (base && prio && event_base_priority_init(base, 2) < 0)
		base = NULL;
	if (listen_fd < 0 || !base) {
		lh_log("ERROR", "cannot set up: %s", strerror(errno));
		return 1;
	}
	/* backlog 0: the socket listens already */
	listener = evconnlistener_new(base, on_accept, NULL, LEV_OPT_CLOSE_ON_FREE, 0, listen_fd);
	if (!listener) {
		lh_log("ERROR", "cannot set up the listener: %s", strerror(errno));
		return 1;
	}
	lh_log("INFO", "listening on 127.0.0.1:%d (libevent %s, %s%s)", port, event_get_version(),
	       event_base_get_method(base), prio ? ", two priorities" : "");
	if (lh_report_port(ready_fd, port) < 0)
		return 1;
	return event_base_dispatch(base) < 0 ? 1 : 0;
}
