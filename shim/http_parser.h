/*
 * http_parser.h - incremental HTTP/1.x request-stream parser, one per
 * connection.
 *
 * It is fed whatever bytes a read returned, in any split down to one byte,
 * and reports where requests begin, where their header blocks end, and the
 * inbound id chosen by header precedence. Bodies (Content-Length and chunked)
 * are skipped so body bytes are never mistaken for a request. A connection
 * whose first bytes are not HTTP is reported as such; bytes that stop making
 * sense later put the parser in a sticky desynchronised state. After a
 * CONNECT request the stream is a tunnel: its bytes are not parsed (they are
 * the tunnelled protocol's) and the CONNECT stays the current request.
 *
 * Pure logic: no allocation, no I/O, no libc interposition. State is a fixed
 * few hundred bytes so a table of parsers can live in static memory.
 */
#ifndef REQID_HTTP_PARSER_H
#define REQID_HTTP_PARSER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#include "config.h"
#include "request_id.h"
#include "traceparent.h"
#include "tracestate.h"

/* The header names the parser looks for: the two framing headers, the two
 * trace context headers, the two that ask for interim responses, the
 * configured id headers in precedence order, and last the id header the
 * shim itself sends (only whether it is present matters, as for Expect and
 * Upgrade). Built once from the config. */
#define MATCHER_MAX (7 + CONFIG_MAX_HEADERS)
/* A name, its NUL, and room to read it 16 bytes at a time. */
#define MATCHER_NAME_ROOM (CONFIG_MAX_HEADER_NAME + 17)
#define REQUEST_LINE_MAX 96 /* bytes of a request line kept as its fingerprint */
#define RANK_NONE 0xff

enum matcher_entry {
	M_CONTENT_LENGTH,
	M_TRANSFER_ENCODING,
	M_TRACEPARENT,
	M_TRACESTATE,
	M_EXPECT,
	M_UPGRADE,
	M_FIRST_ID,
};

struct header_matcher {
	uint8_t count;
	uint8_t traceparent_rank; /* RANK_NONE if traceparent is not an id header */
	uint8_t sent_id;          /* entry of the id header the shim sends */
	uint32_t presence_only;   /* entries whose values are never captured:
				     sent_id, M_EXPECT, M_UPGRADE */
	uint8_t len[MATCHER_MAX];
	uint32_t first[256]; /* entries whose name starts with a byte (ASCII
				case folded), one bit each */
	uint32_t by_len[CONFIG_MAX_HEADER_NAME + 1]; /* entries whose name is
							 that long */
	uint32_t twins[MATCHER_MAX]; /* entries whose name is the entry's (the
					entry too): a complete name is compared
					once for all of them */
	char name[MATCHER_MAX][MATCHER_NAME_ROOM]; /* lowercase, zero-padded */
};

void header_matcher_init(struct header_matcher *m, const struct reqid_config *cfg);

struct http_parser {
	/* Between heads the parser is these (HTTP_PARSER_STATE_SIZE bytes): */
	uint8_t state;
	uint8_t after_lf;      /* state to enter after an expected LF */
	bool in_first_line;    /* still in the connection's first request line */
	bool pause_at_heads;   /* feed stops before each header block's blank line */
	bool paused;           /* it stopped there; the next feed goes on */
	uint8_t version_seen;  /* whether a header value of this head held
				  " HTTP/1.", and how much of it the value
				  read so far ends with; whether a body did
				  (http_parser.c) */
	uint16_t token_len;    /* bytes of method or header name so far;
				  hex digits of a chunk size */
	uint64_t remaining;    /* body or chunk bytes left to skip */
	/* From here on, the head: set when its request line begins
	 * (begin_request) or later, and outside a head (see
	 * http_parser_in_head) never read by a feed before it writes them.
	 * A header line's end leaves capture RANK_NONE and value_len,
	 * value_overflow and name_match 0, tracestate_line_empty true: they
	 * are read only while a line is read. */
	uint64_t content_length;
	uint32_t name_match;   /* matcher entries still matching the name */
	uint32_t seen;         /* matcher entries present in this request */
	uint16_t tracestate_len;
	bool chunked;
	bool has_length;
	bool id_tainted;       /* obs-fold in this request: ignore inbound ids */
	bool connect;          /* the method so far spells a prefix of CONNECT */
	uint8_t capture;       /* matcher index being captured, or RANK_NONE */
	uint8_t value_len;
	bool value_overflow;
	uint8_t best_rank;     /* rank of the inbound id kept so far */
	uint8_t best_len;
	uint8_t line_len;      /* request_line bytes kept so far */
	uint8_t traceparent_count;
	bool traceparent_valid;
	bool tracestate_overflow;
	bool tracestate_line_empty; /* this tracestate line stored nothing yet */
	/* The head's text: what a request head kept so far. */
	char value[REQUEST_ID_MAX];
	char best[REQUEST_ID_MAX];
	struct traceparent traceparent;
	char request_line[REQUEST_LINE_MAX];
	char tracestate[TRACESTATE_MAX]; /* its header lines joined with ',' */
	const struct header_matcher *matcher; /* as init was given it */
};

