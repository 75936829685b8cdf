/*
 * outbound_caller.c - integration-test server for reqid's outbound W3C Trace
 * Context injection: a legacy-style thread-per-connection HTTP/1.1 server
 * that, for each inbound request, calls a downstream HTTP server the way old
 * C code does (raw sockets, hand-built request heads, every write family,
 * requests cut into calls at awkward places) and only then answers. It knows
 * nothing about reqid, traceparent or request ids: the headers the shim adds
 * to its outbound requests are checked byte for byte by
 * tests/integration/test_outbound.py on the downstream side.
 *
 *     outbound_caller PORT HOST:PORT [--ready-fd N] [--down6 PORT6]
 *
 * Listens on 127.0.0.1:PORT (0: any free port). HOST:PORT is the downstream
 * (an IPv4 literal); --down6 adds a downstream at [::1]:PORT6 for the v6
 * mode. At start-up, before reporting the port, it makes two outbound calls
 * outside any request (GET /down/startup/0/0 on a connection of its own, and
 * GET /down/startup/ka/0 on the keep-alive connection it keeps for the
 * keepalive modes), then writes "<port>\n" to N and closes it (the
 * handshake). A background thread, started then too, makes calls on behalf
 * of handlers (mode bg): it never reads a request itself.
 *
 * Inbound: GET /<mode>/<k> (k: letters and digits), keep-alive unless
 * "Connection: close"; /quit answers and ends the server once every
 * connection is done (exit 0, 1 after an ERROR, 3 after an INCONSISTENT).
 * Each outbound request is "<METHOD> /down/<mode>/<k>/<n> HTTP/1.1" with
 * Host, User-Agent, the mode's own headers and Accept, n counting the
 * mode's requests from 0; the exact bytes of each are modelled by the test
 * (and logged here as length + FNV-1a, so the model is checked too). Every
 * downstream answer must be exactly "HTTP/1.1 200 OK\r\nContent-Length:
 * 2\r\n\r\nok". Modes, each its own write pattern:
 *   one        GET, the head in one write()
 *   bytewise   a GET, then a POST with a body, one byte per write()
 *   split      four GETs on one connection, write() cut inside a header
 *              name, between a CR and its LF, and inside the final CRLFCRLF
 *              (each way), and one write() per header line
 *   writev     GET in one iovec per line plus an empty one, the blank line
 *              as "\r" and "\n"; then a POST, head and body in one writev()
 *              cut inside the final CRLFCRLF and inside the body
 *   sendmsg    the same iovecs through sendmsg(MSG_NOSIGNAL)
 *   send       GET by two send()s cut inside the final CRLFCRLF, GET by one
 *              sendto(NULL, 0), POST head by send() and body by sendto()
 *   post       POST with a Content-Length body holding "\r\n\r\n", a fake
 *              "GET / HTTP/1.1" head and fake traceparent and X-Request-ID
 *              lines: head and body in one write(); again with the body in
 *              three write()s cut inside the fake head; then a GET
 *   chunked    chunked POST (extension, CRLFCRLF and a fake head in the
 *              data) in small writes; chunked POST with a trailer, one
 *              write(); then a GET on the same connection
 *   own        the application's own TraceParent and x-REQUEST-id (mixed
 *              case, mid-head)
 *   ownid      its own x-Request-Id only
 *   owntp      its own TRACEPARENT only
 *   lookalike  headers whose names start or end like the shim's
 *              (X-Request-IDs, traceparent-x, X-traceparent) and a value
 *              that says "traceparent:"
 *   pipeline   a GET and a POST in one write(), then both answers
 *   interleave two connections: A's head cut inside a header name, all of
 *              B's, the rest of A's; then both answers
 *   keepalive  GET on the shared keep-alive connection (opened at start-up,
 *              under a mutex)
 *   pool       GET on a pooled connection that the first request needing it
 *              opened (under a mutex), reused by the later ones
 *   nonblock   non-blocking socket, SO_SNDBUF 4096 before a non-blocking
 *              connect() (EINPROGRESS), a POST with 0-16000 bytes of padding
 *              headers (k = "...p<N>": N bytes) and a ~200 KiB body holding
 *              fake heads, written by
 *              write(), send() or writev() (chosen from k) in a poll() loop
 *              through EAGAIN and short writes
 *   iovmax     as nonblock (non-blocking socket, SNDBUF 4096, padding from
 *              k), the whole request in one write(), then the rest after
 *              each partial write or EAGAIN by writev() of IOV_MAX (1024)
 *              non-empty iovecs, or one per byte when fewer are left (the
 *              test puts the first cut inside the inserted lines, so the
 *              shim owes their rest at the first writev)
 *   thread     a thread created by the handler makes the call; joined
 *   bg         the background thread makes the call (outside any request)
 *              while the handler waits on a pipe
 *   pooljob    a one-thread pool: the first pooljob request's handler
 *              creates the worker (which inherits that request's context)
 *              and waits until it waits on a condition variable for jobs;
 *              each pooljob request queues its k as a job (one at a time)
 *              and waits on another condition variable until the worker
 *              has done it: a GET on a new connection, its lines saying
 *              "job=<k>"
 *   http10     GET ... HTTP/1.0
 *   v6         GET to [::1]:PORT6
 *   after      the response first, then a GET on a new connection
 *   afterka    the response first, then a GET on the shared connection
 *
 * Every write-like call's return is checked: 0 <= r <= asked (never 0 for a
 * non-empty call), -1 only with errno set, and the returns add up to exactly
 * the bytes the application meant to send; otherwise "INCONSISTENT ..." on
 * stderr (exit status 3 at the end). Lines about inbound request k contain
 * "k=<k>", and " post: " once its response has been written; the
 * background thread's and the pooljob worker's lines say "job=<k>", the
 * start-up calls' "init=...".
 * The nonblock and iovmax modes log what their first write returned
 * ("k=... nonblock first write returned R of N (head H)", the same with
 * iovmax), iovmax also how many writev(IOV_MAX) calls it made ("k=...
 * iovmax writev(IOV_MAX) calls C"); a writev() failing with EINVAL is an
 * ERROR like any failed write.
 * At exit: "outbound_caller: stats outbound=... partial=... eagain=...
 * head_cut=... inconsistent=... errors=..." (head_cut: short writes that
 * started inside a head and stopped at or before its end).
 *
 * Like the other servers here it must never use stdio for output (snprintf
 * into buffers only) and never write a line without its '\n'.
 */
#define _GNU_SOURCE
#include <limits.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdint.h>

#include "legacy_http.h"

#define DOWN_RESPONSE "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
#define APP_TRACEPARENT "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
#define FAKE_TP "traceparent: 00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01\r\n"
#define POST_TAIL                                                                  \
	"\r\n\r\nGET / HTTP/1.1\r\nHost: fake\r\nX-Request-ID: fake\r\n" FAKE_TP \
	"\r\ntail"
