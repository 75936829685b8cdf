/*
 * client_output.c - the trace context added to outbound HTTP requests.
 *
 * Each outbound connection takes a slot from a fixed pool: a pausing
 * request parser over the bytes the application writes (it stops before
 * each header block's blank line, where the headers go), the added bytes
 * still owed, and a state word that is also its try-lock. A write plans on a copy of the parser,
 * renders the headers for each request head that ends in it (a new
 * parent-id each), sends everything in one call (insert_output.c) and moves
 * the parser past exactly the application's bytes the kernel took.
 *
 * The pool is mapped at the first outbound connection: a process that
 * makes none pays nothing for it.
 *
 * Runs inside write hooks: never allocates (but for that one mapping) or
 * blocks; a slot another thread
 * holds means the connection is left alone for good, never a torn request.
 */
#include "client_output.h"

#include <errno.h>
#include <limits.h>
#include <netinet/in.h>
#include <stdatomic.h>
#include <string.h>

#include "conn_table.h"
#include "insert_output.h"
#include "map_once.h"
#include "raw_syscall.h"
#include "request_table.h"
#include "shim_init.h"
#include "thread_ctx.h"

/* "traceparent: ...", "tracestate: ..." and "Name: id", each with CRLF. */
#define ADDED_MAX (13 + TRACEPARENT_LEN + 2 + 12 + TRACESTATE_MAX + 2 + \
		   CONFIG_MAX_HEADER_NAME + 2 + REQUEST_ID_MAX + 2)

/* A slot's life: FREE, IDLE while a connection holds it, BUSY while a write
 * on it is inside; a connection closed during a write leaves it BUSY_GONE
 * and the write frees it on its way out. */
enum slot_state { SLOT_FREE, SLOT_IDLE, SLOT_BUSY, SLOT_BUSY_GONE };

struct client {
	_Atomic uint32_t state;
	_Atomic bool lost;     /* written by two threads at once: left alone */
	bool began;            /* its socket was written */
	_Atomic bool tls;      /* TLS: its socket carries records, its requests
				  go through the library (client_output_tls) */
	uint16_t owed_len;
	uint32_t tls_sent;     /* of a TLS write that failed and will be retried */
	const void *tls_ssl;   /* the TLS object whose write owes or retries */
	char owed[ADDED_MAX];
	struct http_parser parser;
};

static void *_Atomic clients; /* CLIENT_SLOTS of struct client */
static _Atomic uint32_t next_slot;

static bool is_tcp_stream(int fd, const struct sockaddr *addr)
{
	return addr && (addr->sa_family == AF_INET || addr->sa_family == AF_INET6) &&
	       is_stream_socket(fd);
}

static bool move(struct client *cl, uint32_t from, uint32_t to)
{
	return atomic_compare_exchange_strong_explicit(&cl->state, &from, to,
						       memory_order_acq_rel, memory_order_relaxed);
}

static bool out_lock(struct client *cl)
{
	return move(cl, SLOT_IDLE, SLOT_BUSY);
}

static void out_unlock(struct client *cl)
{
	if (!move(cl, SLOT_BUSY, SLOT_IDLE))
		atomic_store_explicit(&cl->state, SLOT_FREE, memory_order_release); /* gone */
}

/* The pool, NULL before the first outbound connection. */
static struct client *pool_now(void)
{
	return atomic_load_explicit(&clients, memory_order_acquire);
}

/* The pool, mapped if it was not; NULL if mapping fails. */
static struct client *pool(void)
{
	return map_once(&clients, CLIENT_SLOTS * sizeof(struct client));
}

