/*
 * http_response.c - response framing, to find where a response's header
 * block ends.
 *
 * One state machine per connection that takes its input in runs, as the
 * request parser (http_parser.c) does: each step takes as many bytes as it
 * can and goes straight on into the next state while bytes are left.
 * Before it, the usual form of a response, in which most are written
 * whole, is taken a line at a time: "HTTP/1.x NNN " checked with one
 * 16-byte compare; each header line whose name is letters and '-', found
 * with 16-byte loads, its value skipped with 16-byte searches for the CRLF
 * or LF that ends it (Content-Length and Transfer-Encoding known by a
 * 16-byte compare, their values read as the states read them); then the
 * blank line and the body's bytes. The first line that is not in that form
 * (another token character in its name, the added header's name, other
 * control bytes in its value, a line a write cuts or that reaches into the
 * write's last 17 bytes) is left to the states: the usual header line is
 * still taken whole, its name found by an SSE2 search for the end of its
 * usual bytes (letters, digits, '-'); any other goes through the states of
 * a header line, its name matched run by run as a prefix of the names of
 * interest, a framing value read byte by byte.
 * Either way the parser ends exactly as taking the same bytes one at a time
 * would, so any split of the input gives the same points and the same
 * state. Body bytes are skipped in bulk.
 *
 * Runs inside write hooks: no allocation, no I/O, no locks; bounded work per
 * byte; never reads outside the buffer it is given (a 16-byte load that
 * would pass its end is moved back to end with it, or made of smaller
 * loads).
 */
#include "http_response.h"

#include <string.h>

#include "fork_hot.h"
#include "http_chars.h"

/* enum response_state: http_response.h (the inline queries read it). */

enum { N_CONTENT_LENGTH = 1, N_TRANSFER_ENCODING = 2, N_HEADER = 4 };

/* What the last Transfer-Encoding line said (coding): a response that has
 * one is chunked if its last coding is, else runs until close, whatever its
 * Content-Length (RFC 9112, 6.3). */
enum { CODING_NONE, CODING_CHUNKED, CODING_OTHER };

static const char version_prefix[] = "HTTP/1.";
static const char content_length[] = "content-length";
static const char transfer_encoding[] = "transfer-encoding";

/* ---- state ------------------------------------------------------------- */

/* The added header's name and its length (http_response_set_header):
 * every process sets them as it starts. */
static const char *added_name START_WRITTEN;
static uint8_t added_len START_WRITTEN;

START_PATH void http_response_set_header(const char *name, size_t len)
{
	added_name = name;
	added_len = (uint8_t)len;
}

FORK_PATH void http_response_init(struct http_response_parser *p, bool adds)
{
	memset(p, 0, sizeof(*p));
	p->header_len = adds ? added_len : 0;
	p->state = R_START;
}

void http_response_added(struct http_response_parser *p)
{
	p->has_header = true;
}

void http_response_stop(struct http_response_parser *p)
{
	p->state = R_STOPPED;
}

static void begin_response(struct http_response_parser *p)
{
	p->has_header = false;
	p->coding = CODING_NONE;
	p->has_length = false;
	p->status = 0;
	p->remaining = 0;
}

/* Gives up on the stream; returns n, where a step that gave up stops. */
static size_t stop(struct http_response_parser *p, size_t n)
{
	p->state = R_STOPPED;
	return n;
}

/* ---- header names ------------------------------------------------------ */

/* The 8 bytes of x with ASCII letters in lowercase, as http_lower does. */
static uint64_t lower8(uint64_t x)
{
	const uint64_t ones = 0x0101010101010101, high = 0x8080808080808080;
	uint64_t low7 = x & ~high;
	/* The high bit of each byte from 'A' (0x41) to 'Z' (0x5a): set by
	 * adding 0x3f, not by adding 0x25; no carry crosses a byte. Bytes from
	 * 0x80 on are left alone. */
	uint64_t upper = (low7 + 0x3f * ones) & ~(low7 + 0x25 * ones) & ~x & high;
	return x | upper >> 2;
}

/* b[0, n) equals name[0, n), ASCII case folded: 8 bytes at a time, the
 * last 8 read again from their end. */
static bool same_folded(const unsigned char *b, const char *name, size_t n)
{
	uint64_t x, y;
	if (n < 8) {
		for (size_t k = 0; k < n; k++)
			if (http_lower(b[k]) != http_lower((unsigned char)name[k]))
				return false;
		return true;
	}
	for (size_t k = 0;; k += 8) {
		if (k > n - 8)
			k = n - 8;
		memcpy(&x, b + k, 8);
		memcpy(&y, name + k, 8);
		if (lower8(x) != lower8(y))
			return false;
		if (k == n - 8)
			return true;
	}
}

/* The 0x20 bit of each byte of y that is a lowercase letter. */
static inline uint64_t letter_bits(uint64_t y)
{
	const uint64_t ones = 0x0101010101010101, high = 0x8080808080808080;
	uint64_t low7 = y & ~high;
	/* The high bit from 'a' (0x61) to 'z' (0x7a) of bytes below 0x80: set
	 * by adding 0x1f, not by adding 0x05; no carry crosses a byte. */
	return ((low7 + 0x1f * ones) & ~(low7 + 0x05 * ones) & ~y & high) >> 2;
}