#define NB_FAKE "\r\n\r\nGET /fake HTTP/1.1\r\nX-Request-ID: fake\r\n" FAKE_TP "\r\n"
#define NB_ALPHABET "abcdefghijklmnopqrstuvwxyz0123456789"
#define PAD_CHARS                                                        \
	"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789" \
	"abcdefghijklmnopqrstuvwxyzABCD"
#define NB_SNDBUF 4096
#define IO_TIMEOUT_MS 10000

static struct lh_threads th_state = LH_THREADS_INIT;
static struct sockaddr_in down4;
static struct sockaddr_in6 down6;
static int have_down6;

/* The keep-alive connection shared by the keepalive modes. */
struct client {
	int fd;
	size_t len;
	char buf[1024];
};
static struct client ka;
static pthread_mutex_t ka_mu = PTHREAD_MUTEX_INITIALIZER;

/* The background thread: a job (k, NUL-padded) in, one byte out. */
static int bg_in[2], bg_out[2];
static pthread_mutex_t bg_mu = PTHREAD_MUTEX_INITIALIZER;

static struct {
	unsigned long outbound, partial, eagain, head_cut, inconsistent, errors;
} stats;

/* What this thread's lines call the request they are about: "k" (handlers
 * and their threads), "job" (background thread), "init" (start-up). */
static __thread const char *log_key = "k";
static __thread int in_post; /* the response to the inbound request is out */

#define COUNT(field) __atomic_fetch_add(&stats.field, 1, __ATOMIC_RELAXED)

__attribute__((format(printf, 2, 3)))
static void inconsistent(const char *k, const char *fmt, ...)
{
	char what[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(what, sizeof what, fmt, ap);
	va_end(ap);
	COUNT(inconsistent);
	lh_log("ERROR", "INCONSISTENT %s=%s: %s", log_key, k, what);
}

__attribute__((format(printf, 2, 3)))
static void failed(const char *k, const char *fmt, ...)
{
	char what[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(what, sizeof what, fmt, ap);
	va_end(ap);
	COUNT(errors);
	lh_log("ERROR", "%s=%s: %s", log_key, k, what);
}

static uint32_t fnv1a(const void *p, size_t n)
{
	const unsigned char *s = p;
	uint32_t h = 2166136261u;

	while (n--) {
		h ^= *s++;
		h *= 16777619u;
	}
	return h;
}

/* ---- messages: one outbound request's bytes -------------------------- */

struct msg {
	char *p;
	size_t len, cap, head_len;
};

static void m_add(struct msg *m, const void *p, size_t n)
{
	if (m->len + n > m->cap) {
		size_t cap = m->cap ? m->cap : 1024;

		while (cap < m->len + n)
			cap *= 2;
		m->p = realloc(m->p, cap);
		if (!m->p) {
			lh_log("ERROR", "out of memory");
			_exit(1);
		}
		m->cap = cap;
	}
	memcpy(m->p + m->len, p, n);
	m->len += n;
}

__attribute__((format(printf, 2, 3)))
static void m_addf(struct msg *m, const char *fmt, ...)
{
	char tmp[1024];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(tmp, sizeof tmp, fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= sizeof tmp) {
		lh_log("ERROR", "m_addf overflow");
		_exit(1);
	}
	m_add(m, tmp, (size_t)n);
}

static void m_free(struct msg *m)
{
	free(m->p);
	memset(m, 0, sizeof *m);
}

/* "<method> /down/<mode>/<k>/<n> <proto>", Host, User-Agent, extra (the
 * mode's own header lines, each ending "\r\n"), Accept, blank line. */
static void m_head(struct msg *m, const char *method, const char *mode, const char *k, int n,
		   const char *extra, const char *proto)
{
	memset(m, 0, sizeof *m);
	m_addf(m, "%s /down/%s/%s/%d %s\r\n", method, mode, k, n, proto);
	m_addf(m, "Host: downstream\r\nUser-Agent: outbound_caller/1\r\n");
	if (extra)
		m_add(m, extra, strlen(extra));
	m_addf(m, "Accept: */*\r\n\r\n");
	m->head_len = m->len;
}

static void m_get(struct msg *m, const char *mode, const char *k, int n, const char *extra)
{
	m_head(m, "GET", mode, k, n, extra, "HTTP/1.1");
}

/* POST with body "field=1&k=<k>" POST_TAIL. */
static void m_post(struct msg *m, const char *mode, const char *k, int n)
{
	char body[512], extra[128];
	int bl = snprintf(body, sizeof body, "field=1&k=%s%s", k, POST_TAIL);

	snprintf(extra, sizeof extra, "Content-Type: text/plain\r\nContent-Length: %d\r\n", bl);
	m_head(m, "POST", mode, k, n, extra, "HTTP/1.1");
	m_add(m, body, (size_t)bl);
}

/* Chunked POST. which 0: a chunk with an extension holding a fake head,
 * a chunk "k=<k>", last chunk, no trailer; which 1: one chunk that looks
 * like a last chunk, then a last chunk with a trailer. */
static void m_chunked(struct msg *m, const char *k, int n, int which)
{
	static const char d1[] = "\r\n\r\nGET / HTTP/1.1\r\nHost: fake\r\n\r\n";
	static const char d3[] = "0\r\n\r\nPOST /x HTTP/1.1\r\n\r\n";
	char d2[80];
	int l2 = snprintf(d2, sizeof d2, "k=%s", k);

	m_head(m, "POST", "chunked", k, n, "Transfer-Encoding: chunked\r\n", "HTTP/1.1");
	if (which == 0) {
		m_addf(m, "%zx;ext=1\r\n", sizeof d1 - 1);
		m_add(m, d1, sizeof d1 - 1);
		m_addf(m, "\r\n%x\r\n", l2);
		m_add(m, d2, (size_t)l2);
		m_addf(m, "\r\n0\r\n\r\n");
	} else {
		m_addf(m, "%zx\r\n", sizeof d3 - 1);
		m_add(m, d3, sizeof d3 - 1);
		m_addf(m, "\r\n0\r\nX-Trailer: t\r\n\r\n");
	}
}

/* The nonblock (and iovmax: mode) POST: body length from fnv1a(k); padding headers of
 * fnv1a(k) % 16000 bytes, or of N bytes when k ends in "p<N>" (1-5 digits),
 * which lets the test put the end of the head where it wants. */
static void m_nonblock(struct msg *m, const char *mode, const char *k)
{
	uint32_t h = fnv1a(k, strlen(k));
	size_t pad = h % 16000, body_len = 200 * 1024 + h % 4099, i, start, kl = strlen(k);
	const char *p = strrchr(k, 'p');
	struct msg extra;
	char *body;

	if (p && p[1] && kl - (size_t)(p - k) <= 6 && strspn(p + 1, "0123456789") == strlen(p + 1))
		pad = (size_t)atol(p + 1);
	memset(&extra, 0, sizeof extra);
	for (i = 0; pad > 0 && i < 250; i++) {
		size_t l = pad > 90 ? 90 : pad;

		pad -= l;
		m_addf(&extra, "X-Pad-%02zu: %.*s\r\n", i, (int)l, PAD_CHARS);
	}
	m_addf(&extra, "Content-Length: %zu\r\n", body_len);
	m_add(&extra, "", 1);
	m_head(m, "POST", mode, k, 0, extra.p, "HTTP/1.1");
	m_free(&extra);
	body = malloc(body_len);
	if (!body) {
		lh_log("ERROR", "out of memory");
		_exit(1);
	}
	for (i = 0; i < body_len; i++)
		body[i] = NB_ALPHABET[(i * 7 + h) % 36];
	for (start = 1000; start + sizeof NB_FAKE - 1 <= body_len; start += 8192)
		memcpy(body + start, NB_FAKE, sizeof NB_FAKE - 1);
	m_add(m, body, body_len);
	free(body);
}

/* Offset of needle in the head, or -1. */
static size_t m_find(const struct msg *m, const char *needle)
{
	char *p = memmem(m->p, m->head_len, needle, strlen(needle));

	return p ? (size_t)(p - m->p) : (size_t)-1;
}

/* ---- connections ------------------------------------------------------ */

static int wait_fd(int fd, short events)
{
	struct pollfd p = { .fd = fd, .events = events };
	int r;

	do
		r = poll(&p, 1, IO_TIMEOUT_MS);
	while (r < 0 && errno == EINTR);
	if (r == 0)
		errno = ETIMEDOUT;
	return r > 0 ? 0 : -1;
}

/* Blocking connect to the downstream (v6: [::1]); nonblock: O_NONBLOCK and
 * SO_SNDBUF NB_SNDBUF first, connect() through EINPROGRESS. */
static int cl_connect(struct client *c, const char *k, int v6, int nonblock)
{
	int fd, one = 1, err = 0;
	socklen_t el = sizeof err;

	c->len = 0;
	c->fd = -1;
	if (v6 && !have_down6) {
		failed(k, "v6 mode without --down6");
		return -1;
	}
	fd = socket(v6 ? AF_INET6 : AF_INET, SOCK_STREAM | (nonblock ? SOCK_NONBLOCK : 0), 0);
	if (fd < 0) {
		failed(k, "socket: %s", strerror(errno));
		return -1;
	}
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
	if (nonblock) {
		int snd = NB_SNDBUF;

		if (setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &snd, sizeof snd) < 0) {
			failed(k, "SO_SNDBUF: %s", strerror(errno));
			close(fd);
			return -1;
		}
	}
	if (v6 ? connect(fd, (struct sockaddr *)&down6, sizeof down6) == 0
	       : connect(fd, (struct sockaddr *)&down4, sizeof down4) == 0) {
		if (nonblock)
			lh_log("DEBUG", "%s=%s non-blocking connect done at once", log_key, k);
	} else if (nonblock && errno == EINPROGRESS) {
		if (wait_fd(fd, POLLOUT) < 0 ||
		    getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &el) < 0 || err != 0) {
			failed(k, "non-blocking connect: %s", strerror(err ? err : errno));
			close(fd);
			return -1;
		}
	} else {
		failed(k, "connect: %s", strerror(errno));
		close(fd);
		return -1;
	}
	c->fd = fd;
	return 0;
}

