/*
 * conn_output.c - responses with the request id added as a header.
 *
 * Plans on a copy of the connection's response parser where this write's
 * response header blocks end, writes the application's bytes with the header
 * inserted there (one writev or sendmsg), then maps what the kernel took
 * back to the application's bytes and moves the parser past exactly those.
 * Works under the connection's write-side try-lock; a connection written by
 * two threads at once stops getting the header rather than risk a torn
 * response. Never allocates; arrays live on the stack, bounded by IOV_MAX.
 */
#include "conn_output.h"

#include <errno.h>
#include <limits.h>
#include <stdatomic.h>
#include <string.h>

#include "conn_table.h"
#include "request_table.h"
#include "shim_init.h"

#define MAX_POINTS 8

static ssize_t send_pieces(int fd, struct iovec *iov, int n, int flags, bool use_send,
			   const struct msghdr *msg)
{
	if (!use_send)
		return real.writev(fd, iov, n);
	struct msghdr m = {0};
	if (msg)
		m = *msg;
	m.msg_iov = iov;
	m.msg_iovlen = (size_t)n;
	return real.sendmsg(fd, &m, flags);
}

static void advance(struct http_response_parser *p, const struct iovec *iov, int iovcnt,
		    size_t n)
{
	for (int i = 0; i < iovcnt && n > 0; i++) {
		size_t part = iov[i].iov_len < n ? iov[i].iov_len : n;
		http_response_advance(p, iov[i].iov_base, part);
		n -= part;
	}
}

/* Where this write's bytes need the header: absolute offsets, at most max.
 * *after is the parser past all of them (what it becomes if they all go). */
static size_t plan(const struct http_response_parser *p, const struct iovec *iov, int iovcnt,
		   size_t points[], size_t max, struct http_response_parser *after)
{
	*after = *p;
	size_t count = 0, base = 0;
	for (int i = 0; i < iovcnt && !http_response_stopped(after); i++) {
		size_t found = http_response_scan(after, iov[i].iov_base, iov[i].iov_len,
						  points + count, max - count);
		for (size_t k = count; k < count + found; k++)
			points[k] += base;
		count += found;
		base += iov[i].iov_len;
	}
	return count;
}

/* "Name: id\r\n" for the connection's current request; 0 if it has none. */
static size_t header_text(int fd, char *out)
{
	char id[REQUEST_ID_MAX];
	size_t id_len = request_table_get(conn_request(fd), id);
	if (id_len == 0)
		return 0;
	size_t n = shim.config.response_header_len;
	memcpy(out, shim.config.response_header, n);
	out[n++] = ':';
	out[n++] = ' ';
	memcpy(out + n, id, id_len);
	n += id_len;
	out[n++] = '\r';
	out[n++] = '\n';
	return n;
}

static bool out_lock(struct conn *c)
{
	uint32_t expected = 0;
	return atomic_compare_exchange_strong_explicit(&c->out_busy, &expected, 1,
						       memory_order_acquire, memory_order_relaxed);
}

static void out_unlock(struct conn *c)
{
	atomic_store_explicit(&c->out_busy, 0, memory_order_release);
}

enum piece_kind { APP, ADDED, OWED };

/* The pieces for one attempt: what is owed, then the application's bytes
 * with the header at each point. Returns their count. */
static int build(struct conn *c, const struct iovec *iov, int iovcnt, const size_t *points,
		 size_t count, char *header, size_t header_len, struct iovec *out, uint8_t *kind)
{
	int n = 0;
	if (c->owed_len) {
		out[n] = (struct iovec){c->owed, c->owed_len};
		kind[n++] = OWED;
	}
	size_t at = 0, next = 0;
	for (int i = 0; i < iovcnt; i++) {
		char *b = iov[i].iov_base;
		size_t len = iov[i].iov_len, off = 0;
		while (next < count && points[next] <= at + len) {
			size_t cut = points[next] - at;
			if (cut > off) {
				out[n] = (struct iovec){b + off, cut - off};
				kind[n++] = APP;
			}
			out[n] = (struct iovec){header, header_len};
			kind[n++] = ADDED;
			off = cut;
			next++;
		}
		if (len > off) {
			out[n] = (struct iovec){b + off, len - off};
			kind[n++] = APP;
		}
		at += len;
	}
	return n;
}

/* Maps r bytes the kernel took back: the application's bytes among them,
 * and what of a started header is still owed. Moves the parser (to after,
 * when all total bytes of the application went). */
