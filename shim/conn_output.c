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
#include <sys/ioctl.h>

#include "conn_table.h"
#include "fork_hot.h"
#include "insert_output.h"
#include "request_table.h"
#include "shim_init.h"
#include "thread_ctx.h"

static void advance(struct http_response_parser *p, const struct iovec *iov, int iovcnt,
		    size_t n)
{
	for (int i = 0; i < iovcnt && n > 0; i++) {
		size_t part = iov[i].iov_len < n ? iov[i].iov_len : n;
		http_response_advance(p, iov[i].iov_base, part);
		n -= part;
	}
}

/* Where this write's bytes need the header: absolute offsets in ins->at.
 * *after is the parser past all of them (what it becomes if they all go). */
static void plan(const struct http_response_parser *p, const struct iovec *iov, int iovcnt,
		 struct insertion *ins, struct http_response_parser *after)
{
	*after = *p;
	size_t count = 0, base = 0;
	for (int i = 0; i < iovcnt && !http_response_stopped(after); i++) {
		size_t found = http_response_scan(after, iov[i].iov_base, iov[i].iov_len,
						  ins->at + count, INSERT_POINTS_MAX - count);
		for (size_t k = count; k < count + found; k++)
			ins->at[k] += base;
		count += found;
		base += iov[i].iov_len;
	}
	ins->count = count;
}

/* "Name: id\r\n" for the current request of connection c, the one being
 * written; 0 if it has none. */
static FORK_PATH size_t header_text(const struct conn *c, char out[CONN_OWED_MAX])
{
	_Static_assert(CONFIG_MAX_HEADER_NAME + 2 + REQUEST_ID_MAX + 2 <= CONN_OWED_MAX,
		       "the id is copied to its place after any name");
	_Static_assert(sizeof(shim.config.response_header) <= CONN_OWED_MAX,
		       "the name is copied with its whole buffer");
	size_t n = shim.config.response_header_len;
	/* The name's whole buffer (one copy of a size known here), then the id
	 * straight to its place after the name and ": ", over the rest of it
	 * (request_table_get may write up to REQUEST_ID_MAX bytes there). */
	memcpy(out, shim.config.response_header, sizeof(shim.config.response_header));
	size_t id_len = request_table_get(conn_entry_request(c), out + n + 2);
	if (id_len == 0)
		return 0;
	out[n++] = ':';
	out[n++] = ' ';
	n += id_len;
	out[n++] = '\r';
	out[n++] = '\n';
	return n;
}

/* Bytes about to be written on c (its write side locked) begin after the
 * final response to its current request was written whole, with no request
 * head read since: a response to a request the shim did not see (body bytes
 * the server read as one), or bytes of none. The stream is lost: not the
 * answered request's id in their header, nor on what follows. */
static __attribute__((noinline, cold)) void answered_again(struct conn *c)
{
	conn_mark_lost(c);
}

static bool out_lock(struct conn *c)
{
	uint32_t expected = 0;
	return atomic_compare_exchange_strong_explicit(&c->out_busy, &expected, (uint32_t)ctx_tid(),
						       memory_order_acquire, memory_order_relaxed);
}

static void out_unlock(struct conn *c)
{
	atomic_store_explicit(&c->out_busy, 0, memory_order_release);
}

/* Connection c, whose entry is holder's (conn_fd), owes these. */
static struct owed_bytes owed_of(int holder, struct conn *c)
{
	return (struct owed_bytes){&c->owed_len, conn_owed(holder), CONN_OWED_MAX};
}

/* Bytes queued on fd, unread by the program (1 if it cannot tell). */
static int queued_on(int fd)
{
	int queued;
	return ioctl(fd, FIONREAD, &queued) == 0 ? queued : 1;
}

/* After bytes of joined connection c went out unchanged (c's write side
 * locked): a write that ended exactly after a final response, begun while
 * nothing was queued (every byte its client had sent was read, and what
 * comes next is sent after it), lets the next bytes read open the stream;
 * any other write puts that off (enum join_state). A stream that does not
 * parse as responses is lost. */
static void watch_for_boundary(struct conn *c, bool whole, int queued_before)
{
	if (http_response_stopped(&c->response))
		conn_mark_lost(c);
	uint8_t next = whole && queued_before == 0 && http_response_between(&c->response)
			       ? JOIN_AWAIT_REQUEST
			       : JOIN_AWAIT_RESPONSE;
	uint8_t was = atomic_load_explicit(&c->join, memory_order_relaxed);
	while (was != JOIN_OPEN && !atomic_compare_exchange_weak(&c->join, &was, next))
		;
}