static void cl_close(struct client *c)
{
	if (c->fd >= 0)
		close(c->fd);
	c->fd = -1;
}

/* Reads one whole downstream answer, which must be exactly DOWN_RESPONSE
 * (bytes after it stay for the next one). */
static int cl_response(struct client *c, const char *k)
{
	size_t want = sizeof DOWN_RESPONSE - 1;

	while (c->len < want) {
		ssize_t n = read(c->fd, c->buf + c->len, sizeof c->buf - c->len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
			if (wait_fd(c->fd, POLLIN) < 0) {
				failed(k, "waiting for the downstream's answer: %s", strerror(errno));
				return -1;
			}
			continue;
		}
		if (n <= 0) {
			failed(k, "downstream answer cut short (%zu bytes): %s", c->len,
			       n == 0 ? "EOF" : strerror(errno));
			return -1;
		}
		c->len += (size_t)n;
	}
	if (memcmp(c->buf, DOWN_RESPONSE, want) != 0) {
		failed(k, "unexpected downstream answer");
		return -1;
	}
	memmove(c->buf, c->buf + want, c->len - want);
	c->len -= want;
	return 0;
}

/* ---- checked write calls ---------------------------------------------- */

enum fam { F_WRITE, F_SEND, F_SENDTO };

/* Checks one call's return against what was asked: 0..asked, never 0 for
 * a non-empty call, -1 only with errno set. Returns r. */
static ssize_t checked(const char *k, const char *call, ssize_t r, size_t asked, int err)
{
	if (r < 0) {
		if (r != -1 || err == 0)
			inconsistent(k, "%s returned %zd with errno %d (asked %zu)", call, r, err,
				     asked);
		errno = err;
		return r;
	}
	if ((size_t)r > asked)
		inconsistent(k, "%s returned %zd, more than the %zu asked", call, r, asked);
	else if (r == 0 && asked > 0)
		inconsistent(k, "%s returned 0 for %zu bytes asked", call, asked);
	else if ((size_t)r < asked)
		COUNT(partial);
	errno = err;
	return r;
}

static ssize_t one_call(const char *k, int fd, enum fam f, const char *p, size_t n)
{
	ssize_t r;

	errno = 0;
	switch (f) {
	case F_SEND:
		r = send(fd, p, n, MSG_NOSIGNAL);
		return checked(k, "send", r, n, errno);
	case F_SENDTO:
		r = sendto(fd, p, n, MSG_NOSIGNAL, NULL, 0);
		return checked(k, "sendto", r, n, errno);
	default:
		r = write(fd, p, n);
		return checked(k, "write", r, n, errno);
	}
}

/* All of p[0..n) on a blocking socket by calls of family f. */
static int put(struct client *c, const char *k, enum fam f, const char *p, size_t n)
{
	size_t believed = 0;

	while (believed < n) {
		ssize_t r = one_call(k, c->fd, f, p + believed, n - believed);

		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0) {
			failed(k, "write failed: %s", r < 0 ? strerror(errno) : "returned 0");
			return -1;
		}
		believed += (size_t)r;
	}
	if (believed != n)
		inconsistent(k, "believes it wrote %zu of %zu bytes", believed, n);
	return 0;
}

/* The bytes of m cut at the offsets cuts[0..ncuts) (ascending), each piece
 * by its own call of family f. */
static int put_cuts(struct client *c, const char *k, enum fam f, const struct msg *m,
		    const size_t *cuts, int ncuts)
{
	size_t at = 0;
	int i;

	for (i = 0; i <= ncuts; i++) {
		size_t end = i < ncuts ? cuts[i] : m->len;

		if (end == (size_t)-1 || end < at || end > m->len) {
			failed(k, "bad cut %d", i);
			return -1;
		}
		if (end > at && put(c, k, f, m->p + at, end - at) < 0)
			return -1;
		at = end;
	}
	return 0;
}