/* b[0, n), any bytes, n >= 8, equals the lowercase name[0, n), ASCII case
 * folded: setting 0x20 in the bytes of b where name has a letter folds
 * them, and only a letter's other case becomes that letter so; the other
 * bytes must be the same. 8 bytes at a time, the last 8 read again from
 * their end; for a constant name the letters are known when compiling. */
static inline bool same_as_lowercase(const unsigned char *b, const char *name, size_t n)
{
	uint64_t x, y;
	for (size_t k = 0;; k += 8) {
		if (k > n - 8)
			k = n - 8;
		memcpy(&x, b + k, 8);
		memcpy(&y, name + k, 8);
		if ((x | letter_bits(y)) != y)
			return false;
		if (k == n - 8)
			return true;
	}
}

/* The name_match of a header name's first byte c: the names of interest
 * that begin with it, case folded. */
static uint8_t first_byte_names(const struct http_response_parser *p, unsigned char c)
{
	c = http_lower(c);
	return (uint8_t)((c == 'c' ? N_CONTENT_LENGTH : 0) | (c == 't' ? N_TRANSFER_ENCODING : 0) |
			 (p->header_len && c == http_lower((unsigned char)added_name[0]) ? N_HEADER : 0));
}

/* The n bytes at b, all token characters, continue the header name read so
 * far (token_len bytes): the name_match bits, as taking them one at a time
 * would leave them, of the names of interest the name is still a prefix of.
 * whole: the name ends there, so only names of exactly its length are left
 * (the ':' that follows would rule the others out). */
static uint8_t name_match_after(const struct http_response_parser *p, const unsigned char *b,
				size_t n, bool whole)
{
	size_t pos = p->token_len, end = pos + n;
	uint8_t m = p->name_match;
	/* Lengths first: they rule out most names without reading a byte. */
	if (whole ? end != 14 : end > 14)
		m &= (uint8_t)~N_CONTENT_LENGTH;
	if (whole ? end != 17 : end > 17)
		m &= (uint8_t)~N_TRANSFER_ENCODING;
	if (whole ? end != p->header_len : end > p->header_len)
		m &= (uint8_t)~N_HEADER;
	if ((m & N_CONTENT_LENGTH) && !same_folded(b, content_length + pos, n))
		m &= (uint8_t)~N_CONTENT_LENGTH;
	if ((m & N_TRANSFER_ENCODING) && !same_folded(b, transfer_encoding + pos, n))
		m &= (uint8_t)~N_TRANSFER_ENCODING;
	if ((m & N_HEADER) && !same_folded(b, added_name + pos, n))
		m &= (uint8_t)~N_HEADER;
	return m;
}

/* n more bytes of the header name: token_len counts them, up to
 * UINT16_MAX. */
static void add_name_len(struct http_response_parser *p, size_t n)
{
	size_t len = p->token_len + n;
	p->token_len = (uint16_t)(len < UINT16_MAX ? len : UINT16_MAX);
}

/* ---- header values ----------------------------------------------------- */

/* The bytes a Content-Length value may have after its leading OWS, trailing
 * OWS included: one more makes it no length. */
enum { LENGTH_VALUE_MAX = 24 };

/* The ':' after a header name (name_match: the names of interest it is).
 * Only a framing header's value is read: its fields start afresh. */
static void begin_value(struct http_response_parser *p)
{
	if (p->name_match & N_HEADER)
		p->has_header = true;
	if (!(p->name_match & (N_CONTENT_LENGTH | N_TRANSFER_ENCODING)))
		return;
	if (p->name_match & N_CONTENT_LENGTH)
		p->remaining = 0;
	p->value_len = 0;
	p->value_bad = false;
	p->value_spaced = false;
}

/* Content-Length's value from s[i] to its line's end (returned; n if it is
 * not in this write). Leading OWS is not the value's; the value is digits,
 * then maybe OWS, LENGTH_VALUE_MAX bytes at most, its number read into
 * remaining as the digits come. The first byte that makes it anything else
 * marks it bad; the rest of the line is then skipped whole and changes
 * nothing. */
static size_t length_value(struct http_response_parser *p, const unsigned char *s, size_t i,
			   size_t n)
{
	uint64_t v = p->remaining;
	unsigned len = p->value_len;
	bool spaced = p->value_spaced, bad = p->value_bad;
	for (; i < n && !bad; i++) {
		unsigned char c = s[i];
		unsigned digit = (unsigned)c - '0';
		if (digit <= 9 && !spaced && len < LENGTH_VALUE_MAX && v <= UINT64_MAX / 10 - 1) {
			v = v * 10 + digit;
			len++;
		} else if (c == '\r' || c == '\n') {
			break;
		} else if (c == ' ' || c == '\t') {
			if (len == LENGTH_VALUE_MAX) {
				bad = true;
			} else if (len > 0) {
				spaced = true;
				len++;
			}
		} else {
			bad = true;
		}
	}
	p->remaining = v;
	p->value_len = (uint8_t)len;
	p->value_spaced = spaced;
	p->value_bad = bad;
	return bad ? http_scan(s, i, n, http_eol_bytes) : i;
}

