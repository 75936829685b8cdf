/*
 * evloop.h - what the adversarial event-loop test servers (ev_*.c,
 * poll_loop.c, select_loop.c, uv_server.c) share on top of legacy_http.h:
 * a non-blocking connection with its read buffer and pending response, the
 * request's parameters, a timer list, and the log lines, worded alike in
 * every server so that tests/integration/test_event_loops.py judges them all
 * with one oracle. Each server file holds only its own dispatch: which
 * function calls the wait, through which call instructions handlers and
 * timers run, what the epoll data holds.
 *
 * Requests: GET or POST /api/v1/items?...t=TOKEN... (a body is read and
 * discarded). Every request has the same path; the token is there for the
 * oracle only. Optional parameters:
 *   delay=MS   answer from a timer MS ms later (from 4 ms on, a first
 *              timer at MS/2 only logs "tick" and sets the second); delay=0
 *              is a posted event: answered by the timers run next, right
 *              after the current round of handlers
 *   park=1     ev_broadcast: wait until a request arrives on another
 *              connection (or a fallback timer)
 *   nest=1     ev_nested: serve other connections before answering
 *   stall=1    after the "got" line, block in a write to a full pipe (the
 *              fifo EV_STALL_FIFO, filled at start) until the test reads
 *              a page from it: a handler asleep in write() in the middle
 *              of a batch (test_attach_event_loops.py attaches then)
 *   stall=2    likewise, blocked on a mutex that a thread of the server's
 *              holds until a byte arrives on the fifo EV_STALL_LOCK_FIFO
 *   stall=3    likewise, running (no system call) until SIGUSR1 comes
 * /quit answers "ok quit" and exits 0; in a server whose loop runs on
 * several threads (ev_quit_joins set), the threads first leave their loops
 * and main joins them.
 *
 * Lines. A line with "token=T" belongs to request T: the handler of T's
 * connection wrote it, or a timer or callback that exists for T. The word
 * after the token says which line it is; its class (handler or deferred) is
 * what the test splits recall by:
 *   token=T got conn=C METHOD path=P  after the read that completed T    handler
 *   token=T respond                   before writing T's response        handler
 *   token=T sent N bytes              after writing it                   handler
 *   token=T queue delay=MS            T's timer was set                  handler
 *   token=T tick                      T's first timer (delay >= 4), no I/O deferred
 *   token=T fire                      T's timer, before writing          deferred
 *   token=T fsent N bytes             T's timer, after writing           deferred
 * (servers add their own: park, deliver, dsent, nest, nested, wait, ...).
 * Lines with "conn=C" and no token are about a connection: its last request
 * (the one whose "got" line came last for C) or none yet:
 *   conn=C accepted fd=N, conn=C readable (before a read), conn=C closed ...
 * The request line ("GET /api/... HTTP/1.1") is never logged verbatim.
 *
 * Like legacy_http.h: no stdio for output, nothing about request ids,
 * static inline functions only.
 */
#ifndef EVLOOP_H
#define EVLOOP_H

#include "legacy_http.h"

#define EV_MAX_TIMERS 8192

enum { EVC_READ,   /* waiting for (the rest of) a request */
       EVC_WAIT,   /* request in, answered later (timer, park) */
       EVC_WRITE,  /* response partly written, socket full */
       EVC_DEAD }; /* closed; the struct is freed or reused later */

struct evc {
	int fd;
	unsigned serial;     /* conn=N in the lines, unique in the process */
	int state;
	int nreq;            /* requests taken on this connection */
	int close_after;     /* the current request asked for Connection: close */
	long delay;          /* delay=, or -1 */
	int park, nest;      /* park=1, nest=1 */
	int timer;           /* a timer for this connection is pending */
	long long due_ms;    /* when it is due (servers without the list) */
	int mark;            /* the tick is done (evc_timer_fired); select_loop's
				sweep: the "wait" line is done */
	const char *after;   /* word of the line written once the response is out */
	char tok[LH_TOKEN_MAX];
	size_t out_len, out_off;
	char out[LH_RESPONSE_MAX];
	void *user;          /* the server's own per-connection state */
	struct evc *next_dead;
	struct lh_conn lc;
};

static unsigned ev_serial_counter;
static struct evc *ev_dead_list;