/* All of iov[0..cnt) by writev() or sendmsg(), continuing after short
 * returns; the returns must add up to the iovecs' total. */
static int put_iov(struct client *c, const char *k, int use_msg, const struct iovec *in, int cnt)
{
	struct iovec iov[64];
	size_t total = 0, believed = 0;
	int i, first = 0;

	if (cnt > 64) {
		failed(k, "too many iovecs");
		return -1;
	}
	for (i = 0; i < cnt; i++) {
		iov[i] = in[i];
		total += in[i].iov_len;
	}
	while (believed < total) {
		size_t asked = total - believed;
		ssize_t r;
		struct msghdr mh;

		errno = 0;
		if (use_msg) {
			memset(&mh, 0, sizeof mh);
			mh.msg_iov = iov + first;
			mh.msg_iovlen = (size_t)(cnt - first);
			r = sendmsg(c->fd, &mh, MSG_NOSIGNAL);
			r = checked(k, "sendmsg", r, asked, errno);
		} else {
			r = writev(c->fd, iov + first, cnt - first);
			r = checked(k, "writev", r, asked, errno);
		}
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0) {
			failed(k, "%s failed: %s", use_msg ? "sendmsg" : "writev",
			       r < 0 ? strerror(errno) : "returned 0");
			return -1;
		}
		believed += (size_t)r;
		for (size_t left = (size_t)r; left > 0 && first < cnt;) {
			if (iov[first].iov_len <= left) {
				left -= iov[first].iov_len;
				first++;
			} else {
				iov[first].iov_base = (char *)iov[first].iov_base + left;
				iov[first].iov_len -= left;
				left = 0;
			}
		}
	}
	if (believed != total)
		inconsistent(k, "believes it wrote %zu of %zu bytes", believed, total);
	return 0;
}

/* iovecs over m cut at cuts[0..ncuts), with an empty one after the first. */
static int make_iov(const struct msg *m, const size_t *cuts, int ncuts, struct iovec *iov)
{
	size_t at = 0;
	int i, n = 0;

	for (i = 0; i <= ncuts; i++) {
		size_t end = i < ncuts ? cuts[i] : m->len;

		if (end <= at || end > m->len)
			continue;
		iov[n].iov_base = m->p + at;
		iov[n++].iov_len = end - at;
		if (n == 1) {
			iov[n].iov_base = m->p + at;
			iov[n++].iov_len = 0;
		}
		at = end;
	}
	return n;
}

/* One line per outbound request once its answer is in: what the
 * application sent (length and FNV-1a of its own bytes). */
static void log_out(const char *k, const char *mode, int n, const struct msg *m)
{
	COUNT(outbound);
	lh_log("INFO", "%s=%s %sout n=%d mode=%s len=%zu fnv=%08x", log_key, k,
	       in_post ? "post: " : "", n, mode, m->len, fnv1a(m->p, m->len));
}

/* m on c in one write(), then its answer. */
static int call_one(struct client *c, const char *k, const char *mode, int n, struct msg *m)
{
	int rc = put(c, k, F_WRITE, m->p, m->len);

	if (rc == 0)
		rc = cl_response(c, k);
	if (rc == 0)
		log_out(k, mode, n, m);
	m_free(m);
	return rc;
}

/* A new connection, one GET (extra headers) in one write(), closed. */
static int simple_get(const char *k, const char *mode, int v6, const char *extra,
		      const char *proto)
{
	struct client c;
	struct msg m;
	int rc;

	if (cl_connect(&c, k, v6, 0) < 0)
		return -1;
	m_head(&m, "GET", mode, k, 0, extra, proto);
	rc = call_one(&c, k, mode, 0, &m);
	cl_close(&c);
	return rc;
}

/* ---- modes ------------------------------------------------------------ */

static int mode_one(const char *k)
{
	return simple_get(k, "one", 0, NULL, "HTTP/1.1");
}

static int mode_http10(const char *k)
{
	return simple_get(k, "http10", 0, NULL, "HTTP/1.0");
}

static int mode_v6(const char *k)
{
	return simple_get(k, "v6", 1, NULL, "HTTP/1.1");
}

static int mode_own(const char *k)
{
	char extra[256];

	snprintf(extra, sizeof extra, "TraceParent: %s\r\nx-REQUEST-id: app-%s\r\n",
		 APP_TRACEPARENT, k);
	return simple_get(k, "own", 0, extra, "HTTP/1.1");
}

static int mode_ownid(const char *k)
{
	char extra[128];

	snprintf(extra, sizeof extra, "x-Request-Id: app-%s\r\n", k);
	return simple_get(k, "ownid", 0, extra, "HTTP/1.1");
}

static int mode_owntp(const char *k)
{
	return simple_get(k, "owntp", 0, "TRACEPARENT: " APP_TRACEPARENT "\r\n", "HTTP/1.1");
}

static int mode_lookalike(const char *k)
{
	return simple_get(k, "lookalike", 0,
			  "X-Request-IDs: no\r\ntraceparent-x: no\r\nX-traceparent: no\r\n"
			  "X-Note: traceparent: " APP_TRACEPARENT "\r\n"
			  "X-Note2: X-Request-ID: fake\r\n",
			  "HTTP/1.1");
}

static int mode_after(const char *k)
{
	return simple_get(k, "after", 0, NULL, "HTTP/1.1");
}

static int mode_bytewise(const char *k)
{
	struct client c;
	struct msg m;
	int rc = 0, n;

	if (cl_connect(&c, k, 0, 0) < 0)
		return -1;
	for (n = 0; rc == 0 && n < 2; n++) {
		size_t i;

		if (n == 0)
			m_get(&m, "bytewise", k, 0, NULL);
		else
			m_post(&m, "bytewise", k, 1);
		for (i = 0; rc == 0 && i < m.len; i++)
			rc = put(&c, k, F_WRITE, m.p + i, 1);
		if (rc == 0)
			rc = cl_response(&c, k);
		if (rc == 0)
			log_out(k, "bytewise", n, &m);
		m_free(&m);
	}
	cl_close(&c);
	return rc;
}

static int mode_split(const char *k)
{
	struct client c;
	int rc = 0, n;

	if (cl_connect(&c, k, 0, 0) < 0)
		return -1;
	for (n = 0; rc == 0 && n < 4; n++) {
		struct msg m;
		size_t cuts[16];
		int nc = 0;

		m_get(&m, "split", k, n, NULL);
		switch (n) {
		case 0: /* inside a header name; "\r\n" | "\r\n" at the end */
			cuts[nc++] = m_find(&m, "User-Agent") + 2;
			cuts[nc++] = m.len - 2;
			break;
		case 1: /* between the Host line's CR and LF; "\r\n\r" | "\n" */
			cuts[nc++] = m_find(&m, "\nUser-Agent");
			cuts[nc++] = m.len - 1;
			break;
		case 2: /* the head without its final CRLFCRLF; "\r"; "\n\r\n" */
			cuts[nc++] = m.len - 4;
			cuts[nc++] = m.len - 3;
			break;
		default: /* one write() per line, the blank line alone */
			for (size_t i = 0; i + 2 < m.len; i++)
				if (m.p[i] == '\r' && m.p[i + 1] == '\n')
					cuts[nc++] = i + 2;
		}
		rc = put_cuts(&c, k, F_WRITE, &m, cuts, nc);
		if (rc == 0)
			rc = cl_response(&c, k);
		if (rc == 0)
			log_out(k, "split", n, &m);
		m_free(&m);
	}
	cl_close(&c);
	return rc;
}