/* Content-Length's value from s[i], just after its ':', in its usual form:
 * a SP or none, 1 to 19 digits (too few to overflow), the line's end, all
 * in this write. Takes it as length_value would and returns where the line
 * ends; 0 if the value is not that (and nothing was taken). */
static inline size_t usual_length(struct http_response_parser *p, const unsigned char *s,
				  size_t i, size_t n)
{
	i += i < n && s[i] == ' ';
	size_t start = i, digits_end = n - i > 19 ? i + 19 : n;
	uint64_t v = 0;
	for (unsigned digit; i < digits_end && (digit = s[i] - (unsigned)'0') <= 9; i++)
		v = v * 10 + digit;
	if (i == start || i == n || (s[i] != '\r' && s[i] != '\n'))
		return 0;
	p->remaining = v;
	p->value_len = (uint8_t)(i - start);
	return i;
}

/* A byte of Transfer-Encoding's value (not CR or LF). Only the last coding
 * matters: the tail is kept, spaces dropped ("gzip, chunked" ->
 * "gzip,chunked"). */
static void coding_byte(struct http_response_parser *p, unsigned char c)
{
	if (c == ' ' || c == '\t')
		return;
	if (p->value_len == sizeof(p->value)) {
		memmove(p->value, p->value + 1, sizeof(p->value) - 1);
		p->value_len--;
	}
	p->value[p->value_len++] = (char)http_lower(c);
}

/* Transfer-Encoding's value from s[i] to its line's end (returned; n if it
 * is not in this write): whether chunked is its last coding. */
static size_t coding_value(struct http_response_parser *p, const unsigned char *s, size_t i,
			   size_t n)
{
	size_t end = http_scan(s, i, n, http_eol_bytes);
	for (; i < end; i++)
		coding_byte(p, s[i]);
	if (end < n) {
		size_t k = p->value_len;
		bool chunked = k >= 7 && memcmp(p->value + k - 7, "chunked", 7) == 0 &&
			       (k == 7 || p->value[k - 8] == ',');
		p->coding = chunked ? CODING_CHUNKED : CODING_OTHER;
	}
	return end;
}

/* The blank line after the headers: where the body starts, if any. */
static inline __attribute__((always_inline)) uint8_t after_headers(struct http_response_parser *p)
{
	if (p->status < 200)
		return p->status == 101 ? R_UNTIL_CLOSE : R_START; /* interim response */
	bool head = p->head_request;
	p->head_request = false;
	if (head || p->status == 204 || p->status == 304)
		return R_START;
	if (p->coding == CODING_CHUNKED) {
		p->remaining = 0;
		p->token_len = 0;
		return R_CHUNK_SIZE;
	}
	if (p->coding == CODING_OTHER)
		return R_UNTIL_CLOSE;
	if (p->has_length)
		return p->remaining ? R_BODY : R_START;
	return R_UNTIL_CLOSE;
}

/* ---- one step per state ------------------------------------------------ */

/* Each step takes bytes of s from i (maybe none are left) while the state
 * stays the same, then the bytes that move it on, and returns where it
 * stopped: n once the bytes ran out or the stream was given up. */

/* The CR or LF at s[i] ends a line; next is the state after it. Takes the
 * LF of a CRLF along when it is there; a CR waits in R_EXPECT_LF for it
 * otherwise. */
static size_t end_line(struct http_response_parser *p, const unsigned char *s, size_t i,
		       size_t n, uint8_t next)
{
	p->after_lf = next;
	if (s[i] == '\n') {
		p->state = next;
		return i + 1;
	}
	if (i + 1 < n && s[i + 1] == '\n') {
		p->state = next;
		return i + 2;
	}
	p->state = R_EXPECT_LF;
	return i + 1;
}

/* "HTTP/1.x NNN" at s (12 bytes): the status; -1 if not that. Read as
 * little-endian words (x86, as SSE2 is): "HTTP/1." in the low seven bytes
 * of the first, " NNN" in the second, where a byte is a digit when its high
 * nibble is 3 and stays 3 with 6 added. */
static int status_of(const unsigned char *s)
{
	uint64_t version, prefix;
	uint32_t code;
	memcpy(&version, s, 8);
	memcpy(&prefix, version_prefix, 8);
	memcpy(&code, s + 8, 4);
	if ((version & 0x00ffffffffffffff) != prefix || s[7] - (unsigned)'0' > 9 ||
	    (code & 0xf0f0f0ff) != 0x30303020 || ((code + 0x06060600) & 0xf0f0f000) != 0x30303000)
		return -1;
	return s[9] * 100 + s[10] * 10 + s[11] - '0' * 111;
}

/* A new response: "HTTP/1.x NNN" whole when its 12 bytes are at hand (and
 * right), with the SP after it when that is there too, else one byte at a
 * time from R_VERSION. */
static size_t step_start(struct http_response_parser *p, const unsigned char *s, size_t i,
			 size_t n)
{
	begin_response(p);
	int status = n - i >= 12 ? status_of(s + i) : -1;
	if (status < 0) {
		p->token_len = 0;
		p->state = R_VERSION;
		return i;
	}
	p->status = (uint16_t)status;
	p->token_len = 3;
	if (n - i > 12 && s[i + 12] == ' ') {
		p->state = R_REASON;
		return i + 13;
	}
	p->state = R_STATUS;
	return i + 12;
}

