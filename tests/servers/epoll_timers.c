/*
 * epoll_timers.c - integration-test server for reqid: ONE thread, epoll,
 * non-blocking sockets and a per-connection state machine. A request with
 * ?delay=MS is answered by a timer; timers are checked right after handling
 * each ready event, i.e. right after I/O on some other connection, so a log
 * line about connection A is often written just after a read on connection B.
 * It exists to provoke that case: the shim must never give A's line B's id.
 *
 * Ready events are dispatched the way nginx, libuv and lighttpd do it: through
 * a handler pointer kept per descriptor (the listener's accepts, a
 * connection's reads and writes), one call per event from the loop in main.
 *
 * Lines per request: "got request", then "responding" (immediate) or "timer
 * fired" (delayed), then "sent" after the response is written.
 *
 * It plays a legacy server that knows nothing of reqid: it must never use
 * stdio for logs (only legacy_http.h's LEGACY_LOG=stdio:... backends do),
 * never mention request ids, never block, and never put "token=" in a line
 * that is not about one request. /quit answers 200 and ends with exit(0).
 */
#define _GNU_SOURCE /* accept4 */
#include <fcntl.h>
#include <sys/epoll.h>

#include "legacy_http.h"

#define MAX_FDS 16384 /* run_all.py runs it with its connections on 12281 and up */
#define MAX_TIMERS 4096
#define MAX_EVENTS 64

enum conn_state { ST_READ, ST_TIMER, ST_WRITE };

struct conn {
	enum conn_state state;
	int close_after; /* the current request asked for Connection: close */
	char tok[LH_TOKEN_MAX];
	size_t out_len, out_off;
	char out[LH_RESPONSE_MAX];
	struct lh_conn lc;
};

struct timer {
	int used;
	int fd;
	unsigned gen;
	long long due_ms;
};

typedef void event_handler(int fd, unsigned events);

static int ep = -1, listen_fd = -1;
static struct conn *conns[MAX_FDS];
static event_handler *handlers[MAX_FDS]; /* what a ready event on fd runs */
static unsigned gens[MAX_FDS]; /* bumped when a connection closes */
static struct timer timers[MAX_TIMERS];
static int timer_count;

static long long now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void set_interest(int fd, unsigned events)
{
	struct epoll_event ev;

	memset(&ev, 0, sizeof ev);
	ev.events = events;
	ev.data.fd = fd;
	epoll_ctl(ep, EPOLL_CTL_MOD, fd, &ev);
}

static void conn_close(int fd)
{
	epoll_ctl(ep, EPOLL_CTL_DEL, fd, NULL);
	close(fd);
	free(conns[fd]);
	conns[fd] = NULL;
	handlers[fd] = NULL;
	gens[fd]++;
}

static int add_timer(int fd, long delay_ms)
{
	int i;

	for (i = 0; i < MAX_TIMERS; i++) {
		if (!timers[i].used) {
			timers[i].used = 1;
			timers[i].fd = fd;
			timers[i].gen = gens[fd];
			timers[i].due_ms = now_ms() + delay_ms;
			timer_count++;
			return 0;
		}
	}
	return -1;
}

/* Writes what it can of c->out. Returns 1 when all is written, 0 when the
 * socket is full (EPOLLOUT armed), -1 on error. */
static int flush_out(int fd, struct conn *c)
{
	while (c->out_off < c->out_len) {
		ssize_t n = write(fd, c->out + c->out_off, c->out_len - c->out_off);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
			if (c->state != ST_WRITE) {
				c->state = ST_WRITE;
				set_interest(fd, EPOLLOUT);
			}
			return 0;
		}
		if (n <= 0)
			return -1;
		c->out_off += (size_t)n;
	}
	return 1;
}

static void process_requests(int fd);

/* The response of the current request is fully written. */
static void response_sent(int fd)
{
	struct conn *c = conns[fd];

	lh_log_2w("INFO", "token=%s sent %zu bytes", c->tok, c->out_len);
	if (c->close_after) {
		conn_close(fd);
		return;
	}
	if (c->state == ST_WRITE)
		set_interest(fd, EPOLLIN);
	c->state = ST_READ;
	process_requests(fd); /* bytes of a next request may be buffered */
}

/* Starts writing the response for the current request. */
static void respond(int fd)
{
	struct conn *c = conns[fd];
	int rc;

	c->out_len = lh_build_response(c->out, sizeof c->out, c->tok, c->close_after);
	c->out_off = 0;
	rc = flush_out(fd, c);
	if (rc < 0)
		conn_close(fd);
	else if (rc > 0)
		response_sent(fd);
}

static void quit_now(int fd)
{
	char resp[LH_RESPONSE_MAX];
	size_t n = lh_build_response(resp, sizeof resp, "quit", 1), off = 0;

	while (off < n) { /* tiny response: spin over EAGAIN */
		ssize_t w = write(fd, resp + off, n - off);

		if (w > 0)
			off += (size_t)w;
		else if (w < 0 && errno != EAGAIN && errno != EINTR)
			break;
	}
	close(fd);
	exit(0);
}

