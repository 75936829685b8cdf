/*
 * conn_table.h - what the shim knows about each file descriptor: whether it
 * is an accepted connection or a log descriptor, and for connections the
 * request stream parsed so far and the request currently on it.
 *
 * Indexed by fd number; fds at or above FD_LIMIT (2^20, 1,048,576) are
 * never tracked. Per-fd state lies in a flat table for the numbers below
 * FD_LOW, which nearly every process stays under, and in pages of FD_PAGE
 * numbers above it, each mapped the first time one of its numbers is given
 * state. Connection entries live in chunks of CONN_CHUNK fds, mapped the
 * first time a connection opens in them: a process pays memory for the
 * descriptor numbers its connections use, not for the table. Every fd flagged FD_CONN
 * has its chunk. An entry keeps its parser's state only; the text of a
 * head that arrives over several reads waits in a head_store slot.
 * A connection's state is guarded by a try-lock: a hook that finds it taken
 * (another thread, or a signal handler on this one) gives up on the stream
 * for good rather than wait, so no hook ever blocks here.
 */
#ifndef REQID_CONN_TABLE_H
#define REQID_CONN_TABLE_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#include "fork_hot.h"
#include "http_parser.h"
#include "http_response.h"
#include "request_table.h"

#define FD_LIMIT (1u << 20)
#define FD_PAGE 4096u
#ifndef FD_LOW /* a test build sets it lower, to run its pages in real servers */
#define FD_LOW 65536u
#endif
_Static_assert(FD_LOW % FD_PAGE == 0 && FD_LOW <= FD_LIMIT, "FD_LOW ends a page");
/* 512 entries of 88 bytes fill 11 pages exactly: no page holds entries
 * and owed bytes both (a page of entries touches no owed bytes' page). */
#define CONN_CHUNK 512

enum fd_flag {
	FD_CONN = 1, /* accepted connection */
	FD_LOG = 2,  /* log descriptor: lines written to it are enriched */
	FD_SYSLOG = 4, /* datagram socket to the syslog daemon: messages enriched */
	FD_CLIENT = 8, /* outbound TCP connection: requests get the trace */
	FD_ADOPT = 16, /* attached process: may be a connection accepted past
			  the shim; its first read finds out (attach.c).
			  Only the read hooks and fd_flags see it. */
};

/* A connection the program read from before the shim came in (attach,
 * REQID_JOIN_OPEN), joined mid-stream: its reads are not parsed until a
 * write of the program, begun while no byte was queued on it (the program
 * had read everything its client sent), ended exactly after a final
 * response; the bytes read next start a request, unless another write
 * comes first. Its responses never get the header. */
enum join_state {
	JOIN_NONE,	      /* followed from its start */
	JOIN_AWAIT_RESPONSE, /* bytes read go unparsed */
	JOIN_AWAIT_REQUEST,  /* a response ended, nothing queued: the next
				bytes read open the stream */
	JOIN_OPEN,	      /* its bytes are parsed (no header added) */
};

enum conn_kind {
	CONN_HTTP,   /* parsing requests */
	CONN_RAW,    /* first bytes were not HTTP: one id for the connection */
	CONN_DONE,   /* nothing more to parse (lost or tunnelled) */
};

/* busy first (a connection moving to another fd's entry takes everything
 * after it), then fields by size: 88 bytes, none of them padding (10,000
 * idle connections hold 0.84 MiB of them). What only a TLS connection's
 * writes need is kept apart (struct conn_tls). */