/* "HTTP/1.x" and the SP after it. */
static size_t step_version(struct http_response_parser *p, const unsigned char *s, size_t i,
			   size_t n)
{
	for (; i < n; i++) {
		unsigned char c = s[i];
		if (p->token_len < sizeof(version_prefix) - 1) {
			if (c != (unsigned char)version_prefix[p->token_len])
				return stop(p, n);
		} else if (p->token_len == sizeof(version_prefix) - 1) {
			if (c < '0' || c > '9')
				return stop(p, n);
		} else if (c == ' ') {
			p->state = R_STATUS;
			p->token_len = 0;
			return i + 1;
		} else {
			return stop(p, n);
		}
		p->token_len++;
	}
	return n;
}

/* The three status digits, then the SP before the reason phrase or the
 * line's end. */
static size_t step_status(struct http_response_parser *p, const unsigned char *s, size_t i,
			  size_t n)
{
	for (; i < n; i++) {
		unsigned char c = s[i];
		if (p->token_len == 3) {
			if (c == ' ') {
				p->state = R_REASON;
				return i + 1;
			}
			if (c == '\r' || c == '\n')
				return end_line(p, s, i, n, R_HEADER_START);
			return stop(p, n);
		}
		if (c < '0' || c > '9')
			return stop(p, n);
		p->status = (uint16_t)(p->status * 10 + (c - '0'));
		p->token_len++;
	}
	return n;
}

/* The reason phrase, skipped, then the line's end. */
static size_t step_reason(struct http_response_parser *p, const unsigned char *s, size_t i,
			  size_t n)
{
	i = http_scan(s, i, n, http_eol_bytes);
	return i < n ? end_line(p, s, i, n, R_HEADER_START) : n;
}

/* Header name bytes s[i, end), token characters that continue the name
 * (maybe none), then its ':' if s[end] is one. */
static size_t name_run(struct http_response_parser *p, const unsigned char *s, size_t i,
		       size_t end, size_t n)
{
	bool whole = end < n && s[end] == ':';
	if (p->name_match)
		p->name_match = name_match_after(p, s + i, end - i, whole);
	add_name_len(p, end - i);
	if (end == n)
		return n;
	if (!whole)
		return stop(p, n);
	begin_value(p);
	p->state = R_HEADER_VALUE;
	return end + 1;
}

/* More of a header name, from s[i] (maybe none), then its ':'. */
static size_t step_header_name(struct http_response_parser *p, const unsigned char *s, size_t i,
			       size_t n)
{
	return name_run(p, s, i, http_token_end(s, i, n), n);
}

/* A header line's first byte at s[i] (not CR or LF): a name begins, with
 * the names of interest that byte allows. */
static size_t name_start(struct http_response_parser *p, const unsigned char *s, size_t i,
			 size_t n)
{
	if (!http_is_tchar(s[i]))
		return stop(p, n);
	p->name_match = first_byte_names(p, s[i]);
	p->token_len = 0;
	p->state = R_HEADER_NAME;
	return step_header_name(p, s, i, n);
}

/* A header value, skipped unless it is a framing header's, then the line's
 * end. */
static size_t step_header_value(struct http_response_parser *p, const unsigned char *s,
				size_t i, size_t n)
{
	size_t end;
	if (p->name_match & N_CONTENT_LENGTH) {
		end = length_value(p, s, i, n);
		if (end < n && (p->value_bad || p->value_len == 0))
			return stop(p, n);
		p->has_length |= end < n;
	} else if (p->name_match & N_TRANSFER_ENCODING) {
		end = coding_value(p, s, i, n);
	} else {
		end = http_scan(s, i, n, http_eol_bytes);
	}
	return end < n ? end_line(p, s, end, n, R_HEADER_START) : n;
}

/* ---- the usual form, taken at once ------------------------------------ */

/* A response head in the usual form: the status line "HTTP/1.x NNN
 * reason", lines "Name: value" whose names are letters and '-', each line
 * ended by CRLF or LF. Such lines are taken here one at a time, each with a
 * few 16-byte loads, leaving the parser as the states would leave it after
 * taking their bytes one by one; the first line that is not in that form,
 * or not whole before the write's last 17 bytes (where a load from it
 * would pass the end), is left to the states, from its first byte. */

/* s[at, at + 2) is CRLF (both bytes in the buffer). */
static inline bool crlf_here(const unsigned char *s, size_t at)
{
	uint16_t two;
	memcpy(&two, s + at, 2);
	return two == ('\r' | '\n' << 8);
}

/* The run of letters and '-' at b, up to 16: the offset of the first of its
 * 16 bytes that is neither, or 16. */
static inline size_t letter_run16(const unsigned char *b)
{
	__m128i x = _mm_loadu_si128((const __m128i *)b);
	__m128i folded = _mm_add_epi8(_mm_or_si128(x, _mm_set1_epi8(0x20)),
				      _mm_set1_epi8((char)(0x80 - 'a')));
	__m128i letter = _mm_cmplt_epi8(folded, _mm_set1_epi8((char)(-128 + 26)));
	__m128i usual = _mm_or_si128(letter, _mm_cmpeq_epi8(x, _mm_set1_epi8('-')));
	return (unsigned)__builtin_ctz(~(unsigned)_mm_movemask_epi8(usual));
}

