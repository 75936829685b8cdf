/*
 * http_parser.c - incremental HTTP/1.x request-stream parser.
 *
 * One byte-driven state machine per connection. Body bytes are skipped in
 * bulk. Header values are captured only for the names the matcher lists
 * (framing headers and id headers), at most REQUEST_ID_MAX bytes each.
 *
 * Runs inside read hooks: no allocation, no I/O, no locks; bounded work per
 * input byte.
 */
#include "http_parser.h"

#include <string.h>

#include "http_chars.h"

enum {
	METHOD_MAX = 32,
};

enum parser_state {
	S_START,          /* before a request line; empty lines skipped */
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

static const char connect_method[] = "CONNECT";

static const char http_version_prefix[] = "HTTP/1.";

/* RFC 9110 tchar: the bytes of methods and header names. */
const bool http_tchar[256] = {
	['!'] = 1, ['#'] = 1, ['$'] = 1, ['%'] = 1, ['&'] = 1, ['\''] = 1, ['*'] = 1,
	['+'] = 1, ['-'] = 1, ['.'] = 1, ['^'] = 1, ['_'] = 1, ['`'] = 1, ['|'] = 1, ['~'] = 1,
	['0' ... '9'] = 1, ['A' ... 'Z'] = 1, ['a' ... 'z'] = 1,
};

void header_matcher_init(struct header_matcher *m, const struct reqid_config *cfg)
{
	memset(m, 0, sizeof(*m));
	m->name[M_CONTENT_LENGTH] = "content-length";
	m->len[M_CONTENT_LENGTH] = 14;
	m->name[M_TRANSFER_ENCODING] = "transfer-encoding";
	m->len[M_TRANSFER_ENCODING] = 17;
	m->name[M_TRACEPARENT] = "traceparent";
	m->len[M_TRACEPARENT] = 11;
	m->name[M_TRACESTATE] = "tracestate";
	m->len[M_TRACESTATE] = 10;
	m->traceparent_rank = RANK_NONE;
	for (uint8_t i = 0; i < cfg->header_count; i++) {
		m->name[M_FIRST_ID + i] = cfg->headers[i].name;
		m->len[M_FIRST_ID + i] = cfg->headers[i].len;
		if (cfg->headers[i].len == 11 && memcmp(cfg->headers[i].name, "traceparent", 11) == 0 &&
		    m->traceparent_rank == RANK_NONE)
			m->traceparent_rank = i;
	}
	m->sent_id = (uint8_t)(M_FIRST_ID + cfg->header_count);
	for (uint8_t i = 0; i < cfg->response_header_len; i++)
		m->sent_id_name[i] = (char)http_lower((unsigned char)cfg->response_header[i]);
	m->name[m->sent_id] = m->sent_id_name;
	m->len[m->sent_id] = cfg->response_header_len;
	m->count = (uint8_t)(m->sent_id + 1);
}

void http_parser_init(struct http_parser *p, const struct header_matcher *m)
{
	memset(p, 0, sizeof(*p));
	p->matcher = m;
	p->state = S_START;
	p->capture = RANK_NONE;
	p->best_rank = RANK_NONE;
	p->in_first_line = true;
}

void http_parser_init_pausing(struct http_parser *p, const struct header_matcher *m)
{
	http_parser_init(p, m);
	p->pause_at_heads = true;
}

void http_parser_added(struct http_parser *p)
{
	p->paused = true;
}

bool http_parser_stopped(const struct http_parser *p)
{
	return p->state == S_NOT_HTTP || p->state == S_DESYNC;
}

/* Keeps the first REQUEST_LINE_MAX bytes of the request line. */
static void line_add(struct http_parser *p, const unsigned char *b, size_t n)
{
	size_t room = REQUEST_LINE_MAX - p->line_len;
	if (n > room)
		n = room;
	memcpy(p->request_line + p->line_len, b, n);
	p->line_len = (uint8_t)(p->line_len + n);
}

static void begin_request(struct http_parser *p)
{
	p->line_len = 0;
	p->chunked = false;
	p->has_length = false;
	p->id_tainted = false;
	p->content_length = 0;
	p->best_rank = RANK_NONE;
	p->best_len = 0;
	p->traceparent_count = 0;
	p->traceparent_valid = false;
	p->tracestate_len = 0;
	p->tracestate_overflow = false;
	p->seen = 0;
}

/* Unparseable bytes: within the connection's first request line they mean
 * the connection is not HTTP; anywhere later the stream is lost. */
static void fail(struct http_parser *p, struct http_feed_result *out)
{
	if (p->in_first_line) {
		p->state = S_NOT_HTTP;
		out->not_http = true;
	} else {
		p->state = S_DESYNC;
		out->desync = true;
	}
}

static bool ends_with_chunked(const char *v, size_t n)
{
	static const char word[] = "chunked";
	if (n < 7)
		return false;
	for (size_t i = 0; i < 7; i++)
		if (http_lower((unsigned char)v[n - 7 + i]) != (unsigned char)word[i])
			return false;
	return n == 7 || v[n - 8] == ',' || v[n - 8] == ' ' || v[n - 8] == '\t';
}

/* A captured header value is complete (trailing OWS already trimmed). */
static bool finish_value(struct http_parser *p)
{
	uint8_t idx = p->capture;
	size_t n = p->value_len;

	p->capture = RANK_NONE;
	if (idx == M_CONTENT_LENGTH) {
		uint64_t v = 0;
		if (p->value_overflow || n == 0)
			return false;
		for (size_t i = 0; i < n; i++) {
			char c = p->value[i];
			if (c < '0' || c > '9' || v > (UINT64_MAX - 9) / 10)
				return false;
			v = v * 10 + (uint64_t)(c - '0');
		}
		if (p->has_length && v != p->content_length)
			return false;
		p->has_length = true;
		p->content_length = v;
		return true;
	}
	if (idx == M_TRANSFER_ENCODING) {
		if (p->value_overflow)
			return false;
		p->chunked = ends_with_chunked(p->value, n);
		return true;
	}
	if (idx == M_TRACESTATE) {
		/* Trailing OWS is not the value's: back to the line's last
		 * other byte (the line stored one, or it stored nothing). */
		while (!p->tracestate_line_empty && p->tracestate_len > 0 &&
		       (p->tracestate[p->tracestate_len - 1] == ' ' ||
			p->tracestate[p->tracestate_len - 1] == '\t'))
			p->tracestate_len--;
		return true;
	}
	if (idx == M_TRACEPARENT) {
		/* A value longer than the buffer can only be a future
		 * version's, whose 56th byte is '-'; its first bytes decide. */
		bool longer_ok = !p->value_overflow || (n > 55 && p->value[55] == '-');
		p->traceparent_valid = ++p->traceparent_count == 1 && longer_ok &&
				       traceparent_parse(p->value, n, &p->traceparent);
		return true;
	}
	uint8_t rank = (uint8_t)(idx - M_FIRST_ID);
	if (!p->value_overflow && rank < p->best_rank && request_id_is_valid(p->value, n)) {
		p->best_rank = rank;
		p->best_len = (uint8_t)n;
		memcpy(p->best, p->value, n);
	}
	return true;
}

/* The trace context of a request whose header block ended: a traceparent
 * that came once and is valid, and a tracestate only with it. */
static void report_trace(struct http_parser *p, struct http_feed_result *out)
{
	out->trace_valid = !p->id_tainted && p->traceparent_count == 1 && p->traceparent_valid;
	out->tracestate_len = 0;
	if (!out->trace_valid)
		return;
	out->trace = p->traceparent;
	if (p->tracestate_len > 0 && !p->tracestate_overflow) {
		int n = tracestate_normalize(p->tracestate, p->tracestate_len, out->tracestate);
		out->tracestate_len = n > 0 ? (uint16_t)n : 0;
	}
}

/* The blank line ending the header block. Returns the next state. */
static uint8_t end_headers(struct http_parser *p, struct http_feed_result *out)
{
	const struct header_matcher *m = p->matcher;

	out->headers_completed++;
	out->id_len = 0;
	out->line_len = p->line_len;
	memcpy(out->line, p->request_line, p->line_len);
	report_trace(p, out);
	if (!p->id_tainted) {
		bool tp = out->trace_valid && m->traceparent_rank < p->best_rank;
		if (tp) {
			memcpy(out->id, p->traceparent.trace_id, sizeof(p->traceparent.trace_id));
			out->id_len = sizeof(p->traceparent.trace_id);
		} else if (p->best_rank != RANK_NONE) {
			memcpy(out->id, p->best, p->best_len);
			out->id_len = p->best_len;
		}
	}
	if (p->connect)
		return S_TUNNEL;
	if (p->chunked) {
		p->remaining = 0;
		p->token_len = 0;
		return S_CHUNK_SIZE;
	}
	if (p->has_length && p->content_length > 0) {
		p->remaining = p->content_length;
		return S_BODY;
	}
	return S_START;
}

static void start_header_name(struct http_parser *p, unsigned char c)
{
	const struct header_matcher *m = p->matcher;
	uint32_t match = 0;
	for (uint8_t i = 0; i < m->count; i++)
		if ((unsigned char)m->name[i][0] == http_lower(c))
			match |= 1u << i;
	p->name_match = match;
	p->token_len = 1;
}

static void continue_header_name(struct http_parser *p, unsigned char c)
{
	const struct header_matcher *m = p->matcher;
	uint32_t match = p->name_match;
	uint16_t pos = p->token_len;
	while (match) {
		uint8_t i = (uint8_t)__builtin_ctz(match);
		match &= match - 1;
		if (pos >= m->len[i] || (unsigned char)m->name[i][pos] != http_lower(c))
			p->name_match &= ~(1u << i);
	}
	if (p->token_len < UINT16_MAX)
		p->token_len++;
}

/* Header name complete at ':'; note it and choose what to capture (the
 * first entry it names, unless that is only the sent id header). */
static void begin_value(struct http_parser *p)
{
	const struct header_matcher *m = p->matcher;
	uint32_t match = p->name_match;
	p->capture = RANK_NONE;
	while (match) {
		uint8_t i = (uint8_t)__builtin_ctz(match);
		match &= match - 1;
		if (m->len[i] == p->token_len) {
			p->seen |= 1u << i;
			if (p->capture == RANK_NONE && i != m->sent_id)
				p->capture = i;
		}
	}
	p->value_len = 0;
	p->value_overflow = false;
	p->tracestate_line_empty = true;
}

/* A byte of a tracestate header line. The lines combine as one list: a
 * line's first byte other than OWS is preceded by ',' if an earlier line
 * stored any. OWS around a line's value is not kept, nor counted against
 * TRACESTATE_MAX; OWS past a full buffer may be trailing and is let go. */
static void tracestate_add(struct http_parser *p, unsigned char c)
{
	bool ows = c == ' ' || c == '\t';
	if (p->tracestate_line_empty) {
		if (ows)
			return;
		p->tracestate_line_empty = false;
		if (p->tracestate_len > 0 && p->tracestate_len < TRACESTATE_MAX)
			p->tracestate[p->tracestate_len++] = ',';
		else if (p->tracestate_len > 0)
			p->tracestate_overflow = true;
	}
	if (p->tracestate_len < TRACESTATE_MAX)
		p->tracestate[p->tracestate_len++] = (char)c;
	else if (!ows)
		p->tracestate_overflow = true;
}

size_t http_parser_feed(struct http_parser *p, const char *buf, size_t len,
			struct http_feed_result *out)
{
	const unsigned char *s = (const unsigned char *)buf;
	size_t i = 0;