static inline long long ev_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static inline int ev_nonblock(int fd)
{
	int fl = fcntl(fd, F_GETFL);

	return fl < 0 ? -1 : fcntl(fd, F_SETFL, fl | O_NONBLOCK);
}

/* (Re)initialises c for a freshly accepted fd. Odd serials read with recv()
 * and write with send(), even ones with read() and write(). */
static inline void evc_init(struct evc *c, int fd)
{
	void *user = c->user;

	memset(c, 0, offsetof(struct evc, lc));
	c->user = user;
	c->fd = fd;
	c->serial = __atomic_add_fetch(&ev_serial_counter, 1, __ATOMIC_RELAXED);
	c->state = EVC_READ;
	c->delay = -1;
	lh_conn_init(&c->lc, fd, (int)(c->serial & 1));
}

static inline struct evc *evc_new(int fd)
{
	struct evc *c = calloc(1, sizeof *c);

	if (c)
		evc_init(c, fd);
	return c;
}

static inline void evc_log_accepted(struct evc *c)
{
	lh_log("DEBUG", "conn=%u accepted fd=%d", c->serial, c->fd);
}

static inline void evc_log_readable(struct evc *c)
{
	lh_log_2w("DEBUG", "conn=%u readable", c->serial);
}

/* ---- requests ---------------------------------------------------------- */

/* t=TOKEN among the query parameters of "/api/v1/items?..."; copies it and
 * returns its length, or 0. */
static inline size_t ev_token(const char *path, char *tok, size_t cap)
{
	const char *q;

	if (strncmp(path, "/api/v1/items?", 14) != 0)
		return 0;
	for (q = path + 13; q; q = strchr(q + 1, '&')) {
		size_t n = 0;

		if (strncmp(q + 1, "t=", 2) != 0)
			continue;
		q += 3;
		while ((q[n] >= 'a' && q[n] <= 'z') || (q[n] >= 'A' && q[n] <= 'Z') ||
		       (q[n] >= '0' && q[n] <= '9')) {
			if (n + 1 >= cap)
				return 0;
			tok[n] = q[n];
			n++;
		}
		if (n == 0 || (q[n] != '\0' && q[n] != '&'))
			return 0;
		tok[n] = '\0';
		return n;
	}
	return 0;
}

/* Set by a server whose loop runs on several threads, before they start.
 * Then /quit does not exit: exit() on one thread while another is between
 * writing a response and writing its line loses that line. Instead
 * ev_quitting is set, evc_take_request returns 2, and each thread leaves its
 * loop at the next turn (its lines written); main joins them and returns. */
static int ev_quit_joins;
static int ev_quitting;

/* Answers /quit on fd (spinning over EAGAIN: the response is tiny) and
 * closes fd. Exits 0 (held and buffered lines go out at exit()) unless
 * ev_quit_joins: then it sets ev_quitting and returns. */
static inline void ev_quit(int fd)
{
	char resp[LH_RESPONSE_MAX];
	size_t n = lh_build_response(resp, sizeof resp, "quit", 1), off = 0;

	while (off < n) {
		ssize_t w = write(fd, resp + off, n - off);

		if (w > 0)
			off += (size_t)w;
		else if (w < 0 && errno != EAGAIN && errno != EINTR)
			break;
	}
	close(fd); /* no line: it would be the /quit request's */
	if (!ev_quit_joins)
		exit(0);
	__atomic_store_n(&ev_quitting, 1, __ATOMIC_RELEASE);
}

/* Whether /quit was taken in a server that joins its threads: a thread
 * checks it before each wait and leaves its loop when set. */
static inline int ev_quit_seen(void)
{
	return __atomic_load_n(&ev_quitting, __ATOMIC_ACQUIRE);
}

static inline int evc_flush(struct evc *c);

/* ---- stalls (stall=) ---------------------------------------------------- */

#define EV_STALL_PAGE 4096

static int ev_stall_fd = -1;   /* EV_STALL_FIFO, full, blocking */
static pthread_mutex_t ev_stall_mu = PTHREAD_MUTEX_INITIALIZER;
static int ev_stall_held;      /* the holder thread has ev_stall_mu */
static volatile sig_atomic_t ev_stall_signalled; /* SIGUSR1 came */