/* Bytes 0x08 to 0x0f: CR and LF among them, the others (HTAB most of all)
 * rare in a head. One OR and one compare find them. */
static inline unsigned maybe_eol_bytes(__m128i x)
{
	return (unsigned)_mm_movemask_epi8(
		_mm_cmpeq_epi8(_mm_or_si128(x, _mm_set1_epi8(0x07)), _mm_set1_epi8(0x0f)));
}

/* s[end] (end < n - 1) ends a line as end_line takes CRLF or LF at once:
 * the next line starts at *next (set only then). */
static inline bool next_line(const unsigned char *s, size_t end, size_t *next)
{
	if (__builtin_expect(crlf_here(s, end), 1)) {
		*next = end + 2;
		return true;
	}
	if (s[end] != '\n')
		return false;
	*next = end + 1;
	return true;
}

/* The start of the next line, after the end of the line going on at s[at]
 * (at < n - 1), in *next: false when a byte from 0x08 to 0x0f other than
 * its CRLF or LF comes first, or none before the write's last byte. limit
 * is n - 17: a block loaded from at <= limit leaves a byte after it for
 * the LF; past limit, the block loaded from limit is shifted to begin at
 * at. */
static inline __attribute__((always_inline)) bool
line_end_from(const unsigned char *s, size_t at, size_t limit, size_t *next)
{
	unsigned m = 0;
	while (at <= limit && !(m = maybe_eol_bytes(_mm_loadu_si128((const __m128i *)(s + at)))))
		at += 16;
	if (!m)
		m = maybe_eol_bytes(_mm_loadu_si128((const __m128i *)(s + limit))) >> (at - limit);
	if (!m)
		return false;
	return next_line(s, at + (unsigned)__builtin_ctz(m), next);
}

/* The 16 bytes at b are name's first 16, in any case (as same_as_lowercase
 * has it): fold has 0x20 where name has a letter. */
static inline bool is_name16(const unsigned char *b, const unsigned char *name,
			     const unsigned char *fold)
{
	__m128i x = _mm_or_si128(_mm_loadu_si128((const __m128i *)b),
				 _mm_load_si128((const __m128i *)fold));
	return _mm_movemask_epi8(_mm_cmpeq_epi8(x, _mm_load_si128((const __m128i *)name))) ==
	       0xffff;
}

/* "content-length:" and a byte that may be any (its fold sets all its
 * bits); the first 16 bytes of "transfer-encoding". */
static const unsigned char length_name[16] __attribute__((aligned(16))) = {
	'c', 'o', 'n', 't', 'e', 'n', 't', '-', 'l', 'e', 'n', 'g', 't', 'h', ':', 0xff
};
static const unsigned char length_fold[16] __attribute__((aligned(16))) = {
	0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0, 0xff
};
static const unsigned char coding_name[16] __attribute__((aligned(16))) = {
	't', 'r', 'a', 'n', 's', 'f', 'e', 'r', '-', 'e', 'n', 'c', 'o', 'd', 'i', 'n'
};
static const unsigned char coding_fold[16] __attribute__((aligned(16))) = {
	0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20
};

/* Content-Length's value from s[at] (at < n - 1), just after its ':', in
 * its usual form: a SP or none, 1 to 19 digits (too few to overflow), then
 * CRLF or LF, all before the write's last byte. Takes the line as the
 * states would (begin_value, the digits, has_length) and sets *next where
 * the next line starts; false if the value is not that, and nothing was
 * taken. */
static inline __attribute__((always_inline)) bool
usual_length_line(struct http_response_parser *p, const unsigned char *s, size_t at, size_t n,
		  size_t *next)
{
	at += s[at] == ' ';
	size_t start = at;
	unsigned digit = s[at] - (unsigned)'0';
	if (digit > 9)
		return false;
	uint64_t v = digit;
	while (++at < n - 1 && (digit = s[at] - (unsigned)'0') <= 9)
		v = v * 10 + digit;
	if (at - start > 19 || at == n - 1 || !next_line(s, at, next))
		return false;
	p->remaining = v;
	p->value_len = (uint8_t)(at - start);
	p->value_bad = false;
	p->value_spaced = false;
	p->has_length = true;
	p->name_match = N_CONTENT_LENGTH;
	p->token_len = sizeof(content_length) - 1;
	return true;
}

/* The added header's name has len bytes and the same first letter as the
 * name at s[i]: the states must compare the rest. */
static inline bool maybe_added_header(const struct http_response_parser *p,
				      const unsigned char *s, size_t i, size_t len)
{
	return len == p->header_len && (s[i] | 0x20) == http_lower((unsigned char)added_name[0]);
}

/* A header line at s[i] (i < limit, n - 17) whose name's first 16 bytes
 * are letters and '-': taken as usual_lines takes a line when the rest of
 * the name is too (up to 64 bytes, read on in 16-byte runs while they end
 * before limit + 16), with Transfer-Encoding's value read by coding_value
 * as the states read it. The next line's start in *next; false if the line
 * is not that, and nothing was taken. */