/* writev and sendmsg: a GET in one iovec per line (plus an empty one), the
 * blank line as "\r" and "\n"; then a POST whose single call is cut inside
 * the final CRLFCRLF and twice inside the body. */
static int iov_mode(const char *k, const char *mode, int use_msg)
{
	struct client c;
	int rc = 0, n;

	if (cl_connect(&c, k, 0, 0) < 0)
		return -1;
	for (n = 0; rc == 0 && n < 2; n++) {
		struct msg m;
		struct iovec iov[40];
		size_t cuts[32];
		int nc = 0, cnt;

		if (n == 0) {
			m_get(&m, mode, k, 0, NULL);
			for (size_t i = 0; i + 2 < m.len; i++)
				if (m.p[i] == '\r' && m.p[i + 1] == '\n')
					cuts[nc++] = i + 2;
			cuts[nc++] = m.len - 1;
		} else {
			m_post(&m, mode, k, 1);
			cuts[nc++] = m.head_len - 3;
			cuts[nc++] = m.head_len - 1;
			cuts[nc++] = m.head_len + 5;
			cuts[nc++] = m.head_len + 20;
		}
		cnt = make_iov(&m, cuts, nc, iov);
		rc = put_iov(&c, k, use_msg, iov, cnt);
		if (rc == 0)
			rc = cl_response(&c, k);
		if (rc == 0)
			log_out(k, mode, n, &m);
		m_free(&m);
	}
	cl_close(&c);
	return rc;
}

static int mode_writev(const char *k)
{
	return iov_mode(k, "writev", 0);
}

static int mode_sendmsg(const char *k)
{
	return iov_mode(k, "sendmsg", 1);
}

static int mode_send(const char *k)
{
	struct client c;
	int rc = 0, n;

	if (cl_connect(&c, k, 0, 0) < 0)
		return -1;
	for (n = 0; rc == 0 && n < 3; n++) {
		struct msg m;
		size_t cut;

		if (n == 0) { /* send() | send() inside the final CRLFCRLF */
			m_get(&m, "send", k, 0, NULL);
			cut = m.len - 2;
			rc = put_cuts(&c, k, F_SEND, &m, &cut, 1);
		} else if (n == 1) { /* one sendto(NULL, 0) */
			m_get(&m, "send", k, 1, NULL);
			rc = put(&c, k, F_SENDTO, m.p, m.len);
		} else { /* head by send(), body by sendto() */
			m_post(&m, "send", k, 2);
			rc = put(&c, k, F_SEND, m.p, m.head_len);
			if (rc == 0)
				rc = put(&c, k, F_SENDTO, m.p + m.head_len, m.len - m.head_len);
		}
		if (rc == 0)
			rc = cl_response(&c, k);
		if (rc == 0)
			log_out(k, "send", n, &m);
		m_free(&m);
	}
	cl_close(&c);
	return rc;
}

static int mode_post(const char *k)
{
	struct client c;
	int rc = 0, n;

	if (cl_connect(&c, k, 0, 0) < 0)
		return -1;
	for (n = 0; rc == 0 && n < 3; n++) {
		struct msg m;

		if (n == 0) {
			m_post(&m, "post", k, 0);
			rc = put(&c, k, F_WRITE, m.p, m.len);
		} else if (n == 1) { /* head; body cut inside the fake head */
			size_t cuts[3];
			char *fake;

			m_post(&m, "post", k, 1);
			fake = memmem(m.p + m.head_len, m.len - m.head_len, "GET / ", 6);
			cuts[0] = m.head_len;
			cuts[1] = (size_t)(fake - m.p) - 1; /* "\r\n\r" | "\nGET" */
			cuts[2] = (size_t)(fake - m.p) + 20;
			rc = put_cuts(&c, k, F_WRITE, &m, cuts, 3);
		} else {
			m_get(&m, "post", k, 2, NULL);
			rc = put(&c, k, F_WRITE, m.p, m.len);
		}
		if (rc == 0)
			rc = cl_response(&c, k);
		if (rc == 0)
			log_out(k, "post", n, &m);
		m_free(&m);
	}
	cl_close(&c);
	return rc;
}

static int mode_chunked(const char *k)
{
	struct client c;
	int rc = 0, n;

	if (cl_connect(&c, k, 0, 0) < 0)
		return -1;
	for (n = 0; rc == 0 && n < 3; n++) {
		struct msg m;

		if (n == 0) { /* the head, then the body 5 bytes per write() */
			m_chunked(&m, k, 0, 0);
			rc = put(&c, k, F_WRITE, m.p, m.head_len);
			for (size_t at = m.head_len; rc == 0 && at < m.len; at += 5)
				rc = put(&c, k, F_WRITE, m.p + at, m.len - at < 5 ? m.len - at : 5);
		} else if (n == 1) {
			m_chunked(&m, k, 1, 1);
			rc = put(&c, k, F_WRITE, m.p, m.len);
		} else {
			m_get(&m, "chunked", k, 2, NULL);
			rc = put(&c, k, F_WRITE, m.p, m.len);
		}
		if (rc == 0)
			rc = cl_response(&c, k);
		if (rc == 0)
			log_out(k, "chunked", n, &m);
		m_free(&m);
	}
	cl_close(&c);
	return rc;
}

static int mode_pipeline(const char *k)
{
	struct client c;
	struct msg a, b, both;
	int rc;

	if (cl_connect(&c, k, 0, 0) < 0)
		return -1;
	m_get(&a, "pipeline", k, 0, NULL);
	m_post(&b, "pipeline", k, 1);
	memset(&both, 0, sizeof both);
	m_add(&both, a.p, a.len);
	m_add(&both, b.p, b.len);
	rc = put(&c, k, F_WRITE, both.p, both.len);
	if (rc == 0)
		rc = cl_response(&c, k);
	if (rc == 0)
		rc = cl_response(&c, k);
	if (rc == 0) {
		log_out(k, "pipeline", 0, &a);
		log_out(k, "pipeline", 1, &b);
	}
	m_free(&a);
	m_free(&b);
	m_free(&both);
	cl_close(&c);
	return rc;
}