/* A write on a connection joined mid-stream: the bytes go out as the
 * program wrote them (no header is added on such a connection), and until
 * its stream opens the parser follows them. */
static ssize_t output_joined(int fd, struct conn *c, const struct iovec *iov, int iovcnt,
			     int flags, bool use_send, const struct msghdr *msg)
{
	if (atomic_load_explicit(&c->join, memory_order_acquire) == JOIN_OPEN)
		return insert_send_plain(fd, iov, iovcnt, flags, use_send, msg);
	int queued = queued_on(fd);
	ssize_t r = insert_send_plain(fd, iov, iovcnt, flags, use_send, msg);
	int saved = errno;
	if (!out_lock(c)) {
		conn_mark_lost(c);
	} else {
		size_t total = 0;
		for (int i = 0; i < iovcnt; i++)
			total += iov[i].iov_len;
		if (r > 0)
			advance(&c->response, iov, iovcnt, (size_t)r);
		watch_for_boundary(c, r > 0 && (size_t)r == total, queued);
		out_unlock(c);
	}
	errno = saved;
	return r;
}

FORK_PATH ssize_t conn_output(int fd, const struct iovec *iov, int iovcnt, int flags, bool use_send,
			      const struct msghdr *msg)
{
	int holder = conn_fd(fd);
	struct conn *c = conn_entry(holder);
	if (unlikely(atomic_load_explicit(&c->tls, memory_order_relaxed)))
		return insert_send_plain(fd, iov, iovcnt, flags, use_send, msg); /* records */
	if (unlikely(atomic_load_explicit(&c->join, memory_order_acquire) != JOIN_NONE) &&
	    iovcnt >= 0 && iovcnt <= IOV_MAX && (iovcnt == 0 || iov))
		return output_joined(fd, c, iov, iovcnt, flags, use_send, msg);
	bool enabled = shim.config.response_header_len > 0 && iovcnt >= 0 && iovcnt <= IOV_MAX &&
		       (iovcnt == 0 || iov);
	if (!enabled || !out_lock(c)) {
		if (enabled)
			http_response_stop(&c->response); /* another writer inside */
		return insert_send_plain(fd, iov, iovcnt, flags, use_send, msg);
	}
	size_t total = 0;
	for (int i = 0; i < iovcnt; i++)
		total += iov[i].iov_len;
	if (unlikely(total > 0 && conn_answered_whole(c)))
		answered_again(c);
	struct owed_bytes owed = owed_of(holder, c);

	for (int attempt = 0;; attempt++) {
		if (http_response_stopped(&c->response) && c->owed_len == 0) {
			out_unlock(c);
			return insert_send_plain(fd, iov, iovcnt, flags, use_send, msg);
		}
		char header[CONN_OWED_MAX];
		struct insertion ins;
		struct http_response_parser after;
		plan(&c->response, iov, iovcnt, &ins, &after);
		size_t header_len = ins.count && !shim.detaching ? header_text(c, header) : 0;
		if (header_len == 0)
			ins.count = 0;
		for (size_t k = 0; k < ins.count; k++) {
			ins.text[k] = header;
			ins.len[k] = header_len;
		}
		struct insert_result res;
		ssize_t r = insert_send(fd, iov, iovcnt, flags, use_send, msg, &ins, &owed, &res);
		if (unlikely(r < 0)) {
			int saved = errno;
			out_unlock(c);
			errno = saved;
			return r;
		}
		if (likely(res.app == total))
			c->response = after;
		else
			advance(&c->response, iov, iovcnt, res.app);
		if (res.after_added)
			http_response_added(&c->response);
		/* Only owed or added bytes went out: try again for the
		 * application's own (a full non-blocking socket says EAGAIN). */
		if (likely(res.app > 0 || total == 0 || attempt == 3)) {
			ctx_note_written(holder, res.app > 0 && c->owed_len == 0 &&
							 !atomic_load_explicit(&c->lost, memory_order_relaxed) &&
							 http_response_between(&c->response));
			out_unlock(c);
			if (unlikely(res.app == 0 && total > 0)) {
				errno = EAGAIN;
				return -1;
			}
			return (ssize_t)res.app;
		}
	}
}