static __attribute__((noinline)) bool
long_name_line(struct http_response_parser *p, const unsigned char *s, size_t i, size_t n,
	       size_t limit, size_t *next)
{
	size_t len = 16, run;
	do {
		if (len >= 64 || i + len > limit)
			return false;
		run = letter_run16(s + i + len);
		len += run;
	} while (s[i + len] != ':' && run == 16);
	if (s[i + len] != ':' || maybe_added_header(p, s, i, len) ||
	    !line_end_from(s, i + len + 1, limit, next))
		return false;
	if (len == sizeof(transfer_encoding) - 1 && (s[i + 16] | 0x20) == 'g' &&
	    is_name16(s + i, coding_name, coding_fold)) {
		p->name_match = N_TRANSFER_ENCODING;
		p->value_len = 0;
		p->value_bad = false;
		p->value_spaced = false;
		coding_value(p, s, i + len + 1, n);
	} else {
		p->name_match = 0;
	}
	p->token_len = (uint16_t)len;
	return true;
}

/* Header lines from their first byte at s[i] (n > 17), while they are in
 * the usual form: Content-Length's (unless that is the added header's
 * name) as usual_length_line takes it, or a name of 1 to 16 letters and
 * '-' that cannot be the added header's, ':', and a value without bytes
 * from 0x08 to 0x0f up to its CRLF or LF, taken as the states would take
 * it (name_match none, token_len the name's length), or a longer name as
 * long_name_line takes it. The state stays R_HEADER_START. Returns the
 * start of the first line not taken. */
static inline __attribute__((always_inline)) size_t
usual_lines(struct http_response_parser *p, const unsigned char *s, size_t i, size_t n)
{
	size_t limit = n - 17;
	while (i < limit) {
		/* Content-Length, in nearly every response, is known by its 14
		 * bytes and ':' before anything else is looked for; any other
		 * name is the likelier. */
		size_t colon = i + sizeof(content_length) - 1, next;
		if (__builtin_expect(s[colon] == ':', 0) && is_name16(s + i, length_name, length_fold)) {
			if (p->header_len == sizeof(content_length) - 1 ||
			    !usual_length_line(p, s, colon + 1, n, &next))
				break;
		} else {
			size_t len = letter_run16(s + i);
			if (s[i + len] != ':') {
				if (len < 16 || !long_name_line(p, s, i, n, limit, &next))
					break;
			} else {
				if (len == 0 || maybe_added_header(p, s, i, len) ||
				    !line_end_from(s, i + len + 1, limit, &next))
					break;
				p->name_match = 0;
				p->token_len = (uint16_t)len;
			}
		}
		i = next;
	}
	return i;
}

/* ---- header lines ------------------------------------------------------ */

/* One header line from its first byte at s[i], or the blank line, as the
 * states take it: at once when its name is of usual bytes (letters,
 * digits, '-') and none of interest, or is Content-Length with a value of
 * digits; else through the states of a header line. Returns where it
 * stopped; the state stays R_HEADER_START only at the next line's start. */
static __attribute__((noinline)) size_t
header_line(struct http_response_parser *p, const unsigned char *s, size_t i, size_t n,
	    size_t points[], size_t *count, size_t max)
{
	unsigned char c = s[i];
	if (c == '\r' || c == '\n') {
		if (p->status >= 200 && !p->has_header && p->header_len && *count < max)
			points[(*count)++] = i;
		return end_line(p, s, i, n, after_headers(p));
	}
	/* Content-Length, in nearly every response, is known by its 14
	 * bytes and ':' before anything else is looked for. */
	size_t end = i + sizeof(content_length) - 1;
	bool length = end < n && s[end] == ':' &&
		      same_as_lowercase(s + i, content_length, sizeof(content_length) - 1);
	if (!length) {
		end = http_scan(s, i, n, http_unusual_name_bytes);
		if (end == i || end == n || s[end] != ':' ||
		    end - i == sizeof(transfer_encoding) - 1)
			return name_start(p, s, i, n);
	}
	size_t len = end - i;
	if (len == p->header_len && http_lower(c) == http_lower((unsigned char)added_name[0]))
		return name_start(p, s, i, n);
	p->name_match = length ? N_CONTENT_LENGTH : 0;
	p->token_len = (uint16_t)(len < UINT16_MAX ? len : UINT16_MAX);
	if (length) {
		begin_value(p);
		i = usual_length(p, s, end + 1, n);
		if (i == 0) {
			p->state = R_HEADER_VALUE;
			return end + 1;
		}
		p->has_length = true;
	} else {
		i = http_scan(s, end + 1, n, http_eol_bytes);
		if (i == n) {
			p->state = R_HEADER_VALUE;
			return n;
		}
	}
	if (s[i] == '\n')
		return i + 1;
	if (i + 1 < n && s[i + 1] == '\n')
		return i + 2;
	return end_line(p, s, i, n, R_HEADER_START);
}

/* The blank line at s[i] after the header lines, ended by CRLF or LF in
 * this write, the body from s[body]: the point before it, the state the
 * body needs, and the body's bytes in this write. */
static inline __attribute__((always_inline)) size_t
end_head(struct http_response_parser *p, size_t i, size_t body, size_t n, size_t points[],
	 size_t *count, size_t max)
{
	if (p->status >= 200 && !p->has_header && p->header_len && *count < max)
		points[(*count)++] = i;
	uint8_t next = after_headers(p);
	p->after_lf = next;
	i = body;
	if (next == R_BODY) {
		uint64_t left = p->remaining;
		if (left <= n - i) {
			i += left;
			p->remaining = 0;
			next = R_START;
		} else {
			p->remaining = left - (n - i);
			i = n;
		}
	}
	p->state = next;
	return i;
}