void client_connected(int fd, const struct sockaddr *addr)
{
	if (!shim.config.propagate || (unsigned)fd >= FD_LIMIT ||
	    (fd_class(fd) & (FD_CONN | FD_LOG | FD_SYSLOG)) || raw_getpid() != process.pid)
		return;
	if (!is_tcp_stream(fd, addr))
		return;
	client_forget(fd);
	struct fd_state *st = fd_state_made(fd);
	struct client *all = st ? pool() : NULL;
	if (!all)
		return;
	uint32_t start = atomic_fetch_add_explicit(&next_slot, 1, memory_order_relaxed);
	for (uint32_t i = 0; i < CLIENT_SLOTS; i++) {
		uint32_t k = (start + i) % CLIENT_SLOTS;
		struct client *cl = &all[k];
		/* Taken BUSY: set up before anyone else can lock it. */
		if (!move(cl, SLOT_FREE, SLOT_BUSY))
			continue;
		http_parser_init_pausing(&cl->parser, &shim.matcher);
		cl->owed_len = 0;
		cl->began = false;
		atomic_store_explicit(&cl->tls, false, memory_order_relaxed);
		cl->tls_sent = 0;
		cl->tls_ssl = NULL;
		atomic_store_explicit(&cl->lost, false, memory_order_relaxed);
		atomic_store_explicit(&cl->state, SLOT_IDLE, memory_order_release);
		atomic_store_explicit(&st->client, (uint16_t)(k + 1), memory_order_release);
		atomic_fetch_or_explicit(&st->flags, FD_CLIENT, memory_order_relaxed);
		return;
	}
}

void client_forget(int fd)
{
	struct fd_state *st = fd_state(fd);
	if (!st)
		return;
	atomic_fetch_and_explicit(&st->flags, (uint8_t)~FD_CLIENT, memory_order_relaxed);
	uint16_t slot = atomic_exchange_explicit(&st->client, 0, memory_order_acq_rel);
	if (slot == 0)
		return;
	/* A write still inside frees the slot when it leaves. */
	struct client *cl = &pool_now()[slot - 1];
	while (!move(cl, SLOT_IDLE, SLOT_FREE) && !move(cl, SLOT_BUSY, SLOT_BUSY_GONE))
		;
}

static struct owed_bytes owed_of(struct client *cl)
{
	return (struct owed_bytes){&cl->owed_len, cl->owed, sizeof(cl->owed)};
}

static struct client *client_at(int fd)
{
	const struct fd_state *st = fd_state(fd);
	uint16_t slot = st ? atomic_load_explicit(&st->client, memory_order_acquire) : 0;
	return slot ? &pool_now()[slot - 1] : NULL;
}

static char *put(char *o, const void *s, size_t n)
{
	memcpy(o, s, n);
	return o + n;
}

/* What the request being written is part of. */
struct outbound_ctx {
	size_t id_len;
	size_t tracestate_len;
	bool traced;
	struct trace_ctx trace;
	char id[REQUEST_ID_MAX];
	char tracestate[TRACESTATE_MAX];
};

static bool outbound_ctx_load(struct outbound_ctx *o)
{
	uint64_t request = ctx_certain_request();
	o->id_len = request_table_get(request, o->id);
	o->traced = o->id_len && request_table_trace(request, &process.ids, &o->trace);
	o->tracestate_len = o->traced ? request_table_tracestate(request, o->tracestate) : 0;
	return o->id_len > 0;
}

/* The headers one outbound request gets, given those it has; returns their
 * length (at most ADDED_MAX). */
static size_t render(struct outbound_ctx *o, uint32_t seen, char *out)
{
	char *p = out;
	if (o->traced && !(seen & (1u << M_TRACEPARENT | 1u << M_TRACESTATE))) {
		char parent[16], tp[TRACEPARENT_LEN];
		span_id_generate(&process.ids, parent);
		traceparent_format(&o->trace, parent, tp);
		p = put(p, "traceparent: ", 13);
		p = put(p, tp, sizeof(tp));
		p = put(p, "\r\n", 2);
		if (o->tracestate_len) {
			p = put(p, "tracestate: ", 12);
			p = put(p, o->tracestate, o->tracestate_len);
			p = put(p, "\r\n", 2);
		}
	}
	size_t name_len = shim.config.response_header_len;
	if (name_len && !(seen & 1u << shim.matcher.sent_id)) {
		p = put(p, shim.config.response_header, name_len);
		p = put(p, ": ", 2);
		p = put(p, o->id, o->id_len);
		p = put(p, "\r\n", 2);
	}
	return (size_t)(p - out);
}

/* The write, planned: headers for each head that ends in it. Under the
 * slot's lock; unlocks it. Kept out of client_output so that writes on
 * connections left alone (not HTTP) do not pay for its stack. */
