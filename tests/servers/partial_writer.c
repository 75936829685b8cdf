/*
 * partial_writer.c - a single-threaded, poll()-driven legacy-style HTTP/1.1
 * server that writes large responses on non-blocking sockets with a tiny
 * send buffer, so that a slow client makes nearly every write partial or
 * EAGAIN. Plain libc; it knows nothing about reqid. Used by
 * tests/integration/test_response_header.py to check the X-Request-ID
 * header the shim adds under partial writes.
 *
 *     partial_writer PORT [READY_FD]
 *
 * Listens on 127.0.0.1:PORT (0: any free port); once listening, writes the
 * port and '\n' to READY_FD and closes it (the handshake). SIGTERM, or a
 * request for /quit, ends it: exit status 0 unless something went wrong.
 * /stats answers with the counters of the stats line below, so far.
 *
 * Request targets (GET, keep-alive unless "Connection: close"):
 *     /[own/]FAMILY/SPLIT/TOKEN[?size=N]
 * FAMILY is the call family that writes the response: write, writev, send,
 * sendto, sendmsg, sendfile (headers with write(), the body with
 * sendfile() from an unlinked temporary file), or iovmax (each call's first
 * attempt by write(); after a partial write or EAGAIN, the rest of the call
 * by writev() of IOV_MAX non-empty iovecs, or one per byte when fewer bytes
 * are left). SPLIT says how the response is cut into the application's
 * calls:
 *     one     headers and body in one call (for sendfile: the headers)
 *     status  the status line, then the rest
 *     blank   everything before the final CRLF of the headers, then the rest
 *     cr      everything before the final LF of the headers, then the rest
 *     hb      the headers, then the body
 *     bytes   the headers one byte per call, then the body
 * writev and sendmsg spread each call over several iovecs (one per header
 * line, the body in thirds, and an empty one). Each writev() of iovmax runs
 * under alarm(IOVMAX_ALARM): a call that has not returned by then writes
 * "ERROR ... did not return" and ends the server (exit 4); once an iovmax
 * response is written, one line on stderr says what its first call
 * returned, where its header block's final CRLF is, and what its
 * writev(IOV_MAX) calls returned ("iovmax conn=... target=... first=R
 * blank=B maxv_calls=C maxv_sum=S believed=X total=Y"). With /own/ the application
 * sets an X-Request-ID header of its own ("own-TOKEN", the name's case
 * varying), in the middle of its headers. The body is N bytes (default
 * 200 KiB plus up to 4 KiB) of a pattern derived from the target (see
 * pattern()), with fake response heads embedded in it; the header block is
 * padded (0-9000 bytes of X-Pad-NN lines) to a length derived from the
 * target as well, or by P bytes (at most 10800) with "?size=N&pad=P".
 *
 * Each call is looped on partial writes and EAGAIN (poll for POLLOUT), and
 * every return value is checked: never more than asked, never 0 for a
 * non-empty call, -1 only with errno set (EAGAIN and EINTR are retried),
 * sendfile's offset moved by exactly its return, and the bytes the
 * application believes it sent equal exactly the response's length. Any
 * inconsistency writes "INCONSISTENT ..." on stderr and exits with status 3.
 * Other failures (a write or read error, a bad request) write "ERROR ..."
 * and make the final exit status 1. At exit one "partial_writer: stats ..."
 * line goes to stderr: calls made, partial returns, EAGAINs, and
 * cut_at_blank, the calls that covered the end of a header block (the
 * offset of its final CRLF) and returned exactly that far: a cut there is
 * rare by chance, but it is where a kernel cut at or inside a header added
 * by a shim shows.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/sendfile.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <unistd.h>

#define MAX_CONNS 64
#define IN_SIZE 8192
#define SNDBUF 4096
#define DEFAULT_BODY (200 * 1024)
#define MAX_BODY (4 * 1024 * 1024)
#define MAX_IOV 256
#define MAX_PAD (120 * 90)
#define IOVMAX_ALARM 3 /* seconds a writev(IOV_MAX) may take */

enum family { F_WRITE, F_WRITEV, F_SEND, F_SENDTO, F_SENDMSG, F_SENDFILE, F_IOVMAX, F_COUNT };
static const char *const family_names[F_COUNT] = {"write", "writev", "send", "sendto",
						  "sendmsg", "sendfile", "iovmax"};