	out->requests_started = 0;
	out->headers_completed = 0;
	out->not_http = false;
	out->desync = false;
	out->id_len = 0;
	out->at_head_end = false;

	while (i < len) {
		unsigned char c = s[i];
		switch (p->state) {
		case S_START:
			if (c == '\r' || c == '\n') {
				i++;
				break;
			}
			if (!http_is_tchar(c)) {
				fail(p, out);
				return len;
			}
			begin_request(p);
			out->requests_started++;
			p->state = S_METHOD;
			p->connect = c == (unsigned char)connect_method[0];
			p->token_len = 1;
			line_add(p, s + i, 1);
			i++;
			break;
		case S_METHOD:
			if ((c == ' ' && p->token_len > 0) || http_is_tchar(c))
				line_add(p, s + i, 1);
			if (c == ' ' && p->token_len > 0) {
				p->connect &= p->token_len == sizeof(connect_method) - 1;
				p->state = S_TARGET;
				p->token_len = 0;
			} else if (http_is_tchar(c) && p->token_len < METHOD_MAX) {
				p->connect &= p->token_len < sizeof(connect_method) - 1 &&
					      c == (unsigned char)connect_method[p->token_len];
				p->token_len++;
			} else {
				fail(p, out);
				return len;
			}
			i++;
			break;
		case S_TARGET:
			if (c > ' ' && c != 0x7f) {
				/* The bulk of the target, in a tight loop. */
				size_t start = i;
				while (i < len && s[i] > ' ' && s[i] != 0x7f)
					i++;
				line_add(p, s + start, i - start);
				p->token_len = 1;
				break;
			}
			if (c != ' ' || p->token_len == 0) {
				fail(p, out);
				return len;
			}
			line_add(p, s + i, 1);
			p->state = S_VERSION;
			p->token_len = 0;
			i++;
			break;
		case S_VERSION:
			if (p->token_len < sizeof(http_version_prefix) - 1) {
				if (c != (unsigned char)http_version_prefix[p->token_len]) {
					fail(p, out);
					return len;
				}
				line_add(p, s + i, 1);
				p->token_len++;
			} else if (p->token_len == sizeof(http_version_prefix) - 1) {
				if (c < '0' || c > '9') {
					fail(p, out);
					return len;
				}
				line_add(p, s + i, 1);
				p->token_len++;
			} else if (c == '\r' || c == '\n') {
				p->in_first_line = false;
				p->state = c == '\r' ? S_EXPECT_LF : S_HEADER_START;
				p->after_lf = S_HEADER_START;
			} else {
				fail(p, out);
				return len;
			}
			i++;
			break;
		case S_EXPECT_LF:
			if (c != '\n') {
				fail(p, out);
				return len;
			}
			p->state = p->after_lf;
			i++;
			break;
		case S_HEADER_START:
			if ((c == '\r' || c == '\n') && p->pause_at_heads && !p->paused) {
				p->paused = true;
				out->at_head_end = true;
				out->seen = p->seen;
				return i;
			}
			if (c == '\r' || c == '\n') {
				p->paused = false;
				uint8_t next = end_headers(p, out);
				if (c == '\r') {
					p->state = S_EXPECT_LF;
					p->after_lf = next;
				} else {
					p->state = next;
				}
			} else if (c == ' ' || c == '\t') {
				/* obs-fold: a continuation of the previous header. */
				p->id_tainted = true;
				p->capture = RANK_NONE;
				p->state = S_HEADER_VALUE;
				p->value_len = 0;
			} else if (http_is_tchar(c)) {
				start_header_name(p, c);
				p->state = S_HEADER_NAME;
			} else {
				fail(p, out);
				return len;
			}
			i++;
			break;
		case S_HEADER_NAME:
			if (p->name_match == 0 && http_is_tchar(c)) {
				/* No candidate matches this name: skip it. */
				while (i < len && http_is_tchar(s[i]))
					i++;
				p->token_len = UINT16_MAX;
				break;
			}
			if (c == ':') {
				begin_value(p);
				p->state = S_HEADER_VALUE;
			} else if (http_is_tchar(c)) {
				continue_header_name(p, c);
			} else {
				fail(p, out);
				return len;
			}
			i++;
			break;
		case S_HEADER_VALUE:
			if (p->capture == RANK_NONE && c != '\r' && c != '\n') {
				/* A value nobody asked for: skip to the end of its line. */
				while (i < len && s[i] != '\r' && s[i] != '\n')
					i++;
				break;
			}
			if (c == '\r' || c == '\n') {
				if (p->capture != RANK_NONE) {
					while (p->value_len > 0 && (p->value[p->value_len - 1] == ' ' ||
								    p->value[p->value_len - 1] == '\t'))
						p->value_len--;
					if (!finish_value(p)) {
						fail(p, out);
						return len;
					}
				}
				if (c == '\r') {
					p->state = S_EXPECT_LF;
					p->after_lf = S_HEADER_START;
				} else {
					p->state = S_HEADER_START;
				}
			} else if (p->capture == M_TRACESTATE) {
				tracestate_add(p, c);
			} else if (p->capture != RANK_NONE) {
				if (p->value_len == 0 && (c == ' ' || c == '\t')) {
					/* leading OWS */
				} else if (p->value_len < sizeof(p->value)) {
					p->value[p->value_len++] = (char)c;
				} else if (c != ' ' && c != '\t') {
					/* Spaces past a full buffer may be trailing OWS. */
					p->value_overflow = true;
				}
			}
			i++;
			break;
		case S_BODY: {
			i += http_take_body(&p->remaining, len - i);
			if (p->remaining == 0)
				p->state = S_START;
			break;
		}
		case S_CHUNK_SIZE: {
			int d = http_hex_digit(c);
			if (d >= 0 && p->token_len < 16) {
				p->remaining = p->remaining << 4 | (uint64_t)d;
				p->token_len++;
			} else if (p->token_len > 0 && (c == ';' || c == ' ' || c == '\t')) {
				p->state = S_CHUNK_EXT;
			} else if (p->token_len > 0 && (c == '\r' || c == '\n')) {
				uint8_t next = p->remaining ? S_CHUNK_DATA : S_TRAILER_START;
				if (c == '\r') {
					p->state = S_EXPECT_LF;
					p->after_lf = next;
				} else {
					p->state = next;
				}
			} else {
				fail(p, out);
				return len;
			}
			i++;
			break;
		}
		case S_CHUNK_EXT:
			if (c == '\n')
				p->state = p->remaining ? S_CHUNK_DATA : S_TRAILER_START;
			i++;
			break;
		case S_CHUNK_DATA: {
			i += http_take_body(&p->remaining, len - i);
			if (p->remaining == 0)
				p->state = S_CHUNK_DATA_END;
			break;
		}
		case S_CHUNK_DATA_END:
			if (c == '\r') {
				p->state = S_EXPECT_LF;
				p->after_lf = S_CHUNK_SIZE;
			} else if (c == '\n') {
				p->state = S_CHUNK_SIZE;
			} else {
				fail(p, out);
				return len;
			}
			p->token_len = 0;
			p->remaining = 0;
			i++;
			break;
		case S_TRAILER_START:
			if (c == '\r') {
				p->state = S_EXPECT_LF;
				p->after_lf = S_START;
			} else if (c == '\n') {
				p->state = S_START;
			} else {
				p->state = S_TRAILER_LINE;
			}
			i++;
			break;
		case S_TRAILER_LINE:
			if (c == '\n')
				p->state = S_TRAILER_START;
			i++;
			break;
		default: /* S_TUNNEL, S_NOT_HTTP, S_DESYNC: sticky */
			return len;
		}
	}
	return len;
}

size_t http_parser_plan(const struct http_parser *p, const struct iovec *iov, int iovcnt,
			size_t at[], uint32_t seen[], size_t max, struct http_parser *after)
{
	struct http_feed_result r;
	size_t count = 0, base = 0;
	*after = *p;
	for (int i = 0; i < iovcnt; i++) {
		const char *b = iov[i].iov_base;
		size_t off = 0, len = iov[i].iov_len;
		while (off < len) {
			off += http_parser_feed(after, b + off, len - off, &r);
			if (r.at_head_end && count < max) {
				seen[count] = r.seen;
				at[count++] = base + off;
			}
		}
		base += len;
	}
	return count;
}

void http_parser_advance(struct http_parser *p, const struct iovec *iov, int iovcnt, size_t n)
{
	struct http_feed_result r;
	for (int i = 0; i < iovcnt && n > 0; i++) {
		const char *b = iov[i].iov_base;
		size_t left = iov[i].iov_len < n ? iov[i].iov_len : n;
		n -= left;
		while (left > 0) {
			size_t used = http_parser_feed(p, b, left, &r);
			b += used;
			left -= used;
		}
	}
}

bool http_find_request_line(const char *line, size_t len, size_t *at, size_t *n)
{
	const unsigned char *s = (const unsigned char *)line, *end = s + len;
	for (const unsigned char *q = s; (q = memchr(q, '"', (size_t)(end - q))) != NULL;) {
		const unsigned char *p = ++q, *method = p;
		while (p < end && p - method < METHOD_MAX && http_is_tchar(*p))
			p++;
		if (p == method || p >= end || *p++ != ' ')
			continue;
		const unsigned char *target = p;
		while (p < end && *p > ' ' && *p != 0x7f)
			p++;
		if (p == target || end - p < 10 || *p++ != ' ')
			continue;
		if (memcmp(p, http_version_prefix, 7) != 0 || p[7] < '0' || p[7] > '9' ||
		    p[8] != '"')
			continue;
		*at = (size_t)(method - s);
		*n = (size_t)(p + 8 - method);
		return true;
	}
	return false;
}