static void ev_stall_on_signal(int sig)
{
	(void)sig;
	ev_stall_signalled = 1;
}

/* EV_STALL_LOCK_FIFO's thread: holds ev_stall_mu until a byte comes. */
static void *ev_stall_holder(void *arg)
{
	int fd = (int)(intptr_t)arg;
	char byte;

	pthread_mutex_lock(&ev_stall_mu);
	__atomic_store_n(&ev_stall_held, 1, __ATOMIC_RELEASE);
	while (read(fd, &byte, 1) < 0 && errno == EINTR)
		;
	pthread_mutex_unlock(&ev_stall_mu);
	close(fd);
	return NULL;
}

/* At start: EV_STALL_FIFO opened and filled (a stall=1 write then blocks
 * until the test reads a page), EV_STALL_LOCK_FIFO's holder started and
 * holding the mutex. */
static inline void ev_stall_setup(void)
{
	static char page[EV_STALL_PAGE];
	const char *path = getenv("EV_STALL_FIFO");
	int fd;

	if (path && (fd = open(path, O_RDWR | O_NONBLOCK | O_CLOEXEC)) >= 0) {
		struct sigaction sa;

		while (write(fd, page, sizeof page) == (ssize_t)sizeof page)
			;
		fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK);
		ev_stall_fd = fd;
		memset(&sa, 0, sizeof sa);
		sa.sa_handler = ev_stall_on_signal;
		sa.sa_flags = SA_RESTART;
		sigaction(SIGUSR1, &sa, NULL);
	}
	path = getenv("EV_STALL_LOCK_FIFO");
	if (path && (fd = open(path, O_RDWR | O_CLOEXEC)) >= 0) {
		pthread_t t;

		if (pthread_create(&t, NULL, ev_stall_holder, (void *)(intptr_t)fd) != 0) {
			close(fd);
			return;
		}
		pthread_detach(t);
		while (!__atomic_load_n(&ev_stall_held, __ATOMIC_ACQUIRE))
			sched_yield();
	}
}

/* stall=how (see the top of this file); any other value: nothing. */
static inline void ev_stall(long how)
{
	static char page[EV_STALL_PAGE];
	size_t off = 0;

	if (how == 1 && ev_stall_fd >= 0) {
		while (off < sizeof page) {
			ssize_t n = write(ev_stall_fd, page + off, sizeof page - off);

			if (n < 0 && errno == EINTR)
				continue;
			if (n <= 0)
				break;
			off += (size_t)n;
		}
	} else if (how == 2 && __atomic_load_n(&ev_stall_held, __ATOMIC_ACQUIRE)) {
		pthread_mutex_lock(&ev_stall_mu);
		pthread_mutex_unlock(&ev_stall_mu);
	} else if (how == 3 && ev_stall_fd >= 0) {
		while (!ev_stall_signalled)
			;
		ev_stall_signalled = 0;
	}
}

/* Takes the next whole request buffered on c. Returns 1 with c->tok and the
 * parameters set and the "got" line logged; 0 when more bytes are needed;
 * -1 on a bad request (a 400 is on its way or written: the caller closes
 * once evc_flush is done, c->close_after is set). /quit exits, or with
 * ev_quit_joins returns 2: answered, c->fd closed (the caller marks c dead
 * without a line) and ev_quitting set. */
static inline int evc_take_request(struct evc *c)
{
	struct lh_request r;
	int rc = lh_parse(&c->lc, &r);
	const char *q;

	if (rc == 0)
		return 0;
	if (rc > 0 && lh_is_quit(r.path)) {
		ev_quit(c->fd);
		return 2;
	}
	if (rc < 0 || !ev_token(r.path, c->tok, sizeof c->tok)) {
		strcpy(c->tok, "-");
		c->out_len = lh_build_error(c->out, sizeof c->out);
		c->out_off = 0;
		c->close_after = 1;
		c->after = NULL;
		lh_log("ERROR", "conn=%u bad request", c->serial);
		evc_flush(c);
		return -1;
	}
	c->nreq++;
	c->close_after = r.close;
	c->delay = lh_query_long(r.path, "delay");
	c->park = lh_query_long(r.path, "park") == 1;
	c->nest = lh_query_long(r.path, "nest") == 1;
	q = strchr(r.path, '?');
	lh_log("INFO", "token=%s got conn=%u %s path=%.*s", c->tok, c->serial, r.method,
	       (int)(q - r.path), r.path);
	ev_stall(lh_query_long(r.path, "stall"));
	return 1;
}