enum split { S_ONE, S_STATUS, S_BLANK, S_CR, S_HB, S_BYTES, S_COUNT };
static const char *const split_names[S_COUNT] = {"one", "status", "blank", "cr", "hb", "bytes"};

/* One application call: bytes [start, end) of the response; for sendfile,
 * body bytes come from the file. */
struct call {
	size_t start, end;
	bool file;
};

struct conn {
	int fd; /* -1: slot free */
	unsigned long serial;
	char in[IN_SIZE];
	size_t in_len;
	bool writing, close_after, quit_after;
	/* the response being written */
	char target[512];
	enum family family;
	unsigned char *resp; /* headers + body */
	size_t resp_len, head_len, blank; /* blank: offset of the final CRLF */
	size_t cuts[MAX_IOV]; /* iovec boundaries for writev/sendmsg */
	size_t ncuts;
	struct call *calls;
	size_t ncalls, cur, off; /* off: absolute offset reached in calls[cur] */
	size_t believed; /* sum of the returns the application saw */
	int file_fd;
	/* iovmax: the first call's first return, the writev(IOV_MAX) calls */
	ssize_t first_r;
	unsigned long maxv_calls;
	size_t maxv_sum;
};

static struct conn conns[MAX_CONNS];
static int sig_pipe[2] = {-1, -1};
static int errors;
static unsigned long serials;
static struct {
	unsigned long responses, calls, partial, eagain, eintr, cut_at_blank;
} stats;

