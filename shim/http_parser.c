/*
 * http_parser.c - incremental HTTP/1.x request-stream parser.
 *
 * A state machine per connection that takes its input in runs: each state
 * consumes as many bytes as it can in one step (SSE2 scans find the end of a
 * request target, of a header name's usual bytes and of a header line;
 * header values nobody asked for are skipped whole), and does to its state
 * exactly what taking the same bytes one at a time would, so any split of
 * the input gives the same reports. Body bytes are skipped in bulk. Header
 * values are captured only for the names the matcher lists (framing headers
 * and id headers), at most REQUEST_ID_MAX bytes each.
 *
 * Runs inside read hooks: no allocation, no I/O, no locks; bounded work per
 * input byte; never reads outside the buffer it is given (a 16-byte load
 * that would pass its end is moved back to end there, or made of smaller
 * loads).
 */
#include "http_parser.h"

#include <emmintrin.h>
#include <string.h>

#include "http_chars.h"

enum {
	METHOD_MAX = 32,
};

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

static const char connect_method[] = "CONNECT";

static const char http_version_prefix[] = "HTTP/1.";

/* RFC 9110 tchar: the bytes of methods and header names. */
const bool http_tchar[256] = {
	['!'] = 1, ['#'] = 1, ['$'] = 1, ['%'] = 1, ['&'] = 1, ['\''] = 1, ['*'] = 1,
	['+'] = 1, ['-'] = 1, ['.'] = 1, ['^'] = 1, ['_'] = 1, ['`'] = 1, ['|'] = 1, ['~'] = 1,
	['0' ... '9'] = 1, ['A' ... 'Z'] = 1, ['a' ... 'z'] = 1,
};

static void matcher_add(struct header_matcher *m, uint8_t entry, const char *name, uint8_t len)
{
	for (uint8_t i = 0; i < len; i++)
		m->name[entry][i] = (char)http_lower((unsigned char)name[i]);
	m->len[entry] = len;
}

