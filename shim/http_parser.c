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
 * A head usually comes whole in one read: whole lines are taken a line at a
 * time (take_lines), a header name found from the line's first blocks and
 * compared only once complete, against the entries of its first byte and
 * length; the line's end found 32 bytes a step. Anything else is left to
 * the steps, and both leave the same state: what a header line's name and
 * value leave behind, read only while that line is read, is cleared at its
 * end (header_line_done).
 *
 * Runs inside read hooks: no allocation, no I/O, no locks; bounded work per
 * input byte; never reads outside the buffer it is given (a 16-byte load
 * that would pass its end is moved back to end there, or made of smaller
 * loads).
 */
#include "http_parser.h"

#include <emmintrin.h>
#include <string.h>

#include "fork_hot.h"
#include "http_chars.h"
#include "short_copy.h"

enum {
	METHOD_MAX = 32,
};

/* enum parser_state: http_parser.h (http_parser_in_head reads it). */

static const char connect_method[] = "CONNECT";

/* "GET " as the four bytes of a request line's start, read as one. */
static const uint32_t get_method = 'G' | 'E' << 8 | 'T' << 16 | (uint32_t)' ' << 24;

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
	matcher_add(m, M_EXPECT, "expect", 6);
	matcher_add(m, M_UPGRADE, "upgrade", 7);
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
	m->presence_only = 1u << m->sent_id | 1u << M_EXPECT | 1u << M_UPGRADE;
	/* The bytes a name may start with: its first byte (lowercase), and that
	 * letter's uppercase. Every process builds this at start. */
	for (uint8_t i = 0; i < m->count; i++) {
		unsigned char c = (unsigned char)m->name[i][0];
		m->first[c] |= 1u << i;
		if (c >= 'a' && c <= 'z')
			m->first[c & ~0x20u] |= 1u << i;
	}
	for (uint8_t i = 0; i < m->count; i++) {
		m->by_len[m->len[i]] |= 1u << i;
		for (uint8_t j = 0; j < m->count; j++)
			if (m->len[j] == m->len[i] &&
			    memcmp(m->name[j], m->name[i], m->len[i]) == 0)
				m->twins[i] |= 1u << j;
	}
}

FORK_PATH void http_parser_init(struct http_parser *p, const struct header_matcher *m)
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

bool http_parser_in_tunnel(const struct http_parser *p)
{
	return p->state == S_TUNNEL;
}

FORK_PATH bool http_starts_tls(const char *buf, size_t len)
{
	return len > 0 && buf[0] == 0x16 && (len == 1 || buf[1] == 0x03);
}

