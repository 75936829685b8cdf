/*
 * ev_threads.c - adversarial event-loop server for reqid
 * (test_event_loops.py case 6): TWO threads wait on the SAME epoll fd, each
 * handling whatever it gets, with the same code (the same waiting function,
 * the same handler call instruction) in both. A connection's requests are
 * served by either thread, changing from one request to the next; the
 * timer of a request is run by whichever thread finds it due, from another
 * call instruction after its handler.
 *
 * The listener is registered with EPOLLEXCLUSIVE. Connections with an even
 * serial use EPOLLONESHOT (re-armed after each event), odd ones are plain
 * level-triggered: both threads can get the same ready connection, and the
 * one that finds it locked skips it (it comes back while data is left).
 * The epoll data is fd | serial << 32 (a stale event, for an fd closed and
 * reused since, is recognised by its serial).
 *
 * Lines: see evloop.h. /quit answers, and each thread leaves its loop at
 * its next turn (what it was doing done, its lines written; a thread in
 * epoll_wait comes back within the 20 ms cap on its wait); main joins both
 * and returns 0.
 */
#define _GNU_SOURCE /* accept4 */
#include <stddef.h>
#include <stdint.h>
#include <sys/epoll.h>

#include "evloop.h"

#define MAX_FDS 4096
#define MAX_EVENTS 8
#define THREADS 2

#ifndef EPOLLEXCLUSIVE
#define EPOLLEXCLUSIVE (1u << 28)
#endif

struct tslot {
	void (*on_event)(struct tslot *s, unsigned serial, unsigned events);
	pthread_mutex_t mu;
	int oneshot;
	struct evc c; /* reused for every connection on this fd number */
};

static int ep = -1, listen_fd = -1;
static struct tslot *slots[MAX_FDS];
static pthread_mutex_t slots_mu = PTHREAD_MUTEX_INITIALIZER;

static void conn_event(struct tslot *s, unsigned serial, unsigned events);

static struct tslot *slot_of(int fd)
{
	struct tslot *s = __atomic_load_n(&slots[fd], __ATOMIC_ACQUIRE);

	if (s)
		return s;
	pthread_mutex_lock(&slots_mu);
	s = slots[fd];
	if (!s && (s = calloc(1, sizeof *s)) != NULL) {
		pthread_mutex_init(&s->mu, NULL);
		s->on_event = conn_event;
		s->c.user = s;
		s->c.state = EVC_DEAD;
		s->c.fd = -1;
		__atomic_store_n(&slots[fd], s, __ATOMIC_RELEASE);
	}
	pthread_mutex_unlock(&slots_mu);
	return s;
}

static void arm(struct tslot *s, int op)
{
	struct epoll_event ev;

	if (s->c.state == EVC_DEAD)
		return;
	memset(&ev, 0, sizeof ev);
	ev.events = s->c.state == EVC_WRITE ? EPOLLOUT : EPOLLIN;
	if (s->oneshot)
		ev.events |= EPOLLONESHOT;
	ev.data.u64 = (uint64_t)(unsigned)s->c.fd | (uint64_t)s->c.serial << 32;
	epoll_ctl(ep, op, s->c.fd, &ev);
}

/* Under s->mu. */
static void close_conn(struct tslot *s)
{
	epoll_ctl(ep, EPOLL_CTL_DEL, s->c.fd, NULL);
	evc_close_fd(&s->c);
}

/* Under s->mu: after evc_respond/evc_flush. */
static void after_write(struct tslot *s, int rc)
{
	if (rc < 0 || (rc > 0 && s->c.close_after))
		close_conn(s);
}

static void conn_event(struct tslot *s, unsigned serial, unsigned events)
{
	struct evc *c = &s->c;
	ssize_t n;

	if ((serial & 1) == 0) {
		pthread_mutex_lock(&s->mu);
	} else if (pthread_mutex_trylock(&s->mu) != 0) {
		return; /* the other thread has it; level-triggered brings it back */
	}
	if (c->serial != serial || c->state == EVC_DEAD)
		goto out; /* stale: that connection is gone */
	if (c->state == EVC_WRITE) {
		if (events & (EPOLLOUT | EPOLLERR | EPOLLHUP))
			after_write(s, evc_flush(c));
		goto rearm;
	}
	if (c->state != EVC_READ)
		goto rearm;
	n = evc_read(c);
	if (n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK)) {
		close_conn(s);
		goto out;
	}
	while (n > 0 && c->state == EVC_READ) {
		int rc = evc_take_request(c);

		if (rc == 0)
			break;
		if (rc == 2) { /* /quit: answered, fd closed, no line */
			c->state = EVC_DEAD;
			c->fd = -1;
			goto out;
		}
		if (rc < 0) {
			close_conn(s);
			goto out;
		}
		after_write(s, evc_answer_or_queue(c));
	}