/* Handles every whole request buffered on fd while the connection reads. */
static void process_requests(int fd)
{
	struct lh_request r;

	while (conns[fd] && conns[fd]->state == ST_READ) {
		struct conn *c = conns[fd];
		int rc = lh_parse(&c->lc, &r);
		long delay;

		if (rc == 0)
			return;
		if (rc < 0) {
			conn_close(fd);
			return;
		}
		if (lh_is_quit(r.path))
			quit_now(fd);
		if (!lh_path_token(r.path, c->tok, sizeof c->tok)) {
			c->out_len = lh_build_error(c->out, sizeof c->out);
			c->out_off = 0;
			c->close_after = 1;
			if (flush_out(fd, c) != 0)
				conn_close(fd);
			return;
		}
		c->close_after = r.close;
		lh_log("INFO", "token=%s got request %s %s", c->tok, r.method, r.path);
		delay = lh_query_long(r.path, "delay");
		if (delay > 0 && delay <= 10000 && add_timer(fd, delay) == 0) {
			c->state = ST_TIMER;
			return;
		}
		lh_log_v("INFO", "token=%s responding now", c->tok);
		respond(fd);
	}
}

/* Fires every due timer whose connection is still waiting for it. */
static void run_timers(void)
{
	long long now;
	int i;

	if (timer_count == 0)
		return;
	now = now_ms();
	for (i = 0; i < MAX_TIMERS; i++) {
		struct timer *t = &timers[i];
		struct conn *c;

		if (!t->used || t->due_ms > now)
			continue;
		t->used = 0;
		timer_count--;
		c = conns[t->fd];
		if (!c || gens[t->fd] != t->gen || c->state != ST_TIMER)
			continue; /* the connection went away meanwhile */
		lh_log_v("INFO", "token=%s timer fired", c->tok);
		c->state = ST_READ;
		respond(t->fd);
	}
}

static int next_timeout(void)
{
	long long next = -1, now;
	int i;

	if (timer_count == 0)
		return -1;
	for (i = 0; i < MAX_TIMERS; i++)
		if (timers[i].used && (next < 0 || timers[i].due_ms < next))
			next = timers[i].due_ms;
	now = now_ms();
	return next <= now ? 0 : (int)(next - now);
}

static void conn_event(int fd, unsigned events);

static void accept_all(int fd_unused, unsigned events_unused)
{
	(void)fd_unused;
	(void)events_unused;
	for (;;) {
		int fd = accept4(listen_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		struct epoll_event ev;

		if (fd < 0) {
			if (errno == EINTR || errno == ECONNABORTED)
				continue;
			return; /* EAGAIN, or a hard error we retry next round */
		}
		if (fd >= MAX_FDS || !(conns[fd] = calloc(1, sizeof *conns[fd]))) {
			lh_log("ERROR", "too many connections, dropping fd %d", fd);
			close(fd);
			continue;
		}
		lh_conn_init(&conns[fd]->lc, fd, 1);
		conns[fd]->state = ST_READ;
		handlers[fd] = conn_event;
		memset(&ev, 0, sizeof ev);
		ev.events = EPOLLIN;
		ev.data.fd = fd;
		epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev);
		lh_log("DEBUG", "accepted a connection on fd %d", fd);
	}
}

static void conn_event(int fd, unsigned events)
{
	struct conn *c = conns[fd];

	if (!c)
		return;
	if (c->state == ST_WRITE) {
		int rc = flush_out(fd, c);

		if (rc < 0)
			conn_close(fd);
		else if (rc > 0)
			response_sent(fd);
		return;
	}
	if (events & (EPOLLIN | EPOLLHUP | EPOLLERR)) {
		ssize_t n = lh_fill(&c->lc);

		if (n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK)) {
			conn_close(fd); /* client gone; a pending timer is dropped */
			return;
		}
		if (c->state == ST_READ)
			process_requests(fd);
	}
}

int main(int argc, char **argv)
{
	int ready_fd = lh_begin(argc, argv, "epoll_timers"), port;
	struct epoll_event ev, events[MAX_EVENTS];

	if (ready_fd < 0)
		return 2;
	listen_fd = lh_listen(&port);
	ep = epoll_create1(EPOLL_CLOEXEC);
	if (listen_fd < 0 || ep < 0) {
		lh_log("ERROR", "cannot set up: %s", strerror(errno));
		return 1;
	}
	fcntl(listen_fd, F_SETFL, fcntl(listen_fd, F_GETFL) | O_NONBLOCK);
	memset(&ev, 0, sizeof ev);
	ev.events = EPOLLIN;
	ev.data.fd = listen_fd;
	epoll_ctl(ep, EPOLL_CTL_ADD, listen_fd, &ev);
	handlers[listen_fd] = accept_all;
	lh_log("INFO", "listening on 127.0.0.1:%d (single thread, epoll)", port);
	if (lh_report_port(ready_fd, port) < 0)
		return 1;
	for (;;) {
		int i, n = epoll_wait(ep, events, MAX_EVENTS, next_timeout());

		if (n < 0 && errno != EINTR) {
			lh_log("ERROR", "epoll_wait failed: %s", strerror(errno));
			exit(1);
		}
		for (i = 0; i < n; i++) {
			int fd = events[i].data.fd;

			if (fd >= 0 && fd < MAX_FDS && handlers[fd])
				handlers[fd](fd, events[i].events);
			run_timers(); /* right after I/O on some connection */
		}
		run_timers();
	}
}