/* A parser is its state (the first HTTP_PARSER_STATE_SIZE bytes), its
 * head's text (the HTTP_PARSER_TEXT_SIZE bytes after them) and its matcher.
 * Between heads the state alone is the parser: a parser rebuilt from a
 * saved state, the same matcher and any text goes on exactly as the
 * original would have, so a table of many parsers that share a matcher can
 * keep the state alone, and the text only for the heads being read. */
#define HTTP_PARSER_STATE_SIZE offsetof(struct http_parser, content_length)
#define HTTP_PARSER_TEXT_SIZE (offsetof(struct http_parser, matcher) - HTTP_PARSER_STATE_SIZE)

/* The parser's states (http_parser.c). */
enum parser_state {
	S_START,          /* before a request line; empty lines skipped */
	/* S_METHOD to S_HEADER_VALUE: inside a head (http_parser_in_head) */
	S_METHOD,
	S_TARGET,
	S_VERSION,        /* token_len counts matched bytes of "HTTP/1.x" */
	S_EXPECT_LF,      /* after CR: LF, then after_lf */
	S_HEADER_START,
	S_HEADER_NAME,
	S_HEADER_VALUE,
	S_BODY,
	S_CHUNK_SIZE,
	S_CHUNK_EXT,
	S_CHUNK_DATA,
	S_CHUNK_DATA_END, /* CRLF after chunk data */
	S_TRAILER_START,
	S_TRAILER_LINE,
	S_TUNNEL,         /* after CONNECT: the rest is not HTTP requests */
	S_NOT_HTTP,
	S_DESYNC,
};

/* True while p is inside a request head (from a request line's first byte
 * to the end of its header block): its text matters to the next feed.
 * Inline: every read of a connection asks it, more than once. */
static inline bool http_parser_in_head(const struct http_parser *p)
{
	/* A CR ending the request line or a header line waits for its LF;
	 * the blank line's CR already reported the head (end_headers). */
	uint8_t s = p->state == S_EXPECT_LF ? p->after_lf : p->state;
	return s >= S_METHOD && s <= S_HEADER_VALUE;
}

/* True while p is inside a request's body (its length's bytes, or its
 * chunks and trailer), which the next bytes fed continue. */
static inline bool http_parser_in_body(const struct http_parser *p)
{
	uint8_t s = p->state == S_EXPECT_LF ? p->after_lf : p->state;
	return s >= S_BODY && s <= S_TRAILER_LINE;
}

/* Whether the request whose head p's last feed ended (no request began
 * after it in that feed) asked for interim responses (Expect, Upgrade): a
 * 100 Continue or a 101 may come before its final response, or instead of
 * it. */
static inline bool http_parser_asked_interim(const struct http_parser *p)
{
	return (p->seen & (1u << M_EXPECT | 1u << M_UPGRADE)) != 0;
}

/* What one call to http_parser_feed saw. */
struct http_feed_result {
	uint32_t requests_started;  /* request lines that began */
	uint32_t headers_completed; /* header blocks that ended */
	bool not_http;              /* the connection's first bytes are not HTTP */
	bool desync;                /* the parser lost the stream in this call */
	/* The inbound id of the last request whose headers ended in this call;
	 * id_len 0 means none was usable and one must be generated. */
	uint8_t id_len;
	char id[REQUEST_ID_MAX];
	/* Its request line ("GET /x HTTP/1.1"), at most REQUEST_LINE_MAX bytes. */
	uint8_t line_len;
	char line[REQUEST_LINE_MAX];
	/* Its trace context: one valid traceparent came (trace), and with it a
	 * valid tracestate (normalised, tracestate_len 0 if none). */
	bool trace_valid;
	struct traceparent trace;
	uint16_t tracestate_len;
	char tracestate[TRACESTATE_MAX];
	/* A header value of that request held "HTTP/1.", as a request line
	 * does after its target: a log line quoting a request line may be
	 * quoting that header (a forged User-Agent), not a request. */
	bool version_in_value;
	/* A request body in these bytes held "HTTP/1." (reported once a
	 * body): a format that logs bodies (nginx's $request_body) may quote
	 * it as a request line. The request began before; its line was
	 * counted already. */
	bool version_in_body;
	/* Pausing parser only: it stopped before a blank line ending a header
	 * block; seen is that request's matcher entries present. */
	bool at_head_end;
	uint32_t seen;
};

void http_parser_init(struct http_parser *p, const struct header_matcher *m);

/* A parser for a stream joined between two requests (a connection a
 * program accepted before the shim came in): bytes that do not parse as a
 * request desynchronise it, never make the connection "not HTTP". */
void http_parser_init_joined(struct http_parser *p, const struct header_matcher *m);

/* A parser of the requests a client writes: http_parser_feed stops before
 * the blank line that ends each header block (where headers can be added). */
void http_parser_init_pausing(struct http_parser *p, const struct header_matcher *m);

/* A pausing parser resting before a blank line: headers were added there,
 * so it goes on without stopping at that blank line again. */
