/*
 * insert_output.c - application bytes plus added text in one system call,
 * and what of them the kernel took.
 *
 * Runs inside write hooks under the caller's per-stream try-lock. Never
 * allocates; must never report more of the application's bytes as written
 * than the kernel took, nor lose a byte of added text once begun.
 */
#include "insert_output.h"

#include <errno.h>
#include <limits.h>
#include <string.h>

#include "fork_hot.h"
#include "shim_init.h"

enum piece_kind { APP, ADDED, OWED };

/* Whether a write of iovcnt pieces with count insertions stays within
 * IOV_MAX pieces (the owed bytes, the application's, the added texts). */
static bool insert_fits(int iovcnt, size_t count)
{
	return (size_t)iovcnt + 2 * count + 1 <= IOV_MAX;
}

FORK_PATH ssize_t
insert_send_plain(int fd, const struct iovec *iov, int iovcnt, int flags, bool use_send,
		  const struct msghdr *msg)
{
	if (!use_send)
		return real.writev(fd, iov, iovcnt);
	struct msghdr m = {0};
	if (msg)
		m = *msg;
	m.msg_iov = (struct iovec *)iov;
	m.msg_iovlen = (size_t)iovcnt;
	return real.sendmsg(fd, &m, flags);
}

/* The usual write has at most this many buffers: a response's head and
 * its body in two, as most servers write them, or a few more. */
#define USUAL_IOVS 4

/* Whether a write is the usual one: at most USUAL_IOVS buffers, nothing
 * owed, the header at one point in the first. */
static bool usual_write(const struct owed_bytes *owed, const struct iovec *iov, int iovcnt,
			const struct insertion *ins)
{
	return iovcnt >= 1 && iovcnt <= USUAL_IOVS && ins->count == 1 && *owed->len == 0 &&
	       ins->at[0] <= iov[0].iov_len;
}

/* What build makes of the usual write (usual_write), the same pieces: the
 * first buffer cut at the header's point, then the other buffers but the
 * empty ones. At most USUAL_PIECES pieces. */
#define USUAL_PIECES (USUAL_IOVS + 2)
static int build_usual(const struct iovec *iov, int iovcnt, const struct insertion *ins,
		       struct iovec *out, uint8_t *kind, size_t *app, size_t *all)
{
	char *b = iov[0].iov_base;
	size_t len = iov[0].iov_len, cut = ins->at[0];
	int n = 0;
	if (cut > 0) {
		out[n] = (struct iovec){b, cut};
		kind[n++] = APP;
	}
	out[n] = (struct iovec){(void *)ins->text[0], ins->len[0]};
	kind[n++] = ADDED;
	if (len > cut) {
		out[n] = (struct iovec){b + cut, len - cut};
		kind[n++] = APP;
	}
	for (int i = 1; i < iovcnt; i++) {
		if (iov[i].iov_len == 0)
			continue;
		out[n] = iov[i];
		kind[n++] = APP;
		len += iov[i].iov_len;
	}
	*app = len;
	*all = len + ins->len[0];
	return n;
}

/* The pieces of one attempt: what is owed, then the application's bytes
 * with the added text at each point. Returns their count; *app is the
 * application's bytes, *all the bytes of every piece. */
static int build(const struct owed_bytes *owed, const struct iovec *iov, int iovcnt,
		 const struct insertion *ins, struct iovec *out, uint8_t *kind, size_t *app,
		 size_t *all)
{
	int n = 0;
	size_t extra = *owed->len;
	if (*owed->len) {
		out[n] = (struct iovec){owed->buf, *owed->len};
		kind[n++] = OWED;
	}
	size_t at = 0, next = 0;
	for (int i = 0; i < iovcnt; i++) {
		char *b = iov[i].iov_base;
		size_t len = iov[i].iov_len, off = 0;
		while (next < ins->count && ins->at[next] <= at + len) {
			size_t cut = ins->at[next] - at;
			if (cut > off) {
				out[n] = (struct iovec){b + off, cut - off};
				kind[n++] = APP;
			}
			out[n] = (struct iovec){(void *)ins->text[next], ins->len[next]};
			kind[n++] = ADDED;
			extra += ins->len[next];
			off = cut;
			next++;
		}
		if (len > off) {
			out[n] = (struct iovec){b + off, len - off};
			kind[n++] = APP;
		}
		at += len;
	}
	*app = at;
	*all = at + extra;
	return n;
}