static size_t took(struct conn *c, const struct iovec *iov, int iovcnt, const struct iovec *out,
		   const uint8_t *kind, int n, size_t r, size_t total,
		   const struct http_response_parser *after)
{
	size_t app = 0;
	bool after_added = false;
	uint8_t owed_len = 0;
	char owed[sizeof(c->owed)];
	for (int k = 0; k < n; k++) {
		size_t len = out[k].iov_len, take = r < len ? r : len;
		if (kind[k] == APP) {
			app += take;
			after_added &= take == 0;
		} else if (take > 0) {
			after_added = kind[k] == ADDED;
		}
		r -= take;
		if (take < len) {
			/* A header piece once started, or owed, must be finished. */
			if (kind[k] == OWED || (kind[k] == ADDED && take > 0)) {
				owed_len = (uint8_t)(len - take);
				memcpy(owed, (char *)out[k].iov_base + take, owed_len);
			}
			break;
		}
	}
	if (app == total)
		c->response = *after;
	else
		advance(&c->response, iov, iovcnt, app);
	if (after_added)
		http_response_added(&c->response);
	memcpy(c->owed, owed, owed_len);
	c->owed_len = owed_len;
	return app;
}

ssize_t conn_output(int fd, const struct iovec *iov, int iovcnt, int flags, bool use_send,
		    const struct msghdr *msg)
{
	struct conn *c = conn_of(fd);
	bool enabled = shim.config.response_header_len > 0 && iovcnt >= 0 && iovcnt <= IOV_MAX &&
		       (iovcnt == 0 || iov);
	if (!enabled || !out_lock(c)) {
		if (enabled)
			http_response_stop(&c->response); /* another writer inside */
		return send_pieces(fd, (struct iovec *)iov, iovcnt, flags, use_send, msg);
	}
	size_t total = 0;
	for (int i = 0; i < iovcnt; i++)
		total += iov[i].iov_len;

	for (int attempt = 0;; attempt++) {
		if (http_response_stopped(&c->response) && c->owed_len == 0) {
			out_unlock(c);
			return send_pieces(fd, (struct iovec *)iov, iovcnt, flags, use_send, msg);
		}
		size_t points[MAX_POINTS];
		char header[sizeof(c->owed)];
		struct http_response_parser after;
		size_t count = plan(&c->response, iov, iovcnt, points, MAX_POINTS, &after);
		size_t header_len = count ? header_text(fd, header) : 0;
		if (header_len == 0)
			count = 0;
		int max_pieces = iovcnt + 2 * (int)count + 1;
		if (max_pieces > IOV_MAX) {
			http_response_stop(&c->response);
			continue;
		}
		struct iovec out[max_pieces];
		uint8_t kind[max_pieces];
		int n = build(c, iov, iovcnt, points, count, header, header_len, out, kind);
		ssize_t r = send_pieces(fd, out, n, flags, use_send, msg);
		if (r < 0) {
			int saved = errno;
			out_unlock(c);
			errno = saved;
			return r;
		}
		size_t app = took(c, iov, iovcnt, out, kind, n, (size_t)r, total, &after);
		/* Only owed or added bytes went out: try again for the
		 * application's own (a full non-blocking socket says EAGAIN). */
		if (app > 0 || total == 0 || attempt == 3) {
			out_unlock(c);
			if (app == 0 && total > 0) {
				errno = EAGAIN;
				return -1;
			}
			return (ssize_t)app;
		}
	}
}

bool conn_output_before_sendfile(int fd)
{
	struct conn *c = conn_of(fd);
	if (c->owed_len == 0 || !out_lock(c))
		return true;
	while (c->owed_len) {
		ssize_t r = real.write(fd, c->owed, c->owed_len);
		if (r <= 0) {
			if (r < 0 && errno == EINTR)
				continue;
			int saved = errno;
			out_unlock(c);
			errno = r < 0 ? saved : EAGAIN;
			return false;
		}
		memmove(c->owed, c->owed + r, c->owed_len - (size_t)r);
		c->owed_len = (uint8_t)(c->owed_len - (size_t)r);
	}
	out_unlock(c);
	return true;
}

void conn_output_sendfile_done(int fd, ssize_t r)
{
	struct conn *c = conn_of(fd);
	if (r > 0 && out_lock(c)) {
		http_response_skip(&c->response, (uint64_t)r);
		out_unlock(c);
	}
}