/* ---- responses ---------------------------------------------------------- */

/* Writes what it can of c->out. When all of it is out, logs the `after`
 * line and returns 1 (state back to EVC_READ); 0 when the socket is full
 * (state EVC_WRITE: the caller waits for writability and calls it again);
 * -1 on an error. */
static inline int evc_flush(struct evc *c)
{
	while (c->out_off < c->out_len) {
		ssize_t n = (c->serial & 1) ?
			send(c->fd, c->out + c->out_off, c->out_len - c->out_off, MSG_NOSIGNAL) :
			write(c->fd, c->out + c->out_off, c->out_len - c->out_off);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
			c->state = EVC_WRITE;
			return 0;
		}
		if (n <= 0)
			return -1;
		c->out_off += (size_t)n;
	}
	if (c->after)
		lh_log_2w("INFO", "token=%s %s %zu bytes", c->tok, c->after, c->out_len);
	c->state = EVC_READ;
	return 1;
}

/* Logs "token=T <before>", builds T's response and starts writing it;
 * evc_flush's `after` line follows once it is out. Returns evc_flush's. */
static inline int evc_respond(struct evc *c, const char *before, const char *after)
{
	lh_log_v("INFO", "token=%s %s", c->tok, before);
	c->out_len = lh_build_response(c->out, sizeof c->out, c->tok, c->close_after);
	c->out_off = 0;
	c->after = after;
	return evc_flush(c);
}

/* Builds T's response without writing any of it (a server that flushes
 * later); evc_flush writes it and logs `after`. */
static inline void evc_prepare(struct evc *c, const char *after)
{
	c->out_len = lh_build_response(c->out, sizeof c->out, c->tok, c->close_after);
	c->out_off = 0;
	c->after = after;
	c->state = EVC_WRITE;
}

/* One read into c's buffer, with the "readable" line before it. Returns
 * lh_fill's result (-1 with errno EAGAIN when nothing was there). */
static inline ssize_t evc_read(struct evc *c)
{
	evc_log_readable(c);
	return lh_fill(&c->lc);
}

/* ---- closing ------------------------------------------------------------ */

static inline void ev_timer_cancel(struct evc *c);

/* Closes c's fd and logs it. The struct is not freed here: a batch of ready
 * events may still point at it; single-threaded servers put it on the dead
 * list (ev_reap() frees it before the next wait), others reuse it. */
static inline void evc_close_fd(struct evc *c)
{
	if (c->state == EVC_DEAD)
		return;
	if (c->timer)
		ev_timer_cancel(c);
	close(c->fd);
	lh_log("DEBUG", "conn=%u closed after %d requests", c->serial, c->nreq);
	c->state = EVC_DEAD;
	c->fd = -1;
}

static inline void evc_close(struct evc *c)
{
	if (c->state == EVC_DEAD)
		return;
	evc_close_fd(c);
	c->next_dead = ev_dead_list;
	ev_dead_list = c;
}

static inline void ev_reap(void)
{
	while (ev_dead_list) {
		struct evc *c = ev_dead_list;

		ev_dead_list = c->next_dead;
		free(c);
	}
}

/* ---- timers ------------------------------------------------------------- */

/* A flat list of pending timers (a few dozen at a time), one per
 * connection at most, under a mutex so that ev_threads can share it. */
struct ev_timer {
	struct evc *c;
	unsigned serial;
	long long due;
};

static struct ev_timer ev_timers[EV_MAX_TIMERS];
static int ev_ntimers;
static pthread_mutex_t ev_timer_mu = PTHREAD_MUTEX_INITIALIZER;

static inline int ev_timer_add(struct evc *c, long ms)
{
	int ok = 0;

	pthread_mutex_lock(&ev_timer_mu);
	if (ev_ntimers < EV_MAX_TIMERS) {
		ev_timers[ev_ntimers].c = c;
		ev_timers[ev_ntimers].serial = c->serial;
		ev_timers[ev_ntimers].due = ev_now_ms() + ms;
		ev_ntimers++;
		c->timer = 1;
		ok = 1;
	}
	pthread_mutex_unlock(&ev_timer_mu);
	return ok;
}

