/*
 * http_response.c - response framing, to find where a response's header
 * block ends.
 *
 * One state machine per connection that takes its input in runs, as the
 * request parser (http_parser.c) does: each step takes as many bytes as it
 * can and goes straight on into the next state while bytes are left.
 * "HTTP/1.x NNN" is checked as two words and the reason phrase skipped with
 * one SSE2 search for the line's end. The usual header line is then taken
 * whole in one loop: Content-Length is known by its 14 bytes and ':', and
 * its digits read at once; any other name is found by an SSE2 search for
 * the end of its usual bytes (letters, digits, '-') and, unless its length
 * and first byte make it a candidate for a name of interest, its value is
 * skipped with one search for the line's end. Any other line (Transfer-
 * Encoding, the added header, other token characters, a line a write cuts,
 * an unusual value) goes through the states of a header line: its name
 * matched run by run as a prefix of the names of interest, a framing value
 * read byte by byte.
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

#include "http_chars.h"

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

enum { N_CONTENT_LENGTH = 1, N_TRANSFER_ENCODING = 2, N_HEADER = 4 };

static const char version_prefix[] = "HTTP/1.";
static const char content_length[] = "content-length";
static const char transfer_encoding[] = "transfer-encoding";

/* ---- state ------------------------------------------------------------- */

void http_response_init(struct http_response_parser *p, const char *header, size_t header_len)
{
	memset(p, 0, sizeof(*p));
	p->header = header;
	p->header_len = header ? (uint8_t)header_len : 0;
	p->state = R_START;
}

void http_response_expect_head(struct http_response_parser *p, bool head)
{
	p->head_request = head;
}

void http_response_added(struct http_response_parser *p)
{
	p->has_header = true;
}

void http_response_stop(struct http_response_parser *p)
{
	p->state = R_STOPPED;
}

bool http_response_stopped(const struct http_response_parser *p)
{
	return p->state == R_STOPPED || p->state == R_UNTIL_CLOSE;
}

bool http_response_between(const struct http_response_parser *p)
{
	return p->state == R_START && p->status >= 200;
}

static void begin_response(struct http_response_parser *p)
{
	p->has_header = false;
	p->chunked = false;
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
			 (p->header_len && c == http_lower((unsigned char)p->header[0]) ? N_HEADER : 0));
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
	if ((m & N_HEADER) && !same_folded(b, p->header + pos, n))
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
		p->chunked = k >= 7 && memcmp(p->value + k - 7, "chunked", 7) == 0 &&
			     (k == 7 || p->value[k - 8] == ',');
	}
	return end;
}

/* The blank line after the headers: where the body starts, if any. */
static uint8_t after_headers(struct http_response_parser *p)
{
	if (p->status < 200)
		return p->status == 101 ? R_UNTIL_CLOSE : R_START; /* interim response */
	bool head = p->head_request;
	p->head_request = false;
	if (head || p->status == 204 || p->status == 304)
		return R_START;
	if (p->chunked) {
		p->remaining = 0;
		p->token_len = 0;
		return R_CHUNK_SIZE;
	}
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

/* Header lines one after another, then the blank line that ends them: the
 * point before it, and the state the body needs. The usual line is taken
 * here whole, in one go: a name of usual bytes (letters, digits, '-') that
 * is none of interest, or is Content-Length with a value of digits; then
 * the line's end. Any other line is left to the states above, from its
 * first byte or from its value. While here the state stays R_HEADER_START,
 * and after_lf is R_HEADER_START already (every way into this state sets
 * it), as ending each line would leave them. */
static size_t step_header_lines(struct http_response_parser *p, const unsigned char *s, size_t i,
				size_t n, size_t points[], size_t *count, size_t max)
{
	while (i < n) {
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
		if (len == p->header_len && http_lower(c) == http_lower((unsigned char)p->header[0]))
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
			i++;
		else if (i + 1 < n && s[i + 1] == '\n')
			i += 2;
		else
			return end_line(p, s, i, n, R_HEADER_START);
	}
	return n;
}

/* ---- the parser -------------------------------------------------------- */

static size_t scan(struct http_response_parser *p, const char *buf, size_t n, size_t points[],
		   size_t max)
{
	const unsigned char *s = (const unsigned char *)buf;
	size_t count = 0;
	size_t i = 0;

	while (i < n) {
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
			i = step_header_lines(p, s, i, n, points, &count, max);
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
				return count;
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
				return count;
			p->state = R_TRAILER_START;
			i = (size_t)(lf - s) + 1;
			break;
		}
		default: /* R_UNTIL_CLOSE, R_STOPPED */
			return count;
		}
	}
	return count;
}

size_t http_response_scan(struct http_response_parser *p, const char *buf, size_t n,
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

void http_response_skip(struct http_response_parser *p, uint64_t n)
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