FORK_PATH bool conn_output_before_sendfile(int fd)
{
	int holder = conn_fd(fd);
	struct conn *c = conn_entry(holder);
	if (c->owed_len == 0 || conn_is_tls(fd) || !out_lock(c))
		return true;
	struct owed_bytes owed = owed_of(holder, c);
	bool paid = insert_pay_owed(fd, &owed);
	int saved = errno;
	out_unlock(c);
	errno = saved;
	return paid;
}

FORK_PATH void conn_output_sendfile_done(int fd, ssize_t r)
{
	struct conn *c = conn_of(fd);
	if (r > 0 && !conn_is_tls(fd) && out_lock(c)) {
		http_response_skip(&c->response, (uint64_t)r);
		/* What was queued before sendfile began is not known here: a
		 * response that ends with it opens nothing. */
		uint8_t join = atomic_load_explicit(&c->join, memory_order_relaxed);
		if (join != JOIN_NONE && join != JOIN_OPEN)
			watch_for_boundary(c, true, 1);
		out_unlock(c);
	}
}

LOOP_PATH bool conn_output_response_done(int fd)
{
	if (shim.config.response_header_len == 0)
		return true; /* the responses are not followed: answered is all */
	struct conn *c = conn_of(fd);
	if (!out_lock(c))
		return false; /* a write is inside one */
	bool done = conn_response_over(c);
	out_unlock(c);
	return done;
}

/* The response stream of a TLS connection, for insert_send_tls: stream is
 * its entry, struct conn. */
static size_t tls_response_plan(void *stream, const char *buf, size_t n, char *text,
				size_t *text_len)
{
	struct conn *c = stream;
	size_t at;
	if (http_response_plan(&c->response, buf, n, &at, 1) == 1 && !shim.detaching &&
	    (*text_len = header_text(c, text)) > 0)
		return at;
	return n;
}

static void tls_response_advance(void *stream, const char *buf, size_t n)
{
	http_response_advance(&((struct conn *)stream)->response, buf, n);
}

static void tls_response_added(void *stream)
{
	http_response_added(&((struct conn *)stream)->response);
}

static void tls_response_stop(void *stream)
{
	http_response_stop(&((struct conn *)stream)->response);
}

ssize_t conn_output_tls(int fd, struct tls_sender *to, const void *buf, size_t n)
{
	int holder = conn_fd(fd);
	struct conn *c = conn_entry(holder);
	bool enabled = n > 0 && conn_responses_followed(c);
	/* Its write side is kept only while it is flagged TLS: conn_tls_begin
	 * flagged it before this write, unless a new connection took the
	 * entry since. */
	if (!enabled || !atomic_load_explicit(&c->tls, memory_order_relaxed) || !out_lock(c)) {
		if (enabled)
			http_response_stop(&c->response); /* another writer inside */
		return to->send(to->ssl, buf, n);
	}
	if (unlikely(conn_answered_whole(c)))
		answered_again(c);
	struct conn_tls *tls = conn_tls(holder);
	tls->ssl = to->ssl;
	struct tls_planner plan = {tls_response_plan, tls_response_advance, tls_response_added,
				   tls_response_stop, c};
	struct owed_bytes owed = owed_of(holder, c);
	ssize_t r = insert_send_tls(to, &plan, &owed, &tls->sent, buf, n);
	int saved = errno;
	out_unlock(c);
	errno = saved;
	return r;
}

bool conn_output_tls_before_sendfile(int fd, struct tls_sender *to)
{
	int holder = conn_fd(fd);
	struct conn *c = conn_entry(holder);
	if (c->owed_len == 0 || !out_lock(c))
		return true;
	struct owed_bytes owed = owed_of(holder, c);
	bool paid = insert_pay_owed_tls(to, &owed);
	int saved = errno;
	out_unlock(c);
	errno = saved;
	return paid;
}

void conn_output_tls_sendfile_done(int fd, ssize_t r)
{
	struct conn *c = conn_of(fd);
	if (r > 0 && out_lock(c)) {
		http_response_skip(&c->response, (uint64_t)r);
		out_unlock(c);
	}
}

void conn_output_tls_end(int fd, const void *ssl)
{
	int holder = conn_fd(fd);
	struct conn *c = conn_entry(holder);
	if (out_lock(c)) {
		/* Only the object that wrote the connection: one freed after
		 * its socket was closed names a descriptor that may be another
		 * connection's now, with its own bytes owed. */
		struct conn_tls *tls = conn_tls(holder);
		if (atomic_load_explicit(&c->tls, memory_order_relaxed) && tls->ssl == ssl) {
			c->owed_len = 0;
			*tls = (struct conn_tls){0};
		}
		out_unlock(c);
	}
}