static __attribute__((noinline)) ssize_t planned_output(struct client *cl, int fd,
							 const struct iovec *iov, int iovcnt,
							 int flags, bool use_send,
							 const struct msghdr *msg)
{
	size_t total = 0;
	for (int i = 0; i < iovcnt; i++)
		total += iov[i].iov_len;
	struct owed_bytes owed = owed_of(cl);
	struct outbound_ctx ctx;
	bool have_ctx = false, loaded = false;

	for (int attempt = 0;; attempt++) {
		struct insertion ins;
		uint32_t seen[INSERT_POINTS_MAX];
		struct http_parser after;
		ins.count = http_parser_plan(&cl->parser, iov, iovcnt, ins.at, seen,
					     INSERT_POINTS_MAX, &after);
		if (ins.count && !loaded) {
			have_ctx = outbound_ctx_load(&ctx);
			loaded = true;
		}
		/* The heads' texts, one after another; a head whose text no
		 * longer fits gets none. */
		char text[2 * ADDED_MAX];
		size_t kept = 0, used = 0;
		for (size_t k = 0; k < ins.count && have_ctx && sizeof(text) - used >= ADDED_MAX; k++) {
			size_t n = render(&ctx, seen[k], text + used);
			if (n == 0)
				continue;
			ins.at[kept] = ins.at[k];
			ins.text[kept] = text + used;
			ins.len[kept++] = n;
			used += n;
		}
		ins.count = have_ctx ? kept : 0;
		struct insert_result res;
		ssize_t r = insert_send(fd, iov, iovcnt, flags, use_send, msg, &ins, &owed, &res);
		if (r < 0) {
			int saved = errno;
			out_unlock(cl);
			errno = saved;
			return r;
		}
		if (res.app == total)
			cl->parser = after;
		else
			http_parser_advance(&cl->parser, iov, iovcnt, res.app);
		if (res.after_added)
			http_parser_added(&cl->parser);
		/* Only owed or added bytes went out: try again for the
		 * application's own (a full non-blocking socket says EAGAIN). */
		if (res.app > 0 || total == 0 || attempt == 3) {
			out_unlock(cl);
			if (res.app == 0 && total > 0) {
				errno = EAGAIN;
				return -1;
			}
			return (ssize_t)res.app;
		}
	}
}

/* Whether the first bytes written on cl's socket (iov, iovcnt) begin a TLS
 * handshake: then they, and all after them, are records. */
static bool begins_tls(struct client *cl, const struct iovec *iov, int iovcnt)
{
	for (int i = 0; i < iovcnt && !cl->began; i++) {
		if (iov[i].iov_len == 0)
			continue;
		cl->began = true;
		if (http_starts_tls(iov[i].iov_base, iov[i].iov_len))
			atomic_store_explicit(&cl->tls, true, memory_order_relaxed);
	}
	return atomic_load_explicit(&cl->tls, memory_order_relaxed);
}

ssize_t client_output(int fd, const struct iovec *iov, int iovcnt, int flags, bool use_send,
		      const struct msghdr *msg)
{
	struct client *cl = client_at(fd);
	bool usable = cl && iovcnt >= 0 && iovcnt <= IOV_MAX && (iovcnt == 0 || iov) &&
		      !atomic_load_explicit(&cl->lost, memory_order_relaxed);
	/* A TLS connection's records: the library's writes, made from inside
	 * client_output_tls too (which holds the slot). */
	if (usable && atomic_load_explicit(&cl->tls, memory_order_relaxed))
		return insert_send_plain(fd, iov, iovcnt, flags, use_send, msg);
	if (!usable || !out_lock(cl)) {
		if (usable)
			atomic_store_explicit(&cl->lost, true, memory_order_relaxed);
		return insert_send_plain(fd, iov, iovcnt, flags, use_send, msg);
	}
	if ((http_parser_stopped(&cl->parser) && cl->owed_len == 0) || begins_tls(cl, iov, iovcnt)) {
		out_unlock(cl);
		return insert_send_plain(fd, iov, iovcnt, flags, use_send, msg);
	}
	return planned_output(cl, fd, iov, iovcnt, flags, use_send, msg);
}