static inline void ev_timer_cancel(struct evc *c)
{
	int i;

	pthread_mutex_lock(&ev_timer_mu);
	for (i = 0; i < ev_ntimers; i++) {
		if (ev_timers[i].c == c && ev_timers[i].serial == c->serial) {
			ev_timers[i] = ev_timers[--ev_ntimers];
			break;
		}
	}
	c->timer = 0;
	pthread_mutex_unlock(&ev_timer_mu);
}

/* Removes and returns the connection of the earliest timer that is due,
 * with the serial it was set for (a multi-threaded caller checks it under
 * the connection's lock), or NULL. */
static inline struct evc *ev_timer_pop_due(unsigned *serial)
{
	long long now = ev_now_ms();
	struct evc *c = NULL;
	int i, best = -1;

	pthread_mutex_lock(&ev_timer_mu);
	for (i = 0; i < ev_ntimers; i++)
		if (ev_timers[i].due <= now && (best < 0 || ev_timers[i].due < ev_timers[best].due))
			best = i;
	if (best >= 0) {
		c = ev_timers[best].c;
		if (serial)
			*serial = ev_timers[best].serial;
		ev_timers[best] = ev_timers[--ev_ntimers];
	}
	pthread_mutex_unlock(&ev_timer_mu);
	return c;
}

/* Milliseconds until the earliest timer (0 when one is due), -1 for none;
 * at most cap when cap >= 0. */
static inline int ev_timer_timeout(int cap)
{
	long long next = -1, now = ev_now_ms();
	int i, t;

	pthread_mutex_lock(&ev_timer_mu);
	for (i = 0; i < ev_ntimers; i++)
		if (next < 0 || ev_timers[i].due < next)
			next = ev_timers[i].due;
	pthread_mutex_unlock(&ev_timer_mu);
	t = next < 0 ? -1 : (next <= now ? 0 : (int)(next - now));
	if (cap >= 0 && (t < 0 || t > cap))
		t = cap;
	return t;
}

/* ---- the usual request flow --------------------------------------------- */

/* After the "got" line: a delayed request gets its timer ("queue" line,
 * state EVC_WAIT, returns 0); any other is answered now (returns
 * evc_respond's: 1 out, 0 socket full, -1 error). */
static inline int evc_answer_or_queue(struct evc *c)
{
	c->mark = 0;
	if (c->delay >= 0 && c->delay <= 10000 &&
	    ev_timer_add(c, c->delay >= 4 ? c->delay / 2 : c->delay)) {
		lh_log_2w("INFO", "token=%s queue delay=%ldms", c->tok, c->delay);
		c->state = EVC_WAIT;
		return 0;
	}
	return evc_respond(c, "respond", "sent");
}

/* A timer of c fired. The first of a delay of 4 ms or more is a tick: it
 * logs "token=T tick" (no I/O at all) and sets the timer again for the rest
 * of the delay, returning 0 with c still EVC_WAIT. Otherwise: "fire", the
 * response, "fsent"; returns evc_respond's. */
static inline int evc_timer_fired(struct evc *c)
{
	c->timer = 0;
	if (!c->mark && c->delay >= 4) {
		c->mark = 1;
		lh_log("INFO", "token=%s tick", c->tok);
		if (ev_timer_add(c, c->delay - c->delay / 2))
			return 0;
	}
	return evc_respond(c, "fire", "fsent");
}

/* Starts the server: listening socket (non-blocking), the "listening" line.
 * The caller reports the port (lh_report_port) once its loop is set up. */
static inline int ev_listen(int *port)
{
	int fd = lh_listen_or_log(port);

	ev_stall_setup();
	if (fd >= 0 && ev_nonblock(fd) < 0) {
		close(fd);
		return -1;
	}
	return fd;
}

/* accept4() one connection, non-blocking; -1 when none is waiting. */
static inline int ev_accept(int listen_fd)
{
	for (;;) {
		int fd = accept4(listen_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);

		if (fd >= 0 || (errno != EINTR && errno != ECONNABORTED))
			return fd;
	}
}

#endif