struct conn {
	_Atomic uint32_t busy;
	_Atomic uint32_t copies; /* other fds naming this connection */
	uint64_t request;    /* serial of the current request, 0 if none */
	_Atomic uint32_t line_buckets; /* written before line_live is set: a
					  close on another thread may end it */
	_Atomic uint32_t out_busy;  /* try-lock for the write side below and
				       struct conn_tls: the tid of the thread
				       inside, 0 if none */
	uint32_t head_slot;  /* head_store slot holding the parser's text, 0 if none */
	_Atomic int32_t certain_reader; /* tid of the thread that read the
					   current request and was certain of
					   it (thread_ctx.h), 0 if none */
	uint16_t owed_len;          /* bytes of an added header not yet sent (conn_owed) */
	_Atomic uint16_t pinned;    /* request_table_add's pin of the current request
				       until its response begins, 0 if none */
	_Atomic bool lost;   /* sticky: no more ids on this connection */
	uint8_t kind;
	bool head_pending;   /* a request began; its headers have not ended */
	_Atomic bool responded; /* bytes were written since the current request began */
	_Atomic uint8_t join; /* enum join_state */
	_Atomic bool tls;    /* a TLS connection: its socket carries records,
				its requests come through the TLS library's
				calls (hook_ssl.c) */
	bool began;          /* bytes were read from its socket */
	bool proxied;        /* its PROXY protocol header was read alone */
	_Atomic bool line_live; /* its request line is counted as live */
	_Atomic bool blind;  /* counted as an unseen stream (conn_went_blind) */
	_Atomic uint8_t line_logging; /* enum line_logging of the line counted
					 (line_live) */
	_Atomic bool order_pending; /* the current request's response began
				       and has not ended (log_order.h) */
	struct http_response_parser response;
	/* The request parser's first HTTP_PARSER_STATE_SIZE bytes: all of it
	 * between heads (see http_parser.h) */
	_Alignas(struct http_parser) unsigned char parsing[HTTP_PARSER_STATE_SIZE];
};
_Static_assert(sizeof(struct conn) == 88, "a connection's entry is 88 bytes");
_Static_assert(CONN_CHUNK * sizeof(struct conn) % 4096 == 0, "a chunk's entries end a page");

/* Whether the bytes written on c end exactly after a final response, or
 * can no longer be followed (its response parser stopped). */
static inline bool conn_response_over(const struct conn *c)
{
	return http_response_between(&c->response) || http_response_stopped(&c->response);
}

/* Whether c's responses are parsed as they are written (conn_output.c):
 * not when no header is added, nor on a connection joined mid-stream once
 * it opened. */
bool conn_responses_followed(const struct conn *c) __attribute__((visibility("hidden")));

/* Whether the bytes written on c so far end exactly after a final response
 * to its current request, with no request head read since: what is
 * written next, or read next of that request's body, belongs to no request
 * the shim has seen (the server answered without reading the body, and
 * may take the body's bytes for a request of its own). Read without the
 * write side's lock by a reader, as switched_protocols does: a response
 * written meanwhile is seen or not, and a reader that sees it loses the
 * stream, never gives an id. */
static inline bool conn_answered_whole(const struct conn *c)
{
	return atomic_load_explicit(&c->responded, memory_order_relaxed) &&
	       http_response_between(&c->response);
}

/* What the shim keeps for every fd, side by side so that the calls that
 * change a descriptor (accept, connect, dup2, close) touch one page for
 * all, not several: a forked child or its parent copies each page it
 * writes. */
struct fd_state {
	_Atomic uint32_t alias;  /* see conn_fd */
	_Atomic uint8_t flags;   /* enum fd_flag */
	_Atomic uint8_t generation; /* changes when fd stops naming its
				       connection (conn_generation) */
	_Atomic uint16_t client; /* outbound connection's slot + 1, 0: none
				    (client_output.c) */
};
_Static_assert(sizeof(struct fd_state) == 8, "a page holds 512 fds' states");
extern struct fd_state fd_states[FD_LOW] __attribute__((visibility("hidden")));
/* The pages of fds FD_LOW and up (FD_PAGE struct fd_state each), NULL until
 * mapped; the first FD_LOW / FD_PAGE are never used. */
extern struct fd_state *_Atomic fd_pages[FD_LIMIT / FD_PAGE] __attribute__((visibility("hidden")));

/* fd_state of an fd at or above FD_LOW, out of line: the hooks' inline
 * code stays as small as a flat table's. */
struct fd_state *fd_state_high(int fd) __attribute__((visibility("hidden")));

/* fd's state, or NULL: fd at or above FD_LIMIT, or on a page no fd of
 * which was ever given state (all its flags are 0 then). */
static inline struct fd_state *fd_state(int fd)
{
	if (__builtin_expect((unsigned)fd < FD_LOW, 1))
		return &fd_states[fd];
	return fd_state_high(fd);
}

/* fd_state_made of an fd at or above FD_LOW, out of line. */
struct fd_state *fd_state_made_high(int fd) __attribute__((visibility("hidden")));