bool client_before_sendfile(int fd)
{
	struct client *cl = client_at(fd);
	if (!cl)
		return true;
	atomic_store_explicit(&cl->lost, true, memory_order_relaxed);
	if (!out_lock(cl))
		return true;
	struct owed_bytes owed = owed_of(cl);
	bool paid = insert_pay_owed(fd, &owed);
	int saved = errno;
	out_unlock(cl);
	errno = saved;
	return paid;
}

/* The request stream of a TLS outbound connection, for insert_send_tls. */
struct tls_request {
	struct client *cl;
	bool loaded, have_ctx;
	struct outbound_ctx ctx;
};

static size_t tls_request_plan(void *stream, const char *buf, size_t n, char *text,
			       size_t *text_len)
{
	struct tls_request *t = stream;
	struct iovec iov = {.iov_base = (void *)buf, .iov_len = n};
	size_t at;
	uint32_t seen;
	struct http_parser after;
	if (http_parser_plan(&t->cl->parser, &iov, 1, &at, &seen, 1, &after) != 1)
		return n;
	if (!t->loaded) {
		t->have_ctx = outbound_ctx_load(&t->ctx);
		t->loaded = true;
	}
	if (t->have_ctx && (*text_len = render(&t->ctx, seen, text)) > 0)
		return at;
	return n;
}

static void tls_request_advance(void *stream, const char *buf, size_t n)
{
	struct iovec iov = {.iov_base = (void *)buf, .iov_len = n};
	http_parser_advance(&((struct tls_request *)stream)->cl->parser, &iov, 1, n);
}

static void tls_request_added(void *stream)
{
	http_parser_added(&((struct tls_request *)stream)->cl->parser);
}

static void tls_request_stop(void *stream)
{
	atomic_store_explicit(&((struct tls_request *)stream)->cl->lost, true, memory_order_relaxed);
}

ssize_t client_output_tls(int fd, struct tls_sender *to, const void *buf, size_t n)
{
	struct client *cl = client_at(fd);
	bool usable = cl && n > 0 && !atomic_load_explicit(&cl->lost, memory_order_relaxed);
	if (!usable || !out_lock(cl)) {
		if (usable)
			atomic_store_explicit(&cl->lost, true, memory_order_relaxed);
		return to->send(to->ssl, buf, n);
	}
	/* A TLS session begun on a plain tunnel (a CONNECT to a proxy,
	 * then the handshake on the socket): its plaintext is a new HTTP
	 * stream, from its first byte. */
	if (!atomic_load_explicit(&cl->tls, memory_order_relaxed) && cl->owed_len == 0 &&
	    http_parser_in_tunnel(&cl->parser))
		http_parser_init_pausing(&cl->parser, &shim.matcher);
	/* Records on the socket from here, whatever its first bytes were. */
	cl->began = true;
	atomic_store_explicit(&cl->tls, true, memory_order_relaxed);
	cl->tls_ssl = to->ssl;
	ssize_t r;
	if (http_parser_stopped(&cl->parser) && cl->owed_len == 0) {
		r = to->send(to->ssl, buf, n);
	} else {
		struct tls_request stream = {.cl = cl};
		struct tls_planner plan = {tls_request_plan, tls_request_advance, tls_request_added,
					   tls_request_stop, &stream};
		struct owed_bytes owed = owed_of(cl);
		r = insert_send_tls(to, &plan, &owed, &cl->tls_sent, buf, n);
	}
	int saved = errno;
	out_unlock(cl);
	errno = saved;
	return r;
}

void client_output_tls_end(int fd, const void *ssl)
{
	struct client *cl = client_at(fd);
	if (cl && out_lock(cl)) {
		/* Only the object that wrote the slot's connection: one freed
		 * after its socket was closed names a descriptor that may be
		 * another connection's now, with its own bytes owed. */
		if (atomic_load_explicit(&cl->tls, memory_order_relaxed) && cl->tls_ssl == ssl) {
			cl->owed_len = 0;
			cl->tls_sent = 0;
			cl->tls_ssl = NULL;
		}
		out_unlock(cl);
	}
}