/* Maps r bytes the kernel took back to the application's, and keeps what
 * of a begun (or owed) added text is still owed. */
static FORK_PATH void took(const struct iovec *out, const uint8_t *kind, int n, size_t r,
			   struct owed_bytes *owed, struct insert_result *res)
{
	size_t rest = 0;
	const char *rest_at = NULL;
	res->app = 0;
	res->after_added = false;
	for (int k = 0; k < n; k++) {
		size_t len = out[k].iov_len, take = r < len ? r : len;
		if (kind[k] == APP) {
			res->app += take;
			res->after_added &= take == 0;
		} else if (take > 0) {
			res->after_added = kind[k] == ADDED;
		}
		r -= take;
		if (take < len) {
			/* Added text once begun, or owed, must be finished. */
			if (kind[k] == OWED || (kind[k] == ADDED && take > 0)) {
				rest = len - take;
				rest_at = (const char *)out[k].iov_base + take;
			}
			break;
		}
	}
	if (rest)
		memmove(owed->buf, rest_at, rest);
	*owed->len = (uint16_t)rest;
}

/* n owed bytes went out. */
static void owed_paid(struct owed_bytes *owed, size_t n)
{
	memmove(owed->buf, owed->buf + n, *owed->len - n);
	*owed->len = (uint16_t)(*owed->len - n);
}

/* More pieces than one call takes: what is owed goes alone first, then the
 * application's bytes as they came (this write adds nothing). */
static ssize_t send_without_adding(int fd, const struct iovec *iov, int iovcnt, int flags,
				   bool use_send, const struct msghdr *msg,
				   struct owed_bytes *owed, struct insert_result *res)
{
	res->app = 0;
	res->after_added = false;
	if (*owed->len) {
		struct iovec o = {owed->buf, *owed->len};
		ssize_t r = insert_send_plain(fd, &o, 1, flags, use_send, NULL);
		if (r < 0)
			return r;
		owed_paid(owed, (size_t)r);
		if (*owed->len)
			return 0; /* none of the application's bytes went */
	}
	ssize_t r = insert_send_plain(fd, iov, iovcnt, flags, use_send, msg);
	if (r >= 0)
		res->app = (size_t)r;
	return r;
}

/* Sends the n pieces built (app of the application's bytes, all in all)
 * and maps what the kernel took back. */
static inline __attribute__((always_inline)) ssize_t
send_built(int fd, const struct iovec *out, const uint8_t *kind, int n, size_t app, size_t all,
	   int flags, bool use_send, const struct msghdr *msg, struct owed_bytes *owed,
	   struct insert_result *res)
{
	ssize_t r = insert_send_plain(fd, out, n, flags, use_send, msg);
	if (r >= 0 && (size_t)r == all && n > 0) {
		/* The usual case: the kernel took every piece. */
		res->app = app;
		res->after_added = kind[n - 1] == ADDED;
		*owed->len = 0;
	} else if (r >= 0) {
		took(out, kind, n, (size_t)r, owed, res);
	}
	return r;
}

/* insert_send of any write but the usual one, its pieces on the stack as
 * many as it needs. */
static FORK_PATH __attribute__((noinline)) ssize_t
send_pieces(int fd, const struct iovec *iov, int iovcnt, int flags, bool use_send,
	    const struct msghdr *msg, const struct insertion *ins, struct owed_bytes *owed,
	    struct insert_result *res)
{
	int max_pieces = iovcnt + 2 * (int)ins->count + 1;
	struct iovec out[max_pieces];
	uint8_t kind[max_pieces];
	size_t app, all;
	int n = build(owed, iov, iovcnt, ins, out, kind, &app, &all);
	return send_built(fd, out, kind, n, app, all, flags, use_send, msg, owed, res);
}