/* Header lines from s[i], the first of them one that usual_lines left
 * (or the blank line ended otherwise than end_head takes), each taken by
 * header_line or else in the usual form, then the blank line that ends
 * them. */
static __attribute__((noinline)) size_t
other_header_lines(struct http_response_parser *p, const unsigned char *s, size_t i, size_t n,
		   size_t points[], size_t *count, size_t max)
{
	for (;;) {
		if (i == n)
			return n;
		i = header_line(p, s, i, n, points, count, max);
		if (i == n || p->state != R_HEADER_START)
			return i;
		if (n > 17)
			i = usual_lines(p, s, i, n);
		size_t body;
		if (i + 1 < n && next_line(s, i, &body))
			return end_head(p, i, body, n, points, count, max);
	}
}

/* Header lines one after another from s[i], then the blank line that ends
 * them. */
static size_t step_header_lines(struct http_response_parser *p, const unsigned char *s, size_t i,
				size_t n, size_t points[], size_t *count, size_t max)
{
	if (n > 17)
		i = usual_lines(p, s, i, n);
	size_t body;
	if (i + 1 < n && next_line(s, i, &body))
		return end_head(p, i, body, n, points, count, max);
	return other_header_lines(p, s, i, n, points, count, max);
}

/* "HTTP/1.x NNN " as the bytes that lie between two bounds (one byte where
 * it must be that byte, '0' and '9' for a digit); the 3 bytes after it may
 * be any. */
static const unsigned char status_low[16] __attribute__((aligned(16))) = "HTTP/1.0 000 ";
static const unsigned char status_high[16] __attribute__((aligned(16))) = {
	'H', 'T', 'T', 'P', '/', '1', '.', '9', ' ', '9', '9', '9', ' ', 0xff, 0xff, 0xff
};

/* A response from its first byte at s[i] (n - i > 17) as far as it is in
 * the usual form: "HTTP/1.x NNN " and a reason phrase without bytes from
 * 0x08 to 0x0f up to its CRLF or LF, then the usual header lines
 * (usual_lines), then the blank line as CRLF or LF and the body's bytes
 * (end_head). Returns where it stopped, the parser left as the states
 * leave it there (at the start of a header line not in that form, or
 * after the blank line or the body); i itself, the parser untouched, if
 * the status line is not in that form. */
static inline __attribute__((always_inline)) size_t
usual_response(struct http_response_parser *p, const unsigned char *s, size_t i, size_t n,
	       size_t points[], size_t *count, size_t max)
{
	__m128i x = _mm_loadu_si128((const __m128i *)(s + i));
	__m128i low = _mm_load_si128((const __m128i *)status_low);
	__m128i high = _mm_load_si128((const __m128i *)status_high);
	if (_mm_movemask_epi8(_mm_cmpeq_epi8(_mm_min_epu8(_mm_max_epu8(x, low), high), x)) !=
	    0xffff)
		return i;
	/* The usual reason phrase ("OK") is short: its end is often in the
	 * same 16 bytes. */
	unsigned m = maybe_eol_bytes(x);
	size_t line;
	if (m) {
		if (!next_line(s, i + (unsigned)__builtin_ctz(m), &line))
			return i;
	} else if (!line_end_from(s, i + 16, n - 17, &line)) {
		return i;
	}
	/* As step_start, step_reason and end_line leave it. */
	p->has_header = false;
	p->coding = CODING_NONE;
	p->has_length = false;
	p->status = (uint16_t)(s[i + 9] * 100 + s[i + 10] * 10 + s[i + 11] - '0' * 111);
	p->remaining = 0;
	p->token_len = 3;
	i = usual_lines(p, s, line, n);
	size_t body;
	if (i + 1 < n && next_line(s, i, &body))
		return end_head(p, i, body, n, points, count, max);
	p->state = p->after_lf = R_HEADER_START;
	return i;
}

/* ---- the parser -------------------------------------------------------- */

/* The states from s[i] (i < n) until the bytes run out or a new response
 * is about to start. */