static int mode_interleave(const char *k)
{
	struct client ca, cb;
	struct msg a, b;
	size_t cut;
	int rc;

	if (cl_connect(&ca, k, 0, 0) < 0)
		return -1;
	if (cl_connect(&cb, k, 0, 0) < 0) {
		cl_close(&ca);
		return -1;
	}
	m_get(&a, "interleave", k, 0, NULL);
	m_get(&b, "interleave", k, 1, NULL);
	cut = m_find(&a, "User-Agent") + 4;
	rc = put(&ca, k, F_WRITE, a.p, cut);
	if (rc == 0)
		rc = put(&cb, k, F_WRITE, b.p, b.len);
	if (rc == 0)
		rc = put(&ca, k, F_WRITE, a.p + cut, a.len - cut);
	if (rc == 0)
		rc = cl_response(&ca, k);
	if (rc == 0)
		rc = cl_response(&cb, k);
	if (rc == 0) {
		log_out(k, "interleave", 0, &a);
		log_out(k, "interleave", 1, &b);
	}
	m_free(&a);
	m_free(&b);
	cl_close(&ca);
	cl_close(&cb);
	return rc;
}

static int ka_get(const char *k, const char *mode)
{
	struct msg m;
	int rc;

	m_get(&m, mode, k, 0, NULL);
	pthread_mutex_lock(&ka_mu);
	rc = ka.fd < 0 ? -1 : call_one(&ka, k, mode, 0, &m);
	if (rc < 0) { /* a failed exchange leaves the connection unusable */
		if (ka.fd < 0) {
			failed(k, "the shared connection is gone");
			m_free(&m);
		}
		cl_close(&ka);
	}
	pthread_mutex_unlock(&ka_mu);
	return rc;
}

static int mode_keepalive(const char *k)
{
	return ka_get(k, "keepalive");
}

/* A pooled connection: opened by the first request that needs it, then
 * reused by later ones. */
static struct client pool = { -1, 0, { 0 } };
static pthread_mutex_t pool_mu = PTHREAD_MUTEX_INITIALIZER;

static int mode_pool(const char *k)
{
	struct msg m;
	int rc = 0, opened = 0;

	pthread_mutex_lock(&pool_mu);
	if (pool.fd < 0) {
		rc = cl_connect(&pool, k, 0, 0);
		opened = rc == 0;
	}
	if (rc == 0) {
		m_get(&m, "pool", k, 0, NULL);
		rc = call_one(&pool, k, "pool", 0, &m);
		if (rc < 0)
			cl_close(&pool);
	}
	pthread_mutex_unlock(&pool_mu);
	lh_log("DEBUG", "k=%s pool connection %s", k, opened ? "opened" : "reused");
	return rc;
}

static int mode_afterka(const char *k)
{
	return ka_get(k, "afterka");
}

/* n bytes at p as IOV_MAX non-empty iovecs, or one per byte when fewer. */
static int iov_max(char *p, size_t n, struct iovec *iov)
{
	size_t cnt = n < IOV_MAX ? n : IOV_MAX;

	for (size_t i = 0; i < cnt; i++) {
		size_t piece = n / cnt + (i < n % cnt ? 1 : 0);

		iov[i].iov_base = p;
		iov[i].iov_len = piece;
		p += piece;
	}
	return (int)cnt;
}

enum nb_how { NB_WRITE, NB_SEND, NB_WRITEV, NB_IOVMAX };

/* The nonblock POST of mode on a non-blocking socket, in a poll() loop
 * through EAGAIN and short writes, by write(), send(), writev() (head and
 * body apart), or (NB_IOVMAX) write() first and writev(IOV_MAX) after. */
static int nb_call(const char *k, const char *mode, enum nb_how how)
{
	struct client c;
	struct msg m;
	int rc = 0;
	size_t off = 0, believed = 0;
	unsigned long maxv_calls = 0;
	struct iovec *maxv = NULL;

	if (how == NB_IOVMAX && !(maxv = malloc(IOV_MAX * sizeof *maxv))) {
		failed(k, "out of memory");
		return -1;
	}
	if (cl_connect(&c, k, 0, 1) < 0) {
		free(maxv);
		return -1;
	}
	m_nonblock(&m, mode, k);
	while (off < m.len) {
		size_t asked = m.len - off;
		ssize_t r;

		if (how == NB_IOVMAX && off > 0) {
			int cnt = iov_max(m.p + off, asked, maxv);

			errno = 0;
			r = writev(c.fd, maxv, cnt);
			r = checked(k, "writev", r, asked, errno);
			maxv_calls++;
		} else if (how == NB_WRITEV) {
			struct iovec iov[2];
			int cnt = 0;

			if (off < m.head_len) {
				iov[cnt].iov_base = m.p + off;
				iov[cnt++].iov_len = m.head_len - off;
			}
			iov[cnt].iov_base = m.p + (off > m.head_len ? off : m.head_len);
			iov[cnt++].iov_len = m.len - (off > m.head_len ? off : m.head_len);
			errno = 0;
			r = writev(c.fd, iov, cnt);
			r = checked(k, "writev", r, asked, errno);
		} else {
			enum fam f = how == NB_SEND ? F_SEND : F_WRITE;

			r = one_call(k, c.fd, f, m.p + off, asked);
		}
		if (r < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN || errno == EWOULDBLOCK) {
				COUNT(eagain);
				if (wait_fd(c.fd, POLLOUT) == 0)
					continue;
			}
			failed(k, "non-blocking write failed: %s", strerror(errno));
			rc = -1;
			break;
		}
		if (r == 0) {
			failed(k, "non-blocking write returned 0");
			rc = -1;
			break;
		}
		if ((size_t)r < asked && off < m.head_len && off + (size_t)r <= m.head_len)
			COUNT(head_cut);
		if (off == 0)
			lh_log("DEBUG", "k=%s %s first write returned %zd of %zu (head %zu)", k,
			       mode, r, asked, m.head_len);
		off += (size_t)r;
		believed += (size_t)r;
	}
	if (rc == 0 && believed != m.len)
		inconsistent(k, "non-blocking: believes it wrote %zu of %zu bytes", believed,
			     m.len);
	if (how == NB_IOVMAX)
		lh_log("DEBUG", "k=%s iovmax writev(IOV_MAX) calls %lu", k, maxv_calls);
	if (rc == 0)
		rc = cl_response(&c, k);
	if (rc == 0)
		log_out(k, mode, 0, &m);
	m_free(&m);
	free(maxv);
	cl_close(&c);
	return rc;
}

static int mode_nonblock(const char *k)
{
	uint32_t h = fnv1a(k, strlen(k));

	return nb_call(k, "nonblock", (enum nb_how)((h >> 16) % 3)); /* write, send, writev */
}

static int mode_iovmax(const char *k)
{
	return nb_call(k, "iovmax", NB_IOVMAX);
}

struct child_arg {
	char k[LH_TOKEN_MAX];
	int rc;
};

static void *thread_child(void *arg)
{
	struct child_arg *a = arg;

	lh_log("DEBUG", "k=%s child thread calling", a->k);
	a->rc = simple_get(a->k, "thread", 0, NULL, "HTTP/1.1");
	lh_log("DEBUG", "k=%s child thread done rc=%d", a->k, a->rc);
	return NULL;
}