/* fd's state, its page mapped if it was not; NULL if fd is at or above
 * FD_LIMIT or the mapping failed (fd then goes untracked). Inline for the
 * flat table: every process calls it at start (its log descriptors), and a
 * fork server's child for the connection it dup2()s onto stdio, and
 * neither maps a window of code for it. */
static inline struct fd_state *fd_state_made(int fd)
{
	if (__builtin_expect((unsigned)fd < FD_LOW, 1))
		return &fd_states[fd];
	return fd_state_made_high(fd);
}

/* One past the highest fd that may have state here or in another per-fd
 * table (epoll_map.c): scans of every fd stop there. At least FD_LOW. */
unsigned fd_state_end(void) __attribute__((visibility("hidden")));

/* Another per-fd table mapped room for fds below end. */
void fd_state_note_end(unsigned end) __attribute__((visibility("hidden")));

/* Every fd's state back to none, its pages given back to the kernel but
 * kept mapped (detach: nothing names a descriptor any more), and no entry
 * counts as an unseen stream (after request_table_release zeroed the
 * count). */
void fd_state_release(void) __attribute__((visibility("hidden")));

/* c's requests can no longer be seen: a lost stream (its bytes are no
 * longer parsed), one joined mid-stream that has not opened (attach), one
 * whose first bytes were not HTTP, or TLS records moved outside a hooked
 * library's call (conn_tls_unseen).
 * Counted as an unseen stream (request_streams_unseen) until it ends. */
static inline void conn_went_blind(struct conn *c)
{
	if (!atomic_load_explicit(&c->blind, memory_order_seq_cst) &&
	    !atomic_exchange_explicit(&c->blind, true, memory_order_seq_cst))
		request_streams_unseen(1);
}

/* c's connection ended, or its requests are seen again. Sequentially
 * consistent with conn_mark_lost: a thread that clears blind and then finds
 * lost unset knows the loser's conn_went_blind comes after its clear. */
static inline void conn_sees_again(struct conn *c)
{
	if (atomic_load_explicit(&c->blind, memory_order_relaxed) &&
	    atomic_exchange_explicit(&c->blind, false, memory_order_seq_cst))
		request_streams_unseen(-1);
}

/* No more ids on c's stream: its requests go unseen. */
static inline void conn_mark_lost(struct conn *c)
{
	atomic_store_explicit(&c->lost, true, memory_order_seq_cst);
	conn_went_blind(c);
}

/* No more ids on c's stream, which speaks HTTP/2 (chosen by ALPN, or begun
 * with its preface): its requests have no HTTP/1 request line for a log
 * line to quote, so they are not counted unseen (request_named_by names a
 * line by an HTTP/1 request line only). */
static inline void conn_mark_lost_not_http1(struct conn *c)
{
	atomic_store_explicit(&c->lost, true, memory_order_seq_cst);
}

/* An added header: "Name: id" and CRLF. */
#define CONN_OWED_MAX (RESPONSE_HEADER_NAME_MAX + 2 + REQUEST_ID_MAX + 2)

/* A TLS connection's write side, under its entry's out_busy. */
struct conn_tls {
	const void *ssl; /* the TLS object whose write owes or retries
			    (conn_output_tls_end) */
	uint32_t sent;   /* of a TLS write that failed and will be retried,
			    the program's bytes that went (conn_output_tls) */
};

/* The entries of CONN_CHUNK fds, then room for the bytes each connection
 * may come to owe, then the TLS connections' write sides: those pages are
 * touched only by a connection that owes some (a write that stopped
 * inside an added header) or writes through a TLS library, not by every
 * one. */
struct conn_chunk {
	struct conn entry[CONN_CHUNK];
	char owed[CONN_CHUNK][CONN_OWED_MAX];
	struct conn_tls tls[CONN_CHUNK];
};

/* Chunks (struct conn_chunk), NULL until mapped. */
extern void *_Atomic conn_chunks[FD_LIMIT / CONN_CHUNK]
	__attribute__((visibility("hidden")));

/* fd's chunk, or NULL if no connection ever opened in it. */
static inline struct conn_chunk *conn_chunk_of(int fd)
{
	return atomic_load_explicit(&conn_chunks[(unsigned)fd / CONN_CHUNK], memory_order_acquire);
}

/* fd's entry, or NULL if no connection ever opened in its chunk. */
static inline struct conn *conn_entry(int fd)
{
	struct conn_chunk *chunk = conn_chunk_of(fd);
	return chunk ? &chunk->entry[(unsigned)fd % CONN_CHUNK] : NULL;
}