void header_matcher_init(struct header_matcher *m, const struct reqid_config *cfg)
{
	memset(m, 0, sizeof(*m));
	matcher_add(m, M_CONTENT_LENGTH, "content-length", 14);
	matcher_add(m, M_TRANSFER_ENCODING, "transfer-encoding", 17);
	matcher_add(m, M_TRACEPARENT, "traceparent", 11);
	matcher_add(m, M_TRACESTATE, "tracestate", 10);
	m->traceparent_rank = RANK_NONE;
	for (uint8_t i = 0; i < cfg->header_count; i++) {
		matcher_add(m, (uint8_t)(M_FIRST_ID + i), cfg->headers[i].name, cfg->headers[i].len);
		if (cfg->headers[i].len == 11 && memcmp(cfg->headers[i].name, "traceparent", 11) == 0 &&
		    m->traceparent_rank == RANK_NONE)
			m->traceparent_rank = i;
	}
	m->sent_id = (uint8_t)(M_FIRST_ID + cfg->header_count);
	matcher_add(m, m->sent_id, cfg->response_header, cfg->response_header_len);
	m->count = (uint8_t)(m->sent_id + 1);
	for (unsigned c = 0; c < 256; c++)
		for (uint8_t i = 0; i < m->count; i++)
			if ((unsigned char)m->name[i][0] == http_lower((unsigned char)c))
				m->first[c] |= 1u << i;
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

void http_parser_init_joined(struct http_parser *p, const struct header_matcher *m)
{
	http_parser_init(p, m);
	p->in_first_line = false;
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

bool http_parser_in_head(const struct http_parser *p)
{
	/* A CR ending the request line or a header line waits for its LF;
	 * the blank line's CR already reported the head (end_headers). */
	uint8_t s = p->state == S_EXPECT_LF ? p->after_lf : p->state;
	return s >= S_METHOD && s <= S_HEADER_VALUE;
}

/* ---- scanning --------------------------------------------------------- */

/* What ends a request target: controls, SP and DEL. */
static inline unsigned target_end_bytes(__m128i x)
{
	__m128i del = _mm_cmpeq_epi8(x, _mm_set1_epi8(0x7f));
	return (unsigned)_mm_movemask_epi8(_mm_or_si128(http_in_range(x, 0, ' '), del));
}

static bool is_ows(unsigned char c)
{
	return c == ' ' || c == '\t';
}

/* ---- state ------------------------------------------------------------- */

/* Keeps the first REQUEST_LINE_MAX bytes of the request line. */
static void line_add(struct http_parser *p, const unsigned char *b, size_t n)
{
	size_t room = REQUEST_LINE_MAX - p->line_len;
	if (n > room)
		n = room;
	memcpy(p->request_line + p->line_len, b, n);
	p->line_len = (uint8_t)(p->line_len + n);
}

static void line_add_byte(struct http_parser *p, unsigned char c)
{
	if (p->line_len < REQUEST_LINE_MAX)
		p->request_line[p->line_len++] = (char)c;
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

/* How many of the n bytes at b, ASCII case folded, the lowercase name
 * (zero-padded to 16 bytes past n) begins with. b has `readable` bytes
 * before the end of its buffer. */
static size_t folded_match(const unsigned char *b, size_t n, size_t readable, const char *name)
{
	size_t k = 0;
	for (; k < n && readable - k >= 16; k += 16) {
		__m128i x = _mm_loadu_si128((const __m128i *)(b + k));
		x = _mm_or_si128(x, _mm_and_si128(http_in_range(x, 'A', 'Z'), _mm_set1_epi8(0x20)));
		__m128i same = _mm_cmpeq_epi8(x, _mm_loadu_si128((const __m128i *)(name + k)));
		unsigned differ = ~(unsigned)_mm_movemask_epi8(same) & 0xffff;
		if (differ)
			return k + (unsigned)__builtin_ctz(differ) < n ? k + (unsigned)__builtin_ctz(differ) : n;
	}
	if (k >= n)
		return n;
	while (k < n && (unsigned char)name[k] == http_lower(b[k]))
		k++;
	return k;
}

/* Bytes b[0, n) of a header name, all token characters, after the
 * token_len bytes taken before (b has `readable` bytes before the end of
 * its buffer): the entries still matching are those whose name goes on
 * with them. Taken one at a time, once no entry matches, the rest of the
 * name is skipped and token_len becomes UINT16_MAX; a name that still
 * matches is at most CONFIG_MAX_HEADER_NAME long, so token_len does not
 * saturate before that. */
static void name_advance(struct http_parser *p, const unsigned char *b, size_t n,
			 size_t readable)
{
	const struct header_matcher *m = p->matcher;
	uint32_t match = p->name_match, left = 0;
	size_t pos = p->token_len, longest = 0; /* most bytes an entry matched */
	while (match) {
		uint8_t e = (uint8_t)__builtin_ctz(match);
		match &= match - 1;
		/* An entry still matching is not shorter than the bytes taken. */
		size_t limit = m->len[e] - pos < n ? m->len[e] - pos : n;
		size_t k = folded_match(b, limit, readable, m->name[e] + pos);
		if (k == n)
			left |= 1u << e;
		if (k > longest)
			longest = k;
	}
	p->name_match = left;
	p->token_len = longest + 1 < n ? UINT16_MAX : (uint16_t)(pos + n);
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

/* Copies b[j, n) to out, at most room bytes, and returns how many; past
 * them only OWS may follow (it may be trailing), anything else sets
 * *overflow. */
static size_t add_capped(char *out, size_t room, const unsigned char *b, size_t j, size_t n,
			 bool *overflow)
{
	size_t take = room < n - j ? room : n - j;
	memcpy(out, b + j, take);
	for (j += take; j < n && !*overflow; j++)
		*overflow = !is_ows(b[j]);
	return take;
}

/* Bytes b[0, n) of a captured value (no CR or LF): leading OWS is not kept;
 * past a full buffer only OWS may follow, anything else overflows. */
static void value_add(struct http_parser *p, const unsigned char *b, size_t n)
{
	size_t j = 0;
	if (p->value_len == 0)
		while (j < n && is_ows(b[j]))
			j++;
	p->value_len = (uint8_t)(p->value_len + add_capped(p->value + p->value_len,
							   sizeof(p->value) - p->value_len, b,
							   j, n, &p->value_overflow));
}

/* Bytes b[0, n) of a tracestate header line (no CR or LF). The lines
 * combine as one list: a line's first byte other than OWS is preceded by
 * ',' if an earlier line stored any. OWS around a line's value is not kept,
 * nor counted against TRACESTATE_MAX; OWS past a full buffer may be
 * trailing and is let go. */
static void tracestate_add(struct http_parser *p, const unsigned char *b, size_t n)
{
	size_t j = 0;
	if (p->tracestate_line_empty) {
		while (j < n && is_ows(b[j]))
			j++;
		if (j == n)
			return;
		p->tracestate_line_empty = false;
		if (p->tracestate_len > 0 && p->tracestate_len < TRACESTATE_MAX)
			p->tracestate[p->tracestate_len++] = ',';
		else if (p->tracestate_len > 0)
			p->tracestate_overflow = true;
	}
	p->tracestate_len = (uint16_t)(p->tracestate_len +
				       add_capped(p->tracestate + p->tracestate_len,
						  TRACESTATE_MAX - p->tracestate_len, b, j, n,
						  &p->tracestate_overflow));
}

/* ---- one step per state -------------------------------------------------- */

/* Each step takes bytes of s from i (maybe none are left) while the state
 * stays the same, then the byte that moves it on, and returns where it
 * stopped: len once the bytes ran out or the stream was given up. */

/* The CR or LF at s[i] ends a line; next is the state after it. A CR waits
 * for its LF in S_EXPECT_LF, taken here when it is at hand. */
static size_t line_end(struct http_parser *p, const unsigned char *s, size_t i, size_t len,
		       uint8_t next)
{
	if (s[i] == '\n') {
		p->state = next;
		return i + 1;
	}
	p->after_lf = next;
	if (i + 1 < len && s[i + 1] == '\n') {
		p->state = next;
		return i + 2;
	}
	p->state = S_EXPECT_LF;
	return i + 1;
}

/* Empty lines before a request line, then its first byte. */
static size_t step_start(struct http_parser *p, const unsigned char *s, size_t i, size_t len,
			 struct http_feed_result *out)
{
	while (i < len && (s[i] == '\r' || s[i] == '\n'))
		i++;
	if (i == len)
		return len;
	unsigned char c = s[i];
	if (!http_is_tchar(c)) {
		fail(p, out);
		return len;
	}
	begin_request(p);
	out->requests_started++;
	p->state = S_METHOD;
	p->connect = c == (unsigned char)connect_method[0];
	p->token_len = 1;
	line_add_byte(p, c);
	return i + 1;
}

/* The method (at most METHOD_MAX token characters; a longer one's first
 * extra byte is kept before failing), then the SP after it. */
static size_t step_method(struct http_parser *p, const unsigned char *s, size_t i, size_t len,
			  struct http_feed_result *out)
{
	for (; i < len; i++) {
		unsigned char c = s[i];
		if (c == ' ') {
			line_add_byte(p, c);
			p->connect &= p->token_len == sizeof(connect_method) - 1;
			p->state = S_TARGET;
			p->token_len = 0;
			return i + 1;
		}
		if (!http_is_tchar(c)) {
			fail(p, out);
			return len;
		}
		line_add_byte(p, c);
		if (p->token_len >= METHOD_MAX) {
			fail(p, out);
			return len;
		}
		p->connect &= p->token_len < sizeof(connect_method) - 1 &&
			      c == (unsigned char)connect_method[p->token_len];
		p->token_len++;
	}
	return len;
}

/* The request target (token_len 1 once it has a byte), then the SP after
 * it. */
static size_t step_target(struct http_parser *p, const unsigned char *s, size_t i, size_t len,
			  struct http_feed_result *out)
{
	size_t end = http_scan(s, i, len, target_end_bytes);
	if (end > i) {
		line_add(p, s + i, end - i);
		p->token_len = 1;
	}
	if (end == len)
		return len;
	if (s[end] != ' ' || p->token_len == 0) {
		fail(p, out);
		return len;
	}
	line_add_byte(p, ' ');
	p->state = S_VERSION;
	p->token_len = 0;
	return end + 1;
}

/* "HTTP/1." and a digit (token_len counts them; all eight at once when
 * they are at hand), then the line's end. */
static size_t step_version(struct http_parser *p, const unsigned char *s, size_t i, size_t len,
			   struct http_feed_result *out)
{
	if (p->token_len == 0 && len - i >= 8 && memcmp(s + i, http_version_prefix, 7) == 0 &&
	    s[i + 7] >= '0' && s[i + 7] <= '9') {
		line_add(p, s + i, 8);
		p->token_len = 8;
		i += 8;
	}
	for (; i < len; i++) {
		unsigned char c = s[i];
		if (p->token_len < sizeof(http_version_prefix) - 1) {
			if (c != (unsigned char)http_version_prefix[p->token_len])
				break;
		} else if (p->token_len == sizeof(http_version_prefix) - 1) {
			if (c < '0' || c > '9')
				break;
		} else if (c == '\r' || c == '\n') {
			p->in_first_line = false;
			p->after_lf = S_HEADER_START;
			return line_end(p, s, i, len, S_HEADER_START);
		} else {
			break;
		}
		line_add_byte(p, c);
		p->token_len++;
	}
	if (i == len)
		return len;
	fail(p, out);
	return len;
}

/* Header name bytes, then the ':' that ends the name. */
static size_t step_header_name(struct http_parser *p, const unsigned char *s, size_t i,
			       size_t len, struct http_feed_result *out)
{
	size_t end = http_token_end(s, i, len);
	if (end > i && p->name_match)
		name_advance(p, s + i, end - i, len - i);
	else if (end > i)
		p->token_len = UINT16_MAX; /* no entry matches: skipped */
	if (end == len)
		return len;
	if (s[end] != ':') {
		fail(p, out);
		return len;
	}
	begin_value(p);
	p->state = S_HEADER_VALUE;
	return end + 1;
}

/* A header value, captured or skipped, then the line's end. */
static size_t step_header_value(struct http_parser *p, const unsigned char *s, size_t i,
				size_t len, struct http_feed_result *out)
{
	size_t end = http_scan(s, i, len, http_eol_bytes);
	if (p->capture == M_TRACESTATE)
		tracestate_add(p, s + i, end - i);
	else if (p->capture != RANK_NONE)
		value_add(p, s + i, end - i);
	if (end == len)
		return len;
	if (p->capture != RANK_NONE) {
		while (p->value_len > 0 && is_ows((unsigned char)p->value[p->value_len - 1]))
			p->value_len--;
		if (!finish_value(p)) {
			fail(p, out);
			return len;
		}
	}
	return line_end(p, s, end, len, S_HEADER_START);
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
		/* A step that moves on to the next state goes on into it (with
		 * no bytes left, that one takes none). */
		case S_START:
			i = step_start(p, s, i, len, out);
			if (p->state != S_METHOD)
				break;
			/* fall through */
		case S_METHOD:
			i = step_method(p, s, i, len, out);
			if (p->state != S_TARGET)
				break;
			/* fall through */
		case S_TARGET:
			i = step_target(p, s, i, len, out);
			if (p->state != S_VERSION)
				break;
			/* fall through */
		case S_VERSION:
			i = step_version(p, s, i, len, out);
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
				i = line_end(p, s, i, len, end_headers(p, out));
				break;
			}
			if (c == ' ' || c == '\t') {
				/* obs-fold: a continuation of the previous header. */
				p->id_tainted = true;
				p->capture = RANK_NONE;
				p->state = S_HEADER_VALUE;
				p->value_len = 0;
				i++;
				break;
			}
			if (!http_is_tchar(c)) {
				fail(p, out);
				return len;
			}
			p->name_match = p->matcher->first[c];
			p->token_len = 1;
			p->state = S_HEADER_NAME;
			i++;
			/* fall through */
		case S_HEADER_NAME:
			i = step_header_name(p, s, i, len, out);
			if (p->state != S_HEADER_VALUE)
				break;
			/* fall through */
		case S_HEADER_VALUE:
			i = step_header_value(p, s, i, len, out);
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