static int mode_thread(const char *k)
{
	struct child_arg a;
	pthread_t th;

	snprintf(a.k, sizeof a.k, "%s", k);
	a.rc = -1;
	if (pthread_create(&th, NULL, thread_child, &a) != 0) {
		failed(k, "pthread_create failed");
		return -1;
	}
	pthread_join(th, NULL);
	return a.rc;
}

static void *bg_thread(void *arg)
{
	char job[LH_TOKEN_MAX];

	(void)arg;
	log_key = "job";
	for (;;) {
		size_t got = 0;
		char done = 'x';

		while (got < sizeof job) {
			ssize_t n = read(bg_in[0], job + got, sizeof job - got);

			if (n < 0 && errno == EINTR)
				continue;
			if (n <= 0)
				return NULL;
			got += (size_t)n;
		}
		job[sizeof job - 1] = '\0';
		if (simple_get(job, "bg", 0, NULL, "HTTP/1.1") == 0)
			done = 'y';
		lh_log("DEBUG", "bgthread job=%s finished", job);
		if (lh_write_all(bg_out[1], &done, 1, 0) < 0)
			return NULL;
	}
}

static int mode_bg(const char *k)
{
	char job[LH_TOKEN_MAX], done = 0;
	ssize_t n;

	memset(job, 0, sizeof job);
	snprintf(job, sizeof job, "%s", k);
	pthread_mutex_lock(&bg_mu);
	if (lh_write_all(bg_in[1], job, sizeof job, 0) < 0) {
		pthread_mutex_unlock(&bg_mu);
		failed(k, "cannot hand the job to the background thread");
		return -1;
	}
	do
		n = read(bg_out[0], &done, 1);
	while (n < 0 && errno == EINTR);
	pthread_mutex_unlock(&bg_mu);
	if (n != 1 || done != 'y') {
		failed(k, "the background thread's call failed");
		return -1;
	}
	return 0;
}

/* The pooljob worker: one thread, created by the first pooljob request's
 * handler; a job (k) in through pj_job_cv, done through pj_done_cv. */
static pthread_mutex_t pj_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t pj_job_cv = PTHREAD_COND_INITIALIZER;
static pthread_cond_t pj_done_cv = PTHREAD_COND_INITIALIZER;
static int pj_created, pj_waiting, pj_queued, pj_busy, pj_rc;
static unsigned long pj_seq, pj_finished;
static char pj_job[LH_TOKEN_MAX];

static void *pj_worker(void *arg)
{
	(void)arg;
	log_key = "job";
	pthread_mutex_lock(&pj_mu);
	pj_waiting = 1; /* from here until its first wait, pj_mu stays held */
	pthread_cond_broadcast(&pj_done_cv);
	for (;;) {
		char job[LH_TOKEN_MAX];
		unsigned long seq;
		int rc;

		while (!pj_queued)
			pthread_cond_wait(&pj_job_cv, &pj_mu);
		pj_queued = 0;
		seq = pj_seq;
		memcpy(job, pj_job, sizeof job);
		pthread_mutex_unlock(&pj_mu);
		lh_log("DEBUG", "job=%s pooljob worker took the job", job);
		rc = simple_get(job, "pooljob", 0, NULL, "HTTP/1.1");
		lh_log("DEBUG", "job=%s pooljob worker done rc=%d", job, rc);
		pthread_mutex_lock(&pj_mu);
		pj_rc = rc;
		pj_finished = seq;
		pthread_cond_broadcast(&pj_done_cv);
	}
	return NULL;
}

static int mode_pooljob(const char *k)
{
	unsigned long seq;
	pthread_t th;
	int rc;

	pthread_mutex_lock(&pj_mu);
	if (!pj_created) { /* the pool starts lazily, during this request */
		if (pthread_create(&th, NULL, pj_worker, NULL) != 0) {
			pthread_mutex_unlock(&pj_mu);
			failed(k, "cannot start the pooljob worker");
			return -1;
		}
		pthread_detach(th);
		pj_created = 1;
		lh_log("DEBUG", "k=%s pooljob worker started", k);
		while (!pj_waiting) /* the worker is in its wait for jobs */
			pthread_cond_wait(&pj_done_cv, &pj_mu);
	}
	while (pj_busy) /* one job at a time */
		pthread_cond_wait(&pj_done_cv, &pj_mu);
	pj_busy = 1;
	seq = ++pj_seq;
	snprintf(pj_job, sizeof pj_job, "%s", k);
	pj_queued = 1;
	pthread_cond_signal(&pj_job_cv);
	while (pj_finished != seq)
		pthread_cond_wait(&pj_done_cv, &pj_mu);
	rc = pj_rc;
	pj_busy = 0;
	pthread_cond_broadcast(&pj_done_cv);
	pthread_mutex_unlock(&pj_mu);
	lh_log("DEBUG", "k=%s pooljob job done by the worker rc=%d", k, rc);
	return rc;
}

struct mode {
	const char *name;
	int (*fn)(const char *k);
	int after; /* called after the response is written */
};

static const struct mode modes[] = {
	{ "one", mode_one, 0 },
	{ "bytewise", mode_bytewise, 0 },
	{ "split", mode_split, 0 },
	{ "writev", mode_writev, 0 },
	{ "sendmsg", mode_sendmsg, 0 },
	{ "send", mode_send, 0 },
	{ "post", mode_post, 0 },
	{ "chunked", mode_chunked, 0 },
	{ "own", mode_own, 0 },
	{ "ownid", mode_ownid, 0 },
	{ "owntp", mode_owntp, 0 },
	{ "lookalike", mode_lookalike, 0 },
	{ "pipeline", mode_pipeline, 0 },
	{ "interleave", mode_interleave, 0 },
	{ "keepalive", mode_keepalive, 0 },
	{ "pool", mode_pool, 0 },
	{ "nonblock", mode_nonblock, 0 },
	{ "iovmax", mode_iovmax, 0 },
	{ "thread", mode_thread, 0 },
	{ "bg", mode_bg, 0 },
	{ "pooljob", mode_pooljob, 0 },
	{ "http10", mode_http10, 0 },
	{ "v6", mode_v6, 0 },
	{ "after", mode_after, 1 },
	{ "afterka", mode_afterka, 1 },
};