/* Writes one line on fd 2 (plain write, like old code). */
static void say(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void say(const char *fmt, ...)
{
	char line[1024];
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(line, sizeof(line) - 1, fmt, ap);
	va_end(ap);
	if (n < 0)
		return;
	if ((size_t)n > sizeof(line) - 2)
		n = (int)sizeof(line) - 2;
	line[n++] = '\n';
	for (int off = 0; off < n;) {
		ssize_t r = write(2, line + off, (size_t)(n - off));
		if (r <= 0) {
			if (r < 0 && errno == EINTR)
				continue;
			return;
		}
		off += (int)r;
	}
}

static void inconsistent(const struct conn *c, const char *fmt, ...)
	__attribute__((format(printf, 2, 3), noreturn));
static void inconsistent(const struct conn *c, const char *fmt, ...)
{
	char what[600];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(what, sizeof(what), fmt, ap);
	va_end(ap);
	say("INCONSISTENT conn=%lu target=%s family=%s call=%zu/%zu: %s", c->serial, c->target,
	    family_names[c->family], c->cur, c->ncalls, what);
	_exit(3);
}

/* ------------------------------------------------------------- pattern */

static uint32_t fnv1a(const char *s)
{
	uint32_t h = 2166136261u;
	for (; *s; s++) {
		h ^= (unsigned char)*s;
		h *= 16777619u;
	}
	return h;
}

static const char fake_head[] = "\r\n\r\nHTTP/1.1 200 OK\r\nX-Request-ID: fake\r\n"
				"Content-Length: 0\r\n\r\n";

/* n bytes of the body for target: xorshift32 from the target's FNV-1a
 * hash, four little-endian bytes per step, with a fake response head every
 * 8 KiB from 1000 + hash % 1000. */
static void pattern(const char *target, unsigned char *out, size_t n)
{
	uint32_t h = fnv1a(target), x = h ? h : 1;
	for (size_t i = 0; i < n; i += 4) {
		x ^= x << 13;
		x ^= x >> 17;
		x ^= x << 5;
		for (size_t k = 0; k < 4 && i + k < n; k++)
			out[i + k] = (unsigned char)(x >> (8 * k));
	}
	size_t fl = sizeof(fake_head) - 1;
	for (size_t off = 1000 + h % 1000; off + fl <= n; off += 8192)
		memcpy(out + off, fake_head, fl);
}

/* ------------------------------------------------------------ response */

static void conn_close(struct conn *c)
{
	close(c->fd);
	if (c->file_fd >= 0)
		close(c->file_fd);
	free(c->resp);
	free(c->calls);
	memset(c, 0, sizeof(*c));
	c->fd = -1;
	c->file_fd = -1;
}

static void add_cut(struct conn *c, size_t at)
{
	if (c->ncuts < MAX_IOV - 8)
		c->cuts[c->ncuts++] = at;
}

static bool add_call(struct conn *c, size_t *cap, size_t start, size_t end, bool file)
{
	if (c->ncalls == *cap) {
		size_t ncap = *cap ? *cap * 2 : 16;
		struct call *n = realloc(c->calls, ncap * sizeof(*n));
		if (!n)
			return false;
		c->calls = n;
		*cap = ncap;
	}
	c->calls[c->ncalls++] = (struct call){start, end, file};
	return true;
}

static bool parse_target(const char *target, bool *own, enum family *fam, enum split *split,
			 size_t *body_len, long *pad)
{
	char t[512];
	snprintf(t, sizeof(t), "%s", target);
	char *q = strchr(t, '?');
	*body_len = DEFAULT_BODY + fnv1a(target) % 4099;
	*pad = -1;
	if (q) {
		*q++ = 0;
		if (strncmp(q, "size=", 5) != 0)
			return false;
		char *end;
		unsigned long v = strtoul(q + 5, &end, 10);
		if ((*end && *end != '&') || end == q + 5 || v > MAX_BODY)
			return false;
		*body_len = v;
		if (*end) { /* "&pad=P" */
			char *p = end + 1;
			if (strncmp(p, "pad=", 4) != 0)
				return false;
			v = strtoul(p + 4, &end, 10);
			if (*end || end == p + 4 || v > MAX_PAD)
				return false;
			*pad = (long)v;
		}
	}
	char *save = NULL, *part[5];
	int n = 0;
	for (char *p = strtok_r(t, "/", &save); p && n < 5; p = strtok_r(NULL, "/", &save))
		part[n++] = p;
	*own = n == 4 && strcmp(part[0], "own") == 0;
	int base = *own ? 1 : 0;
	if (n != base + 3)
		return false;
	int f = 0, s = 0;
	while (f < F_COUNT && strcmp(part[base], family_names[f]) != 0)
		f++;
	while (s < S_COUNT && strcmp(part[base + 1], split_names[s]) != 0)
		s++;
	if (f == F_COUNT || s == S_COUNT)
		return false;
	*fam = (enum family)f;
	*split = (enum split)s;
	return true;
}

/* Builds the response for c->target and its calls. False on a bad target. */
static bool prepare(struct conn *c)
{
	bool own;
	enum family fam;
	enum split split;
	size_t body_len;
	long pad_given = -1;
	bool quit = strcmp(c->target, "/quit") == 0, stat = strcmp(c->target, "/stats") == 0;
	char text[256];
	if (quit || stat) {
		own = false;
		fam = F_WRITE;
		split = S_ONE;
		if (quit)
			snprintf(text, sizeof(text), "ok quit\n");
		else
			snprintf(text, sizeof(text),
				 "responses=%lu calls=%lu partial=%lu eagain=%lu eintr=%lu "
				 "cut_at_blank=%lu errors=%d\n",
				 stats.responses, stats.calls, stats.partial, stats.eagain, stats.eintr,
				 stats.cut_at_blank, errors);
		body_len = strlen(text);
	} else if (!parse_target(c->target, &own, &fam, &split, &body_len, &pad_given)) {
		return false;
	}
	uint32_t h = fnv1a(c->target);
	char head[16384];
	size_t hl = 0;
	c->ncuts = 0;
#define ADD(...) (hl += (size_t)snprintf(head + hl, sizeof(head) - hl, __VA_ARGS__), add_cut(c, hl))
	ADD("HTTP/1.1 200 OK\r\n");
	ADD("Server: partial_writer\r\n");
	ADD("Content-Type: application/octet-stream\r\n");
	if (own) {
		static const char *const names[] = {"X-Request-ID", "x-request-id", "X-REQUEST-ID"};
		const char *token = strrchr(c->target, '/') + 1;
		size_t tl = strcspn(token, "?");
		ADD("%s: own-%.*s\r\n", names[h % 3], (int)tl, token);
	}
	ADD("Content-Length: %zu\r\n", body_len);
	/* pad the header block to a length that varies with the target */
	size_t pad = quit || stat ? 0 : pad_given >= 0 ? (size_t)pad_given : (h >> 8) % 9000;
	for (int i = 0; pad > 0 && i < 120; i++) {
		size_t len = pad > 90 ? 90 : pad;
		pad -= len;
		ADD("X-Pad-%02d: %.*s\r\n", i,
		    (int)len, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
			      "abcdefghijklmnopqrstuvwxyzABCD");
	}
	if (c->close_after)
		ADD("Connection: close\r\n");
	c->blank = hl;
	ADD("\r\n");
#undef ADD
	c->head_len = hl;
	c->resp_len = hl + body_len;
	c->resp = malloc(c->resp_len ? c->resp_len : 1);
	if (!c->resp)
		return false;
	memcpy(c->resp, head, hl);
	if (quit || stat)
		memcpy(c->resp + hl, text, body_len);
	else
		pattern(c->target, c->resp + hl, body_len);
	add_cut(c, hl + body_len / 3);
	add_cut(c, hl + 2 * body_len / 3);
	c->family = fam;
	c->quit_after = quit;

	/* the application's calls */
	size_t cap = 0, n = c->resp_len, headers_end = hl;
	bool file = fam == F_SENDFILE;
	size_t status_end = strstr(head, "\r\n") - head + 2;
	size_t first_end = file ? headers_end : n; /* what "one" covers */
	c->ncalls = 0;
	bool ok = true;
	switch (split) {
	case S_ONE:
		ok = add_call(c, &cap, 0, first_end, false);
		break;
	case S_STATUS:
		ok = add_call(c, &cap, 0, status_end, false) &&
		     add_call(c, &cap, status_end, first_end, false);
		break;
	case S_BLANK:
		ok = add_call(c, &cap, 0, c->blank, false) &&
		     add_call(c, &cap, c->blank, first_end, false);
		break;
	case S_CR:
		ok = add_call(c, &cap, 0, c->blank + 1, false) &&
		     add_call(c, &cap, c->blank + 1, first_end, false);
		break;
	case S_HB:
		ok = add_call(c, &cap, 0, headers_end, false) &&
		     (file || add_call(c, &cap, headers_end, n, false));
		break;
	case S_BYTES:
		for (size_t i = 0; ok && i < headers_end; i++)
			ok = add_call(c, &cap, i, i + 1, false);
		if (ok && !file)
			ok = add_call(c, &cap, headers_end, n, false);
		break;
	default:
		ok = false;
	}
	if (ok && file && body_len > 0)
		ok = add_call(c, &cap, headers_end, n, true);
	if (!ok)
		return false;

	if (file) {
		char path[] = "/tmp/partial_writer.XXXXXX";
		c->file_fd = mkstemp(path);
		if (c->file_fd < 0)
			return false;
		unlink(path);
		for (size_t off = hl; off < n;) {
			ssize_t r = write(c->file_fd, c->resp + off, n - off);
			if (r <= 0)
				return false;
			off += (size_t)r;
		}
	}
	c->cur = 0;
	c->off = c->ncalls ? c->calls[0].start : 0;
	c->believed = 0;
	c->first_r = -2;
	c->maxv_calls = 0;
	c->maxv_sum = 0;
	c->writing = true;
	stats.responses++;
	return true;
}

/* The iovecs for bytes [from, end) of the response: split at the cuts,
 * with an empty one after the first. */
static int make_iov(const struct conn *c, size_t from, size_t end, struct iovec *iov)
{
	int n = 0;
	size_t at = from;
	for (size_t k = 0; k <= c->ncuts && at < end; k++) {
		size_t stop = k < c->ncuts ? c->cuts[k] : end;
		if (stop > end)
			stop = end;
		if (stop <= at)
			continue;
		iov[n++] = (struct iovec){c->resp + at, stop - at};
		if (n == 1)
			iov[n++] = (struct iovec){c->resp + at, 0};
		at = stop;
	}
	if (at < end)
		iov[n++] = (struct iovec){c->resp + at, end - at};
	return n;
}

/* The iovecs for bytes [from, end) of the response: IOV_MAX non-empty
 * pieces, or one per byte when there are fewer bytes. */
static int make_iov_max(const struct conn *c, size_t from, size_t end, struct iovec *iov)
{
	size_t len = end - from, n = len < IOV_MAX ? len : IOV_MAX, at = from;
	for (size_t i = 0; i < n; i++) {
		size_t piece = len / n + (i < len % n ? 1 : 0);
		iov[i] = (struct iovec){c->resp + at, piece};
		at += piece;
	}
	return (int)n;
}

static void on_alarm(int sig)
{
	static const char msg[] = "ERROR iovmax: a writev() of IOV_MAX iovecs did not return "
				  "within the alarm\n";
	(void)sig;
	syscall(SYS_write, 2, msg, sizeof(msg) - 1); /* straight to the kernel */
	_exit(4);
}

/* One attempt at the current call. Returns what the application's call
 * returned, after checking it. */
static ssize_t attempt(struct conn *c)
{
	const struct call *k = &c->calls[c->cur];
	size_t asked = k->end - c->off;
	ssize_t r;
	errno = 0;
	if (k->file) {
		off_t before = (off_t)(c->off - c->head_len), off = before;
		r = sendfile(c->fd, c->file_fd, &off, asked);
		if (r >= 0 && off - before != (off_t)r)
			inconsistent(c, "sendfile returned %zd but moved the offset by %lld", r,
				     (long long)(off - before));
		if (r < 0 && off != before)
			inconsistent(c, "sendfile failed but moved the offset by %lld",
				     (long long)(off - before));
	} else {
		struct iovec iov[MAX_IOV];
		int n;
		struct msghdr m;
		switch (c->family) {
		case F_WRITE:
		case F_SENDFILE:
			r = write(c->fd, c->resp + c->off, asked);
			break;
		case F_SEND:
			r = send(c->fd, c->resp + c->off, asked, MSG_NOSIGNAL);
			break;
		case F_SENDTO:
			r = sendto(c->fd, c->resp + c->off, asked, MSG_NOSIGNAL, NULL, 0);
			break;
		case F_WRITEV:
			n = make_iov(c, c->off, k->end, iov);
			r = writev(c->fd, iov, n);
			break;
		case F_SENDMSG:
			n = make_iov(c, c->off, k->end, iov);
			memset(&m, 0, sizeof(m));
			m.msg_iov = iov;
			m.msg_iovlen = (size_t)n;
			r = sendmsg(c->fd, &m, MSG_NOSIGNAL);
			break;
		case F_IOVMAX:
			if (c->off == k->start) {
				r = write(c->fd, c->resp + c->off, asked);
			} else {
				static struct iovec maxv[IOV_MAX];
				n = make_iov_max(c, c->off, k->end, maxv);
				alarm(IOVMAX_ALARM);
				r = writev(c->fd, maxv, n);
				int e = errno;
				alarm(0);
				errno = e;
				c->maxv_calls++;
				if (r > 0)
					c->maxv_sum += (size_t)r;
			}
			if (c->first_r == -2)
				c->first_r = r;
			break;
		default:
			r = -1;
			errno = EINVAL;
		}
	}
	stats.calls++;
	if (r < 0) {
		int e = errno;
		if (e == EAGAIN || e == EWOULDBLOCK) {
			stats.eagain++;
		} else if (e == EINTR) {
			stats.eintr++;
		} else if (e == 0) {
			inconsistent(c, "returned %zd with errno 0 (asked %zu)", r, asked);
		}
		if (r != -1)
			inconsistent(c, "returned %zd (asked %zu)", r, asked);
		errno = e;
		return r;
	}
	if ((size_t)r > asked)
		inconsistent(c, "returned %zd, more than the %zu asked", r, asked);
	if (r == 0 && asked > 0)
		inconsistent(c, "returned 0 for %zu bytes asked", asked);
	if ((size_t)r < asked)
		stats.partial++;
	/* a call that covers the insertion point and stops exactly there */
	if (c->off < c->blank && c->blank < k->end && c->off + (size_t)r == c->blank)
		stats.cut_at_blank++;
	return r;
}

/* Writes as much of c's response as the socket takes. False when the
 * connection is to be closed. */
static bool drive(struct conn *c)
{
	while (c->cur < c->ncalls) {
		const struct call *k = &c->calls[c->cur];
		if (c->off == k->end) { /* an empty call is never made */
			c->cur++;
			if (c->cur < c->ncalls)
				c->off = c->calls[c->cur].start;
			continue;
		}
		ssize_t r = attempt(c);
		if (r < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN || errno == EWOULDBLOCK)
				return true; /* poll for POLLOUT */
			say("ERROR conn=%lu target=%s: write failed: %s", c->serial, c->target,
			    strerror(errno));
			errors++;
			return false;
		}
		c->off += (size_t)r;
		c->believed += (size_t)r;
	}
	if (c->believed != c->resp_len)
		inconsistent(c, "believes it sent %zu bytes of a %zu-byte response", c->believed,
			     c->resp_len);
	if (c->family == F_IOVMAX)
		say("iovmax conn=%lu target=%s first=%zd blank=%zu maxv_calls=%lu maxv_sum=%zu "
		    "believed=%zu total=%zu",
		    c->serial, c->target, c->first_r, c->blank, c->maxv_calls, c->maxv_sum,
		    c->believed, c->resp_len);
	c->writing = false;
	free(c->resp);
	c->resp = NULL;
	free(c->calls);
	c->calls = NULL;
	c->ncalls = 0;
	if (c->file_fd >= 0) {
		close(c->file_fd);
		c->file_fd = -1;
	}
	return !c->close_after;
}