static FORK_PATH_LATE __attribute__((noinline)) size_t
scan_states(struct http_response_parser *p, const unsigned char *s, size_t i, size_t n,
	    size_t points[], size_t *count, size_t max)
{
	do {
		unsigned char c = s[i];
		switch (p->state) {
		/* A step that moves on to the next state goes on into it (with
		 * no bytes left, that one takes none). */
		case R_START:
			i = step_start(p, s, i, n);
			if (p->state == R_STATUS)
				i = step_status(p, s, i, n);
			if (p->state != R_REASON)
				break;
			/* fall through */
		case R_REASON:
			i = step_reason(p, s, i, n);
			if (p->state != R_HEADER_START)
				break;
			/* fall through */
		case R_HEADER_START:
			i = step_header_lines(p, s, i, n, points, count, max);
			break;
		case R_VERSION:
			i = step_version(p, s, i, n);
			break;
		case R_STATUS:
			i = step_status(p, s, i, n);
			break;
		case R_EXPECT_LF:
			if (c != '\n') {
				i = stop(p, n);
				break;
			}
			p->state = p->after_lf;
			i++;
			break;
		case R_HEADER_NAME:
			i = step_header_name(p, s, i, n);
			if (p->state != R_HEADER_VALUE)
				break;
			/* fall through */
		case R_HEADER_VALUE:
			i = step_header_value(p, s, i, n);
			break;
		case R_BODY:
			i += http_take_body(&p->remaining, n - i);
			if (p->remaining == 0)
				p->state = R_START;
			break;
		case R_CHUNK_SIZE: {
			int d = http_hex_digit(c);
			if (d >= 0 && p->token_len < 16) {
				p->remaining = p->remaining << 4 | (uint64_t)d;
				p->token_len++;
				i++;
			} else if (p->token_len > 0 && (c == ';' || c == ' ' || c == '\t')) {
				p->state = R_CHUNK_EXT;
				i++;
			} else if (p->token_len > 0 && (c == '\r' || c == '\n')) {
				i = end_line(p, s, i, n, p->remaining ? R_CHUNK_DATA : R_TRAILER_START);
			} else {
				i = stop(p, n);
			}
			break;
		}
		case R_CHUNK_EXT: {
			const unsigned char *lf = memchr(s + i, '\n', n - i);
			if (!lf)
				return n;
			p->state = p->remaining ? R_CHUNK_DATA : R_TRAILER_START;
			i = (size_t)(lf - s) + 1;
			break;
		}
		case R_CHUNK_DATA:
			i += http_take_body(&p->remaining, n - i);
			if (p->remaining == 0)
				p->state = R_CHUNK_DATA_END;
			break;
		case R_CHUNK_DATA_END:
			if (c != '\r' && c != '\n') {
				i = stop(p, n);
				break;
			}
			p->token_len = 0;
			p->remaining = 0;
			i = end_line(p, s, i, n, R_CHUNK_SIZE);
			break;
		case R_TRAILER_START:
			if (c == '\r' || c == '\n') {
				i = end_line(p, s, i, n, R_START);
			} else {
				p->state = R_TRAILER_LINE;
				i++;
			}
			break;
		case R_TRAILER_LINE: {
			const unsigned char *lf = memchr(s + i, '\n', n - i);
			if (!lf)
				return n;
			p->state = R_TRAILER_START;
			i = (size_t)(lf - s) + 1;
			break;
		}
		default: /* R_UNTIL_CLOSE, R_STOPPED */
			return n;
		}
	} while (i < n && p->state != R_START);
	return i;
}

/* The responses from s[i] on, each tried in the usual form first; a
 * header line that form left (or that a write begins with) goes to
 * other_header_lines, anything else to the states. */
static FORK_PATH_LATE __attribute__((noinline)) size_t
scan_from(struct http_response_parser *p, const unsigned char *s, size_t i, size_t n,
	  size_t points[], size_t count, size_t max)
{
	while (i < n) {
		size_t from = i;
		if (p->state == R_START && n - i > 17)
			i = usual_response(p, s, i, n, points, &count, max);
		if (i != from)
			continue;
		if (p->state == R_HEADER_START)
			i = other_header_lines(p, s, i, n, points, &count, max);
		else
			i = scan_states(p, s, i, n, points, &count, max);
	}
	return count;
}

/* A write that is one whole response in the usual form, the commonest, is
 * taken with nothing else on the way; so is one that is all body (the
 * rest of a response whose head went in the write or the iovec before). */
static FORK_PATH __attribute__((noinline)) size_t
scan(struct http_response_parser *p, const char *buf, size_t n, size_t points[], size_t max)
{
	if (p->state == R_BODY && n <= p->remaining) {
		p->remaining -= n;
		if (p->remaining == 0)
			p->state = R_START;
		return 0;
	}
	const unsigned char *s = (const unsigned char *)buf;
	size_t count = 0, i = 0;
	if (p->state == R_START && n > 17) {
		i = usual_response(p, s, 0, n, points, &count, max);
		if (i == n)
			return count;
	}
	return scan_from(p, s, i, n, points, count, max);
}

FORK_PATH size_t http_response_scan(struct http_response_parser *p, const char *buf, size_t n,
				    size_t points[], size_t max)
{
	return scan(p, buf, n, points, max);
}

size_t http_response_plan(const struct http_response_parser *p, const char *buf, size_t n,
			  size_t points[], size_t max)
{
	struct http_response_parser copy = *p;
	return scan(&copy, buf, n, points, max);
}

void http_response_advance(struct http_response_parser *p, const char *buf, size_t n)
{
	scan(p, buf, n, NULL, 0);
}

FORK_PATH void http_response_skip(struct http_response_parser *p, uint64_t n)
{
	if (n == 0 || http_response_stopped(p))
		return;
	if (p->state == R_BODY && n <= p->remaining) {
		p->remaining -= n;
		if (p->remaining == 0)
			p->state = R_START;
	} else if (p->state == R_CHUNK_DATA && n <= p->remaining) {
		p->remaining -= n;
		if (p->remaining == 0)
			p->state = R_CHUNK_DATA_END;
	} else {
		p->state = R_STOPPED;
	}
}