/* "/<mode>/<k>": the mode, and k (letters and digits) copied out. */
static const struct mode *parse_target(const char *path, char *k, size_t cap)
{
	const char *slash;
	size_t ml, i, n = 0;

	if (path[0] != '/')
		return NULL;
	slash = strchr(path + 1, '/');
	if (!slash)
		return NULL;
	ml = (size_t)(slash - path - 1);
	for (const char *p = slash + 1; *p; p++, n++) {
		if (n + 1 >= cap || !((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
				      (*p >= '0' && *p <= '9')))
			return NULL;
		k[n] = *p;
	}
	if (n == 0)
		return NULL;
	k[n] = '\0';
	for (i = 0; i < sizeof modes / sizeof modes[0]; i++)
		if (strlen(modes[i].name) == ml && strncmp(modes[i].name, path + 1, ml) == 0)
			return &modes[i];
	return NULL;
}

/* ---- the server --------------------------------------------------------- */

static void *serve(void *arg)
{
	int fd = (int)(intptr_t)arg, quit = 0;
	struct lh_conn *c = malloc(sizeof *c);
	struct lh_request r;
	char k[LH_TOKEN_MAX], resp[LH_RESPONSE_MAX];
	size_t n;

	if (!c) {
		close(fd);
		lh_threads_conn_done(&th_state, 0);
		return NULL;
	}
	lh_conn_init(c, fd, 0);
	while (lh_read_request(c, &r) == 1) {
		const struct mode *md;
		int ok = 1;

		if (lh_is_quit(r.path)) {
			n = lh_build_response(resp, sizeof resp, "quit", 1);
			lh_write_all(fd, resp, n, 0);
			quit = 1;
			break;
		}
		md = parse_target(r.path, k, sizeof k);
		if (!md) {
			lh_log("ERROR", "bad request target %s", r.path);
			COUNT(errors);
			n = lh_build_error(resp, sizeof resp);
			lh_write_all(fd, resp, n, 0);
			break;
		}
		lh_log("INFO", "k=%s start %s %s", k, r.method, r.path);
		if (!md->after) {
			ok = md->fn(k) == 0;
			lh_log("INFO", "k=%s handled mode=%s ok=%d", k, md->name, ok);
		}
		n = lh_build_response(resp, sizeof resp, k, r.close);
		if (lh_write_all(fd, resp, n, 0) < 0)
			break;
		in_post = 1;
		if (md->after) {
			ok = md->fn(k) == 0;
			lh_log("INFO", "k=%s post: handled mode=%s ok=%d", k, md->name, ok);
		}
		lh_log("INFO", "k=%s post: done close=%d", k, r.close);
		in_post = 0;
		if (r.close)
			break;
	}
	close(fd);
	free(c);
	lh_threads_conn_done(&th_state, quit);
	return NULL;
}

static void start_thread(int fd)
{
	if (lh_threads_start(&th_state, serve, fd) != 0)
		COUNT(errors);
}

static int listen_on(int port, int *port_out)
{
	struct sockaddr_in sa;
	socklen_t sl = sizeof sa;
	int one = 1, fd = socket(AF_INET, SOCK_STREAM, 0);

	if (fd < 0)
		return -1;
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
	memset(&sa, 0, sizeof sa);
	sa.sin_family = AF_INET;
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	sa.sin_port = htons((uint16_t)port);
	if (bind(fd, (struct sockaddr *)&sa, sizeof sa) < 0 || listen(fd, 512) < 0 ||
	    getsockname(fd, (struct sockaddr *)&sa, &sl) < 0) {
		close(fd);
		return -1;
	}
	*port_out = ntohs(sa.sin_port);
	return fd;
}

static int parse_port(const char *s)
{
	char *end;
	long v = strtol(s, &end, 10);

	return (*s && !*end && v >= 0 && v < 65536) ? (int)v : -1;
}

static void usage(void)
{
	static const char msg[] =
		"usage: outbound_caller PORT HOST:PORT [--ready-fd N] [--down6 PORT6]\n";

	lh_write_stderr(msg, sizeof msg - 1);
}

int main(int argc, char **argv)
{
	int port, ready_fd = -1, i, dport;
	char host[64];
	const char *colon;
	struct timespec deadline;
	pthread_t bg;
	struct msg m;
	struct client c;
	int left;

	lh_name = "outbound_caller";
	if (argc < 3 || (port = parse_port(argv[1])) < 0 || !(colon = strrchr(argv[2], ':')) ||
	    (size_t)(colon - argv[2]) >= sizeof host || (dport = parse_port(colon + 1)) <= 0) {
		usage();
		return 2;
	}
	memcpy(host, argv[2], (size_t)(colon - argv[2]));
	host[colon - argv[2]] = '\0';
	memset(&down4, 0, sizeof down4);
	down4.sin_family = AF_INET;
	down4.sin_port = htons((uint16_t)dport);
	if (inet_pton(AF_INET, host, &down4.sin_addr) != 1) {
		usage();
		return 2;
	}
	for (i = 3; i < argc; i += 2) {
		int v = i + 1 < argc ? parse_port(argv[i + 1]) : -1;

		if (v < 0) {
			usage();
			return 2;
		}
		if (strcmp(argv[i], "--ready-fd") == 0) {
			ready_fd = v;
		} else if (strcmp(argv[i], "--down6") == 0 && v > 0) {
			memset(&down6, 0, sizeof down6);
			down6.sin6_family = AF_INET6;
			down6.sin6_port = htons((uint16_t)v);
			down6.sin6_addr = in6addr_loopback;
			have_down6 = 1;
		} else {
			usage();
			return 2;
		}
	}
	signal(SIGPIPE, SIG_IGN);
	lh_log_setup();

	th_state.listen_fd = listen_on(port, &port);
	if (th_state.listen_fd < 0) {
		lh_log("ERROR", "cannot listen: %s", strerror(errno));
		return 1;
	}
	lh_log("INFO", "listening on 127.0.0.1:%d, downstream %s:%d%s", port, host, dport,
	       have_down6 ? " and [::1]" : "");

	/* start-up calls, outside any request */
	log_key = "init";
	if (cl_connect(&c, "startup", 0, 0) == 0) {
		m_get(&m, "startup", "0", 0, NULL);
		call_one(&c, "0", "startup", 0, &m);
		cl_close(&c);
	}
	if (cl_connect(&ka, "startup", 0, 0) == 0) {
		m_get(&m, "startup", "ka", 0, NULL);
		if (call_one(&ka, "ka", "startup", 0, &m) < 0)
			cl_close(&ka);
	}
	log_key = "k";
	if (pipe(bg_in) < 0 || pipe(bg_out) < 0 || pthread_create(&bg, NULL, bg_thread, NULL) != 0) {
		lh_log("ERROR", "cannot start the background thread");
		return 1;
	}
	if (ready_fd >= 0 && lh_report_port(ready_fd, port) < 0)
		return 1;

	lh_threads_accept_loop(&th_state, start_thread);

	clock_gettime(CLOCK_REALTIME, &deadline);
	deadline.tv_sec += 20;
	pthread_mutex_lock(&th_state.mu);
	while (th_state.busy > 0 &&
	       pthread_cond_timedwait(&th_state.idle_cv, &th_state.mu, &deadline) == 0)
		;
	left = th_state.busy;
	pthread_mutex_unlock(&th_state.mu);
	if (left) {
		lh_log("ERROR", "%d connections still open at exit", left);
		COUNT(errors);
	}
	lh_log("INFO",
	       "outbound_caller: stats outbound=%lu partial=%lu eagain=%lu head_cut=%lu "
	       "inconsistent=%lu errors=%lu",
	       stats.outbound, stats.partial, stats.eagain, stats.head_cut, stats.inconsistent,
	       stats.errors);
	exit(stats.inconsistent ? 3 : stats.errors ? 1 : 0);
}