/* ------------------------------------------------------------- requests */

/* Starts the next request in c->in, if it is complete. 0: none yet,
 * 1: started, -1: bad request (connection to close). */
static int next_request(struct conn *c)
{
	char *end = memmem(c->in, c->in_len, "\r\n\r\n", 4);
	if (!end) {
		if (c->in_len == IN_SIZE) {
			say("ERROR conn=%lu: request head too long", c->serial);
			errors++;
			return -1;
		}
		return 0;
	}
	size_t head = (size_t)(end - c->in) + 4;
	char line[1024];
	size_t ll = (size_t)((char *)memmem(c->in, head, "\r\n", 2) - c->in);
	if (ll >= sizeof(line))
		ll = sizeof(line) - 1;
	memcpy(line, c->in, ll);
	line[ll] = 0;
	char *sp1 = strchr(line, ' '), *sp2 = sp1 ? strchr(sp1 + 1, ' ') : NULL;
	bool ok = sp1 && sp2 && strncmp(line, "GET ", 4) == 0 && strcmp(sp2, " HTTP/1.1") == 0 &&
		  (size_t)(sp2 - sp1 - 1) < sizeof(c->target);
	if (ok) {
		*sp2 = 0;
		snprintf(c->target, sizeof(c->target), "%s", sp1 + 1);
		/* Connection: close, anywhere in the head */
		c->close_after = false;
		for (char *p = c->in; p < c->in + head;) {
			char *eol = memmem(p, (size_t)(c->in + head - p), "\r\n", 2);
			if (!eol)
				break;
			if ((size_t)(eol - p) >= 11 && strncasecmp(p, "connection:", 11) == 0 &&
			    memmem(p, (size_t)(eol - p), "close", 5))
				c->close_after = true;
			p = eol + 2;
		}
		ok = prepare(c);
	}
	memmove(c->in, c->in + head, c->in_len - head);
	c->in_len -= head;
	if (!ok) {
		say("ERROR conn=%lu: bad request %s", c->serial, line);
		errors++;
		return -1;
	}
	return 1;
}