/* A name of a CGI variable as gateway protocols send it. */
static bool cgi_name_char(unsigned char c)
{
	return (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_';
}

bool http_starts_gateway(const char *buf, size_t len)
{
	static const char scgi_first[] = "CONTENT_LENGTH"; /* and its NUL */
	const unsigned char *s = (const unsigned char *)buf;
	if (len == 0)
		return false;
	/* FastCGI: version 1, then BEGIN_REQUEST or GET_VALUES */
	if (s[0] == 1)
		return len == 1 || s[1] == 1 || s[1] == 9;
	/* SCGI: a netstring of the headers, CONTENT_LENGTH first */
	if (s[0] >= '0' && s[0] <= '9') {
		size_t i = 1;
		while (i < len && i < 8 && s[i] >= '0' && s[i] <= '9')
			i++;
		if (i == len || s[i] != ':')
			return false;
		size_t n = len - i - 1 < sizeof(scgi_first) ? len - i - 1 : sizeof(scgi_first);
		return memcmp(s + i + 1, scgi_first, n) == 0;
	}
	/* uwsgi: modifier1 (no token character: a request's method would be
	 * one), the packet's size, modifier2 0; then the first variable's
	 * length (little-endian) and its name. Fewer than 4 bytes that begin
	 * with modifier1 0 (WSGI's, the common one) may be its start: the
	 * connection then gets no id rather than one made up for all its
	 * requests (the parser fails at the first byte, so this read
	 * decides). Other first bytes keep their protocols' connection ids
	 * (SOCKS5's 3-byte greeting, MQTT read a byte at a time). */
	if (http_is_tchar(s[0]))
		return false;
	if (len < 4)
		return s[0] == 0;
	if (s[3] != 0)
		return false;
	if (len < 6)
		return true;
	size_t name_len = (size_t)s[4] | (size_t)s[5] << 8;
	if (name_len == 0 || name_len > 64)
		return false;
	for (size_t i = 6; i < len && i < 6 + name_len; i++)
		if (!cgi_name_char(s[i]))
			return false;
	return true;
}

/* A PROXY protocol version 2 header's first 12 bytes. */
static const char proxy_v2_signature[] = "\r\n\r\n\0\r\nQUIT\n";
#define PROXY_V2_SIGNATURE_LEN (sizeof(proxy_v2_signature) - 1)

bool http_proxy_v2_rest(const char *buf, size_t len)
{
	enum { TAKEN = 4 }; /* "\r\n\r\n", which the parser skipped */
	size_t i = 0;
	while (i < len && i < TAKEN && (buf[i] == '\r' || buf[i] == '\n'))
		i++;
	size_t n = len - i < PROXY_V2_SIGNATURE_LEN - TAKEN ? len - i : PROXY_V2_SIGNATURE_LEN - TAKEN;
	return n > 0 && memcmp(buf + i, proxy_v2_signature + TAKEN, n) == 0;
}

bool http_starts_h2(const char *buf, size_t len)
{
	static const char preface[] = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
	size_t n = len < sizeof(preface) - 1 ? len : sizeof(preface) - 1;
	return len >= 12 && memcmp(buf, preface, n) == 0;
}

size_t http_proxy_header_len(const char *buf, size_t len)
{
	static const char v1[] = "PROXY ";
	enum { V1_MAX = 107, V2_FIXED = 16 };
	if (len >= sizeof(v1) - 1 && memcmp(buf, v1, sizeof(v1) - 1) == 0) {
		size_t end = len < V1_MAX ? len : V1_MAX;
		for (size_t i = sizeof(v1) - 1; i + 1 < end; i++)
			if (buf[i] == '\r' && buf[i + 1] == '\n')
				return i + 2;
		return len < V1_MAX ? SIZE_MAX : 0;
	}
	/* "\r\n\r\n" may be blank lines before a request; the NUL is not. */
	if (len < 5 || memcmp(buf, proxy_v2_signature,
			      len < PROXY_V2_SIGNATURE_LEN ? len : PROXY_V2_SIGNATURE_LEN) != 0)
		return 0;
	if (len < V2_FIXED)
		return SIZE_MAX;
	if (((unsigned char)buf[12] >> 4) != 2)
		return 0;
	size_t total = V2_FIXED + ((size_t)(unsigned char)buf[14] << 8 | (unsigned char)buf[15]);
	return len >= total ? total : SIZE_MAX;
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
	copy_bytes(p->request_line + p->line_len, b, n);
	p->line_len = (uint8_t)(p->line_len + n);
}

static void line_add_byte(struct http_parser *p, unsigned char c)
{
	if (p->line_len < REQUEST_LINE_MAX)
		p->request_line[p->line_len++] = (char)c;
}

/* version_seen: VERSION_IN_VALUE, a value held "HTTP/1." (what a request
 * line ends with: "GET /x HTTP/1.1"), wherever in it: a server that joins
 * a repeated header ("GET /x," and "HTTP/1.1", lighttpd's ", ") or logs
 * one with no space after its ':' quotes a line made of values that hold
 * no " HTTP/1." each; and, for the steps, which take a value in pieces, in
 * the low bits how many bytes of "HTTP/1." the value read so far ends
 * with. */
#define VERSION_IN_VALUE 0x80
#define VERSION_IN_BODY 0x40 /* the body read so far held it (reported) */
#define VERSION_MATCHED 0x07

/* The head's fields before its text (from content_length on), as a
 * request line's first byte leaves them: nothing seen, nothing captured,
 * no id kept; connect as its callers set it. Copied in one go. */
#define HEAD_FIELDS offsetof(struct http_parser, content_length)
#define HEAD_FIELD(f) (offsetof(struct http_parser, f) - HEAD_FIELDS)
static const unsigned char head_begun[offsetof(struct http_parser, value) - HEAD_FIELDS] = {
	[HEAD_FIELD(capture)] = RANK_NONE,
	[HEAD_FIELD(best_rank)] = RANK_NONE,
	[HEAD_FIELD(tracestate_line_empty)] = true,
};

static void begin_request(struct http_parser *p)
{
	memcpy((char *)p + HEAD_FIELDS, head_begun, sizeof(head_begun));
	p->version_seen = 0;
}

/* Unparseable bytes: within the connection's first request line they mean
 * the connection is not HTTP; anywhere later the stream is lost. */
static void fail(struct http_parser *p, struct http_feed_result *out)
{
	p->version_seen = 0; /* no head follows; found or not, whole or in pieces */
	if (!http_parser_in_head(p))
		p->line_len = 0; /* no request line began: none is kept */
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

/* The complete value v (n <= REQUEST_ID_MAX bytes) of the id header of
 * precedence rank: kept if no id of a higher rank was, and it is a valid
 * id. */
static inline __attribute__((always_inline)) void keep_id(struct http_parser *p, uint8_t rank,
							  const char *v, size_t n)
{
	if (rank < p->best_rank && request_id_is_valid(v, n)) {
		p->best_rank = rank;
		p->best_len = (uint8_t)n;
		copy_bytes(p->best, v, n);
	}
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
	if (!p->value_overflow)
		keep_id(p, (uint8_t)(idx - M_FIRST_ID), p->value, p->value_len);
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
	out->version_in_value = p->version_seen & VERSION_IN_VALUE;
	out->line_len = p->line_len;
	copy_bytes(out->line, p->request_line, p->line_len);
	report_trace(p, out);
	if (!p->id_tainted) {
		bool tp = out->trace_valid && m->traceparent_rank < p->best_rank;
		if (tp) {
			memcpy(out->id, p->traceparent.trace_id, sizeof(p->traceparent.trace_id));
			out->id_len = sizeof(p->traceparent.trace_id);
		} else if (p->best_rank != RANK_NONE) {
			copy_bytes(out->id, p->best, p->best_len);
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

/* x with its ASCII letters lowercased. */
static inline __m128i fold_case(__m128i x)
{
	return _mm_or_si128(x, _mm_and_si128(http_in_range(x, 'A', 'Z'), _mm_set1_epi8(0x20)));
}

/* How many of the n bytes at b, ASCII case folded, the lowercase name
 * (zero-padded to 16 bytes past n) begins with. b has `readable` bytes
 * before the end of its buffer. */
static size_t folded_match(const unsigned char *b, size_t n, size_t readable, const char *name)
{
	size_t k = 0;
	for (; k < n && readable - k >= 16; k += 16) {
		__m128i same = _mm_cmpeq_epi8(fold_case(_mm_loadu_si128((const __m128i *)(b + k))),
					      _mm_loadu_si128((const __m128i *)(name + k)));
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

/* The entries a complete header name (name_match, token_len) names
 * exactly. */
static uint32_t named_entries(const struct http_parser *p)
{
	const struct header_matcher *m = p->matcher;
	uint32_t named = 0;
	for (uint32_t match = p->name_match; match; match &= match - 1) {
		uint8_t i = (uint8_t)__builtin_ctz(match);
		if (m->len[i] == p->token_len)
			named |= 1u << i;
	}
	return named;
}

/* A whole header name of n bytes at b (token characters, then ':') that
 * the entries `entries` (not none) begin like, whose first bytes are those
 * of x (b has `readable` bytes before the end of its buffer): sets
 * name_match and token_len as S_HEADER_START and name_advance leave them for
 * the same bytes, and returns the entries it names. A name shorter than a
 * block is compared with each entry in one step: the entries sharing all n
 * bytes still match, and one sharing the first n - 1 keeps it from having
 * been skipped. */
static inline __attribute__((always_inline)) uint32_t
name_take(struct http_parser *p, uint32_t entries, __m128i x, const unsigned char *b, size_t n,
	  size_t readable)
{
	const struct header_matcher *m = p->matcher;
	if (n >= 16) {
		p->name_match = entries;
		p->token_len = 1;
		name_advance(p, b + 1, n - 1, readable - 1);
		return named_entries(p);
	}
	x = fold_case(x);
	unsigned all = (1u << n) - 1, all_but_last = all >> 1;
	uint32_t match = 0, named = 0;
	bool kept = false;
	while (entries) {
		uint8_t e = (uint8_t)__builtin_ctz(entries);
		entries &= entries - 1;
		unsigned differ = ~(unsigned)_mm_movemask_epi8(
			_mm_cmpeq_epi8(x, _mm_loadu_si128((const __m128i *)m->name[e])));
		kept |= (differ & all_but_last) == 0;
		if ((differ & all) == 0) {
			match |= 1u << e;
			if (m->len[e] == n)
				named |= 1u << e;
		}
	}
	p->name_match = match;
	p->token_len = kept ? (uint16_t)n : UINT16_MAX;
	return named;
}

/* The entries that a whole header name of n < 16 bytes, whose first bytes
 * are those of x, names exactly, of the entries `entries` its first byte
 * allows: what name_take returns, without the state a later byte of the
 * name would need. Only entries of its length are compared, and entries of
 * the same name once. */
static inline __attribute__((always_inline)) uint32_t
names_of(const struct header_matcher *m, uint32_t entries, __m128i x, size_t n)
{
	x = fold_case(x);
	unsigned all = (1u << n) - 1;
	uint32_t named = 0;
	for (uint32_t left = entries & m->by_len[n]; left;) {
		uint8_t e = (uint8_t)__builtin_ctz(left);
		left &= ~m->twins[e];
		unsigned same = (unsigned)_mm_movemask_epi8(
			_mm_cmpeq_epi8(x, _mm_loadu_si128((const __m128i *)m->name[e])));
		if ((~same & all) == 0)
			named |= m->twins[e];
	}
	return named;
}

/* Header name complete at ':' naming the entries `named`: note them and
 * choose what to capture (the first of them, unless it is only the sent
 * id header, Expect or Upgrade, whose presence alone matters). */
static void begin_value(struct http_parser *p, uint32_t named)
{
	p->seen |= named;
	named &= ~p->matcher->presence_only;
	p->capture = named ? (uint8_t)__builtin_ctz(named) : RANK_NONE;
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

/* A header line ended (its value captured, if it was, and finished): its
 * name's and value's state is read again only after the next name, so it is
 * cleared, to be the same however the line was read. */
static void header_line_done(struct http_parser *p)
{
	p->version_seen &= VERSION_IN_VALUE;
	p->name_match = 0;
	p->token_len = 0;
	p->value_len = 0;
	p->value_overflow = false;
	p->tracestate_line_empty = true;
}

/* ---- request lines quoted in header values ------------------------------ */

/* The bytes of x equal to c, as a block. */
static inline __m128i block_equal(__m128i x, char c)
{
	return _mm_cmpeq_epi8(x, _mm_set1_epi8(c));
}

/* Bits of the 16 bytes at x equal to c. */
static inline unsigned bytes_equal(__m128i x, char c)
{
	return (unsigned)_mm_movemask_epi8(block_equal(x, c));
}

/* Whether the '/' at b[j] (n bytes at b) is that of "HTTP/1.". */
static inline bool version_slash(const unsigned char *b, size_t j, size_t n)
{
	return j >= 4 && j + 2 < n && memcmp(b + j - 4, "HTTP", 4) == 0 && b[j + 1] == '1' &&
	       b[j + 2] == '.';
}

/* Whether the header lines at b (n bytes, whole lines: no name holds a
 * '/') hold a value with "HTTP/1." in it, as a request line copied into a
 * header, or its end in a repeated one, has: a server that logs that
 * header quotes what looks like another request's line. A block at a
 * time, the last one moved back to end at n (its slashes seen twice change
 * nothing). */
static inline __attribute__((always_inline)) bool
lines_name_version(const unsigned char *b, size_t n)
{
	if (n < 16) {
		for (size_t j = 0; j < n; j++)
			if (b[j] == '/' && version_slash(b, j, n))
				return true;
		return false;
	}
	for (size_t k = 0;; k += 16) {
		if (k > n - 16)
			k = n - 16;
		__m128i x = _mm_loadu_si128((const __m128i *)(b + k));
		for (unsigned m = bytes_equal(x, '/'); m; m &= m - 1)
			if (version_slash(b, k + (unsigned)__builtin_ctz(m), n))
				return true;
		if (k == n - 16)
			return false;
	}
}

#define VERSION_FOUND 8 /* version_match: "HTTP/1." ended in the bytes */

/* How many bytes of "HTTP/1." bytes b[0, n) end with, going on from a
 * match of matched bytes an earlier piece ended in; VERSION_FOUND if the
 * whole of it is in them (the bytes after it are not looked at). An 'H' at
 * a time (memchr): its 'H' is first only, so a byte that breaks a match
 * starts one only if it is an 'H'. */
static unsigned version_match(unsigned matched, const unsigned char *b, size_t n)
{
	static const char pattern[] = "HTTP/1.";
	const size_t want = sizeof(pattern) - 1;
	size_t k = 0;
	while (matched > 0 && k < n) {
		if (b[k] != (unsigned char)pattern[matched])
			break;
		k++;
		if (++matched == want)
			return VERSION_FOUND;
	}
	if (k < n)
		matched = 0;
	for (const unsigned char *h; k < n && (h = memchr(b + k, 'H', n - k)); k++) {
		k = (size_t)(h - b);
		size_t room = n - k < want ? n - k : want;
		if (memcmp(h, pattern, room) != 0)
			continue;
		if (room == want)
			return VERSION_FOUND;
		return (unsigned)room; /* the piece ends inside it */
	}
	return matched;
}
_Static_assert(sizeof("HTTP/1.") - 1 <= VERSION_MATCHED && VERSION_FOUND > VERSION_MATCHED,
	       "a match in progress fits VERSION_MATCHED");

/* The same for a piece b[0, n) of a value the steps read, which may have
 * begun in an earlier piece. */
static __attribute__((noinline)) void value_piece(struct http_parser *p, const unsigned char *b,
						    size_t n)
{
	if (p->version_seen & VERSION_IN_VALUE)
		return;
	unsigned matched = version_match(p->version_seen & VERSION_MATCHED, b, n);
	p->version_seen = (uint8_t)(matched == VERSION_FOUND ? VERSION_IN_VALUE : matched);
}

/* Body bytes b[0, n) of the current request: the first "HTTP/1." in a body
 * is reported (version_in_body), so a body costs a scan of its bytes. */
static __attribute__((noinline)) void body_piece(struct http_parser *p, const unsigned char *b,
						   size_t n, struct http_feed_result *out)
{
	unsigned matched = version_match(p->version_seen & VERSION_MATCHED, b, n);
	p->version_seen = (uint8_t)((p->version_seen & ~VERSION_MATCHED) |
				    (matched == VERSION_FOUND ? VERSION_IN_BODY : matched));
	out->version_in_body |= matched == VERSION_FOUND;
}

/* Bytes b[0, n) of the value being captured (no CR or LF). */
static void capture_add(struct http_parser *p, const unsigned char *b, size_t n)
{
	if (p->capture == M_TRACESTATE)
		tracestate_add(p, b, n);
	else
		value_add(p, b, n);
}

/* The captured value's line ended: trailing OWS goes, then finish_value. */
static bool capture_end(struct http_parser *p)
{
	while (p->value_len > 0 && is_ows((unsigned char)p->value[p->value_len - 1]))
		p->value_len--;
	return finish_value(p);
}

/* A captured value whole in the buffer, b[0, n), its line's end after it:
 * leaves the parser as capture_add and capture_end do, in one go when the
 * value without the OWS around it fits the value buffer. False if it breaks
 * the framing. */
static bool take_value(struct http_parser *p, const unsigned char *b, size_t n)
{
	size_t start = 0, end = n;
	while (start < end && is_ows(b[start]))
		start++;
	while (end > start && is_ows(b[end - 1]))
		end--;
	if (p->capture == M_TRACESTATE || end - start > sizeof(p->value)) {
		capture_add(p, b, n);
		return capture_end(p);
	}
	uint8_t idx = p->capture;
	if (idx >= M_FIRST_ID) {
		/* An id: kept (keep_id) straight from the buffer. The value
		 * the steps would leave is read by nothing once its line ends
		 * (header_line_done; take_lines takes the whole line). */
		p->capture = RANK_NONE;
		keep_id(p, (uint8_t)(idx - M_FIRST_ID), (const char *)b + start, end - start);
		return true;
	}
	/* The bytes value_add copies: trailing OWS too, as far as it fits. */
	copy_bytes(p->value, b + start,
		   n - start < sizeof(p->value) ? n - start : sizeof(p->value));
	p->value_len = (uint8_t)(end - start);
	return finish_value(p);
}

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

/* ---- whole lines ---------------------------------------------------------- */

/* A head usually comes whole in one read. These take a whole request line
 * or header line in one go when it is all at hand and ordinary, and leave
 * the parser exactly as the steps would for the same bytes; a line that is
 * not whole, or has anything the steps treat specially (a bad byte, a CR
 * without its LF, a continuation line, the blank line), is left to the
 * steps untouched. A line is looked at from its first 16-byte blocks. */

/* Bytes 0x08 to 0x0f, one bit each: CR and LF, and a few control bytes
 * that header values seldom hold, found with one compare. */
static inline unsigned near_eol_bytes(__m128i x)
{
	return (unsigned)_mm_movemask_epi8(
		_mm_cmpeq_epi8(_mm_or_si128(x, _mm_set1_epi8(7)), _mm_set1_epi8(0x0f)));
}

/* The first CR or LF in s[from, len), or len: 32 bytes a step, stopping at
 * the bytes near_eol_bytes finds and going on past those that are not CR or
 * LF; the last 31 bytes or fewer as http_scan takes them. */
static inline __attribute__((always_inline)) size_t
find_eol(const unsigned char *s, size_t from, size_t len)
{
	while (len - from >= 32) {
		unsigned near =
			near_eol_bytes(_mm_loadu_si128((const __m128i *)(s + from))) |
			near_eol_bytes(_mm_loadu_si128((const __m128i *)(s + from + 16))) << 16;
		if (near == 0) {
			from += 32;
			continue;
		}
		from += (unsigned)__builtin_ctz(near);
		if (s[from] == '\r' || s[from] == '\n')
			return from;
		from++;
	}
	return http_scan(s, from, len, http_eol_bytes);
}

/* The request line from s[i], a token character: when "METHOD SP target SP
 * HTTP/1.d" and its CRLF or LF are all at hand, takes it and returns where
 * the next line begins (in S_HEADER_START); else returns i. The method is
 * letters, digits and '-', its space at most 16 bytes in (others are left
 * to the steps). */
static size_t take_request_line(struct http_parser *restrict p, const unsigned char *restrict s,
				size_t i, size_t len, struct http_feed_result *out)
{
	if (len - i <= 16)
		return i;
	__m128i x = _mm_loadu_si128((const __m128i *)(s + i));
	/* "GET ", the usual method, is known by its bytes. */
	uint32_t head;
	memcpy(&head, s + i, 4);
	size_t method_end = head == get_method ? i + 3
			    : i + (unsigned)__builtin_ctz(http_unusual_name_bytes(x) | 1u << 16);
	if (s[method_end] != ' ')
		return i;
	/* The target's end in the rest of the block, else past it (a
	 * method of 16 bytes leaves none of the target in the block). */
	size_t target = method_end + 1;
	unsigned target_ends = target_end_bytes(x) >> (target - i);
	size_t target_end = target_ends ? target + (unsigned)__builtin_ctz(target_ends)
					: http_scan(s, target > i + 16 ? target : i + 16, len,
						    target_end_bytes);
	if (target_end == target || len - target_end < 10 || s[target_end] != ' ')
		return i;
	const unsigned char *version = s + target_end + 1;
	if (memcmp(version, http_version_prefix, 7) != 0 || version[7] < '0' || version[7] > '9')
		return i;
	size_t eol = target_end + 9, next = eol + 1;
	if (s[eol] == '\r' && next < len && s[next] == '\n')
		next++;
	else if (s[eol] != '\n')
		return i;
	begin_request(p);
	out->requests_started++;
	p->connect = method_end - i == sizeof(connect_method) - 1 &&
		     memcmp(s + i, connect_method, sizeof(connect_method) - 1) == 0;
	size_t kept = eol - i < REQUEST_LINE_MAX ? eol - i : REQUEST_LINE_MAX;
	copy_bytes(p->request_line, s + i, kept);
	p->line_len = (uint8_t)kept;
	p->token_len = 8;
	p->in_first_line = false;
	p->after_lf = S_HEADER_START;
	p->state = S_HEADER_START;
	return next;
}

/* Where a header line's ':' and end are. */
struct header_line {
	__m128i first; /* its first 16 bytes, zero past the buffer's end */
	size_t colon;
	size_t eol;    /* its CR or LF; the buffer's length: not a whole
			* "name:value" line with a token name */
};

/* The line from s[i] (4 <= len - i) as header_line_at sees it, for lines
 * other than the usual one: a name that does not end inside the first
 * block, or has other token characters than letters, digits and '-', a
 * line near the buffer's end, a bad line. */
static FORK_PATH_LATE __attribute__((noinline)) struct header_line
header_line_general(const unsigned char *s, size_t i, size_t len)
{
	struct header_line l = { .eol = len };
	l.first = len - i >= 16 ? _mm_loadu_si128((const __m128i *)(s + i))
				: http_load_short(s + i, len - i);
	l.colon = http_token_end(s, i, len);
	if (l.colon != i && l.colon != len && s[l.colon] == ':')
		l.eol = find_eol(s, l.colon + 1, len);
	return l;
}

/* The line from s[i], 4 <= len - i. The usual one, its name letters,
 * digits and '-' ending inside its first two blocks, has its name found
 * from them alone. */
static inline __attribute__((always_inline)) struct header_line
header_line_at(const unsigned char *s, size_t i, size_t len)
{
	if (len - i > 16) {
		struct header_line l;
		l.first = _mm_loadu_si128((const __m128i *)(s + i));
		unsigned stops = http_unusual_name_bytes(l.first);
		if (stops == 0 && len - i > 32)
			stops = http_unusual_name_bytes(
					_mm_loadu_si128((const __m128i *)(s + i + 16))) << 16;
		l.colon = i + (unsigned)__builtin_ctz(stops | 1u << 31);
		if (stops != 0 && s[l.colon] == ':' && l.colon != i) {
			l.eol = find_eol(s, l.colon + 1, len);
			return l;
		}
	}
	return header_line_general(s, i, len);
}

/* The whole header line l from s[i], whose name some of the entries
 * `entries` begin like: notes the entries it names and takes a captured
 * value. The name's state that the steps keep while reading a name is not
 * needed past its ':' (header_line_done clears it at the line's end), but
 * where a captured value breaks the framing the stream fails there: then
 * it is set as the steps leave it, and this returns false. */
static inline __attribute__((always_inline)) bool
take_named_line(struct http_parser *restrict p, const unsigned char *restrict s, size_t i,
		struct header_line l, size_t len, uint32_t entries, struct http_feed_result *out)
{
	size_t n = l.colon - i;
	begin_value(p, n < 16 ? names_of(p->matcher, entries, l.first, n)
			      : name_take(p, entries, l.first, s + i, n, len - i));
	if (p->capture == RANK_NONE || take_value(p, s + l.colon + 1, l.eol - l.colon - 1))
		return true;
	name_take(p, entries, l.first, s + i, n, len - i);
	fail(p, out);
	return false;
}

/* Whole lines from s[i], the start of a line: in S_START (s[i] a token
 * character) a request line, then in S_HEADER_START "name:value" lines (a
 * token name, CRLF or LF), then the blank line that ends the head unless
 * the parser is to pause there. Returns where the first line it could not
 * take begins (the steps take that one), or len once a captured value broke
 * the framing (as the steps would fail there). What every header line
 * leaves (header_line_done) is set once, at the end, and so is after_lf,
 * which a line ended by CRLF sets. */
static FORK_PATH __attribute__((noinline)) size_t
take_lines(struct http_parser *restrict p, const unsigned char *restrict s, size_t i, size_t len,
	   struct http_feed_result *out)
{
	const struct header_matcher *m = p->matcher;
	if (p->state == S_START) {
		size_t next = take_request_line(p, s, i, len, out);
		if (next == i)
			return i;
		i = next;
	}
	bool crlf = false;
	size_t first_line = i;
	while (len - i >= 4) {
		struct header_line l = header_line_at(s, i, len);
		if (l.eol == len)
			break;
		bool cr = s[l.eol] == '\r';
		if (cr && (l.eol + 1 == len || s[l.eol + 1] != '\n'))
			break;
		uint32_t entries = m->first[s[i]];
		if (entries && !take_named_line(p, s, i, l, len, entries, out)) {
			if (crlf)
				p->after_lf = S_HEADER_START;
			return len;
		}
		crlf |= cr;
		i = l.eol + 1 + cr;
	}
	if (i != first_line) {
		header_line_done(p);
		if (lines_name_version(s + first_line, i - first_line))
			p->version_seen |= VERSION_IN_VALUE;
	}
	if (crlf)
		p->after_lf = S_HEADER_START;
	if (i < len && (s[i] == '\r' || s[i] == '\n') && !(p->pause_at_heads && !p->paused)) {
		p->paused = false;
		i = line_end(p, s, i, len, end_headers(p, out));
	}
	return i;
}

/* ---- one step per state -------------------------------------------------- */

/* Each step takes bytes of s from i (maybe none are left) while the state
 * stays the same, then the byte that moves it on, and returns where it
 * stopped: len once the bytes ran out or the stream was given up. */

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
	size_t next = take_lines(p, s, i, len, out);
	if (next != i)
		return next;
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
	begin_value(p, named_entries(p));
	p->state = S_HEADER_VALUE;
	return end + 1;
}

/* A header value, captured or skipped, then the line's end. */
static size_t step_header_value(struct http_parser *p, const unsigned char *s, size_t i,
				size_t len, struct http_feed_result *out)
{
	size_t end = http_scan(s, i, len, http_eol_bytes);
	value_piece(p, s + i, end - i);
	if (p->capture != RANK_NONE)
		capture_add(p, s + i, end - i);
	if (end == len)
		return len;
	if (p->capture != RANK_NONE && !capture_end(p)) {
		fail(p, out);
		return len;
	}
	header_line_done(p);
	return line_end(p, s, end, len, S_HEADER_START);
}

/* The steps over s[i, len), each state's in turn: apart from
 * http_parser_feed, so that a read take_lines takes whole returns without
 * setting up this loop. */
static __attribute__((noinline)) size_t
feed_steps(struct http_parser *p, const unsigned char *s, size_t i, size_t len,
	   struct http_feed_result *out)
{
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
			i = take_lines(p, s, i, len, out);
			if (i == len || p->state != S_HEADER_START)
				break;
			c = s[i];
			if (c == '\r' || c == '\n') {
				/* take_lines leaves the blank line only to pause. */
				p->paused = true;
				out->at_head_end = true;
				out->seen = p->seen;
				return i;
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
			size_t n = http_take_body(&p->remaining, len - i);
			if (!(p->version_seen & VERSION_IN_BODY))
				body_piece(p, s + i, n, out);
			i += n;
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
			size_t n = http_take_body(&p->remaining, len - i);
			if (!(p->version_seen & VERSION_IN_BODY))
				body_piece(p, s + i, n, out);
			i += n;
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

FORK_PATH size_t http_parser_feed(struct http_parser *p, const char *buf, size_t len,
				  struct http_feed_result *out)
{
	const unsigned char *s = (const unsigned char *)buf;
	size_t i = 0;

	out->requests_started = 0;
	out->headers_completed = 0;
	out->not_http = false;
	out->desync = false;
	out->version_in_body = false;
	out->id_len = 0;
	out->at_head_end = false;

	/* The usual read: a request head from its first byte, taken as
	 * S_START would take it, without going through the steps. */
	if (p->state == S_START && len > 0 && http_is_tchar(s[0])) {
		i = take_lines(p, s, 0, len, out);
		if (i == len)
			return len;
	}
	return feed_steps(p, s, i, len, out);
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

/* Whether the '.' at p (before end) begins a "." or ".." segment: what
 * follows it, or the '.' after it, ends the path. */
static __attribute__((noinline)) bool dot_segment(const char *p, const char *end)
{
	if (++p < end && *p == '.')
		p++;
	return p == end || *p == '/' || *p == ' ' || *p == '?';
}

FORK_PATH enum line_logging http_request_line_logging(const char *line, size_t len,
						      size_t *path_end)
{
	size_t i = 0;
	/* "GET ", the usual method, is known by its bytes. */
	uint32_t head;
	if (len >= 4 && (memcpy(&head, line, 4), head == get_method))
		i = 3;
	else
		while (i < len && line[i] != ' ')
			if ((unsigned char)(line[i++] - 'a') < 26)
				return LINE_REWRITTEN;
	if (len - i < 3 || (line[i + 1] != '/' && (line[i + 1] != '*' || line[i + 2] != ' ')))
		return LINE_REWRITTEN;
	/* The path, to its query or the version: a byte a server decodes, or
	 * a slash it may take out (another after it, or a "." or ".."
	 * segment after it). 16 bytes at a time while 17 are left (a slash's
	 * next byte is in the block loaded one byte on), then one by one. */
	const char *p = line + i + 1, *end = line + len;
	while (end - p >= 17) {
		__m128i x = _mm_loadu_si128((const __m128i *)p);
		__m128i next = _mm_loadu_si128((const __m128i *)(p + 1));
		unsigned stop = (unsigned)_mm_movemask_epi8(
			_mm_or_si128(block_equal(x, ' '), block_equal(x, '?')));
		unsigned before = stop ? (stop & -stop) - 1 : 0xffffu;
		__m128i decoded = _mm_or_si128(_mm_or_si128(block_equal(x, '%'), block_equal(x, '\\')),
					       block_equal(x, '#'));
		if ((unsigned)_mm_movemask_epi8(decoded) & before)
			return LINE_REWRITTEN;
		__m128i slash_then = _mm_and_si128(
			block_equal(x, '/'), _mm_or_si128(block_equal(next, '/'), block_equal(next, '.')));
		for (unsigned m = (unsigned)_mm_movemask_epi8(slash_then) & before; m; m &= m - 1) {
			const char *slash = p + __builtin_ctz(m);
			if (slash[1] == '/' || dot_segment(slash + 1, end))
				return LINE_REWRITTEN;
		}
		if (stop) {
			p += __builtin_ctz(stop);
			goto path_ends;
		}
		p += 16;
	}
	for (; p < end && *p != ' ' && *p != '?'; p++)
		if (*p == '%' || *p == '\\' || *p == '#' ||
		    (*p == '/' && p + 1 < end && (p[1] == '/' || (p[1] == '.' && dot_segment(p + 1, end)))))
			return LINE_REWRITTEN;
path_ends:
	if (p == end || *p == ' ')
		return LINE_AS_IS;
	/* What follows the '?' is not looked at: a line a server logs with a
	 * '?' in it (its query decoded, or a fragment dropped) is only ever
	 * another request's with a query, and those name none. */
	*path_end = (size_t)(p - line);
	return LINE_OR_PATH;
}

bool http_first_line_names_version(const char *b, size_t n)
{
	const char *lf = memchr(b, '\n', n);
	size_t len = lf ? (size_t)(lf - b) : n;
	for (size_t i = 0; i + 5 <= len; i++)
		if ((b[i] | 0x20) == 'h' && (b[i + 1] | 0x20) == 't' && (b[i + 2] | 0x20) == 't' &&
		    (b[i + 3] | 0x20) == 'p' && b[i + 4] == '/')
			return true;
	return false;
}

/* How many of the 16 bytes at p may be in a request target, from the
 * first: up to a control byte, a space or DEL. */
static inline unsigned target_run16(const unsigned char *p)
{
	unsigned stop = target_end_bytes(_mm_loadu_si128((const __m128i *)p));
	return stop ? (unsigned)__builtin_ctz(stop) : 16;
}

/* The length of the quoted request line whose opening quote is just before
 * p ("METHOD SP target SP HTTP/1.d" and the closing quote), 0 if none. */
static size_t quoted_request_line(const unsigned char *p, const unsigned char *end)
{
	const unsigned char *method = p;
	const unsigned char *method_max = end - p > METHOD_MAX ? p + METHOD_MAX : end;
	while (p < method_max && http_is_tchar(*p))
		p++;
	if (p == method || p >= end || *p++ != ' ')
		return 0;
	const unsigned char *target = p;
	for (unsigned run = 16; run == 16 && end - p >= 16; p += run)
		run = target_run16(p);
	while (p < end && *p > ' ' && *p != 0x7f)
		p++;
	if (p == target || end - p < 10 || *p++ != ' ')
		return 0;
	if (memcmp(p, http_version_prefix, 7) != 0 || p[7] < '0' || p[7] > '9' || p[8] != '"')
		return 0;
	return (size_t)(p + 8 - method);
}

/* Whether the quote at q (q < end) may open a quoted request line, from
 * the two bytes after it: a method (a tchar) and then more of it or the
 * space after it. A quote that closes a field (a space or the line's end
 * after it) or opens a one-byte one ("-", which access logs write for an
 * empty field) does not, and quoted_request_line would return 0 for it:
 * it wants a tchar at q + 1, and at q + 2 a tchar or the space that ends
 * the method, with the target, a space and "HTTP/1.d\"" after that. */
static inline bool may_open_request_line(const unsigned char *q, const unsigned char *end)
{
	return end - q > 2 && http_is_tchar(q[1]) && (http_is_tchar(q[2]) || q[2] == ' ');
}

/* Whether a request line written bare may begin after byte c: a space, or
 * what a format puts around a field. */
static bool opens_field(unsigned char c)
{
	return c <= ' ' || (c < 0x80 && strchr("\"'[({<=:,;|", c) != NULL);
}

/* Whether the "HTTP/1.d" at version (start..end the line) ends a request
 * line written without quotes: "METHOD SP target SP" before it, the method
 * at the line's start or after a byte that opens a field. */
static bool ends_request_line(const unsigned char *start, const unsigned char *version,
			      const unsigned char *end)
{
	if (end - version < 8 || version[7] < '0' || version[7] > '9')
		return false;
	const unsigned char *p = version;
	if (p == start || *--p != ' ')
		return false;
	const unsigned char *target_end = p;
	while (p > start && p[-1] > ' ' && p[-1] != 0x7f)
		p--;
	if (p == target_end || p == start || *--p != ' ')
		return false;
	const unsigned char *method_end = p;
	while (p > start && method_end - p < METHOD_MAX && http_is_tchar(p[-1]))
		p--;
	return p < method_end && (p == start || opens_field(p[-1]));
}

/* Bits of the 16 bytes at b that are a '"' (a quoted request line may open
 * after it) or an 'H' (a version may begin there). */
static inline uint32_t quote_or_version(const unsigned char *b)
{
	__m128i x = _mm_loadu_si128((const __m128i *)b);
	return (uint32_t)_mm_movemask_epi8(_mm_or_si128(block_equal(x, '"'), block_equal(x, 'H')));
}

/* The same for the 32 bytes at b. */
static inline uint32_t quote_or_version32(const unsigned char *b)
{
	return quote_or_version(b) | quote_or_version(b + 16) << 16;
}

/* The same for a line of len bytes, len < 32: its first 16 and its last 16
 * (bits of the bytes both hold set by both), or byte by byte under 16. */
static inline uint32_t quote_or_version_short(const unsigned char *s, size_t len)
{
	if (len >= 16)
		return quote_or_version(s) | quote_or_version(s + len - 16) << (len - 16);
	uint32_t marks = 0;
	for (size_t j = 0; j < len; j++)
		if (s[j] == '"' || s[j] == 'H')
			marks |= 1u << j;
	return marks;
}

/* The line's '"' and 'H' bytes are taken in order, 32 at a time (the last
 * block is the line's last 32 bytes, the bits of those already seen masked
 * off). A quote may open the quoted request line; an 'H' outside it may
 * end a request line written without quotes: a format may quote a header
 * (a User-Agent) and write its own request line bare ("[GET / HTTP/1.1]"). */
LOOP_PATH bool http_find_request_line(const char *line, size_t len, size_t *at, size_t *n)
{
	const unsigned char *s = (const unsigned char *)line, *end = s + len;
	const unsigned char *opened = NULL, *after = s; /* the one found; past its closing quote */
	size_t found = 0;
	for (size_t i = 0; i < len; i += 32) {
		const unsigned char *b = s + i;
		uint32_t marks;
		if (len - i >= 32) {
			marks = quote_or_version32(b);
		} else if (len >= 32) {
			b = end - 32;
			marks = quote_or_version32(b) & ~0u << (32 - (len - i));
		} else {
			marks = quote_or_version_short(s, len);
		}
		for (; marks != 0; marks &= marks - 1) {
			const unsigned char *q = b + __builtin_ctz(marks);
			if (q < after)
				continue; /* inside the quoted request line found */
			if (*q == 'H') {
				if (end - q >= 7 && memcmp(q, http_version_prefix, 7) == 0 &&
				    ends_request_line(s, q, end))
					return false;
				continue;
			}
			if (!may_open_request_line(q, end))
				continue;
			size_t k = quoted_request_line(q + 1, end);
			if (k == 0)
				continue;
			if (found)
				return false; /* a second one: which is the line's is not known */
			found = k;
			opened = q + 1;
			after = opened + k + 1;
		}
	}
	if (found == 0)
		return false;
	*at = (size_t)(opened - s);
	*n = found;
	return true;
}