FORK_PATH ssize_t
insert_send(int fd, const struct iovec *iov, int iovcnt, int flags, bool use_send,
	    const struct msghdr *msg, const struct insertion *ins, struct owed_bytes *owed,
	    struct insert_result *res)
{
	if ((ins->count == 0 && *owed->len == 0) || !insert_fits(iovcnt, ins->count))
		return send_without_adding(fd, iov, iovcnt, flags, use_send, msg, owed, res);
	if (!usual_write(owed, iov, iovcnt, ins))
		return send_pieces(fd, iov, iovcnt, flags, use_send, msg, ins, owed, res);
	struct iovec out[USUAL_PIECES];
	uint8_t kind[USUAL_PIECES];
	size_t app, all;
	int n = build_usual(iov, iovcnt, ins, out, kind, &app, &all);
	return send_built(fd, out, kind, n, app, all, flags, use_send, msg, owed, res);
}

bool insert_pay_owed(int fd, struct owed_bytes *owed)
{
	while (*owed->len) {
		ssize_t r = real.write(fd, owed->buf, *owed->len);
		if (r <= 0) {
			if (r < 0 && errno == EINTR)
				continue;
			if (r == 0)
				errno = EAGAIN;
			return false;
		}
		owed_paid(owed, (size_t)r);
	}
	return true;
}

/* From *done (the program's bytes of buf already out): owed bytes first,
 * then the program's up to the next planned text, the text (owed from
 * then on), and so on until buf's n bytes are out. Returns the last send's
 * result; *done is updated. */
static ssize_t tls_loop(const struct tls_sender *to, const struct tls_planner *plan,
			struct owed_bytes *owed, const char *buf, size_t n, size_t *done)
{
	ssize_t r = 1;
	for (;;) {
		if (*owed->len) {
			/* Always from the buffer's start: a retry after a
			 * failed send passes the same buffer and length. */
			r = to->send(to->ssl, owed->buf, *owed->len);
			if (r <= 0)
				return r;
			owed_paid(owed, (size_t)r);
			continue;
		}
		if (*done == n)
			return r;
		size_t text_len = 0;
		size_t chunk = plan->plan(plan->stream, buf + *done, n - *done, owed->buf, &text_len);
		if (chunk > 0) {
			r = to->send(to->ssl, buf + *done, chunk);
			if (r <= 0)
				return r;
			plan->advance(plan->stream, buf + *done, (size_t)r);
			*done += (size_t)r;
			if ((size_t)r < chunk)
				return r; /* a partial write */
		}
		if (text_len) {
			*owed->len = (uint16_t)text_len;
			plan->added(plan->stream);
		}
	}
}

ssize_t insert_send_tls(const struct tls_sender *to, const struct tls_planner *plan,
			struct owed_bytes *owed, uint32_t *sent, const void *buf, size_t n)
{
	size_t start = *sent;
	if (start > n) {
		/* Not the retry of the write that failed: what it still had
		 * to send is lost, and so is the stream. */
		plan->stop(plan->stream);
		start = 0;
	}
	size_t done = start;
	ssize_t r = tls_loop(to, plan, owed, buf, n, &done);
	*sent = 0;
	if (done == n && *owed->len == 0)
		r = (ssize_t)(n - (to->partial ? start : 0));
	else if (to->partial && done > start)
		r = (ssize_t)(done - start); /* the rest waits for the next write */
	else if (!to->partial)
		*sent = (uint32_t)done; /* the program will retry this write */
	return r;
}

bool insert_pay_owed_tls(const struct tls_sender *to, struct owed_bytes *owed)
{
	size_t done = 0;
	return tls_loop(to, NULL, owed, NULL, 0, &done) > 0;
}