/* Reads what there is; starts and drives requests. False: close it. */
static bool on_readable(struct conn *c)
{
	for (;;) {
		ssize_t r = read(c->fd, c->in + c->in_len, IN_SIZE - c->in_len);
		if (r < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN || errno == EWOULDBLOCK)
				break;
			say("ERROR conn=%lu: read failed: %s", c->serial, strerror(errno));
			errors++;
			return false;
		}
		if (r == 0) {
			if (c->in_len > 0) {
				say("ERROR conn=%lu: eof mid-request", c->serial);
				errors++;
			}
			return false;
		}
		c->in_len += (size_t)r;
		break;
	}
	return true;
}

/* Runs requests on c for as long as it can without waiting. */
static bool progress(struct conn *c, bool *quit)
{
	for (;;) {
		if (c->writing) {
			bool keep = drive(c);
			if (c->writing)
				return true;
			if (c->quit_after)
				*quit = true;
			if (!keep || *quit)
				return false;
		}
		int s = next_request(c);
		if (s <= 0)
			return s == 0;
	}
}

/* -------------------------------------------------------------- main */

static void on_term(int sig)
{
	(void)sig;
	int saved = errno;
	ssize_t r = write(sig_pipe[1], "t", 1);
	(void)r;
	errno = saved;
}