/* The owed bytes of the connection whose entry is fd's (mapped). */
static inline char *conn_owed(int fd)
{
	return conn_chunk_of(fd)->owed[(unsigned)fd % CONN_CHUNK];
}

/* The TLS write side of the connection whose entry is fd's (mapped). */
static inline struct conn_tls *conn_tls(int fd)
{
	return &conn_chunk_of(fd)->tls[(unsigned)fd % CONN_CHUNK];
}

/* The fd whose conn_table entry connection fd uses. A copy of a
 * connection (dup2(conn, 0) in a fork-per-connection server) names the same
 * stream: fd_state(copy)->alias is the fd whose entry holds it, plus one;
 * 0 for the fd that holds its own entry. fd must be flagged FD_CONN (its
 * state exists). */
static inline int conn_fd(int fd)
{
	uint32_t a = atomic_load_explicit(&fd_state(fd)->alias, memory_order_relaxed);
	return a ? (int)a - 1 : fd;
}

/* The entry of holder, the conn_fd of a connection: a connection opened
 * in its chunk, so the chunk is mapped (chunks stay mapped) and there is no
 * NULL to test for, as conn_entry does. */
static inline struct conn *conn_holder_entry(int holder)
{
	return &conn_chunk_of(holder)->entry[(unsigned)holder % CONN_CHUNK];
}

/* The entry connection fd uses (fd must be flagged FD_CONN). */
static inline struct conn *conn_of(int fd)
{
	return conn_holder_entry(conn_fd(fd));
}

/* Whether connection fd is the only fd naming its connection. */
static inline bool conn_named_once(int fd)
{
	return atomic_load_explicit(&fd_state(fd)->alias, memory_order_relaxed) == 0 &&
	       atomic_load_explicit(&conn_entry(fd)->copies, memory_order_relaxed) == 0;
}

/* fd's flags, FD_ADOPT included. */
static inline uint8_t fd_flags(int fd)
{
	if (__builtin_expect((unsigned)fd < FD_LOW, 1))
		return atomic_load_explicit(&fd_states[fd].flags, memory_order_relaxed);
	const struct fd_state *s = fd_state_high(fd);
	return s ? atomic_load_explicit(&s->flags, memory_order_relaxed) : 0;
}

/* Connection fd's generation (fd flagged FD_CONN): it changes when fd
 * stops naming the connection (conn_forget). A read or write blocked while
 * another thread closed fd, and perhaps accepted a new connection on the same
 * number, moved the old connection's bytes: the hooks take the generation
 * before the call and compare after it (conn_read_done, conn_write_done). */
static inline uint8_t conn_generation(int fd)
{
	return atomic_load_explicit(&fd_state(fd)->generation, memory_order_relaxed);
}

/* What fd is: its flags but FD_ADOPT. */
static inline uint8_t fd_class(int fd)
{
	return fd_flags(fd) & (uint8_t)~FD_ADOPT;
}

/* The request currently on the connection whose entry is c (0 if none, or
 * if its stream was lost). */
static inline uint64_t conn_entry_request(const struct conn *c)
{
	if (atomic_load_explicit(&c->lost, memory_order_acquire))
		return 0;
	return __atomic_load_n(&c->request, __ATOMIC_RELAXED);
}

/* The request currently on connection fd (0 if none, if fd is no tracked
 * connection, or if the connection's stream was lost). */
static inline uint64_t conn_request(int fd)
{
	return fd_class(fd) & FD_CONN ? conn_entry_request(conn_of(fd)) : 0;
}

/* Bytes of connection fd were consumed unseen (MSG_TRUNC): its stream is
 * lost for attribution. */
void conn_lose(int fd) __attribute__((visibility("hidden")));

/* The program shut down its side of connection fd for writing: it answers
 * no request read from here on (bytes a lingering close drains), so none
 * begins. The current request stays. */
void conn_write_shut(int fd) __attribute__((visibility("hidden")));

/* conn_lose for a connection that chose HTTP/2 (conn_mark_lost_not_http1). */
void conn_lose_to_h2(int fd) __attribute__((visibility("hidden")));

/* fd was just returned by accept. */
void conn_open(int fd) __attribute__((visibility("hidden")));

