/*
 * http_response.h - incremental parser of the HTTP/1.x responses a server
 * writes on a connection, to find where the shim may add its response
 * header.
 *
 * Fed the bytes the application writes, in any split, it reports the offsets
 * at which a response's header block ends (just before its blank line) when
 * that response does not already carry the header. It follows framing
 * (Content-Length, chunked, no body for HEAD, 1xx, 204 and 304, body until
 * close otherwise) so body bytes are never taken for a response. Bytes that
 * do not parse stop it for the rest of the connection.
 *
 * Pure logic: no allocation, no I/O; a few dozen bytes of state.
 */
#ifndef REQID_HTTP_RESPONSE_H
#define REQID_HTTP_RESPONSE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define RESPONSE_HEADER_NAME_MAX 63

struct http_response_parser {
	uint8_t header_len;     /* of the added header's name; 0: add none */
	uint8_t state;
	uint8_t after_lf;
	bool head_request;      /* the request being answered is HEAD */
	bool has_header;        /* this response already carries the header */
	uint8_t coding;         /* what its last Transfer-Encoding line said
				   (http_response.c): none, chunked, other */
	bool has_length;
	uint8_t name_match;     /* bits: content-length, transfer-encoding, header */
	uint16_t token_len;
	uint16_t status;
	uint8_t value_len;      /* bytes of a framing header's value taken: of
				   Content-Length's after its leading OWS, of
				   Transfer-Encoding's those in value[] */
	bool value_bad;         /* this Content-Length value is no length */
	bool value_spaced;      /* OWS came after its first byte */
	/* One word for both: a Transfer-Encoding line sets the framing
	 * whatever Content-Length said (RFC 9112, 6.3), so a length is not
	 * needed once one begins, and the coding is decided at its line's
	 * end, before any body. */
	union {
		char value[8];      /* Transfer-Encoding's value: its last 8
				       bytes but spaces (",chunked" decides) */
		uint64_t remaining; /* body or chunk bytes left; a Content-Length
				       value while its digits come */
	};
};
_Static_assert(sizeof(struct http_response_parser) == 24, "a connection's response parser is 24 bytes");

/* The name of the header the shim adds (any case, 1 to
 * RESPONSE_HEADER_NAME_MAX bytes), one for every parser: set before a
 * parser that adds it is made; name must stay valid. Kept once, not in each
 * parser: a server's idle connections hold a parser each. */
void http_response_set_header(const char *name, size_t len);

/* adds: the responses get the header http_response_set_header named. */
void http_response_init(struct http_response_parser *p, bool adds);

/* The parser's states (http_response.c). */
enum response_state {
	R_START,          /* before a status line */
	R_VERSION,        /* token_len counts matched bytes of "HTTP/1.x " */
	R_STATUS,         /* token_len counts status digits */
	R_REASON,
	R_EXPECT_LF,      /* after CR: LF, then after_lf */
	R_HEADER_START,
	R_HEADER_NAME,
	R_HEADER_VALUE,
	R_BODY,
	R_CHUNK_SIZE,
	R_CHUNK_EXT,
	R_CHUNK_DATA,
	R_CHUNK_DATA_END,
	R_TRAILER_START,
	R_TRAILER_LINE,
	R_UNTIL_CLOSE,    /* body until the connection closes, or a tunnel */
	R_STOPPED,        /* bytes that do not parse: never add again */
};

/* The next response answers a HEAD request (it has no body). Inline, as
 * the two queries below: every request and every response write ask. */
static inline void http_response_expect_head(struct http_response_parser *p, bool head)
{
	p->head_request = head;
}

/* Moves p past n bytes about to be written, storing in points[] (at most
 * max) the offsets in buf before which the header goes; returns how many. */
size_t http_response_scan(struct http_response_parser *p, const char *buf, size_t n,
			  size_t points[], size_t max);

/* The same without changing p: call http_response_advance for the bytes
 * actually written. */
size_t http_response_plan(const struct http_response_parser *p, const char *buf, size_t n,
			  size_t points[], size_t max);

/* n bytes of buf were written: moves the parser past them. */
void http_response_advance(struct http_response_parser *p, const char *buf, size_t n);

/* n bytes were written that the shim did not see (sendfile): they must be
 * body bytes, or the parser stops. */
void http_response_skip(struct http_response_parser *p, uint64_t n);

/* The header was added to the response being written (the parser rests
 * just before its blank line): do not add it again. */
void http_response_added(struct http_response_parser *p);

/* Gives up on the stream (bytes went by unseen). */
void http_response_stop(struct http_response_parser *p);

/* True when the bytes so far end exactly after a final (not 1xx) response:
 * what the client sends next, unless it pipelined, is a new request. */
static inline bool http_response_between(const struct http_response_parser *p)
{
	return p->state == R_START && p->status >= 200;
}

/* True when the last response seen begun since the request being answered
 * began is an interim one (100 Continue, 101, 103), whole or not, or was
 * only assumed (http_response_assume_interim) and the bytes written since,
 * if any, went unseen: that request may not be answered yet. */
static inline bool http_response_only_interim(const struct http_response_parser *p)
{
	return p->status >= 100 && p->status < 200;
}

/* True once the parser gave up on the stream (never adds again). */
static inline bool http_response_stopped(const struct http_response_parser *p)
{
	return p->state == R_STOPPED || p->state == R_UNTIL_CLOSE;
}

/* The request about to be answered asked for interim responses, which
 * bytes written unseen (responses not followed, sendfile) may be: until a
 * response is seen, what is written for it counts as interim only
 * (http_response_only_interim). A response being written is left alone. */
static inline void http_response_assume_interim(struct http_response_parser *p)
{
	if (p->state == R_START || http_response_stopped(p))
		p->status = 100;
}

#endif