rearm:
	arm(s, EPOLL_CTL_MOD);
out:
	pthread_mutex_unlock(&s->mu);
}

static void accept_all(void)
{
	int fd;

	while ((fd = ev_accept(listen_fd)) >= 0) {
		struct tslot *s = fd < MAX_FDS ? slot_of(fd) : NULL;

		if (!s) {
			lh_log("ERROR", "too many connections, dropping fd %d", fd);
			close(fd);
			continue;
		}
		pthread_mutex_lock(&s->mu);
		evc_init(&s->c, fd);
		s->oneshot = (s->c.serial & 1) == 0;
		evc_log_accepted(&s->c);
		arm(s, EPOLL_CTL_ADD);
		pthread_mutex_unlock(&s->mu);
	}
}

static __attribute__((noinline)) void run_timers(void)
{
	unsigned serial;
	struct evc *c;

	while ((c = ev_timer_pop_due(&serial)) != NULL) {
		struct tslot *s = c->user;

		pthread_mutex_lock(&s->mu);
		if (c->serial == serial && c->state == EVC_WAIT) {
			after_write(s, evc_timer_fired(c));
			if (s->c.state == EVC_WRITE)
				arm(s, EPOLL_CTL_MOD);
		}
		pthread_mutex_unlock(&s->mu);
	}
}

static void *worker(void *arg)
{
	struct epoll_event events[MAX_EVENTS];

	(void)arg;
	while (!ev_quit_seen()) {
		int i, n = epoll_wait(ep, events, MAX_EVENTS, ev_timer_timeout(20));

		if (n < 0 && errno != EINTR) {
			lh_log("ERROR", "epoll_wait failed: %s", strerror(errno));
			exit(1);
		}
		for (i = 0; i < n; i++) {
			int fd = (int)(events[i].data.u64 & 0xffffffffu);
			unsigned serial = (unsigned)(events[i].data.u64 >> 32);
			struct tslot *s;

			if (fd == listen_fd) {
				accept_all();
				continue;
			}
			s = slot_of(fd);
			if (s)
				s->on_event(s, serial, events[i].events);
		}
		run_timers();
	}
	return NULL;
}

int main(int argc, char **argv)
{
	int ready_fd = lh_begin(argc, argv, "ev_threads"), port, i;
	pthread_t th[THREADS];
	struct epoll_event ev;

	if (ready_fd < 0)
		return 2;
	listen_fd = ev_listen(&port);
	ep = epoll_create1(EPOLL_CLOEXEC);
	if (listen_fd < 0 || ep < 0) {
		lh_log("ERROR", "cannot set up: %s", strerror(errno));
		return 1;
	}
	memset(&ev, 0, sizeof ev);
	ev.events = EPOLLIN | EPOLLEXCLUSIVE;
	ev.data.u64 = (uint64_t)(unsigned)listen_fd; /* serial 0 */
	if (epoll_ctl(ep, EPOLL_CTL_ADD, listen_fd, &ev) < 0) {
		lh_log("ERROR", "epoll_ctl(EPOLLEXCLUSIVE) failed: %s", strerror(errno));
		return 1;
	}
	lh_log("INFO", "listening on 127.0.0.1:%d (%d threads on one epoll fd)", port, THREADS);
	ev_quit_joins = 1;
	for (i = 0; i < THREADS; i++) {
		if (pthread_create(&th[i], NULL, worker, NULL) != 0) {
			lh_log("ERROR", "pthread_create failed");
			return 1;
		}
	}
	if (lh_report_port(ready_fd, port) < 0)
		return 1;
	for (i = 0; i < THREADS; i++)
		pthread_join(th[i], NULL);
	return 0;
}