static void accept_all(int ls)
{
	for (;;) {
		int fd = accept(ls, NULL, NULL);
		if (fd < 0) {
			if (errno == EINTR || errno == ECONNABORTED)
				continue;
			if (errno != EAGAIN && errno != EWOULDBLOCK) {
				say("ERROR accept failed: %s", strerror(errno));
				errors++;
			}
			return;
		}
		struct conn *c = NULL;
		for (int i = 0; i < MAX_CONNS && !c; i++)
			if (conns[i].fd < 0)
				c = &conns[i];
		int snd = SNDBUF;
		if (!c || setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &snd, sizeof(snd)) < 0 ||
		    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK) < 0) {
			say("ERROR cannot take connection: %s", c ? strerror(errno) : "too many");
			errors++;
			close(fd);
			continue;
		}
		c->fd = fd;
		c->file_fd = -1;
		c->serial = ++serials;
	}
}

int main(int argc, char **argv)
{
	if (argc < 2 || argc > 3) {
		say("usage: partial_writer PORT [READY_FD]");
		return 2;
	}
	int port = atoi(argv[1]);
	int ready_fd = argc == 3 ? atoi(argv[2]) : -1;
	signal(SIGPIPE, SIG_IGN);
	for (int i = 0; i < MAX_CONNS; i++) {
		conns[i].fd = -1;
		conns[i].file_fd = -1;
	}
	if (pipe2(sig_pipe, O_CLOEXEC | O_NONBLOCK) < 0) {
		say("ERROR pipe: %s", strerror(errno));
		return 1;
	}
	struct sigaction sa;
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_term;
	sigaction(SIGTERM, &sa, NULL);
	sa.sa_handler = on_alarm;
	sigaction(SIGALRM, &sa, NULL);

	int ls = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	int one = 1;
	struct sockaddr_in a;
	memset(&a, 0, sizeof(a));
	a.sin_family = AF_INET;
	a.sin_port = htons((uint16_t)port);
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	socklen_t al = sizeof(a);
	if (ls < 0 || setsockopt(ls, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0 ||
	    bind(ls, (struct sockaddr *)&a, sizeof(a)) < 0 || listen(ls, 128) < 0 ||
	    getsockname(ls, (struct sockaddr *)&a, &al) < 0) {
		say("ERROR listen on port %d: %s", port, strerror(errno));
		return 1;
	}
	if (ready_fd >= 0) {
		char msg[16];
		int n = snprintf(msg, sizeof(msg), "%d\n", ntohs(a.sin_port));
		if (write(ready_fd, msg, (size_t)n) != n) {
			say("ERROR handshake: %s", strerror(errno));
			return 1;
		}
		close(ready_fd);
	}

	bool quit = false;
	while (!quit) {
		struct pollfd pfd[MAX_CONNS + 2];
		int who[MAX_CONNS + 2];
		int n = 0;
		pfd[n] = (struct pollfd){.fd = sig_pipe[0], .events = POLLIN};
		who[n++] = -1;
		pfd[n] = (struct pollfd){.fd = ls, .events = POLLIN};
		who[n++] = -2;
		for (int i = 0; i < MAX_CONNS; i++) {
			if (conns[i].fd < 0)
				continue;
			pfd[n] = (struct pollfd){.fd = conns[i].fd,
						 .events = conns[i].writing ? POLLOUT : POLLIN};
			who[n++] = i;
		}
		if (poll(pfd, (nfds_t)n, -1) < 0) {
			if (errno == EINTR)
				continue;
			say("ERROR poll: %s", strerror(errno));
			errors++;
			break;
		}
		for (int i = 0; i < n && !quit; i++) {
			if (!pfd[i].revents)
				continue;
			if (who[i] == -1) {
				quit = true;
			} else if (who[i] == -2) {
				accept_all(ls);
			} else {
				struct conn *c = &conns[who[i]];
				bool keep = true;
				if (!c->writing)
					keep = on_readable(c);
				if (keep)
					keep = progress(c, &quit);
				if (!keep)
					conn_close(c);
			}
		}
	}
	for (int i = 0; i < MAX_CONNS; i++) {
		if (conns[i].fd < 0)
			continue;
		if (conns[i].writing) {
			say("ERROR conn=%lu target=%s: response unfinished at exit", conns[i].serial,
			    conns[i].target);
			errors++;
		}
		conn_close(&conns[i]);
	}
	close(ls);
	say("partial_writer: stats responses=%lu calls=%lu partial=%lu eagain=%lu eintr=%lu "
	    "cut_at_blank=%lu errors=%d",
	    stats.responses, stats.calls, stats.partial, stats.eagain, stats.eintr,
	    stats.cut_at_blank, errors);
	return errors ? 1 : 0;
}