/* fd is a connection the program accepted before the shim came in
 * (attach): from_start says the program has read none of its bytes, so
 * its stream starts at the next read; otherwise it is joined mid-stream
 * (enum join_state). Either way bytes that do not parse as requests lose
 * the stream (never an id for the connection). */
void conn_join(int fd, bool from_start) __attribute__((visibility("hidden")));

/* fd, marked FD_ADOPT at attach, is an accepted connection the shim did
 * not see open: the program may have read requests from it past the shim
 * (before attach, or while attach patched the GOT) and write their lines
 * after, so it counts as an unseen stream until it is adopted (conn_join
 * keeps the count for a stream joined mid-stream and ends it for one
 * followed from its start) or conn_adoption_dropped. */
void conn_unseen_until_adopted(int fd) __attribute__((visibility("hidden")));

/* fd, marked FD_ADOPT, is closed, replaced or found not to be a
 * connection before its adoption: it no longer counts as unseen. */
void conn_adoption_dropped(int fd) __attribute__((visibility("hidden")));

/* fd is being closed or replaced: forget it (the connection lives on in
 * its copies, if it has any). */
void conn_forget(int fd) __attribute__((visibility("hidden")));

/* copy now names the same connection as fd (dup2, dup3, dup, F_DUPFD). */
void conn_copied(int fd, int copy) __attribute__((visibility("hidden")));

/* What conn_on_read made of a read's bytes. */
enum conn_read {
	CONN_READ_PARSED, /* fed to the parser */
	CONN_READ_TLS,    /* records: the connection was TLS, or these began it */
	CONN_READ_STALE,  /* another connection's (fd was closed since), or
			     lost with the stream: holder and c may name
			     another connection now */
};

/* n bytes were read from connection fd's socket (spread over iov when iov
 * != NULL) by a call that began when fd's generation was generation
 * (conn_generation); holder is conn_fd(fd) and c its entry, looked up after
 * the call (the read hooks look them up once for it). Those of a TLS
 * connection are records, never parsed; a connection whose first bytes are
 * a TLS handshake record becomes one. If fd no longer names the connection
 * the call read from (closed since, its number perhaps another
 * connection's), the bytes go nowhere. */
enum conn_read conn_on_read(int fd, int holder, struct conn *c, uint8_t generation,
			    const void *buf, const struct iovec *iov, size_t n)
	__attribute__((visibility("hidden")));

/* The peer closed its side of connection fd (a read gave end of file, or
 * TLS close_notify) after the response was written whole (the hooks ask
 * conn_output_response_done). A request already answered is over then:
 * what the program writes next (its note of the close) is no request's.
 * One not answered yet goes on (a client may half-close after its
 * request). */
void conn_on_eof(int fd) __attribute__((visibility("hidden")));

/* Bytes were written to the socket of the connection whose entry is c
 * (conn_of: the write hooks look it up once for the call). A TLS
 * connection's records say nothing of its responses. Returns whether c is a
 * TLS connection; *began is the certain_reader of the request whose response
 * they began, 0 if they began none or nobody was certain of it. */
bool conn_on_write(struct conn *c, int32_t *began) __attribute__((visibility("hidden")));

/* Whether connection fd is a TLS connection. */
static inline bool conn_is_tls(int fd)
{
	return atomic_load_explicit(&conn_of(fd)->tls, memory_order_relaxed);
}

/* A TLS library call is about to read or write connection fd: from here its
 * socket carries records. A connection taken for a non-HTTP one (one id
 * for all of it) starts over; one whose socket gave HTTP requests before,
 * or that was joined mid-stream, is lost. */
void conn_tls_begin(int fd) __attribute__((visibility("hidden")));

/* The records of TLS connection fd moved outside any hooked TLS library
 * call: a library the shim does not hook may be decrypting its requests,
 * which go unseen (conn_went_blind) until a hooked call on fd. */
void conn_tls_unseen(int fd) __attribute__((visibility("hidden")));

/* n bytes of plaintext were read through the TLS library from connection
 * fd: they feed its request parser as a plain connection's bytes do. */
void conn_on_tls_read(int fd, const void *buf, size_t n) __attribute__((visibility("hidden")));

/* Plaintext was written through the TLS library to connection fd; returns
 * what conn_on_write stores in *began. */
int32_t conn_on_tls_write(int fd) __attribute__((visibility("hidden")));

#endif