void http_parser_added(struct http_parser *p);

/* Consumes bytes of buf and returns how many: len, except that a pausing
 * parser returns early, with at_head_end set, before a header block's blank
 * line (the next call goes on from there). Once not_http or desync has been
 * reported, later calls report nothing. */
size_t http_parser_feed(struct http_parser *p, const char *buf, size_t len,
			struct http_feed_result *out);

/* A pausing parser over bytes about to be written, spread over iov: makes
 * *after p moved past all of them, and stores the offsets (from the start of
 * iov[0]) before which header blocks end, with what each head already has
 * (seen), at most max of them. Returns how many it stored. */
size_t http_parser_plan(const struct http_parser *p, const struct iovec *iov, int iovcnt,
			size_t at[], uint32_t seen[], size_t max, struct http_parser *after);

/* The first n of those bytes were written: moves a pausing parser past them,
 * through any pauses. */
void http_parser_advance(struct http_parser *p, const struct iovec *iov, int iovcnt, size_t n);

/* True once the parser gave up on the stream (not HTTP, or desynchronised). */
bool http_parser_stopped(const struct http_parser *p);

/* True after a CONNECT request: the stream's bytes are a tunnel's. */
bool http_parser_in_tunnel(const struct http_parser *p);

/* Whether a stream's first len (> 0) bytes begin a TLS handshake record
 * (a ClientHello): content type 22, then major version 3 if a second byte
 * came. No HTTP request begins so. */
bool http_starts_tls(const char *buf, size_t len);

/* Whether a stream's first len bytes begin a request of a gateway protocol,
 * one a front server passes an HTTP request to an application in, as far as
 * they came: FastCGI (a version 1 record of type BEGIN_REQUEST or
 * GET_VALUES), SCGI (a netstring's length, ':', then "CONTENT_LENGTH" and
 * its NUL, which the protocol puts first) or uwsgi (a first byte that is no
 * token character, modifier2 0 in the fourth, then the first variable's
 * length, 1 to 64, and a name of capitals, digits and '_'). No HTTP request
 * begins so. */
bool http_starts_gateway(const char *buf, size_t len);

/* Whether buf (len bytes, read where the parser failed after skipping
 * empty lines at a stream's start) is the rest of a PROXY protocol version
 * 2 signature whose "\r\n\r\n" (or its start) an earlier read held: the
 * rest of those 4 bytes, then a prefix of "\0\r\nQUIT\n". The parser took
 * the CR and LF bytes for empty lines before a request. */
bool http_proxy_v2_rest(const char *buf, size_t len);

/* Whether a stream's first len bytes begin the HTTP/2 connection preface
 * ("PRI * HTTP/2.0", then CRLF CRLF "SM" CRLF CRLF) as far as the parser
 * needs to fail on it: at least "PRI * HTTP/2", and every byte after it
 * that came matching. */
bool http_starts_h2(const char *buf, size_t len);

/* The length of the PROXY protocol header (version 1, a text line, or 2,
 * binary; HAProxy's spec) that the len bytes at a stream's start begin: 0
 * if they begin none (or too few came to tell it from a request: "P" may be
 * POST's), SIZE_MAX if they begin one that does not end within them. */
size_t http_proxy_header_len(const char *buf, size_t len);

/* How a server may log a request line (as the parser keeps it), and so
 * whether a line it logs for one request can quote what is another's:
 * LINE_AS_IS: its method has no lower-case letter and its target is a path
 * in normal form ("/..." or "*": no '%', '\\', "//", "." or ".." segment,
 * fragment or query), which every format logs as it came.
 * LINE_OR_PATH: the same with a query ('?' at *path_end): a format of the
 * path alone (lighttpd's "%m %U %H", nginx's "$request_method $uri
 * $server_protocol") logs it as the line without its query, which may be
 * another request's line. Such a request is counted as that line and
 * named by none (a line quoting its own has a '?', as no LINE_AS_IS
 * request's has).
 * LINE_REWRITTEN: anything else, which a server may log as another line
 * (decoded, its dot segments or slashes taken out, gunicorn's upper-cased
 * method, lighttpd dropping an absolute form's "http://host"). */
enum line_logging { LINE_AS_IS, LINE_OR_PATH, LINE_REWRITTEN };
enum line_logging http_request_line_logging(const char *line, size_t len, size_t *path_end);

/* Whether the first line of the n bytes at b (to its LF, or all of them)
 * holds "HTTP/" in any case: bytes the parser failed on that a program may
 * still take for an HTTP request ("HTTP/1.01", two spaces after the method). */
bool http_first_line_names_version(const char *b, size_t n);

/* Finds the quoted request line ("\"METHOD SP target SP HTTP/1.d\"", as
 * access logs write it) inside a log line. Stores the offset and length of
 * the request line (without the quotes); false if there is none, or if the
 * line holds another request line, quoted or not: a line may quote a
 * client's header too (a User-Agent), and a client can make that look like
 * another request's request line. */
bool http_find_request_line(const char *line, size_t len, size_t *at, size_t *n);

#endif
